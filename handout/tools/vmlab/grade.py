"""`vmlab grade SUBMISSION`: grade a submission (a folder or a zip), print the score table and
write Gradescope's results.json.

The submission's editable files are laid over a pristine handout (submission.py); a worker
process runs them (sandbox.py, worker.py); the grader, here, runs the bare machine and decides
every verdict (suite.py, properties/). Whatever goes wrong, a valid results.json is written.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import typer

from . import labroot
from .errors import UsageError, fail
from .rubric import Rubric, Test
from .rubric import load as load_rubric

REPO = Path(__file__).resolve().parents[2]


def default_handout() -> Path:
    """The pristine handout: the repository's (course staff), or Gradescope's copy."""
    for candidate in (REPO / "handout", Path("/autograder/source/handout")):
        if (candidate / "machine").is_dir():
            return candidate
    return REPO / "handout"


def select(rubric: Rubric, parts: list[str], tests: list[str], visible_only: bool) -> list[Test]:
    for p in parts:
        if p not in rubric.parts:
            raise UsageError(f"--part {p!r}: no such part; the parts are "
                             f"{', '.join(rubric.parts)}.")
    ids = {t.id for t in rubric.tests}
    for t in tests:
        if t not in ids:
            raise UsageError(f"--test {t!r}: no such test; the tests are {', '.join(sorted(ids))}.")
    return [t for t in rubric.tests
            if (not parts or t.part in parts) and (not tests or t.id in tests)
            and (t.visible or not visible_only)]


def notes(submission: Path, lab: Path, taken: list[str], missing: list[str], rubric: Rubric,
          tests: list[Test]) -> str:
    """What results.json says before the tests (missing, ignored and unparsable files, the
    development seeds); `vmlab batch` says the same."""
    from . import offering
    from .feedback import ignored_files, missing_files
    from .submission import ignored, syntax_errors
    found = [missing_files(missing)] if missing else []
    others = ignored(submission, taken)
    if others:
        found.append(ignored_files(others, rubric.editable))
    broken = syntax_errors(lab, [f for f in rubric.editable if f not in missing])
    if broken:
        found.append("These files do not parse, so nothing that imports them can run and "
                     "their tests score 0: " + "; ".join(broken.values()) + ".")
    development = offering.development_note(rubric, tests)
    if development:
        found.append(development)
    return "\n\n".join(found)


def grade_lab(lab: Path, rubric: Rubric, tests: list[Test], out: Path, extra_output: str = "",
              log: Callable[[str], None] = lambda s: None,
              reference: Path | None = None) -> dict:
    """Grade the assembled lab folder `lab`; write and return results.json.

    The grader's own bare machine comes from `reference` (the pristine handout), never from
    `lab`, whose code is the student's. results.json is written only once the worker and all
    it started are gone, so nothing of theirs can replace it."""
    from .confine import plan
    from .gradescope import run_tests, write_error_results, write_results
    from .sandbox import Worker
    from .suite import build
    labroot.use(reference or lab)
    start = time.monotonic()
    confinement = plan(rubric.time_limit)
    sandbox = sandbox_line(confinement.report())
    log(sandbox)

    def note_sandbox(data: dict) -> None:
        data.setdefault("extra_data", {})["sandbox"] = confinement.report()
        data["output"] = "\n\n".join(x for x in (data.get("output", ""), sandbox) if x)

    # a valid results.json from the start: should the grading process be killed, this is what
    # Gradescope finds
    write_error_results(out, "Grading did not finish: the grading process was stopped before "
                        "it could write the results. Tell the course staff.")
    try:
        worker = Worker(lab, timeout=rubric.example_time_limit, confinement=confinement,
                        deadline=start + rubric.time_limit)
        try:
            suite = build(rubric, worker, tests, start + rubric.time_limit, log)
            # what is alive now lives through the run: frozen, the garbage collector stops
            # walking it after every few thousand of hypothesis's allocations
            gc.collect()
            gc.freeze()
            try:
                results = run_tests(suite, None, extra_output=extra_output,
                                    stdout_visibility="visible", post_process=note_sandbox)
            finally:
                gc.unfreeze()
        finally:
            worker.close()
        write_results(out, results)
    except Exception as e:  # noqa: BLE001 - results.json is written whatever happened
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        message = (f"The grader itself failed ({detail}). This is not your fault: tell the "
                   "course staff. Your files were not changed.")
        return write_error_results(out, message, [
            {"name": t.id, "max_score": t.weight, "number": t.number,
             "visibility": t.visibility} for t in tests])
    return results


def drawn(entry: dict) -> str:
    """A results.json test entry's examples and their fingerprint (suite.Fingerprint), as the
    score tables show them: equal fingerprints, equal examples."""
    data = entry.get("extra_data", {})
    return f"{data['examples']} · {data['fingerprint']}" if data else ""


def sandbox_line(report: dict) -> str:
    """One line on what confined the student's code, and what could not, with why."""
    line = "Sandbox: " + ", ".join(report["layers"]) + "."
    for layer, why in report["missing"].items():
        line += f" Without {layer}: {why}."
    return line


def print_table(results: dict, title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    table = Table(title=escape(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("test")
    table.add_column("score", justify="right")
    # which examples each test drew (suite.Fingerprint): equal fingerprints, equal examples
    table.add_column("examples", justify="right")
    total = maximum = 0.0
    for t in sorted(results.get("tests", []), key=lambda t: [int(n) for n in
                                                       str(t.get("number") or "0").split(".")
                                                       if n.isdigit()]):
        score, top = t.get("score", 0), t.get("max_score", 0)
        total, maximum = total + score, maximum + top
        style = "green" if score >= top else "red"
        table.add_row(t.get("number", ""), escape(t.get("name", "")),  # "[id]" is not markup
                      f"[{style}]{score:g} / {top:g}[/{style}]",
                      drawn(t))
    table.add_section()
    table.add_row("", "total", f"{total:g} / {maximum:g}", "")
    Console(stderr=False).print(table)


def grade(
    submission: Path = typer.Argument(..., help="the student's handout folder, or a zip"),
    out: Path = typer.Option(Path("results.json"), "--out", help="where to write results.json"),
    part: list[str] = typer.Option([], "--part", help="only the tests of this part (repeatable)"),
    test: list[str] = typer.Option([], "--test", help="only this test (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print results.json instead of a table"),
    handout: Path = typer.Option(None, "--handout", help="the pristine handout (default: the "
                                 "repository's handout/)"),
    rubric_path: Path = typer.Option(None, "--rubric", help="the rubric (default: the built-in "
                                     "rubric.toml)"),
    secret: str = typer.Option(None, "--secret", help="the course offering's secret, from which "
                               "the hidden tests' seeds are derived (default: $VMLAB_SECRET; "
                               "without one, the development seeds)", show_default=False),
    keep: bool = typer.Option(False, "--keep", help="keep the assembled folder, for debugging"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="progress on stderr"),
) -> None:
    """Grade a submission: a score table on stdout, and Gradescope's results.json."""
    from . import offering
    from .submission import assemble
    try:
        rubric = load_rubric(rubric_path)
        secret = offering.secret_from(secret)
        if secret is not None:
            rubric = offering.apply(rubric, secret)
        tests = select(rubric, part, test, visible_only=False)
        lab, taken, missing = assemble(submission, handout or default_handout(), rubric.editable)
    except UsageError as e:
        from .gradescope import write_error_results
        write_error_results(out, f"Grading could not start: {e}")
        raise fail(str(e)) from None
    extra = notes(submission, lab, taken, missing, rubric, tests)
    # the runner captures sys.stderr into the tests' output: progress goes to the real one
    log = (lambda s: print(s, file=sys.__stderr__)) if verbose else (lambda s: None)
    try:
        results = grade_lab(lab, rubric, tests, out, extra, log,
                            reference=handout or default_handout())
    finally:
        if not keep:
            shutil.rmtree(lab, ignore_errors=True)
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results, f"{rubric.title}: {submission}")
        if extra:
            print(extra, file=sys.stderr)
