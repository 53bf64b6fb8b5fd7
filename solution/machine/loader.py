"""Program loaders: ELF executables, flat binaries and assembly sources, all into a Program.

An ELF file is checked before it is trusted: it must be a 32-bit little-endian RISC-V executable
whose loadable segments lie inside the file. Each problem is reported as a LoadError that names
the file and says what is wrong and what this machine expects instead.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from elftools.elf.elffile import ELFFile

from .asm import assemble
from .board import KERNEL_ENTRY
from .errors import LoadError
from .program import Program, Segment

ELF_MAGIC = b"\x7fELF"
EM_RISCV = 243
EF_RISCV_RVC = 0x1  # e_flags: the code uses compressed instructions
ASSEMBLY_SUFFIXES = (".S", ".s", ".asm")
MAX_SEGMENT = 256 << 20  # twice the board's default RAM: anything larger is a damaged header

_MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 40: "ARM", 62: "x86-64",
             183: "AArch64", EM_RISCV: "RISC-V"}
_ELF_TYPES = {0: "an ELF file of no type",
              1: "a relocatable object (.o), which must be linked first",
              3: "a shared object or position-independent executable",
              4: "a core dump"}


def _check_header(data: bytes, name: str) -> None:
    """Refuse, with a clear reason, any ELF that is not a 32-bit RISC-V executable."""
    if len(data) < 52:
        raise LoadError(f"{name}: truncated ELF: {len(data)} bytes, shorter than an ELF header")
    if data[5] not in (1, 2):
        raise LoadError(f"{name}: corrupt ELF header (unknown byte order {data[5]})")
    order = "<" if data[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(order + "HH", data, 16)
    if e_machine != EM_RISCV:
        machine = _MACHINES.get(e_machine, "an unknown machine")
        raise LoadError(f"{name}: ELF for machine {machine} ({e_machine}); this machine runs "
                        "32-bit RISC-V (EM_RISCV)")
    if data[4] != 1:
        raise LoadError(f"{name}: 64-bit ELF (ELFCLASS64); this machine runs 32-bit RISC-V "
                        "(ELFCLASS32): build with -march=rv32im_zicsr -mabi=ilp32")
    if data[5] != 1:
        raise LoadError(f"{name}: big-endian ELF; RISC-V is little-endian")
    if e_type != 2:
        kind = _ELF_TYPES.get(e_type, f"an ELF file of type {e_type}")
        raise LoadError(f"{name}: {kind}; this machine loads only executables (ET_EXEC)")


def _segments(elf: ELFFile, data: bytes, name: str) -> list[Segment]:
    """The PT_LOAD segments, each placed at its physical address (p_paddr), as a boot loader
    would: the MMU is off when the kernel starts."""
    segments = []
    for index, seg in enumerate(elf.iter_segments()):
        if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
            continue
        start, size, memsz = seg["p_offset"], seg["p_filesz"], seg["p_memsz"]
        if start + size > len(data):
            raise LoadError(f"{name}: truncated ELF: segment {index} needs bytes up to "
                            f"{start + size:#x} but the file has {len(data):#x}")
        if memsz < size:
            raise LoadError(f"{name}: corrupt ELF: segment {index} is larger in the file "
                            "than in memory")
        if memsz > MAX_SEGMENT or seg["p_paddr"] + memsz > 1 << 32:
            raise LoadError(f"{name}: segment {index} ({memsz:#x} bytes at "
                            f"{seg['p_paddr']:#010x}) does not fit in memory")
        body = data[start:start + size] + bytes(memsz - size)  # the rest (.bss) is zeros
        segments.append(Segment(seg["p_paddr"], body))
    if not segments:
        raise LoadError(f"{name}: the ELF has no loadable (PT_LOAD) segment")
    return segments


def _symbols(elf: ELFFile) -> dict[str, int]:
    """Named code and data symbols; section, file and mapping ($x, $d) symbols are left out."""
    table = elf.get_section_by_name(".symtab")
    if table is None:
        return {}
    symbols = {}
    for sym in table.iter_symbols():
        kind = sym["st_info"]["type"]
        if sym.name and not sym.name.startswith("$") and sym["st_shndx"] != "SHN_UNDEF" \
                and kind in ("STT_NOTYPE", "STT_FUNC", "STT_OBJECT"):
            symbols[sym.name] = sym["st_value"]
    return symbols


def load_elf(data: bytes, name: str) -> Program:
    """A Program from the bytes of a 32-bit RISC-V ELF executable; `name` names it in errors."""
    if data[:4] != ELF_MAGIC:
        raise LoadError(f"{name}: not an ELF file (it does not start with 0x7f 'E' 'L' 'F')")
    _check_header(data, name)
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.header["e_flags"] & EF_RISCV_RVC:
            raise LoadError(f"{name}: the ELF uses compressed instructions (the C extension), "
                            "which this machine lacks: build with -march=rv32im_zicsr")
        segments = _segments(elf, data, name)
        symbols = _symbols(elf)
        entry = elf.header["e_entry"]
    except LoadError:
        raise
    except Exception as err:  # pyelftools meets a damaged file with many kinds of exception
        raise LoadError(f"{name}: truncated or corrupt ELF ({type(err).__name__}: {err})") \
            from None
    if not any(s.addr <= entry < s.addr + len(s.data) for s in segments):
        raise LoadError(f"{name}: the entry point {entry:#010x} is outside every loadable "
                        "segment")
    return Program(segments, entry, symbols, name=name)


def load_binary(data: bytes, name: str, base: int = KERNEL_ENTRY) -> Program:
    """A flat binary: its bytes placed at `base`, which is also where it starts."""
    if not data:
        raise LoadError(f"{name}: the file is empty")
    return Program([Segment(base, bytes(data))], base, name=name)


def load_program(path: str) -> Program:
    """Load an assembly source (.S, .s, .asm), an ELF executable, or else a flat binary."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise LoadError(f"{path}: cannot read the file ({err.strerror or err})") from None
    if path.endswith(ASSEMBLY_SUFFIXES):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise LoadError(f"{path}: not a UTF-8 text file ({err.reason} at byte "
                            f"{err.start})") from None
        return assemble(text, path)
    if data[:4] == ELF_MAGIC:
        return load_elf(data, path)
    return load_binary(data, path)
