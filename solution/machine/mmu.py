"""Address translation: Sv32, the nested (two-stage) walk, and the TLB.

Single stage (the hart is not running a nested guest): `satp` selects Bare or Sv32, and the U bit,
SUM and MXR are checked against the hart's real privilege, as the privileged spec's Sv32
algorithm says.

Two stage (V=1, see hart.py): the guest's own table (`vsatp`, first stage) maps guest-virtual to
guest-physical addresses, and every guest-physical address the walk touches, the guest's PTEs
included, goes through the VMM's table (`hgatp`, Sv32x4, the G-stage) to a host-physical one, as
the H extension specifies. A refusal by the G-stage is a *guest-page fault* (causes 20, 21, 23)
carrying the guest-physical address for htval. Deviation from the H extension, because this hart
has no VS-mode: a nested guest always runs in real U-mode, and the first stage checks U and SUM
against the guest's virtual privilege in `hstatus.SPVP` (1: its kernel, 0: its user mode), which
the VMM sets; the guest's SUM and MXR are `vsstatus.SUM` and `vsstatus.MXR`.

Accessed and dirty bits follow Svade: a leaf with A clear, or D clear on a store, is a page fault;
the hardware never writes a PTE.

The TLB keeps every translation that succeeded. A later access that a cached entry allows uses
it, even if the table changed since: that staleness is architectural until `sfence.vma` (or
`hfence.*`). An access the cached entry does not allow walks the table again (so raising a
permission, or validating an invalid PTE, is seen at once, as on QEMU). Invalid PTEs are never
cached. ASIDs (9 bits) and VMIDs (7 bits) tag entries; G marks global ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import csr
from .memory import PhysicalMemory
from .traps import (
    ACCESS_CAUSE,
    FETCH,
    GUEST_PAGE_FAULT_CAUSE,
    LOAD,
    PAGE_FAULT_CAUSE,
    STORE,
    Trap,
)

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
U_MODE, S_MODE = 0, 1


@dataclass(frozen=True)
class Permissions:
    """Who is asking: the privilege the first stage checks, and the SUM/MXR bits that apply."""

    priv: int
    sum: bool
    mxr: bool  # for the first stage
    mxr_g: bool = False  # for the G-stage (sstatus.MXR only)


@dataclass(frozen=True)
class Entry:
    """A cached translation: the leaf PTE(s) and the page base it maps to."""

    pte: int  # first-stage leaf PTE, or NO_STAGE when the guest's paging is off
    gpte: int  # G-stage leaf for the page, or 0 when there is no G-stage
    base: int  # physical address of the page (4 KiB, or 4 MiB for a megapage)
    size: int  # 4096 or 4 MiB


BARE_PTE = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D  # a Bare G-stage allows all
NO_STAGE = -1  # the `pte` of an entry whose first stage is Bare: nothing to check


def allowed(pte: int, access: int, perms: Permissions, g_stage: bool = False) -> bool:
    """Does a leaf PTE allow this access? (Sv32 step 5 and Svade's step 7.)"""
    if access == FETCH:
        ok = pte & PTE_X
    elif access == LOAD:
        ok = pte & PTE_R or ((perms.mxr_g if g_stage else perms.mxr) and pte & PTE_X)
    else:
        ok = pte & PTE_W
    if not ok or not pte & PTE_A or (access == STORE and not pte & PTE_D):
        return False
    if g_stage:  # the G-stage treats every access as a user access
        return bool(pte & PTE_U)
    if perms.priv == U_MODE:
        return bool(pte & PTE_U)
    # S-mode never executes user pages; it reads and writes them only with SUM
    return not (pte & PTE_U and (access == FETCH or not perms.sum))


class MMU:
    """Translates virtual to physical addresses for one hart and keeps its TLB."""

    def __init__(self, mem: PhysicalMemory, on_flush: Callable[[], None]) -> None:
        self.mem = mem
        self.on_flush = on_flush  # the hart drops its fast-path caches whenever the TLB changes
        self.tlb: dict[tuple, Entry] = {}
        self.refs = 0  # page-table reads by the walker, in all
        self.last_refs = 0  # page-table reads by the most recent walk
        self.walks = 0

    # ----- translation -------------------------------------------------------------------

    def translate(self, va: int, access: int, satp: int, perms: Permissions,
                  hgatp: int | None = None) -> int:
        """Translate `va` for `access`, or raise the trap the hardware would.

        `hgatp` is None for single-stage translation; for a nested guest it is the G-stage
        register and `satp` is the guest's `vsatp`.
        """
        nested = hgatp is not None
        if not nested and not satp & csr.SATP_MODE_SV32:
            return va  # Bare: the address is already physical
        keys = self._keys(va, satp, hgatp)
        for key in keys:
            e = self.tlb.get(key)
            if e is not None and (e.pte < 0 or allowed(e.pte, access, perms)) and (
                    not nested or allowed(e.gpte, access, perms, g_stage=True)):
                return e.base | (va & (e.size - 1))
        entry, key = self._walk(va, access, satp, perms, hgatp, keys)
        replaced = [k for k in keys if k in self.tlb]
        for k in replaced:
            del self.tlb[k]
        self.tlb[key] = entry
        if replaced:
            self.on_flush()
        return entry.base | (va & (entry.size - 1))

    def walk(self, va: int, access: int, satp: int, perms: Permissions,
             hgatp: int | None = None) -> int:
        """Translate from the tables alone, ignoring and not filling the TLB."""
        if hgatp is None and not satp & csr.SATP_MODE_SV32:
            return va
        entry, _ = self._walk(va, access, satp, perms, hgatp, self._keys(va, satp, hgatp))
        return entry.base | (va & (entry.size - 1))

    def _keys(self, va: int, satp: int, hgatp: int | None) -> tuple:
        """TLB keys that could hold `va`: (context, address space, level, page number)."""
        asid = (satp >> csr.SATP_ASID_SHIFT) & csr.SATP_ASID_MASK
        ctx = "S" if hgatp is None else ("V", (hgatp >> csr.HGATP_VMID_SHIFT) & csr.HGATP_VMID_MASK)
        vpn = va >> 12
        return ((ctx, asid, 0, vpn), (ctx, "G", 0, vpn),
                (ctx, asid, 1, vpn >> 10), (ctx, "G", 1, vpn >> 10))

    def _walk(self, va: int, access: int, satp: int, perms: Permissions,
              hgatp: int | None, keys: tuple) -> tuple[Entry, tuple]:
        self.walks += 1
        self.last_refs = 0
        nested = hgatp is not None
        if satp & csr.SATP_MODE_SV32:
            pte, level, glob = self._sv32(va, access, satp, perms, hgatp)
            if not allowed(pte, access, perms):
                raise Trap(PAGE_FAULT_CAUSE[access], va)
            size = 4096 << (10 * level)
            gpa = ((pte >> 10) << 12) & ~(size - 1) | (va & (size - 1))
        else:  # a nested guest with its own paging off: guest-virtual is guest-physical
            pte, level, glob, size, gpa = NO_STAGE, 0, False, 4096, va
        if not nested:
            return Entry(pte, 0, gpa & ~(size - 1), size), keys[2 * level + glob]
        hpa, gpte = self._g_stage(gpa, access, va, perms, hgatp)
        # a nested translation is cached per 4 KiB page whatever the two stages' page sizes
        return Entry(pte, gpte, hpa & ~0xFFF, 4096), keys[glob]

    def _sv32(self, va: int, access: int, satp: int, perms: Permissions,
              hgatp: int | None) -> tuple[int, int, bool]:
        """Walk the first-stage table; return the leaf PTE, its level and whether it is global."""
        a = (satp & csr.SATP_PPN_MASK) << 12
        glob = False
        for level in (1, 0):
            pte_addr = a + ((va >> (12 + 10 * level)) & 0x3FF) * 4
            if hgatp is not None:  # the guest's PTE lives at a guest-physical address:
                # checked as an implicit load, any fault reported for the original access
                pte_addr, _ = self._g_stage(pte_addr, LOAD, va, perms, hgatp, original=access)
            pte = self._read_pte(pte_addr, va, access)
            if not pte & PTE_V or (pte & (PTE_R | PTE_W)) == PTE_W:
                raise Trap(PAGE_FAULT_CAUSE[access], va)
            glob = glob or bool(pte & PTE_G)
            if pte & (PTE_R | PTE_X):
                if level == 1 and (pte >> 10) & 0x3FF:
                    raise Trap(PAGE_FAULT_CAUSE[access], va)  # misaligned megapage
                return pte, level, glob
            if pte & (PTE_D | PTE_A | PTE_U):  # reserved in a non-leaf PTE
                raise Trap(PAGE_FAULT_CAUSE[access], va)
            a = (pte >> 10) << 12
        raise Trap(PAGE_FAULT_CAUSE[access], va)  # a pointer at the last level

    def _g_stage(self, gpa: int, access: int, va: int, perms: Permissions, hgatp: int,
                 original: int | None = None) -> tuple[int, int]:
        """Translate a guest-physical address through the VMM's table (Sv32x4). `access` is
        what the permissions are checked for; faults, guest-page and access faults alike, are
        reported for the `original` access type (the same unless this is a VS-stage PTE read)."""
        original = access if original is None else original
        fault = GUEST_PAGE_FAULT_CAUSE[original]
        if not hgatp & csr.HGATP_MODE_SV32X4:
            return gpa, BARE_PTE
        a = (hgatp & csr.SATP_PPN_MASK & ~3) << 12  # a 16 KiB root
        for level in (1, 0):
            index = (gpa >> 22) & 0xFFF if level else (gpa >> 12) & 0x3FF
            pte = self._read_pte(a + index * 4, va, original)
            if not pte & PTE_V or (pte & (PTE_R | PTE_W)) == PTE_W:
                raise Trap(fault, va, gpa)
            if pte & (PTE_R | PTE_X):
                size = 4096 << (10 * level)
                if (level and (pte >> 10) & 0x3FF) or not allowed(pte, access, perms, True):
                    raise Trap(fault, va, gpa)
                return ((pte >> 10) << 12) & ~(size - 1) | (gpa & (size - 1)), pte
            if pte & (PTE_D | PTE_A | PTE_U):
                raise Trap(fault, va, gpa)
            a = (pte >> 10) << 12
        raise Trap(fault, va, gpa)

    def _read_pte(self, pa: int, va: int, access: int) -> int:
        self.refs += 1
        self.last_refs += 1
        off = self.mem.ram_offset(pa)
        if off < 0:  # page tables must live in RAM
            raise Trap(ACCESS_CAUSE[access], va)
        return self.mem.u32[off >> 2]

    # ----- fences --------------------------------------------------------------------------

    def sfence(self, va: int | None, asid: int | None, ctx: object = "S") -> None:
        """Drop cached translations of `ctx` for `va` (all if None) and `asid` (all if None);
        global entries survive an ASID-specific fence."""
        vpn = None if va is None else (va & 0xFFFF_FFFF) >> 12
        doomed = [k for k in self.tlb if _matches(k, ctx, vpn, asid)]
        for k in doomed:
            del self.tlb[k]
        self.on_flush()

    def flush_nested(self, vmid: int | None = None) -> None:
        """hfence.gvma: forget every nested translation (of one VMID, or all)."""
        doomed = [k for k in self.tlb
                  if k[0] != "S" and (vmid is None or k[0][1] == vmid)]
        for k in doomed:
            del self.tlb[k]
        self.on_flush()


def _matches(key: tuple, ctx: object, vpn: int | None, asid: int | None) -> bool:
    kctx, kasid, level, kvpn = key
    if kctx != ctx:
        return False
    if asid is not None and (kasid == "G" or kasid != asid):
        return False
    return vpn is None or kvpn == (vpn >> 10 if level else vpn)
