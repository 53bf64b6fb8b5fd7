"""Work that is the same for every submission of a batch, done once per batch.

Off unless `vmlab batch` turns it on (`enable`) in its long-lived grading processes; `vmlab
grade` and `vmlab check` never use it. Two kinds of memo, both exact:

- `pure`: a decorator for the grader's functions of the example alone (the bare machine's run
  of a generated program): the result is computed once per example and process. The caller gets
  its own copy, so no verdict can depend on what an earlier caller did to it.
- recorded examples: with a fixed seed, hypothesis's engine is deterministic given the verdict
  of each example, so a test that passed every example draws the same examples for the next
  submission as long as that one passes them too. The examples of such a run are recorded (in
  memory and in a folder shared by the batch's processes); the next submission is checked on
  them directly, in the same order, and gets the same "passed on N examples". At its first
  failing example the replay stops and hypothesis runs the test as usual, shrinking included,
  so a failure reads exactly as when the submission is graded alone.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import pickle
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ENABLED = False
_FOLDER: Path | None = None
_PURE: OrderedDict[bytes, Any] = OrderedDict()
_PURE_MAX = 50_000  # entries: a few hundred megabytes at most
_RECORDED: dict[str, list] = {}
_SOURCES: str | None = None
stats = {"pure_hits": 0, "pure_misses": 0, "replayed": 0, "recorded": 0, "fell_back": 0}


def enable(folder: Path | None = None) -> None:
    """Turn the memos on in this process; recorded examples are shared through `folder`."""
    global _ENABLED, _FOLDER
    _ENABLED = True
    _FOLDER = Path(folder) if folder is not None else None
    if _FOLDER is not None:
        _FOLDER.mkdir(parents=True, exist_ok=True)


def disable() -> None:
    global _ENABLED, _FOLDER
    _ENABLED, _FOLDER = False, None
    _PURE.clear()
    _RECORDED.clear()


def enabled() -> bool:
    return _ENABLED


def pure(fn: Callable) -> Callable:
    """Memoize `fn`, a function of its (picklable) arguments alone, while memos are on."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _ENABLED:
            return fn(*args, **kwargs)
        try:
            key = hashlib.sha256(pickle.dumps((fn.__module__, fn.__qualname__, args,
                                               sorted(kwargs.items())))).digest()
        except (pickle.PicklingError, TypeError, AttributeError):
            return fn(*args, **kwargs)
        if key in _PURE:
            stats["pure_hits"] += 1
            _PURE.move_to_end(key)
            return copy.deepcopy(_PURE[key])
        stats["pure_misses"] += 1
        value = fn(*args, **kwargs)
        _PURE[key] = copy.deepcopy(value)
        if len(_PURE) > _PURE_MAX:
            _PURE.popitem(last=False)
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
    """Where a test's examples are recorded, or None when they are not (memos off, or a
    stateful test, whose examples are interleaved with the worker's answers)."""
    if not _ENABLED or prop.stateful:
        return None
    what = (test.id, prop.name, test.seed, test.examples, os.environ.get("VMLAB_SECRET", ""),
            _sources())
    return hashlib.sha256(repr(what).encode()).hexdigest()[:32]


def recorded(key: str) -> list | None:
    if key in _RECORDED:
        return _RECORDED[key]
    if _FOLDER is not None:
        try:
            with open(_FOLDER / f"{key}.pickle", "rb") as f:
                # written by this batch's own grading processes, in its output folder
                _RECORDED[key] = pickle.load(f)  # noqa: S301
            return _RECORDED[key]
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
    return None


def replay(key: str, check: Callable[[Any], None]) -> bool:
    """Check the recorded examples of `key` in order: True if there were some and all
    passed; False, having checked nothing or up to the first failure, otherwise."""
    examples = recorded(key)
    if not examples:
        return False
    for example in examples:
        try:
            check(copy.deepcopy(example))
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - any failure: hypothesis grades it from the start
            stats["fell_back"] += 1
            return False
    stats["replayed"] += 1
    return True


class Recorder:
    """Keeps a copy of each example a test's check is given, before the check can change it."""

    def __init__(self, key: str) -> None:
        self.key, self.examples = key, []

    def keep(self, example: Any) -> None:
        if self.examples is None:
            return
        try:
            self.examples.append(copy.deepcopy(example))
        except Exception:  # noqa: BLE001 - not copyable: nothing will be recorded
            self.examples = None  # type: ignore[assignment]

    def commit(self, ran: int) -> None:
        """The test passed on `ran` examples: keep them for the next submission."""
        if self.examples is None or len(self.examples) != ran or not ran:
            return
        _RECORDED[self.key] = self.examples
        stats["recorded"] += 1
        if _FOLDER is None or (_FOLDER / f"{self.key}.pickle").exists():
            return
        fd, tmp = tempfile.mkstemp(dir=_FOLDER, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(self.examples, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, _FOLDER / f"{self.key}.pickle")
        except OSError:
            Path(tmp).unlink(missing_ok=True)
