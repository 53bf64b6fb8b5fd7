"""The grader's hardware (vmlab/hardware.py): the hardware of record lives in the grading
process, which replays the worker's log of what its VMM did on its copy (wire.py) and holds the
copy to what the grader's hardware says; what the worker says of the hardware is checked against
what it did (reconcile.py)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import vmlab.hardware
from hypothesis import given, settings
from hypothesis import strategies as st
from vmlab import worker_view
from vmlab.hardware import Abandoned, Abort, Hardware, Replay, new_ram, zero
from vmlab.properties.guests import as_request, run_bare
from vmlab.sandbox import HARNESS_ENV, Worker
from vmlab.strategies.programs import SystemProgram, system_programs
from vmlab.wire import CALL, END, FREE, NEW, RAM, REPLY, RUN, TRAP, Changes, Channel, Trapped

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solution"
M32 = 0xFFFF_FFFF
U32 = st.integers(0, M32)


# ----- the wire -------------------------------------------------------------------------------

@given(st.lists(U32, min_size=32, max_size=32), st.lists(st.tuples(st.integers(0, 0xFFF), U32)),
       st.lists(st.tuples(st.none() | U32, st.none() | U32,
                          st.sampled_from(["S"]) | st.tuples(st.just("V"),
                                                             st.integers(0, 0x3FFF)))),
       st.sets(st.integers(0, 1 << 20)), st.none() | st.integers(0, (1 << 64) - 1),
       st.none() | U32, st.booleans(), st.text(max_size=20))
def test_changes_cross_the_wire_unchanged(x, writes, fences, pages, stimecmp, pc, sret, label):
    c = Changes(x, writes, fences, pages, stimecmp, pc, sret, label)
    assert Changes.unpack(c.pack()) == c


@given(st.lists(U32, min_size=32, max_size=32), st.integers(0, 1 << 40), U32, U32)
def test_a_trap_crosses_the_wire_unchanged(x, instret, cause, tval):
    t = Trapped(cause, tval, 0x8040_0000, 0, True, 0x8000_1000, x, 0x8040_0004, 1, instret,
                instret + 7, {0x100: 0x20, 0x141: 0x8040_0000}, 1 << 63)
    back = Trapped.unpack(t.pack())
    assert (back.x, back.instret, back.cause, back.tval, back.csrs[0x141]) == \
        (x, instret, cause, tval, 0x8040_0000)


# ----- the hardware takes nothing it cannot -----------------------------------------------------

@settings(max_examples=300)
@given(st.sampled_from([NEW, RUN, CALL, 99]), st.binary(max_size=300))
def test_nonsense_from_the_worker_is_refused_not_obeyed(op, payload):
    """Whatever bytes a worker sends, the hardware refuses them (Abort: the worker is killed)
    or serves them; it never fails in another way, which would be the grader failing."""
    ours, theirs = socket.socketpair()
    hardware = Hardware(Channel(ours))
    hardware.begin("guest", {"host_steps": 100})
    try:
        hardware.serve(op, payload)
    except Abort:
        pass
    finally:
        ours.close()
        theirs.close()


# ----- a log's hash, for the batch's memo of replays (memo.Logs) --------------------------------

class _Logged:
    """A worker's log, already read: the channel a Replay reads it from."""

    def __init__(self, messages: list[tuple[int, bytes]]) -> None:
        self.messages = list(messages)
        self.deadline = None

    def receive(self) -> tuple[int, bytes, None]:
        op, payload = self.messages.pop(0)
        return op, payload, None


def _hashed(base: int, log: list[tuple[int, bytes]]) -> tuple[bytes, bool]:
    replay = Replay(_Logged(log))
    replay.restart(base)
    while replay.hold() != END:
        pass
    assert [m[1] for m in replay.held] == [m[1] for m in log]  # held, whole, in order
    return replay.digest.digest(), replay.older


_MACHINE_STEPS = st.lists(st.tuples(st.sampled_from([NEW, RUN, CALL, RAM, FREE, TRAP]),
                                    st.integers(0, 3), st.binary(max_size=12)), max_size=12)


def _log(base: int, steps: list) -> list[tuple[int, bytes]]:
    """A log whose messages name machine `base + k` (a NEW's reply names the one made)."""
    out: list[tuple[int, bytes]] = []
    for op, k, tail in steps:
        named = struct.pack("<I", base + k) + tail
        if op == NEW:
            out += [(NEW, b'{"ram_size":4096}'), (REPLY, named)]
        else:
            out.append((op, tail if op == TRAP else named))
    return [*out, (END, b"7")]


@settings(max_examples=300)
@given(st.integers(1, 5000), st.integers(1, 5000), _MACHINE_STEPS, st.integers(1, 10**6))
def test_a_log_hashes_alike_whatever_the_requests_before_it(b1, b2, steps, seq):
    """The same requests, made after more or fewer machines and requests: the same log for
    the memo (the request's number, at its end, is the answer's to match, Worker._read)."""
    later = [*_log(b2, steps)[:-1], (END, str(seq).encode())]
    assert _hashed(b1, _log(b1, steps)) == (_hashed(b2, later)[0], False)


@settings(max_examples=300)
@given(st.integers(2, 5000), _MACHINE_STEPS, st.integers(0, 11), st.integers(0, 255))
def test_a_log_that_names_an_earlier_machine_or_differs_in_a_byte_is_another_log(
        base, steps, at, byte):
    log = _log(base, steps)
    digest, older = _hashed(base, log)
    # naming a machine made before the request: never found, never kept (its state counts)
    assert _hashed(base, [(RUN, struct.pack("<IQ", base - 1, 5)), *log])[1]
    assert not _hashed(base, [(CALL, bytes(4) + b"{}"), *log])[1]  # the grader's ring
    i = at % max(1, len(log) - 1)  # (not the END)
    op, payload = log[i]
    if payload and op != END:
        j = at % len(payload)
        changed = payload[:j] + bytes([payload[j] ^ (byte or 1)]) + payload[j + 1:]
        other = _hashed(base, [*log[:i], (op, changed), *log[i + 1:]])
        assert other[0] != digest or other[1] != older


# ----- the worker's copy of the hardware is held to the grader's ---------------------------------

SCRIPT = """
import sys
sys.path.insert(0, ".")
from machine import remote
remote.connect(int(sys.argv[1]), runs={engine})
{patch}
from machine import Machine
m = Machine(ram_size=1 << 20)
m.write_phys(0x8000_0000, bytes.fromhex("13000000" * 4 + "93088000" + "73000000"))
m.pc = 0x8000_0000
{before_run}
print(m.run(100))
remote.finish("1")
"""


def replayed(tmp_path: Path, patch: str = "", before_run: str = "",
             ops: list[int] | None = None, engine: bool = True,
             ) -> tuple[str, Hardware, Abort | None]:
    """Run SCRIPT in the worker's machine package (with its engine or without it), its log
    replayed on the grader's hardware: what the script printed, the grader's hardware, and how
    the grader refused the log. The messages' ops go into `ops`, if given."""
    worker_view.build(SOLUTION / "machine", tmp_path, engine)
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-I", "-c",
                             SCRIPT.format(patch=patch, before_run=before_run, engine=engine),
                             str(theirs.fileno())],
                            cwd=tmp_path, pass_fds=(theirs.fileno(),), stdout=subprocess.PIPE,
                            text=True)
    theirs.close()
    hardware = Hardware(Replay(Channel(ours)), runs=engine)
    hardware.begin("guest", {"host_steps": 100})
    refused = None
    try:
        while not hardware.channel.ended:
            op, payload, _ = hardware.channel.receive()
            if ops is not None:
                ops.append(op)
            hardware.serve(op, payload)
    except Abandoned:
        pass
    except Abort as e:
        refused = e
    finally:
        ours.close()
        out, _ = proc.communicate(timeout=30)
    return out, hardware, refused


def test_the_hardware_runs_only_guests_never_s_mode(tmp_path: Path) -> None:
    """A worker that asks the hardware to run a program in S-mode (the bare machine, with the
    firmware answering its SBI calls) gets a stop, not a bare run: from its own copy of the
    hardware, and from the grader's, which replays the same request."""
    out, hardware, refused = replayed(tmp_path)
    assert out.startswith("handler-error") and "S-mode" in out, out
    assert refused is None
    assert hardware.record.retired == 0 and hardware.record.stop[0] == "handler-error"


def test_a_worker_whose_copy_of_the_hardware_lies_fails_as_inconsistent(tmp_path: Path) -> None:
    """The worker runs its VMM on its own copy of the hardware; the grader replays the log on
    its own and holds every trap, reply and run's end to what its hardware said. A copy
    patched to run S-mode code (a bare run, the firmware answering) says otherwise, and so
    does one whose counters run fast."""
    bare = "import machine.hart\nmachine.hart.S_MODE = -1\n"
    out, hardware, refused = replayed(tmp_path, patch=bare)
    assert out.startswith("shutdown"), out  # the patched copy ran it bare
    assert refused is not None and refused.kind == "inconsistent", refused
    assert "another machine" in refused.detail and hardware.record.retired == 0
    fast = "import machine.hardware as h\n_s = h._state\n" \
           "h._state = lambda hart, ev: _s(hart, ev)[:-8] + bytes(8)\n"
    _, _, refused = replayed(tmp_path, patch=fast)
    assert refused is not None and refused.kind == "inconsistent", refused


# ----- a test of one handler: a machine without its engine ------------------------------------

def test_without_the_engine_the_hardware_runs_nothing_and_returns_to_no_guest(tmp_path) -> None:
    """In a test of one handler the hardware runs nothing: a run ends at once, and an sret the
    VMM asked for fails the next call, alike on the worker's copy and the grader's hardware
    (so the replay holds: nothing is refused)."""
    out, hardware, refused = replayed(tmp_path, engine=False)
    assert out.startswith("handler-error") and vmlab.hardware.NO_RUN in out, out
    assert refused is None and hardware.record.retired == 0 and hardware.record.traps == 0
    asks = ("m.hart.sret()\nm.set_csr(0x140, 1)\ntry:\n    m.csr(0x140)\n"  # a call
            "except ValueError as e:\n    print('sret:', e)\n")
    out, hardware, refused = replayed(tmp_path / "sret", before_run=asks, engine=False)
    assert out.startswith("sret: " + vmlab.hardware.NO_RUN), out
    assert refused is None and hardware.record.retired == 0


HANDLER_WORK = {  # what does a handler's work on the machine, and how a scratch copy calls it
    "Hart.take_trap": "Hart(PhysicalMemory(1 << 16)).take_trap(2)",
    "Hart._trap": "Hart(PhysicalMemory(1 << 16))._trap(Trap(2, 0), 0)",
    "Hart.sret": "Hart(PhysicalMemory(1 << 16)).sret()",
    "Hart.step": "Hart(PhysicalMemory(1 << 16)).step()",
    "Machine.run": "MachineClass(ram_size=1 << 20).run(10)",
    "Machine.step": "MachineClass(ram_size=1 << 20).step()",
    "execute": "execute.EXECUTE['csrrw'](Hart(PhysicalMemory(1 << 16)), None, 0, 0)",
    "execute.wfi": "execute.wfi(Hart(PhysicalMemory(1 << 16)), None, 0, 0)",
    "blocks": "blocks.run_fast(Hart(PhysicalMemory(1 << 16)), 10)",
    "sbi.firmware": "sbi.firmware(Hart(PhysicalMemory(1 << 16)))",
    "sbi.call": "sbi.call(Hart(PhysicalMemory(1 << 16)), 0x10, 0, 0, 0, 0)",
}
HINTS = {  # what the hints hand the VMM, kept
    "csrs": "csrs.read(Hart(PhysicalMemory(1 << 16)), 0x100)",
    "decode": "decode(0x10500073).op",
    "sbi.base": "sbi.base(0, 0)",
    "TrapEvent": "TrapEvent(2, 0, 0, 0, False).cause",
}
PROBE_SCRIPT = """
import json, sys
sys.path.insert(0, ".")
from machine import blocks, csrs, execute, sbi
from machine.decode import decode
from machine.hart import Hart, TrapEvent
from machine.machine import Machine as MachineClass
from machine.memory import PhysicalMemory
from machine.traps import Trap
from machine.hardware import _state
out = {"state": _state(MachineClass(ram_size=1 << 20).hart, None).hex()}
for name, call in json.loads(sys.argv[1]).items():
    try:
        out[name] = ["returned", repr(eval(call))]
    except Exception as e:
        out[name] = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


def _calls(view: Path, engine: bool) -> dict:
    worker_view.build(SOLUTION / "machine", view, engine)
    done = subprocess.run([sys.executable, "-I", "-c", PROBE_SCRIPT,
                           json.dumps({**HANDLER_WORK, **HINTS})],
                          cwd=view, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_worker_without_the_engine_has_the_hints_but_none_of_the_machine_s_work(tmp_path):
    """The worker of a test of one handler has a machine whose trap entry, sret, interpreter,
    run and firmware raise, naming what they are and LAB.md's rule, while the hints stay; and
    its machine starts in the state of the machine with the engine, byte for byte (the NEW the
    grader's hardware replays answers the same)."""
    whole, cut = _calls(tmp_path / "whole", True), _calls(tmp_path / "cut", False)
    assert cut["state"] == whole["state"]
    for name in HANDLER_WORK:
        kind, message = cut[name]
        assert kind == "RuntimeError" and "is the hardware's, not your VMM's" in message \
            and "Your parts are your code" in message, (name, cut[name])
        assert whole[name][0] != "RuntimeError" or "hardware's" not in whole[name][1], name
    for name in HINTS:
        assert cut[name] == whole[name] and cut[name][0] == "returned", (name, cut[name])


def test_a_machine_that_no_longer_has_what_the_engine_list_names_fails_the_build() -> None:
    """Should the machine rename its trap entry, the worker without the engine would keep it
    under the new name: the view is not built, rather than built with the engine in it."""
    with pytest.raises(ValueError, match="worker_view.ENGINE is out of date"):
        worker_view.unplugged("class Hart:\n    def enter_trap(self): pass\n",
                              {"Hart.take_trap"}, "hart")


@pytest.mark.skipif(os.geteuid() != 0, reason="a worker has a user of its own only under root")
def test_a_worker_without_the_engine_cannot_read_the_other_view(tmp_path) -> None:
    """Where the grader is root, each view of the lab is readable by its own workers' group
    alone: a worker without the engine cannot read the engine off the disk (bubblewrap aside)."""
    w = Worker(SOLUTION, timeout=60)
    try:
        if w.confinement.uid is None:
            pytest.skip("no user of its own here")
        views = {engine: w.views[engine] / "machine" / "hart.py" for engine in (True, False)}
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                os.setgroups([])
                os.setgid(w.confinement.group(False))
                os.setuid(w.confinement.uid)
                views[False].read_text()
                code = 2
                views[True].read_text()
            except PermissionError:
                pass
            else:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 2, status
    finally:
        w.close()


# ----- the same VMM, in the worker's process or on the grader's hardware -------------------------

@pytest.fixture(scope="module")
def workers():
    made = {}
    saved = os.environ.get(HARNESS_ENV)
    for mode in ("inprocess", "remote"):
        os.environ[HARNESS_ENV] = mode
        made[mode] = Worker(SOLUTION, timeout=60)
    if saved is None:
        os.environ.pop(HARNESS_ENV)
    else:
        os.environ[HARNESS_ENV] = saved
    yield made
    for w in made.values():
        w.close()


@settings(max_examples=40, deadline=None)
@given(system_programs(max_sections=4), st.sampled_from(["shadow", "nested"]))
def test_the_grader_s_hardware_runs_a_guest_as_the_worker_s_own_did(workers, p: SystemProgram,
                                                                    paging: str) -> None:
    """Every whole-guest answer, counts and all, is the same whichever process runs the
    hardware: the remote machine is the machine."""
    request = as_request(p, paging)
    request["steps"] = run_bare(p)["instret"] + 200
    here = workers["inprocess"].call("guest", request)
    there = workers["remote"].call("guest", request)
    assert there == here


def test_a_vmm_s_ram_writes_reach_the_grader_s_ram(tmp_path: Path) -> None:
    """The grader's RAM follows the worker's through the log: a large write (split into
    messages a channel takes) and a zero-fill land where the VMM put them."""
    data = "bytes(range(1, 256)) * 2100"  # 535,500 bytes, none zero: three messages
    out, hardware, refused = replayed(
        tmp_path, before_run=f"m.write_phys(0x8002_0000, {data})\n"
                             "m.write_phys(0x8002_0000, bytes(16))\n")
    assert refused is None and out.startswith("handler-error"), (refused, out)
    [box] = hardware.boxes.values()
    expected = bytes(16) + (bytes(range(1, 256)) * 2100)[16:]
    assert box.ram[0x2_0000:0x2_0000 + len(expected)] == expected


def test_frames_zeroed_whole_reach_the_grader_s_ram_as_zeros(tmp_path: Path) -> None:
    """A zeroed frame (handed back to the kernel on both sides, not written) reads as zeros in
    the grader's RAM, and its neighbours keep what the VMM wrote there."""
    out, hardware, refused = replayed(
        tmp_path, before_run="m.write_phys(0x8002_0000, bytes([7]) * 0x5000)\n"
                             "m.write_phys(0x8002_1000, bytes(0x2000))\n"
                             "m.write_phys(0x8002_3800, bytes(0x1000))\n")
    assert refused is None and out.startswith("handler-error"), (refused, out)
    [box] = hardware.boxes.values()
    expected = bytes([7]) * 0x1000 + bytes(0x2000) + bytes([7]) * 0x800 + bytes(0x1000) \
        + bytes([7]) * 0x800
    assert box.ram[0x2_0000:0x2_5000] == expected


# a VMM's writes, in a window of 16 pages at 0x8002_0000: frames zeroed whole (fresh or not),
# runs of PTEs written one after the other, small writes of zeros, data that straddles pages
WINDOW, WINDOW_PAGES = 0x8002_0000, 16
RAM_WRITES = st.one_of(
    st.builds(lambda p, k: (WINDOW + p * 4096, bytes(k * 4096)),
              st.integers(0, WINDOW_PAGES - 1), st.integers(1, 2)),
    st.builds(lambda at, n, v: (WINDOW + at * 4, b"".join(((v + i) & M32).to_bytes(4, "little")
                                                          for i in range(n))),
              st.integers(0, WINDOW_PAGES * 1024 - 600), st.integers(1, 600), U32),
    st.builds(lambda at, n: (WINDOW + at, bytes(n)),
              st.integers(0, WINDOW_PAGES * 4096 - 64), st.integers(1, 64)),
    st.builds(lambda at, data: (WINDOW + at, data),
              st.integers(0, WINDOW_PAGES * 4096 - 5000), st.binary(min_size=1, max_size=5000)))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(RAM_WRITES, max_size=12), min_size=1, max_size=4))
def test_the_grader_s_ram_is_the_worker_s_after_any_writes(tmp_path_factory, batches) -> None:
    """Whatever a VMM writes, and however the log folds it (a run of writes one after the
    other joins one message; zeros written over zeros send none), the grader's RAM ends byte
    for byte as the VMM left its own. Between batches the VMM reads a CSR: a message that
    must find every earlier write in place."""
    expected = bytearray(WINDOW_PAGES * 4096)
    for batch in batches:
        for pa, data in batch:
            expected[pa - WINDOW:pa - WINDOW + len(data)] = data
    folder = tmp_path_factory.mktemp("w")
    (folder / "writes.json").write_text(json.dumps(
        [[[pa, data.hex()] for pa, data in batch] for batch in batches]))
    script = ("import json\n"
              "for batch in json.load(open('writes.json')):\n"
              "    for pa, data in batch:\n"
              "        m.write_phys(pa, bytes.fromhex(data))\n"
              "    m.csr(0x100)\n")
    out, hardware, refused = replayed(folder, before_run=script)
    assert refused is None and out.startswith("handler-error"), (refused, out)
    [box] = hardware.boxes.values()
    assert box.ram[WINDOW - 0x8000_0000:WINDOW - 0x8000_0000 + len(expected)] == expected


def test_a_vmm_that_backs_a_guest_sends_a_message_for_its_table_not_a_page(tmp_path) -> None:
    """A G-stage that maps 200 fresh frames: each zeroed (zeros already: nothing to send) and
    its PTE written after the last (one message for all of them)."""
    script = ("for i in range(200):\n"
              "    m.write_phys(0x8002_0000 + i * 4096, bytes(4096))\n"
              "    m.write_phys(0x8000_8000 + 4 * i, (i << 10 | 0xCF).to_bytes(4, 'little'))\n")
    ops: list[int] = []
    out, hardware, refused = replayed(tmp_path, before_run=script, ops=ops)
    assert refused is None and out.startswith("handler-error"), (refused, out)
    assert ops.count(RAM) == 2, ops  # SCRIPT's program, and the table
    [box] = hardware.boxes.values()
    ptes = b"".join((i << 10 | 0xCF).to_bytes(4, "little") for i in range(200))
    assert box.ram[0x8000:0x8000 + len(ptes)] == ptes


def test_writes_to_two_machines_stay_on_their_own_machine(tmp_path) -> None:
    """A write that would continue another machine's last one is not joined to it: each
    machine's RAM in the grader gets only its own writes."""
    script = ("m2 = Machine(ram_size=1 << 20)\n"
              "for i in range(64):\n"
              "    (m, m2)[i % 2].write_phys(0x8003_0000 + 4 * i, (i + 1).to_bytes(4, 'little'))\n")
    out, hardware, refused = replayed(tmp_path, before_run=script)
    assert refused is None and out.startswith("handler-error"), (refused, out)
    first, second = (box.ram[0x3_0000:0x3_0000 + 256] for box in hardware.boxes.values())
    words = [(i + 1).to_bytes(4, "little") for i in range(64)]
    assert first == b"".join(w if i % 2 == 0 else bytes(4) for i, w in enumerate(words))
    assert second == b"".join(w if i % 2 else bytes(4) for i, w in enumerate(words))


@settings(max_examples=300)
@given(st.integers(0, 5 * 4096), st.integers(0, 4 * 4096), st.binary(min_size=1, max_size=8))
def test_zero_clears_the_range_and_nothing_else(off: int, n: int, fill: bytes) -> None:
    """With the pages handed back (Linux) and with zeros written (elsewhere, a student's
    Mac, where MADV_DONTNEED may leave a page as it was)."""
    size = 10 * 4096
    pattern = (fill * (size // len(fill) + 1))[:size].replace(b"\0", b"\1")
    linux = vmlab.hardware.DONTNEED_ZEROES
    try:
        for vmlab.hardware.DONTNEED_ZEROES in {linux, False}:
            ram = new_ram(size)
            ram[:] = pattern
            zero(ram, off, n)
            assert ram[off:off + n] == bytes(n)
            assert ram[:off] == pattern[:off] and ram[off + n:] == pattern[off + n:]
    finally:
        vmlab.hardware.DONTNEED_ZEROES = linux
