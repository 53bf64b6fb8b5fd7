"""The host steps each whole-guest example takes under a VMM, as the grader's hardware of
record counts them: what the host budgets of properties/guests.py must leave room for.

    python bench/host_steps.py SOURCE[,SOURCE...] TEST[,TEST...]

SOURCE is `solution`, or a bug's or design's name from tests/buggy_vmms.py or tests/designs.py;
TEST a test id of the rubric. Prints, per source, test and probe, the examples, the most host
steps one took, the 99th percentile, the median, the budget the probe was given, and the most
host steps an example took beyond the guest's own budget of instructions.
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main(argv: list[str]) -> None:
    from batch_exports import source_named, write_submission
    from vmlab import hardware
    from vmlab.batch_child import _prepare
    from vmlab.grade import default_handout, grade_lab, select
    from vmlab.rubric import load as load_rubric
    from vmlab.submission import assemble

    if len(argv) != 2:
        sys.exit(__doc__)
    used: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    beyond: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    budgets: dict[tuple[str, str], Any] = {}
    now: dict[str, Any] = {"hardware": None}

    def settle() -> None:  # the probe that ran last: what it took of its budget
        h = now["hardware"]
        if h is not None and now["probe"]:
            used[(now["test"], now["probe"])].append(now["budget"] - h.budget)
            if now["guest_steps"] is not None:  # past the guest's own budget
                beyond[(now["test"], now["probe"])].append(
                    now["budget"] - h.budget - now["guest_steps"])
        now["hardware"] = None

    real_begin = hardware.Hardware.begin

    def begin(self: hardware.Hardware, probe: str, args: dict) -> None:
        settle()
        real_begin(self, probe, args)
        now.update(hardware=self, probe=probe, budget=self.budget,
                   guest_steps=args.get("steps") if isinstance(args, dict) else None)
        budgets[(now["test"], probe)] = args.get("host_steps") if isinstance(args, dict) else None

    hardware.Hardware.begin = begin
    handout = default_handout()
    _prepare(str(handout))
    rubric = load_rubric(None)
    for source in argv[0].split(","):
        for test_id in argv[1].split(","):
            used.clear()
            beyond.clear()
            now.update(test=test_id, probe="", hardware=None)
            with tempfile.TemporaryDirectory() as tmp:
                sub = write_submission(Path(tmp) / "sub", source_named(source))
                lab, _, _ = assemble(sub, handout, rubric.editable, into=Path(tmp) / "lab")
                results = grade_lab(lab, rubric, select(rubric, [], [test_id], visible_only=False),
                                    Path(tmp) / "results.json", reference=handout)
                if str(lab) in sys.path:
                    sys.path.remove(str(lab))
            settle()
            score = sum(t["score"] for t in results["tests"])
            top = sum(t["max_score"] for t in results["tests"])
            for (test, probe), steps in sorted(used.items()):
                steps.sort()
                print(f"{source:44} {test:28} {probe:10} examples {len(steps):4}  most "
                      f"{steps[-1]:7}  p99 {steps[max(0, len(steps) * 99 // 100 - 1)]:7}  "
                      f"median {steps[len(steps) // 2]:6}  budget {budgets[(test, probe)]}  "
                      f"score {score}/{top}" + (f"  most past the guest's steps "
                                                  f"{max(beyond[(test, probe)])}"
                                                  if beyond[(test, probe)] else ""), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
