"""A guest: one virtual machine with its virtual CPU, memory and way of paging."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from machine import Stop
from machine.uart import Uart

from .guestmem import GuestMemory
from .nested import GStage
from .shadow import ShadowTables
from .vcpu import VirtualCPU

RUNNABLE, BLOCKED, STOPPED = "runnable", "blocked", "stopped"


@dataclass
class Guest:
    gid: int
    name: str
    vcpu: VirtualCPU
    mem: GuestMemory
    paging: str  # "shadow" or "nested"
    shadow: ShadowTables | None = None
    gstage: GStage | None = None
    state: str = RUNNABLE
    stop: Stop | None = None
    console: bytearray = field(default_factory=bytearray)
    uart: Uart = field(init=False)  # the guest's own emulated UART
    waiting_on: int | None = None  # the channel a blocked guest waits on
    traps: Counter = field(default_factory=Counter)  # traps into the VMM, by cause
    emulated: int = 0  # instructions the VMM emulated for the guest
    native: int = 0  # instructions the guest ran on the hardware
    last_fault: tuple[int, int, int] | None = None  # (pc, cause, address) of the last hidden fault
    repeats: int = 0

    def __post_init__(self) -> None:
        self.uart = Uart(self.console)

    @property
    def running(self) -> bool:
        return self.state != STOPPED
