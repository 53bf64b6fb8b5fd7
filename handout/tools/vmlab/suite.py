"""The rubric's tests as a unittest suite that gradescope-utils' runner can run.

Each test runs one property with hypothesis (fixed seed, no database, no deadline, the rubric's
number of examples) against the worker, and turns a failure into feedback Markdown. Nothing in a
verdict depends on the wall clock, with one exception kept for Gradescope's sake: a test that
runs past its time limit stops generating and is judged on the examples it ran, and says so.
"""

from __future__ import annotations

import contextlib
import gc
import io
import time
import unittest
import warnings
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
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


class TimeUp(BaseException):
    """The test's time limit passed: stop generating examples."""


def pin_constants() -> None:
    """Hypothesis mixes into its examples the constants it finds in every local module the process
    has imported, so the same seed gave different examples under `vmlab grade`, `vmlab check` and
    pytest. Draw them from the grader's own strategies and properties only, the same everywhere."""
    import importlib
    import pkgutil
    try:  # internals of the pinned hypothesis (pyproject.toml); absent in others
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants, constants_from_module
        providers._get_local_constants  # noqa: B018 - its absence means nothing to pin
    except (ImportError, AttributeError):
        return

    from . import properties, strategies
    pinned = Constants()
    for package in (properties, strategies):
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
        for module in [package] + [importlib.import_module(f"{package.__name__}.{n}")
                                   for n in names]:
            pinned |= constants_from_module(module)
    providers._get_local_constants = lambda: pinned
    providers.CONSTANTS_CACHE.cache.clear()


def grading_settings(examples: int) -> settings:
    # stateful_step_count: a run of the IPC machine is 15 steps of up to two operations each
    # (properties/ipc.py); with fewer operations a run, send-blocks-on-stopped-receiver of
    # tests/buggy_vmms.py got through at some seeds
    return settings(max_examples=examples, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.generate, Phase.shrink),
                    stateful_step_count=15, report_multiple_bugs=False)


def run_property(prop: Property, test: Test, worker: Any,
                 deadline: float | None = None) -> tuple[int, BaseException | None, list[str]]:
    """Run one property: (examples run, the failure or None, hypothesis's notes)."""
    pin_constants()
    ran = [0]
    failures: list[BaseException] = []  # every failure seen, shrinking included
    Counterexample.made = failures

    def guard() -> None:
        if deadline is not None and ran[0] >= MIN_EXAMPLES and time.monotonic() > deadline:
            raise TimeUp()
        ran[0] += 1

    def check(example: object) -> None:
        guard()
        try:
            prop.check(example, worker)
        except StudentError as e:
            if e.kind == "NotImplementedError":
                raise PartMissing(e) from None
            failures.append(e)
            raise
        except WorkerFailure as e:
            failures.append(e)
            raise

    # in a batch, the examples another submission passed are checked first (memo.py)
    key, test_fn, recorder = memo.test_key(prop, test), check, None
    if key is not None:
        if memo.replay(key, check):
            return ran[0], None, []
        ran[0] = 0
        failures.clear()
        recorder = memo.Recorder(key)

        def test_fn(example: object) -> None:
            recorder.keep(example)
            check(example)

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. hypothesis on the size of a program's repr
            if prop.stateful:
                # seeded as the others are (hypothesis copies the seed from the machine's
                # class): derandomized, the visible and the hidden test would run the same
                # examples, whatever the rubric's seeds
                machine = seed(test.seed)(prop.strategy(_Guarded(worker, guard)))
                run_state_machine_as_test(machine, settings=grading_settings(test.examples))
            else:
                seed(test.seed)(settings(grading_settings(test.examples))(
                    given(prop.strategy())(test_fn)))()
    except PartMissing as e:
        return ran[0], e.error, []
    except TimeUp:
        # out of time: the failure found (the smallest so far, if shrinking had begun), or none
        return ran[0], failures[-1] if failures else TimeUp(), []
    except Exception as e:  # noqa: BLE001 - any failure of the property is the verdict
        if isinstance(getattr(e, "__cause__", None), PartMissing):
            return ran[0], e.__cause__.error, []
        return ran[0], e, list(getattr(e, "__notes__", []))
    finally:
        Counterexample.made = None
    if recorder is not None:
        recorder.commit(ran[0])
    return ran[0], None, []


class _Guarded:
    """The worker, counting each call of a stateful test as an example for the time limit and
    turning a stub's NotImplementedError into PartMissing."""

    def __init__(self, worker: Any, guard: Callable[[], None]) -> None:
        self.worker, self.guard = worker, guard

    def call(self, probe: str, args: dict) -> dict:
        if probe == "ipc_start":
            self.guard()
        try:
            return self.worker.call(probe, args)
        except StudentError as e:
            if e.kind == "NotImplementedError":
                raise PartMissing(e) from None
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
            prop, test, worker, run_deadline, pending, log)
    case = type("VMLab", (unittest.TestCase,), methods)
    return unittest.TestLoader().loadTestsFromTestCase(case)


def _method(prop: Property, test: Test, worker: Any, run_deadline: float,
            pending: dict[str, int], log: Callable[[str], None]) -> Callable:
    def method(self: unittest.TestCase) -> None:
        start = time.monotonic()
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
        ran, failure, notes = run_property(prop, test, worker, deadline)
        log(f"{test.id}: {ran} examples, {time.monotonic() - start:.1f} s, "
            f"{'passed' if failure is None else 'failed'}")
        if isinstance(failure, TimeUp):
            print(f"Stopped after {ran} of {test.examples} examples: the test's share of "
                  f"the time ({deadline - start:.0f} s) passed. Judged on those; none failed.")
            return
        if failure is not None:
            raise MarkdownFailure(feedback.failure(prop, test.id, failure, notes, test.visible))
        print(f"Passed on {ran} generated examples.")

    method.__doc__ = f"{prop.title} [{test.id}]"
    method = weight(test.weight)(method)
    method = visibility(test.visibility)(method)
    method = number(test.number)(method)
    return method
