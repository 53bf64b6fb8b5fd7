"""`vmlab mutants`: mutants are made inside student parts only, graded through the grader's own
path, and a survivor is checked against the lab's guests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from vmlab.mutants import Mutant, Verdict, collect, grade_mutant, mutants_of, part_ranges, report
from vmlab.rubric import load as load_rubric

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solution"
RUBRIC = load_rubric()

SNIPPET = '''\
def outside(a, b):
    return a < b


# BEGIN STUDENT PART demo
def inside(a, b):
    """A docstring is never mutated."""
    if a < b and b:
        total = f(a, b) + 1
        return total
    return 0
# END STUDENT PART
'''


def test_mutants_change_one_thing_inside_a_student_part() -> None:
    assert part_ranges(SNIPPET) == [("demo", 6, 11)]
    found = mutants_of(SNIPPET, "demo.py")
    assert {m.operator for m in found} == {
        "compare", "boolean", "negated-condition", "swapped-arguments", "arithmetic",
        "off-by-one", "dropped-statement"}
    for m in found:
        changed = [(a, b) for a, b in zip(SNIPPET.splitlines(), m.text.splitlines(), strict=True)
                   if a != b]
        assert len(changed) == 1, m.diff(SNIPPET)
        assert "return a < b" in m.text and "docstring" in m.text  # outside, and the docstring
    texts = {m.text for m in found}
    assert SNIPPET.replace("a < b and", "a <= b and") in texts
    assert SNIPPET.replace("f(a, b)", "f(b, a)") in texts
    assert SNIPPET.replace("if a < b and b:", "if not (a < b and b):") in texts
    assert SNIPPET.replace("        total = f(a, b) + 1", "        pass") in texts


def test_every_student_part_of_the_solution_is_found() -> None:
    parts = {p for name in RUBRIC.editable
             for p, _, _ in part_ranges((SOLUTION / name).read_text())}
    assert parts == set(RUBRIC.parts) - {"whole-guests"}
    assert mutants_of((SOLUTION / "vmm/nested.py").read_text(), "vmm/nested.py")


def small(part: str) -> object:
    """The rubric with only the visible test of `part`, on 20 examples."""
    tests = tuple(dataclasses.replace(t, examples=20) for t in RUBRIC.tests
                  if t.part == part and t.visible)
    return dataclasses.replace(RUBRIC, tests=tests)


def test_a_mutant_is_killed_or_run_on_the_guests(tmp_path: Path) -> None:
    text = (SOLUTION / "vmm/shadow.py").read_text()
    found = mutants_of(text, "vmm/shadow.py", {"shadow-flush"})
    zeroing = next(m for m in found if m.operator == "dropped-statement"
                   and "write_phys(self.root[view]" in m.diff(text).split("\n-", 1)[1])
    counting = next(m for m in found if m.operator == "off-by-one"
                    and "self.flushes += 2" in m.text)
    rubric = small("shadow-flush")
    killed = grade_mutant(zeroing, rubric, SOLUTION, REPO / "handout", whole=False)
    assert killed.any_kill and killed.visible_kill and killed.killed_by == ["shadow-flush"]
    survivor = grade_mutant(counting, rubric, SOLUTION, REPO / "handout", whole=False)
    assert not survivor.any_kill and survivor.equivalent, survivor.guests
    text = report([killed, survivor, Verdict(counting)], SOLUTION)
    assert "3 mutants: 1 killed" in text and "likely equivalent" in text


def test_limit_takes_each_part_evenly_and_annotations_stay() -> None:
    found = collect(SOLUTION, RUBRIC, [], limit=3)
    per_part = {m.part: [x.line for x in found if x.part == m.part] for m in found}
    assert set(per_part) == set(RUBRIC.parts) - {"whole-guests"}
    assert all(len(lines) == 3 for lines in per_part.values()), per_part
    emulate = per_part["emulate"]
    assert emulate == sorted(emulate) and emulate[-1] - emulate[0] > 20  # not the first lines
    typed = "# BEGIN STUDENT PART t\ndef f(a: int | None) -> tuple[int, int] | None:\n" \
            "    return a\n# END STUDENT PART\n"
    assert [m.operator for m in mutants_of(typed, "t.py")] == ["dropped-statement"]


def the_mutant(part: str, removed: str, added: str) -> Mutant:
    """The mutant of `part` whose diff takes out the line `removed` and puts in `added` (both
    stripped; `removed` may start with the line before it, then ` / `)."""
    file = next(name for name in RUBRIC.editable
                if any(p == part for p, _, _ in part_ranges((SOLUTION / name).read_text())))
    text = (SOLUTION / file).read_text()
    before, _, removed = removed.rpartition(" / ")
    want = (f"\n {before}" if before else "") + f"\n-{removed}\n+{added}"
    found = [m for m in mutants_of(text, file, {part}) if want in _stripped(m.diff(text))]
    assert len(found) == 1, (part, removed, added, len(found))
    return found[0]


def _stripped(diff: str) -> str:
    return "\n".join(line[0] + line[1:].strip() for line in diff.splitlines() if line)


# A mutant of every part that its visible test must kill: for each gap the mutants found and
# the tests now close (the first eight), the mutant that showed it
KILLED = [
    ("trap-dispatch", "reflect(vmm, guest, fault.cause, fault.tval)",
     "reflect(guest, vmm, fault.cause, fault.tval)"),
    ("reflect", "v.sepc = v.pc & ~3", "v.sepc = v.pc & ~4"),
    ("reflect", 'f"the guest\'s trap vector stvec={v.stvec:#010x} cannot be fetched") / return',
     "pass"),
    ("emulate", "emulate_sret(v)", "pass"),
    ("emulate", "return  # a wfi that can never wake stops the guest on the wfi, as on bare "
     "hardware / v.pc += 4", "v.pc += 5"),
    ("hypercall", "return  # a shutdown, like the firmware's, never returns to the guest",
     "pass  # a shutdown, like the firmware's, never returns to the guest"),
    ("hypercall", "if eid < 0x10:", "if eid < 15:"),
    ("shadow-fill", "paging = bool(vcpu.satp & csr.SATP_MODE_SV32)",
     "paging = bool(vcpu.satp | csr.SATP_MODE_SV32)"),
    ("counter-read", "v.x[ins.rd] = csrs.read(v, ins.imm)", "pass"),
    ("sret-wfi", "v.pc = v.sepc", "pass"),
    ("nested-map", "pte = (host >> 12) << 10 | GUEST_LEAF",
     "pte = (host >> 12) << 11 | GUEST_LEAF"),
    ("bounded-buffer", "return self.count == self.capacity",
     "return self.count != self.capacity"),
    ("ipc", "self.wake(ch.receiver)", "pass"),
]


@pytest.mark.parametrize(("part", "removed", "added"), KILLED,
                         ids=[f"{p}:{a}" for p, _, a in KILLED])
def test_a_mutant_of_each_part_dies_on_its_visible_test(tmp_path: Path, part: str,
                                                        removed: str, added: str) -> None:
    rubric = dataclasses.replace(RUBRIC, tests=tuple(t for t in RUBRIC.tests
                                                     if t.part == part and t.visible))
    v = grade_mutant(the_mutant(part, removed, added), rubric, SOLUTION, REPO / "handout",
                     whole=False)
    assert v.visible_kill, v.mutant.diff((SOLUTION / v.mutant.file).read_text())
