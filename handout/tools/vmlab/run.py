"""`vmlab run PROGRAM`: run a program on the bare machine.

Standard output carries exactly the guest's console output, byte for byte; the trace, statistics
and how the run stopped go to standard error. The exit status says how it stopped: 0 for a clean
SBI shutdown, and the non-zero codes of machine.EXIT_CODES otherwise.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import labroot
from .errors import fail

if TYPE_CHECKING:
    from machine import Machine, Stop

CHUNK = 200_000  # steps between console flushes, so output appears while a long run goes on


def run(
    programs: list[Path] = typer.Argument(..., help="assembly (.S/.s), ELF, or flat binary; "
                                          "several with --vmm"),
    trace: bool = typer.Option(False, "--trace", help="print every instruction to stderr"),
    max_steps: int = typer.Option(50_000_000, "--max-steps", help="stop after this many steps"),
    ram_mib: int = typer.Option(128, "--ram", help="RAM size in MiB (per guest with --vmm: 32)"),
    stats: bool = typer.Option(False, "--stats", help="print counters to stderr at the end"),
    vmm: str = typer.Option("", "--vmm", help="run under the VMM: shadow or nested, or one "
                            "per program separated by commas"),
    channel: list[str] = typer.Option([], "--channel", help="with --vmm: SENDER:RECEIVER, "
                                      "program numbers from 0; channel ids count from 0"),
) -> None:
    """Run programs on the bare machine, or as guests under the VMM, and print their output."""
    labroot.use()
    from machine import VmlabError
    from machine.loader import load_program

    if max_steps <= 0:
        raise fail(f"--max-steps must be a positive number of steps, got {max_steps}")
    if not 8 <= ram_mib <= 2047:
        raise fail(f"--ram must be between 8 and 2047 MiB, got {ram_mib}")
    try:
        progs = [load_program(str(p)) for p in programs]
    except VmlabError as err:
        raise fail(str(err)) from None
    if vmm:
        from .run_vmm import run_guests
        raise typer.Exit(run_guests(progs, vmm, channel, max_steps, stats, trace,
                                    None if ram_mib == 128 else ram_mib << 20))
    if len(progs) > 1 or channel:
        raise fail("several programs, or --channel, need --vmm (the bare machine runs one)")
    raise typer.Exit(run_bare(progs[0], ram_mib << 20, max_steps, trace, stats))


def run_bare(prog: object, ram_size: int, max_steps: int, trace: bool, stats: bool) -> int:
    from machine import Machine, VmlabError

    try:
        m = Machine(ram_size=ram_size)
        m.load(prog)  # type: ignore[arg-type]
    except VmlabError as err:
        raise fail(str(err)) from None
    stop = trace_machine(m, max_steps) if trace else run_streaming(m, max_steps)
    if stats:
        print_stats(m)
    sys.stderr.write(f"vmlab: {stop}\n")
    return stop.exit_code


def run_streaming(m: Machine, max_steps: int) -> Stop:
    """Run, copying console output to stdout as it appears."""
    from machine import Stop

    printed, left = 0, max_steps
    while True:
        chunk = min(CHUNK, left)
        stop = m.run(chunk)
        left -= chunk
        out = m.console
        sys.stdout.buffer.write(out[printed:])
        sys.stdout.flush()
        printed = len(out)
        if stop.reason != "budget":
            return stop
        if left <= 0:
            return Stop("budget", f"ran {max_steps} steps without stopping (--max-steps)")


def trace_machine(m: Machine, max_steps: int) -> Stop:
    from machine.trace import trace_run

    stop = trace_run(m, max_steps, sys.stderr)
    sys.stdout.buffer.write(m.console)
    sys.stdout.flush()
    return stop


def your_exception(detail: str) -> str:
    """A handler-error's traceback as the student needs it: their function and file first,
    then their frames only (vmm/), and the exception; not the machine's frames, nor the trap
    that was being handled when their code raised ("During handling of ...")."""
    last = detail.rsplit("Traceback (most recent call last):", 1)[-1]
    lines = last.strip().splitlines()
    exc = lines[-1] if lines else detail.strip()
    frames, i = [], 0
    while i < len(lines) - 1:
        line = lines[i]
        if line.lstrip().startswith("File ") and f"{os.sep}vmm{os.sep}" in line:
            file = "vmm/" + line.split(f"{os.sep}vmm{os.sep}", 1)[1]
            frames.append('  File "' + file)
            if i + 1 < len(lines) - 1 and not lines[i + 1].lstrip().startswith("File "):
                frames.append(lines[i + 1])
        i += 1
    m = re.search(r'File "(vmm/\w+\.py)", line (\d+), in (\w+)', "\n".join(frames[::-1]))
    head = "vmlab: your VMM raised an exception, and the run stopped (handler-error)"
    if m:
        head = f"vmlab: `{m.group(3)}` in {m.group(1)} (line {m.group(2)}) raised {exc}"
        if exc.startswith("NotImplementedError"):
            head = (f"vmlab: `{m.group(3)}` in {m.group(1)} is not written yet "
                    f"({exc.split(': ', 1)[-1]})")
    return "\n".join([head, "Traceback (your code, most recent call last):", *frames, exc])


def print_stats(m: Machine) -> None:
    h = m.hart
    sys.stderr.write(f"vmlab: steps={m.steps} instret={h.instret} time={h.time()} "
                     f"page-walks={h.mmu.walks} walk-refs={h.mmu.refs}\n")
