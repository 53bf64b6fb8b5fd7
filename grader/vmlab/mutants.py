"""`vmlab mutants` (course staff): how much of the solution the tests really check.

Each mutant is the solution with one small change inside one student part, made by a mutation
operator on its syntax tree: a comparison turned around, a constant off by one, a condition
negated, a statement dropped, two arguments swapped, an arithmetic or boolean operator swapped.
(mutmut and cosmic-ray rewrite and test a whole package in place; a mutant here must go through
the grader's own path instead: a submission folder laid over the pristine handout and graded by
grade.py's `grade_lab`, its code running in the sandboxed worker.) Each mutant is graded with
its part's tests, visible and hidden (and, with --whole, the whole-guest tests): it is killed
when it loses a point. A survivor is run on the lab's guests (solution/guests/*.S) under the
mutant VMM, shadow and nested, in a separate process: one that runs each exactly as the bare
machine does, and the microkernel pair (fileserver.S and client.S over IPC) exactly as the
solution does, is likely an equivalent mutant (the guests cannot tell); the others are gaps in
the tests. "Likely": the guests reach less than the tests do, so each survivor still needs a
look before a test is changed for it.

This module is staff-only: the handout leaves it out.

    vmlab mutants --part nested-map
    vmlab mutants --part shadow-flush --limit 10 --jobs 2   # 10 of the part's, spread evenly
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import multiprocessing
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import typer

from .errors import fail
from .rubric import Rubric
from .rubric import load as load_rubric

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "# BEGIN STUDENT PART ", "# END STUDENT PART"

# ----- the operators ------------------------------------------------------------------------

COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                 ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                 ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
               ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.Mult: ast.FloorDiv,
               ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}


@dataclass(frozen=True)
class Mutant:
    part: str
    file: str  # relative to the lab, e.g. vmm/nested.py
    line: int
    operator: str
    text: str  # the mutated file

    def diff(self, original: str) -> str:
        return "".join(difflib.unified_diff(original.splitlines(True), self.text.splitlines(True),
                                            f"a/{self.file}", f"b/{self.file}", n=1))


def part_ranges(text: str) -> list[tuple[str, int, int]]:
    """(part, first line, last line) of each student part of a file, 1-based, markers out."""
    out, part, start = [], None, 0
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith(BEGIN):
            part, start = s[len(BEGIN):], i + 1
        elif s == END and part is not None:
            out.append((part, start, i - 1))
            part = None
    return out


def _replace(text: str, node: ast.AST, new: str) -> str:
    """`text` with the source of `node` replaced by `new` (the rest left as it is)."""
    lines = text.splitlines(True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(line: int, col: int) -> int:  # ast columns count UTF-8 bytes
        return offsets[line - 1] + len(lines[line - 1].encode()[:col].decode())

    a = at(node.lineno, node.col_offset)  # type: ignore[attr-defined]
    b = at(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return text[:a] + new + text[b:]


def _mutations(node: ast.AST) -> Iterator[tuple[str, ast.AST, str]]:
    """(operator, the node to replace, its replacement source) for one node."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAPS:
                m = copy.deepcopy(node)
                m.ops[i] = COMPARE_SWAPS[type(op)]()
                yield "compare", node, ast.unparse(m)
    elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
        m = copy.deepcopy(node)
        m.op = BINOP_SWAPS[type(node.op)]()
        yield "arithmetic", node, ast.unparse(m)
    elif isinstance(node, ast.BoolOp):
        m = copy.deepcopy(node)
        m.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "boolean", node, ast.unparse(m)
    elif (isinstance(node, ast.Constant) and type(node.value) is int):
        for delta in (1, -1):
            yield "off-by-one", node, repr(node.value + delta)
    elif isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
            isinstance(a, ast.Starred) for a in node.args[:2]):
        m = copy.deepcopy(node)
        m.args[0], m.args[1] = m.args[1], m.args[0]
        if ast.dump(m) != ast.dump(node):
            yield "swapped-arguments", node, ast.unparse(m)
    if isinstance(node, (ast.If, ast.While, ast.IfExp)):
        yield "negated-condition", node.test, f"not ({ast.unparse(node.test)})"
    if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return)) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # docstrings
        yield "dropped-statement", node, "pass"


def annotations(tree: ast.AST) -> set[int]:
    """The ids of every node inside a type annotation: under `from __future__ import
    annotations` none is ever evaluated, so a mutant of one is equivalent by construction."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots.append(node.returns)
    return {id(n) for root in roots if root is not None for n in ast.walk(root)}


def mutants_of(text: str, file: str, parts: set[str] | None = None) -> list[Mutant]:
    """Every mutant of `file`'s student parts (of `parts`, if given), in source order."""
    tree = ast.parse(text)
    out = []
    hints = annotations(tree)
    for part, first, last in part_ranges(text):
        if parts and part not in parts:
            continue
        for node in ast.walk(tree):
            if not hasattr(node, "lineno") or not first <= node.lineno <= last \
                    or node.end_lineno > last or id(node) in hints:  # type: ignore[attr-defined]
                continue
            for operator, target, new in _mutations(node):
                mutated = _replace(text, target, new)
                try:
                    ast.parse(mutated)
                except SyntaxError:
                    continue
                if mutated != text:
                    out.append(Mutant(part, file, target.lineno, operator, mutated))
    out.sort(key=lambda m: (m.file, m.line, m.operator))
    return list({m.text: m for m in out}.values())  # two operators may make the same mutant


# ----- grading a mutant -----------------------------------------------------------------------

@dataclass
class Verdict:
    mutant: Mutant
    visible_kill: bool = False
    any_kill: bool = False
    killed_by: list[str] = field(default_factory=list)
    equivalent: bool | None = None  # for survivors: the guests ran as on the bare machine
    guests: str = ""


def _submission(root: Path, solution: Path, rubric: Rubric, m: Mutant) -> Path:
    for name in rubric.editable:
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(m.text if name == m.file else (solution / name).read_text())
    return root


def grade_mutant(m: Mutant, rubric: Rubric, solution: Path, handout: Path,
                 whole: bool) -> Verdict:
    from .grade import grade_lab
    from .submission import assemble
    tests = [t for t in rubric.tests if t.part == m.part or whole and t.part == "whole-guests"]
    verdict = Verdict(m)
    with tempfile.TemporaryDirectory(prefix="vmlab-mutant-") as tmp:
        sub = _submission(Path(tmp) / "submission", solution, rubric, m)
        lab, _, _ = assemble(sub, handout, rubric.editable, into=Path(tmp) / "lab")
        results = grade_lab(lab, rubric, tests, Path(tmp) / "results.json")
        by_name = {t.id: t for t in tests}
        for r in results["tests"]:
            test_id = r["name"].rsplit("[", 1)[-1].rstrip("]")
            if r["score"] < r["max_score"]:
                verdict.killed_by.append(test_id)
                verdict.any_kill = True
                verdict.visible_kill |= by_name[test_id].visible
        if not verdict.any_kill:
            verdict.equivalent, verdict.guests = run_guests(lab, solution / "guests",
                                                            solution)
    return verdict


GUESTS_SCRIPT = r"""
import json, sys
from machine import Machine
from machine.loader import load_program
from vmm import VMM
guests, out = sys.argv[1], {}
def bare(path):
    m = Machine(ram_size=32 << 20); m.load(load_program(path)); stop = m.run(2_000_000)
    return [[m.console.hex(), stop.reason, m.hart.instret]]
def under(paths, paging):
    vmm = VMM(); gs = [vmm.create_guest(load_program(p), paging=paging) for p in paths]
    if len(gs) == 2: vmm.connect(gs[1], gs[0]); vmm.connect(gs[0], gs[1])
    for _ in range(400):
        stop = vmm.run(5_000)
        if stop.reason != "budget": break
    return [[bytes(g.console).hex(), g.stop.reason if g.stop else "running", g.vcpu.instret]
            for g in gs]
for names in (["hello.S"], ["user.S"], ["kernel.S"], ["fileserver.S", "client.S"]):
    paths, key = [f"{guests}/{n}" for n in names], "+".join(names)
    if len(names) == 1:
        out[f"{key} (bare)"] = bare(paths[0])
    for paging in ("shadow", "nested"):
        try:
            out[f"{key} ({paging})"] = under(paths, paging)
        except Exception as e:
            out[f"{key} ({paging})"] = repr(e)
print(json.dumps(out))
"""


def _guest_runs(lab: Path, guests: Path) -> dict:
    """The lab's guests run bare and under the VMM of `lab`, in a process of their own (the
    mutant's code never runs in the grader's): console, stop reason and instret per guest."""
    try:
        done = subprocess.run([sys.executable, "-c", GUESTS_SCRIPT, str(guests)], cwd=lab,
                              capture_output=True, text=True, timeout=600,
                              env={"PYTHONPATH": str(lab), "PATH": "/usr/bin:/bin"})
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        return {"(all)": done.stderr.strip().splitlines()[-1:]}
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return {"(all)": type(e).__name__}


@cache
def reference_runs(solution: Path) -> dict:
    """The solution's runs: what the microkernel pair must do (on the bare machine the client
    runs alone and says so, so the pair is compared with the solution instead)."""
    return _guest_runs(solution, solution / "guests")


def run_guests(lab: Path, guests: Path, solution: Path = REPO / "solution") -> tuple[bool, str]:
    """Whether the VMM of `lab` runs each lab guest as the bare machine does, and the
    microkernel pair as the solution does: (all the same, what differed)."""
    got, reference = _guest_runs(lab, guests), reference_runs(solution)
    diffs = {}
    for key, value in got.items():
        name, _, how = key.rpartition(" (")
        want = got.get(f"{name} (bare)") if "+" not in name else reference.get(key)
        if how != "bare)" and value != want:
            diffs[key] = "differs from the " + ("solution" if "+" in name else "bare machine")
    if "(all)" in got:
        diffs["(all)"] = str(got["(all)"])
    return not diffs, "; ".join(f"{k}: {v}" for k, v in diffs.items())


# ----- the command ----------------------------------------------------------------------------

def collect(solution: Path, rubric: Rubric, parts: list[str], limit: int = 0) -> list[Mutant]:
    """The mutants of `parts` (all parts if none), at most `limit` of each part (0: all)."""
    out = []
    for name in rubric.editable:
        out += mutants_of((solution / name).read_text(), name, set(parts) or None)
    return sample(out, limit) if limit else out


def sample(found: list[Mutant], limit: int) -> list[Mutant]:
    """At most `limit` mutants of each part, spread evenly over its source (the first
    `limit` would all be made of its first lines)."""
    by_part: dict[str, list[Mutant]] = {}
    for m in found:
        by_part.setdefault(m.part, []).append(m)
    return [ms[i * len(ms) // limit] if len(ms) > limit else ms[i]
            for ms in by_part.values() for i in range(min(limit, len(ms)))]


def table(verdicts: list[Verdict]) -> list[str]:
    """A row per part: mutants, killed by the visible tests and by all, survivors likely
    equivalent and not."""
    rows = [f"  {'part':15} {'mutants':>7} {'visible':>7} {'all':>5} {'equiv':>5} "
            f"{'not-eq':>6}"]
    by_part: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_part.setdefault(v.mutant.part, []).append(v)
    for part, vs in by_part.items():
        survivors = [v for v in vs if not v.any_kill]
        eq = sum(bool(v.equivalent) for v in survivors)
        rows.append(f"  {part:15} {len(vs):7} {sum(v.visible_kill for v in vs):7} "
                    f"{sum(v.any_kill for v in vs):5} {eq:5} {len(survivors) - eq:6}")
    return rows


def report(verdicts: list[Verdict], solution: Path) -> str:
    n = len(verdicts)
    killed = [v for v in verdicts if v.any_kill]
    visible = [v for v in verdicts if v.visible_kill]
    survivors = [v for v in verdicts if not v.any_kill]
    equivalent = [v for v in survivors if v.equivalent]
    scored = n - len(equivalent)
    lines = [f"{n} mutants: {len(killed)} killed by all tests, {len(visible)} by the visible "
             f"ones; {len(survivors)} survived, {len(equivalent)} of them likely equivalent "
             "(the lab's guests run as on the bare machine)",
             f"mutation score (killed / non-equivalent): {len(killed)}/{scored} = "
             f"{len(killed) / max(1, scored):.0%}",
             f"visible tests kill {len(visible)} of the {len(killed)} that all tests kill "
             f"({len(visible) / max(1, len(killed)):.0%}; the target is 90%)"]
    lines += table(verdicts)
    for v in survivors:
        m = v.mutant
        kind = "likely equivalent" if v.equivalent else f"NOT equivalent ({v.guests})"
        lines += ["", f"survivor: {m.file}:{m.line} {m.operator} ({m.part}), {kind}",
                  m.diff((solution / m.file).read_text()).rstrip()]
    escaped = [v for v in killed if not v.visible_kill]
    for v in escaped:
        m = v.mutant
        lines += ["", f"killed only by hidden tests: {m.file}:{m.line} {m.operator} "
                  f"({m.part}), by {', '.join(v.killed_by)}",
                  m.diff((solution / m.file).read_text()).rstrip()]
    return "\n".join(lines)


def mutants(
    part: list[str] = typer.Option([], "--part", help="only this student part (repeatable)"),
    limit: int = typer.Option(0, "--limit", help="at most this many mutants of each part, "
                              "spread evenly (0: all)"),
    jobs: int = typer.Option(1, "--jobs", help="mutants graded at once"),
    whole: bool = typer.Option(False, "--whole", help="the whole-guest tests too (slow)"),
    out: Path = typer.Option(None, "--out", help="write the verdicts as JSON here"),
    solution: Path = typer.Option(REPO / "solution", "--solution", help="the solution"),
    handout: Path = typer.Option(REPO / "handout", "--handout", help="the pristine handout"),
) -> None:
    """Mutation testing of the tests (course staff): mutants of the solution's student parts,
    graded through the normal path; the score, and every survivor with its diff."""
    rubric = load_rubric()
    for p in part:
        if p not in rubric.parts or p == "whole-guests":
            raise fail(f"--part {p!r}: no such student part; the parts are "
                       f"{', '.join(x for x in rubric.parts if x != 'whole-guests')}.")
    if not (solution / "vmm").is_dir():
        raise fail(f"--solution {solution}: no vmm/ folder; mutants are made of the solution")
    found = collect(solution, rubric, part, limit)
    reference_runs(solution)  # once, before the pool forks: every survivor is compared with it
    typer.echo(f"vmlab: grading {len(found)} mutants", err=True)

    # a process each: the grader's state (hypothesis, the imported machine) is per process
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context) as pool:
        futures = [pool.submit(grade_mutant, m, rubric, solution, handout, whole)
                   for m in found]
        verdicts = []
        for f in futures:
            v = f.result()
            m = v.mutant
            typer.echo(f"vmlab: {m.file}:{m.line} {m.operator}: "
                       f"{'killed' if v.any_kill else 'SURVIVED'}", err=True)
            verdicts.append(v)
    typer.echo(report(verdicts, solution))
    if out is not None:
        out.write_text(json.dumps([{
            "file": v.mutant.file, "line": v.mutant.line, "part": v.mutant.part,
            "operator": v.mutant.operator, "killed_by": v.killed_by,
            "visible_kill": v.visible_kill, "equivalent": v.equivalent,
            "diff": v.mutant.diff((solution / v.mutant.file).read_text())} for v in verdicts],
            indent=1))
