"""How the command line reports bad input: one paragraph on standard error, never a traceback."""

from __future__ import annotations

import sys

import typer

USAGE_ERROR = 2  # click's exit status for bad usage; bad input files get the same


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the Exit to raise."""
    sys.stderr.write(f"vmlab: error: {message}\n")
    return typer.Exit(USAGE_ERROR)


class UsageError(Exception):
    """Bad input (a rubric, a submission, a replay token): one paragraph naming what was wrong
    and where. The command line prints it with `fail`."""
