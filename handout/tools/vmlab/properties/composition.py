"""Part 2, the composition of page tables: translation equivalence, checked address by address.

The specification is the bare machine's own Sv32 walk of the guest's table (guest-virtual to
guest-physical, or the fault the guest's hardware raises), followed by the VMM's map
(guest-physical to host frame, from the given `GuestMemory`). A shadow entry must equal that
composition and grant exactly the accesses the guest's hardware grants; the hardware's two-stage
walk through the student's G-stage must reach the same host address.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from hypothesis import strategies as st

from ..strategies.pagetables import (
    MEGAPAGE_SIZE,
    PAGE_SIZE,
    megapage_range,
    page_range,
    page_tables_from,
    ranges_outside,
    request_from,
)
from ..strategies.sources import RecordSource
from . import Counterexample, Property, register

# a megapage and an eighth: every page of it may be backed per example (a G-stage that maps
# all of guest RAM at its first fault is correct, and pays for each page), and RAM ends inside
# the second megapage, which the guest's tables may map whole
GUEST_RAM = (4 << 20) + (512 << 10)
RAM_BASE = 0x8000_0000
SV32 = 1 << 31
ROOT = 0x8044_0000
TABLES = [0x8044_1000 + 0x1000 * i for i in range(8)]
ACCESS = ("fetch", "load", "store")
ACCESS_FAULTS = (1, 5, 7)


def guest_walk(writes: list, satp: int) -> Any:
    """The guest's own hardware: a bare machine holding the guest's tables."""
    from machine import Machine
    m = Machine(ram_size=GUEST_RAM)
    for gpa, word in writes:
        if RAM_BASE <= gpa < RAM_BASE + GUEST_RAM:
            m.write_phys(gpa, word.to_bytes(4, "little"))

    def walk(va: int, access: int, mode: int, sum_: bool, mxr: bool) -> tuple[str, int]:
        from machine.mmu import Permissions
        from machine.traps import Trap
        try:
            return "gpa", m.hart.mmu.walk(va, access, satp, Permissions(mode, sum_, mxr))
        except Trap as trap:
            return "fault", trap.cause
    return walk


def in_ram(gpa: int) -> bool:
    return RAM_BASE <= gpa < RAM_BASE + GUEST_RAM


@st.composite
def translation_examples(draw: st.DrawFn) -> dict:
    # from records (sources.py): a hundred choices per example, drawn one by one, cost more
    # than the example's test
    src = RecordSource(draw)
    # the megapage targets include the one RAM ends inside
    megapages = megapage_range(size=GUEST_RAM + MEGAPAGE_SIZE - PAGE_SIZE)
    tables = page_tables_from(src, ROOT, TABLES, targets=page_range(size=GUEST_RAM),
                              mega_targets=megapages, outside=ranges_outside(size=GUEST_RAM))
    queries = []
    for _ in range(draw(QUERIES)):
        src.record()
        queries.append(list(request_from(src, tables)))
    satp = tables.satp(asid=1)
    if draw(PAGING_OFF) == 0:
        satp, queries = bare(satp, queries)
    return {"writes": [list(w) for w in tables.writes], "satp": satp,
            "queries": queries, "memory": GUEST_RAM}


QUERIES = st.integers(1, 10)
PAGING_OFF = st.integers(0, 5)  # one example in six: the guest's satp is Bare


def bare(satp: int, queries: list) -> tuple[int, list]:
    """The guest's paging off (its tables stay in memory, unused): each address is
    guest-physical and every access allowed, so the queries are moved into guest RAM, all but
    one in four (a device, or nothing)."""
    moved = [[RAM_BASE + va % GUEST_RAM if i % 4 else va, *rest]
             for i, (va, *rest) in enumerate(queries)]
    return satp & ~SV32, moved


def _with_spec(a: dict, paging: str) -> tuple[dict, list]:
    walk = guest_walk(a["writes"], a["satp"])
    spec, queries = [], []
    for va, access, mode, sum_, mxr in a["queries"]:
        s = walk(va, access, mode, sum_, mxr)
        spec.append(s)
        queries.append([va, access, mode, sum_, mxr, s[1] if s[0] == "gpa" else None])
    return {**a, "queries": queries, "paging": paging}, spec


def _where(q: list) -> str:
    va, access, mode, sum_, mxr = q[:5]
    return (f"guest-virtual `{va:#010x}`, {ACCESS[access]}, virtual {'S' if mode else 'U'}-mode, "
            f"SUM={int(sum_)}, MXR={int(mxr)}")


def check_shadow(a: dict, worker: Any) -> None:
    request, spec = _with_spec(a, "shadow")
    walk = guest_walk(a["writes"], a["satp"])
    results = worker.call("translate", request)["results"]
    for q, s, r in zip(request["queries"], spec, results, strict=True):
        example = partial(describe_translation, a, q, r)
        fill = r.get("fill")
        want = ["fault", s[1]] if s[0] == "fault" else ["gpa", s[1]]
        if fill != want:
            raise Counterexample(f"at {_where(q)}: `fill` gave {_show(fill)}; the guest's walk "
                                 f"gives {_show(want)}", example)
        if s[0] == "fault":
            continue
        if not in_ram(s[1]):  # a device, or nothing: the caller emulates it or faults
            mapped = next((h for h in r["hardware"] if h is not None), None)
            if mapped is not None:
                raise Counterexample(
                    f"at {_where(q)}: guest-physical `{s[1]:#x}` is not guest RAM, yet after "
                    f"the fill the shadow maps the page to host `{mapped:#010x}`: `fill` must "
                    "write nothing there (an address above 4 GiB keeps its bits 33:32)",
                    example)
            continue
        if r["map"] is None:
            raise Counterexample(f"after the fill at {_where(q)}, guest-physical "
                                 f"`{s[1]:#010x}` has no host frame: the fill must back the "
                                 "page it maps (`guest.mem.host_address` gives it one)", example)
        va, access, mode, sum_, mxr = q[:5]
        for other in (0, 1, 2):
            o = walk(va, other, mode, sum_, mxr)
            expect = r["map"] - s[1] + o[1] if o[0] == "gpa" and o[1] >> 12 == s[1] >> 12 \
                else None
            if r["hardware"][other] != expect:
                grant = "grants" if r["hardware"][other] is not None else "refuses"
                raise Counterexample(
                    f"after the fill at {_where(q)}, the shadow entry {grant} a "
                    f"{ACCESS[other]} that the guest's own hardware "
                    f"{'refuses' if expect is None else 'allows'} (or maps it elsewhere): "
                    f"the hardware gives {_show(r['hardware'][other])}, the composition "
                    f"{_show(expect)}", example)


def check_nested(a: dict, worker: Any) -> None:
    request, spec = _with_spec(a, "nested")
    results = worker.call("translate", request)["results"]
    for q, s, r in zip(request["queries"], spec, results, strict=True):
        walked = r.get("walk")
        if s[0] == "fault":
            ok = walked == ["fault", s[1]] or (
                s[1] in ACCESS_FAULTS and walked and walked[0] == "unmapped"
                and not in_ram(walked[1]))
            want = ["fault", s[1]]
        elif in_ram(s[1]) and r["map"] is None:
            raise Counterexample(f"at {_where(q)}: after the two-stage walk, guest-physical "
                                 f"`{s[1]:#010x}` (RAM) has no host frame: `GStage.map` must "
                                 "back it (`guest.mem.host_address` gives it one)",
                                 describe_translation(a, q, r))
        elif in_ram(s[1]):
            want = ["host", r["map"]]
            ok = walked == want
        else:
            want = ["unmapped", s[1]]
            ok = walked == want
        if not ok:
            raise Counterexample(f"at {_where(q)}: the two-stage walk through your G-stage "
                                 f"gave {_show(walked)}; the composition gives {_show(want)}",
                                 describe_translation(a, q, r))


def _show(r: object) -> str:
    if isinstance(r, list) and len(r) == 2:
        kind, value = r
        if kind == "fault":
            return f"a fault (cause {value})"
        if kind == "unmapped":
            return f"no mapping (GStage.map refused guest-physical `{value:#x}`)"
        if kind == "unsettled":
            return "guest-page faults that never stopped"
        return f"{kind} `{value:#010x}`"
    if isinstance(r, int):
        return f"host `{r:#010x}`"
    return "a fault" if r is None else repr(r)


def describe_translation(a: dict, q: list | None = None, r: dict | None = None) -> str:
    where = f"root table at guest-physical `{ROOT:#x}`" if a["satp"] & SV32 else \
        "Bare: the guest's paging is off, and its tables unused"
    lines = [f"satp = `{a['satp']:#010x}` ({where}); the guest's page-table entries:", "",
             "| guest-physical address | PTE |", "| --- | --- |"]
    lines += [f"| `{gpa:#010x}` | `{word:#010x}` |" for gpa, word in a["writes"] if word]
    if q is not None:
        lines += ["", f"The failing query: {_where(q)}."]
    if q is not None and r is not None:
        try:
            diagram = translation_diagram(a, q, r)
        except Exception as e:  # noqa: BLE001 - a report without its picture beats none
            diagram = [f"(no diagram: {type(e).__name__})"]
        lines += ["", "The three tables for it (section 4 of LAB.md); `^` marks what differs:",
                  "", "```", *diagram, "```"]
    return "\n".join(lines)


PTE_BITS = "VRWXUGAD"


def _pte_bits(pte: int) -> str:
    return "".join(b if pte >> i & 1 else "-" for i, b in enumerate(PTE_BITS))


def _guest_path(a: dict, va: int) -> list[str]:
    """The guest's walk of its own table for `va`, entry by entry (what its hardware reads)."""
    if not a["satp"] & SV32:
        return ["paging off (satp is Bare): gpa = va, every access allowed"]
    table = {gpa: word for gpa, word in a["writes"]}
    at, out = (a["satp"] & 0x3F_FFFF) << 12, []
    for level, vpn in ((1, va >> 22), (0, va >> 12 & 0x3FF)):
        where = at + 4 * vpn
        pte = table.get(where, 0)
        out.append(f"L{level} PTE at gpa {where:#010x} = {pte:#010x} [{_pte_bits(pte)}]")
        if not pte & 1 or pte & 0xE:  # invalid, or a leaf
            break
        at = (pte >> 10) << 12
    return out


def translation_diagram(a: dict, q: list, r: dict) -> list[str]:
    """(1) the guest's walk, (2) the VMM's map, (3) their composition against what the
    student's tables gave, each access a column, in monospace for Gradescope and terminals."""
    va, access, mode, sum_, mxr = q[:5]
    walk = guest_walk(a["writes"], a["satp"])
    rows = [f"(1) guest's walk  va {va:#010x} ->"]
    rows += [f"        {step}" for step in _guest_path(a, va)]
    s = walk(va, access, mode, sum_, mxr)
    rows.append("        = " + (f"gpa {s[1]:#010x}" if s[0] == "gpa" else f"fault {s[1]}"))
    host = r.get("map")
    if s[0] == "gpa":
        rows.append(f"(2) VMM's map     gpa {s[1]:#010x} -> " + (
            f"host {host:#010x}" if host is not None else "no host frame"))
    if "hardware" in r and host is not None and s[0] == "gpa":
        want, got = [], []
        for other in (0, 1, 2):
            o = walk(va, other, mode, sum_, mxr)
            want.append(host - s[1] + o[1] if o[0] == "gpa" and o[1] >> 12 == s[1] >> 12
                        else None)
            got.append(r["hardware"][other])
        cells = [f"{name}: {_cell(x)}" for name, x in zip(ACCESS, want, strict=True)]
        theirs = [f"{name}: {_cell(x)}" for name, x in zip(ACCESS, got, strict=True)]
        rows += ["(3) composition   " + "  ".join(f"{c:<22}" for c in cells).rstrip(),
                 "    your shadow   " + "  ".join(f"{c:<22}" for c in theirs).rstrip(),
                 "                  " + "  ".join(("^" * len(t) if w != g else " " * len(t))
                                                  + " " * (22 - len(t)) for t, w, g in
                                                  zip(theirs, want, got, strict=True)).rstrip()]
    elif "walk" in r:
        want = ["fault", s[1]] if s[0] == "fault" else ["host", host] if in_ram(s[1]) \
            else ["unmapped", s[1]]
        theirs = _show(r["walk"]).replace("`", "")
        composed = "needs a host frame, and (2) gives none" if want == ["host", None] else \
            _show(want).replace("`", "")
        rows += [f"(3) composition   {composed}", f"    your G-stage  {theirs}"]
        if r["walk"] != want:
            rows.append(" " * 18 + "^" * len(theirs))
    if "fill" in r and r["fill"] != [s[0], s[1]]:
        rows.append(f"    your fill gives {_show(r['fill'])}   <- differs from (1)")
    return rows


def _cell(x: int | None) -> str:
    return "refused" if x is None else f"host {x:#010x}"


register(Property(
    "translation-shadow", "Shadow tables: the composition of the guest's table and the VMM's map",
    "Page-table composition: the hardware walks one table, so the VMM composes the guest's "
    "table (guest-virtual to guest-physical) with its own map (guest-physical to host) into a "
    "shadow table. Every entry must equal the composition and grant no more than the guest's "
    "hardware would; a fault of the guest's walk is the guest's.",
    translation_examples, check_shadow, describe_translation))

register(Property(
    "translation-nested", "Nested paging: the hardware composes the guest's table with yours",
    "Nested paging: modern hardware knows both tables and walks them itself; the VMM keeps only "
    "its map, the G-stage, and must back each guest-physical page of RAM (and nothing else) "
    "with the right host frame.",
    translation_examples, check_nested, describe_translation))


# ----- shadow-flush ----------------------------------------------------------------------------

TRANSLATION_EXAMPLES = translation_examples()


@st.composite
def flush_examples(draw: st.DrawFn) -> dict:
    a = draw(TRANSLATION_EXAMPLES)
    walk = guest_walk(a["writes"], a["satp"])
    fills = []
    for va, access, mode, sum_, mxr in a["queries"]:
        s = walk(va, access, mode, sum_, mxr)
        if s[0] == "gpa" and in_ram(s[1]):
            fills.append([va, access, mode, s[1], sum_, mxr])
    return {**a, "fills": fills}


def check_flush(a: dict, worker: Any) -> None:
    answer = worker.call("flush", a)
    still = answer["still_mapped"]
    if answer["cached"] < len(a["fills"]):
        # a flush is judged on entries the hardware used; none here: a flush that does
        # nothing would pass
        raise Counterexample(
            f"before `flush`, the hardware could translate only {answer['cached']} of the "
            f"{len(a['fills'])} shadow entries written (with your `fill`, else the given "
            "`_write_leaf`), so the flush cannot be judged: are `satp` and `_write_leaf` still "
            "as given?", describe_flush(a))
    if still:
        va, access, mode, hpa = still[0]
        raise Counterexample(
            f"after `flush`, the hardware still translates guest-virtual `{va:#010x}` "
            f"({ACCESS[access]}, the {'S' if mode else 'U'} view) to host `{hpa:#010x}`: a "
            "stale translation (an entry left in a table, or one the TLB still caches)",
            describe_flush(a))
    for va, access, mode, before, after in answer.get("lost", []):
        now = ("the hardware cannot translate it at all" if after is None else
               f"the hardware translates it to host `{after:#010x}`")
        raise Counterexample(
            f"after `flush`, guest-virtual `{va:#010x}` ({ACCESS[access]}, the "
            f"{'S' if mode else 'U'} view) was filled again, and {now}; before the flush it "
            f"translated to `{before:#010x}`. A flush must leave the tables fit for the next "
            "fills: a second-level table kept that the root no longer points to, or one handed "
            "out twice, breaks them", describe_flush(a))


def describe_flush(a: dict) -> str:
    shown = ", ".join(f"`{va:#010x}` ({'S' if mode else 'U'} view)" for va, _, mode, *_ in
                      a["fills"]) or "none"
    return f"Shadow entries written for: {shown}; then `flush()`."


register(Property(
    "shadow-flush", "Shadow flush: a flush forgets every shadow translation, TLB included",
    "Page-table composition: the shadow table is the guest's TLB; when the guest changes satp "
    "or fences, every composed entry may be stale and must go, from both views and from the "
    "hardware's TLB.",
    flush_examples, check_flush, describe_flush))
