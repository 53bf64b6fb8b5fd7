"""The virtual machine monitor. Start with monitor.py; one concept per file:

    monitor.py     guests, the world switch, the scheduler
    trap.py        trap and emulate (part 1)        hypercalls.py  the guest's SBI calls
    shadow.py      shadow page tables (part 2)      nested.py      nested paging (part 2)
    guestwalk.py   the guest's own page-table walk  guestmem.py    guest-physical memory
    channels.py    IPC over bounded buffers (part 3)
    vcpu.py        the virtual CPU   guest.py  a guest   frames.py  host frames   mmio.py  the UART
"""

from .guest import Guest
from .monitor import VMM

__all__ = ["VMM", "Guest"]
