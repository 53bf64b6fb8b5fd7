"""A submission, laid over a pristine copy of the handout.

Only the files the rubric lets a student edit are taken from a submission (a folder or a zip, the
files at its top or anywhere below, as students upload them); everything else comes from the
pristine handout, so nothing else a student changed or added is seen. The submission itself is
only read, never changed.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
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


def _listing(submission: Path) -> dict[str, Callable[[], bytes]]:
    """The submission's Python files, each with a way to read it: only the few files taken
    are ever read, so a zip of many large files costs nothing. Symbolic links are passed over
    (one could point at anything on the grading machine), and so are files over MAX_FILE."""
    if submission.is_dir():
        out: dict[str, Callable[[], bytes]] = {}
        for folder, dirs, names in os.walk(submission):  # links to folders are not entered
            dirs[:] = [d for d in dirs if d not in (".venv", "__pycache__", ".git")]
            for name in names:
                path = Path(folder) / name
                if name.endswith(".py") and not path.is_symlink() and path.is_file():
                    rel = path.relative_to(submission).as_posix()
                    out[rel] = functools.partial(_read_file, path)
        return out
    if zipfile.is_zipfile(submission):
        with zipfile.ZipFile(submission) as z:
            return {info.filename: functools.partial(_read_member, submission, info.filename)
                    for info in z.infolist()
                    if info.filename.endswith(".py") and not info.is_dir()
                    and "__MACOSX" not in info.filename and info.file_size <= MAX_FILE
                    and not _is_link(info)}
    if submission.exists():
        raise UsageError(f"submission {submission}: neither a folder nor a zip file.")
    raise UsageError(f"submission {submission}: no such file or folder.")


def _read_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_FILE + 1)


def _read_member(archive: Path, name: str) -> bytes:
    """A member of a zip, read no further than MAX_FILE + 1 bytes whatever its header claims
    (a zip bomb's header lies about its size)."""
    with zipfile.ZipFile(archive) as z, z.open(name) as f:
        return f.read(MAX_FILE + 1)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


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
        try:
            data = files[found[0]]()
        except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                zlib.error) as e:  # a damaged, encrypted or oddly compressed member
            raise UsageError(f"submission {submission}: {found[0]} cannot be read ({e}); "
                             "make the zip again and upload it again.") from None
        if len(data) > MAX_FILE:
            raise UsageError(f"submission {submission}: {found[0]} is over {MAX_FILE} bytes; "
                             f"a VMM file that large is not a VMM file.")
        (dest / wanted).write_bytes(data)
        taken.append(found[0])
    return dest, taken, missing
