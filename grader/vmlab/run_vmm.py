"""`vmlab run --vmm shadow|nested PROGRAM...`: run programs as guests under the lab's VMM.

With one guest, standard output is its console output, byte for byte, as on the bare machine;
with several, each line is prefixed with the guest's name. Accounting (`--stats`) and how each
guest stopped go to standard error.
"""

from __future__ import annotations

import sys

from .errors import fail

CHUNK = 200_000


def run_guests(progs: list, modes: str, channels: list[str], max_steps: int, stats: bool,
               trace: bool, memory: int | None) -> int:
    from vmm import VMM
    from vmm.monitor import GUEST_MEMORY

    paging = [m.strip() for m in modes.split(",")]
    if len(paging) == 1:
        paging *= len(progs)
    if len(paging) != len(progs) or any(p not in ("shadow", "nested") for p in paging):
        raise fail(f"--vmm takes shadow or nested, once or once per program; got {modes!r} "
                   f"for {len(progs)} program(s)")
    if trace:
        raise fail("--trace runs the bare machine only; under the VMM use --stats")
    v = VMM()
    try:
        guests = [v.create_guest(p, name=p.name.rsplit("/", 1)[-1].split(".")[0],
                                 memory=memory or GUEST_MEMORY, paging=mode)
                  for p, mode in zip(progs, paging, strict=True)]
    except ValueError as err:
        raise fail(str(err)) from None
    for spec in channels:
        a, _, b = spec.partition(":")
        if not (a.isdigit() and b.isdigit() and int(a) < len(guests) and int(b) < len(guests)):
            raise fail(f"--channel {spec!r}: expected SENDER:RECEIVER with program numbers "
                       f"0..{len(guests) - 1}")
        v.connect(guests[int(a)], guests[int(b)])
    printer = ConsolePrinter(guests)
    left = max_steps
    while True:
        chunk = min(CHUNK, left)
        stop = v.run(chunk)
        left -= chunk
        printer.flush()
        if stop.reason != "budget" or left <= 0:
            break
    printer.flush(final=True)
    if stop.reason == "handler-error":  # the student's code raised: their frames only
        from .run import your_exception
        sys.stderr.write(your_exception(stop.detail) + "\n")
        return stop.exit_code
    if stop.reason not in ("halted", "budget"):  # the VMM itself failed
        sys.stderr.write(f"vmlab: the VMM stopped: {stop}\n")
        return stop.exit_code
    if stats:
        print_guest_stats(v)
    code = 0
    for g in guests:
        how = g.stop if g.stop is not None else f"still running after {max_steps} steps"
        sys.stderr.write(f"vmlab: {g.name} ({g.paging}): {how}\n")
        if code == 0 and (g.stop is None or not g.stop.clean):
            code = g.stop.exit_code if g.stop is not None else 4
    return code


class ConsolePrinter:
    """Copies the guests' console output to stdout as it appears."""

    def __init__(self, guests: list) -> None:
        self.guests = guests
        self.done = [0] * len(guests)

    def flush(self, final: bool = False) -> None:
        out = sys.stdout.buffer
        for i, g in enumerate(self.guests):
            data = bytes(g.console[self.done[i]:])
            if len(self.guests) == 1:
                out.write(data)
                self.done[i] += len(data)
                continue
            lines = data.split(b"\n")
            complete, rest = lines[:-1], lines[-1]
            for line in complete:
                out.write(f"[{g.name}] ".encode() + line + b"\n")
            self.done[i] += len(data) - len(rest)
            if final and rest:
                out.write(f"[{g.name}] ".encode() + rest + b"\n")
                self.done[i] += len(rest)
        out.flush()


def print_guest_stats(v: object) -> None:
    from machine.traps import cause_name

    h = v.machine.hart  # type: ignore[attr-defined]
    w = sys.stderr.write
    for g in v.guests:  # type: ignore[attr-defined]
        total = g.native + g.emulated
        direct = 100.0 * g.native / total if total else 0.0
        w(f"vmlab: {g.name} ({g.paging}): {g.vcpu.instret} instructions, {g.native} run "
          f"directly ({direct:.1f}%), {g.emulated} emulated\n")
        for cause, n in sorted(g.traps.items()):
            w(f"vmlab:   {n:8} traps: {cause_name(cause)}\n")
        if g.shadow is not None:
            w(f"vmlab:   shadow fills {g.shadow.fills}, flushes {g.shadow.flushes}\n")
        if g.gstage is not None:
            w(f"vmlab:   G-stage fills {g.gstage.fills}\n")
    ch = v.channels  # type: ignore[attr-defined]
    w(f"vmlab: host: page walks {h.mmu.walks}, memory references by walks {h.mmu.refs}, "
      f"IPC messages sent {ch.sent}, received {ch.received}\n")
