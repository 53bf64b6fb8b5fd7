"""The built-in SBI firmware: what OpenSBI would answer to an S-mode `ecall`.

Implemented (SBI spec v2.0): the base extension, the legacy set_timer, console_putchar,
console_getchar and shutdown, TIME, SRST and DBCN. Anything else returns SBI_ERR_NOT_SUPPORTED.
The call's a7 is the extension id, a6 the function id; results come back in a0 (error) and a1
(value), except for the legacy calls, which return only a0. An SBI call counts as one retired
instruction (real firmware would retire many; one keeps `instret` simple and deterministic).
"""

from __future__ import annotations

from .hart import Halt, Hart

SUCCESS = 0
ERR_FAILED = -1
ERR_NOT_SUPPORTED = -2
ERR_INVALID_PARAM = -3

EXT_BASE = 0x10
EXT_TIME = 0x54494D45  # "TIME"
EXT_SRST = 0x53525354  # "SRST"
EXT_DBCN = 0x4442434E  # "DBCN"
LEGACY_SET_TIMER, LEGACY_PUTCHAR, LEGACY_GETCHAR, LEGACY_SHUTDOWN = 0x00, 0x01, 0x02, 0x08

SPEC_VERSION = 2 << 24  # v2.0
IMPL_ID = 0x766D6C62  # "vmlb": not one of the registered implementation ids
IMPL_VERSION = 1
SUPPORTED = {EXT_BASE, EXT_TIME, EXT_SRST, EXT_DBCN,
             LEGACY_SET_TIMER, LEGACY_PUTCHAR, LEGACY_GETCHAR, LEGACY_SHUTDOWN}

M32 = 0xFFFF_FFFF


def firmware(h: Hart) -> int:
    """Serve the S-mode ecall at h.pc; return the pc to resume at."""
    eid, fid = h.x[17], h.x[16]
    a0, a1 = h.x[10], h.x[11]
    if eid < 0x10:
        legacy(h, eid, a0, a1)
    else:
        error, value = call(h, eid, fid, a0, a1, h.x[12])
        h.x[10], h.x[11] = error & M32, value & M32
    return h.pc + 4


def legacy(h: Hart, eid: int, a0: int, a1: int) -> None:
    result = SUCCESS
    if eid == LEGACY_SET_TIMER:
        h.set_stimecmp(a0 | a1 << 32)
    elif eid == LEGACY_PUTCHAR:
        h.mem.console.append(a0 & 0xFF)
    elif eid == LEGACY_GETCHAR:
        result = -1  # no input
    elif eid == LEGACY_SHUTDOWN:
        raise Halt("shutdown", "legacy SBI shutdown")
    else:
        result = ERR_NOT_SUPPORTED
    h.x[10] = result & M32


def call(h: Hart, eid: int, fid: int, a0: int, a1: int, a2: int) -> tuple[int, int]:
    if eid == EXT_BASE:
        return base(fid, a0)
    if eid == EXT_TIME and fid == 0:
        h.set_stimecmp(a0 | a1 << 32)
        return SUCCESS, 0
    if eid == EXT_SRST and fid == 0:
        return system_reset(a0, a1)
    if eid == EXT_DBCN:
        return debug_console(h, fid, a0, a1, a2)
    return ERR_NOT_SUPPORTED, 0


def base(fid: int, a0: int) -> tuple[int, int]:
    values = {0: SPEC_VERSION, 1: IMPL_ID, 2: IMPL_VERSION, 4: 0, 5: 0, 6: 0}
    if fid == 3:  # probe_extension
        return SUCCESS, int(a0 in SUPPORTED)
    if fid in values:
        return SUCCESS, values[fid]
    return ERR_NOT_SUPPORTED, 0


def system_reset(kind: int, reason: int) -> tuple[int, int]:
    if kind > 2 or reason > 1:
        return ERR_INVALID_PARAM, 0
    if reason == 1:
        raise Halt("failure", f"SBI system reset ({_RESETS[kind]}) for a system failure")
    if kind == 0:
        raise Halt("shutdown", "SBI system reset: shutdown")
    raise Halt("reboot", f"SBI system reset: {_RESETS[kind]}")


_RESETS = {0: "shutdown", 1: "cold reboot", 2: "warm reboot"}


def debug_console(h: Hart, fid: int, a0: int, a1: int, a2: int) -> tuple[int, int]:
    if fid == 0:  # console_write(num_bytes, base_addr_lo, base_addr_hi): physical memory
        data = h.mem.read_bytes(a1 | a2 << 32, a0)
        if data is None:
            return ERR_INVALID_PARAM, 0
        h.mem.console.extend(data)
        return SUCCESS, a0
    if fid == 1:  # console_read(num_bytes, base_addr_lo, base_addr_hi): never any input,
        # but the output memory must still be RAM (SBI v2.0: SBI_ERR_INVALID_PARAM otherwise)
        if h.mem.read_bytes(a1 | a2 << 32, a0) is None:
            return ERR_INVALID_PARAM, 0
        return SUCCESS, 0
    if fid == 2:  # console_write_byte
        h.mem.console.append(a0 & 0xFF)
        return SUCCESS, 0
    return ERR_NOT_SUPPORTED, 0
