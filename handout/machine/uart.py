"""The 16550 UART, as much of it as a kernel touches to print: byte registers only.

Transmit (offset 0) sends a byte to the console, unless the divisor latch is open (LCR bit 7),
when offsets 0 and 1 are the baud-rate divisor instead, as kernels program it at boot. The line
status register always says "ready to send, nothing received"; there is never any input and no
interrupt. The bare machine and the VMM's emulated UART both use this model.
"""

from __future__ import annotations

THR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)
LCR_DLAB = 0x80
LSR_IDLE = 0x60  # THRE | TEMT
IIR_NO_INTERRUPT = 0x01
MSR_IDLE = 0xB0  # DCD | DSR | CTS, as QEMU's 16550 reads with nothing attached


class Uart:
    def __init__(self, console: bytearray) -> None:
        self.console = console
        self.regs = bytearray(8)  # IER, LCR, MCR, SCR keep what is written
        self.divisor = bytearray(2)

    def read(self, offset: int) -> int:
        if self.regs[LCR] & LCR_DLAB and offset in (THR, IER):
            return self.divisor[offset]
        if offset == LSR:
            return LSR_IDLE
        if offset == IIR:
            return IIR_NO_INTERRUPT
        if offset == MSR:
            return MSR_IDLE
        if offset in (IER, LCR, MCR, SCR):
            return self.regs[offset]
        return 0  # no byte has been received

    def write(self, offset: int, value: int) -> None:
        value &= 0xFF
        if self.regs[LCR] & LCR_DLAB and offset in (THR, IER):
            self.divisor[offset] = value
        elif offset == THR:
            self.console.append(value)
        elif offset in (IER, LCR, MCR, SCR):
            self.regs[offset] = value & (0x0F if offset == IER else 0xFF)
        # FCR (offset 2 on writes), LSR and MSR ignore writes
