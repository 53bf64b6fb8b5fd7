"""Part 3, IPC over bounded buffers, against the abstract queue.

bounded-buffer: a sequence of operations on one Channel must behave as a FIFO of `capacity`.
ipc: a hypothesis rule-based state machine drives sends, receives, hostile buffers and guest
deaths among three guests through the student's Channels (over a reference queue, so that this
part is graded on its own), and checks every answer against the abstract channel: FIFO, nothing
lost or duplicated, capacity, wake-ups, grants, dead peers.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from ..strategies.states import sampled
from . import Counterexample, Property, register

OK, ERR_FAILED, ERR_INVALID_PARAM, ERR_DENIED = 0, -1, -3, -4
MAX_MESSAGE = 256
BASE, SIZE = 0x8000_0000, 0x2000
GUESTS = 3


# ----- bounded-buffer ----------------------------------------------------------------------------

@st.composite
def ring_examples(draw: st.DrawFn) -> dict:
    capacity = draw(st.integers(1, 5))
    ops, count, n = [], 0, 0
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(sampled(("put", "take", "full", "empty")))
        if kind == "put" and count < capacity:  # the caller checks first, as Channels does
            # a numbered message, so that a lost or duplicated one shows
            ops.append(["put", (bytes([n % 256]) + draw(st.binary(max_size=3))).hex()])
            count, n = count + 1, n + 1
        elif kind == "take" and count:
            ops.append(["take", None])
            count -= 1
        elif kind in ("full", "empty"):
            ops.append([kind, None])
    return {"capacity": capacity, "ops": ops}


def check_ring(a: dict, worker: Any) -> None:
    got = worker.call("ring", a)["results"]
    q: deque[str] = deque()
    for i, ((op, arg), result) in enumerate(zip(a["ops"], got, strict=True)):
        if op == "put":
            q.append(arg)
            continue
        want: object = q.popleft() if op == "take" else (
            len(q) == a["capacity"] if op == "full" else not q)
        if result != want:
            raise Counterexample(f"operation {i + 1}, `{op}()`: expected {want!r}, your "
                                 f"Channel gave {result!r}", describe_ring(a, i))


def _literal(hex_payload: str | None) -> str:
    return "" if hex_payload is None else repr(bytes.fromhex(hex_payload))


def describe_ring(a: dict, upto: int | None = None) -> str:
    ops = a["ops"] if upto is None else a["ops"][:upto + 1]
    shown = "\n".join(f"{i + 1}. `{op}({_literal(arg)})`" for i, (op, arg) in enumerate(ops))
    return f"A Channel with capacity {a['capacity']}, then:\n\n{shown}"


register(Property(
    "bounded-buffer", "Bounded buffer: the channel's ring is a first-in first-out queue",
    "Bounded buffers: a ring of `capacity` slots; put adds at the tail, take removes the oldest, "
    "and full and empty tell the truth, across every wrap-around.",
    ring_examples, check_ring, describe_ring))


# ----- the IPC state machine ----------------------------------------------------------------------

def ipc_machine(worker: Any) -> type[RuleBasedStateMachine]:
    class IPC(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.history: list[str] = []
            self.alive = [True] * GUESTS
            self.woken = [0] * GUESTS

        def _fail(self, what: str) -> None:
            raise Counterexample(what, "Channels (sender → receiver, capacity): "
                                 + ", ".join(f"{cid}: g{s} → g{r}, {c}" for cid, (s, r, c)
                                             in self.ends.items())
                                 + "\n\nThe operations, in order:\n\n" + "\n".join(
                                     f"{i + 1}. {h}" for i, h in enumerate(self.history)))

        def _woke(self, woken: list[int], who: int | None, what: str) -> None:
            if who is not None and woken[who] <= self.woken[who]:
                self._fail(f"{what}: guest g{who} was blocked on this channel and was not "
                           "woken (a lost wake-up: it would sleep for ever)")
            self.woken = woken

        @initialize(pairs=st.lists(st.tuples(st.integers(0, GUESTS - 1),
                                              st.integers(0, GUESTS - 1), st.integers(1, 4)),
                                   min_size=1, max_size=4))
        def setup(self, pairs: list[tuple[int, int, int]]) -> None:
            ids = worker.call("ipc_start", {"guests": GUESTS, "base": BASE, "size": SIZE,
                                            "pairs": [list(p) for p in pairs]})["ids"]
            self.ends = dict(zip(ids, pairs, strict=True))
            self.model = {cid: deque() for cid in ids}
            if len(set(ids)) != len(ids):
                self._fail(f"connect gave channel ids {ids}: not one per channel")

        def _pick(self, c: int, who: int, end: int) -> tuple[int, int]:
            """A channel (mostly one that exists) and a guest (mostly its grantee)."""
            ids = sorted(self.ends)
            cid = ids[c % len(ids)] if c < 8 else c
            if who < GUESTS or cid not in self.ends:
                return cid, who % GUESTS
            return cid, self.ends[cid][end]

        @rule(c=st.integers(0, 9), who=st.integers(0, 2 * GUESTS),
              payload=st.binary(max_size=MAX_MESSAGE + 2), where=st.integers(0, SIZE))
        def send(self, c: int, who: int, payload: bytes, where: int) -> None:
            cid, g = self._pick(c, who, 0)
            if not self.alive[g]:
                return
            buf = BASE + min(where, SIZE - len(payload))
            shown = f" {payload[:8].hex()}{'…' if len(payload) > 8 else ''}" if payload else ""
            self.history.append(f"g{g}: send({cid}, {len(payload)} bytes{shown})")
            got = worker.call("ipc", {"op": "send", "guest": g, "cid": cid, "buf": buf,
                                      "size": len(payload), "payload": payload.hex()})
            self.history[-1] += f" → {got['result']}"
            end = self.ends.get(cid)
            if end is None or end[0] != g:
                want: object = [ERR_DENIED, 0]
            elif len(payload) > MAX_MESSAGE:
                want = [ERR_INVALID_PARAM, 0]
            elif not self.alive[end[1]]:
                want = [ERR_FAILED, 0]
            elif len(self.model[cid]) == end[2]:
                want = "blocked"
            else:
                want = [OK, 0]
            if got["result"] != want:
                self._fail(f"send: expected {want!r}, your Channels gave {got['result']!r}")
            if want == [OK, 0]:
                self.model[cid].append(payload)
                self._woke(got["woken"], end[1], "send")
            self.woken = got["woken"]

        @rule(c=st.integers(0, 9), who=st.integers(0, 2 * GUESTS),
              size=st.sampled_from((0, 1, 8, MAX_MESSAGE, MAX_MESSAGE)))
        def receive(self, c: int, who: int, size: int) -> None:
            cid, g = self._pick(c, who, 1)
            if not self.alive[g]:
                return
            buf = BASE + SIZE - size
            self.history.append(f"g{g}: receive({cid}, buffer of {size} bytes)")
            got = worker.call("ipc", {"op": "receive", "guest": g, "cid": cid, "buf": buf,
                                      "size": size})
            self.history[-1] += f" → {got['result']}"
            end = self.ends.get(cid)
            q = self.model.get(cid)
            if end is None or end[1] != g:
                want: object = [ERR_DENIED, 0]
            elif not q:
                want = [ERR_FAILED, 0] if not self.alive[end[0]] else "blocked"
            elif len(q[0]) > size:
                want = [ERR_INVALID_PARAM, 0]
            else:
                want = [OK, len(q[0])]
            if got["result"] != want:
                self._fail(f"receive: expected {want!r}, your Channels gave {got['result']!r}")
            if want != "blocked" and want[0] == OK:
                message = q.popleft()
                data = bytes.fromhex(got["data"] or "")[:len(message)]
                if data != message:
                    self._fail(f"receive: the message delivered was {data[:16].hex()}…, the "
                               f"oldest one sent was {message[:16].hex()}… (first in, first "
                               "out; nothing lost, nothing duplicated)")
                self._woke(got["woken"], end[0], "receive")
            self.woken = got["woken"]

        @rule(c=st.integers(0, 7), fill=st.integers(1, 255))
        def fill(self, c: int, fill: int) -> None:
            """Send until the channel is full: the states where blocking and dead peers matter
            are rare among random sends."""
            cid = sorted(self.ends)[c % len(self.ends)]
            sender, receiver, capacity = self.ends[cid]
            while self.alive[sender] and self.alive[receiver] and \
                    len(self.model[cid]) < capacity:
                self.send(c, GUESTS, bytes([fill, len(self.model[cid])]), SIZE)

        @rule(g=st.integers(0, GUESTS - 1), op=st.sampled_from(("send", "receive")),
              outside=st.sampled_from((BASE - 4, BASE + SIZE - 2, 0, 0xFFFF_FFF0)))
        def hostile_buffer(self, g: int, op: str, outside: int) -> None:
            for cid, (s, r, _) in self.ends.items():
                mine = s == g and self.alive[r] if op == "send" else r == g
                if not self.alive[g] or not mine:
                    continue
                self.history.append(f"g{g}: {op}({cid}, buffer at {outside:#x}, 8 bytes)")
                got = worker.call("ipc", {"op": op, "guest": g, "cid": cid, "buf": outside,
                                          "size": 8, "payload": "00" * 8})
                self.history[-1] += f" → {got['result']}"
                if got["result"] != "bad-buffer":
                    self._fail(f"{op} with a buffer outside the guest's memory was answered "
                               f"{got['result']!r}; it must raise BadBuffer (the guest is "
                               "attacking the VMM)")
                return

        @precondition(lambda self: sum(self.alive) > 1)
        @rule(g=st.integers(0, GUESTS - 1))
        def kill(self, g: int) -> None:
            self.history.append(f"g{g} stops")
            self.alive[g] = False
            worker.call("ipc", {"op": "kill", "guest": g})

        @precondition(lambda self: sum(self.alive) > 1)
        @rule(c=st.integers(0, 7), end=st.integers(0, 1))
        def kill_a_peer(self, c: int, end: int) -> None:
            """Stop one end of a channel, full or empty ones first: there, what the other end
            gets next (an error, not a wait for ever) is the dead-peer rule."""
            at_limit = sorted(cid for cid, (_, _, cap) in self.ends.items()
                              if len(self.model[cid]) in (0, cap))
            cid = (at_limit or sorted(self.ends))[c % len(at_limit or self.ends)]
            g = self.ends[cid][end]
            if self.alive[g] and self.alive[self.ends[cid][1 - end]]:
                self.kill(g)

        @rule(c=st.integers(0, 7), payload=st.binary(min_size=1, max_size=8))
        def to_a_dead_peer(self, c: int, payload: bytes) -> None:
            """The live end of a channel whose other end stopped sends or receives."""
            orphans = sorted(cid for cid, (s, r, _) in self.ends.items()
                             if self.alive[s] != self.alive[r])
            if not orphans:
                return
            cid = orphans[c % len(orphans)]
            c = sorted(self.ends).index(cid)  # so that _pick finds it
            if self.alive[self.ends[cid][0]]:
                self.send(c, GUESTS, payload, SIZE)
            else:
                self.receive(c, 2 * GUESTS, MAX_MESSAGE)

    return IPC


def describe_ipc(_: object) -> str:
    return ""


register(Property(
    "ipc", "IPC: channels are FIFO, bounded, private, and wake whoever waits",
    "Bounded buffers between guests, as the lecture's microkernel servers use them: first in, "
    "first out; nothing lost or duplicated; capacity respected; a blocked party is woken; only "
    "the grantees may use a channel; a dead peer is reported.",
    ipc_machine, lambda *_: None, describe_ipc, stateful=True))
