"""`make bench`: guest instructions per second and peak memory, measured side by side.

Each figure is the median of several runs of the same program on a fresh machine. Run it on an
otherwise idle machine and compare ratios within one run, not numbers across machines.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "solution"))

from machine import Machine  # noqa: E402
from machine.asm import assemble  # noqa: E402

# A compute-bound loop: loads, arithmetic, a store and a branch per iteration.
KERNEL = """
    li t0, {iterations}
    li a0, 0x80500000
    li t2, 0
loop:
    lw t1, 0(a0)
    add t2, t2, t1
    slli t3, t2, 3
    xor t2, t2, t3
    sw t2, 0(a0)
    addi a0, a0, 4
    andi a1, a0, 0x3ff
    bnez a1, 1f
    addi a0, a0, -1024
1:
    addi t0, t0, -1
    bnez t0, loop
    li a7, 8
    ecall
"""

# The same loop with Sv32 on: megapages mapping RAM to itself (kernel, RWX, A and D set).
PAGING = """
    li t0, 0x80600000          # root table
    li t1, 0x20000000 | 0xCF   # PPN of 0x80000000 in place, V R W X A D
    li t2, 0x80600800          # entry for VPN[1] = 0x200 (0x80000000)
    li t4, 32
2:
    sw t1, 0(t2)
    addi t2, t2, 4
    li t3, 0x100000            # next megapage's PPN
    add t1, t1, t3
    addi t4, t4, -1
    bnez t4, 2b
    li t0, 0x80080600          # Sv32 | PPN 0x80600
    csrw satp, t0
    sfence.vma
""" + KERNEL

COUNTDOWN = """
    li t0, {iterations}
loop:
    addi t0, t0, -1
    bnez t0, loop
    li a7, 8
    ecall
"""


# A system-call-heavy guest: user code that makes `iterations` system calls to its kernel.
SYSCALLS = """
    la t0, trap
    csrw stvec, t0
    li t0, 0x100
    csrc sstatus, t0           # sret to U-mode
    la t0, user
    csrw sepc, t0
    li s0, {iterations}
    sret
trap:
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    addi s0, s0, -1
    beqz s0, done
    sret
done:
    li a7, 8
    ecall
user:
    ecall
    j user
"""

# IPC ping-pong: the pinger sends a word on channel 0 and waits for it back on channel 1.
PING = """
    li s0, {iterations}
    la s1, buf
1:  li a7, 0x08495043
    li a6, 0
    li a0, 0
    mv a1, s1
    li a2, 4
    ecall                      # send
    li a7, 0x08495043
    li a6, 1
    li a0, 1
    mv a1, s1
    li a2, 4
    ecall                      # receive the echo
    addi s0, s0, -1
    bnez s0, 1b
    li a7, 8
    ecall
    .data
buf: .word 0
"""
PONG = """
    la s1, buf
1:  li a7, 0x08495043
    li a6, 1
    li a0, 0
    mv a1, s1
    li a2, 4
    ecall                      # receive
    bnez a0, 2f                # an error: the pinger has stopped, so stop too
    li a7, 0x08495043
    li a6, 0
    li a0, 1
    mv a1, s1
    li a2, 4
    ecall                      # echo it back
    j 1b
2:  li a7, 8
    ecall
    .data
buf: .word 0
"""


def measure(source: str, iterations: int, fast: bool = True, repeat: int = 5) -> tuple[float, int]:
    """Median instructions per second over `repeat` runs, and instructions per run."""
    prog = assemble(source.format(iterations=iterations), "bench")
    rates, count = [], 0
    for _ in range(repeat):
        m = Machine(fast=fast)
        m.load(prog)
        start = time.perf_counter()
        stop = m.run(10**9)
        elapsed = time.perf_counter() - start
        assert stop.reason == "shutdown", stop
        count = m.hart.instret
        rates.append(count / elapsed)
    return statistics.median(rates), count


def peak_memory(source: str, iterations: int) -> int:
    tracemalloc.start()
    m = Machine()
    m.load(assemble(source.format(iterations=iterations), "bench"))
    m.run(10**9)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def measure_vmm(source: str, iterations: int, paging: str, repeat: int = 3) -> tuple[float, int]:
    """Median guest instructions per second under the VMM."""
    from vmm import VMM

    prog = assemble(source.format(iterations=iterations), "bench")
    rates, count = [], 0
    for _ in range(repeat):
        v = VMM()
        g = v.create_guest(prog, paging=paging)
        start = time.perf_counter()
        v.run(10**9)
        elapsed = time.perf_counter() - start
        assert g.stop is not None and g.stop.reason == "shutdown", g.stop
        count = g.vcpu.instret
        rates.append(count / elapsed)
    return statistics.median(rates), count


def measure_ipc(iterations: int, paging: str, repeat: int = 3) -> float:
    """Median IPC round trips per second between two guests."""
    from vmm import VMM

    ping = assemble(PING.format(iterations=iterations), "ping")
    pong = assemble(PONG, "pong")
    rates = []
    for _ in range(repeat):
        v = VMM()
        a = v.create_guest(ping, "ping", paging=paging)
        b = v.create_guest(pong, "pong", paging=paging)
        v.connect(a, b)
        v.connect(b, a)
        start = time.perf_counter()
        v.run(10**9)
        elapsed = time.perf_counter() - start
        assert a.stop is not None and a.stop.reason == "shutdown", a.stop
        rates.append(iterations / elapsed)
    return statistics.median(rates)


def vmm_rows() -> None:
    bare, _ = measure(KERNEL, 200_000, repeat=3)
    print("the VMM (guest instructions per second; same guest bare for comparison)")
    print(f"  {'compute loop, bare':<40} {bare / 1e6:6.2f} M/s")
    for paging in ("shadow", "nested"):
        rate, _ = measure_vmm(KERNEL, 200_000, paging)
        print(f"  {'compute loop, ' + paging:<40} {rate / 1e6:6.2f} M/s   "
              f"bare/VMM = {bare / rate:.2f}")
    for paging in ("shadow", "nested"):
        rate, count = measure_vmm(SYSCALLS, 5_000, paging)
        print(f"  {'system calls, ' + paging:<40} {rate / 1e6:6.2f} M/s   "
              f"({count} instructions, 5000 system calls)")
    for paging in ("shadow", "nested"):
        print(f"  {'IPC ping-pong, ' + paging:<40} {measure_ipc(2_000, paging):8.0f} round trips/s")


# Runs one vmlab command in a child Python and reports, on its last line of stderr, the peak
# resident memory of that process and of its largest child (the grader's worker).
MEASURED = """
import resource, runpy, sys
sys.argv = ["vmlab", *sys.argv[1:]]
try:
    runpy.run_module("vmlab", run_name="__main__")
except SystemExit:
    pass
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"PEAK {me} {kids}", file=sys.stderr)
"""


def measure_command(args: list[str], cwd: Path) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds (the command and its children), and peak resident KiB of the
    command's process and of its largest child."""
    import subprocess
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *args], cwd=cwd,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = next((line.split() for line in reversed(done.stderr.splitlines())
                 if line.startswith("PEAK ")), None)
    if peak is None:
        raise SystemExit(f"vmlab {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, cpu, int(peak[1]), int(peak[2])


def grader_rows() -> None:
    """The autograder on the solution (every test) and on the untouched handout, and a
    student's `vmlab check` in a finished handout."""
    import shutil
    import tempfile

    print("the grader (wall and CPU seconds; peak resident memory of the grader and its worker)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        student = work / "student"
        shutil.copytree(REPO / "handout", student, ignore=shutil.ignore_patterns(".venv", "tools"))
        from vmlab.rubric import load
        for name in load().editable:
            shutil.copy(REPO / "solution" / name, student / name)
        runs = [("vmlab grade solution, all 30 tests", ["grade", str(REPO / "solution"),
                                                         "--out", str(work / "s.json")], 1),
                ("vmlab grade handout (untouched)", ["grade", str(REPO / "handout"),
                                                     "--out", str(work / "h.json")], 3),
                ("vmlab check, a finished handout", ["check"], 3)]
        for name, args, repeat in runs:
            cwd = student if args[0] == "check" else work
            got = [measure_command(args, cwd) for _ in range(repeat)]
            wall = statistics.median(g[0] for g in got)
            cpu = statistics.median(g[1] for g in got)
            grader = max(g[2] for g in got) / 1024
            worker = max(g[3] for g in got) / 1024
            print(f"  {name:<40} {wall:6.1f} s wall {cpu:6.1f} s CPU   "
                  f"{grader:4.0f} MB + {worker:4.0f} MB   (median of {repeat})")


def sandbox_rows(repeat: int = 3) -> None:
    """`vmlab grade solution` inside bubblewrap and outside it, alternated in one run: what the
    sandbox costs (the other layers, a user and limits, cost nothing measurable). In wall
    seconds: a worker killed with its PID namespace is never waited for by a parent of ours,
    so its CPU time does not reach this process's children's count."""
    import os
    import tempfile

    from vmlab.confine import BWRAP_ENV, _bubblewrap
    if _bubblewrap()[0] is None:
        print(f"the sandbox: bubblewrap cannot run here ({_bubblewrap()[1]}); nothing to compare")
        return
    print("the sandbox: vmlab grade solution, every test, in bubblewrap and without it "
          f"(wall seconds; median of {repeat}, alternated)")
    times: dict[str, list[float]] = {"in bubblewrap": [], "without bubblewrap": []}
    with tempfile.TemporaryDirectory() as tmp:
        args = ["grade", str(REPO / "solution"), "--out", str(Path(tmp) / "s.json")]
        for _ in range(repeat):
            for name, value in (("in bubblewrap", "1"), ("without bubblewrap", "0")):
                os.environ[BWRAP_ENV] = value
                times[name].append(measure_command(args, Path(tmp))[0])
        os.environ.pop(BWRAP_ENV, None)
    with_, without = (statistics.median(t) for t in times.values())
    print(f"  {'in bubblewrap':<40} {with_:6.1f} s wall")
    print(f"  {'without bubblewrap':<40} {without:6.1f} s wall   ratio {with_ / without:.2f}")


def harness_rows(repeat: int = 3) -> None:
    """`vmlab grade solution` with the hardware of record in the grading process (the harness,
    issue 17: the worker's log replayed there) and with the machine in the worker's own process
    as before it, alternated in one run. Wall seconds, and the CPU seconds of the grading
    process and the worker together (on a loaded machine, or one core, CPU is what counts).
    Workers without bubblewrap: one ended with its PID namespace is reaped by no process of
    ours, and its CPU would be missing from the figures."""
    import os
    import tempfile

    from vmlab.sandbox import HARNESS_ENV
    print("the harness: vmlab grade solution, every test, the hardware of record in the "
          f"grading process and the machine in the worker (median of {repeat}, alternated)")
    rows = {"hardware of record in the grader": "remote",
            "machine in the worker (before)": "inprocess"}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    with tempfile.TemporaryDirectory() as tmp:
        args = ["grade", str(REPO / "solution"), "--out", str(Path(tmp) / "s.json")]
        os.environ["VMLAB_BUBBLEWRAP"] = "0"
        for _ in range(repeat):
            for name, value in rows.items():
                os.environ[HARNESS_ENV] = value
                wall, cpu = measure_command(args, Path(tmp))[:2]
                times[name].append((wall, cpu))
        os.environ.pop(HARNESS_ENV, None)
        os.environ.pop("VMLAB_BUBBLEWRAP", None)
    (remote_wall, remote_cpu), (before_wall, before_cpu) = (
        (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for t in times.values())
    print(f"  {'hardware of record in the grader':<36} {remote_wall:6.1f} s wall "
          f"{remote_cpu:6.1f} s CPU   ratio {remote_wall / before_wall:.2f} wall, "
          f"{remote_cpu / before_cpu:.2f} CPU")
    print(f"  {'machine in the worker (before)':<36} {before_wall:6.1f} s wall "
          f"{before_cpu:6.1f} s CPU")


def generation_rows(examples: int = 300, repeat: int = 3) -> None:
    """How long hypothesis takes to generate each property's examples, the test body empty:
    the part of a grading test that is neither the worker nor the bare machine."""
    from hypothesis import given, seed, settings
    from vmlab.properties import load
    from vmlab.suite import grading_settings, pin_constants

    print(f"generating examples (ms per example; {examples} examples, median of {repeat})")
    pin_constants()
    gc.collect()
    gc.freeze()  # as grade_lab does for a run
    for name, prop in sorted(load().items()):
        if prop.stateful:
            continue
        times = []
        for _ in range(repeat):
            @seed(1)
            @settings(grading_settings(examples))
            @given(prop.strategy())
            def generate(example: object) -> None:
                pass

            start = time.perf_counter()
            generate()
            times.append(time.perf_counter() - start)
        print(f"  {name:<40} {statistics.median(times) / examples * 1000:6.2f} ms")
    gc.unfreeze()


def batch_rows(argv: list[str]) -> None:
    """`vmlab batch` against `vmlab grade` one by one: submissions per core-minute."""
    sys.path.insert(0, str(REPO / "bench"))
    import batch_rate
    batch_rate.main(argv)


def main() -> None:
    if sys.argv[1:2] == ["batch"]:  # this section alone
        return batch_rows(sys.argv[2:])
    if sys.argv[1:2] == ["harness"]:  # this section alone
        return harness_rows(int(sys.argv[2]) if sys.argv[2:] else 3)
    rows = [
        ("countdown loop, paging off", COUNTDOWN, 1_000_000, True),
        ("compute loop, paging off", KERNEL, 200_000, True),
        ("compute loop, Sv32 on", PAGING, 200_000, True),
        ("compute loop, reference interpreter", KERNEL, 20_000, False),
    ]
    print(f"Python {sys.version.split()[0]}; medians of 5 runs")
    results = {}
    for name, source, n, fast in rows:
        rate, count = measure(source, n, fast)
        results[name] = rate
        print(f"  {name:<40} {rate / 1e6:6.2f} M instructions/s  ({count} instructions)")
    off, on = results["compute loop, paging off"], results["compute loop, Sv32 on"]
    print(f"  Sv32 on / off: {on / off:.2f}")
    print(f"  fast path / interpreter: {off / results['compute loop, reference interpreter']:.1f}x")
    print(f"  peak Python heap, compute loop: {peak_memory(KERNEL, 20_000) / 1e6:.1f} MB")
    vmm_rows()
    generation_rows()
    grader_rows()
    sandbox_rows()
    harness_rows()
    batch_rows([])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory of this whole benchmark: {rss:.0f} MB")


if __name__ == "__main__":
    main()
