"""Popek and Goldberg's equivalence, for the solution's VMM: a program from a state gives the same
observable result on the bare machine and as a guest (shadow and nested paging)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import Machine, Program, Segment, csr
from machine.snapshot import CSR_FIELDS
from vmlab import worker
from vmlab.strategies import programs as pr
from vmlab.strategies.programs import SystemProgram, system_programs
from vmm import VMM
from vmm.vcpu import VirtualCPU

GUEST_RAM = 32 << 20
STEPS = 20_000
GUEST_CSRS = [n for n in CSR_FIELDS if hasattr(VirtualCPU(), n)]


def observe_bare(p: SystemProgram) -> dict:
    m = Machine(ram_size=GUEST_RAM)
    for addr, data in p.segments:
        m.write_phys(addr, data)
    p.state.apply(m)
    stop = m.run(STEPS)
    h = m.hart
    pages = {page: data for page, data in m.snapshot().pages}
    return {"stop": stop.reason, "regs": list(h.x), "pc": h.pc, "mode": h.mode,
            "csrs": {n: getattr(h, n) for n in GUEST_CSRS}, "time": h.time(),
            "instret": h.instret, "console": m.console, "memory": pages}


def observe_guest(p: SystemProgram, paging: str) -> dict:
    v = VMM()
    prog = Program([Segment(a, d) for a, d in p.segments], entry=p.state.pc)
    g = v.create_guest(prog, memory=GUEST_RAM, paging=paging)
    p.state.apply(g.vcpu)
    # the guest's own budget, as the bare run's: the host also spends steps on traps, but a
    # host step retires at most one guest instruction, so running as many as the guest has
    # left never takes it past STEPS (a guest that ends a few instructions later stops too)
    spent = 0
    while g.stop is None and g.vcpu.instret < STEPS and spent < STEPS * 50:
        chunk = STEPS - g.vcpu.instret
        spent += chunk
        if v.run(chunk).reason != "budget":
            break
    c = g.vcpu
    return {"stop": g.stop.reason if g.stop else "budget", "regs": list(c.x), "pc": c.pc,
            "mode": c.mode, "csrs": {n: getattr(c, n) for n in GUEST_CSRS}, "time": c.time(),
            "instret": c.instret, "console": bytes(g.console), "memory": g.mem.pages()}


def first_difference(bare: dict, guest: dict) -> str | None:
    for key in ("stop", "console", "pc", "mode", "instret", "time"):
        if bare[key] != guest[key]:
            return f"{key}: bare {bare[key]!r} != guest {guest[key]!r}"
    for i, (a, b) in enumerate(zip(bare["regs"], guest["regs"], strict=True)):
        if a != b:
            return f"x{i}: bare {a:#x} != guest {b:#x}"
    for name in GUEST_CSRS:
        if bare["csrs"][name] != guest["csrs"][name]:
            return f"{name}: bare {bare['csrs'][name]:#x} != guest {guest['csrs'][name]:#x}"
    if bare["memory"] != guest["memory"]:
        pages = sorted(set(bare["memory"]) ^ set(guest["memory"])) or [
            p for p in bare["memory"] if bare["memory"][p] != guest["memory"].get(p)]
        return f"guest-physical memory differs, first at page {0x80000000 + pages[0] * 4096:#x}"
    return None


@pytest.mark.parametrize("paging", ["shadow", "nested"])
@settings(max_examples=60)
@given(p=system_programs())
def test_guest_behaves_as_on_bare_hardware(p: SystemProgram, paging: str) -> None:
    bare = observe_bare(p)
    if bare["stop"] == "budget":
        # a program that runs forever: the guest must not stop either
        assert observe_guest(p, paging)["stop"] == "budget"
        return
    guest = observe_guest(p, paging)
    assert first_difference(bare, guest) is None, first_difference(bare, guest)


def test_satp_field_names_are_the_machines() -> None:
    # the comparison covers every supervisor CSR the guest can see
    assert {"sstatus", "sie", "stvec", "sepc", "scause", "stval", "satp", "stimecmp"} <= set(
        GUEST_CSRS)
    assert csr.SATP in csr.NUMBERS


# ----- churns: what they must reach -------------------------------------------------------------

DATA_PAGES = st.sampled_from((pr.DATA_U, pr.DATA_S))


@given(page=DATA_PAGES, bits=st.integers(0, (1 << 64) - 1))
def test_a_churns_second_pte_is_composed_otherwise(page: int, bits: int) -> None:
    """A fill that remembers what it composed for one of a churn's two PTEs is wrong for the
    other: the other frame, or the same frame with stores allowed where the first forbids them
    (or the reverse), or a first PTE that does not fill at all."""
    first, rest = pr._data_pte(page, bits)
    changed = pr._changed_pte(page, first, rest)
    flags = changed & 0x3FF
    assert flags & pr.PTE_V and flags & pr.PTE_R and bool(flags & pr.PTE_U) == (page == pr.DATA_U)
    frame = changed >> 10 << 12
    assert frame in (pr.DATA_U, pr.DATA_S)  # RAM, below 4 GiB: it fills
    loads = first >> 30 == 0 and first & (pr.PTE_V | pr.PTE_R | pr.PTE_A) == (
        pr.PTE_V | pr.PTE_R | pr.PTE_A)  # in RAM, and loads may use it
    assert (not loads or frame != first >> 10 << 12
            or _stores(first) != _stores(changed)), (hex(first), hex(changed))


def _stores(pte: int) -> bool:
    return pte & pr.RW_AD == pr.RW_AD


def churn_program(bits: int, data_u: int, data_s: int) -> SystemProgram:
    """A churn (churn_words, with its storm) at the start of a paging program that then shuts
    down, with the data pages' permissions given."""
    setting = pr.Setting(True, "shutdown", 0, None, (0, 1, 2, 3), data_u | pr.PTE_U, data_s, 0,
                         5, 0, 0, (1 << 64) - 1, 0, 0, 0, None)
    words = pr.churn_words(bits) + [pr.encode("addi", 17, 0, imm=8), pr.FIXED["ecall"]]
    code = [pr.CODE_FRAMES + 0x1000 * f for f in range(pr.CODE_PAGES)]
    segments = [(code[0], pr._words_bytes(words)),
                (pr.HANDLER, pr._words_bytes(pr.handler_words(None))),
                *pr._page_table(setting, code)]
    regs = tuple(pr.DATA_S if i == pr.DATA_BASE_REG else 0 for i in range(32))
    csrs = ((pr.CSR["stvec"], pr.HANDLER), (pr.CSR["satp"], 1 << 31 | 5 << 22 | pr.PT_ROOT >> 12))
    return SystemProgram(tuple(segments), pr.MachineState(regs, pr.S_CODE, 1, csrs), True,
                         frozenset({"churn"}))


@settings(max_examples=10)
@given(bits=st.integers(0, (1 << 64) - 1), data_u=st.sampled_from(pr.DATA_FLAGS),
       data_s=st.sampled_from(pr.DATA_FLAGS))
def test_a_churn_flushes_more_often_than_a_leaking_vmm_has_frames(bits: int, data_u: int,
                                                                 data_s: int) -> None:
    """Every flush of a shadow that leaks a table a flush (and uses one, its code's) takes a
    frame of the grader's VMM memory for good: one churn takes them all."""
    p = churn_program(bits, data_u, data_s)
    assert observe_bare(p)["stop"] == "shutdown"
    v = VMM()
    g = v.create_guest(Program([Segment(a, d) for a, d in p.segments], entry=p.state.pc),
                       memory=GUEST_RAM, paging="shadow")
    p.state.apply(g.vcpu)
    v.run(100_000)
    assert g.stop is not None and g.stop.reason == "shutdown", g.stop
    frames = worker.VMM_MEMORY // 4096 - 16  # past the host's boot data
    assert g.shadow.flushes > frames, g.shadow.flushes
