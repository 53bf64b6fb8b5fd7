"""Where a batch's time goes: grade submissions one after another in one grading process, as a
batch's long-lived grading process does, and split each test's time into the grader's side
(hypothesis generating and shrinking, the bare machine, the checks), the worker's side (the
student's VMM, the sandbox's round trips) and shrinking.

    python bench/batch_profile.py [--memo [--no-logs]] [--only TEST ...] SOURCE ...

SOURCE is `solution`, `handout`, or a bug's name from tests/buggy_vmms.py or tests/designs.py.
Times are CPU seconds of this process (grader) and of the worker's processes (read from /proc
while they live), plus wall seconds of the part of each test after its first failure (shrink).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every process below it (those alive now)."""
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(e)] = fields
            kids.setdefault(int(fields[1]), []).append(int(e))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            f = stats[p]
            total += (int(f[11]) + int(f[12])) / TICK
        todo += kids.get(p, [])
    return total


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--memo", action="store_true", help="memos on (as in a batch)")
    ap.add_argument("--only", action="append", default=[], help="only this test")
    ap.add_argument("--no-logs", action="store_true",
                    help="with --memo: every log replayed (no memo of replays, memo.Logs)")
    a = ap.parse_args(argv)

    from batch_exports import source_named, write_submission
    from vmlab import memo, sandbox, suite
    from vmlab.batch_child import _prepare
    from vmlab.grade import default_handout, grade_lab, select
    from vmlab.properties import guests
    from vmlab.rubric import load as load_rubric
    from vmlab.submission import assemble

    handout = default_handout()
    _prepare(str(handout))
    if a.memo:
        memo.enable(Path(tempfile.mkdtemp(prefix="vmlab-profile-memo-")))
    if a.no_logs:
        memo.logs = lambda: None
    rubric = load_rubric(None)
    tests = select(rubric, [], a.only, visible_only=False)

    acc: dict[str, float] = {}
    worker_now: list[sandbox.Worker] = []
    real_call, real_init = sandbox.Worker.call, sandbox.Worker.__init__

    def init(self: sandbox.Worker, *args, **kw) -> None:
        real_init(self, *args, **kw)
        worker_now[:] = [self]

    def call(self: sandbox.Worker, probe: str, args: dict, timeout: float | None = None) -> dict:
        t = time.monotonic()
        try:
            return real_call(self, probe, args, timeout)
        finally:
            acc["call"] = acc.get("call", 0.0) + time.monotonic() - t
            acc["calls"] = acc.get("calls", 0) + 1

    real_bare = guests.run_bare

    def bare(*args, **kw):
        t = time.process_time()
        try:
            return real_bare(*args, **kw)
        finally:
            acc["bare"] = acc.get("bare", 0.0) + time.process_time() - t

    real_failed = suite.Tally.failed

    def failed(self: suite.Tally, example: object) -> None:
        if "shrink_from" not in acc:
            acc["shrink_from"] = time.monotonic()
        real_failed(self, example)

    real_run = suite.run_property
    rows: list[tuple] = []

    def run_property(prop, test, worker, *args, **kw):
        acc.clear()
        w = worker_now[0] if worker_now else None

        def wcpu() -> float:
            return _tree_cpu(w.proc.pid) if w is not None and w.proc is not None else 0.0
        w0, c0, t0 = wcpu(), time.process_time(), time.monotonic()
        out = real_run(prop, test, worker, *args, **kw)
        t1 = time.monotonic()
        rows.append((test.id, out[0], out[1] is None, t1 - t0, time.process_time() - c0,
                     max(0.0, wcpu() - w0), acc.get("call", 0.0), int(acc.get("calls", 0)),
                     acc.get("bare", 0.0), t1 - acc["shrink_from"] if "shrink_from" in acc
                     else 0.0))
        return out

    sandbox.Worker.call, sandbox.Worker.__init__ = call, init
    guests.run_bare = bare
    suite.Tally.failed = failed
    suite.run_property = run_property

    grand = {"wall": 0.0, "grader": 0.0, "worker": 0.0, "bare": 0.0, "shrink": 0.0, "call": 0.0}
    for source in a.sources:
        rows.clear()
        with tempfile.TemporaryDirectory() as tmp:
            sub = write_submission(Path(tmp) / "sub", source_named(source))
            lab, _, _ = assemble(sub, handout, rubric.editable, into=Path(tmp) / "lab")
            t0, c0 = time.monotonic(), time.process_time()
            grade_lab(lab, rubric, tests, Path(tmp) / "results.json", reference=handout)
            if str(lab) in sys.path:
                sys.path.remove(str(lab))
            wall, cpu = time.monotonic() - t0, time.process_time() - c0
        print(f"== {source}: {wall:.1f} s wall, grader {cpu:.1f} s CPU, memo {memo.stats}")
        print(f"   {'test':<28}{'ran':>5} ok {'wall':>6} {'grader':>6} {'worker':>6} "
              f"{'in-call':>7} {'calls':>5} {'bare':>6} {'shrink':>6}")
        for r in rows:
            print(f"   {r[0]:<28}{r[1]:>5} {'y' if r[2] else 'n'} {r[3]:6.1f} {r[4]:6.1f} "
                  f"{r[5]:6.1f} {r[6]:7.1f} {r[7]:5d} {r[8]:6.1f} {r[9]:6.1f}")
        s = [sum(r[i] for r in rows) for i in (3, 4, 5, 8, 9, 6)]
        print(f"   {'total':<28}{'':>8} {s[0]:6.1f} {s[1]:6.1f} {s[2]:6.1f} {s[5]:7.1f} "
              f"{'':>5} {s[3]:6.1f} {s[4]:6.1f}", flush=True)
        for k, v in zip(("wall", "grader", "worker", "bare", "shrink", "call"), s, strict=True):
            grand[k] += v
    print("ALL: " + ", ".join(f"{k} {v:.1f} s" for k, v in grand.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
