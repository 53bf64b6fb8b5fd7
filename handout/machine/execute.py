"""What each instruction does, for the reference interpreter.

Every function takes the hart, the decoded instruction, its pc and its bits, and returns the
next pc; a trap is raised as `Trap`. Registers hold unsigned 32-bit values; x0 is never written.
"""

from __future__ import annotations

from collections.abc import Callable

from . import alu, csrs
from .alu import M32, signed
from .decode import Instr
from .hart import S_MODE, U_MODE, Halt, Hart
from .traps import BREAKPOINT, ECALL_S, ECALL_U, ILLEGAL_INSN, INSN_MISALIGNED, Trap


def _set(h: Hart, rd: int, value: int) -> None:
    if rd:
        h.x[rd] = value & M32


def _alu(fn: Callable[[int, int], int], imm: bool) -> Callable:
    def run(h: Hart, i: Instr, pc: int, w: int) -> int:
        _set(h, i.rd, fn(h.x[i.rs1], i.imm & M32 if imm else h.x[i.rs2]))
        return pc + 4
    return run


ALU = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "sll": lambda a, b: a << (b & 31),
    "slt": lambda a, b: int(signed(a) < signed(b)),
    "sltu": lambda a, b: int(a < b),
    "xor": lambda a, b: a ^ b,
    "srl": lambda a, b: a >> (b & 31),
    "sra": lambda a, b: signed(a) >> (b & 31),
    "or": lambda a, b: a | b,
    "and": lambda a, b: a & b,
    "mul": lambda a, b: a * b,
    "mulh": lambda a, b: (signed(a) * signed(b)) >> 32,
    "mulhsu": lambda a, b: (signed(a) * b) >> 32,
    "mulhu": lambda a, b: (a * b) >> 32,
    "div": alu.div,
    "divu": alu.divu,
    "rem": alu.rem,
    "remu": alu.remu,
}
IMMEDIATE_FORMS = {"addi": "add", "slti": "slt", "sltiu": "sltu", "xori": "xor", "ori": "or",
                   "andi": "and", "slli": "sll", "srli": "srl", "srai": "sra"}

BRANCH = {
    "beq": lambda a, b: a == b,
    "bne": lambda a, b: a != b,
    "blt": lambda a, b: signed(a) < signed(b),
    "bge": lambda a, b: signed(a) >= signed(b),
    "bltu": lambda a, b: a < b,
    "bgeu": lambda a, b: a >= b,
}
LOAD = {"lb": (1, True), "lh": (2, True), "lw": (4, False), "lbu": (1, False), "lhu": (2, False)}
STORE = {"sb": 1, "sh": 2, "sw": 4}


def _jump(target: int) -> int:
    """Without the C extension, a jump to an address that is not 4-byte aligned traps on the
    jump itself."""
    target &= M32
    if target & 3:
        raise Trap(INSN_MISALIGNED, target)
    return target


def _branch(cond: Callable[[int, int], bool]) -> Callable:
    def run(h: Hart, i: Instr, pc: int, w: int) -> int:
        return _jump(pc + i.imm) if cond(h.x[i.rs1], h.x[i.rs2]) else pc + 4
    return run


def _load(size: int, sign: bool) -> Callable:
    def run(h: Hart, i: Instr, pc: int, w: int) -> int:
        _set(h, i.rd, h.load((h.x[i.rs1] + i.imm) & M32, size, sign))
        return pc + 4
    return run


def _store(size: int) -> Callable:
    def run(h: Hart, i: Instr, pc: int, w: int) -> int:
        h.store((h.x[i.rs1] + i.imm) & M32, size, h.x[i.rs2])
        return pc + 4
    return run


def lui(h: Hart, i: Instr, pc: int, w: int) -> int:
    _set(h, i.rd, i.imm)
    return pc + 4


def auipc(h: Hart, i: Instr, pc: int, w: int) -> int:
    _set(h, i.rd, pc + i.imm)
    return pc + 4


def jal(h: Hart, i: Instr, pc: int, w: int) -> int:
    target = _jump(pc + i.imm)
    _set(h, i.rd, pc + 4)
    return target


def jalr(h: Hart, i: Instr, pc: int, w: int) -> int:
    target = _jump((h.x[i.rs1] + i.imm) & ~1)
    _set(h, i.rd, pc + 4)
    return target


def fence(h: Hart, i: Instr, pc: int, w: int) -> int:
    return pc + 4  # one hart, no caches: memory is always ordered


def fence_i(h: Hart, i: Instr, pc: int, w: int) -> int:
    return pc + 4  # stores to code already drop the compiled blocks they overwrite


def csr_op(h: Hart, i: Instr, pc: int, w: int) -> int:
    kind = i.op[3:5]  # "rw", "rs" or "rc"
    operand = i.rs1 if i.op.endswith("i") else h.x[i.rs1]
    writes = kind == "rw" or i.rs1 != 0  # csrrs/csrrc with x0 (or uimm 0) only read
    csrs.check_access(h, i.imm, writes, w)
    old = csrs.read(h, i.imm) if kind != "rw" or i.rd else 0
    if writes:
        new = operand if kind == "rw" else old | operand if kind == "rs" else old & ~operand
        csrs.write(h, i.imm, new)
    _set(h, i.rd, old)
    return pc + 4


def ecall(h: Hart, i: Instr, pc: int, w: int) -> int:
    if h.mode == U_MODE or h.ecall_handler is None:
        raise Trap(ECALL_U if h.mode == U_MODE else ECALL_S)
    return h.ecall_handler(h)  # S-mode calls the SBI firmware, which returns past the ecall


def ebreak(h: Hart, i: Instr, pc: int, w: int) -> int:
    raise Trap(BREAKPOINT, pc)


def _supervisor_only(h: Hart, w: int) -> None:
    if h.mode != S_MODE:
        raise Trap(ILLEGAL_INSN, w)


def sret(h: Hart, i: Instr, pc: int, w: int) -> int:
    _supervisor_only(h, w)
    h.sret()
    return h.pc


def wfi(h: Hart, i: Instr, pc: int, w: int) -> int:
    """Wait for an interrupt: time skips ahead to the timer if it is enabled in sie (SIE does
    not matter for waking). With nothing that could ever wake the hart, the run stops."""
    _supervisor_only(h, w)
    if not h.sie:
        raise Halt("wfi-forever", f"wfi at pc={pc:#010x} with no interrupt enabled in sie")
    if h.stimecmp == (1 << 64) - 1:
        raise Halt("wfi-forever",
                   f"wfi at pc={pc:#010x} with no timer set (stimecmp={h.stimecmp:#x})")
    h.idle += max(0, h.stimecmp - h.time())
    h.update_irq()
    return pc + 4


def sfence_vma(h: Hart, i: Instr, pc: int, w: int) -> int:
    _supervisor_only(h, w)
    h.mmu.sfence(h.x[i.rs1] if i.rs1 else None, h.x[i.rs2] & 0x1FF if i.rs2 else None)
    return pc + 4


def hfence_vvma(h: Hart, i: Instr, pc: int, w: int) -> int:
    _supervisor_only(h, w)
    vmid = (h.hgatp >> 22) & 0x7F
    h.mmu.sfence(h.x[i.rs1] if i.rs1 else None, h.x[i.rs2] & 0x1FF if i.rs2 else None,
                 ctx=("V", vmid))
    return pc + 4


def hfence_gvma(h: Hart, i: Instr, pc: int, w: int) -> int:
    _supervisor_only(h, w)  # over-fences: every guest address, of the VMID in rs2 or all
    h.mmu.flush_nested(h.x[i.rs2] & 0x7F if i.rs2 else None)
    return pc + 4


EXECUTE: dict[str, Callable[[Hart, Instr, int, int], int]] = {
    **{op: _alu(fn, False) for op, fn in ALU.items()},
    **{op: _alu(ALU[base], True) for op, base in IMMEDIATE_FORMS.items()},
    **{op: _branch(cond) for op, cond in BRANCH.items()},
    **{op: _load(*spec) for op, spec in LOAD.items()},
    **{op: _store(size) for op, size in STORE.items()},
    "lui": lui, "auipc": auipc, "jal": jal, "jalr": jalr, "fence": fence, "fence.i": fence_i,
    **{op: csr_op for op in ("csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci")},
    "ecall": ecall, "ebreak": ebreak, "sret": sret, "wfi": wfi, "sfence.vma": sfence_vma,
    "hfence.vvma": hfence_vvma, "hfence.gvma": hfence_gvma,
}
