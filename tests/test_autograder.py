"""Gradescope's autograder and the student's submission: `vmlab build autograder` makes a zip
that grades, in a folder laid out as Gradescope's /autograder, exactly as `vmlab grade` does;
the hidden tests (ids, seeds, examples) stay out of the handout and their seeds come from the
offering's secret; `vmlab submit` packs exactly the editable files; local grading never takes a
student's working files in place of missing ones; one Python floor and one hypothesis pin."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vmlab import offering
from vmlab.cli import app
from vmlab.grade import grade_lab
from vmlab.gradescope import validate_results
from vmlab.handout import STAFF_ONLY
from vmlab.rubric import load as load_rubric
from vmlab.submission import assemble

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solution"
HANDOUT = REPO / "handout"
RUBRIC = load_rubric()
SECRET = "correct horse battery staple"
HIDDEN = [t for t in RUBRIC.tests if not t.visible]
# what the layout test grades of a complete submission: tests of two parts in two files, one
# hidden (a few seconds); the untouched handout runs every test (each stops at once)
SOME = ["hypercall", "bounded-buffer", "bounded-buffer-hidden"]
RUBRIC_TOP = {t.id: t.weight for t in RUBRIC.tests}


def without_times(results: dict) -> dict:
    results = json.loads(json.dumps(results))
    results.pop("execution_time", None)
    for t in results["tests"]:
        t.pop("execution_time", None)
    return results


def scores(results: dict) -> dict[str, tuple[float, float]]:
    return {t["name"].rsplit("[", 1)[-1].rstrip("]"): (t["score"], t["max_score"])
            for t in results["tests"]}


def run_vmlab(args: list[str], cwd: Path, pythonpath: Path | None = None,
              **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "VMLAB_SECRET"} | env
    if pythonpath is not None:
        environ["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "vmlab", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "autograder.zip"
    result = CliRunner().invoke(app, ["build", "autograder", "--secret", SECRET, "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def finished_handout(tmp_path_factory) -> Path:
    """A student's handout with every part done: the handout, the solution's VMM files."""
    lab = tmp_path_factory.mktemp("student") / "handout"
    shutil.copytree(HANDOUT, lab, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    for rel in RUBRIC.editable:
        shutil.copy(SOLUTION / rel, lab / rel)
    return lab


# ----- hidden seeds from the offering's secret -------------------------------------------------

def test_hidden_seeds_are_derived_from_the_secret_and_only_theirs():
    derived = offering.apply(RUBRIC, SECRET)
    again = offering.apply(RUBRIC, SECRET)
    other = offering.apply(RUBRIC, SECRET + "!")
    for before, now, same, changed in zip(RUBRIC.tests, derived.tests, again.tests, other.tests,
                                          strict=True):
        assert now.seed == same.seed
        if before.visible:
            assert now.seed == before.seed == changed.seed
        else:
            assert now.seed == offering.seed_for(SECRET, before.id) != changed.seed
            assert now.seed != before.seed
    assert len({t.seed for t in derived.tests if not t.visible}) == len(HIDDEN)
    assert derived.hidden_seeds == "offering" and RUBRIC.hidden_seeds == "development"


def test_building_the_autograder_without_a_secret_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.delenv("VMLAB_SECRET", raising=False)
    out = tmp_path / "ag.zip"
    result = CliRunner().invoke(app, ["build", "autograder", "--out", str(out)])
    assert result.exit_code == 2
    assert "--secret" in result.output and "VMLAB_SECRET" in result.output
    assert "Traceback" not in result.output and not out.exists()
    monkeypatch.setenv("VMLAB_SECRET", SECRET)
    result = CliRunner().invoke(app, ["build", "autograder", "--out", str(out)])
    assert result.exit_code == 0, result.output
    first = out.read_bytes()
    result = CliRunner().invoke(app, ["build", "autograder", "--out", str(out)])
    assert out.read_bytes() == first  # the same secret builds the same zip


def test_grading_without_a_secret_says_it_used_the_development_seeds(tmp_path):
    args = ["grade", str(HANDOUT), "--test", "reflect-hidden", "--out", str(tmp_path / "r.json")]
    done = run_vmlab(args, tmp_path)
    assert done.returncode == 0, done.stderr
    note = "hidden tests ran on their development seeds"
    assert note in done.stderr and note in json.loads((tmp_path / "r.json").read_text())["output"]
    done = run_vmlab(args, tmp_path, VMLAB_SECRET=SECRET)
    assert done.returncode == 0, done.stderr
    assert note not in done.stderr + (tmp_path / "r.json").read_text()


# ----- the handout holds no hidden test -----------------------------------------------------------

def test_the_handout_holds_no_hidden_test_and_no_staff_module():
    texts = {p: p.read_text(errors="replace") for p in HANDOUT.rglob("*")
             if p.is_file() and ".venv" not in p.parts and "__pycache__" not in p.parts}
    for test in HIDDEN:
        named = [str(p) for p, text in texts.items() if re.search(rf"\b{test.id}\b", text)]
        assert not named, f"{test.id} appears in {named}"
        for seed in (test.seed, offering.seed_for(SECRET, test.id)):
            seeded = [str(p) for p, text in texts.items()
                      if re.search(rf"^\s*seed\s*=\s*{seed}\b", text, re.M)]
            assert not seeded, f"the seed of {test.id} appears in {seeded}"
    shipped = load_rubric(HANDOUT / "tools/vmlab/rubric.toml")
    assert [t.id for t in shipped.tests] == [t.id for t in RUBRIC.tests if t.visible]
    assert all(t.visible for t in shipped.tests)
    tool = {p.name for p in (HANDOUT / "tools/vmlab").iterdir()}
    from fnmatch import fnmatch
    assert not [n for n in tool if any(fnmatch(n, pattern) for pattern in STAFF_ONLY)]
    assert {"autograder.py", "offering.py", "batch.py", "batch_*.py", "report.py",
            "mutants.py"} <= set(STAFF_ONLY)


def test_the_handout_offers_the_students_verbs_only(tmp_path):
    done = run_vmlab(["--help"], HANDOUT, pythonpath=HANDOUT / "tools")
    verbs = set(re.findall(r"^│ (\w+) ", done.stdout, re.M))
    assert verbs == {"run", "asm", "disasm", "check", "replay", "submit"}, done.stdout
    done = run_vmlab(["grade", "."], HANDOUT, pythonpath=HANDOUT / "tools")
    assert done.returncode == 2 and "No such command 'grade'" in done.stderr


def test_check_says_a_hidden_test_runs_only_on_the_autograder():
    done = run_vmlab(["check", "--test", "reflect-hidden"], HANDOUT,
                     pythonpath=HANDOUT / "tools")
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "hidden tests run only on the autograder" in message
    assert "500 examples" in message and "other seeds" in message
    assert "vmlab check --test reflect`" in message and "Traceback" not in message


# ----- the autograder zip ---------------------------------------------------------------------

def body_text(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """A function's body below its docstring, whitespace collapsed."""
    lines = source.splitlines()[node.body[0].end_lineno:node.end_lineno]
    return " ".join(" ".join(lines).split())


def solution_bodies() -> dict[str, str]:
    from test_handout import marked, marked_files
    out = {}
    for rel in marked_files():
        source = (SOLUTION / rel).read_text()
        for part, name, node in marked(rel):
            out[f"{rel}:{name} ({part})"] = body_text(source, node)
    return out


def test_the_zip_holds_the_grader_the_handout_and_no_solution(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as z:
        names = z.namelist()
        files = {n: z.read(n).decode(errors="replace") for n in names}
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    assert {"setup.sh", "run_autograder", "grader/requirements.txt",
            "grader/vmlab/rubric.toml", "grader/vmlab/autograder.py",
            "handout/vmm/trap.py", "handout/tools/pristine/vmm/trap.py"} <= set(names)
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert files["handout/vmm/trap.py"] == (HANDOUT / "vmm/trap.py").read_text()
    rubric = tomllib.loads(files["grader/vmlab/rubric.toml"])
    assert rubric["lab"]["hidden_seeds"] == "offering"
    seeds = {t["id"]: t["seed"] for t in rubric["tests"]}
    assert {t.id: seeds[t.id] for t in HIDDEN} == {t.id: offering.seed_for(SECRET, t.id)
                                                  for t in HIDDEN}
    bodies = solution_bodies()
    assert len(bodies) >= 11
    flat = {n: " ".join(text.split()) for n, text in files.items()}
    for where, body in bodies.items():
        assert len(body) > 20, where
        leaked = [n for n, text in flat.items() if body in text]
        assert not leaked, f"the solution's {where} is in {leaked}"
    assert not any(n.startswith(("solution/", "tests/")) for n in names)


def test_setup_sh_is_bash_and_installs_the_pinned_requirements(autograder_zip, tmp_path):
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as z:
        z.extractall(root / "source")
    setup = root / "source" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(setup)]).returncode == 0
    assert "bubblewrap" in setup.read_text() and "python3.11" in setup.read_text()
    # the pip step, against this venv, offline: the zip's pins must be what is installed here
    done = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "VMLAB_AUTOGRADER_ROOT": str(root),
                               "VMLAB_SYSTEM_PACKAGES": "no", "VMLAB_PYTHON": sys.executable,
                               "VMLAB_VENV": sys.prefix,
                               "VMLAB_PIP_OPTIONS": "--dry-run --no-index"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "vmlab will run on Python 3." in done.stdout


def submissions(tmp: Path, finished: Path) -> dict[str, Path]:
    """Uploads as students make them, each a folder that becomes /autograder/submission."""
    out = {name: tmp / name for name in ("solution", "handout", "syntax", "nested", "empty")}
    for folder in out.values():
        folder.mkdir(parents=True)
    done = run_vmlab(["submit", "--out", str(tmp / "submission.zip")], finished,
                     pythonpath=finished / "tools")
    assert done.returncode == 0, done.stderr
    shutil.copy(tmp / "submission.zip", out["solution"])  # Gradescope keeps a zip as it is
    for rel in RUBRIC.editable:  # the untouched handout, uploaded as loose files
        shutil.copy(HANDOUT / rel, out["handout"])
        shutil.copy(SOLUTION / rel, out["syntax"])
    (out["syntax"] / "channels.py").write_text("def put(self, item:\n")
    (out["nested"] / "mine").mkdir()
    with zipfile.ZipFile(out["nested"] / "mine" / "outer.zip", "w") as z:
        z.write(tmp / "submission.zip", "inner/submission.zip")
    return out


def test_run_autograder_grades_every_upload_as_vmlab_grade_does(autograder_zip, finished_handout,
                                                                tmp_path):
    """Each upload in a fresh /autograder (so hypothesis has no cache there, as in each
    Gradescope container), graded by the zip's own grader; the finished handout's
    submission.zip exactly as `vmlab grade --secret` grades it here, fingerprints included."""
    source = tmp_path / "autograder" / "source"
    with zipfile.ZipFile(autograder_zip) as z:
        z.extractall(source)
    (source / "run_autograder").chmod(0o755)
    uploads = submissions(tmp_path / "uploads", finished_handout)
    rubric = offering.apply(RUBRIC, SECRET)
    expected = {"solution": {t: RUBRIC_TOP[t] for t in SOME}, "nested": None,
                "handout": {t.id: 0 for t in RUBRIC.tests},
                "syntax": {t: 0 for t in SOME},  # vmm/ imports channels.py: nothing runs
                "empty": {t: 0 for t in SOME}}
    expected["nested"] = expected["solution"]
    for name, upload in uploads.items():
        root = tmp_path / name
        shutil.copytree(source, root / "source", symlinks=True)
        shutil.copytree(upload, root / "submission")
        only = "" if name == "handout" else " ".join(SOME)
        done = subprocess.run([str(root / "source" / "run_autograder")], cwd=root,
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "VMLAB_AUTOGRADER_ROOT": str(root),
                                   "VMLAB_PYTHON": sys.executable, "VMLAB_SECRET": "wrong",
                                   "VMLAB_AUTOGRADER_TESTS": only})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "hidden" not in done.stdout  # what students could see of the run
        results = json.loads((root / "results" / "results.json").read_text())
        validate_results(results)
        got = {k: v[0] for k, v in scores(results).items()}
        assert got == expected[name], (name, got, results.get("output"))
        if name == "solution":  # exactly `vmlab grade --secret`'s results, examples and all
            lab, _, _ = assemble(upload, HANDOUT, RUBRIC.editable, into=tmp_path / f"{name}-lab")
            tests = [t for t in rubric.tests if t.id in SOME]
            mine = grade_lab(lab, rubric, tests, tmp_path / f"{name}-mine.json")
            assert without_times(mine)["tests"] == without_times(results)["tests"]
        if name == "syntax":
            assert "vmm/channels.py, line 1" in results["output"]
        if name == "empty":
            assert all(f"`{rel}`" in results["output"] for rel in RUBRIC.editable)


# ----- the student's submission ---------------------------------------------------------------

def test_submit_packs_exactly_the_editable_files(finished_handout, tmp_path):
    out = tmp_path / "s.zip"
    done = run_vmlab(["submit", "--out", str(out)], finished_handout,
                     pythonpath=finished_handout / "tools")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == sorted(RUBRIC.editable)
        for rel in RUBRIC.editable:
            assert z.read(rel) == (SOLUTION / rel).read_bytes()
    for rel in RUBRIC.editable:
        assert rel in done.stdout
    assert "Upload" in done.stdout and "Gradescope" in done.stdout
    assert "Still stubbed" not in done.stdout


@pytest.mark.parametrize("rel, text, words", [
    ("vmm/nested.py", "def map(:\n", ["vmm/nested.py", "line 1", "does not parse"]),
    ("vmm/shadow.py", "import not_a_module_anywhere\n",
     ["vmm/shadow.py", "does not import", "not_a_module_anywhere"]),
    ("vmm/channels.py", None, ["vmm/channels.py", "missing"]),
])
def test_submit_refuses_a_file_that_is_missing_or_broken(tmp_path, rel, text, words):
    lab = tmp_path / "handout"
    shutil.copytree(HANDOUT, lab, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    if text is None:
        (lab / rel).unlink()
    else:
        (lab / rel).write_text(text)
    done = run_vmlab(["submit"], lab, pythonpath=lab / "tools")
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert all(w in message for w in words), message
    assert "Traceback" not in message and not (lab / "submission.zip").exists()


def test_the_untouched_handout_submits_and_lists_its_stubs(tmp_path):
    lab = tmp_path / "handout"
    shutil.copytree(HANDOUT, lab, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    done = run_vmlab(["submit"], lab, pythonpath=lab / "tools")
    assert done.returncode == 0, done.stderr
    assert "Still stubbed in vmm/nested.py: nested-map" in done.stdout


def test_local_grading_takes_the_stubs_for_missing_files_not_the_working_ones(tmp_path,
                                                                             finished_handout):
    """`vmlab grade upload --handout .` in a student's finished folder: what the upload lacks is
    the handout's stub, not the student's working file (an empty upload once scored 6/6)."""
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("README.txt", "nothing here")
    lab, taken, missing = assemble(empty, finished_handout, RUBRIC.editable,
                                   into=tmp_path / "lab")
    assert not taken and missing == list(RUBRIC.editable)
    for rel in RUBRIC.editable:
        assert (lab / rel).read_bytes() == (HANDOUT / rel).read_bytes(), rel
    results = grade_lab(lab, RUBRIC, [t for t in RUBRIC.tests if t.id == "reflect"],
                        tmp_path / "results.json")
    assert scores(results)["reflect"] == (0, 3)


# ----- the examples' fingerprint -----------------------------------------------------------------

def test_each_test_reports_the_fingerprint_of_the_examples_it_drew(tmp_path):
    import dataclasses
    test = next(t for t in RUBRIC.tests if t.id == "bounded-buffer")
    lab, _, _ = assemble(SOLUTION, HANDOUT, RUBRIC.editable, into=tmp_path / "lab")
    runs = []
    for seed in (test.seed, test.seed, test.seed + 1):
        runs.append(grade_lab(lab, RUBRIC, [dataclasses.replace(test, seed=seed, examples=30)],
                              tmp_path / "r.json")["tests"][0])
    prints = [r["extra_data"]["fingerprint"] for r in runs]
    assert re.fullmatch(r"[0-9a-f]{8}", prints[0])
    assert prints[0] == prints[1] != prints[2]
    assert runs[0]["extra_data"]["examples"] == 30
    assert f"`{prints[0]}`" in runs[0]["output"] and f"seed {test.seed}" in runs[0]["output"]


# ----- one Python, one hypothesis ---------------------------------------------------------------

def test_one_python_floor_and_one_hypothesis_everywhere(autograder_zip):
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    tool = tomllib.loads((HANDOUT / "tools/pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(autograder_zip) as z:
        requirements = z.read("grader/requirements.txt").decode().split()
    assert root["requires-python"] == tool["requires-python"] == ">=3.11"
    pins = [[d for d in deps if d.startswith("hypothesis")]
            for deps in (root["dependencies"], tool["dependencies"], requirements)]
    assert pins[0] == pins[1] == pins[2] and len(pins[0]) == 1 and "==" in pins[0][0]
    assert ";" not in pins[0][0]
    for deps in (root["dependencies"], tool["dependencies"], requirements):
        assert not [d for d in deps if d.startswith("tomli")]
    import hypothesis
    assert pins[0][0] == f"hypothesis=={hypothesis.__version__}"


def test_lab_md_says_how_each_parts_points_split():
    text = (SOLUTION / "LAB.md").read_text()
    assert "## 7. Submitting" in text and "make submit" in text
    rows = re.findall(r"^\| ([a-z-]+) \| [^|]* \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
    table = {part: (int(v), int(h), int(total)) for part, v, h, total in rows}
    assert set(table) == set(RUBRIC.parts)
    for part in RUBRIC.parts:
        visible = sum(t.weight for t in RUBRIC.tests if t.part == part and t.visible)
        hidden = sum(t.weight for t in RUBRIC.tests if t.part == part and not t.visible)
        assert table[part] == (visible, hidden, visible + hidden), part


def test_the_fingerprint_is_the_same_whatever_the_hash_seed():
    """A whole-guest example holds a frozenset of strings, whose repr changes with the
    process's hash seed; the fingerprint must not (Gradescope, a student and a TA each run
    their own process)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from vmlab.suite import canonical;"
              "x = {'features': frozenset(f'f{i}' for i in range(20)), 'n': (1, [2, b'3'])};"
              "print(canonical(x)); print(repr(x))")
    runs = [subprocess.run([sys.executable, "-c", script, str(REPO / "grader")],
                           capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.splitlines()
            for seed in ("1", "2")]
    assert runs[0][1] != runs[1][1]  # repr alone would differ
    assert runs[0][0] == runs[1][0]
