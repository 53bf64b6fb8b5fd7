"""`vmlab check`: the student's command, run from the handout folder.

The visible tests of the rubric, with the same code, seeds and examples as the autograder, on
the VMM in the current folder; the same feedback, printed as text; a results.json in .vmlab/ for
the curious. Nothing in the folder is changed.

What it prints, in this order: the score table, in the rubric's order of parts; one line naming
the parts that are still stubs (their tests need nothing more said); then one block per other
failed test, headed by its part, its id and its score, with the autograder's report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from . import labroot
from .errors import UsageError, fail
from .feedback import FILES, FUNCTIONS, NOT_WRITTEN
from .grade import drawn
from .rubric import Rubric, Test


def check(
    part: list[str] = typer.Option([], "--part", help="only the tests of this part (repeatable)"),
    test: list[str] = typer.Option([], "--test", help="only this test (repeatable)"),
    lab: Path = typer.Option(None, "--lab", help="the handout folder (default: here)"),
) -> None:
    """Run the visible tests on your VMM, with the autograder's feedback."""
    from .grade import grade_lab, select
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
    outcomes = by_test(results, tests)
    print_table(rubric, outcomes)
    print(report(rubric, outcomes))
    raise typer.Exit(1 if any(r.get("score", 0) < r.get("max_score", 0)
                              for _, r in outcomes) else 0)


def by_test(results: dict, tests: list[Test]) -> list[tuple[Test, dict]]:
    """Each selected test with its entry of results.json, in the rubric's order."""
    entries = {str(r.get("name", "")).rsplit("[", 1)[-1].rstrip("]"): r
               for r in results.get("tests", [])}
    return [(t, entries.get(t.id, {"score": 0, "max_score": t.weight,
                                   "output": "(no result: the grader did not run it)"}))
            for t in tests]


def print_table(rubric: Rubric, outcomes: list[tuple[Test, dict]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    Console(stderr=False).print(escape(f"{rubric.title}: visible tests"))
    table = Table()
    for name, justify in (("", "left"), ("part (--part)", "left"), ("test (--test)", "left"),
                          ("score", "right"), ("examples · fingerprint", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    total = maximum = 0.0
    for t, r in outcomes:
        score, top = r.get("score", 0), r.get("max_score", 0)
        total, maximum = total + score, maximum + top
        style = "green" if score >= top else "red"
        table.add_row(rubric.parts[t.part][1], t.part, t.id,
                      f"[{style}]{score:g} / {top:g}[/{style}]", drawn(r))
    table.add_section()
    table.add_row("", "", "total", f"{total:g} / {maximum:g}", "")
    Console(stderr=False).print(table)


def report(rubric: Rubric, outcomes: list[tuple[Test, dict]]) -> str:
    """The stubs in one line, then a block per other failed test."""
    failed = [(t, r) for t, r in outcomes if r.get("score", 0) < r.get("max_score", 0)]
    stubs = [(t, r) for t, r in failed if r.get("output", "").startswith(NOT_WRITTEN)]
    blocks = []
    if stubs:
        parts = list(dict.fromkeys(_stub_part(r["output"]) for _, r in stubs))
        named = "\n".join(f"- {p}: `{FUNCTIONS.get(p, '?')}` in `{FILES.get(p, 'vmm/')}`"
                           for p in parts)
        blocks.append(f"\n==== Not written yet ({len(parts)} part{'s' * (len(parts) != 1)}:"
                      f" each still raises NotImplementedError)\n\n{named}\n\nThese tests "
                      "score 0 until they are written: " + ", ".join(t.id for t, _ in stubs)
                      + ".")
    for t, r in failed:
        if (t, r) in stubs:
            continue
        group = rubric.parts[t.part][1]
        blocks.append(f"\n==== test {t.id}: {r.get('score', 0):g} / {r.get('max_score', 0):g} "
                      f"({group}, part {t.part})\n\n"
                      + str(r.get("output", "")).strip())
    if not failed:
        blocks.append("\nEvery test run here passes.")
    return "\n".join(blocks) + "\n"


def _stub_part(output: str) -> str:
    rest = output[len(NOT_WRITTEN):]
    return rest.split("`")[1] if rest.count("`") >= 2 else "?"


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
