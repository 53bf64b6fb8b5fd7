"""`vmlab batch`: a Gradescope export graded in parallel, its gradebook, report and resume.

Grading is restricted to a few tests to keep the suite fast (a visible one, a hidden one on the
offering's seeds, and the IPC state machine, each replayed and fallen back from across the
batch); the bench (`python bench/run.py batch`) grades a class of twenty with every test.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from batch_exports import corrupt_member, export, write_submission, zipped
from buggy_vmms import BUGS
from designs import DESIGNS
from vmlab.batch_export import discover
from vmlab.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
VMLAB = [sys.executable, "-m", "vmlab"]
TESTS = ["--test", "trap-dispatch", "--test", "reflect"]
# the `graded` batch's: a hidden test graded on the offering's seeds, and a stateful one
GRADED = ["--test", "trap-dispatch", "--test", "reflect-hidden", "--test", "ipc",
          "--secret", "a course offering's secret"]
BUG = next(b for b in BUGS if b.name == "user-ecall-treated-as-hypercall")  # fails dispatch
IPC_BUG = next(b for b in BUGS if b.name == "ipc-send-reads-host-physical")  # fails ipc
DESIGN = next(d for d in DESIGNS if d.name == "flush-clears-only-the-root-entries-used")
ALONE = ["submission_11", "submission_12", "submission_13", "submission_16", "submission_17",
         "submission_18"]


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
    (root / "submission_7").mkdir()  # listed, with no one
    with (root / "submission_metadata.yml").open("a") as f:
        f.write("submission_7:\n  :submitters: []\n  :score: 0.0\n")
    found = discover(root, tmp_path / "scratch")
    assert found.source == "gradescope"
    assert [e.key for e in found.entries] == ["submission_1", "submission_2"]
    assert [s.sid for s in found.entries[0].submitters] == ["1", "2"]
    assert found.entries[0].submitters[1].email == "bea@x.edu"
    text = "\n".join(why for _, why in found.problems)
    assert "student 4" in text and "submission_3, submission_4" in text
    assert "submission_5" in text and "no such folder" in text
    assert "submission_6" in text and "does not list" in text
    assert "'submission_7' has no `:submitters:`" in text
    assert all(str(root / "submission_metadata.yml") in why or str(root) in why
               for _, why in found.problems)  # each names the file


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


def test_export_zip_member_that_is_a_link_or_climbs_out_of_its_submission_costs_it(tmp_path):
    """A link (it could point anywhere on the grading machine) or a path that climbs out is not
    unpacked; when it is in a submission's folder, that submission is not graded without it,
    and says why, while its neighbours are."""
    root = export(tmp_path / "ex", [(f"submission_{i}", [(f"S{i}", str(i), "")], "handout")
                                    for i in range(1, 4)])
    z = zipped(root, tmp_path / "export.zip")
    link = "assignment_export/submission_1/vmm/trap.py.link"
    climb = "assignment_export/submission_2/vmm/../../../../owned.py"
    with zipfile.ZipFile(z, "a") as zf:
        info = zipfile.ZipInfo(link)
        info.external_attr = (0o120777 << 16)  # a symbolic link, as Info-ZIP stores one
        zf.writestr(info, "/etc/passwd")
        zf.writestr(climb, "x = 1\n")
    found = discover(z, tmp_path / "scratch")
    problems = {e.key: e.problem for e in found.entries}
    assert sorted(problems) == ["submission_1", "submission_2", "submission_3"]
    assert link in problems["submission_1"] and "symbolic link" in problems["submission_1"]
    assert climb in problems["submission_2"] and "climbs out" in problems["submission_2"]
    assert str(z) in problems["submission_1"] and problems["submission_3"] is None
    assert [where for where, _ in found.problems] == [link, climb]
    assert not list((tmp_path / "scratch").rglob("trap.py.link"))
    assert not list(tmp_path.rglob("owned.py"))


def test_export_zip_member_that_cannot_be_read_costs_its_submission_alone(tmp_path, monkeypatch):
    root = export(tmp_path / "ex", [(f"submission_{i}", [(f"S{i}", str(i), "")], "handout")
                                    for i in range(1, 4)])
    (root / "submission_3" / "big.bin").write_bytes(b"0" * 200_000)
    z = zipped(root, tmp_path / "export.zip")
    member = next(n for n in zipfile.ZipFile(z).namelist()
                  if n.startswith("assignment_export/submission_2/") and n.endswith(".py"))
    corrupt_member(z, member)
    monkeypatch.setattr("vmlab.batch_export.MAX_MEMBER", 100_000)
    found = discover(z, tmp_path / "scratch")
    problems = {e.key: e.problem for e in found.entries}
    assert sorted(problems) == ["submission_1", "submission_2", "submission_3"]
    assert problems["submission_1"] is None
    assert member in problems["submission_2"] and "CRC" in problems["submission_2"]
    assert str(z) in problems["submission_2"]
    assert "big.bin" in problems["submission_3"] and "200000 bytes" in problems["submission_3"]
    assert [where for where, _ in found.problems] == [member, "assignment_export/"
                                                      "submission_3/big.bin"]


def test_folder_of_submissions_names_what_is_no_submission(tmp_path):
    subs = tmp_path / "subs"
    write_submission(subs / "alice", "handout")
    (subs / "bob.tar.gz").write_bytes(b"\x1f\x8b not really")
    (subs / ".DS_Store").write_bytes(b"")
    for name in ("CAROL.ZIP", "dan"):  # zips all the same: an upper-case suffix, or none
        with zipfile.ZipFile(subs / name, "w") as z:
            z.writestr("vmm/trap.py", "pass\n")
    found = discover(subs, tmp_path / "scratch")
    assert [e.key for e in found.entries] == ["CAROL", "alice", "dan"]
    assert [why for _, why in found.problems] == [
        f"{subs / 'bob.tar.gz'}: neither a folder nor a zip, so not a submission of this folder "
        "of submissions (each is one folder or zip); not graded. Unpack it into a folder (a "
        ".tar.gz, say) if it is one."]


@pytest.mark.parametrize("case", ["no-metadata-zip", "bad-yaml", "not-utf8", "not-a-mapping",
                                  "one-submission", "not-zip", "empty-folder"])
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
    elif case == "not-utf8":
        src = export(tmp_path / "ex", [("submission_1", [("A", "1", "a@x")], "handout")])
        (src / "submission_metadata.yml").write_bytes(b"submission_1:\n  :sid: \xff\xfe\n")
        expect = "not UTF-8"
    elif case == "not-a-mapping":
        src = export(tmp_path / "ex", [("submission_1", [("A", "1", "a@x")], "handout")])
        (src / "submission_metadata.yml").write_text("- submission_1\n- submission_2\n")
        expect = "not Gradescope's metadata"
    elif case == "empty-folder":
        src = tmp_path / "nothing"
        src.mkdir()
        (src / "readme.txt").write_text("hi\n")
        expect = "no submission folder or zip"
    elif case == "one-submission":
        src = REPO / "handout"
        expect = "one submission"
    else:
        src = tmp_path / "x.zip"
        src.write_bytes(b"not a zip")
        expect = "neither a folder nor a zip"
    with pytest.raises(UsageError, match=expect) as e:
        discover(src, tmp_path / "scratch")
    named = src / "submission_metadata.yml" if src.name == "ex" else src
    assert str(named) in str(e.value)
    done = vmlab("batch", src, "--out", tmp_path / "out", "-q", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and expect in done.stderr
    assert done.stderr.count("\n") == 1 and str(named) in done.stderr  # one paragraph
    assert not (tmp_path / "out" / "gradebook.csv").exists()  # nothing was graded


# ----- grading a small export -----------------------------------------------------------------

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A small mixed export zip graded with --jobs 1 (one grading process: every memo is
    shared): the solution first, whose runs the others replay, then the handout, a bug that
    fails dispatch and one that fails IPC, a correct design written otherwise with a file
    that is not graded, a file that does not parse, two that claim one student, one whose
    file is damaged in the zip, and one the metadata lists that is not there."""
    tmp = tmp_path_factory.mktemp("batch")
    root = export(tmp / "ex", [
        ("submission_11", [("Ada Lovelace", "1001", "ada@x.edu"),
                           ("Grace Hopper", "1002", "grace@x.edu")], "solution"),
        ("submission_12", [("Bob Stub", "1003", "bob@x.edu")], "handout"),
        ("submission_13", [("Cy Buggy", "1004", "cy@x.edu")], BUG),
        ("submission_14", [("Dup One", "1005", "d1@x.edu")], "solution"),
        ("submission_15", [("Dup Two", "1005", "d2@x.edu")], "handout"),
        ("submission_16", [("Di Channels", "1006", "di@x.edu")], IPC_BUG),
        ("submission_17", [("Ed Design", "1007", "ed@x.edu")], DESIGN),
        ("submission_18", [("Flo Typo", "1008", "flo@x.edu")], "solution"),
        ("submission_19", [("Gil Damaged", "1009", "gil@x.edu")], "solution"),
        ("submission_20", [("Hal Missing", "1010", "hal@x.edu")], "solution")])
    (root / "submission_17" / "notes.txt").write_text("my design, in words\n")
    # a helper left in that builds the machine's own Hart: never called, so it scores as the
    # design does, but the staff are told to read it (review.py)
    trap = next((root / "submission_17").rglob("trap.py"))
    trap.write_text(trap.read_text() + "\n\ndef _scratch():\n"
                    "    from machine.hart import Hart\n    return Hart(None)\n")
    channels = next((root / "submission_18").rglob("channels.py"))
    channels.write_text(channels.read_text() + "\ndef broken(:\n")
    shutil.rmtree(root / "submission_20")
    z = zipped(root, tmp / "export.zip", {"../escape.txt": b"no"})
    corrupt_member(z, next(n for n in zipfile.ZipFile(z).namelist()
                           if "submission_19/" in n and n.endswith("trap.py")))
    out = tmp / "out"
    done = vmlab("batch", z, "--out", out, "--jobs", "1", *GRADED)
    return root, out, done


def test_gradebook_has_a_row_per_submitter(graded):
    _, out, done = graded
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    by_sid = {r["SID"]: r for r in rows}
    assert sorted(by_sid) == ["1001", "1002", "1003", "1004", "1006", "1007", "1008", "1009"]
    assert by_sid["1001"]["Total Score"] == by_sid["1002"]["Total Score"] == "12"
    assert [by_sid["1001"][p] for p in ("trap-dispatch", "reflect", "ipc")] == ["4", "3", "5"]
    assert by_sid["1003"]["Total Score"] == "0"
    assert [by_sid["1004"][p] for p in ("trap-dispatch", "reflect", "ipc")] == ["0", "3", "5"]
    assert [by_sid["1006"][p] for p in ("trap-dispatch", "reflect", "ipc")] == ["4", "3", "0"]
    assert by_sid["1007"]["Total Score"] == "12" and by_sid["1008"]["Total Score"] == "0"
    assert by_sid["1009"]["Total Score"] == "" and "trap.py" in by_sid["1009"]["Status"]
    assert "cannot be read" in by_sid["1009"]["Status"]
    assert by_sid["1002"]["Email"] == "grace@x.edu" and by_sid["1001"]["Max Points"] == "12"
    canvas = list(csv.DictReader((out / "canvas.csv").open()))
    assert {r["SIS User ID"]: r["vmlab"] for r in canvas}["1004"] == "8"
    problems = json.loads((out / "problems.json").read_text())["input"]
    assert any("1005" in p["why"] for p in problems)
    assert any(p["where"] == "../escape.txt" for p in problems)
    assert any("submission_20" in p["why"] and "no such folder" in p["why"] for p in problems)
    assert "1005" in done.stdout and "escape.txt" in done.stdout  # the terminal summary
    assert "trap-dispatch" in done.stdout
    # the one submission with code to read, named with its line; the others have no review
    assert "1 submission(s) to read" in done.stdout and "submission_17" in done.stdout
    [review] = [p.parent.name for p in (out / "students").rglob("review.txt")]
    assert review == "submission_17"
    lines = (out / "students" / review / "review.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmm/trap.py:") \
        and "builds a Hart of its own" in lines[0], lines


def test_results_equal_grading_each_alone(graded):
    """The memos (replayed runs, the worker's answers in a rerun) change no verdict: every
    results.json is the one `vmlab grade` writes, byte for byte apart from the time it
    took, on the same offering's seeds, with the same notes on ignored and broken files."""
    root, out, _ = graded
    last = answers(out)[-1]["memo"]  # the grading process's counts, so far
    assert last["replayed"] > 0 and last["fell_back"] > 0 and last["answered"] > 0
    for key in ALONE:
        alone = out.parent / f"{key}.json"
        vmlab("grade", root / key, "--out", alone, *GRADED)
        assert without_times((out / "students" / key / "results.json").read_text()) == \
            without_times(alone.read_text()), key
        assert (out / "students" / key / "feedback.md").read_text().startswith("# vmlab")
    notes = [json.loads((out / "students" / key / "results.json").read_text())["output"]
             for key in ("submission_17", "submission_18")]
    assert "notes.txt" in notes[0] and "do not parse" in notes[1]


class Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tests: dict[str, tuple[int, int]] = {}
        self.students: list[str] = []
        self.links: list[str] = []
        self.svgs = 0
        self.external: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "test":
            self.tests[a["data-test"]] = (int(a["data-passed"]), int(a["data-total"]))
        if tag == "tr" and a.get("class") == "student":
            self.students.append(a["data-sid"])
        if tag == "a":
            self.links.append(a["href"])
        if a.get("id"):
            self.ids.add(a["id"])
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
    assert report.tests == {"trap-dispatch": (3, 6), "reflect-hidden": (4, 6), "ipc": (3, 6)}
    assert sorted(report.students) == ["1001", "1002", "1003", "1004", "1006", "1007", "1008",
                                       "1009"]
    assert report.svgs >= 1 + len(report.tests) and not report.external
    files = [link for link in report.links if not link.startswith("#")]
    assert files and all((out / link).is_file() for link in files)
    # a student not graded links to why, in the Problems list, said there once; a student
    # with code to read, to its lines under "To read"
    assert [link for link in report.links if link.startswith("#")] == [
        "#review-submission_17", "#problem-submission_19"]
    assert {"problem-submission_19", "review-submission_17", "review"} <= report.ids
    text = (out / "report.html").read_text()
    assert text.count("Bad CRC-32") == 1  # under the submission, not again as an input problem


def test_feedback_pages_render_the_markdown_for_course_staff(graded):
    """report.html links each student to a web page of their feedback, rendered from the
    Markdown they see (which stays beside it)."""
    _, out, _ = graded
    report = Report()
    report.feed((out / "report.html").read_text())
    pages = {link for link in report.links if link.endswith(".html")}
    assert pages == {f"students/{key}/feedback.html" for key in ALONE}  # 19's was damaged
    page = Report()
    text = (out / "students" / "submission_13" / "feedback.html").read_text()
    page.feed(text)
    assert "../../report.html" in page.links and "feedback.md" in page.links
    assert not page.external  # no script, nothing from elsewhere
    assert "<table" in text and "<pre><code>" in text and "| --- |" not in text
    assert "```" not in text and "**First difference:**" not in text  # rendered, not raw
    assert "<strong>First difference:</strong>" in text
    assert (out / "students" / "submission_13" / "feedback.md").read_text().count("```") >= 2


def test_feedback_page_shows_raw_html_in_the_feedback_as_text():
    from vmlab.batch_export import Entry, Submitter
    from vmlab.report import feedback_html
    from vmlab.rubric import load
    results = {"score": 0, "output": "<script>alert(1)</script>", "tests": [
        {"name": "Trap dispatch [trap-dispatch]", "score": 0, "max_score": 4, "number": "1",
         "output": "your code raised `ValueError: <img src=x onerror=alert(1)>`\n\n"
                   "[click](javascript:alert(1))"}]}
    page = feedback_html(results, Entry("s1", Path("s1"), [Submitter("<b>Eve</b>", "9", "")]),
                         load(None))
    parsed = Report()
    parsed.feed(page)
    assert "<script>" not in page and "<img" not in page and "<b>Eve" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page
    assert not parsed.external and not any(link.startswith("javascript:")
                                            for link in parsed.links)


def test_resume_grades_only_what_is_missing_and_only_regrades(graded):
    _, out, _ = graded
    z = out.parent / "export.zip"
    before = len(answers(out))
    (out / "students" / "submission_12" / "results.json").unlink()
    vmlab("batch", z, "--out", out, "--resume", "-q", *GRADED)
    new = answers(out)[before:]
    assert [a["key"] for a in new] == ["submission_12"]
    assert (out / "students" / "submission_12" / "results.json").is_file()
    vmlab("batch", z, "--out", out, "--only", "1004", "-q", *GRADED)
    assert [a["key"] for a in answers(out)[before + 1:]] == ["submission_13"]
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert len(rows) == 8  # the gradebook still has everyone


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
    with zipfile.ZipFile(subs / "hugezip.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("vmm/trap.py", b"#" * (2 << 20))  # in a zip too: not taken as missing
    (subs / "notes.txt").write_text("grade these by Friday\n")
    out = tmp_path / "out"
    done = vmlab("batch", subs, "--out", out, "-q", "--test", "reflect")
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert sorted(rows) == ["alice", "broken", "huge", "hugezip"]
    assert rows["alice"]["Total Score"] == "3" and rows["alice"]["Status"] == "graded"
    assert "broken.zip" in rows["broken"]["Status"] and "broken.zip" in done.stdout
    assert "neither a folder nor a zip" in rows["broken"]["Status"]
    for key in ("huge", "hugezip"):
        assert "trap.py is over" in rows[key]["Status"] and "bytes" in rows[key]["Status"]
        assert "could not start" in rows[key]["Status"]
    stray = f"{subs / 'notes.txt'}: neither a folder nor a zip"
    assert stray in done.stdout.replace("\n", "")  # the terminal (rich may wrap it)
    assert stray in (out / "report.html").read_text()  # and the report
    # a grading that runs past the cap costs that submission its result, not the batch
    done = vmlab("batch", subs, "--out", out, "-q", "--test", "reflect", "--only", "alice",
                 "--timeout", "0.2")
    assert done.returncode == 0
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert "cap" in rows["alice"]["Status"] and rows["alice"]["Total Score"] == ""
    assert "cap" in (out / "students" / "alice" / "error.txt").read_text()
    assert "alice" in json.dumps(json.loads((out / "problems.json").read_text())["grading"])
    # --resume grades it again (and only it: the others have their results)
    before = len(answers(out))
    vmlab("batch", subs, "--out", out, "-q", "--test", "reflect", "--resume")
    assert [a["key"] for a in answers(out)[before:]] == ["alice"]
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert rows["alice"]["Total Score"] == "3" and rows["alice"]["Status"] == "graded"
    assert not (out / "students" / "alice" / "error.txt").exists()


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


CRASHES = """\
# the grader breaks on some submissions (tests/test_batch.py): a grading process that dies, or
# raises, in the middle of one; it is started with this folder on its PYTHONPATH
import os
import signal
from pathlib import Path

from vmlab import grade, suite

_run_property, _grade_lab = suite.run_property, grade.grade_lab


def run_property(prop, test, worker, *args, **kw):
    text = (Path(worker.lab) / "vmm" / "trap.py").read_text()
    if test.id == "reflect" and "CRASH THE GRADER: signal" in text:
        os.kill(os.getpid(), signal.SIGKILL)  # its worker is running: it must not outlive us
    return _run_property(prop, test, worker, *args, **kw)


def grade_lab(lab, *args, **kw):
    if "CRASH THE GRADER: raise" in (Path(lab) / "vmm" / "trap.py").read_text():
        raise RuntimeError("the grader broke on this submission")
    return _grade_lab(lab, *args, **kw)


suite.run_property, grade.grade_lab = run_property, grade_lab
"""


def test_a_crashing_grading_process_costs_that_submission_alone(tmp_path):
    """A grading process killed by a signal, or raising, in the middle of a submission: that
    submission is recorded as not graded, with why; the others are graded; --resume grades
    only the two that are left."""
    root = export(tmp_path / "ex", [
        ("submission_1", [("Ann", "1", "")], "solution"),
        ("submission_2", [("Ben", "2", "")], "solution"),
        ("submission_3", [("Cat", "3", "")], "solution"),
        ("submission_4", [("Dan", "4", "")], "handout")])
    for folder, how in (("submission_2", "signal"), ("submission_3", "raise")):
        trap = next((root / folder).rglob("trap.py"))
        trap.write_text(trap.read_text() + f"# CRASH THE GRADER: {how}\n")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CRASHES)
    out = tmp_path / "out"
    tests = ["--test", "trap-dispatch", "--test", "reflect"]
    done = vmlab("batch", root, "--out", out, "--jobs", "1", "-q", *tests,
                 env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert rows["1"]["Total Score"] == "7" and rows["4"]["Total Score"] == "0"
    assert rows["2"]["Total Score"] == "" and "SIGKILL" in rows["2"]["Status"]
    assert rows["3"]["Total Score"] == "" and "RuntimeError" in rows["3"]["Status"]
    for folder, why in (("submission_2", "SIGKILL"), ("submission_3", "the grader broke")):
        assert why in (out / "students" / folder / "error.txt").read_text()
        assert not (out / "students" / folder / "results.json").exists()
        assert why in done.stdout  # the summary names it
    problems = json.loads((out / "problems.json").read_text())["grading"]
    assert sorted(p["submission"] for p in problems) == ["submission_2", "submission_3"]
    assert [(a["key"], bool(a["error"])) for a in answers(out)] == [
        ("submission_1", False), ("submission_2", True), ("submission_3", True),
        ("submission_4", False)]
    # the killed process's scratch folder (the lab its worker ran) did not outlive it
    assert not [lab for lab in Path(tempfile.gettempdir()).glob("vmlab-batch-*/lab/vmm/trap.py")
                if "CRASH THE GRADER: signal" in lab.read_text(errors="replace")]
    before = len(answers(out))
    vmlab("batch", root, "--out", out, "--resume", "-q", *tests)  # the grader mended
    assert sorted(a["key"] for a in answers(out)[before:]) == ["submission_2", "submission_3"]
    rows = {r["SID"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert [rows[sid]["Total Score"] for sid in "1234"] == ["7", "7", "7", "0"]
    assert all(r["Status"] == "graded" for r in rows.values())
    assert not (out / "students" / "submission_2" / "error.txt").exists()
    assert json.loads((out / "problems.json").read_text())["grading"] == []


def test_logs_the_hardware_replayed_for_an_earlier_submission_are_not_replayed_again(tmp_path):
    """Whole-guest tests, where the grading process's time is mostly the hardware of record
    replaying the worker's log: a log that is byte for byte one it replayed for the submission
    that first passed the test gets that replay's record (memo.Logs). A bug elsewhere (IPC)
    logs what the solution logged; a shadow bug logs the same until its first difference,
    then fails; a design of its own logs otherwise. Each results.json is `vmlab grade`'s."""
    shadow_bug = next(b for b in BUGS if b.name == "shadow-fill-page-never-backed")
    root = export(tmp_path / "ex", [
        ("submission_1", [("Ada", "1", "a@x.edu")], "solution"),
        ("submission_2", [("Bo", "2", "b@x.edu")], IPC_BUG),
        ("submission_3", [("Cy", "3", "c@x.edu")], shadow_bug),
        ("submission_4", [("Di", "4", "d@x.edu")], DESIGN)])
    tests = ["--test", "equivalence-shadow", "--test", "isolation"]
    out = tmp_path / "out"
    vmlab("batch", root, "--out", out, "--jobs", "1", *tests)
    memo = answers(out)[-1]["memo"]
    # the IPC bug's runs are the solution's; the others miss (and the design's never hit)
    assert memo["logs_found"] >= 60 + 30 and memo["logs_missed"] > 0, memo
    scores = {}
    for key in ("submission_2", "submission_3", "submission_4"):
        alone = tmp_path / f"{key}.json"
        vmlab("grade", root / key, "--out", alone, *tests)
        batch = (out / "students" / key / "results.json").read_text()
        assert without_times(batch) == without_times(alone.read_text()), key
        scores[key] = json.loads(batch)["score"]
    assert scores["submission_2"] > scores["submission_3"], scores  # the shadow bug fails


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
              *GRADED)
    for key in ("submission_11", "submission_13"):
        assert without_times((out / "students" / key / "results.json").read_text()) == \
            without_times((local / "students" / key / "results.json").read_text()), key


def test_progress_bar_time_left_follows_the_mean_rate():
    """8 of 21 graded in 11 min: about 13 x 82.5 s left (rich's own estimate, from the last
    30 s, said 8 s when two submissions ended together)."""
    from vmlab.batch import time_left
    assert time_left(660.0, 8, 21) == "about 0:17:52"
    assert time_left(5000.0, 1, 3) == "about 2:46:40"
    assert time_left(10.0, 0, 21) == "?" and time_left(60.0, 5, 5) == "about 0:00:00"
