"""The machine as a VMM sees it inside the grader's sandbox: a console to a copy of the
hardware (hardware.py) in this process, whose every message is logged for the grading process,
which replays them on the hardware of record.

Copied into the sandbox's `machine` package as machine/remote.py; `machine.Machine` is this
module's. RAM is the copy's own, so reading and writing it costs what it costs on the machine
itself; each write the VMM makes is logged, so that the grader's RAM follows (writes one after
the other go as one message; zeros written over zeros, as on a fresh frame, go as none). What
the VMM does to the hart (its registers, CSR writes, TLB fences, the timer, sret) is kept here
until the hardware runs again, then sent in one message; a trap arrives as one message with the
hart's state.

The interface is the machine's, as far as a VMM uses it: `set_trap_handler`,
`add_trap_observer`, `run`, `halt`, `read_phys`, `write_phys`, `csr`, `set_csr`, `set_csrs`,
`pc`, `regs`, and the hart's `x`, `pc`, `mode`, `instret`, `time()`, `set_stimecmp`, `sret()`,
and `mmu.sfence`.
"""

from __future__ import annotations

import gc
import mmap
import os
import socket
import struct
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from . import csrs as _csrs
from .board import RAM_BASE, RAM_SIZE_DEFAULT
from .hardware import PAGE, pages_of, zero
from .hart import Halt, TrapEvent
from .machine import EXIT_CODES, Stop
from .traps import Trap
from .wire import (
    CALL,
    DONE,
    END,
    FREE,
    HEADER,
    NEW,
    RAM,
    RAM_WRITE,
    REPLY,
    RESUME,
    RUN,
    SNAPSHOT_CSRS,
    TRAP,
    TRAP_STRUCT,
    ZEROS,
    Changes,
    Channel,
    Trapped,
    WireError,
    as_json,
)

_U32 = struct.Struct("<I")
# a RAM message whole, its header and its write (HEADER + RAM_WRITE): a VMM that backs a
# guest's pages writes two a page, thousands an example, so each costs one pack
_RAM_RECORD = struct.Struct(HEADER.format + RAM_WRITE.format.lstrip("<"))
ZERO_PAGE = bytes(PAGE)
CHUNK = 1 << 18  # the most a RAM message carries: well under wire.MAX_MESSAGE

_LINK: list[LocalLink] = []


def connect(fd: int, runs: bool = True) -> None:
    """The worker's socket to the grading process's hardware (which runs nothing, if not
    `runs`: hardware.HANDLER_PROBES)."""
    _LINK[:] = [LocalLink(Channel(socket.socket(fileno=fd)), runs)]


def begin(probe: str, args: dict) -> None:
    """A request begins: the hardware's budget for it (the grader's is the same)."""
    if _LINK:
        _LINK[0].hardware.begin(probe, args)


def finish(seq: object) -> None:
    """A request's log is whole: the grader replays it to its end before it takes the answer."""
    if _LINK:
        _LINK[0].finish(seq)


def _channel() -> LocalLink:
    if not _LINK:
        raise RuntimeError("the grader's hardware is not connected (this machine runs only in "
                           "the grader's sandbox)")
    return _LINK[0]


class LocalLink:
    """The hardware, run in this process: a copy of the grader's (hardware.py), with every
    message between it and the VMM logged, in order, for the grader. The grader replays the
    log on its own hardware and checks that its hardware says, byte for byte, what this copy
    said; so the VMM runs at the speed of one process, and no verdict rests on this copy.

    To the VMM's side (Machine) this is a channel: NEW, RUN and CALL are served at once, a
    trap calls the running Machine's handler, and the hardware's answers wait in `inbox`."""

    FLUSH = 1 << 14  # bytes of log kept before they go to the grader (who replays meanwhile)

    def __init__(self, out: Channel, runs: bool = True) -> None:
        from .hardware import Hardware
        self.out = out
        self.log = bytearray()
        self.inbox: deque = deque()  # the hardware's answers to the VMM: REPLY, DONE
        self.resumes: deque = deque()  # the VMM's RESUME, for the trap that waits for it
        self.on_trap: Callable[[bytes], None] | None = None
        self.freed: list[int] = []  # machines the VMM let go of (their RAM is freed here too)
        self.writing: tuple[int, int, bytearray] | None = None  # (handle, pa, bytes)
        self.hardware = Hardware(_HardwareSide(self), runs)

    def send(self, op: int, payload: bytes = b"", fds: list[int] | None = None) -> None:
        if op == NEW and self._crowded(payload):
            gc.collect()  # machines no one holds, in cycles: let them go before a new one
        self._free()
        if op == NEW:
            self.flush()  # so that the NEW is still here if the machine cannot be made
        self.record(op, payload)
        if op == RUN:
            self.resumes.clear()  # one a handler sent before it left by SystemExit, say
        if op == RESUME:
            self.resumes.append(payload)
        elif op == CALL and payload[:4] == bytes(4):  # the grader's own ring: a live call
            self.flush()
            self.inbox.append(self.out.receive())
        elif op == NEW:
            # a machine this process has no room for (its address space is capped) was never
            # made: the grader must not hear of it, or its machines would outnumber these
            mark = len(self.log) - HEADER.size - len(payload)
            try:
                try:
                    self.hardware.serve(op, payload)
                except (OSError, MemoryError):
                    # the address space went to machines no one holds, kept in cycles (a VMM
                    # in a traceback): the bound above counts RAM, not the interpreter
                    gc.collect()
                    self.hardware.serve(op, payload)
            except BaseException:
                del self.log[mark:]
                raise
        else:
            self.hardware.serve(op, payload)

    def receive(self, with_fd: bool = False) -> tuple[int, bytes, int | None]:
        return self.inbox.popleft()

    def _crowded(self, new: bytes) -> bool:
        """Whether a machine of this size would take the machines' RAM past the hardware's
        bound (hardware.MAX_TOTAL_RAM)."""
        from .hardware import MAX_TOTAL_RAM
        try:
            size = int(_json(new)["ram_size"])
        except (ValueError, KeyError, TypeError):
            return False
        return self.hardware.ram_held() + size > MAX_TOTAL_RAM

    def ram(self, handle: int, pa: int, data: bytes, zeros: bool) -> None:
        """The VMM wrote RAM (all zeros, if `zeros`: Memory has looked): the grader's copy is
        written at the same point of the log. A write that continues the last one, on the same
        machine, joins its message: a VMM that maps a guest's RAM writes a table's PTEs one
        after the other, and the grader takes one message for them, not a thousand."""
        w = self.writing
        if w is not None and not zeros and w[0] == handle and w[1] + len(w[2]) == pa \
                and len(w[2]) + len(data) <= CHUNK:
            w[2].extend(data)
            return
        self._log_writing()
        if zeros:
            self.log += _RAM_RECORD.pack(RAM, RAM_WRITE.size, handle, pa, len(data) | ZEROS)
        elif len(data) < CHUNK:
            self.writing = (handle, pa, bytearray(data))
        else:
            for at in range(0, len(data), CHUNK):
                self._log_ram(handle, pa + at, data[at:at + CHUNK])
        if len(self.log) > self.FLUSH:
            self.flush()

    def _log_ram(self, handle: int, pa: int, data: bytes | bytearray) -> None:
        self.log += _RAM_RECORD.pack(RAM, RAM_WRITE.size + len(data), handle, pa, len(data))
        self.log += data

    def _log_writing(self) -> None:
        """The write being joined goes into the log: before any other message, so that the
        grader's RAM is what this side's was when the message was sent."""
        if self.writing is not None:
            self._log_ram(*self.writing)
            self.writing = None

    def record(self, op: int, payload: bytes) -> None:
        self._log_writing()
        self.log += HEADER.pack(op, len(payload))
        self.log += payload
        if len(self.log) > self.FLUSH:
            self.flush()

    def flush(self) -> None:
        self._log_writing()
        if self.log:
            try:
                self.out.sock.sendall(self.log)
            except OSError as e:
                raise WireError(f"the grader went away ({e})") from None
            self.log.clear()

    def _free(self) -> None:
        """Machines the VMM let go of: at a message's bound, so that the grader lets go at the
        same point of the log."""
        while self.freed:
            handle = self.freed.pop()
            self.record(FREE, _U32.pack(handle))
            self.hardware.drop(handle)

    def finish(self, seq: object) -> None:
        # a request's machines, gone with it, go in its own log: the next request's would
        # name a machine made before it, and a batch shares no replay of such a log (memo.Logs)
        self._free()
        self.record(END, str(seq).encode()[:40])
        self.flush()


class _HardwareSide:
    """The channel as the hardware in this process sees it: what it sends is logged and
    handed to the VMM; what it receives is the VMM's RESUME."""

    deadline = None
    ended = False

    def __init__(self, link: LocalLink) -> None:
        self.link = link

    def send(self, op: int, payload: bytes = b"", fds: list[int] | None = None) -> None:
        link = self.link
        link.record(op, payload)
        if op == TRAP:
            assert link.on_trap is not None
            link.on_trap(payload)
        else:
            link.inbox.append((op, payload, os.dup(fds[0]) if fds else None))

    answer = send

    def receive(self, with_fd: bool = False) -> tuple[int, bytes, int | None]:
        return RESUME, self.link.resumes.popleft(), None


def _expect(op: int, got: int) -> None:
    if got != op:
        raise RuntimeError(f"the grader's hardware answered {got}, not {op}")


def _touch(pages: set[int], off: int, n: int) -> None:
    """Add the pages of RAM bytes [off, off + n) to `pages` (most writes lie in one)."""
    if 0 < n and off >> 12 == (off + n - 1) >> 12:
        pages.add(off >> 12)
    else:
        pages.update(pages_of(off, n))


class Memory:
    """RAM (shared with the hardware) and the pages this side wrote since the hardware last
    ran: their compiled code, if any, is stale there."""

    def __init__(self, ram: mmap.mmap, ram_size: int,
                 logged: Callable[[int, bytes, bool], None]) -> None:
        self.ram, self.ram_size, self.logged = ram, ram_size, logged
        self.dirty: set[int] = set()

    def read_bytes(self, pa: int, n: int) -> bytes | None:
        off = pa - RAM_BASE
        if n < 0 or off < 0 or off + n > self.ram_size:
            return None
        return self.ram[off:off + n]

    def write_bytes(self, pa: int, data: bytes) -> bool:
        off, n = pa - RAM_BASE, len(data)
        if off < 0 or off + n > self.ram_size:
            return False
        if type(data) is not bytes:  # (what the caller holds may change before the log goes)
            data = bytes(data)
        # a frame zeroed, as every frame a guest gets is (count(0) took ten times as long)
        zeros = n > 0 and data == (ZERO_PAGE if n == PAGE else bytes(n))
        if not zeros:
            self.ram[off:off + n] = data
            self.logged(pa, data, False)
        elif self.ram[off:off + n] != data:
            zero(self.ram, off, n)
            self.logged(pa, data, True)
        # else zeros already (a frame never used, as most are): the grader's RAM replays this
        # side's, so it holds zeros there too, and the write changes nothing to send
        _touch(self.dirty, off, n)
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
        op, payload, _ = link.receive()
        _expect(REPLY, op)
        self._handle = struct.unpack_from("<I", payload)[0]
        self._ram = link.hardware.boxes[self._handle].ram  # RAM the VMM and hardware share
        weakref.finalize(self, link.freed.append, self._handle)
        handle = self._handle  # not self: a machine no one holds goes at once
        self.mem = Memory(self._ram, ram_size, partial(link.ram, handle))
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
        _touch(self._changes.pages, addr - RAM_BASE, len(data))

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
        outer, link.on_trap = link.on_trap, lambda payload: self._on_trap(link, payload)
        try:
            link.send(RUN, struct.pack("<IQ", self._handle, max_steps) + self._pending())
        finally:
            link.on_trap = outer
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

    def _on_trap(self, link: LocalLink, payload: bytes) -> None:
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
