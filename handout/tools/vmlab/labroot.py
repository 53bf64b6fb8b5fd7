"""Which copy of the lab (the `machine` and `vmm` packages) the tool works on.

In order: the VMLAB_LAB environment variable; the current directory, if it holds `machine/`
(a student's handout); the `solution/` beside this package in the repository (course staff).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def find() -> Path:
    env = os.environ.get("VMLAB_LAB")
    if env:
        return Path(env).resolve()
    here = Path.cwd()
    if (here / "machine" / "__init__.py").is_file():
        return here
    return REPO / "solution"


def use(root: Path | None = None) -> Path:
    """Put the lab on the import path (first) and return it."""
    root = find() if root is None else root
    path = str(root)
    if path not in sys.path:
        sys.path.insert(0, path)
    return root
