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
    # the result: written by, or after, the student's code
    "machine-append": "the grader imports machine.disasm from the lab folder the worker wrote",
    "honest+machine-append": "the grader imports machine.disasm from the lab folder the worker "
                             "wrote",
    "results-daemon": "a daemon outlives the worker and rewrites results.json",
    "honest+results-daemon": "a daemon outlives the worker and rewrites results.json",
    "write-then-kill": "the worker can write results.json and kill the grader",
    "kill-grader": "the worker can kill the grader: no results.json",
    "kill-group": "the worker can kill the grader's process group: no results.json",
    # answers from elsewhere
    "exec-solution": "the worker can read the solution in the repository",
    "symlink-solution": "the grader follows a submission's symlinks to the solution",
    "probe-replace": "the harness's probes run in the student's process",
    "patch-worker": "the harness's probes run in the student's process",
    "honest+patch-worker": "the harness's probes run in the student's process",
    # reading what it should not
    "leak-solution": "the worker can read the solution; the exception's text reaches feedback",
    "leak-passwd": "the worker can read /etc/passwd; the exception's text reaches feedback",
    "leak-rubric": "the worker can read the rubric; the exception's text reaches feedback",
    "leak-symlinks": "the grader follows symlinks to /etc/passwd; the text reaches feedback",
    "fake-results": "a forged answer on the worker's channel: hypothesis's FlakyFailure, with "
                    "the grader's paths, is the feedback",
    "shadow-modules": "the feedback does not say the files outside the editable list were "
                      "ignored",
    "extra-files": "the feedback does not say the files outside the editable list were ignored",
    # hangs, crashes, exhaustion
    "import-loop": "an endless loop at import: each example waits for the worker's start; the "
                   "run overruns the rubric's time",
    "recursion-deep": "a deep recursion is reported as an endless loop",
    "memory": "the worker may use 2 GB (Gradescope gives 768 MB); reported as an endless loop",
    "raise-keyboardinterrupt": "the worker dies of a BaseException; feedback says 'out of "
                               "memory, or exit?'",
    "raise-generatorexit": "the worker dies of a BaseException; feedback says 'out of memory, "
                           "or exit?'",
    "raise-baseexception": "the worker dies of a BaseException; feedback says 'out of memory, "
                           "or exit?'",
    "fork-survivors": "forked processes outlive the grader (no PID namespace)",
    "daemon": "a daemon in its own session outlives the grader (no PID namespace)",
    "socket": "the worker has the network",
    "tmp-file": "the worker can write to /tmp",
    "write-outside": "the worker can write to the repository, home, /dev/shm, /var/tmp",
    "output-flood": "the worker's output lands untrimmed in /tmp (vmlab-worker-PID.stderr)",
    # uploads
    "zip-many-files": "the grader reads every .py of a zip into memory",
    "zip-lying-header": "a bad CRC in the zip: the grader crashes, no results.json",
    # the grader's properties, not the sandbox
    "flush-does-nothing": "grader: shadow-flush credits a no-op flush when fill makes no entry",
    "wrong-types-negative": "grader: shadow-flush credits a no-op flush when fill returns -1",
}
