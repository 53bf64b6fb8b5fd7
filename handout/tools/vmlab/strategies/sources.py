"""Where a generator's choices come from: hypothesis, one draw per choice, or records.

Hypothesis spends some fifteen microseconds on every draw, whatever it draws. A generator that
makes a hundred small choices per example (a page table: indices, kinds, flags, targets) spends
more time drawing than the test spends running. A `RecordSource` makes the same choices from a
few large integers instead, one per record (a root entry and its leaves, a query), each drawn
uniformly in one hypothesis draw and read a field at a time, lowest bits first.

Shrinking still works on records: hypothesis tries zero for each record, masks off its high
bits and subtracts from it, and a field whose bits are zero reads as its simplest value (the
low end of a range, the first option), so a generator that lists its simplest option first and
reads a record's count before its items shrinks to short, plain examples.

A generator written against `Source` runs with either: `HypothesisSource(draw)` for the tests,
whose examples hypothesis shapes choice by choice, and `RecordSource(draw)` on the grader's
hot paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Protocol, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")

# Past the largest float, hypothesis draws an integer range uniformly (its usual distribution,
# which favours small values, is defined over the floats): a record is this many random bits.
RECORD_BITS = 1100
_RECORDS = st.integers(0, (1 << RECORD_BITS) - 1)
_SLACK = 8  # extra bits read for a range that is not a power of two, so that `%` is near fair


class Source(Protocol):
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]; lo is the simplest."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of `options` (a tuple); the first is the simplest."""
        ...

    def record(self) -> None:
        """The choices that follow describe one new thing (a table entry, a query)."""
        ...


@cache
def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


@cache
def _sampled(options: tuple) -> st.SearchStrategy:
    return st.sampled_from(options)


class HypothesisSource:
    """Each choice is a hypothesis draw (strategies built once per range or tuple)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(_integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(_sampled(tuple(options)))

    def record(self) -> None:
        pass


class RecordSource:
    """Choices read from records: one uniform `RECORD_BITS`-bit draw per `record()`, read a
    field at a time from the lowest bits (a record that runs out continues in a new one)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.bits = 0
        self.left = 0

    def record(self) -> None:
        self.bits = self.draw(_RECORDS)
        self.left = RECORD_BITS

    def _take(self, n: int) -> int:
        if n > self.left:
            if n > RECORD_BITS:
                raise ValueError(f"a field of {n} bits does not fit in a record")
            self.record()
        value = self.bits & ((1 << n) - 1)
        self.bits >>= n
        self.left -= n
        return value

    def integer(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        if span & (span - 1) == 0:  # a power of two: exactly its bits, every value as likely
            return lo + self._take(span.bit_length() - 1)
        return lo + self._take(span.bit_length() + _SLACK) % span

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]
