"""`vmlab batch SUBMISSIONS --out DIR`: grade a whole class, for course staff.

The submissions (batch_export.py) are graded in parallel by long-lived grading processes
(batch_child.py), each exactly as `vmlab grade` grades one, or by the workers of a Dask cluster
(`--scheduler`). Each result is written atomically as it arrives, so a crash or a Ctrl-C loses
nothing graded and `--resume` grades only what is left. At the end: the gradebook CSVs, each
student's results.json and feedback, a summary on the terminal and report.html (report.py).

    DIR/gradebook.csv          one row per submitter: name, SID, email, score per part, total
    DIR/canvas.csv             the same scores in the columns Canvas's gradebook import reads
    DIR/report.html            histogram, pass rate of each test per part, a row per student
    DIR/students/KEY/          results.json, feedback.md and feedback.html (the same, as a web
                               page), error.txt (when it could not be graded)
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import typer

from .batch_child import Child, adopt_orphans, cluster_task, reap_orphans, timed_out
from .batch_export import Batch, Entry, discover
from .errors import UsageError, fail
from .rubric import Rubric
from .rubric import load as load_rubric

TEST_ID = re.compile(r"\[([^\]]+)\]\s*$")


def write_atomic(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a kill mid-write leaves the old file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def student_dir(out: Path, key: str) -> Path:
    return out / "students" / key


def done(out: Path, key: str) -> bool:
    return (student_dir(out, key) / "results.json").is_file()


def record(out: Path, entry: Entry, answer: dict, rubric: Rubric) -> str | None:
    """Store one answer; the reason it failed, if it did."""
    from .report import feedback_html, feedback_markdown
    d = student_dir(out, entry.key)
    error = answer.get("error")
    text = answer.get("results_text")
    if text is not None:
        results = json.loads(text)
        write_atomic(d / "feedback.md", feedback_markdown(results, entry, rubric))
        write_atomic(d / "feedback.html", feedback_html(results, entry, rubric))
        if error:
            write_atomic(d / "error.txt", error + "\n")
        else:
            (d / "error.txt").unlink(missing_ok=True)
        if answer.get("review"):
            write_atomic(d / "review.txt", "\n".join(answer["review"]) + "\n")
        else:
            (d / "review.txt").unlink(missing_ok=True)
        write_atomic(d / "results.json", text)  # last: its presence means "graded"
    else:
        write_atomic(d / "error.txt", (error or "no answer") + "\n")
        if (d / "results.json").exists():  # an earlier run's: kept aside, no longer current
            os.replace(d / "results.json", d / "results.previous.json")
    return error


# ----- running the jobs -----------------------------------------------------------------------

def run_local(jobs: list[dict], n: int, timeout: float, env: dict[str, str], logs: Path,
              on_answer: Callable[[dict, dict], None]) -> None:
    """Grade `jobs` on `n` grading processes of this machine."""
    pending = list(reversed(jobs))
    children = [Child(env, logs / f"grading-{i}.log") for i in range(max(1, min(n, len(jobs))))]
    adopted = adopt_orphans()

    def ended() -> None:  # a grading process died or was killed: what it left behind too
        if adopted:
            reap_orphans({c.proc.pid for c in children if c.proc is not None})
    try:
        while pending or any(c.job for c in children):
            for c in children:
                if c.job is None and pending:
                    c.submit(pending.pop())
            busy = [c for c in children if c.job is not None]
            ready = select.select(busy, [], [], 0.5)[0]
            for c in ready:
                job = c.job
                answer = c.read()
                if c.proc is None:
                    ended()
                if answer is not None and job is not None:
                    on_answer(job, answer)
            now = time.monotonic()
            for c in busy:
                if c.job is not None and now - c.started > timeout:
                    job = c.job
                    c.kill()
                    ended()
                    on_answer(job, timed_out(job, timeout))
    finally:
        for c in children:
            c.kill()
        ended()


def run_cluster(address: str, jobs: list[dict], timeout: float, env: dict[str, str],
                on_answer: Callable[[dict, dict], None]) -> None:
    """Grade `jobs` on the workers of the Dask cluster at `address`."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--scheduler needs dask.distributed: pip install 'vmlab[cluster]'.") \
            from None
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--scheduler {address}: cannot reach the scheduler ({e}).") from None
    with client:
        futures = {client.submit(cluster_task, job, timeout, env, pure=False,
                                 key=f"vmlab-{job['key']}-{os.urandom(4).hex()}"): job
                   for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    answer = future.result()
                except Exception as e:  # noqa: BLE001 - a lost worker costs that job
                    answer = {"key": job["key"], "error": f"the cluster lost the job ({e!r})"}
                on_answer(job, answer)
        finally:
            client.cancel(list(futures))


# ----- the gradebook and the summary ----------------------------------------------------------

def load_results(out: Path, entries: list[Entry]) -> dict[str, dict]:
    results = {}
    for e in entries:
        try:
            results[e.key] = json.loads((student_dir(out, e.key) / "results.json").read_text())
        except (OSError, ValueError):
            pass
    return results


def load_reviews(out: Path, results: dict[str, dict]) -> dict[str, list[str]]:
    """What review.py found in each graded submission's parts, where it found anything."""
    reviews = {}
    for key in results:
        try:
            lines = (student_dir(out, key) / "review.txt").read_text().splitlines()
        except OSError:
            continue
        if lines:
            reviews[key] = lines
    return reviews


def part_scores(results: dict, rubric: Rubric) -> dict[str, float]:
    """Points per rubric part (a test's part, from the `[id]` at the end of its name)."""
    part_of = {t.id: t.part for t in rubric.tests}
    scores: dict[str, float] = {}
    for t in results.get("tests", []):
        m = TEST_ID.search(t.get("name", ""))
        part = part_of.get(m.group(1)) if m else None
        if part is not None:
            scores[part] = scores.get(part, 0.0) + float(t.get("score", 0))
    return scores


def gradebook_rows(entries: list[Entry], results: dict[str, dict], errors: dict[str, str],
                   rubric: Rubric, tests: list) -> tuple[list[str], list[list[str]]]:
    parts = [p for p in rubric.parts if any(t.part == p for t in tests)]
    top = sum(t.weight for t in tests)
    header = ["Name", "SID", "Email", "Submission", *parts, "Total Score", "Max Points",
              "Status"]
    rows = []
    for e in entries:
        r = results.get(e.key)
        scores = part_scores(r, rubric) if r else {}
        status = "graded" if r and e.key not in errors else \
            "not graded: " + errors.get(e.key, "not graded yet")
        if r and e.key in errors:
            status = "could not start: " + errors[e.key]
        for s in e.submitters:
            total = f"{float(r.get('score', 0)):g}" if r else ""
            rows.append([s.name, s.sid, s.email, e.key,
                         *[f"{scores.get(p, 0.0):g}" if r else "" for p in parts],
                         total, f"{top:g}", status])
    return header, rows


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    f = io.StringIO()
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return f.getvalue()


def canvas_csv(header: list[str], rows: list[list[str]], title: str) -> str:
    """Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then one
    column per assignment. Canvas matches a row on the SIS User ID (the SID)."""
    total = header.index("Total Score")
    out = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", title]]
    out += [[r[0], "", r[1], r[2], "", r[total]] for r in rows if r[total] != ""]
    return csv_text(out[0], out[1:])


def shown_problems(found: Batch, errors: dict[str, str]) -> list[tuple[str, str]]:
    """The problems of the input that the terminal and the report show apart: not those
    already said in full as why a submission was not graded (a file of it damaged in the
    export)."""
    return [(where, why) for where, why in found.problems
            if not any(why in error for error in errors.values())]


def print_summary(results: dict[str, dict], problems: list[tuple[str, str]],
                  errors: dict[str, str], tests: list,
                  reviews: dict[str, list[str]] | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console = Console()
    table = Table(title=f"{len(results)} submissions graded", title_justify="left")
    for name in ("#", "test", "full", "partial", "none"):
        table.add_column(name, justify="left" if name == "test" else "right")
    for t in tests:
        full = partial = none = 0
        for r in results.values():
            for got in r.get("tests", []):
                m = TEST_ID.search(got.get("name", ""))
                if m and m.group(1) == t.id:
                    score, top = float(got.get("score", 0)), float(got.get("max_score", 0))
                    full += score >= top
                    partial += 0 < score < top
                    none += score <= 0 < top
        table.add_row(t.number, escape(t.id), str(full), str(partial), str(none))
    console.print(table)
    if errors or problems:
        console.print(f"[bold red]{len(errors) + len(problems)} problem(s):[/bold red]")
        for key, why in sorted(errors.items()):
            console.print(f"  [red]{escape(key)}[/red]: {escape(why)}", soft_wrap=True)
        for _, why in problems:
            console.print(f"  [red]-[/red] {escape(why)}", soft_wrap=True)
    if reviews:
        console.print(f"[bold yellow]{len(reviews)} submission(s) to read[/bold yellow]: code "
                      "in their parts that no VMM needs (the machine's own interpreter or "
                      "firmware, the grader, code made at run time), which the tests cannot "
                      "tell from the student's work. Not scored; each student's review.txt "
                      "and report.html list the lines.")
        for key, lines in sorted(reviews.items()):
            more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
            console.print(f"  [yellow]{escape(key)}[/yellow]: {escape('; '.join(lines[:2]))}"
                          f"{more}", soft_wrap=True)


# ----- the command ----------------------------------------------------------------------------

def batch(
    submissions: Path = typer.Argument(..., help="a folder of submissions (one folder or zip "
                                       "each), or Gradescope's Export Submissions zip/folder"),
    out: Path = typer.Option(..., "--out", help="the output folder"),
    jobs: int = typer.Option(0, "--jobs", "-j", help="grading processes (default: the cores)"),
    resume: bool = typer.Option(False, "--resume", help="grade only what has no result yet"),
    only: list[str] = typer.Option([], "--only", help="(re)grade only these SIDs or "
                                   "submission folders (repeatable, or comma-separated)"),
    test: list[str] = typer.Option([], "--test", help="only this test (repeatable)"),
    part: list[str] = typer.Option([], "--part", help="only the tests of this part"),
    secret: str = typer.Option(None, "--secret", envvar="VMLAB_SECRET",
                               help="the course offering's secret for the hidden seeds"),
    scheduler: str = typer.Option(None, "--scheduler", help="a Dask scheduler's address "
                                  "(tcp://host:8786): grade on its workers"),
    timeout: float = typer.Option(0, "--timeout", help="wall-time cap per submission, seconds "
                                  "(default: the rubric's time limit and a half)"),
    handout: Path = typer.Option(None, "--handout", help="the pristine handout"),
    rubric_path: Path = typer.Option(None, "--rubric", help="the rubric"),
    no_memo: bool = typer.Option(False, "--no-memo", help="grade each submission from "
                                 "scratch (no work shared across the batch)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Grade many submissions in parallel: a gradebook CSV, per-student results and a report."""
    from .grade import default_handout, select
    try:
        rubric = load_rubric(rubric_path)
        tests = select(rubric, part, test, visible_only=False)
        out.mkdir(parents=True, exist_ok=True)
        found = discover(submissions, out / ".export")
    except UsageError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"--out {out}: cannot write there ({e.strerror}).") from None
    handout = (handout or default_handout()).resolve()
    wanted = {w.strip() for o in only for w in o.split(",") if w.strip()}
    if wanted:
        known = {s.sid for e in found.entries for s in e.submitters} | \
            {e.key for e in found.entries}
        unknown = sorted(wanted - known)
        if unknown:
            raise fail(f"--only: no submission of {', '.join(unknown)} in {submissions}.")
    todo = [e for e in found.entries
            if (not wanted or e.key in wanted or any(s.sid in wanted for s in e.submitters))
            and not (resume and not wanted and done(out, e.key))]
    env = dict(os.environ)
    env["VMLAB_MEMO_DIR"] = str((out / ".memo").resolve())
    env["VMLAB_MEMO"] = "0" if no_memo else "1"
    env.pop("VMLAB_SECRET", None)  # the jobs carry it
    cap = timeout or rubric.time_limit * 1.5 + 60
    job_list = [{"key": e.key, "submission": str(e.path.resolve()), "handout": str(handout),
                 "rubric": str(rubric.path.resolve()) if rubric_path else None,
                 "tests": [t.id for t in tests], "secret": secret or ""}
                for e in todo if e.problem is None]
    errors = _old_errors(out, found.entries, todo)
    for e in todo:  # damaged in the export: not graded, and the gradebook says why
        if e.problem is not None:
            errors[e.key] = record(out, e, {"key": e.key, "error": e.problem}, rubric) or ""
    graded = _grade(job_list, found, out, rubric, jobs or os.cpu_count() or 1, cap, env,
                    scheduler, errors, quiet)
    _finish(out, found, rubric, tests, errors)
    if not graded:
        raise typer.Exit(130)


def _old_errors(out: Path, entries: list[Entry], todo: list[Entry]) -> dict[str, str]:
    """The failures recorded by an earlier run, for what this run does not regrade."""
    again = {e.key for e in todo}
    errors = {}
    for e in entries:
        f = student_dir(out, e.key) / "error.txt"
        if e.key not in again and f.is_file():
            errors[e.key] = f.read_text().strip()
    return errors


def _grade(jobs: list[dict], found: Batch, out: Path, rubric: Rubric, n: int, cap: float,
           env: dict[str, str], scheduler: str | None, errors: dict[str, str],
           quiet: bool) -> bool:
    """Run the jobs with a progress bar; False if interrupted (what was graded is kept)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    by_key = {e.key: e for e in found.entries}
    start = time.monotonic()
    failures = [0]
    # the time left from the mean rate since the start: rich's own estimate follows the last
    # 30 s, and two submissions that end together made it say seconds with half the class left
    progress = Progress(SpinnerColumn(), TextColumn("grading"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), TextColumn("elapsed, {task.fields[left]} left,"),
                        TextColumn("[red]{task.fields[failures]} failed"), disable=quiet)
    task = progress.add_task("grading", total=len(jobs), rate="", left="?", failures=0)

    def on_answer(job: dict, answer: dict) -> None:
        error = record(out, by_key[job["key"]], answer, rubric)
        with open(logs / "answers.jsonl", "a") as f:  # how long each took, what the memos did
            f.write(json.dumps({k: answer.get(k) for k in ("key", "seconds", "cpu", "pid", "memo",
                                                           "error")}) + "\n")
        if error:
            errors[job["key"]] = error
            failures[0] += 1
        else:
            errors.pop(job["key"], None)
        progress.advance(task)
        count = progress.tasks[0].completed
        elapsed = max(1e-9, time.monotonic() - start)
        progress.update(task, rate=f"{count / elapsed * 60:.1f}/min", failures=failures[0],
                        left=time_left(elapsed, count, len(jobs)))

    logs = out / ".logs"
    logs.mkdir(exist_ok=True)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    # a kill (SIGTERM) stops the batch as Ctrl-C does, and so does Ctrl-C where the shell that
    # started us in the background told us to ignore it
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        with progress:
            if scheduler:
                run_cluster(scheduler, jobs, cap, env, on_answer)
            elif jobs:
                run_local(jobs, n, cap, env, logs, on_answer)
    except KeyboardInterrupt:
        print("vmlab batch: interrupted; what was graded is kept: rerun with --resume to "
              "grade the rest.", file=sys.stderr)
        return False
    except UsageError as e:
        raise fail(str(e)) from None
    return True


def time_left(elapsed: float, done: int, total: int) -> str:
    """About how long the rest takes at the mean rate so far, as h:mm:ss."""
    if not done:
        return "?"
    left = round(elapsed / done * (total - done))
    return f"about {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


def _finish(out: Path, found: Batch, rubric: Rubric, tests: list,
            errors: dict[str, str]) -> None:
    from .report import write_report
    results = load_results(out, found.entries)
    header, rows = gradebook_rows(found.entries, results, errors, rubric, tests)
    write_atomic(out / "gradebook.csv", csv_text(header, rows))
    write_atomic(out / "canvas.csv", canvas_csv(header, rows, "vmlab"))
    write_atomic(out / "problems.json", json.dumps(
        {"input": [{"where": w, "why": why} for w, why in found.problems],
         "grading": [{"submission": k, "why": v} for k, v in sorted(errors.items())]},
        indent=2) + "\n")
    reviews = load_reviews(out, results)
    write_report(out / "report.html", found, results, errors, rubric, tests, reviews)
    print_summary(results, shown_problems(found, errors), errors, tests, reviews)
    print(f"gradebook: {out / 'gradebook.csv'}   report: {out / 'report.html'}")
