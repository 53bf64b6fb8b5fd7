"""`vmlab check`: the student's command, run from the handout folder.

The visible tests of the rubric, with the same code, seeds and examples as the autograder, on
the VMM in the current folder; the same feedback, printed as text; a results.json in .vmlab/ for
the curious. Nothing in the folder is changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from . import labroot
from .errors import UsageError, fail
from .rubric import Rubric


def check(
    part: list[str] = typer.Option([], "--part", help="only the tests of this part (repeatable)"),
    test: list[str] = typer.Option([], "--test", help="only this test (repeatable)"),
    lab: Path = typer.Option(None, "--lab", help="the handout folder (default: here)"),
) -> None:
    """Run the visible tests on your VMM, with the autograder's feedback."""
    from .grade import grade_lab, print_table, select
    from .rubric import load as load_rubric
    root = labroot.use(lab.resolve() if lab else None)
    if not (root / "vmm").is_dir():
        raise fail(f"{root} has no vmm/ folder: run `vmlab check` in your handout folder.")
    try:
        rubric = load_rubric()
        hidden = [t for t in test if t not in {v.id for v in rubric.tests if v.visible}
                  and (t.endswith("-hidden") or t in {h.id for h in rubric.tests})]
        if hidden:
            raise UsageError(hidden_only_on_autograder(hidden[0], rubric))
        tests = select(rubric, part, test, visible_only=True)
    except UsageError as e:
        raise fail(str(e)) from None
    out = root / ".vmlab" / "results.json"
    results = grade_lab(root, rubric, tests, out,
                        log=lambda s: print(s, file=sys.__stderr__, flush=True))
    for t in sorted(results.get("tests", []), key=lambda t: t.get("number", "")):
        if t.get("score", 0) < t.get("max_score", 0):
            print(f"\n---- {t.get('name')}\n\n{t.get('output', '').strip()}\n")
    print_table(results, f"{rubric.title}: visible tests")
    failed = [t for t in results.get("tests", []) if t.get("score", 0) < t.get("max_score", 0)]
    json.dumps(results)
    raise typer.Exit(1 if failed else 0)


def hidden_only_on_autograder(test_id: str, rubric: Rubric) -> str:
    """Why `vmlab check --test x-hidden` runs nothing, and what the hidden tests add."""
    visible = [t.id for t in rubric.tests if t.visible]
    base = test_id.removesuffix("-hidden")
    twin = f" Its visible twin is `vmlab check --test {base}`." if base in visible else ""
    return (f"{test_id!r} is a hidden test: hidden tests run only on the autograder "
            "(Gradescope), never in your handout, which does not even hold them. Each checks the "
            "same property as a visible test, on other seeds that are secret to the course and "
            "with 500 examples or more, so a VMM that only fits the visible examples still loses "
            f"points. LAB.md says how each part's points split between the two.{twin}")
