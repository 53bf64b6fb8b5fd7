"""The `vmlab` command: each verb is a module of this package named after it."""

from __future__ import annotations

import typer

from .asm import asm
from .build import app as build_app
from .check import check
from .disasm import disasm
from .grade import grade
from .replay import replay
from .run import run

try:  # course staff's command: the students' copy of the tool (handout/tools) leaves it out
    from .batch import batch
except ModuleNotFoundError as e:
    if e.name not in ("vmlab.batch", "yaml"):
        raise
    batch = None

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="vmlab: a RISC-V machine, a VMM to build, and its grader.")
app.command()(run)
app.command()(asm)
app.command()(disasm)
app.command()(grade)
if batch is not None:
    app.command()(batch)
app.command()(check)
app.command()(replay)
app.add_typer(build_app, name="build")


def main() -> None:
    app()
