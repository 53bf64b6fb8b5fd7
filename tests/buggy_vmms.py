"""Hand-written buggy VMMs: the mistakes students really make, one per entry.

Each `Bug` is one exact text replacement inside one student part of one file of the reference
solution (`solution/`). Applied to a copy of the solution, it gives a VMM with that one bug. The
grader's properties must catch every one of them: a property that passes on one of these VMMs
has a gap. `old` occurs exactly once in `file`, between the part's `# BEGIN STUDENT PART` and
`# END STUDENT PART` markers.

The `why` of each entry names the mistake in the lecture's (and LAB.md's) terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bug:
    name: str  # short kebab-case id
    file: str  # path relative to the lab root, e.g. "vmm/trap.py"
    old: str  # exact text in the solution file (occurs exactly once, inside the part)
    new: str  # its buggy replacement
    part: str  # the student part the bug is in
    why: str  # one sentence: the mistake, in the lecture's terms


def edited_submission(dest: Path, solution: Path, editable: list[str], file: str,
                      edits: list[tuple[str, str]]) -> Path:
    """A submission in `dest`: the solution's `editable` files, with `edits` (old, new; each
    old occurring exactly once) made to `file`."""
    for name in editable:
        text = (solution / name).read_text()
        if name == file:
            for old, new in edits:
                assert text.count(old) == 1, (file, old)
                text = text.replace(old, new)
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)
    return dest


def buggy_submission(dest: Path, solution: Path, editable: list[str], bug: Bug) -> Path:
    return edited_submission(dest, solution, editable, bug.file, [(bug.old, bug.new)])

TRAP, HYPERCALLS, SHADOW, NESTED, CHANNELS = (
    "vmm/trap.py", "vmm/hypercalls.py", "vmm/shadow.py", "vmm/nested.py", "vmm/channels.py")

BUGS: list[Bug] = [
    # ----- trap-dispatch ------------------------------------------------------------------------
    Bug(
        name="user-ecall-treated-as-hypercall",
        file=TRAP,
        part="trap-dispatch",
        old="        if event.cause == ECALL_U and v.mode == S:\n",
        new="        if event.cause == ECALL_U:\n",
        why="A system call of a guest process (ecall in virtual U-mode) is served as an SBI call "
            "instead of being reflected to the guest kernel: the real mode (always U) is not "
            "the guest's virtual mode.",
    ),
    Bug(
        name="user-illegal-always-reflected",
        file=TRAP,
        part="trap-dispatch",
        old="            emulate_counter_read(guest, event.tval)\n",
        new="            raise GuestFault(ILLEGAL_INSN, event.tval)\n",
        why="Every illegal instruction of the guest's user mode is reflected, counter reads "
            "too: a process the guest kernel lets read the clock (scounteren) traps instead.",
    ),
    Bug(
        name="other-traps-swallowed",
        file=TRAP,
        part="trap-dispatch",
        old="        elif event.cause in GUEST_PAGE_FAULT_CAUSE:\n"
            "            vmm.guest_page_fault(guest, event.tval, event.gpa,\n"
            "                                 GUEST_PAGE_FAULT_CAUSE.index(event.cause))\n"
            "        else:\n"
            "            raise GuestFault(event.cause, event.tval)\n",
        new="        elif event.cause in GUEST_PAGE_FAULT_CAUSE:\n"
            "            vmm.guest_page_fault(guest, event.tval, event.gpa,\n"
            "                                 GUEST_PAGE_FAULT_CAUSE.index(event.cause))\n",
        why="A trap the guest's own hardware would take (breakpoint, misaligned or access fault, "
            "a page fault under nested paging) is swallowed instead of reflected, so the guest "
            "re-executes the instruction forever.",
    ),
    # ----- reflect ------------------------------------------------------------------------------
    Bug(
        name="reflect-spp-from-real-sstatus",
        file=TRAP,
        part="reflect",
        old="                 | (csr.SSTATUS_SPP if v.mode == S else 0))\n",
        new="                 | (vmm.machine.csr(csr.SSTATUS) & csr.SSTATUS_SPP))\n",
        why="SPP is copied from the real sstatus, which records the real mode (always U), "
            "instead of the guest's virtual mode, so the guest kernel's sret after a trap from "
            "its own kernel code drops it into user mode.",
    ),
    Bug(
        name="reflect-sepc-next-instruction",
        file=TRAP,
        part="reflect",
        old="    v.sepc = v.pc & ~3\n",
        new="    v.sepc = (v.pc + 4) & ~3\n",
        why="A reflected trap sets sepc to the next instruction instead of the one that trapped, "
            "as if the VMM had already skipped it; the guest kernel advances sepc itself.",
    ),
    Bug(
        name="reflect-sie-not-saved",
        file=TRAP,
        part="reflect",
        old="    v.sstatus = ((s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPIE | csr.SSTATUS_SPP))\n"
            "                 | (csr.SSTATUS_SPIE if s & csr.SSTATUS_SIE else 0)\n",
        new="    v.sstatus = ((s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPP))\n",
        why="Trap entry clears SIE but does not save it in SPIE (the old SPIE is kept), so the "
            "guest kernel's sret does not restore the interrupt enable the trap interrupted.",
    ),
    Bug(
        name="fatal-trap-not-detected",
        file=TRAP,
        part="reflect",
        old="    if v.trap_entry and cause in FETCH_FAULTS and v.pc == v.stvec:\n"
            "        vmm.stop_guest(guest, \"fatal-trap\",\n"
            "                       f\"the guest's trap vector stvec={v.stvec:#010x} cannot be "
            "fetched\")\n"
            "        return\n",
        new="",
        why="A fetch fault at the guest's own trap vector right after a trap is reflected again "
            "and again instead of stopping the guest with fatal-trap as the bare machine does.",
    ),
    # ----- emulate ------------------------------------------------------------------------------
    Bug(
        name="csr-pc-not-advanced",
        file=TRAP,
        part="emulate",
        old="        emulate_csr(vmm, guest, ins.op, ins.rd, ins.rs1, ins.imm, bits)\n"
            "        v.pc += 4\n",
        new="        emulate_csr(vmm, guest, ins.op, ins.rd, ins.rs1, ins.imm, bits)\n",
        why="An emulated CSR instruction does not retire past itself: the guest's pc stays on it "
            "and the guest executes it forever.",
    ),
    Bug(
        name="csr-pc-advanced-twice",
        file=TRAP,
        part="emulate",
        old="    if rd:\n"
            "        v.x[rd] = old\n",
        new="    if rd:\n"
            "        v.x[rd] = old\n"
            "    v.pc += 4\n",
        why="emulate_csr advances the pc and so does its caller, so every emulated CSR "
            "instruction skips the instruction after it.",
    ),
    Bug(
        name="emulated-instret-not-counted",
        file=TRAP,
        part="emulate",
        old="    v.instret += 1\n"
            "    v.trap_entry = False\n"
            "    guest.emulated += 1\n"
            "\n"
            "\n"
            "def emulate_csr(",
        new="    v.trap_entry = False\n"
            "    guest.emulated += 1\n"
            "\n"
            "\n"
            "def emulate_csr(",
        why="An emulated privileged instruction does not count as retired, so the guest's "
            "virtual time falls behind the bare machine's (guest time drifts).",
    ),
    Bug(
        name="csr-read-treated-as-write",
        file=TRAP,
        part="emulate",
        old="    writes = op in (\"csrrw\", \"csrrwi\") or rs1 != 0\n",
        new="    writes = True\n",
        why="csrrs/csrrc with rs1 = x0 are taken as writes, so the access check refuses a plain "
            "read (csrr) of a read-only CSR such as time or cycle: emulation must use the "
            "hardware's exact read/write rules.",
    ),
    Bug(
        name="flush-only-on-satp-write",
        file=TRAP,
        part="emulate",
        old="        if (v.satp, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR)) != translation:\n"
            "            vmm.guest_translation_changed(guest, satp_written=num == csr.SATP)\n",
        new="        if num == csr.SATP:\n"
            "            vmm.guest_translation_changed(guest, satp_written=True)\n",
        why="The shadow is dropped when the guest writes satp but not when it changes SUM or MXR "
            "in sstatus, so the S view keeps granting what the old SUM/MXR allowed.",
    ),
    Bug(
        name="sfence-vma-not-forwarded",
        file=TRAP,
        part="emulate",
        old="    elif ins.op == \"sfence.vma\":\n"
            "        vmm.guest_sfence(guest)\n"
            "        v.pc += 4\n",
        new="    elif ins.op == \"sfence.vma\":\n"
            "        v.pc += 4\n",
        why="The guest's sfence.vma is retired as a no-op instead of flushing its shadow tables "
            "(its TLB), so a PTE the guest changed keeps its old composed entry.",
    ),
    # ----- counter-read -------------------------------------------------------------------------
    Bug(
        name="counter-read-ignores-scounteren",
        file=TRAP,
        part="counter-read",
        old="    try:\n"
            "        csrs.check_access(v, ins.imm, ins.op in (\"csrrw\", \"csrrwi\") or ins.rs1 "
            "!= 0, bits)\n"
            "    except Trap as trap:\n"
            "        raise GuestFault(trap.cause, trap.tval) from None\n"
            "    if ins.rd:\n"
            "        v.x[ins.rd] = csrs.read(v, ins.imm)\n",
        new="    if ins.rd:\n"
            "        v.x[ins.rd] = csrs.read(v, ins.imm)\n",
        why="A guest process's counter read is always allowed: the guest kernel's virtual "
            "scounteren (and the read-only rule) is not checked, so the process reads a counter "
            "its own hardware would refuse.",
    ),
    # ----- sret-wfi -----------------------------------------------------------------------------
    Bug(
        name="sret-sie-not-restored",
        file=TRAP,
        part="sret-wfi",
        old="    v.sstatus = ((s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPP)) | csr.SSTATUS_SPIE\n"
            "                 | (csr.SSTATUS_SIE if s & csr.SSTATUS_SPIE else 0))\n",
        new="    v.sstatus = (s & ~(csr.SSTATUS_SIE | csr.SSTATUS_SPP)) | csr.SSTATUS_SPIE\n",
        why="sret clears SIE and sets SPIE but does not restore SIE from SPIE, so a guest kernel "
            "that returns from a trap with interrupts enabled runs with them off.",
    ),
    Bug(
        name="sret-always-to-user",
        file=TRAP,
        part="sret-wfi",
        old="    v.mode = S if s & csr.SSTATUS_SPP else U\n",
        new="    v.mode = U\n",
        why="sret always returns to the guest's user mode instead of the mode SPP records, so "
            "an sret from the guest kernel to its own kernel code demotes it.",
    ),
    Bug(
        name="wfi-time-not-advanced",
        file=TRAP,
        part="sret-wfi",
        old="        v.idle += max(0, v.stimecmp - v.time())\n",
        new="        pass  # the host timer will wake the guest when its stimecmp comes\n",
        why="wfi retires at once without skipping the guest's virtual time forward to its "
            "stimecmp, so the guest's clock (instret + idle) falls behind the bare machine's.",
    ),
    Bug(
        name="wfi-forever-missed-when-sie-clear",
        file=TRAP,
        part="sret-wfi",
        old="    if not v.sie:\n"
            "        vmm.stop_guest(guest, \"wfi-forever\", f\"wfi at pc={v.pc:#010x} with no "
            "interrupt enabled\")\n"
            "    elif v.stimecmp == NEVER:\n",
        new="    if v.stimecmp == NEVER:\n",
        why="wfi with a timer set but no interrupt enabled in sie is not detected as "
            "wfi-forever: the guest sleeps until a timer that can never wake it.",
    ),
    # ----- hypercall ----------------------------------------------------------------------------
    Bug(
        name="hypercall-pc-not-advanced",
        file=HYPERCALLS,
        part="hypercall",
        old="        v.x[11] = result[1] & M32\n"
            "    v.pc += 4\n",
        new="        v.x[11] = result[1] & M32\n",
        why="A completed SBI call does not return past the ecall, so the guest kernel makes the "
            "same call again forever.",
    ),
    Bug(
        name="sbi-error-not-masked",
        file=HYPERCALLS,
        part="hypercall",
        old="    v.x[10] = result[0] & M32\n",
        new="    v.x[10] = result[0]\n",
        why="An SBI error such as SBI_ERR_NOT_SUPPORTED for an unknown extension is stored in "
            "a0 as the Python integer -2 instead of the 32-bit register value 0xFFFFFFFE.",
    ),
    Bug(
        name="legacy-sbi-clobbers-a1",
        file=HYPERCALLS,
        part="hypercall",
        old="        result = _legacy(vmm, guest, eid, a0, a1), None  # legacy calls return only "
            "a0\n",
        new="        result = _legacy(vmm, guest, eid, a0, a1), 0\n",
        why="A legacy SBI call (putchar, set_timer) zeroes a1, which the legacy calls leave "
            "alone on the bare machine's firmware.",
    ),
    Bug(
        name="blocked-ipc-skips-ecall",
        file=HYPERCALLS,
        part="hypercall",
        old="        if result is channels.BLOCKED:\n"
            "            vmm.block(guest)\n"
            "            return\n",
        new="        if result is channels.BLOCKED:\n"
            "            vmm.block(guest)\n"
            "            v.pc += 4\n"
            "            return\n",
        why="A hypercall that must wait moves the pc past the ecall, so the woken guest does "
            "not retry the call (the bounded buffer's wait loop is lost) and goes on with its "
            "arguments as results.",
    ),
    # ----- shadow-fill --------------------------------------------------------------------------
    Bug(
        name="shadow-fill-page-never-backed",
        file=SHADOW,
        part="shadow-fill",
        old="        host = self.mem.host_address(m.gpa & ~(PAGE - 1))\n",
        new="        host = self.mem.host_address(m.gpa & ~(PAGE - 1), allocate=False)\n",
        why="The fill looks the host frame up without backing the page, so guest RAM the VMM "
            "has not backed yet is taken for a device and never mapped: the VMM's map is "
            "half of the composition.",
    ),
    Bug(
        name="shadow-grants-rwx",
        file=SHADOW,
        part="shadow-fill",
        old="        flags = PTE_V | PTE_U | PTE_A\n",
        new="        flags = PTE_V | PTE_U | PTE_A | PTE_R | PTE_W | PTE_D | PTE_X\n",
        why="Permissions are not intersected: once the guest's walk allows the faulting access, "
            "the shadow entry grants read, write and execute, more than the guest's PTE does.",
    ),
    Bug(
        name="shadow-perms-for-real-mode",
        file=SHADOW,
        part="shadow-fill",
        old="            if not paging or guestwalk.permits(m.pte, kind, vcpu.mode, sum_, mxr):\n",
        new="            if not paging or guestwalk.permits(m.pte, kind, U, sum_, mxr):\n",
        why="The shadow entry's permissions honour the guest's U bit for the real mode (always "
            "U) instead of the guest's virtual mode, so the S view grants the guest kernel "
            "user pages and nothing of its own kernel pages.",
    ),
    Bug(
        name="shadow-sum-from-real-sstatus",
        file=SHADOW,
        part="shadow-fill",
        old="        sum_ = bool(vcpu.sstatus & csr.SSTATUS_SUM)\n",
        new="        sum_ = bool(self.machine.csr(csr.SSTATUS) & csr.SSTATUS_SUM)\n",
        why="SUM is read from the real sstatus instead of the guest's virtual one, so the guest "
            "kernel's SUM is ignored and its copies from user pages fault.",
    ),
    Bug(
        name="shadow-fill-always-user-view",
        file=SHADOW,
        part="shadow-fill",
        old="        self._write_leaf(vcpu.mode, va, host, flags)\n",
        new="        self._write_leaf(U, va, host, flags)\n",
        why="The composed entry is always written into the U view (the guest runs in real "
            "U-mode) instead of the view of the guest's virtual mode, so the guest kernel's "
            "hidden faults never get filled.",
    ),
    # ----- shadow-flush -------------------------------------------------------------------------
    Bug(
        name="flush-skips-hardware-sfence",
        file=SHADOW,
        part="shadow-flush",
        old="            self.leaves[view] = {}\n"
            "            self.machine.hart.mmu.sfence(None, self.asid[view])\n",
        new="            self.leaves[view] = {}\n",
        why="flush zeroes the shadow tables but does not sfence.vma their ASIDs, so the real TLB "
            "keeps serving translations cached from the forgotten shadow.",
    ),
    Bug(
        name="flush-forgets-user-view",
        file=SHADOW,
        part="shadow-flush",
        old="        for view in VIEWS:\n",
        new="        for view in (S,):\n",
        why="flush forgets only the S view, so after the guest kernel switches satp its user "
            "processes still run on the previous process's shadow (U view).",
    ),
    # ----- nested-map ---------------------------------------------------------------------------
    Bug(
        name="gstage-page-never-backed",
        file=NESTED,
        part="nested-map",
        old="        host = self.mem.host_address(gpa & ~(PAGE - 1))\n",
        new="        host = self.mem.host_address(gpa & ~(PAGE - 1), allocate=False)\n",
        why="map looks the host frame up without backing the page, so guest RAM not backed "
            "yet is refused as if it were not RAM: the guest's first touch of a page faults "
            "for ever.",
    ),
    Bug(
        name="gstage-leaf-without-u",
        file=NESTED,
        part="nested-map",
        old="        pte = (host >> 12) << 10 | GUEST_LEAF\n",
        new="        pte = (host >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D\n",
        why="The G-stage leaf lacks the U bit, but the G-stage checks every access as a user "
            "access, so the mapped page still faults.",
    ),
    Bug(
        name="gstage-maps-gpa-as-hpa",
        file=NESTED,
        part="nested-map",
        old="        pte = (host >> 12) << 10 | GUEST_LEAF\n",
        new="        pte = (gpa >> 12) << 10 | GUEST_LEAF\n",
        why="The G-stage leaf maps the guest-physical page to the host frame with the same "
            "number (a guest-physical address used as a host one), not to its own host frame.",
    ),
    # ----- bounded-buffer -----------------------------------------------------------------------
    Bug(
        name="ring-full-one-early",
        file=CHANNELS,
        part="bounded-buffer",
        old="        return self.count == self.capacity\n",
        new="        return self.count == self.capacity - 1\n",
        why="Off by one in the ring buffer: it reports full with one slot still free, so a "
            "channel of capacity 1 never accepts a message.",
    ),
    Bug(
        name="ring-put-ignores-head",
        file=CHANNELS,
        part="bounded-buffer",
        old="        self.slots[(self.head + self.count) % self.capacity] = message\n",
        new="        self.slots[self.count] = message\n",
        why="put writes at index count instead of count past head (modulo capacity), so once "
            "the head has moved the new message overwrites a queued one.",
    ),
    # ----- ipc ----------------------------------------------------------------------------------
    Bug(
        name="ipc-send-reads-host-physical",
        file=CHANNELS,
        part="ipc",
        old="        ch.put(guest.mem.read(buf, length))\n",
        new="        ch.put(guest.mem.machine.read_phys(buf, length))\n",
        why="The sender's buffer address, a guest-physical address, is used as a host-physical "
            "one, so the message is copied from host memory that is not the guest's.",
    ),
    Bug(
        name="ipc-receive-writes-host-physical",
        file=CHANNELS,
        part="ipc",
        old="        guest.mem.write(buf, message)\n",
        new="        guest.mem.machine.write_phys(buf, message)\n",
        why="The receiver's buffer address, a guest-physical address, is used as a "
            "host-physical one, so the VMM writes the message over host memory that is not "
            "the guest's.",
    ),
    Bug(
        name="send-does-not-wake-receiver",
        file=CHANNELS,
        part="ipc",
        old="        self.sent += 1\n"
            "        self.wake(ch.receiver)\n",
        new="        self.sent += 1\n",
        why="Lost wake-up: a send that makes a message available does not wake the receiver "
            "blocked on the empty channel.",
    ),
    Bug(
        name="receive-does-not-wake-sender",
        file=CHANNELS,
        part="ipc",
        old="        self.received += 1\n"
            "        self.wake(ch.sender)\n",
        new="        self.received += 1\n",
        why="Lost wake-up: a receive that makes room does not wake the sender blocked on the "
            "full channel.",
    ),
    Bug(
        name="ipc-receive-buffer-start-only",
        file=CHANNELS,
        part="ipc",
        old="        if not guest.mem.contains(buf, size):\n",
        new="        if not guest.mem.contains(buf):\n",
        why="Only the start of the receiver's buffer is checked, not the whole [buf, buf + size), "
            "so a buffer running past the end of the guest's RAM is accepted.",
    ),
    Bug(
        name="ipc-send-no-grant-check",
        file=CHANNELS,
        part="ipc",
        old="        if ch is None or ch.sender is not guest:\n",
        new="        if ch is None:\n",
        why="send checks that the channel exists but not that the caller was granted its "
            "sending end, so any guest can inject messages into any channel.",
    ),
    Bug(
        name="ipc-oversized-message-dropped",
        file=CHANNELS,
        part="ipc",
        old="        if len(ch.slots[ch.head] or b\"\") > size:\n"
            "            return ERR_INVALID_PARAM, 0\n"
            "        message = ch.take()\n",
        new="        message = ch.take()\n"
            "        if len(message) > size:\n"
            "            return ERR_INVALID_PARAM, 0\n",
        why="A message longer than the receiver's buffer is taken off the ring before the size "
            "check, so it is lost instead of staying queued.",
    ),
    Bug(
        name="send-blocks-on-stopped-receiver",
        file=CHANNELS,
        part="ipc",
        old="        if not ch.receiver.running:\n"
            "            return ERR_FAILED, 0\n"
            "        if ch.full():\n"
            "            return BLOCKED\n",
        new="        if ch.full():\n"
            "            return BLOCKED\n"
            "        if not ch.receiver.running:\n"
            "            return ERR_FAILED, 0\n",
        why="send checks for a full channel before a stopped receiver, so a sender to a dead "
            "peer whose buffer is full waits forever instead of getting SBI_ERR_FAILED.",
    ),
]
