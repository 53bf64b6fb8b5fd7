"""Host physical frames: who owns each 4 KiB page of the host's RAM.

The VMM keeps the bottom of RAM for itself (its page tables and channel buffers) and hands guest
frames out of the rest in a scrambled order, so that guest-physical memory is neither
identity-mapped nor contiguous in host memory: a VMM that confuses the two breaks at once.
"""

from __future__ import annotations

from machine.board import RAM_BASE

PAGE = 4096


class OutOfFrames(Exception):
    pass


class FrameAllocator:
    def __init__(self, ram_size: int, vmm_reserved: int) -> None:
        self.vmm_next = RAM_BASE + PAGE * 16  # the first pages hold the host's boot data
        self.vmm_end = RAM_BASE + vmm_reserved
        first = vmm_reserved // PAGE
        count = ram_size // PAGE - first
        # a fixed permutation of the guest pool: stride by a number coprime with its size
        # (computed as they are handed out: a list of every frame cost more than most guests)
        self.first, self.count, self.stride = first, count, _coprime_stride(count)
        self.handed_out = 0
        self.owner: dict[int, str] = {}

    def vmm_frame(self) -> int:
        """A zeroed frame for the VMM's own structures (the caller zeroes it)."""
        if self.vmm_next >= self.vmm_end:
            raise OutOfFrames("the VMM's own memory is full")
        frame, self.vmm_next = self.vmm_next, self.vmm_next + PAGE
        self.owner[frame] = "vmm"
        return frame

    def vmm_frames(self, n: int, align: int = PAGE) -> int:
        """`n` contiguous VMM frames aligned to `align` bytes (for a 16 KiB G-stage root)."""
        start = -(-self.vmm_next // align) * align
        if start + n * PAGE > self.vmm_end:
            raise OutOfFrames("the VMM's own memory is full")
        self.vmm_next = start + n * PAGE
        for f in range(start, self.vmm_next, PAGE):
            self.owner[f] = "vmm"
        return start

    def guest_frame(self, owner: str) -> int:
        if self.handed_out == self.count:
            raise OutOfFrames("host RAM is full")
        i, self.handed_out = self.handed_out, self.handed_out + 1
        frame = RAM_BASE + (self.first + (i * self.stride) % self.count) * PAGE
        self.owner[frame] = owner
        return frame


def _coprime_stride(n: int) -> int:
    from math import gcd
    stride = 7919  # a prime, so coprime with n unless n is a multiple of it
    while gcd(stride, n) != 1:
        stride += 2
    return stride % n or 1
