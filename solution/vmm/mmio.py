"""Devices: the guest's UART is emulated, one trapped access at a time.

The guest's UART is at the same guest-physical address as on the board, but no host frame backs
it, so every access faults into the VMM, which decodes the instruction and does what the device
would: a byte written to the transmit register goes to the guest's console; the line status
register reads "ready". Any other access to it is an access fault, as on the board.
"""

from __future__ import annotations

from machine.board import UART_BASE, UART_SIZE
from machine.decode import decode
from machine.memory import UART_LSR, UART_LSR_IDLE
from machine.traps import ACCESS_CAUSE, FETCH

from . import guestwalk
from .guest import Guest
from .guestwalk import GuestFault


def is_device(gpa: int) -> bool:
    return UART_BASE <= gpa < UART_BASE + UART_SIZE


def emulate_access(guest: Guest, va: int, gpa: int, access: int) -> None:
    """Emulate the load or store at the guest's pc that touched device address `gpa`."""
    v = guest.vcpu
    if access == FETCH or not is_device(gpa):
        raise GuestFault(ACCESS_CAUSE[access], va)
    m = guestwalk.translate(guest.mem, v.satp, v.pc, FETCH, v.mode,
                            False, False)  # the instruction was fetched, so this succeeds
    if not guest.mem.contains(m.gpa, 4):
        raise GuestFault(ACCESS_CAUSE[FETCH], v.pc)
    ins = decode(guest.mem.read_word(m.gpa))
    if ins is None or ins.op not in ("lb", "lbu", "sb"):
        raise GuestFault(ACCESS_CAUSE[access], va)  # the UART answers byte accesses only
    if ins.op == "sb":
        if gpa == UART_BASE:
            guest.console.append(v.x[ins.rs2] & 0xFF)
    elif ins.rd:
        v.x[ins.rd] = UART_LSR_IDLE if gpa - UART_BASE == UART_LSR else 0
    v.pc += 4
    v.instret += 1
    guest.emulated += 1
