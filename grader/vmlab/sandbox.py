"""The grader's side of the boundary: a worker process that runs the submission.

The grader never imports a student's code. It starts `python -m vmlab.worker` in the assembled
submission folder and exchanges one JSON line per probe. Every answer is checked against the
shape the probe promises before anything looks at it. A worker that dies, hangs past the
per-example limit, floods its channel or answers nonsense is killed and restarted, and the
probe reports a `WorkerFailure`, which costs the student that example and nothing else.

How the worker is confined (bubblewrap, its own user, limits) is confine.py's business; a
start that fails (the student's import hangs, or kills the worker) fails every later call at
once, since importing the same code again would fail the same way.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from . import memo, reconcile, worker_view
from .answers import SHAPES, shape_error
from .confine import LIVE, Confinement, plan
from .hardware import HANDLER_PROBES, RING_PROBES, Abandoned, Abort, Hardware, Replay
from .wire import END, Channel, WireError

MAX_ANSWER = 4 << 20  # bytes: a longer line is a flood
START_MARGIN = 10.0  # seconds a start (and the student's import) may take past an example's
HOLD_BYTES = 16 << 20  # the most of a request's log held unreplayed (memo.Logs); past it, replayed
# "inprocess": the worker runs the machine itself, as before the hardware moved into the grading
# process (for `make bench` to compare the two; never for grading)
HARNESS_ENV = "VMLAB_HARNESS"

ERROR_SHAPE = {"type": "object", "required": ["type", "message", "traceback"],
               "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                              "traceback": {"type": "string"}}}
ANSWER_SHAPE = {"type": "object", "required": ["ok"],
                "properties": {"ok": {"type": "boolean"}, "result": {"type": "object"},
                               "error": ERROR_SHAPE}}


class WorkerFailure(Exception):
    """The worker crashed, hung or lied: the example fails, the run goes on."""

    def __init__(self, kind: str, detail: str, traceback: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.traceback = kind, detail, traceback


class StudentError(Exception):
    """The student's code raised: `kind` is the exception's type, `traceback` trimmed to
    their files."""

    def __init__(self, kind: str, message: str, traceback: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.traceback = kind, message, traceback


class Worker:
    def __init__(self, lab: Path, timeout: float = 20.0, confinement: Confinement | None = None,
                 deadline: float | None = None) -> None:
        self.lab = Path(lab)
        self.timeout = timeout
        self.deadline = deadline  # time.monotonic() past which no call may wait
        self.confinement = confinement or plan(3600)
        self.remote = os.environ.get(HARNESS_ENV) != "inprocess"
        # the worker's own labs (worker_view.py): the student's vmm/ and the machine, with its
        # engine (True) or, for a test of one handler, without it
        self.views = {engine: self._view(engine)
                      for engine in ((True, False) if self.remote else (True,))}
        self.engine = True  # which the running worker has
        self.hardware: Hardware | None = None
        self.link: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.stderr_path = Path(tempfile.gettempdir()) / f"vmlab-worker-{os.getpid()}.stderr"
        self.restarts = 0
        self.seq = 0  # the number of the last request: each answer must carry it
        self.broken: WorkerFailure | None = None  # a start that failed: every call fails so
        # in a batch: the test's replayed logs (memo.Logs), the request's part of its log's key
        # (the request, the count and RAM of the machines before it), those machines, and
        # whether its log is held unreplayed
        self.logs: memo.Logs | None = None
        self.log_request: tuple[str, dict, tuple[int, int]] | None = None
        self.old_boxes: list[int] = []
        self.holding = False

    def _view(self, engine: bool) -> Path:
        """The lab a worker with the machine's engine, or without it, runs in, made."""
        view = Path(tempfile.mkdtemp(prefix="vmlab-lab-")) if self.remote else self.lab
        if self.remote:
            worker_view.build(self.lab / "machine", view, engine)
            shutil.copytree(self.lab / "vmm", view / "vmm", symlinks=True)
        self.confinement.prepare(view, engine)
        return view

    def start(self) -> None:
        if self.broken is not None:
            raise self.broken
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        # truncated at each start: a file-size limit counts what a dead worker left in it
        self.stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - lives as long as the worker
        config = self.confinement.worker_config(self.engine)
        theirs = None
        if self.remote:
            self.link, theirs = socket.socketpair()
            self.hardware = Hardware(Replay(Channel(self.link)), runs=self.engine)
            config.update(hardware_fd=theirs.fileno(), runs=self.engine)
        command, cwd = self.confinement.command(self.views[self.engine], json.dumps(config))
        try:
            self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.stderr,
                                         start_new_session=True,
                                         pass_fds=() if theirs is None else (theirs.fileno(),))
        finally:
            if theirs is not None:
                theirs.close()
        LIVE.add(self.proc.pid)
        try:
            ready = self._read(self._wait(self.timeout + START_MARGIN), "start")
        except WorkerFailure as e:
            self.stop()
            detail = ("importing your code did not finish in time (an endless loop at import?)"
                      if e.kind == "timeout" else
                      "the worker exited while importing your code (sys.exit or os._exit at "
                      "import, or out of memory?)" if e.kind == "crash" else e.detail)
            self.broken = WorkerFailure("start", detail)
            raise self.broken from None
        if ready.get("result", {}).get("ready") is not True:
            self.stop()
            self.broken = WorkerFailure("start", "the worker did not start")
            raise self.broken

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            LIVE.discard(self.proc.pid)
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    f.close()
            self.stderr.close()
            self.proc = None
            self.confinement.sweep()
        if self.hardware is not None:
            self.hardware.close()
            self.hardware = None
        self.logs, self.holding = None, False
        if self.link is not None:
            self.link.close()
            self.link = None

    def close(self) -> None:
        """Stop for good: the worker and what it left behind (stop sweeps after every worker
        it ends), and its output file."""
        self.stop()
        self.stderr_path.unlink(missing_ok=True)
        for view in self.views.values():
            if view != self.lab:
                shutil.rmtree(view, ignore_errors=True)

    def _wait(self, seconds: float) -> float:
        """`seconds`, or less if the run's deadline comes first (never less than a second)."""
        if self.deadline is None:
            return seconds
        return max(1.0, min(seconds, self.deadline - time.monotonic()))

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, probe: str, args: dict, timeout: float | None = None) -> dict:
        """Run one probe; its result, or StudentError, or WorkerFailure (worker restarted)."""
        engine = probe not in HANDLER_PROBES or not self.remote
        if self.proc is None or self.proc.poll() is not None or engine != self.engine:
            self.stop()
            self.engine = engine
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.seq += 1
            request = {"probe": probe, "args": args, "seq": self.seq}
            if self.hardware is not None:
                self._begin(probe, args)
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            answer = self._read(self._wait(timeout or self.timeout), str(self.seq))
            self._keep()
            if answer.get("seq") != self.seq:
                raise WorkerFailure("garbled", "an answer to another request (something "
                                    "wrote to the worker's channel)")
        except WorkerFailure:
            self.restarts += 1
            self.stop()
            raise
        except (BrokenPipeError, OSError) as e:
            self.restarts += 1
            self.stop()
            raise WorkerFailure("crash", f"the worker died ({e})") from None
        if not answer["ok"]:
            err = answer.get("error") or {"type": "?", "message": "", "traceback": ""}
            raise StudentError(err["type"], err["message"], err["traceback"])
        result = answer.get("result") or {}
        shape = SHAPES.get(probe)
        if shape is not None:
            check_shape(result, shape, probe)
        if self.hardware is not None:
            problem = reconcile.check(probe, args, result, self.hardware.record.summary())
            if problem:
                raise WorkerFailure("inconsistent", problem)
        return result

    def _begin(self, probe: str, args: dict) -> None:
        """The hardware's side of a request. In a batch, the log of a request is hashed as it
        is read, so that its replay's record can be kept or found (memo.Logs); while one may
        be found, the log is held, not replayed, until it is whole."""
        hw = self.hardware
        assert hw is not None
        logs = memo.logs()
        self.logs = logs if logs is not None and probe not in RING_PROBES else None
        # what the hardware's limits on machines see of the machines made before
        self.log_request = (probe, args, (len(hw.boxes), hw.ram_held()))
        self.old_boxes = list(hw.boxes)
        hw.begin(probe, args)
        hw.channel.restart(hw.next_handle if self.logs is not None else None)
        self.holding = self.logs is not None and bool(self.logs.known)

    def _log_key(self) -> bytes:
        assert self.hardware is not None and self.log_request is not None
        return memo.log_key(*self.log_request, self.hardware.channel.digest.digest())

    def _settle(self, end: float) -> None:
        """The held log is whole: its replay's record, if known; else it is replayed now."""
        assert self.hardware is not None and self.logs is not None
        replay = self.hardware.channel
        found = None if replay.older else self.logs.find(self._log_key())
        if found is None:
            return self._unhold(end)
        self.holding = False
        self.hardware.record, made = found
        self.hardware.next_handle += made
        replay.ended = replay.held[-1][1].decode(errors="replace") or "?"
        replay.restart(None)
        self.logs = None  # nothing to keep: it is known

    def _keep(self) -> None:
        """The log was replayed to its end, touching no machine made before it and leaving
        none it made: keep its record, and how many machines it made."""
        hw = self.hardware
        if self.logs is not None and hw is not None and hw.channel.digest is not None and \
                not hw.channel.older and list(hw.boxes) == self.old_boxes:
            self.logs.keep(self._log_key(), hw.record, hw.next_handle - hw.channel.base)
        self.logs = None

    def _take(self, end: float) -> None:
        """The log's next message: replayed, or held while the log may have a known replay."""
        if not self.holding:
            return self._serve(end)
        assert self.hardware is not None
        replay = self.hardware.channel
        replay.deadline = end
        try:
            op = replay.hold()
        except (TimeoutError, WireError) as e:
            replay.failure = e  # the replay stops where the reading stopped
            return self._unhold(end)
        if op == END:
            self._settle(end)
        elif replay.held_bytes > HOLD_BYTES:
            self._unhold(end)

    def _unhold(self, end: float) -> None:
        """Replay what is held, in order, as if it had been replayed as it came (a failure of
        the reading is met where the reading met it)."""
        if not self.holding:
            return
        self.holding = False
        assert self.hardware is not None
        replay = self.hardware.channel
        while replay.held:
            self._serve(end)
        if replay.failure is not None:
            self._serve(end)  # raises it, as a replay that waited for the log would

    def _read(self, timeout: float, request: str) -> dict:
        """One answer line, read from the raw pipe so that a partial line cannot block us
        past the deadline; meanwhile, and then to the end of the request's log, the hardware
        replays what the worker's VMM did (hardware.Replay)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        line = bytearray()
        end = time.monotonic() + timeout
        watched = [fd] if self.link is None else [fd, self.link]
        while not line.endswith(b"\n"):
            if self.hardware is not None and self.hardware.channel.pending():
                self._take(end)
                continue
            ready, _, _ = select.select(watched, [], [], max(0.0, end - time.monotonic()))
            if not ready:
                self._unhold(end)
                raise WorkerFailure("timeout", f"no answer within {timeout:g} s: an endless "
                                               "loop, or an endless recursion, in the VMM's "
                                               "Python code?")
            if fd not in ready:
                self._take(end)
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self._unhold(end)
                _crashed(self.proc.wait())
            line += chunk
            if len(line) > MAX_ANSWER:
                self._unhold(end)
                raise WorkerFailure("flood", "the worker's answer was too long")
        while self.hardware is not None and not self.hardware.channel.ended:
            self._take(end)
        if self.hardware is not None:
            if self.hardware.channel.ended != request:
                raise WorkerFailure("garbled", "the worker's log of its hardware ended "
                                    "another request than the one it answered")
            self.hardware.channel.ended = False
        try:
            answer = json.loads(bytes(line))
        except (ValueError, RecursionError):  # not JSON, or nested past what Python parses
            answer = None
        if answer is None or shape_error(answer, ANSWER_SHAPE):
            raise WorkerFailure("garbled", "the worker's answer was not valid")
        return answer


    def _serve(self, end: float) -> None:
        """One request of the worker's VMM to its hardware (a run serves every trap of it)."""
        assert self.hardware is not None
        channel = self.hardware.channel
        channel.deadline = end
        try:
            op, payload, _ = channel.receive()
            self.hardware.serve(op, payload)
        except Abandoned:
            return  # the log's end: `channel.ended` says which request's
        except TimeoutError:
            raise WorkerFailure("timeout", "no answer in time: an endless loop, or an endless "
                                           "recursion, in the VMM's Python code?") from None
        except WireError as e:
            status = self._status(end)
            if status is None:
                raise WorkerFailure("garbled", f"the worker broke its link to the hardware "
                                    f"({e})") from None
        except Abort as e:
            if e.kind == "timeout":
                raise WorkerFailure("timeout", e.detail + ": an endless loop in the VMM's "
                                    "Python code?") from None
            status = self._status(end) if e.kind == "crash" else None
            if status is None:
                raise WorkerFailure(e.kind, e.detail) from None
        else:
            return
        _crashed(status)  # its link closed because it died: say how, as _read does

    def output_mark(self) -> int:
        """Where the student's output (the worker's stderr file) ends now."""
        try:
            return self.stderr_path.stat().st_size
        except OSError:
            return 0

    def output_since(self, mark: int, lines: int = 30, limit: int = 3000) -> str:
        """What the student's code printed since `mark`: its last `lines` lines, at most
        `limit` characters (a restarted worker starts its file afresh: then all of it)."""
        try:
            with open(self.stderr_path, "rb") as f:
                size = f.seek(0, 2)
                start = mark if mark <= size else 0
                f.seek(max(start, size - 64 * 1024))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        kept = "\n".join(text.rstrip().splitlines()[-lines:])
        return kept[-limit:].replace("```", "` ` `")  # not our fence

    def _status(self, end: float) -> int | None:
        """The worker's exit status, waiting for a worker on its way out (as long as the call
        may last: a loaded machine takes its time to end bubblewrap); None while it lives."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None


def _crashed(status: int) -> NoReturn:
    """The worker died: one place that says so, whichever of its pipes showed it first (to
    hypothesis, a failure raised in two places is two failures, and the test flaky)."""
    raise WorkerFailure("crash", _death(status))


def _death(status: int) -> str:
    """What a worker's exit status says of how it died, in the student's terms."""
    if status >= 0:
        return (f"the worker exited with status {status}: your code called sys.exit or "
                "os._exit, or killed its own process")
    why = {signal.SIGKILL: "was killed (it used more than its CPU time or memory, or your code "
                           "killed its own process)",
           signal.SIGSEGV: "crashed with a segmentation fault (a recursion too deep for the "
                           "C stack?)",
           signal.SIGXCPU: "stopped: it used up its CPU time",
           signal.SIGXFSZ: "stopped: it wrote more output than a worker may"}
    return f"the worker {why.get(-status, f'died of signal {-status}')}"


def check_shape(result: dict, shape: dict, probe: str) -> Any:
    """Validate a probe's result against the shape the grader relies on."""
    error = shape_error(result, shape)
    if error:
        raise WorkerFailure("garbled", f"probe {probe}: {error}")
    return result
