"""Instruction decoding: a 32-bit word to an `Instr`, or None for an illegal instruction.

Only canonical encodings of RV32I, M, Zicsr, Zifencei and the privileged instructions decode;
everything else (reserved fields set, shifts with bit 25 set, unknown opcodes) is illegal.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple


class Instr(NamedTuple):
    op: str  # mnemonic, e.g. "addi"
    rd: int
    rs1: int
    rs2: int
    imm: int  # sign-extended immediate, the CSR number for CSR instructions


BRANCHES = {0: "beq", 1: "bne", 4: "blt", 5: "bge", 6: "bltu", 7: "bgeu"}
LOADS = {0: "lb", 1: "lh", 2: "lw", 4: "lbu", 5: "lhu"}
STORES = {0: "sb", 1: "sh", 2: "sw"}
OP_IMM = {0: "addi", 2: "slti", 3: "sltiu", 4: "xori", 6: "ori", 7: "andi"}
OP = {(0, 0): "add", (0x20, 0): "sub", (0, 1): "sll", (0, 2): "slt", (0, 3): "sltu",
      (0, 4): "xor", (0, 5): "srl", (0x20, 5): "sra", (0, 6): "or", (0, 7): "and",
      (1, 0): "mul", (1, 1): "mulh", (1, 2): "mulhsu", (1, 3): "mulhu",
      (1, 4): "div", (1, 5): "divu", (1, 6): "rem", (1, 7): "remu"}
CSR_OPS = {1: "csrrw", 2: "csrrs", 3: "csrrc", 5: "csrrwi", 6: "csrrsi", 7: "csrrci"}
SYSTEM_EXACT = {0x0000_0073: "ecall", 0x0010_0073: "ebreak", 0x1020_0073: "sret",
                0x1050_0073: "wfi"}
FENCES = {0x09: "sfence.vma", 0x11: "hfence.vvma", 0x31: "hfence.gvma"}


def _sext(value: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


def imm_i(w: int) -> int:
    return _sext(w >> 20, 12)


def imm_s(w: int) -> int:
    return _sext(((w >> 25) << 5) | ((w >> 7) & 0x1F), 12)


def imm_b(w: int) -> int:
    v = (((w >> 31) << 12) | (((w >> 7) & 1) << 11) | (((w >> 25) & 0x3F) << 5)
         | (((w >> 8) & 0xF) << 1))
    return _sext(v, 13)


def imm_j(w: int) -> int:
    v = (((w >> 31) << 20) | (((w >> 12) & 0xFF) << 12) | (((w >> 20) & 1) << 11)
         | (((w >> 21) & 0x3FF) << 1))
    return _sext(v, 21)


@lru_cache(maxsize=1 << 16)
def decode(w: int) -> Instr | None:
    opcode, rd, f3 = w & 0x7F, (w >> 7) & 0x1F, (w >> 12) & 7
    rs1, rs2, f7 = (w >> 15) & 0x1F, (w >> 20) & 0x1F, w >> 25
    if opcode == 0x37:
        return Instr("lui", rd, 0, 0, w & 0xFFFF_F000)
    if opcode == 0x17:
        return Instr("auipc", rd, 0, 0, w & 0xFFFF_F000)
    if opcode == 0x6F:
        return Instr("jal", rd, 0, 0, imm_j(w))
    if opcode == 0x67 and f3 == 0:
        return Instr("jalr", rd, rs1, 0, imm_i(w))
    if opcode == 0x63 and f3 in BRANCHES:
        return Instr(BRANCHES[f3], 0, rs1, rs2, imm_b(w))
    if opcode == 0x03 and f3 in LOADS:
        return Instr(LOADS[f3], rd, rs1, 0, imm_i(w))
    if opcode == 0x23 and f3 in STORES:
        return Instr(STORES[f3], 0, rs1, rs2, imm_s(w))
    if opcode == 0x13:
        return _op_imm(w, rd, f3, rs1, f7)
    if opcode == 0x33 and (f7, f3) in OP:
        return Instr(OP[f7, f3], rd, rs1, rs2, 0)
    if opcode == 0x0F and f3 in (0, 1):
        # FENCE's unused fields and reserved orderings are ignored (a normal fence);
        # FENCE.I's imm, rs1 and rd likewise
        return Instr("fence" if f3 == 0 else "fence.i", 0, 0, 0, 0)
    if opcode == 0x73:
        return _system(w, rd, f3, rs1, rs2, f7)
    return None


def _op_imm(w: int, rd: int, f3: int, rs1: int, f7: int) -> Instr | None:
    if f3 in OP_IMM:
        return Instr(OP_IMM[f3], rd, rs1, 0, imm_i(w))
    shamt = (w >> 20) & 0x1F
    if f3 == 1 and f7 == 0:
        return Instr("slli", rd, rs1, 0, shamt)
    if f3 == 5 and f7 in (0, 0x20):
        return Instr("srli" if f7 == 0 else "srai", rd, rs1, 0, shamt)
    return None


def _system(w: int, rd: int, f3: int, rs1: int, rs2: int, f7: int) -> Instr | None:
    if f3 in CSR_OPS:
        return Instr(CSR_OPS[f3], rd, rs1, 0, w >> 20)
    if f3 != 0:
        return None
    if w in SYSTEM_EXACT:
        return Instr(SYSTEM_EXACT[w], 0, 0, 0, 0)
    if rd == 0 and f7 in FENCES:
        return Instr(FENCES[f7], 0, rs1, rs2, 0)
    return None
