"""The disassembler: its text, the round trip through the assembler, and agreement with GNU
objdump on which words are instructions and what their operands are."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import csr, isa
from machine.asm import assemble
from machine.disasm import disassemble, listing
from tools import gnu_csr_numbers, gnu_reassemble, is_32bit_encoding, objdump

WORDS = st.integers(0, isa.WORD_MASK)
ALIGNED_PCS = st.integers(0, isa.WORD_MASK >> 2).map(lambda n: n * 4)
TARGET_MNEMONICS = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "jal"}


@st.composite
def form_words(draw: st.DrawFn) -> tuple[isa.Form, int]:
    """A word of a random form: its fixed bits, and random operand bits."""
    form = draw(st.sampled_from(isa.FORMS))
    return form, form.match | (draw(WORDS) & ~form.mask)


def near_miss(form_and_word: tuple[isa.Form, int], flip: int) -> int:
    """The word with one of its fixed bits flipped: mostly not an instruction any more."""
    form, word = form_and_word
    fixed = [bit for bit in range(32) if form.mask >> bit & 1]
    return word ^ (1 << fixed[flip % len(fixed)])


@pytest.mark.parametrize(("word", "pc", "text"), [
    (0x00150513, 0, "addi a0, a0, 1"),
    (0x80000513, 0, "addi a0, zero, -2048"),
    (0x00812503, 0, "lw a0, 8(sp)"),
    (0xFEA12E23, 0, "sw a0, -4(sp)"),
    (0x80000537, 0, "lui a0, 0x80000"),
    (0x00000517, 0, "auipc a0, 0x0"),
    (0x01F51513, 0, "slli a0, a0, 31"),
    (0x40155513, 0, "srai a0, a0, 1"),
    (0x02C58533, 0, "mul a0, a1, a2"),
    (0x0000006F, 0x80400000, "jal zero, 0x80400000"),
    (0x008000EF, 0x80400000, "jal ra, 0x80400008"),
    (0xFEB50EE3, 0x80400004, "beq a0, a1, 0x80400000"),
    (0x80000063, 0, "beq zero, zero, 0xfffff000"),  # targets wrap around the address space
    (0x000080E7, 0, "jalr ra, 0(ra)"),
    (0x10051073, 0, "csrrw zero, sstatus, a0"),
    (0x7C002573, 0, "csrrs a0, 0x7c0, zero"),
    (0xC0102573, 0, "csrrs a0, time, zero"),
    (0x1002D073, 0, "csrrwi zero, sstatus, 5"),
    (0x0FF0000F, 0, "fence iorw, iorw"),
    (0x0310000F, 0, "fence rw, w"),
    (0x8330000F, 0, "fence.tso"),
    (0x0100000F, 0, "pause"),
    (0x0000100F, 0, "fence.i"),
    (0x00000073, 0, "ecall"),
    (0x00100073, 0, "ebreak"),
    (0x10200073, 0, "sret"),
    (0x30200073, 0, "mret"),
    (0x10500073, 0, "wfi"),
    (0x12B50073, 0, "sfence.vma a0, a1"),
    (0x22000073, 0, "hfence.vvma zero, zero"),
    (0x62A00073, 0, "hfence.gvma zero, a0"),
    # not instructions of this machine, or not canonical encodings of one
    (0x00000000, 0, ".word 0x00000000"),
    (0xFFFFFFFF, 0, ".word 0xffffffff"),
    (0x02051513, 0, ".word 0x02051513"),  # slli by 32: shamt[5] exists on RV64 only
    (0x0F00000F, 0, ".word 0x0f00000f"),  # a fence with an empty successor set
    (0x0FF0008F, 0, ".word 0x0ff0008f"),  # a fence with rd != 0
    (0x0010100F, 0, ".word 0x0010100f"),  # fence.i with rs1 != 0
    (0x12000173, 0, ".word 0x12000173"),  # sfence.vma with rd != 0
    (0x0000202F, 0, ".word 0x0000202f"),  # amoadd.w: no A extension
    (0x00000053, 0, ".word 0x00000053"),  # fadd.s: no F extension
    (0x00010001, 0, ".word 0x00010001"),  # compressed: no C extension
])
def test_known_words(word, pc, text):
    assert disassemble(word, pc) == text


def test_only_32_bit_words():
    with pytest.raises(ValueError):
        disassemble(1 << 32)


def round_trips(word: int, pc: int) -> None:
    text = disassemble(word, pc)
    data = assemble(text, base=pc).segments[0].data
    assert data == word.to_bytes(4, "little"), f"{word:#010x} at {pc:#x}: '{text}'"


@settings(max_examples=1500)
@given(WORDS, ALIGNED_PCS)
def test_any_word_round_trips_through_the_assembler(word, pc):
    round_trips(word, pc)


@settings(max_examples=1500)
@given(form_words(), ALIGNED_PCS)
def test_every_form_decodes_as_itself_and_round_trips(form_and_word, pc):
    form, word = form_and_word
    text = disassemble(word, pc)
    fence_with_an_empty_set = form.mnemonic == "fence" and (word >> 20 & 0xF == 0
                                                            or word >> 24 & 0xF == 0)
    if not fence_with_an_empty_set:
        assert text.split()[0] == form.mnemonic
    round_trips(word, pc)


@settings(max_examples=500)
@given(form_words(), st.integers(0, 31), ALIGNED_PCS)
def test_near_misses_round_trip(form_and_word, flip, pc):
    round_trips(near_miss(form_and_word, flip), pc)


# --- Agreement with GNU objdump -------------------------------------------------------------------


def normalized(mnemonic: str, operands: str) -> tuple[str, tuple]:
    """Operands in a form both disassemblers share: register numbers, CSR numbers, integers
    and absolute targets, whatever the names and number bases each prints."""
    names = {**gnu_csr_numbers(), **csr.NAMES}
    tokens = re.findall(r"[^,()\s]+", operands)
    out = []
    for i, token in enumerate(tokens):
        if token in isa.REGISTERS:
            out.append(("x", isa.REGISTERS[token]))
        elif mnemonic in TARGET_MNEMONICS and i == len(tokens) - 1:
            out.append(("target", int(token, 16)))  # objdump prints it in hex without 0x
        elif token in names:
            out.append(("csr or number", names[token]))
        elif re.fullmatch(r"-?(0x[0-9a-f]+|[0-9]+)", token):
            out.append(("csr or number", int(token, 0)))
        else:
            out.append(("text", token))
    return mnemonic, tuple(out)


def check_against_objdump(words: list[int]) -> None:
    for word in words:
        if not is_32bit_encoding(word):
            assert disassemble(word).startswith(".word"), f"{word:#010x} is not 32 bits long"
    words = [w for w in words if is_32bit_encoding(w)]
    theirs = objdump(words)
    ours = [disassemble(w, 4 * i) for i, w in enumerate(words)]  # objdump's pc: 4 * i
    ours_for_gnu, theirs_for_gnu = [], []
    for i, (word, our_text, their) in enumerate(zip(words, ours, theirs, strict=True)):
        mnemonic, _, operands = our_text.partition(" ")
        known = their is not None and their[0] in isa.BY_MNEMONIC and "unknown" not in their[1]
        if mnemonic != ".word":
            assert known, f"{word:#010x}: we decode '{our_text}', objdump {their}"
            assert normalized(mnemonic, operands) == normalized(*their), f"{word:#010x}"
            if mnemonic not in TARGET_MNEMONICS:
                ours_for_gnu.append((i, our_text))
        elif known:  # objdump decodes a few non-canonical words that GNU as never makes
            theirs_for_gnu.append((i, f"{their[0]} {their[1]}"))
    # GNU as reads our text back to the same word...
    again = gnu_reassemble([text for _, text in ours_for_gnu])
    for (i, text), word in zip(ours_for_gnu, again, strict=True):
        assert word == words[i], f"{words[i]:#010x}: GNU as reads '{text}' as {word}"
    # ...and where we print .word but objdump decodes, GNU as cannot make the word either
    again = gnu_reassemble([text for _, text in theirs_for_gnu])
    for (i, text), word in zip(theirs_for_gnu, again, strict=True):
        assert word != words[i], f"{words[i]:#010x} is '{text}' for GNU; we print .word"


def test_one_word_of_every_form_agrees_with_objdump():
    rng = random.Random(1)
    words = [form.match | (rng.getrandbits(32) & ~form.mask)
             for form in isa.FORMS for _ in range(8)]
    words += [form.match for form in isa.FORMS]
    check_against_objdump(words)


RANDOM_BATCH = st.lists(
    st.one_of(WORDS, WORDS.map(lambda w: w | 3), form_words().map(lambda f: f[1]),
              st.builds(near_miss, form_words(), st.integers(0, 31))),
    min_size=300, max_size=600)


@settings(max_examples=15)
@given(RANDOM_BATCH)
def test_random_words_agree_with_objdump(words):
    check_against_objdump(words)


def test_csr_names_agree_with_gnu():
    gnu = gnu_csr_numbers()
    for name, number in csr.NAMES.items():
        assert gnu[name] == number


# --- Listing --------------------------------------------------------------------------------------


def test_listing_shows_address_word_disassembly_and_source():
    program = assemble("_start:\n    li a0, 0x12345678\n    ret\n.data\nmsg: .byte 1, 2\n"
                       ".align 2\n.space 64\n", "hello.S")
    lines = listing(program).splitlines()
    assert lines[0] == "80400000 <_start>:"
    assert lines[1].startswith("80400000:  12345537  lui a0, 0x12345")
    assert lines[1].endswith("# hello.S:2: li a0, 0x12345678")
    assert lines[2] == "80400004:  67850513  addi a0, a0, 1656"  # same source line: not repeated
    assert lines[3].startswith("80400008:  00008067  jalr zero, 0(ra)")
    assert lines[3].endswith("# hello.S:3: ret")
    assert lines[4:7] == ["", "8040000c <msg>:", "8040000c:  00000201  .word 0x00000201"]
    assert lines[7] == "          ..."  # a run of zero words
    assert len(lines) == 8


def test_listing_of_an_odd_sized_binary_ends_with_bytes():
    from machine.loader import load_binary

    text = listing(load_binary(bytes.fromhex("1305150001"), "x.bin", 0x1000))
    assert text == "00001000:  00150513  addi a0, a0, 1\n00001004:  01        .byte 0x01\n"
