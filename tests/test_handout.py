"""The handout: generated from the solution, up to date, free of solution code, and loadable.

`make handout` (`vmlab build handout`) writes handout/ from solution/; see grader/vmlab/handout.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vmlab import build as build_verb
from vmlab.cli import app
from vmlab.handout import PRISTINE, STAFF_ONLY, BuildError, differences, generate, write
from vmlab.rubric import load as load_rubric

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solution"
HANDOUT = REPO / "handout"
BEGIN = re.compile(r"^\s*# BEGIN STUDENT PART (\S+)\s*$")
END = re.compile(r"^\s*# END STUDENT PART\s*$")
# Lines too common to prove that solution code leaked (they are in any handout's skeleton).
TRIVIAL = re.compile(r"(return|pass|continue|break|else:|try:|finally:|return (True|False|None)"
                     r"|[\)\]\}]+[,:]?|\.\.\.)?\Z")


# ----- reading the solution independently of the generator ----------------------------------------


def qualified_functions(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    out: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[prefix + child.name] = child
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def marked(rel: str) -> list[tuple[str, str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(part, qualified name, node) for each outermost function inside a marked region."""
    source = (SOLUTION / rel).read_text(encoding="utf-8")
    regions, start = [], None
    for n, line in enumerate(source.split("\n"), start=1):
        if m := BEGIN.match(line):
            start = (m.group(1), n)
        elif END.match(line):
            assert start is not None, f"{rel}:{n}"
            regions.append((start[0], start[1], n))
            start = None
    funcs = qualified_functions(ast.parse(source))
    out = []
    for part, begin, end in regions:
        inside = [(q, f) for q, f in funcs.items() if begin < f.lineno < end]
        out += [(part, q, f) for q, f in inside
                if not any(o is not f and o.lineno < f.lineno <= (o.end_lineno or 0)
                           for _, o in inside)]
    return out


def marked_files() -> list[str]:
    return sorted(p.relative_to(SOLUTION).as_posix() for p in SOLUTION.rglob("*.py")
                  if "__pycache__" not in p.parts
                  and "BEGIN STUDENT PART" in p.read_text(encoding="utf-8"))


# ----- (a) handout/ is what the generator makes ---------------------------------------------------


def test_handout_is_up_to_date():
    diffs = differences(generate(SOLUTION), HANDOUT)
    assert not diffs, ("handout/ is out of date with solution/; run `make handout` and commit "
                       "handout/:\n  " + "\n  ".join(diffs))


def test_the_check_option_agrees(monkeypatch, tmp_path):
    monkeypatch.setattr(build_verb, "HANDOUT", tmp_path / "handout")
    result = CliRunner().invoke(app, ["build", "handout", "--check"])
    assert result.exit_code == 1
    assert "run `make handout`" in result.output and "missing  guests/hello.S" in result.output
    assert not (tmp_path / "handout").exists()  # --check writes nothing
    result = CliRunner().invoke(app, ["build", "handout"])
    assert result.exit_code == 0, result.output
    assert "student parts stubbed" in result.output
    result = CliRunner().invoke(app, ["build", "handout", "--check"])
    assert result.exit_code == 0, result.output


def test_the_handout_carries_the_vmlab_tool_unchanged():
    """Every module a student runs, byte for byte; not the staff's (handout.STAFF_ONLY); and
    the rubric with its visible tests only (tests/test_autograder.py checks what it lacks)."""
    from fnmatch import fnmatch
    tool = REPO / "grader" / "vmlab"
    files = generate(SOLUTION)
    shipped = {rel.removeprefix("tools/vmlab/"): data for rel, data in files.items()
               if rel.startswith("tools/vmlab/")}
    assert {"cli.py", "check.py", "submit.py", "worker.py", "rubric.toml"} <= set(shipped)
    for rel, data in shipped.items():
        if rel != "rubric.toml":
            assert data == (tool / rel).read_bytes(), rel
    staff = [p.relative_to(tool).as_posix() for p in tool.rglob("*") if p.is_file()
             and "__pycache__" not in p.parts
             and any(fnmatch(part, pattern) for part in p.relative_to(tool).parts
                     for pattern in STAFF_ONLY)]
    assert "autograder.py" in staff and "offering.py" in staff
    assert not set(staff) & set(shipped)
    assert b'vmlab = "vmlab.cli:main"' in files["tools/pyproject.toml"]
    for rel in load_rubric().editable:  # the stubs as handed out, for grading an upload
        assert files[f"{PRISTINE}/{rel}"] == files[rel]


def test_unmarked_files_are_copied_unchanged():
    files = generate(SOLUTION, tools=False)
    marked_set = set(marked_files())
    for rel, data in files.items():
        if rel not in marked_set:
            assert data == (SOLUTION / rel).read_bytes(), rel
    assert "guests/hello.S" in files and "vmm/trap.py" in files
    assert not any("__pycache__" in rel or rel.endswith(".pyc") for rel in files)


# ----- (b) no solution code in handout/ -----------------------------------------------------------


@pytest.mark.parametrize("rel", marked_files())
def test_marked_bodies_are_stubs(rel):
    handout_source = (HANDOUT / rel).read_text(encoding="utf-8")
    stubs = qualified_functions(ast.parse(handout_source))
    parts = marked(rel)
    assert parts, rel
    for part, qualname, solved in parts:
        stub = stubs.get(qualname)
        assert stub is not None, f"{rel}: {qualname} is missing from the handout"
        assert ast.get_docstring(stub, clean=False) == ast.get_docstring(solved, clean=False)
        assert len(stub.body) == 2, f"{rel}: {qualname} keeps more than docstring + raise"
        raised = stub.body[1]
        assert isinstance(raised, ast.Raise) and isinstance(raised.exc, ast.Call)
        assert isinstance(raised.exc.func, ast.Name)
        assert raised.exc.func.id == "NotImplementedError"
        [message] = raised.exc.args
        assert isinstance(message, ast.Constant)
        assert message.value == f"{part}: {qualname} is yours to write (see LAB.md)"
        assert ast.dump(stub.args) == ast.dump(solved.args), f"{rel}: {qualname}'s signature"
        assert f"# STUDENT PART {part}: yours to write" in handout_source
    assert "BEGIN STUDENT PART" not in handout_source
    assert "END STUDENT PART" not in handout_source


@pytest.mark.parametrize("rel", marked_files())
def test_no_solution_line_survives(rel):
    solution_lines = (SOLUTION / rel).read_text(encoding="utf-8").split("\n")
    handout_lines = {line.strip() for line in
                     (HANDOUT / rel).read_text(encoding="utf-8").split("\n")}
    in_bodies: set[int] = set()
    for _, _, node in marked(rel):
        if len(node.body) > 1:
            in_bodies.update(range(node.body[1].lineno, (node.end_lineno or 0) + 1))
    outside = {line.strip() for n, line in enumerate(solution_lines, start=1)
               if n not in in_bodies}
    leaked = [f"{rel}:{n}: {solution_lines[n - 1].strip()}" for n in sorted(in_bodies)
              if (text := solution_lines[n - 1].strip()) not in outside
              and not TRIVIAL.match(text) and not text.startswith("#") and text in handout_lines]
    assert not leaked, "solution code in the handout:\n" + "\n".join(leaked)


# ----- the generator on small fake solutions ------------------------------------------------------


def fake(tmp_path: Path, source: str, name: str = "mod.py") -> Path:
    root = tmp_path / "solution"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / name).write_text(textwrap.dedent(source).lstrip("\n"))
    return root


def build_error(root: Path) -> str:
    with pytest.raises(BuildError) as caught:
        generate(root, tools=False)
    return str(caught.value)


def test_stubs_methods_decorators_and_several_defs(tmp_path):
    root = fake(tmp_path, '''
        import functools


        class Ring:
            size = 4

            # BEGIN STUDENT PART ring
            @functools.lru_cache  # noqa
            def full(self) -> bool:
                """Full?

                Hint: count."""
                return self.count == self.size

            # about empty
            @staticmethod
            def empty(
                count: int,
            ) -> bool:
                \'\'\'Empty?\'\'\'
                if count:
                    return False
                # trailing thought, part of the body
                return True
                    # an odd comment, deeper than the defs: it goes with the body
            # END STUDENT PART

            def other(self) -> int:
                return 1


        # BEGIN STUDENT PART top
        async def go(x):
            """Go."""
            def inner():
                return x
            return inner
        # END STUDENT PART
        ''')
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (root / "notes.txt").write_text("keep me\n")
    (root / "secret.md").write_text("hidden tests\n")
    (root / "drafts").mkdir()
    (root / "drafts" / "a.txt").write_text("draft\n")
    (root / ".handoutignore").write_text("# not for students\nsecret.md\n/drafts/\n")
    files = generate(root, tools=False)
    assert sorted(files) == ["notes.txt", "pkg/mod.py"]
    assert files["notes.txt"] == b"keep me\n"
    assert files["pkg/mod.py"].decode() == textwrap.dedent('''
        import functools


        class Ring:
            size = 4

            # STUDENT PART ring: yours to write
            @functools.lru_cache  # noqa
            def full(self) -> bool:
                """Full?

                Hint: count."""
                raise NotImplementedError("ring: Ring.full is yours to write (see LAB.md)")

            # about empty
            @staticmethod
            def empty(
                count: int,
            ) -> bool:
                \'\'\'Empty?\'\'\'
                raise NotImplementedError("ring: Ring.empty is yours to write (see LAB.md)")

            def other(self) -> int:
                return 1


        # STUDENT PART top: yours to write
        async def go(x):
            """Go."""
            raise NotImplementedError("top: go is yours to write (see LAB.md)")
        ''').lstrip("\n")
    compile(files["pkg/mod.py"], "mod.py", "exec")


def test_write_makes_the_folder_exactly_the_handout(tmp_path):
    dest = tmp_path / "handout"
    (dest / "old" / "__pycache__").mkdir(parents=True)
    (dest / "old" / "gone.py").write_text("stale")
    (dest / "old" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (dest / "stale").mkdir()
    (dest / "stale" / "gone.txt").write_text("stale")
    files = {"a.py": b"x = 1\n", "sub/b.txt": b"b\n"}
    write(files, dest)
    assert differences(files, dest) == []
    assert (dest / "sub" / "b.txt").read_bytes() == b"b\n"
    assert not (dest / "old" / "gone.py").exists() and not (dest / "stale").exists()


@pytest.mark.parametrize(("source", "line", "words"), [
    ("""
     x = 1
     # BEGIN STUDENT PART a
     def f():
         '''F.'''
         return 1
     """, 2, "never closed"),
    ("""
     def f():
         '''F.'''
         return 1
     # END STUDENT PART
     """, 4, "without a BEGIN"),
    ("""
     # BEGIN STUDENT PART a
     def f():
         '''F.'''
         return 1
     # BEGIN STUDENT PART b
     def g():
         '''G.'''
     # END STUDENT PART
     # END STUDENT PART
     """, 5, "cannot nest"),
    ("""
     # BEGIN STUDENT PART a
     def f():
         '''F.'''
         return 1

     LIMIT = 4
     # END STUDENT PART
     """, 6, "other than function definitions"),
    ("""
     class C:
         # BEGIN STUDENT PART a
         def f(self):
             return 1
         # END STUDENT PART
     """, 3, "no docstring"),
    ("""
     def f():
         '''F.'''
         # BEGIN STUDENT PART a
         return 1
         # END STUDENT PART
     """, 3, "begins inside function f"),
    ("""
     # BEGIN STUDENT PART
     def f():
         '''F.'''
     # END STUDENT PART
     """, 1, "needs a part name"),
    ("""
     # BEGIN STUDENT PART a
     # END STUDENT PART
     """, 1, "no function"),
])
def test_marker_errors_name_file_and_line(tmp_path, source, line, words):
    message = build_error(fake(tmp_path, source))
    assert f"pkg/mod.py:{line}:" in message, message
    assert words in message, message


def test_markers_inside_strings_are_not_markers(tmp_path):
    source = '''
        TEXT = """
        # BEGIN STUDENT PART not-a-part
        """
        '''
    root = fake(tmp_path, source)
    assert generate(root, tools=False)["pkg/mod.py"] == (root / "pkg" / "mod.py").read_bytes()


def test_the_verb_reports_a_build_error_in_one_paragraph(monkeypatch, tmp_path):
    root = fake(tmp_path, """
        # BEGIN STUDENT PART a
        def f():
            return 1
        """)
    monkeypatch.setattr(build_verb, "SOLUTION", root)
    monkeypatch.setattr(build_verb, "HANDOUT", tmp_path / "handout")
    result = CliRunner().invoke(app, ["build", "handout"])
    assert result.exit_code == 2
    assert result.output.startswith("vmlab: error: cannot build the handout: ")
    assert "mod.py:1: BEGIN STUDENT PART a is never closed" in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "handout").exists()


# ----- (d) the untouched handout loads and runs --------------------------------------------------


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Python in `folder` with only that lab copy (and the grader's tool) importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("VMLAB_LAB", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(REPO / "grader")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in handout/
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True,
                          timeout=120, check=False)


VMLAB = "import sys; from vmlab.cli import main; sys.argv[0] = 'vmlab'; main()"


def test_handout_imports_its_own_packages():
    result = run_in(HANDOUT, "-c", "import machine, vmm; print(machine.__file__); "
                                   "print(vmm.__file__)")
    assert result.returncode == 0, result.stderr.decode()
    for path in result.stdout.decode().split():
        assert Path(path).is_relative_to(HANDOUT), path


def test_handout_machine_runs_hello_like_the_solution():
    handout = run_in(HANDOUT, "-c", VMLAB, "run", "guests/hello.S")
    assert handout.returncode == 0, handout.stderr.decode()
    assert b"hello" in handout.stdout
    solution = run_in(SOLUTION, "-c", VMLAB, "run", "guests/hello.S")
    assert (handout.stdout, handout.stderr) == (solution.stdout, solution.stderr)


VMM_RUN = """
import json
from machine.loader import load_program
from vmm import VMM

vmm = VMM()
vmm.create_guest(load_program("guests/hello.S"))
stop = vmm.run(1_000_000)
print(json.dumps({"reason": stop.reason, "detail": stop.detail}))
"""


def test_handout_vmm_stops_cleanly_naming_the_missing_part():
    result = run_in(HANDOUT, "-c", VMM_RUN)
    assert result.returncode == 0, result.stderr.decode()
    stop = json.loads(result.stdout)
    assert stop["reason"] == "handler-error"
    last = stop["detail"].strip().splitlines()[-1]
    assert last == ("NotImplementedError: trap-dispatch: handle is yours to write "
                    "(see LAB.md)"), stop["detail"]


EVERY_STUB = """
import importlib, inspect, json, sys
out = []
for module, qualname in json.loads(sys.argv[1]):
    obj = importlib.import_module(module)
    for name in qualname.split("."):
        obj = getattr(obj, name)
    obj = inspect.unwrap(obj)
    args = [None] * sum(p.default is p.empty and p.kind <= p.POSITIONAL_OR_KEYWORD
                        for p in inspect.signature(obj).parameters.values())
    try:
        result = obj(*args)
        if inspect.iscoroutine(result):
            result.send(None)
        out.append("returned")
    except NotImplementedError as err:
        out.append(str(err))
print(json.dumps(out))
"""


def test_every_stub_raises_naming_its_part():
    wanted = [(rel[:-3].replace("/", "."), part, qualname)
              for rel in marked_files() for part, qualname, _ in marked(rel)]
    result = run_in(HANDOUT, "-c", EVERY_STUB, json.dumps([(m, q) for m, _, q in wanted]))
    assert result.returncode == 0, result.stderr.decode()
    got = json.loads(result.stdout)
    assert got == [f"{part}: {q} is yours to write (see LAB.md)" for _, part, q in wanted]
