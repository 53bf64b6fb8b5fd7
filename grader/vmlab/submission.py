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
import functools
import io
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
MAX_ZIP = 16 << 20  # bytes: a zip inside a submission, read into memory
PRISTINE = Path("tools") / "pristine"  # in a handout: the editable files as handed out
# what reading a zip member may raise besides BadZipFile: damaged data, an encrypted member, a
# compression this Python lacks
UNREADABLE = (OSError, EOFError, RuntimeError, NotImplementedError, zlib.error)


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
    # tools' folders (the grader's own caches among them: hypothesis's, vmlab's), not the student's
    return any(p in (".venv", "__pycache__", "__MACOSX", ".git", ".hypothesis", ".vmlab")
               for p in parts) or \
        parts[-1].startswith("._")


Opener = Callable[[], zipfile.ZipFile]


def _from_zip(opener: Opener, prefix: str, depth: int) -> dict[str, Callable[[], bytes]]:
    """The .py files of a zip, and those of the zips inside it (`depth` levels down), each
    with a way to read it. Links, and zips over the size limit, are passed over; a .py file
    over it is listed, as in a folder, so that `assemble` says it is too large if it takes it
    (passed over, it would be graded as the handout's stub, with no word of why)."""
    out: dict[str, Callable[[], bytes]] = {}
    with opener() as z:
        infos = z.infolist()
    for info in infos:
        name = info.filename
        if info.is_dir() or _skipped(name) or stat.S_ISLNK(info.external_attr >> 16):
            continue
        if name.endswith(".py"):
            out[prefix + name] = functools.partial(_read_member, opener, name, MAX_FILE)
        elif name.endswith(".zip") and depth > 0 and info.file_size <= MAX_ZIP:
            inner = functools.partial(_inner_zip, opener, name)
            try:
                out.update(_from_zip(inner, f"{prefix}{name}/", depth - 1))
            except (zipfile.BadZipFile, *UNREADABLE):
                pass  # not a zip after all, or a damaged one: no files of ours in it
    return out


def _read_member(opener: Opener, name: str, limit: int) -> bytes:
    """A member of a zip, read no further than `limit` + 1 bytes whatever its header claims
    (a zip bomb's header lies about its size)."""
    with opener() as z, z.open(name) as f:
        return f.read(limit + 1)


def _inner_zip(opener: Opener, name: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(_read_member(opener, name, MAX_ZIP)))


def _read_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_FILE + 1)


def _listing(submission: Path) -> dict[str, Callable[[], bytes]]:
    """The submission's Python files, each with a way to read it: only the few files taken are
    ever read, so a zip of many large files costs nothing. Symbolic links are passed over (one
    could point at anything on the grading machine)."""
    if submission.is_dir():
        out: dict[str, Callable[[], bytes]] = {}
        for folder, dirs, names in os.walk(submission):  # links to folders are not entered
            dirs[:] = sorted(d for d in dirs if not _skipped(d))
            for name in sorted(names):
                p = Path(folder) / name
                rel = p.relative_to(submission).as_posix()
                if p.is_symlink() or not p.is_file() or _skipped(rel):
                    continue
                if p.suffix == ".py":
                    out[rel] = functools.partial(_read_file, p)
                elif p.suffix == ".zip" and p.stat().st_size <= MAX_ZIP and zipfile.is_zipfile(p):
                    try:
                        out.update(_from_zip(functools.partial(zipfile.ZipFile, p), rel + "/",
                                             depth=1))
                    except (zipfile.BadZipFile, *UNREADABLE):
                        pass
        return out
    if zipfile.is_zipfile(submission):
        try:
            return _from_zip(functools.partial(zipfile.ZipFile, submission), "", depth=1)
        except (zipfile.BadZipFile, *UNREADABLE) as e:
            raise UsageError(f"submission {submission}: the zip cannot be read ({e}); make it "
                             "again and upload it again.") from None
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
    # the grader's alone (copytree gave it the handout's mode): its machine has the engine,
    # which a worker of a test of one handler must not find on the disk (sandbox.Worker)
    dest.chmod(0o700)
    taken, missing = [], []
    for wanted in editable:
        found = _candidates(list(files), wanted)
        if not found:
            (dest / wanted).write_bytes(pristine(handout, wanted))
            missing.append(wanted)
            continue
        try:
            data = files[found[0]]()
        except (zipfile.BadZipFile, *UNREADABLE) as e:  # damaged, encrypted, odd compression
            raise UsageError(f"submission {submission}: {found[0]} cannot be read ({e}); "
                             "make the zip again and upload it again.") from None
        if len(data) > MAX_FILE:
            raise UsageError(f"submission {submission}: {found[0]} is over {MAX_FILE} bytes; "
                             f"a VMM file that large is not a VMM file.")
        (dest / wanted).write_bytes(data)
        taken.append(found[0])
    return dest, taken, missing


def ignored(submission: Path, taken: list[str]) -> list[str]:
    """The files of `submission` that grading did not take (a zip's files inside a zip are
    not listed one by one)."""
    submission = Path(submission)
    if submission.is_dir():
        names = []
        for folder, dirs, files in os.walk(submission):
            dirs[:] = sorted(d for d in dirs if not _skipped(d))
            names += [(Path(folder) / f).relative_to(submission).as_posix() for f in files]
    elif zipfile.is_zipfile(submission):
        try:
            with zipfile.ZipFile(submission) as z:
                names = [i.filename for i in z.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, *UNREADABLE):
            names = []
    else:
        names = []
    inside = {t.split(".zip/", 1)[0] + ".zip" for t in taken if ".zip/" in t}  # zips we read
    return sorted(n for n in names if n not in taken and n not in inside and not _skipped(n))


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
