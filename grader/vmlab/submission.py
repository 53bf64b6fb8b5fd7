"""A submission, laid over a pristine copy of the handout.

Only the files the rubric lets a student edit are taken from a submission (a folder or a zip, the
files at its top or anywhere below, as students upload them); everything else comes from the
pristine handout, so nothing else a student changed or added is seen. The submission itself is
only read, never changed.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from .errors import UsageError

MAX_FILE = 1 << 20  # bytes: a student's VMM file is a few kilobytes


def _candidates(names: list[str], wanted: str) -> list[str]:
    """Paths in a submission that can stand for `wanted` (e.g. vmm/trap.py): the path itself
    below any folder, else a file of the same name anywhere."""
    exact = [n for n in names if n == wanted or n.endswith("/" + wanted)]
    if exact:
        return sorted(exact, key=len)
    base = wanted.rsplit("/", 1)[-1]
    return sorted((n for n in names if n.rsplit("/", 1)[-1] == base), key=len)


def _listing(submission: Path) -> dict[str, bytes | Path]:
    if submission.is_dir():
        return {str(p.relative_to(submission)).replace("\\", "/"): p
                for p in submission.rglob("*.py") if p.is_file() and ".venv" not in p.parts
                and "__pycache__" not in p.parts}
    if zipfile.is_zipfile(submission):
        out: dict[str, bytes | Path] = {}
        with zipfile.ZipFile(submission) as z:
            for info in z.infolist():
                if info.filename.endswith(".py") and not info.is_dir() and \
                        "__MACOSX" not in info.filename and info.file_size <= MAX_FILE:
                    out[info.filename] = z.read(info)
        return out
    if submission.exists():
        raise UsageError(f"submission {submission}: neither a folder nor a zip file.")
    raise UsageError(f"submission {submission}: no such file or folder.")


def assemble(submission: Path, handout: Path, editable: tuple[str, ...],
             into: Path | None = None) -> tuple[Path, list[str], list[str]]:
    """Copy the pristine `handout` into a new folder and lay the submission's editable files
    over it. Returns (the folder, the files taken, the editable files that were missing)."""
    if not (handout / "machine").is_dir():
        raise UsageError(f"handout {handout}: it has no machine/ folder; is it the handout?")
    files = _listing(Path(submission))
    dest = Path(into) if into is not None else Path(tempfile.mkdtemp(prefix="vmlab-grade-"))
    shutil.copytree(handout, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.pyc"))
    taken, missing = [], []
    for wanted in editable:
        found = _candidates(list(files), wanted)
        if not found:
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
