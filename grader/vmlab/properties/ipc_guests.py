"""Whole guests that talk: two guests exchange messages over the VMM's channels.

A producer sends messages to a consumer over one channel, and the consumer may answer each on a
second channel that the producer waits on, so both block and wake. Either may call with the wrong
end, a message too long, a buffer too small or a channel that does not exist, and the producer
may stop before it has sent them all. Each records what every call returned in its memory.

The bare machine has no IPC, so the reference is two bare machines whose SBI firmware has the
lab's IPC extension, with ideal channels (the contract of vmm/channels.py), run in turn: each
runs until it blocks or stops, then the other. A guest's view (what each call returns, what its
buffers hold, its registers, counters and time) does not depend on how the two are interleaved,
so under the VMM each guest must end exactly as its bare machine did.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

from hypothesis import strategies as st

from ..strategies.programs import S_CODE, encode, li
from ..strategies.states import sampled
from . import Counterexample, Property, register
from .guests import GUEST_RAM, _hart_state, compare, digest, host_budget

EXT_IPC, SEND, RECEIVE = 0x08495043, 0, 1
EXT_SRST = 0x53525354
OK, FAILED, INVALID, DENIED = 0, -1, -3, -4
MAX_MESSAGE = 256
# below the program (at S_CODE), in guest RAM (guests.GUEST_RAM)
DATA = 0x8010_0000  # the messages a producer sends, one 512-byte slot each
BUFFERS = 0x8020_0000  # where a consumer receives, one 512-byte slot each
RESULTS = 0x8030_0000  # (a0, a1) of each call, in order
SLOT = 512
STEPS = 20_000  # each guest's budget; a run takes a few hundred
CALLS = ("send", "receive", "ack", "wait", "wrong-end", "no-channel", "too-long", "stop")


@dataclass(frozen=True)
class Call:
    """One IPC call of a guest's program: `what` is one of CALLS, `n` its message's number."""

    what: str
    n: int
    length: int = 0
    size: int = 0  # a receive's buffer size
    offset: int = 0  # where in its slot the buffer starts (a page edge, sometimes)


@dataclass(frozen=True)
class Conversation:
    messages: tuple[bytes, ...]
    producer: tuple[Call, ...]
    consumer: tuple[Call, ...]
    capacity: int
    acks: bool
    paging: tuple[str, str]
    filler: int  # instructions of work between calls


# ----- drawing a conversation ----------------------------------------------------------------

LENGTHS = st.one_of(st.integers(0, 16), st.integers(17, MAX_MESSAGE), st.just(MAX_MESSAGE))


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    n = draw(st.integers(1, 8))
    messages = tuple(draw(st.binary(min_size=length, max_size=length))
                     for length in draw(st.lists(LENGTHS, min_size=n, max_size=n)))
    acks = draw(st.booleans())
    stop_after = draw(st.one_of(st.just(n), st.integers(0, n)))
    producer: list[Call] = []
    consumer: list[Call] = []
    for i, message in enumerate(messages[:stop_after]):
        producer += _odd_calls(draw, "producer")
        producer.append(Call("send", i, len(message), offset=draw(_OFFSETS)))
        if acks:
            producer.append(Call("wait", i))
    if stop_after < n:
        producer.append(Call("stop", 0))
    for i, message in enumerate(messages):
        consumer += _odd_calls(draw, "consumer")
        small = draw(st.integers(0, 9)) == 0 and len(message) > 0
        if small:  # a buffer too small: refused, the message stays for the next receive
            consumer.append(Call("receive", i, size=len(message) - 1, offset=draw(_OFFSETS)))
        consumer.append(Call("receive", i, size=draw(_SIZES(len(message))),
                             offset=draw(_OFFSETS)))
        if acks and i < stop_after:
            consumer.append(Call("ack", i))
    return Conversation(messages, tuple(producer), tuple(consumer), draw(st.integers(1, 4)),
                        acks, (draw(_PAGINGS), draw(_PAGINGS)), draw(st.integers(0, 12)))


EDGE = -1
_OFFSETS = st.sampled_from((0, 0, 8, 100, EDGE))
_PAGINGS = sampled(("shadow", "nested"))


def _SIZES(length: int) -> st.SearchStrategy[int]:  # noqa: N802 - a strategy, named as one
    return st.sampled_from((length, MAX_MESSAGE, min(MAX_MESSAGE, length + 3)))


def _odd_calls(draw: st.DrawFn, who: str) -> list[Call]:  # noqa: ARG001 - either guest
    """Now and then a call the VMM must refuse: the wrong end, no channel, a message too long."""
    if draw(st.integers(0, 5)) != 0:
        return []
    return [Call(draw(st.sampled_from(("wrong-end", "no-channel", "too-long"))), 0,
                 length=MAX_MESSAGE + 1)]


# ----- the programs --------------------------------------------------------------------------

A0, A1, A2, A6, A7, T0, S1 = 10, 11, 12, 16, 17, 5, 9


def _buffer(c: Call, base: int) -> int:
    """A slot per message, at its start or a few bytes in; or (offset EDGE) two pages of its
    own, 16 bytes before the edge between them, so that the copy crosses it."""
    if c.offset == EDGE:
        return base + 0x4_0000 + c.n * 0x2000 + 0x1000 - 16
    return base + c.n * SLOT + c.offset


def program(conv: Conversation, who: str) -> list[int]:
    """The guest's words: each call, its result stored, some work between calls, shutdown."""
    calls = conv.producer if who == "producer" else conv.consumer
    out: list[int] = li(S1, RESULTS)
    for c in calls:
        if c.what == "stop":
            break
        ext, fid, channel, buf, length = _arguments(conv, who, c)
        out += li(A7, ext) + [encode("addi", A6, 0, imm=fid)] + li(A0, channel) + \
            li(A1, buf) + li(A2, length) + [0x0000_0073]  # ecall
        out += [encode("sw", 0, S1, A0, imm=0), encode("sw", 0, S1, A1, imm=4),
                encode("addi", S1, S1, imm=8)]
        out += [encode("addi", T0, T0, imm=i + 1) for i in range(conv.filler)]
    out += li(A7, EXT_SRST) + [encode("addi", A6, 0, imm=0), encode("addi", A0, 0, imm=0),
                               encode("addi", A1, 0, imm=0), 0x0000_0073]
    return out


def _arguments(conv: Conversation, who: str, c: Call) -> tuple[int, int, int, int, int]:
    """(extension, function, channel, buffer, length) of a call. Channel 0 goes from producer
    to consumer, channel 1 back (when there are acks)."""
    if c.what == "send":
        return EXT_IPC, SEND, 0, _buffer(c, DATA), c.length
    if c.what == "receive":
        return EXT_IPC, RECEIVE, 0, _buffer(c, BUFFERS), c.size
    if c.what == "ack":
        return EXT_IPC, SEND, 1, DATA, 4
    if c.what == "wait":
        return EXT_IPC, RECEIVE, 1, BUFFERS + 0x8_0000, 16
    if c.what == "wrong-end":  # the end this guest does not hold
        return (EXT_IPC, RECEIVE, 0, BUFFERS, 16) if who == "producer" else \
            (EXT_IPC, SEND, 0, DATA, 4)
    if c.what == "no-channel":
        return EXT_IPC, SEND, 7, DATA, 4
    return EXT_IPC, SEND, 0 if who == "producer" else 1, DATA, c.length  # too long


def segments(conv: Conversation, who: str) -> list[tuple[int, bytes]]:
    code = struct.pack(f"<{len(w := program(conv, who))}I", *w)
    out = [(S_CODE, code)]
    if who == "producer":
        for c in conv.producer:
            if c.what == "send":
                out.append((_buffer(c, DATA), conv.messages[c.n]))
    return out


# ----- the reference: two bare machines with ideal channels ----------------------------------

class _Blocked(Exception):
    pass


def run_bare(conv: Conversation) -> dict[str, dict]:
    """Each guest on a bare machine of its own whose firmware answers the IPC calls over ideal
    channels; the two run in turn until both stop or neither can go on (a deadlock)."""
    from machine import Machine, sbi
    machines: dict[str, Any] = {}
    for who in ("producer", "consumer"):
        m = Machine(ram_size=GUEST_RAM)
        for addr, data in segments(conv, who):
            m.write_phys(addr, data)
        m.pc = S_CODE
        machines[who] = m
    queues: dict[int, deque] = {0: deque(), **({1: deque()} if conv.acks else {})}
    ends = {0: ("producer", "consumer"), 1: ("consumer", "producer")}
    stopped: set[str] = set()

    def firmware(who: str, h: Any) -> int:
        if h.x[A7] != EXT_IPC:
            return sbi.firmware(h)
        error, value = _ideal(who, h, queues, ends, stopped, conv.capacity)
        h.x[A0], h.x[A1] = error & 0xFFFF_FFFF, value & 0xFFFF_FFFF
        return h.pc + 4

    for who, m in machines.items():
        m.hart.ecall_handler = partial(firmware, who)
    reasons: dict[str, str] = {}
    while len(stopped) < 2:
        progress = False
        for who, m in machines.items():
            if who in stopped:
                continue
            before = m.hart.instret
            stop = m.run(max(1, STEPS - m.hart.instret))
            progress |= m.hart.instret != before
            if stop.reason == "blocked":  # the ecall did not retire: it runs again later
                m.stopped = None
            else:
                stopped.add(who)
                reasons[who] = stop.reason
        if not progress:
            for who in set(machines) - stopped:
                stopped.add(who)
                reasons[who] = "deadlock"
    return {who: _bare_result(m, reasons[who]) for who, m in machines.items()}


def _ideal(who: str, h: Any, queues: dict, ends: dict, stopped: set[str],
           capacity: int) -> tuple[int, int]:
    """The contract of Channels.send and .receive, for a bare machine."""
    from machine.hart import Halt
    fid, channel, buf, length = h.x[A6], h.x[A0], h.x[A1], h.x[A2]
    if channel not in queues or fid not in (SEND, RECEIVE):
        return (DENIED, 0) if fid in (SEND, RECEIVE) else (-2, 0)
    sender, receiver = ends[channel]
    q = queues[channel]
    if fid == SEND:
        if who != sender:
            return DENIED, 0
        if length > MAX_MESSAGE:
            return INVALID, 0
        if receiver in stopped:
            return FAILED, 0
        if len(q) >= capacity:
            raise Halt("blocked")
        q.append(h.mem.read_bytes(buf, length))
        return OK, 0
    if who != receiver:
        return DENIED, 0
    if not q:
        if sender in stopped:
            return FAILED, 0
        raise Halt("blocked")
    if len(q[0]) > length:
        return INVALID, 0
    message = q.popleft()
    h.mem.write_bytes(buf, message)
    return OK, len(message)


def _bare_result(m: Any, reason: str) -> dict:
    out = _hart_state(m)
    out.update(stop=reason, console=m.console, horizon=[], next_stop=None,
               pages={str(page): data for page, data in m.snapshot().pages})
    return out


# ----- the property --------------------------------------------------------------------------

def check(conv: Conversation, worker: Any) -> None:
    bare = run_bare(conv)
    guests = []
    for i, who in enumerate(("producer", "consumer")):
        guests.append({"name": who, "segments": [[a, d.hex()] for a, d in segments(conv, who)],
                       "pc": S_CODE, "paging": conv.paging[i],
                       "expect_pages": {k: digest(v) for k, v in bare[who]["pages"].items()}})
    channels = [[0, 1, conv.capacity]] + ([[1, 0, conv.capacity]] if conv.acks else [])
    # the host's steps follow the bare run, as a single guest's do: a VMM that returns to a
    # trapping ecall without acting on it spent 800,000 steps (minutes) before it stopped
    ran = sum(bare[who]["instret"] for who in ("producer", "consumer"))
    got = worker.call("ipc_guests", {"guests": guests, "channels": channels,
                                     "memory": GUEST_RAM, "steps": STEPS,
                                     "host_steps": host_budget(ran)})
    for i, who in enumerate(("producer", "consumer")):
        mine = got["guests"][i]
        mine["host_stop"] = got["host_stop"]
        expected = bare[who]
        try:
            compare(expected, mine, partial(describe, conv))
        except Counterexample as e:  # the same, naming the guest
            if Counterexample.made and Counterexample.made[-1] is e:
                Counterexample.made.pop()
            raise Counterexample(f"the {who}: {e.divergence}", e._example, e.detail) from None


def describe(conv: Conversation) -> str:
    lines = [f"Two guests, the producer under {conv.paging[0]} paging and the consumer under "
             f"{conv.paging[1]}; channel 0 (producer to consumer) holds {conv.capacity} "
             "message(s)" + (", channel 1 carries an acknowledgement back after each message"
                             if conv.acks else "") + ".", "",
             "Messages: " + ", ".join(f"#{i} ({len(m)} bytes)" for i, m in
                                      enumerate(conv.messages)), ""]
    for who, calls in (("producer", conv.producer), ("consumer", conv.consumer)):
        steps = []
        for c in calls:
            ext, fid, channel, buf, length = _arguments(conv, who, c)
            name = "send" if fid == SEND else "receive"
            steps.append("stop (shutdown)" if c.what == "stop" else
                         f"{name}(channel {channel}, {buf:#x}, {length})")
        lines.append(f"The {who}: " + "; ".join(steps) + "; then shutdown. Each call's a0 and "
                     f"a1 are stored from `{RESULTS:#x}` on.")
    return "\n".join(lines)


register(Property(
    "ipc-guests", "IPC between whole guests: messages arrive in order, whole, once",
    "Two guests, each under shadow or nested paging, exchange messages through the VMM's "
    "channels with hypercalls, block when a channel is full or empty and are woken, and call "
    "wrongly now and then. Each guest must end exactly as it would on a bare machine whose "
    "firmware had ideal channels: what each call returned, what it received, its registers, "
    "counters and time.",
    conversations, check, describe))
