"""A submission, laid over a pristine copy of the handout.

Only the files the rubric lets a student edit are taken from a submission, as students upload
it: a folder or a zip, with the files at its top or anywhere below, or a zip inside the folder
(or inside the zip); everything else comes from the pristine handout, so nothing else a student
changed or added is seen. An editable file the submission lacks is the handout's stub, always:
the handout keeps a pristine copy of the stubs in tools/pristine/, so grading with a student's
working folder as the handout never takes their files in place of the missing ones. The
submission itself is only read, never changed.
"""

from __future__ import annotations

import ast
import io
import shutil
import tempfile
import zipfile
from pathlib import Path

from .errors import UsageError

MAX_FILE = 1 << 20  # bytes: a student's VMM file is a few kilobytes
MAX_ZIP = 16 << 20  # bytes: a zip inside a submission, read into memory
PRISTINE = Path("tools") / "pristine"  # in a handout: the editable files as handed out


def _candidates(names: list[str], wanted: str) -> list[str]:
    """Paths in a submission that can stand for `wanted` (e.g. vmm/trap.py): the path itself
    below any folder, else a file of the same name anywhere."""
    exact = [n for n in names if n == wanted or n.endswith("/" + wanted)]
    if exact:
        return sorted(exact, key=len)
    base = wanted.rsplit("/", 1)[-1]
    return sorted((n for n in names if n.rsplit("/", 1)[-1] == base), key=len)


def _skipped(name: str) -> bool:
    parts = name.split("/")
    return any(p in (".venv", "__pycache__", "__MACOSX") for p in parts) or \
        parts[-1].startswith("._")


def _from_zip(z: zipfile.ZipFile, prefix: str, depth: int) -> dict[str, bytes | Path]:
    """The .py files of a zip, and those of the zips inside it (one level down)."""
    out: dict[str, bytes | Path] = {}
    for info in z.infolist():
        name = info.filename
        if info.is_dir() or _skipped(name):
            continue
        if name.endswith(".py") and info.file_size <= MAX_FILE:
            out[prefix + name] = z.read(info)
        elif name.endswith(".zip") and depth > 0 and info.file_size <= MAX_ZIP:
            inner = io.BytesIO(z.read(info))
            if zipfile.is_zipfile(inner):
                with zipfile.ZipFile(inner) as nested:
                    out.update(_from_zip(nested, f"{prefix}{name}/", depth - 1))
    return out


def _listing(submission: Path) -> dict[str, bytes | Path]:
    if submission.is_dir():
        out: dict[str, bytes | Path] = {}
        for p in sorted(submission.rglob("*")):
            rel = p.relative_to(submission).as_posix()
            if not p.is_file() or _skipped(rel):
                continue
            if p.suffix == ".py":
                out[rel] = p
            elif p.suffix == ".zip" and p.stat().st_size <= MAX_ZIP and zipfile.is_zipfile(p):
                with zipfile.ZipFile(p) as z:
                    out.update(_from_zip(z, rel + "/", depth=1))
        return out
    if zipfile.is_zipfile(submission):
        with zipfile.ZipFile(submission) as z:
            return _from_zip(z, "", depth=1)
    if submission.exists():
        raise UsageError(f"submission {submission}: neither a folder nor a zip file.")
    raise UsageError(f"submission {submission}: no such file or folder.")


def pristine(handout: Path, wanted: str) -> bytes:
    """The editable file `wanted` as the handout gave it: the pristine copy in tools/pristine/,
    or, in a handout that has none (the repository's, the autograder's), the file itself."""
    for path in (handout / PRISTINE / wanted, handout / wanted):
        if path.is_file():
            return path.read_bytes()
    raise UsageError(f"handout {handout}: it has no {wanted}; is it the handout?")


def assemble(submission: Path, handout: Path, editable: tuple[str, ...],
             into: Path | None = None) -> tuple[Path, list[str], list[str]]:
    """Copy the pristine `handout` into a new folder and lay the submission's editable files
    over it. Returns (the folder, the files taken, the editable files that were missing)."""
    if not (handout / "machine").is_dir():
        raise UsageError(f"handout {handout}: it has no machine/ folder; is it the handout?")
    files = _listing(Path(submission))
    dest = Path(into) if into is not None else Path(tempfile.mkdtemp(prefix="vmlab-grade-"))
    shutil.copytree(handout, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.pyc", ".vmlab",
                                                  ".hypothesis", "submission.zip"))
    taken, missing = [], []
    for wanted in editable:
        found = _candidates(list(files), wanted)
        if not found:
            (dest / wanted).write_bytes(pristine(handout, wanted))
            missing.append(wanted)
            continue
        source = files[found[0]]
        data = source.read_bytes() if isinstance(source, Path) else source
        if len(data) > MAX_FILE:
            raise UsageError(f"submission {submission}: {found[0]} is {len(data)} bytes; a "
                             f"VMM file over {MAX_FILE} bytes is not a VMM file.")
        (dest / wanted).write_bytes(data)
        taken.append(found[0])
    return dest, taken, missing


def syntax_errors(lab: Path, files: list[str]) -> dict[str, str]:
    """For each of `files` (relative to `lab`) that Python cannot parse, why, naming the line.
    Parsing runs none of the code, so the grader may do it itself."""
    out = {}
    for rel in files:
        try:
            ast.parse((lab / rel).read_bytes(), filename=rel)
        except SyntaxError as e:
            where = f"line {e.lineno}" if e.lineno else "somewhere"
            out[rel] = f"{rel}, {where}: {e.msg}"
        except ValueError as e:  # e.g. a NUL byte
            out[rel] = f"{rel}: {e}"
    return out
