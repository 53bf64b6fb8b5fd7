# hello.S: the smallest guest. Prints through the UART and through the SBI, then shuts down.
# Runs unchanged on QEMU's virt board (tests/test_qemu.py boots it there, with a stand-in
# for OpenSBI, since Debian ships no 32-bit OpenSBI).

    .equ UART, 0x10000000
    .equ SBI_EXT_DBCN, 0x4442434E
    .equ SBI_EXT_SRST, 0x53525354

    .text
    .globl _start
_start:
    la a0, greeting
    li t0, UART
1:  lbu t1, 0(a0)              # write the greeting a byte at a time to the UART
    beqz t1, 2f
    sb t1, 0(t0)
    addi a0, a0, 1
    j 1b

2:  li a7, SBI_EXT_DBCN        # then the same through the SBI debug console
    li a6, 0                   # console_write(num_bytes, base_lo, base_hi)
    la a1, farewell
    la a0, farewell_end
    sub a0, a0, a1
    li a2, 0
    ecall

    li a7, SBI_EXT_SRST        # system_reset(shutdown, no reason)
    li a6, 0
    li a0, 0
    li a1, 0
    ecall
3:  j 3b                       # not reached

    .data
greeting:
    .asciz "hello from S-mode, through the UART\n"
farewell:
    .ascii "and goodbye through the SBI\n"
farewell_end:
