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
    value &= M32
    if num == csr.SSTATUS:
        h.set_sstatus(value)
    elif num == csr.STIMECMP:
        h.set_stimecmp((h.stimecmp & ~M32) | value)
    elif num == csr.STIMECMPH:
        h.set_stimecmp((h.stimecmp & M32) | (value << 32))
    elif num == csr.SIE:
        h.sie = value & csr.SIE_STIE
        h.update_irq()
    elif num in (csr.STVEC, csr.SEPC):
        setattr(h, _FIELD[num], value & ~3)  # direct mode only; IALIGN=32
    elif num == csr.SCOUNTEREN:
        h.scounteren = value & 7
    elif num in (csr.SATP, csr.VSATP, csr.HGATP):
        if num == csr.HGATP:
            value &= csr.HGATP_MODE_SV32X4 | (csr.HGATP_VMID_MASK << 22) | csr.SATP_PPN_MASK & ~3
        _set_translation_csr(h, _FIELD[num], value)
    elif num == csr.HSTATUS:
        _set_translation_csr(h, "hstatus", value & csr.HSTATUS_WRITABLE)
    elif num == csr.VSSTATUS:
        _set_translation_csr(h, "vsstatus", value & csr.VSSTATUS_WRITABLE)
    elif num in (csr.SIP, csr.CYCLE, csr.TIME, csr.INSTRET, csr.CYCLEH, csr.TIMEH, csr.INSTRETH):
        pass  # nothing writable (STIP follows stimecmp; SSIP and SEIP are not implemented)
    else:
        setattr(h, _FIELD[num], value)


def _set_translation_csr(h: Hart, field: str, value: int) -> None:
    """A CSR that translation depends on: the fast path switches to that context's caches."""
    if getattr(h, field) != value:
        setattr(h, field, value)
        h.select_caches()


_FIELD = {csr.SIE: "sie", csr.STVEC: "stvec", csr.SCOUNTEREN: "scounteren",
          csr.SSCRATCH: "sscratch", csr.SEPC: "sepc", csr.SCAUSE: "scause", csr.STVAL: "stval",
          csr.SATP: "satp", csr.HSTATUS: "hstatus", csr.HTVAL: "htval", csr.HTINST: "htinst",
          csr.HGATP: "hgatp", csr.VSSTATUS: "vsstatus", csr.VSATP: "vsatp"}
