"""The assembler: encodings checked against GNU as, pseudo-instructions, expressions, directives,
layout, and error reports."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import csr, isa
from machine.asm import assemble
from machine.board import KERNEL_ENTRY
from machine.errors import AsmError
from machine.program import SourceLine
from tools import BASE, gnu_bytes


def words(source: str, base: int = BASE) -> list[int]:
    data = assemble(source, base=base).segments[0].data
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def image(source: str, base: int = BASE) -> bytes:
    program = assemble(source, base=base)
    assert len(program.segments) == 1
    assert program.segments[0].addr == base
    return program.segments[0].data


def problems(source: str) -> list[tuple[int, str]]:
    with pytest.raises(AsmError) as caught:
        assemble(source, "prog.S")
    assert all(file == "prog.S" for file, _, _ in caught.value.problems)
    return [(line, reason) for _, line, reason in caught.value.problems]


def problem(source: str) -> str:
    found = problems(source)
    assert len(found) == 1, found
    return found[0][1]


# --- Operand generators, shared by the cross-checks with GNU as -----------------------------


def _number_text(value: int) -> st.SearchStrategy[str]:
    return st.sampled_from([str(value), f"{value:#x}"])


def _boundaries(field: isa.Field) -> list[int]:
    lo, hi, step = field.lowest, field.highest, field.align
    values = {lo, lo + step, hi, hi - step, 0, step}
    if field.signed:
        values |= {-step}
    return sorted(v for v in values if lo <= v <= hi)


def _slot_text(form: isa.Form, slot: str, draw: st.DrawFn, edge: bool) -> str:
    """Text for one operand slot, with a value at an edge of its range or anywhere in it."""
    if slot in ("rd", "rs1", "rs2"):
        return draw(st.sampled_from(sorted(isa.REGISTERS)))
    if slot in ("pred", "succ"):
        return isa.fence_set_name(draw(st.integers(1, 15)))
    if "(" in slot:  # imm(rs1)
        return f"{_slot_text(form, 'imm', draw, edge)}({_slot_text(form, 'rs1', draw, edge)})"
    if slot == "csr" and draw(st.booleans()):
        return draw(st.sampled_from(sorted(csr.NAMES)))
    field = form.field(slot)
    if edge:
        value = draw(st.sampled_from(_boundaries(field)))
    else:
        value = draw(st.integers(field.lowest, field.highest)) // field.align * field.align
    if slot == "offset":  # a target written relative to this instruction, for GNU's sake
        return f". + {value}" if value >= 0 else f". - {-value}"
    return draw(_number_text(value))


@st.composite
def instruction_lines(draw: st.DrawFn, form: isa.Form | None = None) -> str:
    form = form or draw(st.sampled_from(isa.FORMS))
    edge = draw(st.booleans())
    slots = [s.strip() for s in form.syntax.split(",")] if form.syntax else []
    operands = ", ".join(_slot_text(form, slot, draw, edge) for slot in slots)
    return f"{form.mnemonic} {operands}".strip()


def check_same_as_gnu(lines: list[str], base: int = BASE) -> None:
    """Assemble one instruction per line with both assemblers; compare word by word."""
    source = "\n".join(lines)
    program = assemble(source, base=base)
    ours = program.segments[0].data if program.segments else b""
    theirs = gnu_bytes(source, base)
    for addr, line in sorted(program.lines.items()):
        offset = addr - base
        assert ours[offset:offset + 4] == theirs[offset:offset + 4], (
            f"line {line.line} '{line.text}' at {addr:#x}: we make "
            f"{ours[offset:offset + 4].hex()}, GNU as {theirs[offset:offset + 4].hex()}")
    assert ours == theirs


# --- Encodings against GNU as -------------------------------------------------------------------


def test_every_form_at_the_edges_of_its_operands_matches_gnu():
    lines = []
    for form in isa.FORMS:
        slots = [s.strip() for s in form.syntax.split(",")] if form.syntax else []
        for n in range(12 if slots else 1):
            values = []
            for k, slot in enumerate(slots):
                if slot in ("rd", "rs1", "rs2"):
                    values.append(isa.ABI_NAMES[(7 * n + 11 * k) % 32] if n % 2 else f"x{31 - n}")
                elif slot in ("pred", "succ"):
                    values.append(isa.fence_set_name(1 + (n + 5 * k) % 15))
                elif "(" in slot:
                    edges = _boundaries(form.field("imm"))
                    values.append(f"{edges[n % len(edges)]}(x{n})")
                else:
                    edges = _boundaries(form.field(slot))
                    value = edges[n % len(edges)]
                    values.append(f". + {value}" if slot == "offset" else str(value))
            lines.append(f"{form.mnemonic} {', '.join(values)}".strip())
    lines += [f"csrrs a0, {name}, zero" for name in csr.NAMES]
    lines += [f"fence {isa.fence_set_name(p)}, {isa.fence_set_name(s)}"
              for p in range(1, 16) for s in range(1, 16)]
    check_same_as_gnu(lines)


@settings(max_examples=12)
@given(st.lists(instruction_lines(), min_size=100, max_size=300))
def test_random_instructions_match_gnu(lines):
    check_same_as_gnu(lines)


# --- Pseudo-instructions against GNU as -------------------------------------------------------

LI_EDGES = [0, 1, -1, 0x7FF, 0x800, -2048, -2049, 0xFFF, 0x1000, 0x7FFFF7FF, 0x7FFFF800,
            0x7FFFFFFF, 0x80000000, -0x80000000, 0xFFFFF800, 0xFFFFF7FF, 0xFFFFFFFF, 0x12345678,
            0x12345FFF, 0xABCDE800, -0x12345]


def test_li_at_the_edges_matches_gnu():
    check_same_as_gnu([f"li a{n % 8}, {v:#x}" if v >= 0 else f"li t0, {v}"
                       for n, v in enumerate(LI_EDGES)])


@settings(max_examples=5)
@given(st.lists(st.integers(-(1 << 31), (1 << 32) - 1), min_size=50, max_size=100))
def test_li_of_any_32_bit_value_matches_gnu(values):
    check_same_as_gnu([f"li s1, {v}" for v in values])


def test_li_sizes():
    assert words("li a0, 2047") == [0x7FF00513]
    assert words("li a0, -2048") == [0x80000513]
    assert words("li a0, 0x80000000") == [0x80000537]  # lui alone when the low part is zero
    assert len(words("li a0, 0x800")) == 2
    assert words("li a0, 0xffffffff") == words("li a0, -1")  # 32-bit values wrap


PSEUDO_SOURCE = """
start:
    nop
    mv a0, a1
    not a2, a3
    neg a4, a5
    seqz t0, t1
    snez t2, s0
    sltz s1, a0
    sgtz a1, a2
    sgt a0, a1, a2
    sgtu a0, a1, a2
    la a0, far
    lla a1, far
    la a2, start
    la a3, 0x80400100
    lla a4, 0x1000
    la a5, -1
    call far
    call start
    tail far
    tail start
1:  beqz a0, 1b
    bnez a1, 1f
    blez a2, 1b
    bgez a3, 1f
    bltz a4, start
    bgtz a5, start
    bgt a0, a1, 1b
    ble a0, a1, 1f
    bgtu a0, a1, start
1:  bleu a0, a1, start
    j start
    j far
    jal far
    jal t0, far
    jr a0
    jalr a1
    jalr t0, a1
    jalr t0, 12(a1)
    jalr -4(a2)
    ret
    fence
    fence rw, w
    fence.tso
    pause
    fence.i
    sfence.vma
    sfence.vma a0
    sfence.vma a0, a1
    hfence.vvma
    hfence.vvma a0
    hfence.gvma a0, a1
    csrr a0, sstatus
    csrw stvec, a1
    csrs sie, a2
    csrc sip, a3
    csrw sscratch, 7
    csrs sstatus, 2
    csrc sstatus, 31
    csrwi satp, 0
    csrsi sie, 5
    csrci sie, 5
    csrrw a0, sepc, 3
    csrrs a0, 0x7c0, a1
    rdcycle a0
    rdtime a1
    rdinstret a2
    rdcycleh a3
    rdtimeh a4
    rdinstreth a5
    lw a0, (a1)
    sw a0, (sp)
    lui a0, %hi(far)
    addi a0, a0, %lo(far)
    lw a1, %lo(far)(a0)
    sb a1, %lo(far + 3)(a0)
2:  auipc a0, %pcrel_hi(far)
    addi a0, a0, %pcrel_lo(2b)
    lw a1, %pcrel_lo(2b)(a0)
    .space 0x12344
far:
    la a3, start
    call start
    ecall
"""


def test_pseudo_instructions_match_gnu():
    check_same_as_gnu(PSEUDO_SOURCE.splitlines())


def test_expansions_map_every_word_to_their_line():
    program = assemble("nop\nla a0, x\ncall x\nx: ret", "p.S")
    assert {addr - BASE: line.line for addr, line in program.lines.items()} == {
        0: 1, 4: 2, 8: 2, 12: 3, 16: 3, 20: 4}
    assert program.lines[BASE + 4] == SourceLine("p.S", 2, "la a0, x")


# --- Data and alignment against GNU as --------------------------------------------------------

DATA_SOURCE = r"""
    .data
here:
    .byte 1, 2, -1, 255, 'a', '\n', '\\', '\''
    .half 0x1234, -1, 65535
    .align 2
    .word 0xdeadbeef, -1, here, 0x80000000
    .ascii "ab\n\t\x41\101\"\\;#"
    .asciz "x"
    .string "yz", "w"
    .balign 8
    .space 5
    .space 3, 0xaa
    .zero 2
    .p2align 4
    .word 1 + 2 * 3, (1 + 2) * 3, 7 / 2, -7 / 2, -7 % 3, 7 % -3, 1 << 10, 0x100 >> 4, ~0
    .word 6 & 3, 6 ^ 3, 010, 0b101, -(-5), here + 4, here - 2
    .balign 16, 0x5a
    .word .
    .4byte 1
    .2byte 2
    .short 3
    .long 4
"""


def test_data_directives_match_gnu():
    assert image(DATA_SOURCE) == gnu_bytes(DATA_SOURCE, section=".data")


def test_code_alignment_pads_with_nops_like_gnu():
    source = "addi a0, a0, 1\n.align 4\naddi a1, a1, 1\n.balign 32\nret\n.p2align 3\nnop"
    ours, theirs = image(source), gnu_bytes(source)
    assert theirs[:len(ours)] == ours  # GNU as then pads the section's end to 32 bytes too
    assert words(source)[1:4] == [0x13] * 3  # nop


# --- Expressions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("1 | 2 + 4", 7), ("1 | 6 & 3", 3), ("8 >> 1 + 1", 2),
    ("-7 / 2", -3), ("-7 % 3", -1), ("~0 & 0xff", 255), ("-(1 - 3)", 2), ("+5", 5),
    ("'a'", 97), ("'\\n'", 10), ("'\\x41'", 65), ("'\\101'", 65), ("' '", 32), ("','", 44),
    ("0b1010", 10), ("017", 15), ("0x7FF", 2047), ("SIZE * 2", 64), ("%hi(0x12345800)", 0x12346),
    ("%lo(0x12345800)", -2048), ("%lo(0x7ff)", 2047),
])
def test_expression_values(text, value):
    assert words(f".equ SIZE, 32\n.word {text}") == [value & 0xFFFFFFFF]


def test_dot_is_the_address_of_the_current_instruction():
    assert words("nop\nj .\nbeq a0, a1, . + 8\n.word .", base=0x1000) == [
        0x13, 0x0000006F, 0x00B50463, 0x100C]


def test_numeric_targets_are_absolute_addresses():
    assert words("jal ra, 0x80400010\nbeq a0, a1, 0x80400000") == [0x010000EF, 0xFEB50EE3]


def test_local_labels_find_the_nearest_definition():
    source = "1: nop\n1: j 1b\nj 1f\n1: j 1b\n"
    assert words(source, base=0) == [0x13, 0x0000006F, 0x0040006F, 0x0000006F]


def test_equ_may_use_labels_and_later_constants():
    source = ".equ END, buf + LEN\n.equ LEN, 16\nla a0, END\nbuf: .space LEN\n.word END"
    assert words(source, base=0)[-1] == 8 + 16


# --- Layout, symbols, entry ---------------------------------------------------------------------


def test_sections_in_order_of_first_appearance_each_aligned():
    program = assemble("""
        .data
    d:  .byte 1
        .text
    _start: nop
        .section .rodata
    r:  .byte 2
        .balign 16
        .bss
    b:  .space 3
    """)
    assert program.symbols == {"d": BASE, "_start": BASE + 4, "r": BASE + 16, "b": BASE + 32}
    assert program.entry == BASE + 4
    assert program.segments[0].data == bytes([1, 0, 0, 0, 0x13, 0, 0, 0] + [0] * 8 + [2]
                                             + [0] * 15 + [0, 0, 0])


def test_entry_is_the_base_without_start():
    assert assemble("nop", base=0x2000).entry == 0x2000
    assert assemble("", base=0x2000).segments == []


def test_default_base_is_the_kernel_entry():
    assert KERNEL_ENTRY == BASE
    assert assemble("nop").segments[0].addr == KERNEL_ENTRY


def test_comments_and_statement_separators():
    source = """
    /* a block comment
       over lines */ nop # hash comment
    nop // slash comment
    nop; nop ;nop
    label: nop; other: /* inline */ nop
    .ascii "# not a comment; // nor this /* or this */"
    """
    program = assemble(source)
    assert len(program.lines) == 7
    assert program.segments[0].data.endswith(b"# not a comment; // nor this /* or this */")
    assert {line.line for line in program.lines.values()} == {3, 4, 5, 6}


def test_case_and_register_names():
    assert words("ADDI A0, Zero, 1\naddi x10, x0, 1\naddi a0, fp, 0") == [
        0x00100513, 0x00100513, 0x00040513]


def test_accepted_and_ignored_directives():
    source = (".option norvc\n.option norelax\n.globl _start\n.type _start, @function\n"
              "_start: nop\n.size _start, . - _start")
    assert words(source) == [0x13]


# --- Errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "reason"), [
    ("addd a0, a0, a1", "unknown instruction 'addd'"),
    ("addi a0, a0, 5000", "immediate 5000 out of range for addi (-2048..2047)"),
    ("j loop", "undefined symbol 'loop'"),
    ("beq a0, a1, 0x80401000", "branch target 0x80401000 is out of range (±4 KiB)"),
    ("jal 0x80600000", "jump target 0x80600000 is out of range (±1 MiB)"),
    ("beq a0, a1, 0x80400003", "misaligned branch target 0x80400003 (odd)"),
    ("add a0, q7, a1", "expected a register, got 'q7'"),
    ("addi a0, a0, a1", "expected an immediate value, got register 'a1'"),
    ("lw a0, 4", "expected offset(register), got '4'"),
    ("lui a0, 0x100000", "immediate 0x100000 out of range for lui (0..0xfffff)"),
    ("slli a0, a0, 32", "shift amount 32 out of range for slli (0..31)"),
    ("csrrw a0, 0x1000, a1", "CSR number 0x1000 out of range (0..0xfff)"),
    ("csrr a0, mstatus", "unknown CSR 'mstatus'"),
    ("csrwi sstatus, 32", "immediate 32 out of range for csrrwi (0..31)"),
    ("fence wr, w", "expected a fence set: some of the letters i, o, r, w in that order (such "
                    "as rw or iorw), got 'wr'"),
    ("add a0, a1", "'add' takes 'rd, rs1, rs2', not 2 operand(s)"),
    ("ret a0", "'ret' takes no operands, not 1 operand(s)"),
    ("add a0, , a1", "missing operand (two commas in a row, or a comma at the end)"),
    ("li a0, 0x100000000", "li value 0x100000000 does not fit in 32 bits"),
    ("li a0, x\nx:", "li needs a constant, and 'x' is not defined before this line"),
    ("x: li a0, x", "li needs a constant, and 'x' is a label (use la to load an address)"),
    ("x: nop\nx: nop", "symbol 'x' is already defined on line 1"),
    ("j 1f", "local label '1f' has no '1:' after it"),
    ("j 1b", "local label '1b' has no '1:' before it"),
    (".equ A, B\n.equ B, A", "symbol 'A' is defined in terms of itself"),
    (".word 1 / 0", "division by zero"),
    (".word 1 +", "expression '1 +' ends too early"),
    (".word 1 2", "unexpected '2' in '1 2'"),
    (".word 09", "invalid number '09'"),
    (".word @", "unexpected character '@' in '@'"),
    (".byte 256", "value 256 out of range for .byte (-128..255)"),
    (".half -32769", "value -32769 out of range for .half (-32768..65535)"),
    (".word 0x100000000", "value 4294967296 out of range for .word (-2147483648..4294967295)"),
    (".ascii abc", "expected a string in double quotes, got 'abc'"),
    ('.ascii "\\q"', "unknown escape sequence '\\q'"),
    (".align 3, 1, 2", "'.align' takes 1 or 2 operand(s), not 3"),
    (".balign 3", ".balign 3: not a power of two up to 2**24"),
    (".align 25", ".align 25: the power of two must be 0..24"),
    (".space x\nx:", ".space needs a constant, and 'x' is not defined before this line"),
    (".foo", "unknown directive '.foo'"),
    (".option rvc", "compressed instructions are not supported (.option rvc)"),
    (".byte 1\nnop", "instruction at offset 0x1 of .text is not 4-byte aligned (put .align 2 "
                     "before it)"),
    ("/* never closed", "unterminated /* comment"),
    ("#define X 1", "C preprocessor directive '#define' is not supported (use .equ for "
                    "constants)"),
    ("auipc a0, 0\naddi a0, a0, %pcrel_lo(0x80400000)",
     "%pcrel_lo needs the address of an auipc with %pcrel_hi, and there is none at 0x80400000"),
    (".word " + "(" * 200 + "1" + ")" * 200, "expression is nested too deeply"),
    (".word 1 << 64", "shift amount 64 out of range (0..63)"),
])
def test_error_messages(source, reason):
    assert problem(source) == reason


def test_every_problem_is_reported_with_its_line():
    source = "nop\naddd a0, a0, a1\nnop\naddi a0, a0, 5000\nj nowhere\nlw a0, q7\n"
    assert problems(source) == [
        (2, "unknown instruction 'addd'"),
        (4, "immediate 5000 out of range for addi (-2048..2047)"),
        (5, "undefined symbol 'nowhere'"),
        (6, "expected offset(register), got 'q7'"),
    ]


def test_message_names_file_and_line():
    with pytest.raises(AsmError, match=r"^kernel\.S:2: unknown instruction 'addd'$"):
        assemble("nop\naddd a0, a0, a1", "kernel.S")


def test_program_beyond_the_address_space_is_an_error():
    with pytest.raises(AsmError, match="beyond the 32-bit address space"):
        assemble("nop\nnop", base=0xFFFFFFFC)


FRAGMENTS = (sorted(isa.BY_MNEMONIC) + ["li", "la", "call", "j", "ret", "csrw", "beqz", "jalr"]
             + sorted(isa.REGISTERS)[:12] + sorted(csr.NAMES)[:4]
             + [".word", ".byte", ".half", ".ascii", ".asciz", ".align", ".balign", ".space",
                ".equ", ".set", ".text", ".data", ".bss", ".section", ".option", ".globl"]
             + [" ", " ", ", ", ",", "(", ")", ":", ";", "\n", "\n", "#", "//", "/*", "*/", "'",
                '"', "\\", "%hi(", "%lo(", "%pcrel_hi(", "%pcrel_lo(", "1b", "1f", "1:", "x:",
                "x", ".", "-", "+", "*", "/", "%", "<<", ">>", "~", "&", "|", "^", "0", "1", "31",
                "-2048", "0x7ff", "0x80000000", "4096", "'a'", '"s\\n"', "99999999999999999999",
                "0b", "08", "\t", "\r", "\x00", "é", "iorw", "rw"])


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_any_text_gives_a_program_or_an_asm_error(text):
    try:
        assemble(text)
    except AsmError as err:
        assert err.problems and all(isinstance(line, int) for _, line, _ in err.problems)


@settings(max_examples=600)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_any_assembly_like_text_gives_a_program_or_an_asm_error(text):
    try:
        assemble(text)
    except AsmError as err:
        assert err.problems
