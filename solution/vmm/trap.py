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


# BEGIN STUDENT PART trap-dispatch
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
    v = guest.vcpu
    try:
        if event.cause == ECALL_U and v.mode == S:
            hypercall(vmm, guest)
        elif event.cause == ILLEGAL_INSN and v.mode == S:
            emulate(vmm, guest, event.tval)
        elif event.cause == ILLEGAL_INSN:
            emulate_counter_read(guest, event.tval)
        elif event.cause in PAGE_FAULT_CAUSE and guest.paging == "shadow":
            vmm.hidden_fault(guest, event.tval, PAGE_FAULT_CAUSE.index(event.cause))
        elif event.cause in GUEST_PAGE_FAULT_CAUSE:
            vmm.guest_page_fault(guest, event.tval, event.gpa,
                                 GUEST_PAGE_FAULT_CAUSE.index(event.cause))
        else:
            raise GuestFault(event.cause, event.tval)
    except GuestFault as fault:
        reflect(vmm, guest, fault.cause, fault.tval)
# END STUDENT PART


# BEGIN STUDENT PART reflect
def reflect(vmm: VMM, guest: Guest, cause: int, tval: int) -> None:
    """Deliver a trap to the guest kernel exactly as the guest's hardware would: sepc, scause,
    stval, and sstatus's SPP, SPIE and SIE, then virtual S-mode at the guest's stvec, with
    vcpu.trap_entry set (a trap was just taken). A fetch fault at the guest's trap vector right
    after a trap means it has nowhere to go: stop the guest ("fatal-trap"), as the bare machine
    stops.

    Hint: the bare machine's Hart.take_trap does this to real CSRs."""
    v = guest.vcpu
    if v.trap_entry and cause in FETCH_FAULTS and v.pc == v.stvec:
        vmm.stop_guest(guest, "fatal-trap",
                       f"the guest's trap vector stvec={v.stvec:#010x} cannot be fetched")
        return
    s = v.sstatus
    v.sepc = v.pc & ~3
    v.scause = cause
    v.stval = tval & 0xFFFF_FFFF
    v.sstatus = ((s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPIE | csr.SSTATUS_SPP))
                 | (csr.SSTATUS_SPIE if s & csr.SSTATUS_SIE else 0)
                 | (csr.SSTATUS_SPP if v.mode == S else 0))
    v.mode = S
    v.pc = v.stvec
    v.trap_entry = True
# END STUDENT PART


# BEGIN STUDENT PART emulate
def emulate(vmm: VMM, guest: Guest, bits: int) -> None:
    """Emulate the privileged instruction `bits` that the guest kernel executed: a CSR
    instruction, sret, wfi or sfence.vma. Anything else is illegal for the guest too (raise
    GuestFault), and so are the hypervisor CSRs and hfence, which are not virtualized. An
    emulated instruction retires: it advances the guest's instret, and its pc unless it is a
    jump (sret), and clears vcpu.trap_entry.

    Hint: machine.decode.decode(bits) names the instruction; the bare machine's
    machine/execute.py shows what each one does to a real hart."""
    v = guest.vcpu
    ins = decode(bits)
    if ins is None:
        raise GuestFault(ILLEGAL_INSN, bits)
    if ins.op.startswith("csr"):
        emulate_csr(vmm, guest, ins.op, ins.rd, ins.rs1, ins.imm, bits)
        v.pc += 4
    elif ins.op == "sret":
        emulate_sret(v)
    elif ins.op == "wfi":
        emulate_wfi(vmm, guest)
        if not guest.running:
            return  # a wfi that can never wake stops the guest on the wfi, as on bare hardware
        v.pc += 4
    elif ins.op == "sfence.vma":
        vmm.guest_sfence(guest)
        v.pc += 4
    else:
        raise GuestFault(ILLEGAL_INSN, bits)
    v.instret += 1
    v.trap_entry = False
    guest.emulated += 1


def emulate_csr(vmm: VMM, guest: Guest, op: str, rd: int, rs1: int, num: int,
                bits: int) -> None:
    """A CSR instruction against the virtual CSRs, with the hardware's access checks and
    WARL rules (machine/csrs.py works on a VirtualCPU as on a real hart). Writes to satp, or
    to SUM or MXR in sstatus, change the guest's translations: tell the VMM.

    Hint: csrs.check_access, csrs.read and csrs.write take the virtual CPU; csrrs and csrrc
    with rs1 = x0 read without writing, and csrrw with rd = x0 writes without reading."""
    v = guest.vcpu
    writes = op in ("csrrw", "csrrwi") or rs1 != 0
    if num in HYPERVISOR_CSRS:
        raise GuestFault(ILLEGAL_INSN, bits)
    try:
        csrs.check_access(v, num, writes, bits)
    except Trap as trap:
        raise GuestFault(trap.cause, trap.tval) from None
    operand = rs1 if op.endswith("i") else v.x[rs1]
    old = csrs.read(v, num) if op not in ("csrrw", "csrrwi") or rd else 0
    if writes:
        translation = (v.satp, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR))
        kind = op[3:5]
        new = operand if kind == "rw" else old | operand if kind == "rs" else old & ~operand
        csrs.write(v, num, new)
        if (v.satp, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR)) != translation:
            vmm.guest_translation_changed(guest, satp_written=num == csr.SATP)
    if rd:
        v.x[rd] = old
# END STUDENT PART


# BEGIN STUDENT PART counter-read
def emulate_counter_read(guest: Guest, bits: int) -> None:
    """The guest's user mode read a counter (the VMM keeps the real ones from guests): allowed
    when the guest kernel's scounteren says so, and then it retires as an emulated instruction
    does; anything else (a read scounteren forbids, a write, another instruction) is illegal,
    as on the guest's hardware: raise GuestFault(ILLEGAL_INSN, bits).

    Hint: the same checks as emulate_csr, with the guest in virtual U-mode; anything that is
    not a counter read is an illegal instruction for the guest too."""
    v = guest.vcpu
    ins = decode(bits)
    if ins is None or not ins.op.startswith("csr") or ins.imm not in csrs.COUNTERS:
        raise GuestFault(ILLEGAL_INSN, bits)
    try:
        csrs.check_access(v, ins.imm, ins.op in ("csrrw", "csrrwi") or ins.rs1 != 0, bits)
    except Trap as trap:
        raise GuestFault(trap.cause, trap.tval) from None
    if ins.rd:
        v.x[ins.rd] = csrs.read(v, ins.imm)
    v.pc += 4
    v.instret += 1
    v.trap_entry = False
    guest.emulated += 1
# END STUDENT PART


# BEGIN STUDENT PART sret-wfi
def emulate_sret(v: VirtualCPU) -> None:
    """sret on the virtual CPU: back to the mode in SPP at sepc, SIE from SPIE, SPIE set,
    SPP cleared.

    Hint: the bare machine's Hart.sret does this to real CSRs."""
    s = v.sstatus
    v.mode = S if s & csr.SSTATUS_SPP else U
    v.sstatus = ((s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPP)) | csr.SSTATUS_SPIE
                 | (csr.SSTATUS_SIE if s & csr.SSTATUS_SPIE else 0))
    v.pc = v.sepc


def emulate_wfi(vmm: VMM, guest: Guest) -> None:
    """wfi: the guest's time skips to its timer if the timer can wake it (enabled in sie); with
    nothing that could ever wake it the guest stops ("wfi-forever"), as the bare machine does.

    Hint: machine/execute.py's wfi; the guest's time is v.time() = v.instret + v.idle."""
    v = guest.vcpu
    if not v.sie:
        vmm.stop_guest(guest, "wfi-forever", f"wfi at pc={v.pc:#010x} with no interrupt enabled")
    elif v.stimecmp == NEVER:
        vmm.stop_guest(guest, "wfi-forever", f"wfi at pc={v.pc:#010x} with no timer set")
    else:
        v.idle += max(0, v.stimecmp - v.time())
# END STUDENT PART
