"""What course staff should read in a submission: code in its parts that no VMM needs.

A Part 1 test checks the virtual CPU that one function of the VMM leaves, and that state is the
VMM's own, in the student's process. There the worker's machine has no engine (worker_view.py),
so the machine's own classes cannot compute it (a scratch Hart that takes the trap raises); but
a part may still use them where a guest runs, or bring the machine's code in its own files
(README, "What the part tests rest on"). LAB.md forbids it ("Your parts are your code"), so it
is for the staff to find. This reads each editable file's syntax tree, never runs it,
and names the lines that build the machine's interpreter or firmware for the VMM, reach the
grader, the test frameworks or the process's other modules, or run code made at run time.
Plain forms only: a determined student can hide them, though the usual ways of hiding (exec,
importlib, sys.modules, a getattr of a computed name, the builtins) are named too. A finding
is a reason to read, not a verdict: nothing is scored.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# the machine's classes the parts may name (a type hint) but never build: the machine's trap
# entry and interpreter do the very work the parts are for
_BUILT = {
    "machine.hart.Hart": "builds a Hart of its own (the machine's trap entry and interpreter)",
    "machine.Hart": "builds a Hart of its own (the machine's trap entry and interpreter)",
    "machine.machine.Machine": "builds a machine of its own",
    "machine.Machine": "builds a machine of its own",
}
# the machine's firmware on a hart, called or handed on (sbi.base, which the handout calls, is
# a table)
_FIRMWARE = {f"machine.sbi.{name}": "answers with the machine's SBI firmware"
             for name in ("firmware", "call", "legacy", "debug_console")}
_MACHINE_MODULES = {
    "machine.execute": "uses the machine's interpreter (machine/execute.py)",
    "machine.blocks": "uses the machine's interpreter (machine/blocks.py)",
    "machine.wire": "uses the link to the grader's hardware (machine/wire.py)",
}
# methods of the machine's Hart that do a part's work, by name on any object
_HART_METHODS = {"take_trap": "the machine's trap entry (Hart.take_trap)",
                 "_trap": "the machine's trap entry (Hart._trap)"}
_MODULES = {
    "vmlab": "reaches the grader's own code",
    "unittest": "reaches the test framework",
    "hypothesis": "reaches the test framework",
    "gradescope_utils": "reaches the test framework",
    "importlib": "imports modules by name at run time",
    "ctypes": "reaches the interpreter's memory",
    "gc": "walks the process's objects",
    "inspect": "walks the call stack",
    "socket": "opens sockets",
    "subprocess": "starts processes",
    "multiprocessing": "starts processes",
    "signal": "handles signals",
}
_BUILTINS = {"exec": "runs code made at run time", "eval": "runs code made at run time",
             "compile": "runs code made at run time", "__import__": "imports by name at run time",
             "open": "opens files", "breakpoint": "stops in a debugger"}
_COMPUTED = {"getattr", "setattr", "delattr"}  # with a name made at run time: hiding a name
_DUNDERS = {"__builtins__": "reaches the builtins", "__subclasses__": "walks the class tree",
            "__globals__": "reaches a function's module", "__code__": "swaps a function's code",
            "__closure__": "reaches a function's closure"}
_SYS = {"modules": "reaches the process's other modules (sys.modules)",
        "_getframe": "walks the call stack", "settrace": "traces the process",
        "setprofile": "traces the process", "argv": "reads the worker's arguments"}
_OS = {"_exit", "kill", "killpg", "fork", "forkpty", "system", "popen", "setsid", "setpgid",
       "execv", "execve", "execvp", "spawnv", "remove", "unlink", "rename", "replace", "chmod",
       "symlink", "open", "write"}  # not environ: a DEBUG switch read from it is common


# the most telling first: what does a part's work for it, then what hides, then the rest
_TELLING = {*_BUILT.values(), *_FIRMWARE.values(), *_MACHINE_MODULES.values(),
            _MODULES["vmlab"],
            _MODULES["unittest"], "reaches the worker's probes"}
_ORDINARY = {"opens files", "opens sockets", "starts processes", "handles signals",
             "reads the worker's arguments", "stops in a debugger"}


def _rank(what: str) -> int:
    if what in _TELLING or what.startswith("calls the machine's"):
        return 0
    return 2 if what in _ORDINARY or what.startswith("reaches the operating system") else 1


@dataclass(frozen=True)
class Finding:
    file: str  # as the rubric names it: vmm/trap.py
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def review(lab: Path, files: list[str]) -> list[Finding]:
    """The findings in `files` (paths in the assembled `lab`): the most telling first (the
    machine's classes doing a part's work, the grader reached), then the ways of hiding, then
    files, processes and the like; each kind in file and line order."""
    out: list[Finding] = []
    for name in files:
        try:
            tree = ast.parse((lab / name).read_bytes(), filename=name)
        except (SyntaxError, ValueError, OSError):
            continue  # the grader says what is wrong with a file that does not parse
        out += _Reader(name).findings(tree)
    return sorted(out, key=lambda f: _rank(f.what))  # stable: file and line order kept


class _Reader(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.names: dict[str, str] = {}  # a local name -> the dotted thing it was imported as
        self.stars: list[str] = []  # modules imported with *
        self.found: dict[tuple[int, str], None] = {}

    def findings(self, tree: ast.AST) -> list[Finding]:
        # imports first, wherever they are: a name is what it was imported as in all the file
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.names[a.asname or a.name.split(".")[0]] = \
                        a.name if a.asname else a.name.split(".")[0]
                    self._module(node, a.name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name == "*":
                        self.stars.append(node.module)
                        self._module(node, node.module)
                        continue
                    self.names[a.asname or a.name] = f"{node.module}.{a.name}"
                    self._module(node, f"{node.module}.{a.name}")
        self.visit(tree)
        return [Finding(self.file, line, what) for line, what in sorted(self.found)]

    def _note(self, node: ast.AST, what: str) -> None:
        self.found[(getattr(node, "lineno", 0), what)] = None

    def _module(self, node: ast.AST, dotted: str) -> None:
        # naming Hart or Machine (a type hint) is fine, building one is not: calls, below
        for prefix, what in (*_MODULES.items(), *_MACHINE_MODULES.items()):
            if dotted == prefix or dotted.startswith(prefix + "."):
                self._note(node, what)

    def _dotted(self, node: ast.AST) -> str | None:
        """`a.b.c` with `a` resolved through the file's imports."""
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _name(self, name: str) -> str:
        """What a bare name is: imported by name, or one of the machine's by a * import."""
        if name in self.names:
            return self.names[name]
        return next((f"{m}.{name}" for m in self.stars
                     if f"{m}.{name}" in _BUILT or f"{m}.{name}" in _FIRMWARE), name)

    def visit_Call(self, node: ast.Call) -> None:
        dotted = self._dotted(node.func)
        if dotted in _BUILT:
            self._note(node, _BUILT[dotted])
        elif isinstance(node.func, ast.Name) and node.func.id not in self.names:
            name = node.func.id
            if name in _BUILTINS:
                self._note(node, _BUILTINS[name])
            elif name in _COMPUTED and not (len(node.args) > 1 and isinstance(
                    node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                self._note(node, f"names an attribute at run time ({name})")
            elif name in ("globals", "vars"):
                self._note(node, f"reaches a namespace as a dict ({name}())")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = self._dotted(node) or ""
        if node.attr in _HART_METHODS:
            self._note(node, f"calls {_HART_METHODS[node.attr]}")
        elif dotted.startswith("sys.") and node.attr in _SYS and dotted == f"sys.{node.attr}":
            self._note(node, _SYS[node.attr])
        elif dotted == f"os.{node.attr}" and node.attr in _OS:
            self._note(node, f"reaches the operating system (os.{node.attr})")
        elif node.attr == "PROBES":
            self._note(node, "reaches the worker's probes")
        elif node.attr in _DUNDERS:
            self._note(node, _DUNDERS[node.attr])
        for prefix, what in _MACHINE_MODULES.items():
            if dotted.startswith(prefix + "."):
                self._note(node, what)
        if dotted in _FIRMWARE:
            self._note(node, _FIRMWARE[dotted])
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _DUNDERS:
            self._note(node, _DUNDERS[node.id])
        dotted = self._name(node.id)
        if dotted in _FIRMWARE:
            self._note(node, _FIRMWARE[dotted])
