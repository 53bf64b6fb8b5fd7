"""Popek and Goldberg's equivalence, for the solution's VMM: a program from a state gives the same
observable result on the bare machine and as a guest (shadow and nested paging)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from machine import Machine, Program, Segment, csr
from machine.snapshot import CSR_FIELDS
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
