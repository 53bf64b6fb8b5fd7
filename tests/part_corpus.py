"""Student parts written from the contract alone (LAB.md and the stubs' docstrings), in designs
other than the solution's: correct ones, which must earn their part's full marks, and realistic
bugs unlike those of buggy_vmms.py, which must lose their part's points.

Each entry is a list of edits (old, new) to one file of the solution, as buggy_vmms.py makes
them; `old` may lie outside the part (a table built at the end of the module, say), since a
student may write helpers anywhere in the files they edit.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAP, HYPERCALLS, SHADOW, CHANNELS = (
    "vmm/trap.py", "vmm/hypercalls.py", "vmm/shadow.py", "vmm/channels.py")


@dataclass(frozen=True)
class Variant:
    name: str
    file: str
    part: str
    edits: tuple[tuple[str, str], ...]
    why: str


# handle's body in the solution, from its first statement to the end of the part
HANDLE_BODY = '''    v = guest.vcpu
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
'''
MODULE_END = "        v.idle += max(0, v.stimecmp - v.time())\n# END STUDENT PART\n"

CORRECT: list[Variant] = [
    # ----- trap-dispatch: the handlers reached otherwise than by trap's own names --------------
    Variant("dispatch-table-built-at-import", TRAP, "trap-dispatch", (
        (HANDLE_BODY, '''    v = guest.vcpu
    kind = ("illegal-" + ("kernel" if v.mode == S else "user") if event.cause == ILLEGAL_INSN
            else "hypercall" if event.cause == ECALL_U and v.mode == S else None)
    try:
        if kind is not None:
            _TABLE[kind](vmm, guest, event.tval)
        elif event.cause in PAGE_FAULT_CAUSE and guest.paging == "shadow":
            vmm.hidden_fault(guest, event.tval, PAGE_FAULT_CAUSE.index(event.cause))
        elif event.cause in GUEST_PAGE_FAULT_CAUSE:
            vmm.guest_page_fault(guest, event.tval, event.gpa,
                                 GUEST_PAGE_FAULT_CAUSE.index(event.cause))
        else:
            raise GuestFault(event.cause, event.tval)
    except GuestFault as fault:
        _TABLE["reflect"](vmm, guest, fault.cause, fault.tval)
'''),
        (MODULE_END, MODULE_END + '''

# the routes, built once when the module is imported
_TABLE = {
    "hypercall": lambda vmm, guest, bits: hypercall(vmm, guest),
    "illegal-kernel": emulate,
    "illegal-user": lambda vmm, guest, bits: emulate_counter_read(guest, bits),
    "reflect": reflect,
}
''')), "handlers held in a dict built at import, which patching trap's names never reaches"),
    Variant("dispatch-through-aliases-and-another-module", TRAP, "trap-dispatch", (
        ("from .hypercalls import hypercall\n",
         "from . import hypercalls as sbi_calls\nfrom .hypercalls import hypercall\n"),
        ("            hypercall(vmm, guest)\n", "            sbi_calls.hypercall(vmm, guest)\n"),
        ("            emulate(vmm, guest, event.tval)\n",
         "            _privileged(vmm, guest, event.tval)\n"),
        ("        reflect(vmm, guest, fault.cause, fault.tval)\n",
         "        _deliver(vmm, guest, fault.cause, fault.tval)\n"),
        (MODULE_END, MODULE_END + "\n\n_deliver, _privileged = reflect, emulate  # short names\n")),
        "aliases bound at import and the hypercalls module's own name"),
    Variant("dispatch-asks-scounteren-first", TRAP, "trap-dispatch", (
        ("        elif event.cause == ILLEGAL_INSN:\n"
         "            emulate_counter_read(guest, event.tval)\n",
         "        elif event.cause == ILLEGAL_INSN:\n"
         "            ins = decode(event.tval)\n"
         "            allowed = (ins is not None and ins.op in ('csrrs', 'csrrc', 'csrrsi',\n"
         "                                                     'csrrci') and ins.rs1 == 0\n"
         "                       and ins.imm in csrs.COUNTERS\n"
         "                       and v.scounteren & csrs.COUNTERS[ins.imm])\n"
         "            if not allowed:  # LAB.md's table: anything else is reflected\n"
         "                raise GuestFault(ILLEGAL_INSN, event.tval)\n"
         "            emulate_counter_read(guest, event.tval)\n"),),
        "reflects a counter read the guest kernel's scounteren forbids without asking "
        "emulate_counter_read, as LAB.md's table says"),
    Variant("dispatch-through-a-decorated-handler", TRAP, "trap-dispatch", (
        ("# BEGIN STUDENT PART reflect\ndef reflect(",
         "# BEGIN STUDENT PART reflect\n@_traced\ndef reflect("),
        ("# BEGIN STUDENT PART trap-dispatch\n",
         "# BEGIN STUDENT PART trap-dispatch\n"
         "def _traced(fn):\n"
         "    import functools\n\n"
         "    @functools.wraps(fn)\n"
         "    def traced(*args, **kwargs):\n"
         "        return fn(*args, **kwargs)\n"
         "    return traced\n\n\n")),
        "a handler wrapped by a decorator (for tracing): its code is the wrapped function's"),
    # ----- emulate, counter-read, reflect ---------------------------------------------------
    Variant("emulate-csr-by-table-of-operations", TRAP, "emulate", (
        ("        kind = op[3:5]\n"
         "        new = operand if kind == \"rw\" else old | operand if kind == \"rs\" else "
         "old & ~operand\n",
         "        new = {'rw': lambda: operand, 'rs': lambda: old | operand,\n"
         "               'rc': lambda: old & ~operand}[op[3:5]]()\n"),),
        "the read-modify-write through a table of operations"),
    Variant("emulate-hypervisor-csrs-by-number-range", TRAP, "emulate", (
        ("    if num in HYPERVISOR_CSRS:\n",
         "    if num in (0x200, 0x280) or 0x600 <= num <= 0x6FF:  # VS and HS CSRs\n"),),
        "the hypervisor CSRs told by their numbers' ranges instead of the given set"),
    Variant("counter-read-sets-x0-to-zero", TRAP, "counter-read", (
        ("    if ins.rd:\n        v.x[ins.rd] = csrs.read(v, ins.imm)\n",
         "    value = csrs.read(v, ins.imm)\n    v.x[ins.rd] = value if ins.rd else 0\n"),),
        "writes x0 with 0 rather than leaving it alone"),
    Variant("emulate-sret-and-wfi-inline", TRAP, "emulate", (
        ("    elif ins.op == \"sret\":\n        emulate_sret(v)\n",
         "    elif ins.op == \"sret\":  # what Hart.sret does, here rather than in the helper\n"
         "        s = v.sstatus\n"
         "        v.mode = S if s & csr.SSTATUS_SPP else U\n"
         "        v.sstatus = (s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPP)) | csr.SSTATUS_SPIE | (\n"
         "            csr.SSTATUS_SIE if s & csr.SSTATUS_SPIE else 0)\n"
         "        v.pc = v.sepc\n"),
        ("        emulate_wfi(vmm, guest)\n        if not guest.running:\n"
         "            return  # a wfi that can never wake stops the guest on the wfi, as on bare "
         "hardware\n        v.pc += 4\n",
         "        if not v.sie or v.stimecmp == NEVER:\n"
         "            vmm.stop_guest(guest, \"wfi-forever\", \"nothing can wake it\")\n"
         "            return\n"
         "        v.idle = max(v.idle, v.stimecmp - v.instret)\n"
         "        v.pc += 4\n")),
        "sret and wfi done in emulate itself, without the sret-wfi helpers (time skipped by a "
        "max of its own)"),
    Variant("dispatch-by-keywords", TRAP, "trap-dispatch", (
        ("            hypercall(vmm, guest)\n", "            hypercall(guest=guest, vmm=vmm)\n"),
        ("        reflect(vmm, guest, fault.cause, fault.tval)\n",
         "        reflect(tval=fault.tval, cause=fault.cause, guest=guest, vmm=vmm)\n")),
        "handlers called with keyword arguments, in an order of their own"),
    Variant("reflect-sets-trap-entry-first", TRAP, "reflect", (
        ("    s = v.sstatus\n    v.sepc = v.pc & ~3\n",
         "    v.trap_entry = True  # first: nothing below can fail\n"
         "    s = v.sstatus\n    v.sepc = v.pc & ~3\n"),
        ("    v.mode = S\n    v.pc = v.stvec\n    v.trap_entry = True\n",
         "    v.mode = S\n    v.pc = v.stvec\n")),
        "trap_entry set at the start of the reflection"),
    # ----- hypercall -------------------------------------------------------------------------
    Variant("hypercall-retires-at-one-place", HYPERCALLS, "hypercall", (
        ("    v.pc += 4\n    v.instret += 1\n    guest.emulated += 1\n",
         "    _retire(guest)\n"),
        ("def _legacy(", "def _retire(guest: Guest) -> None:\n"
                        "    guest.vcpu.pc += 4\n    guest.vcpu.instret += 1\n"
                        "    guest.vcpu.trap_entry = False\n    guest.emulated += 1\n\n\n"
                        "def _legacy(")),
        "the retirement in a helper that also clears trap_entry (free for a hypercall)"),
    # ----- shadow-flush ------------------------------------------------------------------------
    Variant("flush-takes-fresh-roots", SHADOW, "shadow-flush", (
        ("            self.machine.write_phys(self.root[view], bytes(PAGE))\n"
         "            self.spare += self.leaves[view].values()\n",
         "            self.spare += [self.root[view], *self.leaves[view].values()]\n"
         "            self.root[view] = self._table()\n"),),
        "new root tables instead of zeroed ones (satp changes; the ASIDs are fenced)"),
    # ----- bounded-buffer ----------------------------------------------------------------------
    Variant("ring-with-a-peek-method", CHANNELS, "bounded-buffer", (
        ("    def take(self) -> bytes:\n",
         "    def peek(self) -> bytes | None:\n"
         "        \"\"\"The oldest message, left in place.\"\"\"\n"
         "        return self.slots[self.head] if self.count else None\n\n"
         "    def take(self) -> bytes:\n"),),
        "an extra method on Channel"),
    # ----- ipc ------------------------------------------------------------------------------------
    Variant("ipc-records-waiting-on", CHANNELS, "ipc", (
        ("        if ch.full():\n            return BLOCKED\n",
         "        if ch.full():\n            guest.waiting_on = cid\n            return BLOCKED\n"
         "        guest.waiting_on = None\n"),
        ("        self.wake(ch.receiver)\n",
         "        if ch.receiver.waiting_on == cid:\n"
         "            ch.receiver.waiting_on = None\n"
         "            self.wake(ch.receiver)\n"),
        ("            return (ERR_FAILED, 0) if not ch.sender.running else BLOCKED\n",
         "            if not ch.sender.running:\n                return ERR_FAILED, 0\n"
         "            guest.waiting_on = cid\n            return BLOCKED\n"
         "        guest.waiting_on = None\n"),
        ("        self.wake(ch.sender)\n",
         "        if ch.sender.waiting_on == cid:\n"
         "            ch.sender.waiting_on = None\n"
         "            self.wake(ch.sender)\n")),
        "records in Guest.waiting_on which channel a guest waits on, and wakes only a guest "
        "waiting on this one"),
    Variant("ipc-copies-page-by-page-through-host-address", CHANNELS, "ipc", (
        ("        ch.put(guest.mem.read(buf, length))\n",
         "        ch.put(_copy_out(guest, buf, length))\n"),
        ("        guest.mem.write(buf, message)\n", "        _copy_in(guest, buf, message)\n"),
        ("class Channels:\n", '''def _copy_out(guest: Guest, gpa: int, n: int) -> bytes:
    """Guest RAM, a page at a time through the VMM's map (LAB.md: host_address)."""
    out = bytearray()
    while n:
        chunk = min(n, 4096 - gpa % 4096)
        out += guest.mem.machine.read_phys(guest.mem.host_address(gpa), chunk)
        gpa, n = gpa + chunk, n - chunk
    return bytes(out)


def _copy_in(guest: Guest, gpa: int, data: bytes) -> None:
    while data:
        chunk = min(len(data), 4096 - gpa % 4096)
        guest.mem.machine.write_phys(guest.mem.host_address(gpa), data[:chunk])
        gpa, data = gpa + chunk, data[chunk:]


class Channels:
''')),
        "copies through host_address and the machine's physical memory, page by page"),
    Variant("ipc-peeks-through-an-extra-channel-method", CHANNELS, "ipc", (
        ("    def take(self) -> bytes:\n",
         "    def oldest_length(self) -> int:\n"
         "        return len(self.slots[self.head] or b'')\n\n"
         "    def take(self) -> bytes:\n"),
        ("        if len(ch.slots[ch.head] or b\"\") > size:\n",
         "        if ch.oldest_length() > size:\n")),
        "a Channel method of its own (outside the ring operations) used by receive"),
    Variant("ipc-checks-the-buffer-by-its-bounds", CHANNELS, "ipc", (
        ("        if not guest.mem.contains(buf, length):\n",
         "        mem = guest.mem\n"
         "        if not (mem.base <= buf and buf + length <= mem.base + mem.size):\n"),
        ("        if not guest.mem.contains(buf, size):\n",
         "        if buf < guest.mem.base or buf + size > guest.mem.base + guest.mem.size:\n")),
        "the buffer checked against the documented base and size, in Python's unbounded ints"),
]


BUGS: list[Variant] = [
    Variant("csr-swap-writes-rd-before-reading-rs1", TRAP, "emulate", (
        ("    operand = rs1 if op.endswith(\"i\") else v.x[rs1]\n"
         "    old = csrs.read(v, num) if op not in (\"csrrw\", \"csrrwi\") or rd else 0\n",
         "    old = csrs.read(v, num) if op not in (\"csrrw\", \"csrrwi\") or rd else 0\n"
         "    if rd:\n        v.x[rd] = old\n"
         "    operand = rs1 if op.endswith(\"i\") else v.x[rs1]\n"),),
        "`csrrw sp, sscratch, sp` writes sp before reading it: the stack swap every trap "
        "handler does gives back the CSR's old value instead of exchanging them"),
    Variant("hypervisor-csrs-emulated", TRAP, "emulate", (
        ("    if num in HYPERVISOR_CSRS:\n        raise GuestFault(ILLEGAL_INSN, bits)\n", ""),),
        "the hypervisor CSRs are emulated like any other: a guest could believe it runs guests"),
    Variant("reflect-leaves-trap-entry", TRAP, "reflect", (
        ("    v.mode = S\n    v.pc = v.stvec\n    v.trap_entry = True\n",
         "    v.mode = S\n    v.pc = v.stvec\n"),),
        "reflection does not note that a trap was just taken: a guest whose vector cannot be "
        "fetched traps there for ever"),
    Variant("reflect-fatal-trap-falls-through", TRAP, "reflect", (
        ("                       f\"the guest's trap vector stvec={v.stvec:#010x} cannot be "
         "fetched\")\n        return\n",
         "                       f\"the guest's trap vector stvec={v.stvec:#010x} cannot be "
         "fetched\")\n"),),
        "the guest is stopped at its unfetchable vector, and the trap is delivered anyway: its "
        "sepc, scause and sstatus are not what the bare machine stopped with"),
    Variant("wfi-forever-moves-past-the-wfi", TRAP, "emulate", (
        ("        emulate_wfi(vmm, guest)\n        if not guest.running:\n"
         "            return  # a wfi that can never wake stops the guest on the wfi, as on bare "
         "hardware\n",
         "        emulate_wfi(vmm, guest)\n"),),
        "a wfi that stops the guest for ever still retires: the guest stops past it, with one "
        "instruction more than the bare machine"),
    Variant("dispatch-passes-guest-first", TRAP, "trap-dispatch", (
        ("        reflect(vmm, guest, fault.cause, fault.tval)\n",
         "        reflect(guest, vmm, fault.cause, fault.tval)\n"),),
        "the handler's arguments in the wrong order: every reflected fault crashes the VMM"),
    Variant("counter-read-into-x0", TRAP, "counter-read", (
        ("    if ins.rd:\n        v.x[ins.rd] = csrs.read(v, ins.imm)\n",
         "    v.x[ins.rd] = csrs.read(v, ins.imm)\n"),),
        "`rdtime zero`-style reads write x0, which must stay 0"),
    Variant("counter-read-keeps-trap-entry", TRAP, "counter-read", (
        ("    v.instret += 1\n    v.trap_entry = False\n    guest.emulated += 1\n# END",
         "    v.instret += 1\n    guest.emulated += 1\n# END"),),
        "an emulated counter read retires but the guest still looks just-trapped"),
    Variant("page-fault-access-by-arithmetic", TRAP, "trap-dispatch", (
        ("            vmm.hidden_fault(guest, event.tval, PAGE_FAULT_CAUSE.index(event.cause))\n",
         "            vmm.hidden_fault(guest, event.tval, event.cause - 12)\n"),),
        "the access computed as cause - 12: a store page fault (15) becomes access 3"),
    Variant("dispatch-reflects-with-the-traps-own-cause", TRAP, "trap-dispatch", (
        ("        reflect(vmm, guest, fault.cause, fault.tval)\n",
         "        reflect(vmm, guest, event.cause, fault.tval)\n"),),
        "a handler's GuestFault reflected with the trap's cause, not the fault's (a hidden "
        "fault that is a true one of another kind)"),
    Variant("blocked-hypercall-retires", HYPERCALLS, "hypercall", (
        ("        if result is channels.BLOCKED:\n            vmm.block(guest)\n",
         "        if result is channels.BLOCKED:\n            v.instret += 1\n"
         "            vmm.block(guest)\n"),),
        "a call that waits counts as retired, and again when it is retried: the guest's clock "
        "runs ahead"),
    Variant("sbi-call-retires-nothing", HYPERCALLS, "hypercall", (
        ("    v.pc += 4\n    v.instret += 1\n    guest.emulated += 1\n",
         "    v.pc += 4\n    guest.emulated += 1\n"),),
        "a completed SBI call moves the pc on but is not counted as retired: the guest's "
        "clock falls behind the bare machine's by one at every call"),
    Variant("shutdown-answers-the-guest", HYPERCALLS, "hypercall", (
        ("    if not guest.running:\n        return  # a shutdown, like the firmware's, never "
         "returns to the guest\n", ""),),
        "a call that stopped the guest still writes a0 and moves past the ecall: the stopped "
        "guest's state is not the bare machine's"),
    Variant("legacy-calls-are-0-to-8", HYPERCALLS, "hypercall", (
        ("    if eid < 0x10:\n", "    if eid <= 8:  # set_timer .. shutdown\n"),),
        "the legacy range taken as the calls it names: 0x09 to 0x0F answer a1 too"),
    Variant("hidden-fault-arguments-swapped", TRAP, "trap-dispatch", (
        ("vmm.hidden_fault(guest, event.tval, PAGE_FAULT_CAUSE.index(event.cause))",
         "vmm.hidden_fault(event.tval, guest, PAGE_FAULT_CAUSE.index(event.cause))"),),
        "the guest and the address passed to hidden_fault the other way round: every shadow "
        "fault of every guest goes wrong (found by vmlab mutants: the dispatch test saw the "
        "right handler with the right integers)"),
    Variant("flush-keeps-its-leaf-tables", SHADOW, "shadow-flush", (
        ("            self.leaves[view] = {}\n", ""),),
        "the roots zeroed and the second-level tables put up for reuse, but still listed as "
        "the roots' tables: the next fill writes into a table no root points to, and the page "
        "faults for ever (found by vmlab mutants: it passed the flush test, which checked only "
        "that the translations were gone)"),
    Variant("fill-checks-permissions-with-paging-off", SHADOW, "shadow-fill", (
        ("            if not paging or guestwalk.permits(m.pte, kind, vcpu.mode, sum_, mxr):\n",
         "            if guestwalk.permits(m.pte, kind, vcpu.mode, sum_, mxr):\n"),),
        "the guest's U-bit rules applied with its paging off, where every access is allowed: "
        "the guest kernel cannot fetch its own code"),
    Variant("send-buffer-check-in-32-bits", CHANNELS, "ipc", (
        ("        if not guest.mem.contains(buf, length):\n",
         "        end = (buf + length) & 0xFFFF_FFFF\n"
         "        if not (guest.mem.base <= buf and end <= guest.mem.base + guest.mem.size):\n"),),
        "the buffer's end computed in 32 bits, as C would: a buffer that wraps past 2^32 "
        "passes"),
    Variant("send-checks-buffer-before-length", CHANNELS, "ipc", (
        ("        if not 0 <= length <= MAX_MESSAGE:\n            return ERR_INVALID_PARAM, 0\n",
         ""),
        ("        if not ch.receiver.running:\n",
         "        if not 0 <= length <= MAX_MESSAGE:\n            return ERR_INVALID_PARAM, 0\n"
         "        if not ch.receiver.running:\n")),
        "the checks out of the documented order: a length far beyond a message kills the "
        "guest instead of getting -3"),
    Variant("receive-checks-only-the-message", CHANNELS, "ipc", (
        ("        if not guest.mem.contains(buf, size):\n",
         "        if not guest.mem.contains(buf, min(size, MAX_MESSAGE)):\n"),),
        "receive checks only as much of the buffer as a message can fill: a buffer running "
        "past the guest's RAM is accepted"),
    Variant("ring-full-answers-a-count", CHANNELS, "bounded-buffer", (
        ("        return self.count == self.capacity\n",
         "        return self.count // self.capacity  # 1 when full\n"),),
        "full() answers an int, not a bool"),
]
