"""`vmlab batch`: a Gradescope export graded in parallel, its gradebook, report and resume.

Grading is restricted to two tests (trap-dispatch, reflect) to keep the suite fast; the bench
(`python bench/run.py batch`) grades a class of twenty with every test.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from batch_exports import export, write_submission, zipped
from buggy_vmms import BUGS
from vmlab.batch_export import discover
from vmlab.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
VMLAB = [sys.executable, "-m", "vmlab"]
TESTS = ["--test", "trap-dispatch", "--test", "reflect"]
BUG = next(b for b in BUGS if b.name == "user-ecall-treated-as-hypercall")  # fails dispatch


def vmlab(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([*VMLAB, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"vmlab {args} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def without_times(text: str) -> dict:
    results = json.loads(text)
    results.pop("execution_time", None)
    return results


def answers(out: Path) -> list[dict]:
    path = out / ".logs" / "answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ----- reading exports (no grading) -----------------------------------------------------------

def test_export_with_groups_duplicates_and_mismatches(tmp_path):
    root = export(tmp_path / "ex", [
        ("submission_1", [("Ada", "1", "ada@x.edu"), ("Bea", "2", "bea@x.edu")], "solution"),
        ("submission_2", [("Cy", "3", "cy@x.edu")], "handout"),
        ("submission_3", [("Di", "4", "di@x.edu")], "handout"),
        ("submission_4", [("Di again", "4", "di2@x.edu")], "handout"),
        ("submission_5", [("Ed", "5", "ed@x.edu")], "handout")])
    (root / "submission_6").mkdir()  # a folder the metadata does not list
    import shutil
    shutil.rmtree(root / "submission_5")  # listed, but missing
    found = discover(root, tmp_path / "scratch")
    assert found.source == "gradescope"
    assert [e.key for e in found.entries] == ["submission_1", "submission_2"]
    assert [s.sid for s in found.entries[0].submitters] == ["1", "2"]
    assert found.entries[0].submitters[1].email == "bea@x.edu"
    text = "\n".join(why for _, why in found.problems)
    assert "student 4" in text and "submission_3, submission_4" in text
    assert "submission_5" in text and "no such folder" in text
    assert "submission_6" in text and "does not list" in text


def test_export_metadata_with_ruby_tags_history_and_results(tmp_path):
    root = export(tmp_path / "ex", [("submission_7", [("Ada", "7", "a@x")], "handout")])
    (root / "submission_metadata.yml").write_text(
        "submission_7:\n"
        "  :submitters:\n  - :name: Ada\n    :sid: '7'\n    :email: a@x\n"
        "  :created_at: 2026-12-01 23:59:00.000000000 -08:00\n"
        "  :score: !ruby/object:BigDecimal 18:0.1E2\n"
        "  :results:\n    tests: []\n"
        "  :history:\n  - :id: 1\n    :score: !ruby/object:BigDecimal 18:0.0\n")
    found = discover(root, tmp_path / "scratch")
    assert [(e.key, e.submitters[0].sid) for e in found.entries] == [("submission_7", "7")]
    assert found.entries[0].created_at.startswith("2026-12-0") and not found.problems


def test_export_zip_skips_members_that_climb_out_or_are_too_large(tmp_path, monkeypatch):
    root = export(tmp_path / "ex", [("submission_1", [("Ada", "1", "a@x")], "solution")])
    z = zipped(root, tmp_path / "export.zip", {"../../evil.py": b"x = 1\n",
                                               "assignment_export/big.bin": b"0" * 5000})
    monkeypatch.setattr("vmlab.batch_export.MAX_MEMBER", 4096)
    found = discover(z, tmp_path / "scratch")
    assert [e.key for e in found.entries] == ["submission_1"]
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()
    problems = {where: why for where, why in found.problems}
    assert "climbs out" in problems["../../evil.py"] and str(z) in problems["../../evil.py"]
    assert "5000 bytes" in problems["assignment_export/big.bin"]


@pytest.mark.parametrize("case", ["no-metadata-zip", "bad-yaml", "one-submission", "not-zip"])
def test_inputs_that_are_not_a_batch_say_why(tmp_path, case):
    if case == "no-metadata-zip":
        src = tmp_path / "x.zip"
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("trap.py", "pass\n")
        expect = "not a Gradescope export"
    elif case == "bad-yaml":
        src = export(tmp_path / "ex", [("submission_1", [("A", "1", "a@x")], "handout")])
        (src / "submission_metadata.yml").write_text("submission_1:\n  :submitters: [\n")
        expect = "line"
    elif case == "one-submission":
        src = REPO / "handout"
        expect = "one submission"
    else:
        src = tmp_path / "x.zip"
        src.write_bytes(b"not a zip")
        expect = "neither a folder nor a zip"
    with pytest.raises(UsageError, match=expect) as e:
        discover(src, tmp_path / "scratch")
    assert str(src.name) in str(e.value)
    done = vmlab("batch", src, "--out", tmp_path / "out", "-q", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and expect in done.stderr


# ----- grading a small export -----------------------------------------------------------------

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A small export zip graded with --jobs 1 (one grading process: every memo is shared)."""
    tmp = tmp_path_factory.mktemp("batch")
    root = export(tmp / "ex", [
        ("submission_11", [("Ada Lovelace", "1001", "ada@x.edu"),
                           ("Grace Hopper", "1002", "grace@x.edu")], "solution"),
        ("submission_12", [("Bob Stub", "1003", "bob@x.edu")], "handout"),
        ("submission_13", [("Cy Buggy", "1004", "cy@x.edu")], BUG),
        ("submission_14", [("Dup One", "1005", "d1@x.edu")], "solution"),
        ("submission_15", [("Dup Two", "1005", "d2@x.edu")], "handout")])
    z = zipped(root, tmp / "export.zip", {"../escape.txt": b"no"})
    out = tmp / "out"
    done = vmlab("batch", z, "--out", out, "--jobs", "1", *TESTS)
    return root, out, done


def test_gradebook_has_a_row_per_submitter(graded):
    _, out, done = graded
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    by_sid = {r["SID"]: r for r in rows}
    assert sorted(by_sid) == ["1001", "1002", "1003", "1004"]  # 1005 is duplicated
    assert by_sid["1001"]["Total Score"] == by_sid["1002"]["Total Score"] == "7"
    assert by_sid["1001"]["trap-dispatch"] == "4" and by_sid["1001"]["reflect"] == "3"
    assert by_sid["1003"]["Total Score"] == "0"
    assert by_sid["1004"]["trap-dispatch"] == "0" and by_sid["1004"]["reflect"] == "3"
    assert by_sid["1002"]["Email"] == "grace@x.edu" and by_sid["1001"]["Max Points"] == "7"
    canvas = list(csv.DictReader((out / "canvas.csv").open()))
    assert {r["SIS User ID"]: r["vmlab"] for r in canvas}["1004"] == "3"
    problems = json.loads((out / "problems.json").read_text())["input"]
    assert any("1005" in p["why"] for p in problems)
    assert any(p["where"] == "../escape.txt" for p in problems)
    assert "1005" in done.stdout and "escape.txt" in done.stdout  # the terminal summary
    assert "trap-dispatch" in done.stdout


def test_results_equal_grading_each_alone(graded):
    """The memos (bare runs, replayed examples) change no verdict: every results.json is the
    one `vmlab grade` writes, byte for byte apart from the time it took."""
    root, out, _ = graded
    stats = [a["memo"] for a in answers(out)]
    assert sum(s["replayed"] for s in stats) > 0 and sum(s["fell_back"] for s in stats) > 0
    for key in ("submission_11", "submission_12", "submission_13"):
        alone = out.parent / f"{key}.json"
        vmlab("grade", root / key, "--out", alone, *TESTS)
        assert without_times((out / "students" / key / "results.json").read_text()) == \
            without_times(alone.read_text()), key
        assert (out / "students" / key / "feedback.md").read_text().startswith("# vmlab")


class Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tests: dict[str, tuple[int, int]] = {}
        self.students: list[str] = []
        self.links: list[str] = []
        self.svgs = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "test":
            self.tests[a["data-test"]] = (int(a["data-passed"]), int(a["data-total"]))
        if tag == "tr" and a.get("class") == "student":
            self.students.append(a["data-sid"])
        if tag == "a":
            self.links.append(a["href"])
        self.svgs += tag == "svg"
        for name in ("src", "href"):
            if (a.get(name) or "").startswith(("http:", "https:", "//")):
                self.external.append(a[name])
        if tag in ("script", "link", "img", "iframe"):
            self.external.append(tag)


def test_report_is_offline_html_with_pass_rates_and_links(graded):
    _, out, _ = graded
    report = Report()
    report.feed((out / "report.html").read_text())
    assert report.tests == {"trap-dispatch": (1, 3), "reflect": (2, 3)}
    assert sorted(report.students) == ["1001", "1002", "1003", "1004"]
    assert report.svgs >= 1 + len(report.tests) and not report.external
    assert report.links and all((out / link).is_file() for link in report.links)


def test_resume_grades_only_what_is_missing_and_only_regrades(graded):
    _, out, _ = graded
    z = out.parent / "export.zip"
    before = len(answers(out))
    (out / "students" / "submission_12" / "results.json").unlink()
    vmlab("batch", z, "--out", out, "--resume", "-q", *TESTS)
    new = answers(out)[before:]
    assert [a["key"] for a in new] == ["submission_12"]
    assert (out / "students" / "submission_12" / "results.json").is_file()
    vmlab("batch", z, "--out", out, "--only", "1004", "-q", *TESTS)
    assert [a["key"] for a in answers(out)[before + 1:]] == ["submission_13"]
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert len(rows) == 4  # the gradebook still has everyone


def test_folder_of_submissions_broken_zip_and_wall_time_cap(tmp_path):
    subs = tmp_path / "subs"
    good = write_submission(tmp_path / "good", "solution")
    subs.mkdir()
    with zipfile.ZipFile(subs / "alice.zip", "w") as z:
        for f in good.rglob("*.py"):
            z.write(f, f.relative_to(good))
    (subs / "broken.zip").write_bytes(b"PK\x03\x04 this zip was cut short")
    huge = write_submission(subs / "huge", "handout")
    (huge / "vmm" / "trap.py").write_bytes(b"#" * (2 << 20))
    out = tmp_path / "out"
    done = vmlab("batch", subs, "--out", out, "-q", "--test", "reflect")
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert rows["alice"]["Total Score"] == "3"
    assert "broken.zip" in rows["broken"]["Status"] and "broken.zip" in done.stdout
    assert "trap.py" in rows["huge"]["Status"] and "bytes" in rows["huge"]["Status"]
    # a grading that runs past the cap costs that submission its result, not the batch
    done = vmlab("batch", subs, "--out", out, "-q", "--test", "reflect", "--only", "alice",
                 "--timeout", "0.2")
    assert done.returncode == 0
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert "cap" in rows["alice"]["Status"] and rows["alice"]["Total Score"] == ""
    assert "cap" in (out / "students" / "alice" / "error.txt").read_text()


def test_ctrl_c_keeps_what_was_graded_and_resume_finishes(tmp_path):
    root = export(tmp_path / "ex", [(f"submission_{i}", [(f"S{i}", str(i), "")], "solution")
                                    for i in range(3)])
    out = tmp_path / "out"
    args = [*VMLAB, "batch", str(root), "--out", str(out), "--jobs", "1", "-q", "--test",
            "reflect"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("students/*/results.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err
    kept = sorted(p.parent.name for p in out.glob("students/*/results.json"))
    assert 1 <= len(kept) < 3
    pids = {a["pid"] for a in answers(out)}
    for pid in pids:  # the grading processes are gone
        assert not os.path.exists(f"/proc/{pid}") or \
            "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    subprocess.run([*args, "--resume"], cwd=REPO, check=True, capture_output=True)
    assert [a["key"] for a in answers(out)][len(kept):] == \
        [f"submission_{i}" for i in range(3) if f"submission_{i}" not in kept]
    assert len(list(out.glob("students/*/results.json"))) == 3


def test_dask_cluster_gives_the_results_of_a_local_batch(graded, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, local, _ = graded
    subs = export(tmp_path / "ex", [
        ("submission_11", [("Ada Lovelace", "1001", "ada@x.edu")], "solution"),
        ("submission_13", [("Cy Buggy", "1004", "cy@x.edu")], BUG)])
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        vmlab("batch", subs, "--out", out, "--scheduler", cluster.scheduler_address, "-q",
              *TESTS)
    for key in ("submission_11", "submission_13"):
        assert without_times((out / "students" / key / "results.json").read_text()) == \
            without_times((local / "students" / key / "results.json").read_text()), key
