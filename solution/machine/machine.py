"""The machine as tests, tools, the VMM and the grader use it: make, load, run, inspect.

    m = Machine()                 # 128 MiB of RAM, the hart in S-mode at 0x8040_0000
    m.load(assemble(source))
    stop = m.run(max_steps=1_000_000)
    print(m.console, stop.reason, m.regs[10])

`step` and `run` never raise: whatever the program does, they return a `Stop` (or None from
`step` while the machine can go on).
"""

from __future__ import annotations

import mmap
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import csrs, fdt, sbi
from .blocks import run_fast, run_plain
from .board import HART_ID, KERNEL_ENTRY, RAM_BASE, RAM_SIZE_DEFAULT
from .errors import LoadError
from .hart import S_MODE, Halt, Hart, TrapEvent
from .memory import PhysicalMemory
from .program import Program
from .snapshot import Snapshot, capture, restore
from .traps import Trap

EXIT_CODES = {"shutdown": 0, "failure": 1, "fatal-trap": 3, "budget": 4, "wfi-forever": 5,
              "reboot": 6, "handler-error": 7, "halted": 8,
              # how a guest can stop under the VMM besides the above
              "killed": 9, "deadlock": 10, "vmm-error": 11}


@dataclass(frozen=True)
class Stop:
    """Why a run ended. `reason` is one of EXIT_CODES' keys; `detail` says more."""

    reason: str
    detail: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]

    @property
    def clean(self) -> bool:
        return self.reason == "shutdown"

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


class Machine:
    """One RV32 hart with RAM, a UART and SBI firmware, on QEMU virt's memory map."""

    def __init__(self, ram_size: int = RAM_SIZE_DEFAULT, fast: bool = True,
                 ram: mmap.mmap | None = None) -> None:
        self.mem = PhysicalMemory(ram_size, ram)  # `ram`: see PhysicalMemory
        self.hart = Hart(self.mem)
        self.hart.ecall_handler = sbi.firmware
        self.fast = fast  # run compiled blocks; False runs the reference interpreter only
        self.stopped: Stop | None = None
        self.steps = 0  # steps run: instructions executed or traps taken
        self._dtb = fdt.build(ram_size)
        self.dtb_address = fdt.load_address(ram_size, len(self._dtb))
        self._python_handler: Callable[[TrapEvent], None] | None = None
        self.reset()

    # ----- setting up ------------------------------------------------------------------------

    def reset(self, entry: int = KERNEL_ENTRY) -> None:
        """The state OpenSBI leaves for the kernel: S-mode at `entry`, a0 = hart id,
        a1 = the device tree's address, every other register and CSR zero."""
        h = self.hart
        h.x[:] = [0] * 32
        h.x[10], h.x[11] = HART_ID, self.dtb_address
        h.pc = entry
        self.mem.write_bytes(self.dtb_address, self._dtb)
        h.set_mode(S_MODE)
        self.stopped = None

    def load(self, program: Program) -> None:
        """Copy a program's segments into RAM and point the pc at its entry."""
        for seg in program.segments:
            last = seg.addr + max(len(seg.data), 1) - 1
            if self.mem.ram_offset(seg.addr) < 0 or self.mem.ram_offset(last) < 0:
                raise LoadError(
                    f"{program.name}: segment at {seg.addr:#010x} ({len(seg.data)} bytes) does "
                    f"not fit in RAM ({RAM_BASE:#010x}..{RAM_BASE + self.mem.ram_size:#010x})")
            self.write_phys(seg.addr, seg.data)
        self.hart.pc = program.entry

    # ----- registers, CSRs, memory -----------------------------------------------------------

    @property
    def regs(self) -> list[int]:
        """x0..x31 (a live list: writes go to the hart; keep x0 zero)."""
        return self.hart.x

    def get_reg(self, i: int) -> int:
        return self.hart.x[i]

    def set_reg(self, i: int, value: int) -> None:
        if i:
            self.hart.x[i] = value & 0xFFFF_FFFF

    @property
    def pc(self) -> int:
        return self.hart.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self.hart.pc = value & 0xFFFF_FFFF

    @property
    def mode(self) -> int:
        """0 for U-mode, 1 for S-mode."""
        return self.hart.mode

    def set_mode(self, mode: int, virtual: bool = False) -> None:
        self.hart.set_mode(mode, int(virtual))

    def csr(self, num: int) -> int:
        """Read a CSR as S-mode would (no privilege check)."""
        return csrs.read(self.hart, num)

    def set_csr(self, num: int, value: int) -> None:
        """Write a CSR as S-mode would; read-only counters ignore it."""
        csrs.write(self.hart, num, value)

    def set_csrs(self, writes: Iterable[tuple[int, int]]) -> None:
        """Write several CSRs as `set_csr` would, one after the other, in fewer steps: a VMM
        restores a guest's state this way. Not stimecmp (see `Hart.set_stimecmp`)."""
        csrs.write_many(self.hart, writes)

    def read_phys(self, addr: int, n: int) -> bytes:
        data = self.mem.read_bytes(addr, n)
        if data is None:
            raise ValueError(f"{addr:#x}+{n} is not RAM")
        return data

    def write_phys(self, addr: int, data: bytes) -> None:
        if not self.mem.write_bytes(addr, data):
            raise ValueError(f"{addr:#x}+{len(data)} is not RAM")
        first = (addr - RAM_BASE) >> 12
        for page in range(first, (addr - RAM_BASE + len(data) + 4095) >> 12):
            self.hart.invalidate_code(page)

    def translate(self, va: int, access: int) -> int | Trap:
        """Where `va` goes for `access` (0 fetch, 1 load, 2 store) in the current mode, through
        the TLB as an access would; a Trap (returned, not raised) when it would fault."""
        try:
            return self.hart.translate(va & 0xFFFF_FFFF, access)
        except Trap as trap:
            return trap

    @property
    def console(self) -> bytes:
        return bytes(self.mem.console)

    # ----- traps ---------------------------------------------------------------------------

    def set_trap_handler(self, handler: Callable[[TrapEvent], None] | None) -> None:
        """Install S-mode software written in Python (the VMM's entry point). On every trap the
        hardware enters S-mode (sepc, scause, stval, sstatus as the spec says), then calls
        `handler(event)` instead of jumping to stvec, and executes `sret` when it returns. The
        handler may call `halt` to stop the run; if it raises, the run stops with
        "handler-error" and the traceback."""
        self._python_handler = handler
        self.hart.trap_handler = None if handler is None else self._call_handler

    def _call_handler(self, event: TrapEvent) -> None:
        try:
            self._python_handler(event)  # type: ignore[misc]
        except Halt:
            raise
        except Exception:  # noqa: BLE001  (any bug in the handler stops the run, not us)
            raise Halt("handler-error", traceback.format_exc()) from None

    def add_trap_observer(self, observer: Callable[[TrapEvent], None]) -> None:
        """Call `observer(event)` on every trap, before it is taken."""
        self.hart.trap_observers.append(observer)

    def halt(self, reason: str = "halted", detail: str = "") -> None:
        """Stop the run from inside a trap handler."""
        raise Halt(reason if reason in EXIT_CODES else "halted", detail)

    # ----- running -------------------------------------------------------------------------

    def step(self) -> Stop | None:
        """Execute one instruction or take one trap; a Stop if the machine stopped, else None.
        (One step at a time is the reference interpreter's job: compiling blocks to run one
        instruction of each would only cost time.)"""
        return self.run_one_plain()

    def run_one_plain(self) -> Stop | None:
        """One step of the reference interpreter (the tracer uses it)."""
        if self.stopped is not None:
            return self.stopped
        steps, halt = run_plain(self.hart, 1)
        self.steps += steps
        if halt is not None:
            self.stopped = Stop(halt.reason, halt.detail)
        return self.stopped

    def run(self, max_steps: int = 10_000_000) -> Stop:
        """Run until the program stops or `max_steps` steps have run."""
        if self.stopped is not None:
            return self.stopped
        if max_steps <= 0:
            return Stop("budget", f"a budget of {max_steps} steps runs nothing")
        runner = run_fast if self.fast else run_plain
        try:
            steps, halt = runner(self.hart, max_steps)
        except RecursionError:
            steps, halt = 0, Halt("handler-error", "recursion too deep in the trap handler")
        self.steps += steps
        if halt is not None:
            self.stopped = Stop(halt.reason, halt.detail)
            return self.stopped
        return Stop("budget", f"ran {max_steps} steps without stopping")

    # ----- state -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return capture(self.hart)

    def restore(self, snap: Snapshot) -> None:
        restore(self.hart, snap)
        self.stopped = None
