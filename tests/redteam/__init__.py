"""The red-team suite: hostile submissions run through the grader as Gradescope runs it.

attacks.py builds each submission (the handout's stubs or the solution's files, plus the attack)
and says what it deserves; run.py grades it in a subprocess and checks that the grader survived
it; `make redteam` prints the table; tests/test_redteam.py runs it under pytest.

KNOWN_OPEN: the attacks the sandbox does not stop yet. Under pytest each is an expected failure
(strict: one that starts passing fails the suite until its name is removed here). Remove a
name when the sandbox closes it; never weaken a check in run.py instead.
"""

from __future__ import annotations

KNOWN_OPEN: dict[str, str] = {
    "probe-replace": (
        "the worker runs its VMM on a copy of the hardware (the grader replays the log on its "
        "own, hardware.Replay), so the machine's classes are in the worker's process: a "
        "submission that replaces the worker's reflect probe computes the virtual CPU's state "
        "with the machine's own trap entry, which no hardware fact contradicts (3 points). "
        "Every hardware fact rests on the grader; what a part probe reports of the VMM's own "
        "state is the worker's word, as forgeable as it was by pasting the handout's trap "
        "entry into a submission. Open until the part probes' measurements move to the grader "
        "too (or the copy's classes leave the worker's namespace)"),
}
