"""`vmlab replay TEST TOKEN`: rerun exactly the example a failure report showed.

The token is hypothesis's own record of the example's choices (VERSION:BLOB, as the report
prints it), so the example is rebuilt by the same strategy. Replay prints what the report
prints (where to look, the example, the first difference), checked again against the VMM in the
current folder in a worker as in grading; for a whole guest it then traces the program on the
bare machine and under your VMM, side by side, up to the first step where they differ and a few
steps past it. `--raw` adds hypothesis's own record of the example.

Bounded: a whole-guest replay prints at most MAX_TRACE_ROWS trace rows of under 160 characters
(tests/test_feedback.py holds it to 12 KB in all).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from . import labroot
from .errors import UsageError, fail

BEFORE, AFTER = 8, 5  # trace rows shown before the first difference, and past it
MAX_TRACE_ROWS = BEFORE + 1 + AFTER
SIDE = 72  # characters of one side of a trace row
STEPS = 2000  # the bare run's budget, as the equivalence check's (guests.STEPS)
HOST_STEPS = 60_000  # the host's budget for the traced guest
TRACE_TIMEOUT = 60  # seconds for the traced guest under the student's VMM


def _example(prop: Any, version: str, blob: str, raw: bool) -> Any:
    from hypothesis import HealthCheck, Verbosity, given, reproduce_failure, settings
    seen: list = []

    @reproduce_failure(version, blob.encode())
    @settings(database=None, deadline=None, suppress_health_check=list(HealthCheck),
              verbosity=Verbosity.normal if raw else Verbosity.quiet)
    @given(prop.strategy())
    def capture(example: object) -> None:
        seen.append(example)
        raise _Captured()

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            capture()
    except _Captured:
        pass
    except Exception as e:  # noqa: BLE001 - a token from another version, or garbled
        raise UsageError(f"the replay token does not fit test {prop.name!r} with this "
                         f"version of vmlab and hypothesis ({type(e).__name__}); copy it "
                         "again from the report") from None
    if not seen:
        raise UsageError("the replay token did not produce an example")
    if raw:
        print("## hypothesis's record of the example (--raw)\n\n" + printed.getvalue()
              + f"\n{seen[0]!r}\n")
    return seen[0]


class _Captured(Exception):
    pass


# ----- the two runs, step by step ---------------------------------------------------------------

def _effects(mode: int, pc: int, x: list[int], new_mode: int, new_pc: int,
             new_x: list[int]) -> tuple:
    """What a step did that the guest can see: the registers it wrote, where it went next."""
    wrote = tuple((i, new_x[i]) for i in range(1, 32) if new_x[i] != x[i])
    return (mode, pc, wrote, new_mode, new_pc)


def bare_steps(program: Any, limit: int = STEPS) -> tuple[list[list], str]:
    """The bare machine's steps that change what the guest sees (pc, mode, registers): each
    [mode, pc, word, writes, new mode, new pc]; and how it stopped."""
    from machine import Machine
    m = Machine(ram_size=8 << 20, fast=False)
    for addr, data in program.segments:
        m.write_phys(addr, data)
    program.state.apply(m)
    h = m.hart
    steps: list[list] = []
    stop = None
    for _ in range(limit):
        before = (h.mode, h.pc, list(h.x))
        stop = m.run_one_plain()
        e = _effects(*before, h.mode, h.pc, list(h.x))
        if e[2] or e[3:] != before[:2]:
            steps.append([e[0], e[1], h.last_word, [list(w) for w in e[2]], e[3], e[4]])
        if stop is not None:
            break
    how = f"{stop.reason}: {stop.detail}" if stop else f"still running after {limit} steps"
    return steps, how


def guest_steps_main() -> None:
    """In a child process in the handout folder: the same program as a guest of the student's
    VMM, stepped one host instruction at a time; prints JSON {steps, stop}."""
    from vmm import VMM

    from .properties.guests import trim
    from .worker import _apply_state, _program
    a = json.loads(sys.stdin.read())
    out = sys.stdout
    sys.stdout = sys.stderr  # the student's prints stay out of the answer
    steps: list[list] = []
    how = f"still running after {a['host_steps']} host steps"
    try:
        vmm = VMM(host_memory=128 << 20, fast=False)
        guest = vmm.create_guest(_program(a["segments"], a["state"]["pc"]),
                                 memory=a["memory"], paging=a["paging"])
        _apply_state(guest.vcpu, a["state"])
        vmm.run(0)  # enters the guest
        h = vmm.machine.hart
        for _ in range(a["host_steps"]):
            before = (guest.vcpu.mode, h.pc, list(h.x))
            stop = vmm.machine.run_one_plain()
            if stop is not None:
                how = f"{stop.reason}: {trim(stop.detail)}" if stop.reason == "handler-error" \
                    else f"{stop.reason}: {stop.detail}"
                break
            if guest.stop is not None:
                how = f"{guest.stop.reason}: {guest.stop.detail}"
                break
            e = _effects(*before, guest.vcpu.mode, h.pc, list(h.x))
            if e[2] or e[3:] != before[:2]:
                steps.append([e[0], e[1], h.last_word, [list(w) for w in e[2]], e[3], e[4]])
                if len(steps) >= a["limit"]:
                    break
    except Exception as e:  # noqa: BLE001 - the student's VMM failed to set up the guest
        how = f"your VMM raised {type(e).__name__}: {e}"
    out.write(json.dumps({"steps": steps, "stop": how[:3000]}))


def guest_steps(root: Path, program: Any, paging: str, limit: int) -> tuple[list[list], str]:
    from .properties.guests import GUEST_RAM, as_request
    request = as_request(program, paging)
    request.update(memory=GUEST_RAM, host_steps=HOST_STEPS, limit=limit)
    grader = str(Path(__file__).resolve().parents[1])
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; sys.path[:0] = [sys.argv[1], '.']; from "
             "vmlab.replay import guest_steps_main; guest_steps_main()", grader],
            input=json.dumps(request), capture_output=True, text=True, cwd=root,
            timeout=TRACE_TIMEOUT)
        answer = json.loads(done.stdout)
    except subprocess.TimeoutExpired:
        return [], f"no answer within {TRACE_TIMEOUT} s: an endless loop in your VMM?"
    except ValueError:
        return [], f"the traced run failed: {done.stderr.strip()[-500:]}"
    return answer["steps"], answer["stop"]


def side(step: list | None) -> str:
    """One side of a trace row: mode, pc, instruction, what it wrote, where it went."""
    if step is None:
        return "(nothing it can see changes any more)"
    from machine.disasm import disassemble
    from machine.trace import ABI
    mode, pc, word, wrote, new_mode, new_pc = step
    text = disassemble(word, pc) if word is not None else "(interrupt)"
    effects = [f"{ABI[i]}={v:#x}" for i, v in wrote[:2]]
    if len(wrote) > 2:
        effects.append(f"+{len(wrote) - 2} regs")
    if new_pc != pc + 4 or new_mode != mode:
        effects.append(f"-> {'SU'[new_mode == 0]} {new_pc:08x}")
    row = f"{'SU'[mode == 0]} {pc:08x}  {text[:26]:<26} {' '.join(effects)}"
    return row[:SIDE]


def side_by_side(bare: list[list], theirs: list[list]) -> tuple[str, int | None]:
    """The trace rows around the first difference (or the last rows, if none), and where."""
    key = [(s[0], s[1], [tuple(w) for w in s[3]], s[4], s[5]) for s in bare]
    their_key = [(s[0], s[1], [tuple(w) for w in s[3]], s[4], s[5]) for s in theirs]
    n = max(len(bare), len(theirs))
    first = next((i for i in range(n) if i >= len(key) or i >= len(their_key)
                  or key[i] != their_key[i]), None)
    end = n if first is None else min(n, first + 1 + AFTER)
    start = max(0, (first if first is not None else end) - BEFORE)
    rows = [f"{'step':>6}  {'the bare machine':<{SIDE}} | under your VMM"]
    if start:
        rows.append(f"{'':>6}  ({start} identical steps before these)")
    for i in range(start, end):
        mark = ">>" if i == first else "  "
        b = side(bare[i] if i < len(bare) else None)
        t = side(theirs[i] if i < len(theirs) else None)
        rows.append(f"{mark}{i + 1:>4}  {b:<{SIDE}} | {t}".rstrip())
    return "\n".join(rows), first


def trace_both(root: Path, program: Any, paging: str) -> None:
    bare, bare_stop = bare_steps(program)
    theirs, their_stop = guest_steps(root, program, paging, len(bare) + AFTER + 1)
    rows, first = side_by_side(bare, theirs)
    print(f"## Both runs, step by step ({paging} paging)\n")
    print(wrapped("Steps that change the pc, the mode or a register, as the guest sees them "
                  "(a hidden fault, a time slice: not steps); `>>` marks the first that "
                  "differs.\n"))
    print("```\n" + rows + "\n```\n")
    if first is None:
        print(wrapped(f"The two runs agree over all {len(bare)} steps: the difference is in "
                      "state they did not read back (a CSR, memory, the console); see the "
                      "first difference above."))
    print(wrapped(f"\nThe bare machine: {bare_stop}\n\nUnder your VMM: {their_stop.strip()}"))


# ----- the command ------------------------------------------------------------------------------

def wrapped(text: str, width: int = 100) -> str:
    """Prose wrapped for a terminal; code blocks and table rows as they are."""
    import textwrap
    out, code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            code = not code
        if code or line.startswith(("```", "|")) or len(line) <= width:
            out.append(line)
        else:
            out += textwrap.wrap(line, width, break_on_hyphens=False)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def whole_program(test: str, example: Any) -> tuple[Any, str] | None:
    """A whole-guest example's program and paging, if it has one."""
    if test.startswith("equivalence"):
        return example, "nested" if test.startswith("equivalence-nested") else "shadow"
    if test.startswith(("efficiency", "isolation")):
        return example["program"], example["paging"]
    return None


def replay(
    test: str = typer.Argument(..., help="the test's id, as in the report (e.g. reflect)"),
    token: str = typer.Argument(..., help="VERSION:BLOB, as the report prints it"),
    lab: Path = typer.Option(None, "--lab", help="the handout folder (default: here)"),
    raw: bool = typer.Option(False, "--raw", help="also print hypothesis's own record of the "
                             "example"),
) -> None:
    """Replay a reported counterexample against your VMM, side by side with the bare machine."""
    from .feedback import where
    from .properties import Counterexample
    from .rubric import load as load_rubric
    from .sandbox import StudentError, Worker, WorkerFailure
    root = labroot.use(lab.resolve() if lab else None)
    try:
        rubric = load_rubric()
        tests = {t.id: t for t in rubric.tests}
        if test not in tests:
            raise UsageError(f"no test {test!r}; the tests are {', '.join(sorted(tests))}.")
        if ":" not in token:
            raise UsageError(f"the token {token!r} is not VERSION:BLOB; copy it whole from "
                             "the report.")
        from .properties import load as load_properties
        prop = load_properties()[tests[test].property]
        if prop.stateful:
            raise UsageError(f"{test} is a state machine: its report lists the operations; "
                             f"rerun it with `vmlab check --test {test}`.")
        version, blob = token.split(":", 1)
        example = _example(prop, version, blob, raw)
    except UsageError as e:
        raise fail(str(e)) from None
    print(wrapped(f"# {prop.title}\n\n{where(tests[test].part)}\n\n**The case:**\n\n"
                  f"{prop.describe(example)}\n"))
    verdict, code = "PASSES: your VMM now gets this example right.", 0
    with Worker(root) as worker:
        try:
            prop.check(example, worker)
        except Counterexample as c:
            verdict, code = f"FAILS: {c.divergence}" + (f"\n\n```\n{c.detail.strip()[-3000:]}"
                                                         "\n```" if c.detail else ""), 1
        except StudentError as e:
            verdict, code = (f"FAILS: your code raised {e.kind}: {e.message}\n\n```\n"
                             f"{e.traceback.strip()}\n```"), 1
        except WorkerFailure as e:
            verdict, code = f"FAILS: the worker failed ({e.kind}): {e.detail}", 1
    print(wrapped(f"**Replayed against your VMM:** {verdict}\n"))
    guest = whole_program(test, example)
    if guest is not None:
        trace_both(root, *guest)
    raise typer.Exit(code)
