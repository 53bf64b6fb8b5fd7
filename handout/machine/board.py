"""The board: QEMU's `virt` memory map and OpenSBI's boot convention, for one RV32 hart."""

RAM_BASE = 0x8000_0000
RAM_SIZE_DEFAULT = 128 << 20  # QEMU's virt default
KERNEL_ENTRY = 0x8040_0000  # where OpenSBI (fw_jump) enters the S-mode kernel on RV32
UART_BASE = 0x1000_0000  # 16550-compatible; only the byte registers are modelled
UART_SIZE = 0x100
HART_ID = 0
PAGE_SIZE = 4096
