"""The guest's page-table walk: guest-virtual to guest-physical, as its hardware would do it.

This is the Sv32 algorithm of the privileged spec (and of machine/mmu.py), run by the VMM in
software over the guest's own page tables in guest-physical memory, with the guest's virtual
privilege and its SUM and MXR. The shadow tables (shadow.py) compose its result with the VMM's
own map.
"""

from __future__ import annotations

from dataclasses import dataclass

from machine import csr
from machine.mmu import PTE_A, PTE_D, PTE_G, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X
from machine.traps import ACCESS_CAUSE, FETCH, LOAD, PAGE_FAULT_CAUSE, STORE

from .guestmem import GuestMemory

ALL = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D  # what "paging off" allows


class GuestFault(Exception):
    """The guest's own hardware would fault: reflect this into the guest."""

    def __init__(self, cause: int, tval: int) -> None:
        super().__init__(cause, tval)
        self.cause, self.tval = cause, tval


@dataclass(frozen=True)
class GuestMapping:
    """A successful guest walk: the guest-physical page and the leaf PTE that maps it."""

    gpa: int  # the translated address
    pte: int  # the leaf PTE (ALL when the guest's paging is off)
    size: int  # 4 KiB or 4 MiB
    global_: bool


def permits(pte: int, access: int, mode: int, sum_: bool, mxr: bool) -> bool:
    """Would the guest's hardware allow `access` through leaf `pte` in virtual `mode`?"""
    if access == FETCH:
        ok = pte & PTE_X
    elif access == LOAD:
        ok = pte & PTE_R or (mxr and pte & PTE_X)
    else:
        ok = pte & PTE_W
    if not ok or not pte & PTE_A or (access == STORE and not pte & PTE_D):
        return False
    if mode == 0:
        return bool(pte & PTE_U)
    return not (pte & PTE_U and (access == FETCH or not sum_))


def walk(mem: GuestMemory, satp: int, va: int) -> GuestMapping:
    """Find the leaf PTE for `va` (permissions are the caller's to check), or raise the page or
    access fault of a *load*; `translate` re-raises it for the real access type."""
    if not satp & csr.SATP_MODE_SV32:
        return GuestMapping(va, ALL, 4096, False)
    a = (satp & csr.SATP_PPN_MASK) << 12
    glob = False
    for level in (1, 0):
        pte_addr = a + ((va >> (12 + 10 * level)) & 0x3FF) * 4
        if not mem.contains(pte_addr, 4):
            raise GuestFault(ACCESS_CAUSE[LOAD], va)
        pte = mem.read_word(pte_addr)
        if not pte & PTE_V or (pte & (PTE_R | PTE_W)) == PTE_W:
            raise GuestFault(PAGE_FAULT_CAUSE[LOAD], va)
        glob = glob or bool(pte & PTE_G)
        if pte & (PTE_R | PTE_X):
            size = 4096 << (10 * level)
            if level and (pte >> 10) & 0x3FF:
                raise GuestFault(PAGE_FAULT_CAUSE[LOAD], va)  # misaligned megapage
            gpa = ((pte >> 10) << 12) & ~(size - 1) | (va & (size - 1))
            return GuestMapping(gpa, pte, size, glob)
        if pte & (PTE_D | PTE_A | PTE_U):
            raise GuestFault(PAGE_FAULT_CAUSE[LOAD], va)
        a = (pte >> 10) << 12
    raise GuestFault(PAGE_FAULT_CAUSE[LOAD], va)


def translate(mem: GuestMemory, satp: int, va: int, access: int, mode: int, sum_: bool,
              mxr: bool) -> GuestMapping:
    """The guest's translation of `va` for `access`, or the GuestFault its hardware raises."""
    try:
        m = walk(mem, satp, va)
    except GuestFault as fault:
        kind = ACCESS_CAUSE if fault.cause in ACCESS_CAUSE else PAGE_FAULT_CAUSE
        raise GuestFault(kind[access], va) from None
    if satp & csr.SATP_MODE_SV32 and not permits(m.pte, access, mode, sum_, mxr):
        raise GuestFault(PAGE_FAULT_CAUSE[access], va)
    return m
