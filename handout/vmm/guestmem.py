"""Guest-physical memory: the guest's RAM, backed by host frames the VMM hands out on first use.

The guest sees RAM at 0x8000_0000 (of `size` bytes) and the UART at 0x1000_0000, exactly as on
the bare board. `host_address` is the VMM's map from guest-physical to host-physical addresses:
the second of the two page tables the lecture composes.
"""

from __future__ import annotations

from machine import Machine
from machine.board import RAM_BASE

from .frames import PAGE, FrameAllocator


class GuestMemory:
    def __init__(self, owner: str, size: int, frames: FrameAllocator, machine: Machine) -> None:
        if size <= 0 or size % PAGE:
            raise ValueError(f"guest memory size {size:#x} must be a positive multiple of 4 KiB")
        self.owner = owner
        self.base = RAM_BASE
        self.size = size
        self.frames = frames
        self.machine = machine
        self.map: dict[int, int] = {}  # guest page number -> host frame address

    def contains(self, gpa: int, n: int = 1) -> bool:
        """Is [gpa, gpa+n) all guest RAM?"""
        return n >= 0 and self.base <= gpa and gpa + n <= self.base + self.size

    def host_address(self, gpa: int, allocate: bool = True) -> int | None:
        """The host-physical address backing guest-physical `gpa`, or None if `gpa` is not
        guest RAM (or not yet backed, when `allocate` is False)."""
        if not self.contains(gpa):
            return None
        gpn = (gpa - self.base) // PAGE
        frame = self.map.get(gpn)
        if frame is None:
            if not allocate:
                return None
            frame = self.map[gpn] = self.frames.guest_frame(self.owner)
            self.machine.write_phys(frame, bytes(PAGE))
        return frame + gpa % PAGE

    def read(self, gpa: int, n: int) -> bytes:
        """Bytes of guest RAM; the caller has checked `contains(gpa, n)`."""
        out = bytearray()
        while n > 0:
            chunk = min(n, PAGE - gpa % PAGE)
            host = self.host_address(gpa, allocate=False)
            out += bytes(chunk) if host is None else self.machine.read_phys(host, chunk)
            gpa, n = gpa + chunk, n - chunk
        return bytes(out)

    def write(self, gpa: int, data: bytes) -> None:
        """Write guest RAM; the caller has checked `contains(gpa, len(data))`."""
        view = memoryview(data)
        while view:
            chunk = min(len(view), PAGE - gpa % PAGE)
            self.machine.write_phys(self.host_address(gpa), bytes(view[:chunk]))
            gpa, view = gpa + chunk, view[chunk:]

    def read_word(self, gpa: int) -> int:
        return int.from_bytes(self.read(gpa, 4), "little")

    def pages(self) -> dict[int, bytes]:
        """The non-zero pages of guest RAM by guest page number (for comparisons)."""
        out = {}
        for gpn, frame in sorted(self.map.items()):
            data = self.machine.read_phys(frame, PAGE)
            if data != ZERO_PAGE:  # (a byte compare: any(data) took 30 times as long)
                out[gpn] = data
        return out


ZERO_PAGE = bytes(PAGE)
