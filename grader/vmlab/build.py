"""`vmlab build handout [--check]`: make handout/ from solution/; `vmlab build autograder`:
the zip for Gradescope (autograder.py). Course staff only.

Every file of solution/ is copied to handout/, except caches and what solution/.handoutignore
lists; in the Python files each student part (between `# BEGIN STUDENT PART name` and
`# END STUDENT PART`) keeps its functions' signatures and docstrings, and their bodies become a
`raise NotImplementedError` naming the part. See handout.py for the rules.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from . import handout as generator
from .errors import fail
from .labroot import REPO

SOLUTION = REPO / "solution"
HANDOUT = REPO / "handout"
MAX_LISTED = 30  # differing files that --check names before it just counts them
STUBBED = re.compile(rb"^[ \t]*# STUDENT PART (\S+): yours to write", re.M)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build what the course hands out from the solution.")


@app.callback()
def build() -> None:
    """Build what the course hands out from the solution."""


@app.command("handout")
def handout(
    check: bool = typer.Option(False, "--check",
                               help="write nothing; fail if handout/ is out of date"),
) -> None:
    """Make handout/ from solution/: the student parts stubbed, everything else copied."""
    try:
        files = generator.generate(SOLUTION)
    except (generator.BuildError, OSError) as err:
        raise fail(f"cannot build the handout: {err}") from None
    shown = _shown(HANDOUT)
    if check:
        diffs = generator.differences(files, HANDOUT)
        if diffs:
            state = (f"is out of date with solution/ in {len(diffs)} file(s)"
                     if HANDOUT.is_dir() else "does not exist")
            sys.stderr.write(f"vmlab: error: {shown} {state}; run `make handout` (or `vmlab "
                             f"build handout`) and commit the result:\n")
            sys.stderr.writelines(f"    {line}\n" for line in diffs[:MAX_LISTED])
            if len(diffs) > MAX_LISTED:
                sys.stderr.write(f"    ... and {len(diffs) - MAX_LISTED} more\n")
            raise typer.Exit(1)
        sys.stderr.write(f"vmlab: {shown} is up to date ({len(files)} files)\n")
        return
    try:
        changed = generator.write(files, HANDOUT)
    except OSError as err:
        raise fail(f"cannot write {shown}: {err}") from None
    parts = sorted({m.decode() for rel, data in files.items() if rel.endswith(".py")
                    for m in STUBBED.findall(data)})
    sys.stderr.write(f"vmlab: wrote {shown}: {len(files)} files, {len(changed)} changed, "
                     f"{len(parts)} student parts stubbed ({', '.join(parts)})\n")


def _shown(path: Path) -> str:
    """How messages name a folder: relative to the repository, with a trailing slash."""
    try:
        return f"{path.relative_to(REPO)}/"
    except ValueError:
        return f"{path}/"


@app.command("autograder")
def autograder(
    secret: str = typer.Option(None, "--secret", help="the course offering's secret, from which "
                               "the hidden tests' seeds are derived (default: $VMLAB_SECRET)",
                               show_default=False),
    out: Path = typer.Option(REPO / "build" / "vmlab-autograder.zip", "--out",
                             help="the zip to write"),
) -> None:
    """Make the zip Gradescope takes: setup.sh, run_autograder, the grader with every test, and
    the pristine handout; never the solution."""
    from . import autograder as zipper
    from . import offering
    from .errors import UsageError
    try:
        files = zipper.build(SOLUTION, out, offering.secret_from(secret))
    except (UsageError, generator.BuildError, OSError) as err:
        raise fail(f"cannot build the autograder: {err}") from None
    sys.stderr.write(f"vmlab: wrote {_shown_file(out)}: {len(files)} files (setup.sh, "
                     f"run_autograder, grader/, handout/); the hidden tests' seeds come from the "
                     f"secret. Upload it as the assignment's autograder on Gradescope.\n")


def _shown_file(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
