"""Two-stage (nested) translation, V=1 traps and sret into a guest: the machine against the spec
model (spec_model.py), on tables from the grader's strategies and on hand-built ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import spec_model as spec
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import Machine, Trap
from machine import csr as C
from test_mmu import (
    RAM_SIZE,
    TOKEN,
    assert_trap_state,
    check_access,
    check_translate,
    machine_with,
    same,
    setup,
)
from vmlab.strategies import pagetables as pt

STVEC = 0x80FF_F800
Query = tuple[int, int, int, bool, bool, bool]  # va, access, SPVP, vsstatus.SUM, .MXR, sstatus.MXR


def enter_guest(m: Machine, ctx: spec.Context) -> None:
    """Run as a nested guest: V=1 in real U-mode, with the guest's CSRs from `ctx`."""
    m.set_csr(C.VSATP, ctx.satp)
    m.set_csr(C.HGATP, ctx.hgatp or 0)
    m.set_csr(C.HSTATUS, spec.HSTATUS_SPVP if ctx.priv else 0)
    m.set_csr(C.VSSTATUS, (spec.SSTATUS_SUM if ctx.sum else 0)
              | (spec.SSTATUS_MXR if ctx.vs_mxr else 0))
    m.set_csr(C.SSTATUS, spec.SSTATUS_MXR if ctx.mxr else 0)
    m.set_mode(spec.U_MODE, virtual=True)


def context(nt: pt.NestedTables, spvp: int, vs_sum: bool, vs_mxr: bool,
            s_mxr: bool) -> spec.Context:
    return spec.Context(nt.vsatp, spvp, vs_sum, s_mxr, vs_mxr, nt.hgatp)


def describe(va: int, access: int, ctx: spec.Context) -> str:
    return (f"va={va:#010x} {('fetch', 'load', 'store')[access]} SPVP={ctx.priv} "
            f"vsstatus.SUM={int(ctx.sum)} vsstatus.MXR={int(ctx.vs_mxr)} "
            f"sstatus.MXR={int(ctx.mxr)} vsatp={ctx.satp:#010x} hgatp={ctx.hgatp or 0:#010x}")


@st.composite
def nested_case(draw: st.DrawFn, align: int = 1,
                max_queries: int = 8) -> tuple[pt.NestedTables, list[Query]]:
    nt = draw(pt.nested_tables())
    queries = draw(st.lists(st.tuples(pt.guest_requests(nt, align), st.booleans()),
                            min_size=1, max_size=max_queries))
    return nt, [(*request, s_mxr) for request, s_mxr in queries]


@settings(max_examples=400)
@given(nested_case())
def test_nested_translate_matches_spec(case: tuple[pt.NestedTables, list[Query]]) -> None:
    """Every guest access translates through both stages as the spec says: the same host
    address, or the same page fault / guest-page fault / access fault with the same stval and
    htval; every walk reads as many PTEs (of both stages) as the spec's walk does. With the
    tables unchanged, a kept translation is a fresh walk's too, with one exception the spec
    allows: one made while sstatus.MXR let the G-stage read an execute-only page of the
    guest's page tables outlives MXR (the kept PTEs satisfy the reads, so no read is checked)."""
    nt, queries = case
    m, mem = setup(nt.writes)
    tlb = spec.TLB(mem)
    for va, access, spvp, vs_sum, vs_mxr, s_mxr in queries:
        ctx = context(nt, spvp, vs_sum, vs_mxr, s_mxr)
        enter_guest(m, ctx)
        what = describe(va, access, ctx)
        got = check_translate(m, tlb, va, access, ctx, what)
        fresh = spec.translate(mem, va, access, ctx)
        if isinstance(fresh, spec.Fault) and not isinstance(got, Trap):
            assert not ctx.mxr, what
            same(got, spec.translate(mem, va, access, replace(ctx, mxr=True)), what)
        else:
            same(got, fresh, what)


@settings(max_examples=300)
@given(nested_case(max_queries=6), st.data())
def test_nested_hart_accesses_match_spec(case: tuple[pt.NestedTables, list[Query]],
                                         data: st.DataObject) -> None:
    """The hart's loads, stores and fetches at V=1 trap or reach host memory as the spec
    says."""
    nt, queries = case
    m, mem = setup(nt.writes)
    tlb = spec.TLB(mem)
    for va, access, spvp, vs_sum, vs_mxr, s_mxr in queries:
        va = va & ~3 if data.draw(st.booleans(), "aligned") else va
        ctx = context(nt, spvp, vs_sum, vs_mxr, s_mxr)
        enter_guest(m, ctx)
        want = tlb.access_memory(va, 4, access, ctx)
        what = describe(va, access, ctx)
        check_access(m, mem, va, access, want, what)


# ----- a hand-built guest ------------------------------------------------------------------------

G_ROOT, G_L2 = 0x80C0_0000, 0x80C0_4000
GPA_VS_ROOT, GPA_VS_L2, GPA_DATA, GPA_CODE = 0x8000_1000, 0x8000_2000, 0x8000_3000, 0x8000_4000
GPA_UNMAPPED = 0x8000_5000
G_PAGES = {0x80001: 0x80201, 0x80002: 0x80302, 0x80003: 0x80503, 0x80004: 0x80704}
G_MEGA_HOST = 0x8040_0000  # a G-stage megapage maps gpa 0x8000_0000.. here
VA = 0x0040_1234  # VS root index 1, VS second-level index 1: the data page
CODE_VA = 0x0040_0000  # VS second-level index 0: the code page
GOOD = spec.V | spec.R | spec.W | spec.X | spec.A | spec.D
GU = GOOD | spec.U


def g_host(gpa: int, g: str) -> int:
    if g == "bare":
        return gpa
    if g == "mega":
        return G_MEGA_HOST | (gpa & 0x3F_FFFF)
    return G_PAGES[gpa >> 12] << 12 | (gpa & 0xFFF)


def guest(vs: str = "4k", g: str = "4k", *, vs_leaf: int = GOOD, vs_root_entry: int | None = None,
          g_leaf: dict[int, int] | None = None, g_root_entry: int | None = None,
          user: bool = False) -> tuple[list[tuple[int, int]], int, int]:
    """Host writes, vsatp and hgatp for a guest whose VA maps to GPA_DATA (4 KiB VS page), or
    into the gpa megapage 0x8000_0000 (VS megapage), or is its own gpa (VS Bare); the G-stage
    maps gpa pages by G_PAGES (4 KiB), by one megapage, or not at all (Bare). `g_leaf`
    overrides the flags of G-stage leaves, by guest page number."""
    writes: list[tuple[int, int]] = []
    if g == "4k":
        writes.append((G_ROOT + 4 * 0x200, g_root_entry if g_root_entry is not None
                       else pt.make_pte(G_L2 >> 12, spec.V)))
        for gpn, hpn in G_PAGES.items():
            flags = (g_leaf or {}).get(gpn, GU)
            writes.append((G_L2 + 4 * (gpn & 0x3FF), pt.make_pte(hpn, flags)))
    elif g == "mega":
        writes.append((G_ROOT + 4 * 0x200, g_root_entry if g_root_entry is not None
                       else pt.make_pte(G_MEGA_HOST >> 12, (g_leaf or {}).get(0x80000, GU))))
    u = spec.U if user else 0
    if vs == "4k":
        root = vs_root_entry if vs_root_entry is not None else pt.make_pte(GPA_VS_L2 >> 12,
                                                                           spec.V)
        writes.append((g_host(GPA_VS_ROOT + 4, g), root))
        writes.append((g_host(GPA_VS_L2 + 4, g), pt.make_pte(GPA_DATA >> 12, vs_leaf | u)))
        writes.append((g_host(GPA_VS_L2, g), pt.make_pte(GPA_CODE >> 12, GOOD | u)))
        # VS root index 3: a second-level table in a guest page the G-stage does not map
        writes.append((g_host(GPA_VS_ROOT + 12, g), pt.make_pte(GPA_UNMAPPED >> 12, spec.V)))
    elif vs == "mega":
        writes.append((g_host(GPA_VS_ROOT + 4, g), pt.make_pte(0x80000, vs_leaf | u)))
    vsatp = 0 if vs == "bare" else spec.SATP_MODE | 5 << 22 | GPA_VS_ROOT >> 12
    hgatp = 0 if g == "bare" else spec.SATP_MODE | 9 << 22 | G_ROOT >> 12
    return writes, vsatp, hgatp


def guest_va(vs: str) -> int:
    return GPA_DATA | 0x234 if vs == "bare" else VA


def run_translate(writes: list[tuple[int, int]], ctx: spec.Context, va: int,
                  access: int) -> tuple[int | Trap, spec.Translation | spec.Fault, Machine]:
    m, mem = setup(writes)
    enter_guest(m, ctx)
    got = m.translate(va, access)
    want = spec.translate(mem, va, access, ctx)
    return got, want, m


REFS = [  # first stage, G-stage, PTE reads: (levels+1)(g_levels+1)-1
    ("4k", "4k", 8), ("mega", "4k", 5), ("4k", "mega", 5), ("mega", "mega", 3),
    ("bare", "4k", 2), ("bare", "mega", 1), ("4k", "bare", 2), ("mega", "bare", 1),
    ("bare", "bare", 0)]


@pytest.mark.parametrize("vs, g, refs", REFS)
def test_nested_walk_reference_counts(vs: str, g: str, refs: int) -> None:
    """A TLB-missing translation reads (2+1)(2+1)-1 = 8 PTEs for 4 KiB pages in both stages,
    fewer for megapages and Bare stages; the host address is where both tables say."""
    writes, vsatp, hgatp = guest(vs, g)
    ctx = spec.Context(vsatp, spec.S_MODE, hgatp=hgatp)
    va = guest_va(vs)
    got, want, m = run_translate(writes, ctx, va, spec.LOAD)
    gpa = {"4k": GPA_DATA | 0x234, "mega": 0x8000_1234, "bare": va}[vs]
    assert isinstance(want, spec.Translation)
    assert want.pa == got == g_host(gpa, g)
    assert m.hart.mmu.last_refs == refs == want.refs
    levels = {"4k": 2, "mega": 1, "bare": None}
    assert spec.walk_refs(levels[vs], levels[g]) == refs
    walks = m.hart.mmu.walks
    assert m.translate(va, spec.LOAD) == got and m.hart.mmu.walks == walks  # a TLB hit


def gpf(access: int, gpa: int, va: int = VA) -> spec.Fault:
    return spec.Fault(spec.GUEST_PAGE_FAULT[access], va, gpa)


F, L, S = spec.FETCH, spec.LOAD, spec.STORE
XONLY = spec.V | spec.X | spec.A | spec.U
VS_L2_PTE = GPA_VS_L2 + 4
DATA_HPA = 0x8050_3234
NESTED_RULES = [
    # name, guest(...) kwargs, access, (SPVP, vsstatus.SUM, vsstatus.MXR, sstatus.MXR), expected
    ("good", {}, S, (1, 0, 0, 0), DATA_HPA),
    ("VS PTE page not mapped by the G-stage: guest-page fault of the store",
     {"g_leaf": {0x80002: GU & ~spec.V}}, S, (1, 0, 0, 0), gpf(S, VS_L2_PTE)),
    ("... of the fetch", {"g_leaf": {0x80002: GU & ~spec.V}}, F, (1, 0, 0, 0),
     gpf(F, VS_L2_PTE)),
    ("VS root page not mapped: htval is the root PTE's gpa",
     {"g_leaf": {0x80001: 0}}, L, (1, 0, 0, 0), gpf(L, GPA_VS_ROOT + 4)),
    ("VS PTE read is an implicit load: needs R at the G-stage",
     {"g_leaf": {0x80002: XONLY}}, S, (1, 0, 0, 0), gpf(S, VS_L2_PTE)),
    ("vsstatus.MXR does not override the G-stage",
     {"g_leaf": {0x80002: XONLY}}, L, (1, 0, 1, 0), gpf(L, VS_L2_PTE)),
    ("sstatus.MXR overrides the G-stage for the PTE read",
     {"g_leaf": {0x80002: XONLY}}, L, (1, 0, 0, 1), DATA_HPA),
    ("VS PTE read needs no W or D at the G-stage",
     {"g_leaf": {0x80002: spec.V | spec.R | spec.A | spec.U}}, S, (1, 0, 0, 0), DATA_HPA),
    ("VS PTE read needs A at the G-stage",
     {"g_leaf": {0x80002: GU & ~spec.A}}, L, (1, 0, 0, 0), gpf(L, VS_L2_PTE)),
    ("VS PTE read is a user access at the G-stage",
     {"g_leaf": {0x80002: GOOD}}, L, (1, 0, 0, 0), gpf(L, VS_L2_PTE)),
    ("data page without U at the G-stage", {"g_leaf": {0x80003: GOOD}}, L, (1, 0, 0, 0),
     gpf(L, GPA_DATA | 0x234)),
    ("data page without D at the G-stage: store", {"g_leaf": {0x80003: GU & ~spec.D}}, S,
     (1, 0, 0, 0), gpf(S, GPA_DATA | 0x234)),
    ("data page without W at the G-stage: load is fine",
     {"g_leaf": {0x80003: spec.V | spec.R | spec.A | spec.U}}, L, (1, 0, 0, 0), DATA_HPA),
    ("data X-only at the G-stage: vsstatus.MXR does not help", {"g_leaf": {0x80003: XONLY}}, L,
     (1, 0, 1, 0), gpf(L, GPA_DATA | 0x234)),
    ("data X-only at the G-stage: sstatus.MXR does", {"g_leaf": {0x80003: XONLY}}, L,
     (1, 0, 0, 1), DATA_HPA),
    ("data X-only at the VS-stage: vsstatus.MXR reads it",
     {"vs_leaf": spec.V | spec.X | spec.A}, L, (1, 0, 1, 0), DATA_HPA),
    ("data X-only at the VS-stage: sstatus.MXR reads it too",
     {"vs_leaf": spec.V | spec.X | spec.A}, L, (1, 0, 0, 1), DATA_HPA),
    ("G bit of G-stage PTEs is ignored", {"g_leaf": {0x80003: GU | spec.G}}, S, (1, 0, 0, 0),
     DATA_HPA),
    ("guest user (SPVP=0) on a VS page without U", {}, L, (0, 1, 1, 1),
     spec.Fault(13, VA)),
    ("guest user on a VS user page", {"user": True}, S, (0, 0, 0, 0), DATA_HPA),
    ("guest kernel on a VS user page without vsstatus.SUM", {"user": True}, L, (1, 0, 0, 0),
     spec.Fault(13, VA)),
    ("guest kernel on a VS user page with vsstatus.SUM", {"user": True}, L, (1, 1, 0, 0),
     DATA_HPA),
    ("guest kernel never executes a VS user page", {"user": True}, F, (1, 1, 0, 0),
     spec.Fault(12, VA)),
    ("VS W without R: page fault, not guest-page fault",
     {"vs_leaf": spec.V | spec.W | spec.A | spec.D}, S, (1, 0, 0, 0), spec.Fault(15, VA)),
    ("VS pointer with A: page fault", {"vs_root_entry": pt.make_pte(GPA_VS_L2 >> 12,
                                                                   spec.V | spec.A)},
     L, (1, 0, 0, 0), spec.Fault(13, VA)),
    ("G-stage pointer with U is reserved", {"g_root_entry": pt.make_pte(G_L2 >> 12,
                                                                       spec.V | spec.U)},
     L, (1, 0, 0, 0), gpf(L, GPA_VS_ROOT + 4)),
    ("G-stage W without R", {"g_leaf": {0x80003: spec.V | spec.W | spec.A | spec.D | spec.U}},
     S, (1, 0, 0, 0), gpf(S, GPA_DATA | 0x234)),
    ("G-stage table outside RAM during the VS walk: access fault of the store",
     {"g_root_entry": pt.make_pte(0x10, spec.V)}, S, (1, 0, 0, 0), spec.Fault(7, VA)),
    ("... of the fetch", {"g_root_entry": pt.make_pte(0x10, spec.V)}, F, (1, 0, 0, 0),
     spec.Fault(1, VA)),
]


@pytest.mark.parametrize("name, kwargs, access, bits, expected", NESTED_RULES,
                         ids=[r[0] for r in NESTED_RULES])
def test_nested_spec_rule(name: str, kwargs: dict, access: int, bits: tuple[int, ...],
                          expected: int | spec.Fault) -> None:
    """Hand-written two-stage cases with the spec's answer: the model and the machine."""
    writes, vsatp, hgatp = guest(**kwargs)
    spvp, vs_sum, vs_mxr, s_mxr = bits
    ctx = spec.Context(vsatp, spvp, bool(vs_sum), bool(s_mxr), bool(vs_mxr), hgatp)
    got, want, _ = run_translate(writes, ctx, VA, access)
    if isinstance(expected, spec.Fault):
        assert want == expected, f"model: {want}"
        assert isinstance(got, Trap), f"machine: {got:#x}"
        assert (got.cause, got.tval, got.gpa >> 2) == (expected.cause, expected.tval,
                                                       expected.gpa >> 2)
    else:
        assert isinstance(want, spec.Translation) and want.pa == expected, f"model: {want}"
        assert got == expected


def test_g_stage_table_outside_ram_on_final_translation() -> None:
    """First stage Bare: the G-stage's own table outside RAM is an access fault of the
    original access (a store here), stval the guest-virtual address, htval 0."""
    writes, _, hgatp = guest("bare", "4k", g_root_entry=pt.make_pte(0x10, spec.V))
    ctx = spec.Context(0, 1, hgatp=hgatp)
    got, want, _ = run_translate(writes, ctx, GPA_DATA, spec.STORE)
    assert want == spec.Fault(spec.STORE_ACCESS, GPA_DATA)
    assert isinstance(got, Trap) and (got.cause, got.tval, got.gpa) == (7, GPA_DATA, 0)


def test_vs_table_outside_host_ram() -> None:
    """The G-stage maps the guest's root table to a host address that is not RAM: reading the
    PTE fails the PMA check: an access fault of the original access type."""
    writes, vsatp, hgatp = guest("4k", "4k")
    writes.append((G_L2 + 4 * 1, pt.make_pte(0x10, GU)))  # gpa page 0x80001 -> 0x10000 (no RAM)
    ctx = spec.Context(vsatp, 1, hgatp=hgatp)
    got, want, _ = run_translate(writes, ctx, VA, spec.FETCH)
    assert want == spec.Fault(spec.INSN_ACCESS, VA)
    assert isinstance(got, Trap) and (got.cause, got.tval, got.gpa) == (1, VA, 0)


def test_guest_physical_addresses_are_34_bits() -> None:
    """A VS leaf may name a guest-physical page above 4 GiB; Sv32x4 indexes its 16 KiB root
    with gpa bits 33:22."""
    writes, vsatp, hgatp = guest("4k", "4k")
    gpn = 0x3_0000_3000 >> 12
    writes[-2] = (g_host(GPA_VS_L2 + 4, "4k"), pt.make_pte(gpn, GOOD))  # the data leaf
    writes.append((G_ROOT + 4 * (gpn >> 10), pt.make_pte(0x80C05, spec.V)))
    writes.append((0x80C0_5000 + 4 * (gpn & 0x3FF), pt.make_pte(0x80777, GU)))
    ctx = spec.Context(vsatp, 1, hgatp=hgatp)
    got, want, _ = run_translate(writes, ctx, VA, spec.LOAD)
    assert isinstance(want, spec.Translation) and want.pa == 0x8077_7234 == got
    ctx_bad = spec.Context(vsatp, 1, hgatp=hgatp)
    writes.pop()
    got, want, _ = run_translate(writes, ctx_bad, VA, spec.LOAD)
    assert want == gpf(spec.LOAD, 0x3_0000_3234)
    assert isinstance(got, Trap) and (got.cause, got.gpa >> 2) == (21, 0x3_0000_3234 >> 2)


# ----- traps from V=1, and sret into it ----------------------------------------------------------

CODE_HPA = G_PAGES[GPA_CODE >> 12] << 12
SCENARIOS = {
    # name: (instruction, x11, guest(...) kwargs, (cause, stval, gpa) from pc and x11)
    "VS page fault": (spec.lw(10, 11), 0x0080_0000, {}, lambda pc, a: (13, a, 0)),
    "guest-page fault on the data": (spec.sw(12, 11), VA, {"g_leaf": {0x80003: 0}},
                                     lambda pc, a: (23, a, GPA_DATA | 0x234)),
    "guest-page fault reading a VS PTE": (spec.lw(10, 11), 0x00C0_1234, {},
                                          lambda pc, a: (21, a, GPA_UNMAPPED + 4)),
    "access fault": (spec.lw(10, 11), VA, {"g_leaf": {0x80003: GU}}, None),
    "misaligned store": (spec.sw(12, 11), VA | 2, {}, lambda pc, a: (6, a, 0)),
    "ebreak": (spec.EBREAK, 0, {}, lambda pc, a: (3, pc, 0)),
    "ecall from the guest": (spec.ECALL, 0, {}, lambda pc, a: (8, 0, 0)),
    "sret in the guest is illegal": (spec.SRET, 0, {}, lambda pc, a: (2, spec.SRET, 0)),
    "jump to a misaligned address": (spec.jalr(0, 11), 0x0040_0002, {},
                                     lambda pc, a: (0, a, 0)),
}


def guest_machine(kwargs: dict, insn: int, spvp: int, sstatus: int) -> Machine:
    writes, vsatp, hgatp = guest(**kwargs, user=spvp == 0)
    writes.append((CODE_HPA, insn))
    m = machine_with(writes)
    enter_guest(m, spec.Context(vsatp, spvp, hgatp=hgatp))
    m.set_csr(C.SSTATUS, sstatus)
    m.set_csr(C.STVEC, STVEC)
    m.pc = CODE_VA
    return m


@settings(max_examples=200)
@given(st.sampled_from(sorted(SCENARIOS)), pt.privileges(),
       st.sampled_from((0, spec.SSTATUS_SIE, spec.SSTATUS_SPIE | spec.SSTATUS_SPP,
                        spec.SSTATUS_SIE | spec.SSTATUS_SPIE | spec.SSTATUS_SUM)),
       st.integers(0, 0xFFFF_FFFF))
def test_trap_entry_from_v1(name: str, spvp: int, sstatus: int, old_htval: int) -> None:
    """A trap taken while a guest runs: V=0 and S-mode; hstatus.SPV=1; hstatus.GVA=1 exactly
    when stval holds a guest-virtual address; SPP=0 (the guest runs in U-mode); htval the
    guest-physical address >> 2 for a guest-page fault and 0 otherwise; sepc the guest pc."""
    insn, a11, kwargs, effect = SCENARIOS[name]
    if name == "access fault":  # the G-stage maps the data page to a hole in the host
        kwargs = {}
    m = guest_machine(kwargs, insn, spvp, sstatus)
    if name == "access fault":
        m.write_phys(G_L2 + 4 * 3, pt.make_pte(0x10, GU).to_bytes(4, "little"))
        cause, tval, gpa = 5, a11, 0
    else:
        cause, tval, gpa = effect(CODE_VA, a11)
    m.set_csr(C.HTVAL, old_htval)
    m.set_reg(11, a11)
    m.set_reg(12, TOKEN)
    before = spec.TrapState(spec.U_MODE, 1, CODE_VA, m.csr(C.SSTATUS), m.csr(C.HSTATUS),
                            stvec=STVEC)
    assert m.step() is None
    assert_trap_state(m, spec.take_trap(before, cause, tval, gpa), name)


def test_sret_into_the_guest_runs_it_through_both_stages() -> None:
    """sret with SPP=0 and hstatus.SPV=1 enters the guest (U-mode, V=1) at sepc; its next load
    goes through the VS-stage and the G-stage."""
    writes, vsatp, hgatp = guest(user=True)
    writes.append((CODE_HPA, spec.lw(10, 11)))
    host_code = 0x8010_0000
    writes.append((host_code, spec.SRET))
    writes.append((DATA_HPA & ~3, 0xCAFE_F00D))
    m = machine_with(writes)
    m.set_csr(C.VSATP, vsatp)
    m.set_csr(C.HGATP, hgatp)
    m.set_csr(C.HSTATUS, spec.HSTATUS_SPV)
    m.set_csr(C.SSTATUS, spec.SSTATUS_SPIE)
    m.set_csr(C.SEPC, CODE_VA)
    m.pc = host_code
    m.set_reg(11, VA & ~3)
    assert m.step() is None
    assert (m.mode, m.hart.v, m.pc) == (spec.U_MODE, 1, CODE_VA)
    assert m.csr(C.SSTATUS) & (spec.SSTATUS_SIE | spec.SSTATUS_SPIE | spec.SSTATUS_SPP) == \
        spec.SSTATUS_SIE | spec.SSTATUS_SPIE
    assert m.step() is None
    assert (m.get_reg(10), m.pc, m.hart.v) == (0xCAFE_F00D, CODE_VA + 4, 1)


def test_sret_with_spp_s_does_not_enter_the_guest() -> None:
    """With SPP=1, sret returns to S-mode with V=0 even if hstatus.SPV is set (no VS-mode)."""
    m = Machine(ram_size=RAM_SIZE)
    m.write_phys(0x8010_0000, spec.SRET.to_bytes(4, "little"))
    m.set_csr(C.HSTATUS, spec.HSTATUS_SPV)
    m.set_csr(C.SSTATUS, spec.SSTATUS_SPP)
    m.set_csr(C.SEPC, 0x8020_0000)
    m.pc = 0x8010_0000
    assert m.step() is None
    assert (m.mode, m.hart.v, m.pc) == (spec.S_MODE, 0, 0x8020_0000)
    assert m.csr(C.HSTATUS) == spec.HSTATUS_SPV


def test_trap_and_return_through_a_python_handler() -> None:
    """A guest ecall goes to the Python S-mode handler with V=0 and SPV=1; after the handler
    moves sepc on, the machine's sret goes back into the guest (V=1) after the ecall."""
    writes, vsatp, hgatp = guest(user=True)
    writes.append((CODE_HPA, spec.ECALL))
    writes.append((CODE_HPA + 4, spec.lw(10, 11)))
    writes.append((DATA_HPA & ~3, 0x1234_5678))
    m = machine_with(writes)
    enter_guest(m, spec.Context(vsatp, 0, hgatp=hgatp))
    m.pc = CODE_VA
    m.set_reg(11, VA & ~3)
    seen = []

    def handler(event: object) -> None:
        seen.append((event, m.mode, m.hart.v, m.csr(C.HSTATUS) & spec.HSTATUS_SPV,
                     m.csr(C.SCAUSE)))
        m.set_csr(C.SEPC, m.csr(C.SEPC) + 4)

    m.set_trap_handler(handler)
    assert m.step() is None
    assert [s[1:] for s in seen] == [(spec.S_MODE, 0, spec.HSTATUS_SPV, spec.ECALL_U)]
    assert (m.mode, m.hart.v, m.pc) == (spec.U_MODE, 1, CODE_VA + 4)
    assert m.step() is None
    assert m.get_reg(10) == 0x1234_5678


@settings(max_examples=100)
@given(pt.nested_tables())
def test_nested_strategy_builds_host_memory(nt: pt.NestedTables) -> None:
    """The nested strategy writes host RAM only, puts the G-stage root on a 16 KiB boundary, and
    places every guest PTE where the G-stage's leaves (whatever their flags) send it."""
    for pa, _ in nt.writes:
        assert 0x8000_0000 <= pa < 0x8000_0000 + RAM_SIZE and not pa & 3
    if nt.hgatp:
        assert not (nt.hgatp << 12) & 0x3FFF
    if nt.guest is not None:
        for gpa, word in nt.guest.writes:
            hpa = nt.gstage.resolve(gpa) if nt.gstage is not None else gpa
            if hpa is not None and 0x8000_0000 <= hpa < 0x8000_0000 + RAM_SIZE:
                assert (hpa, word) in nt.writes
