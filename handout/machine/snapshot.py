"""Snapshots: the whole architectural state of a hart and its memory, as a comparable value.

Two snapshots are equal exactly when the states are: registers, pc, privilege and V, every CSR,
the counters, the TLB's contents (stale entries are architecturally visible), RAM and the
console. `diff` names the fields that differ, first one first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .hart import Hart

CSR_FIELDS = ("sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc", "scause", "stval",
              "satp", "stimecmp", "hstatus", "htval", "htinst", "hgatp", "vsstatus", "vsatp")
ZERO_PAGE = bytes(4096)


@dataclass(frozen=True)
class Snapshot:
    regs: tuple[int, ...]
    pc: int
    mode: int
    v: int
    csrs: tuple[tuple[str, int], ...]
    instret: int
    idle: int
    tlb: frozenset
    pages: tuple[tuple[int, bytes], ...]  # non-zero RAM pages, by page number
    console: bytes
    uart: bytes  # the UART's registers and divisor latch

    def diff(self, other: Snapshot) -> list[str]:
        """Human-readable differences, e.g. ["x5: 0x1 != 0x2", "sepc: ..."]."""
        out: list[str] = []
        for i, (a, b) in enumerate(zip(self.regs, other.regs, strict=True)):
            if a != b:
                out.append(f"x{i}: {a:#x} != {b:#x}")
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "regs" or a == b:
                continue
            if f.name == "csrs":
                out += [f"{n}: {x:#x} != {y:#x}"
                        for (n, x), (_, y) in zip(a, b, strict=True) if x != y]
            elif f.name == "pages":
                out += _page_diff(dict(a), dict(b))
            elif isinstance(a, int):
                out.append(f"{f.name}: {a:#x} != {b:#x}")
            else:
                out.append(f"{f.name} differs")
        return out


def _page_diff(a: dict[int, bytes], b: dict[int, bytes]) -> list[str]:
    out = []
    for page in sorted(set(a) | set(b)):
        pa, pb = a.get(page, ZERO_PAGE), b.get(page, ZERO_PAGE)
        if pa != pb:
            off = next(i for i in range(4096) if pa[i] != pb[i])
            addr = 0x8000_0000 + page * 4096 + off
            out.append(f"memory at {addr:#010x}: {pa[off]:#04x} != {pb[off]:#04x}")
    return out


def capture(h: Hart) -> Snapshot:
    mem = h.mem
    pages = []
    for page in sorted(mem.dirty):
        data = bytes(mem.ram[page * 4096:(page + 1) * 4096])
        if data != ZERO_PAGE:
            pages.append((page, data))
    return Snapshot(tuple(h.x), h.pc, h.mode, h.v,
                    tuple((n, getattr(h, n)) for n in CSR_FIELDS), h.instret, h.idle,
                    frozenset(h.mmu.tlb.items()), tuple(pages), bytes(mem.console),
                    bytes(mem.uart.regs + mem.uart.divisor))


def restore(h: Hart, s: Snapshot) -> None:
    mem = h.mem
    for page in mem.dirty:
        mem.ram[page * 4096:(page + 1) * 4096] = ZERO_PAGE
    mem.dirty = set()
    for page, data in s.pages:
        mem.ram[page * 4096:(page + 1) * 4096] = data
        mem.dirty.add(page)
    mem.console[:] = s.console
    mem.uart.regs[:] = s.uart[:8]
    mem.uart.divisor[:] = s.uart[8:]
    h.x[:] = s.regs
    h.pc = s.pc
    for name, value in s.csrs:
        setattr(h, name, value)
    h.instret, h.idle = s.instret, s.idle
    h.mmu.tlb = dict(s.tlb)
    h.flush_fast()
    h.set_mode(s.mode, s.v)
