"""Strategies for RV32IM/Zicsr instructions and programs, as 32-bit instruction words.

Layers, each built from the one before:

    encode(op, rd, rs1, rs2, imm)      one instruction word (a small encoder, independent of the
                                       lab's assembler so that each can check the other)
    reg_values(), imm12s(), ...        operands, with the boundary values drawn often
    computational(), memory_access()   one instruction of a given class, as a word
    straight_line()                    a position-independent program of groups of words with
                                       forward branches and jumps only (so it always ends)
    loop()                             a counted loop around a straight-line body
    system_programs()                  a whole S/U program with a trap handler, U-mode calls
                                       through sret, timer interrupts, CSR accesses, SBI calls,
                                       stores into its own code, and optionally Sv32 paging

Whole programs (system_programs, and straight_line_groups with `cheap`) draw each section as
one byte string that *_from_bits functions decode, 8 bytes a group: a hypothesis draw costs more
than the decoding, and a program drawn field by field took some 400 of them.

All programs are position independent: control transfers use pc-relative offsets, so a list of
words runs the same wherever it is loaded (system_programs lays itself out at fixed addresses).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from hypothesis import strategies as st

from .sources import RecordSource, Source
from .states import (
    CSR,
    SSTATUS_MXR,
    SSTATUS_SIE,
    SSTATUS_SPIE,
    SSTATUS_SPP,
    SSTATUS_SUM,
    STIE,
    MachineState,
    sampled,
)

M32 = 0xFFFF_FFFF

# ----- the encoder ---------------------------------------------------------------------------

R_OPS = {"add": (0x00, 0), "sub": (0x20, 0), "sll": (0, 1), "slt": (0, 2), "sltu": (0, 3),
         "xor": (0, 4), "srl": (0, 5), "sra": (0x20, 5), "or": (0, 6), "and": (0, 7),
         "mul": (1, 0), "mulh": (1, 1), "mulhsu": (1, 2), "mulhu": (1, 3), "div": (1, 4),
         "divu": (1, 5), "rem": (1, 6), "remu": (1, 7)}
I_OPS = {"addi": 0, "slti": 2, "sltiu": 3, "xori": 4, "ori": 6, "andi": 7}
SHIFT_OPS = {"slli": (0, 1), "srli": (0, 5), "srai": (0x20, 5)}
LOAD_OPS = {"lb": 0, "lh": 1, "lw": 2, "lbu": 4, "lhu": 5}
STORE_OPS = {"sb": 0, "sh": 1, "sw": 2}
BRANCH_OPS = {"beq": 0, "bne": 1, "blt": 4, "bge": 5, "bltu": 6, "bgeu": 7}
CSR_OPS = {"csrrw": 1, "csrrs": 2, "csrrc": 3, "csrrwi": 5, "csrrsi": 6, "csrrci": 7}
FIXED = {"ecall": 0x0000_0073, "ebreak": 0x0010_0073, "sret": 0x1020_0073,
         "wfi": 0x1050_0073, "mret": 0x3020_0073, "fence": 0x0FF0_000F, "fence.i": 0x0000_100F}

ALU_REG = ("add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and")
MULDIV = ("mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu")
ACCESS_SIZE = {"lb": 1, "lbu": 1, "sb": 1, "lh": 2, "lhu": 2, "sh": 2, "lw": 4, "sw": 4}


def _check(name: str, value: int, lo: int, hi: int, multiple: int = 1) -> None:
    if not lo <= value < hi or value % multiple:
        raise ValueError(f"{name} {value} out of range [{lo}, {hi}) or not a multiple of "
                         f"{multiple}")


def encode(op: str, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0) -> int:
    """One instruction word. `imm` is the signed immediate (byte offset for branches and jumps),
    the 20-bit upper immediate for lui/auipc, the CSR number for CSR instructions (whose `rs1`
    is the register or the 5-bit uimm), the shift amount for slli/srli/srai."""
    for name, r in (("rd", rd), ("rs1", rs1), ("rs2", rs2)):
        _check(name, r, 0, 32)
    if op in R_OPS:
        f7, f3 = R_OPS[op]
        return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x33
    if op in I_OPS or op in LOAD_OPS or op == "jalr":
        _check("imm", imm, -2048, 2048)
        opcode, f3 = ((0x13, I_OPS[op]) if op in I_OPS else
                      (0x03, LOAD_OPS[op]) if op in LOAD_OPS else (0x67, 0))
        return (imm & 0xFFF) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode
    if op in SHIFT_OPS:
        _check("shamt", imm, 0, 32)
        f7, f3 = SHIFT_OPS[op]
        return f7 << 25 | imm << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x13
    if op in STORE_OPS:
        _check("imm", imm, -2048, 2048)
        i = imm & 0xFFF
        return (i >> 5) << 25 | rs2 << 20 | rs1 << 15 | STORE_OPS[op] << 12 | (i & 0x1F) << 7 | 0x23
    if op in BRANCH_OPS:
        _check("offset", imm, -4096, 4096, 2)
        i = imm & 0x1FFF
        return ((i >> 12) << 31 | ((i >> 5) & 0x3F) << 25 | rs2 << 20 | rs1 << 15
                | BRANCH_OPS[op] << 12 | ((i >> 1) & 0xF) << 8 | ((i >> 11) & 1) << 7 | 0x63)
    if op in ("lui", "auipc"):
        _check("imm20", imm, 0, 1 << 20)
        return imm << 12 | rd << 7 | (0x37 if op == "lui" else 0x17)
    if op == "jal":
        _check("offset", imm, -(1 << 20), 1 << 20, 2)
        i = imm & 0x1F_FFFF
        return ((i >> 20) << 31 | ((i >> 1) & 0x3FF) << 21 | ((i >> 11) & 1) << 20
                | ((i >> 12) & 0xFF) << 12 | rd << 7 | 0x6F)
    if op in CSR_OPS:
        _check("csr", imm, 0, 4096)
        return imm << 20 | rs1 << 15 | CSR_OPS[op] << 12 | rd << 7 | 0x73
    if op == "sfence.vma":
        return 0x09 << 25 | rs2 << 20 | rs1 << 15 | 0x73
    if op in FIXED:
        return FIXED[op]
    raise ValueError(f"unknown instruction {op!r}")


def split_hi_lo(value: int) -> tuple[int, int]:
    """(hi20, lo12) with (hi20 << 12) + sext(lo12) == value (mod 2**32), as %hi/%lo do."""
    value &= M32
    lo = ((value & 0xFFF) ^ 0x800) - 0x800
    return ((value - lo) >> 12) & 0xF_FFFF, lo


def li(rd: int, value: int) -> list[int]:
    """Load a 32-bit constant: always two words (lui, addi), so that layouts are predictable."""
    hi, lo = split_hi_lo(value)
    return [encode("lui", rd, imm=hi), encode("addi", rd, rd, imm=lo)]


# ----- operands ------------------------------------------------------------------------------

BOUNDARY_VALUES = (0, 1, 2, 3, 4, 31, 32, 33, 0x7F, 0x80, 0xFF, 0x100, 0x7FF, 0x800, 0xFFF,
                   0x1000, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000,
                   0x8000_0001, 0xFFFF_FFFF, 0xFFFF_FFFE, 0xFFFF_FFE0, 0xFFFF_F800, 0xFFFF_8000,
                   0xFFFF_FF80, 0xAAAA_AAAA, 0x5555_5555, 0x0001_0001, 0xFFFF_0000)
IMM12_BOUNDARIES = (-2048, -2047, -1024, -1, 0, 1, 2, 31, 32, 0x7F, 0x80, 0xFF, 0x7FF)


def reg_value_from_bits(bits: int) -> int:
    """32 bits, or (when bit 32 is set) one of the boundary values: what reg_values() draws,
    and what the byte-decoded programs below take from their bytes."""
    v = bits & ((2 << 32) - 1)
    return BOUNDARY_VALUES[v % len(BOUNDARY_VALUES)] if v >> 32 else v


_REG_VALUES = st.integers(0, (2 << 32) - 1).map(reg_value_from_bits)


def reg_values() -> st.SearchStrategy[int]:
    """A register's 32 bits, unsigned, or a boundary value: one time in thirteen or so, as
    hypothesis favours small integers (the byte-decoded programs get one half the time)."""
    return _REG_VALUES  # built once: a new strategy object is validated on its first draw


def imm12s() -> st.SearchStrategy[int]:
    """A signed 12-bit immediate, with its boundaries."""
    return st.one_of(st.sampled_from(IMM12_BOUNDARIES), st.integers(-2048, 2047))


def registers(choices: Sequence[int] = range(32)) -> st.SearchStrategy[int]:
    return st.sampled_from(tuple(choices))


ALL_REGS = tuple(range(32))
COMPUTATIONAL_KINDS = ("alu", "alu_imm", "shift_imm", "muldiv", "upper")


def computational(kind: str | None = None, dest: Sequence[int] = ALL_REGS,
                  src: Sequence[int] = ALL_REGS) -> st.SearchStrategy[int]:
    """One computational instruction (ALU register/immediate, shift by immediate, M extension,
    lui/auipc) writing a register of `dest` from registers of `src`; `kind` picks one class
    of COMPUTATIONAL_KINDS (None: any)."""
    return _computational(kind, tuple(dest), tuple(src))


@lru_cache(maxsize=256)
def _computational(kind: str | None, dest: tuple[int, ...],
                   src: tuple[int, ...]) -> st.SearchStrategy[int]:
    # strategies are built once per signature: building them is much dearer than drawing
    if kind is None:
        return weighted([_computational(k, dest, src) for k in COMPUTATIONAL_KINDS])
    rd, rs = registers(dest), registers(src)
    if kind in ("alu", "muldiv"):
        ops = ALU_REG if kind == "alu" else MULDIV
        return st.builds(lambda op, d, a, b: encode(op, d, a, b), st.sampled_from(ops), rd, rs, rs)
    if kind == "alu_imm":
        return st.builds(lambda op, d, a, i: encode(op, d, a, imm=i),
                         st.sampled_from(tuple(I_OPS)), rd, rs, imm12s())
    if kind == "shift_imm":
        return st.builds(lambda op, d, a, i: encode(op, d, a, imm=i),
                         st.sampled_from(tuple(SHIFT_OPS)), rd, rs, st.integers(0, 31))
    if kind == "upper":
        return st.builds(lambda op, d, i: encode(op, d, imm=i), st.sampled_from(("lui", "auipc")),
                         rd, st.one_of(st.sampled_from((0, 1, 0x7FFFF, 0x80000, 0xFFFFF)),
                                       st.integers(0, 0xF_FFFF)))
    raise ValueError(f"unknown instruction class {kind!r}")


@dataclass(frozen=True)
class MemoryWindow:
    """Where generated loads and stores may go: `base_reg` holds an address that no generated
    instruction overwrites, and accesses use offsets in [lo, hi) from it (lo >= -2048,
    hi <= 2048). With `aligned`, every access is naturally aligned (the base must be 4-aligned)."""

    base_reg: int
    lo: int = -2048
    hi: int = 2048
    aligned: bool = True


def memory_access(window: MemoryWindow, dest: Sequence[int] = ALL_REGS,
                  src: Sequence[int] = ALL_REGS, loads: bool = True,
                  stores: bool = True) -> st.SearchStrategy[int]:
    """One load or store inside `window`."""
    return _memory_access(window, tuple(dest), tuple(src), loads, stores)


@lru_cache(maxsize=256)
def _memory_access(window: MemoryWindow, dest: tuple[int, ...], src: tuple[int, ...],
                   loads: bool, stores: bool) -> st.SearchStrategy[int]:
    ops = (tuple(LOAD_OPS) if loads else ()) + (tuple(STORE_OPS) if stores else ())
    options = []
    for op in ops:
        size = ACCESS_SIZE[op]
        step = size if window.aligned else 1
        first = -(-window.lo // step) * step
        offsets = st.integers(0, (window.hi - size - first) // step).map(
            lambda k, step=step, first=first: k * step + first)
        if op in LOAD_OPS:
            options.append(st.builds(lambda o, r, op=op: encode(op, r, window.base_reg, imm=o),
                                     offsets, registers(dest)))
        else:
            options.append(st.builds(lambda o, r, op=op: encode(op, 0, window.base_reg, r, imm=o),
                                     offsets, registers(src)))
    return st.one_of(options)


# ----- instructions decoded from bits -----------------------------------------------------------
# Drawing an instruction field by field costs a few hypothesis draws each; whole programs are
# much cheaper to draw as bytes, decoded here into valid words (see "one draw per section").
# Small values decode to the simplest instructions, so shrinking still simplifies.

def _take(bits: int, n: int) -> tuple[int, int]:
    return bits % n, bits // n


def _imm12_from_bits(bits: int) -> int:
    if bits & 1:
        return IMM12_BOUNDARIES[(bits >> 1) % len(IMM12_BOUNDARIES)]
    return (((bits >> 1) & 0xFFF) ^ 0x800) - 0x800


def compute_from_bits(bits: int, dest: Sequence[int], src: Sequence[int]) -> int:
    """A computational instruction chosen by `bits` (any non-negative integer)."""
    kind, bits = _take(bits, len(COMPUTATIONAL_KINDS))
    rd, bits = _take(bits, len(dest))
    a, bits = _take(bits, len(src))
    b, bits = _take(bits, len(src))
    rd, a, b = dest[rd], src[a], src[b]
    kind_name = COMPUTATIONAL_KINDS[kind]
    if kind_name in ("alu", "muldiv"):
        ops = ALU_REG if kind_name == "alu" else MULDIV
        return encode(ops[bits % len(ops)], rd, a, b)
    if kind_name == "alu_imm":
        op, bits = _take(bits, len(I_OPS))
        return encode(tuple(I_OPS)[op], rd, a, imm=_imm12_from_bits(bits))
    if kind_name == "shift_imm":
        op, bits = _take(bits, len(SHIFT_OPS))
        return encode(tuple(SHIFT_OPS)[op], rd, a, imm=bits & 31)
    return encode(("lui", "auipc")[bits & 1], rd, imm=(bits >> 1) & 0xF_FFFF)


def memory_from_bits(bits: int, window: MemoryWindow, dest: Sequence[int],
                     src: Sequence[int]) -> int:
    """A load or store inside `window` chosen by `bits`."""
    ops = tuple(LOAD_OPS) + tuple(STORE_OPS)
    op_i, bits = _take(bits, len(ops))
    op = ops[op_i]
    size = ACCESS_SIZE[op]
    step = size if window.aligned else 1
    first = -(-window.lo // step) * step
    k, bits = _take(bits, (window.hi - size - first) // step + 1)
    offset = first + k * step
    if op in LOAD_OPS:
        return encode(op, dest[bits % len(dest)], window.base_reg, imm=offset)
    return encode(op, 0, window.base_reg, src[bits % len(src)], imm=offset)


BITS = st.integers(0, (1 << 64) - 1)


# ----- straight-line programs: groups of words with forward control flow --------------------

@dataclass(frozen=True)
class Forward:
    """A placeholder for a control transfer `skip` groups past the end of its own group (to the
    program's end at most). `op` is a branch, "jal", or "jalr" (whose offset is relative to the
    word `back` words before it, an auipc). `misalign` adds 2 to the offset (a trap)."""

    op: str
    rd: int = 0
    rs1: int = 0
    rs2: int = 0
    skip: int = 0
    back: int = 0
    misalign: bool = False


@dataclass(frozen=True)
class Patch:
    """A placeholder for `sw rs2, off(rs1)` where rs1 holds the address of the word `back` words
    before this one (an auipc), and the store goes to the first word of group `target`."""

    rs1: int
    rs2: int
    target: int
    back: int = 1


Word = int | Forward | Patch
Group = tuple[Word, ...]


def layout(groups: Sequence[Group]) -> list[int]:
    """Resolve the placeholders of a list of groups into instruction words."""
    starts, n = [], 0
    for g in groups:
        starts.append(n)
        n += len(g)
    starts.append(n)
    words: list[int] = []
    for gi, g in enumerate(groups):
        for w in g:
            here = len(words)
            if isinstance(w, Forward):
                target = starts[min(gi + 1 + w.skip, len(groups))]
                offset = 4 * (target - here + w.back) + (2 if w.misalign else 0)
                if w.op in BRANCH_OPS:
                    words.append(encode(w.op, 0, w.rs1, w.rs2, offset))
                else:
                    words.append(encode(w.op, w.rd, w.rs1, imm=offset))
            elif isinstance(w, Patch):
                offset = 4 * (starts[w.target] - here + w.back)
                words.append(encode("sw", 0, w.rs1, w.rs2, imm=offset))
            else:
                words.append(w)
    return words


def control_groups(dest: Sequence[int], src: Sequence[int], max_skip: int = 6,
                   misaligned: bool = False) -> st.SearchStrategy[Group]:
    """A forward branch (taken or not), a jal, or an auipc+jalr pair, linking into `dest`
    (rd may equal rs1). With `misaligned`, some of them jump to a target 2 bytes off."""
    return _control_groups(tuple(dest), tuple(src), max_skip, misaligned)


@lru_cache(maxsize=256)
def _control_groups(dest: tuple[int, ...], src: tuple[int, ...], max_skip: int,
                    misaligned: bool) -> st.SearchStrategy[Group]:
    skip = st.integers(0, max_skip)
    mis = st.booleans() if misaligned else st.just(False)
    rd, rs = registers(dest), registers(src)
    branch = st.builds(lambda op, a, b, k, m: (Forward(op, 0, a, b, k, misalign=m),),
                       st.sampled_from(tuple(BRANCH_OPS)), rs, rs, skip, mis)
    jal = st.builds(lambda d, k, m: (Forward("jal", d, skip=k, misalign=m),), rd, skip, mis)
    jalr = st.builds(lambda t, d, k, m: (encode("auipc", t, imm=0),
                                         Forward("jalr", d, t, skip=k, back=1, misalign=m)),
                     registers(dest), st.one_of(rd, st.just(-1)), skip, mis)
    # rd == -1 above stands for "link into the auipc's register" (the rd == rs1 case)
    jalr = jalr.map(lambda g: (g[0], _fix_link(g[1], g[0])))
    return st.one_of(branch, jal, jalr)


def _fix_link(f: Word, auipc: Word) -> Word:
    assert isinstance(f, Forward) and isinstance(auipc, int)
    if f.rd == -1:
        return Forward(f.op, (auipc >> 7) & 0x1F, f.rs1, f.rs2, f.skip, f.back, f.misalign)
    return f


# ----- one draw per section -------------------------------------------------------------------
# A hypothesis draw costs tens of microseconds, and a whole program drawn field by field took
# some 400 of them: most of a whole-guest example's time. Sections are drawn instead as one byte
# string, GROUP_BYTES per group, each decoded here by picking from a weighted table and then the
# group's fields. An all-zero group decodes to nothing: the shrinker zeroes every byte it can,
# so the groups that do not matter to a failure vanish from the listing. (Hypothesis draws byte
# strings about twice their least length: a section's least size sets its usual size.)

GROUP_BYTES = 8
GroupDecoder = Callable[[int], Group]


def groups_from_bytes(data: bytes, decode: GroupDecoder) -> list[Group]:
    groups = []
    for i in range(0, len(data), GROUP_BYTES):
        bits = int.from_bytes(data[i:i + GROUP_BYTES], "little")
        if bits:
            groups.append(decode(bits))
    return groups


def pick_decoder(options: Sequence[tuple[int, GroupDecoder]]) -> GroupDecoder:
    """One of `options` (weight, decoder), chosen by the low digits of the bits."""
    table = tuple(d for weight, d in options for _ in range(weight))

    def decode(bits: int) -> Group:
        k, bits = _take(bits, len(table))
        return table[k](bits)

    return decode


@lru_cache(maxsize=64)
def section_decoder(dest: tuple[int, ...], src: tuple[int, ...], window: MemoryWindow | None,
                    control: bool, extra: GroupDecoder | None) -> GroupDecoder:
    """Computational instructions 6 parts in 15, loads and stores 3, forward jumps 2, extras 4
    (the weights of the field-by-field straight_line_groups)."""
    options: list[tuple[int, GroupDecoder]] = [(6, lambda b: (compute_from_bits(b, dest, src),))]
    if window is not None:
        options.append((3, lambda b: (memory_from_bits(b, window, dest, src),)))
    if control:
        options.append((2, lambda b: control_from_bits(b, dest, src)))
    if extra is not None:
        options.append((4, extra))
    return pick_decoder(options)


def control_from_bits(bits: int, dest: Sequence[int], src: Sequence[int], max_skip: int = 6,
                      misaligned: bool = False) -> Group:
    """What control_groups() draws: a forward branch, a jal, or an auipc+jalr pair."""
    kind, bits = _take(bits, 3)
    skip, bits = _take(bits, max_skip + 1)
    mis = bool(bits & 1) and misaligned
    bits >>= 1
    if kind == 0:
        op, bits = _take(bits, len(BRANCH_OPS))
        a, bits = _take(bits, len(src))
        return (Forward(tuple(BRANCH_OPS)[op], 0, src[a], src[bits % len(src)], skip,
                        misalign=mis),)
    rd, bits = _take(bits, len(dest))
    if kind == 1:
        return (Forward("jal", dest[rd], skip=skip, misalign=mis),)
    t, bits = _take(bits, len(dest))
    link = dest[t] if bits & 1 else dest[rd]  # half the time rd == rs1
    return (encode("auipc", dest[t], imm=0),
            Forward("jalr", link, dest[t], skip=skip, back=1, misalign=mis))


def straight_line_groups(min_size: int = 5, max_size: int = 30,
                         dest: Sequence[int] = tuple(range(1, 32)), src: Sequence[int] = ALL_REGS,
                         window: MemoryWindow | None = None, control: bool = True,
                         extra: st.SearchStrategy[Group] | GroupDecoder | None = None,
                         cheap: bool = False) -> st.SearchStrategy[list[Group]]:
    """The groups of a straight-line program: computational instructions, loads and stores
    inside `window`, forward control transfers, and groups drawn from `extra`. With `cheap`,
    the groups are one byte string decoded 8 bytes a group, and `extra` is a decoder (see
    "one draw per section" below): far faster for whole programs, and shrinking still removes
    the groups that do not matter."""
    return _straight_line_groups(min_size, max_size, tuple(dest), tuple(src), window, control,
                                 extra, cheap)


@lru_cache(maxsize=256)
def _straight_line_groups(min_size: int, max_size: int, dest: tuple[int, ...],
                          src: tuple[int, ...], window: MemoryWindow | None, control: bool,
                          extra: st.SearchStrategy[Group] | GroupDecoder | None,
                          cheap: bool) -> st.SearchStrategy[list[Group]]:
    if cheap:
        assert extra is None or callable(extra) and not isinstance(extra, st.SearchStrategy)
        decode = section_decoder(dest, src, window, control, extra)
        return st.binary(min_size=GROUP_BYTES * min_size, max_size=GROUP_BYTES * max_size).map(
            lambda data: groups_from_bytes(data, decode))
    options = [computational(dest=dest, src=src).map(lambda w: (w,))] * 6
    if window is not None:
        options += [memory_access(window, dest, src).map(lambda w: (w,))] * 3
    if control:
        options += [control_groups(dest, src)] * 2
    if extra is not None:
        assert isinstance(extra, st.SearchStrategy)
        options += [extra] * 4
    return st.lists(weighted(options), min_size=min_size, max_size=max_size)


@cache
def index_below(n: int) -> st.SearchStrategy[int]:
    """0 .. n-1, one strategy object per n: hypothesis validates each new strategy, slowly."""
    return st.integers(0, n - 1)


def weighted(options: Sequence[st.SearchStrategy[Group]]) -> st.SearchStrategy[Group]:
    """Draw from one of `options`, each (repeats count) equally likely. (st.one_of favours its
    first alternatives and merges repeats.)"""
    options = tuple(options)
    which = index_below(len(options))

    @st.composite
    def pick(draw: st.DrawFn) -> Group:
        return draw(options[draw(which)])

    return pick()


def straight_line(min_size: int = 5, max_size: int = 30,
                  dest: Sequence[int] = tuple(range(1, 32)), src: Sequence[int] = ALL_REGS,
                  window: MemoryWindow | None = None,
                  control: bool = True) -> st.SearchStrategy[list[int]]:
    """A straight-line program (forward branches and jumps only, all targets 4-byte aligned
    and inside the program or just past its end) of `min_size` to `max_size` groups. It writes
    only registers of `dest`; loads and stores stay inside `window`; it cannot trap."""
    return straight_line_groups(min_size, max_size, dest, src, window, control).map(layout)


def loop_words(counter: int, iterations: int, body: list[int]) -> list[int]:
    """`counter = iterations; do { body } while (--counter != 0)`; `body` must not write
    `counter` and must end by falling through (straight-line code does)."""
    return ([encode("addi", counter, 0, imm=iterations)] + body
            + [encode("addi", counter, counter, imm=-1),
               encode("bne", 0, counter, 0, -4 * (len(body) + 1))])


@st.composite
def loop(draw: st.DrawFn, counter: int = 31, max_iterations: int = 20, min_size: int = 2,
         max_size: int = 12, dest: Sequence[int] = tuple(range(1, 31)),
         src: Sequence[int] = ALL_REGS, window: MemoryWindow | None = None) -> list[int]:
    """A counted loop around a straight-line body that never writes `counter`."""
    dest = tuple(r for r in dest if r != counter)
    body = draw(straight_line(min_size, max_size, dest, src, window))
    return loop_words(counter, draw(st.integers(1, max_iterations)), body)


# ----- whole S/U programs for the fast path and the grader ------------------------------------

RAM_BASE = 0x8000_0000
S_CODE = 0x8040_0000  # the S-mode program (3 pages), entered in the first one
HANDLER = 0x8040_3000  # stvec: the trap handler (1 page, never written by the program)
U_CODE = 0x8040_4000  # U-mode functions (2 pages)
DATA_U = 0x8040_6000  # a data page that U-mode may use (S-mode with SUM)
DATA_S = 0x8040_7000  # a data page for S-mode only; DATA_BASE_REG points at its start
PT_ROOT = 0x8041_0000  # Sv32 root table, and the table for 0x8040_0000..0x807F_FFFF
PT_L0 = 0x8041_1000
PT_ROOT2 = 0x8041_2000  # a second root (for satp switches), and its table for 0x8040_0000..
PT_L0B = 0x8041_3000
HANDLER2 = HANDLER + 0x800  # a copy of the trap handler (for stvec switches)
CODE_FRAMES = 0x8042_0000  # with paging, the S code's pages live in some of these 4 frames
CODE_PAGES = 3

# registers with fixed roles in system programs; generated code writes only x1..x25
LOOP_REG = 27  # loop counter
DATA_BASE_REG = 28  # = DATA_S: offsets below 0 reach DATA_U, from 0 up DATA_S
RESUME_REG = 29  # where a U-mode ecall returns to, in S-mode
SCRATCH_REGS = (30, 31)  # the trap handler's
WILD_LINK_REG = 26  # the link register of jumps to arbitrary addresses
FREE_REGS = tuple(range(1, 26))

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
UART_THR = 0x1000_0000
# (EID, FID): console output comes up often; a7 = 8 (shutdown) only at the end
SBI_CALLS = ((0x01, 0), (0x01, 0), (0x4442434E, 2), (0x02, 0), (0x10, 0), (0x10, 3), (0x10, 7),
             (0x4442434E, 2), (0x4442434E, 0), (0x54494D45, 0), (0x03, 0), (0x12345678, 0),
             (0x00, 0))
# CSRs the generated code may touch: reading any is fine; writing these cannot wreck the
# program's structure (stvec and satp stay as set up)
CSR_READS = ("sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc", "scause", "stval",
             "sip", "stimecmp", "stimecmph", "satp", "cycle", "time", "instret", "cycleh",
             "timeh", "instreth")
CSR_WRITES = ("sstatus", "sie", "scounteren", "sscratch", "sepc", "scause", "stval", "sip",
              "stimecmp", "time")
BAD_WORDS = (0x0000_0000, 0xFFFF_FFFF, FIXED["mret"], 0x3000_2573,  # csrr a0, mstatus
             0x0000_1073 | (0x5FF << 20))  # a CSR that does not exist


@dataclass(frozen=True)
class SystemProgram:
    """A program and the state to start it in: segments (physical address, bytes) to load,
    and the initial registers, CSRs, mode and pc. `features` names what the generator put in
    (for coverage checks)."""

    segments: tuple[tuple[int, bytes], ...]
    state: MachineState
    paging: bool
    features: frozenset[str]


def _words_bytes(words: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(words)}I", *(w & M32 for w in words))


def csr_from_bits(bits: int, user: bool) -> Group:
    """A CSR instruction on one of the CSRs a generated program may touch (in U-mode most of
    them trap), or (S-mode) the re-arming of the timer a little ahead: reads half the time."""
    kinds = ("read", "write") if user else ("read", "read", "write", "rearm")
    k, bits = _take(bits, len(kinds))
    if kinds[k] == "read":
        op, bits = _take(bits, 4)
        csr, bits = _take(bits, len(CSR_READS))
        return (encode(("csrrs", "csrrc", "csrrsi", "csrrci")[op],
                       FREE_REGS[bits % len(FREE_REGS)], 0, imm=CSR[CSR_READS[csr]]),)
    r, bits = _take(bits, len(FREE_REGS))
    if kinds[k] == "rearm":
        ahead = 1 + bits % 300
        return (encode("csrrs", FREE_REGS[r], 0, imm=CSR["time"]),
                encode("addi", FREE_REGS[r], FREE_REGS[r], imm=ahead),
                encode("csrrw", 0, FREE_REGS[r], imm=CSR["stimecmp"]))
    op, bits = _take(bits, len(CSR_OPS))
    csr, bits = _take(bits, len(CSR_WRITES))
    rd = FREE_REGS[r] if bits & 1 else 0  # the old value kept, or thrown away
    return (encode(tuple(CSR_OPS)[op], rd, (bits >> 1) & 31, imm=CSR[CSR_WRITES[csr]]),)


SBI_A0 = (65, 10, DATA_S - 16, 3)


def sbi_from_bits(bits: int) -> Group:
    """An SBI call (from S-mode: the firmware; from U-mode: a trap that ends the U call), with
    a0 left as it is a third of the time."""
    call, bits = _take(bits, len(SBI_CALLS))
    eid, fid = SBI_CALLS[call]
    how, bits = _take(bits, 3)
    a0 = (None if how == 0 else SBI_A0[bits % len(SBI_A0)] if how == 1
          else reg_value_from_bits(bits))
    return (*li(17, eid), encode("addi", 16, 0, imm=fid), *([] if a0 is None else li(10, a0)),
            FIXED["ecall"])


ACCESS_OPS = tuple(LOAD_OPS) + tuple(STORE_OPS)
MISALIGNABLE = ("lh", "lhu", "lw", "sh", "sw")


def _access(op: str, r: int, base: int, imm: int) -> Group:
    return ((encode(op, r, base, imm=imm) if op in LOAD_OPS else encode(op, 0, base, r, imm=imm)),)


def memory_any_from_bits(bits: int) -> Group:
    """A load or store through any register, at any offset."""
    op, bits = _take(bits, len(ACCESS_OPS))
    r, bits = _take(bits, len(FREE_REGS))
    base, bits = _take(bits, 32)
    return _access(ACCESS_OPS[op], FREE_REGS[r], base, _imm12_from_bits(bits))


def memory_low_from_bits(bits: int) -> Group:
    """An aligned access at x0 + imm: never RAM (an access fault, or a page fault with
    paging)."""
    op, bits = _take(bits, len(ACCESS_OPS))
    r, bits = _take(bits, len(FREE_REGS))
    return _access(ACCESS_OPS[op], FREE_REGS[r], 0, _imm12_from_bits(bits) & -4)


def misaligned_from_bits(bits: int) -> Group:
    op, bits = _take(bits, len(MISALIGNABLE))
    r, bits = _take(bits, len(FREE_REGS))
    return _access(MISALIGNABLE[op], FREE_REGS[r], DATA_BASE_REG, (bits % 2001 - 1000) | 1)


def simple_from_bits(bits: int, user: bool) -> Group:
    """A one-word instruction that traps or does nothing visible, or a word that is not a
    valid instruction here."""
    words = (FIXED["ebreak"], FIXED["fence"], FIXED["fence.i"], FIXED["wfi"],
             FIXED["sret"] if user else FIXED["ebreak"], *BAD_WORDS)
    return (words[bits % len(words)],)


def wild_from_bits(bits: int) -> Group:
    """A jump anywhere: a fetch fault (or not) that the handler returns from to
    WILD_LINK_REG."""
    base, bits = _take(bits, 32)
    return (encode("jalr", WILD_LINK_REG, base, imm=_imm12_from_bits(bits)),)


def uart_from_bits(bits: int) -> Group:
    """A byte to the UART's transmit register (a page fault with paging: it is not mapped)."""
    r, bits = _take(bits, len(FREE_REGS))
    return (*li(FREE_REGS[r], UART_THR), encode("sb", 0, FREE_REGS[r], bits % 32, imm=0))


@lru_cache(maxsize=8)
def system_extra_decoder(user: bool, paging: bool = False) -> GroupDecoder:
    """The unusual groups of system programs: CSR accesses, SBI calls, traps of every kind,
    privileged instructions, fences, accesses through arbitrary registers; in S-mode, stvec
    switches, and with paging satp switches and changes to PTEs already used."""
    options: list[tuple[int, GroupDecoder]] = [
        (2, lambda b: csr_from_bits(b, user)), (2, sbi_from_bits), (2, memory_any_from_bits),
        (2, memory_low_from_bits), (1, misaligned_from_bits),
        (2, lambda b: simple_from_bits(b, user)),
        (1, lambda b: (encode("sfence.vma", 0, b % 32, (b >> 5) % 32),)),
        (3, wild_from_bits), (1, uart_from_bits),
        (1, lambda b: control_from_bits(b, FREE_REGS, ALL_REGS, misaligned=True))]
    if not user:
        options.append((1, stvec_from_bits))
    if paging and not user:
        options.append((3, paging_from_bits))
    return pick_decoder(options)


def stvec_from_bits(bits: int) -> Group:
    """stvec moved to the handler's other copy, or back: a VMM must reflect to the new one."""
    r, bits = _take(bits, len(FREE_REGS))
    return (*li(FREE_REGS[r], (HANDLER, HANDLER2)[bits & 1]),
            encode("csrrw", 0, FREE_REGS[r], imm=CSR["stvec"]))


SATP_TOGGLE = (PT_ROOT ^ PT_ROOT2) >> 12 | 0x100 << 22  # the other root, the other ASID


def paging_from_bits(bits: int) -> Group:
    """What a kernel does to its address space: switch satp to the other root (whose data
    pages are swapped) or back, or rewrite a data page's PTE (another frame, one above 4 GiB,
    other permissions: an upgrade too), in either root's table. A fence follows each PTE
    change: without one, what the bare machine's TLB still holds is the hardware's choice,
    not the spec's."""
    kind, bits = _take(bits, 2)
    r, bits = _take(bits, len(FREE_REGS))
    others = tuple(x for x in FREE_REGS if x != FREE_REGS[r])
    s, bits = _take(bits, len(others))
    a, b = FREE_REGS[r], others[s]
    if kind == 0:
        # satp toggled between the two roots, each with its own ASID (bit 8 flipped with the
        # root): TLB entries tagged with an ASID always match its root's tables, so the switch
        # needs no fence on the bare machine, and gets one only half the time
        return tuple(_satp_toggle(a, b, bool(bits & 1)))
    va, bits = _take(bits, 2)
    table, bits = _take(bits, 2)
    page = (DATA_U, DATA_S)[va]
    pte, bits = _data_pte(page, bits)
    return _pte_write(a, b, (PT_L0, PT_L0B)[table], page, pte, bool(bits & 1))


def _data_pte(page: int, bits: int) -> tuple[int, int]:
    """A PTE for a data page, from bits: either data frame, maybe above 4 GiB, and any of the
    data pages' permissions (U set on DATA_U's)."""
    frame, bits = _take(bits, 2)
    high, bits = _take(bits, len(DATA_HIGHS))
    flags, bits = _take(bits, len(DATA_FLAGS))
    pa = (DATA_U, DATA_S)[frame] | DATA_HIGHS[high] << 32
    return (pa >> 12) << 10 | DATA_FLAGS[flags] | (PTE_U if page == DATA_U else 0), bits


def _pte_write(a: int, b: int, table: int, page: int, pte: int, fence_all: bool) -> Group:
    """Rewrite `page`'s PTE in `table`, then fence: all of it, or that page."""
    fence = ((encode("sfence.vma", 0, 0, 0),) if fence_all
             else (*li(b, page), encode("sfence.vma", 0, b, 0)))
    return (*li(a, table + 4 * ((page >> 12) & 0x3FF)), *li(b, pte),
            encode("sw", 0, a, b, imm=0), *fence)


def churn_words(bits: int, storm: bool = True) -> list[int]:
    """A run of address-space changes, dozens of flushes in a few hundred instructions: SUM
    set (the accesses to DATA_U here are the kernel's), then two iterations of a loop that
    gives one data page two PTEs in turn (one composed otherwise than the other:
    _changed_pte) and after each rewrites, touches the page, switches satp to the other root
    (whose data frames are swapped) and back, one of the two switches fenced, and after each
    switch reads one data page and writes the other; then, with `storm`, STORM more switches
    and back. A VMM that keeps a composition past a fence, or a shadow past a satp switch,
    shows it in the first loop; a shadow VMM whose tables leak runs out of frames in the
    second (whose switches cost a nested VMM, or one with memory to spare, time alone)."""
    (acc, tmp, a, b, home, away), bits = _distinct_regs(6, bits)
    k, bits = _take(bits, 8)
    which, bits = _take(bits, 2)
    offsets = (-4 * (k + 1), 4 * k)  # from DATA_BASE_REG: into DATA_U, into DATA_S
    page, here, there = (DATA_U, DATA_S)[which], offsets[which], offsets[1 - which]
    first, bits = _data_pte(page, bits)
    # the PTE that always fills comes first: a composition remembered from it is wrong at once
    ptes = (_changed_pte(page, first, bits), first)
    bits >>= 3
    body: list[int] = []
    for pte in ptes:
        # under the other root the page read is the other frame, and the page written is
        # read back after the switch home: a shadow kept across a switch shows either way
        fenced = bits & 2
        body += [*_pte_write(a, b, PT_L0, page, pte, bool(bits & 1)),
                 *_touch(acc, tmp, here, here), *_switch(away, not fenced),
                 *_touch(acc, tmp, here, there), *_switch(home, bool(fenced)),
                 *_touch(acc, tmp, there, here)]
        bits >>= 2
    prologue = [*li(a, SSTATUS_SUM), encode("csrrs", 0, a, imm=CSR["sstatus"]),
                encode("csrrs", home, 0, imm=CSR["satp"]), *li(away, SATP_TOGGLE),
                encode("xor", away, away, home)]
    # each iteration keeps `acc` over the prologue's first word, which has run: where the
    # code that follows cannot overwrite it, and the comparison of memory sees it (the loop's
    # counter is set between the two)
    back = len(prologue) + 1 + len(body)
    body += [encode("auipc", b, imm=0), encode("sw", 0, b, acc, imm=-4 * back)]
    words = prologue + loop_words(LOOP_REG, 2, body)
    if storm:
        words += loop_words(LOOP_REG, STORM // 2, [*_switch(away, False), *_switch(home, False)])
    return words


# Flushes of the storm: with the first loop's sixteen or more, past the 46 after which a VMM
# that leaks a table a flush has run out of its 48 frames (worker.VMM_MEMORY). A satp write
# is the cheapest flush there is: it enters the VMM twice (the write, and the refill of the
# code page it flushed), where a flush of the first loop takes eight.
STORM = 48


def _switch(satp: int, fence: bool) -> list[int]:
    return [encode("csrrw", 0, satp, imm=CSR["satp"]),
            *((encode("sfence.vma", 0, 0, 0),) if fence else ())]


def _touch(acc: int, tmp: int, load: int, store: int) -> list[int]:
    """A load at `load` from DATA_BASE_REG added into `acc`, and `acc` stored at `store`: one
    wrong load (the wrong frame, a fault missed or added) shows in every later value. (`tmp`
    is set first: a load that faults leaves it as it was, and it was what a load from the
    same word before gave, when nothing has been stored there since.)"""
    return [encode("addi", tmp, acc, imm=1), encode("lw", tmp, DATA_BASE_REG, imm=load),
            encode("add", acc, acc, tmp), encode("addi", acc, acc, imm=1),
            encode("sw", 0, DATA_BASE_REG, acc, imm=store)]


def _distinct_regs(n: int, bits: int) -> tuple[list[int], int]:
    """`n` different registers of FREE_REGS, chosen by `bits`; and the bits left."""
    left, chosen = list(FREE_REGS), []
    for _ in range(n):
        i, bits = _take(bits, len(left))
        chosen.append(left.pop(i))
    return chosen, bits


def _satp_toggle(a: int, b: int, fence: bool) -> list[int]:
    """satp switched to the other root and ASID (SATP_TOGGLE), maybe fenced after."""
    return [encode("csrrs", a, 0, imm=CSR["satp"]), *li(b, SATP_TOGGLE), encode("xor", a, a, b),
            encode("csrrw", 0, a, imm=CSR["satp"]),
            *((encode("sfence.vma", 0, 0, 0),) if fence else ())]


def _changed_pte(page: int, pte: int, bits: int) -> int:
    """A PTE for data `page` in RAM that loads may use, composed otherwise than `pte`: the
    other data frame, or the same frame with stores allowed where `pte` forbids them (an
    upgrade) or forbidden where it allows them. Of two PTEs in turn, one then fills, and a
    composition remembered from one of them is wrong for the other."""
    frame = (pte >> 10 << 12) & M32
    user = PTE_U if page == DATA_U else 0
    if bits & 1:
        other = DATA_S if frame == DATA_U else DATA_U
        return (other >> 12) << 10 | READABLE[(bits >> 1) % len(READABLE)] | user
    stores = pte & ~PTE_U == (frame >> 12) << 10 | RW_AD  # in RAM, loads and stores allowed
    flags = READABLE[1 + (bits >> 1) % 2] if stores else RW_AD
    return (frame >> 12) << 10 | flags | user


PATCH_WORDS = (FIXED["ebreak"], 0, FIXED["ecall"])


@st.composite
def _patchable_section(draw: st.DrawFn, user: bool, min_size: int, max_size: int,
                       paging: bool = False) -> list[Group]:
    """Straight-line groups, some of which overwrite a computational group of the same section
    (before or after them) with a new instruction word."""
    window = MemoryWindow(DATA_BASE_REG, -2048, 2048, aligned=True)
    groups = draw(straight_line_groups(min_size, max_size, FREE_REGS, ALL_REGS, window, True,
                                       system_extra_decoder(user, paging), cheap=True))
    targets = [i for i, g in enumerate(groups) if len(g) == 1 and isinstance(g[0], int)
               and g[0] & 0x7F in (0x13, 0x33, 0x37, 0x17)]
    if targets:
        for _ in range(draw(PATCH_COUNTS)):
            bits = draw(BITS)  # one draw for the whole patch
            new = (compute_from_bits(bits >> 1, FREE_REGS, ALL_REGS) if bits & 1 == 0
                   else PATCH_WORDS[(bits >> 1) % 3])
            bits >>= 40
            rv, bits = _take(bits, len(FREE_REGS))
            others = tuple(r for r in FREE_REGS if r != FREE_REGS[rv])
            rt, bits = _take(bits, len(others))
            target = targets[bits % len(targets)]
            at = (bits // len(targets)) % (len(groups) + 1)
            groups = [_shift_patches(g, at) for g in groups]
            groups.insert(at, (*li(FREE_REGS[rv], new), encode("auipc", others[rt], imm=0),
                               Patch(others[rt], FREE_REGS[rv], target + (target >= at))))
            targets = [t + (t >= at) for t in targets]
    return groups


PATCH_COUNTS = st.integers(0, 3)


@cache
def patchable_sections(user: bool, min_size: int, max_size: int,
                       paging: bool = False) -> st.SearchStrategy[list[Group]]:
    """_patchable_section, one strategy object per size (see `sampled`)."""
    return _patchable_section(user, min_size, max_size, paging)


def _shift_patches(g: Group, inserted_at: int) -> Group:
    """Keep the Patch placeholders of `g` pointing at the same groups after a group was
    inserted at `inserted_at`."""
    return tuple(Patch(w.rs1, w.rs2, w.target + 1, w.back)
                 if isinstance(w, Patch) and w.target >= inserted_at else w for w in g)


def _u_call(function_address: int) -> Group:
    """Enter U-mode at a function through sret; its ecall comes back after this group."""
    hi, lo = split_hi_lo(function_address)
    body = [encode("lui", 30, imm=hi), encode("addi", 30, 30, imm=lo),
            encode("csrrw", 0, 30, imm=CSR["sepc"]),
            encode("addi", 30, 0, imm=SSTATUS_SPP), encode("csrrc", 0, 30, imm=CSR["sstatus"]),
            FIXED["sret"]]
    return (encode("auipc", RESUME_REG, imm=0),
            encode("addi", RESUME_REG, RESUME_REG, imm=4 * (len(body) + 2)), *body)


def handler_words(rearm: int | None) -> list[int]:
    """The S-mode trap handler. Exceptions resume after the trapping instruction, except: an
    instruction access or page fault (a jump to an arbitrary address) returns to the address in
    WILD_LINK_REG, and an ecall from U-mode returns to S-mode at RESUME_REG. The timer interrupt
    re-arms the timer `rearm` ahead, or (None) masks it in sie. Uses only x30 and x31."""
    t, c = 30, 31
    irq = ([encode("csrrs", t, 0, imm=CSR["time"]), encode("addi", t, t, imm=rearm),
            encode("csrrw", 0, t, imm=CSR["stimecmp"])] if rearm is not None
           else [encode("addi", t, 0, imm=STIE), encode("csrrc", 0, t, imm=CSR["sie"])])
    irq_at, wild_at, out_at = 17, 15, 14
    words = [encode("csrrs", c, 0, imm=CSR["scause"]),  # 0
             encode("blt", 0, c, 0, 4 * (irq_at - 1)),  # 1
             encode("addi", t, 0, imm=1),  # 2: instruction access fault
             encode("beq", 0, c, t, 4 * (wild_at - 3)),  # 3
             encode("addi", t, 0, imm=12),  # 4: instruction page fault
             encode("beq", 0, c, t, 4 * (wild_at - 5)),  # 5
             encode("csrrs", t, 0, imm=CSR["sepc"]),  # 6: skip the trapping instruction
             encode("addi", t, t, imm=4),  # 7
             encode("csrrw", 0, t, imm=CSR["sepc"]),  # 8
             encode("addi", t, 0, imm=8),  # 9: ecall from U-mode
             encode("bne", 0, c, t, 4 * (out_at - 10)),  # 10
             encode("csrrw", 0, RESUME_REG, imm=CSR["sepc"]),  # 11: back to S at RESUME_REG
             encode("addi", t, 0, imm=SSTATUS_SPP),  # 12
             encode("csrrs", 0, t, imm=CSR["sstatus"]),  # 13
             FIXED["sret"],  # 14 = out_at
             encode("csrrw", 0, WILD_LINK_REG, imm=CSR["sepc"]),  # 15 = wild_at
             FIXED["sret"],  # 16
             *irq, FIXED["sret"]]  # 17 = irq_at
    return words


def _page_table(setting: Setting, code_pa: Sequence[int]) -> list[tuple[int, bytes]]:
    """The Sv32 tables: identity for everything but the S code pages, whose i-th virtual page
    maps to code_pa[i], and the data pages, which may name a physical page above 4 GiB (Sv32
    has 34-bit physical addresses) whose low 32 bits are the page itself. A second root maps
    the same code, with the two data pages' frames swapped (one frame then has two virtual
    addresses across a satp switch); the table pages are mapped for S-mode to write."""
    rwx_ad = PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
    flags = {S_CODE + 0x1000 * i: rwx_ad for i in range(CODE_PAGES)}
    flags[HANDLER] = PTE_V | PTE_R | PTE_X | PTE_A
    flags[U_CODE] = flags[U_CODE + 0x1000] = rwx_ad | PTE_U
    for table in (PT_ROOT, PT_L0, PT_ROOT2, PT_L0B):
        flags[table] = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    flags[DATA_U] = setting.data_u_flags | PTE_U
    flags[DATA_S] = setting.data_s_flags
    pa = {S_CODE + 0x1000 * i: code_pa[i] for i in range(CODE_PAGES)}
    high = setting.data_high << 32
    pa[DATA_U], pa[DATA_S] = DATA_U | high, DATA_S | high
    swapped = {**pa, DATA_U: pa[DATA_S], DATA_S: pa[DATA_U]}
    out = []
    for root, l0, where in ((PT_ROOT, PT_L0, pa), (PT_ROOT2, PT_L0B, swapped)):
        r, table = bytearray(4096), bytearray(4096)
        _put(r, S_CODE >> 22, (l0 >> 12) << 10 | PTE_V)
        _put(r, RAM_BASE >> 22, (RAM_BASE >> 12) << 10 | setting.mega_flags)  # a megapage
        for va, f in flags.items():
            _put(table, (va >> 12) & 0x3FF, (where.get(va, va) >> 12) << 10 | f)
        out += [(root, bytes(r)), (l0, bytes(table))]
    return out


def _put(table: bytearray, index: int, pte: int) -> None:
    table[index * 4:index * 4 + 4] = pte.to_bytes(4, "little")


RW_AD = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
READABLE = (RW_AD, PTE_V | PTE_R | PTE_A, PTE_V | PTE_R | PTE_W | PTE_A)  # the last: D clear
DATA_FLAGS = (RW_AD,) * 4 + (
    PTE_V | PTE_R | PTE_A,  # read-only
    PTE_V | PTE_R | PTE_W | PTE_A,  # D clear: stores fault (Svade)
    PTE_V | PTE_R | PTE_W,  # A clear: every access faults
    PTE_V | PTE_X | PTE_A,  # execute-only: loads need MXR
    0)  # invalid


DECOYS = st.binary(min_size=3 * GROUP_BYTES, max_size=8 * GROUP_BYTES)
STATUS_FLAGS = (SSTATUS_SIE, SSTATUS_SPIE, SSTATUS_SUM, SSTATUS_MXR)
REGISTER_BYTES = 5  # 33 bits a register: its value, or a boundary value
PADS = (0, 1024 - 4, 1024 - 20, 1024 - 50, None)  # None: anywhere in the first page
REARMS = (None, 0, 0, 0)  # None: the handler masks the timer; 0: it re-arms it, 20 to 250 ahead
MEGA_FLAGS = (0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D, PTE_V | PTE_R | PTE_A | PTE_G)
TIMERS = (0, 0, 0, (1 << 64) - 1)  # 0: 1 to 400
SIES = (STIE, STIE, STIE, 0)
DATA_HIGHS = (0, 0, 0, 0, 0, 1, 2, 3)  # bits 33:32 of the data pages: mostly RAM


@dataclass(frozen=True)
class Churn:
    """A churn of the address space (churn_words) and the section it runs before."""

    at: int
    bits: int


# Three paging programs in four churn. Hypothesis copies a setting's record whole into many
# examples of a run (a visible test's sixty hold a dozen settings or so), and draws some records
# small, their high bits zero: a churn drawn as a section kind, or from the record's later bits,
# came up in no example at some seeds, and a fill that keeps stale compositions went unseen.
CHURNS = (False, True, True, True)


def churn_from(src: Source) -> Churn:
    return Churn(src.integer(0, 3), src.integer(0, (1 << 64) - 1))


@dataclass(frozen=True)
class Setting:
    """What a system program runs in, as opposed to its code: paging and the data pages'
    permissions, where it starts, how it ends, its timer, its CSRs, the frames of its code; and
    the churn of its address space, if any (the one part of its code chosen here: see CHURNS)."""

    paging: bool
    end: str
    pad: int
    rearm: int | None
    frames: tuple[int, ...]
    data_u_flags: int
    data_s_flags: int
    mega_flags: int
    asid: int
    data_high: int  # bits 33:32 of the data pages' physical addresses (0: in RAM)
    status: int
    timer: int
    sie: int
    scounteren: int
    sscratch: int
    churn: Churn | None


def setting_from(src: Source, paging: bool | None, ends: Sequence[str]) -> Setting:
    """A program's setting, simplest choices first (with a record source, one draw for all
    of them: they are a dozen small choices, and each draw costs hypothesis as much)."""
    if paging is None:
        paging = src.choice((False, True))
    churns = paging and src.choice(CHURNS)  # in the record's low bits: see CHURNS
    end = src.choice(tuple(ends))
    pad = src.choice(PADS)
    if pad is None:
        pad = src.integer(0, 1023)
    rearm = src.choice(REARMS)
    if rearm is not None:
        rearm = src.integer(20, 250)
    left = list(range(CODE_PAGES + 1))
    frames = tuple(left.pop(src.integer(0, len(left) - 1)) for _ in range(CODE_PAGES + 1))
    data_u = data_s = mega = asid = high = 0
    if paging:
        data_u, data_s = src.choice(DATA_FLAGS), src.choice(DATA_FLAGS)
        mega, asid = src.choice(MEGA_FLAGS), src.integer(0, 0x1FF)
        high = src.choice(DATA_HIGHS)
    status = sum(f for f in STATUS_FLAGS if src.choice((False, True)))
    timer = src.choice(TIMERS) or src.integer(1, 400)
    sie, scounteren = src.choice(SIES), src.integer(0, 7)
    sscratch = reg_value_from_bits(src.integer(0, (2 << 32) - 1))
    return Setting(paging, end, pad, rearm, frames, data_u, data_s, mega, asid, high, status,
                   timer, sie, scounteren, sscratch, churn_from(src) if churns else None)


def registers_from_bytes(data: bytes, fixed: dict[int, int]) -> tuple[int, ...]:
    """x0..x31 from REGISTER_FILE_BYTES: x0 = 0, the registers of `fixed` as given."""
    values = [reg_value_from_bits(int.from_bytes(data[i:i + REGISTER_BYTES], "little"))
              for i in range(0, 32 * REGISTER_BYTES, REGISTER_BYTES)]
    return tuple(0 if i == 0 else fixed.get(i, v) for i, v in enumerate(values))


# register_files(), drawn as one byte string (32 draws cost more than the rest of a program's)
REGISTER_FILE_BYTES = st.binary(min_size=32 * REGISTER_BYTES, max_size=32 * REGISTER_BYTES)
DATA_BYTES = st.binary(min_size=0, max_size=256)


@st.composite
def system_programs(draw: st.DrawFn, paging: bool | None = None, max_sections: int = 6,
                    ends: tuple[str, ...] = ("shutdown", "spin", "spin"),
                    storm: bool = True) -> SystemProgram:
    """A whole program that starts in S-mode in the first page of S_CODE (often near its end,
    so that it runs across pages) with stvec = HANDLER: sections of straight-line code (with
    traps of all kinds, CSR accesses, SBI calls and stores into its own code), long sections
    without control flow, counted loops, and calls into U-mode functions through sret (which
    return with ecall); a timer that fires every few hundred instructions; and with `paging`,
    Sv32 with an identity map whose data pages have drawn permissions, and most often a churn
    of its address space (churn_words; its storm of satp switches with `storm`). Ends with an
    SBI shutdown or a tight loop, as `ends` says (a list to draw from)."""
    features: set[str] = set()
    setting = setting_from(RecordSource(draw), paging, ends)
    paging, churn = setting.paging, setting.churn
    # U-mode functions, laid out one after the other
    u_functions: list[int] = []
    u_words: list[int] = []
    for _ in range(draw(st.integers(0, 3))):
        u_functions.append(U_CODE + 4 * len(u_words))
        u_words += layout(draw(patchable_sections(True, 3, 12))) + [FIXED["ecall"]]
    # the S-mode program
    groups: list[Group] = []
    for _ in range(draw(st.integers(1, max_sections))):
        kinds = ("straight", "straight", "loop", "long") + (("ucall", "ucall") if u_functions
                                                              else ())
        kind = draw(sampled(kinds))
        features.add(kind)
        if kind == "straight":
            groups.append(tuple(layout(draw(patchable_sections(False, 4, 25, paging)))))
        elif kind == "long":  # no control flow: longer than a compiled block may be
            window = MemoryWindow(DATA_BASE_REG, -2048, 2048, aligned=True)
            groups.append(tuple(layout(draw(straight_line_groups(
                66, 80, FREE_REGS, ALL_REGS, window, control=False, cheap=True)))))
        elif kind == "loop":
            body = layout(draw(patchable_sections(False, 3, 12, paging)))
            groups.append(tuple(loop_words(LOOP_REG, draw(st.integers(1, 20)), body)))
        else:
            groups.append(_u_call(u_functions[draw(index_below(len(u_functions)))]))
    if churn is not None:
        features.add("churn")
        groups.insert(min(churn.at, len(groups)), tuple(churn_words(churn.bits, storm)))
    groups.append((encode("addi", 17, 0, imm=8), FIXED["ecall"]) if setting.end == "shutdown"
                  else (encode("jal", 0, imm=0),))
    s_words = layout(groups)
    # start anywhere in the first page, often near its end: code then runs across pages
    pad = min(setting.pad, CODE_PAGES * 1024 - len(s_words))
    entry = S_CODE + 4 * pad
    assert pad >= 0 and len(u_words) <= 2048
    # with paging, the S code's virtual pages map to physical frames in a drawn order (so
    # code that runs across a page boundary continues in another frame)
    frames = setting.frames
    code_pa = ([CODE_FRAMES + 0x1000 * f for f in frames[:CODE_PAGES]] if paging
               else [S_CODE + 0x1000 * i for i in range(CODE_PAGES)])
    # the code pages around the program hold other (never reached) code: a fetch from the
    # wrong frame, or past the end of a page, would run it
    decoy = [compute_from_bits(int.from_bytes(d[i:i + GROUP_BYTES], "little"), FREE_REGS, ALL_REGS)
             for d in [draw(DECOYS)] for i in range(0, len(d), GROUP_BYTES)]
    filler = _words_bytes(decoy) * (((CODE_PAGES + 1) * 1024) // len(decoy) + 1)
    image = bytearray(filler[:(CODE_PAGES + 1) * 4096])
    image[4 * pad:4 * pad + 4 * len(s_words)] = _words_bytes(s_words)
    segments = [(code_pa[i], bytes(image[i * 4096:(i + 1) * 4096])) for i in range(CODE_PAGES)]
    if paging:  # the spare frame
        segments.append((CODE_FRAMES + 0x1000 * frames[CODE_PAGES], bytes(image[-4096:])))
    handler = _words_bytes(handler_words(setting.rearm))
    segments.append((HANDLER, handler.ljust(HANDLER2 - HANDLER, b"\0") + handler))
    if u_words:
        segments.append((U_CODE, _words_bytes(u_words)))
    data = draw(DATA_BYTES)
    if data:
        segments.append((DATA_S - len(data) // 2, data))
    csrs: list[tuple[int, int]] = [(CSR["stvec"], HANDLER)]
    if paging:
        segments += _page_table(setting, code_pa)
        csrs.append((CSR["satp"], 1 << 31 | setting.asid << 22 | PT_ROOT >> 12))
        features.add("paging")
    timer = setting.timer
    csrs += [(CSR["sstatus"], setting.status), (CSR["sie"], setting.sie),
             (CSR["scounteren"], setting.scounteren), (CSR["sscratch"], setting.sscratch),
             (CSR["stimecmp"], timer & M32), (CSR["stimecmph"], timer >> 32)]
    regs = registers_from_bytes(draw(REGISTER_FILE_BYTES), {
        DATA_BASE_REG: DATA_S, RESUME_REG: entry, WILD_LINK_REG: entry, 30: 0, 31: 0,
        LOOP_REG: 0})
    state = MachineState(regs=regs, pc=entry, mode=1, csrs=tuple(csrs))
    return SystemProgram(tuple(segments), state, paging, frozenset(features))
