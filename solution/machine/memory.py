"""Physical memory: RAM and the UART, and nothing else (any other address is an access fault).

RAM is an anonymous mmap, so untouched pages cost nothing, with typed views for the widths that
loads and stores use. The views are little-endian because the host is (checked at import).
"""

from __future__ import annotations

import mmap
import sys

from .board import RAM_BASE, UART_BASE, UART_SIZE
from .uart import Uart

assert sys.byteorder == "little", "the simulator relies on a little-endian host"


class PhysicalMemory:
    """The bus: `load`/`store` take a physical address and return None for an access fault."""

    def __init__(self, ram_size: int, ram: mmap.mmap | None = None) -> None:
        if ram_size <= 0 or ram_size % 4096 or RAM_BASE + ram_size > 1 << 32:
            raise ValueError(f"RAM size {ram_size:#x} must be a positive multiple of 4 KiB "
                             f"that fits below 4 GiB")
        self.ram_size = ram_size
        # `ram`: a mapping of at least ram_size bytes to use instead, such as one shared with
        # another process (the grader's hardware and a VMM in its sandbox)
        self.ram = mmap.mmap(-1, ram_size) if ram is None else ram
        view = memoryview(self.ram)[:ram_size]
        self.u8 = view
        self.s8 = view.cast("b")
        self.u16 = view.cast("H")
        self.s16 = view.cast("h")
        self.u32 = view.cast("I")
        self.console = bytearray()  # everything written to the UART (and the SBI console)
        self.uart = Uart(self.console)
        self.dirty: set[int] = set()  # RAM page numbers ever written (for snapshots)

    def ram_offset(self, pa: int) -> int:
        """The offset of `pa` in RAM, or -1 when it is not RAM."""
        off = pa - RAM_BASE
        return off if 0 <= off < self.ram_size else -1

    def load(self, pa: int, size: int, signed: bool = False) -> int | None:
        off = pa - RAM_BASE
        if 0 <= off <= self.ram_size - size:
            return _read(self, off, size, signed)
        if UART_BASE <= pa < UART_BASE + 8 and size == 1:
            return self.uart.read(pa - UART_BASE)
        if UART_BASE <= pa < UART_BASE + UART_SIZE and size == 1:
            return 0  # the rest of the UART's page reads as zero
        return None

    def store(self, pa: int, size: int, value: int) -> bool:
        off = pa - RAM_BASE
        if 0 <= off <= self.ram_size - size:
            _write(self, off, size, value)
            self.dirty.add(off >> 12)
            return True
        if UART_BASE <= pa < UART_BASE + UART_SIZE and size == 1:
            if pa < UART_BASE + 8:
                self.uart.write(pa - UART_BASE, value)
            return True
        return False

    def read_bytes(self, pa: int, n: int) -> bytes | None:
        """Raw RAM bytes (no devices), or None when the range is not all RAM."""
        off = pa - RAM_BASE
        if n < 0 or off < 0 or off + n > self.ram_size:
            return None
        return bytes(self.ram[off:off + n])

    def write_bytes(self, pa: int, data: bytes) -> bool:
        off = pa - RAM_BASE
        if off < 0 or off + len(data) > self.ram_size:
            return False
        self.ram[off:off + len(data)] = data
        self.dirty.update(range(off >> 12, (off + len(data) + 4095) >> 12))
        return True


def _read(mem: PhysicalMemory, off: int, size: int, signed: bool) -> int:
    if size == 4:
        return mem.u32[off >> 2] if not off & 3 else int.from_bytes(mem.ram[off:off + 4], "little")
    if size == 2:
        if off & 1:
            return int.from_bytes(mem.ram[off:off + 2], "little", signed=signed)
        return mem.s16[off >> 1] if signed else mem.u16[off >> 1]
    return mem.s8[off] if signed else mem.u8[off]


def _write(mem: PhysicalMemory, off: int, size: int, value: int) -> None:
    if size == 4 and not off & 3:
        mem.u32[off >> 2] = value & 0xFFFF_FFFF
    elif size == 2 and not off & 1:
        mem.u16[off >> 1] = value & 0xFFFF
    elif size == 1:
        mem.u8[off] = value & 0xFF
    else:
        mem.ram[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
