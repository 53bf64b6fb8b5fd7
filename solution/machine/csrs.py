"""The CSR file: who may access each CSR, and what a write keeps (WARL).

`read`/`write` are the raw architectural operations (no privilege check) that the API, the
VMM and the CSR instructions share; `check_access` is what a CSR instruction adds on top.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import csr
from .traps import ILLEGAL_INSN, Trap

if TYPE_CHECKING:
    from .hart import Hart

M32 = 0xFFFF_FFFF
COUNTERS = {csr.CYCLE: csr.COUNTEREN_CY, csr.TIME: csr.COUNTEREN_TM,
            csr.INSTRET: csr.COUNTEREN_IR, csr.CYCLEH: csr.COUNTEREN_CY,
            csr.TIMEH: csr.COUNTEREN_TM, csr.INSTRETH: csr.COUNTEREN_IR}
IMPLEMENTED = frozenset(csr.NUMBERS)


def check_access(h: Hart, num: int, writes: bool, insn_bits: int) -> None:
    """Raise the illegal-instruction trap that a CSR instruction gets for this access."""
    if num not in IMPLEMENTED or (writes and csr.is_read_only(num)):
        raise Trap(ILLEGAL_INSN, insn_bits)
    if h.mode == 0:  # U-mode: only the counters, and only those scounteren allows
        if num not in COUNTERS or not h.scounteren & COUNTERS[num]:
            raise Trap(ILLEGAL_INSN, insn_bits)
    # S-mode may access S CSRs, the counters and the hypervisor CSRs (it is the HS-mode)


def read(h: Hart, num: int) -> int:
    if num == csr.SSTATUS:
        return h.sstatus
    if num == csr.SIP:
        return csr.SIP_STIP if h.time() >= h.stimecmp else 0
    if num in (csr.CYCLE, csr.TIME):
        return h.time() & M32
    if num in (csr.CYCLEH, csr.TIMEH):
        return (h.time() >> 32) & M32
    if num == csr.INSTRET:
        return h.instret & M32
    if num == csr.INSTRETH:
        return (h.instret >> 32) & M32
    if num == csr.STIMECMP:
        return h.stimecmp & M32
    if num == csr.STIMECMPH:
        return h.stimecmp >> 32
    return getattr(h, _FIELD[num])


def write(h: Hart, num: int, value: int) -> None:
    """Write a CSR as the hardware keeps it: unwritable bits stay as they are (WARL)."""
    _WRITE.get(num, _write_field)(h, num, value & M32)


def write_many(h: Hart, writes: Iterable[tuple[int, int]]) -> None:
    """Write several CSRs, in order, keeping of each what `write` keeps; but pick the fast
    path's caches and work out the timer deadline once, after the last, instead of after each
    write (the VMM restores six to eight CSRs on every world switch). For the CSRs that are
    fields of the hart: not stimecmp, and not the read-only counters."""
    before = h.context()
    for num, value in writes:
        setattr(h, _FIELD[num], value & _KEEP[num])
    if h.context() != before:
        h.select_caches()
    h.update_irq()  # sie and sstatus.SIE decide whether the timer interrupt is enabled


def _write_field(h: Hart, num: int, value: int) -> None:
    setattr(h, _FIELD[num], value)  # every bit writable


def _write_sstatus(h: Hart, num: int, value: int) -> None:
    h.set_sstatus(value)


def _write_stimecmp(h: Hart, num: int, value: int) -> None:
    h.set_stimecmp((h.stimecmp & ~M32) | value)


def _write_stimecmph(h: Hart, num: int, value: int) -> None:
    h.set_stimecmp((h.stimecmp & M32) | (value << 32))


def _write_sie(h: Hart, num: int, value: int) -> None:
    h.sie = value & _KEEP[num]
    h.update_irq()


def _write_kept(h: Hart, num: int, value: int) -> None:
    setattr(h, _FIELD[num], value & _KEEP[num])


def _write_translation(h: Hart, num: int, value: int) -> None:
    _set_translation_csr(h, _FIELD[num], value & _KEEP[num])


def _write_nothing(h: Hart, num: int, value: int) -> None:
    pass  # nothing writable (STIP follows stimecmp; SSIP and SEIP are not implemented)


def _set_translation_csr(h: Hart, field: str, value: int) -> None:
    """A CSR that translation depends on: the fast path switches to that context's caches."""
    if getattr(h, field) != value:
        setattr(h, field, value)
        h.select_caches()


# the CSRs whose writes keep less than every bit, or do more than store it (a table, not an
# if-chain: the VMM writes several CSRs on every world switch)
_WRITE = {csr.SSTATUS: _write_sstatus, csr.STIMECMP: _write_stimecmp,
          csr.STIMECMPH: _write_stimecmph, csr.SIE: _write_sie, csr.STVEC: _write_kept,
          csr.SEPC: _write_kept, csr.SCOUNTEREN: _write_kept,
          **{num: _write_translation for num in (csr.SATP, csr.VSATP, csr.HGATP, csr.HSTATUS,
                                                 csr.VSSTATUS)},
          **{num: _write_nothing for num in (csr.SIP, csr.CYCLE, csr.TIME, csr.INSTRET,
                                             csr.CYCLEH, csr.TIMEH, csr.INSTRETH)}}

# what a write keeps of the CSRs that are fields of the hart (WARL); the other bits read as 0
_KEEP = {csr.SSTATUS: csr.SSTATUS_WRITABLE, csr.SIE: csr.SIE_STIE,
         csr.STVEC: ~3 & M32, csr.SEPC: ~3 & M32,  # direct mode only; IALIGN=32
         csr.SCOUNTEREN: 7, csr.SSCRATCH: M32, csr.SCAUSE: M32, csr.STVAL: M32,
         csr.SATP: M32, csr.VSATP: M32, csr.HSTATUS: csr.HSTATUS_WRITABLE,
         csr.VSSTATUS: csr.VSSTATUS_WRITABLE, csr.HTVAL: M32, csr.HTINST: M32,
         csr.HGATP: csr.HGATP_MODE_SV32X4 | (csr.HGATP_VMID_MASK << 22)
         | csr.SATP_PPN_MASK & ~3}

_FIELD = {csr.SSTATUS: "sstatus", csr.SIE: "sie", csr.STVEC: "stvec", csr.SCOUNTEREN: "scounteren",
          csr.SSCRATCH: "sscratch", csr.SEPC: "sepc", csr.SCAUSE: "scause", csr.STVAL: "stval",
          csr.SATP: "satp", csr.HSTATUS: "hstatus", csr.HTVAL: "htval", csr.HTINST: "htinst",
          csr.HGATP: "hgatp", csr.VSSTATUS: "vsstatus", csr.VSATP: "vsatp"}
