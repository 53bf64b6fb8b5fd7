"""The CSR file: who may access each CSR, and what a write keeps (WARL).

`read`/`write` are the raw architectural operations (no privilege check) that the API, the
VMM and the CSR instructions share; `check_access` is what a CSR instruction adds on top.
"""

from __future__ import annotations

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


def _write_field(h: Hart, num: int, value: int) -> None:
    setattr(h, _FIELD[num], value)  # every bit writable


def _write_sstatus(h: Hart, num: int, value: int) -> None:
    h.set_sstatus(value)


def _write_stimecmp(h: Hart, num: int, value: int) -> None:
    h.set_stimecmp((h.stimecmp & ~M32) | value)


def _write_stimecmph(h: Hart, num: int, value: int) -> None:
    h.set_stimecmp((h.stimecmp & M32) | (value << 32))


def _write_sie(h: Hart, num: int, value: int) -> None:
    h.sie = value & csr.SIE_STIE
    h.update_irq()


def _write_stvec(h: Hart, num: int, value: int) -> None:
    h.stvec = value & ~3  # direct mode only; IALIGN=32


def _write_sepc(h: Hart, num: int, value: int) -> None:
    h.sepc = value & ~3  # IALIGN=32


def _write_scounteren(h: Hart, num: int, value: int) -> None:
    h.scounteren = value & 7


def _write_atp(h: Hart, num: int, value: int) -> None:
    if num == csr.HGATP:
        value &= csr.HGATP_MODE_SV32X4 | (csr.HGATP_VMID_MASK << 22) | csr.SATP_PPN_MASK & ~3
    _set_translation_csr(h, _FIELD[num], value)


def _write_hstatus(h: Hart, num: int, value: int) -> None:
    _set_translation_csr(h, "hstatus", value & csr.HSTATUS_WRITABLE)


def _write_vsstatus(h: Hart, num: int, value: int) -> None:
    _set_translation_csr(h, "vsstatus", value & csr.VSSTATUS_WRITABLE)


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
          csr.STIMECMPH: _write_stimecmph, csr.SIE: _write_sie, csr.STVEC: _write_stvec,
          csr.SEPC: _write_sepc, csr.SCOUNTEREN: _write_scounteren, csr.SATP: _write_atp,
          csr.VSATP: _write_atp, csr.HGATP: _write_atp, csr.HSTATUS: _write_hstatus,
          csr.VSSTATUS: _write_vsstatus,
          **{num: _write_nothing for num in (csr.SIP, csr.CYCLE, csr.TIME, csr.INSTRET,
                                             csr.CYCLEH, csr.TIMEH, csr.INSTRETH)}}

_FIELD = {csr.SIE: "sie", csr.STVEC: "stvec", csr.SCOUNTEREN: "scounteren",
          csr.SSCRATCH: "sscratch", csr.SEPC: "sepc", csr.SCAUSE: "scause", csr.STVAL: "stval",
          csr.SATP: "satp", csr.HSTATUS: "hstatus", csr.HTVAL: "htval", csr.HTINST: "htinst",
          csr.HGATP: "hgatp", csr.VSSTATUS: "vsstatus", csr.VSATP: "vsatp"}
