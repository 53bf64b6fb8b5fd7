"""The virtual machine monitor: guests, the world switch, and the scheduler.

The VMM is the host's S-mode software, written in Python: the machine calls `on_trap` for every
trap taken while a guest runs (hardware trap entry has happened; `sret` follows when it
returns). On each one the VMM saves the guest's registers into its virtual CPU, deals with the
trap (trap.py), picks the guest to run next, round robin, and loads that guest's state into the
hardware: its registers, its pc in sepc, U-mode in sstatus.SPP, and its page tables (shadow.py or
nested.py), with the timer set for the end of its time slice or its own next timer interrupt,
whichever comes first.
"""

from __future__ import annotations

from machine import Machine, Program, Stop, csr, fdt
from machine.board import KERNEL_ENTRY
from machine.hart import TrapEvent
from machine.traps import ACCESS_CAUSE, S_TIMER_INTERRUPT

from . import mmio, trap
from .channels import Channels
from .frames import FrameAllocator
from .guest import BLOCKED, RUNNABLE, STOPPED, Guest
from .guestmem import GuestMemory
from .guestwalk import GuestFault
from .nested import GStage
from .shadow import ShadowTables
from .vcpu import NEVER, S, VirtualCPU

GUEST_MEMORY = 32 << 20
HOST_MEMORY = 256 << 20
VMM_RESERVED = 16 << 20  # the bottom of host RAM: the VMM's page tables
QUANTUM = 20_000  # host instructions a guest runs before the next one gets the hart
MAX_REPEATS = 64  # the same fault this often, nothing retired in between: the VMM is stuck


class VMM:
    def __init__(self, host_memory: int = HOST_MEMORY, quantum: int = QUANTUM,
                 fast: bool = True) -> None:
        self.machine = Machine(ram_size=host_memory, fast=fast)
        self.frames = FrameAllocator(host_memory, VMM_RESERVED)
        self.guests: list[Guest] = []
        self.channels = Channels(wake=lambda g: self.wake([g]))
        self.quantum = quantum
        self.current: Guest | None = None
        self.entered_at = 0  # host instret when the current guest was last entered
        self.slice_ends = 0  # host time when its time slice ends
        self.machine.set_trap_handler(self.on_trap)

    # ----- setting up ------------------------------------------------------------------------

    def create_guest(self, program: Program, name: str | None = None,
                     memory: int = GUEST_MEMORY, paging: str = "shadow") -> Guest:
        """A new guest booting `program` as the bare board would: virtual S-mode at its entry,
        a0 = hart id 0, a1 = a device tree describing its memory."""
        if paging not in ("shadow", "nested"):
            raise ValueError(f"paging must be 'shadow' or 'nested', not {paging!r}")
        gid = len(self.guests)
        name = name or f"guest{gid}"
        mem = GuestMemory(name, memory, self.frames, self.machine)
        for seg in program.segments:
            if not mem.contains(seg.addr, len(seg.data)):
                raise ValueError(f"{program.name}: segment at {seg.addr:#x} is outside the "
                                 f"guest's {memory >> 20} MiB of RAM")
            mem.write(seg.addr, seg.data)
        dtb = fdt.build(memory)
        dtb_at = fdt.load_address(memory, len(dtb))
        mem.write(dtb_at, dtb)
        vcpu = VirtualCPU(pc=program.entry if program.segments else KERNEL_ENTRY)
        vcpu.x[11] = dtb_at
        guest = Guest(gid, name, vcpu, mem, paging)
        if paging == "shadow":
            guest.shadow = ShadowTables(self.machine, self.frames, mem, asid_base=2 + 2 * gid)
        else:
            guest.gstage = GStage(self.machine, self.frames, mem, vmid=1 + gid)
        self.guests.append(guest)
        return guest

    def connect(self, sender: Guest, receiver: Guest, capacity: int = 4) -> int:
        """A channel from `sender` to `receiver`; returns its id."""
        return self.channels.connect(sender, receiver, capacity)

    # ----- running ---------------------------------------------------------------------------

    def run(self, max_steps: int = 50_000_000) -> Stop:
        """Run the guests until all have stopped or the host ran `max_steps` steps."""
        if self.current is None:
            first = self._next_runnable(None)
            if first is None:
                return Stop("halted", "no guest to run")
            self._enter(first)
            self.machine.hart.sret()  # drop from the VMM's S-mode into the guest
        stop = self.machine.run(max_steps)
        if stop.reason == "budget" and self.current is not None:
            # bring the virtual CPU up to date; the guest goes on where the hardware is (no
            # _enter: its reflections move the virtual CPU, not a hart that never trapped, and
            # the timer set for the guest fires at its time anyway)
            self._exit(self.current, self.machine.pc)
            self.entered_at = self.machine.hart.instret
        return stop

    def on_trap(self, event: TrapEvent) -> None:
        guest = self.current
        assert guest is not None
        guest.traps[event.cause] += 1
        self._exit(guest, event.pc)
        if event.cause == S_TIMER_INTERRUPT:
            self._tick(guest)
        else:
            trap.handle(self, guest, event)
        nxt = guest if guest.state == RUNNABLE and not self._slice_over() else \
            self._next_runnable(guest)
        if nxt is None:
            self._halt()
        self._enter(nxt)

    def _tick(self, guest: Guest) -> None:
        """The hardware timer fired: the guest's own timer, or the end of its time slice."""
        if guest.vcpu.interrupt_due():
            trap.reflect(self, guest, S_TIMER_INTERRUPT, 0)

    def _slice_over(self) -> bool:
        return self.machine.hart.time() >= self.slice_ends

    def _next_runnable(self, after: Guest | None) -> Guest | None:
        n = len(self.guests)
        start = 0 if after is None else after.gid + 1
        for i in range(n):
            g = self.guests[(start + i) % n]
            if g.state == RUNNABLE:
                return g
        return None

    def _halt(self) -> None:
        blocked = [g.name for g in self.guests if g.state == BLOCKED]
        for g in self.guests:
            if g.state == BLOCKED:
                self.stop_guest(g, "deadlock", "every guest still running waits on a channel")
        self.current = None
        detail = "all guests stopped" + (f" ({', '.join(blocked)} deadlocked)" if blocked else "")
        self.machine.halt("halted", detail)

    # ----- the world switch ------------------------------------------------------------------

    def _exit(self, guest: Guest, pc: int) -> None:
        """Save what the hardware holds of the guest into its virtual CPU."""
        h = self.machine.hart
        v = guest.vcpu
        ran = h.instret - self.entered_at
        v.instret += ran
        guest.native += ran
        if ran:
            v.trap_entry = False
        v.x[:] = h.x
        v.pc = pc

    def _enter(self, guest: Guest) -> None:
        """Load the guest into the hardware, so that the machine's sret resumes it."""
        m, v = self.machine, guest.vcpu
        if v.interrupt_due():  # e.g. it just enabled an interrupt that was already pending
            trap.reflect(self, guest, S_TIMER_INTERRUPT, 0)
        if guest.state != RUNNABLE:  # reflecting may have stopped it
            nxt = self._next_runnable(guest)
            if nxt is None:
                self._halt()
            return self._enter(nxt)
        if guest is not self.current or self._slice_over():
            self.slice_ends = m.hart.time() + self.quantum  # a new time slice
        self.current = guest
        m.hart.x[:] = v.x
        m.set_csrs([(csr.SEPC, v.pc),
                    (csr.SSTATUS, m.csr(csr.SSTATUS) & ~csr.SSTATUS_SPP),  # sret goes to U-mode
                    (csr.SCOUNTEREN, 0),  # counter reads trap, so the guest sees its own time
                    (csr.SIE, csr.SIE_STIE),
                    *self._translation(guest)])
        deadline = self.slice_ends
        if v.stimecmp != NEVER and v.interrupts_enabled():
            deadline = min(deadline, m.hart.time() + max(0, v.stimecmp - v.time()))
        m.hart.set_stimecmp(deadline)
        self.entered_at = m.hart.instret

    def _translation(self, guest: Guest) -> list[tuple[int, int]]:
        """The CSR writes that give the hardware the guest's page tables."""
        v = guest.vcpu
        if guest.shadow is not None:
            return [(csr.HSTATUS, 0), (csr.SATP, guest.shadow.satp(v.mode))]
        assert guest.gstage is not None
        return [(csr.HSTATUS, csr.HSTATUS_SPV | (csr.HSTATUS_SPVP if v.mode == S else 0)),
                (csr.VSSTATUS, v.sstatus & csr.VSSTATUS_WRITABLE),
                (csr.VSATP, v.satp),
                (csr.HGATP, guest.gstage.hgatp())]

    # ----- what trap.py asks of the VMM --------------------------------------------------------

    def hidden_fault(self, guest: Guest, va: int, access: int) -> None:
        """A page fault under shadow paging: fill the shadow, or emulate a device, or (by
        raising GuestFault from shadow.fill) reflect a true fault."""
        assert guest.shadow is not None
        self._check_progress(guest, va, access)
        gpa = guest.shadow.fill(guest.vcpu, va, access)
        if not guest.mem.contains(gpa):
            mmio.emulate_access(guest, va, gpa, access)

    def guest_page_fault(self, guest: Guest, va: int, gpa: int, access: int) -> None:
        """The G-stage refused a guest-physical address: back it, or emulate a device, or give
        the guest the access fault its bare hardware would give."""
        assert guest.gstage is not None
        self._check_progress(guest, va, access)
        if guest.gstage.map(gpa):
            return
        if mmio.is_device(gpa) and gpa == self._data_address(guest, va):
            mmio.emulate_access(guest, va, gpa, access)
            return
        raise GuestFault(ACCESS_CAUSE[access], va)

    def _data_address(self, guest: Guest, va: int) -> int | None:
        """The guest-physical address `va` maps to for the guest itself (not a page-table
        access of its walk), to tell a device access from a walk through device memory."""
        from . import guestwalk
        try:
            return guestwalk.walk(guest.mem, guest.vcpu.satp, va).gpa
        except GuestFault:
            return None

    def _check_progress(self, guest: Guest, va: int, access: int) -> None:
        """Stop a guest whose same fault comes back with not one instruction retired in
        between: the VMM's handling of it is not making progress (a VMM bug, not the guest's:
        a guest that loops through its own fault handler retires instructions)."""
        key = (guest.vcpu.pc, access, va, guest.vcpu.instret)
        guest.repeats = guest.repeats + 1 if key == guest.last_fault else 0
        guest.last_fault = key
        if guest.repeats > MAX_REPEATS:
            self.stop_guest(guest, "vmm-error",
                            f"the same fault at pc={key[0]:#010x}, address {va:#010x} keeps "
                            f"coming back: the VMM is not making progress")

    def guest_sfence(self, guest: Guest) -> None:
        """The guest executed sfence.vma: its TLB (our shadows, or the hardware's nested
        translations for its VMID) must forget what it cached."""
        if guest.shadow is not None:
            guest.shadow.flush()
        else:
            assert guest.gstage is not None
            self.machine.hart.mmu.sfence(None, None, ctx=("V", guest.gstage.vmid))

    def guest_translation_changed(self, guest: Guest, satp_written: bool) -> None:
        """The guest wrote satp, or changed SUM or MXR: its shadows no longer apply. (Nested
        paging needs nothing: vsatp and vsstatus are loaded on every entry, and the hardware
        keeps no stale entry across them that bare hardware would not keep.)"""
        if guest.shadow is not None:
            guest.shadow.flush()

    def stop_guest(self, guest: Guest, reason: str, detail: str) -> None:
        guest.state = STOPPED
        guest.stop = Stop(reason if reason in _REASONS else "halted", detail)
        self.wake(self.channels.peers(guest))  # whoever waits on it gets an error now

    def block(self, guest: Guest) -> None:
        guest.state = BLOCKED

    def wake(self, guests: list[Guest]) -> None:
        for g in guests:
            if g.state == BLOCKED:
                g.state = RUNNABLE


_REASONS = {"shutdown", "failure", "reboot", "fatal-trap", "wfi-forever", "killed", "deadlock",
            "vmm-error", "halted"}
