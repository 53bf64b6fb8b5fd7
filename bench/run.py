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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory of this whole benchmark: {rss:.0f} MB")


if __name__ == "__main__":
    main()
