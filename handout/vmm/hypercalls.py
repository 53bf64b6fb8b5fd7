"""Hypercalls: the guest kernel's SBI calls, served by the VMM.

On the bare machine the firmware answers an S-mode ecall. A guest kernel runs in real U-mode,
so its ecall traps to the VMM instead, which gives the same answers the firmware would (see
machine/sbi.py) against the guest's virtual hardware: its timer, its console, its memory. The
lab's IPC extension (channels.py) is served here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from machine import sbi

from . import channels
from .guest import Guest

if TYPE_CHECKING:
    from .monitor import VMM

M32 = 0xFFFF_FFFF
SUPPORTED = sbi.SUPPORTED | {channels.EXT_IPC}


# STUDENT PART hypercall: yours to write
def hypercall(vmm: VMM, guest: Guest) -> None:
    """Serve the SBI call the guest kernel made at its pc (a7 = extension, a6 = function,
    arguments in a0..a2), exactly as the bare machine's firmware would, then return past the
    ecall (an SBI call counts as one retired instruction). A call that must wait (IPC) leaves
    the pc on the ecall, retires nothing and blocks the guest; one that stops the guest stops
    it.

    Hint: the guest's console, timer and memory are guest.console, guest.vcpu.stimecmp and
    guest.mem; guest-physical addresses must be checked with guest.mem.contains."""
    raise NotImplementedError("hypercall: hypercall is yours to write (see LAB.md)")


def _legacy(vmm: VMM, guest: Guest, eid: int, a0: int, a1: int) -> int:
    if eid == sbi.LEGACY_SET_TIMER:
        guest.vcpu.set_stimecmp(a0 | a1 << 32)
    elif eid == sbi.LEGACY_PUTCHAR:
        guest.console.append(a0 & 0xFF)
    elif eid == sbi.LEGACY_GETCHAR:
        return -1
    elif eid == sbi.LEGACY_SHUTDOWN:
        vmm.stop_guest(guest, "shutdown", "legacy SBI shutdown")
    else:
        return sbi.ERR_NOT_SUPPORTED
    return sbi.SUCCESS


def _standard(vmm: VMM, guest: Guest, eid: int, fid: int, a0: int, a1: int,
              a2: int) -> tuple[int, int]:
    if eid == sbi.EXT_BASE:
        if fid == 3:
            return sbi.SUCCESS, int(a0 in SUPPORTED)
        return sbi.base(fid, a0)
    if eid == sbi.EXT_TIME and fid == 0:
        guest.vcpu.set_stimecmp(a0 | a1 << 32)
        return sbi.SUCCESS, 0
    if eid == sbi.EXT_SRST and fid == 0:
        return _reset(vmm, guest, a0, a1)
    if eid == sbi.EXT_DBCN:
        return _console(guest, fid, a0, a1 | a2 << 32)
    return sbi.ERR_NOT_SUPPORTED, 0


def _reset(vmm: VMM, guest: Guest, kind: int, reason: int) -> tuple[int, int]:
    if kind > 2 or reason > 1:
        return sbi.ERR_INVALID_PARAM, 0
    names = {0: "shutdown", 1: "cold reboot", 2: "warm reboot"}
    if reason == 1:
        vmm.stop_guest(guest, "failure", f"SBI system reset ({names[kind]}) for a system failure")
    elif kind == 0:
        vmm.stop_guest(guest, "shutdown", "SBI system reset: shutdown")
    else:
        vmm.stop_guest(guest, "reboot", f"SBI system reset: {names[kind]}")
    return sbi.SUCCESS, 0


def _console(guest: Guest, fid: int, n: int, addr: int) -> tuple[int, int]:
    if fid == 0:  # write num_bytes from a guest-physical address
        if not guest.mem.contains(addr, n):
            return sbi.ERR_INVALID_PARAM, 0
        guest.console += guest.mem.read(addr, n)
        return sbi.SUCCESS, n
    if fid == 1:  # console_read: no input, ever, but the buffer must still be RAM
        return (sbi.SUCCESS if guest.mem.contains(addr, n) else sbi.ERR_INVALID_PARAM), 0
    if fid == 2:
        guest.console.append(n & 0xFF)
        return sbi.SUCCESS, 0
    return sbi.ERR_NOT_SUPPORTED, 0


def _ipc(vmm: VMM, guest: Guest, fid: int, cid: int, buf: int,
         size: int) -> tuple[int, int] | None:
    try:
        if fid == channels.SEND:
            result = vmm.channels.send(guest, cid, buf, size)
        elif fid == channels.RECEIVE:
            result = vmm.channels.receive(guest, cid, buf, size)
        else:
            return channels.ERR_NOT_SUPPORTED, 0
    except channels.BadBuffer as bad:
        vmm.stop_guest(guest, "killed", f"IPC hypercall misused: {bad}")
        return channels.ERR_FAILED, 0
    return result
