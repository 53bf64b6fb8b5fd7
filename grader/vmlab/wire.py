"""The messages between a VMM in its sandbox and the hardware it runs on, and the channel that
carries the worker's log of them to the grading process, which replays it (hardware.Replay).

One message is an operation byte, a length and a payload. The two of every trap are packed with
struct (a JSON line costs ten times as much, and a guest takes hundreds of traps): TRAP, the
hardware's state when it trapped, and RESUME, what the VMM did to the hardware before it returns
with sret. The rest are rare and JSON, but for RAM writes (RAM_WRITE and the bytes).

This file is the grader's and is copied into the sandbox's `machine` package (as
machine/wire.py), so it imports nothing but the standard library. The trusted side never
trusts what it decodes: every number is masked to its width, every count bounded.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field

HEADER = struct.Struct("<BI")
MAX_MESSAGE = 1 << 20  # bytes: a longer message is a flood
# operations
NEW, RUN, RESUME, TRAP, DONE, CALL, REPLY, FAILED, END, RAM, FREE = range(1, 12)
BY_HARDWARE = frozenset((REPLY, TRAP, DONE))  # the rest are the VMM's
RAM_WRITE = struct.Struct("<III")  # machine, address, length (| ZEROS: that many zero bytes)
ZEROS = 0x8000_0000

# the CSRs a VMM may read while handling a trap, sent with every TRAP (others cost a CALL)
SNAPSHOT_CSRS = (0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143, 0x144, 0x180,
                 0x600, 0x643, 0x64A, 0x680, 0x200, 0x280)
TRAP_STRUCT = struct.Struct(f"<IIIBBQ32IIBQQ{len(SNAPSHOT_CSRS)}IQ")
RESUME_HEAD = struct.Struct("<32IBIQHHH")  # x, flags, pc, stimecmp, #csrs, #fences, #pages
_CSR_WRITE = struct.Struct("<HI")
FENCE = struct.Struct("<qqi")
SRET, SET_PC, SET_STIMECMP = 1, 2, 4
M32 = 0xFFFF_FFFF


class WireError(Exception):
    """The other side sent what this side cannot take, or went away."""


@dataclass
class Trapped:
    """The hardware at a trap: the event, the registers, the counters, some CSRs."""

    cause: int
    tval: int
    pc: int
    mode: int
    virtual: bool
    gpa: int
    x: list[int]
    hart_pc: int
    hart_mode: int
    instret: int
    time: int
    csrs: dict[int, int]
    stimecmp: int
    SIZE = TRAP_STRUCT.size

    def pack(self) -> bytes:
        csrs = self.csrs
        values = (self.cause, self.tval, self.pc, self.mode, int(self.virtual), self.gpa,
                  *self.x, self.hart_pc, self.hart_mode, self.instret, self.time,
                  *[csrs.get(n, 0) for n in SNAPSHOT_CSRS], self.stimecmp)
        try:  # every trap: the hardware's values fit; masking each costs more than the rest
            return TRAP_STRUCT.pack(*values)
        except struct.error:
            return TRAP_STRUCT.pack(*(v & w for v, w in zip(values, _TRAP_WIDTHS, strict=True)))

    @classmethod
    def unpack(cls, data: bytes) -> Trapped:
        v = TRAP_STRUCT.unpack(data)
        return cls(v[0], v[1], v[2], v[3], bool(v[4]), v[5], list(v[6:38]), v[38], v[39],
                   v[40], v[41], dict(zip(SNAPSHOT_CSRS, v[42:-1], strict=True)), v[-1])


def _widths(fmt: str) -> tuple[int, ...]:
    """The mask of each field of a struct format like "<IIB32I": what fits it."""
    import re
    out: list[int] = []
    for count, code in re.findall(r"(\d*)([IBQHqi])", fmt):
        out += [{"I": M32, "B": 0xFF, "Q": (1 << 64) - 1, "H": 0xFFFF}.get(code, -1)] * \
            int(count or 1)
    return tuple(out)


_TRAP_WIDTHS = _widths(TRAP_STRUCT.format)
_WRITES: dict[int, struct.Struct] = {}


def writes_struct(n: int) -> struct.Struct:
    s = _WRITES.get(n)
    if s is None:
        s = _WRITES[n] = struct.Struct("<" + "HI" * n)
    return s


@dataclass
class Changes:
    """What the VMM did to the hardware while it held it: the registers (always), CSR writes
    in order, TLB fences, the timer, the pc, an sret, the pages of RAM it wrote (whose
    compiled code is stale), and who the hardware runs next (`label`, for the record)."""

    x: list[int]
    csr_writes: list[tuple[int, int]] = field(default_factory=list)
    fences: list[tuple[int | None, int | None, object]] = field(default_factory=list)
    pages: set[int] = field(default_factory=set)
    stimecmp: int | None = None
    pc: int | None = None
    sret: bool = False
    label: str = ""

    def pack(self) -> bytes:
        flags = (SRET if self.sret else 0) | (SET_PC if self.pc is not None else 0) | \
            (SET_STIMECMP if self.stimecmp is not None else 0)
        pages = sorted(self.pages)
        writes = self.csr_writes
        head = (*self.x, flags, self.pc or 0, self.stimecmp or 0, len(writes),
                len(self.fences), len(pages))
        flat = [v for w in writes for v in w]
        try:  # a VMM's values fit, unless it has a bug: then each is cut to its width
            out = [RESUME_HEAD.pack(*head), writes_struct(len(writes)).pack(*flat)]
        except struct.error:
            out = [RESUME_HEAD.pack(*(v & w for v, w in zip(head, _HEAD_WIDTHS,
                                                             strict=True))),
                   writes_struct(len(writes)).pack(
                       *(v & (0xFFFF if i % 2 == 0 else M32) for i, v in enumerate(flat)))]
        if self.fences:
            out += [FENCE.pack(-1 if va is None else va & M32,
                                -1 if asid is None else asid & M32, _context(ctx))
                    for va, asid, ctx in self.fences]
        if pages:
            out.append(struct.pack(f"<{len(pages)}I", *pages))
        out.append(self.label.encode()[:200])
        return b"".join(out)

    @classmethod
    def unpack(cls, data: bytes) -> Changes:
        head = RESUME_HEAD.unpack_from(data)
        x, (flags, pc, stimecmp, ncsr, nfence, npage) = list(head[:32]), head[32:]
        at = RESUME_HEAD.size
        flat = writes_struct(ncsr).unpack_from(data, at)
        writes = list(zip(flat[::2], flat[1::2], strict=True))
        at += 6 * ncsr
        fences: list[tuple[int | None, int | None, object]] = []
        for i in range(nfence):
            va, asid, ctx = FENCE.unpack_from(data, at + i * FENCE.size)
            fences.append((None if va < 0 else va, None if asid < 0 else asid,
                           "S" if ctx < 0 else ("V", ctx)))
        at += nfence * FENCE.size
        pages = set(struct.unpack_from(f"<{npage}I", data, at)) if npage else set()
        at += 4 * npage
        return cls(x, writes, fences, pages,
                   stimecmp if flags & SET_STIMECMP else None,
                   pc if flags & SET_PC else None, bool(flags & SRET),
                   data[at:at + 200].decode(errors="replace"))


_HEAD_WIDTHS = _widths(RESUME_HEAD.format)


def _context(ctx: object) -> int:
    """A TLB context on the wire: -1 for the host's own ("S"), else a nested guest's VMID."""
    if isinstance(ctx, tuple) and len(ctx) == 2 and ctx[0] == "V" and isinstance(ctx[1], int):
        return ctx[1] & 0x3FFF
    return -1


def as_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Channel:
    """Messages over a stream socket; reads wait at most until `deadline` (time.monotonic()).
    Reads are buffered: a message usually costs one recv, not one for its header and one for
    its payload."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline: float | None = None
        self.armed = 0.0  # the read timeout the kernel keeps (0: none)
        self.buffer = bytearray()
        self.at = 0  # where the next message starts in the buffer
        self.ended: str | bool = False

    def send(self, op: int, payload: bytes = b"", fds: list[int] | None = None) -> None:
        data = HEADER.pack(op, len(payload)) + payload
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise WireError(f"the other side went away ({e})") from None

    answer = send  # a reply the other side waits for (the replay's is sent, not compared)

    def receive(self, with_fd: bool = False) -> tuple[int, bytes, int | None]:
        """(operation, payload, None). The buffer is read from an offset, and compacted only
        when a read needs room: a replayed log is many short messages to a recv."""
        while len(self.buffer) - self.at < HEADER.size:
            self._more()
        op, n = HEADER.unpack_from(self.buffer, self.at)
        if n > MAX_MESSAGE:
            raise WireError("a message too long")
        while len(self.buffer) - self.at < HEADER.size + n:
            self._more()
        start = self.at + HEADER.size
        self.at = start + n
        return op, bytes(self.buffer[start:self.at]), None

    def _more(self) -> None:
        while True:
            if self.deadline is not None:
                self._arm(self.deadline - time.monotonic())
            elif self.armed:
                self._arm(None)
            try:
                chunk = self.sock.recv(1 << 16)
            except (BlockingIOError, TimeoutError):  # the kernel's timeout: is it ours?
                continue
            except OSError as e:
                raise WireError(f"the other side went away ({e})") from None
            break
        if not chunk:
            raise WireError("the other side went away")
        if self.at:
            del self.buffer[:self.at]
            self.at = 0
        self.buffer += chunk
        if len(self.buffer) > MAX_MESSAGE + HEADER.size + (1 << 16):
            raise WireError("a message too long")

    def pending(self) -> bool:
        """Whether a whole message is already buffered (select would not see it)."""
        if len(self.buffer) - self.at < HEADER.size:
            return False
        return len(self.buffer) - self.at >= \
            HEADER.size + HEADER.unpack_from(self.buffer, self.at)[1]

    def _arm(self, left: float | None) -> None:
        """Let a read wait at most `left` seconds (None: for ever). The kernel keeps the
        limit (SO_RCVTIMEO), so that a read is one system call, not a select and a read: the
        grader reads once a trap. It is set again only when it is off by a tenth; a read that
        the kernel stopped early is tried again."""
        if left is not None and left <= 0:
            raise TimeoutError("no message in time")
        if left is not None and left <= self.armed <= left * 1.1 + 0.001:
            return
        seconds = 0.0 if left is None else left
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("ll", int(seconds), int(seconds % 1 * 1e6) + 1))
        self.armed = seconds
