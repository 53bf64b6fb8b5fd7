"""`python bench/run.py batch`: submissions per core-minute, `vmlab grade` one by one against
`vmlab batch`, on a Gradescope-style export of mixed submissions (the solution, the handout,
buggy VMMs of tests/buggy_vmms.py), every test of the rubric, hidden ones included.

Both sides use the rubric with its time limits lifted (so that a loaded machine changes no
verdict) and run on `--jobs` cores (one by one: that many `vmlab grade` at a time). The rate is
submissions per minute of CPU (the grading processes and their workers: what a shared machine
does not distort much), and per minute of wall time times the cores. The batch's scores are then
compared with `vmlab grade`'s, submission by submission.

    python bench/run.py batch [--submissions 20] [--jobs 2] [--interrupt-after K] [--keep DIR]

`--interrupt-after K` stops the batch with SIGINT once K submissions are graded and finishes it
with `--resume` (the two runs' times are added), as a TA's Ctrl-C would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
VMLAB = [sys.executable, "-m", "vmlab"]


def _cpu(ru: object) -> float:
    return ru.ru_utime + ru.ru_stime  # type: ignore[attr-defined]


def lifted_rubric(dest: Path) -> Path:
    """The rubric with its time limits lifted: on a loaded machine a test that runs out of
    time is judged on fewer examples, and the two sides would not be comparable."""
    import re
    text = (REPO / "grader" / "vmlab" / "rubric.toml").read_text()
    text = re.sub(r"(?m)^time_limit = \d+", "time_limit = 3000", text)
    text = re.sub(r"(?m)^example_time_limit = \d+", "example_time_limit = 300", text)
    text = text.replace("time_limit = 3000", "time_limit = 3600", 1)  # the whole run's
    dest.write_text(text)
    return dest


def one_by_one(export: Path, keys: list[str], out: Path, jobs: int,
               rubric: Path) -> tuple[float, float]:
    """`vmlab grade` on each submission, `jobs` at a time: (wall, CPU) seconds."""
    out.mkdir(parents=True, exist_ok=True)
    todo, running, cpu = list(keys), {}, 0.0
    start = time.monotonic()
    while todo or running:
        while todo and len(running) < jobs:
            key = todo.pop(0)
            p = subprocess.Popen([*VMLAB, "grade", str(export / key), "--out",
                                  str(out / f"{key}.json"), "--rubric", str(rubric)],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd=REPO)
            running[p.pid] = (key, p)
        pid, _, ru = os.wait4(-1, 0)  # the child's CPU, its worker's included
        if pid in running:
            cpu += _cpu(ru)
            key, p = running.pop(pid)
            p.returncode = 0
            print(f"    graded {key} ({len(keys) - len(todo) - len(running)}/{len(keys)})",
                  flush=True)
    return time.monotonic() - start, cpu


def batch(export: Path, out: Path, jobs: int, interrupt_after: int,
          rubric: Path) -> tuple[float, float]:
    """`vmlab batch` on the export: (wall, CPU) seconds, an interrupted run and its resume
    added up."""
    import resource
    before = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    start = time.monotonic()
    args = [*VMLAB, "batch", str(export), "--out", str(out), "--jobs", str(jobs), "-q",
            "--rubric", str(rubric)]
    if interrupt_after:
        p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL)
        while len(list(out.glob("students/*/results.json"))) < interrupt_after:
            if p.poll() is not None:
                break
            time.sleep(1)
        p.send_signal(signal.SIGINT)
        p.wait()
        print(f"    interrupted with SIGINT (exit {p.returncode}) after "
              f"{len(list(out.glob('students/*/results.json')))} results; resuming", flush=True)
        args.append("--resume")
    subprocess.run(args, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    return wall, _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - before


def main(argv: list[str]) -> None:
    from batch_exports import export, mixed_class
    ap = argparse.ArgumentParser(prog="bench/run.py batch")
    ap.add_argument("--submissions", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--interrupt-after", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="keep the export and the outputs here")
    ap.add_argument("--one-by-one-only", action="store_true", help="only grade the export in "
                    "--keep one by one (a second process, beside a batch already running)")
    a = ap.parse_args(argv)
    if a.one_by_one_only:
        keys = [folder for folder, _, _ in mixed_class(a.submissions)]
        wall, cpu = one_by_one(a.keep / "export", keys, a.keep / "single", a.jobs,
                               a.keep / "rubric.toml")
        print(f"  {'vmlab grade one by one':<24} {wall:7.0f} s wall {cpu:7.0f} s CPU")
        return
    work = a.keep or Path(tempfile.mkdtemp(prefix="vmlab-bench-batch-"))
    items = mixed_class(a.submissions)
    root = export(work / "export", items)
    keys = [folder for folder, _, _ in items]
    work.mkdir(parents=True, exist_ok=True)
    rubric = lifted_rubric(work / "rubric.toml")
    print(f"batch grading: {a.submissions} mixed submissions, every test, {a.jobs} cores "
          f"(machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})", flush=True)
    print("  vmlab batch", flush=True)
    b_wall, b_cpu = batch(root, work / "batch", a.jobs, a.interrupt_after, rubric)
    print(f"  {'vmlab batch':<24} {b_wall:7.0f} s wall {b_cpu:7.0f} s CPU", flush=True)
    print("  vmlab grade, one by one", flush=True)
    s_wall, s_cpu = one_by_one(root, keys, work / "single", a.jobs, rubric)
    print(f"  {'vmlab grade one by one':<24} {s_wall:7.0f} s wall {s_cpu:7.0f} s CPU")
    n = a.submissions
    rate = [(n / (cpu / 60), n / (wall * a.jobs / 60)) for wall, cpu in
            ((s_wall, s_cpu), (b_wall, b_cpu))]
    print(f"  submissions per core-minute (CPU; wall x cores): one by one "
          f"{rate[0][0]:.2f} ({rate[0][1]:.2f}), batch {rate[1][0]:.2f} ({rate[1][1]:.2f}); "
          f"batch / one by one {rate[1][0] / rate[0][0]:.2f}x ({rate[1][1] / rate[0][1]:.2f}x)")
    same = differ = 0
    for key in keys:
        mine = json.loads((work / "batch" / "students" / key / "results.json").read_text())
        alone = json.loads((work / "single" / f"{key}.json").read_text())
        for r in (mine, alone):
            r.pop("execution_time", None)
        if mine == alone:
            same += 1
        else:
            differ += 1
            print(f"  DIFFERENT from vmlab grade: {key}")
    print(f"  results.json equal to vmlab grade's (apart from times): {same} of {n}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    if differ:
        raise SystemExit(1)
