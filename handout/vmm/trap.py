"""Trap and emulate: what the VMM does with each trap a guest causes.

The guest's kernel runs in real U-mode, so the hardware hands the VMM every privileged
instruction it executes (as an illegal instruction), every system call and fault, and every
timer interrupt. For each one the VMM decides: emulate it against the virtual CPU (the guest
kernel was entitled to it), reflect it into the guest (the guest's own hardware would have
trapped into the guest kernel), serve it (an SBI call), or handle it for itself (a hidden page
fault, a device access, its own timer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from machine import csr, csrs
from machine.decode import decode
from machine.hart import TrapEvent
from machine.traps import (
    ECALL_U,
    GUEST_PAGE_FAULT_CAUSE,
    ILLEGAL_INSN,
    INSN_ACCESS,
    INSN_MISALIGNED,
    INSN_PAGE_FAULT,
    PAGE_FAULT_CAUSE,
    Trap,
)

from .guest import Guest
from .guestwalk import GuestFault
from .hypercalls import hypercall
from .vcpu import NEVER, S, U, VirtualCPU

if TYPE_CHECKING:
    from .monitor import VMM

FETCH_FAULTS = (INSN_MISALIGNED, INSN_ACCESS, INSN_PAGE_FAULT)
# The hypervisor CSRs are not virtualized: a guest cannot run guests of its own.
HYPERVISOR_CSRS = frozenset({csr.HSTATUS, csr.HTVAL, csr.HTINST, csr.HGATP, csr.VSSTATUS,
                             csr.VSATP})


# STUDENT PART trap-dispatch: yours to write
def handle(vmm: VMM, guest: Guest, event: TrapEvent) -> None:
    """Deal with one trap (an exception, not an interrupt) taken while `guest` ran.

    The guest's registers and pc are in guest.vcpu. System calls from the guest's user mode
    and every fault the guest's own hardware would raise go to the guest kernel (`reflect`);
    an ecall from the guest kernel is a hypercall; an illegal instruction from the guest
    kernel may be a privileged instruction to emulate; page faults may be hidden (the VMM's
    business) or true (the guest's). Call the handler LAB.md's table names for each trap; a
    counter read by the guest's user mode that its kernel's scounteren allows goes to
    emulate_counter_read, and anything the guest's hardware would refuse may be reflected at
    once. A GuestFault raised by a handler is the guest's: reflect it.

    Hint: event.cause and event.tval are what the hardware wrote into scause and stval; for an
    illegal instruction, stval holds the instruction's bits."""
    raise NotImplementedError("trap-dispatch: handle is yours to write (see LAB.md)")


# STUDENT PART reflect: yours to write
def reflect(vmm: VMM, guest: Guest, cause: int, tval: int) -> None:
    """Deliver a trap to the guest kernel exactly as the guest's hardware would: sepc, scause,
    stval, and sstatus's SPP, SPIE and SIE, then virtual S-mode at the guest's stvec, with
    vcpu.trap_entry set (a trap was just taken). A fetch fault at the guest's trap vector right
    after a trap means it has nowhere to go: stop the guest ("fatal-trap"), as the bare machine
    stops.

    Hint: the bare machine's Hart.take_trap does this to real CSRs."""
    raise NotImplementedError("reflect: reflect is yours to write (see LAB.md)")


# STUDENT PART emulate: yours to write
def emulate(vmm: VMM, guest: Guest, bits: int) -> None:
    """Emulate the privileged instruction `bits` that the guest kernel executed: a CSR
    instruction, sret, wfi or sfence.vma. Anything else is illegal for the guest too (raise
    GuestFault), and so are the hypervisor CSRs and hfence, which are not virtualized. An
    emulated instruction retires: it advances the guest's instret, and its pc unless it is a
    jump (sret), and clears vcpu.trap_entry.

    Hint: machine.decode.decode(bits) names the instruction; the bare machine's
    machine/execute.py shows what each one does to a real hart."""
    raise NotImplementedError("emulate: emulate is yours to write (see LAB.md)")


def emulate_csr(vmm: VMM, guest: Guest, op: str, rd: int, rs1: int, num: int,
                bits: int) -> None:
    """A CSR instruction against the virtual CSRs, with the hardware's access checks and
    WARL rules (machine/csrs.py works on a VirtualCPU as on a real hart). Writes to satp, or
    to SUM or MXR in sstatus, change the guest's translations: tell the VMM.

    Hint: csrs.check_access, csrs.read and csrs.write take the virtual CPU; csrrs and csrrc
    with rs1 = x0 read without writing, and csrrw with rd = x0 writes without reading."""
    raise NotImplementedError("emulate: emulate_csr is yours to write (see LAB.md)")


# STUDENT PART counter-read: yours to write
def emulate_counter_read(guest: Guest, bits: int) -> None:
    """The guest's user mode read a counter (the VMM keeps the real ones from guests): allowed
    when the guest kernel's scounteren says so, and then it retires as an emulated instruction
    does; anything else (a read scounteren forbids, a write, another instruction) is illegal,
    as on the guest's hardware: raise GuestFault(ILLEGAL_INSN, bits).

    Hint: the same checks as emulate_csr, with the guest in virtual U-mode; anything that is
    not a counter read is an illegal instruction for the guest too."""
    raise NotImplementedError("counter-read: emulate_counter_read is yours to write (see LAB.md)")


# STUDENT PART sret-wfi: yours to write
def emulate_sret(v: VirtualCPU) -> None:
    """sret on the virtual CPU: back to the mode in SPP at sepc, SIE from SPIE, SPIE set,
    SPP cleared.

    Hint: the bare machine's Hart.sret does this to real CSRs."""
    raise NotImplementedError("sret-wfi: emulate_sret is yours to write (see LAB.md)")


def emulate_wfi(vmm: VMM, guest: Guest) -> None:
    """wfi: the guest's time skips to its timer if the timer can wake it (enabled in sie); with
    nothing that could ever wake it the guest stops ("wfi-forever"), as the bare machine does.

    Hint: machine/execute.py's wfi; the guest's time is v.time() = v.instret + v.idle."""
    raise NotImplementedError("sret-wfi: emulate_wfi is yours to write (see LAB.md)")
