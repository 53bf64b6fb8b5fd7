"""The handout, generated from the solution: every file copied, the student parts stubbed.

A student part is a region of a Python file between two comment lines:

    # BEGIN STUDENT PART shadow-fill
    def fill(self, vcpu: VirtualCPU, va: int, access: int) -> int:
        \"\"\"The contract. Hint: ...\"\"\"
        ...the solution...
    # END STUDENT PART

The region holds whole function definitions (with their decorators), comments and blank lines,
nothing else, and every function in it has a docstring. In the handout each function keeps its
signature and docstring and its body becomes a `raise NotImplementedError` naming the part; the
BEGIN marker becomes `# STUDENT PART <name>: yours to write` and the END marker goes.

`generate` computes the handout without writing anything; `write` puts it on disk.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import re
import tokenize
import tomllib
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".handoutignore"
# Never part of a handout, whatever .handoutignore says: caches that tools leave behind.
ALWAYS_IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".hypothesis", ".ruff_cache",
                  ".vmlab", ".venv", IGNORE_FILE)
TOOL = Path(__file__).resolve().parent  # the vmlab package: students get it as tools/vmlab
TOOL_PYPROJECT = """\
# The vmlab tool for students: `make setup` in the handout installs it into .venv/.
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "vmlab"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["typer>=0.12", "rich>=13", "pyelftools>=0.31", "hypothesis==6.170.15",
                "jsonschema>=4.20", "gradescope-utils==0.5.0"]

[project.scripts]
vmlab = "vmlab.cli:main"

[tool.setuptools]
packages = ["vmlab", "vmlab.strategies", "vmlab.properties", "vmlab.schemas"]

[tool.setuptools.package-data]
vmlab = ["rubric.toml"]
"vmlab.schemas" = ["*.json"]
"""
# The tool's files that stay with course staff: their verbs (grade, build, batch, mutants), the
# offering's secret seeds, the autograder's scripts, the forms the staff are shown to read (a
# student need not know the list). The handout's cli.py registers a staff verb
# only where its module is present, and the handout's rubric.toml holds the visible tests only.
STAFF_ONLY = ("autograder.py", "offering.py", "build.py", "handout.py", "batch.py", "batch_*.py",
              "report.py", "review.py", "mutants.py", "gradescope_files")
PRISTINE = "tools/pristine"  # the editable files as handed out (submission.py reads them)
HANDOUT_RUBRIC_NOTE = """\
# This is the handout's copy: the visible tests only. The hidden tests (other seeds, secret to
# the course, and 500 examples or more) stay with the course staff and run on the autograder.
"""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
MARKER = re.compile(r"#\s*(BEGIN|END)\s+STUDENT\s+PART\b\s*(.*?)\s*\Z")
STUB_COMMENT = "# STUDENT PART {part}: yours to write"
STUB_MESSAGE = "{part}: {function} is yours to write (see LAB.md)"
LINE_LENGTH = 100  # the lab's (pyproject.toml): a long raise is wrapped to stay within it


class BuildError(Exception):
    """The solution cannot be turned into a handout; the message names file and line."""


@dataclass(frozen=True)
class Part:
    """One marked region: lines `begin` and `end` are the markers (1-based)."""

    name: str
    begin: int
    end: int


@dataclass(frozen=True)
class MarkedFunction:
    """A function inside a student part, as found in the solution."""

    part: str
    qualname: str  # "fill", or "ShadowTables.fill" for a method
    node: ast.FunctionDef | ast.AsyncFunctionDef


# ----- files --------------------------------------------------------------------------------------


def ignore_patterns(solution: Path) -> list[str]:
    """The built-in patterns and those of solution/.handoutignore (one glob a line, # comments)."""
    patterns = list(ALWAYS_IGNORED)
    path = solution / IGNORE_FILE
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line.rstrip("/") or line)
    return patterns


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether the relative path `rel` (posix) is left out. As in .gitignore: a pattern without a
    slash matches any one name along the path; one with a slash (a leading one included) matches
    from the top, the path or a folder above it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        if "/" in pattern:
            anchored = pattern.lstrip("/")
            if any(fnmatch.fnmatchcase(p, anchored) for p in prefixes):
                return True
        elif any(fnmatch.fnmatchcase(name, pattern) for name in parts):
            return True
    return False


def list_files(root: Path, patterns: list[str]) -> list[str]:
    """The files under `root` that are not ignored, as sorted relative posix paths."""
    out = []
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if not ignored(prefix + d, patterns))
        out += [prefix + n for n in names if not ignored(prefix + n, patterns)]
    return sorted(out)


def generate(solution: Path, tools: bool = True) -> dict[str, bytes]:
    """The handout for `solution`: relative posix path -> content, with the vmlab tool as
    tools/ unless `tools` is false. Writes nothing."""
    solution = Path(solution)
    if not solution.is_dir():
        raise BuildError(f"{solution}: no such folder (the solution to make the handout from)")
    patterns = ignore_patterns(solution)
    files = {}
    for rel in list_files(solution, patterns):
        path = solution / rel
        data = path.read_bytes()
        if rel.endswith(".py"):
            data = strip_source(data, _display(path))
        files[rel] = data
    if tools:
        for rel in list_files(TOOL, list(ALWAYS_IGNORED) + list(STAFF_ONLY)):
            files[f"tools/vmlab/{rel}"] = (TOOL / rel).read_bytes()
        files["tools/vmlab/rubric.toml"] = visible_rubric(
            (TOOL / "rubric.toml").read_text(encoding="utf-8")).encode()
        files["tools/pyproject.toml"] = TOOL_PYPROJECT.encode()
        for rel in tomllib.loads(files["tools/vmlab/rubric.toml"].decode())["lab"]["editable"]:
            if rel not in files:
                raise BuildError(f"rubric.toml: the editable file {rel} is not in the solution")
            files[f"{PRISTINE}/{rel}"] = files[rel]
    return files


def visible_rubric(text: str) -> str:
    """The rubric as the handout has it: every hidden test (its id, seed and examples) left
    out, comments kept."""
    from .rubric import split_tests
    head, blocks = split_tests(text)
    head = head.replace("\n[lab]", "\n" + HANDOUT_RUBRIC_NOTE + "\n[lab]", 1)
    return head + "".join(block for test, block in blocks if test["visibility"] == "visible")


def current(dest: Path) -> dict[str, bytes]:
    """What is on disk in `dest` now, caches left out."""
    dest = Path(dest)
    if not dest.is_dir():
        return {}
    return {rel: (dest / rel).read_bytes() for rel in list_files(dest, list(ALWAYS_IGNORED))}


def differences(files: dict[str, bytes], dest: Path) -> list[str]:
    """One line per file where `dest` differs from `files`, e.g. "changed  vmm/trap.py"."""
    on_disk = current(dest)
    out = []
    for rel in sorted(set(files) | set(on_disk)):
        if rel not in on_disk:
            out.append(f"missing  {rel}")
        elif rel not in files:
            out.append(f"extra    {rel}")
        elif on_disk[rel] != files[rel]:
            out.append(f"changed  {rel}")
    return out


def write(files: dict[str, bytes], dest: Path) -> list[str]:
    """Make `dest` hold exactly `files`: write what differs, delete files that are not in it
    (caches aside) and the folders that leaves empty. Returns the differences it fixed."""
    dest = Path(dest)
    changed = differences(files, dest)
    dest.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = dest / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for rel in current(dest):
        if rel not in files:
            (dest / rel).unlink()
    for folder, _dirs, _names in sorted(os.walk(dest), key=lambda t: -len(t[0])):
        if Path(folder) != dest and not os.listdir(folder):
            os.rmdir(folder)
    return changed


# ----- student parts in one Python file -----------------------------------------------------------


def find_parts(source: str, filename: str) -> list[Part]:
    """The marked regions of `source`, checked: balanced, not nested, named."""
    parts: list[Part] = []
    open_part: tuple[str, int] | None = None
    lines = [line.rstrip("\r\n") for line in _lines(source)]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as err:
        raise BuildError(f"{filename}: cannot read the Python source: {err}") from None
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        match = MARKER.match(tok.string)
        if match is None:
            continue
        line = tok.start[0]
        where = f"{filename}:{line}"
        kind, name = match.groups()
        if lines[line - 1].strip() != tok.string.strip():
            raise BuildError(f"{where}: a STUDENT PART marker must be a line of its own")
        if kind == "BEGIN":
            if not NAME.match(name):
                raise BuildError(f"{where}: BEGIN STUDENT PART needs a part name (letters, digits, "
                                 f"'-', '_', '.'), got {name!r}")
            if open_part is not None:
                raise BuildError(f"{where}: BEGIN STUDENT PART {name} inside part {open_part[0]} "
                                 f"(begun at line {open_part[1]}): parts cannot nest")
            open_part = (name, line)
        else:
            if open_part is None:
                raise BuildError(f"{where}: END STUDENT PART without a BEGIN before it")
            if name and name != open_part[0]:
                raise BuildError(f"{where}: END STUDENT PART {name} closes part {open_part[0]} "
                                 f"(begun at line {open_part[1]})")
            parts.append(Part(open_part[0], open_part[1], line))
            open_part = None
    if open_part is not None:
        raise BuildError(f"{filename}:{open_part[1]}: BEGIN STUDENT PART {open_part[0]} is never "
                         f"closed (no END STUDENT PART after it)")
    return parts


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function definition in `tree` with its qualified name."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _start(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The first line of a definition, its decorators included."""
    return min([node.lineno] + [d.lineno for d in node.decorator_list])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def marked_functions(source: str, filename: str) -> tuple[list[Part], list[MarkedFunction]]:
    """The parts of `source` and the functions they hold, checked: each region holds only whole
    function definitions (and comments or blank lines), and each function has a docstring."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as err:
        raise BuildError(f"{filename}:{err.lineno}: cannot parse: {err.msg}") from None
    parts = find_parts(source, filename)
    if not parts:
        return [], []
    lines = [line.rstrip("\r\n") for line in _lines(source)]
    functions = _functions(tree)
    found: list[MarkedFunction] = []
    for part in parts:
        inside = []
        for qualname, node in functions:
            start, end = _start(node), node.end_lineno or node.lineno
            if part.begin < start and end < part.end:
                if not any(_start(o) <= start and end <= (o.end_lineno or 0) for _, o in inside):
                    inside.append((qualname, node))
            else:
                for line, verb in ((part.begin, "begins"), (part.end, "ends")):
                    if start <= line <= end:
                        raise BuildError(f"{filename}:{line}: student part {part.name} {verb} "
                                         f"inside function {qualname} (line {start}); a part "
                                         f"holds whole functions")
        covered: set[int] = set()
        for _, node in inside:
            covered.update(range(_start(node), (node.end_lineno or node.lineno) + 1))
        for n in range(part.begin + 1, part.end):
            text = lines[n - 1].strip()
            if n in covered or not text or text.startswith("#"):
                continue
            raise BuildError(f"{filename}:{n}: student part {part.name} holds something other "
                             f"than function definitions: {text[:60]!r}")
        if not inside:
            raise BuildError(f"{filename}:{part.begin}: student part {part.name} holds no "
                             f"function definition")
        for qualname, node in inside:
            first = node.body[0]
            if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                raise BuildError(f"{filename}:{node.lineno}: function {qualname} in student part "
                                 f"{part.name} has no docstring (it is the student's contract)")
            doc_end = first.end_lineno or first.lineno
            if lines[first.lineno - 1][:first.col_offset].strip():
                raise BuildError(f"{filename}:{node.lineno}: function {qualname} in student part "
                                 f"{part.name}: put its docstring on a line of its own below "
                                 f"the def")
            if len(node.body) > 1 and node.body[1].lineno == doc_end:
                raise BuildError(f"{filename}:{doc_end}: function {qualname} in student part "
                                 f"{part.name}: nothing may follow the docstring on its line")
            found.append(MarkedFunction(part.name, qualname, node))
    return parts, found


def strip_source(data: bytes, path: Path | str) -> bytes:
    """A Python file of the solution as the handout has it."""
    filename = str(path)
    if b"STUDENT PART" not in data:
        return data
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise BuildError(f"{filename}:{line}: not UTF-8 ({err.reason})") from None
    parts, functions = marked_functions(source, filename)
    if not parts:
        return data
    lines = _lines(source)
    out: list[str] = []
    drop: set[int] = set()  # 1-based lines that do not reach the handout
    add: dict[int, str] = {}  # 1-based line -> what replaces it
    for part in parts:
        marker = lines[part.begin - 1]
        indent = marker[:_indent(marker)]
        add[part.begin] = indent + STUB_COMMENT.format(part=part.name) + _eol(marker)
        drop.add(part.end)
        # comments indented deeper than the part's functions trail a body: they go with it
        level = min(_indent(lines[_start(f.node) - 1]) for f in functions
                    if part.begin < f.node.lineno < part.end)
        for n in range(part.begin + 1, part.end):
            text = lines[n - 1]
            if text.strip().startswith("#") and _indent(text) > level:
                drop.add(n)
    for f in functions:
        doc = f.node.body[0]
        doc_end = doc.end_lineno or doc.lineno
        body_line = lines[doc.lineno - 1]
        indent = body_line[:doc.col_offset]
        last = lines[doc_end - 1]
        add[doc_end] = last.rstrip("\r\n") + _eol(last) + _stub_raise(indent, f, _eol(last))
        drop.update(range(doc_end + 1, (f.node.end_lineno or doc_end) + 1))
    for n, text in enumerate(lines, start=1):
        if n in add:
            out.append(add[n])
        elif n not in drop:
            out.append(text)
    return "".join(out).encode("utf-8")


def _stub_raise(indent: str, f: MarkedFunction, eol: str) -> str:
    """The raise that replaces a body, on one line or, past LINE_LENGTH, on two."""
    message = STUB_MESSAGE.format(part=f.part, function=f.qualname)
    line = f'{indent}raise NotImplementedError("{message}")'
    if len(line) <= LINE_LENGTH:
        return line + eol
    step = "    " if not indent or indent[0] == " " else "\t"
    return f'{indent}raise NotImplementedError({eol}{indent}{step}"{message}"){eol}'


def _lines(source: str) -> list[str]:
    """The lines of `source` with their ends, split where Python counts lines (str.splitlines
    also splits at form feeds and other separators, which would put ast's line numbers off)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", source)


def _eol(line: str) -> str:
    stripped = line.rstrip("\r\n")
    return line[len(stripped):] or "\n"


def _display(path: Path) -> str:
    """`path` as errors name it: relative to the current folder when it is below it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
