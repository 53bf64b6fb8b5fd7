"""The longest trap loops VMMs take: what hardware.TRAP_LOOP leaves room for.

The hardware ends a run at the TRAP_LOOP-th trap in a row of one cause at one pc with no
instruction retired between. Grade submissions as bench/batch_profile.py does and print, for
each, the runs the hardware made, the longest such streak in any of them, and the traps of the
runs a loop ended. A correct VMM's longest streak must stay far below TRAP_LOOP.

    python bench/trap_streaks.py [--only TEST ...] SOURCE

SOURCE is `solution`, `handout`, or a bug's or design's name (tests/buggy_vmms.py,
tests/designs.py): one a run, as batch_profile.py grades it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import batch_profile  # noqa: E402
from vmlab import hardware  # noqa: E402


def main(argv: list[str]) -> None:
    now = {"longest": 0, "traps": 0}  # of the run going on
    runs: list[tuple[int, int]] = []  # (longest streak, traps) of each run
    real_trap, real_run = hardware.Hardware._trap, hardware.Hardware._run

    def _trap(self: hardware.Hardware, event: Any) -> None:
        try:
            real_trap(self, event)
        finally:  # the hardware's own count of this trap's streak (a loop's last one raises)
            now["longest"] = max(now["longest"], self.repeats)
            now["traps"] += 1

    def _run(self: hardware.Hardware, *args: Any) -> None:
        now.update(longest=0, traps=0)
        try:
            real_run(self, *args)
        finally:
            runs.append((now["longest"], now["traps"]))

    hardware.Hardware._trap, hardware.Hardware._run = _trap, _run
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("--only", action="append", default=[], help="only this test")
    a = ap.parse_args(argv)
    batch_profile.main([*(x for t in a.only for x in ("--only", t)), a.source])
    looped = [t for longest, t in runs if longest >= hardware.TRAP_LOOP]
    print(f"trap streaks, {a.source}: {len(runs)} runs, {sum(t for _, t in runs)} traps; the "
          f"longest streak {max((s for s, _ in runs), default=0)} (TRAP_LOOP is "
          f"{hardware.TRAP_LOOP}); {len(looped)} runs ended by a loop, {sum(looped)} traps in "
          "them")


if __name__ == "__main__":
    main(sys.argv[1:])
