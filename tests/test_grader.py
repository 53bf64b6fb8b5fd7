"""The grader end to end: the solution earns full marks, the handout zero on every part, every
hand-written buggy VMM loses the points of its part (and only those), a crashing or hanging
submission costs only its examples, the rubric's errors name file, line and field, and every
results.json validates against the schema."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import buggy_vmms
import pytest
from buggy_vmms import BUGS, Bug
from vmlab.answers import SHAPES
from vmlab.errors import UsageError
from vmlab.grade import grade_lab
from vmlab.gradescope import validate_results
from vmlab.handout import strip_source
from vmlab.rubric import load as load_rubric
from vmlab.sandbox import WorkerFailure, check_shape
from vmlab.submission import assemble

REPO = Path(__file__).resolve().parents[1]
HANDOUT = REPO / "handout"
SOLUTION = REPO / "solution"
RUBRIC = load_rubric()
UNIT_PARTS = [p for p in RUBRIC.parts if p != "whole-guests"]


def grade(tmp_path: Path, submission: Path, tests: list, rubric=RUBRIC) -> dict:
    lab, _, _ = assemble(submission, HANDOUT, rubric.editable, into=tmp_path / "lab")
    results = grade_lab(lab, rubric, tests, tmp_path / "results.json")
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == results
    validate_results(on_disk)
    return results


def scores(results: dict) -> dict[str, tuple[float, float]]:
    out = {}
    for t in results["tests"]:
        test_id = t["name"].rsplit("[", 1)[-1].rstrip("]")
        out[test_id] = (t["score"], t["max_score"])
    return out


def visible(parts: list[str]) -> list:
    return [t for t in RUBRIC.tests if t.visible and t.part in parts]


def buggy_submission(tmp_path: Path, bug: Bug) -> Path:
    return buggy_vmms.buggy_submission(tmp_path / "submission", SOLUTION, RUBRIC.editable, bug)


def edited_submission(tmp_path: Path, file: str, edits: list[tuple[str, str]]) -> Path:
    return buggy_vmms.edited_submission(tmp_path / "submission", SOLUTION, RUBRIC.editable, file,
                                        edits)


# ----- the rubric -------------------------------------------------------------------------------

def test_every_part_has_a_visible_and_a_hidden_test_of_500_examples() -> None:
    for part in RUBRIC.parts:
        tests = [t for t in RUBRIC.tests if t.part == part]
        assert any(t.visible for t in tests), part
        assert any(not t.visible and t.examples >= 500 for t in tests), part
    assert {t.seed for t in RUBRIC.tests if t.visible}.isdisjoint(
        {t.seed for t in RUBRIC.tests if not t.visible})


@pytest.mark.parametrize("edit, field", [
    (('weight = 4\n', 'weight = "four"\n'), "tests[0].weight"),
    (('visibility = "visible"\n', 'visibility = "secret"\n'), "tests[0].visibility"),
    (('part = "trap-dispatch"\n', 'part = "trap-dispach"\n'), "tests[0].part"),
    (('time_limit = 540', 'time_limt = 540'), "lab"),
    (('shrink_examples = 200', 'shrink_examples = 0'), "lab.shrink_examples"),
])
def test_a_bad_rubric_is_named_by_file_line_and_field(tmp_path: Path, edit, field) -> None:
    text = RUBRIC.path.read_text()
    assert edit[0] in text
    bad = tmp_path / "rubric.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(UsageError) as e:
        load_rubric(bad)
    message = str(e.value)
    assert str(bad) in message and field in message and "line " in message, message
    line = int(message.split("line ")[1].split(",")[0])
    assert edit[1].split("=")[0].strip() in bad.read_text().splitlines()[line - 1] or \
        field == "lab", message


# ----- the solution and the handout -------------------------------------------------------------

def test_the_solution_earns_full_marks_on_the_visible_tests(tmp_path: Path) -> None:
    results = grade(tmp_path, SOLUTION, [t for t in RUBRIC.tests if t.visible])
    lost = {k: v for k, v in scores(results).items() if v[0] != v[1]}
    assert not lost, {k: [t["output"] for t in results["tests"] if k in t["name"]] for k in lost}
    assert len(results["tests"]) == sum(t.visible for t in RUBRIC.tests)


def test_the_untouched_handout_scores_zero_on_every_part(tmp_path: Path) -> None:
    # hidden tests too, in one worker: each stub's NotImplementedError keeps a VMM (and its
    # RAM) in a cycle until a collection, and a new machine once found no address space left
    # (the hidden nested test said "your code raised OSError")
    results = grade(tmp_path, HANDOUT, RUBRIC.tests)
    s = scores(results)
    assert len(s) == len(RUBRIC.tests)
    assert all(score == 0 and top > 0 for score, top in s.values()), s
    for t in results["tests"]:
        assert "not written yet" in t["output"], t["output"]


def only_part_done(tmp_path: Path, part: str) -> Path:
    """A submission with one part written (the solution's) and every other part a stub, as
    the handout has it: the solution with that part's markers taken out, then stripped."""
    sub = tmp_path / "submission"
    for name in RUBRIC.editable:
        kept, inside = [], False
        for line in (SOLUTION / name).read_text().splitlines(keepends=True):
            marker = line.strip()
            if marker == f"# BEGIN STUDENT PART {part}":
                inside = True
            elif inside and marker == "# END STUDENT PART":
                inside = False
            else:
                kept.append(line)
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_bytes(strip_source("".join(kept).encode(), name))
    return sub


@pytest.mark.parametrize("part", UNIT_PARTS)
def test_a_part_done_alone_earns_its_points_and_only_its_own(tmp_path: Path, part: str) -> None:
    results = grade(tmp_path, only_part_done(tmp_path, part), visible(UNIT_PARTS))
    by_part = {t.id: t.part for t in RUBRIC.tests}
    s = scores(results)
    assert {by_part[k] for k, (score, _) in s.items() if score > 0} == {part}, s
    assert all(score == top for k, (score, top) in s.items() if by_part[k] == part), s


# ----- buggy VMMs ---------------------------------------------------------------------------------

# Bugs the part's own property does not reach yet (documented gaps, not hidden ones): a strict
# xfail fails the day a property starts catching one, so the list stays true.
GAPS: dict[str, str] = {}  # bug name -> why no property catches it (none at present)


@pytest.mark.parametrize("bug", [
    pytest.param(b, marks=pytest.mark.xfail(strict=True, reason=GAPS[b.name]))
    if b.name in GAPS else b for b in BUGS], ids=[b.name for b in BUGS])
def test_a_buggy_vmm_loses_the_points_of_its_part_and_only_those(tmp_path: Path,
                                                                 bug: Bug) -> None:
    """Graded on every part's visible tests: a student who got one part wrong keeps the
    points of the others (the whole-guest tests, which need every part, aside). The other
    parts run 30 examples each: enough to show a bug that leaks into them, at a fifth of the
    cost."""
    tests = [t if t.part == bug.part else dataclasses.replace(t, examples=30)
             for t in visible(UNIT_PARTS)]
    results = grade(tmp_path, buggy_submission(tmp_path, bug), tests)
    by_part = {t.id: t.part for t in RUBRIC.tests}
    lost = {by_part[k] for k, (score, top) in scores(results).items() if score < top}
    assert lost == {bug.part}, (bug.name, lost)
    failed = next(t for t in results["tests"] if t["score"] < t["max_score"])
    assert "First difference" in failed["output"] or "raised" in failed["output"], \
        failed["output"]


# Correct parts written otherwise than the solution: the grader must not tell them from it. The
# parts are graded on their own, over stand-ins for the rest of the VMM (worker.py), so what a
# solution may do with the real VMM (name an argument, read a guest's state, reflect a trap the
# handler would only have reflected) must work on the stand-ins too.
TRAP, HYPERCALLS, SHADOW, CHANNELS = (
    "vmm/trap.py", "vmm/hypercalls.py", "vmm/shadow.py", "vmm/channels.py")
FLUSH_BODY = ("        for view in VIEWS:\n"
              "            self.machine.write_phys(self.root[view], bytes(PAGE))\n"
              "            self.spare += self.leaves[view].values()\n"
              "            self.leaves[view] = {}\n"
              "            self.machine.hart.mmu.sfence(None, self.asid[view])\n")
CORRECT_VARIANTS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "handlers-called-with-named-arguments": (TRAP, "trap-dispatch", [
        ("            emulate(vmm, guest, event.tval)\n",
         "            emulate(vmm, guest, bits=event.tval)\n"),
        ("            vmm.hidden_fault(guest, event.tval, PAGE_FAULT_CAUSE.index(event.cause))\n",
         "            vmm.hidden_fault(guest, va=event.tval,\n"
         "                             access=PAGE_FAULT_CAUSE.index(event.cause))\n"),
        ("        reflect(vmm, guest, fault.cause, fault.tval)\n",
         "        reflect(vmm, guest, cause=fault.cause, tval=fault.tval)\n")]),
    "only-counter-reads-emulated-for-user-mode": (TRAP, "trap-dispatch", [
        ("            emulate_counter_read(guest, event.tval)\n",
         "            ins = decode(event.tval)\n"
         "            if ins is not None and ins.op.startswith('csr') and "
         "ins.imm in csrs.COUNTERS:\n"
         "                emulate_counter_read(guest, event.tval)\n"
         "            else:\n"
         "                raise GuestFault(ILLEGAL_INSN, event.tval)\n")]),
    "csrs-the-guest-lacks-reflected-at-once": (TRAP, "trap-dispatch", [
        ("        elif event.cause == ILLEGAL_INSN and v.mode == S:\n",
         "        elif event.cause == ILLEGAL_INSN and v.mode == S and (\n"
         "                (ins := decode(event.tval)) is not None and ins.op.startswith('csr')\n"
         "                and (ins.imm not in csrs.IMPLEMENTED or ins.imm in HYPERVISOR_CSRS)):\n"
         "            raise GuestFault(ILLEGAL_INSN, event.tval)\n"
         "        elif event.cause == ILLEGAL_INSN and v.mode == S:\n")]),
    "system-call-reflected-with-stval-0": (TRAP, "trap-dispatch", [
        ("        if event.cause == ECALL_U and v.mode == S:\n            hypercall(vmm, guest)\n",
         "        if event.cause == ECALL_U and v.mode == U:\n"
         "            raise GuestFault(ECALL_U, 0)  # stval is 0 for an ecall\n"
         "        elif event.cause == ECALL_U:\n            hypercall(vmm, guest)\n")]),
    "hypercall-outside-the-try": (TRAP, "trap-dispatch", [
        ("    v = guest.vcpu\n    try:\n        if event.cause == ECALL_U and v.mode == S:\n"
         "            hypercall(vmm, guest)\n        elif",
         "    v = guest.vcpu\n    if event.cause == ECALL_U and v.mode == S:\n"
         "        hypercall(vmm, guest)  # the SBI answers every call: nothing to reflect\n"
         "        return\n    try:\n        if")]),
    "channels-called-with-named-arguments": (HYPERCALLS, "hypercall", [
        ("        result = _ipc(vmm, guest, fid, a0, a1, a2)\n",
         "        try:\n"
         "            if fid == channels.SEND:\n"
         "                result = vmm.channels.send(guest, cid=a0, buf=a1, length=a2)\n"
         "            elif fid == channels.RECEIVE:\n"
         "                result = vmm.channels.receive(guest, cid=a0, buf=a1, size=a2)\n"
         "            else:\n"
         "                result = channels.ERR_NOT_SUPPORTED, 0\n"
         "        except channels.BadBuffer as bad:\n"
         "            vmm.stop_guest(guest, 'killed', f'IPC hypercall misused: {bad}')\n"
         "            return\n")]),
    "flush-skipped-when-nothing-was-filled": (SHADOW, "shadow-flush", [
        (FLUSH_BODY, "        if self.fills == getattr(self, 'fills_at_flush', 0):\n"
                     "            return  # empty already, and its TLB entries fenced\n"
                     "        self.fills_at_flush = self.fills\n" + FLUSH_BODY)]),
    "flush-forgets-exactly-what-fill-wrote": (SHADOW, "shadow-flush", [
        ("        self.fills += 1\n",
         "        self.fills += 1\n"
         "        self.__dict__.setdefault('filled', []).append((vcpu.mode, va))\n"),
        (FLUSH_BODY,
         "        for view, va in self.__dict__.pop('filled', []):\n"
         "            table = self.leaves[view][va >> 22]\n"
         "            self.machine.write_phys(table + ((va >> 12) & 0x3FF) * 4, bytes(4))\n"
         "            self.machine.hart.mmu.sfence(va, self.asid[view])\n")]),
    "wakes-only-a-blocked-guest": (CHANNELS, "ipc", [
        # (as WAITING: channels.py's own BLOCKED is what a call returns when it must wait)
        ("from .guest import Guest\n", "from .guest import BLOCKED as WAITING, Guest\n"),
        ("        self.wake(ch.receiver)\n",
         "        if ch.receiver.state == WAITING:\n            self.wake(ch.receiver)\n"),
        ("        self.wake(ch.sender)\n",
         "        if ch.sender.state == WAITING:\n            self.wake(ch.sender)\n")]),
    "wakes-before-the-message-moves": (CHANNELS, "ipc", [
        ("        ch.put(guest.mem.read(buf, length))\n        self.sent += 1\n"
         "        self.wake(ch.receiver)\n",
         "        self.wake(ch.receiver)\n        ch.put(guest.mem.read(buf, length))\n"
         "        self.sent += 1\n"),
        ("        message = ch.take()\n", "        self.wake(ch.sender)\n"
         "        message = ch.take()\n"),
        ("        self.received += 1\n        self.wake(ch.sender)\n",
         "        self.received += 1\n")]),
    "wakes-every-peer": (CHANNELS, "ipc", [
        ("        self.wake(ch.receiver)\n",
         "        for g in self.peers(guest):\n            self.wake(g)\n"),
        ("        self.wake(ch.sender)\n",
         "        for g in self.peers(guest):\n            self.wake(g)\n")]),
}


@pytest.mark.parametrize("name", sorted(CORRECT_VARIANTS))
def test_a_correct_part_written_otherwise_earns_full_marks(tmp_path: Path, name: str) -> None:
    """Its part's tests, visible and hidden, give it every point."""
    file, part, edits = CORRECT_VARIANTS[name]
    sub = edited_submission(tmp_path, file, edits)
    results = grade(tmp_path, sub, [t for t in RUBRIC.tests if t.part == part])
    assert all(t["score"] == t["max_score"] for t in results["tests"]), \
        [t["output"] for t in results["tests"]]


# A cache of host frames that outlives one guest: under shadow paging the second guest is given
# the first one's frames. One VMM with two guests is where it shows.
SHARED_CACHE = (
    ("VIEWS = (S, U)\n", "VIEWS = (S, U)\nHOST_OF: dict[int, int] = {}  # gpa page -> frame\n"),
    ("        host = self.mem.host_address(m.gpa & ~(PAGE - 1))\n",
     "        page = m.gpa & ~(PAGE - 1)\n"
     "        host = HOST_OF.setdefault(page, self.mem.host_address(page))\n"))


@pytest.mark.parametrize("name", ["gstage-maps-gpa-as-hpa", "shared-host-frame-cache"])
def test_isolation_catches_a_guest_reaching_frames_not_its_own(tmp_path: Path, name: str) -> None:
    if name == "shared-host-frame-cache":
        sub = edited_submission(tmp_path, "vmm/shadow.py", list(SHARED_CACHE))
    else:
        sub = buggy_submission(tmp_path, next(b for b in BUGS if b.name == name))
    results = grade(tmp_path, sub, [t for t in RUBRIC.tests if t.id == "isolation"])
    [test] = results["tests"]
    assert test["score"] == 0, test["output"]
    assert "First difference" in test["output"], test["output"]


@pytest.mark.parametrize("paging", ["shadow", "nested"])
def test_a_guest_stopping_at_the_bare_runs_horizon_is_equivalent(paging: str) -> None:
    """The bare run ends on its budget just before an SBI shutdown that retires nothing: a
    guest that stops there, as the bare machine would next, is equivalent; one that stops
    there otherwise is not."""
    from vmlab import worker
    from vmlab.properties import Counterexample, guests
    from vmlab.strategies.programs import S_CODE, SystemProgram, encode
    from vmlab.strategies.states import MachineState

    class InProcess:
        def call(self, probe: str, args: dict) -> dict:
            return json.loads(json.dumps(worker.PROBES[probe](json.loads(json.dumps(args)))))

    words = [encode("addi", 1, 1, imm=1)] * (guests.STEPS - 1) + [encode("addi", 17, 0, imm=8),
                                                                   0x73]  # li a7, 8; ecall
    code = b"".join(w.to_bytes(4, "little") for w in words)
    program = SystemProgram(((S_CODE, code),), MachineState(regs=(0,) * 32, pc=S_CODE, mode=1,
                                                            csrs=()), False, frozenset())
    bare = guests.run_bare(program)
    assert (bare["stop"], bare["instret"], bare["next_stop"]) == ("budget", guests.STEPS,
                                                                  "shutdown")
    guests._equivalence(paging)(program, InProcess())  # raises if not equivalent
    stopped_otherwise = {"host_stop": {"reason": "halted"}, "stop": {"reason": "fatal-trap",
                                                                      "detail": ""},
                         "vcpu": {"instret": guests.STEPS}}
    with pytest.raises(Counterexample):
        guests.compare(bare, stopped_otherwise, "")


def test_a_whole_guest_failure_shrinks_to_a_program_a_student_can_read(tmp_path: Path) -> None:
    """Whole programs are drawn as byte strings (strategies/programs.py) and still shrink: a
    VMM that does not step past a completed SBI call fails on one, and the listing shows that
    call and little else."""
    bug = next(b for b in BUGS if b.name == "hypercall-pc-not-advanced")
    # time enough to finish shrinking: what it reaches is the point here, not how soon (a
    # loaded machine cuts a 60 s test short, and the report then says so)
    [test] = [dataclasses.replace(t, time_limit=400) for t in RUBRIC.tests
              if t.id == "equivalence-shadow"]
    results = grade(tmp_path, buggy_submission(tmp_path, bug), [test])
    [test] = results["tests"]
    assert test["score"] == 0, test["output"]
    assert "time ran out" not in test["output"], test["output"]
    listing = test["output"].split("The guest program", 1)[1].split("```")[1].splitlines()
    instructions = [line for line in listing if line.strip() and "the same" not in line]
    assert "ecall" in "\n".join(instructions) and len(instructions) <= 12, test["output"]


def test_two_guests_in_a_trap_loop_stop_on_a_budget_that_follows_the_bare_run(
        tmp_path: Path) -> None:
    """A VMM that returns to an SBI call without stepping past it loops there. Two guests that
    talk through the VMM's channels get the host steps of their bare runs (and a thousand
    more), as a single guest does: the failure is how the guest stopped, said so at once, where
    800,000 steps ran into the example's time limit (20 s) and read as a hang."""
    bug = next(b for b in BUGS if b.name == "hypercall-pc-not-advanced")
    [test] = [t for t in RUBRIC.tests if t.id == "ipc-guests"]
    results = grade(tmp_path, buggy_submission(tmp_path, bug), [test])
    [test] = results["tests"]
    assert test["score"] == 0, test["output"]
    assert "`how it stopped`" in test["output"] and "`'budget'` (after" in test["output"] \
        and "times in a row" in test["output"], test["output"]
    assert "endless" not in test["output"], test["output"]


def test_a_trap_loop_ends_its_run_at_once_and_the_feedback_names_the_trap(
        tmp_path: Path) -> None:
    """A VMM that swallows a trap it should reflect returns to the trapping instruction, which
    traps again, with nothing retired, forever. The hardware ends the run at the
    hardware.TRAP_LOOP-th such trap in a row, where the host's budget took a trap a step
    (thousands an example, and as many again for each example shrinking tried); the student
    reads which trap it was, and where."""
    from vmlab.hardware import TRAP_LOOP
    from vmlab.properties import Counterexample, guests
    from vmlab.sandbox import Worker
    from vmlab.strategies.programs import S_CODE, SystemProgram, encode
    from vmlab.strategies.states import MachineState

    words = [0x0010_0073] + [encode("addi", 5, 5, imm=1)] * 300 + [  # ebreak, then 300 more
        encode("addi", 17, 0, imm=8), 0x73]  # li a7, 8; ecall (shutdown)
    code = b"".join(w.to_bytes(4, "little") for w in words)
    program = SystemProgram(((S_CODE, code),), MachineState(regs=(0,) * 32, pc=S_CODE, mode=1,
                                                            csrs=((0x105, S_CODE + 4),)),
                            False, frozenset())
    bare = guests.run_bare(program)
    assert bare["stop"] == "shutdown" and bare["instret"] >= 300, bare
    bug = next(b for b in BUGS if b.name == "other-traps-swallowed")
    for source, loops in ((buggy_submission(tmp_path / "bug", bug), True), (SOLUTION, False)):
        lab, _, _ = assemble(source, HANDOUT, RUBRIC.editable, into=tmp_path / f"lab{loops}")
        worker = Worker(lab, timeout=60)
        try:
            request = guests.as_request(program, "shadow")
            request["steps"] = bare["instret"] + 1000
            request["host_steps"] = guests.host_budget(request["steps"])
            got = worker.call("guest", request)
        finally:
            worker.close()
        if not loops:  # the breakpoint reflected: the guest's handler runs on, and shuts down
            assert "loop" not in got["host_stop"] and got["stop"]["reason"] == "shutdown", got
            continue
        # the hardware's count, not the worker's: the loop's traps and the fill before them,
        # where the host's budget (request["host_steps"]) ran a trap a step
        assert got["host_stop"]["loop"] == [3, S_CODE, TRAP_LOOP], got["host_stop"]
        assert TRAP_LOOP <= got["counts"]["traps"] <= TRAP_LOOP + 2, got["counts"]
        assert got["counts"]["native"] == 0 and request["host_steps"] > 30 * TRAP_LOOP
        with pytest.raises(Counterexample) as e:
            guests.compare(bare, got, "")
        assert f"breakpoint at `{S_CODE:#010x}`, came {TRAP_LOOP} times in a row" in \
            e.value.divergence, e.value.divergence


def test_a_failing_request_leaves_no_machine_behind(tmp_path: Path) -> None:
    """A stub that raises holds its VMM, and the VMM's 96 MB machine, in its traceback. The
    worker lets them go before the request's log ends: the next request finds the room the
    first did (a run of failures no longer ends in "Cannot allocate memory" at a point that
    depends on when the collector ran, and the verdict with it), and the hardware of record
    holds no machine of a request that is over."""
    from vmlab.sandbox import StudentError, Worker

    lab, _, _ = assemble(HANDOUT, HANDOUT, RUBRIC.editable, into=tmp_path / "lab")
    # a guest's walk that faults in the G-stage: the handout's GStage.map raises
    request = {"paging": "nested", "memory": 1 << 20, "writes": [], "satp": 0,
               "queries": [[0x8040_0000, 0, 0, False, False, None]]}
    with Worker(lab, timeout=60) as worker:
        for _ in range(10):  # 10 x 96 MB: past the worker's room, were they kept
            with pytest.raises(StudentError) as e:
                worker.call("translate", request)
            assert e.value.kind == "NotImplementedError", e.value
            assert worker.hardware is not None and not worker.hardware.boxes


def test_a_translation_failure_shrinks_to_a_short_table(tmp_path: Path) -> None:
    """Guest tables are drawn from records (strategies/sources.py) and still shrink: a shadow
    that takes SUM from the real sstatus fails with a table of a few entries (unshrunk, the
    failing example at the rubric's seed has twelve)."""
    bug = next(b for b in BUGS if b.name == "shadow-sum-from-real-sstatus")
    results = grade(tmp_path, buggy_submission(tmp_path, bug),
                    [t for t in RUBRIC.tests if t.id == "translation-shadow"])
    [test] = results["tests"]
    assert test["score"] == 0, test["output"]
    entries = [line for line in test["output"].splitlines() if line.startswith("| `0x")]
    assert 1 <= len(entries) <= 4 and "The failing query" in test["output"], test["output"]


def test_the_state_machine_runs_the_examples_of_its_tests_seed(tmp_path: Path) -> None:
    """The IPC state machine is seeded with its test's seed, as the other properties are: the
    same seed makes the same calls, another seed others (the hidden test is not a rerun of the
    visible one)."""
    from vmlab.properties import load as load_properties
    from vmlab.sandbox import Worker
    from vmlab.suite import run_property

    lab, _, _ = assemble(SOLUTION, HANDOUT, RUBRIC.editable, into=tmp_path / "lab")
    prop = load_properties()["ipc"]
    test = next(t for t in RUBRIC.tests if t.id == "ipc")

    class Recording:
        def __init__(self, worker: Worker) -> None:
            self.worker, self.calls = worker, []

        def call(self, probe: str, args: dict) -> dict:
            self.calls.append((probe, json.dumps(args, sort_keys=True)))
            return self.worker.call(probe, args)

    def calls(seed: int) -> list:
        with Worker(lab) as worker:
            recording = Recording(worker)
            _, failure, _ = run_property(prop, dataclasses.replace(test, seed=seed, examples=20),
                                         recording)
        assert failure is None, failure
        return recording.calls

    first = calls(1)
    assert len(first) >= 20 and calls(1) == first  # a run: its start, then its batch
    assert calls(2) != first


# ----- out of time ----------------------------------------------------------------------------

def test_out_of_time_a_test_is_judged_on_the_examples_it_ran(tmp_path: Path) -> None:
    """A slow machine cuts a test short: a right VMM keeps its points, a wrong one still loses
    them although the time ran out while hypothesis was shrinking."""
    quick = [dataclasses.replace(t, time_limit=0.001) for t in visible(["reflect"])]
    right = grade(tmp_path / "right", SOLUTION, quick)["tests"][0]
    assert right["score"] == right["max_score"], right["output"]
    assert "Stopped after 10 of 150 examples" in right["output"], right["output"]
    bug = next(b for b in BUGS if b.name == "reflect-sepc-next-instruction")
    wrong = grade(tmp_path / "wrong", buggy_submission(tmp_path / "wrong", bug), quick)
    assert wrong["tests"][0]["score"] == 0, wrong["tests"][0]["output"]
    assert "First difference" in wrong["tests"][0]["output"]


# ----- a hostile or broken submission -------------------------------------------------------------

def hostile(tmp_path: Path, body: str) -> Path:
    sub = buggy_submission(tmp_path, BUGS[0])
    text = (SOLUTION / "vmm/trap.py").read_text()
    marker = '    v = guest.vcpu\n    if v.trap_entry and cause in FETCH_FAULTS'
    assert marker in text
    (sub / "vmm/trap.py").write_text(text.replace(marker, body + marker, 1))
    return sub


@pytest.mark.parametrize("body, kind", [
    ("    import os\n    os._exit(3)\n", "exited"),
    ("    while True:\n        pass\n", "no answer within"),
    ("    import os\n    os.write(1, b'{\"ok\": true, \"result\": {}}\\n')\n", None),
])
def test_a_crash_a_hang_or_a_lie_costs_only_that_test(tmp_path: Path, body: str, kind) -> None:
    rubric = dataclasses.replace(RUBRIC, example_time_limit=3)
    tests = [t for t in rubric.tests if t.visible and t.part in ("reflect", "bounded-buffer")]
    results = grade(tmp_path, hostile(tmp_path, body), tests, rubric)
    s = scores(results)
    assert s["bounded-buffer"] == (3, 3), s
    if kind is None:  # the student's prints cannot reach the answers: the lie is never heard
        assert s["reflect"] == (3, 3), s
        return
    assert s["reflect"][0] == 0, s
    out = next(t["output"] for t in results["tests"] if "[reflect]" in t["name"])
    assert kind in out, out


@pytest.mark.parametrize("probe, answer", [
    ("reflect", {}),
    ("reflect", {"fault": None, "vcpu": {"pc": "0x80400000"}}),
    ("guest", {"stop": None}),
    ("hypercall", {"fault": [2], "vcpu": {}, "console": ""}),
    ("ipc_batch", {"answers": [{"result": {"ok": 1}, "woken": [0]}]}),
    ("translate", {"results": "all fine"}),
])
def test_an_answer_of_the_wrong_shape_is_refused(probe: str, answer: dict) -> None:
    """The worker is untrusted: an answer the properties cannot rely on costs the example as a
    garbled answer, not a KeyError in the grader. (Genuine answers pass the same check in every
    grading test above.)"""
    with pytest.raises(WorkerFailure) as refused:
        check_shape(answer, SHAPES[probe], probe)
    assert refused.value.kind == "garbled" and probe in refused.value.detail


def test_only_editable_files_are_taken_and_the_submission_is_untouched(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    shutil.copytree(SOLUTION, sub, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    (sub / "machine" / "hart.py").write_text("raise SystemExit('cheating')\n")
    (sub / "vmm" / "monitor.py").write_text("raise SystemExit('cheating')\n")
    before = {p: p.read_bytes() for p in sub.rglob("*") if p.is_file()}
    lab, taken, missing = assemble(sub, HANDOUT, RUBRIC.editable, into=tmp_path / "lab")
    assert not missing and sorted(taken) == sorted(RUBRIC.editable)
    assert (lab / "machine" / "hart.py").read_bytes() == (HANDOUT / "machine/hart.py").read_bytes()
    assert (lab / "vmm" / "monitor.py").read_bytes() == (HANDOUT / "vmm/monitor.py").read_bytes()
    assert (lab / "vmm" / "trap.py").read_bytes() == (SOLUTION / "vmm/trap.py").read_bytes()
    assert before == {p: p.read_bytes() for p in sub.rglob("*") if p.is_file()}


def test_the_tools_caches_in_a_student_s_folder_are_not_their_files(tmp_path: Path) -> None:
    """A handout folder graded twice holds hypothesis's and vmlab's caches: they are not listed
    as the student's files that grading ignored. The assembled lab (whose machine has the
    engine) is the grader's alone."""
    from vmlab.submission import ignored
    sub = tmp_path / "sub"
    shutil.copytree(SOLUTION, sub, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    for cache in (".hypothesis/constants/8b23a29e", ".vmlab/memo/x.json", "vmm/.hypothesis/e"):
        (sub / cache).parent.mkdir(parents=True, exist_ok=True)
        (sub / cache).write_text("{}")
    (sub / "notes.txt").write_text("mine")
    lab, taken, _ = assemble(sub, HANDOUT, RUBRIC.editable)
    try:
        listed = ignored(sub, taken)
        assert "notes.txt" in listed
        assert not [n for n in listed if ".hypothesis" in n or ".vmlab" in n], listed
        assert lab.stat().st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(lab)


def test_a_zip_with_the_files_at_its_top_is_graded(tmp_path: Path) -> None:
    z = tmp_path / "submission.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("channels.py", (SOLUTION / "vmm/channels.py").read_text())
    results = grade(tmp_path, z, visible(["bounded-buffer", "hypercall"]))
    s = scores(results)
    assert s["bounded-buffer"] == (3, 3) and s["hypercall"][0] == 0, s


def _without_times(results: dict) -> str:
    results.pop("execution_time", None)
    for t in results["tests"]:
        t.pop("execution_time", None)
    return json.dumps(results, sort_keys=True)


def test_grading_gives_byte_identical_results_in_any_process(tmp_path: Path) -> None:
    """Twice here, and once through the command line in a fresh process with another hash seed
    and other modules imported (as on Gradescope): the same examples, the same bytes."""
    bug = next(b for b in BUGS if b.name == "reflect-sepc-next-instruction")
    tests = visible(["reflect", "bounded-buffer"])
    runs = []
    for i in range(2):
        r = grade(tmp_path / str(i), buggy_submission(tmp_path / str(i), bug), tests)
        runs.append(_without_times(r))
    sub = buggy_submission(tmp_path / "cli", bug)
    out = tmp_path / "cli" / "results.json"
    done = subprocess.run([sys.executable, "-m", "vmlab", "grade", str(sub), "--out", str(out),
                           "--test", "reflect", "--test", "bounded-buffer"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert done.returncode == 0, done.stderr
    runs.append(_without_times(json.loads(out.read_text())))
    assert "First difference" in runs[0]
    assert runs[0] == runs[1] == runs[2]


def test_a_failed_state_machine_is_rerun_by_vmlab_check(tmp_path: Path) -> None:
    """`vmlab replay` cannot rebuild a state machine's run, so the feedback of a failed IPC
    test offers `vmlab check --test ipc` instead, which makes the same runs and fails with the
    same operations; a hidden test offers neither."""
    bug = next(b for b in BUGS if b.name == "send-blocks-on-stopped-receiver")
    sub = buggy_submission(tmp_path, bug)
    tests = [t for t in RUBRIC.tests if t.property == "ipc"]
    out = {t["name"].rsplit("[", 1)[-1].rstrip("]"): t["output"]
           for t in grade(tmp_path, sub, tests)["tests"]}
    assert "vmlab replay" not in out["ipc"] + out["ipc-hidden"]
    assert "vmlab check --test ipc\n" in out["ipc"] and "vmlab check" not in out["ipc-hidden"]
    operations = out["ipc"].split("The operations, in order:")[1].split("**Rerun it**")[0]
    lab, _, _ = assemble(sub, HANDOUT, RUBRIC.editable, into=tmp_path / "student")
    done = subprocess.run([sys.executable, "-m", "vmlab", "check", "--test", "ipc"], cwd=lab,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and operations.strip() in done.stdout, done.stdout


def test_the_replay_command_reproduces_the_failure(tmp_path: Path) -> None:
    bug = next(b for b in BUGS if b.name == "reflect-sepc-next-instruction")
    sub = buggy_submission(tmp_path, bug)
    results = grade(tmp_path, sub, visible(["reflect"]))
    out = results["tests"][0]["output"]
    command = next(line for line in out.splitlines() if line.startswith("vmlab replay"))
    lab, _, _ = assemble(sub, HANDOUT, RUBRIC.editable, into=tmp_path / "replay")
    done = subprocess.run([sys.executable, "-m", "vmlab", *command.split()[1:]], cwd=lab,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "FAILS: `sepc`" in done.stdout, done.stdout


@pytest.mark.parametrize("shown", ["never", "failing-visible"])
def test_what_the_student_printed_is_shown_only_where_the_rubric_says(tmp_path: Path,
                                                                      shown: str) -> None:
    """A reflect that prints and gets sepc wrong: its output appears under the visible test it
    fails when the rubric says so, trimmed to its last lines, and never otherwise: never under
    a hidden test, nor under a test it passes."""
    sub = hostile(tmp_path, "    print('debugging-line', cause)\n" + "    print('filler')\n" * 40)
    text = (sub / "vmm/trap.py").read_text()
    (sub / "vmm/trap.py").write_text(text.replace("v.sepc = v.pc & ~3", "v.sepc = v.pc + 4", 1))
    rubric = dataclasses.replace(RUBRIC, student_output=shown)
    tests = [t for t in rubric.tests if t.part in ("reflect", "bounded-buffer")]
    results = grade(tmp_path, sub, tests, rubric)
    out = {t["name"].rsplit("[", 1)[-1].rstrip("]"): t for t in results["tests"]}
    assert out["reflect"]["score"] == 0 and out["reflect-hidden"]["score"] == 0
    printed = "Your code printed" in out["reflect"]["output"]
    assert printed == (shown == "failing-visible"), out["reflect"]["output"]
    assert "Your code printed" not in out["reflect-hidden"]["output"]
    assert all("Your code printed" not in t["output"] for t in results["tests"]
               if t["score"] == t["max_score"])
    if printed:
        assert 0 < out["reflect"]["output"].count("filler") <= 30  # its last lines only


def test_shrinking_stops_at_the_rubric_s_count_of_examples(tmp_path: Path) -> None:
    """Past `shrink_examples` after the first failure, the smallest failure so far is the
    report, and the report says shrinking was cut; a count, not a time, so two runs agree to the
    byte (a batch and `vmlab grade` too)."""
    bug = next(b for b in BUGS if b.name == "reflect-sie-not-saved")
    sub = buggy_submission(tmp_path, bug)
    [test] = [t for t in RUBRIC.tests if t.id == "reflect"]
    rubric = dataclasses.replace(RUBRIC, shrink_examples=5)
    runs = [grade(tmp_path / f"run{i}", sub, [test], rubric)["tests"][0] for i in range(2)]
    out = runs[0]["output"]
    found = int(out.split("Found at example ", 1)[1].split(" ", 1)[0])
    assert "shrunk by hypothesis for 5 examples (the rubric's limit)" in out, out
    assert runs[0]["extra_data"]["examples"] == found + 5
    assert runs[0]["output"] == runs[1]["output"]
    # the same bug, shrinking left to finish, runs more examples and says it finished
    whole = grade(tmp_path / "whole", sub, [test])["tests"][0]
    assert whole["extra_data"]["examples"] > found + 5
    assert "smallest failing case it found" in whole["output"], whole["output"]
    # a state machine's runs are its examples: a run is never cut part way (hypothesis would
    # call the cut run flaky)
    ipc_bug = next(b for b in BUGS if b.name == "ipc-oversized-message-dropped")
    [ipc] = [t for t in RUBRIC.tests if t.id == "ipc"]
    cut = grade(tmp_path / "ipc", buggy_submission(tmp_path / "ipc", ipc_bug), [ipc],
                rubric)["tests"][0]
    assert "shrunk by hypothesis for 5 examples (the rubric's limit)" in cut["output"], \
        cut["output"]
    assert "First difference" in cut["output"] and "Flaky" not in cut["output"]
    # a run the count stops as it begins, deep in shrinking: hypothesis calls it flaky and
    # says nothing of why (this bug's shrink reaches the rubric's 200 at its seed)
    ipc_bug = next(b for b in BUGS if b.name == "ipc-send-reads-host-physical")
    deep = grade(tmp_path / "deep", buggy_submission(tmp_path / "deep", ipc_bug), [ipc],
                 RUBRIC)["tests"][0]
    assert "(the rubric's limit)" in deep["output"], deep["output"]
    assert "First difference" in deep["output"] and "Flaky" not in deep["output"]
