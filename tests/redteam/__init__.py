"""The red-team suite: hostile submissions run through the grader as Gradescope runs it.

attacks.py builds each submission (the handout's stubs or the solution's files, plus the attack)
and says what it deserves; run.py grades it in a subprocess and checks that the grader survived
it; `make redteam` prints the table; tests/test_redteam.py runs it under pytest.

KNOWN_OPEN: the attacks the sandbox does not stop yet. Under pytest each is an expected failure
(strict: one that starts passing fails the suite until its name is removed here). Remove a
name when the sandbox closes it; never weaken a check in run.py instead.
"""

from __future__ import annotations

KNOWN_OPEN: dict[str, str] = {}
