"""How a worker process is confined: the layers between a student's code and everything else.

Each layer is used where this machine allows it, and reported either way (results.json's
`extra_data.sandbox`), so that course staff can see what protected a run:

- bubblewrap: namespaces of its own (mount, PID, network, IPC, UTS, cgroup); in view only the
  lab's vmm/ and its machine/ (worker_view.py: without the engine in a test of one handler),
  read-only, the worker's one file, the Python it runs on and a private /tmp. Nothing it
  starts outlives it: its PID namespace dies with it.
- separate-user: when the grader is root (as on Gradescope), the worker drops to a user id of
  its own, unique to the run, before any student code is imported (in a group of their own
  for the workers without the engine, which cannot read the other view): it cannot write the
  grader's files, signal the grader, or hide a process from the sweep (which kills every
  process of that user, and removes the files it left in the shared temporary folders).
- rlimits: CPU time, address space, processes, open files, file size, no core dumps.
- seccomp: the worker cannot open internet sockets (nor use io_uring), bubblewrap or not.
- subreaper: the grading process adopts whatever the worker leaves behind, and kills it.

Where bubblewrap cannot run (no user namespaces, a container whose seccomp forbids them), the
other layers still hold; what only bubblewrap gives (no network, a private /tmp, no view of the
grader's files) is reported missing, with why.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")
SANDBOX_LAB = "/lab"  # where the worker sees the lab inside bubblewrap
SANDBOX_WORKER = "/vmlab/worker.py"
# bytes of address space: the worker needs ~50 MB resident and ~300 MB mapped (a VMM's RAM is
# mapped whole, touched lazily); Gradescope gives the whole container 768 MB
MEMORY = 640 << 20
FILE_SIZE = 16 << 20  # bytes any one file the worker writes may reach (its output, say)
OPEN_FILES = 64
PROCESSES = 32  # the worker is one thread: the rest is room for nothing much
TMP_SIZE = 64 << 20  # bytes of the private /tmp
UID_BASE = 1_000_000  # a run's user id is this plus 16 times the grader's pid, plus the run
# added to a run's user id: the group of its workers without the machine's engine (a test of one
# handler), who must not read the engine in the other workers' view (worker_view.py)
ENGINELESS_GROUP = 1 << 30
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # writable by any user (Debian)
BWRAP_ENV = "VMLAB_BUBBLEWRAP"  # "0": do not use bubblewrap (to test the other layers)
PR_SET_CHILD_SUBREAPER = 36
LINUX = sys.platform.startswith("linux")  # elsewhere (a student's Mac): limits, own session
_RUNS = itertools.count()
LIVE: set[int] = set()  # this process's running workers: children the sweep leaves alone


@dataclass(frozen=True)
class Confinement:
    """The layers a worker runs under, and those missing with why."""

    bwrap: str | None  # the bubblewrap executable, when it works here
    uid: int | None  # the user the worker drops to, when the grader is root
    cpu_seconds: int
    layers: tuple[str, ...]
    missing: dict[str, str] = field(default_factory=dict)

    def report(self) -> dict:
        return {"layers": list(self.layers), "missing": dict(self.missing)}

    def group(self, engine: bool) -> int | None:
        """The group a worker runs in, with the machine's engine or without it: each view of
        the lab is readable by its own workers' group alone."""
        if self.uid is None:
            return None
        return self.uid if engine else self.uid + ENGINELESS_GROUP

    def worker_config(self, engine: bool = True) -> dict:
        """What the worker applies to itself before it imports a student's code."""
        limits = {"RLIMIT_CPU": self.cpu_seconds, "RLIMIT_AS": MEMORY,
                  "RLIMIT_FSIZE": FILE_SIZE, "RLIMIT_NOFILE": OPEN_FILES, "RLIMIT_CORE": 0,
                  "RLIMIT_NPROC": PROCESSES if self.uid is not None
                  else _processes_of(os.getuid()) + PROCESSES}
        # outside bubblewrap the Python it runs on may sit where the dropped user cannot read
        # (/root): the worker imports what the VMM needs of the standard library first
        return {"uid": self.uid, "gid": self.group(engine), "limits": limits,
                "preload": self.bwrap is None,
                "seccomp": "seccomp" in self.layers}

    def command(self, lab: Path, config: str) -> tuple[list[str], Path]:
        """The command line that starts a worker for `lab`, and the folder it starts in."""
        python = os.path.realpath(sys.executable)
        if self.bwrap is None:
            return [python, "-I", "-S", str(WORKER), config], lab
        return [self.bwrap, *self._namespaces(), *_system_view(),
                *_folders(sys.base_prefix, SANDBOX_LAB, os.path.dirname(SANDBOX_WORKER)),
                "--ro-bind", sys.base_prefix, sys.base_prefix,
                "--ro-bind", str(lab / "machine"), f"{SANDBOX_LAB}/machine",
                "--ro-bind", str(lab / "vmm"), f"{SANDBOX_LAB}/vmm",
                "--ro-bind", str(WORKER), SANDBOX_WORKER,
                "--perms", "1777", "--size", str(TMP_SIZE), "--tmpfs", "/tmp",
                "--proc", "/proc", "--dev", "/dev", "--chdir", SANDBOX_LAB,
                "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
                "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0",
                "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                "--die-with-parent", "--new-session", "--hostname", "sandbox",
                python, "-I", "-S", SANDBOX_WORKER, config], lab

    def _namespaces(self) -> list[str]:
        # as root, no user namespace: the worker's own setuid must map to a real, unique uid
        # (a process limit and the sweep count on it)
        if self.uid is not None:
            return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                    "--unshare-cgroup-try"]
        return ["--unshare-all"]

    def prepare(self, lab: Path, engine: bool = True) -> None:
        """Make the lab readable, and nothing in it writable, by the workers' group (with the
        machine's engine or without it), and by no other user."""
        group = self.group(engine)
        if group is None:
            return
        for folder, _dirs, files in os.walk(lab):
            for path, bits in [(folder, 0o050), *((os.path.join(folder, n), 0o040)
                                                  for n in files)]:
                mode = os.stat(path, follow_symlinks=False).st_mode
                if not stat.S_ISLNK(mode):
                    os.chown(path, -1, group)
                    os.chmod(path, (stat.S_IMODE(mode) | bits) & ~0o027)

    def sweep(self) -> None:
        """Kill whatever the worker left behind, and remove the files it left in the shared
        temporary folders. Run after every worker stops."""
        _kill_adopted()
        if self.uid is None:
            return
        _kill_user(self.uid)
        for top in SHARED_TMP:
            _remove_owned(Path(top), self.uid)


def plan(cpu_seconds: float) -> Confinement:
    """The strongest confinement this machine allows."""
    layers, missing = [], {}
    bwrap, why = _bubblewrap()
    if bwrap:
        layers.append("bubblewrap")
    else:
        missing["bubblewrap"] = why
    uid = None
    if os.geteuid() == 0:
        # unique to this run while the process lives: two runs in one process (a Dask
        # worker's threads) must not sweep each other's workers away
        uid = UID_BASE + os.getpid() * 16 + next(_RUNS) % 16
        layers.append("separate-user")
    else:
        missing["separate-user"] = ("the grader does not run as root, so the worker runs as "
                                    "the grader's user")
    layers.append("rlimits")
    seccomp = LINUX and os.uname().machine in ("x86_64", "aarch64")  # worker's SECCOMP_ARCH
    if seccomp:
        layers.append("seccomp")  # no internet sockets, even outside bubblewrap
    if _subreaper():
        layers.append("subreaper")
    else:
        missing["subreaper"] = "prctl(PR_SET_CHILD_SUBREAPER) is not available here"
    if not bwrap:
        if not seccomp:
            missing["network"] = ("only bubblewrap or seccomp takes the network away, and "
                                  f"this machine ({os.uname().machine}) has neither")
        missing["private-tmp"] = ("only bubblewrap gives a private /tmp" +
                                  ("; files the worker's user leaves in /tmp are removed"
                                   if uid is not None else ""))
    return Confinement(bwrap, uid, int(cpu_seconds) + 30, tuple(layers), missing)


@functools.cache
def _bubblewrap() -> tuple[str | None, str]:
    """bubblewrap's path if it can make a sandbox here, else None and why not."""
    if os.environ.get(BWRAP_ENV) == "0":
        return None, f"turned off ({BWRAP_ENV}=0)"
    path = shutil.which("bwrap")
    if path is None:
        return None, "bwrap is not installed (Debian's and Ubuntu's package: bubblewrap)"
    ns = (["--unshare-ipc", "--unshare-pid", "--unshare-net"] if os.geteuid() == 0
          else ["--unshare-all"])
    probe = [path, *ns, *_system_view(), "--proc", "/proc", "--dev", "/dev",
             "--die-with-parent", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"bwrap did not run ({e})"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return None, ("bwrap cannot make a sandbox here (" + (said[-1] if said else
                      f"exit status {done.returncode}") + "): user namespaces are off, or a "
                      "container forbids them")
    return path, ""


def _system_view() -> list[str]:
    """/usr read-only, with the merged-/usr links (or folders) beside it."""
    out = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            out += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            out += ["--ro-bind", top, top]
    return out


def _folders(*paths: str) -> list[str]:
    """Make `paths` and the folders above them in the sandbox, open to the worker's user
    (bubblewrap makes the folders a bind needs with mode 0700, which the user cannot enter)."""
    out: list[str] = []
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts) + 1):
            folder = "/".join(("",) + parts[1:i])
            if folder not in out:
                out += ["--perms", "0755", "--dir", folder]
    return out


def _subreaper() -> bool:
    """Make this process adopt the orphans of its descendants (Linux)."""
    if not LINUX:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[int]:
    out: list[int] = []
    if not LINUX:
        return out  # no /proc: and no subreaper brought anything back to us
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: the fields follow the last ")"
        if int(line.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def _kill_adopted() -> None:
    """Kill this process's children but its running workers, with their descendants, and reap
    them: a grading process starts nothing else, so every such child is one a worker started
    and the subreaper brought back to us."""
    for _ in range(10):
        found = [pid for pid in _children(os.getpid()) if pid not in LIVE]
        if not found:
            return
        for pid in found:
            for victim in [pid, *_descendants(pid)]:
                try:
                    os.kill(victim, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for pid in found:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _kill_user(uid: int) -> None:
    """Kill every process of `uid`: a child that becomes that user and signals all it can."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)  # every process this user may signal, but itself
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    _kill_adopted()  # reap what was ours


def _remove_owned(top: Path, uid: int) -> None:
    """Remove what `uid` owns below `top` (a world-writable folder)."""
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid == uid:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
        elif stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:
            _remove_owned(Path(entry.path), uid)  # another folder anyone may write into


def _processes_of(uid: int) -> int:
    """How many processes (threads count too) the user has now."""
    count = 0
    if not LINUX:
        return 64  # no /proc to count in: room for what a user runs besides
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count
