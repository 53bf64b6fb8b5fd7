"""`python bench/run.py batch`: submissions per core-minute, `vmlab grade` one by one against
`vmlab batch`, on a Gradescope-style export of mixed submissions (the solution, the handout,
buggy VMMs of tests/buggy_vmms.py and tests/designs.py, a correct design of tests/designs.py),
every test of the rubric, hidden ones included.

Both sides use the rubric with its time limits lifted (so that a loaded machine changes no
verdict) and run on `--jobs` cores (one by one: that many `vmlab grade` at a time). The rate is
submissions per minute of CPU (the grading processes and their workers: what a shared machine
does not distort much), and per minute of wall time times the cores. The workers run without
bubblewrap unless `--bubblewrap` is given: a worker killed with its PID namespace is reaped by
no process of ours, so its CPU time would be missing from both sides (both start one worker per
submission, so the sandbox's own cost is the same on both). The batch's results.json are then
compared with `vmlab grade`'s, submission by submission.

    python bench/run.py batch [--submissions 20] [--jobs 2] [--rounds 1] [--interrupt-after K]
                              [--keep DIR] [--bubblewrap]

`--rounds R` measures both sides R times, in alternating order, and prints each round and the
medians. `--interrupt-after K` stops the batch with SIGINT once K submissions are graded and
finishes it with `--resume` (the two runs' times are added), as a TA's Ctrl-C would.
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
CPU_EACH: dict[str, dict[str, float]] = {}  # side -> submission -> CPU seconds (this round)
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
    """`vmlab grade` on each submission, `jobs` at a time: (wall, CPU) seconds; each one's CPU
    in `CPU_EACH`."""
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
            CPU_EACH.setdefault("single", {})[key] = _cpu(ru)
            print(f"    graded {key} ({len(keys) - len(todo) - len(running)}/{len(keys)}): "
                  f"{_cpu(ru):.0f} s CPU", flush=True)
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
    for line in (out / ".logs" / "answers.jsonl").read_text().splitlines():
        answer = json.loads(line)
        CPU_EACH.setdefault("batch", {})[answer["key"]] = answer["cpu"]
        print(f"    graded {answer['key']}: {answer['cpu']:.0f} s CPU", flush=True)
    return wall, _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - before


def main(argv: list[str]) -> None:
    import statistics

    from batch_exports import export, mixed_class
    ap = argparse.ArgumentParser(prog="bench/run.py batch")
    ap.add_argument("--submissions", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interrupt-after", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="keep the export and the outputs here")
    ap.add_argument("--bubblewrap", action="store_true", help="workers in bubblewrap (their "
                    "CPU time is then missing from both sides: compare the wall rates)")
    a = ap.parse_args(argv)
    if not a.bubblewrap:
        os.environ["VMLAB_BUBBLEWRAP"] = "0"
    work = a.keep or Path(tempfile.mkdtemp(prefix="vmlab-bench-batch-"))
    items = mixed_class(a.submissions)
    root = export(work / "export", items)
    keys = [folder for folder, _, _ in items]
    rubric = lifted_rubric(work / "rubric.toml")
    kinds = {}
    for _, _, source in items:
        kind = source if isinstance(source, str) else type(source).__name__.lower()
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"batch grading: {a.submissions} mixed submissions "
          f"({', '.join(f'{v} {k}' for k, v in kinds.items())}), every test, {a.jobs} cores, "
          f"workers {'in' if a.bubblewrap else 'without'} bubblewrap (machine: "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})", flush=True)
    n, rows, differ = a.submissions, [], 0
    for r in range(a.rounds):
        out_b, out_s = work / f"batch-{r}", work / f"single-{r}"
        shutil.rmtree(out_b, ignore_errors=True)
        shutil.rmtree(out_s, ignore_errors=True)
        sides = {}
        CPU_EACH.clear()
        for side in (("batch", "single") if r % 2 == 0 else ("single", "batch")):
            if side == "batch":
                sides[side] = batch(root, out_b, a.jobs, a.interrupt_after, rubric)
            else:
                sides[side] = one_by_one(root, keys, out_s, a.jobs, rubric)
            wall, cpu = sides[side]
            name = "vmlab batch" if side == "batch" else "vmlab grade one by one"
            print(f"  round {r + 1}: {name:<24} {wall:7.0f} s wall {cpu:7.0f} s CPU   "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
        (s_wall, s_cpu), (b_wall, b_cpu) = sides["single"], sides["batch"]
        row = (n / (s_cpu / 60), n / (b_cpu / 60), n / (s_wall * a.jobs / 60),
               n / (b_wall * a.jobs / 60))
        each = [CPU_EACH["single"][k] / CPU_EACH["batch"][k] for k in keys
                if CPU_EACH.get("batch", {}).get(k) and k in CPU_EACH.get("single", {})]
        rows.append(row)
        line = (f"  round {r + 1}: submissions per core-minute, CPU: one by one {row[0]:.2f}, "
                f"batch {row[1]:.2f} ({row[1] / row[0]:.2f}x); wall x cores: one by one "
                f"{row[2]:.2f}, batch {row[3]:.2f} ({row[3] / row[2]:.2f}x)")
        if each:
            line += (f"; each submission's CPU, one by one / batch: median "
                     f"{statistics.median(each):.2f}x ({min(each):.2f}x to {max(each):.2f}x)")
        print(line, flush=True)
        differ += compare(keys, out_b, out_s)
    med = [statistics.median(x) for x in zip(*rows, strict=True)]
    ratios = [statistics.median(r[1] / r[0] for r in rows),
              statistics.median(r[3] / r[2] for r in rows)]
    print(f"  median of {a.rounds} round(s), submissions per core-minute:")
    print(f"    {'':<8}{'one by one':>12}{'batch':>10}{'batch / one by one':>22}")
    print(f"    {'CPU':<8}{med[0]:>12.2f}{med[1]:>10.2f}{ratios[0]:>21.2f}x")
    print(f"    {'wall':<8}{med[2]:>12.2f}{med[3]:>10.2f}{ratios[1]:>21.2f}x")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    if differ:
        raise SystemExit(1)


def compare(keys: list[str], batch_out: Path, single_out: Path) -> int:
    """Each batch results.json against `vmlab grade`'s: how many differ (apart from times)."""
    same = differ = 0
    for key in keys:
        mine = json.loads((batch_out / "students" / key / "results.json").read_text())
        alone = json.loads((single_out / f"{key}.json").read_text())
        for r in (mine, alone):
            r.pop("execution_time", None)
        if mine == alone:
            same += 1
        else:
            differ += 1
            print(f"  DIFFERENT from vmlab grade: {key}")
    print(f"  results.json equal to vmlab grade's (apart from times): {same} of {len(keys)}",
          flush=True)
    return differ


if __name__ == "__main__":
    main(sys.argv[1:])
