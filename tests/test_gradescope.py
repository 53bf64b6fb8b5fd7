"""vmlab.gradescope: results.json through gradescope-utils, with its 0.5.0 defects covered.

Each defect test first shows the library's plain JSONTestRunner getting the case wrong, so that
the test fails if the fix (or the defect) goes away, then checks the fixed behaviour.
"""

from __future__ import annotations

import io
import json
import re
import sys
import types
import unittest

import jsonschema
import pytest
from gradescope_utils.autograder_utils.decorators import leaderboard, partial_credit
from gradescope_utils.autograder_utils.json_test_runner import JSONTestRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from vmlab.gradescope import (
    ResultsError,
    number,
    run_tests,
    tags,
    validate_results,
    visibility,
    weight,
    write_error_results,
)

EXAMPLE = re.compile(r"(Falsifying example|Failing test case): test_small\(")


def suite_of(*classes):
    loader = unittest.TestLoader()
    return unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in classes)


def run_fixed(tmp_path, *classes, **kwargs):
    """run_tests, checking what every run must give: the file on disk is what was returned, it
    validates, and each entry carries the keys the graders rely on."""
    out = tmp_path / "results" / "results.json"
    results = run_tests(suite_of(*classes), out, **kwargs)
    on_disk = json.loads(out.read_text(encoding="utf-8"))
    assert on_disk == results
    validate_results(on_disk)
    for entry in results["tests"]:
        assert {"name", "score", "max_score", "output", "output_format"} <= entry.keys()
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temp file left
    return results


def run_plain(*classes):
    stream = io.StringIO()
    JSONTestRunner(stream=stream).run(suite_of(*classes))
    return json.loads(stream.getvalue())


def entries(results, method):
    # Names are "test_x (module.Class.test_x)" on 3.11+, "test_x (module.Class)" on 3.10.
    return [t for t in results["tests"] if t["name"].startswith(method + " ")]


def only(results, method):
    found = entries(results, method)
    assert len(found) == 1, found
    return found[0]


# --- a. failing subtests -----------------------------------------------------------------------


def test_a_test_with_failing_subtests_is_reported_with_zero(tmp_path):
    class Loop(unittest.TestCase):
        @weight(2)
        def test_loop(self):
            print("checking four pages")
            for i in range(4):
                with self.subTest(i=i):
                    self.assertEqual(i % 2, 0)

        @weight(1)
        def test_fine(self):
            pass

    plain = run_plain(Loop)
    assert entries(plain, "test_loop") == []
    assert plain["score"] == 1

    results = run_fixed(tmp_path, Loop)
    loop = only(results, "test_loop")
    assert (loop["score"], loop["max_score"], loop["status"]) == (0, 2, "failed")
    assert "(i=1)" in loop["output"] and "(i=3)" in loop["output"]
    assert "(i=2)" not in loop["output"]
    assert "1 != 0" in loop["output"]
    assert "checking four pages" in loop["output"]
    assert results["score"] == 1


def test_a_a_test_failing_twice_still_appears_once(tmp_path):
    class Twice(unittest.TestCase):
        def tearDown(self):
            raise OSError("tearDown broke too")

        @weight(5)
        def test_twice(self):
            with self.subTest("first"):
                self.fail("subtest failed")
            raise ValueError("body failed")

    assert len(entries(run_plain(Twice), "test_twice")) == 2  # and 10 points at stake

    twice = only(run_fixed(tmp_path, Twice), "test_twice")
    assert (twice["score"], twice["max_score"]) == (0, 5)
    for part in ("subtest failed", "ValueError: body failed", "OSError: tearDown broke too"):
        assert part in twice["output"]


# --- b. skipped tests --------------------------------------------------------------------------


def test_b_skipped_tests_appear_with_zero_and_reason(tmp_path):
    class Skips(unittest.TestCase):
        @weight(3)
        @unittest.skip("needs qemu-system-riscv64")
        def test_decorated(self):
            pass

        @weight(2)
        def test_inside(self):
            self.skipTest("no cross compiler")

        @weight(1)
        def test_fine(self):
            pass

    plain = run_plain(Skips)
    assert entries(plain, "test_decorated") == [] and entries(plain, "test_inside") == []

    results = run_fixed(tmp_path, Skips)
    decorated, inside = only(results, "test_decorated"), only(results, "test_inside")
    assert (decorated["score"], decorated["max_score"]) == (0, 3)
    assert "needs qemu-system-riscv64" in decorated["output"]
    assert (inside["score"], inside["max_score"]) == (0, 2)
    assert "no cross compiler" in inside["output"]
    assert results["score"] == 1


# --- c. setUpClass / setUpModule errors --------------------------------------------------------


def test_c_setupclass_error_is_recorded_and_its_tests_kept(tmp_path):
    class Broken(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            raise RuntimeError("could not boot the VMM")

        @weight(4)
        @number("3.1")
        def test_one(self):
            pass

        @weight(6)
        @visibility("after_due_date")
        def test_two(self):
            pass

    class Healthy(unittest.TestCase):
        @weight(1.5)
        def test_ok(self):
            pass

    with pytest.raises(AttributeError, match="_testMethodName"):
        run_plain(Broken, Healthy)

    results = run_fixed(tmp_path, Broken, Healthy)
    fixture = [t for t in results["tests"] if "Broken" in t["name"] and "setUpClass" in t["name"]]
    assert len(fixture) == 1
    assert fixture[0]["score"] == 0 and fixture[0]["status"] == "failed"
    assert "RuntimeError: could not boot the VMM" in fixture[0]["output"]
    # Its tests' visibility limits who sees the error: here after the due date.
    assert fixture[0]["visibility"] == "after_due_date"

    one, two = only(results, "test_one"), only(results, "test_two")
    assert (one["score"], one["max_score"], one["number"]) == (0, 4, "3.1")
    assert (two["score"], two["max_score"], two["visibility"]) == (0, 6, "after_due_date")
    assert "setUpClass" in one["output"]
    assert only(results, "test_ok")["score"] == 1.5
    assert results["score"] == 1.5


def test_c_setupmodule_error_keeps_the_module_tests(tmp_path, monkeypatch):
    module = types.ModuleType("vmlab_gradescope_fake_module")

    def setUpModule():
        raise RuntimeError("no RAM image")

    module.setUpModule = setUpModule
    monkeypatch.setitem(sys.modules, module.__name__, module)

    class InModule(unittest.TestCase):
        __module__ = module.__name__

        @weight(7)
        def test_needs_module(self):
            pass

    results = run_fixed(tmp_path, InModule)
    assert any("setUpModule" in t["name"] and "no RAM image" in t["output"]
               for t in results["tests"])
    kept = only(results, "test_needs_module")
    assert (kept["score"], kept["max_score"]) == (0, 7)


# --- d. hypothesis's failing example -----------------------------------------------------------


def make_property_test():
    # A fresh class per run: hypothesis objects to one test method run from two instances.
    class Prop(unittest.TestCase):
        @weight(2)
        @settings(max_examples=50, database=None, derandomize=True, deadline=None)
        @given(st.integers())
        def test_small(self, x):
            self.assertLess(x, 10)

    return Prop


def test_d_failure_output_includes_exception_notes(tmp_path):
    plain = only(run_plain(make_property_test()), "test_small")
    assert "10 not less than 10" in plain["output"]
    assert not EXAMPLE.search(plain["output"])

    fixed = only(run_fixed(tmp_path, make_property_test()), "test_small")
    assert (fixed["score"], fixed["max_score"]) == (0, 2)
    message = fixed["output"].index("10 not less than 10")
    example = EXAMPLE.search(fixed["output"])
    assert example and example.start() > message  # the notes come after the message
    assert "x=10" in fixed["output"]


# --- e. execution_time -------------------------------------------------------------------------


def test_e_execution_time_is_a_number(tmp_path):
    class Quick(unittest.TestCase):
        def test_quick(self):
            pass

    assert isinstance(run_plain(Quick)["execution_time"], str)

    results = run_fixed(tmp_path, Quick)
    elapsed = results["execution_time"]
    assert isinstance(elapsed, float) and 0 <= elapsed < 60


# --- the whole file ----------------------------------------------------------------------------


def test_mixed_suite_scores_and_metadata(tmp_path):
    class Mixed(unittest.TestCase):
        @weight(2)
        @number("1.1")
        def test_pass(self):
            pass

        @weight(3)
        @visibility("hidden")
        @number("1.2")
        def test_fail(self):
            self.assertEqual(1, 2)

        @weight(1)
        @tags("mmu", "tlb")
        def test_error(self):
            raise KeyError("satp")

        def test_unweighted(self):
            pass

        @partial_credit(4)
        def test_partial(self, set_score=None):
            set_score(1.5)

        @weight(0.5)
        def test_prints(self):
            print("guest said hi")

        @leaderboard("cycles", "asc")
        def test_board(self, set_leaderboard_value=None):
            set_leaderboard_value(1234)

    results = run_fixed(tmp_path, Mixed, extra_output="**Summary**", stdout_visibility="hidden",
                        leaderboard=[{"name": "pages", "value": 7}])
    assert results["score"] == pytest.approx(2 + 1.5 + 0.5)
    assert sum(t["max_score"] for t in results["tests"]) == pytest.approx(2 + 3 + 1 + 4 + 0.5)
    assert len(results["tests"]) == 6  # the leaderboard test is a column, not a test

    passed, failed = only(results, "test_pass"), only(results, "test_fail")
    assert (passed["status"], passed["number"]) == ("passed", "1.1")
    assert (failed["status"], failed["visibility"], failed["number"]) == ("failed", "hidden", "1.2")
    assert "1 != 2" in failed["output"]
    error = only(results, "test_error")
    assert error["tags"] == ["mmu", "tlb"] and "KeyError: 'satp'" in error["output"]
    unweighted = only(results, "test_unweighted")
    assert (unweighted["score"], unweighted["max_score"], unweighted["status"]) == (0, 0, "passed")
    partial = only(results, "test_partial")
    assert (partial["score"], partial["max_score"], partial["status"]) == (1.5, 4, "failed")
    assert "guest said hi" in only(results, "test_prints")["output"]

    assert results["output"] == "**Summary**" and results["output_format"] == "md"
    assert results["stdout_visibility"] == "hidden"
    assert results["leaderboard"] == [{"name": "cycles", "value": 1234, "order": "asc"},
                                      {"name": "pages", "value": 7}]


def test_output_formats(tmp_path):
    class Fence(unittest.TestCase):
        def test_ticks(self):
            self.fail("the guest printed ```x```")

    md = only(run_fixed(tmp_path, Fence), "test_ticks")["output"]
    assert md.startswith("````\n") and md.endswith("\n````\n")  # longer than the ``` inside

    text = run_fixed(tmp_path, Fence, output_format="text")
    assert text["output_format"] == "text"
    assert only(text, "test_ticks")["output"] == "Test Failed: the guest printed ```x```"

    with pytest.raises(ValueError, match="output_format"):
        run_tests(suite_of(Fence), tmp_path / "r.json", output_format="markdown")


def test_invalid_results_leave_an_error_file_and_raise(tmp_path):
    class Quick(unittest.TestCase):
        @weight(1)
        def test_quick(self):
            pass

    def typo(data):
        data["visiblity"] = "hidden"

    out = tmp_path / "results.json"
    with pytest.raises(ResultsError, match="visiblity"):
        run_tests(suite_of(Quick), out, post_process=typo)
    left = json.loads(out.read_text(encoding="utf-8"))
    validate_results(left)
    assert left["score"] == 0 and "course staff" in left["output"]


def test_post_process_can_change_the_results(tmp_path):
    class Quick(unittest.TestCase):
        @weight(10)
        def test_quick(self):
            pass

    def late_penalty(data):
        data["score"] = data["score"] * 0.8

    # Not run_fixed: that checks the total is the tests' sum, which a penalty deliberately breaks.
    results = run_tests(suite_of(Quick), tmp_path / "results.json", post_process=late_penalty)
    assert results["score"] == pytest.approx(8)
    assert json.loads((tmp_path / "results.json").read_text())["score"] == pytest.approx(8)


# --- write_error_results and validate_results --------------------------------------------------


def test_write_error_results_is_valid_and_forgiving(tmp_path):
    out = tmp_path / "deep" / "er" / "results.json"
    out.parent.mkdir(parents=True)
    out.write_text("old, half-written garbage")
    tests = [
        {"name": "MMU", "max_score": 5, "visibility": "hidden", "number": 2, "tags": ("mmu",)},
        {"max_score": "lots", "visibility": "sometimes", "extra": object()},
        "just a name",
        {"name": "inf", "max_score": float("inf")},
    ]
    results = write_error_results(out, "The VMM did not build:\nmake: *** [vmm] Error 1", tests)
    on_disk = json.loads(out.read_text(encoding="utf-8"))
    assert on_disk == results
    validate_results(on_disk)
    assert results["score"] == 0
    assert results["output"] == "The VMM did not build:\nmake: *** [vmm] Error 1"
    assert [t["score"] for t in results["tests"]] == [0, 0, 0, 0]
    assert [t["max_score"] for t in results["tests"]] == [5, 0, 0, 0]
    first = results["tests"][0]
    assert (first["name"], first["number"], first["visibility"], first["tags"]) == \
        ("MMU", "2", "hidden", ["mmu"])
    assert "visibility" not in results["tests"][1]
    assert results["tests"][2]["name"] == "just a name"
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]

    bare = write_error_results(tmp_path / "bare.json", "")
    validate_results(bare)
    assert bare["score"] == 0 and bare["output"] and "tests" not in bare


def test_validate_results_names_the_path():
    validate_results({"score": 1.0})
    validate_results({"tests": [{"score": 1, "max_score": 1}]})

    with pytest.raises(ResultsError, match=r"\$\.tests\[0\].*visiblity"):
        validate_results({"score": 1, "tests": [{"score": 1, "visiblity": "hidden"}]})
    with pytest.raises(ResultsError, match=r"\$\.execution_time"):
        validate_results({"score": 1, "execution_time": "0.12"})
    with pytest.raises(ResultsError, match=r"\$\.tests\[1\]\.visibility"):
        validate_results({"score": 1, "tests": [{}, {"visibility": "students"}]})
    with pytest.raises(ResultsError, match=r"\$\.leaderboard\[0\]"):
        validate_results({"score": 1, "leaderboard": [{"name": "x", "value": None}]})
    with pytest.raises(ResultsError):
        validate_results({"tests": [{"name": "no score anywhere"}]})
    with pytest.raises(ResultsError, match="JSON"):
        validate_results({"score": float("nan")})
    with pytest.raises(ResultsError) as info:
        validate_results({"score": 1, "output_format": "x" * 5000 + "\n" * 10})
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_schema_is_package_data_and_a_valid_2020_12_schema():
    from importlib.resources import files

    schema = json.loads((files("vmlab") / "schemas" / "results.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["test"]["additionalProperties"] is False
