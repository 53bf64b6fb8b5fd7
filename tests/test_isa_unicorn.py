"""RV32IM instruction semantics, checked against unicorn (QEMU's RISC-V translator).

Each property runs the same words from the same registers and data on unicorn and on the
machine, in both of its modes (the reference interpreter and the compiled fast path), and
compares every register, the pc and the data window. Loads and stores stay aligned and inside
the data window, and jumps stay 4-byte aligned: there unicorn (which has the C extension and
lets misaligned accesses through) and this hart (no C, misaligned accesses trap) differ by
design. The encoder itself is checked against capstone's disassembler.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

unicorn = pytest.importorskip("unicorn")
capstone = pytest.importorskip("capstone")

from machine import Machine, Program, Segment  # noqa: E402
from unicorn import riscv_const as uc_riscv  # noqa: E402
from vmlab.strategies.programs import (  # noqa: E402
    ACCESS_SIZE,
    ALU_REG,
    BRANCH_OPS,
    I_OPS,
    LOAD_OPS,
    MULDIV,
    SHIFT_OPS,
    STORE_OPS,
    MemoryWindow,
    computational,
    encode,
    imm12s,
    loop,
    reg_values,
    straight_line,
)

M32 = 0xFFFF_FFFF
RAM = 0x8000_0000
RAM_SIZE = 16 << 20
CODE = 0x8040_0000
DATA = 0x8060_0000
DATA_SIZE = 0x1000
BASE_REG = 31  # holds DATA + 2048 in generated programs; nothing else writes it
WINDOW = MemoryWindow(BASE_REG, -2048, 2048, aligned=True)
SPIN = encode("jal", 0, imm=0)  # the end of a program: j .
UC_X = [getattr(uc_riscv, f"UC_RISCV_REG_X{i}") for i in range(32)]

SPECIAL = (0, 1, 2, 3, 0x7FFF_FFFF, 0x8000_0000, 0x8000_0001, 0xFFFF_FFFF, 0xFFFF_FFFE,
           0xFFFF, 0x1_0000, 31, 32)


def operand_values() -> st.SearchStrategy[int]:
    """Register values, with the values that M's corner cases need drawn often."""
    return st.one_of(st.sampled_from(SPECIAL), reg_values())


class Unicorn:
    """One unicorn RV32 CPU with RAM mapped where the machine has it, reused across examples."""

    def __init__(self) -> None:
        self.uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        self.uc.mem_map(RAM, RAM_SIZE)

    def run(self, words: list[int], regs: list[int], data: bytes,
            count: int = 0) -> tuple[list[int], int, bytes]:
        code = b"".join(w.to_bytes(4, "little") for w in words)
        self.uc.mem_write(CODE, code)
        self.uc.ctl_remove_cache(CODE, CODE + len(code))
        self.uc.mem_write(DATA, data.ljust(DATA_SIZE, b"\0"))
        for i in range(1, 32):
            self.uc.reg_write(UC_X[i], regs[i])
        end = CODE + len(code) - (4 if count == 0 else 0)  # programs end on their SPIN
        self.uc.emu_start(CODE, end, count=count)
        out = [0] + [self.uc.reg_read(UC_X[i]) & M32 for i in range(1, 32)]
        return out, self.uc.reg_read(uc_riscv.UC_RISCV_REG_PC) & M32, bytes(
            self.uc.mem_read(DATA, DATA_SIZE))


_UNICORN: Unicorn | None = None


def emulator() -> Unicorn:
    global _UNICORN
    if _UNICORN is None:
        _UNICORN = Unicorn()
    return _UNICORN


def run_machine(words: list[int], regs: list[int], data: bytes, steps: int,
                fast: bool) -> tuple[list[int], int, bytes]:
    m = Machine(RAM_SIZE, fast=fast)
    code = b"".join(w.to_bytes(4, "little") for w in words)
    m.load(Program([Segment(CODE, code), Segment(DATA, data.ljust(DATA_SIZE, b"\0"))], CODE))
    for i in range(1, 32):
        m.set_reg(i, regs[i])
    traps = []
    m.add_trap_observer(traps.append)
    stop = m.run(steps)
    assert stop.reason == "budget", stop
    assert traps == [], f"unexpected trap {traps[0]}"
    return list(m.regs), m.pc, m.read_phys(DATA, DATA_SIZE)


def check(words: list[int], regs: list[int], data: bytes = b"", single: bool = True) -> None:
    """Run `words` (one instruction if `single`, else a program ending on SPIN) on unicorn and
    on both machine modes; everything must agree."""
    regs = [0] + [r & M32 for r in regs[1:]]
    if single:
        expected = emulator().run(words, regs, data, count=1)
        steps = 1
    else:
        words = words + [SPIN]
        expected = emulator().run(words, regs, data)
        assert expected[1] == CODE + 4 * (len(words) - 1), "unicorn did not reach the end"
        steps = 40 * len(words) + 20  # enough for any generated loop; then it spins
    for fast in (False, True):
        regs_m, pc_m, data_m = run_machine(words, regs, data, steps, fast)
        mode = "fast" if fast else "interpreter"
        for i in range(32):
            assert regs_m[i] == expected[0][i], (
                f"{mode}: x{i} = {regs_m[i]:#010x}, unicorn {expected[0][i]:#010x}")
        assert pc_m == expected[1], f"{mode}: pc {pc_m:#010x}, unicorn {expected[1]:#010x}"
        if data_m != expected[2]:
            off = next(i for i in range(DATA_SIZE) if data_m[i] != expected[2][i])
            raise AssertionError(f"{mode}: memory at {DATA + off:#010x}: {data_m[off]:#04x}, "
                                 f"unicorn {expected[2][off]:#04x}")


def register_files() -> st.SearchStrategy[list[int]]:
    """All 31 registers drawn (for programs, which may read any of them)."""
    return st.lists(operand_values(), min_size=31, max_size=31).map(lambda r: [0, *r])


def backgrounds() -> st.SearchStrategy[list[int]]:
    """Registers that an instruction does not read: filled from a drawn seed (cheap to draw;
    the operands that matter are drawn one by one)."""
    def fill(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [0] + [rng.getrandbits(32) for _ in range(31)]
    return st.integers(0, 2**32).map(fill)


# the rd == rs1 / rs1 == rs2 / x0 cases come up often when registers are drawn from a few
FEW_REGS = st.sampled_from((0, 1, 2, 3, 31))
ANY_REG = st.one_of(FEW_REGS, st.integers(0, 31))


# ----- the encoder ---------------------------------------------------------------------------

CAPSTONE = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV32)


def disasm(word: int) -> str:
    ins = list(CAPSTONE.disasm(word.to_bytes(4, "little"), CODE))
    assert len(ins) == 1, f"capstone cannot decode {word:#010x}"
    return ins[0].mnemonic


@settings(max_examples=300)
@given(kind=st.sampled_from(("alu", "alu_imm", "shift_imm", "muldiv", "upper")), data=st.data())
def test_encoder_agrees_with_capstone(kind, data):
    word = data.draw(computational(kind))
    mnemonic = disasm(word)
    ops = {"alu": ALU_REG, "muldiv": MULDIV, "alu_imm": tuple(I_OPS),
           "shift_imm": tuple(SHIFT_OPS), "upper": ("lui", "auipc")}[kind]
    # capstone prints some forms as pseudo-instructions (e.g. addi x0, x0, 0 as nop)
    aliases = {"nop": "addi", "mv": "addi", "li": "addi", "not": "xori", "neg": "sub",
               "seqz": "sltiu", "snez": "sltu", "sltz": "slt", "sgtz": "slt", "sext.w": "addi"}
    assert aliases.get(mnemonic, mnemonic) in ops, (hex(word), mnemonic)


@pytest.mark.parametrize("op,fields,text", [
    ("lw", dict(rd=5, rs1=2, imm=-4), "lw t0, -4(sp)"),
    ("sh", dict(rs1=31, rs2=1, imm=2046), "sh ra, 0x7fe(t6)"),
    ("beq", dict(rs1=1, rs2=2, imm=-4096), "beq ra, sp, -0x1000"),
    ("bgeu", dict(rs1=3, rs2=4, imm=4094), "bgeu gp, tp, 0xffe"),
    ("jal", dict(rd=1, imm=-(1 << 20)), "jal -0x100000"),
    ("jal", dict(rd=5, imm=(1 << 20) - 2), "jal t0, 0xffffe"),
    ("jalr", dict(rd=1, rs1=5, imm=-1), "jalr ra, t0, -1"),
    ("csrrw", dict(rd=1, rs1=2, imm=0x180), "csrrw ra, satp, sp"),
    ("csrrsi", dict(rd=1, rs1=31, imm=0xC01), "csrrsi ra, time, 0x1f"),
    ("sfence.vma", dict(rs1=3, rs2=4), "sfence.vma gp, tp"),
])
def test_encoder_formats(op, fields, text):
    ins = next(CAPSTONE.disasm(encode(op, **fields).to_bytes(4, "little"), CODE))
    assert f"{ins.mnemonic} {ins.op_str}" == text


# ----- single instructions ---------------------------------------------------------------------

@settings(max_examples=400)
@given(op=st.sampled_from(ALU_REG + MULDIV), rd=ANY_REG, rs1=ANY_REG, rs2=ANY_REG,
       a=operand_values(), b=operand_values(), regs=backgrounds())
def test_register_register(op, rd, rs1, rs2, a, b, regs):
    regs[rs1], regs[rs2] = a, b
    check([encode(op, rd, rs1, rs2)], regs)


def test_m_extension_corner_cases():
    """Every M instruction (and the shifts and compares) on every pair of special values:
    division by zero, the signed overflow -2**31 / -1, and the high halves of products."""
    regs = [0] * 32
    for a, b in itertools.product(SPECIAL, repeat=2):
        regs[1], regs[2] = a, b
        check([encode(op, 3 + i, 1, 2) for i, op in enumerate(MULDIV + ALU_REG)], regs,
              single=False)


@settings(max_examples=400)
@given(op=st.sampled_from(tuple(I_OPS) + tuple(SHIFT_OPS) + ("lui", "auipc")), rd=ANY_REG,
       rs1=ANY_REG, imm=imm12s(), shamt=st.integers(0, 31),
       upper=st.one_of(st.sampled_from((0, 1, 0x7FFFF, 0x80000, 0xFFFFF)),
                       st.integers(0, 0xF_FFFF)),
       a=operand_values(), regs=backgrounds())
def test_register_immediate(op, rd, rs1, imm, shamt, upper, a, regs):
    regs[rs1] = a
    if op in SHIFT_OPS:
        word = encode(op, rd, rs1, imm=shamt)
    elif op in ("lui", "auipc"):
        word = encode(op, rd, imm=upper)
    else:
        word = encode(op, rd, rs1, imm=imm)
    check([word], regs)


@settings(max_examples=400)
@given(op=st.sampled_from(tuple(LOAD_OPS) + tuple(STORE_OPS)), rd=ANY_REG, rs1=ANY_REG,
       imm=imm12s(), slot=st.integers(0, DATA_SIZE // 4 - 1), sub=st.integers(0, 3),
       regs=backgrounds(), around=st.binary(min_size=8, max_size=8))
def test_load_store(op, rd, rs1, imm, slot, sub, regs, around):
    """One load or store of each width at an aligned address in the window, with any base and
    offset (rd == rs1 loads, stores of the base register itself, x0 as the base)."""
    size = ACCESS_SIZE[op]
    address = DATA + slot * 4 + (sub & (4 - size))  # naturally aligned
    if rs1 == 0:
        # x0 as the base: the address is the sign-extended offset, never RAM; use the
        # other register form instead so that the access is in the window
        rs1 = 1
    regs[rs1] = (address - imm) & M32
    at = (address & ~7) - DATA
    data = bytes(at) + around
    word = (encode(op, rd, rs1, imm=imm) if op in LOAD_OPS
            else encode(op, 0, rs1, rd, imm=imm))
    check([word], regs, data)


@settings(max_examples=300)
@given(op=st.sampled_from(tuple(BRANCH_OPS)), rs1=ANY_REG, rs2=ANY_REG,
       offset=st.one_of(st.sampled_from((-4096, -4, 0, 4, 8, 4092)),
                        st.integers(-1024, 1023).map(lambda i: 4 * i)),
       a=operand_values(), b=operand_values(), same=st.booleans(), regs=backgrounds())
def test_branch(op, rs1, rs2, offset, a, b, same, regs):
    regs[rs1] = a
    regs[rs2] = a if same else b
    check([encode(op, 0, rs1, rs2, offset)], regs)


@settings(max_examples=200)
@given(rd=ANY_REG, offset=st.one_of(st.sampled_from((-(1 << 20), -4, 0, 4, (1 << 20) - 4)),
                                    st.integers(-(1 << 18), (1 << 18) - 1).map(lambda i: 4 * i)),
       regs=backgrounds())
def test_jal(rd, offset, regs):
    check([encode("jal", rd, imm=offset)], regs)


@settings(max_examples=300)
@given(rd=ANY_REG, rs1=ANY_REG.filter(bool), imm=imm12s(), low_bit=st.integers(0, 1),
       target=st.integers(-(1 << 18), (1 << 18) - 1).map(lambda i: CODE + 4 * i),
       regs=backgrounds())
def test_jalr(rd, rs1, imm, low_bit, target, regs):
    """jalr to a 4-byte aligned target (bit 0 of the sum is cleared), rd == rs1 included."""
    regs[rs1] = (target - imm + low_bit) & M32
    check([encode("jalr", rd, rs1, imm=imm)], regs)


# ----- programs ------------------------------------------------------------------------------

DEST = tuple(range(1, 31))


@settings(max_examples=250)
@given(words=straight_line(5, 30, DEST, window=WINDOW), regs=register_files(),
       data=st.binary(min_size=0, max_size=DATA_SIZE))
def test_straight_line_programs(words, regs, data):
    regs[BASE_REG] = DATA + 2048
    check(words, regs, data, single=False)


@settings(max_examples=150)
@given(words=loop(counter=30, max_iterations=12, min_size=2, max_size=10,
                  dest=tuple(range(1, 30)), window=WINDOW),
       regs=register_files(), data=st.binary(min_size=0, max_size=512))
def test_loops(words, regs, data):
    regs[BASE_REG] = DATA + 2048
    check(words, regs, data, single=False)



# ----- the decoder: which words are instructions ----------------------------------------------

OPCODES = (0x03, 0x0F, 0x13, 0x17, 0x23, 0x33, 0x37, 0x63, 0x67, 0x6F, 0x73,
           0x07, 0x27, 0x2F, 0x1B, 0x3B, 0x43, 0x53, 0x0B, 0x7F)  # and some of other extensions
CS_DETAIL = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV32)
CS_DETAIL.detail = True
CS_NAMES = {v: k[len("RISCV_INS_"):].lower().replace("_", ".")
            for k, v in vars(capstone.riscv_const).items() if k.startswith("RISCV_INS_")}
# Words capstone accepts in RV32 mode that RV32 reserves: shifts by immediate with shamt[5]
# set ("For RV32I, SLLI, SRLI, and SRAI generate an illegal instruction exception if
# imm[5] != 0"). Checked separately below.
def _rv64_shift(word: int) -> bool:
    return word & 0x7F == 0x13 and (word >> 12) & 3 == 1 and bool(word & 1 << 25)


@settings(max_examples=1500)
@given(opcode=st.sampled_from(OPCODES), upper=st.integers(0, (1 << 25) - 1),
       special=st.sampled_from((None, 0, 1 << 25 | 1, 0x1F << 20, 0x3F << 25)))
def test_decoder_agrees_with_capstone(opcode, upper, special):
    """Words of the major opcodes: the machine decodes exactly the RV32IM, Zicsr, Zifencei and
    S-mode privileged instructions (and, for this hart's nested paging, hfence.vvma and
    hfence.gvma) that capstone decodes, as the same instruction; everything else (A, F, D,
    M-mode instructions, reserved encodings) is illegal."""
    from machine.decode import decode

    word = (opcode | (upper if special is None else (upper & ~special) | special) << 7) & M32
    ins = list(CS_DETAIL.disasm(word.to_bytes(4, "little"), CODE))
    theirs = CS_NAMES[ins[0].id] if ins and ins[0].size == 4 else None
    theirs = {"pause": "fence", "fence.tso": "fence"}.get(theirs, theirs)
    if theirs not in _OUR_OPS or _rv64_shift(word):
        theirs = None
    ours = decode(word)
    if theirs is None and ours is not None and ours.op in ("fence", "fence.i"):
        # "The unused fields in the FENCE instructions (rs1 and rd) ... For forward
        # compatibility, base implementations shall ignore these fields"; likewise FENCE.I's
        # imm, rs1 and rd. Capstone rejects them; the hart must not.
        assert opcode == 0x0F
        return
    assert (ours.op if ours else None) == theirs, (
        f"{word:#010x}: capstone {theirs}, machine {ours}")


_OUR_OPS = frozenset(ALU_REG + MULDIV + tuple(I_OPS) + tuple(SHIFT_OPS) + tuple(LOAD_OPS)
                     + tuple(STORE_OPS) + tuple(BRANCH_OPS)
                     + ("lui", "auipc", "jal", "jalr", "fence", "fence.i", "ecall", "ebreak",
                        "sret", "wfi", "sfence.vma", "csrrw", "csrrs", "csrrc", "csrrwi",
                        "csrrsi", "csrrci", "hfence.vvma", "hfence.gvma"))


@pytest.mark.parametrize("op", ["slli", "srli", "srai"])
def test_rv64_shift_amounts_are_illegal(op):
    from machine.decode import decode

    assert decode(encode(op, 1, 2, imm=5) | 1 << 25) is None
