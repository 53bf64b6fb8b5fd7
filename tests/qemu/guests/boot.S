# boot.S: prints what a kernel finds at boot and what the SBI answers, so that tests/test_qemu.py
# checks the boot convention, the S-mode CSRs' reset values, the SBI calls and the timer against
# QEMU, not only the console. Ends with an SRST system failure (the other guests shut down).

    .equ UART, 0x10000000
    .equ EXT_BASE, 0x10
    .equ EXT_TIME, 0x54494d45
    .equ EXT_SRST, 0x53525354
    .equ EXT_DBCN, 0x4442434e

    .macro sbi eid, fid                # a0, a1 = the call's error and value, printed
    li a7, \eid
    li a6, \fid
    ecall
    call put2
    .endm

    .macro csr num                     # a CSR's value, printed
    csrr a0, \num
    call puthex
    .endm

    .text
    .globl _start
_start:                                # a0 = hart id, a1 = device tree, everything else zero
    .irp r, x1,x2,x3,x4,x6,x7,x8,x9,x12,x13,x14,x15,x16,x17,x18,x19,x20,x21,x22,x23,x24,x25,x26,x27,x28,x29,x30,x31
    or t0, t0, \r
    .endr
    mv s0, t0
    call put2                          # hart id, device tree
    mv a0, s0
    call puthex                        # the other registers, or-ed together

    csr sstatus                        # the S-mode CSRs as the firmware leaves them
    csr sie
    csr sip
    csr satp
    csr stvec
    csr sscratch
    csr sepc
    csr scause
    csr stval
    csr scounteren
    csr 0x14d                          # stimecmp: no timer yet (all ones)
    csr 0x15d                          # stimecmph

    sbi EXT_BASE, 0                    # spec version
    sbi EXT_BASE, 1                    # implementation id
    sbi EXT_BASE, 2                    # implementation version
    sbi EXT_BASE, 4                    # mvendorid
    sbi EXT_BASE, 5                    # marchid
    sbi EXT_BASE, 6                    # mimpid
    sbi EXT_BASE, 7                    # no such function
    la s1, probes                      # probe_extension for each id in the table
1:  lw a0, 0(s1)
    sbi EXT_BASE, 3
    addi s1, s1, 4
    la t0, probes_end
    bne s1, t0, 1b
    sbi 0x735049, 0                    # PMU: not supported

    li a0, 'D'                         # the debug console
    sbi EXT_DBCN, 2                    # console_write_byte
    li a0, 1
    la a1, bang
    li a2, 0
    sbi EXT_DBCN, 0                    # console_write from RAM
    li a0, 1
    li a1, 0x1000                      # not RAM
    li a2, 0
    sbi EXT_DBCN, 0
    li a0, 1
    la a1, bang
    li a2, 1                           # above 4 GiB
    sbi EXT_DBCN, 0
    li a0, 2                           # runs off the end of RAM
    li a1, 0x87ffffff
    li a2, 0
    sbi EXT_DBCN, 0
    li a0, 0
    li a1, 0x88000000                  # nothing, at the end of RAM
    sbi EXT_DBCN, 0
    li a0, 4
    la a1, bang
    li a2, 0
    sbi EXT_DBCN, 1                    # console_read: never any input
    sbi EXT_DBCN, 3                    # no such function
    li a0, 3
    li a1, 0
    sbi EXT_SRST, 0                    # no such reset type
    li a0, 0
    li a1, 2
    sbi EXT_SRST, 0                    # no such reason
    sbi EXT_SRST, 1                    # no such function
    sbi EXT_TIME, 1                    # no such function

    li a1, 0x1234                      # legacy calls change a0 only
    li a7, 2                           # console_getchar: no input
    ecall
    call put2
    li a1, 0x1234
    li a7, 3                           # a legacy extension nobody implements
    ecall
    call put2
    li a0, 'L'
    li a1, 0x1234
    li a7, 1                           # console_putchar
    ecall
    call put2

    .irp n, 3,4,6,7,8,9,12,13,14,15,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    li x\n, \n                         # an ecall keeps every register but a0 and a1
    .endr
    li a7, EXT_BASE
    li a6, 0
    ecall
    li t0, 0
    .irp n, 3,4,6,7,8,9,12,13,14,15,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    addi t0, t0, -\n
    add t0, t0, x\n
    .endr
    mv a0, t0
    call puthex                        # zero: all kept
    mv a0, a6
    call puthex                        # 0
    mv a0, a7
    call puthex                        # 0x10

    la t0, trap                        # the timer, through the SBI and then through Sstc
    csrw stvec, t0
    li t0, 0x20
    csrs sie, t0                       # STIE; sstatus.SIE stays clear until wfi wakes up
    rdtime a0
    addi a0, a0, 1000
    li a1, 0
    sbi EXT_TIME, 0
    call wait
    csr sip
    rdtime t0
    li t1, -1
    csrw 0x14d, t1
    csrw 0x15d, zero
    addi t0, t0, 1000
    csrw 0x14d, t0
    call wait
    rdtime a0
    addi a0, a0, 1000
    li a1, 0
    li a7, 0                           # legacy set_timer
    ecall
    call put2
    call wait
    csr sip

    li a0, 0                           # system_reset(shutdown, system failure)
    li a1, 1
    li a7, EXT_SRST
    li a6, 0
    ecall
2:  j 2b

wait:                                  # wait for the timer interrupt, then take it
    wfi
    csrsi sstatus, 2
    csrci sstatus, 2
    la t0, ticks
    lw t0, 0(t0)
    beqz t0, wait
    la t0, ticks
    sw zero, 0(t0)
    ret

trap:                                  # print scause and sstatus, disarm the timer
    csrr a0, scause
    mv s2, ra
    call puthex
    csr sstatus
    mv ra, s2
    li t0, -1
    csrw 0x14d, t0
    csrw 0x15d, t0
    li t0, 1
    la t1, ticks
    sw t0, 0(t1)
    sret

put2:                                  # print a0 and a1
    mv s3, ra
    mv s4, a1
    call puthex
    mv a0, s4
    mv ra, s3
puthex:                                # print a0 in hex and a space, through the UART
    li t0, UART
    li t1, 28
1:  srl t2, a0, t1
    andi t2, t2, 15
    addi t2, t2, '0'
    li t3, '9'
    ble t2, t3, 2f
    addi t2, t2, 'a' - '9' - 1
2:  lbu t3, 5(t0)                      # wait for the line status register's THRE
    andi t3, t3, 0x20
    beqz t3, 2b
    sb t2, 0(t0)
    addi t1, t1, -4
    bgez t1, 1b
    li t2, ' '
    sb t2, 0(t0)
    ret

    .data
probes:
    .word EXT_BASE, EXT_TIME, EXT_SRST, EXT_DBCN, 0, 1, 2, 3, 8, 0x48534d, 0x735049
probes_end:
bang:
    .ascii "!"
    .align 2
ticks:
    .word 0
