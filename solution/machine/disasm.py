"""The disassembler: instruction words back to the assembly text that asm.py reads.

Every word prints as the real instruction it encodes (`addi a0, zero, 1`, never the `li a0, 1`
alias), so that each line shows exactly one row of the table in isa.py. Registers use their ABI
names, CSRs their names when this machine has them, and branch and jump targets print as the
absolute address they reach from `pc`. A word that is not a canonical encoding of one of the
instructions in isa.py prints as `.word 0x...`, so assembling the text at the same address always
gives back the same word.
"""

from __future__ import annotations

import re

from . import csr, isa
from .program import Program


def _render(form: isa.Form, name: str, value: int, pc: int) -> str:
    if name in ("rd", "rs1", "rs2"):
        return isa.ABI_NAMES[value]
    if name == "offset":
        return f"{(pc + value) & isa.WORD_MASK:#x}"
    if name == "csr":
        return csr.NUMBERS.get(value, f"{value:#x}")
    if name in ("pred", "succ"):
        return isa.fence_set_name(value)
    if name == "imm" and form.fmt == "U":
        return f"{value:#x}"  # an upper immediate means something in hex: lui a0, 0x80000
    return str(value)


def disassemble(word: int, pc: int = 0) -> str:
    """The assembly text of one 32-bit instruction word found at address `pc`."""
    if not 0 <= word <= isa.WORD_MASK:
        raise ValueError(f"not a 32-bit word: {word:#x}")
    decoded = isa.decode(word)
    if decoded is None:
        return f".word {word:#010x}"
    form, operands = decoded
    text = re.sub(r"[a-z0-9]+", lambda m: _render(form, m.group(), operands[m.group()], pc),
                  form.syntax)
    return f"{form.mnemonic} {text}" if text else form.mnemonic


def _labels(program: Program) -> dict[int, list[str]]:
    by_addr: dict[int, list[str]] = {}
    for name, addr in sorted(program.symbols.items(), key=lambda item: item[0]):
        by_addr.setdefault(addr, []).append(name)
    return by_addr


def listing(program: Program) -> str:
    """Every word of the program: address, word, disassembly and, when known, its source line.

    Runs of three or more zero words that no source line claims (.space, .bss) print as "...".
    """
    labels = _labels(program)
    out: list[str] = []
    for segment in program.segments:
        zeros = 0
        for offset in range(0, len(segment.data), 4):
            addr = segment.addr + offset
            chunk = segment.data[offset:offset + 4]
            word = int.from_bytes(chunk, "little")
            quiet = len(chunk) == 4 and word == 0 and addr not in program.lines \
                and addr not in labels
            zeros = zeros + 1 if quiet else 0
            if zeros >= 3:
                if zeros == 3:
                    out[-2:] = ["          ..."]
                continue
            out += [f"\n{addr:08x} <{name}>:" for name in labels.get(addr, [])]
            out.append(_line(program, addr, chunk))
    return "\n".join(out).lstrip("\n") + "\n" if out else ""


def _line(program: Program, addr: int, chunk: bytes) -> str:
    if len(chunk) < 4:  # the segment's last bytes
        text = ".byte " + ", ".join(f"{b:#04x}" for b in chunk)
        return f"{addr:08x}:  {chunk.hex():<8}  {text}"
    word = int.from_bytes(chunk, "little")
    text = f"{addr:08x}:  {word:08x}  {disassemble(word, addr)}"
    source = program.lines.get(addr)
    if source is None:
        return text
    if program.lines.get(addr - 4) == source:  # the rest of a pseudo-instruction's expansion
        return text
    return f"{text:<56}# {source.file}:{source.line}: {source.text}"
