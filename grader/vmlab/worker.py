"""The worker: the only process where a submission's code runs.

The grader starts `python -m vmlab.worker`, with the assembled submission (a pristine handout with
the student's files laid over it) as the current directory and first on the import path. The
worker reads one JSON request per line on stdin, runs one probe (a small experiment on the
student's VMM), and answers one JSON line on a private copy of its original stdout; the student's
own prints go to stderr, so they cannot corrupt the channel by accident. It decides nothing: the
grader validates each answer, computes the expected result from the bare machine and the
specification, and gives the verdict. A probe that raises answers with the exception, its
traceback trimmed to the student's files.

Probes report raw observations: registers, CSRs, pages (as digests, in full only where they
differ from what the grader expects), which hooks the student's code called.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import os
import sys
import traceback
from collections import deque
from typing import Any

LAB = os.getcwd()
STUDENT_FILES = ("vmm/trap.py", "vmm/hypercalls.py", "vmm/shadow.py", "vmm/nested.py",
                 "vmm/channels.py")
VCPU_FIELDS = ("pc", "mode", "sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc",
               "scause", "stval", "satp", "stimecmp", "instret", "idle")


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ----- building guests --------------------------------------------------------------------

def _program(segments: list[list[Any]], entry: int) -> Any:
    from machine import Program, Segment
    return Program([Segment(a, bytes.fromhex(d)) for a, d in segments], entry=entry)


def _apply_state(vcpu: Any, state: dict) -> None:
    for num, value in state["csrs"]:
        vcpu.set_csr(num, value)
    for i, value in enumerate(state["regs"]):
        vcpu.set_reg(i, value)
    vcpu.set_mode(state["mode"])
    vcpu.pc = state["pc"]
    for name, value in state.get("fields", {}).items():
        setattr(vcpu, name, value)


def _vcpu_state(v: Any) -> dict:
    out = {name: int(getattr(v, name)) for name in VCPU_FIELDS}
    out["regs"] = list(v.x)
    out["trap_entry"] = bool(v.trap_entry)
    return out


def _pages(guest: Any, expect: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Digests of the guest's non-zero pages, and in full those that differ from `expect`."""
    digests, full = {}, {}
    for gpn, data in guest.mem.pages().items():
        d = digests[str(gpn)] = digest(data)
        if expect.get(str(gpn)) != d:
            full[str(gpn)] = data.hex()
    return digests, full


def _stop(guest: Any) -> dict | None:
    return None if guest.stop is None else {"reason": guest.stop.reason,
                                            "detail": guest.stop.detail}


def _run_guest(vmm: Any, guest: Any, steps: int, host_steps: int, exact: bool = False) -> dict:
    """Run until the guest stops or has retired `steps` instructions (its own budget); how the
    host stopped (handler-error: the VMM raised). With `exact`, the guest stops at exactly
    `steps` instructions retired, as the bare run it is compared with did: the host runs at
    most as many steps as the guest has instructions left (a step retires at most one of the
    guest's, natively or emulated), and on until it has none left."""
    spent, stop, rounds = 0, None, 0
    while guest.stop is None and guest.vcpu.instret < steps and spent < host_steps:
        rounds += 1
        left = steps - guest.vcpu.instret
        # a VMM that counts no instruction as retired would take a round per host step
        chunk = min(left if exact and rounds < EXACT_ROUNDS else 4 * steps, host_steps - spent)
        stop = vmm.run(chunk)
        spent += chunk
        if stop.reason != "budget":
            break
    return {"reason": stop.reason, "detail": stop.detail[:4000]} if stop else {
        "reason": "budget", "detail": ""}


EXACT_ROUNDS = 5000
VMM_MEMORY = 256 << 10  # 48 frames for the VMM's tables (past 16 for the host's boot data):
# one guest's take about ten


# ----- whole guests -------------------------------------------------------------------------

def probe_guest(a: dict) -> dict:
    """One program as a guest: the state it ends in, and what the VMM did for it."""
    from vmm import VMM, monitor
    # the VMM's own memory (its tables) kept small: a guest that fences or switches satp
    # hundreds of times exhausts it in a VMM that leaks a table a flush, as on a long run
    reserved, monitor.VMM_RESERVED = monitor.VMM_RESERVED, VMM_MEMORY
    try:
        vmm = VMM(host_memory=a.get("host_memory", 128 << 20))
    finally:
        monitor.VMM_RESERVED = reserved
    guest = vmm.create_guest(_program(a["segments"], a["state"]["pc"]), memory=a["memory"],
                             paging=a["paging"])
    _apply_state(guest.vcpu, a["state"])
    host = _run_guest(vmm, guest, a["steps"], a["host_steps"], a.get("exact", False))
    digests, full = _pages(guest, a.get("expect_pages", {}))
    counts = {"native": guest.native, "emulated": guest.emulated,
              "traps": sum(guest.traps.values()),
              "fills": guest.shadow.fills if guest.shadow else guest.gstage.fills,
              "flushes": guest.shadow.flushes if guest.shadow else 0}
    return {"stop": _stop(guest), "host_stop": host, "vcpu": _vcpu_state(guest.vcpu),
            "console": bytes(guest.console).hex(), "pages": digests, "full_pages": full,
            "counts": counts}


def probe_isolation(a: dict) -> dict:
    """An attacker and a second guest share the host, each holding a secret; the second guest
    idles, or attacks too. Which host pages were written on whose behalf, by whom they are
    owned, and where each secret ended up."""
    from vmm import VMM
    vmm = VMM(host_memory=64 << 20, quantum=500)
    attacker = vmm.create_guest(_program(a["segments"], a["state"]["pc"]), "attacker",
                                memory=a["memory"], paging=a["paging"])
    _apply_state(attacker.vcpu, a["state"])
    rival = a.get("rival")
    idle = {"segments": [[0x8040_0000, "6f000000"]],  # j . : a bystander that never writes
            "state": None}
    other = rival or idle
    bystander = vmm.create_guest(_program(other["segments"], 0x8040_0000), "bystander",
                                 memory=a["memory"], paging=a["bystander_paging"])
    if other["state"] is not None:
        _apply_state(bystander.vcpu, other["state"])
    guests = (attacker, bystander)
    secrets = {g.name: bytes.fromhex(a["secrets"][g.name][1]) for g in guests}
    for g in guests:
        g.mem.write(a["secrets"][g.name][0], secrets[g.name])
    before = bystander.mem.pages()
    written = _charge_writes(vmm)
    host = vmm.run(a["host_steps"])
    written.finish()
    owners = vmm.frames.owner
    foreign = []
    for writer, by_hardware, pages in written.entries():
        for page in sorted(pages):
            frame = 0x8000_0000 + page * 4096
            owner = owners.get(frame, "none")
            # the guest's own frames; the VMM's only when the VMM wrote them for it
            if owner != writer and (by_hardware or owner != "vmm"):
                foreign.append([frame, owner, writer, "hardware" if by_hardware else "vmm"])
    leaks = [[g.name, h.name] for g in guests for h in guests if g is not h and (
        secrets[g.name] in bytes(h.console) or any(secrets[g.name] in data
                                                   for data in h.mem.pages().values()))]
    digests, full = _pages(attacker, a.get("expect_pages", {}))
    after = bystander.mem.pages()
    return {"host_stop": {"reason": host.reason, "detail": host.detail[:4000]},
            "attacker_stop": _stop(attacker), "bystander_stop": _stop(bystander),
            "bystander_changed": sorted(int(p) for p in set(before) | set(after)
                                        if before.get(p) != after.get(p)),
            "foreign_writes": foreign[:20], "leaks": leaks, "pages": digests,
            "full_pages": full, "native": attacker.native,
            "attacker_instret": int(attacker.vcpu.instret)}


class _Writes:
    """Host RAM pages written, charged to a guest: by the hardware while the guest ran, or by
    the VMM while it handled one of the guest's traps."""

    def __init__(self, vmm: Any) -> None:
        self.vmm, self.ram = vmm, vmm.machine.mem
        self.pages: dict[tuple[str, bool], set[int]] = {}
        self.ram.dirty.clear()  # from here on, every page written is recorded

    def charge(self, guest: Any, by_hardware: bool) -> None:
        if self.ram.dirty:
            key = (guest.name if guest is not None else "vmm", by_hardware)
            self.pages.setdefault(key, set()).update(self.ram.dirty)
            self.ram.dirty.clear()

    def finish(self) -> None:
        self.charge(self.vmm.current, True)

    def entries(self) -> list[tuple[str, bool, set[int]]]:
        return [(who, hw, pages) for (who, hw), pages in sorted(self.pages.items())]


def _charge_writes(vmm: Any) -> _Writes:
    writes = _Writes(vmm)

    def observed(event: Any) -> None:
        writes.charge(vmm.current, True)  # the hardware ran the current guest since the last trap
        who = vmm.current
        try:
            vmm.on_trap(event)
        finally:
            writes.charge(who, False)

    vmm.machine.set_trap_handler(observed)
    return writes


# ----- page-table composition -----------------------------------------------------------------

def _table_guest(vmm: Any, paging: str, a: dict) -> Any:
    from machine import Program
    g = vmm.create_guest(Program([], 0x8040_0000), memory=a["memory"], paging=paging)
    for gpa, word in a["writes"]:
        if g.mem.contains(gpa, 4):
            g.mem.write(gpa, word.to_bytes(4, "little"))
    g.vcpu.satp = a["satp"]
    return g


def probe_translate(a: dict) -> dict:
    """Shadow: fill then the hardware's walk of the shadow for each access; nested: the
    hardware's two-stage walk, backing guest-physical pages with GStage.map as they fault."""
    from machine import csr
    from machine.mmu import Permissions
    from machine.traps import GUEST_PAGE_FAULT_CAUSE, Trap
    from vmm import VMM
    from vmm.guestwalk import GuestFault
    vmm = VMM(host_memory=96 << 20)
    g = _table_guest(vmm, a["paging"], a)
    mmu = vmm.machine.hart.mmu
    user = Permissions(priv=0, sum=False, mxr=False)
    out = []
    for va, access, mode, sum_, mxr, gpa in a["queries"]:
        g.vcpu.mode = mode
        g.vcpu.sstatus = (csr.SSTATUS_SUM if sum_ else 0) | (csr.SSTATUS_MXR if mxr else 0)
        r: dict[str, Any] = {}
        if a["paging"] == "shadow":
            try:
                r["fill"] = ["gpa", g.shadow.fill(g.vcpu, va, access)]
            except GuestFault as fault:
                r["fill"] = ["fault", fault.cause]
            hw = []
            for other in (0, 1, 2):
                try:
                    hw.append(mmu.walk(va, other, g.shadow.satp(mode), user))
                except Trap:
                    hw.append(None)
            r["hardware"] = hw
        else:
            perms = Permissions(priv=mode, sum=sum_, mxr=mxr, mxr_g=False)
            r["walk"] = ["unsettled", 0]
            for _ in range(8):
                try:
                    r["walk"] = ["host", mmu.walk(va, access, g.vcpu.satp, perms,
                                                  g.gstage.hgatp())]
                    break
                except Trap as trap:
                    if trap.cause not in GUEST_PAGE_FAULT_CAUSE:
                        r["walk"] = ["fault", trap.cause]
                        break
                    if not g.gstage.map(trap.gpa):
                        r["walk"] = ["unmapped", trap.gpa]
                        break
        # the frame backing the page now: the fill or the G-stage had to back it
        r["map"] = None if gpa is None else g.mem.host_address(gpa, allocate=False)
        out.append(r)
    return {"results": out}


def probe_flush(a: dict) -> dict:
    """Shadow entries for some pages, cached in the TLB; then flush; then ask the hardware,
    TLB included, what it still maps. The entries are the student's fill's, so that a flush may
    rely on what fill keeps; where fill is missing or fails, the given `_write_leaf` makes them
    (this part is graded without the shadow-fill part)."""
    from machine import csr
    from machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X, Permissions
    from machine.traps import Trap
    from vmm import VMM
    vmm = VMM(host_memory=96 << 20)
    g = _table_guest(vmm, "shadow", a)
    hart = vmm.machine.hart
    user = Permissions(priv=0, sum=False, mxr=False)
    flags = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D
    for va, access, mode, gpa, sum_, mxr in a["fills"]:
        g.vcpu.mode = mode
        g.vcpu.sstatus = (csr.SSTATUS_SUM if sum_ else 0) | (csr.SSTATUS_MXR if mxr else 0)
        if not _filled(g, va, access):
            g.shadow._write_leaf(mode, va, g.mem.host_address(gpa & ~0xFFF), flags)
            g.shadow.fills += 1  # as a fill counts it
        try:
            hart.mmu.translate(va, access, g.shadow.satp(mode), user)  # now in the TLB
        except Trap:
            pass  # the student's fill wrote something else: nothing to cache
    g.shadow.flush()
    still = []
    for va, access, mode, *_ in a["fills"]:
        try:
            hpa = hart.mmu.translate(va, access, g.shadow.satp(mode), user)
            still.append([va, access, mode, hpa])
        except Trap:
            pass
    return {"still_mapped": still}


def _filled(g: Any, va: int, access: int) -> bool:
    """Whether the student's fill made the shadow entry for `va`."""
    try:
        g.shadow.fill(g.vcpu, va, access)
    except Exception:  # noqa: BLE001 - missing or failing: the probe writes the entry itself
        return False
    return True


# ----- trap and emulate ---------------------------------------------------------------------

class _Recorder:
    """Stands in for a handler: records its integer arguments, in the order of the handler's
    own parameters however they were passed, and raises GuestFault if told to."""

    def __init__(self, calls: list, name: str, handler: Any, fault: list | None = None) -> None:
        self.calls, self.name, self.fault = calls, name, fault
        self.signature = inspect.signature(handler)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        bound = self.signature.bind(*args, **kwargs)  # a call the handler refuses fails so too
        self.calls.append([self.name, [a for a in bound.arguments.values()
                                       if isinstance(a, int) and not isinstance(a, bool)]])
        if self.fault is not None:
            from vmm.guestwalk import GuestFault
            raise GuestFault(*self.fault)


_UNITS: dict[str, tuple[Any, Any]] = {}


def _vcpu_guest(paging: str = "shadow", state: dict | None = None) -> tuple[Any, Any]:
    """A VMM and a guest for probes of single handlers, made once and reset each time (a VMM
    takes milliseconds to build): a fresh virtual CPU, console and counters."""
    from machine import Program
    from vmm import VMM
    from vmm.guest import RUNNABLE
    from vmm.vcpu import VirtualCPU
    if paging not in _UNITS:
        vmm = VMM(host_memory=64 << 20)
        _UNITS[paging] = vmm, vmm.create_guest(Program([], 0x8040_0000), memory=8 << 20,
                                               paging=paging)
    vmm, g = _UNITS[paging]
    for hook in ("guest_sfence", "guest_translation_changed", "hidden_fault",
                 "guest_page_fault", "stop_guest"):
        vmm.__dict__.pop(hook, None)  # the class's own method again
    g.vcpu = VirtualCPU(pc=0x8040_0000)
    g.console.clear()
    g.stop, g.state, g.emulated = None, RUNNABLE, 0
    g.traps.clear()
    if state is not None:
        _apply_state(g.vcpu, state)
    return vmm, g


def probe_dispatch(a: dict) -> dict:
    """trap.handle with every handler replaced by a recorder: where did the trap go?"""
    from machine.hart import TrapEvent
    from vmm import trap
    vmm, g = _vcpu_guest(a["paging"])
    g.vcpu.mode = a["vmode"]
    calls: list = []
    saved = {n: getattr(trap, n) for n in ("reflect", "emulate", "emulate_counter_read",
                                            "hypercall")}
    raising = a.get("raises")  # the handler the trap goes to raises GuestFault(cause, tval)
    try:
        for name, handler in saved.items():
            setattr(trap, name, _Recorder(calls, name, handler,
                                          raising if name != "reflect" else None))
        vmm.hidden_fault = _Recorder(calls, "hidden_fault", vmm.hidden_fault, raising)
        vmm.guest_page_fault = _Recorder(calls, "guest_page_fault", vmm.guest_page_fault,
                                         raising)
        event = TrapEvent(a["cause"], a["tval"], 0x8040_0000, 0, a["paging"] == "nested",
                          a.get("gpa", 0))
        trap.handle(vmm, g, event)
    finally:
        for name, fn in saved.items():
            setattr(trap, name, fn)
    return {"calls": calls}


def _fault_or_state(fn: Any, g: Any) -> dict:
    from vmm.guestwalk import GuestFault
    try:
        fn()
    except GuestFault as fault:
        return {"fault": [fault.cause, fault.tval & 0xFFFF_FFFF], "vcpu": _vcpu_state(g.vcpu)}
    return {"fault": None, "vcpu": _vcpu_state(g.vcpu), "stop": _stop(g)}


def probe_reflect(a: dict) -> dict:
    from vmm import trap
    vmm, g = _vcpu_guest(state=a["state"])
    return _fault_or_state(lambda: trap.reflect(vmm, g, a["cause"], a["tval"]), g)


def probe_emulate(a: dict) -> dict:
    from vmm import trap
    vmm, g = _vcpu_guest(state=a["state"])
    calls: list = []
    vmm.guest_sfence = _Recorder(calls, "guest_sfence", vmm.guest_sfence)
    vmm.guest_translation_changed = _Recorder(calls, "guest_translation_changed",
                                              vmm.guest_translation_changed)
    out = _fault_or_state(lambda: trap.emulate(vmm, g, a["bits"]), g)
    out["calls"] = calls
    return out


def probe_counter_read(a: dict) -> dict:
    from vmm import trap
    _, g = _vcpu_guest(state=a["state"])
    return _fault_or_state(lambda: trap.emulate_counter_read(g, a["bits"]), g)


def probe_sret(a: dict) -> dict:
    from vmm import trap
    _, g = _vcpu_guest(state=a["state"])
    return _fault_or_state(lambda: trap.emulate_sret(g.vcpu), g)


def probe_wfi(a: dict) -> dict:
    from vmm import trap
    vmm, g = _vcpu_guest(state=a["state"])
    return _fault_or_state(lambda: trap.emulate_wfi(vmm, g), g)


class _ScriptedChannels:
    """Stands in for vmm.channels in the hypercall probe: records each call and gives the
    scripted answer, so that the hypercall part is graded without the ipc part."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, []

    # the parameters are named as Channels' own: a hypercall may pass them by name
    def send(self, guest: Any, cid: int, buf: int, length: int) -> Any:
        return self._answer(0, cid, buf, length)

    def receive(self, guest: Any, cid: int, buf: int, size: int) -> Any:
        return self._answer(1, cid, buf, size)

    def peers(self, guest: Any) -> list:
        return []  # stop_guest wakes the stopped guest's peers: there are none here

    def _answer(self, fid: int, cid: int, buf: int, size: int) -> Any:
        from vmm import channels
        self.calls.append([fid, cid, buf, size])
        if self.answer == "blocked":
            return channels.BLOCKED
        if self.answer == "bad-buffer":
            raise channels.BadBuffer(f"buffer {buf:#x}+{size} (scripted)")
        return tuple(self.answer)


def probe_hypercall(a: dict) -> dict:
    from vmm import hypercalls
    from vmm.guest import BLOCKED
    vmm, g = _vcpu_guest(state=a["state"])
    for gpa, data in a.get("memory", []):
        g.mem.write(gpa, bytes.fromhex(data))
    real, scripted = vmm.channels, _ScriptedChannels(a.get("ipc_answer"))
    vmm.channels = scripted
    try:
        out = _fault_or_state(lambda: hypercalls.hypercall(vmm, g), g)
    finally:  # the guest is reused: leave its memory as zero as a fresh one
        vmm.channels = real
        for gpa, data in a.get("memory", []):
            g.mem.write(gpa, bytes(len(data) // 2))
    out.update(console=bytes(g.console).hex(), blocked=g.state == BLOCKED,
               ipc_calls=scripted.calls)
    return out


# ----- IPC ------------------------------------------------------------------------------------

class _Memory:
    """Guest-physical RAM [base, base+size) as a bytearray: what Channels sees of a guest."""

    def __init__(self, base: int, size: int) -> None:
        self.base, self.data = base, bytearray(size)

    def contains(self, gpa: int, n: int = 1) -> bool:
        return n >= 0 and self.base <= gpa and gpa + n <= self.base + len(self.data)

    def read(self, gpa: int, n: int) -> bytes:
        return bytes(self.data[gpa - self.base:gpa - self.base + n])

    def write(self, gpa: int, data: bytes) -> None:
        if not self.contains(gpa, len(data)):
            raise IndexError(f"write outside guest RAM at {gpa:#x}+{len(data)}")
        self.data[gpa - self.base:gpa - self.base + len(data)] = data


RUNNABLE, BLOCKED, STOPPED = "runnable", "blocked", "stopped"  # as vmm/guest.py's


class _Guest:
    """What Channels sees of a guest, as vmm/guest.py's Guest has it: gid, name, mem, state
    and running; a solution may read any of them (e.g. wake only a guest that is blocked)."""

    def __init__(self, gid: int, base: int, size: int) -> None:
        self.gid, self.name, self.mem = gid, f"g{gid}", _Memory(base, size)
        self.state = RUNNABLE
        self.woken = 0  # times a wake-up found it blocked and made it runnable
        self.waits: tuple[str, int] | None = None  # the call it blocked in: (op, channel)

    @property
    def running(self) -> bool:
        return self.state != STOPPED


def _wake(g: _Guest) -> None:
    """The VMM's wake: a blocked guest becomes runnable; any other is left alone."""
    if g.state == BLOCKED:
        g.state = RUNNABLE
        g.woken += 1


def _retry_woken(guests: list[_Guest]) -> None:
    """A woken guest retries its call at once, as on the VMM: if it would still have to wait
    (woken for another channel's sake), it is blocked again; else it is free."""
    queues = SESSION["queues"]
    for g in guests:
        if g.state != RUNNABLE or g.waits is None:
            continue
        op, cid = g.waits
        q = queues.get(cid)
        waits = q is not None and (q.empty() and q.sender.running if op == "receive"
                                   else q.full() and q.receiver.running)
        if waits:
            g.state = BLOCKED
        else:
            g.waits = None


class ReferenceQueue:
    """A plain bounded FIFO standing in for the student's Channel, so that the ipc part is
    graded on its own: the bounded-buffer part has its own test."""

    def __init__(self, cid: int, capacity: int, sender: Any, receiver: Any) -> None:
        self.cid, self.capacity, self.sender, self.receiver = cid, capacity, sender, receiver
        self.q: deque[bytes] = deque()
        self.head = 0

    def full(self) -> bool:
        return len(self.q) >= self.capacity

    def empty(self) -> bool:
        return not self.q

    def put(self, message: bytes) -> None:
        self.q.append(message)

    def take(self) -> bytes:
        return self.q.popleft()

    @property
    def slots(self) -> list[bytes | None]:
        """The ring as the given Channel lays it out, oldest at `head` (= 0)."""
        return [*self.q, *[None] * (self.capacity - len(self.q))]

    @property
    def count(self) -> int:
        return len(self.q)


SESSION: dict[str, Any] = {}


def probe_ring(a: dict) -> dict:
    """A sequence of operations on one Channel; what each returned."""
    from vmm.channels import Channel
    ch = Channel(0, a["capacity"], None, None)
    out = []
    for op, arg in a["ops"]:
        if op == "put":
            ch.put(bytes.fromhex(arg))
            out.append(None)
        elif op == "take":
            out.append(ch.take().hex())
        else:
            out.append(bool(getattr(ch, op)()))
    return {"results": out}


def probe_ipc_start(a: dict) -> dict:
    from vmm import channels
    SESSION.clear()
    SESSION["saved"] = channels.Channel
    channels.Channel = ReferenceQueue
    try:
        guests = [_Guest(i, a["base"], a["size"]) for i in range(a["guests"])]
        chans = channels.Channels(wake=_wake)
        ids = [chans.connect(guests[s], guests[r], cap) for s, r, cap in a["pairs"]]
    finally:
        channels.Channel = SESSION["saved"]
    SESSION.update(guests=guests, channels=chans, queues=dict(chans.table))
    return {"ids": ids}


def _ipc_operation(a: dict) -> dict:
    """One send, receive or death in the running IPC session."""
    from vmm import channels
    guests, chans = SESSION["guests"], SESSION["channels"]
    g = guests[a["guest"]]
    if a["op"] == "kill":
        # as the VMM's stop_guest: whoever waits on it is woken, to find it gone
        g.state, g.waits = STOPPED, None
        for peer in chans.peers(g):
            _wake(peer)
        _retry_woken(guests)
        return {"result": None, "woken": [x.woken for x in guests]}
    g.state, g.waits = RUNNABLE, None  # it makes a call, so it runs
    if a["op"] == "send" and g.mem.contains(a["buf"], a["size"]):
        g.mem.write(a["buf"], bytes.fromhex(a["payload"]))
    channels.Channel = ReferenceQueue
    try:
        if a["op"] == "send":
            result = chans.send(g, a["cid"], a["buf"], a["size"])
        else:
            result = chans.receive(g, a["cid"], a["buf"], a["size"])
    except channels.BadBuffer:
        result = "bad-buffer"
    finally:
        channels.Channel = SESSION["saved"]
    if result is channels.BLOCKED:
        result = "blocked"
        g.state, g.waits = BLOCKED, (a["op"], a["cid"])  # as the VMM's block
    elif isinstance(result, tuple):
        result = list(result)
    data = g.mem.read(a["buf"], a["size"]).hex() if a["op"] == "receive" and g.mem.contains(
        a["buf"], a["size"]) else None
    _retry_woken(guests)
    return {"result": result, "data": data, "woken": [x.woken for x in guests]}


def probe_ipc_batch(a: dict) -> dict:
    """Several sends, receives and deaths, in order (the state machine checks their answers
    at the end of its run: a round trip each cost more than the operations)."""
    return {"answers": [_ipc_operation(op) for op in a["ops"]]}


HEAVY = {"guest", "isolation", "translate", "flush"}
PROBES = {name[len("probe_"):]: fn for name, fn in globals().items()
          if name.startswith("probe_")}


# ----- the loop -------------------------------------------------------------------------------

def trimmed_traceback(exc: BaseException) -> str:
    """The student's part of a traceback: frames in the files they may edit."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if any(f.filename.endswith(s) for s in STUDENT_FILES)]
    lines = traceback.format_list(frames) if frames else []
    lines = [line.replace(LAB + os.sep, "") for line in lines]
    tail = traceback.format_exception_only(type(exc), exc)
    return "".join(["Traceback (your code, most recent call last):\n", *lines, *tail])


def serve(requests: Any, answers: Any) -> None:
    for line in requests:
        request = None
        try:
            request = json.loads(line)
            probe = PROBES[request["probe"]]
        except (ValueError, KeyError) as e:
            answer: dict = {"ok": False, "error": {"type": "ProtocolError", "message": str(e),
                                                   "traceback": ""}}
        else:
            try:
                answer = {"ok": True, "result": probe(request["args"])}
                if request["probe"] in HEAVY:
                    # a VMM holds a cycle and its mapped RAM: free it now. What survives is
                    # live (modules, caches); frozen, the next collection skips it, which
                    # makes a collection cost microseconds instead of milliseconds
                    gc.collect()
                    gc.freeze()
            except RecursionError as e:
                answer = {"ok": False, "error": {"type": "RecursionError", "message": str(e),
                                                 "traceback": ""}}
            except BaseException as e:  # noqa: BLE001 - SystemExit too: the student's answer
                answer = {"ok": False, "error": {"type": type(e).__name__,
                                                 "message": str(e)[:2000],
                                                 "traceback": trimmed_traceback(e)[-6000:]}}
        if isinstance(request, dict):  # the request's number: a stray line is not an answer
            answer["seq"] = request.get("seq")
        try:
            text = json.dumps(answer)
        except (TypeError, ValueError, RecursionError) as e:  # a hook returned what JSON lacks
            text = json.dumps({"ok": False, "seq": answer.get("seq"), "error": {
                "type": type(e).__name__, "traceback": "",
                "message": f"your code returned a value of the wrong type ({e})"[:2000]}})
        answers.write(text + "\n")
        answers.flush()


# what the VMM needs of the standard library, imported before the worker gives up root: outside
# bubblewrap the Python it runs on may sit where its own user cannot read (/root)
PRELOAD = ("abc", "array", "bisect", "collections", "contextlib", "copy", "ctypes",
           "dataclasses", "enum", "errno", "functools", "hashlib", "heapq", "inspect", "io",
           "itertools", "json", "math", "mmap", "operator", "pathlib", "random", "re",
           "select", "signal", "socket", "string", "struct", "subprocess", "tempfile",
           "textwrap", "threading", "time", "traceback", "types", "typing", "weakref")


def confine(config: dict) -> None:
    """The worker's first act, before any student code: drop to its own user (when the grader
    is root), then set its limits, hard ones too, so that nothing it runs can raise them."""
    import importlib
    import resource
    if config.get("preload"):
        for name in PRELOAD:
            importlib.import_module(name)
    uid = config.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    for name, value in config.get("limits", {}).items():
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError):
            pass  # one this kernel does not know, or one already lower
    if config.get("seccomp"):
        no_internet()


# seccomp: the worker may not open internet sockets (where bubblewrap cannot take the network
# away, this does; AF_UNIX stays, for nothing outside the worker listens to it). By machine:
# the audit arch, socket's number, and whether numbers with bit 30 set (x32) exist.
SECCOMP_ARCH = {"x86_64": (0xC000_003E, 41, True), "aarch64": (0xC000_00B7, 198, False)}
IO_URING_SETUP = 425  # io_uring can open sockets without the socket call: refused as well


def no_internet() -> bool:
    """Install a seccomp filter that refuses AF_INET and AF_INET6 sockets (EACCES) and
    io_uring. False where this machine's kind or kernel does not allow it."""
    import ctypes
    import struct
    arch = SECCOMP_ARCH.get(os.uname().machine)
    if arch is None:
        return False
    audit, socket_nr, x32 = arch
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, refuse = 0x7FFF_0000, 0x0005_0000 | 13  # SECCOMP_RET_ALLOW, RET_ERRNO(EACCES)
    # (code, jump if true, jump if false, k); jumps count the instructions skipped
    program = [(ld, 0, 0, 4), (jeq, 1, 0, audit), (ret, 0, 0, allow),  # another arch: allow
               (ld, 0, 0, 0),
               (jge, 5, 0, 0x4000_0000) if x32 else (jeq, 5, 0, 0xFFFF_FFFF),
               (jeq, 4, 0, IO_URING_SETUP), (jeq, 0, 4, socket_nr),
               (ld, 0, 0, 16), (jeq, 1, 0, 2), (jeq, 0, 1, 10),  # args[0]: AF_INET, AF_INET6
               (ret, 0, 0, refuse), (ret, 0, 0, allow)]
    code = b"".join(struct.pack("<HBBI", *op) for op in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: needed to filter as a user
        return False
    return libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0  # SECCOMP_MODE_FILTER


def load_student_code() -> dict | None:
    """Import the VMM now, so that an import that hangs is a start that fails (once, for the
    whole run) and not a hang on every example; an import that raises is each probe's error."""
    try:
        import vmm  # noqa: F401
    except BaseException as e:  # noqa: BLE001 - SystemExit too: the probes will report it
        return {"type": type(e).__name__, "message": str(e)[:2000]}
    return None


def main() -> None:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    confine(config)
    sys.setrecursionlimit(4000)
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the student's prints go to stderr, never into the answers
    sys.stdout = sys.stderr
    sys.path.insert(0, LAB)
    import_error = load_student_code()
    channel.write(json.dumps({"ok": True, "result": {"ready": True,
                                                     "import_error": import_error}}) + "\n")
    channel.flush()
    serve(sys.stdin, channel)


if __name__ == "__main__":
    main()
