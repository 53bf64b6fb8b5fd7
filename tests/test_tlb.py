"""The TLB: staleness that only sfence.vma / hfence.* end, ASIDs, VMIDs and global entries.

The machine is checked against spec_model.TLB (the documented policy on top of the spec's
walk) on random sequences of accesses, page-table writes, fences and satp writes, and on
hand-written cases, both through the API and by running the fence instructions.
"""

from __future__ import annotations

import pytest
import spec_model as spec
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import Machine, Trap
from machine import csr as C
from test_mmu import (
    RAM_SIZE,
    ROOT,
    TABLE_PAGES,
    check_translate,
    enter,
    machine_with,
    setup,
)
from test_nested import enter_guest, guest
from vmlab.strategies import pagetables as pt

ROOT_B = 0x80C1_0000
TABLE_PAGES_B = [ROOT_B + (k + 1) * 0x1000 for k in range(8)]

_OPS = st.sampled_from(("access",) * 6 + ("write", "write", "sfence", "satp"))
_NESTED_OPS = st.sampled_from(("access",) * 6 + ("write", "write", "hfence.vvma",
                                                  "hfence.gvma", "sfence"))
_BIT = st.integers(0, 9)
_MUTATION = st.sampled_from(("flip", "flip", "ppn", "zero", "leaf"))
_LEAF = pt.leaves()
_SMALL_ASID = st.integers(0, 3)


def mutate(data: st.DataObject, old: int) -> int:
    """A new value for a PTE: one flag flipped, another page, zero, or a fresh leaf."""
    kind = data.draw(_MUTATION, "mutation")
    if kind == "flip":
        return old ^ (1 << data.draw(_BIT))
    if kind == "ppn":
        return (old & 0x3FF) | data.draw(pt.ram_pages()) << 10
    if kind == "zero":
        return 0
    return data.draw(_LEAF)


def write_pte(m: Machine, mem: spec.Memory, pa: int, value: int) -> None:
    m.write_phys(pa, value.to_bytes(4, "little"))
    mem.write_word(pa, value)


@st.composite
def two_address_spaces(draw: st.DrawFn) -> tuple[pt.PageTables, pt.PageTables, int, int]:
    a = draw(pt.page_tables(ROOT, TABLE_PAGES, max_root_entries=4, max_leaves=4))
    b = draw(pt.page_tables(ROOT_B, TABLE_PAGES_B, max_root_entries=4, max_leaves=4))
    return a, b, draw(_SMALL_ASID), draw(_SMALL_ASID)


@settings(max_examples=250)
@given(two_address_spaces(), st.data())
def test_tlb_follows_the_policy(spaces: tuple[pt.PageTables, pt.PageTables, int, int],
                                data: st.DataObject) -> None:
    """Random accesses, PTE writes, sfence.vma (all, by address, by ASID, both) and satp
    switches between two address spaces (whose ASIDs may be equal): every access walks
    exactly when the policy says and gives what the kept entry or the walk gives."""
    a, b, asid_a, asid_b = spaces
    writes = a.writes + b.writes
    m, mem = setup(writes)
    tlb = spec.TLB(mem)
    spaces_ = [(a, asid_a), (b, asid_b)]
    current = 0
    m.set_csr(C.SATP, a.satp(asid_a))
    log: list[str] = []
    for _ in range(data.draw(st.integers(5, 30), "ops")):
        tables, asid = spaces_[current]
        op = data.draw(_OPS)
        if op == "access":
            va, access, priv, sum_, mxr = data.draw(pt.requests(tables))
            ctx = spec.Context(tables.satp(asid), priv, sum_, mxr)
            enter(m, ctx)
            log.append(f"{('fetch', 'load', 'store')[access]} {va:#x} priv={priv} "
                       f"SUM={int(sum_)} MXR={int(mxr)}")
            check_translate(m, tlb, va, access, ctx, "\n".join(log))
        elif op == "write":
            pa = data.draw(st.sampled_from(a.pte_addresses() + b.pte_addresses()))
            value = mutate(data, mem.read_word(pa) or 0)
            write_pte(m, mem, pa, value)
            log.append(f"write {value:#010x} at {pa:#x}")
        elif op == "sfence":
            va = data.draw(st.one_of(st.none(), pt.addresses(tables)))
            fence_asid = data.draw(st.one_of(st.none(), st.sampled_from((asid_a, asid_b)),
                                             st.integers(0, 0x1FF)))
            m.hart.mmu.sfence(va, fence_asid)
            tlb.sfence(va, fence_asid)
            log.append(f"sfence.vma {va}, {fence_asid}")
        else:
            current = 1 - current
            tables, asid = spaces_[current]
            m.set_csr(C.SATP, tables.satp(asid))
            log.append(f"satp = {tables.satp(asid):#x}")


# ----- hand-written cases --------------------------------------------------------------------

L2 = TABLE_PAGES[0]
GOOD = spec.V | spec.R | spec.W | spec.X | spec.A | spec.D
RW = spec.V | spec.R | spec.W | spec.A | spec.D
VA1, VA2 = 0x0040_1000, 0x0040_2000  # root index 1, second-level indices 1 and 2
PTE1, PTE2 = L2 + 4, L2 + 8
PA_OLD, PA_NEW, PA_OTHER = 0x8010_0000, 0x8020_0000, 0x8030_0000
S = spec.Context(spec.SATP_MODE | 1 << 22 | ROOT >> 12)  # S-mode, ASID 1


def space(leaves: dict[int, int], root: int = ROOT, l2: int = L2) -> list[tuple[int, int]]:
    """Root entry 1 points at `l2`, whose entries are `leaves` (index -> PTE)."""
    return [(root + 4, pt.make_pte(l2 >> 12, spec.V))] + [
        (l2 + 4 * i, pte) for i, pte in leaves.items()]


def leaf(pa: int, flags: int = RW) -> int:
    return pt.make_pte(pa >> 12, flags)


class Both:
    """The machine and the model side by side, for hand-written sequences."""

    def __init__(self, writes: list[tuple[int, int]], ctx: spec.Context = S) -> None:
        self.m, self.mem = setup(writes)
        self.tlb = spec.TLB(self.mem)
        self.ctx = ctx
        self.use(ctx)

    def use(self, ctx: spec.Context) -> None:
        self.ctx = ctx
        if ctx.nested:
            enter_guest(self.m, ctx)
        else:
            enter(self.m, ctx)

    def access(self, va: int, access: int = spec.LOAD) -> int | Trap:
        """The machine's answer, after checking it is the model's."""
        return check_translate(self.m, self.tlb, va, access, self.ctx, f"{va:#x}")

    def write(self, pa: int, value: int) -> None:
        write_pte(self.m, self.mem, pa, value)

    def sfence(self, va: int | None = None, asid: int | None = None) -> None:
        self.m.hart.mmu.sfence(va, asid)
        self.tlb.sfence(va, asid)


def page(result: int | Trap) -> int | str:
    return f"trap {result.cause}" if isinstance(result, Trap) else result & ~0xFFF


def test_a_changed_leaf_is_stale_until_sfence() -> None:
    """'if a leaf PTE is modified but a subsuming SFENCE.VMA is not executed, either the old
    translation or the new translation will be used': this machine keeps the old one."""
    t = Both(space({1: leaf(PA_OLD)}))
    assert page(t.access(VA1)) == PA_OLD
    t.write(PTE1, leaf(PA_NEW))
    assert page(t.access(VA1)) == PA_OLD
    assert page(t.access(VA1, spec.STORE)) == PA_OLD
    t.sfence(VA1 | 0x123)
    assert page(t.access(VA1)) == PA_NEW


def test_a_removed_mapping_is_stale_until_sfence() -> None:
    t = Both(space({1: leaf(PA_OLD)}))
    assert page(t.access(VA1, spec.STORE)) == PA_OLD
    t.write(PTE1, 0)
    assert page(t.access(VA1, spec.STORE)) == PA_OLD
    t.sfence()
    assert page(t.access(VA1, spec.STORE)) == "trap 15"


def test_raised_permissions_and_new_mappings_need_no_fence() -> None:
    """An access the kept entry does not allow walks again (so adding W, or validating an
    invalid PTE, is seen at once); invalid PTEs are never kept."""
    t = Both(space({1: leaf(PA_OLD, spec.V | spec.R | spec.A)}))
    assert page(t.access(VA1)) == PA_OLD
    assert page(t.access(VA1, spec.STORE)) == "trap 15"
    t.write(PTE1, leaf(PA_OLD))
    assert page(t.access(VA1, spec.STORE)) == PA_OLD
    assert page(t.access(VA2)) == "trap 13"
    t.write(PTE2, leaf(PA_NEW))
    assert page(t.access(VA2)) == PA_NEW


def test_a_walk_for_more_permission_replaces_the_stale_entry() -> None:
    """The walk that a store needs also picks up the leaf's new page; later loads use it."""
    t = Both(space({1: leaf(PA_OLD, spec.V | spec.R | spec.A)}))
    assert page(t.access(VA1)) == PA_OLD
    t.write(PTE1, leaf(PA_NEW))
    assert page(t.access(VA1)) == PA_OLD
    assert page(t.access(VA1, spec.STORE)) == PA_NEW
    assert page(t.access(VA1)) == PA_NEW


def test_sum_and_mxr_take_effect_at_once() -> None:
    """'Changes to the sstatus fields SUM and MXR take effect immediately, without the need
    to execute an SFENCE.VMA instruction', and so does the privilege: kept entries are checked
    against the current ones."""
    t = Both(space({1: leaf(PA_OLD, RW | spec.U), 2: leaf(PA_NEW, spec.V | spec.X | spec.A)}))
    t.use(spec.Context(S.satp, spec.S_MODE, sum=True))
    assert page(t.access(VA1)) == PA_OLD
    t.use(spec.Context(S.satp, spec.S_MODE, sum=False))
    assert page(t.access(VA1)) == "trap 13"
    t.use(spec.Context(S.satp, spec.U_MODE))
    assert page(t.access(VA1)) == PA_OLD
    t.use(spec.Context(S.satp, spec.S_MODE, mxr=True))
    assert page(t.access(VA2)) == PA_NEW
    t.use(spec.Context(S.satp, spec.S_MODE, mxr=False))
    assert page(t.access(VA2)) == "trap 13"


def test_sfence_by_address_fences_that_page_only() -> None:
    t = Both(space({1: leaf(PA_OLD), 2: leaf(PA_OLD + 0x1000)}))
    t.access(VA1)
    t.access(VA2)
    t.write(PTE1, leaf(PA_NEW))
    t.write(PTE2, leaf(PA_NEW + 0x1000))
    t.sfence(VA2 + 0xFFC)
    assert page(t.access(VA1)) == PA_OLD
    assert page(t.access(VA2)) == PA_NEW + 0x1000


def test_sfence_by_address_fences_a_whole_megapage() -> None:
    mega = spec.V | spec.R | spec.W | spec.A | spec.D
    t = Both([(ROOT + 4 * 3, pt.make_pte(0x80400, mega))])
    assert t.access(0x00C1_2345) == 0x8041_2345
    t.write(ROOT + 4 * 3, pt.make_pte(0x80800, mega))
    assert t.access(0x00C1_2345) == 0x8041_2345
    t.sfence(0x00FF_F000)  # another address inside the same megapage
    assert t.access(0x00C1_2345) == 0x8081_2345


def test_sfence_by_asid_keeps_global_entries() -> None:
    """'except for entries containing global mappings' — a G leaf, or G in the pointer above
    it, survives an ASID-specific fence; a fence of all address spaces drops it."""
    t = Both(space({1: leaf(PA_OLD, RW | spec.G), 2: leaf(PA_OLD + 0x1000)}))
    t.access(VA1)
    t.access(VA2)
    t.write(PTE1, leaf(PA_NEW, RW | spec.G))
    t.write(PTE2, leaf(PA_NEW + 0x1000))
    t.sfence(None, 1)
    assert page(t.access(VA1)) == PA_OLD
    assert page(t.access(VA2)) == PA_NEW + 0x1000
    t.sfence(VA1, 1)
    assert page(t.access(VA1)) == PA_OLD
    t.sfence(VA1, None)
    assert page(t.access(VA1)) == PA_NEW


def test_global_pointer_makes_the_leaf_global() -> None:
    """'For non-leaf PTEs, the global setting implies that all mappings in the subsequent
    levels of the page table are global.'"""
    writes = space({1: leaf(PA_OLD)})
    writes[0] = (ROOT + 4, pt.make_pte(L2 >> 12, spec.V | spec.G))
    t = Both(writes)
    t.access(VA1)
    t.write(PTE1, leaf(PA_NEW))
    t.sfence(None, 1)
    assert page(t.access(VA1)) == PA_OLD


def test_sfence_of_another_asid_keeps_ours() -> None:
    t = Both(space({1: leaf(PA_OLD)}))
    t.access(VA1)
    t.write(PTE1, leaf(PA_NEW))
    t.sfence(VA1, 2)
    assert page(t.access(VA1)) == PA_OLD
    t.sfence(VA1, 1)
    assert page(t.access(VA1)) == PA_NEW


def test_satp_writes_do_not_flush() -> None:
    """'writing satp does not imply any ... invalidation of address-translation caches': a
    new table under the same ASID still sees the old translation until a fence."""
    writes = space({1: leaf(PA_OLD)}) + space({1: leaf(PA_NEW)}, ROOT_B, TABLE_PAGES_B[0])
    t = Both(writes)
    t.access(VA1)
    t.use(spec.Context(spec.SATP_MODE | 1 << 22 | ROOT_B >> 12))
    assert page(t.access(VA1)) == PA_OLD
    t.sfence(None, 1)
    assert page(t.access(VA1)) == PA_NEW


def test_asids_separate_address_spaces() -> None:
    """Two address spaces with their own ASIDs keep their own translations side by side, with
    no fence between the switches."""
    writes = space({1: leaf(PA_OLD)}) + space({1: leaf(PA_NEW)}, ROOT_B, TABLE_PAGES_B[0])
    t = Both(writes)
    one = spec.Context(spec.SATP_MODE | 1 << 22 | ROOT >> 12)
    two = spec.Context(spec.SATP_MODE | 2 << 22 | ROOT_B >> 12)
    for _ in range(2):
        t.use(one)
        assert page(t.access(VA1)) == PA_OLD
        t.use(two)
        assert page(t.access(VA1)) == PA_NEW
    walks = t.m.hart.mmu.walks
    t.use(one)
    t.access(VA1)
    assert t.m.hart.mmu.walks == walks


def test_a_global_entry_serves_every_asid() -> None:
    """A mapping marked global 'exists in all address spaces': the kept entry serves another
    ASID without a walk (here even where that ASID's table maps the page elsewhere, which the
    spec calls a software bug with an unpredictable result; this machine uses the entry)."""
    writes = space({1: leaf(PA_OLD, RW | spec.G)}) + space({1: leaf(PA_NEW)}, ROOT_B,
                                                           TABLE_PAGES_B[0])
    t = Both(writes)
    t.access(VA1)
    t.use(spec.Context(spec.SATP_MODE | 2 << 22 | ROOT_B >> 12))
    assert page(t.access(VA1)) == PA_OLD


# ----- the same through sfence.vma instructions ------------------------------------------------

KERNEL = 0xC000_0000  # a global megapage: VA 0xC000_0000.. -> PA 0x80C0_0000.. (tables, code)
CODE = KERNEL + 0x3F_F000
G_LEAF_VA = 0x0040_3000  # second-level index 3: a global leaf
G_PTE = L2 + 12
OLD_WORD, NEW_WORD, OLD_G, NEW_G = 0x0101_0101, 0x0202_0202, 0x0303_0303, 0x0404_0404


def kernel_va(pa: int) -> int:
    return KERNEL + (pa - ROOT)


FENCES = {
    # name: (sfence.vma rs1, rs2, then: (non-global page new?, global page new?))
    "sfence.vma x0, x0": (0, 0, (True, True)),
    "sfence.vma va, x0": (11, 0, (True, False)),
    "sfence.vma x0, asid": (0, 13, (True, False)),
    "sfence.vma va, asid": (11, 13, (True, False)),
    "sfence.vma global va, x0": (15, 0, (False, True)),
    "sfence.vma global va, asid": (15, 13, (False, False)),
    "sfence.vma x0, other asid": (0, 14, (False, False)),
    "sfence.vma x0, asid with bits above ASIDMAX": (0, 19, (True, False)),
    "no fence": (None, None, (False, False)),
}


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "interpreter"])
@pytest.mark.parametrize("fence", sorted(FENCES))
def test_sfence_vma_instruction(fence: str, fast: bool) -> None:
    """S-mode code loads through a page and a global page, rewrites both leaf PTEs with
    stores, loads again (stale), runs the fence, and loads a third time."""
    rs1, rs2, (new, new_g) = FENCES[fence]
    words = [spec.lw(10, 11), spec.lw(16, 15), spec.sw(22, 20), spec.sw(23, 21),
             spec.lw(12, 11), spec.lw(17, 15)]
    if rs1 is not None:
        words.append(spec.sfence_vma(rs1, rs2))
    words += [spec.lw(14, 11), spec.lw(18, 15)]
    writes = space({1: leaf(PA_OLD), 3: leaf(PA_OTHER, RW | spec.G)})
    writes += [(ROOT + 4 * (KERNEL >> 22), pt.make_pte(ROOT >> 12, GOOD | spec.G)),
               (PA_OLD, OLD_WORD), (PA_NEW, NEW_WORD), (PA_OTHER, OLD_G),
               (PA_OTHER + 0x1000, NEW_G)]
    writes += [(0x80FF_F000 + 4 * i, w) for i, w in enumerate(words)]
    m = Machine(ram_size=RAM_SIZE, fast=fast)
    for pa, data in pt.write_bytes(writes):
        m.write_phys(pa, data)
    m.set_csr(C.SATP, S.satp)
    m.pc = CODE
    regs = {11: VA1, 15: G_LEAF_VA, 20: kernel_va(PTE1), 21: kernel_va(G_PTE),
            22: leaf(PA_NEW), 23: leaf(PA_OTHER + 0x1000, RW | spec.G), 13: 1, 14: 2,
            19: 0xFFFF_FE01}  # 'the implementation shall ignore bits SXLEN-1:ASIDMAX'
    for r, v in regs.items():
        m.set_reg(r, v)
    stop = m.run(max_steps=len(words))
    assert stop.reason == "budget" and m.pc == CODE + 4 * len(words), stop
    assert (m.get_reg(10), m.get_reg(12), m.get_reg(16), m.get_reg(17)) == \
        (OLD_WORD, OLD_WORD, OLD_G, OLD_G)
    assert m.get_reg(14) == (NEW_WORD if new else OLD_WORD)
    assert m.get_reg(18) == (NEW_G if new_g else OLD_G)
    # and the model agrees
    mem = setup(writes)[1]
    tlb = spec.TLB(mem)
    for va in (VA1, G_LEAF_VA):
        tlb.access(va, spec.LOAD, S)
    mem.write_word(PTE1, regs[22])
    mem.write_word(G_PTE, regs[23])
    if rs1 is not None:
        tlb.sfence(regs[rs1] if rs1 else None, regs[rs2] & 0x1FF if rs2 else None)
    for va, fresh, stale in ((VA1, PA_NEW, PA_OLD), (G_LEAF_VA, PA_OTHER + 0x1000, PA_OTHER)):
        result = tlb.access(va, spec.LOAD, S)
        got = result.outcome.pa if result.walked and isinstance(
            result.outcome, spec.Translation) else min(result.candidates)
        assert got == (fresh if (new if va == VA1 else new_g) else stale)


def test_satp_write_by_csrrw_does_not_flush() -> None:
    """csrrw satp to another table with the same ASID: the next load still uses the old
    translation; after sfence.vma x0, x0 it uses the new table's."""
    words = [spec.lw(10, 11), spec.csrrw(0, C.SATP, 5), spec.lw(12, 11),
             spec.sfence_vma(0, 0), spec.lw(14, 11)]
    kernel = (ROOT + 4 * (KERNEL >> 22), pt.make_pte(ROOT >> 12, GOOD | spec.G))
    kernel_b = (ROOT_B + 4 * (KERNEL >> 22), kernel[1])
    writes = space({1: leaf(PA_OLD)}) + space({1: leaf(PA_NEW)}, ROOT_B, TABLE_PAGES_B[0])
    writes += [kernel, kernel_b, (PA_OLD, OLD_WORD), (PA_NEW, NEW_WORD)]
    writes += [(0x80FF_F000 + 4 * i, w) for i, w in enumerate(words)]
    m = machine_with(writes)
    m.set_csr(C.SATP, S.satp)
    m.pc = CODE
    m.set_reg(11, VA1)
    m.set_reg(5, spec.SATP_MODE | 1 << 22 | ROOT_B >> 12)
    m.run(max_steps=len(words))
    assert (m.get_reg(10), m.get_reg(12), m.get_reg(14)) == (OLD_WORD, OLD_WORD, NEW_WORD)


# ----- nested: VMIDs and the hypervisor fences ------------------------------------------------

VA = 0x0040_1234
GPA_DATA_PTE = 0x80C0_4000 + 4 * 3  # the G-stage leaf of the guest's data page
VS_DATA_PTE = 0x8030_2004  # the guest's data leaf, in host memory


def nested_both(**kwargs: object) -> tuple[Both, spec.Context]:
    writes, vsatp, hgatp = guest(**kwargs)  # type: ignore[arg-type]
    ctx = spec.Context(vsatp, spec.S_MODE, hgatp=hgatp)
    return Both(writes, ctx), ctx


def test_nested_translations_are_stale_until_hfence() -> None:
    """A changed G-stage leaf is seen after hfence.gvma; a changed VS leaf after hfence.vvma;
    sfence.vma at V=0 fences neither."""
    t, ctx = nested_both()
    assert t.access(VA) == 0x8050_3234
    t.write(GPA_DATA_PTE, pt.make_pte(0x80666, GOOD | spec.U))
    vmid = spec.vmid_of(ctx.hgatp or 0)
    t.m.hart.mmu.sfence(None, None)  # V=0's sfence.vma: host translations only
    t.tlb.sfence(None, None)
    assert t.access(VA) == 0x8050_3234
    t.m.hart.mmu.flush_nested(vmid)
    t.tlb.hfence_gvma(vmid)
    assert t.access(VA) == 0x8066_6234
    t.write(VS_DATA_PTE, pt.make_pte(0x80004, GOOD))  # now the code page's gpa
    assert t.access(VA) == 0x8066_6234
    t.m.hart.mmu.sfence(VA, None, ctx=("V", vmid))
    t.tlb.sfence(VA, None, ("V", vmid))
    assert t.access(VA) == 0x8070_4234


def test_g_stage_g_bit_does_not_make_entries_global() -> None:
    """'The G bit in all G-stage PTEs is reserved ... and must be ignored by hardware': a
    translation through a G-stage leaf with G set is still fenced by an ASID-specific
    hfence.vvma."""
    t, ctx = nested_both(g_leaf={0x80003: GOOD | spec.U | spec.G})
    vmid, asid = spec.vmid_of(ctx.hgatp or 0), spec.asid_of(ctx.satp)
    assert t.access(VA) == 0x8050_3234
    t.write(VS_DATA_PTE, pt.make_pte(0x80004, GOOD))
    t.m.hart.mmu.sfence(None, asid, ctx=("V", vmid))
    t.tlb.sfence(None, asid, ("V", vmid))
    assert t.access(VA) == 0x8070_4234


def test_vmids_separate_guests() -> None:
    """Two guests under different VMIDs with the same vsatp keep their own translations; an
    hfence.gvma of one VMID leaves the other's entries."""
    t, ctx = nested_both()
    other = spec.Context(ctx.satp, spec.S_MODE, hgatp=(ctx.hgatp or 0) ^ (1 << 22))
    assert t.access(VA) == 0x8050_3234
    t.write(GPA_DATA_PTE, pt.make_pte(0x80666, GOOD | spec.U))
    t.use(other)
    assert t.access(VA) == 0x8066_6234
    t.use(ctx)
    assert t.access(VA) == 0x8050_3234
    t.m.hart.mmu.flush_nested(spec.vmid_of(other.hgatp or 0))
    t.tlb.hfence_gvma(spec.vmid_of(other.hgatp or 0))
    assert t.access(VA) == 0x8050_3234


def test_nested_entries_are_per_4k_page() -> None:
    """A first-stage megapage is kept page by page: another page of it walks again and sees
    the table as it is now, while the page already used stays stale."""
    t, ctx = nested_both(vs="mega", g="mega")
    assert t.access(0x0040_1234) == 0x8040_1234
    t.write(0x8040_1004, pt.make_pte(0x80400, GOOD))  # the VS megapage now maps gpa 0x8040_0000
    assert t.access(0x0040_1234) == 0x8040_1234
    before = t.m.hart.mmu.walks
    assert page(t.access(0x0040_2234)) == "trap 21"  # the G megapage does not cover it
    assert t.m.hart.mmu.walks == before + 1


@pytest.mark.parametrize("insn, flushed", [
    (spec.hfence_vvma(0, 0), True), (spec.hfence_gvma(0, 0), True),
    (spec.hfence_gvma(0, 6), False), (spec.sfence_vma(0, 0), False)])
def test_hypervisor_fence_instructions(insn: int, flushed: bool) -> None:
    """hfence.vvma / hfence.gvma run in S-mode (V=0) drop the guest's kept translations
    (hfence.gvma with rs2 naming another VMID does not); sfence.vma does not."""
    writes, vsatp, hgatp = guest()
    writes += [(0x8010_0000, insn), (0x8010_0004, spec.SRET)]
    m = machine_with(writes)
    ctx = spec.Context(vsatp, spec.S_MODE, hgatp=hgatp)
    enter_guest(m, ctx)
    assert m.translate(VA, spec.LOAD) == 0x8050_3234
    m.write_phys(GPA_DATA_PTE, pt.make_pte(0x80666, GOOD | spec.U).to_bytes(4, "little"))
    m.set_mode(spec.S_MODE)
    m.pc = 0x8010_0000
    m.set_reg(6, (spec.vmid_of(hgatp) + 1) & 0x7F)
    m.set_csr(C.HSTATUS, spec.HSTATUS_SPV | spec.HSTATUS_SPVP)
    assert m.run(max_steps=2).reason == "budget"
    assert (m.mode, m.hart.v) == (spec.U_MODE, 1)
    assert m.translate(VA, spec.LOAD) == (0x8066_6234 if flushed else 0x8050_3234)


@settings(max_examples=200)
@given(st.data())
def test_nested_tlb_follows_the_policy(data: st.DataObject) -> None:
    """Random guest accesses, writes to either stage's PTEs, hfence.vvma (by address and/or
    ASID), hfence.gvma and V=0 sfence.vma: the machine walks and hits as the policy says."""
    nt = data.draw(pt.nested_tables(), "tables")
    m, mem = setup(nt.writes)
    tlb = spec.TLB(mem)
    vmid = spec.vmid_of(nt.hgatp)
    addresses = tuple(sorted({pa for pa, _ in nt.writes}))
    log: list[str] = []
    for _ in range(data.draw(st.integers(5, 25), "ops")):
        op = data.draw(_NESTED_OPS)
        if op == "access":
            va, access, spvp, vs_sum, vs_mxr = data.draw(pt.guest_requests(nt))
            ctx = spec.Context(nt.vsatp, spvp, vs_sum, data.draw(st.booleans()), vs_mxr,
                               nt.hgatp)
            enter_guest(m, ctx)
            log.append(f"{('fetch', 'load', 'store')[access]} {va:#x} SPVP={spvp} "
                       f"SUM={int(vs_sum)} MXR={int(vs_mxr)}/{int(ctx.mxr)}")
            check_translate(m, tlb, va, access, ctx, "\n".join(log))
        elif op == "write" and addresses:
            pa = data.draw(st.sampled_from(addresses))
            value = mutate(data, mem.read_word(pa) or 0)
            write_pte(m, mem, pa, value)
            log.append(f"write {value:#010x} at {pa:#x}")
        elif op == "hfence.vvma":
            va = data.draw(st.one_of(st.none(), pt.guest_addresses(nt)))
            asid = data.draw(st.one_of(st.none(), st.just(spec.asid_of(nt.vsatp)),
                                       _SMALL_ASID))
            m.hart.mmu.sfence(va, asid, ctx=("V", vmid))
            tlb.sfence(va, asid, ("V", vmid))
            log.append(f"hfence.vvma {va}, {asid}")
        elif op == "hfence.gvma":
            which = data.draw(st.sampled_from((None, vmid, (vmid + 1) & 0x7F)))
            m.hart.mmu.flush_nested(which)
            tlb.hfence_gvma(which)
            log.append(f"hfence.gvma {which}")
        elif op == "sfence":
            m.hart.mmu.sfence(None, None)
            tlb.sfence(None, None)
            log.append("sfence.vma (V=0)")
