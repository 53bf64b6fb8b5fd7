# kernel.S: a small kernel with two user processes, in the manner of xv6. It shows the lecture's
# U/K bit and page-table register (PTR): the kernel runs in S-mode, mapped with U=0; each process
# runs in U-mode in its own Sv32 address space, its data page at the same virtual address as the
# other's but on another physical page (the code page is shared, read-only). The processes take
# turns on the `yield` system call and on the timer; they print through the `write` system call;
# the first touch of a page of their heap or stack faults, and the kernel maps a fresh page and
# lets them retry.
#
# The output is the same whatever the timer does, so that it is the same on any hardware (QEMU's
# timer runs on the host's clock): the console is handed out in turns, passed on by yield and
# exit, and a process that writes out of turn waits. The kernel does not print how often the
# timer preempted a process (that is in n_preempts and n_switches, for whoever looks).

    .equ SBI_EXT_TIME, 0x54494D45  # set_timer(stime_value)
    .equ SBI_EXT_SRST, 0x53525354  # system_reset(type, reason)
    .equ SBI_EXT_DBCN, 0x4442434E  # console_write(num_bytes, base_lo, base_hi)

    .equ SSTATUS_SPP, 1 << 8
    .equ SSTATUS_SUM, 1 << 18      # S-mode may touch U=1 pages
    .equ SIE_STIE, 1 << 5
    .equ SATP_SV32, 1 << 31
    .equ CAUSE_ECALL_U, 8
    .equ CAUSE_LOAD_PAGE_FAULT, 13
    .equ CAUSE_STORE_PAGE_FAULT, 15

    .equ PTE_V, 1
    .equ PTE_R, 2
    .equ PTE_W, 4
    .equ PTE_X, 8
    .equ PTE_U, 16
    .equ PTE_A, 64                 # Svade: the hardware faults rather than set A and D,
    .equ PTE_D, 128                # so every leaf is made with them already set
    .equ PAGE, 4096

    # The kernel: one 4 MiB megapage, identity-mapped, U=0. It holds the whole image.
    .equ KERNEL_BASE, 0x80400000
    .equ KERNEL_PTE, (KERNEL_BASE >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D

    # A process's address space: everything below 4 MiB, so one second-level table covers it.
    .equ USER_TEXT, 0x00010000     # the user program (shared by both processes, read-only)
    .equ USER_DATA, 0x00020000     # the process's own data page
    .equ USER_HEAP, 0x00030000     # heap and stack: mapped on first touch, a page at a time
    .equ USER_STACK_TOP, 0x00040000
    .equ USER_TOP, 0x00400000
    .equ D_N, 0                    # a data page: n, the size of the process's computation,
    .equ D_TAG, 4                  # "[A] ", the tag of its lines,
    .equ D_MSG, 8                  # and "[A] round 0\n", whose digit it bumps each round
    .equ D_ROUND, D_MSG + 10
    .equ MSG_LEN, 12

    .equ SYS_WRITE, 64             # system call numbers (in a7), as Linux's
    .equ SYS_EXIT, 93
    .equ SYS_YIELD, 124

    .equ QUANTUM, 5000             # timer ticks a process may run before the other's turn
    .equ KBUF_SIZE, 128            # the most one write prints (so a buffer spans <= 2 pages)
    .equ POOL_PAGES, 4             # free pages for the processes' heaps and stacks

    # A process: its trap frame (the pc, then x1..x31 at 4*i), then the kernel's bookkeeping.
    .equ P_PC, 0
    .equ P_SP, 2 * 4
    .equ P_A0, 10 * 4
    .equ P_A1, 11 * 4
    .equ P_A7, 17 * 4
    .equ P_STATE, 128              # EXITED, RUNNABLE or WAITING (for its turn at the console)
    .equ P_SATP, 132               # its page-table register
    .equ P_ROOT, 136               # its page tables, data page and name
    .equ P_L0, 140
    .equ P_DATA, 144
    .equ P_NAME, 148
    .equ P_SIZE, 152
    .equ NPROC, 2
    .equ EXITED, 0
    .equ RUNNABLE, 1
    .equ WAITING, 2

    .text
    .globl _start
_start:
    la sp, kstack_top
    la t0, trap_vector
    csrw stvec, t0
    csrw sscratch, zero            # sscratch = 0 while in the kernel (see trap_vector)
    li t0, SSTATUS_SPP
    csrc sstatus, t0               # sret goes to U-mode
    la a0, banner
    call kputs

    la s0, procs                   # build each process's page tables (the MMU is still off)
    li s1, NPROC
1:  lw t0, P_ROOT(s0)
    lw t1, P_L0(s0)
    li t2, KERNEL_BASE >> 22 << 2
    add t2, t0, t2
    li t3, KERNEL_PTE              # the kernel, U=0: in every address space, but only for S-mode
    sw t3, 0(t2)
    srli t2, t1, 12
    slli t2, t2, 10
    ori t2, t2, PTE_V              # the user's 4 MiB go through the process's own l0 table
    sw t2, 0(t0)
    la t2, user_text
    srli t2, t2, 12
    slli t2, t2, 10
    ori t2, t2, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A
    sw t2, (USER_TEXT >> 12) * 4(t1)
    lw t2, P_DATA(s0)
    srli t2, t2, 12
    slli t2, t2, 10
    ori t2, t2, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
    sw t2, (USER_DATA >> 12) * 4(t1)
    srli t2, t0, 12
    li t3, SATP_SV32
    or t2, t2, t3
    sw t2, P_SATP(s0)              # the value for the PTR when this process runs
    li t2, USER_TEXT
    sw t2, P_PC(s0)                # it starts at the top of the user program
    li t2, USER_STACK_TOP
    sw t2, P_SP(s0)                # with an empty stack, not mapped yet
    addi s0, s0, P_SIZE
    addi s1, s1, -1
    bnez s1, 1b

    li t0, SIE_STIE
    csrs sie, t0                   # timer interrupts: taken whenever the CPU is in U-mode
    la s0, procs
    lw t0, P_SATP(s0)              # paging on: the kernel's own megapage keeps it running
    csrw satp, t0
    sfence.vma
    la t0, current
    sw s0, 0(t0)
    call set_timer
    j resume                       # into process A

# ----- trap entry and exit ---------------------------------------------------------------------
# In U-mode, sscratch holds the current process, whose trap frame the registers are saved in.
# The kernel runs on one kernel stack and never sleeps inside a trap: each trap ends with sret to
# a process (one that must wait runs its ecall again when it is its turn).

trap_vector:
    csrrw a0, sscratch, a0         # a0 = the process; sscratch = its a0
    beqz a0, kernel_trap           # sscratch was 0: the trap came from the kernel itself
    sw ra, 1 * 4(a0)
    sw sp, 2 * 4(a0)
    sw gp, 3 * 4(a0)
    sw tp, 4 * 4(a0)
    sw t0, 5 * 4(a0)
    sw t1, 6 * 4(a0)
    sw t2, 7 * 4(a0)
    sw s0, 8 * 4(a0)
    sw s1, 9 * 4(a0)
    sw a1, 11 * 4(a0)
    sw a2, 12 * 4(a0)
    sw a3, 13 * 4(a0)
    sw a4, 14 * 4(a0)
    sw a5, 15 * 4(a0)
    sw a6, 16 * 4(a0)
    sw a7, 17 * 4(a0)
    sw s2, 18 * 4(a0)
    sw s3, 19 * 4(a0)
    sw s4, 20 * 4(a0)
    sw s5, 21 * 4(a0)
    sw s6, 22 * 4(a0)
    sw s7, 23 * 4(a0)
    sw s8, 24 * 4(a0)
    sw s9, 25 * 4(a0)
    sw s10, 26 * 4(a0)
    sw s11, 27 * 4(a0)
    sw t3, 28 * 4(a0)
    sw t4, 29 * 4(a0)
    sw t5, 30 * 4(a0)
    sw t6, 31 * 4(a0)
    csrr t0, sscratch
    sw t0, P_A0(a0)
    csrw sscratch, zero            # in the kernel now
    csrr t0, sepc
    sw t0, P_PC(a0)
    mv s0, a0                      # s0 = the current process, for the whole trap
    la sp, kstack_top

    csrr t0, scause
    bltz t0, timer_interrupt       # the interrupt bit: the timer is the only interrupt enabled
    li t1, CAUSE_ECALL_U
    beq t0, t1, syscall
    li t1, CAUSE_LOAD_PAGE_FAULT
    beq t0, t1, page_fault
    li t1, CAUSE_STORE_PAGE_FAULT
    beq t0, t1, page_fault
    j kill

resume:                            # back to U-mode in process s0, at its saved pc
    lw t0, P_PC(s0)
    csrw sepc, t0
    csrw sscratch, s0              # where its next trap will save its registers
    mv a0, s0
    lw ra, 1 * 4(a0)
    lw sp, 2 * 4(a0)
    lw gp, 3 * 4(a0)
    lw tp, 4 * 4(a0)
    lw t0, 5 * 4(a0)
    lw t1, 6 * 4(a0)
    lw t2, 7 * 4(a0)
    lw s0, 8 * 4(a0)
    lw s1, 9 * 4(a0)
    lw a1, 11 * 4(a0)
    lw a2, 12 * 4(a0)
    lw a3, 13 * 4(a0)
    lw a4, 14 * 4(a0)
    lw a5, 15 * 4(a0)
    lw a6, 16 * 4(a0)
    lw a7, 17 * 4(a0)
    lw s2, 18 * 4(a0)
    lw s3, 19 * 4(a0)
    lw s4, 20 * 4(a0)
    lw s5, 21 * 4(a0)
    lw s6, 22 * 4(a0)
    lw s7, 23 * 4(a0)
    lw s8, 24 * 4(a0)
    lw s9, 25 * 4(a0)
    lw s10, 26 * 4(a0)
    lw s11, 27 * 4(a0)
    lw t3, 28 * 4(a0)
    lw t4, 29 * 4(a0)
    lw t5, 30 * 4(a0)
    lw t6, 31 * 4(a0)
    lw a0, 10 * 4(a0)              # last: it pointed at the frame
    sret                           # U-mode (SPP = 0)

kernel_trap:                       # a trap in the kernel is a kernel bug: stop the machine
    la a0, panic
    call kputs
    li a7, SBI_EXT_SRST
    li a6, 0
    li a0, 0
    li a1, 1                       # shutdown, for a system failure
    ecall

# ----- the scheduler: round robin; each switch starts a fresh time slice --------------------

timer_interrupt:                   # the process ran a whole time slice: the next one's turn
    la t0, n_preempts
    lw t1, 0(t0)
    addi t1, t1, 1
    sw t1, 0(t0)
    # fall through

schedule:                          # run the next runnable process after s0 (s0 itself last)
    mv a0, s0
1:  call next_process
    lw t0, P_STATE(a0)
    li t1, RUNNABLE
    beq t0, t1, switch_to
    bne a0, s0, 1b
    j all_done                     # none: all have exited (whoever has the turn never waits)

switch_to:                         # a0 = the process to run
    beq a0, s0, 1f
    mv s0, a0
    lw t0, P_SATP(s0)              # the PTR: from now on, its address space
    csrw satp, t0
    sfence.vma                     # forget the other's translations (the TLB keeps them)
    la t0, current
    sw s0, 0(t0)
    la t0, n_switches
    lw t1, 0(t0)
    addi t1, t1, 1
    sw t1, 0(t0)
1:  call set_timer
    j resume

next_process:                      # a0 = the process after a0 in the table, round robin
    addi a0, a0, P_SIZE
    la t0, procs_end
    bltu a0, t0, 1f
    la a0, procs
1:  ret

pass_turn:                         # if s0 has the console, the next live process gets it
    la t3, turn
    lw t0, 0(t3)
    bne t0, s0, 3f                 # not ours to give
    mv t4, ra
    mv a0, s0
1:  call next_process              # s0 itself comes last: alone, it keeps the turn
    lw t0, P_STATE(a0)
    bnez t0, 2f
    bne a0, s0, 1b
    j 3f                           # no one is left to give it to
2:  sw a0, 0(t3)
    li t0, RUNNABLE                # if it was waiting for the turn, it can go on now
    sw t0, P_STATE(a0)
3:  mv ra, t4
    ret

set_timer:                         # the timer interrupt comes one quantum from now
1:  rdtimeh a1
    rdtime a0
    rdtimeh t0
    bne a1, t0, 1b                 # the low half wrapped between the reads: again
    li t0, QUANTUM
    add a0, a0, t0
    sltu t0, a0, t0                # carry into the high half
    add a1, a1, t0
    li a7, SBI_EXT_TIME
    li a6, 0
    ecall                          # also clears a pending timer interrupt
    ret

all_done:
    la a0, summary1
    call kputs
    la t0, n_syscalls
    lw a0, 0(t0)
    call kputdec
    la a0, summary2
    call kputs
    la t0, n_faults
    lw a0, 0(t0)
    call kputdec
    la a0, summary3
    call kputs
    li a7, SBI_EXT_SRST
    li a6, 0
    li a0, 0                       # shutdown
    li a1, 0                       # no reason
    ecall

# ----- system calls: a7 = number, a0.. = arguments, result in a0 --------------------------

syscall:
    lw t0, P_A7(s0)
    li t1, SYS_WRITE
    beq t0, t1, sys_write
    li t1, SYS_YIELD
    beq t0, t1, sys_yield
    li t1, SYS_EXIT
    beq t0, t1, sys_exit
    call served
    li t0, -1                      # no such system call
    sw t0, P_A0(s0)
    j resume

served:                            # the system call is done: return past the ecall, count it
    lw t0, P_PC(s0)
    addi t0, t0, 4
    sw t0, P_PC(s0)
    la t0, n_syscalls
    lw t1, 0(t0)
    addi t1, t1, 1
    sw t1, 0(t0)
    ret

sys_yield:                         # yield(): the console and the CPU go to the other process
    call served
    sw zero, P_A0(s0)
    call pass_turn
    j schedule

sys_write:                         # write(buf, len): print len bytes of the user's memory
    la t0, turn
    lw t0, 0(t0)
    beq t0, s0, 4f
    li t0, WAITING                 # not our turn at the console: wait for it, and run the
    sw t0, P_STATE(s0)             # ecall again then (the pc stays on it)
    j schedule
4:  call served
    lw s1, P_A0(s0)
    lw s2, P_A1(s0)
    li t0, KBUF_SIZE
    bgtu s2, t0, 2f
    beqz s2, 1f
    mv a0, s1                      # the first and the last byte must be on user pages that
    call user_readable             # are mapped: the copy below must not fault in the kernel
    beqz a0, 2f
    add a0, s1, s2
    addi a0, a0, -1
    call user_readable
    beqz a0, 2f
    li t3, SSTATUS_SUM
    csrs sstatus, t3               # let the kernel touch U=1 pages, for the copy only
    la t0, kbuf
    mv t1, s1
    add t2, s1, s2
3:  lbu a0, 0(t1)
    sb a0, 0(t0)
    addi t0, t0, 1
    addi t1, t1, 1
    bltu t1, t2, 3b
    csrc sstatus, t3
    mv a0, s2
    la a1, kbuf
    call kwrite
1:  sw s2, P_A0(s0)                # bytes written
    j resume
2:  li t0, -1                      # a bad buffer
    sw t0, P_A0(s0)
    j resume

user_readable:                     # a0 = 1 if va a0 is on a page s0's U-mode may read, else 0
    li t0, USER_TOP
    bgeu a0, t0, 1f
    lw t0, P_L0(s0)
    srli t1, a0, 12
    slli t1, t1, 2
    add t0, t0, t1
    lw t0, 0(t0)
    andi t0, t0, PTE_V | PTE_R | PTE_U
    addi t0, t0, -(PTE_V | PTE_R | PTE_U)
    seqz a0, t0
    ret
1:  li a0, 0
    ret

sys_exit:                          # exit(status)
    call served
    la a0, exit1
    call kputs
    lw a0, P_NAME(s0)
    call kputs
    la a0, exit2
    call kputs
    lw a0, P_A0(s0)
    call kputdec
    la a0, newline
    call kputs
    # fall through

exited:                            # s0 is gone: its turn at the console passes on
    li t0, EXITED
    sw t0, P_STATE(s0)
    call pass_turn
    j schedule

# ----- faults ----------------------------------------------------------------------------------

page_fault:                        # a heap or stack page touched for the first time: map it
    csrr s1, stval
    li t0, USER_HEAP
    bltu s1, t0, kill
    li t0, USER_STACK_TOP
    bgeu s1, t0, kill
    la t0, next_free
    lw s2, 0(t0)
    la t1, pool_end
    bgeu s2, t1, kill              # out of memory
    li t1, PAGE
    add t1, s2, t1
    sw t1, 0(t0)
    mv t0, s2                      # a fresh page holds nothing of anyone else's
1:  sw zero, 0(t0)
    sw zero, 4(t0)
    sw zero, 8(t0)
    sw zero, 12(t0)
    addi t0, t0, 16
    bltu t0, t1, 1b
    srli t0, s2, 12
    slli t0, t0, 10
    ori t0, t0, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
    lw t1, P_L0(s0)
    srli t2, s1, 12
    slli t2, t2, 2
    add t1, t1, t2
    sw t0, 0(t1)
    sfence.vma s1                  # the TLB may have kept the invalid entry: drop it
    la t0, n_faults
    lw t1, 0(t0)
    addi t1, t1, 1
    sw t1, 0(t0)
    j resume                       # the same pc: the access runs again, and succeeds

kill:                              # any other trap from U-mode: the process dies, not the kernel
    la a0, killed1
    call kputs
    lw a0, P_NAME(s0)
    call kputs
    la a0, killed2
    call kputs
    csrr a0, scause
    call kputdec
    la a0, newline
    call kputs
    j exited

# ----- console helpers (the kernel prints through the SBI debug console) ------------------

kputs:                             # print the NUL-terminated string at a0
    mv a1, a0
1:  lbu t0, 0(a0)
    beqz t0, 2f
    addi a0, a0, 1
    j 1b
2:  sub a0, a0, a1                 # its length
    # fall through

kwrite:                            # print a0 bytes at a1 (identity-mapped: a physical address)
    li a2, 0
    li a7, SBI_EXT_DBCN
    li a6, 0
    ecall
    ret

kputdec:                           # print a0 in decimal
    la a1, kdigits_end
    li t1, 10
1:  remu t0, a0, t1
    addi t0, t0, '0'
    addi a1, a1, -1
    sb t0, 0(a1)
    divu a0, a0, t1
    bnez a0, 1b
    la a0, kdigits_end
    sub a0, a0, a1
    j kwrite

# ----- the user program: one page, mapped at USER_TEXT (U=1, R X) in both processes -------

    .align 12
user_text:
    li s0, USER_DATA               # our data page: same address as the other's, another page
    li s1, 3
1:  lbu t0, D_ROUND(s0)            # count the round in our own copy of the message
    addi t0, t0, 1
    sb t0, D_ROUND(s0)
    addi a0, s0, D_MSG             # write(message, its length)
    li a1, MSG_LEN
    li a7, SYS_WRITE
    ecall
    li a7, SYS_YIELD               # the other process's turn
    ecall
    addi s1, s1, -1
    bnez s1, 1b

    lw s3, D_N(s0)                 # compute: count the primes below n with a sieve, long
    li s2, USER_HEAP               # enough for the timer to preempt us; one byte per number,
    li s4, 0                       # 0 = maybe prime, in a heap page not mapped yet
    li t0, 2
2:  bgeu t0, s3, 5f
    add t1, s2, t0
    lbu t2, 0(t1)                  # the first of these faults: the kernel maps the page
    bnez t2, 4f
    addi s4, s4, 1                 # t0 is prime: cross out its multiples from t0 * t0
    mul t1, t0, t0
    li t3, 1
3:  bgeu t1, s3, 4f
    add t2, s2, t1
    sb t3, 0(t2)
    add t1, t1, t0
    j 3b
4:  addi t0, t0, 1
    j 2b

5:  addi a0, s0, D_TAG             # "[A] 309 primes below 2048\n"
    li a1, 4
    li a7, SYS_WRITE
    ecall
    mv a0, s4
    li a1, ' '
    call print_number
    la a0, primes_below
    li a1, 13
    li a7, SYS_WRITE
    ecall
    mv a0, s3
    li a1, '\n'
    call print_number
    li a0, 0
    li a7, SYS_EXIT
    ecall

print_number:                      # write a0 in decimal, then the character a1
    addi sp, sp, -16               # the digits go on the stack, from its end
    addi t0, sp, 15
    sb a1, 0(t0)                   # the first touch of the stack faults: the kernel maps it
    li t1, 10
1:  remu t2, a0, t1
    addi t2, t2, '0'
    addi t0, t0, -1
    sb t2, 0(t0)
    divu a0, a0, t1
    bnez a0, 1b
    mv a0, t0
    addi a1, sp, 16
    sub a1, a1, t0
    li a7, SYS_WRITE
    ecall
    addi sp, sp, 16
    ret

primes_below:
    .ascii "primes below "
user_text_end:

# ----- the kernel's data -----------------------------------------------------------------------

    .data
    .align 2
procs:
    .space 128                     # process A: trap frame,
    .word RUNNABLE, 0              # state, satp,
    .word root_a, l0_a, data_a, name_a
    .space 128                     # process B
    .word RUNNABLE, 0
    .word root_b, l0_b, data_b, name_b
procs_end:
current:    .word 0                # the process running (for whoever inspects the kernel)
turn:       .word procs            # whose turn it is at the console: A's first
next_free:  .word pool             # the next free page
n_syscalls: .word 0
n_faults:   .word 0
n_preempts: .word 0
n_switches: .word 0

name_a:   .asciz "A"
name_b:   .asciz "B"
banner:   .asciz "kernel: two user processes, A and B, each in its own address space\n"
exit1:    .asciz "kernel: process "
exit2:    .asciz " exited with status "
killed1:  .asciz "kernel: killed process "
killed2:  .asciz ": trap cause "
summary1: .asciz "kernel: all processes have exited after "
summary2: .asciz " system calls and "
summary3: .asciz " page faults\n"
panic:    .asciz "kernel: panic: a trap in the kernel\n"
newline:  .asciz "\n"

    # Each process's data page, mapped at USER_DATA (see D_N, D_TAG, D_MSG).
    .align 12
data_a:
    .word 2048
    .ascii "[A] "
    .ascii "[A] round 0\n"
    .align 12
data_b:
    .word 4096
    .ascii "[B] "
    .ascii "[B] round 0\n"

    .bss
    .align 12
root_a: .space PAGE                # page tables: a root and one second-level table each
l0_a:   .space PAGE
root_b: .space PAGE
l0_b:   .space PAGE
pool:   .space POOL_PAGES * PAGE
pool_end:
        .space PAGE
kstack_top:
kbuf:   .space KBUF_SIZE
kdigits: .space 12
kdigits_end:
