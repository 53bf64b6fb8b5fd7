"""A long-lived grading process of `vmlab batch`, and the handle its parent holds.

Each grading process grades one submission after another, exactly as `vmlab grade` does
(`assemble` + `grade_lab`: the same rubric, hidden tests included, the same sandboxed worker), and
keeps the memos of memo.py between them. The parent sends a job as one JSON line and reads the
answer as one; it kills a process (and everything it started) that runs past the wall-time cap
or dies, which costs that submission its result and nothing else.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECYCLE = 200  # submissions a grading process grades before a fresh one takes over
SCRATCH = "vmlab-batch-"  # a grading process's scratch folder: $TMPDIR/vmlab-batch-PID-*


# ----- in the grading process ---------------------------------------------------------------------

_PREPARED: dict[str, Any] = {}


def _prepare(handout: str) -> None:
    """Import the pristine machine once, from the handout: each submission's folder is deleted
    after its grading, and a module imported later must not be looked for there."""
    if _PREPARED.get("handout") == handout:
        return
    import importlib
    import pkgutil

    from . import labroot
    labroot.use(Path(handout))
    import machine
    for m in pkgutil.walk_packages(machine.__path__, "machine."):
        importlib.import_module(m.name)
    from .properties import load
    load()
    _PREPARED["handout"] = handout


def _cpu() -> float:
    """CPU seconds of this process and of the workers it has ended."""
    import resource
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def grade_job(job: dict) -> dict:
    """Grade one submission: {"key", "results_text"} (results.json as `vmlab grade` writes
    it), plus "error" when grading could not start."""
    from . import offering
    from .errors import UsageError
    from .grade import grade_lab, notes, select
    from .gradescope import write_error_results
    from .review import review
    from .rubric import load as load_rubric
    from .submission import assemble
    secret = job.get("secret") or None
    if secret:  # the memos' keys name it (memo.test_key)
        os.environ["VMLAB_SECRET"] = secret
    else:
        os.environ.pop("VMLAB_SECRET", None)
    _prepare(job["handout"])
    start, cpu = time.monotonic(), _cpu()
    answer: dict = {"key": job["key"]}
    tmp = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-"))
    # the worker's own user (when we run as root, without bubblewrap) may pass through it, as
    # through `vmlab grade`'s temporary folder, to what Confinement.prepare opens to it
    os.chmod(tmp, 0o711)
    try:
        out = tmp / "results.json"
        submission = Path(job["submission"])
        try:  # as `vmlab grade` does (grade.grade)
            rubric = load_rubric(Path(job["rubric"]) if job.get("rubric") else None)
            if secret is not None:
                rubric = offering.apply(rubric, secret)
            tests = select(rubric, [], job.get("tests") or [], visible_only=False)
            lab, taken, missing = assemble(submission, Path(job["handout"]), rubric.editable,
                                           into=tmp / "lab")
            extra = notes(submission, lab, taken, missing, rubric, tests)
            # read, never run: what the staff should look at in its parts (review.py)
            answer["review"] = [str(f) for f in review(lab, [n for n in rubric.editable
                                                             if n not in missing])]
        except (UsageError, OSError) as e:
            message = str(e) if isinstance(e, UsageError) else (
                f"submission {job['submission']}: cannot read {e.filename or 'a file'} "
                f"({e.strerror}).")
            write_error_results(out, f"Grading could not start: {message}")
            answer.update(error=message)
        else:  # the grader's machine from the pristine handout, never the student's folder
            grade_lab(lab, rubric, tests, out, extra, reference=Path(job["handout"]))
        answer["results_text"] = out.read_text()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from . import memo
    answer.update(seconds=round(time.monotonic() - start, 3), cpu=round(_cpu() - cpu, 3),
                  pid=os.getpid(), memo=dict(memo.stats))
    return answer


def main() -> None:
    """Serve jobs, one JSON line each, on stdin; answers on the stdout we were started with
    (whatever the grading prints goes to stderr)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from . import memo
    folder = os.environ.get("VMLAB_MEMO_DIR")
    if os.environ.get("VMLAB_MEMO", "1") != "0":
        try:
            memo.enable(Path(folder) if folder else None)
        except OSError:  # the batch's folder is not on this machine: memos of our own
            memo.enable(None)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            answer = grade_job(job)
        except Exception as e:  # noqa: BLE001 - the parent records why
            answer = {"key": job.get("key"), "error": f"the grader failed: {e!r}"}
        channel.write(json.dumps(answer) + "\n")
        channel.flush()


# ----- in the parent ----------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the sandboxed worker runs in a session of its own, so a
    kill of our process group does not reach it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def adopt_orphans() -> bool:
    """Make this process (the batch) adopt what a grading process that died leaves behind (its
    sandboxed worker, say), so that `reap_orphans` can end it (Linux)."""
    from .confine import _subreaper
    return _subreaper()


def reap_orphans(live: set[int]) -> None:
    """Kill, with their descendants, and reap this process's children that are not the live
    grading processes `live`: orphans adopted from a grading process that died."""
    from .confine import _children
    for pid in _children(os.getpid()):
        if pid in live:
            continue
        for victim in [pid, *_descendants(pid)]:
            try:
                os.kill(victim, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


class Child:
    """A grading process, its current job and when it started."""

    def __init__(self, env: dict[str, str], log: Path | None = None) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None
        self.job: dict | None = None
        self.started = 0.0
        self.done = 0
        self.buffer = b""

    def start(self) -> None:
        err = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "vmlab.batch_child"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                     env=self.env, start_new_session=True)
        if self.log:
            err.close()
        self.done, self.buffer = 0, b""

    def fileno(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def submit(self, job: dict) -> None:
        if self.proc is None or self.proc.poll() is not None or self.done >= RECYCLE:
            self.kill()
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.job, self.started = job, time.monotonic()
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: read() says so

    def read(self) -> dict | None:
        """The answer, if it is complete; a failure answer if the process died."""
        chunk = os.read(self.fileno(), 1 << 20)
        if not chunk:
            assert self.proc is not None
            code = self.proc.wait()
            key = (self.job or {}).get("key")
            self.kill()
            return {"key": key, "error": f"the grading process died ({died(code)}) while "
                                         "grading it: out of memory, or a bug of the grader "
                                         "that this submission brought out; its result is "
                                         "lost, the rest of the batch is not"}
        self.buffer += chunk
        if not self.buffer.endswith(b"\n"):
            return None
        answer = json.loads(self.buffer)
        self.buffer, self.job = b"", None
        self.done += 1
        return answer

    def kill(self) -> None:
        """Kill the grading process and everything it started; remove its scratch folder."""
        if self.proc is None:
            return
        for pid in _descendants(self.proc.pid):
            for kill in (lambda p: os.killpg(p, signal.SIGKILL),
                         lambda p: os.kill(p, signal.SIGKILL)):
                try:
                    kill(pid)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        # a process killed in the middle of a submission left its scratch folder behind
        for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH}{self.proc.pid}-*"):
            shutil.rmtree(folder, ignore_errors=True)
        self.proc, self.job = None, None

    def run(self, job: dict, timeout: float) -> dict:
        """Grade `job` and wait for it (a cluster task does this)."""
        self.submit(job)
        deadline = self.started + timeout
        while True:
            left = deadline - time.monotonic()
            ready = select.select([self.fileno()], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self.kill()
                return timed_out(job, timeout)
            answer = self.read()
            if answer is not None:
                return answer


def died(code: int) -> str:
    """How a process ended, from its exit status."""
    if code < 0:
        try:
            return f"killed by signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def timed_out(job: dict, timeout: float) -> dict:
    return {"key": job.get("key"),
            "error": f"grading ran past the batch's cap of {timeout:g} s and was stopped (an "
                     "endless loop that the per-example limit did not catch?)"}


_CLUSTER_CHILD: Child | None = None


def cluster_task(job: dict, timeout: float, env: dict[str, str]) -> dict:
    """A Dask task: grade `job` in this worker's long-lived grading process."""
    global _CLUSTER_CHILD
    if _CLUSTER_CHILD is None:
        full = dict(os.environ)
        full.update(env)
        if "VMLAB_MEMO_DIR" in env and not Path(env["VMLAB_MEMO_DIR"]).parent.is_dir():
            full["VMLAB_MEMO_DIR"] = tempfile.mkdtemp(prefix="vmlab-memo-")
        _CLUSTER_CHILD = Child(full)
    return _CLUSTER_CHILD.run(job, timeout)


if __name__ == "__main__":
    main()
