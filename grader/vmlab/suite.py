"""The rubric's tests as a unittest suite that gradescope-utils' runner can run.

Each test runs one property with hypothesis (fixed seed, no database, no deadline, the rubric's
number of examples) against the worker, and turns a failure into feedback Markdown. Nothing in a
verdict depends on the wall clock, with one exception kept for Gradescope's sake: a test that
runs past its time limit stops generating and is judged on the examples it ran, and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import re
import time
import unittest
import warnings
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import run_state_machine_as_test

from . import feedback, memo
from .gradescope import MarkdownFailure, number, visibility, weight
from .properties import Counterexample, Property
from .properties import load as load_properties
from .rubric import Rubric, Test
from .sandbox import StudentError, WorkerFailure


class PartMissing(BaseException):
    """A stub raised NotImplementedError: no point shrinking (a BaseException, so hypothesis
    lets it through at once)."""

    def __init__(self, error: StudentError) -> None:
        super().__init__(error.message)
        self.error = error


MIN_EXAMPLES = 10  # a test runs at least these, however late, so that no verdict is empty
FINGERPRINT_BYTES = 4  # 8 hex digits: enough to tell two environments' examples apart
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # a default repr's address differs between runs


class Fingerprint:
    """A short hash of the examples a test drew, in order, so that a student and course staff
    can see whether two environments (vmlab check, Gradescope, a TA's batch) drew the same
    ones: the same seed and the same hypothesis give the same fingerprint."""

    def __init__(self) -> None:
        self.digest = hashlib.blake2b(digest_size=FINGERPRINT_BYTES)
        self.count = 0

    def add(self, example: object, shown: str | None = None) -> None:
        """`shown`: the example's `canonical` text, if it is known already."""
        text = canonical(example) if shown is None else shown
        self.digest.update(text.encode("utf-8", "replace") + b"\0")
        self.count += 1

    def hex(self) -> str:
        return self.digest.hexdigest()

    def reset(self) -> None:
        self.__init__()


def canonical(value: object) -> str:
    """`repr(value)` made the same in every process: a set's members sorted (a set of strings
    iterates in an order that changes with the hash seed), no object addresses."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{canonical(k)}: {canonical(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canonical(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{f.name}={canonical(getattr(value, f.name))}"
                           for f in dataclasses.fields(value))
        return f"{type(value).__name__}({fields})"
    return ADDRESS.sub("", repr(value))


class TimeUp(BaseException):
    """The test's time limit passed: stop generating examples."""


class ShrinkDone(BaseException):
    """Shrinking has run the rubric's shrink_examples: report the smallest failure so far."""


class Hopeless(BaseException):
    """The worker cannot start, or hung: another example (or shrinking this one) would cost
    another time limit and tell nothing new. Let through at once, as PartMissing is."""

    def __init__(self, error: WorkerFailure) -> None:
        super().__init__(error.detail)
        self.error = error


HOPELESS = ("start", "timeout")  # the WorkerFailure kinds that end a test at once


def pin_constants() -> None:
    """Hypothesis mixes into its examples the constants it finds in every local module the process
    has imported, so the same seed gave different examples under `vmlab grade`, `vmlab check` and
    pytest. Draw them from the grader's own strategies and properties only, the same everywhere.

    The order of the pool matters too (an example takes the constant at a drawn index), and
    hypothesis's own order depended on its cache in .hypothesis/constants/: read from that cache
    the constants come sorted, computed afresh (a first run, every Gradescope container) they
    come in the order of the source, so one example in a hundred differed between the two. The
    pool is put in the cached order always, and its strings sorted (a set of strings iterates in
    an order that changes with the process's hash seed)."""
    import importlib
    import pkgutil
    try:  # internals of the pinned hypothesis (pyproject.toml); absent in others
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import (
            Constants,
            _constants_file_str,
            _constants_from_source,
            constants_from_module,
        )
        providers._get_local_constants  # noqa: B018 - its absence means nothing to pin
    except (ImportError, AttributeError):
        return

    from . import properties, strategies
    pinned = Constants()
    for package in (properties, strategies):
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
        for module in [package] + [importlib.import_module(f"{package.__name__}.{n}")
                                   for n in names]:
            found = constants_from_module(module)
            # as hypothesis reads it back from its cache: the same whether or not it was cached
            pinned |= _constants_from_source(_constants_file_str(found), limit=True)
    pinned.strings = _SortedSet(pinned.strings)
    providers._get_local_constants = lambda: pinned
    providers.CONSTANTS_CACHE.cache.clear()


class _SortedSet(set):
    """A set that iterates in sorted order, whatever the hash seed."""

    def __iter__(self):  # noqa: ANN204 - set's own signature
        return iter(sorted(set.__iter__(self)))


def grading_settings(examples: int) -> settings:
    # stateful_step_count: a run of the IPC machine is 15 steps of up to two operations each
    # (properties/ipc.py); with fewer operations a run, send-blocks-on-stopped-receiver of
    # tests/buggy_vmms.py got through at some seeds
    return settings(max_examples=examples, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.generate, Phase.shrink),
                    stateful_step_count=15, report_multiple_bugs=False)


class Tally:
    """How a test's run went, for the report: the examples run, and the failing examples seen
    (the first one found, the last one shrunk to)."""

    def __init__(self) -> None:
        self.ran = 0
        self.first_at = 0  # the example that failed first (1-based), 0 if none has
        self.first: object = None
        self.last: object = None
        self.out_of_time = False  # the time ran out after a failure: shrinking was cut short
        self.shrinking = 0  # the examples run since the first failure
        self.shrink_limit = 0  # shrinking stopped at the rubric's count of examples
        self.token: str | None = None  # the last failing example's replay token
        # why the grader stopped the run (TimeUp or ShrinkDone), once it has: hypothesis may
        # report a state machine's run cut short as flaky without saying what cut it
        self.stopped_by: BaseException | None = None

    def failed(self, example: object) -> None:
        if not self.first_at:
            self.first_at, self.first = self.ran, example
        self.last = example
        self.token = _token()

    def note(self) -> list[str]:
        """hypothesis's note for the last failing example, as it prints one when it finishes:
        a test cut short by its time limit still offers a replay."""
        if self.token is None:
            return []
        version, blob = self.token.split(":", 1)
        return [f"@reproduce_failure({version!r}, b{blob!r})"]

    def found(self, test: Test) -> feedback.Found | None:
        if not self.first_at:
            return None
        return feedback.Found(self.first_at, test.examples, self.last != self.first,
                              self.out_of_time, self.shrink_limit)


def _token() -> str | None:
    """VERSION:BLOB of the example hypothesis is running now (what `print_blob` prints)."""
    try:  # internals of the pinned hypothesis (pyproject.toml)
        from hypothesis import __version__
        from hypothesis.control import current_build_context
        from hypothesis.core import encode_failure
        return f"{__version__}:{encode_failure(current_build_context().data.choices).decode()}"
    except Exception:  # noqa: BLE001 - no token: the report offers no replay, nothing worse
        return None


class _Seen(list):
    """Counterexample.made for a state machine: each failing run's operations go to the tally
    too (a run is not an example that check() sees)."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally

    def append(self, failure: BaseException) -> None:
        super().append(failure)
        self.tally.failed(getattr(failure, "_example", ""))


def run_property(prop: Property, test: Test, worker: Any, deadline: float | None = None,
                 tally: Tally | None = None, fingerprint: Fingerprint | None = None,
                 hard_deadline: float | None = None, shrink_examples: int | None = None,
                 ) -> tuple[int, BaseException | None, list[str]]:
    """Run one property: (examples run, the failure or None, hypothesis's notes); each example
    goes into `fingerprint`. Past `deadline` it stops once it has run MIN_EXAMPLES; past
    `hard_deadline` (the run's), at once; `shrink_examples` after the first failure, with the
    smallest failure so far."""
    pin_constants()
    tally = tally or Tally()
    prints = fingerprint if fingerprint is not None else Fingerprint()
    # every failure seen, shrinking included
    failures: list[BaseException] = _Seen(tally) if prop.stateful else []
    Counterexample.made = failures
    # in a batch (memo.py): what another submission passed is checked first, and the worker's
    # answers then stand in for its answers to the same requests when hypothesis reruns
    run = memo.start(prop, test, worker)
    if run is not None:
        worker = run.worker

    def guard() -> None:
        now = time.monotonic()
        if hard_deadline is not None and now > hard_deadline or \
                deadline is not None and tally.ran >= MIN_EXAMPLES and now > deadline:
            tally.stopped_by = TimeUp()
            raise tally.stopped_by
        if not prop.stateful:
            budget()
        tally.ran += 1

    def stopped(why: BaseException) -> tuple[int, BaseException | None, list[str]]:
        if isinstance(why, ShrinkDone):  # the smallest failure so far
            tally.shrink_limit = shrink_examples or 0
            return tally.ran, failures[-1], []
        # out of time: the failure found (the smallest so far, if shrinking had begun), or none
        tally.out_of_time = bool(failures)
        return tally.ran, failures[-1] if failures else TimeUp(), []

    def budget() -> None:
        # counted as an example starts (a state machine's: its run, not each call in it)
        if tally.first_at:
            tally.shrinking += 1
            if shrink_examples is not None and tally.shrinking > shrink_examples:
                tally.stopped_by = ShrinkDone()
                raise tally.stopped_by

    def check(example: object, shown: str | None = None) -> None:
        guard()
        prints.add(example, shown)
        try:
            prop.check(example, worker)
        except StudentError as e:
            if e.kind == "NotImplementedError":
                raise PartMissing(e) from None
            e.example = _describe(prop, example)  # type: ignore[attr-defined]
            tally.failed(example)
            failures.append(e)
            raise
        except WorkerFailure as e:
            e.example = _describe(prop, example)  # type: ignore[attr-defined]
            tally.failed(example)
            failures.append(e)
            if e.kind in HOPELESS:
                raise Hopeless(e) from None
            raise
        except Counterexample:
            tally.failed(example)
            raise

    def test_fn(example: object) -> None:  # hypothesis's test: one argument
        check(example)

    if run is not None:
        try:
            if run.replay(check, _Guarded(worker, guard, prop, tally, prints).call, (TimeUp,)):
                Counterexample.made = None
                return tally.ran, None, []
        except TimeUp:  # where the run alone would have stopped too: the same examples
            Counterexample.made = None
            return tally.ran, TimeUp(), []
        tally.__init__()  # hypothesis grades it from the start: nothing of the replay counts
        prints.reset()
        failures.clear()
        test_fn = run.recording(check)

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. hypothesis on the size of a program's repr
            if prop.stateful:
                # seeded as the others are (hypothesis copies the seed from the machine's
                # class): derandomized, the visible and the hidden test would run the same
                # examples, whatever the rubric's seeds
                machine = seed(test.seed)(_budgeted(prop.strategy(_Guarded(
                    worker, guard, prop, tally, prints)), budget))
                run_state_machine_as_test(machine, settings=grading_settings(test.examples))
            else:
                seed(test.seed)(settings(grading_settings(test.examples))(
                    given(prop.strategy())(test_fn)))()
    except (PartMissing, Hopeless) as e:
        return tally.ran, e.error, []
    except (TimeUp, ShrinkDone) as e:
        return stopped(e)
    except Exception as e:  # noqa: BLE001 - any failure of the property is the verdict
        if isinstance(getattr(e, "__cause__", None), (PartMissing, Hopeless)):
            return tally.ran, e.__cause__.error, []
        # a state machine's run stopped part way: hypothesis reports the run it cut short as
        # flaky (it drew less than before), with our reason for stopping as its context or
        # (a run stopped as it began, while shrinking) with none
        if isinstance(e, FlakyStrategyDefinition) and tally.stopped_by is not None:
            return stopped(tally.stopped_by)
        return tally.ran, e, list(getattr(e, "__notes__", []))
    finally:
        Counterexample.made = None
    if run is not None:
        run.commit(tally.ran, canonical)
    return tally.ran, None, []


def _budgeted(machine: type, budget: Callable[[], None]) -> type:
    """The state machine, calling `budget` as each run starts."""
    def __init__(self: Any) -> None:
        budget()
        machine.__init__(self)
    return type(machine.__name__, (machine,), {"__init__": __init__,
                                               "__qualname__": machine.__qualname__})


def _describe(prop: Property, example: object) -> Callable[[], str]:
    """The example as the report shows it, made only if the report needs it."""
    def text() -> str:
        try:
            return prop.describe(example)
        except Exception as e:  # noqa: BLE001 - a report without its example beats none
            return f"(the example could not be shown: {type(e).__name__})"
    return text


class _Guarded:
    """The worker, counting each call of a stateful test as an example for the time limit,
    turning a stub's NotImplementedError into PartMissing, and giving a raise or a crash the
    run it happened in (the state machine's operations, as the report shows them)."""

    def __init__(self, worker: Any, guard: Callable[[], None], prop: Property,
                 tally: Tally, prints: Fingerprint) -> None:
        self.worker, self.guard, self.prop, self.tally = worker, guard, prop, tally
        self.prints = prints
        self.run: list[tuple[str, dict]] = []

    def call(self, probe: str, args: dict) -> dict:
        if probe == "ipc_start":
            self.guard()
            self.run = []
        self.run.append((probe, args))
        self.prints.add((probe, json.dumps(args, sort_keys=True, default=canonical)))
        try:
            return self.worker.call(probe, args)
        except StudentError as e:
            if e.kind == "NotImplementedError":
                raise PartMissing(e) from None
            e.example = _describe(self.prop, list(self.run))  # type: ignore[attr-defined]
            self.tally.failed(self.run)
            raise
        except WorkerFailure as e:
            e.example = _describe(self.prop, list(self.run))  # type: ignore[attr-defined]
            self.tally.failed(self.run)
            if e.kind in HOPELESS:
                raise Hopeless(e) from None
            raise


def build(rubric: Rubric, worker: Any, tests: list[Test], run_deadline: float,
          log: Callable[[str], None] = lambda s: None) -> unittest.TestSuite:
    """One TestCase class with a method per test, decorated for gradescope-utils."""
    props = load_properties()
    methods: dict[str, Any] = {}
    pending = {t.id: t.examples for t in tests}  # the tests still to run, and their sizes
    for test in tests:
        prop = props[test.property]
        methods[f"test_{test.number.zfill(3)}_{test.id.replace('-', '_')}"] = _method(
            prop, test, worker, run_deadline, pending, log,
            rubric.student_output == "failing-visible" and test.visible,
            rubric.shrink_examples)
    case = type("VMLab", (unittest.TestCase,), methods)
    return unittest.TestLoader().loadTestsFromTestCase(case)


def _method(prop: Property, test: Test, worker: Any, run_deadline: float,
            pending: dict[str, int], log: Callable[[str], None],
            show_output: bool = False, shrink_examples: int | None = None) -> Callable:
    def method(self: unittest.TestCase) -> None:
        start = time.monotonic()
        mark = worker.output_mark() if show_output else 0
        # a slow machine must not leave the last tests unrun: each test may use at most its
        # share (by examples) of the time left for the run, as well as its own limit
        share = (run_deadline - start) * test.examples / max(1, sum(pending.values()))
        pending.pop(test.id, None)
        deadline = start + min(share, test.time_limit)
        # the last test's hypothesis engine is garbage now; what survives it lives through the
        # run (grade.py froze what was alive before the first): frozen, the collector stops
        # walking it while this test allocates
        gc.collect()
        gc.freeze()
        tally, prints = Tally(), Fingerprint()
        ran, failure, notes = run_property(prop, test, worker, deadline, tally, prints,
                                           run_deadline, shrink_examples)
        log(f"{test.id}: {ran} example{'s' if ran != 1 else ''}, "
            f"{time.monotonic() - start:.1f} s, {'passed' if failure is None else 'failed'}, "
            f"examples {prints.hex()}")
        # gradescope.py puts it in the test's extra_data; the line below shows it to students
        self.extra_data = {"examples": ran, "fingerprint": prints.hex()}
        drawn = (f"Examples fingerprint: `{prints.hex()}` (seed {test.seed}, "
                 f"{ran} example{'s' if ran != 1 else ''} run).")
        if not test.visible:  # a hidden test's seed is not for students
            drawn = drawn.replace(f"seed {test.seed}, ", "")
        if isinstance(failure, TimeUp) and ran < MIN_EXAMPLES:
            raise MarkdownFailure(
                f"**Not judged**: the whole run's time limit passed after {ran} of this "
                f"test's examples (at least {MIN_EXAMPLES} are needed for a verdict). Earlier "
                "tests took that time: look for a test that timed out, or for code that is "
                "far slower than it needs to be.\n\n" + drawn)
        if isinstance(failure, TimeUp):
            print(f"Stopped after {ran} of {test.examples} examples: the test's share of "
                  f"the time ({deadline - start:.0f} s) passed. Judged on those; none failed.")
            print(drawn)
            return
        if failure is not None:
            found = tally.found(test)
            if not notes and not prop.stateful:
                notes = tally.note()  # cut short by the time limit: replay the last failure
            printed = worker.output_since(mark) if show_output else ""
            if printed:
                drawn = ("**Your code printed** (its last lines while this test ran):\n\n"
                         f"```\n{printed}\n```\n\n" + drawn)
            raise MarkdownFailure(feedback.failure(prop, test.id, failure, notes, test.visible,
                                                   test.part, found) + "\n\n" + drawn)
        print(f"Passed on {ran} generated examples.")
        print(drawn)

    method.__doc__ = f"{prop.title} [{test.id}]"
    method = weight(test.weight)(method)
    method = visibility(test.visibility)(method)
    method = number(test.number)(method)
    return method
