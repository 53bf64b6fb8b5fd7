"""The rubric: one TOML file (parts, tests, weights, visibility, time limits, editable files),
validated against schemas/rubric.schema.json when it is loaded, with an error that names the
file, the line and the field."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import jsonschema

from .errors import UsageError

DEFAULT = Path(str(files("vmlab") / "rubric.toml"))


@dataclass(frozen=True)
class Test:
    id: str
    property: str
    part: str
    weight: float
    visibility: str
    examples: int
    seed: int
    time_limit: float
    number: str

    @property
    def visible(self) -> bool:
        return self.visibility == "visible"


@dataclass(frozen=True)
class Rubric:
    title: str
    time_limit: float
    example_time_limit: float
    editable: tuple[str, ...]
    parts: dict[str, tuple[str, str]]  # id -> (file, group)
    tests: tuple[Test, ...]
    path: Path
    # "development": the hidden tests' seeds are the public ones written here; "offering": they
    # were derived from the course offering's secret (offering.py)
    hidden_seeds: str = "development"
    # what a student's code printed: "never" shown, or shown under a visible test it fails
    # (hidden tests never show it: their examples are not for students)
    student_output: str = "never"
    # examples hypothesis may run to shrink a failing example, per test: past them the smallest
    # failure so far is reported. A count, not a time, so that the same submission gets the
    # same feedback on any machine, alone or in a batch
    shrink_examples: int = 200


def schema() -> dict:
    return json.loads((files("vmlab") / "schemas" / "rubric.schema.json").read_text())


def load(path: Path | None = None) -> Rubric:
    path = Path(path) if path is not None else DEFAULT
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"rubric {path}: cannot read it ({e.strerror}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"rubric {path}: not valid TOML: {e}.") from None
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        field = _field(list(e.absolute_path))
        line = _line(text, list(e.absolute_path))
        where = f"{path}, line {line}" if line else str(path)
        raise UsageError(f"rubric {where}, field `{field}`: {e.message}.")
    parts = {p["id"]: (p["file"], p["group"]) for p in data["parts"]}
    from .properties import load as load_properties
    known = load_properties()
    tests, seen = [], set()
    for i, t in enumerate(data["tests"]):
        for key, valid, what in (("part", parts, "a part listed under [[parts]]"),
                                 ("property", known, "a property of vmlab.properties")):
            if t[key] not in valid:
                line = _line(text, ["tests", i, key])
                raise UsageError(f"rubric {path}, line {line}, field `tests[{i}].{key}`: "
                                 f"{t[key]!r} is not {what} ({', '.join(sorted(valid))}).")
        if t["id"] in seen:
            raise UsageError(f"rubric {path}, line {_line(text, ['tests', i, 'id'])}, field "
                             f"`tests[{i}].id`: {t['id']!r} is used twice.")
        seen.add(t["id"])
        tests.append(Test(number=f"{i + 1}", **t))
    lab = data["lab"]
    return Rubric(lab["title"], lab["time_limit"], lab["example_time_limit"],
                  tuple(lab["editable"]), parts, tuple(tests), path,
                  lab.get("hidden_seeds", "development"), lab.get("student_output", "never"),
                  lab.get("shrink_examples", Rubric.shrink_examples))


def _field(path: list) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(top level)"


def _line(text: str, path: list) -> int | None:
    """The line of a field: the n-th [[table]] header, then the key under it."""
    lines = text.splitlines()
    start = 0
    if len(path) >= 2 and isinstance(path[1], int):
        headers = [i for i, ln in enumerate(lines) if ln.strip() == f"[[{path[0]}]]"]
        if path[1] >= len(headers):
            return None
        start = headers[path[1]]
        key = path[2] if len(path) > 2 else None
    else:
        key = path[1] if len(path) > 1 else None
        headers = [i for i, ln in enumerate(lines) if ln.strip() == f"[{path[0]}]"] if path \
            else []
        start = headers[0] if headers else 0
    if key is None:
        return start + 1
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if re.match(rf"\s*{re.escape(str(key))}\s*=", lines[i]):
            return i + 1
    return start + 1


def split_tests(text: str) -> tuple[str, list[tuple[dict, str]]]:
    """The rubric's text cut before each [[tests]] table: what comes before the first one, and
    each test (parsed) with its block of text. The blocks joined give the text back, so a tool
    can drop or change a test and keep every comment (the handout drops the hidden tests)."""
    starts = [m.start() for m in re.finditer(r"^\[\[tests\]\]\s*$", text, re.M)]
    if not starts:
        return text, []
    blocks = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]
    return text[:starts[0]], [(tomllib.loads(b)["tests"][0], b) for b in blocks]
