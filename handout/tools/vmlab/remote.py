"""The machine as a VMM sees it inside the grader's sandbox: the hardware is in the grading
process (vmlab/hardware.py), and this is its console.

Copied into the sandbox's `machine` package as machine/remote.py, where `Machine` is this
module's. RAM is a file mapped on both sides, so reading and writing it costs what it costs on
the machine itself. What the VMM does to the hart (its registers, CSR writes, TLB fences, the
timer, sret) is kept here until the hardware runs again, then sent in one message; a trap
arrives as one message with the hart's state. The hart's interpreter, its MMU and its TLB are
not in the sandbox at all.

The interface is the machine's, as far as a VMM uses it: `set_trap_handler`,
`add_trap_observer`, `run`, `halt`, `read_phys`, `write_phys`, `csr`, `set_csr`, `set_csrs`,
`pc`, `regs`, and the hart's `x`, `pc`, `mode`, `instret`, `time()`, `set_stimecmp`, `sret()`,
and `mmu.sfence`.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from . import csrs as _csrs
from .board import RAM_BASE, RAM_SIZE_DEFAULT
from .hart import Halt, TrapEvent
from .machine import EXIT_CODES, Stop
from .traps import Trap
from .wire import (
    CALL,
    DONE,
    NEW,
    REPLY,
    RESUME,
    RUN,
    SNAPSHOT_CSRS,
    TRAP,
    TRAP_STRUCT,
    Changes,
    Channel,
    Trapped,
    as_json,
)

_U32 = struct.Struct("<I")

_LINK: list[Channel] = []


def connect(fd: int) -> None:
    """The worker's socket to the grading process's hardware."""
    _LINK[:] = [Channel(socket.socket(fileno=fd))]


def _channel() -> Channel:
    if not _LINK:
        raise RuntimeError("the grader's hardware is not connected (this machine runs only in "
                           "the grader's sandbox)")
    return _LINK[0]


def _expect(op: int, got: int) -> None:
    if got != op:
        raise RuntimeError(f"the grader's hardware answered {got}, not {op}")


class Memory:
    """RAM (shared with the hardware) and the pages this side wrote since the hardware last
    ran: their compiled code, if any, is stale there."""

    def __init__(self, ram: mmap.mmap, ram_size: int) -> None:
        self.ram, self.ram_size = ram, ram_size
        self.dirty: set[int] = set()

    def read_bytes(self, pa: int, n: int) -> bytes | None:
        off = pa - RAM_BASE
        if n < 0 or off < 0 or off + n > self.ram_size:
            return None
        return self.ram[off:off + n]

    def write_bytes(self, pa: int, data: bytes) -> bool:
        off = pa - RAM_BASE
        if off < 0 or off + len(data) > self.ram_size:
            return False
        self.ram[off:off + len(data)] = data
        self.dirty.update(range(off >> 12, (off + len(data) + 4095) >> 12))
        return True


class MMU:
    def __init__(self, machine: Machine) -> None:
        self._m = machine

    def sfence(self, va: int | None, asid: int | None, ctx: object = "S") -> None:
        self._m._changes.fences.append((va, asid, ctx))

    def walk(self, va: int, access: int, satp: int, perms: Any, hgatp: int | None = None,
             tag: object = None) -> int:
        return self._ask("walk", va, access, satp, perms, hgatp, tag)

    def translate(self, va: int, access: int, satp: int, perms: Any,
                  hgatp: int | None = None, tag: object = None) -> int:
        return self._ask("translate", va, access, satp, perms, hgatp, tag)

    def _ask(self, op: str, va: int, access: int, satp: int, perms: Any, hgatp: int | None,
             tag: object) -> int:
        reply = self._m._call({"op": op, "va": va, "access": access, "satp": satp,
                               "perms": [perms.priv, perms.sum, perms.mxr, perms.mxr_g],
                               "hgatp": hgatp, "tag": tag})
        if "trap" in reply:
            raise Trap(*reply["trap"])
        return reply["pa"]


class Hart:
    """The hart as the VMM last saw it, and what it changes before the hardware runs again."""

    def __init__(self, machine: Machine, state: Trapped) -> None:
        self._m = machine
        self.mmu = MMU(machine)
        self._load(state)

    def _load(self, s: Trapped) -> None:
        self.x = s.x
        self._pc, self.mode, self.instret, self._time = s.hart_pc, s.hart_mode, s.instret, s.time
        self.csrs, self.stimecmp = s.csrs, s.stimecmp

    def _load_packed(self, v: tuple) -> None:
        """The state of a TRAP message, unpacked (wire.TRAP_STRUCT): every trap loads one."""
        self.x = list(v[6:38])
        self._pc, self.mode, self.instret, self._time = v[38:42]
        self.csrs, self.stimecmp = dict(zip(SNAPSHOT_CSRS, v[42:-1], strict=True)), v[-1]

    @property
    def pc(self) -> int:
        return self._pc

    @pc.setter
    def pc(self, value: int) -> None:
        self._pc = self._m._changes.pc = value & 0xFFFF_FFFF

    def time(self) -> int:
        return self._time

    def set_stimecmp(self, value: int) -> None:
        self.stimecmp = self._m._changes.stimecmp = value & ((1 << 64) - 1)

    def sret(self) -> None:
        self._m._changes.sret = True


class Machine:
    """One RV32 hart with RAM, run by the grader; see the module's docstring."""

    def __init__(self, ram_size: int = RAM_SIZE_DEFAULT, fast: bool = True) -> None:
        link = _channel()
        link.send(NEW, as_json({"ram_size": ram_size, "fast": fast}))
        op, payload, fd = link.receive(with_fd=True)
        _expect(REPLY, op)
        if fd is None:
            raise RuntimeError("the grader's hardware sent no RAM")
        self._handle = struct.unpack_from("<I", payload)[0]
        try:
            self._ram = mmap.mmap(fd, ram_size)
        finally:
            os.close(fd)
        self.mem = Memory(self._ram, ram_size)
        self._changes = Changes([])
        self._written: set[int] = set()  # CSRs written since the hardware last said them
        self.hart = Hart(self, Trapped.unpack(payload[4:]))
        # who the hardware runs, or a function that says (the grader's record charges the
        # pages the hardware writes to it)
        self.label: str | Callable[[], str] = ""
        self.stopped: Stop | None = None
        self._handler: Callable[[TrapEvent], None] | None = None
        self._observers: list[Callable[[TrapEvent], None]] = []

    # ----- registers, CSRs, memory -------------------------------------------------------------

    @property
    def regs(self) -> list[int]:
        return self.hart.x

    @property
    def pc(self) -> int:
        return self.hart.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self.hart.pc = value

    def csr(self, num: int) -> int:
        if num in self.hart.csrs and num not in self._written:
            return self.hart.csrs[num]
        reply = self._call({"op": "csr", "num": num})
        self.hart.csrs = {int(k): v for k, v in reply["csrs"].items()}
        return reply["value"]

    def set_csr(self, num: int, value: int) -> None:
        self.set_csrs([(num, value)])

    def set_csrs(self, writes: Iterable[tuple[int, int]]) -> None:
        for num, value in writes:
            if num not in _csrs._FIELD:  # as the machine's own write_many fails, at once
                raise KeyError(num)
            self._changes.csr_writes.append((num, value))
            self._written.add(num)

    def read_phys(self, addr: int, n: int) -> bytes:
        data = self.mem.read_bytes(addr, n)
        if data is None:
            raise ValueError(f"{addr:#x}+{n} is not RAM")
        return data

    def write_phys(self, addr: int, data: bytes) -> None:
        if not self.mem.write_bytes(addr, data):
            raise ValueError(f"{addr:#x}+{len(data)} is not RAM")
        first = (addr - RAM_BASE) >> 12
        self._changes.pages.update(range(first, (addr - RAM_BASE + len(data) + 4095) >> 12))

    # ----- traps and running -------------------------------------------------------------------

    def set_trap_handler(self, handler: Callable[[TrapEvent], None] | None) -> None:
        self._handler = handler

    def add_trap_observer(self, observer: Callable[[TrapEvent], None]) -> None:
        self._observers.append(observer)

    def halt(self, reason: str = "halted", detail: str = "") -> None:
        raise Halt(reason if reason in EXIT_CODES else "halted", detail)

    def run(self, max_steps: int = 10_000_000) -> Stop:
        if self.stopped is not None:
            return self.stopped
        if max_steps <= 0:
            return Stop("budget", f"a budget of {max_steps} steps runs nothing")
        link = _channel()
        link.send(RUN, struct.pack("<IQ", self._handle, max_steps) + self._pending())
        while True:
            op, payload, _ = link.receive()
            if op == DONE:
                self._sync(Trapped.unpack(payload[:Trapped.SIZE]))
                reason, detail = _json(payload[Trapped.SIZE:])
                stop = Stop(reason, detail)
                if reason != "budget":
                    self.stopped = stop
                return stop
            _expect(TRAP, op)
            self._on_trap(link, payload)

    def _on_trap(self, link: Channel, payload: bytes) -> None:
        v = TRAP_STRUCT.unpack(payload)
        self.hart._load_packed(v)
        self._written.clear()
        event = TrapEvent(v[0], v[1], v[2], v[3], bool(v[4]), v[5])
        ended = b""
        try:
            for observe in self._observers:
                observe(event)
            if self._handler is not None:
                self._handler(event)
        except Halt as h:
            ended = as_json({"halt": [h.reason, h.detail]})
        except Exception:  # noqa: BLE001 - as on the machine: the run stops, "handler-error"
            ended = as_json({"error": traceback.format_exc()})
        except BaseException:
            # SystemExit and the like leave the worker's probe: the hardware stops the run too
            link.send(RESUME, self._pending() + as_json({"error": "the VMM left its handler"}))
            raise
        try:
            changes = self._pending()
        except Exception:  # noqa: BLE001 - e.g. a register set to what is not a number
            changes, ended = _U32.pack(0), as_json({"error": traceback.format_exc()})
        link.send(RESUME, changes + ended)

    def _sync(self, t: Trapped) -> None:
        self.hart._load(t)
        self._written.clear()

    def _pending(self) -> bytes:
        """The changes since the hardware last ran, as a message part, and a clean slate."""
        c, self._changes = self._changes, Changes([])
        c.x, c.label = self.hart.x, str(self.label() if callable(self.label) else self.label)
        data = c.pack()
        return _U32.pack(len(data)) + data

    def _call(self, request: dict) -> dict:
        link = _channel()
        link.send(CALL, struct.pack("<I", self._handle) + self._pending() + as_json(request))
        op, payload, _ = link.receive()
        _expect(REPLY, op)
        self._written.clear()
        reply = _json(payload)
        if "failed" in reply:
            raise ValueError(reply["failed"])
        return reply


def ring(request: dict) -> dict:
    """The grader's ring of one IPC channel (only while the grader tests Channels)."""
    link = _channel()
    link.send(CALL, struct.pack("<I", 0) + struct.pack("<I", 0) + as_json(request))
    op, payload, _ = link.receive()
    _expect(REPLY, op)
    return _json(payload)


def _json(data: bytes) -> Any:
    import json
    return json.loads(data)
