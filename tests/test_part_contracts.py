"""The part tests judge a part by its contract, not by the solution's design.

Correct parts written otherwise, from LAB.md and the docstrings alone (tests/part_corpus.py),
earn their part's full marks; realistic bugs lose their part's points; a submission whose every
hook does nothing, or answers with the wrong type, earns nothing on the parts graded here. The
part tests run the student's code with the handout's own collaborators (worker.py): the trap
handlers seen from their own side, vmm.guest.Guest, GuestMemory and a Channel of the handout's
class.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import buggy_vmms
import pytest
from part_corpus import BUGS, CORRECT, Variant
from test_grader import HANDOUT, RUBRIC, SOLUTION, grade, scores

# the parts whose tests run the student's part with the real collaborators (worker.py)
PARTS = ("trap-dispatch", "reflect", "emulate", "counter-read", "sret-wfi", "hypercall",
         "shadow-flush", "bounded-buffer", "ipc")


def submission(tmp_path: Path, v: Variant) -> Path:
    return buggy_vmms.edited_submission(tmp_path / "submission", SOLUTION, RUBRIC.editable,
                                        v.file, list(v.edits))


@pytest.mark.parametrize("v", CORRECT, ids=[v.name for v in CORRECT])
def test_a_correct_part_in_another_design_earns_full_marks(tmp_path: Path, v: Variant) -> None:
    """Its part's tests, visible and hidden (at most 200 examples: the suite's time), give it
    every point."""
    results = grade(tmp_path, submission(tmp_path, v),
                    [dataclasses.replace(t, examples=min(t.examples, 200))
                     for t in RUBRIC.tests if t.part == v.part])
    assert all(t["score"] == t["max_score"] for t in results["tests"]), \
        (v.name, [t["output"] for t in results["tests"] if t["score"] < t["max_score"]])


@pytest.mark.parametrize("v", BUGS, ids=[v.name for v in BUGS])
def test_a_realistic_bug_loses_its_parts_points(tmp_path: Path, v: Variant) -> None:
    """On its part's visible test, which a student sees with `make check`."""
    results = grade(tmp_path, submission(tmp_path, v),
                    [t for t in RUBRIC.tests if t.part == v.part and t.visible])
    [test] = results["tests"]
    assert test["score"] == 0, (v.name, test["output"])


def stubs_replaced(tmp_path: Path, body: str) -> Path:
    """The handout's files, every stub's `raise NotImplementedError(...)` replaced by `body`."""
    sub = tmp_path / "submission"
    for name in RUBRIC.editable:
        text = (HANDOUT / name).read_text()
        text = re.sub(r"raise NotImplementedError\(.*\)", body, text)
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text(text)
    return sub


@pytest.mark.parametrize("body", ["return None", "return 1", "return b''"])
def test_hooks_that_do_nothing_or_answer_nonsense_earn_nothing(tmp_path: Path,
                                                               body: str) -> None:
    """No points for doing nothing: a flush that flushes nothing, a ring whose full() is 1."""
    tests = [dataclasses.replace(t, examples=min(t.examples, 60)) for t in RUBRIC.tests
             if t.visible and t.part in PARTS]
    s = scores(grade(tmp_path, stubs_replaced(tmp_path, body), tests))
    assert all(score == 0 for score, _ in s.values()), s


def test_the_ipc_tests_guests_are_the_handouts() -> None:
    """Channels runs over vmm.guest.Guest with GuestMemory (host_address and all), and its
    channels are of the handout's Channel class with the ring operations replaced only."""
    from vmlab import worker
    from vmm import channels, guest, guestmem
    worker.probe_ipc_start({"guests": 2, "size": 0x2000, "pairs": [[0, 1, 2]]})
    g = worker.SESSION["guests"][0]
    assert type(g) is guest.Guest and g.waiting_on is None and g.running
    assert type(g.mem) is guestmem.GuestMemory and g.mem.host_address(0x8000_0000)
    [ch] = worker.SESSION["channels"].table.values()
    assert isinstance(ch, channels.Channel) and (ch.capacity, ch.count, ch.head) == (2, 0, 0)
    assert {n for n in vars(type(ch)) if not n.startswith("__")} == {
        "full", "empty", "put", "take"}
