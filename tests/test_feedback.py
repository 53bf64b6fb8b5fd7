"""What a student reads: every kind of failure (a wrong value, a raise, a hang, a whole guest
that diverges, a translation, IPC) gets a report that names the part and function to look at,
the first difference, the failing case and a command that replays it, in at most REPORT_BYTES;
`vmlab replay` of a whole guest stays within REPLAY_BYTES and lines of under REPLAY_WIDTH
characters; `vmlab check` on the untouched handout is short and in the table's order; a stub's
first `vmlab run` names the student's function first.

Each case grades one visible test of a solution with one bug, made by string replacement as in
tests/buggy_vmms.py, with few examples where that still finds the bug."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import buggy_vmms
import pytest
from vmlab.grade import grade_lab
from vmlab.rubric import load as load_rubric
from vmlab.submission import assemble

REPO = Path(__file__).resolve().parents[1]
HANDOUT, SOLUTION = REPO / "handout", REPO / "solution"
RUBRIC = load_rubric()
REPORT_BYTES = 6000  # a failure report, whatever the kind
REPLAY_BYTES = 12_000  # `vmlab replay` of a whole guest, listing and trace included
REPLAY_WIDTH = 160  # characters on a line of it

TRAP, CHANNELS, SHADOW, HYPERCALLS = ("vmm/trap.py", "vmm/channels.py", "vmm/shadow.py",
                                      "vmm/hypercalls.py")
STVAL = "    v.stval = tval & 0xFFFF_FFFF\n"
# kind: (test, examples (0: the rubric's), file, old, new, what the case shows)
KINDS = {
    "wrong value": ("reflect", 0, TRAP, "    v.sepc = v.pc & ~3\n",
                    "    v.sepc = (v.pc + 4) & ~3\n", "`reflect(cause="),
    "raise": ("reflect", 0, TRAP, STVAL, "    v.stval = [tval][cause]\n", "`reflect(cause="),
    "hang": ("reflect", 0, TRAP, STVAL, STVAL + "    while cause == 7:\n        pass\n",
             "`reflect(cause="),
    "whole guest": ("equivalence-shadow", 0, HYPERCALLS,
                    "        v.x[11] = result[1] & M32\n    v.pc += 4\n",
                    "        v.x[11] = result[1] & M32\n", "The guest program"),
    "translation": ("translation-shadow", 0, SHADOW,
                    "        sum_ = bool(vcpu.sstatus & csr.SSTATUS_SUM)\n",
                    "        sum_ = bool(self.machine.csr(csr.SSTATUS) & csr.SSTATUS_SUM)\n",
                    "The failing query"),
    "ipc": ("ipc", 0, CHANNELS,
            "        if not ch.receiver.running:\n            return ERR_FAILED, 0\n"
            "        if ch.full():\n            return BLOCKED\n",
            "        if ch.full():\n            return BLOCKED\n"
            "        if not ch.receiver.running:\n            return ERR_FAILED, 0\n",
            "The operations, in order"),
}


def graded(tmp_path: Path, kind: str) -> tuple[str, Path]:
    """The report of the kind's test on its buggy submission, and the assembled lab."""
    test_id, examples, file, old, new, _ = KINDS[kind]
    sub = buggy_vmms.edited_submission(tmp_path / "sub", SOLUTION, RUBRIC.editable, file,
                                       [(old, new)])
    lab, _, _ = assemble(sub, HANDOUT, RUBRIC.editable, into=tmp_path / "lab")
    rubric = dataclasses.replace(RUBRIC, example_time_limit=2) if kind == "hang" else RUBRIC
    tests = [dataclasses.replace(t, examples=examples or t.examples)
             for t in rubric.tests if t.id == test_id]
    [result] = grade_lab(lab, rubric, tests, tmp_path / "results.json")["tests"]
    assert result["score"] == 0, result["output"]
    return result["output"], lab


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_failure_names_the_case_the_difference_and_a_replay(
        tmp_path: Path, kind: str) -> None:
    test_id, _, file, _, _, case = KINDS[kind]
    out, lab = graded(tmp_path, kind)
    part = next(t.part for t in RUBRIC.tests if t.id == test_id)
    look = out.splitlines()[0]
    assert look.startswith("**Look at:**") and (file in look or part == "whole-guests"), out
    assert "**First difference:**" in out and "**The failing case.** Found at example" in out
    assert case in out, out
    rerun = f"vmlab check --test {test_id}\n" if kind == "ipc" else f"vmlab replay {test_id} "
    assert rerun in out, out
    assert len(out.encode()) <= REPORT_BYTES, len(out.encode())
    if kind == "raise":  # the case comes first, then the traceback
        assert out.index(case) < out.index("Traceback (your code") < out.index("vmlab replay")
    if kind == "hang":
        assert "no answer within 2 s" in out.split("**The failing case.**")[0], out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tests"][0]["output_format"] == "md"  # Gradescope renders it as Markdown
    if kind == "translation":
        translation_diagram(out)
    if kind == "ipc":
        ipc_timeline(out)
    if kind == "whole guest":
        bounded_replay(out, lab)


def translation_diagram(out: str) -> None:
    """The guest's walk, the VMM's map and the composition, the difference marked."""
    diagram = out.split("The three tables for it")[1].split("```")[1]
    assert "(1) guest's walk" in diagram and "L1 PTE at gpa" in diagram, diagram
    assert "(2) VMM's map" in diagram and "<- differs" in diagram, diagram


def ipc_timeline(out: str) -> None:
    """The channel's history, a lane per guest."""
    timeline = out.split("The operations, in order")[1].split("```")[1].splitlines()
    assert timeline[1].split()[:5] == ["#", "g0", "g1", "g2", "operation"], timeline
    assert any(" x " in row for row in timeline) and any("→ blocked" in row
                                                         for row in timeline), timeline


def bounded_replay(out: str, lab: Path) -> None:
    """`vmlab replay` of the whole guest: the report's case, then both runs side by side."""
    command = next(line for line in out.splitlines() if line.startswith("vmlab replay"))
    done = subprocess.run([sys.executable, "-m", "vmlab", *command.split()[1:]], cwd=lab,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    text = done.stdout
    assert len(text.encode()) <= REPLAY_BYTES, len(text.encode())
    assert max(map(len, text.splitlines())) < REPLAY_WIDTH, text
    assert "The guest program" in text and "**Replayed against your VMM:** FAILS" in text
    trace = text.split("## Both runs, step by step")[1]
    first = next(line for line in trace.splitlines() if line.startswith(">>"))
    assert "ecall" in first and "|" in first, trace  # the SBI call the VMM does not step past
    assert "SystemProgram(" not in text and "Failing test case" not in text  # raw: --raw only


def test_check_on_the_untouched_handout_is_a_table_and_one_block_of_stubs(
        tmp_path: Path) -> None:
    lab = tmp_path / "handout"
    shutil.copytree(HANDOUT, lab, ignore=shutil.ignore_patterns(".venv", ".vmlab"))
    done = subprocess.run([sys.executable, "-m", "vmlab", "check"], cwd=lab,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) < 60, done.stdout
    visible = [t.id for t in RUBRIC.tests if t.visible]
    rows = [line for line in lines if line.startswith("│") and "total" not in line]
    assert [r.split("│")[3].strip() for r in rows] == visible, rows  # the rubric's order
    assert done.stdout.count("Not written yet") == 1 and "NotImplementedError" in done.stdout
    assert " 1 examples" not in done.stderr and "Traceback" not in done.stdout


def test_a_stubs_first_run_names_the_students_function_first(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vmlab", "run", "--vmm", "shadow",
                           "guests/hello.S"], cwd=HANDOUT, capture_output=True, text=True,
                          timeout=120)
    lines = done.stderr.splitlines()
    assert lines[0].startswith("vmlab: `handle` in vmm/trap.py is not written yet"), lines
    assert "During handling" not in done.stderr and "machine/" not in done.stderr, lines
    assert len(lines) <= 8, lines
