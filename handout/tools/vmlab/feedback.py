"""What a student reads when a test fails: Markdown that Gradescope renders.

One read should be enough to act: which property failed and what it means in the lecture's
terms, the first place where the student's VMM and the specification part ways, the (shrunk)
example, the student's own traceback if their code raised, and the command that replays it.
"""

from __future__ import annotations

import re

from .properties import Counterexample, Property
from .sandbox import StudentError, WorkerFailure

BLOB = re.compile(r"@reproduce_failure\('([^']+)', b'([^']+)'\)")


def replay_command(test_id: str, notes: list[str]) -> str | None:
    """`vmlab replay TEST BLOB` from hypothesis's note, if it left one."""
    for note in notes:
        m = BLOB.search(note)
        if m:
            return f"vmlab replay {test_id} {m.group(1)}:{m.group(2)}"
    return None


def failure(prop: Property, test_id: str, exc: BaseException, notes: list[str],
            visible: bool = True) -> str:
    """The Markdown for one failed test."""
    out = [f"**{prop.title}: failed.**", "", prop.meaning, ""]
    if isinstance(exc, StudentError):
        if exc.kind == "NotImplementedError":
            out += [f"This part is not written yet: `{exc.message}`."]
            return "\n".join(out)
        out += ["**Your code raised an exception** on this example:", "",
                "```", exc.traceback.strip() or f"{exc.kind}: {exc.message}", "```"]
    elif isinstance(exc, WorkerFailure):
        out += [f"**The worker that runs your VMM failed** ({exc.kind}): {exc.detail}."]
    elif isinstance(exc, Counterexample):
        out += [f"**First difference:** {exc.divergence}."]
        if exc.detail:
            out += ["", "```", exc.detail.strip()[-3000:], "```"]
    else:
        out += [f"**Unexpected error in the check:** `{type(exc).__name__}: {exc}`"]
    example = getattr(exc, "example", "")
    if example:
        out += ["", "**The example** (hypothesis shrank it to the smallest it found):", "",
                example]
    if prop.stateful:
        # `vmlab replay` cannot rebuild a state machine's run from hypothesis's token; the
        # operations above are the run, and `vmlab check` reruns a visible test's very runs
        if visible:
            out += ["", "**Rerun it** on your machine, from your handout folder (the same "
                    "runs, in the same order):", "", f"```\nvmlab check --test {test_id}\n```"]
        return "\n".join(out)
    command = replay_command(test_id, notes)
    if command:
        out += ["", "**Replay it** on your machine, from your handout folder:", "",
                f"```\n{command}\n```"]
    return "\n".join(out)


def missing_files(names: list[str]) -> str:
    return ("These files were not in your submission, so the handout's stubs were graded in "
            "their place: " + ", ".join(f"`{n}`" for n in names) + ".")
