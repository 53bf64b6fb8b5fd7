"""Shadow page tables: the composition of the guest's table and the VMM's map.

The real MMU walks one table. For a guest under shadow paging that table is built here, lazily:
when the guest touches a page the shadow does not map yet, the hardware raises a page fault (a
*hidden* fault: the guest's own hardware would not have faulted), and `fill` walks the guest's
table (guest-virtual to guest-physical), looks the guest-physical page up in the VMM's map
(guest-physical to host-physical), and writes the composed entry (guest-virtual to
host-physical). If the guest's own walk fails, the fault is *true* and goes to the guest.

The guest kernel runs in real U-mode, so every shadow entry has U=1 and the guest's U bit, SUM and
MXR cannot be left to the hardware. Instead there are two shadow tables, one per virtual mode: the
S view maps what the guest kernel may touch, the U view what its user processes may touch. Each
entry grants exactly the accesses the guest's hardware would allow in that mode (guestwalk.permits),
so a store to a read-only page or a user access to a kernel page faults, the fault re-walks the
guest table, and the guest gets the page fault it expects. Each view has its own ASID, so switching
views does not flush the TLB.

Shadows act as the guest's TLB: they are dropped when the guest writes satp, changes SUM or MXR,
or executes sfence.vma.
"""

from __future__ import annotations

from machine import Machine, csr
from machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X
from machine.traps import FETCH, LOAD, STORE

from . import guestwalk
from .frames import PAGE, FrameAllocator
from .guestmem import GuestMemory
from .vcpu import S, U, VirtualCPU

VIEWS = (S, U)


class ShadowTables:
    def __init__(self, machine: Machine, frames: FrameAllocator, mem: GuestMemory,
                 asid_base: int) -> None:
        self.machine = machine
        self.frames = frames
        self.mem = mem
        self.asid = {S: asid_base, U: asid_base + 1}
        self.spare: list[int] = []  # second-level tables freed by a flush, for reuse
        self.root = {view: self._table() for view in VIEWS}
        self.leaves: dict[int, dict[int, int]] = {S: {}, U: {}}  # view -> VPN[1] -> table
        self.fills = 0
        self.flushes = 0

    def satp(self, mode: int) -> int:
        """The host satp that runs the guest in virtual `mode`."""
        return csr.SATP_MODE_SV32 | self.asid[mode] << csr.SATP_ASID_SHIFT | self.root[mode] >> 12

    # STUDENT PART shadow-fill: yours to write
    def fill(self, vcpu: VirtualCPU, va: int, access: int) -> int:
        """Handle a page fault the hardware took at guest-virtual `va` for `access`.

        Walk the guest's own table as its hardware would (guestwalk.translate, with the guest's
        virtual mode, SUM and MXR). If that walk faults, let the GuestFault propagate: the fault
        is the guest's. Otherwise find the host frame behind the guest-physical page and write a
        shadow entry for `va`'s page in the view of the guest's current mode, granting exactly
        the accesses the guest's hardware would grant. Return the guest-physical address `va`
        maps to; if it is not guest RAM (a device), write nothing and let the caller emulate it.

        Hint: an entry must never grant more than the guest's PTE does, and the shadow of a
        guest megapage is made of 4 KiB entries, filled one page at a time.
        """
        raise NotImplementedError("shadow-fill: ShadowTables.fill is yours to write (see LAB.md)")

    # STUDENT PART shadow-flush: yours to write
    def flush(self) -> None:
        """Forget every shadow entry of this guest, in both views, and make the hardware forget
        the translations it cached from them (sfence.vma for both ASIDs). Called when the guest
        writes satp, changes SUM or MXR, or executes sfence.vma. Afterwards the tables must be
        fit for the next fills: an entry filled again translates as before the flush.

        Hint: zero both root tables and keep the second-level tables in self.spare for reuse;
        self.machine.hart.mmu.sfence(None, asid) is what an sfence.vma with that ASID does."""
        raise NotImplementedError("shadow-flush: ShadowTables.flush is yours to write (see LAB.md)")

    def _write_leaf(self, view: int, va: int, host: int, flags: int) -> None:
        vpn1, vpn0 = va >> 22, (va >> 12) & 0x3FF
        table = self.leaves[view].get(vpn1)
        if table is None:
            table = self.leaves[view][vpn1] = self._table()
            pointer = (table >> 12) << 10 | PTE_V
            self.machine.write_phys(self.root[view] + vpn1 * 4, pointer.to_bytes(4, "little"))
        pte = (host >> 12) << 10 | flags
        self.machine.write_phys(table + vpn0 * 4, pte.to_bytes(4, "little"))

    def _table(self) -> int:
        table = self.spare.pop() if self.spare else self.frames.vmm_frame()
        self.machine.write_phys(table, bytes(PAGE))
        return table
