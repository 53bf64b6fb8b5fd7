"""Program loaders: ELF executables (checked against what GNU ld makes), flat binaries, assembly
sources, and one clear LoadError for each kind of file this machine cannot run."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine.asm import assemble
from machine.board import KERNEL_ENTRY
from machine.errors import AsmError, LoadError
from machine.loader import load_binary, load_elf, load_program
from machine.program import Program, Segment
from tools import binutils, gnu_link


def make_elf(segments: list[tuple[int, bytes, int]], entry: int, *, machine: int = 243,
             elf_class: int = 1, elf_type: int = 2, flags: int = 0) -> bytes:
    """A minimal ELF32 executable: a header, program headers, then each segment's bytes.
    Each segment is (physical address, file bytes, size in memory)."""
    header_size, phdr_size = 52, 32
    offset = header_size + phdr_size * len(segments)
    phdrs, bodies = b"", b""
    for addr, data, memsz in segments:
        phdrs += struct.pack("<8I", 1, offset + len(bodies), addr, addr, len(data), memsz, 5, 4)
        bodies += data
    ident = b"\x7fELF" + bytes([elf_class, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIIIIIHHHHHH", elf_type, machine, 1, entry, header_size, 0,
                                 flags, header_size, phdr_size, len(segments), 40, 0, 0)
    return header + phdrs + bodies


def load_error(data: bytes, name: str = "kernel.elf") -> str:
    with pytest.raises(LoadError) as caught:
        load_elf(data, name)
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    return message


# --- Flat binaries ------------------------------------------------------------------------------


def test_flat_binary_is_placed_and_entered_at_the_base():
    program = load_binary(b"\x13\x00\x00\x00", "raw.bin", 0x8000_0000)
    assert program == Program([Segment(0x8000_0000, b"\x13\x00\x00\x00")], 0x8000_0000,
                              name="raw.bin")
    assert load_binary(b"\x01", "raw.bin").entry == KERNEL_ENTRY


def test_empty_flat_binary_is_refused():
    with pytest.raises(LoadError, match=r"^raw\.bin: the file is empty$"):
        load_binary(b"", "raw.bin")


# --- ELF files made by hand (no binutils needed) -----------------------------------------------


def test_hand_made_elf_loads_segments_at_their_addresses_with_bss_zeroed():
    elf = make_elf([(0x8040_0000, b"\x13\x05\x15\x00", 4), (0x8040_1000, b"\xaa\xbb", 6)],
                   entry=0x8040_0000)
    program = load_elf(elf, "k.elf")
    assert program.segments == [Segment(0x8040_0000, b"\x13\x05\x15\x00"),
                                Segment(0x8040_1000, b"\xaa\xbb\0\0\0\0")]
    assert program.entry == 0x8040_0000
    assert program.symbols == {} and program.name == "k.elf"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"machine": 62}, "ELF for machine x86-64 (62); this machine runs 32-bit RISC-V (EM_RISCV)"),
    ({"machine": 183}, "ELF for machine AArch64 (183)"),
    ({"machine": 9999}, "ELF for machine an unknown machine (9999)"),
    ({"elf_class": 2}, "64-bit ELF (ELFCLASS64); this machine runs 32-bit RISC-V (ELFCLASS32)"),
    ({"elf_type": 1}, "a relocatable object (.o), which must be linked first; this machine loads "
                      "only executables (ET_EXEC)"),
    ({"flags": 1}, "compressed instructions (the C extension)"),
])
def test_elf_for_another_machine_is_refused_with_the_reason(kwargs, expected):
    assert expected in load_error(make_elf([(0x8040_0000, b"\0" * 4, 4)], 0x8040_0000, **kwargs))


def test_elf_whose_entry_is_outside_its_segments_is_refused():
    elf = make_elf([(0x8040_0000, b"\0" * 4, 4)], entry=0x1000)
    assert "the entry point 0x00001000 is outside every loadable segment" in load_error(elf)


def test_elf_segment_too_large_for_memory_is_refused():
    elf = make_elf([(0x8040_0000, b"\0" * 4, 0x7FFF_FFFF)], entry=0x8040_0000)
    assert "segment 0 (0x7fffffff bytes at 0x80400000) does not fit in memory" in load_error(elf)


def test_elf_without_loadable_segments_is_refused():
    assert "no loadable (PT_LOAD) segment" in load_error(make_elf([], entry=0))


def test_not_an_elf_is_refused_by_load_elf():
    assert "not an ELF file" in load_error(b"\x13\x00\x00\x00")


def test_truncated_hand_made_elf():
    elf = make_elf([(0x8040_0000, bytes(range(64)), 64)], entry=0x8040_0000)
    assert "truncated ELF: 40 bytes, shorter than an ELF header" in load_error(elf[:40])
    assert "truncated ELF: segment 0 needs bytes up to 0x94" in load_error(elf[:100])


def test_x86_64_executable_of_the_host_is_refused():
    host = Path("/bin/true")
    data = host.read_bytes() if host.exists() else b""
    if data[:4] != b"\x7fELF" or struct.unpack_from("<H", data, 18)[0] != 62:
        pytest.skip("/bin/true is not an x86-64 ELF here")
    message = load_error(data, "/bin/true")
    assert message == ("/bin/true: ELF for machine x86-64 (62); this machine runs 32-bit RISC-V "
                       "(EM_RISCV)")


# --- ELF files made by GNU as and ld ------------------------------------------------------------

KERNEL = """
    .text
    .globl _start
helper:
    addi a0, a0, 1
    ret
_start:
    la sp, stack_top
    call helper
    lw a1, %lo(value)(zero)
1:  j 1b
    .data
value: .word 0x12345678
    .bss
    .balign 16
stack: .space 256
stack_top:
"""


def read(program: Program, addr: int, size: int) -> bytes:
    """Bytes from whichever segment holds them (GNU's first segment also maps the ELF header,
    a page below .text)."""
    for segment in program.segments:
        if segment.addr <= addr and addr + size <= segment.addr + len(segment.data):
            return segment.data[addr - segment.addr:addr - segment.addr + size]
    raise AssertionError(f"no segment holds {addr:#x}..{addr + size:#x}")


def gnu_kernel() -> bytes:
    return gnu_link(KERNEL)


def test_gnu_linked_elf_loads_like_our_assembler_assembles():
    program = load_elf(gnu_kernel(), "kernel.elf")
    ours = assemble(KERNEL)
    for start, end in ((0, 8), (16, 24), (28, 32)):  # the code that does not name .data/.bss
        assert read(program, KERNEL_ENTRY + start, end - start) == ours.segments[0].data[start:end]
    assert program.entry == ours.symbols["_start"] == KERNEL_ENTRY + 8
    for name in ("helper", "_start"):
        assert program.symbols[name] == ours.symbols[name]
    assert program.symbols["value"] in range(KERNEL_ENTRY, KERNEL_ENTRY + 0x10000)
    assert not any(name.startswith("$") for name in program.symbols)  # mapping symbols


def test_gnu_linked_bss_is_zero_filled():
    program = load_elf(gnu_kernel(), "kernel.elf")
    stack, top = program.symbols["stack"], program.symbols["stack_top"]
    assert read(program, stack, top - stack) == bytes(256)
    assert read(program, program.symbols["value"], 4) == bytes.fromhex("78563412")


def test_truncated_gnu_elf_is_refused_at_every_cut():
    elf = gnu_kernel()
    for cut in range(0, len(elf), 19):
        with pytest.raises(LoadError) as caught:
            load_elf(elf[:cut], "k.elf")
        assert str(caught.value).startswith("k.elf: ") and "\n" not in str(caught.value)


def test_64_bit_riscv_elf_made_by_gnu_is_refused(tmp_path):
    tools = binutils()
    import subprocess

    (tmp_path / "a.s").write_text(".globl _start\n_start: nop\n")
    subprocess.run([tools["as"], "-march=rv64i", "-o", str(tmp_path / "a.o"),
                    str(tmp_path / "a.s")], check=True)
    subprocess.run([tools["ld"], "-o", str(tmp_path / "a.elf"), str(tmp_path / "a.o")],
                   check=True)
    message = load_error((tmp_path / "a.elf").read_bytes(), "a.elf")
    assert message.startswith("a.elf: 64-bit ELF (ELFCLASS64); this machine runs 32-bit RISC-V")


@settings(max_examples=200)
@given(st.data())
def test_damaged_elf_is_loaded_or_refused_never_crashes(data):
    elf = bytearray(make_elf([(0x8040_0000, bytes(range(48)), 64), (0x8040_1000, b"ab", 2)],
                             entry=0x8040_0000))
    for _ in range(data.draw(st.integers(1, 8))):
        elf[data.draw(st.integers(0, len(elf) - 1))] = data.draw(st.integers(0, 255))
    try:
        load_elf(bytes(elf), "bad.elf")
    except LoadError as err:
        assert str(err).startswith("bad.elf: ")


# --- load_program -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".S", ".s", ".asm"])
def test_assembly_sources_are_assembled(tmp_path, suffix):
    path = tmp_path / f"prog{suffix}"
    path.write_text("_start: addi a0, zero, 1\n")
    program = load_program(str(path))
    assert program.segments == [Segment(KERNEL_ENTRY, bytes.fromhex("13051000"))]
    assert program.lines[KERNEL_ENTRY].file == str(path)


def test_assembly_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.S"
    path.write_text("nop\naddd a0, a0, a1\n")
    with pytest.raises(AsmError, match=f"^{path}:2: unknown instruction 'addd'$"):
        load_program(str(path))


def test_assembly_source_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.S"
    path.write_bytes(b"nop # caf\xe9\n")
    with pytest.raises(LoadError, match="not a UTF-8 text file"):
        load_program(str(path))


def test_elf_files_are_recognised_by_their_magic(tmp_path):
    path = tmp_path / "kernel"  # no suffix needed
    path.write_bytes(make_elf([(0x8040_0000, b"\x13\0\0\0", 4)], entry=0x8040_0000))
    assert load_program(str(path)).segments == [Segment(0x8040_0000, b"\x13\0\0\0")]


def test_anything_else_is_a_flat_binary_at_the_kernel_entry(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes(b"\x13\0\0\0")
    assert load_program(str(path)) == Program([Segment(KERNEL_ENTRY, b"\x13\0\0\0")],
                                              KERNEL_ENTRY, name=str(path))


def test_missing_or_unreadable_file_is_a_load_error(tmp_path):
    missing = tmp_path / "nope.elf"
    with pytest.raises(LoadError, match=f"^{missing}: cannot read the file \\(No such file"):
        load_program(str(missing))
    with pytest.raises(LoadError, match="cannot read the file"):
        load_program(str(tmp_path))  # a directory
