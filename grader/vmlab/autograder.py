"""`vmlab build autograder`: the zip Gradescope takes (course staff only).

    setup.sh, run_autograder   Gradescope's two scripts (gradescope_files/)
    grader/vmlab/              the whole vmlab tool, its rubric with every test; the hidden
                               tests' seeds derived from the offering's secret (offering.py)
    grader/requirements.txt    the tool's pinned dependencies, as pyproject.toml pins them
    handout/                   the pristine handout, made afresh from solution/

Never the solution: the handout is made by the same generator as handout/ (its student parts
stubbed), and the grader holds no VMM. The zip's bytes depend only on the sources and the
secret (sorted entries, fixed dates), so the same secret rebuilds the same zip.
"""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

from . import handout as generator
from . import offering
from .errors import UsageError
from .labroot import REPO
from .rubric import load as load_rubric
from .rubric import split_tests

TOOL = Path(__file__).resolve().parent
SCRIPTS = TOOL / "gradescope_files"
DATE = (1980, 1, 1, 0, 0, 0)  # zip's epoch: the same sources give the same bytes
EXECUTABLE = ("setup.sh", "run_autograder")


def offering_rubric(text: str, secret: str) -> str:
    """The staff rubric's text with each hidden test's seed derived from `secret`, marked so."""
    head, blocks = split_tests(text)
    head = head.replace("[lab]\n", f'[lab]\nhidden_seeds = "{offering.OFFERING}"  # derived from '
                        "the offering's secret by `vmlab build autograder`\n", 1)
    out = [head]
    for test, block in blocks:
        if test["visibility"] != "visible":
            lines = [f"seed = {offering.seed_for(secret, test['id'])}"
                     if line.startswith("seed =") else line for line in block.split("\n")]
            block = "\n".join(lines)
        out.append(block)
    return "".join(out)


def requirements() -> str:
    """The grader's dependencies, exactly as the repository's pyproject.toml pins them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return "".join(f"{dep}\n" for dep in project["dependencies"])


def contents(solution: Path, secret: str) -> dict[str, bytes]:
    """Every file of the zip: path -> bytes."""
    files: dict[str, bytes] = {}
    for name in EXECUTABLE:
        files[name] = (SCRIPTS / name).read_bytes()
    for rel in generator.list_files(TOOL, list(generator.ALWAYS_IGNORED)):
        files[f"grader/vmlab/{rel}"] = (TOOL / rel).read_bytes()
    rubric = offering_rubric((TOOL / "rubric.toml").read_text(), secret)
    files["grader/vmlab/rubric.toml"] = rubric.encode()
    files["grader/requirements.txt"] = requirements().encode()
    for rel, data in generator.generate(solution).items():
        files[f"handout/{rel}"] = data
    return files


def write_zip(files: dict[str, bytes], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in sorted(files):
            info = zipfile.ZipInfo(rel, DATE)
            info.external_attr = (0o755 if rel in EXECUTABLE or rel.endswith("/run_autograder")
                                  else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[rel])
    tmp.replace(out)


def build(solution: Path, out: Path, secret: str | None) -> dict[str, bytes]:
    """Write the autograder zip to `out`; its files. A clear error without a secret."""
    if secret is None:
        raise UsageError(f"`vmlab build autograder` needs the course offering's secret, from "
                         f"which it derives the hidden tests' seeds: give --secret PASSPHRASE or "
                         f"set {offering.ENV}. Keep it for the whole offering and out of the "
                         "repository: the same secret gives the same seeds (so reruns and "
                         "`vmlab grade --secret` give Gradescope's scores), and without it "
                         "nobody can know them.")
    files = contents(solution, secret)
    # the rubric must load as the autograder will load it
    probe = out.with_name(out.name + ".rubric.toml")
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(files["grader/vmlab/rubric.toml"])
        load_rubric(probe)
    finally:
        probe.unlink(missing_ok=True)
    write_zip(files, out)
    return files
