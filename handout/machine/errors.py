"""Errors that the tools report to a person: one paragraph naming what was wrong and where."""

from __future__ import annotations


class VmlabError(Exception):
    """Bad input to a tool. Its message is shown as-is, never with a traceback."""


class AsmError(VmlabError):
    """Assembly that cannot be assembled. `problems` lists (file, line, reason)."""

    def __init__(self, problems: list[tuple[str, int, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{f}:{n}: {why}" for f, n, why in problems))


class LoadError(VmlabError):
    """A program file that this machine cannot load (wrong format, architecture or addresses)."""
