"""`vmlab asm SOURCE`: assemble to a flat binary (loaded at 0x8040_0000), or print a listing."""

from __future__ import annotations

from pathlib import Path

import typer

from . import labroot
from .errors import fail


def asm(
    source: Path = typer.Argument(..., help="assembly source"),
    output: Path = typer.Option(None, "-o", "--output", help="flat binary to write"),
    listing: bool = typer.Option(False, "--listing", help="print address, bytes and source"),
) -> None:
    """Assemble SOURCE; write a flat binary (-o) and/or print a listing."""
    labroot.use()
    from machine import VmlabError
    from machine.asm import assemble
    from machine.disasm import listing as make_listing

    try:
        text = source.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise fail(f"cannot read {source}: {err}") from None
    try:
        prog = assemble(text, str(source))
    except VmlabError as err:
        raise fail(str(err)) from None
    if output is None and not listing:
        raise fail("say what to make: -o FILE for a flat binary, or --listing")
    if output is not None:
        image = bytearray()
        base = min(s.addr for s in prog.segments)
        for seg in prog.segments:
            image[seg.addr - base:seg.addr - base + len(seg.data)] = seg.data
        output.write_bytes(bytes(image))
    if listing:
        typer.echo(make_listing(prog), nl=False)
