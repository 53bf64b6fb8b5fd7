"""Run the red-team attacks through the grader and check that it survived each one.

For each attack: build its submission in a scratch folder, grade it in a subprocess exactly as
Gradescope would (`vmlab grade SUB --out DIR/results.json`, as root when we are root), under a
wall-time cap and resource limits (a safety net: the attacks cap themselves too), then check:

- the grader finished within the rubric's time, and results.json exists and validates;
- the score is exactly what the attack deserves;
- nothing landed outside the scratch folder: no new file in /tmp (a private /tmp, when we may
  mount one, so that the other users of this machine's /tmp are left out), the submission or
  the repository; no process of the attack alive after the grader (orphans come back to us,
  a child subreaper, and each attack's marker is looked for in every command line); no
  connection to the listener; no secret (/etc/passwd, the rubric, the solution, the grader's
  code or paths) in the results; memory within what Gradescope gives;
- the feedback says what happened.

Whatever happens, everything the attack started is killed and the repository is restored.

The grading path is pluggable (PATHS): `vmlab grade`, Gradescope's own run_autograder (with a
configurable root), and `vmlab batch` (the attack's submission beside an honest one, which must
keep every point).

    python -m tests.redteam.run [NAME...] [--keep] [--path grade]
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .attacks import ATTACKS, REPO, Attack, Context, marker_for

GRACE = 1.5  # seconds after the grader exits for a daemon to act (one that waits for it)
MEMORY_BUDGET = 768 << 20  # bytes: Gradescope's default container memory
OUTPUT_BUDGET = 1 << 20  # bytes the grader itself may print (the student's output is trimmed)
TMP_BUDGET = 1 << 20  # bytes the grader's own leftovers in /tmp may hold
# The lab's limits, shortened so that a hang costs a minute, not nine (the checks are the
# rubric's own: finished within ITS time).
LAB_TIME, EXAMPLE_TIME, TEST_TIME = 60, 5, 20
SECRETS = {  # text that must never reach a student (where it comes from: why)
    "root:x:0:0": "/etc/passwd",
    "Gradescope stops at 600": "the rubric",
    "results.json is written whatever happened": "the grader's code (grade.py)",
    "v.trap_entry = True": "the solution (trap.py)",
    "examples = 500": "the rubric's hidden tests",
}


# ----- the grading paths ---------------------------------------------------------------------

class GradingPath:
    """How a submission is graded: a command, run under the runner's limits in the attack's
    scratch folder `work`, and where the results.json it writes lands.

    Another path plugs in as a subclass added to PATHS: Gradescope's own `run_autograder`
    with a configurable root (lay the submission in ROOT/submission, run ROOT/run_autograder,
    read ROOT/results/results.json, all under `work`), or `vmlab batch` (a folder of
    submissions, the attack's among them). The checks stay the same."""

    name = "?"

    def command(self, work: Path, submission: Path, out: Path, rubric: Path,
                tests: tuple[str, ...]) -> list[str]:
        raise NotImplementedError

    def results(self, work: Path, out: Path) -> Path:
        """Where the command's results.json lands."""
        return out

    def available(self) -> str | None:
        """None, or why this path cannot run here."""
        return None

    def bystanders(self, work: Path) -> list[str]:
        """What went wrong for the other submissions graded beside the attack's, if any."""
        return []


class VmlabGrade(GradingPath):
    """`vmlab grade SUB --out OUT`, as Gradescope's run_autograder calls it."""

    name = "grade"

    def command(self, work: Path, submission: Path, out: Path, rubric: Path,
                tests: tuple[str, ...]) -> list[str]:
        cmd = [sys.executable, "-m", "vmlab", "grade", str(submission), "--out", str(out),
               "--rubric", str(rubric)]
        for t in tests:
            cmd += ["--test", t]
        return cmd


class Autograder(GradingPath):
    """Gradescope's own path: the autograder zip (`vmlab build autograder`, built once),
    unpacked into `work`/autograder laid out as /autograder, the upload in its submission/,
    `run_autograder` run with that root; the zip's rubric is replaced by the short one."""

    name = "autograder"
    SECRET = "red team"

    def command(self, work: Path, submission: Path, out: Path, rubric: Path,
                tests: tuple[str, ...]) -> list[str]:
        root = work / "autograder"
        with zipfile.ZipFile(self._zip()) as z:
            z.extractall(root / "source")
        shutil.copy(rubric, root / "source" / "grader" / "vmlab" / "rubric.toml")
        if submission.is_dir():
            shutil.copytree(submission, root / "submission", symlinks=True)
        else:
            (root / "submission").mkdir()
            shutil.copy(submission, root / "submission")
        return ["env", f"VMLAB_AUTOGRADER_ROOT={root}", f"VMLAB_PYTHON={sys.executable}",
                f"VMLAB_AUTOGRADER_TESTS={' '.join(tests)}", "bash",
                str(root / "source" / "run_autograder")]

    def results(self, work: Path, out: Path) -> Path:
        return work / "autograder" / "results" / "results.json"

    @staticmethod
    def _zip() -> Path:
        # named by what it is built from: a zip left by an earlier grader is never reused
        sources = sorted(p for top in ("grader/vmlab", "handout") for p in (REPO / top).rglob("*")
                         if p.is_file() and "__pycache__" not in p.parts)
        stamp = hashlib.sha256("".join(f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size}\n"
                                       for p in sources).encode()).hexdigest()[:12]
        path = REPO / ".vmlab" / f"redteam-autograder-{stamp}.zip"
        path.parent.mkdir(exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:  # attacks run side by side
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                part = path.with_suffix(".part.zip")
                subprocess.run([sys.executable, "-m", "vmlab", "build", "autograder",
                                "--secret", Autograder.SECRET, "--out", str(part)], check=True,
                               cwd=REPO, capture_output=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO / "grader")))
                os.replace(part, path)
        return path


class VmlabBatch(GradingPath):
    """`vmlab batch`, as course staff grade a folder of submissions: the attack's (`attacker`)
    beside an honest one (`bystander`: the solution's files), two at a time. The attack's
    results.json is checked as on the other paths; the bystander must still earn every point
    of its tests, whatever the attack did beside it."""

    name = "batch"

    def command(self, work: Path, submission: Path, out: Path, rubric: Path,
                tests: tuple[str, ...]) -> list[str]:
        subs = work / "batch" / "submissions"
        subs.mkdir(parents=True)
        if submission.is_dir():
            shutil.copytree(submission, subs / "attacker", symlinks=True)
        else:
            shutil.copy(submission, subs / f"attacker{submission.suffix}")
        shutil.copytree(REPO / "solution" / "vmm", subs / "bystander" / "vmm")
        cmd = [sys.executable, "-m", "vmlab", "batch", str(subs), "--out",
               str(work / "batch" / "out"), "--rubric", str(rubric), "--jobs", "2", "--quiet"]
        for t in tests:
            cmd += ["--test", t]
        return cmd

    def results(self, work: Path, out: Path) -> Path:
        return work / "batch" / "out" / "students" / "attacker" / "results.json"

    def bystanders(self, work: Path) -> list[str]:
        path = work / "batch" / "out" / "students" / "bystander" / "results.json"
        try:
            tests = json.loads(path.read_text())["tests"]
        except (OSError, ValueError, KeyError) as e:
            return [f"the bystander has no valid results.json ({e})"]
        lost = [t["name"] for t in tests if t.get("score") != t.get("max_score")]
        return [f"the bystander lost points beside the attack: {', '.join(lost)[:200]}"] \
            if lost or not tests else []


PATHS: dict[str, GradingPath] = {p.name: p for p in (VmlabGrade(), Autograder(), VmlabBatch())}


# ----- what a run found ------------------------------------------------------------------------

@dataclass
class Outcome:
    name: str
    deserved: float
    score: float | None = None
    wall: float = 0.0
    layers: str = "-"
    problems: list[str] = field(default_factory=list)
    to_read: int | None = None  # lines vmlab batch lists for the staff to read (review.py)

    @property
    def passed(self) -> bool:
        return not self.problems


def short_rubric(dest: Path) -> Path:
    """The rubric with shorter limits (LAB_TIME, EXAMPLE_TIME, TEST_TIME)."""
    text = (REPO / "grader" / "vmlab" / "rubric.toml").read_text()
    text = re.sub(r"(?m)^time_limit = \d+", f"time_limit = {TEST_TIME}", text)
    text = re.sub(r"(?m)^example_time_limit = \d+", f"example_time_limit = {EXAMPLE_TIME}",
                  text)
    text = re.sub(r"(?m)^(\[lab\][^\[]*?)time_limit = \d+", rf"\g<1>time_limit = {LAB_TIME}",
                  text, count=1)
    data = tomllib.loads(text)
    assert data["lab"]["time_limit"] == LAB_TIME, "the rubric's [lab] moved: fix short_rubric"
    assert all(t["time_limit"] == TEST_TIME for t in data["tests"])
    path = dest / "rubric.toml"
    path.write_text(text)
    return path


# ----- processes --------------------------------------------------------------------------------

def become_subreaper() -> None:
    """Orphans of our children come back to us instead of init: found, killed, reaped."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _processes() -> dict[int, tuple[int, str]]:
    """pid: (parent pid, command line) of every process, zombies left out."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z":
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), cmdline)
    return out


def survivors(marker: str, before: set[int]) -> list[int]:
    """The attack's processes still alive: our new children (orphans we reaped) and whatever
    carries its marker."""
    me = os.getpid()
    return [pid for pid, (ppid, cmdline) in _processes().items()
            if pid != me and ((ppid == me and pid not in before) or marker in cmdline)]


def kill_all(marker: str, before: set[int]) -> int:
    """Kill the attack's processes until none is left; how many there were."""
    seen: set[int] = set()
    for _ in range(50):
        alive = survivors(marker, before)
        if not alive:
            break
        seen.update(alive)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
        reap(before)
    reap(before)
    return len(seen)


def reap(before: set[int]) -> None:
    """Collect the zombies of the orphans that came back to us (not our other children)."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in before:
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == me:
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass


def _safety_limits() -> None:
    """In the grading subprocess: a session of its own, and limits no attack gets past."""
    os.setsid()
    for limit, value in ((resource.RLIMIT_AS, 6 << 30), (resource.RLIMIT_FSIZE, 1 << 30),
                         (resource.RLIMIT_CPU, 600), (resource.RLIMIT_NPROC, 4096)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


# ----- files ---------------------------------------------------------------------------------

def tree_digest(path: Path) -> dict[str, str]:
    """Every entry below `path` (symlinks not followed): name -> digest of its content."""
    if path.is_file() and not path.is_symlink():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for root, dirs, names in os.walk(path):
        for n in dirs + names:
            p = Path(root) / n
            if p.is_symlink():
                out[str(p.relative_to(path))] = "->" + os.readlink(p)
            elif p.is_file():
                out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def repo_snapshot() -> dict[Path, bytes]:
    """The repository's tracked files a submission could reach: the grader, the solution, the
    handout (restored after each attack)."""
    listed = subprocess.run(["git", "ls-files", "-z", "grader", "solution", "handout"],
                            cwd=REPO, capture_output=True, check=True).stdout
    out = {}
    for rel in listed.decode().split("\0"):
        p = REPO / rel
        if rel and p.is_file():
            out[p] = p.read_bytes()
    return out


def marked_files(marker: str) -> list[Path]:
    """Files named with the marker where an attack may write: the repository (all of it but
    .git and .venv), and the top of /tmp, /dev/shm, /var/tmp, /run/lock and home."""
    found = []
    for root in (Path("/tmp"), Path("/dev/shm"), Path("/var/tmp"), Path("/run/lock"),
                 Path.home()):
        try:
            found += [Path(e.path) for e in os.scandir(root) if marker in e.name]
        except OSError:
            pass
    for dirpath, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")]
        found += [Path(dirpath) / n for n in dirs + names if marker in n]
    return found


# ----- the listener ----------------------------------------------------------------------------

class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


# ----- one attack ------------------------------------------------------------------------------

def private_tmp_prefix(tmp: Path) -> list[str] | None:
    """A command prefix that runs under a private /tmp (`tmp`), or None where we may not mount
    one (not root, no unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /tmp && exec "$@"', str(tmp)]


def feedback_text(results: dict) -> str:
    return "\n".join([str(results.get("output", ""))] +
                     [str(t.get("output", "")) + str(t.get("name", ""))
                      for t in results.get("tests", [])])


def sandbox_layers(results: dict) -> str:
    sandbox = (results.get("extra_data") or {}).get("sandbox") if isinstance(results, dict) \
        else None
    if not isinstance(sandbox, dict):
        return "-"
    layers = ",".join(map(str, sandbox.get("layers", []))) or "none"
    missing = sandbox.get("missing") or {}
    return layers + (f" (missing: {','.join(map(str, missing))})" if missing else "")


def run_attack(attack: Attack, path: GradingPath | None = None, keep: bool = False
               ) -> Outcome:
    path = path or PATHS["grade"]
    marker = marker_for(attack.name)
    work = REPO / ".vmlab" / "redteam" / marker
    tmp = work / "tmp"
    tmp.mkdir(parents=True)
    outcome = Outcome(attack.name, attack.deserved)
    listener = Listener() if attack.listener else None
    become_subreaper()
    before = set(_processes())
    snapshot = repo_snapshot()
    try:
        submission = attack.build(work, Context(marker, listener.port if listener else 0))
        rubric = short_rubric(work)
        out = work / "out" / "results.json"
        out.parent.mkdir()
        prefix = private_tmp_prefix(tmp)
        sub_before = tree_digest(submission)
        outcome.to_read = to_read(submission, work / "review")
        cmd = (prefix or []) + path.command(work, submission, out, rubric, attack.tests)
        stdout, stderr = work / "grader.stdout", work / "grader.stderr"
        env = dict(os.environ, PYTHONPATH=str(REPO / "grader"))
        start = time.monotonic()
        with open(stdout, "wb") as so, open(stderr, "wb") as se:
            proc = subprocess.Popen(cmd, cwd=work, stdout=so, stderr=se, env=env,
                                    stdin=subprocess.DEVNULL, preexec_fn=_safety_limits)
            try:
                _, status, usage = _wait(proc, LAB_TIME + 60)
            except TimeoutError:
                outcome.problems.append(f"the grader was still running after {LAB_TIME + 60}"
                                        " s: killed")
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
        outcome.wall = time.monotonic() - start
        time.sleep(GRACE)  # a daemon waiting for the grader to exit acts now
        alive = survivors(marker, before)
        check(outcome, attack, marker, path.results(work, out), status, usage,
              rubric_time=LAB_TIME, alive=alive, listener=listener, tmp=tmp if prefix else None,
              output=(stdout, stderr), submission=submission, sub_before=sub_before,
              snapshot=snapshot, work=work)
        outcome.problems += path.bystanders(work)
    except Exception as e:  # noqa: BLE001 - the runner's own failure is the attack's failure
        outcome.problems.append(f"the runner failed: {type(e).__name__}: {e}")
    finally:
        kill_all(marker, before)
        restore(snapshot, marker)
        for p in marked_files(marker):
            if p != work and work not in p.parents:
                _remove(p)
        if listener:
            listener.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return outcome


def _wait(proc: subprocess.Popen, cap: float) -> tuple[int, int, resource.struct_rusage]:
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        time.sleep(0.05)
    raise TimeoutError


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def restore(snapshot: dict[Path, bytes], marker: str) -> list[Path]:
    """Put back the repository's files this attack changed (those holding its marker: another
    attack may run beside it)."""
    changed = []
    for p, data in snapshot.items():
        try:
            now = p.read_bytes()
        except OSError:
            now = None
        if now != data and (now is None or marker.encode() in now):
            p.write_bytes(data)
            changed.append(p)
    return changed


def check(o: Outcome, attack: Attack, marker: str, out: Path, status: int,
          usage: resource.struct_rusage, rubric_time: float, alive: list[int],
          listener: Listener | None, tmp: Path | None, output: tuple[Path, Path],
          submission: Path, sub_before: dict[str, str], snapshot: dict[Path, bytes],
          work: Path) -> None:
    problems = o.problems
    if o.wall > rubric_time:
        problems.append(f"took {o.wall:.0f} s, past the rubric's {rubric_time:g} s")
    results = _results(out, problems, status)
    if results is not None:
        o.layers = sandbox_layers(results)
        o.score = _score(results)
        if o.score is None or abs(o.score - attack.deserved) > 1e-9:
            problems.append(f"score {o.score}, deserved {attack.deserved:g}")
        text = json.dumps(results).replace(str(work), "SCRATCH")
        for secret, where in SECRETS.items():
            if secret in text:
                problems.append(f"results.json shows {where}")
        for root in (REPO, REPO / "grader"):
            if str(root) + "/" in text:
                problems.append(f"results.json shows the grader's path {root}")
                break
        if attack.feedback and not re.search(attack.feedback, feedback_text(results),
                                             re.IGNORECASE):
            problems.append(f"the feedback does not say what happened (/{attack.feedback}/)")
    if alive:
        problems.append(f"{len(alive)} process(es) of the attack outlived the grader")
    if listener is not None and listener.accepted:
        problems.append(f"{listener.accepted} connection(s) to the 127.0.0.1 listener")
    peak = usage.ru_maxrss * 1024
    if peak > MEMORY_BUDGET:
        problems.append(f"a process of the run peaked at {peak >> 20} MB "
                        f"(Gradescope gives {MEMORY_BUDGET >> 20} MB)")
    printed = sum(p.stat().st_size for p in output)
    if printed > OUTPUT_BUDGET:
        problems.append(f"the grader printed {printed >> 20} MB")
    _check_files(problems, marker, tmp, submission, sub_before, snapshot, work)


def _results(out: Path, problems: list[str], status: int) -> dict | None:
    from vmlab.gradescope import ResultsError, validate_results
    if not out.is_file():
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        problems.append(f"no results.json (the grader {how})")
        return None
    try:
        results = json.loads(out.read_text())
    except ValueError as e:
        problems.append(f"results.json is not JSON: {str(e)[:120]}")
        return None
    try:
        validate_results(results)
    except ResultsError as e:
        problems.append(f"results.json is not valid: {str(e)[:120]}")
    return results if isinstance(results, dict) else None


def _score(results: dict) -> float | None:
    if isinstance(results.get("score"), (int, float)):
        return float(results["score"])
    try:
        return float(sum(t.get("score", 0) for t in results.get("tests", [])))
    except TypeError:
        return None


def _check_files(problems: list[str], marker: str, tmp: Path | None, submission: Path,
                 sub_before: dict[str, str], snapshot: dict[Path, bytes], work: Path) -> None:
    if tmp is not None:  # the private /tmp: everything in it is the run's
        left = [p for p in tmp.iterdir()]
        mine = [p for p in left if p.name.startswith("vmlab-")]
        size = sum(_size(p) for p in left)
        others = [p.name for p in left if p not in mine]
        if others:
            problems.append(f"left in /tmp: {', '.join(sorted(others))[:100]}")
        if size > TMP_BUDGET:
            problems.append(f"{size >> 20} MB left in /tmp")
    if tree_digest(submission) != sub_before:
        problems.append("the submission changed")
    changed = [p for p, data in snapshot.items()
               if p.exists() and marker.encode() in p.read_bytes()]
    strays = [p for p in marked_files(marker) if p != work and work not in p.parents]
    if changed or strays:
        names = [str(p) for p in changed + strays]
        problems.append(f"written outside the scratch folder: {', '.join(names)[:160]}")


def _size(p: Path) -> int:
    if p.is_symlink() or not p.is_dir():
        return p.lstat().st_size
    return sum(f.lstat().st_size for f in p.rglob("*"))


def to_read(submission: Path, scratch: Path) -> int | None:
    """How many lines of the submission's parts `vmlab batch` lists for the staff to read: what
    the tests cannot see (KNOWN_OPEN) is still seen there. A folder's only: a zip is the zip
    attacks', whose point is what unpacking does, in the grader."""
    if not submission.is_dir():
        return None
    from vmlab.errors import UsageError
    from vmlab.review import review
    from vmlab.rubric import load
    from vmlab.submission import assemble
    editable = load().editable
    try:
        lab, _, missing = assemble(submission, REPO / "handout", editable, into=scratch)
        return len(review(lab, [n for n in editable if n not in missing]))
    except (UsageError, OSError):  # a submission the grader refuses: nothing to read
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ----- the table ----------------------------------------------------------------------------

def table(outcomes: list[Outcome], known_open: dict[str, str], path: str = "grade") -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    t = Table(title=f"red team: each attack through the {path} path", title_justify="left")
    for col in ("attack", "got", "deserved", "wall", "layers", "to read", "result"):
        t.add_column(col, justify="right" if col in ("got", "deserved", "wall", "to read")
                     else "left")
    for o in outcomes:
        verdict = "[green]pass[/green]" if o.passed else \
            ("[yellow]open[/yellow]" if o.name in known_open else "[red]FAIL[/red]")
        got = "-" if o.score is None else f"{o.score:g}"
        detail = "" if o.passed else ": " + escape("; ".join(o.problems))
        t.add_row(escape(o.name), got, f"{o.deserved:g}", f"{o.wall:.1f}s",
                  escape(o.layers), "-" if o.to_read is None else str(o.to_read),
                  verdict + detail)
    Console(width=200).print(t)
    passed = sum(o.passed for o in outcomes)
    print(f"{passed} of {len(outcomes)} attacks graded as deserved; "
          f"{sum(not o.passed and o.name in known_open for o in outcomes)} known open; "
          f"{sum(not o.passed and o.name not in known_open for o in outcomes)} failing.")


def main(argv: list[str] | None = None) -> int:
    from . import KNOWN_OPEN
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="attacks to run (default: all)")
    parser.add_argument("--path", default="grade", choices=sorted(PATHS))
    parser.add_argument("--keep", action="store_true", help="keep each attack's scratch folder")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="attacks run at once")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one attack, print its outcome
    args = parser.parse_args(argv)
    unknown = [n for n in args.names + ([args.one] if args.one else []) if n not in ATTACKS]
    if unknown:
        parser.error(f"no such attack: {', '.join(unknown)}; the attacks are "
                     f"{', '.join(ATTACKS)}")
    why = PATHS[args.path].available()
    if why:
        parser.error(f"--path {args.path}: {why}")
    if args.one:
        print(json.dumps(asdict(run_attack(ATTACKS[args.one], PATHS[args.path], args.keep))))
        return 0
    from concurrent.futures import ThreadPoolExecutor
    chosen = args.names or list(ATTACKS)
    # each attack in a process of its own: it adopts the attack's orphans, and only those
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda n: _isolated(n, args.path, args.keep), chosen))
    table(outcomes, KNOWN_OPEN, args.path)
    return 0 if all(o.passed or o.name in KNOWN_OPEN for o in outcomes) else 1


def _isolated(name: str, path: str, keep: bool) -> Outcome:
    cmd = [sys.executable, "-m", "tests.redteam.run", "--one", name, "--path", path]
    start = time.monotonic()
    proc = subprocess.run(cmd + (["--keep"] if keep else []), cwd=REPO, capture_output=True,
                          text=True, start_new_session=True)
    try:
        outcome = Outcome(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError, TypeError):
        outcome = Outcome(name, ATTACKS[name].deserved, wall=time.monotonic() - start,
                          problems=[f"the runner died: {proc.stderr.strip()[-300:]}"])
    print(f"{name}: {'pass' if outcome.passed else 'fail'} ({outcome.wall:.1f} s)",
          file=sys.stderr, flush=True)
    return outcome


if __name__ == "__main__":
    sys.exit(main())
