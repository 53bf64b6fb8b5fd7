"""The hardware a student's VMM runs on: the grading process's, the hardware of record.

The worker holds the VMM and its own state (the virtual CPUs), and runs the VMM on a copy of
this file's hardware in its own process (the same file, copied into its `machine` package), so
that a trap costs a call, not a round trip between processes. Every message between the VMM and
that copy goes into a log (wire.py): runs, each trap's state, what the VMM did before it
returned, calls for a CSR, a walk or a translation, RAM writes. The grading process replays the
log here, as it streams (Replay): what the VMM did is done to this hardware, and what this
hardware says must be what the copy said, byte for byte, or the worker fails as inconsistent.

What the hardware did is recorded, per probe: the traps it took, the instructions it retired,
how each run stopped, the pages it wrote on whose behalf, and the results of the walks a probe
asked for. reconcile.py checks the worker's answer against that record, so that no verdict
rests on what the student's process says about the hardware.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import struct
import sys
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .wire import (
    BY_HARDWARE,
    CALL,
    DONE,
    END,
    FENCE,
    FREE,
    HEADER,
    NEW,
    RAM,
    RAM_WRITE,
    REPLY,
    RESUME,
    RESUME_HEAD,
    RUN,
    SET_PC,
    SET_STIMECMP,
    SNAPSHOT_CSRS,
    SRET,
    TRAP,
    TRAP_STRUCT,
    ZEROS,
    Channel,
    WireError,
    as_json,
    writes_struct,
)

RAM_BASE = 0x8000_0000

PAGE = 4096
MAX_RAM = 512 << 20  # bytes of RAM one machine may have
MAX_MACHINES = 8  # a worker's live machines; the oldest is dropped past this
# bytes of RAM all of a worker's live machines may have: what the worker's own address space
# holds (confine.MEMORY), so an honest log never asks more, and a forged one cannot make the
# grading process touch more
MAX_TOTAL_RAM = 640 << 20
DEFAULT_STEPS = 2_000_000  # host steps a probe may run when it names no budget
# traps in a row at one pc, of one cause, with nothing retired between: the guest is in a loop
# that only its VMM could end, and no VMM that follows LAB.md takes more than a few (a fault,
# then the same fault after a fill that needed a level more; the solution takes at most 3).
# Past it the probe's host steps are spent at once: a loop costs them all, a trap a step, and
# shrinking an example that loops ran thousands of traps a candidate
TRAP_LOOP = 100
NAMING = frozenset((RUN, CALL, RAM, FREE))  # the VMM's messages that name a machine
RING_PROBES = {"ipc_start", "ipc_batch"}  # the only probes whose channels use the grader's ring
# the probes of one handler on a virtual CPU: no guest runs, so the hardware runs nothing, and
# the worker that serves them has a machine without its engine (worker_view.py)
HANDLER_PROBES = frozenset({"dispatch", "reflect", "emulate", "counter_read", "sret", "wfi",
                            "hypercall"})
NO_RUN = ("in a test of one handler the hardware runs nothing (Machine.run, hart.sret): the "
          "handler's work is on the virtual CPU")


class Abort(BaseException):
    """The worker broke the protocol or went quiet: out of the machine's run at once (a
    BaseException, so that the machine's own handler-error path does not swallow it)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class Abandoned(BaseException):
    """The worker's log of a probe ended in the middle of a run: its VMM left the run (the
    worker answers with why). The run ends here as well."""


class Replay:
    """The worker's log, read as the hardware's channel.

    The worker runs its VMM on a copy of this hardware in its own process, at the speed of one
    process, and logs every message between the two, in order. Here the hardware of record
    replays it: what the VMM sent (runs, its changes at each trap, calls, RAM writes) is done to
    this hardware, and what this hardware sends (each trap's state, each reply, how each run
    ended) must be, byte for byte, what the worker's copy sent its VMM. Otherwise the VMM saw
    another machine than this one, and the worker fails as "inconsistent". So every verdict
    rests on this hardware, as if each trap had been a round trip, without the round trips."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        # the log of a request is read to its end: the request it named (False: not yet)
        self.ended: str | bool = False
        # in a batch (memo.py): a request's log, held unreplayed until it is whole, and what
        # stopped its reading early (replayed up to, it stops the replay where it stopped it)
        self.held: deque[tuple[int, bytes]] = deque()
        self.held_bytes = 0
        self.failure: BaseException | None = None
        # a hash of the request's log as read, while one is kept: machine numbers counted from
        # the first the request may make (`base`), so that a log is the same log whatever the
        # requests before it made; and whether it touched a machine made before it (`older`)
        self.digest: Any = None
        self.base = 0
        self.older = False
        self.last_op = 0

    def restart(self, base: int | None) -> None:
        """A request begins: its log is hashed as it is read, if `base` (the number of the
        next machine) is given."""
        self.held.clear()
        self.held_bytes, self.failure = 0, None
        self.digest = None if base is None else hashlib.blake2b(digest_size=32)
        self.base, self.older, self.last_op = base or 0, False, 0

    def hold(self) -> int:
        """Read the log's next message, and keep it for later: its operation."""
        op, payload = self._read()
        self.held.append((op, payload))
        self.held_bytes += HEADER.size + len(payload)
        return op

    def _read(self) -> tuple[int, bytes]:
        op, payload, _ = self.channel.receive()
        if self.digest is not None:
            self._hash(op, payload)
        return op, payload

    def _hash(self, op: int, payload: bytes) -> None:
        digest = self.digest
        if op == END:  # the request's number, which the answer must name (Worker._read)
            digest.update(HEADER.pack(op, 0))
            self.last_op = op
            return
        digest.update(HEADER.pack(op, len(payload)))
        # the messages that name a machine name it first (a NEW's reply: the one made); a
        # call for no machine (the grader's ring) names none, and is marked apart
        named = (op in NAMING or op == REPLY and self.last_op == NEW) and len(payload) >= 4
        handle = _U32.unpack_from(payload)[0] if named else 0
        self.last_op = op
        if not named or op == CALL and handle == 0:
            digest.update(b"\0")
            digest.update(payload)
            return
        self.older = self.older or handle < self.base
        digest.update(b"\1" + _U32.pack((handle - self.base) & 0xFFFF_FFFF))
        digest.update(memoryview(payload)[4:])

    def _next(self) -> tuple[int, bytes]:
        if self.held:
            op, payload = self.held.popleft()
            self.held_bytes -= HEADER.size + len(payload)
            return op, payload
        if self.failure is not None:
            raise self.failure
        return self._read()

    @property
    def deadline(self) -> float | None:
        return self.channel.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.channel.deadline = value

    def pending(self) -> bool:
        return self.channel.pending()

    def receive(self, with_fd: bool = False) -> tuple[int, bytes, int | None]:
        op, payload = self._next()
        if op == END:
            self.ended = payload.decode(errors="replace") or "?"
            raise Abandoned()
        if op in BY_HARDWARE:
            raise Abort("inconsistent", "the worker's log has the hardware speak out of turn")
        return op, payload, None

    def send(self, op: int, payload: bytes = b"", fds: list[int] | None = None) -> None:
        got, logged = self._next()
        if got == END:
            self.ended = logged.decode(errors="replace") or "?"
            raise Abandoned()
        if got != op or logged != payload:
            raise Abort("inconsistent", "your VMM ran on another machine than the grader's: "
                        f"the hardware said {_said(op, payload)}, the worker's copy "
                        f"{_said(got, logged)} (host RAM written other than by write_phys?)")

    def answer(self, op: int, payload: bytes = b"", fds: list[int] | None = None) -> None:
        self.channel.send(op, payload, fds)


def _said(op: int, payload: bytes) -> str:
    names = {TRAP: "a trap", DONE: "the run's end", REPLY: "a reply"}
    if op == TRAP and len(payload) == TRAP_STRUCT.size:
        v = TRAP_STRUCT.unpack(payload)
        return f"a trap (cause {v[0]:#x} at pc {v[2]:#010x}, instret {v[40]})"
    return names.get(op, f"message {op}")


@dataclass
class Record:
    """What the hardware did during one probe."""

    traps: int = 0
    retired: int = 0
    stop: list | None = None
    loop: list | None = None  # [cause, pc, traps]: the trap loop that spent the host's steps
    writes: dict[str, set[int]] = field(default_factory=dict)  # label -> RAM pages
    walks: list[list] = field(default_factory=list)  # [tag, result] of tagged walks

    def summary(self) -> dict:
        return {"traps": self.traps, "retired": self.retired, "stop": self.stop,
                "loop": self.loop,
                "writes": {k: sorted(v) for k, v in self.writes.items()},
                "walks": self.walks}


@dataclass
class _Box:
    machine: Any
    ram: mmap.mmap
    label: str = ""
    raw_label: bytes = b""


# Linux fills a private page handed back with MADV_DONTNEED with zeros when next touched;
# elsewhere (a student's Mac) the advice may leave its old contents, and zeros are written
DONTNEED_ZEROES = sys.platform.startswith("linux")


def pages_of(off: int, n: int) -> range:
    """The page numbers of RAM bytes [off, off + n)."""
    return range(off >> 12, (off + n + 4095) >> 12)


def new_ram(size: int) -> mmap.mmap:
    """A machine's RAM: private, so that a page handed back to the kernel reads as zeros."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)


def zero(ram: mmap.mmap, off: int, n: int) -> None:
    """Zero `n` bytes of `ram` from `off`. The whole pages go back to the kernel rather than
    being written: a VMM zeroes every frame it hands a guest, and writing a page never touched
    costs a page fault and a page of memory, in the worker and again here, for each of
    thousands of frames per example (a G-stage that maps all of a guest's RAM at once)."""
    first, last = -(-off // PAGE) * PAGE, (off + n) // PAGE * PAGE
    if last <= first or not DONTNEED_ZEROES:
        ram[off:off + n] = bytes(n)
        return
    ram[off:first] = bytes(first - off)
    ram.madvise(mmap.MADV_DONTNEED, first, last - first)
    ram[last:off + n] = bytes(off + n - last)


class Hardware:
    """The machines of one worker, served over `channel`."""

    def __init__(self, channel: Channel, runs: bool = True) -> None:
        self.channel = channel
        self.runs = runs  # False: a worker for HANDLER_PROBES, whose guests never run
        self.boxes: OrderedDict[int, _Box] = OrderedDict()
        self.next_handle = 1
        self.record = Record()
        self.budget = DEFAULT_STEPS
        self.probe = ""
        self.rings: dict[str, deque] = {}
        self.running: _Box | None = None
        self.last_trap: tuple = ()  # (machine, cause, pc, instret) of the last trap
        self.repeats = 0  # traps in a row like it

    def begin(self, probe: str, args: dict) -> None:
        """A new probe: a fresh record, and the host steps it may run."""
        self.record, self.probe = Record(), probe
        self.last_trap, self.repeats = (), 0
        steps = args.get("host_steps") if isinstance(args, dict) else None
        self.budget = 2 * steps + 1000 if isinstance(steps, int) and steps > 0 else DEFAULT_STEPS
        if probe == "ipc_start":
            self.rings.clear()

    def close(self) -> None:
        # dropped, not closed: the machine's typed views of its RAM hold it open until they go
        self.boxes.clear()

    # ----- one message from the worker -------------------------------------------------------

    def serve(self, op: int, payload: bytes) -> None:
        try:
            if op == RAM:
                self._ram(payload)
            elif op == FREE:  # the VMM let go of a machine: its RAM goes too
                self.drop(struct.unpack_from("<I", payload)[0])
            elif op == END:
                self.channel.ended = payload.decode(errors="replace") or "?"
            elif op == NEW:
                self._new(json.loads(payload))
            elif op == RUN:
                handle, steps = struct.unpack_from("<IQ", payload)
                self._run(self._box(handle), steps, payload[12:])
            elif op == CALL:
                handle = struct.unpack_from("<I", payload)[0]
                self._call(self._box(handle) if handle else None, payload[4:])
            else:
                raise Abort("garbled", f"an unexpected message ({op}) from the worker")
        except (ValueError, KeyError, TypeError, struct.error, UnicodeError,
                RecursionError) as e:
            raise Abort("garbled", f"a message the hardware could not take ({e})") from None

    def _ram(self, payload: bytes) -> None:
        """What the VMM wrote into a machine's RAM (write_phys), at the point where it wrote."""
        handle, pa, n = RAM_WRITE.unpack_from(payload)
        box, size, zeros = self._box(handle), n & ~ZEROS, bool(n & ZEROS)
        off = pa - RAM_BASE
        if off < 0 or off + size > box.machine.mem.ram_size or \
                (not zeros and len(payload) != RAM_WRITE.size + size):
            raise Abort("garbled", "a write outside RAM")
        if zeros:
            zero(box.ram, off, size)
        else:
            box.ram[off:off + size] = payload[RAM_WRITE.size:]
        h = box.machine.hart
        for page in pages_of(off, size):
            h.invalidate_code(page)

    def drop(self, handle: int) -> None:
        """Let go of a machine, and of its RAM at once (not when a collection finds the
        machine's cycles: a worker's address space holds few machines' RAM)."""
        box = self.boxes.pop(handle, None)
        if box is None:
            return
        mem = box.machine.mem
        for name, value in list(vars(mem).items()):
            if isinstance(value, memoryview):
                value.release()
                setattr(mem, name, None)
        try:
            box.ram.close()
        except BufferError:  # a view of it lives on somewhere: it goes when that does
            pass

    def ram_held(self) -> int:
        """Bytes of RAM of the live machines."""
        return sum(b.machine.mem.ram_size for b in self.boxes.values())

    def _box(self, handle: int) -> _Box:
        box = self.boxes.get(handle)
        if box is None:
            raise Abort("garbled", "a request for a machine that does not exist")
        return box

    def _new(self, request: dict) -> None:
        from machine.machine import Machine
        size = int(request["ram_size"])
        if size <= 0 or size % 4096 or size > MAX_RAM:
            raise Abort("garbled", f"a machine with {size} bytes of RAM")
        if size + self.ram_held() > MAX_TOTAL_RAM:
            raise Abort("garbled", "more machines' RAM at once than a worker may have")
        ram = new_ram(size)  # each side has its own: the VMM's writes are in the log
        machine = Machine(ram_size=size, fast=bool(request.get("fast", True)), ram=ram)
        machine.set_trap_handler(self._trap)
        machine.mem.dirty.clear()  # the device tree it booted with is no guest's write
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.boxes[handle] = _Box(machine, ram)
        while len(self.boxes) > MAX_MACHINES:
            self.drop(next(iter(self.boxes)))
        self.channel.send(REPLY, struct.pack("<I", handle) + _state(machine.hart, None))

    def _run(self, box: _Box, steps: int, changes: bytes) -> None:
        from machine import Stop
        from machine.hart import S_MODE, Halt
        m = box.machine
        steps = min(steps, self.budget)
        before, ran = m.hart.instret, m.steps
        self.running = box
        try:
            if not self.runs:
                raise Halt("handler-error", NO_RUN)
            n = _U32.unpack_from(changes)[0]
            if n:
                _apply_raw(box, changes, 4, n)
            if m.hart.mode == S_MODE and m.stopped is None:
                raise Halt("handler-error", "your VMM ran the hardware in S-mode: S-mode is "
                           "the VMM's own, and the hardware runs only guests, in U-mode")
            stop = m.run(steps) if steps > 0 else _budget_stop(self.record.loop)
        except Halt as h:  # what the VMM did before the run broke the hardware's rules
            stop = m.stopped = Stop(h.reason, h.detail)
        finally:
            self.running = None
        self.budget -= m.steps - ran
        self.record.retired += m.hart.instret - before
        self._charge(box)
        self.record.stop = [stop.reason, stop.detail[:4000]]
        self.channel.send(DONE, _state(m.hart, None) + as_json(self.record.stop))

    def _trap(self, event: Any) -> None:
        """The machine's S-mode: the VMM, in the worker. One round trip (and any calls the VMM
        makes while it handles the trap). Every trap comes here, so it packs the hart's state
        and applies the VMM's changes straight from and to bytes, with no object between."""
        box = self.running
        assert box is not None
        self.record.traps += 1
        here = (box, event.cause, event.pc, box.machine.hart.instret)
        if here == self.last_trap:
            self.repeats += 1
        else:
            self.last_trap, self.repeats = here, 1
        if box.machine.mem.dirty:
            self._charge(box)
        channel = self.channel
        channel.send(TRAP, _state(box.machine.hart, event))
        while True:
            try:
                op, payload, _ = channel.receive()
            except TimeoutError:
                raise Abort("timeout", "the VMM did not return from a trap in time") from None
            except WireError as e:
                raise Abort("crash", str(e)) from None
            if op == RESUME:
                break
            if op not in (CALL, RAM, FREE):
                raise Abort("garbled", f"an unexpected message ({op}) during a trap")
            self.serve(op, payload)  # what the VMM did while it held the trap
        try:
            n = _U32.unpack_from(payload)[0]
            if n:
                _apply_raw(box, payload, 4, n)
            if len(payload) > 4 + n:
                self._ended(payload[4 + n:])
        except (ValueError, KeyError, TypeError, struct.error, UnicodeError,
                RecursionError) as e:
            raise Abort("garbled", f"a message the hardware could not take ({e})") from None
        _deprivileged(box.machine.hart)  # for the sret that follows the handler
        if self.repeats >= TRAP_LOOP:
            self._loop(box, event)

    def _loop(self, box: _Box, event: Any) -> None:
        """The guest is in a trap loop: the run stops where a budget would have stopped it,
        back in the guest after the handler, and no run of this probe goes further."""
        self.record.loop = [event.cause, event.pc, self.repeats]
        self.budget = 0
        box.machine.hart.sret()  # what the hardware does when the handler returns
        raise M.Halt("budget", _loop_story(self.record.loop))

    @staticmethod
    def _ended(tail: bytes) -> None:
        """How the VMM's handler ended, when not by returning: a halt, or an error."""
        ended = json.loads(tail)
        if "halt" in ended:
            reason, detail = ended["halt"]
            raise M.Halt(str(reason)[:40], str(detail)[:4000])
        if "error" in ended:
            raise M.Halt("handler-error", str(ended["error"])[:6000])

    def _charge(self, box: _Box) -> None:
        """The pages the hardware wrote since the last trap, charged to whoever the VMM said
        it was running."""
        dirty = box.machine.mem.dirty
        if dirty:
            self.record.writes.setdefault(box.label, set()).update(dirty)
            dirty.clear()

    # ----- calls: a CSR, a walk, the grader's ring ---------------------------------------------

    def _call(self, box: _Box | None, payload: bytes) -> None:
        n = _U32.unpack_from(payload)[0]
        request = json.loads(payload[4 + n:])
        what = request["op"]
        if box is not None and n:
            from machine.hart import Halt
            try:
                _apply_raw(box, payload, 4, n, self.runs)
            except Halt as h:
                self.channel.send(REPLY, as_json({"failed": h.detail}))
                return
        if what == "ring":
            reply = self._ring(request)
        elif box is None:
            raise Abort("garbled", "a call for no machine")
        elif what == "csr":
            from machine import csrs
            h = box.machine.hart
            reply = {"value": csrs.read(h, int(request["num"])) & 0xFFFF_FFFF,
                     "csrs": {str(n): csrs.read(h, n) & 0xFFFF_FFFF for n in SNAPSHOT_CSRS}}
        elif what in ("walk", "translate"):
            reply = self._walk(box, what, request)
        else:
            raise Abort("garbled", f"an unknown call {what!r}")
        if what == "ring":
            self.channel.answer(REPLY, as_json(reply))
        else:
            self.channel.send(REPLY, as_json(reply))

    def _walk(self, box: _Box, what: str, r: dict) -> dict:
        from machine.mmu import Permissions
        from machine.traps import Trap
        mmu = box.machine.hart.mmu
        priv, sum_, mxr, mxr_g = (int(v) for v in r["perms"])
        perms = Permissions(priv=priv & 1, sum=bool(sum_), mxr=bool(mxr), mxr_g=bool(mxr_g))
        hgatp = None if r.get("hgatp") is None else int(r["hgatp"]) & 0xFFFF_FFFF
        fn = mmu.walk if what == "walk" else mmu.translate
        try:
            result: dict = {"pa": fn(int(r["va"]) & 0xFFFF_FFFF, int(r["access"]) % 3,
                                     int(r["satp"]) & 0xFFFF_FFFF, perms, hgatp)}
        except Trap as trap:
            result = {"trap": [trap.cause, trap.tval, trap.gpa]}
        if r.get("tag") is not None:
            self.record.walks.append([r["tag"], result])
        return result

    def _ring(self, r: dict) -> dict:
        """The grader's own ring of one channel, for the IPC probes: the student's Channels is
        graded over it, so it is not in the worker for a student's Channel to borrow."""
        if self.probe not in RING_PROBES:
            raise Abort("garbled", "the grader's ring is not for this probe")
        q = self.rings.setdefault(str(r["id"])[:40], deque())
        capacity, what = int(r["capacity"]), r["do"]
        if len(self.rings) > 256 or len(q) > 4096:
            raise Abort("garbled", "too many rings or messages")
        value: Any = None
        if what == "full":
            value = len(q) >= capacity
        elif what == "empty":
            value = not q
        elif what == "put":
            q.append(bytes.fromhex(r["message"])[:1 << 16].hex())
        elif what == "take":
            value = q.popleft() if q else None
        else:
            raise Abort("garbled", f"a ring operation {what!r}")
        return {"value": value, "queue": list(q)}


_GETTERS: list[Any] = []


def _state(h: Any, event: Any) -> bytes:
    """wire.Trapped, packed straight from the hart: every trap sends one."""
    if not _GETTERS:
        at = SNAPSHOT_CSRS.index(0x144)  # sip is worked out: the timer is pending or not
        fields = [M.csrs._FIELD[n] for n in SNAPSHOT_CSRS[:at] + SNAPSHOT_CSRS[at + 1:]]
        _GETTERS[:] = [attrgetter(*fields[:at]), attrgetter(*fields[at:])]
    before, after = _GETTERS
    now, deadline = h.time(), h.stimecmp
    if event is None:
        trap: tuple = (0, 0, 0, 0, False, 0)
    else:
        trap = (event.cause, event.tval, event.pc, event.mode, event.virtual, event.gpa)
    return TRAP_STRUCT.pack(*trap, *h.x, h.pc, h.mode, h.instret, now, *before(h),
                            0x20 if now >= deadline else 0, *after(h), deadline)


class _Machine:
    """The machine's modules, imported at first use: the grading process puts the pristine
    handout's machine on its path before it makes any hardware (labroot.py)."""

    def __getattr__(self, name: str) -> Any:
        from machine import csr, csrs, hart, traps
        for k, v in (("csrs", csrs), ("Halt", hart.Halt), ("Trap", traps.Trap),
                     ("SPP", csr.SSTATUS_SPP), ("S_MODE", hart.S_MODE)):
            setattr(self, k, v)
        return getattr(self, name)


M = _Machine()
_U32 = struct.Struct("<I")


def _apply_raw(box: _Box, data: bytes, at: int, n: int, runs: bool = True) -> None:
    """What the VMM did to the hardware (wire.Changes, packed, `n` bytes at `at`), done to it
    here, in the order it did it (an sret too, unless the hardware `runs` nothing)."""
    m, h = box.machine, box.machine.hart
    head = RESUME_HEAD.unpack_from(data, at)
    flags, pc, stimecmp, ncsr, nfence, npage = head[32:]
    end, at = at + n, at + RESUME_HEAD.size
    h.x[1:] = head[1:32]  # 32-bit each: the struct says so
    writes = ()
    if ncsr:
        flat = writes_struct(ncsr).unpack_from(data, at)
        writes = zip(flat[::2], flat[1::2], strict=True)
        at += 6 * ncsr
    fences = []
    for _ in range(nfence):
        fences.append(FENCE.unpack_from(data, at))
        at += FENCE.size
    if npage:
        for page in struct.unpack_from(f"<{npage}I", data, at):
            if page < m.mem.ram_size >> 12:
                h.invalidate_code(page)
        at += 4 * npage
    if at > end:
        raise ValueError("changes longer than they said")
    try:
        M.csrs.write_many(h, writes)
    except (M.Trap, KeyError, AttributeError, ValueError) as e:
        raise M.Halt("handler-error", f"the VMM wrote a CSR the hardware does not have ({e})") \
            from None
    for va, asid, ctx in fences:
        h.mmu.sfence(None if va < 0 else va, None if asid < 0 else asid,
                     ctx="S" if ctx < 0 else ("V", ctx))
    if flags & SET_STIMECMP:
        h.set_stimecmp(stimecmp)
    if flags & SET_PC:
        h.pc = pc & 0xFFFF_FFFC
    if at < end:
        label = data[at:end]
        if label != box.raw_label:
            box.raw_label, box.label = label, label.decode(errors="replace")
    if flags & SRET:
        if not runs:
            raise M.Halt("handler-error", NO_RUN)
        _deprivileged(h)
        h.sret()


def _deprivileged(h: Any) -> None:
    """S-mode is the VMM's, and the VMM is Python in the worker: the hardware runs only guests,
    in U-mode (VU-mode under nested paging). A guest in real S-mode would run its privileged
    instructions, and its SBI calls, on the bare hardware, as no VMM of the lecture's does."""
    if h.sstatus & M.SPP:
        raise M.Halt("handler-error", "your VMM returned to a guest in real S-mode "
                     "(sstatus.SPP set at sret): a guest always runs deprivileged, in U-mode")


def _loop_story(loop: list) -> str:
    from machine.traps import cause_name
    cause, pc, n = loop
    return (f"the guest trapped {n} times in a row at pc {pc:#010x} ({cause_name(cause)}), "
            "with no instruction retired between: the host's steps were spent at once")


def _budget_stop(loop: list | None = None) -> Any:
    from machine import Stop
    return Stop("budget", _loop_story(loop) if loop else "the probe's host steps are spent")
