"""The fast path: straight-line runs of instructions compiled to Python functions.

`run_plain` is the reference: one `Hart.step` at a time. `run_fast` gives the same results (a
property test checks it on generated programs) but compiles each basic block (up to a branch or
jump, a privileged or CSR instruction, or the end of the page) into one Python function, with
loads and stores going straight to RAM through the hart's per-context TLB caches. Anything
unusual (a TLB miss, a device, a misaligned address, a store into compiled code) falls back to
the hart's own `load`/`store`, and privileged and CSR instructions always run in the interpreter.
A block runs only if it ends before the timer interrupt is due, so interrupts are taken at
exactly the instruction where the interpreter would take them. A block that only jumps to itself
(`j .`, a guest waiting) takes all the turns that fit before then at once.
"""

from __future__ import annotations

import re
from types import CodeType

from . import alu
from .decode import Instr, decode
from .hart import Halt, Hart
from .traps import FETCH, INSN_MISALIGNED, Trap

MAX_BLOCK = 64
TERMINATORS = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "jal", "jalr"}
SPINNERS = TERMINATORS - {"jalr"}  # with offset 0, these jump or branch to themselves
SIMPLE = {"lui", "auipc", "addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai",
          "add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and", "mul", "mulh",
          "mulhsu", "mulhu", "div", "divu", "rem", "remu", "lb", "lh", "lw", "lbu", "lhu",
          "sb", "sh", "sw", "fence"} | TERMINATORS


class BlockTrap(Exception):
    """An instruction inside a block trapped: `idx` instructions before it retired."""

    def __init__(self, trap: Trap, pc: int, idx: int) -> None:
        self.trap, self.pc, self.idx = trap, pc, idx


class BlockExit(Exception):
    """Stop the block after this instruction (`n` retired, resume at `pc`): a store overwrote
    compiled code, or an access changed the TLB, so the block's cached translations are stale.
    A load that exits this way hands over the value for its destination register `rd`."""

    def __init__(self, pc: int, n: int, rd: int = 0, value: int = 0) -> None:
        self.pc, self.n, self.rd, self.value = pc, n, rd, value


class Block:
    __slots__ = ("fn", "n")

    def __init__(self, fn: object, n: int) -> None:
        self.fn, self.n = fn, n


class Spin(Block):
    """A block of one jump or branch to itself (a guest waiting for the timer or its budget):
    it never fits in the run loop's horizon, which takes its turns all at once instead."""

    __slots__ = ()

    def __init__(self, fn: object) -> None:
        super().__init__(fn, 1 << 62)


NO_BLOCK = Block(None, 1 << 62)  # "use the interpreter here": never fits a horizon
HOT = 2  # build a block the second time it is reached: most code in a short run is cold
# Compiling new source costs as much as interpreting a block a dozen times, and most blocks
# of a short run are reached exactly twice: only code seen this often pays for compile().
COMPILE = 3
VOLATILE = 8  # a page whose code was overwritten this often is self-modifying code:
PATIENT = 32  # a block there is compiled only once reached this often since the last write


class Cold(Block):
    """A block start seen fewer than HOT times: compiling costs more than interpreting it."""

    __slots__ = ("visits",)

    def __init__(self) -> None:
        super().__init__(None, 1 << 62)
        self.visits = 0


def run_plain(h: Hart, max_steps: int) -> tuple[int, Halt | None]:
    steps = 0
    try:
        while steps < max_steps:
            h.step()
            steps += 1
    except Halt as halt:
        return steps, halt
    return steps, None


def run_fast(h: Hart, max_steps: int) -> tuple[int, Halt | None]:
    steps = 0
    x = h.x
    try:
        while steps < max_steps:
            # run compiled blocks back to back while they fit before the budget and the timer
            limit = min(max_steps - steps, h.irq_deadline - h.instret)
            blocks, pc, done = h.blocks, h.pc, 0
            try:
                while True:
                    b = blocks.get(pc)
                    if b is None:
                        h.pc = pc
                        b = compile_block(h, pc)
                        blocks = h.blocks  # compiling may have flushed the caches
                    if done + b.n > limit:
                        break
                    pc = b.fn(x)
                    done += b.n
            except BlockTrap as bt:
                h.instret += done + bt.idx
                steps += done + bt.idx + 1
                if done + bt.idx:
                    h.trap_entry = False
                h._trap(bt.trap, bt.pc)
                continue
            except BlockExit as be:
                done += be.n
                pc = be.pc
                if be.rd:
                    x[be.rd] = be.value
            h.pc = pc
            h.instret += done
            steps += done
            if done:
                h.trap_entry = False
            if b.__class__ is Spin and done < limit:
                # `j .` and the like: a turn that comes back to the same pc leaves everything
                # as it was but the count, so take all the turns that fit at once
                h.pc = b.fn(x)
                turns = limit - done if h.pc == pc else 1
                h.instret += turns
                steps += turns
                h.trap_entry = False
                continue
            if b.__class__ is Cold:
                b.visits += 1
                if b.visits >= HOT:
                    b = compile_block(h, pc, b.visits)
            if steps < max_steps and (b is NO_BLOCK or done + b.n > limit):
                h.step()  # a privileged instruction, a fault to take, or the timer is due
                steps += 1
    except Halt as halt:
        return steps, halt
    return steps, None


def compile_block(h: Hart, pc: int, visits: int = 0) -> Block:
    """Compile the block at `pc` in the current context, or return NO_BLOCK. A block reached
    for the first time (`visits` 0) only gets a Cold marker, which the run loop counts and
    brings back here until the block is worth compiling; then the marker is returned."""
    if pc & 3:
        return NO_BLOCK
    cold = h.blocks.get(pc)
    if not visits or cold.__class__ is not Cold:
        cold = h.blocks[pc] = Cold()
        return cold
    off = _code_offset(h, pc)
    if off < 0:
        return NO_BLOCK
    page = off >> 12
    if h.code_writes.get(page, 0) >= VOLATILE and visits < PATIENT:
        if visits == HOT:
            _watch_page(h, page, pc)  # the next write to the page starts the count again
        return cold
    instrs = _scan(h, pc, off)
    if not instrs:
        h.blocks[pc] = NO_BLOCK
        return NO_BLOCK
    key = (pc, tuple(ins for _, ins in instrs))
    if key not in _CODE and visits < COMPILE:
        return cold
    block = h.blocks[pc] = _build(h, key, instrs)
    _watch_page(h, page, pc)
    return block


def _code_offset(h: Hart, pc: int) -> int:
    """Where in RAM the code at `pc` is, or -1 when it cannot be fetched from RAM."""
    off = h.xtlb.get(pc >> 12)
    if off is not None:
        return off | (pc & 0xFFF)
    try:
        pa = h.translate(pc, FETCH)
    except Trap:
        return -1  # the interpreter will take the fault
    off = h.mem.ram_offset(pa)
    if off >= 0:
        h._fill(h.xtlb, pc, pa, FETCH)
    return off


def _scan(h: Hart, pc: int, off: int) -> list[tuple[int, Instr]]:
    out = []
    u32 = h.mem.u32
    while True:
        ins = decode(u32[off >> 2])
        if ins is None or ins.op not in SIMPLE:
            return out
        out.append((pc, ins))
        pc += 4
        off += 4
        if ins.op in TERMINATORS or len(out) >= MAX_BLOCK or not pc & 0xFFF:
            return out


def _watch_page(h: Hart, page: int, pc: int) -> None:
    """Make stores to a code page take the slow path, which drops the page's blocks."""
    users = h.code_pages.get(page)
    if users is None:
        users = h.code_pages[page] = []
        base = page << 12
        for _, wtlb, _, _ in h._caches.values():
            for vpn in [vpn for vpn, o in wtlb.items() if o == base]:
                del wtlb[vpn]
    users.append((h.blocks, pc))


# ----- code generation -----------------------------------------------------------------------

M = 0xFFFF_FFFF


def _s(r: int) -> str:
    return f"((x[{r}] ^ 0x80000000) - 0x80000000)"


REG_OPS = {
    "add": "(x[{a}] + x[{b}]) & M", "sub": "(x[{a}] - x[{b}]) & M",
    "sll": "(x[{a}] << (x[{b}] & 31)) & M", "srl": "x[{a}] >> (x[{b}] & 31)",
    "sra": "({sa} >> (x[{b}] & 31)) & M", "slt": "(1 if {sa} < {sb} else 0)",
    "sltu": "(1 if x[{a}] < x[{b}] else 0)", "xor": "x[{a}] ^ x[{b}]", "or": "x[{a}] | x[{b}]",
    "and": "x[{a}] & x[{b}]", "mul": "(x[{a}] * x[{b}]) & M",
    "mulh": "(({sa} * {sb}) >> 32) & M", "mulhsu": "(({sa} * x[{b}]) >> 32) & M",
    "mulhu": "(x[{a}] * x[{b}]) >> 32", "div": "div(x[{a}], x[{b}])",
    "divu": "divu(x[{a}], x[{b}])", "rem": "rem(x[{a}], x[{b}])", "remu": "remu(x[{a}], x[{b}])",
}
IMM_OPS = {
    "addi": "(x[{a}] + {i}) & M", "slti": "(1 if {sa} < {i} else 0)",
    "sltiu": "(1 if x[{a}] < {u} else 0)", "xori": "x[{a}] ^ {u}", "ori": "x[{a}] | {u}",
    "andi": "x[{a}] & {u}", "slli": "(x[{a}] << {i}) & M", "srli": "x[{a}] >> {i}",
    "srai": "({sa} >> {i}) & M",
}
BRANCH_CONDS = {"beq": "x[{a}] == x[{b}]", "bne": "x[{a}] != x[{b}]", "blt": "{sa} < {sb}",
                "bge": "{sa} >= {sb}", "bltu": "x[{a}] < x[{b}]", "bgeu": "x[{a}] >= x[{b}]"}
# loads: (view, index shift, size, signed); stores: (view, shift, size, value mask)
LOAD_VIEWS = {"lb": ("s8", 0, 1, True), "lbu": ("u8", 0, 1, False), "lh": ("s16", 1, 2, True),
              "lhu": ("u16", 1, 2, False), "lw": ("u32", 2, 4, False)}
STORE_VIEWS = {"sb": ("u8", 0, 1, 0xFF), "sh": ("u16", 1, 2, 0xFFFF), "sw": ("u32", 2, 4, M)}


def _build(h: Hart, key: tuple, instrs: list[tuple[int, Instr]]) -> Block:
    code = _CODE.get(key)
    if code is None:
        code = _compile(key, instrs)
    namespace = _namespace(h)
    exec(code, namespace)  # noqa: S102
    if len(instrs) == 1 and instrs[0][1].op in SPINNERS and instrs[0][1].imm == 0:
        return Spin(namespace["block"])
    return Block(namespace["block"], len(instrs))


# Compiling is most of a block's cost, and a grader runs thousands of machines whose programs
# share blocks (the trap handler, variations of one program): compile each once. The source is
# a function of the block's first pc and its instructions, so they are the key.
_CODE: dict[tuple, CodeType] = {}
CODE_CACHE_SIZE = 4096
# Blocks differ mostly in their numbers (registers, immediates, pcs): a block's *shape*, its
# source with each number replaced by a placeholder constant, is compiled once, and each block
# of that shape gets a copy of the code with its own numbers put in for the placeholders.
_SHAPES: dict[str, CodeType] = {}
_NUMBER = re.compile(r"(-?\b\d+\b)")  # decimal literals (the emitters write masks in hex)
_SLOT = 1 << 60  # above any number a block's source holds


def _compile(key: tuple, instrs: list[tuple[int, Instr]]) -> CodeType:
    if len(_CODE) >= CODE_CACHE_SIZE:
        _CODE.clear()
    if len(_SHAPES) >= CODE_CACHE_SIZE:
        _SHAPES.clear()
    parts = _NUMBER.split(block_source(instrs))  # text, number, text, ..., number, text
    numbers = parts[1::2]
    parts[1::2] = [str(_SLOT + k) for k in range(len(numbers))]
    shape = "".join(parts)
    module = _SHAPES.get(shape)
    if module is None:
        module = _SHAPES[shape] = compile(shape, "<block>", "exec")
    fill = {_SLOT + k: int(n) for k, n in enumerate(numbers)}
    name = f"<block {key[0]:#010x}>"
    if _slots(module) != fill.keys():  # the compiler folded a placeholder into another value
        code = _CODE[key] = compile(block_source(instrs), name, "exec")
        return code
    consts = tuple(c.replace(co_consts=tuple(fill.get(v, v) for v in c.co_consts),
                             co_filename=name) if isinstance(c, CodeType) else c
                   for c in module.co_consts)
    code = _CODE[key] = module.replace(co_consts=consts, co_filename=name)
    return code


def _slots(module: CodeType) -> set[int]:
    """The placeholders a compiled shape holds as constants."""
    return {c for f in (module, *(c for c in module.co_consts if isinstance(c, CodeType)))
            for c in f.co_consts if isinstance(c, int) and c >= _SLOT}


def block_source(instrs: list[tuple[int, Instr]]) -> str:
    """The Python source of a block: one function of the register file returning the next pc."""
    lines = ["def block(x):"]
    for idx, (pc, ins) in enumerate(instrs):
        lines += ["    " + line for line in _emit(pc, ins, idx)]
    last_pc, last = instrs[-1]
    if last.op not in TERMINATORS:
        lines.append(f"    return {last_pc + 4}")
    return "\n".join(lines)


def _namespace(h: Hart) -> dict:
    mem = h.mem
    caches = h.blocks  # if these are replaced, the TLB changed under the block: stop it

    def ld(a: int, size: int, signed: bool, pc: int, idx: int, rd: int) -> int:
        try:
            value = h.load(a, size, signed)
        except Trap as trap:
            raise BlockTrap(trap, pc, idx) from None
        if h.blocks is not caches:
            raise BlockExit(pc + 4, idx + 1, rd, value)
        return value

    def st(a: int, size: int, value: int, pc: int, idx: int) -> None:
        try:
            overwrote_code = h.store(a, size, value)
        except Trap as trap:
            raise BlockTrap(trap, pc, idx) from None
        if overwrote_code or h.blocks is not caches:
            raise BlockExit(pc + 4, idx + 1)

    return {"M": M, "rt": h.rtlb, "wt": h.wtlb, "ld": ld, "st": st, "u8": mem.u8, "s8": mem.s8,
            "u16": mem.u16, "s16": mem.s16, "u32": mem.u32, "div": alu.div, "divu": alu.divu,
            "rem": alu.rem, "remu": alu.remu, "BlockTrap": BlockTrap, "Trap": Trap}


def _emit(pc: int, i: Instr, idx: int) -> list[str]:
    f = {"a": i.rs1, "b": i.rs2, "sa": _s(i.rs1), "sb": _s(i.rs2), "i": i.imm, "u": i.imm & M}
    op = i.op
    if op in REG_OPS:
        return [f"x[{i.rd}] = " + REG_OPS[op].format(**f)] if i.rd else []
    if op in IMM_OPS:
        return [f"x[{i.rd}] = " + IMM_OPS[op].format(**f)] if i.rd else []
    if op in ("lui", "auipc"):
        value = (i.imm + (pc if op == "auipc" else 0)) & M
        return [f"x[{i.rd}] = {value}"] if i.rd else []
    if op in LOAD_VIEWS:
        return _emit_load(pc, i, idx)
    if op in STORE_VIEWS:
        return _emit_store(pc, i, idx)
    if op in BRANCH_CONDS:
        target = (pc + i.imm) & M
        return [f"if {BRANCH_CONDS[op].format(**f)}:", "    " + _goto(target, pc, idx),
                f"return {pc + 4}"]
    if op == "jal":
        target = (pc + i.imm) & M
        if target & 3:
            return [_goto(target, pc, idx)]
        return ([f"x[{i.rd}] = {pc + 4}"] if i.rd else []) + [f"return {target}"]
    if op == "jalr":
        return [f"t = (x[{i.rs1}] + {i.imm}) & 0xFFFFFFFE",
                f"if t & 2: raise BlockTrap(Trap({INSN_MISALIGNED}, t), {pc}, {idx})",
                *([f"x[{i.rd}] = {pc + 4}"] if i.rd else []), "return t"]
    assert op == "fence"
    return []


def _goto(target: int, pc: int, idx: int) -> str:
    if target & 3:  # a jump to a misaligned address traps on the jump itself
        return f"raise BlockTrap(Trap({INSN_MISALIGNED}, {target}), {pc}, {idx})"
    return f"return {target}"


def _emit_load(pc: int, i: Instr, idx: int) -> list[str]:
    view, shift, size, signed = LOAD_VIEWS[i.op]
    dest = f"x[{i.rd}]" if i.rd else "_"
    mask = " & M" if signed else ""
    misaligned = f" or a & {size - 1}" if size > 1 else ""
    return [f"a = (x[{i.rs1}] + {i.imm}) & M",
            "e = rt.get(a >> 12)",
            f"if e is None{misaligned}:",
            f"    {dest} = ld(a, {size}, {signed}, {pc}, {idx}, {i.rd})",
            "else:",
            f"    {dest} = {view}[(e | (a & 4095)) >> {shift}]{mask}"]


def _emit_store(pc: int, i: Instr, idx: int) -> list[str]:
    view, shift, size, mask = STORE_VIEWS[i.op]
    value = f"x[{i.rs2}]" if size == 4 else f"x[{i.rs2}] & {mask}"
    misaligned = f" or a & {size - 1}" if size > 1 else ""
    return [f"a = (x[{i.rs1}] + {i.imm}) & M",
            "e = wt.get(a >> 12)",
            f"if e is None{misaligned}:",
            f"    st(a, {size}, x[{i.rs2}], {pc}, {idx})",
            "else:",
            f"    {view}[(e | (a & 4095)) >> {shift}] = {value}"]
