"""The lab as the worker sees it: the student's vmm/, and a `machine` package whose `Machine` is
the console to the hardware of record, in the grading process.

The worker's `machine` is the pristine one, with three of the grader's files beside it: wire.py
(the messages), hardware.py (the hardware, as the grading process runs it) and remote.py (the
console, `Machine` to a VMM). The VMM runs guests on a copy of the hardware in its own
process, and every message between the two goes to the grader, which replays them on its own
hardware and holds the worker to what that hardware says (hardware.Replay). A submission that
runs guests otherwise (on the machine's own classes, say) runs them where no verdict looks.

A test of one handler (hardware.HANDLER_PROBES) runs no guest, and its verdict is the virtual
CPU the handler leaves, which no hardware sees. There the worker's `machine` has no engine
(`engine=False`): the hart's trap entry, sret and interpreter, the machine's run and the
firmware raise when called, so that the handler's work is the student's code and not the
machine's, done for it by a scratch `Hart` (LAB.md, "Your parts are your code"). Their names
stay, so that importing them, or naming them in a type hint, is no error.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

HERE = Path(__file__).parent
GRADER_FILES = ("wire.py", "remote.py", "hardware.py")
# `Machine` as a VMM imports it is the console; the machine's own modules keep theirs
CONSOLE = ("\nfrom .remote import Machine  # noqa: E402,F811 - the hardware of record is "
           "the grader's\n")
# What does a handler's work, by module: the functions and methods that raise without an engine
# ("*": every name the module defines)
ENGINE = {"hart": {"Hart.take_trap", "Hart._trap", "Hart.sret", "Hart.step", "Hart.fetch",
                   "Hart.load", "Hart.store", "Hart.translate", "Hart.interrupt_due",
                   "_fatal_story"},
          "machine": {"Machine.step", "Machine.run_one_plain", "Machine.run",
                      "Machine.translate", "Machine._call_handler"},
          # the firmware that answers a hart's call (`base`'s table of numbers is a hint's)
          "sbi": {"firmware", "legacy", "call", "debug_console"},
          "execute": {"*"},
          "blocks": {"*"}}
UNPLUGGED = ("{name} is the hardware's, not your VMM's (LAB.md: \"Your parts are your "
             "code\"); in a test of one handler the machine runs nothing")
# a module of ENGINE's "*", as a worker without the engine has it
STUB = '''"""machine/{module}.py is the hardware's: not in a test of one handler."""


class _Unplugged:
    """What the module defined: called, indexed or looked into, it raises."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError({message!r})

    __call__ = __getitem__ = __iter__ = __len__ = _refuse

    def __getattr__(self, name: str) -> None:
        self._refuse()


_unplugged = _Unplugged()
'''


def build(machine: Path, into: Path, engine: bool = True) -> Path:
    """Write the worker's `machine` package, made from the pristine `machine` folder, into
    `into`/machine (without the engine, if `engine` is False); return that folder."""
    out = into / "machine"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(machine, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not engine:
        for module, names in ENGINE.items():
            path = out / f"{module}.py"
            path.write_text(unplugged_module(path.read_text(), module) if "*" in names
                            else unplugged(path.read_text(), names, module))
    for name in GRADER_FILES:
        shutil.copyfile(HERE / name, out / name)
    with open(out / "__init__.py", "a") as f:
        f.write(CONSOLE)
    return out


def unplugged(source: str, names: set[str], module: str) -> str:
    """`source` (machine/`module`.py) with the bodies of the functions and methods `names`
    ("Class.method") replaced by a raise."""
    tree = ast.parse(source)
    cut = set()
    for node in tree.body:
        for fn, name in _functions(node):
            if name in names:
                fn.body = _raise(f"{name} (machine/{module}.py)")
                cut.add(name)
    if cut != names:  # the machine changed: what ENGINE names would stay, unnoticed
        raise ValueError(f"machine/{module}.py has no {', '.join(sorted(names - cut))}: "
                         "worker_view.ENGINE is out of date")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def unplugged_module(source: str, module: str) -> str:
    """A module that defines the names `source` defines, each an object that raises."""
    names = sorted(_defined(ast.parse(source).body))
    message = UNPLUGGED.format(name=f"machine/{module}.py")
    return STUB.format(module=module, message=message) + "".join(
        f"{name} = _unplugged\n" for name in names)


def _functions(node: ast.stmt) -> list[tuple[ast.FunctionDef, str]]:
    if isinstance(node, ast.FunctionDef):
        return [(node, node.name)]
    if isinstance(node, ast.ClassDef):
        return [(n, f"{node.name}.{n.name}") for n in node.body if isinstance(n, ast.FunctionDef)]
    return []


def _raise(name: str) -> list[ast.stmt]:
    return ast.parse(f"raise RuntimeError({UNPLUGGED.format(name=name)!r})").body


def _defined(body: list[ast.stmt]) -> set[str]:
    """The names a module's top level binds, imports aside."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names
