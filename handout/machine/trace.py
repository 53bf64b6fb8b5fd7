"""The instruction tracer: one line per step, naming the mode, pc, instruction and what it wrote.

    S 0x80400000  addi t0, t0, -1                 t0=0x00000009

Traps get a line of their own. Tracing runs the reference interpreter, one step at a time.
"""

from __future__ import annotations

from typing import TextIO

from .disasm import disassemble
from .hart import MODE_NAMES, TrapEvent
from .machine import Machine, Stop
from .traps import cause_name

ABI = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
       "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
       "t3", "t4", "t5", "t6"]


def trace_run(m: Machine, max_steps: int, out: TextIO) -> Stop:
    """Run up to `max_steps` steps, writing a trace line for each to `out`."""
    traps: list[TrapEvent] = []
    m.add_trap_observer(traps.append)
    h = m.hart
    for _ in range(max_steps):
        before, pc, mode = list(h.x), h.pc, h.mode
        stop = m.run_one_plain()
        word = h.last_word
        if traps:
            for t in traps:
                out.write(f"{MODE_NAMES[mode]} {pc:#010x}  -- trap: {cause_name(t.cause)} "
                          f"(stval={t.tval:#010x}) -> pc={h.pc:#010x}\n")
            traps.clear()
        else:
            text = disassemble(word, pc) if word is not None else "(interrupt)"
            wrote = "  ".join(f"{ABI[i]}={h.x[i]:#010x}"
                              for i in range(1, 32) if h.x[i] != before[i])
            out.write(f"{MODE_NAMES[mode]} {pc:#010x}  {text:<32}{wrote}\n".rstrip() + "\n")
        if stop is not None:
            return stop
    return Stop("budget", f"ran {max_steps} steps without stopping")
