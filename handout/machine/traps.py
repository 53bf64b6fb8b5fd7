"""Trap causes and the exception that carries a trap through the simulator.

A `Trap` is raised wherever the hardware would take an exception (decode, a CSR check, a memory
access) and caught in one place, `Hart.take_trap`, which does what the privileged spec says a
trap into S-mode does.
"""

from __future__ import annotations

INTERRUPT = 1 << 31

# Exception causes (scause with the interrupt bit clear)
INSN_MISALIGNED = 0
INSN_ACCESS = 1
ILLEGAL_INSN = 2
BREAKPOINT = 3
LOAD_MISALIGNED = 4
LOAD_ACCESS = 5
STORE_MISALIGNED = 6
STORE_ACCESS = 7
ECALL_U = 8
ECALL_S = 9
INSN_PAGE_FAULT = 12
LOAD_PAGE_FAULT = 13
STORE_PAGE_FAULT = 15
INSN_GUEST_PAGE_FAULT = 20  # H extension: the G-stage refused the access
LOAD_GUEST_PAGE_FAULT = 21
STORE_GUEST_PAGE_FAULT = 23

# Interrupt causes (scause with the interrupt bit set)
S_TIMER_INTERRUPT = INTERRUPT | 5

CAUSE_NAMES = {
    INSN_MISALIGNED: "instruction address misaligned",
    INSN_ACCESS: "instruction access fault",
    ILLEGAL_INSN: "illegal instruction",
    BREAKPOINT: "breakpoint",
    LOAD_MISALIGNED: "load address misaligned",
    LOAD_ACCESS: "load access fault",
    STORE_MISALIGNED: "store address misaligned",
    STORE_ACCESS: "store access fault",
    ECALL_U: "environment call from U-mode",
    ECALL_S: "environment call from S-mode",
    INSN_PAGE_FAULT: "instruction page fault",
    LOAD_PAGE_FAULT: "load page fault",
    STORE_PAGE_FAULT: "store page fault",
    INSN_GUEST_PAGE_FAULT: "instruction guest-page fault",
    LOAD_GUEST_PAGE_FAULT: "load guest-page fault",
    STORE_GUEST_PAGE_FAULT: "store guest-page fault",
    S_TIMER_INTERRUPT: "supervisor timer interrupt",
}

# Memory access kinds, used to pick the right cause for a fault
FETCH, LOAD, STORE = 0, 1, 2
MISALIGNED_CAUSE = (INSN_MISALIGNED, LOAD_MISALIGNED, STORE_MISALIGNED)
ACCESS_CAUSE = (INSN_ACCESS, LOAD_ACCESS, STORE_ACCESS)
PAGE_FAULT_CAUSE = (INSN_PAGE_FAULT, LOAD_PAGE_FAULT, STORE_PAGE_FAULT)
GUEST_PAGE_FAULT_CAUSE = (INSN_GUEST_PAGE_FAULT, LOAD_GUEST_PAGE_FAULT, STORE_GUEST_PAGE_FAULT)


def cause_name(cause: int) -> str:
    return CAUSE_NAMES.get(cause, f"cause {cause:#x}")


class Trap(Exception):
    """A synchronous exception: `cause`, the `tval` for stval, and for guest-page faults the
    guest-physical address that the G-stage refused (`gpa`, for htval)."""

    def __init__(self, cause: int, tval: int = 0, gpa: int = 0) -> None:
        super().__init__(cause, tval, gpa)
        self.cause = cause
        self.tval = tval & 0xFFFF_FFFF
        self.gpa = gpa

    def __str__(self) -> str:
        return f"{cause_name(self.cause)} (stval={self.tval:#010x})"
