"""The lab as the worker sees it: the student's vmm/, and a `machine` package whose `Machine` is
the console to the hardware of record, in the grading process.

The worker's `machine` is the pristine one, with three of the grader's files beside it: wire.py
(the messages), hardware.py (the hardware, as the grading process runs it) and remote.py (the
console, `Machine` to a VMM). The VMM runs guests on a copy of the hardware in its own
process, and every message between the two goes to the grader, which replays them on its own
hardware and holds the worker to what that hardware says (hardware.Replay). A submission that
runs guests otherwise (on the machine's own classes, say) runs them where no verdict looks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent
GRADER_FILES = ("wire.py", "remote.py", "hardware.py")
# `Machine` as a VMM imports it is the console; the machine's own modules keep theirs
CONSOLE = ("\nfrom .remote import Machine  # noqa: E402,F811 - the hardware of record is "
           "the grader's\n")


def build(machine: Path, into: Path) -> Path:
    """Write the worker's `machine` package, made from the pristine `machine` folder, into
    `into`/machine; return that folder."""
    out = into / "machine"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(machine, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in GRADER_FILES:
        shutil.copyfile(HERE / name, out / name)
    with open(out / "__init__.py", "a") as f:
        f.write(CONSOLE)
    return out
