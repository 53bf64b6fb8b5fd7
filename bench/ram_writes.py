"""What a page a VMM backs costs the worker: the frame zeroed and a PTE written, through the
worker's console to its copy of the hardware (remote.py), logged for the grader.

A G-stage that maps all of a guest's RAM at its first fault does this for every page of guest
RAM in every example; the grader replays each write again (hardware.Hardware._ram).

    python bench/ram_writes.py [--pages N] [--rounds R]

Prints the median CPU time per page over R rounds of N pages. The log goes to a thread that
discards it, as the grader's socket would take it.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1152, help="pages a round backs")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args(argv)

    from vmlab import worker_view
    view = Path(tempfile.mkdtemp(prefix="vmlab-ram-writes-"))
    worker_view.build(REPO / "handout" / "machine", view)
    sys.path.insert(0, str(view))
    import machine
    from machine import remote

    ours, theirs = socket.socketpair()
    threading.Thread(target=lambda: [None for _ in iter(lambda: theirs.recv(1 << 20), b"")],
                     daemon=True).start()
    remote.connect(ours.detach())
    m = machine.Machine(ram_size=96 << 20)

    def round_() -> float:
        t = time.process_time()
        for i in range(a.pages):
            frame = 0x8010_0000 + (i * 7919) % 20_000 * 4096  # scattered, as FrameAllocator's
            m.write_phys(frame, bytes(4096))
            m.write_phys(0x8000_8000 + 4 * i, (frame >> 2 | 0xCF).to_bytes(4, "little"))
        return time.process_time() - t

    per_page = statistics.median(round_() for _ in range(a.rounds)) / a.pages
    print(f"worker: {per_page * 1e6:.2f} us a page (a frame zeroed and its PTE written; "
          f"median of {a.rounds} rounds of {a.pages})")


if __name__ == "__main__":
    main(sys.argv[1:])
