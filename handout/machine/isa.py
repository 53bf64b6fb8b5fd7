"""Every instruction this machine knows, in one table that the assembler and disassembler share.

An RV32 instruction is one 32-bit word. Some of its bits are fixed for a given instruction (the
opcode, funct3, funct7, ...) and the rest hold its operands. A `Form` records both, plus how the
operands are written in assembly:

    insn("addi", "I", "rd, rs1, imm", OP_IMM, funct3=0b000)

says that `addi` uses the I-type layout, is written `addi rd, rs1, imm`, and has opcode OP_IMM and
funct3 0. Bits that none of the written operands occupy must hold exactly the values given here
(usually zero): `sfence.vma rs1, rs2` does not name rd, so a word whose rd field is not zero is
not a (canonical) sfence.vma. That single rule gives every form its `mask`.

Operand names used in the syntax strings:
    rd, rs1, rs2    registers, in bits 11:7, 19:15 and 24:20
    imm             the format's immediate (I: 12-bit signed, S: 12-bit signed, U: upper 20 bits)
    offset          a pc-relative branch (B) or jump (J) distance; written as the target address
    shamt           a 5-bit shift amount (RV32 has 32-bit registers)
    csr             a 12-bit CSR number
    uimm            the 5-bit unsigned immediate of csrrwi/csrrsi/csrrci, where rs1 would be
    pred, succ      the fence sets: which earlier/later accesses (i, o, r, w) are ordered
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

# Major opcodes: bits 6:0 of every 32-bit instruction (the spec's "RISC-V base opcode map")
LOAD = 0b0000011
MISC_MEM = 0b0001111
OP_IMM = 0b0010011
AUIPC = 0b0010111
STORE = 0b0100011
OP = 0b0110011
LUI = 0b0110111
BRANCH = 0b1100011
JALR = 0b1100111
JAL = 0b1101111
SYSTEM = 0b1110011

WORD_MASK = 0xFFFF_FFFF


def sign_extend(value: int, bits: int) -> int:
    """Read the low `bits` bits of `value` as a two's complement number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass(frozen=True)
class Field:
    """Where an operand's value lives inside the instruction word.

    Each slice (word_hi, word_lo, value_lo) says that bits word_hi..word_lo of the word hold the
    value's bits starting at bit value_lo. B and J immediates are scattered over several slices
    so that the sign is always bit 31 and most bits stay where the other formats keep them.
    Value bits below the lowest slice are implicitly zero: branch offsets are always even.
    """

    slices: tuple[tuple[int, int, int], ...]
    signed: bool = False

    @property
    def width(self) -> int:
        """How many bits the value has, counting the implicit zeros at the bottom."""
        return max(value_lo + word_hi - word_lo + 1 for word_hi, word_lo, value_lo in self.slices)

    @property
    def align(self) -> int:
        """The value must be a multiple of this."""
        return 1 << min(value_lo for _, _, value_lo in self.slices)

    @property
    def lowest(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def highest(self) -> int:
        top = (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1
        return top - top % self.align  # 4094 for a branch: offsets are even

    @property
    def bits(self) -> int:
        """The word bits that this field occupies."""
        mask = 0
        for word_hi, word_lo, _ in self.slices:
            mask |= ((1 << (word_hi - word_lo + 1)) - 1) << word_lo
        return mask

    def fits(self, value: int) -> bool:
        return self.lowest <= value <= self.highest and value % self.align == 0

    def encode(self, value: int) -> int:
        """The word bits for `value`, which must fit."""
        word = 0
        for word_hi, word_lo, value_lo in self.slices:
            n = word_hi - word_lo + 1
            word |= ((value >> value_lo) & ((1 << n) - 1)) << word_lo
        return word

    def decode(self, word: int) -> int:
        value = 0
        for word_hi, word_lo, value_lo in self.slices:
            n = word_hi - word_lo + 1
            value |= ((word >> word_lo) & ((1 << n) - 1)) << value_lo
        return sign_extend(value, self.width) if self.signed else value


# Operands that sit in the same place whatever the format
FIELDS: dict[str, Field] = {
    "rd": Field(((11, 7, 0),)),
    "rs1": Field(((19, 15, 0),)),
    "rs2": Field(((24, 20, 0),)),
    "shamt": Field(((24, 20, 0),)),
    "csr": Field(((31, 20, 0),)),
    "uimm": Field(((19, 15, 0),)),
    "pred": Field(((27, 24, 0),)),
    "succ": Field(((23, 20, 0),)),
}

# The `imm` or `offset` operand, by format (the spec's Figure "Types of immediate produced")
IMMEDIATES: dict[str, Field] = {
    "I": Field(((31, 20, 0),), signed=True),
    "S": Field(((31, 25, 5), (11, 7, 0)), signed=True),
    "B": Field(((31, 31, 12), (30, 25, 5), (11, 8, 1), (7, 7, 11)), signed=True),
    "U": Field(((31, 12, 0),)),  # the upper 20 bits of a 32-bit value: lui a0, 0x80000
    "J": Field(((31, 31, 20), (30, 21, 1), (20, 20, 11), (19, 12, 12)), signed=True),
}


@dataclass(frozen=True)
class Form:
    """One instruction: its name, how it is written, and which bits identify it."""

    mnemonic: str
    fmt: str  # R I S B U J: the spec's layout, which decides where `imm` and `offset` live
    syntax: str  # how the operands are written, e.g. "rd, imm(rs1)"
    match: int  # the fixed bits' values (operand fields zero)
    mask: int  # which bits are fixed

    @cached_property
    def operands(self) -> tuple[str, ...]:
        """Operand names in the order they are written."""
        return tuple(re.findall(r"[a-z0-9]+", self.syntax))

    def field(self, operand: str) -> Field:
        if operand in ("imm", "offset"):
            return IMMEDIATES[self.fmt]
        return FIELDS[operand]

    def encode(self, values: dict[str, int]) -> int:
        """The instruction word; every value must already fit its field."""
        word = self.match
        for name in self.operands:
            word |= self.field(name).encode(values[name])
        return word

    def decode(self, word: int) -> dict[str, int]:
        return {name: self.field(name).decode(word) for name in self.operands}


def insn(mnemonic: str, fmt: str, syntax: str, opcode: int, funct3: int = 0, funct7: int = 0,
         funct12: int = 0) -> Form:
    """Build a table row. funct7 sits in bits 31:25; funct12 is the whole of bits 31:20, which
    the fixed SYSTEM instructions (ecall, sret, ...) use to tell themselves apart."""
    form = Form(mnemonic, fmt, syntax, 0, 0)
    operand_bits = 0
    for name in form.operands:
        operand_bits |= form.field(name).bits
    match = opcode | funct3 << 12 | funct7 << 25 | funct12 << 20
    assert match & operand_bits == 0, mnemonic  # a fixed bit inside an operand: a typo above
    return Form(mnemonic, fmt, syntax, match, WORD_MASK & ~operand_bits)


FORMS: tuple[Form, ...] = (
    # RV32I: upper immediates and jumps
    insn("lui",    "U", "rd, imm",          LUI),
    insn("auipc",  "U", "rd, imm",          AUIPC),
    insn("jal",    "J", "rd, offset",       JAL),
    insn("jalr",   "I", "rd, imm(rs1)",     JALR,     0b000),
    # conditional branches
    insn("beq",    "B", "rs1, rs2, offset", BRANCH,   0b000),
    insn("bne",    "B", "rs1, rs2, offset", BRANCH,   0b001),
    insn("blt",    "B", "rs1, rs2, offset", BRANCH,   0b100),
    insn("bge",    "B", "rs1, rs2, offset", BRANCH,   0b101),
    insn("bltu",   "B", "rs1, rs2, offset", BRANCH,   0b110),
    insn("bgeu",   "B", "rs1, rs2, offset", BRANCH,   0b111),
    # loads and stores
    insn("lb",     "I", "rd, imm(rs1)",     LOAD,     0b000),
    insn("lh",     "I", "rd, imm(rs1)",     LOAD,     0b001),
    insn("lw",     "I", "rd, imm(rs1)",     LOAD,     0b010),
    insn("lbu",    "I", "rd, imm(rs1)",     LOAD,     0b100),
    insn("lhu",    "I", "rd, imm(rs1)",     LOAD,     0b101),
    insn("sb",     "S", "rs2, imm(rs1)",    STORE,    0b000),
    insn("sh",     "S", "rs2, imm(rs1)",    STORE,    0b001),
    insn("sw",     "S", "rs2, imm(rs1)",    STORE,    0b010),
    # arithmetic with an immediate
    insn("addi",   "I", "rd, rs1, imm",     OP_IMM,   0b000),
    insn("slti",   "I", "rd, rs1, imm",     OP_IMM,   0b010),
    insn("sltiu",  "I", "rd, rs1, imm",     OP_IMM,   0b011),
    insn("xori",   "I", "rd, rs1, imm",     OP_IMM,   0b100),
    insn("ori",    "I", "rd, rs1, imm",     OP_IMM,   0b110),
    insn("andi",   "I", "rd, rs1, imm",     OP_IMM,   0b111),
    insn("slli",   "I", "rd, rs1, shamt",   OP_IMM,   0b001, funct7=0b0000000),
    insn("srli",   "I", "rd, rs1, shamt",   OP_IMM,   0b101, funct7=0b0000000),
    insn("srai",   "I", "rd, rs1, shamt",   OP_IMM,   0b101, funct7=0b0100000),
    # arithmetic on registers
    insn("add",    "R", "rd, rs1, rs2",     OP,       0b000, funct7=0b0000000),
    insn("sub",    "R", "rd, rs1, rs2",     OP,       0b000, funct7=0b0100000),
    insn("sll",    "R", "rd, rs1, rs2",     OP,       0b001, funct7=0b0000000),
    insn("slt",    "R", "rd, rs1, rs2",     OP,       0b010, funct7=0b0000000),
    insn("sltu",   "R", "rd, rs1, rs2",     OP,       0b011, funct7=0b0000000),
    insn("xor",    "R", "rd, rs1, rs2",     OP,       0b100, funct7=0b0000000),
    insn("srl",    "R", "rd, rs1, rs2",     OP,       0b101, funct7=0b0000000),
    insn("sra",    "R", "rd, rs1, rs2",     OP,       0b101, funct7=0b0100000),
    insn("or",     "R", "rd, rs1, rs2",     OP,       0b110, funct7=0b0000000),
    insn("and",    "R", "rd, rs1, rs2",     OP,       0b111, funct7=0b0000000),
    # memory ordering. A fence must order something: pred or succ 0 has no assembly syntax.
    insn("fence",  "I", "pred, succ",       MISC_MEM, 0b000),
    insn("fence.tso", "I", "",              MISC_MEM, 0b000, funct12=0b1000_0011_0011),
    insn("pause",  "I", "",                 MISC_MEM, 0b000, funct12=0b0000_0001_0000),
    insn("fence.i", "I", "",                MISC_MEM, 0b001),  # Zifencei
    # environment calls and privileged instructions
    insn("ecall",  "I", "",                 SYSTEM,   0b000, funct12=0x000),
    insn("ebreak", "I", "",                 SYSTEM,   0b000, funct12=0x001),
    insn("sret",   "I", "",                 SYSTEM,   0b000, funct12=0x102),
    insn("mret",   "I", "",                 SYSTEM,   0b000, funct12=0x302),
    insn("wfi",    "I", "",                 SYSTEM,   0b000, funct12=0x105),
    insn("sfence.vma",  "R", "rs1, rs2",    SYSTEM,   0b000, funct7=0b0001001),
    insn("hfence.vvma", "R", "rs1, rs2",    SYSTEM,   0b000, funct7=0b0010001),
    insn("hfence.gvma", "R", "rs1, rs2",    SYSTEM,   0b000, funct7=0b0110001),
    # M: multiply and divide
    insn("mul",    "R", "rd, rs1, rs2",     OP,       0b000, funct7=0b0000001),
    insn("mulh",   "R", "rd, rs1, rs2",     OP,       0b001, funct7=0b0000001),
    insn("mulhsu", "R", "rd, rs1, rs2",     OP,       0b010, funct7=0b0000001),
    insn("mulhu",  "R", "rd, rs1, rs2",     OP,       0b011, funct7=0b0000001),
    insn("div",    "R", "rd, rs1, rs2",     OP,       0b100, funct7=0b0000001),
    insn("divu",   "R", "rd, rs1, rs2",     OP,       0b101, funct7=0b0000001),
    insn("rem",    "R", "rd, rs1, rs2",     OP,       0b110, funct7=0b0000001),
    insn("remu",   "R", "rd, rs1, rs2",     OP,       0b111, funct7=0b0000001),
    # Zicsr: read-modify-write a CSR, from a register or a 5-bit immediate
    insn("csrrw",  "I", "rd, csr, rs1",     SYSTEM,   0b001),
    insn("csrrs",  "I", "rd, csr, rs1",     SYSTEM,   0b010),
    insn("csrrc",  "I", "rd, csr, rs1",     SYSTEM,   0b011),
    insn("csrrwi", "I", "rd, csr, uimm",    SYSTEM,   0b101),
    insn("csrrsi", "I", "rd, csr, uimm",    SYSTEM,   0b110),
    insn("csrrci", "I", "rd, csr, uimm",    SYSTEM,   0b111),
)  # fmt: skip

BY_MNEMONIC: dict[str, Form] = {form.mnemonic: form for form in FORMS}

_BY_OPCODE: dict[int, list[Form]] = {}
for _form in FORMS:
    _BY_OPCODE.setdefault(_form.match & 0x7F, []).append(_form)


def decode(word: int) -> tuple[Form, dict[str, int]] | None:
    """The form and operand values of `word`, or None if it is not a canonical instruction."""
    for form in _BY_OPCODE.get(word & 0x7F, ()):
        if word & form.mask == form.match:
            operands = form.decode(word)
            if operands.get("pred") != 0 and operands.get("succ") != 0:
                return form, operands
    return None


# Registers: x0..x31 and the names the calling convention gives them
ABI_NAMES: tuple[str, ...] = (
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2",
    "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7",
    "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
)  # fmt: skip
REGISTERS: dict[str, int] = {name: n for n, name in enumerate(ABI_NAMES)}
REGISTERS.update({f"x{n}": n for n in range(32)})
REGISTERS["fp"] = 8  # the frame pointer is s0

# Fence sets are written as letters in this order; each letter is one bit of pred or succ.
FENCE_LETTERS = "iorw"  # i = bit 3 (device input) ... w = bit 0 (memory writes)


def fence_set_name(bits: int) -> str:
    return "".join(c for i, c in enumerate(FENCE_LETTERS) if bits & (8 >> i))
