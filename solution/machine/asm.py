"""An assembler for this machine's RV32 instructions, byte-compatible with GNU as.

`assemble(source)` turns assembly text into a Program: one contiguous image starting at `base`.
It works in two passes:

1. Read the statements in order. Labels get a place (section, offset); pseudo-instructions are
   expanded into real ones; every instruction and datum gets its size and place. Operands are
   parsed now, but expressions are kept unevaluated, since they may name labels defined later.
2. Lay the sections out one after the other, which gives every label its address, then
   evaluate the expressions and encode each instruction with the table in isa.py.

Every problem is collected with its line number and reported together in one AsmError.

Differences from GNU as worth knowing: expressions use C's operator precedence (GNU gives
| & ^ the same precedence as + and -), an instruction must start at a multiple of 4, and the
whole program is one image with the sections in the order they first appear.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from . import csr, isa
from .board import KERNEL_ENTRY
from .errors import AsmError
from .program import Program, Segment, SourceLine

NOP = 0x0000_0013  # addi zero, zero, 0: what .align pads code with
MAX_ALIGN_LOG2 = 24  # 16 MiB; a Sv32 megapage needs only 2**22
MAX_IMAGE = 256 << 20  # far more than the board's RAM: anything larger is a mistake
LIMIT_64 = 1 << 64  # expressions are computed on 64-bit values, as in GNU as

# An expression is kept as a small tree of tuples until pass 2 can evaluate it:
#   ("num", value)               a number or character
#   ("sym", name, shown)         a label or .equ constant (shown: as written, e.g. "1f")
#   ("here", section, offset)    `.`, the address of the current instruction or datum
#   ("unary", op, x)             - ~ +
#   ("binary", op, x, y)         + - * / % << >> & | ^
#   ("reloc", kind, x)           %hi(x) %lo(x) %pcrel_hi(x) %pcrel_lo(x)
Expr = tuple


class _Problem(Exception):
    """Something wrong with one statement: becomes one line of the AsmError."""


class _NotConstant(_Problem):
    """An expression that pass 1 needs (e.g. for li or .space) names a label or `.`."""


# --- Lexical structure -------------------------------------------------------------------------

_STRING = r'"(?:\\[^\n]|[^"\\\n])*"'
_CHAR = r"'(?:\\(?:x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|[^\n])|[^\\'\n])'"
_LITERAL = re.compile(f"{_STRING}|{_CHAR}")
_COMMENT_OR_LITERAL = re.compile(
    rf"(?P<literal>{_STRING}|{_CHAR})|(?P<line>(?:\#|//)[^\n]*)|(?P<block>/\*.*?(?:\*/|\Z))",
    re.DOTALL,
)
_CPP = re.compile(r"\s*#(include|define|undef|ifdef|ifndef|if|elif|else|endif)\b")
_LABEL = re.compile(r"\s*([A-Za-z_.$][A-Za-z0-9_.$]*|[0-9]{1,9})\s*:")
_IDENTIFIER = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*")
_MEMORY = re.compile(r"(.*)\(\s*([^()]*?)\s*\)\s*", re.DOTALL)  # offset(register)
_MNEMONIC = re.compile(r"(\S+)(.*)", re.DOTALL)
_LOCAL_REF = re.compile(r"[0-9]{1,9}[bf]")

_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39,
            '"': 34, "?": 63}


def _strip_comments(source: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The source's lines with comments removed (keeping line numbers), and any problems."""
    problems = []

    def replace(m: re.Match) -> str:
        if m.group("literal"):
            return m.group()
        block = m.group("block")
        if block and not (len(block) >= 4 and block.endswith("*/")):
            problems.append((source.count("\n", 0, m.start()) + 1, "unterminated /* comment"))
        return "\n" * m.group().count("\n")

    lines = _COMMENT_OR_LITERAL.sub(replace, source).split("\n")
    return [line.rstrip("\r") for line in lines], problems


def _split(text: str, sep: str) -> list[str]:
    """Split `text` at every `sep` that is not inside a string or character literal."""
    if '"' not in text and "'" not in text:
        return text.split(sep)
    pieces, start, i = [], 0, 0
    while i < len(text):
        literal = _LITERAL.match(text, i)
        if literal:
            i = literal.end()
            continue
        if text[i] == sep:
            pieces.append(text[start:i])
            start = i + 1
        i += 1
    pieces.append(text[start:])
    return pieces


def _operands(text: str) -> list[str]:
    return [] if not text.strip() else [piece.strip() for piece in _split(text, ",")]


def _unescape(body: str) -> bytes:
    """The bytes of a C-style string or character body (without its quotes)."""
    out = bytearray()
    for m in re.finditer(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.?)|([^\\]+)", body, re.DOTALL):
        plain, escape = m.group(2), m.group(1)
        if plain is not None:
            out += plain.encode("utf-8", "surrogatepass")  # never fails, whatever the text
        elif re.fullmatch("x[0-9A-Fa-f]{1,2}", escape):
            out.append(int(escape[1:], 16))
        elif re.fullmatch("[0-7]{1,3}", escape):
            if int(escape, 8) > 255:
                raise _Problem(f"escape '\\{escape}' does not fit in a byte")
            out.append(int(escape, 8))
        elif escape in _ESCAPES:
            out.append(_ESCAPES[escape])
        else:
            raise _Problem(f"unknown escape sequence '\\{escape}'")
    return bytes(out)


def _register(text: str) -> int:
    number = isa.REGISTERS.get(text.strip().lower())
    if number is None:
        raise _Problem(f"expected a register, got '{text.strip()}'")
    return number


def _is_register(text: str) -> bool:
    return text.strip().lower() in isa.REGISTERS


def _fence_set(text: str) -> int:
    letters = text.strip().lower()
    bits = sum(8 >> isa.FENCE_LETTERS.index(c) for c in letters if c in isa.FENCE_LETTERS)
    if not letters or isa.fence_set_name(bits) != letters:
        raise _Problem("expected a fence set: some of the letters i, o, r, w in that order "
                       f"(such as rw or iorw), got '{text.strip()}'")
    return bits


# --- Expressions ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<number>[0-9][0-9A-Za-z_]*)
      | (?P<char>{_CHAR})
      | (?P<reloc>%(?:pcrel_hi|pcrel_lo|hi|lo)(?![A-Za-z0-9_]))
      | (?P<name>[A-Za-z_.$][A-Za-z0-9_.$]*)
      | (?P<op><<|>>|[-+*/%&|^~()])
    )""",
    re.VERBOSE,
)
# C's precedence: higher binds tighter
_PRECEDENCE = {"|": 1, "^": 2, "&": 3, "<<": 4, ">>": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_MAX_NESTING = 100


# (pattern, base, how many prefix characters to skip)
_NUMBER_FORMS = [(re.compile(r"0[xX][0-9A-Fa-f]+"), 16, 2), (re.compile(r"0[bB][01]+"), 2, 2),
                 (re.compile(r"0[0-7]*"), 8, 0), (re.compile(r"[1-9][0-9]*"), 10, 0)]


def _number(text: str) -> int:
    """A C-style integer literal: 0x1f, 0b101, 017 (octal, as in GNU as) or 42."""
    if len(text) > 66:
        raise _Problem(f"number '{text[:20]}...' is too long")
    for pattern, base, skip in _NUMBER_FORMS:
        if pattern.fullmatch(text):
            return int(text[skip:] or "0", base)
    raise _Problem(f"invalid number '{text}'")


class _ExprParser:
    """Recursive descent over the tokens of one operand."""

    def __init__(self, text: str, here: Expr, local_label: Callable[[str], Expr]) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.depth = 0
        self.here = here
        self.local_label = local_label  # turns "1b" or "1f" into a ("sym", ...)

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while text[pos:].strip():
            m = _TOKEN.match(text, pos)
            if not m:
                bad = text[pos:].strip()[0]
                raise _Problem(f"unexpected character '{bad}' in '{text.strip()}'")
            tokens.append((m.lastgroup, m.group(m.lastgroup)))
            pos = m.end()
        return tokens

    def parse(self) -> Expr:
        if not self.tokens:
            raise _Problem("missing expression")
        expr = self._binary(1)
        if self.pos < len(self.tokens):
            raise _Problem(f"unexpected '{self.tokens[self.pos][1]}' in '{self.text.strip()}'")
        return expr

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise _Problem(f"expression '{self.text.strip()}' ends too early")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _expect(self, op: str) -> None:
        if self._next()[1] != op:
            raise _Problem(f"expected '{op}' in '{self.text.strip()}'")

    def _binary(self, min_precedence: int) -> Expr:
        left = self._unary()
        while _PRECEDENCE.get(self._peek() or "", 0) >= min_precedence:
            op = self._next()[1]
            left = ("binary", op, left, self._binary(_PRECEDENCE[op] + 1))
        return left

    def _unary(self) -> Expr:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise _Problem("expression is nested too deeply")
        try:
            if self._peek() in ("-", "~", "+"):
                return ("unary", self._next()[1], self._unary())
            return self._primary()
        finally:
            self.depth -= 1

    def _primary(self) -> Expr:
        kind, text = self._next()
        if kind == "number":
            if _LOCAL_REF.fullmatch(text):
                return self.local_label(text)
            return ("num", _number(text))
        if kind == "char":
            value = _unescape(text[1:-1])
            return ("num", value[0] if len(value) == 1 else ord(text[1:-1]))
        if kind == "name":
            return self.here if text == "." else ("sym", text, text)
        if kind == "reloc":
            self._expect("(")
            inner = self._binary(1)
            self._expect(")")
            return ("reloc", text[1:], inner)
        if text == "(":
            inner = self._binary(1)
            self._expect(")")
            return inner
        raise _Problem(f"unexpected '{text}' in '{self.text.strip()}'")


def _c_division(a: int, b: int) -> int:
    """Division that truncates toward zero, as C and GNU as do (Python's // floors)."""
    if b == 0:
        raise _Problem("division by zero")
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _binary(op: str, a: int, b: int) -> int:
    if op in ("<<", ">>") and not 0 <= b < 64:
        raise _Problem(f"shift amount {b} out of range (0..63)")
    result = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
        "/": lambda: _c_division(a, b), "%": lambda: a - b * _c_division(a, b),
        "<<": lambda: a << b, ">>": lambda: a >> b, "&": lambda: a & b, "|": lambda: a | b,
        "^": lambda: a ^ b,
    }[op]()
    if not -LIMIT_64 < result < LIMIT_64:
        raise _Problem("value does not fit in 64 bits")
    return result


def _hi(value: int) -> int:
    """The upper 20 bits for lui/auipc, rounded so that adding the signed %lo gives `value`."""
    return ((value + 0x800) >> 12) & 0xFFFFF


def _lo(value: int) -> int:
    return isa.sign_extend(value, 12)


# --- Pseudo-instructions -----------------------------------------------------------------------

# Each line: how the pseudo-instruction is written -> the real instructions it stands for, as
# GNU as expands them (so the bytes match). {name} stands for the operand written in that place.
# %pcrel_lo takes the address of the auipc whose %pcrel_hi it completes: `. - 4` is the auipc
# just before. li is not here: its expansion depends on the value (see _expand_li), and so does
# that of la with a number rather than a label, which GNU as turns into li.
PSEUDO_INSTRUCTIONS = """
    nop                     -> addi zero, zero, 0
    mv rd, rs               -> addi {rd}, {rs}, 0
    not rd, rs              -> xori {rd}, {rs}, -1
    neg rd, rs              -> sub {rd}, zero, {rs}
    seqz rd, rs             -> sltiu {rd}, {rs}, 1
    snez rd, rs             -> sltu {rd}, zero, {rs}
    sltz rd, rs             -> slt {rd}, {rs}, zero
    sgtz rd, rs             -> slt {rd}, zero, {rs}
    sgt rd, rs, rt          -> slt {rd}, {rt}, {rs}
    sgtu rd, rs, rt         -> sltu {rd}, {rt}, {rs}
    la rd, symbol           -> auipc {rd}, %pcrel_hi({symbol}); addi {rd}, {rd}, %pcrel_lo(. - 4)
    lla rd, symbol          -> auipc {rd}, %pcrel_hi({symbol}); addi {rd}, {rd}, %pcrel_lo(. - 4)
    beqz rs, offset         -> beq {rs}, zero, {offset}
    bnez rs, offset         -> bne {rs}, zero, {offset}
    blez rs, offset         -> bge zero, {rs}, {offset}
    bgez rs, offset         -> bge {rs}, zero, {offset}
    bltz rs, offset         -> blt {rs}, zero, {offset}
    bgtz rs, offset         -> blt zero, {rs}, {offset}
    bgt rs, rt, offset      -> blt {rt}, {rs}, {offset}
    ble rs, rt, offset      -> bge {rt}, {rs}, {offset}
    bgtu rs, rt, offset     -> bltu {rt}, {rs}, {offset}
    bleu rs, rt, offset     -> bgeu {rt}, {rs}, {offset}
    j offset                -> jal zero, {offset}
    jal offset              -> jal ra, {offset}
    jr rs                   -> jalr zero, 0({rs})
    jr offset(rs)           -> jalr zero, {offset}({rs})
    jalr rs                 -> jalr ra, 0({rs})
    jalr offset(rs)         -> jalr ra, {offset}({rs})
    jalr rd, rs             -> jalr {rd}, 0({rs})
    jalr rd, rs, imm        -> jalr {rd}, {imm}({rs})
    ret                     -> jalr zero, 0(ra)
    call offset             -> auipc ra, %pcrel_hi({offset}); jalr ra, %pcrel_lo(. - 4)(ra)
    tail offset             -> auipc t1, %pcrel_hi({offset}); jalr zero, %pcrel_lo(. - 4)(t1)
    fence                   -> fence iorw, iorw
    sfence.vma              -> sfence.vma zero, zero
    sfence.vma rs           -> sfence.vma {rs}, zero
    hfence.vvma             -> hfence.vvma zero, zero
    hfence.vvma rs          -> hfence.vvma {rs}, zero
    hfence.gvma             -> hfence.gvma zero, zero
    hfence.gvma rs          -> hfence.gvma {rs}, zero
    csrr rd, csr            -> csrrs {rd}, {csr}, zero
    csrw csr, rs            -> csrrw zero, {csr}, {rs}
    csrs csr, rs            -> csrrs zero, {csr}, {rs}
    csrc csr, rs            -> csrrc zero, {csr}, {rs}
    csrw csr, imm           -> csrrwi zero, {csr}, {imm}
    csrs csr, imm           -> csrrsi zero, {csr}, {imm}
    csrc csr, imm           -> csrrci zero, {csr}, {imm}
    csrwi csr, imm          -> csrrwi zero, {csr}, {imm}
    csrsi csr, imm          -> csrrsi zero, {csr}, {imm}
    csrci csr, imm          -> csrrci zero, {csr}, {imm}
    csrrw rd, csr, imm      -> csrrwi {rd}, {csr}, {imm}
    csrrs rd, csr, imm      -> csrrsi {rd}, {csr}, {imm}
    csrrc rd, csr, imm      -> csrrci {rd}, {csr}, {imm}
    rdcycle rd              -> csrrs {rd}, cycle, zero
    rdtime rd               -> csrrs {rd}, time, zero
    rdinstret rd            -> csrrs {rd}, instret, zero
    rdcycleh rd             -> csrrs {rd}, cycleh, zero
    rdtimeh rd              -> csrrs {rd}, timeh, zero
    rdinstreth rd           -> csrrs {rd}, instreth, zero
"""

_REGISTER_SLOTS = {"rd", "rs", "rt", "rs1", "rs2"}


@dataclass(frozen=True)
class _Variant:
    """One way to write a mnemonic: a real instruction form or a pseudo-instruction."""

    syntax: str
    form: isa.Form | None = None
    expansion: tuple[str, ...] = ()

    @cached_property
    def slots(self) -> list[str]:
        return [s.strip() for s in self.syntax.split(",")] if self.syntax else []


def _variants() -> dict[str, list[_Variant]]:
    table: dict[str, list[_Variant]] = {}
    for form in isa.FORMS:
        table.setdefault(form.mnemonic, []).append(_Variant(form.syntax, form=form))
    for row in PSEUDO_INSTRUCTIONS.strip().splitlines():
        written, expansion = (part.strip() for part in row.split("->"))
        mnemonic, _, syntax = written.partition(" ")
        lines = tuple(line.strip() for line in expansion.split(";"))
        table.setdefault(mnemonic, []).append(_Variant(syntax.strip(), expansion=lines))
    return table


VARIANTS = _variants()


def _bind(variant: _Variant, operands: list[str]) -> dict[str, str]:
    """Match the written operands to the variant's slots, or raise saying why they don't fit."""
    bound = {}
    for slot, text in zip(variant.slots, operands, strict=True):
        if "(" in slot:  # offset(register)
            offset_name, register_name = slot.rstrip(")").split("(")
            memory = _MEMORY.fullmatch(text)
            if not memory or not _is_register(memory.group(2)):
                raise _Problem(f"expected offset(register), got '{text}'")
            bound[offset_name] = memory.group(1).strip() or "0"
            bound[register_name] = memory.group(2)
        elif slot in _REGISTER_SLOTS:
            _register(text)
            bound[slot] = text
        elif _is_register(text):
            raise _Problem(f"expected {_describe_slot(slot)}, got register '{text}'")
        else:
            bound[slot] = text
    return bound


def _describe_slot(slot: str) -> str:
    return {"csr": "a CSR", "pred": "a fence set", "succ": "a fence set",
            "offset": "a target address", "symbol": "a symbol"}.get(slot, "an immediate value")


def _choose(mnemonic: str, operands: list[str]) -> tuple[_Variant, dict[str, str]]:
    variants = VARIANTS.get(mnemonic)
    if not variants:
        raise _Problem(f"unknown instruction '{mnemonic}'")
    fitting = [v for v in variants if len(v.slots) == len(operands)]
    if not fitting:
        expected = " or ".join(f"'{v.syntax}'" if v.syntax else "no operands" for v in variants)
        raise _Problem(f"'{mnemonic}' takes {expected}, not {len(operands)} operand(s)")
    for variant in fitting:
        try:
            return variant, _bind(variant, operands)
        except _Problem:
            continue
    return fitting[0], _bind(fitting[0], operands)  # raises the reason the first one failed


# --- The assembler ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Section:
    name: str
    first_line: int
    size: int = 0
    align: int = 1
    base: int = 0  # its address, once pass 2 has laid the sections out

    @property
    def is_code(self) -> bool:
        return self.name == ".text" or self.name.startswith(".text.")


@dataclass(eq=False)
class _Item:
    """Bytes at a place in a section: an instruction, data values, or bytes known already."""

    section: _Section
    offset: int
    size: int
    line: int
    form: isa.Form | None = None
    operands: dict[str, int | Expr] = field(default_factory=dict)  # registers as numbers
    values: tuple[Expr, ...] = ()  # data: each value takes size // len(values) bytes
    raw: bytes = b""

    @property
    def addr(self) -> int:
        return self.section.base + self.offset


class _Assembler:
    def __init__(self, filename: str, base: int) -> None:
        self.filename = filename
        self.base = base
        self.problems: list[tuple[str, int, str]] = []
        self.sections: dict[str, _Section] = {}
        self.current = ".text"
        self.items: list[_Item] = []
        self.labels: dict[str, tuple[_Section, int]] = {}
        self.equs: dict[str, Expr] = {}
        self.defined_on: dict[str, int] = {}  # symbol -> line, for "already defined" messages
        self.equ_values: dict[str, int] = {}  # .equ values computed so far
        self.evaluating: set[str] = set()  # .equ symbols being evaluated, to catch cycles
        self.local_counts: dict[str, int] = {}  # numeric label -> how many defined so far
        self.laid_out = False
        self.code_at: dict[int, _Item] = {}  # address -> instruction, for %pcrel_lo
        self.line = 0
        self.source_lines: list[str] = []

    def problem(self, line: int, reason: str) -> None:
        self.problems.append((self.filename, line, reason))

    # --- driver

    def run(self, source: str) -> Program:
        if not (0 <= self.base <= isa.WORD_MASK and self.base % 4 == 0):
            raise AsmError([(self.filename, 0, f"base address {self.base:#x} must be a "
                                               "multiple of 4 below 2**32")])
        self.source_lines = source.split("\n")
        lines, comment_problems = _strip_comments(source)
        for line, reason in comment_problems:
            self.problem(line, reason)
        for number, text in enumerate(lines, start=1):
            self.line = number
            self._check_cpp(self.source_lines[number - 1])
            for statement in _split(text, ";"):
                self._guarded(self._statement, statement)
        image = self._pass2()
        if self.problems:
            raise AsmError(sorted(self.problems, key=lambda p: p[1]))
        return self._program(image)

    def _guarded(self, action: Callable, *args: object) -> object:
        """Run one statement's work, turning what goes wrong into a reported problem."""
        try:
            return action(*args)
        except RecursionError:
            self.problem(self.line, "expression is nested too deeply")
        except _Problem as why:
            self.problem(self.line, str(why))
        return None

    def _check_cpp(self, raw_line: str) -> None:
        m = _CPP.match(raw_line)
        if m:
            self.problem(self.line, f"C preprocessor directive '#{m.group(1)}' is not "
                                    "supported (use .equ for constants)")

    # --- pass 1: statements

    def _statement(self, text: str) -> None:
        text = self._labels(text).strip()
        if not text:
            return
        mnemonic, rest = _MNEMONIC.match(text).groups()
        handler = self._directive if mnemonic.startswith(".") else self._instruction
        handler(mnemonic.lower(), _operands(rest))

    def _labels(self, text: str) -> str:
        """Define the labels at the start of a statement; return the rest."""
        while m := _LABEL.match(text):
            self._define_label(m.group(1))
            text = text[m.end():]
        return text

    def _define_label(self, name: str) -> None:
        section = self._section()
        if name[0].isdigit():  # a numeric local label: each definition is a new instance
            name = str(int(name))
            self.local_counts[name] = self.local_counts.get(name, 0) + 1
            name = f"{name}:{self.local_counts[name]}"
        elif name == ".":
            raise _Problem("'.' is the current address and cannot be a label")
        else:
            self._check_new_symbol(name)
        self.labels[name] = (section, section.size)

    def _check_new_symbol(self, name: str) -> None:
        if name in self.defined_on:
            raise _Problem(f"symbol '{name}' is already defined on line {self.defined_on[name]}")
        self.defined_on[name] = self.line

    def _local_label(self, ref: str) -> Expr:
        name, direction = str(int(ref[:-1])), ref[-1]
        count = self.local_counts.get(name, 0)
        if direction == "b" and count == 0:
            raise _Problem(f"local label '{ref}' has no '{name}:' before it")
        return ("sym", f"{name}:{count + (direction == 'f')}", ref)

    def _section(self) -> _Section:
        if self.current not in self.sections:
            self.sections[self.current] = _Section(self.current, self.line)
        return self.sections[self.current]

    def _expr(self, text: str) -> Expr:
        here = ("here", self._section(), self._section().size)
        return _ExprParser(text, here, self._local_label).parse()

    def _constant(self, text: str, what: str) -> int:
        try:
            return self._eval(self._expr(text), 0)
        except _NotConstant as why:
            raise _Problem(f"{what} needs a constant, and {why}") from None

    def _make_room(self, size: int) -> None:
        if sum(s.size for s in self.sections.values()) + size > MAX_IMAGE:
            raise _Problem(f"the program would be larger than {MAX_IMAGE >> 20} MiB")

    def _add(self, item: _Item) -> None:
        self._make_room(item.size)
        item.section.size += item.size
        self.items.append(item)

    def _add_raw(self, data: bytes) -> None:
        section = self._section()
        self._add(_Item(section, section.size, len(data), self.line, raw=data))

    # --- pass 1: instructions

    def _instruction(self, mnemonic: str, operands: list[str]) -> None:
        if "" in operands:
            raise _Problem("missing operand (two commas in a row, or a comma at the end)")
        if mnemonic == "li" or mnemonic in ("la", "lla") and self._is_constant(operands[1:]):
            expansion = self._expand_li(mnemonic, operands)  # GNU as: la of a number is li
        else:
            variant, bound = _choose(mnemonic, operands)
            if variant.form:
                self._emit(variant.form, bound)
                return
            expansion = [line.format(**bound) for line in variant.expansion]
        for line in expansion:
            name, _, rest = line.partition(" ")
            self._instruction(name, _operands(rest))

    def _is_constant(self, operands: list[str]) -> bool:
        try:
            self._constant(operands[0], "")
        except (_Problem, IndexError):
            return False
        return True

    def _expand_li(self, mnemonic: str, operands: list[str]) -> list[str]:
        """li rd, value: one addi for 12-bit values, else lui (+ addi), exactly as GNU as does."""
        if len(operands) != 2:
            raise _Problem(f"'li' takes 'rd, imm', not {len(operands)} operand(s)")
        rd, text = operands
        _register(rd)
        value = self._constant(text, "li")
        if not -(1 << 31) <= value <= isa.WORD_MASK:
            raise _Problem(f"{mnemonic} value {value:#x} does not fit in 32 bits")
        value = isa.sign_extend(value, 32)
        if -2048 <= value < 2048:
            return [f"addi {rd}, zero, {value}"]
        upper, lower = _hi(value), _lo(value)
        return [f"lui {rd}, {upper:#x}"] + ([f"addi {rd}, {rd}, {lower}"] if lower else [])

    def _emit(self, form: isa.Form, bound: dict[str, str]) -> None:
        section = self._section()
        if section.size % 4:
            raise _Problem(f"instruction at offset {section.size:#x} of {section.name} is not "
                           "4-byte aligned (put .align 2 before it)")
        operands = {name: self._operand(name, bound[name]) for name in form.operands}
        section.align = max(section.align, 4)
        self._add(_Item(section, section.size, 4, self.line, form=form, operands=operands))

    def _operand(self, name: str, text: str) -> int | Expr:
        if name in ("rd", "rs1", "rs2"):
            return _register(text)
        if name in ("pred", "succ"):
            return _fence_set(text)
        if name == "csr" and text.strip().lower() in csr.NAMES:
            return ("num", csr.NAMES[text.strip().lower()])
        return self._expr(text)

    # --- pass 1: directives

    def _directive(self, name: str, args: list[str]) -> None:
        sections = {".text": ".text", ".data": ".data", ".rodata": ".rodata", ".bss": ".bss"}
        widths = {".byte": 1, ".half": 2, ".short": 2, ".2byte": 2, ".word": 4, ".long": 4,
                  ".4byte": 4}
        if name in sections:
            self._expect_args(name, args, 0)
            self.current = sections[name]
            self._section()
        elif name == ".section":
            self._switch_section(args)
        elif name in widths:
            self._data(widths[name], args)
        elif name in (".ascii", ".asciz", ".string"):
            self._strings(args, terminate=name != ".ascii")
        elif name in (".align", ".p2align", ".balign"):
            self._align(name, args)
        elif name in (".space", ".zero", ".skip"):
            self._space(name, args)
        elif name in (".equ", ".set"):
            self._equ(name, args)
        elif name == ".option":
            self._option(args)
        elif name not in (".globl", ".global", ".local", ".weak", ".type", ".size", ".file",
                          ".ident", ".attribute"):  # symbol and file metadata: nothing to do
            raise _Problem(f"unknown directive '{name}'")

    @staticmethod
    def _expect_args(name: str, args: list[str], *counts: int) -> None:
        if len(args) not in counts:
            wanted = " or ".join(str(c) for c in counts)
            raise _Problem(f"'{name}' takes {wanted} operand(s), not {len(args)}")

    def _switch_section(self, args: list[str]) -> None:
        name = args[0].strip().strip('"') if args else ""
        if not _IDENTIFIER.fullmatch(name):
            raise _Problem(f"expected a section name after .section, got '{name}'")
        self.current = name  # flags such as "ax", @progbits are accepted and ignored
        self._section()

    def _data(self, width: int, args: list[str]) -> None:
        if not args:
            return
        section = self._section()
        values = tuple(self._expr(arg) for arg in args)
        self._add(_Item(section, section.size, width * len(values), self.line, values=values))

    def _strings(self, args: list[str], terminate: bool) -> None:
        data = b""
        for arg in args:
            if not re.fullmatch(_STRING, arg):
                raise _Problem(f"expected a string in double quotes, got '{arg}'")
            data += _unescape(arg[1:-1]) + (b"\0" if terminate else b"")
        self._add_raw(data)

    def _align(self, name: str, args: list[str]) -> None:
        """.align and .p2align take a power of two (as GNU as for RISC-V), .balign bytes."""
        self._expect_args(name, args, 1, 2)
        amount = self._constant(args[0], name)
        if name == ".balign":
            if amount <= 0 or amount & (amount - 1) or amount > 1 << MAX_ALIGN_LOG2:
                raise _Problem(f".balign {amount}: not a power of two up to 2**{MAX_ALIGN_LOG2}")
            alignment = amount
        else:
            if not 0 <= amount <= MAX_ALIGN_LOG2:
                raise _Problem(f"{name} {amount}: the power of two must be 0..{MAX_ALIGN_LOG2}")
            alignment = 1 << amount
        fill = self._fill(args[1]) if len(args) == 2 else None
        self._pad_to(alignment, fill)

    def _fill(self, text: str) -> int:
        fill = self._constant(text, "the fill value")
        if not -128 <= fill <= 255:
            raise _Problem(f"fill value {fill} does not fit in a byte")
        return fill & 0xFF

    def _pad_to(self, alignment: int, fill: int | None) -> None:
        section = self._section()
        section.align = max(section.align, alignment)
        padding = -section.size % alignment
        if fill is None and section.is_code:  # pad code with nops, as GNU as does
            zeros = min(padding, -section.size % 4)
            nops = (padding - zeros) // 4
            data = bytes(zeros) + NOP.to_bytes(4, "little") * nops
        else:
            data = bytes([fill or 0]) * padding
        if data:
            self._add_raw(data)

    def _space(self, name: str, args: list[str]) -> None:
        self._expect_args(name, args, 1, 2)
        size = self._constant(args[0], name)
        if not 0 <= size <= MAX_IMAGE:
            raise _Problem(f"{name} {size}: the size must be 0..{MAX_IMAGE}")
        fill = self._fill(args[1]) if len(args) == 2 else 0
        self._make_room(size)  # before making the bytes
        self._add_raw(bytes([fill]) * size)

    def _equ(self, name: str, args: list[str]) -> None:
        self._expect_args(name, args, 2)
        symbol = args[0]
        if not _IDENTIFIER.fullmatch(symbol) or symbol == ".":
            raise _Problem(f"expected a symbol name after {name}, got '{symbol}'")
        expr = self._expr(args[1])
        self._check_new_symbol(symbol)
        self.equs[symbol] = expr
        try:  # compute it now if we can, so that long chains of .equ never recurse deeply
            self.equ_values[symbol] = self._eval(expr, 0)
        except _NotConstant:
            pass

    def _option(self, args: list[str]) -> None:
        self._expect_args(".option", args, 1)
        option = args[0].lower()
        if option == "rvc":
            raise _Problem("compressed instructions are not supported (.option rvc)")
        if option not in ("norvc", "norelax", "relax", "push", "pop", "nopic"):
            raise _Problem(f"unsupported .option '{args[0]}'")

    # --- evaluation

    def _eval(self, expr: Expr, pc: int) -> int:
        """The value of `expr` for an instruction at `pc`. Before layout, only constants."""
        match expr:
            case ("num", value):
                return value
            case ("sym", name, shown):
                return self._symbol(name, shown)
            case ("here", section, offset):
                if not self.laid_out:
                    raise _NotConstant("'.' is an address")
                return section.base + offset
            case ("unary", op, x):
                value = self._eval(x, pc)
                return -value if op == "-" else ~value if op == "~" else value
            case ("binary", op, x, y):
                return _binary(op, self._eval(x, pc), self._eval(y, pc))
            case ("reloc", kind, x):
                return self._reloc(kind, x, pc)
        raise AssertionError(expr)

    def _symbol(self, name: str, shown: str) -> int:
        if name in self.labels:
            if not self.laid_out:
                hint = " (use la to load an address)" if shown == name else ""
                raise _NotConstant(f"'{shown}' is a label{hint}")
            section, offset = self.labels[name]
            return section.base + offset
        if name in self.equ_values:
            return self.equ_values[name]
        if name in self.equs:
            return self._equ_value(name)
        if not self.laid_out:
            raise _NotConstant(f"'{shown}' is not defined before this line")
        if ":" in name:
            raise _Problem(f"local label '{shown}' has no '{shown[:-1]}:' after it")
        raise _Problem(f"undefined symbol '{shown}'")

    def _equ_value(self, name: str) -> int:
        if name in self.evaluating:
            raise _Problem(f"symbol '{name}' is defined in terms of itself")
        self.evaluating.add(name)
        try:
            value = self._eval(self.equs[name], 0)
        finally:
            self.evaluating.discard(name)
        self.equ_values[name] = value
        return value

    def _reloc(self, kind: str, x: Expr, pc: int) -> int:
        if kind in ("pcrel_hi", "pcrel_lo") and not self.laid_out:
            raise _NotConstant(f"%{kind} depends on where the code is")
        if kind == "hi":
            return _hi(self._eval(x, pc))
        if kind == "lo":
            return _lo(self._eval(x, pc))
        if kind == "pcrel_hi":
            return _hi(self._eval(x, pc) - pc)
        return _lo(self._pcrel_target(self._eval(x, pc) & isa.WORD_MASK))

    def _pcrel_target(self, auipc_addr: int) -> int:
        """%pcrel_lo(label): the offset that the auipc at `label` computed with %pcrel_hi."""
        auipc = self.code_at.get(auipc_addr)
        imm = auipc.operands.get("imm") if auipc and auipc.form.mnemonic == "auipc" else None
        if not (isinstance(imm, tuple) and imm[0] == "reloc" and imm[1] == "pcrel_hi"):
            raise _Problem(f"%pcrel_lo needs the address of an auipc with %pcrel_hi, and there "
                           f"is none at {auipc_addr:#010x}")
        return self._eval(imm[2], auipc_addr) - auipc_addr

    # --- pass 2: layout and encoding

    def _layout(self) -> int:
        """Give every section its address; return the end of the image."""
        addr = self.base
        for section in self.sections.values():
            if section.size:
                addr = -(-addr // section.align) * section.align
            section.base = addr
            addr += section.size
            if addr - self.base > MAX_IMAGE:  # only alignment gaps can still get us here
                self.problem(section.first_line, f"the program would be larger than "
                                                 f"{MAX_IMAGE >> 20} MiB")
                break
        self.laid_out = True
        return addr

    def _pass2(self) -> bytearray:
        end = self._layout()
        self.code_at = {item.addr: item for item in self.items if item.form}
        image = bytearray(end - self.base) if not self.problems else bytearray()
        for item in self.items:
            self.line = item.line
            data = self._guarded(self._encode, item)
            if data is not None and image:
                image[item.addr - self.base:item.addr - self.base + item.size] = data
        return image

    def _encode(self, item: _Item) -> bytes:
        if item.addr + item.size > 1 << 32:
            raise _Problem(f"address {item.addr + item.size - 1:#x} is beyond the 32-bit "
                           "address space")
        if item.form:
            return self._encode_instruction(item).to_bytes(4, "little")
        if item.values:
            return self._encode_data(item)
        return item.raw

    def _encode_instruction(self, item: _Item) -> int:
        form, pc = item.form, item.addr
        values = {}
        for name in form.operands:
            operand = item.operands[name]
            values[name] = operand if isinstance(operand, int) else self._value(form, name,
                                                                                operand, pc)
        return form.encode(values)

    def _value(self, form: isa.Form, name: str, expr: Expr, pc: int) -> int:
        """An operand's value, checked against what its field can hold."""
        if name == "csr" and expr[0] == "sym" and expr[1] not in self.labels \
                and expr[1] not in self.equs:
            raise _Problem(f"unknown CSR '{expr[2]}'")
        value = self._eval(expr, pc)
        if name == "offset":
            return self._offset(form, value, pc)
        if not form.field(name).fits(value):
            raise _Problem(self._range_message(form, name, value))
        return value

    @staticmethod
    def _range_message(form: isa.Form, name: str, value: int) -> str:
        if name == "csr":
            return f"CSR number {value:#x} out of range (0..0xfff)"
        if name == "shamt":
            return f"shift amount {value} out of range for {form.mnemonic} (0..31)"
        if form.fmt == "U":
            return f"immediate {value:#x} out of range for {form.mnemonic} (0..0xfffff)"
        lowest, highest = form.field(name).lowest, form.field(name).highest
        return f"immediate {value} out of range for {form.mnemonic} ({lowest}..{highest})"

    @staticmethod
    def _offset(form: isa.Form, target: int, pc: int) -> int:
        """The pc-relative offset to an absolute target address."""
        kind, reach = ("branch", "±4 KiB") if form.fmt == "B" else ("jump", "±1 MiB")
        if not -(1 << 31) <= target <= isa.WORD_MASK:
            raise _Problem(f"{kind} target {target:#x} is outside the 32-bit address space")
        offset = isa.sign_extend(target - pc, 32)
        if offset % 2:
            raise _Problem(f"misaligned {kind} target {target & isa.WORD_MASK:#010x} (odd)")
        if not form.field("offset").fits(offset):
            raise _Problem(f"{kind} target {target & isa.WORD_MASK:#010x} is out of range "
                           f"({reach})")
        return offset

    def _encode_data(self, item: _Item) -> bytes:
        width = item.size // len(item.values)
        name = {1: ".byte", 2: ".half", 4: ".word"}[width]
        lowest, highest = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1
        out = b""
        for expr in item.values:
            value = self._eval(expr, item.addr)
            if not lowest <= value <= highest:
                raise _Problem(f"value {value} out of range for {name} ({lowest}..{highest})")
            out += (value & highest).to_bytes(width, "little")
        return out

    def _program(self, image: bytearray) -> Program:
        symbols = {name: section.base + offset for name, (section, offset) in self.labels.items()
                   if ":" not in name}
        lines = {}
        for item in self.items:
            if item.form:
                text = self.source_lines[item.line - 1].strip()
                lines[item.addr] = SourceLine(self.filename, item.line, text)
        segments = [Segment(self.base, bytes(image))] if image else []
        return Program(segments, symbols.get("_start", self.base), symbols, lines,
                       self.filename)


def assemble(source: str, filename: str = "<input>", base: int = KERNEL_ENTRY) -> Program:
    """Assemble `source` into a Program whose image starts at `base`.

    Raises AsmError listing every problem found, each with its file and line.
    """
    return _Assembler(filename, base).run(source)
