"""`vmlab submit`: pack your editable files into submission.zip, for Gradescope (the student's
command, run in the handout folder; `make submit` does the same).

Before it packs anything it checks that each file the autograder takes is here, parses and
imports (in a separate Python process: importing runs your code). The zip holds exactly those
files, at the paths the autograder expects; nothing else of the folder goes into it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import typer

from . import labroot
from .errors import UsageError, fail
from .submission import syntax_errors

IMPORT_TIMEOUT = 60  # seconds for importing every file: a module that loops at import fails
STUB = re.compile(r'NotImplementedError\(\s*"([A-Za-z0-9_.-]+): \S+ is yours to write')
# Runs in a fresh interpreter in the lab folder: imports each module, reports each failure.
IMPORTER = """
import importlib, json, sys, traceback
sys.path.insert(0, '.')
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException as e:
        failed[name] = ''.join(traceback.format_exception_only(type(e), e)).strip()
print('\\n' + json.dumps(failed))
"""


def _module(rel: str) -> str:
    return rel.removesuffix(".py").replace("/", ".")


def import_errors(lab: Path, files: list[str]) -> dict[str, str]:
    """For each of `files` that does not import, why (its exception's last line)."""
    try:
        done = subprocess.run([sys.executable, "-I", "-c", IMPORTER, *map(_module, files)],
                              cwd=lab, capture_output=True, text=True, timeout=IMPORT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {files[0]: f"importing the VMM did not finish in {IMPORT_TIMEOUT} s (an endless "
                          "loop at the top level of a module?)"}
    try:
        failed = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {files[0]: f"importing the VMM stopped Python: {tail}"}
    return {rel: failed[_module(rel)] for rel in files if _module(rel) in failed}


def problems(lab: Path, editable: tuple[str, ...]) -> list[str]:
    """Why the files cannot be submitted as they are: one line each, naming the file."""
    missing = [rel for rel in editable if not (lab / rel).is_file()]
    out = [f"{rel}: missing (the autograder needs it; get it back from the handout)"
           for rel in missing]
    present = [rel for rel in editable if rel not in missing]
    broken = syntax_errors(lab, present)
    out += [f"does not parse: {why}" for why in broken.values()]
    importable = [rel for rel in present if rel not in broken]
    if importable:
        out += [f"{rel} does not import: {why}"
                for rel, why in import_errors(lab, importable).items()]
    return out


def stubbed_parts(lab: Path, editable: tuple[str, ...]) -> dict[str, list[str]]:
    """The student parts still stubbed as handed out, by file."""
    out = {}
    for rel in editable:
        parts = sorted(set(STUB.findall((lab / rel).read_text(errors="replace"))))
        if parts:
            out[rel] = parts
    return out


def pack(lab: Path, editable: tuple[str, ...], out: Path) -> list[tuple[str, int]]:
    """Write `out` with exactly the editable files; their paths and sizes."""
    packed = []
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in editable:
            z.write(lab / rel, rel)
            packed.append((rel, (lab / rel).stat().st_size))
    tmp.replace(out)
    return packed


def submit(
    lab: Path = typer.Option(None, "--lab", help="the handout folder (default: here)"),
    out: Path = typer.Option(Path("submission.zip"), "--out", help="the zip to write"),
) -> None:
    """Pack your editable files into submission.zip, for Gradescope."""
    from .rubric import load as load_rubric
    root = labroot.use(lab.resolve() if lab else None)
    if not (root / "vmm").is_dir():
        raise fail(f"{root} has no vmm/ folder: run `vmlab submit` in your handout folder.")
    try:
        editable = load_rubric().editable
    except UsageError as e:
        raise fail(str(e)) from None
    found = problems(root, editable)
    if found:
        raise fail("nothing was packed; fix these first (the autograder would give 0 to every "
                   "test of a file that does not parse or import):\n    " + "\n    ".join(found))
    target = out if out.is_absolute() else root / out
    packed = pack(root, editable, target)
    print(f"Packed {_shown(target, root)} ({len(packed)} files; each one present, parsed and "
          "imported):")
    for rel, size in packed:
        print(f"    {rel:<24} {size:>7} bytes")
    for rel, parts in stubbed_parts(root, editable).items():
        print(f"Still stubbed in {rel}: {', '.join(parts)} (those tests will score 0).")
    print(f"Upload {_shown(target, root)} to this lab's assignment on Gradescope (drag the zip "
          "onto the upload dialog). The autograder takes exactly these files; everything else "
          "comes from the handout.")


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
