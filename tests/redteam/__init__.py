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
        "a Part 1 test checks the virtual CPU one function of the VMM leaves: the VMM's own "
        "state, held in the student's process, so the submission's word whatever the harness "
        "(every hardware fact rests on the grader's hardware, hardware.Replay). Replacing the "
        "worker's reflect probe with the machine's own trap entry on a scratch Hart (the worker "
        "holds the machine's classes; the handout ships their source anyway) earns reflect's 3 "
        "points, 6 with the hidden test. No harness can tell it from a VMM that emulates with "
        "an interpreter; LAB.md forbids it (\"Your parts are your code\") and `vmlab batch` "
        "lists its lines for the staff to read (review.py, tests/test_review.py). Open by "
        "design: the same scratch Hart inside trap.py's reflect earns reflect's points and "
        "the whole-guest tests' too (README, \"What the part tests rest on\"), so moving the "
        "Part 1 weights would close only the probe replacement, not the delegation"),
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
