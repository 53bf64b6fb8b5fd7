"""The virtual CPU: what the guest believes its hart is.

The guest's registers live in the real hart while it runs, and here while it does not. Its
privileged state never reaches the hardware: the guest kernel runs in real U-mode, so each
privileged instruction traps and the VMM applies it to these fields instead. The WARL rules are
the machine's own (machine/csrs.py), so the guest sees exactly the CSRs bare hardware has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from machine import csr

U, S = 0, 1
NEVER = (1 << 64) - 1


@dataclass
class VirtualCPU:
    x: list[int] = field(default_factory=lambda: [0] * 32)
    pc: int = 0
    mode: int = S  # the guest's *virtual* privilege: S for its kernel, U for its processes
    # the virtual supervisor CSRs
    sstatus: int = 0
    sie: int = 0
    stvec: int = 0
    scounteren: int = 0
    sscratch: int = 0
    sepc: int = 0
    scause: int = 0
    stval: int = 0
    satp: int = 0
    stimecmp: int = NEVER
    # the guest's own clock: instructions it retired (run or emulated) and ticks it idled in wfi
    instret: int = 0
    idle: int = 0
    trap_entry: bool = False  # a trap was just reflected and no instruction retired since

    def time(self) -> int:
        return self.instret + self.idle

    def timer_pending(self) -> bool:
        return self.time() >= self.stimecmp

    def interrupts_enabled(self) -> bool:
        """Would the guest's hardware take a pending timer interrupt now?"""
        return bool(self.sie & csr.SIE_STIE) and (
            self.mode == U or bool(self.sstatus & csr.SSTATUS_SIE))

    def interrupt_due(self) -> bool:
        return self.interrupts_enabled() and self.timer_pending()

    # The machine's CSR file (machine/csrs.py) reads and writes these through the same names
    # as on a real hart, so a virtual CSR keeps exactly the bits a real one keeps.
    def set_sstatus(self, value: int) -> None:
        self.sstatus = value & csr.SSTATUS_WRITABLE

    def set_stimecmp(self, value: int) -> None:
        self.stimecmp = value & NEVER

    # Setting up a state (the grader starts guests in generated states, as on a bare hart)
    def set_reg(self, i: int, value: int) -> None:
        if i:
            self.x[i] = value & 0xFFFF_FFFF

    def set_csr(self, num: int, value: int) -> None:
        from machine import csrs
        csrs.write(self, num, value)

    def set_mode(self, mode: int, virtual: bool = False) -> None:
        self.mode = mode

    def update_irq(self) -> None:
        pass  # the VMM recomputes the guest's timer deadline on every entry

    def select_caches(self) -> None:
        pass  # the VMM reacts to satp writes itself (see trap.py)
