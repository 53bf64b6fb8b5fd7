# user.S: the U/K bit. The kernel (S-mode) drops to user mode with sret; the user program
# makes system calls with ecall, and a privileged instruction in user mode traps.

    .equ SBI_PUTCHAR, 1
    .equ SBI_SHUTDOWN, 8
    .equ SSTATUS_SPP, 0x100

    .text
    .globl _start
_start:
    la t0, trap_vector
    csrw stvec, t0
    li t0, SSTATUS_SPP
    csrc sstatus, t0           # sret will go to U-mode
    la t0, user_main
    csrw sepc, t0
    la sp, user_stack_top
    sret

# ----- the kernel's trap handler (S-mode) -----
trap_vector:
    csrr t0, scause
    li t1, 8                   # environment call from U-mode: a system call
    beq t0, t1, syscall
    li t1, 2                   # illegal instruction: the user tried a privileged one
    beq t0, t1, illegal
    j fail

syscall:                       # a0 = character to print, or -1 to exit
    li t1, -1
    beq a0, t1, exit
    li a7, SBI_PUTCHAR
    ecall
    csrr t0, sepc              # return past the ecall
    addi t0, t0, 4
    csrw sepc, t0
    sret

illegal:
    la a0, caught
    call puts
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret

exit:
    la a0, bye
    call puts
    li a7, SBI_SHUTDOWN
    ecall

fail:
    li a7, 0x53525354          # SRST: system failure
    li a6, 0
    li a0, 0
    li a1, 1
    ecall

puts:                          # print the string at a0 (kernel helper)
    mv t2, a0
1:  lbu a0, 0(t2)
    beqz a0, 2f
    li a7, SBI_PUTCHAR
    ecall
    addi t2, t2, 1
    j 1b
2:  ret

# ----- the user program (U-mode) -----
user_main:
    la s0, message
1:  lbu a0, 0(s0)
    beqz a0, 2f
    ecall                      # system call: print a0
    addi s0, s0, 1
    j 1b
2:  csrr t0, sstatus           # privileged: traps to the kernel
    li a0, -1
    ecall                      # system call: exit

    .data
message: .asciz "user mode says hi\n"
caught:  .asciz "kernel: user tried a privileged instruction\n"
bye:     .asciz "kernel: user exited\n"
    .align 4
    .space 1024
user_stack_top:
