"""What a student reads when a test fails: Markdown that Gradescope renders (`output_format`
"md") and that `vmlab check` prints as it is, so it must read well both ways: diagrams and
tables of numbers go in fenced code blocks (monospace on Gradescope, unchanged in a terminal).

One read should be enough to act, in this order: which part and which function to look at;
the first place where the student's VMM and the specification part ways; the failing example
(and how hypothesis found it); the student's own traceback if their code raised; the command
that replays it. A stub that is not written yet gets one line and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .properties import Counterexample, Property
from .sandbox import StudentError, WorkerFailure

BLOB = re.compile(r"@reproduce_failure\('([^']+)', b'([^']+)'\)")
NOT_WRITTEN = "**A stub is not written yet:**"  # check.py gathers the tests whose report starts so

# the functions of each part (LAB.md's tables of parts)
FUNCTIONS = {
    "trap-dispatch": "handle", "reflect": "reflect", "emulate": "emulate, emulate_csr",
    "counter-read": "emulate_counter_read", "sret-wfi": "emulate_sret, emulate_wfi",
    "hypercall": "hypercall", "shadow-fill": "ShadowTables.fill",
    "shadow-flush": "ShadowTables.flush", "nested-map": "GStage.map",
    "bounded-buffer": "Channel.full, empty, put, take",
    "ipc": "Channels.send, Channels.receive",
}
FILES = {"trap-dispatch": "vmm/trap.py", "reflect": "vmm/trap.py", "emulate": "vmm/trap.py",
         "counter-read": "vmm/trap.py", "sret-wfi": "vmm/trap.py",
         "hypercall": "vmm/hypercalls.py", "shadow-fill": "vmm/shadow.py",
         "shadow-flush": "vmm/shadow.py", "nested-map": "vmm/nested.py",
         "bounded-buffer": "vmm/channels.py", "ipc": "vmm/channels.py"}
STUB = re.compile(r"NotImplementedError: ([a-z-]+): ")
FRAME = re.compile(r'File "(vmm/[a-z_]+\.py)", line (\d+), in (\w+)')


@dataclass(frozen=True)
class Found:
    """How hypothesis came by the failing example: at which example it first failed, and
    whether shrinking made it smaller (or the time ran out first)."""

    at: int  # the example (1-based) that failed first
    of: int  # the examples the test runs
    shrunk: bool
    out_of_time: bool = False
    shrink_limit: int = 0  # the examples shrinking stopped at (the rubric's), 0 if it finished

    def sentence(self) -> str:
        first = f"Found at example {self.at} of {self.of}"
        if self.out_of_time:
            return (f"{first}; the test's time ran out while hypothesis was shrinking it, so "
                    "a smaller one may exist.")
        if self.shrink_limit:
            return (f"{first}, then shrunk by hypothesis for {self.shrink_limit} examples (the "
                    "rubric's limit): this is the smallest failing case it had found, and a "
                    "smaller one may exist.")
        if self.shrunk:
            return f"{first}, then shrunk by hypothesis to the smallest failing case it found."
        return f"{first}; hypothesis found no smaller case that fails the same way."


def where(part: str, traceback: str = "") -> str:
    """'**Look at:** the function, file (part)': for a whole-guest test, the deepest frame of
    the student's traceback if there is one."""
    frames = FRAME.findall(traceback)
    if part not in FUNCTIONS and frames:
        file, line, func = frames[-1]
        return f"**Look at:** `{func}` in `{file}` (line {line}), where your code raised."
    if part not in FUNCTIONS:
        return ("**Look at:** the parts this guest uses (Part 1, and its paging part): make "
                "their own tests pass first, one part at a time; then `vmlab replay` shows the "
                "first step where the two runs part.")
    return f"**Look at:** `{FUNCTIONS[part]}` in `{FILES[part]}` (part `{part}`)."


def not_written(part: str, message: str) -> str:
    """The one line of a stub: which part still raises NotImplementedError."""
    m = re.match(r"([a-z-]+): ", message)
    stub = m.group(1) if m else part
    fn, file = FUNCTIONS.get(stub, "the stub"), FILES.get(stub, "vmm/")
    return f"{NOT_WRITTEN} part `{stub}` (`{fn}` in `{file}`) still raises NotImplementedError."


def replay_command(test_id: str, notes: list[str]) -> str | None:
    """`vmlab replay TEST BLOB` from hypothesis's note, if it left one."""
    for note in notes:
        m = BLOB.search(note)
        if m:
            return f"vmlab replay {test_id} {m.group(1)}:{m.group(2)}"
    return None


def failure(prop: Property, test_id: str, exc: BaseException, notes: list[str],
            visible: bool = True, part: str = "", found: Found | None = None) -> str:
    """The Markdown for one failed test."""
    if isinstance(exc, StudentError) and exc.kind == "NotImplementedError":
        return not_written(part, exc.message)
    detail = getattr(exc, "detail", "") or ""
    stub = STUB.search(detail) if isinstance(exc, Counterexample) else None
    if stub:  # a whole guest ran into a stub
        return not_written(stub.group(1), f"{stub.group(1)}: ")
    traceback = exc.traceback if isinstance(exc, StudentError | WorkerFailure) else detail
    # Gradescope heads the box with the test's name, and `vmlab check` with its id and title
    out = [where(part, traceback), ""]
    if isinstance(exc, StudentError):
        out += [f"**First difference:** your code raised `{exc.kind}: "
                f"{_one_line(exc.message)}` on this example."]
    elif isinstance(exc, WorkerFailure):
        out += [f"**First difference:** the worker that runs your VMM failed ({exc.kind}): "
                f"{exc.detail}."]
    elif isinstance(exc, Counterexample):
        out += [f"**First difference:** {exc.divergence}."]
    else:
        # hypothesis's own messages (a FlakyFailure, say) name files: never the grader's paths
        text = re.sub(r"(?:/[\w.\-]+)+/([\w.\-]+\.py)", r"\1", f"{type(exc).__name__}: {exc}")
        out += [f"**Unexpected error in the check:** `{text}`"]
    example = getattr(exc, "example", "") or ""
    if callable(example):
        example = example()
    if example:
        out += ["", "**The failing case.** " + (found.sentence() if found else ""), "",
                example.strip()]
    if traceback.strip():
        out += ["", "**Your code's traceback** (your files only):" if
                isinstance(exc, StudentError) or "Traceback" in traceback else "**Detail:**",
                "", "```", traceback.strip()[-3000:], "```"]
    out += ["", f"_{prop.meaning}_"]
    out += _rerun(prop, test_id, notes, visible)
    return "\n".join(out)


def _rerun(prop: Property, test_id: str, notes: list[str], visible: bool) -> list[str]:
    if prop.stateful:
        # `vmlab replay` cannot rebuild a state machine's run from hypothesis's token; the
        # operations above are the run, and `vmlab check` reruns a visible test's very runs
        if not visible:
            return []
        return ["", "**Rerun it** from your handout folder (the same runs, in the same "
                "order):", "", f"```\nvmlab check --test {test_id}\n```"]
    command = replay_command(test_id, notes)
    if command is None:
        return []
    what = ("the case, then both runs step by step, side by side" if "guest" in prop.tags
            or prop.name.startswith(("equivalence", "efficiency", "isolation"))
            else "the case, checked again")
    return ["", f"**Replay it** from your handout folder ({what}):", "",
            f"```\n{command}\n```"]


def _one_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200].replace("`", "'")


def ignored_files(names: list[str], editable: tuple[str, ...], shown: int = 8) -> str:
    listed = ", ".join(f"`{n}`" for n in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return (f"Only the editable files ({', '.join(f'`{e}`' for e in editable)}) are graded; "
            f"the other files of your submission were ignored: {listed}{more}.")


def missing_files(names: list[str]) -> str:
    return ("These files were not in your submission, so the handout's stubs were graded in "
            "their place: " + ", ".join(f"`{n}`" for n in names) + ".")
