"""The grader's properties, one module per group, each a named check on one part of the lab.

A `Property` pairs a hypothesis strategy (the examples) with a `check` that sends an example to
the worker, computes what the specification says from the bare reference machine (imported here,
in the grader, from the pristine handout) and raises `Counterexample` when the two differ. The
grader process never imports the student's `vmm`.

    trap_parts.py   trap-dispatch, reflect, emulate, counter-read, sret-wfi, hypercall
    composition.py  translation through shadow tables and the G-stage; shadow-flush
    guests.py       whole guests: equivalence, efficiency, isolation
    ipc_guests.py   whole guests that talk over the VMM's channels
    ipc.py          bounded-buffer, and the IPC state machine
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st


class Counterexample(AssertionError):
    """A property does not hold for one example. `divergence` names the first field where the
    submission and the specification differ; `example` shows the input in Markdown."""

    # while a test runs, the grader collects every counterexample made here: a test whose time
    # runs out while hypothesis shrinks still reports the failure it found
    made: list[Counterexample] | None = None

    def __init__(self, divergence: str, example: str | Callable[[], str] = "",
                 detail: str = "") -> None:
        super().__init__(divergence)
        self.divergence, self.detail = divergence, detail
        self._example = example  # a function when describing costs more than the check
        if Counterexample.made is not None:
            Counterexample.made.append(self)

    @property
    def example(self) -> str:
        if callable(self._example):
            self._example = self._example()
        return self._example


@dataclass(frozen=True)
class Property:
    name: str  # the rubric's id for it
    title: str
    meaning: str  # what it checks, in the lecture's terms
    strategy: Callable[[], st.SearchStrategy]
    check: Callable[[Any, Any], None]  # (example, worker) -> None or Counterexample
    describe: Callable[[Any], str]  # the example as Markdown
    stateful: bool = False
    tags: tuple[str, ...] = field(default=())


REGISTRY: dict[str, Property] = {}


def register(p: Property) -> Property:
    REGISTRY[p.name] = p
    return p


def load() -> dict[str, Property]:
    """Import every property module (they register themselves) and return the registry."""
    from . import composition, guests, ipc, ipc_guests, trap_parts  # noqa: F401
    return REGISTRY


def hexdump_state(state: dict) -> str:
    """A virtual CPU or machine state as a Markdown table of the fields that are not zero."""
    rows = [f"| pc | `{state['pc']:#010x}` |", f"| mode | {'S' if state['mode'] else 'U'} |"]
    for i, v in enumerate(state.get("regs", ())):
        if v:
            rows.append(f"| x{i} | `{v:#010x}` |")
    for name, v in state.get("csrs_named", {}).items():
        rows.append(f"| {name} | `{v:#x}` |")
    return "| field | value |\n| --- | --- |\n" + "\n".join(rows)


def first_difference(expected: dict, actual: dict, fields: list[str]) -> str | None:
    """The first of `fields` whose values differ, as 'field: expected X, your VMM Y'."""
    for f in fields:
        e, a = expected.get(f), actual.get(f)
        if e != a:
            return f"`{f}`: expected {fmt(e)}, your VMM gave {fmt(a)}"
    return None


def fmt(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return f"`{v}`"
    if isinstance(v, int):
        return f"`{v:#x}`"
    return f"`{v!r}`"
