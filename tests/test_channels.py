"""The solution's IPC channels against the abstract bounded buffer: a hypothesis state machine
drives random sends, receives and guest deaths among several guests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from vmm.channels import (
    BLOCKED,
    ERR_DENIED,
    ERR_FAILED,
    ERR_INVALID_PARAM,
    MAX_MESSAGE,
    OK,
    BadBuffer,
    Channels,
)

BASE, SIZE = 0x8000_0000, 0x2000


class FakeMemory:
    """Guest-physical RAM [BASE, BASE+SIZE) as a bytearray."""

    def __init__(self) -> None:
        self.data = bytearray(SIZE)

    def contains(self, gpa: int, n: int = 1) -> bool:
        return n >= 0 and BASE <= gpa and gpa + n <= BASE + SIZE

    def read(self, gpa: int, n: int) -> bytes:
        return bytes(self.data[gpa - BASE:gpa - BASE + n])

    def write(self, gpa: int, data: bytes) -> None:
        self.data[gpa - BASE:gpa - BASE + len(data)] = data


@dataclass(eq=False)
class FakeGuest:
    name: str
    mem: FakeMemory = field(default_factory=FakeMemory)
    running: bool = True
    woken: int = 0


GUESTS = 3


class ChannelMachine(RuleBasedStateMachine):
    @initialize(pairs=st.lists(st.tuples(st.integers(0, GUESTS - 1), st.integers(0, GUESTS - 1),
                                         st.integers(1, 4)), min_size=1, max_size=4))
    def setup(self, pairs: list[tuple[int, int, int]]) -> None:
        self.guests = [FakeGuest(f"g{i}") for i in range(GUESTS)]
        self.channels = Channels(wake=lambda g: setattr(g, "woken", g.woken + 1))
        self.model: dict[int, deque[bytes]] = {}
        self.ends: dict[int, tuple[int, int, int]] = {}
        for s, r, cap in pairs:
            cid = self.channels.connect(self.guests[s], self.guests[r], cap)
            self.model[cid] = deque()
            self.ends[cid] = (s, r, cap)

    @rule(g=st.integers(0, GUESTS - 1), cid=st.integers(0, 5),
          payload=st.binary(max_size=MAX_MESSAGE + 2), where=st.integers(0, SIZE))
    def send(self, g: int, cid: int, payload: bytes, where: int) -> None:
        guest = self.guests[g]
        if not guest.running:
            return
        buf = BASE + min(where, SIZE - min(len(payload), SIZE))
        guest.mem.write(buf, payload)
        end = self.ends.get(cid)
        receiver = self.guests[end[1]] if end else None
        woken_before = receiver.woken if receiver else 0
        result = self.channels.send(guest, cid, buf, len(payload))
        if end is None or end[0] != g:
            assert result == (ERR_DENIED, 0)
        elif len(payload) > MAX_MESSAGE:
            assert result == (ERR_INVALID_PARAM, 0)
        elif not receiver.running:
            assert result == (ERR_FAILED, 0)
        elif len(self.model[cid]) == end[2]:
            assert result is BLOCKED  # full: capacity respected
        else:
            assert result == (OK, 0)
            self.model[cid].append(payload)
            assert receiver.woken == woken_before + 1, "the receiver was not woken"

    @rule(g=st.integers(0, GUESTS - 1), cid=st.integers(0, 5), size=st.integers(0, MAX_MESSAGE))
    def receive(self, g: int, cid: int, size: int) -> None:
        guest = self.guests[g]
        if not guest.running:
            return
        end = self.ends.get(cid)
        sender = self.guests[end[0]] if end else None
        woken_before = sender.woken if sender else 0
        buf = BASE + SIZE - size
        result = self.channels.receive(guest, cid, buf, size)
        if end is None or end[1] != g:
            assert result == (ERR_DENIED, 0)
        elif not self.model[cid]:
            assert result == ((ERR_FAILED, 0) if not sender.running else BLOCKED)
        elif len(self.model[cid][0]) > size:
            assert result == (ERR_INVALID_PARAM, 0)  # and the message stays queued
        else:
            expected = self.model[cid].popleft()  # first in, first out
            assert result == (OK, len(expected))
            assert guest.mem.read(buf, len(expected)) == expected
            assert sender.woken == woken_before + 1, "the sender was not woken"

    @rule(g=st.integers(0, GUESTS - 1), outside=st.sampled_from([BASE - 4, BASE + SIZE - 2,
                                                                 0, 0xFFFF_FFF0]))
    def hostile_buffer(self, g: int, outside: int) -> None:
        for cid, (s, r, _) in self.ends.items():
            guest = self.guests[g]
            if not guest.running:
                return
            try:
                if s == g and self.guests[r].running:
                    self.channels.send(guest, cid, outside, 8)
                elif r == g:
                    self.channels.receive(guest, cid, outside, 8)
                else:
                    continue
            except BadBuffer:
                continue
            raise AssertionError("a buffer outside the guest's memory was accepted")

    @precondition(lambda self: sum(g.running for g in self.guests) > 1)
    @rule(g=st.integers(0, GUESTS - 1))
    def kill(self, g: int) -> None:
        self.guests[g].running = False

    @invariant()
    def contents_match_the_model(self) -> None:
        for cid, ch in getattr(self.channels, "table", {}).items():
            assert ch.count == len(self.model[cid]) <= ch.capacity
            queued = [ch.slots[(ch.head + i) % ch.capacity] for i in range(ch.count)]
            assert queued == list(self.model[cid])


ChannelMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
TestChannels = ChannelMachine.TestCase
