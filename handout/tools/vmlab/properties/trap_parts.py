"""Part 1, trap and emulate, one property per student part.

Each handler is given one trap or one instruction from a generated virtual-CPU state, and must
leave the virtual CPU exactly as the bare machine leaves its real hart after the same trap or
instruction (Popek and Goldberg's equivalence, one instruction at a time). The handlers are
called directly, with the other parts out of the way, so that each part is graded on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import strategies as st

from ..strategies.programs import CSR_OPS, FIXED, encode
from ..strategies.sources import RecordSource, Source
from ..strategies.states import (
    CSR,
    SSTATUS_MXR,
    SSTATUS_SUM,
    STIE,
    csr_settings_from,
    register_values_from,
    sampled,
)
from . import Counterexample, Property, first_difference, fmt, register

M32 = 0xFFFF_FFFF
S, U = 1, 0
PC = 0x8040_0000
TRAP_PC = 0x8040_0000  # where probe_dispatch's traps are taken (worker.py)
STVEC = 0x8040_3000
FIELDS = ["mode", "pc", "sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc", "scause",
          "stval", "satp", "stimecmp", "instret", "idle"]

CAUSE_NAMES = {0: "instruction address misaligned", 1: "instruction access fault",
               2: "illegal instruction", 3: "breakpoint", 4: "load address misaligned",
               5: "load access fault", 6: "store address misaligned", 7: "store access fault",
               8: "environment call from U-mode", 12: "instruction page fault",
               13: "load page fault", 15: "store page fault",
               20: "instruction guest-page fault", 21: "load guest-page fault",
               23: "store guest-page fault", (1 << 31) | 5: "supervisor timer interrupt"}
# the supervisor CSRs a guest kernel may touch, the counters, and some it may not (M-mode,
# a nonexistent one); the hypervisor CSRs are left out: the VMM does not virtualize them
EMULATED_CSRS = (0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143, 0x144, 0x14D, 0x15D,
                 0x180, 0xC00, 0xC01, 0xC02, 0xC80, 0xC81, 0xC82, 0x300, 0x305, 0x5C0, 0x7C0)
# LAB.md: the hypervisor CSRs and hfence are not virtualized: illegal for the guest, although
# its bare hardware (which has the H extension) runs them in S-mode
HYPERVISOR_CSRS = (0x600, 0x643, 0x64A, 0x680, 0x200, 0x280)
HFENCES = (0x2200_0073, 0x6200_0073, 0x22B5_0073)  # hfence.vvma, hfence.gvma, vvma a0, a1
USED_REGS = (1, 5, 10, 11, 12, 31)
TRANSLATION_CSRS = (0x100, 0x180)  # sstatus (SUM, MXR) and satp: the shadows depend on them
SUM_MXR = SSTATUS_SUM | SSTATUS_MXR  # the sstatus bits the shadows depend on
SSTATUS_OPERANDS = (1 << 18, 1 << 19, 3 << 18, (3 << 18) | 0x122, 0xFFFF_FFFF)
# Sv32 satp values (ASID 0, 1, 511) whose roots lie in the bare machine's RAM, their PPNs
# pairwise incomparable, so that csrrw, csrrs and csrrc from one to another all switch the root
# without touching MODE: a context switch, which a VMM that watches only MODE misses
SV32 = 1 << 31
SATP_ROOTS = (SV32 | 0x80101, SV32 | 1 << 22 | 0x80202, SV32 | 0x1FF << 22 | 0x80414,
              SV32 | 0x80528)
SATP_SWITCHES = tuple((a, b) for a in SATP_ROOTS for b in SATP_ROOTS if a != b)
MEGAPAGE_RWX = 0xCF  # V R W X A D: a megapage the guest kernel may fetch from
COUNTER_CSRS = (0xC00, 0xC01, 0xC02, 0xC80, 0xC81, 0xC82)


# ----- the bare machine, one instruction or trap ------------------------------------------------

def bare_machine(state: dict) -> Any:
    from machine import Machine
    m = Machine(ram_size=8 << 20)
    h = m.hart
    for num, value in state["csrs"]:
        m.set_csr(num, value)
    for i, value in enumerate(state["regs"]):
        m.set_reg(i, value)
    m.set_mode(state["mode"])
    m.pc = state["pc"]
    for name, value in state.get("fields", {}).items():
        setattr(h, name, value)
    h.update_irq()
    _map_pc(m, state)
    return m


def _map_pc(m: Any, state: dict) -> None:
    """With paging on, the root maps the pc's megapage onto itself, so that the bare machine
    fetches the instruction where it was written."""
    satp = next((v for num, v in state["csrs"] if num == CSR["satp"]), 0)
    if satp & SV32:
        pc = state["pc"]
        root = (satp & 0x3F_FFFF) << 12
        pte = (pc >> 22 << 20) | MEGAPAGE_RWX
        m.write_phys(root + 4 * (pc >> 22), pte.to_bytes(4, "little"))


def without_interrupts(m: Any) -> Any:
    """The handlers are given an instruction or a trap, never a pending interrupt (that is the
    monitor's business, before it calls them): the bare machine must not take one either."""
    m.hart.irq_deadline = 1 << 64
    return m


def hart_state(m: Any) -> dict:
    h = m.hart
    out = {name: int(getattr(h, name)) for name in FIELDS}
    out["pc"] = h.pc
    out["regs"] = list(h.x)
    out["trap_entry"] = bool(h.trap_entry)
    return out


def compare_cpu(expected: dict, actual: dict, example: str | Callable[[], str],
                trap_entry: bool = True) -> None:
    """The virtual CPU against the bare hart: FIELDS, then `trap_entry` (a trap was just taken
    and nothing retired since: reflect sets it, a retired instruction clears it; not for a
    handler that is not given the whole instruction, such as emulate_sret), then registers."""
    diff = first_difference(expected, actual, FIELDS + ["trap_entry"] * trap_entry)
    if diff is None:
        for i, (e, a) in enumerate(zip(expected["regs"], actual["regs"], strict=True)):
            if e != a:
                diff = f"`x{i}`: expected {fmt(e)}, your VMM gave {fmt(a)}"
                break
    if diff is not None:
        raise Counterexample(diff, example)


def step_bare(state: dict, bits: int) -> tuple[Any, tuple[int, int] | None, Any]:
    """Run one instruction on the bare machine: (machine, the trap it took or None, Stop)."""
    m = without_interrupts(bare_machine(state))
    m.write_phys(state["pc"], bits.to_bytes(4, "little"))
    taken: list = []
    m.add_trap_observer(lambda e: taken.append((e.cause, e.tval)))
    stop = m.step()
    return m, (taken[0] if taken else None), stop


# ----- strategies ---------------------------------------------------------------------------------

def vcpu_state_from(src: Source, modes: tuple[int, ...] = (S, U),
                    pcs: tuple[int, ...] = (PC,)) -> dict:
    """A virtual CPU: registers, the supervisor CSRs, a mode, a pc, its clock."""
    now, instret, idle = src.integer(0, 5000), src.choice(_INSTRETS), src.choice(_IDLES)
    mode, pc = src.choice(modes), src.choice(pcs)
    csrs = csr_settings_from(src, stvec=STVEC, now=now)
    regs = [0] * 32
    # the operands the generated instructions and SBI calls read
    for i, value in zip(USED_REGS, register_values_from(src, len(USED_REGS)), strict=True):
        regs[i] = value
    return {"regs": regs, "mode": mode, "pc": pc, "csrs": [list(c) for c in csrs],
            "fields": {"instret": instret, "idle": idle}}


_INSTRETS = (0, 1, 1000, 0xFFFF_FFFF, 1 << 32)
_IDLES = (0, 7, 5000)


def csr_instructions(csrs: tuple[int, ...]) -> st.SearchStrategy[int]:
    return st.builds(lambda op, rd, rs1, num: encode(op, rd, rs1, imm=num),
                     st.sampled_from(sorted(CSR_OPS)), st.integers(0, 31),
                     st.sampled_from((0, 0, 1, 5, 31)), st.sampled_from(csrs))


def csr_swaps(csrs: tuple[int, ...]) -> st.SearchStrategy[int]:
    """A CSR instruction whose destination is also its source, as in the stack swap every trap
    handler starts with (`csrrw sp, sscratch, sp`): the old value must be read before the
    register is."""
    return st.builds(lambda op, r, num: encode(op, r, r, imm=num),
                     st.sampled_from(("csrrw", "csrrs", "csrrc")), st.sampled_from(USED_REGS),
                     st.sampled_from(csrs))


def not_virtualized(bits: int) -> bool:
    """A hypervisor CSR access or an hfence: illegal for a guest (LAB.md), whatever its bare
    hardware does with it."""
    return (bits & 0x7F == 0x73 and (bits >> 12) & 7 not in (0, 4)
            and bits >> 20 in HYPERVISOR_CSRS) or bits & 0xFE00_7FFF in (0x2200_0073,
                                                                        0x6200_0073)


def describe_state(state: dict) -> str:
    """The virtual CPU by name, in hex: the fields that are not zero, one a row, then the
    names of those that are."""
    rows = [f"| mode | {'S' if state['mode'] else 'U'} (virtual) |",
            f"| pc | `{state['pc']:#010x}` |"]
    names = {v: k for k, v in CSR.items()}
    zero = []
    fields = [(names.get(num, hex(num)), value) for num, value in state["csrs"]]
    for name, value in fields + list(state.get("fields", {}).items()):
        if isinstance(value, bool):
            rows.append(f"| {name} | {value} |")
        elif value:
            rows.append(f"| {name} | `{value:#x}` |")
        else:
            zero.append(name)
    if zero:
        rows.append(f"| zero | {', '.join(zero)} |")
    from machine.trace import ABI
    regs = ", ".join(f"x{i} ({ABI[i]})=`{v:#x}`" for i, v in enumerate(state["regs"]) if v)
    return ("| field | value |\n| --- | --- |\n" + "\n".join(rows)
            + f"\n\nregisters: {regs or 'all zero'}")


def disassemble(bits: int) -> str:
    try:
        from machine.disasm import disassemble
        return disassemble(bits, PC)
    except Exception:  # noqa: BLE001 - a listing is a courtesy; the word itself is shown
        return f".word {bits:#010x}"


# ----- trap-dispatch -------------------------------------------------------------------------

# illegal instructions three times: they have the most routes (emulate, counter read, reflect)
DISPATCH_CAUSES = (0, 1, 2, 2, 2, 3, 4, 5, 6, 7, 8, 12, 13, 15, 20, 21, 23)
PRIVILEGED = st.one_of(csr_instructions(EMULATED_CSRS),
                       st.sampled_from((FIXED["sret"], FIXED["wfi"], 0x1200_0073)),
                       csr_instructions(HYPERVISOR_CSRS), st.sampled_from(HFENCES))
# A counter read's destination: x0 often (a read that discards its value is still a read)
COUNTER_RDS = (0, 0, 0, 1, 5, 10, 31)
# from user mode, half of them counter reads: the one kind its kernel may allow, so the one a
# VMM may not reflect without asking emulate_counter_read
COUNTER_READS = st.builds(lambda op, rd, num: encode(op, rd, 0, imm=num),
                          st.sampled_from(("csrrs", "csrrc", "csrrsi", "csrrci")),
                          st.sampled_from(COUNTER_RDS), st.sampled_from(COUNTER_CSRS))
USER_PRIVILEGED = st.one_of(COUNTER_READS, PRIVILEGED)
# the guest kernel's scounteren: all counters allowed, one, two, or none
SCOUNTERENS = (7, 7, 0, 1, 2, 4, 3, 5, 6)


_RAISES = st.sampled_from((None, None, [2, 0x3020_0073], [13, 0x1234_5678]))


@st.composite
def dispatch_examples(draw: st.DrawFn) -> dict:
    paging = draw(sampled(("shadow", "nested")))
    cause = draw(sampled(tuple(c for c in DISPATCH_CAUSES
                                       if paging == "nested" or c < 20)))
    vmode = draw(sampled((S, U)))
    # stval as the hardware writes it: the instruction, 0 for an ecall, the pc for ebreak
    tval = draw(PRIVILEGED if vmode == S else USER_PRIVILEGED) if cause == 2 else 0 \
        if cause == 8 else TRAP_PC if cause == 3 else draw(st.integers(0, M32))
    a = {"paging": paging, "cause": cause, "tval": tval, "vmode": vmode,
         "scounteren": draw(sampled(SCOUNTERENS)),
         "gpa": draw(st.integers(0, (1 << 34) - 1)) if cause >= 20 else 0}
    # the handler the table routes it to raises GuestFault instead of running (a hypercall
    # never does: the SBI answers all; reflect is where a fault goes, not where it comes from)
    raiser = routes(a)[0][0]
    raises = None if raiser in ("hypercall", "reflect") else draw(_RAISES)
    return {**a, "raiser": raiser if raises else None, "raises": raises}


def routes(a: dict) -> list[list]:
    """The calls `handle` may make first, by LAB.md's table (section 3): [name, its integer
    arguments]. The table's own route comes first."""
    cause, tval, vmode = a["cause"], a["tval"], a["vmode"]
    access = {12: 0, 13: 1, 15: 2, 20: 0, 21: 1, 23: 2}
    reflected = ["reflect", [cause, tval]]
    if cause == 8 and vmode == S:
        return [["hypercall", []]]
    if cause == 2 and vmode == S:
        # an instruction the guest's hardware refuses in S-mode whatever its CSRs: reflected at
        # once, it gets what emulate would only have raised
        return [["emulate", [tval]]] + ([reflected] if illegal_whatever_the_state(
            tval, S) or not_virtualized(tval) else [])
    if cause == 2:
        # LAB.md: a counter read the guest kernel's scounteren allows goes to
        # emulate_counter_read; anything else is reflected, at once or by its GuestFault
        allowed = not illegal_in(tval, U, a.get("scounteren", 0))
        return [["emulate_counter_read", [tval]]] + ([] if allowed else [reflected])
    if cause in (12, 13, 15) and a["paging"] == "shadow":
        return [["hidden_fault", [tval, access[cause]]]]
    if cause in (20, 21, 23):
        return [["guest_page_fault", [tval, a["gpa"], access[cause]]]]
    return [reflected]


def illegal_whatever_the_state(bits: int, mode: int) -> bool:
    """The guest's hardware refuses `bits` in `mode` even with every counter enabled (the one
    thing its kernel's CSRs decide for an instruction here)."""
    return illegal_in(bits, mode, M32)


def illegal_in(bits: int, mode: int, scounteren: int) -> bool:
    """The guest's hardware refuses `bits` in `mode` with that scounteren."""
    state = {"csrs": [[CSR["scounteren"], scounteren]], "regs": [0] * 32, "mode": mode,
             "pc": PC}
    _, trap, _ = step_bare(state, bits)
    return trap is not None and trap[0] == 2


def _show(calls: list) -> str:
    return " then ".join(f"`{c[0]}({', '.join(hex(x) for x in c[1])})`" for c in calls) \
        or "nothing"


def check_dispatch(a: dict, worker: Any) -> None:
    got = worker.call("dispatch", a)
    calls, raised = got["calls"], got.get("raised")
    example = partial(describe_dispatch, a, got.get("injected", True))
    firsts = routes(a)
    escaped = f" (`handle` raised {raised[0]}: {raised[1]})" if raised else ""
    if not calls or calls[0][:2] not in firsts:
        raise Counterexample(f"the trap went to {_show(calls[:2])}{escaped}; it should go to "
                             + " or ".join(_show([f]) for f in firsts), example)
    first, outcome, rest = calls[0], calls[0][2], calls[1:]
    for call in calls:
        if call[2][0] == "misplaced":
            raise Counterexample(
                f"`handle` called `{call[0]}` with its arguments out of order: {call[2][1]}. "
                f"Pass them as its signature says, `{SIGNATURES[call[0]]}`", example)
    for call in calls:
        if call[2][0] == "error" and runs_alone(a, call, worker):
            raise Counterexample(
                f"`{call[0]}` raised {call[2][1]} when `handle` called it, yet runs when called "
                f"on its own as its signature says, `{ALONE[call[0]][2]}`: does `handle` pass "
                "it those, in that order?", example)
    if outcome[0] == "error":
        return  # the handler failed (another part, not written yet?): the route is all there is
    if first[0] == "reflect" or outcome == ["returned"]:
        if rest:
            raise Counterexample(f"`{first[0]}` did the work and returned, yet `handle` went "
                                 f"on to {_show(rest)}", example)
        if raised:
            raise Counterexample(f"`{first[0]}` returned, yet `handle` raised {raised[0]}: "
                                 f"{raised[1]}", example)
    elif outcome[0] == "fault":
        want = ["reflect", outcome[1:]]
        if [c[:2] for c in rest] != [want]:
            raise Counterexample(
                f"`{first[0]}` raised `GuestFault({outcome[1]}, {outcome[2]:#x})`: the fault is "
                f"the guest's, and `handle` must reflect it, {_show([want])}; it went on to "
                f"{_show(rest)}{escaped}", example)


# the handlers a probe of their own can call alone: the probe, their integer parameters and
# their signature
ALONE = {"hypercall": ("hypercall", (), "hypercall(vmm, guest)"),
         "emulate": ("emulate", ("bits",), "emulate(vmm, guest, bits)"),
         "emulate_counter_read": ("counter_read", ("bits",), "emulate_counter_read(guest, bits)"),
         "reflect": ("reflect", ("cause", "tval"), "reflect(vmm, guest, cause, tval)")}
# every handler `handle` may call, as its signature says
SIGNATURES = {**{name: signature for name, (_, _, signature) in ALONE.items()},
              "hidden_fault": "vmm.hidden_fault(guest, va, access)",
              "guest_page_fault": "vmm.guest_page_fault(guest, va, gpa, access)"}


def runs_alone(a: dict, call: list, worker: Any) -> bool:
    """Whether handler `call`, which raised under `handle`, runs without an exception when its
    own probe calls it on the same virtual CPU with the same integers: then the exception came
    from how `handle` called it, not from another part. (emulate counts only when it reaches
    none of the VMM's hooks, which under `handle` run other parts' code.)"""
    from ..sandbox import StudentError
    if call[0] not in ALONE or len(call[1]) != len(ALONE[call[0]][1]):
        return False
    probe, names, _ = ALONE[call[0]]
    state = {"regs": [0] * 32, "mode": a["vmode"], "pc": TRAP_PC, "fields": {},
             "csrs": [[CSR["scounteren"], a.get("scounteren", 0)]]}
    args = {"state": state, "memory": [], **dict(zip(names, call[1], strict=True))}
    try:
        got = worker.call(probe, args)
    except StudentError:
        return False
    return not got.get("calls")


def describe_dispatch(a: dict, injected: bool = True) -> str:
    text = (f"A trap with cause {a['cause']} ({CAUSE_NAMES[a['cause']]}), stval "
            f"`{a['tval']:#010x}`, taken while the guest ran in virtual "
            f"{'S' if a['vmode'] else 'U'}-mode under {a['paging']} paging; the guest "
            f"kernel's scounteren is `{a.get('scounteren', 0):#x}`")
    if a["cause"] == 2:
        text += f"; the instruction is `{disassemble(a['tval'])}`"
    if a["raises"] and injected:
        text += (f". `{a['raiser']}` raises `GuestFault({a['raises'][0]}, "
                 f"{a['raises'][1]:#x})` here instead of running")
    return text + ". The handlers are the real ones: which ran is seen from their side."


register(Property(
    "trap-dispatch", "Trap dispatch: every trap goes where LAB.md's table says",
    "Trap and emulate: the VMM sees every trap the guest causes and must decide whether to "
    "emulate it (a privileged instruction of the guest kernel), serve it (an SBI call), handle "
    "it for itself (a hidden page fault) or reflect it into the guest kernel.",
    dispatch_examples, check_dispatch, describe_dispatch))


# ----- reflect -----------------------------------------------------------------------------------

# pcs with bit 2 set and clear (sepc is the pc as it is: IALIGN is 32), and the vector itself
REFLECT_PCS = (PC, PC + 0x14, STVEC, STVEC)


@st.composite
def reflect_examples(draw: st.DrawFn) -> dict:
    # the state from records (sources.py): two dozen draws cost more than the test
    state = vcpu_state_from(RecordSource(draw), pcs=REFLECT_PCS)
    # fetch faults twice as often: at stvec right after a trap they are fatal
    cause = draw(sampled((0, 1, 12) + tuple(c for c in CAUSE_NAMES if c < 20 or c > 23)))
    state["fields"]["trap_entry"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        # a fetch fault at the vector itself, right after a trap: fatal on the bare machine, and
        # too rare among the combinations above to leave to chance
        cause = draw(sampled((0, 1, 12)))
        state["pc"], state["fields"]["trap_entry"] = STVEC, True
    return {"state": state, "cause": cause,
            "tval": 0 if cause >> 31 else draw(st.integers(0, M32))}


def check_reflect(a: dict, worker: Any) -> None:
    from machine.hart import Halt
    from machine.traps import Trap
    m = bare_machine(a["state"])
    h = m.hart
    h.trap_entry = a["state"]["fields"]["trap_entry"]
    fatal = None
    try:
        if a["cause"] >> 31:
            h.take_trap(a["cause"], 0)
        else:
            h._trap(Trap(a["cause"], a["tval"]), h.pc)
    except Halt as halt:
        fatal = halt.reason
    got = worker.call("reflect", a)
    example = partial(describe_reflect, a)
    stop = (got.get("stop") or {}).get("reason")
    if stop != fatal:
        raise Counterexample(f"how the guest stopped: expected {fmt(fatal)}, your VMM "
                             f"gave {fmt(stop)}", example)
    # a fatal trap is never taken: the bare hart stops as it was, and so must the guest
    compare_cpu(hart_state(m), got["vcpu"], example)


def describe_reflect(a: dict) -> str:
    return (f"`reflect(cause={a['cause']:#x} ({CAUSE_NAMES[a['cause']]}), "
            f"tval={a['tval']:#010x})` from this virtual CPU (trap_entry="
            f"{a['state']['fields']['trap_entry']}):\n\n{describe_state(a['state'])}")


register(Property(
    "reflect", "Reflect: a trap enters the guest kernel exactly as on its hardware",
    "Trap and emulate: a trap that belongs to the guest is delivered as the guest's own "
    "hardware would deliver it (sepc, scause, stval, SPP, SPIE, SIE, then S-mode at stvec), "
    "so the guest kernel cannot tell it runs on a VMM.",
    reflect_examples, check_reflect, describe_reflect))


# ----- emulate, counter-read ----------------------------------------------------------------

def csr_reads(csrs: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Pure reads (csrrs/csrrc with x0 or a zero immediate), which the hardware allows even of a
    read-only CSR."""
    return st.builds(lambda op, rd, num: encode(op, rd, 0, imm=num),
                     st.sampled_from(("csrrs", "csrrc", "csrrsi", "csrrci")), st.integers(0, 31),
                     st.sampled_from(csrs))


def sstatus_writes() -> st.SearchStrategy[int]:
    """csrrw/csrrs/csrrc of sstatus from a register (see SSTATUS_OPERANDS for its value)."""
    return st.builds(lambda op, rd, rs1: encode(op, rd, rs1, imm=0x100),
                     st.sampled_from(("csrrw", "csrrs", "csrrc")), st.integers(0, 31),
                     st.sampled_from((1, 5, 31)))


def sfences() -> st.SearchStrategy[int]:
    return st.builds(lambda r1, r2: encode("sfence.vma", 0, r1, r2), st.integers(0, 31),
                     st.integers(0, 31))


WFI_FOR_EVER = FIXED["wfi"] | 1 << 32  # a kind of its own: wfi, with nothing that can wake it
SWAP_CSRS = (0x140, 0x140, 0x100, 0x105, 0x141, 0x143, 0x106, 0x180)  # all writable


def satp_writes() -> st.SearchStrategy[int]:
    """Writes of satp, from a register (see SATP_ROOTS for its value) or an immediate."""
    return st.builds(lambda op, rd, rs1: encode(op, rd, rs1, imm=CSR["satp"]),
                     st.sampled_from(("csrrw", "csrrs", "csrrc", "csrrsi", "csrrci")),
                     st.sampled_from((0, *USED_REGS)), st.sampled_from((1, 5, 31)))

# The kind of instruction is the first choice, so that hypothesis varies it most; each kind a
# bug could hide in has at least a tenth of the examples (hypothesis runs each fresh example with
# a few mutations of it, so there are fewer independent draws than examples).
EMULATED_INSTRUCTIONS = st.one_of(
    csr_instructions(EMULATED_CSRS), csr_instructions(EMULATED_CSRS),
    csr_instructions(TRANSLATION_CSRS), sstatus_writes(), sstatus_writes(),
    satp_writes(), satp_writes(), satp_writes(),
    csr_instructions(COUNTER_CSRS), csr_reads(EMULATED_CSRS),
    csr_reads(COUNTER_CSRS),  # a plain read of a read-only CSR: allowed
    sfences(), sfences(),
    st.sampled_from((FIXED["mret"], 0x7B20_0073, 0x0000_0000, 0xFFFF_FFFF)),  # mret, dret
    # routed to sret-wfi's helpers: sret, a wfi that wakes and one that cannot (emulate_examples)
    st.just(FIXED["sret"]), st.just(FIXED["wfi"]), st.just(WFI_FOR_EVER),
    csr_swaps(SWAP_CSRS), csr_swaps(SWAP_CSRS),
    csr_reads(HYPERVISOR_CSRS), csr_instructions(HYPERVISOR_CSRS),
    st.sampled_from(HFENCES))


@st.composite
def emulate_examples(draw: st.DrawFn) -> dict:
    bits = draw(EMULATED_INSTRUCTIONS)
    for_ever, bits = bits == WFI_FOR_EVER, bits & M32
    state = vcpu_state_from(RecordSource(draw), modes=(S,))
    rs1, funct3 = (bits >> 15) & 31, (bits >> 12) & 7
    if bits & 0x7F == 0x73 and funct3 in (1, 2, 3) and rs1 and draw(st.integers(0, 3)) == 0:
        bits = bits & ~(31 << 7) | rs1 << 7  # the destination is the source: a swap (a kind of
        # its own too, but a few fresh draws a seed can miss a kind entirely)
    if bits >> 20 == 0x100 and rs1 and funct3 in (1, 2, 3):
        # a register operand that flips SUM or MXR: random values rarely reach bits 18 and 19
        state["regs"][rs1] = draw(sampled(SSTATUS_OPERANDS))
        if funct3 != 1:  # csrrs and csrrc change only what is not already so
            _sum_mxr_before(state, set_=funct3 == 3)
    if bits == FIXED["wfi"]:  # its timer: ahead, or nothing that can wake it
        _wfi_wakes(state, 0 if for_ever else draw(st.integers(1, 700)))
    if bits >> 20 == CSR["satp"] and rs1 and draw(st.integers(0, 3)):
        _switch_root(state, *draw(sampled(SATP_SWITCHES)), funct3, rs1)
    # right after a reflected trap, as the first instruction of a trap handler often is
    state["fields"]["trap_entry"] = draw(st.booleans())
    return {"state": state, "bits": bits}


def _switch_root(state: dict, old: int, new: int, funct3: int, rs1: int) -> None:
    """Paging on at root `old`; a register operand that takes satp to `new` (csrrw), or sets
    (csrrs) or clears (csrrc) the bits in which the two differ. (An immediate sets or clears
    the low bits of the PPN: another root too.)"""
    state["csrs"] = [[num, old if num == CSR["satp"] else value]
                     for num, value in state["csrs"]]
    operand = {1: new, 2: new & ~old, 3: old & ~new}.get(funct3)
    if operand is not None:
        state["regs"][rs1] = operand


def _sum_mxr_before(state: dict, set_: bool) -> None:
    entry = next((c for c in state["csrs"] if c[0] == CSR["sstatus"]), None)
    if entry is None:
        entry = [CSR["sstatus"], 0]
        state["csrs"].append(entry)
    entry[1] = entry[1] | SUM_MXR if set_ else entry[1] & ~SUM_MXR


def _emulation(a: dict, got: dict) -> None:
    """What the handler did to the virtual CPU (`got`) against the bare machine."""
    m, trap, stop = step_bare(a["state"], a["bits"])
    if not_virtualized(a["bits"]):
        trap = (2, a["bits"])  # the guest's hardware has no H extension (LAB.md)
    example = partial(describe_instruction, a)
    if trap is not None:
        if got["fault"] != [trap[0], trap[1]]:
            want = f"GuestFault({trap[0]}, {trap[1]:#x})"
            raise Counterexample(f"the guest's hardware traps here ({want}, "
                                 f"{CAUSE_NAMES.get(trap[0], trap[0])}); your VMM "
                                 + (f"raised GuestFault{tuple(got['fault'])}" if got["fault"]
                                    else "did not raise it"), example)
        return
    if got["fault"] is not None:
        raise Counterexample(f"your VMM raised GuestFault{tuple(got['fault'])}, but the "
                             "guest's hardware runs this instruction without a trap", example)
    their, want = (got.get("stop") or {}).get("reason"), stop.reason if stop else None
    if their != want:  # a wfi that nothing can wake
        raise Counterexample(f"how the guest stopped: expected {fmt(want)}, your VMM gave "
                             f"{fmt(their)}", example)
    compare_cpu(hart_state(m), got["vcpu"], example)


# emulate hands these to sret-wfi's helpers, another part: emulate is judged on the route
HELPERS = {FIXED["sret"]: "sret", FIXED["wfi"]: "wfi"}


def check_emulate(a: dict, worker: Any) -> None:
    from ..sandbox import StudentError
    helper = HELPERS.get(a["bits"])
    try:
        got = worker.call("emulate", a)
    except StudentError:
        if helper and _alone(a, helper, worker) is None:
            return  # the helper fails on its own too (a stub?): emulate's route is unseen
        raise
    try:
        _emulation(a, got)
    except Counterexample:
        # not the bare machine's sret or wfi: still right if it is the student's own helper's
        # (another part, graded on its own), retired as emulate must
        if helper is None or _retired(a, helper, _alone(a, helper, worker)) != _ending(got):
            raise
        return
    if got["fault"] is not None:
        return
    called = {name for name, _ in got["calls"]}
    bits = a["bits"]
    if bits & 0xFE00_7FFF == 0x1200_0073 and "guest_sfence" not in called:
        raise Counterexample("`sfence.vma` did not call `vmm.guest_sfence`: the shadow tables "
                             "keep translations the guest just fenced", describe_instruction(a))
    before = bare_machine(a["state"]).hart
    after = got["vcpu"]
    if (before.satp != after["satp"] or (before.sstatus ^ after["sstatus"]) & SUM_MXR) and \
            "guest_translation_changed" not in called:
        raise Counterexample("the guest changed satp, SUM or MXR and "
                             "`vmm.guest_translation_changed` was not called: its shadow "
                             "tables now translate for the old setting", describe_instruction(a))


def _alone(a: dict, helper: str, worker: Any) -> dict | None:
    """The student's sret or wfi helper run by its own probe from the same virtual CPU; None
    if it raised."""
    from ..sandbox import StudentError
    try:
        return worker.call(helper, {"state": a["state"]})
    except StudentError:
        return None


def _retired(a: dict, helper: str, alone: dict | None) -> tuple | None:
    """How emulate must leave the guest after that helper: as the helper left it, then
    retired (wfi moves past itself, sret has jumped), unless the helper stopped the guest."""
    if alone is None or alone.get("fault") is not None:
        return None
    v = dict(alone["vcpu"])
    if not alone.get("stop"):
        v.update(instret=v["instret"] + 1, trap_entry=False,
                 pc=(v["pc"] + 4 * (helper == "wfi")) & M32)
    return _ending({**alone, "vcpu": v})


def _ending(got: dict) -> tuple:
    return (got.get("fault"), (got.get("stop") or {}).get("reason"),
            sorted(got["vcpu"].items()))


def describe_instruction(a: dict) -> str:
    return (f"The guest executes `{disassemble(a['bits'])}` (`{a['bits']:#010x}`) at "
            f"`{a['state']['pc']:#010x}`, from this virtual CPU:\n\n{describe_state(a['state'])}")


register(Property(
    "emulate", "Emulate: the guest kernel's privileged instructions act on its virtual CPU",
    "Trap and emulate: the guest kernel runs in user mode, so each privileged instruction "
    "traps; the VMM applies it to the virtual CPU with the hardware's own rules (access checks, "
    "WARL fields), advances the pc and counts it as retired.",
    emulate_examples, check_emulate, describe_instruction))


COUNTER_INSTRUCTIONS = st.one_of(
    COUNTER_READS, COUNTER_READS,  # plain reads, into x0 too: what scounteren may allow
    csr_instructions(COUNTER_CSRS), csr_instructions(COUNTER_CSRS),
    csr_instructions((0x100, 0x141, 0x180, 0x300, *HYPERVISOR_CSRS)),
    st.sampled_from((FIXED["sret"], FIXED["wfi"], 0xFFFF_FFFF)))


@st.composite
def counter_examples(draw: st.DrawFn) -> dict:
    bits = draw(COUNTER_INSTRUCTIONS)
    state = vcpu_state_from(RecordSource(draw), modes=(U,))
    if draw(st.integers(0, 3)):
        # the guest kernel allows this counter (random scounteren values allow one in two)
        bit = 1 << ((bits >> 20) & 0x1F) if bits >> 20 in COUNTER_CSRS else 7
        state["csrs"] = [[num, value | bit if num == CSR["scounteren"] else value]
                         for num, value in state["csrs"]]
    state["fields"]["trap_entry"] = draw(st.booleans())
    return {"state": state, "bits": bits}


def check_counter(a: dict, worker: Any) -> None:
    _emulation(a, worker.call("counter_read", a))


register(Property(
    "counter-read", "Counter reads: a guest process reads the guest's clock, if allowed",
    "Trap and emulate: the real counters belong to the VMM, so a guest process's counter read "
    "traps; the VMM answers with the guest's own clock when the guest kernel's scounteren "
    "allows it, and reflects an illegal instruction otherwise.",
    counter_examples, check_counter, describe_instruction))


# ----- sret and wfi ------------------------------------------------------------------------------

@st.composite
def sret_wfi_examples(draw: st.DrawFn) -> dict:
    state = vcpu_state_from(RecordSource(draw), modes=(S,))
    kind = draw(sampled(("sret", "wfi")))
    if kind == "wfi" and draw(st.booleans()):
        _timer_ahead(state, draw(st.integers(1, 700)))
    return {"state": state, "kind": kind}


def _wfi_wakes(state: dict, ticks: int) -> None:
    """A wfi that the timer wakes `ticks` from now; or (0) one that nothing can wake, which
    stops the guest on the wfi."""
    if ticks:
        _timer_ahead(state, ticks)
    else:
        state["csrs"] = [[num, 0 if num == CSR["sie"] else value] for num, value in state["csrs"]]


def _timer_ahead(state: dict, ticks: int) -> None:
    """A timer that can wake the guest, `ticks` ahead of its clock: where wfi must skip time
    forward (random CSRs rarely line the two up)."""
    fields = state["fields"]
    wake = fields["instret"] + fields["idle"] + ticks
    timer = {CSR["sie"]: STIE, CSR["stimecmp"]: wake & M32, CSR["stimecmph"]: wake >> 32}
    state["csrs"] = [[num, timer.get(num, value)] for num, value in state["csrs"]]


def check_sret_wfi(a: dict, worker: Any) -> None:
    from machine.hart import Halt
    example = partial(describe_sret_wfi, a)
    if a["kind"] == "sret":
        m = bare_machine(a["state"])
        m.hart.sret()
        got = worker.call("sret", a)
        compare_cpu(hart_state(m), got["vcpu"], example, trap_entry=False)
        return
    m = bare_machine(a["state"])
    h = m.hart
    before = h.idle
    stop = None
    try:
        from machine import execute
        from machine.decode import decode
        execute.wfi(h, decode(FIXED["wfi"]), h.pc, FIXED["wfi"])
    except Halt as halt:
        stop = halt.reason
    got = worker.call("wfi", a)
    their = (got.get("stop") or {}).get("reason")
    if their != stop:
        raise Counterexample(f"how the guest stopped: expected {fmt(stop)}, your VMM gave "
                             f"{fmt(their)}", example)
    if stop is None and got["vcpu"]["idle"] != h.idle:
        raise Counterexample(f"the guest's time after `wfi`: expected idle {fmt(h.idle)} (it "
                             f"skips {h.idle - before} ticks to its timer), your VMM gave "
                             f"{fmt(got['vcpu']['idle'])}", example)


def describe_sret_wfi(a: dict) -> str:
    call = "emulate_sret(vcpu)" if a["kind"] == "sret" else "emulate_wfi(vmm, guest)"
    return f"`{call}` from this virtual CPU:\n\n{describe_state(a['state'])}"


register(Property(
    "sret-wfi", "sret and wfi on the virtual CPU",
    "Trap and emulate: `sret` returns to the mode in SPP at sepc and restores SIE from SPIE; "
    "`wfi` lets the guest's clock skip to its timer, or stops a guest that nothing can wake, "
    "as its hardware would.",
    sret_wfi_examples, check_sret_wfi, describe_sret_wfi))


# ----- hypercall ---------------------------------------------------------------------------------

EXT_IPC = 0x08495043
IPC_ANSWERS = ("blocked", "blocked", "blocked", "bad-buffer", (0, 0), (0, 17), (-1, 0), (-3, 0),
               (-4, 0))
# 0x05, 0x09 and 0x0F: legacy extensions the firmware lacks (a0 = -2, a1 left alone), the
# second the first past the legacy calls' names, the third the last legacy one before BASE
EXTENSIONS = (0x10, 0x54494D45, 0x53525354, 0x4442434E, 0x01, 0x02, 0x08, 0x05, 0x09, 0x0F,
              0x4A, 0x7FFF_FFFF)
BUFFER = 0x8060_0000


# Which call, drawn first and in one choice: hypothesis varies its first choices the most, and
# a rare combination drawn piecemeal (an IPC send, answered "blocked") can be missed entirely
SBI_CALLS = tuple((eid, fid) for eid in EXTENSIONS for fid in (0, 0, 1, 2, 3, 4, 5, 6, 7))
IPC_CALLS = tuple((EXT_IPC, fid, answer) for fid in (0, 1) for answer in IPC_ANSWERS) + (
    (EXT_IPC, 2, (0, 0)), (EXT_IPC, 0xFFFF_FFFF, (0, 0)))
# Of 150 examples only some 20 are fresh (hypothesis runs each with a few mutations that keep
# its call): a call that must wait, a legacy call that returns (putchar, set_timer) and one that
# stops the guest (shutdown, system reset) come up more often, so that no seed misses them all.
IPC_WAITS = tuple(c for c in IPC_CALLS if c[2] == "blocked")
LEGACY_RETURNS = tuple(c for c in SBI_CALLS if c[0] in (0x01, 0x02))
STOPS = tuple(c for c in SBI_CALLS if c[0] == 0x08 or c == (0x53525354, 0))
# and extensions in the legacy range past the named calls (0x09, 0x0F): answered a0 alone
LEGACY_GAPS = tuple(c for c in SBI_CALLS if c[0] in (0x09, 0x0F))
CALLS = SBI_CALLS + LEGACY_RETURNS + STOPS * 3 + LEGACY_GAPS + IPC_CALLS * 2 + IPC_WAITS * 3


@st.composite
def hypercall_examples(draw: st.DrawFn) -> dict:
    call = draw(sampled(CALLS))
    state = vcpu_state_from(RecordSource(draw), modes=(S,))
    regs = state["regs"]
    eid, fid = call[:2]
    regs[17], regs[16] = eid, fid
    example: dict = {"state": state, "memory": []}
    if eid == EXT_IPC:  # the lab's IPC extension
        regs[10] = draw(st.integers(0, 7))
        regs[11] = draw(sampled((BUFFER, 0x8000_0000, 0x1000, 0xFFFF_FFF0)))
        regs[12] = draw(sampled((0, 4, 256, 257)))
        example["ipc_answer"] = call[2]
        return example
    if eid == 0x10 and regs[16] == 3:  # probe: ask about an extension
        regs[10] = draw(sampled((*EXTENSIONS, EXT_IPC ^ 1)))
    if eid == 0x53525354:
        regs[10] = draw(sampled((0, 1, 2, 3, 0xF000_0000)))
        regs[11] = draw(sampled((0, 1, 2, 0xE000_0000)))
    text = draw(st.binary(min_size=0, max_size=24))
    if eid == 0x4442434E:
        regs[10] = draw(sampled((len(text), 0, 4096, 0xFFFF_FFFF)))
        regs[11] = draw(sampled((BUFFER, BUFFER, 0x8080_0000 - 4, 0x1000, 0xFFFF_FFF0)))
        regs[12] = draw(sampled((0, 0, 1)))
    example["memory"] = [[BUFFER, text.hex()]] if text else []
    return example


def check_hypercall(a: dict, worker: Any) -> None:
    if "ipc_answer" in a:
        check_ipc_hypercall(a, worker)
        return
    state = a["state"]
    m = without_interrupts(bare_machine(state))
    for gpa, data in a["memory"]:
        m.write_phys(gpa, bytes.fromhex(data))
    m.write_phys(state["pc"], FIXED["ecall"].to_bytes(4, "little"))
    stop = m.step()
    got = worker.call("hypercall", a)
    example = partial(describe_hypercall, a)
    if got["fault"] is not None:
        raise Counterexample(f"your VMM raised GuestFault{tuple(got['fault'])}; the SBI "
                             "answers every call", example)
    their = (got.get("stop") or {}).get("reason")
    want = stop.reason if stop is not None else None
    if their != want:
        raise Counterexample(f"how the guest stopped: expected {fmt(want)}, your VMM gave "
                             f"{fmt(their)}", example)
    console = bytes.fromhex(got["console"])
    if console != m.console:
        raise Counterexample(f"console output: expected {m.console!r}, your VMM gave "
                             f"{console!r}", example)
    # a call that stops the guest never returns to it: a0, a1, pc and instret stay, as on the
    # bare machine, whose firmware stops it before answering
    h = m.hart
    expected = {"a0": h.x[10], "a1": h.x[11], "pc": h.pc, "stimecmp": h.stimecmp,
                "instret": h.instret}  # the ecall retires, as the firmware counts it
    actual = {"a0": got["vcpu"]["regs"][10], "a1": got["vcpu"]["regs"][11],
              "pc": got["vcpu"]["pc"], "stimecmp": got["vcpu"]["stimecmp"],
              "instret": got["vcpu"]["instret"]}
    diff = first_difference(expected, actual, ["a0", "a1", "pc", "stimecmp", "instret"])
    if diff:
        raise Counterexample(diff, example)


def check_ipc_hypercall(a: dict, worker: Any) -> None:
    """The IPC extension, against a stand-in for vmm.channels that gives a scripted answer:
    the call reaches channels with the guest's arguments, and its answer reaches the guest (a
    result in a0/a1 past the ecall; a wait that leaves the pc on the ecall, so that the woken
    guest makes the call again; a bad buffer that stops the guest)."""
    from machine.sbi import ERR_NOT_SUPPORTED
    state, answer = a["state"], a["ipc_answer"]
    r, pc = state["regs"], state["pc"]
    got = worker.call("hypercall", a)
    example = partial(describe_hypercall, a)
    if got["fault"] is not None:
        raise Counterexample(f"your VMM raised GuestFault{tuple(got['fault'])}; the SBI "
                             "answers every call", example)
    v, stop = got["vcpu"], (got.get("stop") or {}).get("reason")
    fid, instret = r[16], state["fields"]["instret"]
    if fid not in (0, 1):
        expected: dict = {"channels called": [], "a0": ERR_NOT_SUPPORTED & M32, "pc": pc + 4,
                          "instret": instret + 1, "stopped": None}
    else:
        expected = {"channels called": [[fid, r[10], r[11], r[12]]], "stopped": None,
                    "blocked": answer == "blocked"}
        if answer == "bad-buffer":  # killed: never returned to, nothing retired
            expected = {"channels called": expected["channels called"], "stopped": "killed",
                        "pc": pc, "a0": r[10], "a1": r[11], "instret": instret}
        elif answer == "blocked":  # nothing moves, nothing retires: the woken guest retries
            expected.update(pc=pc, a0=r[10], a1=r[11], instret=instret)
        else:
            expected.update(pc=pc + 4, a0=answer[0] & M32, a1=answer[1] & M32,
                            instret=instret + 1)
    actual = {"channels called": got.get("ipc_calls"), "stopped": stop,
              "blocked": got.get("blocked"), "pc": v["pc"], "a0": v["regs"][10],
              "a1": v["regs"][11], "instret": v["instret"]}
    diff = first_difference(expected, actual, list(expected))
    if diff:
        raise Counterexample(diff, example)


def describe_hypercall(a: dict) -> str:
    r = a["state"]["regs"]
    mem = "".join(f"\n\nguest memory at `{gpa:#x}`: `{data}`" for gpa, data in a["memory"])
    ipc = ""
    if "ipc_answer" in a:
        ipc = (f"\n\nThis is the lab's IPC extension; `vmm.channels` is replaced by a stand-in "
               f"whose send and receive answer {_ipc_answer(a['ipc_answer'])}.")
    return (f"The guest kernel executes `ecall` with a7=`{r[17]:#x}` a6=`{r[16]:#x}` "
            f"a0=`{r[10]:#x}` a1=`{r[11]:#x}` a2=`{r[12]:#x}`.{mem}{ipc}")


def _ipc_answer(answer: Any) -> str:
    if answer == "blocked":
        return "`BLOCKED` (the caller must wait)"
    if answer == "bad-buffer":
        return "by raising `BadBuffer`"
    return f"`({answer[0]}, {answer[1]})`"


register(Property(
    "hypercall", "Hypercalls: the guest kernel's SBI calls, answered as the firmware would",
    "Trap and emulate: the guest kernel's `ecall` asks the layer below it for a service; the "
    "VMM plays the SBI firmware for it, with the same results, errors and side effects.",
    hypercall_examples, check_hypercall, describe_hypercall))
