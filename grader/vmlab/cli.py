"""The `vmlab` command: each verb is a module of this package named after it.

Students' verbs are always there. Course staff's verbs live in modules the handout leaves out
(handout.STAFF_ONLY), so each is registered only when its module is present; `grade` shares
grade.py with `check` and comes with the staff-only `autograder` module.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from .asm import asm
from .check import check
from .disasm import disasm
from .replay import replay
from .run import run
from .submit import submit

# verb -> (the module that must be present, the module and the attribute that implement it)
STAFF_VERBS = {
    "grade": ("autograder", "grade", "grade"),
    "mutants": ("mutants", "mutants", "mutants"),
    "batch": ("batch", "batch", "batch"),
}
STAFF_GROUPS = {  # verb -> (module, its typer app)
    "build": ("build", "app"),
}

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="vmlab: a RISC-V machine, a VMM to build, and its grader.")
app.command()(run)
app.command()(asm)
app.command()(disasm)
app.command()(check)
app.command()(replay)
app.command()(submit)


def _present(module: str) -> bool:
    """Whether this copy of the package has the module (looked up beside this file: an
    editable install's finder would find the repository's copy of a module the handout lacks)."""
    here = Path(__file__).resolve().parent
    return (here / f"{module}.py").is_file() or (here / module / "__init__.py").is_file()


for _verb, (_needs, _module, _attr) in STAFF_VERBS.items():
    if _present(_needs):
        app.command(_verb)(getattr(importlib.import_module(f".{_module}", __package__), _attr))
for _verb, (_module, _attr) in STAFF_GROUPS.items():
    if _present(_module):
        app.add_typer(getattr(importlib.import_module(f".{_module}", __package__), _attr),
                      name=_verb)


def main() -> None:
    app()
