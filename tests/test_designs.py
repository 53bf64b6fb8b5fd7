"""Whole VMMs written otherwise (tests/designs.py): correct designs earn full marks on their
part's tests and on the whole-guest tests; realistic bugs lose the points of the part whose tests
can see them. And the whole-guest properties themselves: a VMM that runs nothing earns nothing, a
run that ends on its budget is compared in full, and every report shows the program."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import buggy_vmms
import designs
import pytest
from designs import BUGS, CORRECT, Design
from hypothesis import HealthCheck, given, settings
from vmlab.grade import grade_lab
from vmlab.gradescope import validate_results
from vmlab.properties import Counterexample
from vmlab.properties import guests as g
from vmlab.rubric import load as load_rubric
from vmlab.strategies import programs as pr
from vmlab.submission import assemble

REPO = Path(__file__).resolve().parents[1]
HANDOUT = REPO / "handout"
RUBRIC = load_rubric()
EQUIVALENCE = {"vmm/shadow.py": "equivalence-shadow", "vmm/nested.py": "equivalence-nested",
               "vmm/trap.py": "equivalence-shadow"}


def grade(tmp_path: Path, submission: Path, ids: set[str],
          examples: int | None = None) -> dict[str, tuple[float, float, str]]:
    lab, _, _ = assemble(submission, HANDOUT, RUBRIC.editable, into=tmp_path / "lab")
    tests = [t if examples is None else dataclasses.replace(t, examples=examples)
             for t in RUBRIC.tests if t.id in ids]
    results = grade_lab(lab, RUBRIC, tests, tmp_path / "results.json")
    validate_results(json.loads((tmp_path / "results.json").read_text()))
    return {t["name"].rsplit("[", 1)[-1].rstrip("]"): (t["score"], t["max_score"], t["output"])
            for t in results["tests"]}


def submission(tmp_path: Path, d: Design) -> Path:
    return buggy_vmms.edited_submission(tmp_path / "submission", REPO / "solution",
                                        RUBRIC.editable, d.file, list(d.edits))


def visible(part: str) -> set[str]:
    return {t.id for t in RUBRIC.tests if t.visible and t.part == part}


@pytest.mark.parametrize("design", CORRECT, ids=[d.name for d in CORRECT])
def test_a_correct_design_earns_full_marks(tmp_path: Path, design: Design) -> None:
    """On its part's visible tests and the whole-guest test of its paging, 25 examples each
    here (the hidden tests' 500 are checked by hand: see the report of issue 18)."""
    s = grade(tmp_path, submission(tmp_path, design),
              visible(design.part) | {EQUIVALENCE[design.file]}, examples=25)
    lost = {k: v[2] for k, v in s.items() if v[0] < v[1]}
    assert not lost, lost


# Bugs the visible tests miss at the rubric's seeds (documented gaps): a strict xfail fails the
# day a test starts catching one, so the list stays true.
GAPS: dict[str, str] = {}  # bug name -> why the visible tests miss it (none at present)


@pytest.mark.parametrize("bug", [
    pytest.param(b, marks=pytest.mark.xfail(strict=True, reason=GAPS[b.name]))
    if b.name in GAPS else b for b in BUGS], ids=[d.name for d in BUGS])
def test_a_realistic_bug_loses_the_points_of_the_part_that_sees_it(tmp_path: Path,
                                                                   bug: Design) -> None:
    ids = visible(bug.caught_by) if bug.caught_by != "whole-guests" else {EQUIVALENCE[bug.file]}
    s = grade(tmp_path, submission(tmp_path, bug), ids)
    assert any(score < top for score, top, _ in s.values()), (bug.name, s)


def test_the_corpus_edits_apply_inside_student_parts() -> None:
    for d in designs.DESIGNS:
        text = (REPO / "solution" / d.file).read_text()
        for old, _ in d.edits:
            assert text.count(old) == 1, (d.name, old)
            at = text.index(old)
            assert text.rfind("# BEGIN STUDENT PART", 0, at) > text.rfind("# END STUDENT PART",
                                                                           0, at), d.name


def test_a_vmm_that_does_nothing_earns_no_isolation_points(tmp_path: Path) -> None:
    """Hooks that return at once breach nothing, because they run nothing: isolation counts
    only a guest that ran."""
    sub = tmp_path / "nothing"
    for name in RUBRIC.editable:
        lines = (HANDOUT / name).read_text().splitlines(keepends=True)
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text("".join(
            line.split("raise NotImplementedError")[0] + "return None\n"
            if "raise NotImplementedError" in line else line for line in lines))
    s = grade(tmp_path, sub, {"isolation"})
    assert s["isolation"][0] == 0, s
    assert "isolation counts only a guest that runs" in s["isolation"][2]


# ----- the whole-guest properties, without a worker ----------------------------------------------

def spin_program(extra: list[int]) -> pr.SystemProgram:
    """S-mode code that runs `extra`, then loops forever: a run that ends on its budget."""
    words = [*extra, pr.encode("addi", 5, 5, imm=1), pr.encode("jal", 0, imm=-4)]
    state = pr.MachineState(regs=(0,) * 32, pc=pr.S_CODE, mode=1,
                            csrs=((pr.CSR["stvec"], pr.HANDLER),))
    return pr.SystemProgram(((pr.S_CODE, pr._words_bytes(words)),), state, False, frozenset())


def as_guest(bare: dict) -> dict:
    """What the worker answers for a guest that did exactly what the bare machine did."""
    vcpu = {name: bare[name] for name in g.CSR_FIELDS}
    vcpu.update(pc=bare["pc"], mode=bare["mode"], instret=bare["instret"], idle=0,
                regs=list(bare["regs"]))
    return {"host_stop": {"reason": "budget", "detail": ""}, "stop": None, "vcpu": vcpu,
            "console": bare["console"].hex(), "full_pages": {},
            "pages": {k: g.digest(v) for k, v in bare["pages"].items()}}


def test_a_run_that_ends_on_its_budget_is_compared_in_full() -> None:
    bare = g.run_bare(spin_program([pr.encode("addi", 6, 0, imm=7)]))
    assert bare["stop"] == "budget" and bare["instret"] == g.STEPS
    assert bare["horizon"] and bare["horizon"][0]["regs"] == bare["regs"]
    got = as_guest(bare)
    g.compare(bare, got, "")  # the same state: no difference
    got["vcpu"]["regs"][5] += 1  # one more iteration, or a register the VMM corrupted
    with pytest.raises(Counterexample, match="x5"):
        g.compare(bare, got, "")
    got = as_guest(bare)
    got["pages"]["7"] = "0" * 40  # memory is compared too
    with pytest.raises(Counterexample, match="memory"):
        g.compare(bare, got, "")


def test_a_guest_may_end_after_the_trap_entry_that_follows_its_last_instruction() -> None:
    """At the count of instructions it stopped at, the bare machine passes through more than
    one state when a trap's entry follows (here an illegal instruction at the horizon): the
    guest may be in any of them."""
    bare = g.run_bare(spin_program([]), steps=3)  # addi, jal, addi: the jal's target next
    assert len(bare["horizon"]) == 1
    prog = spin_program([pr.encode("addi", 6, 0, imm=1), 0])  # then an illegal word
    bare = g.run_bare(prog, steps=1)
    assert len(bare["horizon"]) >= 2, bare["horizon"]
    entered = as_guest({**bare, **bare["horizon"][1]})
    g.compare(bare, entered, "")
    g.compare(bare, as_guest(bare), "")


@settings(max_examples=40, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(pr.system_programs(paging=True))
def test_every_whole_guest_report_shows_the_program(p: pr.SystemProgram) -> None:
    """A paging program's entry is a virtual address whose code lies in frames elsewhere: the
    listing follows its page table."""
    text = g.describe_program(p)
    listing = text.split("```")[1].strip().splitlines()
    assert listing and listing[0].startswith(f"{p.state.pc:08x}:"), text[:400]


def test_the_generators_reach_high_pages_long_runs_and_address_space_changes() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(pr.system_programs(paging=True))
    def draw(p: pr.SystemProgram) -> None:
        seen.update(p.features)
        words = b"".join(d for a, d in p.segments if pr.S_CODE <= a < pr.HANDLER
                         or pr.CODE_FRAMES <= a < pr.CODE_FRAMES + 0x4000)
        if any(w & 0xFFF0_707F == 0x1800_1073 for w in _words(words)):  # csrrw _, satp, _
            seen.add("satp")
        tables = dict(p.segments)[pr.PT_L0]
        if any(int.from_bytes(tables[i:i + 4], "little") >> 30 for i in range(0, 4096, 4)):
            seen.add("high")

    draw()
    assert {"churn", "high", "satp"} <= seen, seen


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data) - 3, 4)]
