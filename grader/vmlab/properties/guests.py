"""Whole guests: equivalence (Popek and Goldberg), efficiency, and resource control.

A generated program runs from a generated state on the bare machine (here, in the grader) and as
a guest of the student's VMM (in the worker). These properties need every part of Part 1 and the
paging part they use; each part also has its own property, so a student who has finished some
parts earns those.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import strategies as st

from .. import memo
from ..strategies.programs import (
    DATA_BASE_REG,
    DATA_S,
    FREE_REGS,
    LOOP_REG,
    REGISTER_FILE_BYTES,
    S_CODE,
    MemoryWindow,
    SystemProgram,
    encode,
    layout,
    loop_words,
    registers_from_bytes,
    straight_line_groups,
    system_programs,
)
from ..strategies.states import CSR, MachineState, sampled
from . import Counterexample, Property, fmt, register

# the programs' pages (strategies/programs.py) lie in the first 4 MiB and the 128 KiB above it:
# a VMM may back every page of a guest's RAM at its first fault, and pays for each in every
# example (at 8 MiB, a G-stage that did so took 1.75 times the solution's time to grade)
GUEST_RAM = (4 << 20) + (512 << 10)
STEPS = 2000  # the guest's own budget, instructions retired: 99% of those that stop do by 1400
HOST_STEPS = 10 * STEPS  # the host's, where no bare run says how far the guest goes
LONG_STEPS = 50_000  # a compute-bound guest's (efficiency)
CSR_FIELDS = ["sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc", "scause", "stval",
              "satp", "stimecmp"]
MIN_NATIVE_SHARE = 0.95
MAX_ENTRIES = 64  # VMM entries a compute-bound run may need: fills, its SBI calls, time slices


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def host_budget(guest_steps: int) -> int:
    """The host steps a guest of `guest_steps` instructions may take under a VMM: a trap for
    each of them, and a thousand more. A trap is a step that retires nothing; the correct
    designs of tests/designs.py take at most 460 past the guest's own (bench/host_steps.py).
    A VMM that returns to a trapping instruction without doing anything took a trap a step
    until the budget was spent (at 60 times STEPS, as it was, four seconds an example, and
    shrinking one took the test's whole time); the hardware now ends such a loop at its
    hardware.TRAP_LOOP-th trap."""
    return 2 * guest_steps + 1000


def as_request(p: SystemProgram, paging: str) -> dict:
    s = p.state
    return {"segments": [[addr, data.hex()] for addr, data in p.segments],
            "state": {"regs": list(s.regs), "pc": s.pc, "mode": s.mode,
                      "csrs": [list(c) for c in s.csrs]},
            "paging": paging, "memory": GUEST_RAM, "steps": STEPS, "host_steps": HOST_STEPS}


@memo.pure
def run_bare(p: SystemProgram, steps: int = STEPS) -> dict:
    """The program on the bare machine until it stops or has retired `steps` instructions
    (not steps: a trap's entry is a step that retires nothing). On its budget, `horizon` holds
    every state the hart passes through with that many instructions retired: the one right
    after the last of them, then those after each trap entry that follows (an interrupt, an
    exception of the next instruction), and `next_stop` how the machine stops there, if it
    does. A guest under the VMM stopped at the same count must be in one of these states."""
    from machine import Machine
    m = Machine(ram_size=GUEST_RAM)
    for addr, data in p.segments:
        m.write_phys(addr, data)
    p.state.apply(m)
    stop, spent = None, 0
    while m.hart.instret < steps and spent < 4 * steps:
        # a step retires at most one instruction: this never runs past `steps`
        chunk = steps - m.hart.instret
        stop = m.run(chunk)
        spent += chunk
        if stop.reason != "budget":
            break
    reason = stop.reason if stop is not None else "budget"
    h = m.hart
    out = _hart_state(m)
    out.update(stop=reason, console=m.console,
               pages={str(page): data for page, data in m.snapshot().pages},
               horizon=[], next_stop=None)
    if reason == "budget" and h.instret == steps:
        out["horizon"], out["next_stop"] = _horizon(m, out)
    return out


def _hart_state(m: Any) -> dict:
    h = m.hart
    out = {name: int(getattr(h, name)) for name in CSR_FIELDS}
    out.update(pc=h.pc, mode=h.mode, instret=h.instret, time=h.time(), regs=list(h.x))
    return out


def _horizon(m: Any, first: dict) -> tuple[list[dict], str | None]:
    """The states with the same instructions retired as `first`, and how the machine stops
    before it retires another, if it does (an SBI shutdown, a fatal trap)."""
    states, instret = [first], m.hart.instret
    for _ in range(4):  # trap entries in a row: an interrupt, then a fault at the handler
        stop = m.run(1)
        if stop.reason != "budget":
            return states, stop.reason
        if m.hart.instret != instret:
            break
        states.append(_hart_state(m))
    return states, None


def _hart_difference(bare: dict, v: dict) -> tuple[str, Any, Any] | None:
    """The first hart field where the guest's virtual CPU differs from a bare state."""
    checks = [("pc", bare["pc"], v["pc"]), ("privilege mode", bare["mode"], v["mode"]),
              ("instructions retired (instret)", bare["instret"], v["instret"]),
              ("time", bare["time"], v["instret"] + v["idle"])]
    checks += [(f"x{i}", b, g) for i, (b, g) in enumerate(zip(bare["regs"], v["regs"],
                                                               strict=True))]
    checks += [(name, bare[name], v[name]) for name in CSR_FIELDS]
    return next(((n, b, g) for n, b, g in checks if b != g), None)


def compare(bare: dict, got: dict, example: str | Callable[[], str]) -> None:
    """The first observable difference between the bare run and the guest, if any. A bare run
    that ended on its budget is compared in full too: the guest was stopped at the same count
    of retired instructions, in one of the states of the bare run's `horizon`."""
    host = got["host_stop"]["reason"]
    if host == "handler-error":
        raise Counterexample("your VMM raised an exception (the machine stopped with "
                             "handler-error)", example, trim(got["host_stop"]["detail"]))
    stop = (got["stop"] or {}).get("reason", "budget")
    v = got["vcpu"]
    detail = (got["stop"] or {}).get("detail", "")
    candidates = [bare]
    if bare["stop"] == "budget":
        ran = v["instret"]
        if stop != "budget" and (ran < bare["instret"] or ran == bare["instret"]
                                 and stop != bare["next_stop"]):
            raise Counterexample(f"how it stopped: the bare machine was still running after "
                                 f"{bare['instret']} instructions; under your VMM the guest "
                                 f"stopped after {ran} with {fmt(stop)} ({detail})", example)
        if stop != "budget" or not bare["horizon"] or ran != bare["instret"]:
            # it stopped at the horizon as the bare machine does next; or the bare run never
            # reached its count (a trap loop), or the VMM's host budget ran out first: no state
            # to compare with
            return
        candidates, stop = bare["horizon"], "budget"
    console = bytes.fromhex(got["console"])
    for name, b, g in (("how it stopped", bare["stop"], stop),
                       ("console output", bare["console"], console)):
        if b != g:
            why = ""
            if g == "budget":
                why = _still_running(v["instret"], bare["instret"], got["host_stop"])
            raise Counterexample(f"`{name}`: the bare machine ends with {fmt(b)}, the guest "
                                 f"under your VMM with {fmt(g)}{why}", example, detail)
    differences = [_hart_difference(c, v) for c in candidates]
    if all(differences):
        name, b, g = differences[0]
        at = (f" after {bare['instret']} instructions (where the bare run was stopped, and "
              "the guest with it)" if bare["stop"] == "budget" else "")
        raise Counterexample(f"`{name}`: the bare machine ends with {fmt(b)}{at}, the guest "
                             f"under your VMM with {fmt(g)}", example, detail)
    for page in sorted(set(bare["pages"]) | set(got["pages"]), key=int):
        b = bare["pages"].get(page)
        if (digest(b) if b else None) != got["pages"].get(page):
            g = bytes.fromhex(got["full_pages"].get(page, "")) or bytes(4096)
            b = b or bytes(4096)
            off = next(i for i in range(4096) if b[i] != g[i]) if b != g else 0
            addr = 0x8000_0000 + int(page) * 4096 + off
            raise Counterexample(f"guest-physical memory at `{addr:#010x}`: the bare machine "
                                 f"has `{b[off:off + 4].hex()}`, the guest under your VMM "
                                 f"`{g[off:off + 4].hex()}`", example)


def trap_loop(host_stop: dict) -> str:
    """The trap loop that ended a run (hardware.TRAP_LOOP), in a sentence; "" if none did."""
    from machine.traps import cause_name
    if not host_stop.get("loop"):
        return ""
    cause, pc, n = host_stop["loop"]
    return (f"the same trap, {cause_name(cause)} at `{pc:#010x}`, came {n} times in a row with "
            "no instruction retired between. Your VMM resumes the guest at that instruction "
            "without stepping past it or making its trap go away, so it would trap there "
            "forever")


_RAN_OUT = ("which a correct VMM leaves room for: one trap for each instruction the guest "
            "retires, and a thousand more. A VMM that returns to a trapping instruction "
            "without acting on it traps there again and again")


def _still_running(ran: int, stopped: int, host_stop: dict) -> str:
    """Why a guest that ends on the host's budget was still running: a trap loop the
    hardware saw, or steps that ran out."""
    loop = trap_loop(host_stop)
    if loop:
        return f" (after {ran} instructions; the bare machine stopped after {stopped}): {loop}"
    first = f": the host's steps ran out first, {_RAN_OUT}" if ran < stopped else ""
    return f" (still running after {ran} instructions; the bare machine stopped after " \
        f"{stopped}{first})"


def trim(detail: str) -> str:
    """A traceback cut down to the student's files and the exception itself."""
    lines = detail.splitlines()
    keep, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("File ") and "/vmm/" in line:
            keep.append('  File "vmm/' + line.split(os.sep + "vmm" + os.sep, 1)[-1])
            if i + 1 < len(lines) and not lines[i + 1].lstrip().startswith("File "):
                keep.append(lines[i + 1])
                i += 1
        i += 1
    tail = lines[-1:] if lines else []
    return "\n".join(["Traceback (your code, most recent call last):", *keep, *tail])


LISTED = 64  # instructions a report lists: a shrunk program needs far fewer, and an unshrunk
# one (a test out of time) keeps its report short; `vmlab replay` traces what actually ran


def describe_program(p: SystemProgram) -> str:
    from machine.disasm import disassemble
    s = p.state
    entry = s.pc
    words = _code_at(p, entry, LISTED)
    lines = ["```", *_listing(words, disassemble), "```"]
    names = {v: k for k, v in CSR.items()}
    state = ", ".join(f"{names.get(n, hex(n))}=`{v:#x}`" for n, v in s.csrs)
    from machine.trace import ABI
    regs = ", ".join(f"x{i} ({ABI[i]})=`{v:#x}`" for i, v in enumerate(s.regs) if v)
    others = ", ".join(f"`{a:#010x}` ({len(d)} bytes)" for a, d in p.segments)
    where = (" (guest-virtual addresses: the listing follows the program's page table)"
             if p.paging else "")
    return (f"The guest program, from its entry `{entry:#010x}` in virtual S-mode "
            f"(the listing stops at {LISTED} instructions){where}:\n\n" + "\n".join(lines)
            + f"\n\nInitial CSRs: {state}\n\nInitial registers: {regs}\n\n"
            f"Memory loaded at: {others}")


def _code_at(p: SystemProgram, start: int, count: int) -> list[tuple[int, int]]:
    """Up to `count` instruction words from guest-virtual `start`, fetched as the program's
    own hardware would see them: through its page table when it has one (its code pages lie in
    frames elsewhere, in a drawn order), from the loaded segments otherwise. Stops where a
    fetch would fault."""
    from machine import Machine
    from machine.mmu import Permissions
    from machine.traps import Trap
    m = Machine(ram_size=GUEST_RAM)
    for addr, data in p.segments:
        m.write_phys(addr, data)
    satp = dict(p.state.csrs).get(CSR["satp"], 0)
    perms = Permissions(priv=1, sum=False, mxr=False)
    words = []
    for va in range(start, start + 4 * count, 4):
        try:
            pa = m.hart.mmu.walk(va & 0xFFFF_FFFF, 0, satp, perms)
            words.append((va, int.from_bytes(m.read_phys(pa, 4), "little")))
        except (Trap, ValueError):
            break
    return words


def _listing(words: list[tuple[int, int]], disassemble: Any) -> list[str]:
    """One line per instruction, except that a run of the same instruction (the padding a
    shrunk program is mostly made of) takes two lines, so the instructions that matter show."""
    lines, i = [], 0
    while i < len(words):
        addr, word = words[i]
        j = i
        while j + 1 < len(words) and words[j + 1][1] == word:
            j += 1
        lines.append(f"{addr:08x}:  {word:08x}  {disassemble(word, addr)}")
        if j - i >= 2:
            lines.append(f"          ... the same {j - i} more times, to {words[j][0]:08x}")
        elif j > i:
            lines.append(f"{words[j][0]:08x}:  {word:08x}  {disassemble(word, words[j][0])}")
        i = j + 1
    return lines


def programs(storm: bool) -> st.SearchStrategy[SystemProgram]:
    """Whole programs; with `storm`, churns that run a leaking shadow VMM out of memory (see
    worker.VMM_MEMORY): of no use under nested paging, where they cost as much."""
    return system_programs(max_sections=4, ends=("shutdown", "shutdown", "shutdown", "spin"),
                           storm=storm)


def _equivalence(paging: str) -> Any:
    def check(p: SystemProgram, worker: Any) -> None:
        bare = run_bare(p)
        request = as_request(p, paging)
        # the guest's budget, in its own retired instructions: exactly as far as the bare run
        # got (the worker stops it there), or past where the bare machine stopped
        request["steps"] = bare["instret"] + (0 if bare["stop"] == "budget" else 1000)
        request["host_steps"] = host_budget(request["steps"])
        request["exact"] = bare["stop"] == "budget"
        request["expect_pages"] = {k: digest(v) for k, v in bare["pages"].items()}
        got = worker.call("guest", request)
        compare(bare, got, partial(describe_program, p))
    return check


for _paging in ("shadow", "nested"):
    register(Property(
        f"equivalence-{_paging}",
        f"Equivalence ({_paging} paging): a guest behaves exactly as on bare hardware",
        "Popek and Goldberg's equivalence: a program run under the VMM ends in the same state "
        "(how it stopped, console, pc, mode, counters, registers, CSRs, memory) as on the bare "
        "machine. The program is a whole guest: a trap handler, user code entered with sret, "
        "timer interrupts, CSR traffic, SBI calls, faults and, sometimes, Sv32 paging.",
        partial(programs, _paging == "shadow"), _equivalence(_paging), describe_program))


# ----- efficiency ------------------------------------------------------------------------------

@st.composite
def compute_programs(draw: st.DrawFn) -> SystemProgram:
    """A compute-bound guest: a counted loop of arithmetic, loads and stores, then shutdown."""
    window = MemoryWindow(DATA_BASE_REG, -2048, 2048, aligned=True)
    body = layout(draw(straight_line_groups(10, 30, FREE_REGS, range(32), window,
                                            control=False, cheap=True)))
    words = loop_words(LOOP_REG, draw(st.integers(30, 60)), body)
    words += [encode("addi", 17, 0, imm=8), 0x0000_0073]
    code = b"".join(w.to_bytes(4, "little") for w in words)
    regs = registers_from_bytes(draw(REGISTER_FILE_BYTES), {DATA_BASE_REG: DATA_S, LOOP_REG: 0})
    state = MachineState(regs=regs, pc=S_CODE, mode=1, csrs=())
    return SystemProgram(((S_CODE, code),), state, False, frozenset({"compute"}))


COMPUTE_PROGRAMS = compute_programs()
PAGINGS = st.sampled_from(("shadow", "nested"))


@st.composite
def efficiency_examples(draw: st.DrawFn) -> dict:
    return {"program": draw(COMPUTE_PROGRAMS), "paging": draw(PAGINGS)}


def check_efficiency(a: dict, worker: Any) -> None:
    p, paging = a["program"], a["paging"]
    bare = run_bare(p, steps=LONG_STEPS)
    request = as_request(p, paging)
    request.update(steps=LONG_STEPS, host_steps=host_budget(bare["instret"] + 1000))
    got = worker.call("guest", request)
    example = partial(describe_program, p)
    stop = (got["stop"] or {}).get("reason")
    if got["host_stop"]["reason"] == "handler-error":
        raise Counterexample("your VMM raised an exception", example,
                             trim(got["host_stop"]["detail"]))
    if stop != bare["stop"]:
        loop = trap_loop(got["host_stop"])
        raise Counterexample(f"the guest stopped with {fmt(stop)}, on the bare machine with "
                             f"{fmt(bare['stop'])}" + (f": {loop}" if loop else ""), example)
    c = got["counts"]
    retired = got["vcpu"]["instret"]
    share = c["native"] / max(1, retired)
    if share < MIN_NATIVE_SHARE or c["traps"] > MAX_ENTRIES:
        raise Counterexample(
            f"of {retired} instructions the guest retired, {c['native']} ran directly on the "
            f"hardware ({share:.1%}; at least {MIN_NATIVE_SHARE:.0%} must), and the VMM was "
            f"entered {c['traps']} times ({paging} paging; at most {MAX_ENTRIES} for this "
            f"compute-bound guest). A VMM that interprets the guest, or that flushes and "
            f"refills its tables when it need not, is not a VMM the lecture would run.", example)


register(Property(
    "efficiency", "Efficiency: compute-bound guests run directly on the hardware",
    "Popek and Goldberg's efficiency: most instructions run natively, and the VMM is entered "
    "only for what it must handle (privileged instructions, hidden faults, SBI calls).",
    efficiency_examples, check_efficiency,
    lambda a: f"Under {a['paging']} paging:\n\n" + describe_program(a["program"])))


# ----- isolation -------------------------------------------------------------------------------

ATTACK_STEPS = 2000  # the attacker's bare run: past it, most attackers only spin
# the bystander, idle or a rival, takes half of the host's steps, the attacker's traps some
# of the rest: a correct VMM gives the attacker 2800 instructions or more
ISOLATION_HOST_STEPS = 6_000
MIN_ATTACK_RUN = 1000  # of the bare run's ATTACK_STEPS
# pages no generated program loads: RAM's first, one in the middle of the megapage that paging
# programs map, and its last bytes
SECRET_HOMES = (0x8000_0000, 0x8020_0000, 0x8000_0000 + GUEST_RAM - 16)
# without storms: the VMM of an isolation test has memory to spare (storms only cost time)
ATTACKERS = system_programs(max_sections=4, storm=False)
RIVALS = st.none() | system_programs(max_sections=3, storm=False)
SEEDS = st.binary(max_size=8)


@st.composite
def attacks(draw: st.DrawFn) -> dict:
    """An attacker beside a second guest: one that idles, or one that attacks too."""
    p = draw(ATTACKERS)
    rival = draw(RIVALS)
    # hashed, so that shrinking cannot make a secret all zeros (which any memory holds)
    seed = draw(SEEDS)
    home = draw(sampled(SECRET_HOMES))
    # an idle bystander may keep its secret beside its own code, in the page where the
    # attacker's code is: a VMM that mixes up the two guests' pages shows it at once
    theirs = home if rival is not None else draw(sampled((0x8040_0100, home)))
    return {"program": p, "rival": rival,
            "paging": draw(PAGINGS), "second_paging": draw(PAGINGS),
            "secrets": {"attacker": [home, _secret(seed, "attacker")],
                        "bystander": [theirs, _secret(seed, "bystander")]}}


def _secret(seed: bytes, whose: str) -> str:
    return hashlib.sha256(seed + whose.encode()).digest()[:16].hex()


def _with_secret(p: SystemProgram, secret: list) -> SystemProgram:
    at, data = secret
    return SystemProgram(((*p.segments, (at, bytes.fromhex(data)))), p.state, p.paging,
                         p.features)


def check_isolation(a: dict, worker: Any) -> None:
    # the attacker's secret is part of its memory, on the bare machine as under the VMM
    p = _with_secret(a["program"], a["secrets"]["attacker"])
    request = as_request(p, a["paging"])
    rival = a["rival"] and as_request(a["rival"], a["paging"])
    request.update(bystander_paging=a["second_paging"],
                   rival=rival and {"segments": rival["segments"], "state": rival["state"]},
                   secrets=a["secrets"], host_steps=ISOLATION_HOST_STEPS)
    bare = run_bare(p, steps=ATTACK_STEPS)
    request["expect_pages"] = {k: digest(v) for k, v in bare["pages"].items()}
    got = worker.call("isolation", request)
    example = partial(describe_attack, a)
    if got["host_stop"]["reason"] == "handler-error":
        raise Counterexample("your VMM crashed: an exception escaped it while the attacker ran",
                             example, trim(got["host_stop"]["detail"]))
    if got["foreign_writes"]:
        frame, owner, writer, how = got["foreign_writes"][0]
        what = ("the hardware wrote it while the " + writer + " ran" if how == "hardware" else
                "your VMM wrote it while handling a trap of the " + writer)
        raise Counterexample(f"the host page at `{frame:#010x}` belongs to {_owner(owner)}, "
                             f"and {what}: a guest reached memory outside its own frames",
                             example)
    if got["leaks"]:
        whose, where = got["leaks"][0]
        raise Counterexample(f"the {whose}'s secret appeared in the {where}'s memory or "
                             "console", example)
    if a["rival"] is None:
        if got["bystander_changed"]:
            page = 0x8000_0000 + got["bystander_changed"][0] * 4096
            raise Counterexample(f"the bystander's guest-physical page `{page:#010x}` changed",
                                 example)
        if got["bystander_stop"] is not None:
            raise Counterexample(f"the bystander stopped ({got['bystander_stop']['reason']}): "
                                 "the attacker disturbed another guest", example)
    for name in ("attacker", "bystander"):
        stop = (got[f"{name}_stop"] or {}).get("reason")
        if stop in ("handler-error", "vmm-error"):
            raise Counterexample(f"the {name} stopped with {stop}: the VMM failed on it",
                                 example, (got[f"{name}_stop"] or {}).get("detail", ""))
    # a VMM that runs nothing breaches nothing: the attacker must have run as far as on the
    # bare machine (it shares the hart with the second guest, yet it gets the host steps)
    ran, needed = got["attacker_instret"], min(bare["instret"], MIN_ATTACK_RUN)
    if ran < needed:
        loop = trap_loop(got["host_stop"])
        raise Counterexample(
            f"the attacker retired only {ran} instructions under your VMM; on the bare "
            f"machine it retired {bare['instret']}"
            + (f" before it stopped ({bare['stop']})" if bare["stop"] != "budget" else "")
            + f": isolation counts only a guest that runs (at least {needed} instructions "
            "here), and a VMM that runs nothing breaches nothing"
            + (f". It stopped in a loop: {loop}" if loop else ""), example)
    stop = (got["attacker_stop"] or {}).get("reason")
    if bare["stop"] != "budget" and stop is not None:
        for page in sorted(set(bare["pages"]) | set(got["pages"]), key=int):
            b = bare["pages"].get(page)
            if (digest(b) if b else None) != got["pages"].get(page):
                raise Counterexample(
                    f"the attacker's guest-physical page `{0x8000_0000 + int(page) * 4096:#x}` "
                    "differs from the bare run: its writes went somewhere its hardware would "
                    "not have put them", example)


def _owner(owner: str) -> str:
    return {"vmm": "the VMM", "none": "no one (free host memory)"}.get(owner, "the " + owner)


def describe_attack(a: dict) -> str:
    (mine, _), (theirs, _) = a["secrets"]["attacker"], a["secrets"]["bystander"]
    text = (f"The attacker runs under {a['paging']} paging with a secret at `{mine:#x}`, "
            f"beside a second guest under {a['second_paging']} paging holding a secret at "
            f"`{theirs:#x}`.\n\n"
            + describe_program(_with_secret(a["program"], a["secrets"]["attacker"])))
    if a["rival"] is None:
        return text + "\n\nThe second guest idles (`j .`)."
    return text + "\n\nThe second guest attacks too:\n\n" + describe_program(a["rival"])


register(Property(
    "isolation", "Isolation: a hostile guest cannot reach anything but its own memory",
    "Resource control: whatever a guest runs (random code, page tables that point anywhere, "
    "SBI calls with wild pointers), it reads and writes only its own frames, even with a "
    "second guest attacking it at the same time; neither guest's secret reaches the other, "
    "the VMM and the host stay as they were, and the VMM keeps running.",
    attacks, check_isolation, describe_attack))
