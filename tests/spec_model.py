"""An independent model of RV32 address translation, trap entry and sret, from the spec.

Written from the RISC-V privileged specification (riscv/riscv-isa-manual), not from the
machine's code, so that tests can check the machine against it:

* src/supervisor.adoc, "Sv32" and "Virtual Address Translation Process" (the numbered steps
  below are that section's), "Memory Privilege in sstatus" (SUM, MXR), "SFENCE.VMA";
* src/hypervisor.adoc, "Two-Stage Address Translation", "Guest Physical Address Translation"
  (Sv32x4), "Guest-Page Faults", "htval", "Trap Entry", "hstatus" (SPV, GVA).

Choices the spec leaves to the implementation, fixed as vmlab's machine documents them:

* A and D are managed by Svade: step 7 raises a page fault, never updates the PTE;
* page tables live in RAM only: a PTE read anywhere else fails the PMA check of step 2;
* no VS-mode: a nested guest runs in real U-mode with V=1; its first stage checks the U bit and
  SUM against its virtual privilege `hstatus.SPVP` with `vsstatus.SUM`, and MXR is
  `vsstatus.MXR or sstatus.MXR` (hypervisor.adoc: "Setting MXR at HS-level, however, overrides
  both VS-stage and G-stage execute-only permissions"); SPVP is the VMM's to set, so trap
  entry leaves it alone;
* the G-stage's check of a VS-stage PTE read is "as though for an implicit load" and the
  implicit load obeys sstatus.MXR like any load;
* sret returns into V=1 when hstatus.SPV is set and SPP is U (there is no VS-mode to return
  to with SPP = S);
* illegal-instruction traps write the instruction bits to stval; a misaligned load or store
  traps before translation (the spec allows either priority).

The TLB is modelled apart (`TLB`), after the policy in the machine's docs: every successful
translation is kept; an access that a kept entry allows uses it, however the tables changed;
an access that no kept entry allows walks again and, when that walk succeeds, replaces the
entries for the address; faults are never kept. The model works on a `Memory` of words, not on
the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

# ----- constants (from the spec's tables) --------------------------------------------------------

FETCH, LOAD, STORE = 0, 1, 2
U_MODE, S_MODE = 0, 1
V, R, W, X, U, G, A, D = (1 << i for i in range(8))

PAGESIZE = 1 << 12
PTESIZE = 4
LEVELS = 2
MEGAPAGE = 1 << 22

INSN_MISALIGNED, INSN_ACCESS, ILLEGAL_INSN, BREAKPOINT = 0, 1, 2, 3
LOAD_MISALIGNED, LOAD_ACCESS, STORE_MISALIGNED, STORE_ACCESS = 4, 5, 6, 7
ECALL_U, ECALL_S = 8, 9
MISALIGNED = {FETCH: INSN_MISALIGNED, LOAD: LOAD_MISALIGNED, STORE: STORE_MISALIGNED}
ACCESS_FAULT = {FETCH: INSN_ACCESS, LOAD: LOAD_ACCESS, STORE: STORE_ACCESS}
PAGE_FAULT = {FETCH: 12, LOAD: 13, STORE: 15}
GUEST_PAGE_FAULT = {FETCH: 20, LOAD: 21, STORE: 23}
# traps whose stval is a virtual address (hstatus.GVA is set for them when V was 1)
VIRTUAL_ADDRESS_TRAPS = frozenset({BREAKPOINT, *MISALIGNED.values(), *ACCESS_FAULT.values(),
                                   *PAGE_FAULT.values(), *GUEST_PAGE_FAULT.values()})

SATP_MODE = 1 << 31
SSTATUS_SIE, SSTATUS_SPIE, SSTATUS_SPP = 1 << 1, 1 << 5, 1 << 8
SSTATUS_SUM, SSTATUS_MXR = 1 << 18, 1 << 19
HSTATUS_GVA, HSTATUS_SPV, HSTATUS_SPVP = 1 << 6, 1 << 7, 1 << 8

RAM_BASE = 0x8000_0000


def asid_of(satp: int) -> int:
    return (satp >> 22) & 0x1FF


def vmid_of(hgatp: int) -> int:
    return (hgatp >> 22) & 0x7F


# ----- physical memory ---------------------------------------------------------------------------


class Memory:
    """RAM as 32-bit words (absent words read 0); nothing else is readable by the walker."""

    def __init__(self, base: int = RAM_BASE, size: int = 16 << 20,
                 writes: Iterable[tuple[int, int]] = ()) -> None:
        self.base, self.size = base, size
        self.words: dict[int, int] = {}
        for pa, word in writes:
            self.write_word(pa, word)

    def is_ram(self, pa: int, size: int = 4) -> bool:
        return self.base <= pa and pa + size <= self.base + self.size

    def read_word(self, pa: int) -> int | None:
        """The aligned word at `pa`, or None when `pa` is not RAM."""
        if pa & 3 or not self.is_ram(pa):
            return None
        return self.words.get(pa, 0)

    def write_word(self, pa: int, word: int) -> None:
        if pa & 3 or not self.is_ram(pa):
            raise ValueError(f"{pa:#x} is not an aligned word of RAM")
        self.words[pa] = word & 0xFFFF_FFFF

    def load(self, pa: int, data: bytes) -> None:
        """Copy an image (e.g. what the board puts in RAM at reset) to word-aligned `pa`."""
        data = data + bytes(-len(data) % 4)
        for i in range(0, len(data), 4):
            word = int.from_bytes(data[i:i + 4], "little")
            if word:
                self.write_word(pa + i, word)


# ----- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A trap: scause, stval and (for guest-page faults) the guest-physical address whose
    translation failed (htval = gpa >> 2). `refs` counts the PTE reads made before it."""

    cause: int
    tval: int
    gpa: int = 0
    refs: int = field(default=0, compare=False)


@dataclass(frozen=True)
class StageLeaf:
    """The leaf one stage's walk found: the PTE, its level (1: megapage) and whether any PTE on
    the way had G set."""

    pte: int
    level: int
    glob: bool

    @property
    def size(self) -> int:
        return PAGESIZE << (10 * self.level)


@dataclass(frozen=True)
class Translation:
    """A successful translation: the physical address, the leaves of the stages that were on
    (None for a Bare stage or no G-stage), and the PTE reads it took."""

    pa: int
    leaf: StageLeaf | None
    g_leaf: StageLeaf | None
    refs: int


@dataclass(frozen=True)
class Context:
    """Everything translation depends on besides memory.

    Single stage (`hgatp` None): `satp`, the hart's privilege `priv`, sstatus.SUM and .MXR.
    Nested (`hgatp` set, V=1): `satp` is vsatp, `priv` is hstatus.SPVP, `sum` vsstatus.SUM,
    `vs_mxr` vsstatus.MXR, and `mxr` stays sstatus.MXR."""

    satp: int
    priv: int = S_MODE
    sum: bool = False
    mxr: bool = False
    vs_mxr: bool = False
    hgatp: int | None = None

    @property
    def nested(self) -> bool:
        return self.hgatp is not None


# ----- the Sv32 algorithm ------------------------------------------------------------------------


def permits(pte: int, access: int, priv: int, sum_: bool, mxr: bool) -> bool:
    """Step 5: do R/W/X and U allow `access` at privilege `priv` with SUM and MXR?

    "When MXR=1, loads from pages marked either readable or executable (R=1 or X=1) will
    succeed." "U-mode software may only access the page when U=1. If the SUM bit in the
    sstatus register is set, supervisor mode software may also access pages with U=1."
    "Irrespective of SUM, the supervisor may not execute code on pages with U=1."
    """
    if access == FETCH:
        kind_ok = bool(pte & X)
    elif access == LOAD:
        kind_ok = bool(pte & R) or (mxr and bool(pte & X))
    else:
        kind_ok = bool(pte & W)
    if not kind_ok:
        return False
    if priv == U_MODE:
        return bool(pte & U)
    if pte & U:
        return access != FETCH and sum_
    return True


def accessed_dirty_ok(pte: int, access: int) -> bool:
    """Step 7 under Svade: A must be set, and D too for a store."""
    return bool(pte & A) and (access != STORE or bool(pte & D))


def allows(pte: int, access: int, priv: int, sum_: bool, mxr: bool) -> bool:
    """Would a leaf (already known valid and well-formed) allow the access: steps 5 and 7."""
    return permits(pte, access, priv, sum_, mxr) and accessed_dirty_ok(pte, access)


def sv32_walk(address: int, access: int, root: int, *, root_index_bits: int,
              read_pte: Callable[[int], int | Fault], priv: int, sum_: bool, mxr: bool,
              fault: Callable[[], Fault]) -> StageLeaf | Fault:
    """The spec's steps 1 to 8 for one stage.

    `root`: a = satp.ppn x PAGESIZE (step 1). `root_index_bits`: 10 for Sv32; 12 for Sv32x4,
    whose root is four times as large and indexed by address bits 33:22. `read_pte(pte_addr)`
    is step 2's implicit read: the PTE, or the Fault that reading it raises. `access` is the
    access whose permissions are checked; `fault()` builds the exception to raise, "corresponding
    to the original access type"."""
    a, i = root, LEVELS - 1  # step 1
    glob = False
    while True:
        if i == 1:  # step 2
            vpn_i = (address >> 22) & ((1 << root_index_bits) - 1)
        else:
            vpn_i = (address >> 12) & 0x3FF
        pte = read_pte(a + vpn_i * PTESIZE)
        if isinstance(pte, Fault):
            return pte
        # step 3: invalid, W without R, or reserved bits: in a non-leaf PTE, D, A and U
        # "are reserved for future standard use"
        is_leaf = bool(pte & (R | X))
        if not pte & V or (not pte & R and pte & W) or (not is_leaf and pte & (D | A | U)):
            return fault()
        glob = glob or bool(pte & G)
        if not is_leaf:  # step 4: a pointer to the next level
            i -= 1
            if i < 0:
                return fault()
            a = (pte >> 10) * PAGESIZE
            continue
        if not permits(pte, access, priv, sum_, mxr):  # step 5
            return fault()
        if i > 0 and (pte >> 10) & ((1 << (10 * i)) - 1):  # step 6: misaligned superpage
            return fault()
        if not accessed_dirty_ok(pte, access):  # step 7 (Svade)
            return fault()
        return StageLeaf(pte, i, glob)  # step 8 is `leaf_address`


def leaf_address(leaf: StageLeaf, address: int) -> int:
    """Step 8: pa.pgoff = va.pgoff; for a superpage pa.ppn[i-1:0] = va.vpn[i-1:0]; the rest of
    the PPN from the PTE."""
    size = leaf.size
    return (((leaf.pte >> 10) * PAGESIZE) & ~(size - 1)) | (address & (size - 1))


class _Walker:
    """One translation: counts the PTE reads and reads them from memory."""

    def __init__(self, mem: Memory, va: int, access: int) -> None:
        self.mem, self.va, self.access = mem, va, access
        self.refs = 0

    def read(self, pa: int) -> int | Fault:
        """A PTE read at a (host-)physical address: "If accessing pte violates a PMA or PMP
        check, raise an access-fault exception corresponding to the original access type.\""""
        self.refs += 1
        word = self.mem.read_word(pa)
        if word is None:
            return Fault(ACCESS_FAULT[self.access], self.va)
        return word


def translate(mem: Memory, va: int, access: int, ctx: Context) -> Translation | Fault:
    """Translate `va` for `access` as the spec says, without any TLB."""
    va &= 0xFFFF_FFFF
    w = _Walker(mem, va, access)
    result = _translate(w, va, access, ctx)
    if isinstance(result, Fault):
        return replace(result, refs=w.refs)
    return result


def _translate(w: _Walker, va: int, access: int, ctx: Context) -> Translation | Fault:
    if not ctx.nested:
        if not ctx.satp & SATP_MODE:  # Bare: "supervisor virtual addresses are equal to
            return Translation(va, None, None, 0)  # supervisor physical addresses"
        leaf = sv32_walk(va, access, (ctx.satp & 0x3F_FFFF) * PAGESIZE, root_index_bits=10,
                         read_pte=w.read, priv=ctx.priv, sum_=ctx.sum, mxr=ctx.mxr,
                         fault=lambda: Fault(PAGE_FAULT[access], va))
        if isinstance(leaf, Fault):
            return leaf
        return Translation(leaf_address(leaf, va), leaf, None, w.refs)

    hgatp = ctx.hgatp or 0

    def g_stage(gpa: int, checked_as: int) -> tuple[int, StageLeaf | None] | Fault:
        """G-stage translation of `gpa`: hgatp for satp, the U bit checked as for U-mode,
        permissions of the access `checked_as`, guest-page faults of the original type."""
        if not hgatp & SATP_MODE:  # Bare: guest physical = supervisor physical
            return gpa, None
        root = (hgatp & 0x3F_FFFF & ~3) * PAGESIZE  # PPN[1:0] read as zeros: 16 KiB root
        leaf = sv32_walk(gpa, checked_as, root, root_index_bits=12, read_pte=w.read,
                         priv=U_MODE, sum_=False, mxr=ctx.mxr,
                         fault=lambda: Fault(GUEST_PAGE_FAULT[access], va, gpa))
        if isinstance(leaf, Fault):
            return leaf
        return leaf_address(leaf, gpa), leaf

    def read_vs_pte(gpa: int) -> int | Fault:
        """A VS-level PTE lives at a guest-physical address: "memory accesses made in support of
        VS-stage address translation" are "subject to G-stage address translation", checked
        "as though for an implicit load", reported "for the original access type"."""
        hpa = g_stage(gpa, LOAD)
        if isinstance(hpa, Fault):
            return hpa
        return w.read(hpa[0])

    leaf = None
    gpa = va
    if ctx.satp & SATP_MODE:
        leaf = sv32_walk(va, access, (ctx.satp & 0x3F_FFFF) * PAGESIZE, root_index_bits=10,
                         read_pte=read_vs_pte, priv=ctx.priv, sum_=ctx.sum,
                         mxr=ctx.vs_mxr or ctx.mxr,
                         fault=lambda: Fault(PAGE_FAULT[access], va))
        if isinstance(leaf, Fault):
            return leaf
        gpa = leaf_address(leaf, va)
    final = g_stage(gpa, access)
    if isinstance(final, Fault):
        return final
    return Translation(final[0], leaf, final[1], w.refs)


def walk_refs(first_levels: int | None, g_levels: int | None) -> int:
    """PTE reads of a successful walk: a first stage of `first_levels` levels (None: Bare), each
    PTE read and the final address taking a G-stage walk of `g_levels` (None: no G-stage or
    Bare). (2+1)(2+1)-1 = 8 for 4 KiB pages in both stages."""
    f = first_levels or 0
    g = g_levels or 0
    return f * (g + 1) + g


def access_memory(mem: Memory, va: int, size: int, access: int,
                  ctx: Context) -> Translation | Fault:
    """A whole aligned-or-not access of `size` bytes: misaligned check, translation, then the
    PMA check on the physical address (only RAM answers word accesses)."""
    va &= 0xFFFF_FFFF
    if va & (size - 1):
        return Fault(MISALIGNED[access], va)
    result = translate(mem, va, access, ctx)
    if isinstance(result, Fault):
        return result
    if not mem.is_ram(result.pa, size):
        return Fault(ACCESS_FAULT[access], va, refs=result.refs)
    return result


# ----- the TLB policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedTranslation:
    space: object  # "S" for single-stage, ("V", vmid) for a nested guest
    asid: int
    glob: bool
    base: int  # virtual base
    size: int
    pa_base: int
    leaf: StageLeaf | None
    g_leaf: StageLeaf | None

    def covers(self, va: int) -> bool:
        return self.base <= va < self.base + self.size

    def allows(self, access: int, ctx: Context) -> bool:
        """Does the kept entry allow this access under the current privilege, SUM and MXR?"""
        if self.leaf is not None:
            mxr = ctx.mxr or (ctx.vs_mxr if ctx.nested else False)
            if not allows(self.leaf.pte, access, ctx.priv, ctx.sum, mxr):
                return False
        if self.g_leaf is not None and not allows(self.g_leaf.pte, access, U_MODE, False,
                                                  ctx.mxr):
            return False
        return True


@dataclass(frozen=True)
class TLBResult:
    """What the policy says an access does: `walked` and then `outcome` (the walk's result), or
    a hit on kept entries, any of which may be used: `candidates` (physical addresses)."""

    walked: bool
    outcome: Translation | Fault | None
    candidates: frozenset[int] = frozenset()


def space_of(ctx: Context) -> object:
    return "S" if not ctx.nested else ("V", vmid_of(ctx.hgatp or 0))


class TLB:
    """The machine's documented TLB policy, on top of `translate`."""

    def __init__(self, mem: Memory) -> None:
        self.mem = mem
        self.entries: list[CachedTranslation] = []

    def _visible(self, va: int, ctx: Context) -> list[CachedTranslation]:
        space, asid = space_of(ctx), asid_of(ctx.satp)
        return [e for e in self.entries
                if e.space == space and (e.glob or e.asid == asid) and e.covers(va)]

    def access(self, va: int, access: int, ctx: Context) -> TLBResult:
        va &= 0xFFFF_FFFF
        if not ctx.nested and not ctx.satp & SATP_MODE:
            return TLBResult(False, Translation(va, None, None, 0), frozenset({va}))
        hits = [e for e in self._visible(va, ctx) if e.allows(access, ctx)]
        if hits:
            return TLBResult(False, None, frozenset(
                e.pa_base | (va & (e.size - 1)) for e in hits))
        result = translate(self.mem, va, access, ctx)
        if isinstance(result, Translation):
            doomed = self._visible(va, ctx)
            self.entries = [e for e in self.entries if e not in doomed]
            # single stage: one entry per page or megapage; nested: per 4 KiB page
            size = result.leaf.size if result.leaf is not None and not ctx.nested else PAGESIZE
            glob = result.leaf.glob if result.leaf is not None else False
            self.entries.append(CachedTranslation(
                space_of(ctx), asid_of(ctx.satp), glob, va & ~(size - 1), size,
                result.pa & ~(size - 1), result.leaf, result.g_leaf))
        return TLBResult(True, result)

    def access_memory(self, va: int, size: int, access: int,
                      ctx: Context) -> Translation | Fault:
        """`access_memory` through the TLB: the misaligned check, the policy's translation
        (a walk's result, or the kept entry's address), then the PMA check."""
        va &= 0xFFFF_FFFF
        if va & (size - 1):
            return Fault(MISALIGNED[access], va)
        result = self.access(va, access, ctx)
        if result.walked:
            assert result.outcome is not None
            outcome = result.outcome
        else:
            assert len(result.candidates) == 1, "kept entries disagree: say which one is used"
            outcome = Translation(next(iter(result.candidates)), None, None, 0)
        if isinstance(outcome, Translation) and not self.mem.is_ram(outcome.pa, size):
            return Fault(ACCESS_FAULT[access], va, refs=outcome.refs)
        return outcome

    def sfence(self, va: int | None = None, asid: int | None = None,
               space: object = "S") -> None:
        """sfence.vma (space "S") or hfence.vvma (space ("V", vmid)): drop the entries for
        `va` (all if None) of address space `asid` (all if None); "except for entries
        containing global mappings" when an ASID is given."""
        def doomed(e: CachedTranslation) -> bool:
            if e.space != space:
                return False
            if asid is not None and (e.glob or e.asid != asid & 0x1FF):
                return False
            return va is None or e.covers(va & 0xFFFF_FFFF)
        self.entries = [e for e in self.entries if not doomed(e)]

    def hfence_gvma(self, vmid: int | None = None) -> None:
        """hfence.gvma, as the machine over-fences it: every nested entry (of `vmid`)."""
        self.entries = [e for e in self.entries
                        if e.space == "S" or (vmid is not None and e.space != ("V", vmid))]


# ----- trap entry and sret -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrapState:
    """The architectural state trap entry and sret read and write."""

    mode: int
    v: int
    pc: int
    sstatus: int
    hstatus: int
    sepc: int = 0
    scause: int = 0
    stval: int = 0
    htval: int = 0
    stvec: int = 0


def take_trap(s: TrapState, cause: int, tval: int, gpa: int = 0) -> TrapState:
    """A trap into (H)S-mode.

    supervisor.adoc: "SPP is set to 0 if the trap originated from user mode, or 1 otherwise";
    "When a trap is taken into supervisor mode, SPIE is set to SIE, and SIE is set to 0"; sepc
    is "written with the virtual address of the instruction that was interrupted or that
    encountered the exception". hypervisor.adoc: "When a trap is taken into HS-mode,
    virtualization mode V is set to 0, and hstatus.SPV and sstatus.SPP are set" (SPV = V);
    GVA is 1 for "any trap (breakpoint, address misaligned, access fault, page fault, or
    guest-page fault) that writes a guest virtual address to stval", else 0; htval is the
    guest-physical address >> 2 for a guest-page fault, else 0. In vmlab a guest's nominal
    mode is U (it runs in real U-mode), so SPP is 0 for a trap from V=1."""
    sstatus = s.sstatus & ~(SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP)
    if s.sstatus & SSTATUS_SIE:
        sstatus |= SSTATUS_SPIE
    if s.mode == S_MODE:
        sstatus |= SSTATUS_SPP
    hstatus = s.hstatus & ~(HSTATUS_SPV | HSTATUS_GVA)
    if s.v:
        hstatus |= HSTATUS_SPV
        if cause in VIRTUAL_ADDRESS_TRAPS:
            hstatus |= HSTATUS_GVA
    htval = (gpa >> 2) if cause in GUEST_PAGE_FAULT.values() else 0
    return replace(s, mode=S_MODE, v=0, pc=s.stvec, sstatus=sstatus, hstatus=hstatus,
                   sepc=s.pc & ~3, scause=cause, stval=tval & 0xFFFF_FFFF, htval=htval)


def sret(s: TrapState) -> TrapState:
    """sret in S-mode with V=0: "the privilege level is set to user mode if the SPP bit is 0, or
    supervisor mode if the SPP bit is 1; SPP is then set to 0"; "SIE is set to SPIE, then SPIE
    is set to 1"; pc = sepc; and "When an SRET instruction is executed when V=0, V is set to
    SPV" (vmlab: only into U-mode, as there is no VS-mode)."""
    mode = S_MODE if s.sstatus & SSTATUS_SPP else U_MODE
    sstatus = (s.sstatus & ~(SSTATUS_SIE | SSTATUS_SPP)) | SSTATUS_SPIE
    if s.sstatus & SSTATUS_SPIE:
        sstatus |= SSTATUS_SIE
    v = 1 if mode == U_MODE and s.hstatus & HSTATUS_SPV else 0
    return replace(s, mode=mode, v=v, pc=s.sepc, sstatus=sstatus)


# ----- instruction encodings (the unprivileged and privileged specs' formats) --------------------


def _i(opcode: int, rd: int, f3: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode


def _s(opcode: int, f3: int, rs1: int, rs2: int, imm: int) -> int:
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1F) << 7) \
        | opcode


def addi(rd: int, rs1: int, imm: int) -> int:
    return _i(0x13, rd, 0, rs1, imm)


def lw(rd: int, rs1: int, imm: int = 0) -> int:
    return _i(0x03, rd, 2, rs1, imm)


def sw(rs2: int, rs1: int, imm: int = 0) -> int:
    return _s(0x23, 2, rs1, rs2, imm)


def jalr(rd: int, rs1: int, imm: int = 0) -> int:
    return _i(0x67, rd, 0, rs1, imm)


def csrrw(rd: int, csr: int, rs1: int) -> int:
    return _i(0x73, rd, 1, rs1, csr)


def csrrs(rd: int, csr: int, rs1: int) -> int:
    return _i(0x73, rd, 2, rs1, csr)


def sfence_vma(rs1: int, rs2: int) -> int:
    return (0x09 << 25) | (rs2 << 20) | (rs1 << 15) | 0x73


def hfence_vvma(rs1: int, rs2: int) -> int:
    return (0x11 << 25) | (rs2 << 20) | (rs1 << 15) | 0x73


def hfence_gvma(rs1: int, rs2: int) -> int:
    return (0x31 << 25) | (rs2 << 20) | (rs1 << 15) | 0x73


ECALL = 0x0000_0073
EBREAK = 0x0010_0073
SRET = 0x1020_0073
WFI = 0x1050_0073
