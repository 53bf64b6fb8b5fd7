"""vmlab's reference machine: one RV32IM hart with S and U modes, Sv32, and SBI firmware, on the
memory map of QEMU's `virt` board. Start with machine.py; the rest is one concept per file:

    board.py    the memory map            memory.py   RAM and the UART
    decode.py   instruction bits          execute.py  what each instruction does
    hart.py     state, traps, sret        csrs.py     CSR access and WARL rules
    mmu.py      Sv32, nested paging, TLB  sbi.py      the firmware
    blocks.py   the fast path             snapshot.py comparable machine states
    asm.py, disasm.py, loader.py, trace.py: the tools
"""

from .board import KERNEL_ENTRY, RAM_BASE, UART_BASE
from .errors import AsmError, LoadError, VmlabError
from .hart import S_MODE, U_MODE, TrapEvent
from .machine import Machine, Stop
from .program import Program, Segment
from .snapshot import Snapshot
from .traps import FETCH, LOAD, STORE, Trap

__all__ = ["KERNEL_ENTRY", "RAM_BASE", "UART_BASE", "AsmError", "LoadError", "VmlabError",
           "S_MODE", "U_MODE", "TrapEvent", "Machine", "Stop", "Program", "Segment", "Snapshot",
           "FETCH", "LOAD", "STORE", "Trap"]
