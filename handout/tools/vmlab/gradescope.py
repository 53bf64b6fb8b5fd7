"""Gradescope's results.json, written through gradescope-utils with the defects of its 0.5.0 runner
covered.

gradescope-utils gives us the decorators the graders already use (`weight`, `visibility`, `number`,
`tags`, re-exported here so there is one place to import them from) and `JSONTestRunner`. On
Python 3.11-3.13 that runner loses points and, at worst, the whole results file:

a. a test whose `subTest`s fail is reported by unittest through `addSubTest` only, which the
   runner does not handle: the test vanishes, and its points with it;
b. skipped tests vanish (`addSkip` is not handled);
c. an exception in `setUpClass` (or `setUpModule`) is reported with an `_ErrorHolder`, which has
   no test method; the runner's attribute look-ups raise and no results.json is written at all;
d. a failure's output is `str(exception)`, so PEP 678 notes, where hypothesis keeps the failing
   example, are dropped and the student cannot see which input failed;
e. `execution_time` is a string, where Gradescope's specification has a number.

`FixedJSONTestResult` records one entry per test run itself (whatever mix of outcomes unittest
reports for it) and accounts for every test of the suite, including those a fixture stopped from
running; `run_tests` fixes the top level in the runner's `post_processor` hook, then validates the
file against schemas/results.schema.json before it replaces the old one.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import math
import os
import re
import tempfile
import time
import unittest
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any
from unittest.util import strclass

import jsonschema
from gradescope_utils.autograder_utils.decorators import number, tags, visibility, weight
from gradescope_utils.autograder_utils.json_test_runner import JSONTestResult, JSONTestRunner

__all__ = [
    "FixedJSONTestResult",
    "MarkdownFailure",
    "ResultsError",
    "number",
    "run_tests",
    "tags",
    "validate_results",
    "visibility",
    "weight",
    "write_error_results",
    "write_results",
]

OUTPUT_FORMATS = ("text", "html", "simple_format", "md", "ansi")
# How much each visibility hides, so a fixture's error is shown no more widely than its tests.
_VISIBILITY_RANK = {"visible": 0, "after_due_date": 1, "after_published": 2, "hidden": 3}
_FIXTURE = re.compile(r"(setUpClass|tearDownClass|setUpModule|tearDownModule) \((.+)\)")
_SubTest = getattr(unittest.case, "_SubTest", None)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class MarkdownFailure(AssertionError):
    """A failure whose message is already Markdown written for students (the grader's
    feedback): it goes into the output as it is, where other text gets a code block."""


class _Raw(str):
    """Output text to keep as it is."""


class ResultsError(ValueError):
    """Raised when results would not be a results.json Gradescope accepts, so the problem shows
    up in the grader's own run instead of as a broken submission page."""


# --- the result class --------------------------------------------------------------------------


@dataclass
class _Outcome:
    """Everything unittest reported for one run of one test; unittest may report several things
    (a failing subtest, then a tearDown error), and Gradescope must get exactly one entry."""

    test: Any
    problems: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    passed: bool = False


def _owner(test: object) -> object:
    """The TestCase a subtest belongs to: the decorators' attributes live on its method."""
    if _SubTest is not None and isinstance(test, _SubTest):
        return test.test_case
    return test


def _subtest_label(subtest: object) -> str:
    describe = getattr(subtest, "_subDescription", None)
    try:
        return describe() if callable(describe) else str(subtest)
    except Exception:
        return str(subtest)


def _describe_exception(exc: BaseException | None, failure_exception: type | None,
                        depth: int = 0) -> str:
    """The exception as a student should see it: the message, the type when it is not a plain
    assertion failure (a bare "'x'" says nothing, "KeyError: 'x'" does), then the PEP 678 notes
    (hypothesis's failing example), then the members of an exception group (hypothesis reports
    several distinct failures that way)."""
    if exc is None:
        return "unknown error"
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {name}>"
    if not message:
        message = name
    elif failure_exception is None or not isinstance(exc, failure_exception):
        message = f"{name}: {message}"
    lines = [message]
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, (list, tuple)):
        lines.extend(str(note) for note in notes)
    members = getattr(exc, "exceptions", None)
    if (depth < 4 and isinstance(members, tuple)
            and all(isinstance(m, BaseException) for m in members)):
        for i, member in enumerate(members, 1):
            text = _describe_exception(member, failure_exception, depth + 1)
            lines.append(f"+-- {i}: " + text.replace("\n", "\n    "))
    return "\n".join(lines)


def _render(text: str, output_format: str) -> str:
    """Literal text in the chosen format: Markdown would join lines and eat underscores in a
    failing example, and HTML would swallow `<`, so those get a code block."""
    if not text:
        return ""
    if output_format == "md":
        longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{fence}\n{text.rstrip()}\n{fence}\n"
    if output_format == "html":
        return f"<pre>{html.escape(text)}</pre>"
    return text


def _flatten(tests: object) -> Iterator[unittest.TestCase]:
    if isinstance(tests, unittest.TestCase):
        yield tests
    elif isinstance(tests, Iterable):
        for item in tests:
            yield from _flatten(item)


class FixedJSONTestResult(JSONTestResult):
    """gradescope-utils' result class, reporting every test of the suite exactly once.

    The library builds an entry in addSuccess/addError/addFailure only; here each add* call just
    records what happened, and the entry is built in stopTest, when the whole run of the test is
    known. Tests that never started (their setUpClass or setUpModule failed, or the run stopped)
    are added with score 0, so Gradescope still shows what they were worth.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepare([], "md")

    def prepare(self, tests: Iterable[unittest.TestCase], output_format: str) -> None:
        """Take the tests the run should account for; called before the run, because the suite
        drops its tests as it runs them."""
        self.output_format = output_format
        self._all_tests = list(tests)  # also keeps the ids below unique during the run
        self._outcomes: dict[int, _Outcome] = {}
        self._accounted: set[int] = set()
        self._placeholders: dict[int, int] = {}

    # unittest's callbacks: bookkeeping from unittest.TestResult, then ours, never the library's.

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._outcomes[id(test)] = _Outcome(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        outcome = self._outcomes.pop(id(test), None)
        if outcome is not None:
            self._finish(test, outcome)  # before super() resets the captured stdout
        super().stopTest(test)

    def stopTestRun(self) -> None:
        super().stopTestRun()
        for outcome in list(self._outcomes.values()):  # reported without a stopTest
            self._finish(outcome.test, outcome)
        self._outcomes.clear()
        for test in self._all_tests:
            if id(test) not in self._accounted:
                self._placeholder(test, "Not run: the test run stopped before this test.")

    def addSuccess(self, test: unittest.TestCase) -> None:
        unittest.TestResult.addSuccess(self, test)
        self._outcome(test).passed = True

    def addError(self, test: unittest.TestCase, err: ExcInfo) -> None:
        unittest.TestResult.addError(self, test, err)
        self._problem(test, err)

    def addFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        unittest.TestResult.addFailure(self, test, err)
        self._problem(test, err)

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase,
                   err: ExcInfo | None) -> None:
        unittest.TestResult.addSubTest(self, test, subtest, err)
        if err is None:
            return
        self._mirrorOutput = False  # the library's choice: captured output goes to the JSON only
        text = _describe_exception(err[1], test.failureException)
        self._outcome(test).problems.append(f"Subtest {_subtest_label(subtest)} failed: {text}")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        unittest.TestResult.addSkip(self, test, reason)
        if not isinstance(test, unittest.TestCase):
            self._fixture_skipped(test, reason)
            return
        if _SubTest is not None and isinstance(test, _SubTest):
            reason = f"subtest {_subtest_label(test)}: {reason}"
        self._outcome(test).skips.append(reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        unittest.TestResult.addExpectedFailure(self, test, err)
        self._outcome(test).passed = True

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        unittest.TestResult.addUnexpectedSuccess(self, test)
        self._outcome(test).problems.append(
            f"{self.failure_prefix}the test was expected to fail, but it passed")

    # --- recording -----------------------------------------------------------------------------

    def _outcome(self, test: object) -> _Outcome:
        test = _owner(test)
        outcome = self._outcomes.get(id(test))
        if outcome is None:
            # Reported outside startTest/stopTest (a hand-made suite): keep it rather than lose it.
            outcome = self._outcomes[id(test)] = _Outcome(test)
        return outcome

    def _problem(self, test: object, err: ExcInfo) -> None:
        self._mirrorOutput = False
        if not isinstance(test, unittest.TestCase):
            self._fixture_failed(test, err)
            return
        if isinstance(err[1], MarkdownFailure) and self.output_format == "md":
            self._outcome(test).problems.append(_Raw(str(err[1])))
            return
        text = _describe_exception(err[1], test.failureException)
        self._outcome(test).problems.append(f"{self.failure_prefix}{text}")

    def _captured(self) -> str:
        if not self.buffer or getattr(self, "_stdout_buffer", None) is None:
            return ""
        return self.getOutput() or ""

    def _output(self, captured: str, lines: list[str]) -> str:
        raw = [line for line in lines if isinstance(line, _Raw)]
        lines = [line for line in lines if not isinstance(line, _Raw)]
        parts = [part for part in (captured.rstrip("\n"), "\n".join(lines)) if part]
        text = _render("\n\n".join(parts), self.output_format)
        return "\n\n".join(part for part in (*raw, text) if part)

    def _entry(self, test: unittest.TestCase, score: float, failed: bool, output: str) -> dict:
        max_score = self.getWeight(test)
        if max_score is None:
            max_score = 0.0
        entry: dict[str, Any] = {
            "name": self.getDescription(test),
            "score": score,
            "max_score": max_score,
            "status": "failed" if failed or score < max_score else "passed",
            "output": output,
            "output_format": self.output_format,
        }
        test_number = self.getNumber(test)
        if test_number:
            entry["number"] = str(test_number)
        test_visibility = self.getVisibility(test)
        if test_visibility:
            entry["visibility"] = test_visibility
        test_tags = self.getTags(test)
        if test_tags:
            entry["tags"] = [str(tag) for tag in test_tags]
        extra = getattr(test, "extra_data", None)  # what the test set while it ran
        if isinstance(extra, dict) and extra:
            entry["extra_data"] = dict(extra)
        return entry

    def _is_leaderboard(self, test: unittest.TestCase) -> bool:
        return bool(self.getLeaderboardData(test)[0])

    def _finish(self, test: unittest.TestCase, outcome: _Outcome) -> None:
        if self._is_leaderboard(test):
            # The library's rule: a leaderboard test is a column, never a graded test.
            self.leaderboard.append(self.buildLeaderboardEntry(test))
            self._accounted.add(id(test))
            return
        weight_ = self.getWeight(test) or 0.0
        explicit = self.getScore(test)  # partial_credit: the test set its own score
        if outcome.problems or not (outcome.passed or outcome.skips):
            lines = outcome.problems or [f"{self.failure_prefix}the test did not finish"]
            hide_message = self.getHideErrors(test)
            if hide_message:
                lines = [hide_message]
            score, failed = (explicit if explicit is not None else 0.0), True
        elif outcome.skips:
            lines = [f"Skipped: {reason}" for reason in outcome.skips]
            score, failed = 0.0, True
        else:
            lines = []
            score, failed = (explicit if explicit is not None else weight_), False
        entry = self._entry(test, score, failed, self._output(self._captured(), lines))
        index = self._placeholders.pop(id(test), None)
        if index is None:
            self.results.append(entry)
        else:
            self.results[index] = entry  # a test first given up on ran after all
        self._accounted.add(id(test))

    def _placeholder(self, test: unittest.TestCase, why: str) -> None:
        """Score 0 of the test's weight for a test that did not run, replaced should it run."""
        key = id(test)
        if key in self._accounted or key in self._outcomes:
            return
        self._accounted.add(key)
        if self._is_leaderboard(test):
            return
        self._placeholders[key] = len(self.results)
        self.results.append(self._entry(test, 0.0, True, _render(why, self.output_format)))

    def _fixture_tests(self, holder: object) -> tuple[str | None, list[unittest.TestCase]]:
        """The fixture method an _ErrorHolder stands for, and the tests of its class or module."""
        match = _FIXTURE.fullmatch(str(holder))
        if match is None:
            return None, []
        method, target = match.groups()
        if method.endswith("Class"):
            return method, [t for t in self._all_tests
                            if strclass(type(t)) == target]
        return method, [t for t in self._all_tests if type(t).__module__ == target]

    def _fixture_failed(self, holder: object, err: ExcInfo) -> None:
        name = str(holder)
        method, tests = self._fixture_tests(holder)
        real = [t for t in tests if not self._is_leaderboard(t)]
        hidden = next((h for h in map(self.getHideErrors, real) if h), None)
        text = hidden or f"{self.failure_prefix}{_describe_exception(err[1], None)}"
        entry: dict[str, Any] = {
            "name": name,
            "score": 0.0,
            "max_score": 0.0,
            "status": "failed",
            "output": self._output(self._captured(), [text]),
            "output_format": self.output_format,
        }
        # The error may describe its tests, so it is shown no more widely than they are.
        shown = [v for v in map(self.getVisibility, real) if v]
        if shown:
            entry["visibility"] = max(shown, key=lambda v: _VISIBILITY_RANK.get(v, 99))
        self.results.append(entry)
        if method in ("setUpClass", "setUpModule"):
            for test in tests:
                self._placeholder(test, f"Not run: {name} failed.")

    def _fixture_skipped(self, holder: object, reason: str) -> None:
        method, tests = self._fixture_tests(holder)
        if method in ("setUpClass", "setUpModule"):
            for test in tests:
                self._placeholder(test, f"Skipped: {reason}")


class _FixedRunner(JSONTestRunner):
    """The library's runner with FixedJSONTestResult; it only has to hand the result the tests
    to account for before the suite starts dropping them."""

    resultclass = FixedJSONTestResult

    def __init__(self, *, output_format: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._output_format = output_format
        self._tests: list[unittest.TestCase] = []

    def _makeResult(self) -> FixedJSONTestResult:
        result = super()._makeResult()
        result.prepare(self._tests, self._output_format)
        return result

    def run(self, test: unittest.TestSuite | unittest.TestCase) -> FixedJSONTestResult:
        self._tests = list(_flatten(test))
        return super().run(test)


# --- the public functions ----------------------------------------------------------------------


def run_tests(
    suite: unittest.TestSuite,
    out: Path | None,
    *,
    stdout_visibility: str = "visible",
    leaderboard: list[dict] | None = None,
    extra_output: str = "",
    post_process: Callable[[dict], None] | None = None,
    output_format: str = "md",
) -> dict:
    """Run `suite` and write Gradescope's results.json to `out` (unless it is None: the caller
    writes it with write_results, later); return the results.

    Every test of the suite gets an entry (see FixedJSONTestResult), the total `score` is the sum
    of the tests' scores, `execution_time` is a number of seconds, `output_format` applies to the
    top-level `extra_output` and to every test's output. `leaderboard` entries are added to those
    of leaderboard tests. `post_process` runs last, on the finished dict, and may change anything
    (a late penalty, say); it is responsible for the total if it changes test scores.

    The file is validated before it replaces `out`, so Gradescope never gets one that is
    half-written or malformed. If it does not validate, an error results.json (score 0) is
    written instead and ResultsError is raised, so the mistake is seen by course staff.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, "
                         f"not {output_format!r}")
    start = time.perf_counter()
    finished: list[dict] = []

    def finish(data: dict) -> None:
        data["execution_time"] = round(time.perf_counter() - start, 3)
        data["score"] = math.fsum(t.get("score", 0.0) for t in data["tests"])
        data["output_format"] = output_format
        if extra_output:
            data["output"] = extra_output
        # A leaderboard test that failed before setting its value has nothing to show.
        board = [e for e in data.get("leaderboard", []) if e.get("value") is not None]
        board.extend(leaderboard or [])
        if board:
            data["leaderboard"] = board
        else:
            data.pop("leaderboard", None)
        if post_process is not None:
            post_process(data)
        finished.append(data)

    runner = _FixedRunner(stream=io.StringIO(), stdout_visibility=stdout_visibility,
                          post_processor=finish, output_format=output_format)
    runner.run(suite)
    try:
        results = _json_ready(finished[-1])
        validate_results(results)
    except ResultsError as err:
        if out is not None:
            write_error_results(out, "The autograder produced an invalid results file, so "
                                "this submission could not be graded. Please tell the course "
                                "staff.")
        raise ResultsError(f"{err} (an error results.json was written instead)") from None
    if out is not None:
        _write_atomically(Path(out), results)
    return results


def write_results(out: Path, results: dict) -> None:
    """Validate `results` and write them to `out` atomically, then check that the file on disk
    is the file written (nothing else may write there: raises ResultsError if it differs)."""
    results = _json_ready(results)
    validate_results(results)
    _write_atomically(Path(out), results)


def write_error_results(out: Path, message: str, tests: list[dict] | None = None) -> dict:
    """Write a valid results.json with score 0 and `message` as its output; return it.

    The last resort when grading itself failed: Gradescope shows "the autograder failed to
    produce any output" with no explanation otherwise. `tests`, if given, are listed with score 0
    (their name, max_score, number, visibility, tags and output are kept when well-formed), so
    students see what was at stake. It does not raise on any message or test list; only an
    unwritable `out` makes it fail.
    """
    try:
        text = str(message).strip()
    except Exception:
        text = ""
    results: dict[str, Any] = {
        "score": 0.0,
        "output": text or "The autograder failed before it could grade this submission.",
        "output_format": "text",
    }
    entries = [_error_entry(test, i) for i, test in enumerate(tests or [], 1)]
    if entries:
        results["tests"] = entries
    try:
        results = _json_ready(results)
        validate_results(results)
    except ResultsError:
        results.pop("tests", None)  # the message matters more than a malformed test list
    _write_atomically(Path(out), results)
    return results


def validate_results(results: dict) -> None:
    """Check `results` against Gradescope's format (schemas/results.schema.json).

    Gradescope ignores what it does not know and fails submissions on what it cannot read; the
    schema is strict (no unknown keys, numbers where numbers belong) so mistakes surface here.
    Raises ResultsError with one line naming the JSON path of the most relevant problem.
    """
    error = jsonschema.exceptions.best_match(_validator().iter_errors(_json_ready(results)))
    if error is not None:
        message = " ".join(error.message.split())
        if len(message) > 200:
            message = message[:197] + "..."
        raise ResultsError(f"results.json is invalid at {error.json_path}: {message}")


# --- helpers -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((files("vmlab") / "schemas" / "results.schema.json")
                        .read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _json_ready(results: object) -> Any:
    """`results` as it will read back from the file: tuples become lists, and what JSON cannot
    hold (NaN, objects) is an error here instead of a file Gradescope cannot parse."""
    try:
        return json.loads(json.dumps(results, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ResultsError(f"results.json cannot be written as JSON: {err}") from None


def _error_entry(test: object, index: int) -> dict:
    given: Mapping = test if isinstance(test, Mapping) else {"name": test}
    max_score = given.get("max_score")
    if (isinstance(max_score, bool) or not isinstance(max_score, (int, float))
            or not math.isfinite(max_score)):
        max_score = 0.0
    entry: dict[str, Any] = {
        "name": str(given.get("name") or f"Test {index}"),
        "score": 0.0,
        "max_score": max_score,
        "status": "failed",
        "output": str(given.get("output") or "Not graded: the autograder failed."),
    }
    if given.get("number") is not None:
        entry["number"] = str(given["number"])
    if given.get("visibility") in _VISIBILITY_RANK:
        entry["visibility"] = given["visibility"]
    if isinstance(given.get("tags"), (list, tuple)):
        entry["tags"] = [str(tag) for tag in given["tags"]]
    return entry


def _write_atomically(out: Path, results: dict) -> None:
    """Write via a temporary file and os.replace, so a crash or a timeout mid-write never
    leaves Gradescope a truncated results.json."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would differ from an ordinarily written file
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if out.read_text(encoding="utf-8") != text:
        raise ResultsError(f"{out} changed under the grader while it was written")
