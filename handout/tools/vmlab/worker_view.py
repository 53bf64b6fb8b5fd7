"""The lab as the worker sees it: the student's vmm/, and a `machine` package without a machine.

A student's VMM needs the machine's constants and types (CSR numbers, causes, PTE bits, the
decoder, the device tree, `TrapEvent`, `Stop`) and a `Machine` to run guests on. It must not
have the hart's interpreter, MMU and TLB in its own process: there, a submission could run a
guest on the bare machine and report what it saw as its VMM's work. So the worker's `machine`
is made from the pristine one: the modules that describe the hardware copied whole, the ones
that are the hardware cut down to their constants and types, and `Machine` the grader's remote
console (remote.py, over wire.py) to the hardware in the grading process (hardware.py).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

HERE = Path(__file__).parent
WHOLE = ("board", "csr", "csrs", "decode", "errors", "fdt", "program", "traps", "uart")
# what of each module that is the hardware stays out: its engine
CUT = {"hart": {"Hart", "_fatal_story"},
       "mmu": {"MMU", "_matches"},
       "sbi": {"firmware", "legacy", "call", "debug_console"},
       "machine": {"Machine"},
       "__init__": set()}
ADDED = {"machine": "from .remote import Machine  # noqa: E402 - the hardware is the grader's\n"}
GRADER_FILES = {"wire.py": "wire.py", "remote.py": "remote.py"}


def build(machine: Path, into: Path) -> Path:
    """Write the worker's `machine` package, made from the pristine `machine` folder, into
    `into`/machine; return that folder."""
    out = into / "machine"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in WHOLE:
        shutil.copyfile(machine / f"{name}.py", out / f"{name}.py")
    defined = {name: _top_names(machine / f"{name}.py") for name in WHOLE}
    for name in CUT:  # in an order where a module's imports are cut before it
        text, defined[name] = _cut(machine / f"{name}.py", CUT[name], defined)
        (out / f"{name}.py").write_text(text + ADDED.get(name, ""))
    for source, target in GRADER_FILES.items():
        shutil.copyfile(HERE / source, out / target)
    return out


def _top_names(path: Path) -> set[str]:
    return _defined(ast.parse(path.read_text()).body)


def _defined(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _cut(path: Path, drop: set[str], defined: dict[str, set[str]]) -> tuple[str, set[str]]:
    """The module without `drop` and without imports of what the worker's package lacks."""
    tree = ast.parse(path.read_text())
    kept: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in drop:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            node = _available(node, defined)
            if node is None:
                continue
        kept.append(node)
    tree.body = kept
    names = _defined(kept)
    for node in kept:  # __all__ names only what is there
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets) \
                and isinstance(node.value, ast.List):
            node.value.elts = [e for e in node.value.elts
                               if not isinstance(e, ast.Constant) or e.value in names
                               or e.value == "Machine"]
    return ast.unparse(tree) + "\n", names


def _available(node: ast.ImportFrom, defined: dict[str, set[str]]) -> ast.ImportFrom | None:
    """A relative import cut to what the worker's package has, or None."""
    if node.module is None:  # from . import csr, sbi
        node.names = [a for a in node.names if a.name in defined]
        return node if node.names else None
    have = defined.get(node.module)
    if have is None:
        return None
    extra = {"Machine"} if node.module == "machine" else set()
    node.names = [a for a in node.names if a.name in have | extra]
    return node if node.names else None
