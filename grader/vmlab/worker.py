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
import types
from collections import deque
from typing import Any

LAB = os.getcwd()
REMOTE = False  # the hardware is the grader's (machine/remote.py), not in this process
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


def _pages(guest: Any, expect: dict[str, str], pages: dict[int, bytes] | None = None,
           ) -> tuple[dict[str, str], dict[str, str]]:
    """Digests of the guest's non-zero pages (`pages`, if read already), and in full those
    that differ from `expect`."""
    digests, full = {}, {}
    for gpn, data in (guest.mem.pages() if pages is None else pages).items():
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


def probe_ipc_guests(a: dict) -> dict:
    """Guests joined by channels: how each ends, as probe_guest reports one."""
    from vmm import VMM
    vmm = VMM(host_memory=a.get("host_memory", 128 << 20))
    guests = []
    for spec in a["guests"]:
        g = vmm.create_guest(_program(spec["segments"], spec["pc"]), spec["name"],
                             memory=a["memory"], paging=spec["paging"])
        guests.append(g)
    for sender, receiver, capacity in a["channels"]:
        vmm.connect(guests[sender], guests[receiver], capacity)
    spent, stop = 0, None
    while any(g.stop is None for g in guests) and spent < a["host_steps"]:
        stop = vmm.run(a["host_steps"] - spent)
        spent = a["host_steps"] if stop.reason == "budget" else spent
        if stop.reason != "budget":
            break
    out = []
    for g, spec in zip(guests, a["guests"], strict=True):
        digests, full = _pages(g, spec.get("expect_pages", {}))
        out.append({"stop": _stop(g), "vcpu": _vcpu_state(g.vcpu),
                    "console": bytes(g.console).hex(), "pages": digests, "full_pages": full})
    host = {"reason": stop.reason, "detail": stop.detail[:4000]} if stop else {
        "reason": "budget", "detail": ""}
    return {"host_stop": host, "guests": out}


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
    # whom the grader's hardware charges the pages it writes to
    vmm.machine.label = lambda: vmm.current.name if vmm.current is not None else "vmm"
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
    # each guest's RAM read once: a VMM that backs all of it reads 2048 frames a guest
    now = {g.name: g.mem.pages() for g in guests}
    leaks = [[g.name, h.name] for g in guests for h in guests if g is not h and (
        secrets[g.name] in bytes(h.console) or any(secrets[g.name] in data
                                                   for data in now[h.name].values()))]
    digests, full = _pages(attacker, a.get("expect_pages", {}), now[attacker.name])
    after = now[bystander.name]
    return {"host_stop": {"reason": host.reason, "detail": host.detail[:4000]},
            "attacker_stop": _stop(attacker), "bystander_stop": _stop(bystander),
            "bystander_changed": sorted(int(p) for p in set(before) | set(after)
                                        if before.get(p) != after.get(p)),
            "foreign_writes": foreign[:20], "leaks": leaks, "pages": digests,
            "full_pages": full, "native": attacker.native,
            "attacker_instret": int(attacker.vcpu.instret),
            "owners": [[int(f), str(o)] for f, o in list(owners.items())[:20000]]}


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
                    hw.append(_tagged(mmu.walk, ["hw", len(out), other], va, other,
                                      g.shadow.satp(mode), user))
                except Trap:
                    hw.append(None)
            r["hardware"] = hw
        else:
            perms = Permissions(priv=mode, sum=sum_, mxr=mxr, mxr_g=False)
            r["walk"] = ["unsettled", 0]
            for _ in range(8):
                try:
                    r["walk"] = ["host", _tagged(mmu.walk, ["walk", len(out)], va, access,
                                                 g.vcpu.satp, perms, g.gstage.hgatp())]
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
    rely on what fill keeps; where fill is missing, fails or leaves the hardware nothing to
    translate, the given `_write_leaf` makes them (this part is graded without the shadow-fill
    part). Every entry is in the TLB before the flush, so that only a flush that forgets them
    passes: a flush that does nothing leaves every one. `cached` counts them. Then each is
    filled again (the same way), and must translate as before: a flush leaves the tables fit
    for the next fills. `lost` lists those that do not: (va, access, mode, before, after)."""
    from machine import csr
    from machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X, Permissions
    from machine.traps import Trap
    from vmm import VMM
    vmm = VMM(host_memory=96 << 20)
    g = _table_guest(vmm, "shadow", a)
    hart = vmm.machine.hart
    user = Permissions(priv=0, sum=False, mxr=False)
    flags = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D

    def fill_and_walk(fill_args: list, tag: list) -> int | None:
        """The entry made (by the student's fill; where that leaves the hardware nothing to
        use, by the given _write_leaf) and walked, so that the TLB holds it: its host address,
        or None."""
        va, access, mode, gpa, sum_, mxr = fill_args
        g.vcpu.mode = mode
        g.vcpu.sstatus = (csr.SSTATUS_SUM if sum_ else 0) | (csr.SSTATUS_MXR if mxr else 0)
        for fill in (_filled, _write_leaf):
            if fill(g, va, access, gpa, flags):
                try:
                    return _tagged(hart.mmu.translate, tag, va, access, g.shadow.satp(mode),
                                   user)
                except Trap:
                    pass
        return None

    cached, before = 0, {}
    for fill_args in a["fills"]:
        key = tuple(fill_args[:3])
        hpa = fill_and_walk(fill_args, ["cache", cached, *key])
        if hpa is not None:
            before[key] = hpa
            cached += 1
    g.shadow.flush()
    still = []
    for va, access, mode, *_ in a["fills"]:
        try:
            hpa = _tagged(hart.mmu.translate, ["still", va, access, mode], va, access,
                          g.shadow.satp(mode), user)
            still.append([va, access, mode, hpa])
        except Trap:
            pass
    after = {tuple(f[:3]): fill_and_walk(f, ["again", *f[:3]]) for f in a["fills"]
             if tuple(f[:3]) in before}
    lost = [[*key, pa, after.get(key)] for key, pa in before.items() if after.get(key) != pa]
    return {"still_mapped": still, "cached": cached, "lost": lost}


def _tagged(walk: Any, tag: list, *args: Any) -> int:
    """A walk the grader's hardware records under `tag` (where the hardware is the grader's:
    the answer's account of it is checked against that record)."""
    return walk(*args, tag=tag) if REMOTE else walk(*args)


def _filled(g: Any, va: int, access: int, *_: Any) -> bool:
    """Whether the student's fill made the shadow entry for `va`."""
    try:
        g.shadow.fill(g.vcpu, va, access)
    except Exception:  # noqa: BLE001 - missing or failing: the probe writes the entry itself
        return False
    return True


def _write_leaf(g: Any, va: int, access: int, gpa: int, flags: int) -> bool:
    """The entry for `va`, written as the given ShadowTables._write_leaf writes one."""
    g.shadow._write_leaf(g.vcpu.mode, va, g.mem.host_address(gpa & ~0xFFF), flags)
    g.shadow.fills += 1  # as a fill counts it
    return True


# ----- trap and emulate ---------------------------------------------------------------------

class _Watch:
    """Which of some functions ran, seen from the functions' side: a trace function (sys.settrace:
    it works from 3.11 on) notes each call whose code object is one of theirs, with its integer
    arguments in the order of its own parameters, however the caller reached it (by the module's
    name, an alias, a table built at import, another module's name) and however it passed them.
    Calls made from inside a watched function are its own business and are not noted. Each note
    ends with how the call ended: ["returned"], ["fault", cause, tval] (GuestFault) or ["error",
    the exception's type]; or, when a parameter named in `kinds` got a value of another kind
    (the arguments out of order: a body the watch replaced would not notice), ["misplaced",
    which parameter got what].

    `replace` gives a function another body for the duration, by swapping its code object: the
    function object stays the one every table and alias holds, so the replacement is reached
    the same way the function is. It is used for bodies that must not run in a part's test
    (a GuestFault raised on purpose, a VMM method whose real body would run another part)."""

    def __init__(self, functions: dict[str, Any], kinds: dict[str, type] | None = None) -> None:
        self.kinds = kinds or {}
        unwrapped = {name: inspect.unwrap(getattr(fn, "__func__", fn))
                     for name, fn in functions.items()}
        # a name the student's module lacks, or that is no Python function, is not watched
        self.functions = {name: fn for name, fn in unwrapped.items()
                          if isinstance(getattr(fn, "__code__", None), types.CodeType)}
        self.codes = {fn.__code__: name for name, fn in self.functions.items()}
        self.calls: list[list] = []
        self.active: Any = None  # the frame of the watched call under way
        self.pending: BaseException | None = None  # an exception in that frame, not yet handled
        self.saved: list[tuple[Any, Any]] = []

    def replace(self, name: str, body: str) -> bool:
        """Give function `name` the body `body` (Python, indented 4) with its own parameters;
        False when it cannot be done (a closure: its code cannot be swapped)."""
        fn = self.functions[name]
        if fn.__code__.co_freevars:
            return False
        params = [p.replace(annotation=p.empty,
                            default=p.empty if p.default is p.empty else None)
                  for p in inspect.signature(fn).parameters.values()]
        source = f"def replaced{inspect.Signature(params)}:\n{body}\n"
        space: dict = {}
        exec(compile(source, f"<the grader's {name}>", "exec"), space)  # noqa: S102
        code = space["replaced"].__code__.replace(co_name=fn.__code__.co_name)
        self.saved.append((fn, fn.__code__))
        fn.__code__ = code
        self.codes[code] = name
        return True

    def __enter__(self) -> _Watch:
        sys.settrace(self._call)
        return self

    def __exit__(self, *_: Any) -> None:
        sys.settrace(None)
        for fn, code in reversed(self.saved):
            fn.__code__ = code
        self.saved.clear()

    def _call(self, frame: Any, event: str, arg: Any) -> Any:
        name = self.codes.get(frame.f_code)
        if event != "call" or name is None or self.active is not None:
            return None
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        args = [frame.f_locals.get(n) for n in names]
        wrong = next((f"its `{n}` got {'an' if type(v).__name__[0] in 'aeiou' else 'a'} "
                      f"{type(v).__name__}" for n, v in zip(names, args, strict=True)
                      if n in self.kinds and not isinstance(v, self.kinds[n])), None)
        self.calls.append([name, [v for v in args if isinstance(v, int)
                                  and not isinstance(v, bool)],
                           ["misplaced", wrong] if wrong else ["returned"]])
        self.active, self.pending = frame, None
        return self._inside

    def _inside(self, frame: Any, event: str, arg: Any) -> Any:
        if frame is not self.active:
            return None
        if event == "exception":
            self.pending = arg[1]
        elif event == "line":
            self.pending = None  # handled within the function
        elif event == "return":
            e = self.pending
            if e is not None and self.calls[-1][2][0] != "misplaced":
                from vmm.guestwalk import GuestFault
                self.calls[-1][2] = ["fault", int(e.cause), int(e.tval) & 0xFFFF_FFFF] \
                    if isinstance(e, GuestFault) and isinstance(e.cause, int) and \
                    isinstance(e.tval, int) else ["error", type(e).__name__]
            self.active = self.pending = None
        return self._inside


def _raising(fault: list) -> str:
    return (f"    from vmm.guestwalk import GuestFault\n"
            f"    raise GuestFault({int(fault[0])}, {int(fault[1])})")


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
    g.vcpu = VirtualCPU(pc=0x8040_0000)
    g.console.clear()
    g.stop, g.state, g.emulated, g.waiting_on = None, RUNNABLE, 0, None
    g.last_fault, g.repeats = None, 0
    g.traps.clear()
    if state is not None:
        _apply_state(g.vcpu, state)
    return vmm, g


def probe_dispatch(a: dict) -> dict:
    """trap.handle with the real handlers: which of them ran (seen from their side), with what,
    and how each call ended. When the example says so, the handler the table routes the trap
    to raises GuestFault instead of running (`raiser`, `raises`)."""
    from machine.hart import TrapEvent
    from vmm import hypercalls, trap
    from vmm.monitor import VMM
    vmm, g = _vcpu_guest(a["paging"])
    g.vcpu.mode = a["vmode"]
    g.vcpu.scounteren = a.get("scounteren", 0)
    watch = _Watch({"reflect": getattr(trap, "reflect", None),
                    "emulate": getattr(trap, "emulate", None),
                    "emulate_counter_read": getattr(trap, "emulate_counter_read", None),
                    "hypercall": getattr(hypercalls, "hypercall", None),
                    "hidden_fault": VMM.hidden_fault, "guest_page_fault": VMM.guest_page_fault},
                   kinds={"vmm": VMM, "self": VMM, "guest": type(g)})
    raised = None
    event = TrapEvent(a["cause"], a["tval"], 0x8040_0000, 0, a["paging"] == "nested",
                      a.get("gpa", 0))
    with watch:
        injected = bool(a.get("raises")) and a["raiser"] in watch.functions and \
            watch.replace(a["raiser"], _raising(a["raises"]))
        try:
            trap.handle(vmm, g, event)
        except NotImplementedError:
            if not watch.calls:
                raise  # handle itself is still the stub: "not written yet"
            raised = ["NotImplementedError", "(a handler is not written yet)"]
        except Exception as e:  # noqa: BLE001 - reported: the grader judges it
            raised = [type(e).__name__, str(e)[:300]]
    return {"calls": watch.calls, "raised": raised, "injected": injected}


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
    """emulate on a virtual CPU; which of the VMM's translation hooks it called, seen from the
    hooks' side (their bodies do not run: under shadow paging they would run shadow-flush,
    another part)."""
    from vmm import trap
    from vmm.monitor import VMM
    vmm, g = _vcpu_guest(state=a["state"])
    watch = _Watch({"guest_sfence": VMM.guest_sfence,
                    "guest_translation_changed": VMM.guest_translation_changed})
    with watch:
        for name in watch.functions:
            watch.replace(name, "    return None")
        out = _fault_or_state(lambda: trap.emulate(vmm, g, a["bits"]), g)
    out["calls"] = [c[:2] for c in watch.calls]
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


def _scripted_channels(answer: Any) -> Any:
    """vmm.channels in the hypercall probe: the handout's Channels (every field and method),
    whose send and receive record each call and give the scripted answer, so that the
    hypercall part is graded without the ipc part."""
    from vmm import channels

    class ScriptedChannels(channels.Channels):
        # the parameters are named as Channels' own: a hypercall may pass them by name
        def send(self, guest: Any, cid: int, buf: int, length: int) -> Any:
            return self._answer(0, cid, buf, length)

        def receive(self, guest: Any, cid: int, buf: int, size: int) -> Any:
            return self._answer(1, cid, buf, size)

        def _answer(self, fid: int, cid: int, buf: int, size: int) -> Any:
            self.calls.append([fid, cid, buf, size])
            if answer == "blocked":
                return channels.BLOCKED
            if answer == "bad-buffer":
                raise channels.BadBuffer(f"buffer {buf:#x}+{size} (scripted)")
            return tuple(answer)

    scripted = ScriptedChannels(wake=lambda g: None)
    scripted.calls = []
    return scripted


def probe_hypercall(a: dict) -> dict:
    from vmm import hypercalls
    from vmm.guest import BLOCKED
    vmm, g = _vcpu_guest(state=a["state"])
    for gpa, data in a.get("memory", []):
        g.mem.write(gpa, bytes.fromhex(data))
    real, scripted = vmm.channels, _scripted_channels(a.get("ipc_answer"))
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

# The ipc part runs the student's Channels over the handout's own collaborators: guests that are
# vmm/guest.py's Guest (every documented field, `waiting_on` included), with vmm/guestmem.py's
# GuestMemory over a real machine (host frames, `host_address`, reads at their real cost), and
# channels of the handout's Channel class. Only the ring operations of each channel are the
# grader's (the bounded-buffer part has a test of its own): its class becomes a subclass of the
# student's Channel that overrides full, empty, put and take and nothing else.

SESSION: dict[str, Any] = {}
_HOST: dict[str, Any] = {}  # one machine for every session: a session takes fresh frames


def _reference_channel(channel_class: type) -> type:
    """The student's Channel with the grader's ring operations: the messages in a deque, and
    the documented fields (slots, head, count) laid out again after each operation as a ring
    whose oldest message is at head 0, so that a Channels that reads them sees what the
    contract says. (A design of its own, not the handout's ring to copy.)"""
    class ReferenceChannel(channel_class):  # type: ignore[misc, valid-type]
        def full(self) -> bool:
            if REMOTE:
                return _ring(self, "full")
            return len(_queue(self)) >= self.capacity

        def empty(self) -> bool:
            if REMOTE:
                return _ring(self, "empty")
            return not _queue(self)

        def put(self, message: bytes) -> None:
            if REMOTE:
                _ring(self, "put", bytes(message))
            else:
                _queue(self).append(message)
            _lay_out(self)

        def take(self) -> bytes:
            message = _ring(self, "take") if REMOTE else _queue(self).popleft()
            _lay_out(self)
            return message

    ReferenceChannel.__name__ = ReferenceChannel.__qualname__ = channel_class.__name__
    return ReferenceChannel


def _ring(ch: Any, what: str, message: bytes = b"") -> Any:
    """One operation on the grader's ring for `ch`, kept in the grading process (a ring in the
    worker would be one a student's Channel could take as its own); the worker keeps a copy of
    its messages to lay the documented fields out."""
    from machine import remote
    reply = remote.ring({"op": "ring", "id": str(id(ch)), "do": what, "message": message.hex(),
                         "capacity": int(ch.capacity)})
    ch.__dict__["_grader_queue"] = deque(bytes.fromhex(m) for m in reply["queue"])
    value = reply["value"]
    return bytes.fromhex(value) if what == "take" else value


def _queue(ch: Any) -> deque:
    """The reference channel's messages, oldest first (kept beside the student's fields)."""
    return ch.__dict__.setdefault("_grader_queue", deque())


def _lay_out(ch: Any) -> None:
    q = _queue(ch)
    ch.slots = [*q, *[None] * (ch.capacity - len(q))]
    ch.head, ch.count = 0, len(q)


def _guests(n: int, size: int) -> list:
    """`n` guests of `size` bytes of RAM each, as the VMM makes them (without a program)."""
    from machine import Machine
    from vmm.frames import FrameAllocator
    from vmm.guest import Guest
    from vmm.guestmem import GuestMemory
    from vmm.vcpu import VirtualCPU
    if "machine" not in _HOST:
        _HOST["machine"] = Machine(ram_size=4 << 20)
    machine = _HOST["machine"]
    frames = FrameAllocator(4 << 20, 1 << 20)  # the same frames, handed out afresh, zeroed
    return [Guest(i, f"g{i}", VirtualCPU(), GuestMemory(f"g{i}", size, frames, machine),
                  "shadow") for i in range(n)]


def _wake(g: Any) -> None:
    """The VMM's wake (monitor.py): a blocked guest becomes runnable; any other is left alone.
    Counted, so that the grader sees who was woken."""
    from vmm.guest import BLOCKED, RUNNABLE
    if g.state == BLOCKED:
        g.state = RUNNABLE
        SESSION["woken"][g.gid] += 1


def _retry_woken(guests: list) -> None:
    """A woken guest retries its call at once, as on the VMM: if it would still have to wait
    (woken for another channel's sake), it is blocked again; else it is free."""
    from vmm.guest import BLOCKED, RUNNABLE
    queues, waits = SESSION["queues"], SESSION["waits"]
    for g in guests:
        if g.state != RUNNABLE or waits.get(g.gid) is None:
            continue
        op, cid = waits[g.gid]
        q = queues.get(cid)
        again = q is not None and (q.empty() and q.sender.running if op == "receive"
                                   else q.full() and q.receiver.running)
        if again:
            g.state = BLOCKED
        else:
            waits[g.gid] = None


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
            taken = ch.take()
            out.append(taken.hex() if isinstance(taken, bytes | bytearray) else repr(taken))
        else:
            answer = getattr(ch, op)()
            out.append(answer if isinstance(answer, bool) else repr(answer))
    return {"results": out}


def probe_ipc_start(a: dict) -> dict:
    from vmm import channels
    SESSION.clear()
    guests = _guests(a["guests"], a["size"])
    SESSION.update(woken=[0] * len(guests), waits={})
    chans = channels.Channels(wake=_wake)
    ids = [chans.connect(guests[s], guests[r], cap) for s, r, cap in a["pairs"]]
    classes: dict[type, type] = {}
    for ch in chans.table.values():
        if isinstance(ch, channels.Channel):
            cls = type(ch)
            ch.__class__ = classes.setdefault(cls, _reference_channel(cls))
    SESSION.update(guests=guests, channels=chans, queues=dict(chans.table))
    return {"ids": ids}


def _ipc_operation(a: dict) -> dict:
    """One send, receive or death in the running IPC session."""
    from machine import Stop
    from vmm import channels
    from vmm.guest import BLOCKED, RUNNABLE, STOPPED
    guests, chans, waits = SESSION["guests"], SESSION["channels"], SESSION["waits"]
    g = guests[a["guest"]]
    if a["op"] == "kill":
        # as the VMM's stop_guest: whoever waits on it is woken, to find it gone
        g.state, g.stop, waits[g.gid] = STOPPED, Stop("killed", "the grader stopped it"), None
        for peer in chans.peers(g):
            _wake(peer)
        _retry_woken(guests)
        return {"result": None, "woken": list(SESSION["woken"])}
    g.state, waits[g.gid] = RUNNABLE, None  # it makes a call, so it runs
    if a["op"] == "send" and g.mem.contains(a["buf"], a["size"]):
        g.mem.write(a["buf"], bytes.fromhex(a["payload"]))
    try:
        if a["op"] == "send":
            result = chans.send(g, a["cid"], a["buf"], a["size"])
        else:
            result = chans.receive(g, a["cid"], a["buf"], a["size"])
    except channels.BadBuffer:
        result = "bad-buffer"
    if result is channels.BLOCKED:
        result = "blocked"
        g.state, waits[g.gid] = BLOCKED, (a["op"], a["cid"])  # as the VMM's block
    elif isinstance(result, tuple):
        result = list(result)
    elif result != "bad-buffer":
        result = repr(result)[:100]  # not an answer: shown as it is, never taken for one
    data = g.mem.read(a["buf"], min(a["size"], 256)).hex() if a["op"] == "receive" and \
        g.mem.contains(a["buf"], a["size"]) else None  # a message is at most 256 bytes
    _retry_woken(guests)
    return {"result": result, "data": data, "woken": list(SESSION["woken"])}


def probe_ipc_batch(a: dict) -> dict:
    """Several sends, receives and deaths, in order (the state machine checks their answers
    at the end of its run: a round trip each cost more than the operations)."""
    return {"answers": [_ipc_operation(op) for op in a["ops"]]}


HEAVY = {"guest", "isolation", "translate", "flush", "ipc_guests"}
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
                if REMOTE:
                    from machine import remote
                    remote.begin(request["probe"], request["args"])
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
        if not answer["ok"]:
            # what the failure held (a VMM in its traceback, and that VMM's machine: tens of
            # MB) goes now, not at some later collection: else whether the next request finds
            # room for its machine depends on when that was, and the verdict on chance
            gc.collect()
        if isinstance(request, dict):  # the request's number: a stray line is not an answer
            answer["seq"] = request.get("seq")
        try:
            text = json.dumps(answer)
        except (TypeError, ValueError, RecursionError) as e:  # a hook returned what JSON lacks
            text = json.dumps({"ok": False, "seq": answer.get("seq"), "error": {
                "type": type(e).__name__, "traceback": "",
                "message": f"your code returned a value of the wrong type ({e})"[:2000]}})
        if REMOTE:  # the log of what the VMM did on the hardware goes first, whole
            from machine import remote
            remote.finish(request.get("seq") if isinstance(request, dict) else None)
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
        os.setgid(config.get("gid", uid))
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
    arch = SECCOMP_ARCH.get(os.uname().machine) if sys.platform.startswith("linux") else None
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
    # PR_SET_NO_NEW_PRIVS: what lets a process that is not root install a filter
    if not hasattr(libc, "prctl") or libc.prctl(38, 1, 0, 0, 0) != 0:
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
    if config.get("hardware_fd") is not None:
        global REMOTE
        from machine import remote
        remote.connect(config["hardware_fd"], config.get("runs", True))
        REMOTE = True
    import_error = load_student_code()
    if REMOTE:
        from machine import remote
        remote.finish("start")
    channel.write(json.dumps({"ok": True, "result": {"ready": True,
                                                     "import_error": import_error}}) + "\n")
    channel.flush()
    serve(sys.stdin, channel)


if __name__ == "__main__":
    main()
