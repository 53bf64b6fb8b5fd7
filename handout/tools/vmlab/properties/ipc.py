"""Part 3, IPC over bounded buffers, against the abstract queue.

bounded-buffer: a sequence of operations on one Channel must behave as a FIFO of `capacity`.
ipc: a hypothesis rule-based state machine drives sends, receives, hostile buffers and guest
deaths among three guests through the student's Channels (over a reference queue, so that this
part is graded on its own), and checks every answer against the abstract channel: FIFO, nothing
lost or duplicated, capacity, wake-ups, grants, dead peers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

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

# Hypothesis's cost in a state machine is per draw and per step, not per bit, and most of it
# went into picking the rule: with several rules it draws once more per pick to ask whether its
# swarm testing left that rule out of the run, and draws again when it did (and evaluates
# preconditions each time). So the machine has one rule, `step`, whose integers each say which
# kind of operation it is and what it does, two operations a step (the second one may be none);
# `setup` draws which kinds the run leaves out: the same swarm testing, one draw a run.
KINDS = ("send", "receive", "fill", "drain", "hostile_buffer", "kill", "to_a_dead_peer")
CHANNEL_PICKS = 10  # 0-7 an existing channel (modulo their number), 8 and 9 ids never given out
WHO_PICKS = 3 * GUESTS  # 0-2 any guest, whether granted or not; 3-8 the channel's grantee
# either side of each buffer size, and far beyond a message (a send must refuse the length
# before it touches the buffer: copying 4 GiB first takes the VMM minutes)
SEND_SIZES = (0, 1, 2, 8, 9, 64, MAX_MESSAGE, MAX_MESSAGE + 1, 0x1_0000, 0x8000_0000,
              0xFFFF_FFFF)
RELEASE_SIZES = SEND_SIZES[1:7]  # a message that lets a waiting receiver go on: 1 to 256 bytes
WHERE_PICKS = 8  # the sender's buffer: from the start of its RAM to flush with its end
RECEIVE_SIZES = (0, 1, 8, MAX_MESSAGE, MAX_MESSAGE, SIZE)  # SIZE: all its RAM, a valid buffer
# buffers not (wholly) in the guest's RAM, (address, length): below it, across its end, nowhere
# near, and wrapping past 2^32 back into it (a check on 32-bit sums lets those through: two of
# them, so that a run's few hostile sends meet one)
OUTSIDE = ((BASE - 4, 8), (BASE + SIZE - 2, 8), (0, 8), (0xFFFF_FFF0, 8),
           (0xFFFF_FF80, MAX_MESSAGE), (0xFFFF_FFFC, 8), (0xFFFF_FFF0, 0x8000_0020))
# and receive buffers longer than a message that start in its RAM and run past its end: all
# of it, its last page and a byte, a message's room and a byte (a check of only as much as a
# message fills lets those through)
OUTSIDE_RECEIVES = OUTSIDE + ((BASE, 0xFFFF_FFFF), (BASE + 0x1000, SIZE),
                              (BASE + SIZE - 2 * MAX_MESSAGE, 2 * MAX_MESSAGE + 1))
OUTSIDE_SENDS = tuple((b, n) for b, n in OUTSIDE if n <= MAX_MESSAGE)  # longer ones are -3
ARGS = CHANNEL_PICKS * WHO_PICKS * len(SEND_SIZES) * WHERE_PICKS  # the most a kind decodes
PAIRS = st.lists(st.integers(0, GUESTS * GUESTS * 4 - 1), min_size=1, max_size=4)
LEFT_OUT = st.integers(0, 2 ** (len(KINDS) + 1) - 1)  # a bit per kind, and one for "none"
OPERATION = st.integers(0, len(KINDS) * ARGS - 1)
THEN = st.integers(0, len(KINDS) * ARGS)  # 0: no second operation; shrinks to that


def ipc_machine(worker: Any) -> type[RuleBasedStateMachine]:
    class IPC(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.history: list[str] = []
            self.alive = [True] * GUESTS
            # a guest whose call must wait: (the call, the channel); it runs no more calls
            # until a wake-up (the other end's call that lets it go on, or that end's death)
            self.blocked: dict[int, tuple[str, int]] = {}
            self.woken = [0] * GUESTS  # the worker's count, as of the last answer checked
            self.numbered = 0  # messages made up so far: each one's bytes start from its number
            # The model alone decides what each operation must return, so the operations go
            # to the worker in one batch at the end of the run and their answers are checked
            # then, in order: a round trip per operation cost more than the operation.
            self.pending: list[tuple[dict, Callable[[dict], None]]] = []
            self.shown = 0  # the operations a failure lists: up to the one being checked

        def _fail(self, what: str) -> None:
            raise Counterexample(what, describe_history(self.ends, self.history[:self.shown]))

        def _call(self, request: dict, check: Callable[[dict], None]) -> None:
            """Queue an operation (the last entry of the history) and its check."""
            at = len(self.history) - 1

            def checked(got: dict) -> None:
                self.shown = at + 1
                if got["result"] is not None:
                    self.history[at] += f" → {got['result']}"
                check(got)
                self.woken = got["woken"]
            self.pending.append((request, checked))

        def teardown(self) -> None:
            if not self.pending:
                return
            answers = worker.call("ipc_batch", {"ops": [r for r, _ in self.pending]})["answers"]
            if len(answers) != len(self.pending):
                raise Counterexample(f"the worker answered {len(answers)} of "
                                     f"{len(self.pending)} operations", "")
            for (_, check), got in zip(self.pending, answers, strict=True):
                check(got)

        def _lets_go(self, who: int, waiting: tuple[str, int]) -> bool:
            """Whether `who` waits in `waiting`, which this call ends: then it must be woken."""
            if self.blocked.get(who) != waiting:
                return False
            del self.blocked[who]
            return True

        def _woke(self, woken: list[int], who: int, what: str) -> None:
            if woken[who] <= self.woken[who]:
                self._fail(f"{what}: guest g{who} was blocked on this channel and was not "
                           "woken (a lost wake-up: it would sleep for ever)")

        def _message(self, size: int) -> bytes:
            """A new message, numbered and never zero, so that a lost or duplicated one (or one
            read from the wrong memory) shows."""
            self.numbered += 1
            return bytes((self.numbered + i) % 255 + 1 for i in range(size))

        @initialize(pairs=PAIRS, left_out=LEFT_OUT)
        def setup(self, pairs: list[int], left_out: int) -> None:
            # each channel is one number: its sender, its receiver and its capacity, 1 to 4
            ends = [(p % GUESTS, p // GUESTS % GUESTS, p // GUESTS ** 2 + 1) for p in pairs]
            ids = worker.call("ipc_start", {"guests": GUESTS, "base": BASE, "size": SIZE,
                                            "pairs": [list(e) for e in ends]})["ids"]
            self.ends = dict(zip(ids, ends, strict=True))
            self.model = {cid: deque() for cid in ids}
            if left_out >> len(KINDS):  # half the runs leave out none
                left_out = 0
            self.kinds = [k for i, k in enumerate(KINDS) if not left_out >> i & 1] or list(KINDS)
            if len(set(ids)) != len(ids):
                self._fail(f"connect gave channel ids {ids}: not one per channel")

        @rule(first=OPERATION, then=THEN)
        def step(self, first: int, then: int) -> None:
            """One operation, and a second one unless `then` is 0. (A step costs hypothesis
            more than its integers: two operations a step halve the steps of a run.)"""
            self._operation(first)
            if then:
                self._operation(then - 1)

        def _operation(self, operation: int) -> None:
            """Its kind (the next one this run has if it left that one out), then the kind's
            own decoding of the rest."""
            arg, kind = divmod(operation, len(KINDS))
            while KINDS[kind] not in self.kinds:
                kind = (kind + 1) % len(KINDS)
            getattr(self, KINDS[kind])(arg)

        def _pick(self, c: int, who: int, end: int) -> tuple[int, int]:
            """A channel (mostly one that exists) and a guest (mostly its grantee)."""
            ids = sorted(self.ends)
            cid = ids[c % len(ids)] if c < 8 else c
            if who < GUESTS or cid not in self.ends:
                return cid, who % GUESTS
            return cid, self.ends[cid][end]

        def send(self, arg: int) -> None:
            arg, c = divmod(arg, CHANNEL_PICKS)
            arg, who = divmod(arg, WHO_PICKS)
            where, size = divmod(arg, len(SEND_SIZES))
            self._send(c, who, SEND_SIZES[size], SIZE * where // (WHERE_PICKS - 1))

        def _send(self, c: int, who: int, size: int, where: int) -> None:
            cid, g = self._pick(c, who, 0)
            if g in self.blocked:
                return self._release(g, size)
            if not self.alive[g]:
                return
            payload = self._message(size) if size <= SIZE else b""
            buf = BASE + (min(where, SIZE - size) if size <= SIZE else where % SIZE)
            shown = f" {payload[:8].hex()}{'…' if size > 8 else ''}" if payload else ""
            self.history.append(f"g{g}: send({cid}, {size} bytes{shown})")
            end = self.ends.get(cid)
            if end is None or end[0] != g:
                want: object = [ERR_DENIED, 0]
            elif size > MAX_MESSAGE:
                want = [ERR_INVALID_PARAM, 0]
            elif not self.alive[end[1]]:
                want = [ERR_FAILED, 0]
            elif len(self.model[cid]) == end[2]:
                want = "blocked"
            else:
                want = [OK, 0]
            if want == [OK, 0]:
                self.model[cid].append(payload)
            elif want == "blocked":
                self.blocked[g] = ("send", cid)
            wake = want == [OK, 0] and self._lets_go(end[1], ("receive", cid))

            def check(got: dict) -> None:
                if got["result"] != want:
                    self._fail(f"send: expected {want!r}, your Channels gave {got['result']!r}")
                if wake:
                    self._woke(got["woken"], end[1], "send")
            self._call({"op": "send", "guest": g, "cid": cid, "buf": buf, "size": size,
                        "payload": payload.hex()}, check)

        def receive(self, arg: int) -> None:
            arg, c = divmod(arg, CHANNEL_PICKS)
            arg, who = divmod(arg, WHO_PICKS)
            self._receive_with_room(c, who, RECEIVE_SIZES[arg % len(RECEIVE_SIZES)])

        def _receive_with_room(self, c: int, who: int, size: int) -> None:
            if self._receive(c, who, size) == [ERR_INVALID_PARAM, 0]:
                # told its buffer is too short, the guest tries again with room: the message
                # must still be first in line (a refusal that dropped it shows only here)
                self._receive(c, who, MAX_MESSAGE)

        def _receive(self, c: int, who: int, size: int) -> object:
            """The receive, checked; what the abstract channel says it returns."""
            cid, g = self._pick(c, who, 1)
            if g in self.blocked:
                return self._release(g, size)
            if not self.alive[g]:
                return None
            buf = BASE + SIZE - size
            self.history.append(f"g{g}: receive({cid}, buffer of {size} bytes)")
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
            delivered = want != "blocked" and want[0] == OK
            message = q.popleft() if delivered else b""
            if want == "blocked":
                self.blocked[g] = ("receive", cid)
            wake = delivered and self._lets_go(end[0], ("send", cid))

            def check(got: dict) -> None:
                if got["result"] != want:
                    self._fail(f"receive: expected {want!r}, your Channels gave "
                               f"{got['result']!r}")
                if delivered:
                    data = bytes.fromhex(got["data"] or "")[:len(message)]
                    if data != message:
                        self._fail(f"receive: the message delivered was {data[:16].hex()}…, "
                                   f"the oldest one sent was {message[:16].hex()}… (first in, "
                                   "first out; nothing lost, nothing duplicated)")
                if wake:
                    self._woke(got["woken"], end[0], "receive")
            self._call({"op": "receive", "guest": g, "cid": cid, "buf": buf, "size": size},
                       check)
            return want

        def _release(self, g: int, size: int) -> None:
            """`g` waits, so it makes no call: the other end of its channel takes the turn,
            with the call that lets it go on (and must wake it); `size` picks its size: a
            receive's buffer of a byte or none is refused a longer message, which must stay
            queued for the retry; a message has 1 to MAX_MESSAGE bytes."""
            op, cid = self.blocked[g]
            sender, receiver, _ = self.ends[cid]
            c = sorted(self.ends).index(cid)  # so that _pick finds it
            if op == "send" and receiver not in self.blocked:
                self._receive_with_room(c, GUESTS, size % 2)
            elif op == "receive" and sender not in self.blocked:
                self._send(c, GUESTS, RELEASE_SIZES[size % len(RELEASE_SIZES)], SIZE)

        def fill(self, arg: int) -> None:
            """Send until the channel is full; then, mostly, once more, so that the sender
            waits, and now and then its receiver stops while it waits: the states where
            blocking and dead peers matter are rare among random sends."""
            c, then = arg % 8, arg // 8 % 4  # then: 0 nothing more, 1 or 2 a wait, 3 a death
            cid = sorted(self.ends)[c % len(self.ends)]
            sender, receiver, capacity = self.ends[cid]
            while self.alive[sender] and self.alive[receiver] and sender not in self.blocked \
                    and len(self.model[cid]) < capacity:
                self._send(c, GUESTS, 2, SIZE)
            if then:
                self._send(c, GUESTS, 2, SIZE)
            if then == 3 and self.blocked.get(sender) == ("send", cid):
                self._stop(receiver)

        def drain(self, arg: int) -> None:
            """Receive until the channel is empty, and (half the time) once more, so that the
            receiver waits: fill's counterpart."""
            c = arg % 8
            cid = sorted(self.ends)[c % len(self.ends)]
            receiver = self.ends[cid][1]
            while self.alive[receiver] and receiver not in self.blocked and self.model[cid]:
                self._receive(c, GUESTS, MAX_MESSAGE)
            if arg // 8 % 2:
                self._receive(c, GUESTS, MAX_MESSAGE)

        def hostile_buffer(self, arg: int) -> None:
            """A guest passes a buffer not wholly in its RAM: the VMM must refuse it."""
            arg, pick = divmod(arg, CHANNEL_PICKS)
            op = ("send", "receive")[arg % 2]
            choices = OUTSIDE_SENDS if op == "send" else OUTSIDE_RECEIVES
            outside, length = choices[arg // 2 % len(choices)]
            # the end of a channel whose holder can call now (a send to a live receiver): any
            # guest drawn would often hold no such end, and the call would not happen at all
            ends = [(cid, s if op == "send" else r) for cid, (s, r, _) in self.ends.items()
                    if op == "receive" or self.alive[r]]
            ends = [(cid, g) for cid, g in ends if self.alive[g] and g not in self.blocked]
            if not ends:
                return
            cid, g = ends[pick % len(ends)]
            self.history.append(f"g{g}: {op}({cid}, buffer at {outside:#x}, {length:#x} bytes)")

            def check(got: dict) -> None:
                if got["result"] != "bad-buffer":
                    self._fail(f"{op} with a buffer outside the guest's memory was answered "
                               f"{got['result']!r}; it must raise BadBuffer (the guest is "
                               "attacking the VMM)")
            self._call({"op": op, "guest": g, "cid": cid, "buf": outside, "size": length,
                        "payload": ""}, check)

        def kill(self, arg: int) -> None:
            """A guest stops: any one, or (mostly) one end of a channel whose other end lives,
            half of those the end a guest waits for. The last guest alive stays."""
            arg %= GUESTS + 8 * 4
            if arg < GUESTS:
                g: int | None = arg
            else:
                c, end = divmod(arg - GUESTS, 4)
                g = self._peer(c, min(end, 2))
            if g is not None:
                self._stop(g)

        def _stop(self, g: int) -> None:
            if sum(self.alive) == 1 or not self.alive[g]:
                return
            self.history.append(f"g{g} stops")
            self.alive[g] = False
            self.blocked.pop(g, None)
            self._call({"op": "kill", "guest": g}, lambda got: None)
            # the VMM wakes whoever waits on a channel with it, and each retries its call at
            # once: that call must fail now, not wait for ever
            for h, (op, cid) in list(self.blocked.items()):
                if g in self.ends[cid][:2]:
                    del self.blocked[h]
                    c = sorted(self.ends).index(cid)
                    if op == "send":
                        self._send(c, GUESTS, 2, SIZE)
                    else:
                        self._receive(c, GUESTS, MAX_MESSAGE)

        def _peer(self, c: int, end: int) -> int | None:
            """One end of a channel (0 its sender, 1 its receiver, 2 the one that would be
            waited for: a full channel's receiver, an empty one's sender), full channels whose
            sender waits first, then full or empty ones: there, what the other end gets next
            (an error, not a wait for ever) is the dead-peer rule."""
            full = [cid for cid, (_, _, cap) in self.ends.items() if len(self.model[cid]) == cap]
            empty = [cid for cid in self.ends if not self.model[cid]]
            waited = [cid for cid in full if self.blocked.get(self.ends[cid][0]) == ("send", cid)]
            ids = sorted(waited or full or empty or self.ends)
            cid = ids[c % len(ids)]
            ends = self.ends[cid]
            if end == 2:
                end = int(len(self.model[cid]) == ends[2])
            return ends[end] if self.alive[ends[0]] and self.alive[ends[1]] else None

        def to_a_dead_peer(self, arg: int) -> None:
            """The live end of a channel whose other end stopped sends or receives."""
            orphans = sorted(cid for cid, (s, r, _) in self.ends.items()
                             if self.alive[s] != self.alive[r])
            if not orphans:
                return
            cid = orphans[arg % len(orphans)]
            c = sorted(self.ends).index(cid)  # so that _pick finds it
            if self.alive[self.ends[cid][0]]:
                self._send(c, GUESTS, 1 + arg // 8 % 8, SIZE)
            else:
                self._receive(c, GUESTS, MAX_MESSAGE)

    return IPC


def describe_history(ends: dict, history: list[str], one_channel: bool = True) -> str:
    """The channels, then the run as a timeline of the guests: a row per operation, a lane per
    guest. Only the failing channel's operations (the last one's) and the stops are shown."""
    import re
    channel = re.search(r"\((\d+),", history[-1]) if history else None
    cid = int(channel.group(1)) if channel and one_channel else None
    rows, hidden, state = [], 0, ["."] * GUESTS
    for i, h in enumerate(history):
        m = re.match(r"g(\d+)", h)
        who = int(m.group(1)) if m else None
        on = re.search(r"\((\d+),", h)
        if cid is not None and on and int(on.group(1)) != cid:
            hidden += 1
            continue
        lanes = list(state)
        if who is not None:
            lanes[who] = "x" if h.endswith("stops") else "*"
            state[who] = "x" if h.endswith("stops") else "w" if h.endswith("blocked") else "."
        rows.append(f"{i + 1:>3}  {''.join(f'{c:<4}' for c in lanes)}{h}")
    head = f"  #  {''.join(f'g{g:<3}' for g in range(GUESTS))}operation"
    shown = f"those on channel {cid}" if cid is not None else "all of them"
    note = f" ({hidden} on other channels not shown)" if hidden else ""
    return ("Channels (sender → receiver, capacity): "
            + ", ".join(f"{c}: g{s} → g{r}, {cap}" for c, (s, r, cap) in ends.items())
            + f"\n\nThe operations, in order: {shown}{note}; a lane per guest: `*` makes "
            "the call, `w` waits, `x` has stopped:\n\n```\n" + head + "\n"
            + "\n".join(rows) + "\n```")


def describe_ipc(run: object) -> str:
    """A run that raised or crashed, from the calls made to the worker: the channels, then
    the batch of operations (which one raised, the traceback says)."""
    if not isinstance(run, list):
        return ""
    start = next((args for probe, args in run if probe == "ipc_start"), None)
    ops = [op for probe, args in run if probe == "ipc_batch" for op in args["ops"]]
    ends = dict(enumerate(tuple(p) for p in start["pairs"])) if start else {}
    history = []
    for op in ops:
        if op["op"] == "kill":
            history.append(f"g{op['guest']} stops")
        elif op["op"] == "send":
            history.append(f"g{op['guest']}: send({op['cid']}, {op['size']} bytes at "
                           f"{op['buf']:#x})")
        else:
            history.append(f"g{op['guest']}: {op['op']}({op['cid']}, buffer of {op['size']} "
                           f"bytes at {op['buf']:#x})")
    # which operation raised, only the traceback knows: all of them
    return describe_history(ends, history, one_channel=False) if history else ""


register(Property(
    "ipc", "IPC: channels are FIFO, bounded, private, and wake whoever waits",
    "Bounded buffers between guests, as the lecture's microkernel servers use them: first in, "
    "first out; nothing lost or duplicated; capacity respected; a blocked party is woken; only "
    "the grantees may use a channel; a dead peer is reported.",
    ipc_machine, lambda *_: None, describe_ipc, stateful=True))
