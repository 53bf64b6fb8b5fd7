"""The fast path (compiled blocks) gives exactly the reference interpreter's results.

Generated S/U programs (vmlab.strategies.programs.system_programs: loops, loads and stores,
stores into their own code, traps of every kind, CSR instructions, SBI calls, U-mode calls
through sret, a timer every few hundred instructions, Sv32 paging) run for the same number of
steps on Machine(fast=False) and Machine(fast=True), the latter also in different chunkings of
`run(n)` and one `step()` at a time, and also from drawn initial states (any mode, CSRs,
pending timer); every snapshot must be equal, and so must the step counts and the way the run
stopped. A last test checks that the generated programs really do all of that.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from machine import Machine, Program, Segment, TrapEvent
from vmlab.strategies.programs import (
    CODE_FRAMES,
    DATA_BASE_REG,
    HANDLER,
    RESUME_REG,
    S_CODE,
    WILD_LINK_REG,
    SystemProgram,
    system_programs,
)
from vmlab.strategies.states import CSR, machine_states

RAM_SIZE = 16 << 20


def boot(case: SystemProgram, fast: bool) -> Machine:
    m = Machine(RAM_SIZE, fast=fast)
    m.load(Program([Segment(a, d) for a, d in case.segments], case.state.pc))
    case.state.apply(m)
    return m


def same(a: Machine, b: Machine, what: str) -> None:
    sa, sb = a.snapshot(), b.snapshot()
    assert sa == sb, f"{what}: " + "; ".join(sa.diff(sb)[:8])
    assert a.steps == b.steps, f"{what}: {a.steps} steps != {b.steps}"
    assert a.stopped == b.stopped, f"{what}: stopped {a.stopped} != {b.stopped}"


def chunked(case: SystemProgram, sizes: list[int]) -> Machine:
    m = boot(case, fast=True)
    for n in sizes:
        m.run(n)
    return m


@settings(max_examples=120)
@given(case=system_programs(), tenth=st.integers(20, 120),
       chunking=st.sampled_from(("tenths", "cuts", "steps")),
       cuts=st.lists(st.integers(1, 200), min_size=1, max_size=12))
def test_fast_path_equals_interpreter(case, tenth, chunking, cuts):
    """run(n) on both; then on the fast path one of: 10 x run(n / 10), run() in drawn chunks,
    or n x step()."""
    n = 10 * tenth
    reference = boot(case, fast=False)
    reference.run(n)
    fast = boot(case, fast=True)
    fast.run(n)
    same(reference, fast, f"run({n})")
    if chunking == "tenths":
        same(reference, chunked(case, [tenth] * 10), f"10 x run({tenth})")
    elif chunking == "cuts":
        sizes: list[int] = []
        for c in cuts:
            if sum(sizes) + c >= n:
                break
            sizes.append(c)
        sizes.append(n - sum(sizes))
        same(reference, chunked(case, sizes), f"run() in chunks {sizes}")
    else:
        stepped = boot(case, fast=True)
        for _ in range(n):
            stepped.step()
        same(reference, stepped, f"{n} x step()")


@settings(max_examples=40)
@given(case=system_programs(paging=True), n=st.integers(200, 1500))
def test_fast_path_equals_interpreter_with_paging(case, n):
    reference = boot(case, fast=False)
    reference.run(n)
    fast = boot(case, fast=True)
    fast.run(n)
    same(reference, fast, f"run({n})")
    same(reference, chunked(case, [n // 3, n // 3, n - 2 * (n // 3)]), "3 chunks")


@settings(max_examples=40)
@given(case=system_programs(), data=st.data(), n=st.integers(100, 800))
def test_fast_path_equals_interpreter_from_any_state(case, data, n):
    """The same programs started from a drawn state: any mode, sstatus, sie, scounteren,
    sepc/scause/stval, a timer already pending or far away, other register values."""
    fixed = {r: case.state.regs[r] for r in (DATA_BASE_REG, RESUME_REG, WILD_LINK_REG)}
    satp = dict(case.state.csrs).get(CSR["satp"], 0)
    drawn = data.draw(machine_states(pc=case.state.pc, fixed_regs=fixed, stvec=HANDLER,
                                     satp=satp))
    case = dataclasses.replace(case, state=drawn)
    reference = boot(case, fast=False)
    reference.run(n)
    fast = boot(case, fast=True)
    fast.run(n)
    same(reference, fast, f"run({n}) from {drawn}")
    same(reference, chunked(case, [n // 2, n - n // 2]), "2 chunks")


WANTED = ("cause 0x0", "cause 0x1", "cause 0x2", "cause 0x3", "cause 0x4", "cause 0x5",
          "cause 0x6", "cause 0x7", "cause 0x8", "cause 0xc", "cause 0xd", "cause 0xf",
          "cause 0x80000005", "from U", "paging", "loop", "long", "ucall", "code patched",
          "console", "stop shutdown", "stop budget")


class _AllSeen(Exception):
    pass


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_generated_programs_exercise_the_machine():
    """Generated programs take every kind of trap the generator aims at, enter U-mode, take
    timer interrupts, page with Sv32, and execute patched code: the equality properties above
    are only as good as the programs they run. (Draws programs until all were seen, at most
    400.)"""
    seen: Counter[str] = Counter()

    @settings(max_examples=400, database=None, phases=[Phase.generate])
    @given(case=system_programs())
    def run(case):
        m = boot(case, fast=True)
        events: list[TrapEvent] = []
        m.add_trap_observer(events.append)
        code = m.read_phys(CODE_FRAMES, 0x4000) + m.read_phys(S_CODE, 0x6000)
        stop = m.run(1500)
        found = {f"stop {stop.reason}"} | {f"cause {e.cause:#x}" for e in events}
        found |= {"from U" for e in events if e.mode == 0}
        found |= {"paging"} if case.paging else set()
        found |= case.features
        if m.read_phys(CODE_FRAMES, 0x4000) + m.read_phys(S_CODE, 0x6000) != code:
            found.add("code patched")
        if m.console:
            found.add("console")
        seen.update(found)
        if all(seen[w] for w in WANTED):
            raise _AllSeen

    try:
        run()
    except _AllSeen:
        return
    missing = [w for w in WANTED if not seen[w]]
    raise AssertionError(f"never seen in 400 programs: {missing} (seen: {dict(seen)})")
