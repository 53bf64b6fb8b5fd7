"""`make sensitivity`: how reliably the visible tests catch each hand-written buggy VMM.

The test suite grades each bug in tests/buggy_vmms.py with the rubric's own seeds: one run per
bug. A property that catches a bug only on lucky seeds passes that test and still lets the bug
through for some other seed, or after a change to an unrelated generator moves the examples.
This grades each bug with the visible tests of the part that must catch it under several other
seeds and prints, per bug, at how many seeds it lost points. Anything below all of them is worth
a look. The bugs of tests/designs.py and tests/part_corpus.py (realistic ones written from the
contract alone) are graded too.

    python bench/sensitivity.py [--seeds N] [BUG ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import designs  # noqa: E402
from buggy_vmms import BUGS, edited_submission  # noqa: E402
from part_corpus import BUGS as CORPUS_BUGS  # noqa: E402
from vmlab.grade import grade_lab  # noqa: E402
from vmlab.rubric import load as load_rubric  # noqa: E402
from vmlab.submission import assemble  # noqa: E402

RUBRIC = load_rubric()


@dataclasses.dataclass(frozen=True)
class Edited:
    name: str
    part: str  # the part whose visible tests must catch it
    file: str
    edits: tuple[tuple[str, str], ...]


ALL = [Edited(b.name, b.part, b.file, ((b.old, b.new),)) for b in BUGS] + [
    Edited(v.name, v.part, v.file, tuple(v.edits)) for v in CORPUS_BUGS] + [
    Edited(d.name, d.caught_by, d.file, tuple(d.edits)) for d in designs.BUGS]


def caught(bug: Edited, seed: int) -> bool:
    """Whether the visible tests of the part that must catch `bug` lose a point at `seed`."""
    tests = [dataclasses.replace(t, seed=seed) for t in RUBRIC.tests
             if t.visible and t.part == bug.part]
    with tempfile.TemporaryDirectory() as tmp:
        sub = edited_submission(Path(tmp) / "submission", REPO / "solution", RUBRIC.editable,
                                bug.file, list(bug.edits))
        lab, _, _ = assemble(sub, REPO / "handout", RUBRIC.editable, into=Path(tmp) / "lab")
        results = grade_lab(lab, RUBRIC, tests, Path(tmp) / "results.json")
    return any(t["score"] < t["max_score"] for t in results["tests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per bug")
    parser.add_argument("bugs", nargs="*", help="bug names (default: all)")
    args = parser.parse_args()
    bugs = [b for b in ALL if not args.bugs or b.name in args.bugs]
    seeds = [7919 * (i + 1) for i in range(args.seeds)]  # none of them the rubric's
    weak = 0
    for bug in bugs:
        n = sum(caught(bug, s) for s in seeds)
        weak += n < len(seeds)
        print(f"{bug.name:44} {bug.part:15} caught at {n}/{len(seeds)} seeds", flush=True)
    print(f"{len(bugs) - weak} of {len(bugs)} bugs caught at every seed")


if __name__ == "__main__":
    main()
