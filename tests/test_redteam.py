"""The red-team suite under pytest: each hostile submission graded through `vmlab grade` as
Gradescope runs it, and every check of tests/redteam/run.py. The attacks the sandbox does not
stop yet are expected failures (tests/redteam/__init__.py, KNOWN_OPEN), strictly: one that
starts passing fails here until its name is removed from the list."""

from __future__ import annotations

import os
import sys

import pytest
from redteam import KNOWN_OPEN
from redteam.attacks import ATTACKS
from redteam.run import PATHS, Outcome, run_attack

# Where bubblewrap cannot run (Gradescope's containers: Docker's default seccomp forbids user
# namespaces), the worker's own user, its limits, seccomp and the subreaper must still hold
# against these. (Not every attack: there the worker may read what any user may read.)
WITHOUT_BUBBLEWRAP = ("results-daemon", "write-then-kill", "kill-grader", "kill-group",
                      "daemon", "fork-survivors", "fork-bomb", "socket", "tmp-file",
                      "import-loop", "memory", "output-flood", "leak-rubric",
                      "forge-counts", "hardware-link", "probe-replace", "probe-replace-all",
                      "scratch-reflect", "engine-from-disk", "patch-worker", "bare-copy",
                      "write-outside")
# through Gradescope's own run_autograder, as the autograder zip lays it out
THROUGH_THE_AUTOGRADER = ("results-daemon", "write-then-kill", "zip-climbing",
                          "honest+machine-append")
# through `vmlab batch`, beside an honest submission that must keep every point: the attacks on
# the grading process, its results and its machine, and those that take another's machine
THROUGH_A_BATCH = ("results-daemon", "write-then-kill", "kill-grader", "kill-group", "daemon",
                   "fork-bomb", "memory", "output-flood", "zip-climbing", "zip-bomb",
                   "honest+machine-append", "probe-replace-all", "engine-from-disk")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the red team reads /proc and mounts a private /tmp")


def _param(name: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_OPEN[name])] \
        if name in KNOWN_OPEN else []
    return pytest.param(name, marks=marks, id=name)


def test_known_open_are_attacks():
    assert set(KNOWN_OPEN) <= set(ATTACKS), set(KNOWN_OPEN) - set(ATTACKS)


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="without bubblewrap the boundary is "
                             "the worker's own user, which takes root to become (as on "
                             "Gradescope)")


@pytest.fixture
def no_bubblewrap(monkeypatch):
    monkeypatch.setenv("VMLAB_BUBBLEWRAP", "0")


def graded_as_deserved(name: str, path: str = "grade") -> Outcome:
    outcome = run_attack(ATTACKS[name], PATHS[path])
    assert outcome.passed, (f"{name}: got {outcome.score}, deserved {outcome.deserved:g}; "
                            + "; ".join(outcome.problems))
    return outcome


@pytest.mark.parametrize("name", [_param(n) for n in ATTACKS])
def test_attack_graded_as_deserved(name):
    graded_as_deserved(name)


@AS_ROOT
@pytest.mark.parametrize("name", [_param(n) for n in WITHOUT_BUBBLEWRAP])
def test_attack_without_bubblewrap(name, no_bubblewrap):
    outcome = graded_as_deserved(name)
    used = outcome.layers.split(" (missing")[0].split(",")
    assert "bubblewrap" not in used and "separate-user" in used, outcome.layers


@pytest.mark.parametrize("name", THROUGH_THE_AUTOGRADER)
def test_attack_through_the_autograder(name):
    graded_as_deserved(name, "autograder")


@AS_ROOT
@pytest.mark.parametrize("name", ("results-daemon", "honest+results-daemon", "write-then-kill",
                                  "leak-rubric", "engine-from-disk"))
def test_attack_through_the_autograder_without_bubblewrap(name, no_bubblewrap):
    """Gradescope's own configuration: run_autograder as root, in a container whose seccomp
    forbids the user namespaces bubblewrap needs."""
    graded_as_deserved(name, "autograder")


@pytest.mark.parametrize("name", THROUGH_A_BATCH)
def test_attack_through_a_batch(name):
    graded_as_deserved(name, "batch")


@AS_ROOT
@pytest.mark.parametrize("name", ("results-daemon", "engine-from-disk"))
def test_attack_through_a_batch_without_bubblewrap(name, no_bubblewrap):
    """Two submissions' workers side by side, each of its own user: neither reaches the other's
    results or the other's machine."""
    graded_as_deserved(name, "batch")
