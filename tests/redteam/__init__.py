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
    "probe-replace-all": (
        "probe-replace's hole measured whole: every part probe that reports the virtual CPU, "
        "answered by a scratch Hart of the worker's machine package given the virtual CPU's "
        "fields (trap entry, sret, the interpreter's step, wfi, the SBI firmware), no VMM code, "
        "earns 22 of the 34 points of the Part 1 tests, visible and hidden: reflect 6/6, "
        "emulate 8/8 (plus LAB.md's two-line rule that the hypervisor CSRs and hfence are "
        "illegal), counter-read 4/4, sret-wfi 4/4. Not forged: hypercall 0/6 (the firmware "
        "answers every SBI call drawn, but has no IPC extension; some 17 lines of IPC code of "
        "its own made it 6/6) and trap-dispatch 0/8 (LAB.md's routing table is the VMM's "
        "policy, which no class of the machine computes). Open for the same reason as "
        "probe-replace"),
}
