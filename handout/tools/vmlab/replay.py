"""`vmlab replay TEST TOKEN`: rerun exactly the example a failure report showed, with a trace.

The token is hypothesis's own record of the example's choices (VERSION:BLOB, as the report
prints it), so the example is rebuilt by the same strategy with the same seed-free replay. The
check runs against the VMM in the current folder (your handout), in a worker as in grading; for
whole-guest properties the bare machine's run is traced to stderr, instruction by instruction.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from . import labroot
from .errors import UsageError, fail

TRACE_LINES = 400


def _example(prop: Any, version: str, blob: str) -> Any:
    from hypothesis import HealthCheck, given, reproduce_failure, settings
    seen: list = []

    @reproduce_failure(version, blob.encode())
    @settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(prop.strategy())
    def capture(example: object) -> None:
        seen.append(example)
        raise _Captured()

    try:
        capture()
    except _Captured:
        pass
    except Exception as e:  # noqa: BLE001 - a token from another version, or garbled
        raise UsageError(f"the replay token does not fit test {prop.name!r} with this "
                         f"version of vmlab and hypothesis ({type(e).__name__}); copy it "
                         "again from the report") from None
    if not seen:
        raise UsageError("the replay token did not produce an example")
    return seen[0]


class _Captured(Exception):
    pass


def trace_bare(example: Any) -> None:
    """The bare machine's run of a whole-guest example, traced to stderr."""
    from machine import Machine
    from machine.trace import trace_run
    program = example["program"] if isinstance(example, dict) else example
    m = Machine(ram_size=8 << 20)
    for addr, data in program.segments:
        m.write_phys(addr, data)
    program.state.apply(m)

    class Limited:
        lines = 0

        def write(self, text: str) -> int:
            if self.lines < TRACE_LINES:
                sys.stderr.write(text)
                self.lines += text.count("\n")
            return len(text)

        def flush(self) -> None:
            sys.stderr.flush()

    sys.stderr.write(f"== the bare machine (first {TRACE_LINES} lines of the trace):\n")
    stop = trace_run(m, 3000, Limited())  # type: ignore[arg-type]
    sys.stderr.write(f"== bare machine: {stop}\n")


def replay(
    test: str = typer.Argument(..., help="the test's id, as in the report (e.g. reflect)"),
    token: str = typer.Argument(..., help="VERSION:BLOB, as the report prints it"),
    lab: Path = typer.Option(None, "--lab", help="the handout folder (default: here)"),
) -> None:
    """Replay a reported counterexample against your VMM, with a trace."""
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
        example = _example(prop, version, blob)
    except UsageError as e:
        raise fail(str(e)) from None
    print(f"# {prop.title}\n\n{prop.describe(example)}\n")
    if test.startswith(("equivalence", "efficiency", "isolation")):
        trace_bare(example)
    with Worker(root) as worker:
        try:
            prop.check(example, worker)
        except Counterexample as c:
            print(f"FAILS: {c.divergence}")
            if c.detail:
                print(c.detail)
            raise typer.Exit(1) from None
        except StudentError as e:
            print(f"FAILS: your code raised {e.kind}: {e.message}\n{e.traceback}")
            raise typer.Exit(1) from None
        except WorkerFailure as e:
            print(f"FAILS: the worker failed ({e.kind}): {e.detail}")
            raise typer.Exit(1) from None
    print("PASSES: your VMM now gets this example right.")
