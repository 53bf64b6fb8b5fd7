"""review.py: the lines course staff should read. Nothing in the solution, the handout or any
correct design or realistic bug of the corpora; the plain forms of the probe replacements the
tests cannot tell from a student's work (tests/redteam, KNOWN_OPEN) named by file and line."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import buggy_vmms
import designs
import part_corpus
import pytest
from redteam.attacks import ATTACKS, Context
from vmlab.review import review
from vmlab.rubric import load as load_rubric
from vmlab.submission import assemble

REPO = Path(__file__).resolve().parents[1]
EDITABLE = list(load_rubric().editable)
VARIANTS = [(d.name, d.file, list(d.edits)) for d in [*designs.DESIGNS, *part_corpus.CORRECT,
                                                      *part_corpus.BUGS]] + \
    [(b.name, b.file, [(b.old, b.new)]) for b in buggy_vmms.BUGS]


def found(lab: Path) -> list[str]:
    return [str(f) for f in review(lab, EDITABLE)]


@pytest.mark.parametrize("folder", ["solution", "handout"])
def test_the_solution_and_the_handout_have_nothing_to_read(folder: str) -> None:
    assert found(REPO / folder) == []


def test_no_design_or_bug_of_the_corpora_has_anything_to_read(tmp_path: Path) -> None:
    """92 VMMs written otherwise, correct and not, from the contract alone: a finding in any
    would send the staff to read honest work."""
    assert len(VARIANTS) > 80
    for name, file, edits in VARIANTS:
        sub = buggy_vmms.edited_submission(tmp_path / name, REPO / "solution", EDITABLE, file,
                                           edits)
        assert found(sub) == [], name


@pytest.mark.parametrize("name, expected", [
    ("probe-replace", ["builds a Hart of its own", "Hart.take_trap",
                       "reaches the process's other modules"]),
    ("probe-replace-all", ["builds a Hart of its own", "Hart._trap",
                           "answers with the machine's SBI firmware"]),
    ("scratch-reflect", ["builds a Hart of its own", "Hart.take_trap"]),
    ("engine-from-disk", ["Hart.take_trap", "imports modules by name at run time"]),
    ("patch-worker", ["reaches the worker's probes"]),
    ("bare-engine", ["imports by name at run time", "builds a machine of its own"]),
    ("patch-frameworks", ["reaches the test framework"]),
    ("hardware-link", ["uses the link to the grader's hardware", "opens sockets"]),
])
def test_the_attacks_on_the_probes_are_named_for_the_staff(name: str,
                                                           expected: list[str]) -> None:
    with tempfile.TemporaryDirectory() as t:
        sub = ATTACKS[name].build(Path(t), Context("rt-review", 0))
        lab, _, missing = assemble(sub, REPO / "handout", tuple(EDITABLE), into=Path(t) / "lab")
        lines = [str(f) for f in review(lab, [n for n in EDITABLE if n not in missing])]
    for what in expected:
        assert any(what in line for line in lines), (what, lines)
    assert all(line.startswith("vmm/") and int(line.split(":")[1]) > 0 for line in lines)


@pytest.mark.parametrize("code, what", [
    ("from machine.hart import Hart as H\nH(None)", "builds a Hart"),
    ("from machine import hart\nhart.Hart(None)", "builds a Hart"),
    ("import machine.hart\nmachine.hart.Hart(None)", "builds a Hart"),
    ("import machine.hart as mh\nmh.Hart(None)", "builds a Hart"),
    ("from machine.hart import *\nHart(None)", "builds a Hart"),
    ("from machine.sbi import *\nhandler = firmware", "SBI firmware"),
    ("from machine import sbi as s\ns.firmware(None)", "SBI firmware"),
    ("from machine import execute", "interpreter"),
    ("from machine.sbi import firmware\nhandler = firmware", "SBI firmware"),
    ("def f(v):\n    v.take_trap(1, 2)", "Hart.take_trap"),
    ("exec('x = 1')", "code made at run time"),
    ("m = __import__('machine.hart')", "imports by name"),
    ("import sys as q\nq.modules['vmlab.worker']", "sys.modules"),
    ("import os\nos._exit(0)", "os._exit"),
    ("import vmlab.worker", "grader's own code"),
    ("from machine import hart\ngetattr(hart, 'Ha' + 'rt')(None)", "getattr"),
    ("__builtins__['ex' + 'ec']('x = 1')", "builtins"),
    ("globals()['x'] = 1", "globals()"),
    ("def f():\n    pass\nf.__code__ = compile", "swaps a function's code"),
])
def test_each_plain_form_is_named_at_its_line(tmp_path: Path, code: str, what: str) -> None:
    lab = tmp_path / "lab"
    (lab / "vmm").mkdir(parents=True)
    (lab / "vmm" / "trap.py").write_text("x = 0\n\n" + textwrap.dedent(code) + "\n")
    [finding] = [f for f in review(lab, ["vmm/trap.py"]) if what in f.what]
    assert finding.file == "vmm/trap.py" and finding.line >= 3


def test_what_the_parts_use_of_the_machine_is_not_named(tmp_path: Path) -> None:
    """The lab hands the parts the machine's CSR rules, decoder, SBI table and types: using
    them, or naming Hart and Machine in a hint, is the work; and a debugging print switched
    on from the environment is what students write."""
    lab = tmp_path / "lab"
    (lab / "vmm").mkdir(parents=True)
    (lab / "vmm" / "trap.py").write_text(textwrap.dedent("""
        from machine import Machine, csrs, sbi
        from machine.decode import decode
        from machine.hart import Hart, TrapEvent
        import os
        import re
        import sys

        DEBUG = os.environ.get("VMM_DEBUG")
        if DEBUG:
            print("trap.py loaded", file=sys.stderr)

        def emulate(vmm: Machine, v, bits: int, h: Hart | None = None) -> None:
            ins = decode(bits)
            csrs.write(v, ins.imm, csrs.read(v, ins.imm))
            re.compile("x").match("x")
            return sbi.base(0, 0)
        """))
    assert review(lab, ["vmm/trap.py"]) == []


def test_a_file_that_does_not_parse_or_is_missing_is_left_to_the_grader(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    (lab / "vmm").mkdir(parents=True)
    (lab / "vmm" / "trap.py").write_text("def broken(:\n")
    assert review(lab, ["vmm/trap.py", "vmm/shadow.py"]) == []
