"""Single-stage Sv32 translation, trap entry and sret: the machine against the spec model.

The model (spec_model.py) is written from the privileged spec, the tables come from the
grader's strategies (vmlab.strategies.pagetables); the machine is asked through `translate`,
through the hart's own load/store/fetch, and by running real instructions.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import spec_model as spec
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import Machine, Trap
from machine import csr as C
from vmlab.strategies import pagetables as pt

RAM_SIZE = 16 << 20
ROOT = 0x80C0_0000
TABLE_PAGES = [ROOT + (k + 1) * 0x1000 for k in range(8)]
CODE_PA = 0x80FF_F000  # last page of RAM: the instructions the tests run
CODE_MEGA_PPN1 = CODE_PA >> 22
STVEC = 0x80FF_F800  # never fetched: each test steps once past a trap
TOKEN = 0x5A5A_C3C3


def machine_with(writes: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> Machine:
    m = Machine(ram_size=RAM_SIZE)
    for pa, data in pt.write_bytes(writes):
        m.write_phys(pa, data)
    return m


def model_memory(m: Machine, writes: tuple[tuple[int, int], ...] | list[tuple[int, int]],
                 ) -> spec.Memory:
    """The model's copy of the machine's RAM: what the board puts there at reset (the device
    tree), then `writes` in order."""
    mem = spec.Memory(size=RAM_SIZE)
    size = int.from_bytes(m.read_phys(m.dtb_address + 4, 4), "big")  # the FDT's totalsize
    mem.load(m.dtb_address, m.read_phys(m.dtb_address, size))
    for pa, word in writes:
        mem.write_word(pa, word)
    return mem


def setup(writes: tuple[tuple[int, int], ...] | list[tuple[int, int]],
          ) -> tuple[Machine, spec.Memory]:
    m = machine_with(writes)
    return m, model_memory(m, writes)


def sstatus_bits(sum_: bool, mxr: bool) -> int:
    return (spec.SSTATUS_SUM if sum_ else 0) | (spec.SSTATUS_MXR if mxr else 0)


def enter(m: Machine, ctx: spec.Context, extra_sstatus: int = 0) -> None:
    """Put the machine in the single-stage context `ctx`."""
    m.set_csr(C.SATP, ctx.satp)
    m.set_csr(C.SSTATUS, sstatus_bits(ctx.sum, ctx.mxr) | extra_sstatus)
    m.set_mode(ctx.priv)


def same(got: int | Trap, want: spec.Translation | spec.Fault, what: str) -> None:
    """The machine's answer (a physical address or a Trap) is the spec's."""
    if isinstance(want, spec.Fault):
        assert isinstance(got, Trap), f"{what}: machine gives pa {got:#x}, spec says {want}"
        assert (got.cause, got.tval, got.gpa >> 2) == (want.cause, want.tval, want.gpa >> 2), \
            f"{what}: machine {got} (htval {got.gpa >> 2:#x}), spec {want}"
    else:
        assert not isinstance(got, Trap), f"{what}: machine traps ({got}), spec gives " \
                                          f"pa {want.pa:#x}"
        assert got == want.pa, f"{what}: machine pa {got:#x}, spec pa {want.pa:#x}"


def check_translate(m: Machine, tlb: spec.TLB, va: int, access: int, ctx: spec.Context,
                    what: str) -> int | Trap:
    """One translation on both the machine and the model's TLB: the same decision to walk or
    to use a kept entry, the same result (returned), and a walk as many PTE reads long."""
    want = tlb.access(va, access, ctx)
    walks = m.hart.mmu.walks
    got = m.translate(va, access)
    walked = m.hart.mmu.walks != walks
    assert walked == want.walked, f"{what}: machine {'walked' if walked else 'hit'}, " \
                                  f"model {'walks' if want.walked else 'hits'}"
    if want.walked:
        assert want.outcome is not None
        same(got, want.outcome, what)
        assert m.hart.mmu.last_refs == want.outcome.refs, what
    else:
        assert not isinstance(got, Trap) and got in want.candidates, \
            f"{what}: machine {got}, kept {[hex(c) for c in want.candidates]}"
    return got


def describe(va: int, access: int, ctx: spec.Context) -> str:
    return (f"va={va:#010x} {('fetch', 'load', 'store')[access]} priv={'US'[ctx.priv]} "
            f"SUM={int(ctx.sum)} MXR={int(ctx.mxr)} satp={ctx.satp:#010x}")

def check_access(m: Machine, mem: spec.Memory, va: int, access: int,
                 want: spec.Translation | spec.Fault, what: str) -> None:
    """Make a real 4-byte access on the hart and check it against the spec's answer: the same
    trap, or the word at the spec's physical address (a store is undone afterwards)."""
    try:
        if access == spec.LOAD:
            value = m.hart.load(va, 4)
        elif access == spec.STORE:
            m.hart.store(va, 4, TOKEN)
        else:
            value = m.hart.fetch(va)
    except Trap as trap:
        same(trap, want, what)
        return
    assert isinstance(want, spec.Translation), f"{what}: no trap, spec says {want}"
    if access == spec.STORE:
        assert m.read_phys(want.pa, 4) == TOKEN.to_bytes(4, "little"), what
        m.write_phys(want.pa, (mem.read_word(want.pa) or 0).to_bytes(4, "little"))
    else:
        assert value == mem.read_word(want.pa), what



# ----- generated tables --------------------------------------------------------------------------

Query = tuple[int, int, int, bool, bool]


@st.composite
def single_stage(draw: st.DrawFn, align: int = 1, max_queries: int = 8,
                 ) -> tuple[pt.PageTables, int, list[Query]]:
    tables = draw(pt.page_tables(ROOT, TABLE_PAGES, max_root_entries=4, max_leaves=4))
    asid = draw(st.integers(0, 0x1FF))
    queries = draw(st.lists(pt.requests(tables, align), min_size=1, max_size=max_queries))
    return tables, asid, queries


@settings(max_examples=400)
@given(single_stage())
def test_translate_matches_spec(case: tuple[pt.PageTables, int, list[Query]]) -> None:
    """Every translation (through the TLB, as an access does it) is the spec's walk: the same
    physical address or the same trap and stval, a walk as many PTE reads long; and while the
    tables stay as they are, the TLB changes nothing: each answer is also a fresh walk's."""
    tables, asid, queries = case
    m, mem = setup(tables.writes)
    tlb = spec.TLB(mem)
    for va, access, priv, sum_, mxr in queries:
        ctx = spec.Context(tables.satp(asid), priv, sum_, mxr)
        enter(m, ctx)
        what = describe(va, access, ctx)
        got = check_translate(m, tlb, va, access, ctx, what)
        same(got, spec.translate(mem, va, access, ctx), what)


@settings(max_examples=300)
@given(single_stage(max_queries=6), st.data())
def test_hart_accesses_match_spec(case: tuple[pt.PageTables, int, list[Query]],
                                  data: st.DataObject) -> None:
    """The hart's own word loads, stores and fetches (alignment, translation and the PMA check
    on the physical address) trap or touch memory as the spec says."""
    tables, asid, queries = case
    m, mem = setup(tables.writes)
    tlb = spec.TLB(mem)
    for va, access, priv, sum_, mxr in queries:
        va = va & ~3 if data.draw(st.booleans(), "aligned") else va
        ctx = spec.Context(tables.satp(asid), priv, sum_, mxr)
        enter(m, ctx)
        want = tlb.access_memory(va, 4, access, ctx)
        what = describe(va, access, ctx)
        check_access(m, mem, va, access, want, what)


@st.composite
def instruction_case(draw: st.DrawFn) -> tuple[pt.PageTables, int, int, Query, int]:
    tables, asid, queries = draw(single_stage(align=4, max_queries=1))
    used = {(pa - ROOT) >> 2 for pa, _ in tables.writes if ROOT <= pa < ROOT + 4096}
    code_index = draw(st.integers(0, 1023).filter(lambda i: i not in used))
    sstatus = draw(st.sampled_from((0, spec.SSTATUS_SIE, spec.SSTATUS_SPIE | spec.SSTATUS_SPP,
                                    spec.SSTATUS_SIE | spec.SSTATUS_SPIE)))
    return tables, asid, code_index, queries[0], sstatus


@settings(max_examples=300)
@given(instruction_case())
def test_instructions_trap_like_spec(case: tuple[pt.PageTables, int, int, Query, int]) -> None:
    """`lw`, `sw`, and a jump to an address, run on the hart from a code megapage: a faulting
    access enters S-mode with scause, stval, sepc and sstatus as the spec says; a good one
    loads, stores or fetches the word the spec's translation names."""
    tables, asid, code_index, (va, access, priv, sum_, mxr), sstatus = case
    code_va = code_index << 22 | (CODE_PA & 0x3F_FFFF)
    code_pte = pt.make_pte(CODE_MEGA_PPN1 << 10, spec.V | spec.R | spec.X | spec.A | spec.D
                           | (spec.U if priv == spec.U_MODE else 0))
    writes = [*tables.writes, (ROOT + 4 * code_index, code_pte)]
    insn = {spec.LOAD: spec.lw(10, 11), spec.STORE: spec.sw(12, 11), spec.FETCH: spec.jalr(0, 11)}
    writes.append((CODE_PA, insn[access]))
    m, mem = setup(writes)
    ctx = spec.Context(tables.satp(asid), priv, sum_, mxr)
    enter(m, ctx, extra_sstatus=sstatus)
    m.set_csr(C.STVEC, STVEC)
    m.pc = code_va
    m.set_reg(10, 0x1111_1111)
    m.set_reg(11, va)
    m.set_reg(12, TOKEN)
    what = describe(va, access, ctx)
    assert m.step() is None, what
    if access == spec.FETCH:  # the jump retired: now fetch at its target
        assert m.pc == va, what
        want = spec.access_memory(mem, va, 4, spec.FETCH, ctx)
        if isinstance(want, spec.Translation):
            assert m.hart.fetch(va) == mem.read_word(want.pa), what
            return
        assert m.step() is None, what
        faulting_pc = va
    else:
        want = spec.access_memory(mem, va, 4, access, ctx)
        faulting_pc = code_va
        if isinstance(want, spec.Translation):
            assert m.pc == code_va + 4, what
            if access == spec.LOAD:
                assert m.get_reg(10) == mem.read_word(want.pa), what
            else:
                assert m.read_phys(want.pa, 4) == TOKEN.to_bytes(4, "little"), what
            return
    before = spec.TrapState(priv, 0, faulting_pc, sstatus_bits(sum_, mxr) | sstatus, 0,
                            stvec=STVEC)
    after = spec.take_trap(before, want.cause, want.tval, want.gpa)
    assert_trap_state(m, after, what)
    assert m.get_reg(10) == 0x1111_1111, what


def assert_trap_state(m: Machine, want: spec.TrapState, what: str = "") -> None:
    got = spec.TrapState(m.mode, m.hart.v, m.pc, m.csr(C.SSTATUS), m.csr(C.HSTATUS),
                         m.csr(C.SEPC), m.csr(C.SCAUSE), m.csr(C.STVAL), m.csr(C.HTVAL),
                         m.csr(C.STVEC))
    assert got == want, f"{what}\n machine: {got}\n spec:    {want}"


# ----- the spec's rules, one by one --------------------------------------------------------------

L2 = TABLE_PAGES[0]
VA = 0x0040_1234  # root index 1, second-level index 1
DATA_PPN = 0x80123
GOOD = spec.V | spec.R | spec.W | spec.X | spec.A | spec.D
PTR = pt.make_pte(L2 >> 12, spec.V)


def four_k(leaf_flags: int, pointer: int = PTR, ppn: int = DATA_PPN) -> list[tuple[int, int]]:
    return [(ROOT + 4, pointer), (L2 + 4, pt.make_pte(ppn, leaf_flags))]


def mega(flags: int, ppn: int) -> list[tuple[int, int]]:
    return [(ROOT + 4, pt.make_pte(ppn, flags))]


F, L, S = spec.FETCH, spec.LOAD, spec.STORE
PA = (DATA_PPN << 12) | 0x234
RULES = [
    # (name, writes, access, priv, SUM, MXR, expected pa or cause)
    ("4 KiB page", four_k(GOOD), L, 1, 0, 0, PA),
    ("store to RW page", four_k(GOOD), S, 1, 0, 0, PA),
    ("fetch from X page", four_k(GOOD), F, 1, 0, 0, PA),
    ("W without R is reserved", four_k(GOOD & ~spec.R), L, 1, 0, 0, 13),
    ("WX without R is reserved", four_k(spec.V | spec.W | spec.X | spec.A | spec.D), F, 1, 0, 0,
     12),
    ("V clear", four_k(GOOD & ~spec.V), S, 1, 0, 0, 15),
    ("A in a pointer is reserved", four_k(GOOD, PTR | spec.A), L, 1, 0, 0, 13),
    ("D in a pointer is reserved", four_k(GOOD, PTR | spec.D), S, 1, 0, 0, 15),
    ("U in a pointer is reserved", four_k(GOOD | spec.U, PTR | spec.U), L, 0, 0, 0, 13),
    ("G and RSW in a pointer are fine", four_k(GOOD, PTR | spec.G | 0x300), L, 1, 0, 0, PA),
    ("RSW in a leaf is ignored", four_k(GOOD | 0x300), S, 1, 0, 0, PA),
    ("a pointer at the last level", four_k(spec.V), L, 1, 0, 0, 13),
    ("aligned megapage", mega(GOOD, 0x80400), L, 1, 0, 0, 0x8040_1234),
    ("misaligned megapage", mega(GOOD, 0x80401), L, 1, 0, 0, 13),
    ("megapage PA above 4 GiB", mega(GOOD, 0x3FFC00), L, 1, 0, 0, 0x3_FFC0_1234),
    ("A clear (Svade)", four_k(GOOD & ~spec.A), L, 1, 0, 0, 13),
    ("D clear: load is fine", four_k(GOOD & ~spec.D), L, 1, 0, 0, PA),
    ("D clear: store faults (Svade)", four_k(GOOD & ~spec.D), S, 1, 0, 0, 15),
    ("no R: load faults", four_k(spec.V | spec.X | spec.A | spec.D), L, 1, 0, 0, 13),
    ("MXR reads an X-only page", four_k(spec.V | spec.X | spec.A), L, 1, 0, 1, PA),
    ("MXR does not make it writable", four_k(spec.V | spec.X | spec.A | spec.D), S, 1, 0, 1, 15),
    ("no X: fetch faults", four_k(GOOD & ~spec.X), F, 1, 0, 0, 12),
    ("U page from S without SUM", four_k(GOOD | spec.U), L, 1, 0, 0, 13),
    ("U page from S with SUM", four_k(GOOD | spec.U), S, 1, 1, 0, PA),
    ("S never executes a U page", four_k(GOOD | spec.U), F, 1, 1, 0, 12),
    ("U-mode on a U page", four_k(GOOD | spec.U), F, 0, 0, 0, PA),
    ("U-mode on an S page", four_k(GOOD), L, 0, 1, 1, 13),
    ("root PTE outside RAM: access fault of the load", [(ROOT + 4, pt.make_pte(0x10, spec.V))],
     L, 1, 0, 0, 5),
    ("root PTE outside RAM: access fault of the store", [(ROOT + 4, pt.make_pte(0x10, spec.V))],
     S, 1, 0, 0, 7),
    ("root PTE outside RAM: access fault of the fetch", [(ROOT + 4, pt.make_pte(0x10, spec.V))],
     F, 1, 0, 0, 1),
    ("unmapped", [], L, 1, 0, 0, 13),
]


@pytest.mark.parametrize("name, writes, access, priv, sum_, mxr, expected", RULES,
                         ids=[r[0] for r in RULES])
def test_spec_rule(name: str, writes: list[tuple[int, int]], access: int, priv: int,
                   sum_: int, mxr: int, expected: int) -> None:
    """Hand-written cases with the answer the spec gives: both the model and the machine."""
    ctx = spec.Context(spec.SATP_MODE | ROOT >> 12, priv, bool(sum_), bool(mxr))
    m, mem = setup(writes)
    model = spec.translate(mem, VA, access, ctx)
    enter(m, ctx)
    got = m.translate(VA, access)
    if expected < 32:
        assert isinstance(model, spec.Fault) and (model.cause, model.tval) == (expected, VA)
        assert isinstance(got, Trap) and (got.cause, got.tval) == (expected, VA)
    else:
        assert isinstance(model, spec.Translation) and model.pa == expected
        assert got == expected


@pytest.mark.parametrize("writes, refs", [
    (four_k(GOOD), 2), (mega(GOOD, 0x80400), 1), ([], 1), (four_k(GOOD & ~spec.A), 2)])
def test_walk_reference_counts(writes: list[tuple[int, int]], refs: int) -> None:
    """A 4 KiB walk reads two PTEs, a megapage or an invalid root entry one; a fault at the
    leaf still read both."""
    m, mem = setup(writes)
    enter(m, spec.Context(spec.SATP_MODE | ROOT >> 12))
    m.translate(VA, spec.LOAD)
    assert m.hart.mmu.last_refs == refs
    assert spec.translate(mem, VA, spec.LOAD,
                          spec.Context(spec.SATP_MODE | ROOT >> 12)).refs == refs


@settings(max_examples=50)
@given(st.integers(0, 0xFFFF_FFFF), pt.access_types(), pt.privileges(), st.booleans())
def test_bare_is_identity(va: int, access: int, priv: int, sum_: bool) -> None:
    """satp.MODE = Bare: "supervisor virtual addresses are equal to supervisor physical
    addresses", whatever the privilege, and no PTE is read."""
    m = Machine(ram_size=RAM_SIZE)
    enter(m, spec.Context(0, priv, sum_))
    assert m.translate(va, access) == va
    assert m.hart.mmu.walks == 0


# ----- trap entry and sret -----------------------------------------------------------------------

CODE_BARE = 0x8010_0000  # with satp Bare, code runs at its physical address
TRAPS_FROM = {
    # instruction, what x11 holds, (cause, stval) as a function of pc and x11
    "ecall from U": (spec.ECALL, 0, lambda pc, a: (spec.ECALL_U, 0)),
    "ebreak": (spec.EBREAK, 0, lambda pc, a: (spec.BREAKPOINT, pc)),
    "illegal (all zeros)": (0, 0, lambda pc, a: (spec.ILLEGAL_INSN, 0)),
    "illegal (reserved opcode)": (0xFFFF_FFFF, 0, lambda pc, a: (spec.ILLEGAL_INSN, 0xFFFF_FFFF)),
    "misaligned load": (spec.lw(10, 11), 0x8000_0002, lambda pc, a: (spec.LOAD_MISALIGNED, a)),
    "misaligned store": (spec.sw(10, 11), 0x8000_0001, lambda pc, a: (spec.STORE_MISALIGNED, a)),
    "load access fault": (spec.lw(10, 11), 0x0000_1000, lambda pc, a: (spec.LOAD_ACCESS, a)),
    "store access fault": (spec.sw(10, 11), 0x4000_0000, lambda pc, a: (spec.STORE_ACCESS, a)),
    "jump to a misaligned address": (spec.jalr(0, 11), 0x8000_0002,
                                     lambda pc, a: (spec.INSN_MISALIGNED, a)),
}
U_ONLY_ILLEGAL = {
    "sret from U": spec.SRET,
    "sfence.vma from U": spec.sfence_vma(0, 0),
    "wfi from U": spec.WFI,
    "csrrw sstatus from U": spec.csrrw(0, C.SSTATUS, 0),
    "csrrs satp from U": spec.csrrs(5, C.SATP, 0),
}
STATUS_BITS = (spec.SSTATUS_SIE | spec.SSTATUS_SPIE | spec.SSTATUS_SPP | spec.SSTATUS_SUM
               | spec.SSTATUS_MXR)
HSTATUS_BITS = spec.HSTATUS_GVA | spec.HSTATUS_SPV | spec.HSTATUS_SPVP


@settings(max_examples=300)
@given(st.sampled_from(sorted(TRAPS_FROM) + sorted(U_ONLY_ILLEGAL)), pt.privileges(),
       st.integers(0, STATUS_BITS).map(lambda b: b & STATUS_BITS),
       st.integers(0, HSTATUS_BITS).map(lambda b: b & HSTATUS_BITS),
       st.integers(0, 0xFFFF_FFFF), st.integers(0, 255).map(lambda k: CODE_BARE + 4 * k))
def test_trap_entry_from_u_and_s(name: str, priv: int, sstatus: int, hstatus: int,
                                 old_htval: int, pc: int) -> None:
    """Trap entry from U and S (V=0): scause, stval, sepc, SPP, SPIE, SIE as the spec says;
    hstatus.SPV and GVA cleared, SPVP kept, htval zero."""
    if name in U_ONLY_ILLEGAL:
        priv = spec.U_MODE
        insn, a11 = U_ONLY_ILLEGAL[name], 0
        cause, tval = spec.ILLEGAL_INSN, insn
    else:
        insn, a11, effect = TRAPS_FROM[name]
        if name == "ecall from U":
            priv = spec.U_MODE  # from S, ecall is the firmware's
        cause, tval = effect(pc, a11)
    m = Machine(ram_size=RAM_SIZE)
    m.write_phys(pc, insn.to_bytes(4, "little"))
    m.set_csr(C.SSTATUS, sstatus)
    m.set_csr(C.HSTATUS, hstatus)
    m.set_csr(C.HTVAL, old_htval)
    m.set_csr(C.STVEC, STVEC)
    m.set_mode(priv)
    m.pc = pc
    m.set_reg(11, a11)
    before = spec.TrapState(priv, 0, pc, m.csr(C.SSTATUS), m.csr(C.HSTATUS),
                            stvec=STVEC)
    assert m.step() is None  # a jump to a misaligned address traps at the jump
    assert_trap_state(m, spec.take_trap(before, cause, tval), name)


@settings(max_examples=200)
@given(st.integers(0, STATUS_BITS).map(lambda b: b & STATUS_BITS),
       st.integers(0, HSTATUS_BITS).map(lambda b: b & HSTATUS_BITS),
       st.integers(0, 0x3FFF).map(lambda k: CODE_BARE + 4 * k))
def test_sret(sstatus: int, hstatus: int, sepc: int) -> None:
    """sret from S-mode: mode from SPP, SIE from SPIE, SPIE set, SPP cleared, pc from sepc, and
    V from hstatus.SPV when returning to U; hstatus itself unchanged."""
    m = Machine(ram_size=RAM_SIZE)
    m.write_phys(CODE_BARE, spec.SRET.to_bytes(4, "little"))
    m.set_csr(C.SSTATUS, sstatus)
    m.set_csr(C.HSTATUS, hstatus)
    m.set_csr(C.SEPC, sepc)
    m.pc = CODE_BARE
    before = spec.TrapState(spec.S_MODE, 0, CODE_BARE, sstatus, hstatus, sepc=sepc)
    assert m.step() is None
    want = spec.sret(before)
    assert (m.mode, m.hart.v, m.pc, m.csr(C.SSTATUS), m.csr(C.HSTATUS)) == \
        (want.mode, want.v, want.pc, want.sstatus, want.hstatus)


def test_trap_then_sret_round_trip() -> None:
    """A U-mode ecall and an sret at the handler come back to the instruction after it... with
    the handler moving sepc on, as software does; SIE comes back from SPIE."""
    m = Machine(ram_size=RAM_SIZE)
    user, handler = CODE_BARE, CODE_BARE + 0x100
    m.write_phys(user, spec.ECALL.to_bytes(4, "little"))
    m.write_phys(handler, b"".join(w.to_bytes(4, "little") for w in (
        spec.csrrs(5, C.SEPC, 0), spec.addi(5, 5, 4), spec.csrrw(0, C.SEPC, 5), spec.SRET)))
    m.set_csr(C.STVEC, handler)
    m.set_csr(C.SSTATUS, spec.SSTATUS_SIE)
    m.set_mode(spec.U_MODE)
    m.pc = user
    assert m.step() is None
    assert (m.mode, m.pc, m.csr(C.SCAUSE), m.csr(C.SEPC)) == (1, handler, spec.ECALL_U, user)
    assert m.csr(C.SSTATUS) & (spec.SSTATUS_SIE | spec.SSTATUS_SPIE | spec.SSTATUS_SPP) == \
        spec.SSTATUS_SPIE
    for _ in range(4):
        assert m.step() is None
    assert (m.mode, m.hart.v, m.pc) == (0, 0, user + 4)
    assert m.csr(C.SSTATUS) & (spec.SSTATUS_SIE | spec.SSTATUS_SPIE | spec.SSTATUS_SPP) == \
        spec.SSTATUS_SIE | spec.SSTATUS_SPIE


# ----- the instruction encodings the tests use ---------------------------------------------------

ENCODINGS = [
    ("addi x5, x6, -3", spec.addi(5, 6, -3)), ("lw x10, 4(x11)", spec.lw(10, 11, 4)),
    ("sw x12, -8(x11)", spec.sw(12, 11, -8)), ("jalr x1, 0(x5)", spec.jalr(1, 5, 0)),
    ("csrrw x5, sscratch, x6", spec.csrrw(5, C.SSCRATCH, 6)),
    ("csrrs x7, sstatus, x0", spec.csrrs(7, C.SSTATUS, 0)),
    ("sfence.vma x5, x6", spec.sfence_vma(5, 6)), ("sfence.vma x0, x0", spec.sfence_vma(0, 0)),
    ("hfence.vvma x5, x6", spec.hfence_vvma(5, 6)), ("hfence.gvma x0, x7", spec.hfence_gvma(0, 7)),
    ("ecall", spec.ECALL), ("ebreak", spec.EBREAK), ("sret", spec.SRET), ("wfi", spec.WFI),
]


@pytest.mark.skipif(shutil.which("riscv64-unknown-elf-as") is None,
                    reason="GNU binutils for RISC-V not installed")
def test_encodings_match_gnu_as(tmp_path: Path) -> None:
    """The test's own instruction encoder agrees with GNU as."""
    src, obj, text = tmp_path / "enc.s", tmp_path / "enc.o", tmp_path / "enc.bin"
    src.write_text("\n".join(text for text, _ in ENCODINGS) + "\n")
    subprocess.run(["riscv64-unknown-elf-as", "-march=rv32i_zicsr_h", "-mabi=ilp32",
                    str(src), "-o", str(obj)], check=True)
    subprocess.run(["riscv64-unknown-elf-objcopy", "-O", "binary", "-j", ".text", str(obj),
                    str(text)], check=True)
    dump = text.read_bytes()
    words = [int.from_bytes(dump[i:i + 4], "little") for i in range(0, len(dump), 4)]
    assert words == [w for _, w in ENCODINGS]


# ----- the strategies write where they are told -------------------------------------------------


@settings(max_examples=100)
@given(pt.page_tables(ROOT, TABLE_PAGES[:3]), pt.page_tables(0x80C1_0000, [0x80C1_4000],
                                                             wide_root=True))
def test_page_table_strategy_stays_in_its_pages(one: pt.PageTables, wide: pt.PageTables) -> None:
    """Every PTE goes into the root or one of the given table pages (a 16 KiB root for
    Sv32x4), and every leaf the generator reports is one it wrote."""
    for tables, root_size, pages in ((one, 4096, TABLE_PAGES[:3]), (wide, 16384, [0x80C1_4000])):
        for pa, word in tables.writes:
            assert pa & 3 == 0 and 0 <= word < 1 << 32
            assert tables.root <= pa < tables.root + root_size or any(
                p <= pa < p + 4096 for p in pages)
        assert {leaf.pte for leaf in tables.leaves} <= {w for _, w in tables.writes}
    assert wide.hgatp(5) >> 22 & 0x7F == 5 and (wide.hgatp() & 0x3F_FFFF) << 12 == 0x80C1_0000
