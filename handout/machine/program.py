"""A loadable program: what the assembler, the ELF loader and the flat-binary loader produce."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Segment:
    """Bytes to place at a physical address before the hart starts."""

    addr: int
    data: bytes


@dataclass(frozen=True)
class SourceLine:
    """Where an instruction came from, so that traces and errors can point at it."""

    file: str
    line: int
    text: str


@dataclass
class Program:
    """Segments to load, where to start, and what the tools know about the source."""

    segments: list[Segment]
    entry: int
    symbols: dict[str, int] = field(default_factory=dict)
    lines: dict[int, SourceLine] = field(default_factory=dict)  # address -> source line
    name: str = "<program>"

    def end(self) -> int:
        """One past the highest address any segment covers."""
        return max((s.addr + len(s.data) for s in self.segments), default=self.entry)
