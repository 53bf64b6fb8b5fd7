"""A flattened device tree (DTB) describing this board, as QEMU hands one to the kernel in a1.

Only what a kernel for `virt` looks for: memory, the one hart and its ISA, the UART, chosen.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from .board import RAM_BASE, UART_BASE, UART_SIZE

ISA = "rv32im_zicsr_zifencei_zicntr_sstc_svade"
TIMEBASE = 10_000_000  # what QEMU's virt reports; time here counts retired instructions


@lru_cache(maxsize=16)  # every machine and every guest gets one: build each size once
def build(ram_size: int) -> bytes:
    """The DTB for a board with `ram_size` bytes of RAM."""
    uart = f"serial@{UART_BASE:x}"
    tree = ("", [("#address-cells", 2), ("#size-cells", 2), ("compatible", "riscv-virtio"),
                 ("model", "riscv-virtio,qemu")], [
        ("chosen", [("stdout-path", f"/soc/{uart}")], []),
        (f"memory@{RAM_BASE:x}", [("device_type", "memory"),
                                  ("reg", [0, RAM_BASE, 0, ram_size])], []),
        ("cpus", [("#address-cells", 1), ("#size-cells", 0), ("timebase-frequency", TIMEBASE)], [
            ("cpu@0", [("device_type", "cpu"), ("reg", 0), ("status", "okay"),
                       ("compatible", "riscv"), ("riscv,isa", ISA), ("mmu-type", "riscv,sv32")], [
                ("interrupt-controller", [("#interrupt-cells", 1), ("interrupt-controller", b""),
                                          ("compatible", "riscv,cpu-intc")], []),
            ]),
        ]),
        ("soc", [("#address-cells", 2), ("#size-cells", 2), ("compatible", "simple-bus"),
                 ("ranges", b"")], [
            (uart, [("compatible", "ns16550a"), ("reg", [0, UART_BASE, 0, UART_SIZE]),
                    ("clock-frequency", 0x384000)], []),
        ]),
    ])
    strings = bytearray()
    struct_block = bytearray()
    _node(tree, struct_block, strings, {})
    struct_block += struct.pack(">I", 9)  # FDT_END
    rsvmap = bytes(16)  # an empty memory reservation block
    header_size = 40
    off_rsv = header_size
    off_struct = off_rsv + len(rsvmap)
    off_strings = off_struct + len(struct_block)
    total = off_strings + len(strings)
    header = struct.pack(">10I", 0xD00DFEED, total, off_struct, off_strings, off_rsv, 17, 16, 0,
                         len(strings), len(struct_block))
    return header + rsvmap + bytes(struct_block) + bytes(strings)


def _node(node: tuple, out: bytearray, strings: bytearray, offsets: dict[str, int]) -> None:
    name, props, children = node
    out += struct.pack(">I", 1) + _padded(name.encode() + b"\0")  # FDT_BEGIN_NODE
    for key, value in props:
        data = _value(value)
        if key not in offsets:
            offsets[key] = len(strings)
            strings += key.encode() + b"\0"
        out += struct.pack(">III", 3, len(data), offsets[key]) + _padded(data)  # FDT_PROP
    for child in children:
        _node(child, out, strings, offsets)
    out += struct.pack(">I", 2)  # FDT_END_NODE


def _value(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode() + b"\0"
    if isinstance(value, int):
        return struct.pack(">I", value)
    assert isinstance(value, list)
    return b"".join(struct.pack(">I", v) for v in value)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def load_address(ram_size: int, size: int) -> int:
    """Where the DTB goes: near the top of RAM, 2 MiB aligned as QEMU does (0x87e00000 for
    128 MiB), or 4 KiB aligned when RAM is too small for that."""
    top = RAM_BASE + ram_size
    align = 0x20_0000 if ram_size >= 16 << 20 else 0x1000
    return (top - size) & ~(align - 1)
