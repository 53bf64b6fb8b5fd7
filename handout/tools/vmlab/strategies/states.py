"""Strategies for machine states: register files, CSR settings, privilege mode, pc.

A `MachineState` is plain data. `apply` sets it on anything with the machine API's
`set_reg`, `set_csr`, `set_mode` and `pc` (the reference machine, a student's VMM wrapper).
CSRs are written in the order given, with the write semantics of S-mode (WARL), so a state
may name values that read back differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from hypothesis import strategies as st

from .sources import HypothesisSource, Source

M32 = 0xFFFF_FFFF
U_MODE, S_MODE = 0, 1

# CSR numbers (the privileged spec's), as the machine's csr.py also defines them
CSR: dict[str, int] = {
    "sstatus": 0x100, "sie": 0x104, "stvec": 0x105, "scounteren": 0x106, "sscratch": 0x140,
    "sepc": 0x141, "scause": 0x142, "stval": 0x143, "sip": 0x144, "stimecmp": 0x14D,
    "stimecmph": 0x15D, "satp": 0x180, "cycle": 0xC00, "time": 0xC01, "instret": 0xC02,
    "cycleh": 0xC80, "timeh": 0xC81, "instreth": 0xC82,
}
SSTATUS_SIE, SSTATUS_SPIE, SSTATUS_SPP = 1 << 1, 1 << 5, 1 << 8
SSTATUS_SUM, SSTATUS_MXR = 1 << 18, 1 << 19
STIE = STIP = 1 << 5
NO_TIMER = (1 << 64) - 1

BOUNDARY_VALUES = (0, 1, 2, 0x7FF, 0x800, 0xFFF, 0x7FFF_FFFF, 0x8000_0000, 0x8000_0001,
                   0xFFFF_FFFF, 0xFFFF_FFFE, 0xFFFF_F800, 0x8040_0000)


class MachineLike(Protocol):
    pc: int

    def set_reg(self, i: int, value: int) -> None: ...
    def set_csr(self, num: int, value: int) -> None: ...
    def set_mode(self, mode: int, virtual: bool = False) -> None: ...


@dataclass(frozen=True)
class MachineState:
    """Registers x0..x31 (x0 is 0), the pc, the mode (0 U, 1 S) and CSR writes in order."""

    regs: tuple[int, ...]
    pc: int
    mode: int
    csrs: tuple[tuple[int, int], ...] = ()

    def apply(self, m: MachineLike) -> None:
        for num, value in self.csrs:
            m.set_csr(num, value)
        for i, value in enumerate(self.regs):
            if i:
                m.set_reg(i, value)
        m.set_mode(self.mode)
        m.pc = self.pc


@cache
def sampled(values: tuple) -> st.SearchStrategy:
    """st.sampled_from(values), one object per tuple (st.sampled_from makes one per call, which
    hypothesis then validates on its first draw)."""
    return st.sampled_from(values)


def register_value_from_bits(v: int) -> int:
    """33 bits: the low 32, or (when bit 32 is set) a boundary value."""
    return BOUNDARY_VALUES[v % len(BOUNDARY_VALUES)] if v >> 32 else v & M32


# Strategies are built once: hypothesis validates each new strategy object on its first draw,
# which costs more than the draw when a composite builds its strategies afresh every example.
REGISTER_VALUES = st.integers(0, (2 << 32) - 1).map(register_value_from_bits)


def register_values() -> st.SearchStrategy[int]:
    """32 bits, unsigned, or a boundary value (one draw: cheap). Drawn by hypothesis, which
    favours small integers, a boundary value comes up about one time in thirteen; drawn from
    records (`register_values_from`), half the time."""
    return REGISTER_VALUES


def register_values_from(src: Source, n: int) -> list[int]:
    """`n` of `register_values`, in a record of their own. A record costs hypothesis as much as
    any draw; shrinking tries all of them zero at once, then the later ones zero."""
    src.record()
    return [register_value_from_bits(src.integer(0, (2 << 32) - 1)) for _ in range(n)]


def register_files(fixed: Mapping[int, int] | None = None) -> st.SearchStrategy[tuple[int, ...]]:
    """x0..x31: x0 = 0, the registers of `fixed` as given, the rest drawn (boundaries often)."""
    fixed = dict(fixed or {})
    return st.lists(register_values(), min_size=32, max_size=32).map(
        lambda values: tuple(0 if i == 0 else fixed.get(i, v) for i, v in enumerate(values)))


HORIZON = 700  # how far ahead a timer is set, in ticks
_TIMER_KINDS = ("ahead", "due", "never", "any")


def timer_from(src: Source, now: int = 0) -> tuple[tuple[int, int], ...]:
    """stimecmp (both halves) a little after `now`, at or before it (pending), never, or
    anything at all."""
    kind = src.choice(_TIMER_KINDS)
    if kind == "ahead":
        value = now + src.integer(1, HORIZON)
    elif kind == "due":
        value = src.integer(0, 1 << 16) % (now + 1)
    elif kind == "never":
        value = NO_TIMER
    else:
        value = src.integer(0, NO_TIMER)
    return ((CSR["stimecmp"], value & M32), (CSR["stimecmph"], value >> 32))


_BOOLS = (False, True)
_STATUS_BITS = (SSTATUS_SIE, SSTATUS_SPIE, SSTATUS_SPP, SSTATUS_SUM, SSTATUS_MXR)
_SIES = (0, STIE)
_SCAUSES = (0, 2, 8, 13, 0x8000_0005)


def csr_settings_from(src: Source, stvec: int | None = None, satp: int = 0,
                      now: int = 0) -> tuple[tuple[int, int], ...]:
    """See `csr_settings`. The small choices first, then the 32-bit values in a record of
    their own."""
    status = sum(bit for bit in _STATUS_BITS if src.choice(_BOOLS))
    sie, scounteren, scause = src.choice(_SIES), src.integer(0, 7), src.choice(_SCAUSES)
    timer = timer_from(src, now)
    sscratch, sepc, stval = register_values_from(src, 3)
    out = [(CSR["sstatus"], status), (CSR["sie"], sie), (CSR["scounteren"], scounteren),
           (CSR["sscratch"], sscratch), (CSR["sepc"], sepc & ~3), (CSR["scause"], scause),
           (CSR["stval"], stval), (CSR["satp"], satp)]
    if stvec is not None:
        out.append((CSR["stvec"], stvec))
    return (*out, *timer)


def draw_csr_settings(draw: st.DrawFn, stvec: int | None = None, satp: int = 0,
                      now: int = 0) -> tuple[tuple[int, int], ...]:
    """The S-mode CSRs a test may start from: sstatus (any of SIE SPIE SPP SUM MXR), sie,
    scounteren, sscratch, sepc, scause, stval, the timer, stvec and satp as given."""
    return csr_settings_from(HypothesisSource(draw), stvec, satp, now)


csr_settings = st.composite(draw_csr_settings)


@st.composite
def machine_states(draw: st.DrawFn, pc: int = 0x8040_0000, modes: Sequence[int] = (S_MODE, U_MODE),
                   fixed_regs: Mapping[int, int] | None = None, stvec: int | None = None,
                   satp: int = 0) -> MachineState:
    """A whole initial state: registers (with `fixed_regs`), CSRs, a mode from `modes`, `pc`."""
    return MachineState(regs=draw(register_files(fixed_regs)), pc=pc,
                        mode=draw(st.sampled_from(tuple(modes))),
                        csrs=draw(csr_settings(stvec=stvec, satp=satp)))
