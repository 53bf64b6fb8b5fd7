"""Work that is the same for every submission of a batch, done once per batch.

Off unless `vmlab batch` turns it on (`enable`) in its long-lived grading processes; `vmlab
grade` and `vmlab check` never use it. Every memo is exact: with it, a submission's results.json
is the one it gets graded alone (tests/test_batch.py compares them).

- `pure`: a decorator for the grader's functions of the example alone (the bare machine's run
  of a generated program): computed once per example and process. Each caller gets a copy of
  its own, so no verdict can depend on what an earlier caller did to it.
- recorded runs (`Run`): with a fixed seed, hypothesis's engine is deterministic given the
  verdict of each example, so a test that passed every example draws the same examples for the
  next submission as long as that one passes them too. The examples of such a run are recorded
  (in memory, and in a folder the batch's processes share); the next submission is checked on
  them directly, in the same order, and gets the same "passed on N examples" and fingerprint.
  A stateful test (IPC's state machine) is recorded as the worker's calls and their answers: a
  submission whose worker answers each call exactly as the recorded one did drives the state
  machine through exactly the same run, so it passes as that one did; at the first answer that
  differs, the replay stops. At a replay's first failure (or difference), hypothesis grades the
  test from the start, shrinking included, so that a failure reads exactly as when the
  submission is graded alone; the worker's answers during the replay stand in for its answers
  to the same requests in that rerun (`Answers`), so the worker sees each request once, as when
  graded alone.
- replayed logs (`Logs`): the hardware of record replays the worker's log of each request
  (hardware.Replay). For a log that touches no machine made before it, what that replay
  records is a function of the request, the log (machines numbered from the first it makes)
  and the count and RAM of the machines before it (what the hardware's limits see); so such a
  log that is, byte for byte, one the hardware replayed for the submission that first passed
  the test gets that replay's record (and the verdict that follows) without being replayed.
  The worker still runs, and its answer is still checked against the record.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import tempfile
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ENABLED = False
_FOLDER: Path | None = None
_PURE: OrderedDict[bytes, bytes] = OrderedDict()
_PURE_BYTES = 256 << 20  # the most the pure memo holds (a bare run pickles to ~10-40 KB)
_pure_size = 0
_RECORDED: dict[str, list] = {}
_SOURCES: str | None = None
_LOGS: dict[str, dict[bytes, bytes]] = {}  # test key -> log key -> (record, machines made)
_logs_now: Logs | None = None  # the test being run's
stats = {"pure_hits": 0, "pure_misses": 0, "replayed": 0, "recorded": 0, "fell_back": 0,
         "answered": 0, "logs_found": 0, "logs_missed": 0}


def enable(folder: Path | None = None) -> None:
    """Turn the memos on in this process; recorded runs are shared through `folder`."""
    global _ENABLED, _FOLDER
    _ENABLED = True
    _FOLDER = Path(folder) if folder is not None else None
    if _FOLDER is not None:
        _FOLDER.mkdir(parents=True, exist_ok=True)


def disable() -> None:
    global _ENABLED, _FOLDER, _pure_size
    _ENABLED, _FOLDER, _pure_size = False, None, 0
    _PURE.clear()
    _RECORDED.clear()
    _LOGS.clear()


def enabled() -> bool:
    return _ENABLED


def _plain(value: Any) -> Any:
    """`value` as nested tuples of builtin scalars, equal for equal values: a set's members
    sorted (pickling a set that was rebuilt, e.g. by unpickling, may order it otherwise, and
    the same example would miss its memo), a dataclass as its name and fields."""
    t = type(value)
    if value is None or t in (int, str, bytes, bool, float):
        return value
    if t in (tuple, list):
        return (t.__name__, *map(_plain, value))
    if t in (set, frozenset):
        return ("set", *sorted(map(_plain, value), key=repr))
    if t is dict:
        return ("dict", *((_plain(k), _plain(v)) for k, v in value.items()))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (t.__module__, t.__qualname__,
                *(_plain(getattr(value, f.name)) for f in dataclasses.fields(value)))
    raise TypeError(f"no memo key for a {t.__name__}")


def pure(fn: Callable) -> Callable:
    """Memoize `fn`, a function of its arguments alone (builtin values and dataclasses of
    them), while memos are on."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _pure_size
        if not _ENABLED:
            return fn(*args, **kwargs)
        try:
            key = hashlib.sha256(pickle.dumps((fn.__module__, fn.__qualname__, _plain(args),
                                               _plain(sorted(kwargs.items()))))).digest()
        except (pickle.PicklingError, TypeError, AttributeError):
            return fn(*args, **kwargs)
        if key in _PURE:
            stats["pure_hits"] += 1
            _PURE.move_to_end(key)
            return pickle.loads(_PURE[key])  # a copy of its own  # noqa: S301 - ours
        stats["pure_misses"] += 1
        value = fn(*args, **kwargs)
        _PURE[key] = blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        _pure_size += len(blob)
        while _pure_size > _PURE_BYTES and _PURE:  # the least recently used go first
            _pure_size -= len(_PURE.popitem(last=False)[1])
        return value
    return wrapper


def _sources() -> str:
    """A digest of everything that decides which examples a test draws: hypothesis, the
    grader's strategies, properties and settings, and the pristine machine they import."""
    global _SOURCES
    if _SOURCES is None:
        import hypothesis
        h = hashlib.sha256(hypothesis.__version__.encode())
        here = Path(__file__).resolve().parent
        files = [here / "suite.py", here / "memo.py", *sorted((here / "properties").rglob(
            "*.py")), *sorted((here / "strategies").rglob("*.py"))]
        try:
            import machine
            files += sorted(Path(machine.__file__).resolve().parent.rglob("*.py"))
        except ImportError:
            pass
        for f in files:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        _SOURCES = h.hexdigest()
    return _SOURCES


def test_key(prop: Any, test: Any) -> str | None:
    """Where a test's runs are recorded, or None when memos are off."""
    if not _ENABLED:
        return None
    what = (test.id, prop.name, prop.stateful, test.seed, test.examples,
            os.environ.get("VMLAB_SECRET", ""), _sources())
    return hashlib.sha256(repr(what).encode()).hexdigest()[:32]


def recorded(key: str) -> list | None:
    return _shared(_RECORDED, key, f"{key}.pickle")


def _shared(memo: dict, key: str, name: str) -> Any:
    """`memo[key]`, or what the batch's shared folder holds under `name`, or None."""
    if key in memo:
        return memo[key]
    if _FOLDER is not None:
        try:
            with open(_FOLDER / name, "rb") as f:
                # written by this batch's own grading processes, in its output folder
                memo[key] = pickle.load(f)  # noqa: S301
            return memo[key]
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
    return None


def _save(key: str, items: list) -> None:
    _RECORDED[key] = items
    stats["recorded"] += 1
    _share(f"{key}.pickle", items)


def _share(name: str, value: Any) -> None:
    """Write `value` to the shared folder under `name`, unless another process was first."""
    if _FOLDER is None or (_FOLDER / name).exists():
        return
    fd, tmp = tempfile.mkstemp(dir=_FOLDER, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, _FOLDER / name)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


class Logs:
    """The replayed logs of one test: those of the submission that first passed it, to be
    found, and this submission's, kept until it passes the test too (if none passed it yet)."""

    def __init__(self, test_key: str) -> None:
        self.test_key = test_key
        self.known: dict[bytes, bytes] = _shared(_LOGS, test_key, f"{test_key}.logs") or {}
        self.kept: dict[bytes, bytes] | None = None if self.known else {}

    def find(self, key: bytes) -> tuple[Any, int] | None:
        """(the record, the machines it made) of a replay of this log, or None."""
        found = self.known.get(key)
        stats["logs_found" if found is not None else "logs_missed"] += 1
        return None if found is None else pickle.loads(found)  # noqa: S301 - ours

    def keep(self, key: bytes, record: Any, made: int) -> None:
        if self.kept is not None and len(self.kept) < MAX_LOGS:
            self.kept[key] = pickle.dumps((record, made), protocol=pickle.HIGHEST_PROTOCOL)

    def commit(self) -> None:
        if self.kept:
            _LOGS[self.test_key] = self.kept
            _share(f"{self.test_key}.logs", self.kept)
            self.kept = None


MAX_LOGS = 4096  # logs kept of one test (its examples, a state machine's calls)


def log_key(probe: str, args: dict, machines: tuple[int, int], digest: bytes) -> bytes:
    """What decides the record of a replay that touches no machine made before it: the
    request, how many machines there were and their RAM (what the hardware's limits count),
    the log's hash, and the code that replays it."""
    return hashlib.sha256(repr((_hardware(), probe, json.dumps(args, sort_keys=True),
                                machines, digest)).encode()).digest()


_HARDWARE: list[str] = []


def _hardware() -> str:
    if not _HARDWARE:
        here = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for name in ("hardware.py", "wire.py"):
            h.update((here / name).read_bytes())
        _HARDWARE.append(h.hexdigest())
    return _HARDWARE[0]


def logs() -> Logs | None:
    """The replayed logs of the test being run, or None when memos are off."""
    return _logs_now if _ENABLED else None


class Answers:
    """The worker, as a test's run in a batch sees it: every call is passed on, and its outcome
    (the answer, or what it raised) kept, in order. Once the replay has failed and hypothesis
    grades the test from the start (`rerun`), it draws the same examples again up to the
    failing one and makes the same calls: each is answered with what the worker answered in
    the replay, as long as it is the same request, in the same order. So the worker sees each
    request once, as when the submission is graded alone. The calls kept are also a stateful
    test's recording (`frozen`: its requests are kept pickled too, as they were sent)."""

    def __init__(self, worker: Any, frozen: bool = False) -> None:
        self.worker, self.frozen = worker, frozen
        # (probe, args or, frozen, args pickled, the answer pickled or what was raised)
        self.log: list[tuple[str, Any, bytes | BaseException]] | None = []
        self.queue: deque[tuple[str, Any, bytes | BaseException]] = deque()

    def call(self, probe: str, args: dict, timeout: float | None = None) -> dict:
        if self.frozen:
            kept: Any = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            kept = args
        if self.queue:
            p, a, outcome = self.queue[0]
            if p == probe and a == kept:
                self.queue.popleft()
                stats["answered"] += 1
                if self.log is not None:
                    self.log.append((probe, kept, outcome))
                if isinstance(outcome, BaseException):
                    # the very exception the worker's call raised, so that hypothesis sees it
                    # come from where it came from then (it tells failures apart by that)
                    raise outcome
                return pickle.loads(outcome)  # noqa: S301 - a copy of its own, ours
            self.queue.clear()  # another path from here on: the worker answers
        try:
            answer = self.worker.call(probe, args, timeout)
        except Exception as e:  # StudentError, WorkerFailure
            if self.log is not None:
                self.log.append((probe, kept, e))
            raise
        if self.log is not None:
            try:  # a copy, before the caller can change the answer
                self.log.append((probe, kept,
                                 pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)))
            except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
                self.log = None  # not recordable; a rerun asks the worker
        return answer

    def rerun(self) -> None:
        """Hypothesis grades the test from the start: answer again what the replay asked."""
        self.queue = deque(self.log or [])
        self.log = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.worker, name)


class Run:
    """One test's run for one submission in a batch: the replay of what an earlier submission
    passed, and the recording of what this one passes, for the next."""

    def __init__(self, key: str, worker: Any, stateful: bool) -> None:
        global _logs_now
        self.key, self.stateful = key, stateful
        self.worker = Answers(worker, frozen=stateful)
        self.logs = _logs_now = Logs(key)
        self.examples: list[bytes] | None = None  # pickled, before the check may change them

    def replay(self, check: Callable[..., None], call: Callable[[str, dict], dict],
               passthrough: tuple[type[BaseException], ...] = ()) -> bool:
        """Check the recorded run: True if there was one and this submission passed it all;
        False, having stopped at its first failure (or different answer), otherwise. `check`
        takes an example and its fingerprint text; `call` is the worker as a stateful test
        calls it. An exception in `passthrough` (the run's time is up) is raised."""
        items = recorded(self.key)
        if not items:
            return False
        try:
            if self.stateful:  # the very same answers, types and all
                for probe, args, answer in items:
                    got = call(probe, pickle.loads(args))  # noqa: S301 - our own recording
                    if pickle.dumps(got, protocol=pickle.HIGHEST_PROTOCOL) != answer:
                        raise _Differs
            else:
                for blob, shown in items:
                    check(pickle.loads(blob), shown)  # noqa: S301 - our own recording
        except passthrough:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - any failure: hypothesis grades it from the start
            stats["fell_back"] += 1
            self.worker.rerun()
            return False
        stats["replayed"] += 1
        return True

    def recording(self, check: Callable[[Any], None]) -> Callable[[Any], None]:
        """`check`, keeping a copy of each example it is given before it can change it."""
        if self.stateful:
            return check
        self.examples = []

        def test_fn(example: Any) -> None:
            if self.examples is not None:
                try:
                    self.examples.append(pickle.dumps(example, protocol=pickle.HIGHEST_PROTOCOL))
                except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
                    self.examples = None  # not copyable: nothing will be recorded
            check(example)
        return test_fn

    def commit(self, ran: int, shown: Callable[[Any], str]) -> None:
        """The test passed on `ran` examples (`shown` gives an example's fingerprint text):
        keep its run for the next submission."""
        if not ran:
            return
        self.logs.commit()
        if self.stateful:
            log = self.worker.log
            if log is not None and not any(isinstance(o, BaseException) for _, _, o in log):
                _save(self.key, list(log))  # (probe, args pickled, answer pickled)
        elif self.examples is not None and len(self.examples) == ran:
            _save(self.key, [(b, shown(pickle.loads(b))) for b in self.examples])  # noqa: S301


class _Differs(Exception):
    """The worker answered a recorded call otherwise: the recorded run says nothing more."""


def start(prop: Any, test: Any, worker: Any) -> Run | None:
    """The batch's memo of this test for this submission, or None when memos are off."""
    key = test_key(prop, test)
    return None if key is None else Run(key, worker, prop.stateful)
