"""IPC: bounded-buffer channels between guests, through an SBI extension of the lab's own.

The lecture's microkernel servers talk through bounded buffers; here the buffers live in the VMM
and guests reach them with hypercalls:

    extension id  a7 = 0x08495043 ("IPC", in the SBI's experimental range)
    send          a6 = 0, a0 = channel, a1 = buffer (guest-physical), a2 = length
                  -> a0 = 0; blocks while the channel is full
    receive       a6 = 1, a0 = channel, a1 = buffer (guest-physical), a2 = buffer size
                  -> a0 = 0, a1 = the message's length; blocks while the channel is empty
    errors (a0)   -3 SBI_ERR_INVALID_PARAM   length over MAX_MESSAGE, or a buffer too small
                  -4 SBI_ERR_DENIED          the guest was not granted that end of the channel
                  -1 SBI_ERR_FAILED          every guest at the other end has stopped
                  -2 SBI_ERR_NOT_SUPPORTED   another function id

Channels are made by whoever sets the VMM up (`VMM.connect`), which grants one guest the sending
end and another the receiving end. A buffer that is not entirely inside the caller's own RAM is
an attack on the VMM: the guest is stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .guest import Guest

EXT_IPC = 0x08495043
SEND, RECEIVE = 0, 1
MAX_MESSAGE = 256
OK, ERR_FAILED, ERR_NOT_SUPPORTED, ERR_INVALID_PARAM, ERR_DENIED = 0, -1, -2, -3, -4
BLOCKED = None  # what send/receive return when the caller must wait


class BadBuffer(Exception):
    """A guest passed a buffer outside its own memory."""


@dataclass
class Channel:
    """A bounded buffer of at most `capacity` messages, first in, first out."""

    cid: int
    capacity: int
    sender: Guest
    receiver: Guest
    slots: list[bytes | None] = field(default_factory=list)
    head: int = 0  # index of the oldest message
    count: int = 0  # messages in the buffer

    def __post_init__(self) -> None:
        self.slots = [None] * self.capacity

    # STUDENT PART bounded-buffer: yours to write
    def full(self) -> bool:
        """No room for another message.

        Hint: `count` says how many slots hold a message."""
        raise NotImplementedError("bounded-buffer: Channel.full is yours to write (see LAB.md)")

    def empty(self) -> bool:
        """No message to receive.

        Hint: see full()."""
        raise NotImplementedError("bounded-buffer: Channel.empty is yours to write (see LAB.md)")

    def put(self, message: bytes) -> None:
        """Append a message; the caller has checked that the buffer is not full.

        Hint: a ring of `capacity` slots; the next free slot is `count` past `head`."""
        raise NotImplementedError("bounded-buffer: Channel.put is yours to write (see LAB.md)")

    def take(self) -> bytes:
        """Remove and return the oldest message; the caller has checked it is not empty.

        Hint: the oldest is at `head`; both `head` and `count` change."""
        raise NotImplementedError("bounded-buffer: Channel.take is yours to write (see LAB.md)")


class Channels:
    def __init__(self, wake: Callable[[Guest], None]) -> None:
        self.wake = wake  # makes a blocked guest runnable again (it retries its ecall)
        self.table: dict[int, Channel] = {}
        self.sent = 0
        self.received = 0

    def connect(self, sender: Guest, receiver: Guest, capacity: int) -> int:
        if capacity <= 0:
            raise ValueError(f"a channel needs room for at least one message, not {capacity}")
        cid = len(self.table)
        self.table[cid] = Channel(cid, capacity, sender, receiver)
        return cid

    # STUDENT PART ipc: yours to write
    def send(self, guest: Guest, cid: int, buf: int, length: int) -> tuple[int, int] | None:
        """The send hypercall. Return (error, value), or BLOCKED when the channel is full (the
        guest then waits, and its ecall runs again once a receiver makes room).

        Check in this order: the channel exists and `guest` holds its sending end (else
        ERR_DENIED); the length is at most MAX_MESSAGE (else ERR_INVALID_PARAM); the buffer lies
        in the guest's own RAM (else raise BadBuffer); the receiver has not stopped (else
        ERR_FAILED). Copy the payload only after all of that, then wake the receiver: it may be
        blocked waiting for this very message.

        Hint: guest.mem.contains and guest.mem.read check and copy guest-physical memory;
        self.wake(g) makes a blocked guest retry."""
        raise NotImplementedError("ipc: Channels.send is yours to write (see LAB.md)")

    def receive(self, guest: Guest, cid: int, buf: int, size: int) -> tuple[int, int] | None:
        """The receive hypercall. Return (error, message length), or BLOCKED when the channel
        is empty. Checks, in order: the receiving end (ERR_DENIED); the buffer lies in the
        guest's own RAM (BadBuffer); if the channel is empty, a stopped sender is ERR_FAILED,
        else BLOCKED; a message longer than `size` is ERR_INVALID_PARAM and stays queued. Taking
        a message makes room: wake the sender.

        Hint: the same as send, the other way round; guest.mem.write copies into the guest."""
        raise NotImplementedError("ipc: Channels.receive is yours to write (see LAB.md)")

    def peers(self, guest: Guest) -> list[Guest]:
        """Guests at the other end of any of `guest`'s channels (to wake when it changes)."""
        out = []
        for ch in self.table.values():
            if ch.sender is guest:
                out.append(ch.receiver)
            elif ch.receiver is guest:
                out.append(ch.sender)
        return out
