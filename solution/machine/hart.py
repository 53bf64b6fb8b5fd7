"""One RV32 hart: its architectural state, traps, `sret`, and memory accesses through the MMU.

This is the reference interpreter: `step` fetches, decodes and executes one instruction the plain
way. `blocks.py` is a faster layer over the same state, checked equal to this one by a property.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import csr
from .csr import (
    HSTATUS_GVA,
    HSTATUS_SPV,
    HSTATUS_SPVP,
    SIE_STIE,
    SSTATUS_MXR,
    SSTATUS_SIE,
    SSTATUS_SPIE,
    SSTATUS_SPP,
    SSTATUS_SUM,
)
from .decode import decode
from .memory import PhysicalMemory
from .mmu import MMU, Permissions
from .traps import (
    ACCESS_CAUSE,
    BREAKPOINT,
    FETCH,
    GUEST_PAGE_FAULT_CAUSE,
    ILLEGAL_INSN,
    INSN_MISALIGNED,
    INTERRUPT,
    LOAD,
    MISALIGNED_CAUSE,
    PAGE_FAULT_CAUSE,
    S_TIMER_INTERRUPT,
    STORE,
    Trap,
)

U_MODE, S_MODE = 0, 1
MODE_NAMES = {U_MODE: "U", S_MODE: "S"}
NEVER = 1 << 80  # an instret that is never reached
MAX_CONTEXTS = 64  # translation contexts whose fast-path caches are kept
M32 = 0xFFFF_FFFF
# causes whose stval is a (guest-)virtual address: hstatus.GVA is set for them when V=1
_VIRTUAL_TVAL = frozenset(MISALIGNED_CAUSE + ACCESS_CAUSE + PAGE_FAULT_CAUSE
                          + GUEST_PAGE_FAULT_CAUSE + (BREAKPOINT,))


@dataclass(frozen=True)
class TrapEvent:
    """What an observer learns about a trap: taken at `pc`, from `mode` (and V), with the
    values the hardware wrote into scause and stval."""

    cause: int
    tval: int
    pc: int
    mode: int
    virtual: bool
    gpa: int = 0

    def __init__(self, cause: int, tval: int, pc: int, mode: int, virtual: bool,
                 gpa: int = 0) -> None:
        # one store instead of the six frozen-attribute calls of the generated __init__: every
        # trap makes one of these
        self.__dict__.update(cause=cause, tval=tval, pc=pc, mode=mode, virtual=virtual, gpa=gpa)

    @property
    def is_interrupt(self) -> bool:
        return bool(self.cause & INTERRUPT)


class Halt(Exception):
    """Stops the run: raised by the firmware (shutdown), a fatal trap, or the trap handler."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class Hart:
    """Registers, CSRs and privilege of one hart, and the reference `step`."""

    def __init__(self, mem: PhysicalMemory) -> None:
        self.mem = mem
        self.mmu = MMU(mem, self.flush_fast)
        self.x = [0] * 32
        self.pc = 0
        self.mode = S_MODE
        self.v = 0  # 1 while a nested guest runs (two-stage translation)
        self.sstatus = self.sie = self.stvec = self.scounteren = self.sscratch = 0
        self.sepc = self.scause = self.stval = self.satp = 0
        self.hstatus = self.htval = self.htinst = self.hgatp = self.vsstatus = self.vsatp = 0
        self.stimecmp = (1 << 64) - 1  # no timer until software asks for one
        self.instret = 0  # instructions retired
        self.idle = 0  # ticks spent in wfi; time = cycle = instret + idle
        self.irq_deadline = NEVER  # the instret at which the timer interrupt will be taken
        self.ecall_handler: Callable[[Hart], int] | None = None  # the SBI firmware
        self.trap_handler: Callable[[TrapEvent], None] | None = None  # a Python S-mode
        self.trap_observers: list[Callable[[TrapEvent], None]] = []
        self.last_trap: TrapEvent | None = None
        self.last_word: int | None = None  # the word the interpreter last fetched (for traces)
        self.trap_entry = False  # a trap was just taken to stvec and nothing retired since
        self._caches: dict[tuple[int, int], tuple[dict, dict, dict, dict]] = {}
        self.code_pages: dict[int, list[tuple[dict, int]]] = {}  # RAM page -> compiled blocks
        self.code_writes: dict[int, int] = {}  # RAM page -> how often its compiled code was hit
        self.flush_fast()

    # ----- time and interrupts ---------------------------------------------------------------

    def time(self) -> int:
        return self.instret + self.idle

    def update_irq(self) -> None:
        """Work out when the timer interrupt will be taken, so the run loop need not ask at
        every instruction. Taken when enabled (U-mode, or S-mode with SIE), unmasked in sie and
        pending (time >= stimecmp)."""
        enabled = self.sie & SIE_STIE and (self.mode == U_MODE or self.sstatus & SSTATUS_SIE)
        self.irq_deadline = self.stimecmp - self.idle if enabled else NEVER

    def set_stimecmp(self, value: int) -> None:
        self.stimecmp = value & ((1 << 64) - 1)
        self.update_irq()

    def set_sstatus(self, value: int) -> None:
        old, self.sstatus = self.sstatus, value & csr.SSTATUS_WRITABLE
        if (old ^ self.sstatus) & (SSTATUS_SUM | SSTATUS_MXR):
            self.select_caches()
        self.update_irq()

    # ----- fast-path caches ----------------------------------------------------------------

    def flush_fast(self) -> None:
        """Forget every cached translation and compiled block: called whenever the TLB
        changes (a fence, or a walk that replaced an entry)."""
        self._caches = {}
        self.code_pages = {}
        self.select_caches()

    def select_caches(self) -> None:
        """Use the fast-path caches of the current translation context: everything a
        translation or a permission check depends on besides the TLB's contents. Switching
        back and forth (a VMM entering its guests, a kernel its processes) keeps each
        context's compiled blocks; only a change to the TLB itself throws them away."""
        key = self.context()
        c = self._caches.get(key)
        if c is None:
            if len(self._caches) >= MAX_CONTEXTS:
                self._caches = {}
                self.code_pages = {}
            c = self._caches[key] = ({}, {}, {}, {})
        self.rtlb, self.wtlb, self.xtlb, self.blocks = c

    def context(self) -> tuple[int, ...]:
        """The translation context: what a translation or a permission check depends on."""
        if self.v:  # the two stages and the guest's privilege (see translate and permissions)
            return (self.mode, 1, self.sstatus & (SSTATUS_SUM | SSTATUS_MXR),
                    self.hstatus & HSTATUS_SPVP, self.vsatp, self.vsstatus, self.hgatp)
        # the hypervisor CSRs play no part in a single-stage translation
        return (self.mode, 0, self.sstatus & (SSTATUS_SUM | SSTATUS_MXR), self.satp)

    def set_mode(self, mode: int, v: int = 0) -> None:
        self.mode, self.v = mode, v
        self.select_caches()
        self.update_irq()

    def _fill(self, tlb: dict, va: int, pa: int, access: int) -> None:
        """Remember a RAM page that this access type may use directly in this context."""
        off = self.mem.ram_offset(pa & ~0xFFF)
        if off < 0:
            return  # devices always take the slow path
        page = off >> 12
        if access == STORE:
            if page in self.code_pages:
                return  # stores to code go the slow way, which drops the stale blocks
            self.mem.dirty.add(page)
        tlb[va >> 12] = off

    def invalidate_code(self, page: int) -> bool:
        """Drop the compiled blocks of a RAM page that was just written. True if there were."""
        users = self.code_pages.pop(page, None)
        if users is None:
            return False
        for blocks, pc in users:
            blocks.pop(pc, None)
        self.code_writes[page] = self.code_writes.get(page, 0) + 1
        return True

    # ----- translation and memory ------------------------------------------------------------

    def permissions(self) -> Permissions:
        mxr = bool(self.sstatus & SSTATUS_MXR)
        if self.v:
            return Permissions(1 if self.hstatus & HSTATUS_SPVP else 0,
                               bool(self.vsstatus & SSTATUS_SUM),
                               mxr or bool(self.vsstatus & SSTATUS_MXR), mxr)
        return Permissions(self.mode, bool(self.sstatus & SSTATUS_SUM), mxr, mxr)

    def translate(self, va: int, access: int) -> int:
        if self.v:
            return self.mmu.translate(va, access, self.vsatp, self.permissions(), self.hgatp)
        if not self.satp & csr.SATP_MODE_SV32:
            return va
        return self.mmu.translate(va, access, self.satp, self.permissions())

    def fetch(self, pc: int) -> int:
        off = self.xtlb.get(pc >> 12)
        if off is not None and not pc & 3:
            return self.mem.u32[(off | (pc & 0xFFF)) >> 2]
        if pc & 3:
            raise Trap(INSN_MISALIGNED, pc)
        pa = self.translate(pc, FETCH)
        off = self.mem.ram_offset(pa)
        if off < 0:
            raise Trap(ACCESS_CAUSE[FETCH], pc)  # code runs from RAM only
        self._fill(self.xtlb, pc, pa, FETCH)
        return self.mem.u32[off >> 2]

    def load(self, va: int, size: int, signed: bool = False) -> int:
        if va & (size - 1):
            raise Trap(MISALIGNED_CAUSE[LOAD], va)
        pa = self.translate(va, LOAD)
        value = self.mem.load(pa, size, signed)
        if value is None:
            raise Trap(ACCESS_CAUSE[LOAD], va)
        self._fill(self.rtlb, va, pa, LOAD)
        return value & M32

    def store(self, va: int, size: int, value: int) -> bool:
        """Store; True when it overwrote compiled code (the fast path must then stop)."""
        if va & (size - 1):
            raise Trap(MISALIGNED_CAUSE[STORE], va)
        pa = self.translate(va, STORE)
        if not self.mem.store(pa, size, value):
            raise Trap(ACCESS_CAUSE[STORE], va)
        off = self.mem.ram_offset(pa)
        hit = off >= 0 and self.invalidate_code(off >> 12)
        self._fill(self.wtlb, va, pa, STORE)
        return hit

    # ----- traps -------------------------------------------------------------------------------

    def take_trap(self, cause: int, tval: int = 0, gpa: int = 0) -> None:
        """Enter S-mode as the hardware does for a trap, then run the Python handler if any."""
        tval &= M32
        event = TrapEvent(cause, tval, self.pc, self.mode, bool(self.v), gpa)
        for observe in self.trap_observers:
            observe(event)
        s = self.sstatus
        self.sepc = self.pc & ~3
        self.scause = cause
        self.stval = tval
        self.sstatus = ((s & ~(SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP))
                        | (SSTATUS_SPIE if s & SSTATUS_SIE else 0)
                        | (SSTATUS_SPP if self.mode == S_MODE else 0))
        hstatus = self.hstatus & ~(HSTATUS_SPV | HSTATUS_GVA)
        if self.v:
            hstatus |= HSTATUS_SPV | (HSTATUS_GVA if cause in _VIRTUAL_TVAL else 0)
        self.hstatus = hstatus
        self.htval = (gpa >> 2) & M32
        self.htinst = 0
        self.mode, self.v = S_MODE, 0
        self.select_caches()
        self.irq_deadline = NEVER  # S-mode with SIE just cleared: what update_irq would find
        self.pc = self.stvec
        self.last_trap = event
        if self.trap_handler is None:
            self.trap_entry = True
            return
        self.trap_handler(event)  # the VMM plays S-mode software, then returns with sret
        self.sret()

    def sret(self) -> None:
        """Return from S-mode: to SPP's mode, SIE from SPIE, and into the nested guest when
        hstatus.SPV is set and SPP is U (there is no VS-mode on this hart)."""
        s = self.sstatus
        mode = S_MODE if s & SSTATUS_SPP else U_MODE
        v = 1 if mode == U_MODE and self.hstatus & HSTATUS_SPV else 0
        self.sstatus = ((s & ~(SSTATUS_SIE | SSTATUS_SPP)) | SSTATUS_SPIE
                        | (SSTATUS_SIE if s & SSTATUS_SPIE else 0))
        self.pc = self.sepc
        self.set_mode(mode, v)

    def interrupt_due(self) -> bool:
        return self.instret >= self.irq_deadline

    # ----- the reference interpreter ---------------------------------------------------------

    def step(self) -> None:
        """Take a due interrupt, or execute one instruction (which may trap)."""
        if self.instret >= self.irq_deadline:
            self.take_trap(S_TIMER_INTERRUPT)
            return
        pc = self.pc
        self.last_word = None
        try:
            word = self.last_word = self.fetch(pc)
            ins = decode(word)
            if ins is None:
                raise Trap(ILLEGAL_INSN, word)
            self.pc = EXECUTE[ins.op](self, ins, pc, word)
        except Trap as trap:
            self._trap(trap, pc)
            return
        self.instret += 1
        self.trap_entry = False

    def _trap(self, trap: Trap, pc: int) -> None:
        if self.trap_entry and trap.cause in (0, 1, 12) and pc == self.stvec:
            first = self.last_trap
            raise Halt("fatal-trap", _fatal_story(first, trap, pc))
        self.pc = pc
        self.take_trap(trap.cause, trap.tval, trap.gpa)


def _fatal_story(first: TrapEvent | None, second: Trap, stvec: int) -> str:
    from .traps import cause_name
    what = "a trap" if first is None else (
        f"{cause_name(first.cause)} at pc={first.pc:#010x} (stval={first.tval:#010x})")
    return (f"{what} went to the trap vector stvec={stvec:#010x}, which cannot be fetched "
            f"({second}); the hart would trap there forever")


from .execute import EXECUTE  # noqa: E402  (execute.py needs Hart's constants)
