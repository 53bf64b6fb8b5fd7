"""Nested paging: the hardware composes the two tables itself.

For a guest on nested paging the VMM writes no shadow. The guest's own table goes to the
hardware as it is (vsatp), and the VMM's map goes in a G-stage table (hgatp, Sv32x4) that the
machine walks for every guest-physical address, the guest's page-table entries included. The
VMM fills the G-stage lazily: the first touch of a guest-physical page is a guest-page fault
(causes 20, 21, 23) that backs it with a host frame. The guest's own page faults (its first
stage refused the access) are true faults: the VMM reflects them into the guest unchanged.
"""

from __future__ import annotations

from machine import Machine, csr
from machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

from .frames import PAGE, FrameAllocator
from .guestmem import GuestMemory

GUEST_LEAF = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D  # G-stage leaves are user pages


class GStage:
    def __init__(self, machine: Machine, frames: FrameAllocator, mem: GuestMemory,
                 vmid: int) -> None:
        self.machine = machine
        self.frames = frames
        self.mem = mem
        self.vmid = vmid
        self.root = frames.vmm_frames(4, align=4 * PAGE)  # a 16 KiB root for 34-bit addresses
        machine.write_phys(self.root, bytes(4 * PAGE))
        self.leaves: dict[int, int] = {}
        self.fills = 0

    def hgatp(self) -> int:
        return csr.HGATP_MODE_SV32X4 | self.vmid << csr.HGATP_VMID_SHIFT | self.root >> 12

    # STUDENT PART nested-map: yours to write
    def map(self, gpa: int) -> bool:
        """Back the guest-physical page of `gpa` with a host frame in the G-stage table.
        Return False (and map nothing) when `gpa` is not guest RAM.

        Hint: the root has 4096 entries indexed by gpa[33:22]; leaves must have U set, since
        the G-stage checks every access as a user access.
        """
        raise NotImplementedError("nested-map: GStage.map is yours to write (see LAB.md)")
