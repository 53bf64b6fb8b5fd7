# sbi_shim.S: a minimal M-mode firmware standing in for OpenSBI in tests/test_qemu.py, which runs
# each guest on QEMU's virt board (RV32) and on our machine and compares the console output.
#
#   qemu-system-riscv32 -M virt -m 128M -bios shim.elf -kernel guest.elf ...
#
# QEMU's reset vector (0x1000) jumps to 0x8000_0000 in M-mode with a0 = hart id, a1 = the device
# tree, a2 = fw_dynamic_info. We boot the kernel like OpenSBI's fw_jump: S-mode at 0x8040_0000
# with a0 and a1 passed on and every other register zero (as our Machine.reset does), then
# answer its ecalls as solution/machine/sbi.py does. Output goes to the 16550 UART; shutdown to
# QEMU's sifive_test device, which makes QEMU exit with status 0 (shutdown), 1 (SRST system
# failure), 2 (SRST reboot: QEMU would reset and run the guest again) or 3 (an unexpected trap
# into this firmware).

    .equ RAM_BASE, 0x80000000
    .equ RAM_SIZE, 128 << 20        # -m 128M
    .equ KERNEL, 0x80400000
    .equ UART, 0x10000000
    .equ UART_LSR, 5
    .equ LSR_THRE, 0x20
    .equ TEST, 0x100000             # sifive_test: 0x5555 exit(0); (code << 16) | 0x3333 exit(code)
    .equ PASS, 0x5555
    .equ FAIL, 0x3333
    .equ STIMECMP, 0x14d            # CSR numbers (Sstc, menvcfgh)
    .equ STIMECMPH, 0x15d
    .equ MENVCFGH, 0x31a
    .equ EXT_BASE, 0x10
    .equ EXT_TIME, 0x54494d45
    .equ EXT_SRST, 0x53525354
    .equ EXT_DBCN, 0x4442434e
    .equ ERR_NOT_SUPPORTED, -2
    .equ ERR_INVALID_PARAM, -3

    .text
    .globl _start
_start:
    la t0, trap
    csrw mtvec, t0
    la t0, frame                    # where the trap handler saves the registers it uses
    csrw mscratch, t0
    li t0, -1                       # PMP: one NAPOT region over everything, R W X for S and U
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    li t0, ~(1 << 9)                # every exception to S-mode but the ecall from S-mode
    csrw medeleg, t0
    li t0, 0x222                    # SSIP, STIP, SEIP to S-mode
    csrw mideleg, t0
    li t0, -1
    csrw mcounteren, t0             # cycle, time, instret (and stimecmp) readable in S-mode
    csrw STIMECMPH, t0              # no timer until the kernel asks (our machine's reset value)
    csrw STIMECMP, t0
    li t0, 1 << 31                  # menvcfg.STCE (bit 63): Sstc on, stimecmp for S-mode
    csrs MENVCFGH, t0
    li t0, 3 << 11                  # mstatus.MPP = S
    csrc mstatus, t0
    li t0, 1 << 11
    csrs mstatus, t0
    li t0, KERNEL
    csrw mepc, t0
    .irp r, ra,sp,gp,tp,t0,t1,t2,s0,s1,a2,a3,a4,a5,a6,a7,s2,s3,s4,s5,s6,s7,s8,s9,s10,s11,t3,t4,t5,t6
    li \r, 0
    .endr
    mret

# ----- trap handler: only S-mode ecalls are expected here (a7 = extension, a6 = function) -----
# Every register but a0 and a1 is preserved; legacy calls change only a0.
trap:
    csrrw sp, mscratch, sp
    sw ra, 0(sp)
    sw t0, 4(sp)
    sw t1, 8(sp)
    sw t2, 12(sp)
    sw t3, 16(sp)
    sw t4, 20(sp)
    sw a1, 24(sp)                   # restored for the legacy calls
    csrr t0, mcause
    li t1, 9
    li ra, 3
    bne t0, t1, exit                # not an ecall from S-mode: exit(3)
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    call sbi
    li t0, 0x10
    bgeu a7, t0, 1f
    lw a1, 24(sp)
1:  lw ra, 0(sp)
    lw t0, 4(sp)
    lw t1, 8(sp)
    lw t2, 12(sp)
    lw t3, 16(sp)
    lw t4, 20(sp)
    csrrw sp, mscratch, sp
    mret

sbi:                                # a0, a1 = error, value (a0 alone for legacy calls)
    beqz a7, set_timer              # legacy set_timer(stime_value)
    li t0, 1
    beq a7, t0, legacy_putchar
    li t0, 2
    beq a7, t0, legacy_getchar
    li t0, 8
    beq a7, t0, shutdown            # legacy shutdown
    li t0, EXT_BASE
    beq a7, t0, base
    li t0, EXT_TIME
    bne a7, t0, 1f
    beqz a6, set_timer
1:  li t0, EXT_SRST
    bne a7, t0, 1f
    beqz a6, reset
1:  li t0, EXT_DBCN
    beq a7, t0, dbcn
not_supported:
    li a0, ERR_NOT_SUPPORTED
    li a1, 0
    ret

set_timer:                          # stimecmp = a1:a0, with no spurious interrupt on the way
    li t0, -1
    csrw STIMECMP, t0
    csrw STIMECMPH, a1
    csrw STIMECMP, a0
    j ok

legacy_putchar:
    mv t2, ra
    call putc
    mv ra, t2
    j ok

legacy_getchar:                     # there is never any input
    li a0, -1
    ret

base:
    li t0, 6                        # 0 spec version, 1 impl id, 2 impl version, 3 probe,
    bgtu a6, t0, not_supported      # 4-6 mvendorid, marchid, mimpid (0, as our machine says)
    slli t0, a6, 2
    la t1, base_values
    add t0, t0, t1
    lw a1, 0(t0)
    li t0, 3
    bne a6, t0, 2f
    la t1, extensions               # probe_extension(a0): 1 if a0 is in the table
    li a1, 0
1:  lw t0, 0(t1)
    beq t0, a0, found
    addi t1, t1, 4
    la t0, extensions_end
    bne t1, t0, 1b
    j 2f
found:
    li a1, 1
2:  li a0, 0
    ret

reset:                              # system_reset(type, reason)
    li t0, 2
    bgtu a0, t0, invalid
    li t0, 1
    bgtu a1, t0, invalid
    li ra, 1
    bnez a1, exit                   # reason: system failure
    li ra, 0
    beqz a0, exit                   # shutdown
    li ra, 2
    j exit                          # cold or warm reboot

dbcn:
    li t0, 1
    beq a6, t0, ok                  # console_read: nothing to read
    li t0, 2
    bne a6, t0, 1f
    mv t2, ra                       # console_write_byte(byte)
    call putc
    mv ra, t2
    j ok
1:  bnez a6, not_supported
    bnez a2, invalid                # console_write(num_bytes, base_lo, base_hi): RAM only
    li t0, RAM_BASE
    sub t0, a1, t0                  # offset in RAM
    li t1, RAM_SIZE
    bgtu t0, t1, invalid
    sub t1, t1, t0
    bgtu a0, t1, invalid
    mv t1, a1                       # t1 = next byte, a1 = the count to return
    add t0, a1, a0
    mv a1, a0
    mv t2, ra
2:  beq t1, t0, 3f
    lbu a0, 0(t1)
    call putc
    addi t1, t1, 1
    j 2b
3:  mv ra, t2
    li a0, 0
    ret

invalid:
    li a0, ERR_INVALID_PARAM
    li a1, 0
    ret
ok:                                 # a1 comes back for the legacy calls (see trap)
    li a0, 0
    li a1, 0
    ret

putc:                               # the byte in a0 to the UART, once it can take it
    li t3, UART
1:  lbu t4, UART_LSR(t3)
    andi t4, t4, LSR_THRE
    beqz t4, 1b
    sb a0, 0(t3)
    ret

shutdown:
    li ra, 0
exit:                               # QEMU exits with status ra
    li t0, TEST
    li t1, PASS
    beqz ra, 1f
    slli t1, ra, 16
    li t2, FAIL
    or t1, t1, t2
1:  sw t1, 0(t0)
2:  wfi
    j 2b

    .section .rodata
    .align 2
base_values:
    .word 2 << 24, 0x766d6c62, 1, 0, 0, 0, 0
extensions:
    .word EXT_BASE, EXT_TIME, EXT_SRST, EXT_DBCN, 0, 1, 2, 8
extensions_end:

    .bss
    .align 4
frame:
    .space 28
