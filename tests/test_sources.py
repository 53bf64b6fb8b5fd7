"""Records (grader/vmlab/strategies/sources.py): the grader's generators read their choices
from a few large integers; every value must be in range, every value reachable, and a record of
zeros must read as the simplest choices (what shrinking relies on)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vmlab.strategies import pagetables as pt
from vmlab.strategies import programs as pr
from vmlab.strategies.sources import RECORD_BITS, RecordSource

RANGES = st.tuples(st.integers(-2**40, 2**40), st.integers(0, 2**40)).map(
    lambda r: (r[0], r[0] + r[1]))


def fixed(*records: int) -> RecordSource:
    """A source whose records are `records`, then zeros."""
    queue = list(records)
    return RecordSource(lambda _strategy: queue.pop(0) if queue else 0)


@settings(max_examples=300)
@given(st.lists(st.integers(0, (1 << RECORD_BITS) - 1), min_size=1, max_size=3),
       st.lists(RANGES, min_size=1, max_size=40))
def test_every_integer_is_in_its_range(records: list[int], ranges: list) -> None:
    src = fixed(*records)
    for lo, hi in ranges:
        assert lo <= src.integer(lo, hi) <= hi


@given(st.lists(RANGES, min_size=1, max_size=40), st.lists(st.tuples(st.integers(), st.text()),
                                                            min_size=1, max_size=5))
def test_a_record_of_zeros_reads_as_the_simplest_choices(ranges: list, options: list) -> None:
    src = fixed(0)
    assert [src.integer(lo, hi) for lo, hi in ranges] == [lo for lo, _ in ranges]
    assert src.choice(tuple(options)) == options[0]


@pytest.mark.parametrize("span", [1, 2, 3, 8, 10, 1000])
def test_every_value_of_a_range_is_reachable(span: int) -> None:
    seen = {fixed(v).integer(5, 5 + span - 1) for v in range(span * 300)}
    assert seen == set(range(5, 5 + span))


def test_a_field_wider_than_a_record_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        fixed(1).integer(0, 1 << (RECORD_BITS + 1))


@settings(max_examples=200)
@given(st.data())
def test_tables_from_records_stay_in_their_pages(data: st.DataObject) -> None:
    """What the grader draws: page tables from records only ever write the root and the given
    table pages, and their leaves are among the writes."""
    root, tables = 0x80C0_0000, [0x80C0_1000, 0x80C0_2000, 0x80C0_3000]
    t = pt.page_tables_from(RecordSource(data.draw), root, tables)
    pages = {root, *tables}
    assert t.writes and all(pa & ~0xFFF in pages and pa % 4 == 0 for pa, _ in t.writes)
    written = {word for _, word in t.writes}
    assert all(leaf.pte in written for leaf in t.leaves)
    for _ in range(5):
        va, access, priv, _sum, _mxr = pt.request_from(RecordSource(data.draw), t)
        assert 0 <= va <= 0xFFFF_FFFF and access in (0, 1, 2) and priv in (0, 1)


@pytest.mark.parametrize("low", range(8))
def test_a_small_record_decides_paging_and_churn_as_a_large_one(low: int) -> None:
    """Hypothesis draws some records small (their high bits zero) and copies a record into
    many examples: whether a program pages and churns is read from a record's lowest bits, so
    that a small record churns as often as any."""
    small = pr.setting_from(fixed(low), None, ("shutdown",))
    large = pr.setting_from(fixed(low | (1 << RECORD_BITS) - 8), None, ("shutdown",))
    assert (small.paging, small.churn is None) == (large.paging, large.churn is None)
    assert sum(pr.setting_from(fixed(v), None, ("shutdown",)).churn is not None
               for v in range(8)) == 3  # of the 4 settings that page
