"""Test helpers that run GNU binutils for RISC-V, the reference our assembler and disassembler are
checked against.

When the tools are missing, tests that need them are skipped, except under CI (CI=true), where a
missing reference must not silently turn the cross-checks off: they fail and say what to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "binutils-riscv64-unknown-elf"
PREFIX = "riscv64-unknown-elf-"
TOOLS = ("as", "ld", "objcopy", "objdump")
# Everything isa.py has: RV32IM, Zicsr, Zifencei, pause (Zihintpause) and the hfence.* of H
MARCH = "rv32im_zicsr_zifencei_zihintpause_h"
BASE = 0x8040_0000


def skip_or_fail(message: str) -> None:
    """A tool a test needs is missing: skip, but fail in CI, which must run every test."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def binutils() -> dict[str, str]:
    """Paths of the GNU tools, or skip the test (fail it under CI) when they are missing."""
    paths = {tool: shutil.which(PREFIX + tool) for tool in TOOLS}
    missing = [PREFIX + tool for tool, path in paths.items() if path is None]
    if missing:
        skip_or_fail(f"GNU binutils for RISC-V not found ({', '.join(missing)}): install the "
                     f"Debian package {PACKAGE} (apt-get install {PACKAGE})")
    return paths


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _assemble(tmp: Path, source: str, relax: bool = False) -> subprocess.CompletedProcess:
    tools = binutils()
    (tmp / "src.s").write_text(source + "\n")
    return _run(tools["as"], f"-march={MARCH}", "-mabi=ilp32", *([] if relax else ["-mno-relax"]),
                "-o", str(tmp / "src.o"), str(tmp / "src.s"))


def _checked(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        raise AssertionError(f"{what} failed:\n{result.stderr}")


def gnu_link(source: str, base: int = BASE, data_base: int | None = None) -> bytes:
    """An ELF executable made by GNU as and ld from `source`, with .text at `base`."""
    tools = binutils()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        _checked(_assemble(tmp, source), "riscv64-unknown-elf-as")
        where = [f"-Ttext={base:#x}"] + ([f"-Tdata={data_base:#x}"] if data_base else [])
        _checked(_run(tools["ld"], "-m", "elf32lriscv", *where, "-o", str(tmp / "a.elf"),
                      str(tmp / "src.o")), "riscv64-unknown-elf-ld")
        return (tmp / "a.elf").read_bytes()


def gnu_bytes(source: str, base: int = BASE, section: str = ".text") -> bytes:
    """The bytes GNU as and ld make of `section` when it is placed at `base`."""
    tools = binutils()
    elf = (gnu_link(source, base) if section == ".text"
           else gnu_link(source, 0x10000, data_base=base))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "a.elf").write_bytes(elf)
        _checked(_run(tools["objcopy"], "-O", "binary", "-j", section, str(tmp / "a.elf"),
                      str(tmp / "out.bin")), "riscv64-unknown-elf-objcopy")
        return (tmp / "out.bin").read_bytes()


def gnu_reassemble(lines: list[str]) -> list[int | None]:
    """Each line assembled alone by GNU as into one word, or None where GNU rejects it."""
    tools = binutils()
    lines = list(lines)
    rejected: set[int] = set()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for _ in range(2):  # the second run has the rejected lines replaced by placeholders
            result = _assemble(tmp, "\n".join(lines))
            if result.returncode == 0:
                break
            bad = {int(n) - 1 for n in re.findall(r"src\.s:(\d+): Error", result.stderr)}
            assert bad, result.stderr
            rejected |= bad
            lines = [".word 0" if i in bad else line for i, line in enumerate(lines)]
        _checked(result, "riscv64-unknown-elf-as")
        _checked(_run(tools["objcopy"], "-O", "binary", "-j", ".text", str(tmp / "src.o"),
                      str(tmp / "out.bin")), "riscv64-unknown-elf-objcopy")
        data = (tmp / "out.bin").read_bytes()
    assert len(data) == 4 * len(lines), "a line did not assemble to exactly one word"
    words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
    return [None if i in rejected else w for i, w in enumerate(words)]


def is_32bit_encoding(word: int) -> bool:
    """Whether the low bits announce a 32-bit instruction (not 16, 48 or 64 bits long)."""
    return word & 0b11 == 0b11 and word & 0b11100 != 0b11100


def objdump(words: list[int]) -> list[tuple[str, str] | None]:
    """GNU objdump's (mnemonic, operands) for each word (-M no-aliases,numeric), or None when
    it does not decode the word as an instruction. Every word must be a 32-bit encoding."""
    tools = binutils()
    assert all(is_32bit_encoding(w) for w in words), "objdump would go out of step"
    source = "\n".join(f".word {w:#010x}" for w in words)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        _checked(_assemble(tmp, source), "riscv64-unknown-elf-as")
        # without symbols there is no $d mapping symbol, so objdump decodes the .words
        _checked(_run(tools["objcopy"], "--strip-all", str(tmp / "src.o")), "objcopy")
        result = _run(tools["objdump"], "-d", "-M", "no-aliases,numeric", str(tmp / "src.o"))
        _checked(result, "riscv64-unknown-elf-objdump")
    decoded: dict[int, tuple[str, str] | None] = {}
    for m in re.finditer(r"^\s*([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)[ \t]*(.*)$", result.stdout,
                         re.MULTILINE):
        addr, mnemonic, operands = int(m.group(1), 16), m.group(2), m.group(3)
        operands = re.sub(r"\s*(#|<).*$", "", operands)  # objdump's comments and symbols
        decoded[addr] = None if mnemonic.startswith(".") else (mnemonic, operands)
    return [decoded[4 * i] for i in range(len(words))]


@cache
def gnu_csr_numbers() -> dict[str, int]:
    """CSR name -> number for every CSR that objdump prints by name."""
    csrrs_zero = 0x0000_2073  # csrrs x0, csr, x0
    numbers = {}
    for number, decoded in enumerate(objdump([csrrs_zero | n << 20 for n in range(4096)])):
        assert decoded is not None
        numbers.setdefault(decoded[1].split(",")[1], number)
    return numbers
