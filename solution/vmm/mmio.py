"""Devices: the guest's UART is emulated, one trapped access at a time.

The guest's UART is at the same guest-physical address as on the board, but no host frame backs
it, so every access faults into the VMM, which decodes the instruction and does what the device
would, with the same model of the device as the bare machine (machine/uart.py) and a console of
the guest's own. Any access to it other than a byte load or store is an access fault, as on the
board.
"""

from __future__ import annotations

from machine.board import UART_BASE, UART_SIZE
from machine.decode import decode
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
    offset = gpa - UART_BASE
    if ins.op == "sb":
        if offset < 8:
            guest.uart.write(offset, v.x[ins.rs2])
    else:
        value = guest.uart.read(offset) if offset < 8 else 0
        if ins.op == "lb" and value & 0x80:
            value |= 0xFFFF_FF00  # lb sign-extends, as the bare machine's load does
        if ins.rd:
            v.x[ins.rd] = value
    v.pc += 4
    v.instret += 1
    guest.emulated += 1
