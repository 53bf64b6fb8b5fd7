"""`make bench`: guest instructions per second and peak memory, measured side by side.

Each figure is the median of several runs of the same program on a fresh machine. Run it on an
otherwise idle machine and compare ratios within one run, not numbers across machines.
"""

from __future__ import annotations

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
    li a7, 0x08495043
    li a6, 0
    li a0, 1
    mv a1, s1
    li a2, 4
    ecall                      # echo it back
    j 1b
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


def main() -> None:
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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory of this whole benchmark: {rss:.0f} MB")


if __name__ == "__main__":
    main()
