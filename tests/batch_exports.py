"""Gradescope-style exports of made-up classes, for tests/test_batch.py and `bench/run.py batch`.

An export is a folder (or its zip) with `submission_metadata.yml`, in the format Gradescope's
"Export Submissions" writes (Ruby-symbol keys), and one `submission_<id>` folder per submission
holding the files the student uploaded: the solution's, the handout's, or a buggy VMM's.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from buggy_vmms import BUGS, Bug, buggy_submission, edited_submission
from designs import DESIGNS, Design

REPO = Path(__file__).resolve().parents[1]
EDITABLE = ["vmm/trap.py", "vmm/hypercalls.py", "vmm/shadow.py", "vmm/nested.py",
            "vmm/channels.py"]

Source = str | Bug | Design  # "solution", "handout", a bug of tests/buggy_vmms.py, or a design
# (correct or buggy) of tests/designs.py


def source_named(name: str) -> Source:
    """"solution", "handout", or the bug or design of that name."""
    if name in ("solution", "handout"):
        return name
    for s in [*BUGS, *DESIGNS]:
        if s.name == name:
            return s
    raise KeyError(f"no bug or design named {name!r}")


def write_submission(dest: Path, source: Source, flat: bool = False) -> Path:
    """A student's upload: the editable files, at the top (`flat`, as students often drag
    them in) or under vmm/."""
    dest.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Bug):
        return buggy_submission(dest, REPO / "solution", EDITABLE, source)
    if isinstance(source, Design):
        return edited_submission(dest, REPO / "solution", EDITABLE, source.file,
                                 list(source.edits))
    for name in EDITABLE:
        target = dest / (Path(name).name if flat else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / source / name).read_bytes())
    return dest


def metadata(entries: list[tuple[str, list[tuple[str, str, str]]]]) -> str:
    """submission_metadata.yml for (folder, [(name, sid, email), ...]) entries."""
    lines = []
    for i, (folder, people) in enumerate(entries):
        lines.append(f"{folder}:\n  :submitters:\n")
        for name, sid, email in people:
            lines.append(f"  - :name: {name}\n    :sid: '{sid}'\n    :email: {email}\n")
        lines.append(f"  :created_at: 2026-12-0{1 + i % 9} 23:{i % 60:02d}:00.000000000 -08:00\n"
                     "  :score: 0.0\n")
    return "".join(lines)


def export(root: Path, items: list[tuple[str, list[tuple[str, str, str]], Source]]) -> Path:
    """An unzipped export in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (folder, _, source) in enumerate(items):
        write_submission(root / folder, source, flat=i % 2 == 0)
    (root / "submission_metadata.yml").write_text(metadata([(f, p) for f, p, _ in items]))
    return root


def zipped(folder: Path, zpath: Path, extra: dict[str, bytes] | None = None) -> Path:
    """`folder` as Gradescope's zip (its files under one top folder), with `extra` members
    written as given (e.g. a path that climbs out)."""
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f"assignment_export/{f.relative_to(folder)}")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return zpath


def corrupt_member(zpath: Path, name: str) -> None:
    """Flip a byte of the stored data of member `name`, so that reading it fails its CRC."""
    with zipfile.ZipFile(zpath) as z:
        info = z.getinfo(name)
    data = bytearray(zpath.read_bytes())
    # the local header: 30 bytes, then the name and the extra field, then the data
    start = info.header_offset + 30
    name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + name_len + extra_len] ^= 0xFF
    zpath.write_bytes(bytes(data))


def mixed_class(n: int) -> list[tuple[str, list[tuple[str, str, str]], Source]]:
    """`n` submissions: the solution, the handout, then mostly buggy VMMs (a bug of
    tests/buggy_vmms.py of each part in turn, every fifth a buggy design of tests/designs.py),
    and every tenth a correct design written otherwise; every fifth submission is a group of
    two."""
    by_part: dict[str, list[Bug]] = {}
    for b in BUGS:
        by_part.setdefault(b.part, []).append(b)
    bugs = [b for group in zip(*by_part.values(), strict=False) for b in group]
    bugs += [b for b in BUGS if b not in bugs]
    design_bugs = [d for d in DESIGNS if d.caught_by is not None]
    correct = [d for d in DESIGNS if d.caught_by is None]
    sources: list[Source] = ["solution", "handout"]
    while len(sources) < max(n, 2):
        i = len(sources) - 2
        if i % 10 == 9:
            sources.append(correct[i // 10 % len(correct)])
        elif i % 5 == 4:
            sources.append(design_bugs[i // 5 % len(design_bugs)])
        else:
            sources.append(bugs[(i - i // 5) % len(bugs)])
    items = []
    for i in range(n):
        source = sources[i]
        people = [(f"Student {i:03d}", f"{30000 + i}", f"s{i}@example.edu")]
        if i % 5 == 4:
            people.append((f"Partner {i:03d}", f"{40000 + i}", f"p{i}@example.edu"))
        items.append((f"submission_{900000 + i}", people, source))
    return items
