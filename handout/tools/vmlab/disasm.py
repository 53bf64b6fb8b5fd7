"""`vmlab disasm FILE`: disassemble an ELF or flat binary, in a form `vmlab asm` reads back."""

from __future__ import annotations

from pathlib import Path

import typer

from . import labroot
from .errors import fail


def disasm(
    program: Path = typer.Argument(..., help="ELF or flat binary"),
    base: str = typer.Option("0x80400000", "--base", help="load address of a flat binary"),
) -> None:
    """Print the instructions of PROGRAM, one per line, with address and bits as comments."""
    labroot.use()
    from machine import VmlabError
    from machine.disasm import disassemble
    from machine.loader import load_binary, load_elf

    try:
        base_addr = int(base, 0)
    except ValueError:
        raise fail(f"--base must be a number such as 0x80400000, got {base!r}") from None
    try:
        data = program.read_bytes()
    except OSError as err:
        raise fail(f"cannot read {program}: {err}") from None
    try:
        prog = (load_elf(data, str(program)) if data[:4] == b"\x7fELF"
                else load_binary(data, str(program), base_addr))
    except VmlabError as err:
        raise fail(str(err)) from None
    for seg in prog.segments:
        for off in range(0, len(seg.data) - len(seg.data) % 4, 4):
            addr = seg.addr + off
            word = int.from_bytes(seg.data[off:off + 4], "little")
            # the instruction first, so that `vmlab asm` reads the output back unchanged
            typer.echo(f"    {disassemble(word, addr):<36}# {addr:08x}: {word:08x}")
