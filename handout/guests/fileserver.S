# fileserver.S: the file server of a microkernel, as a guest of its own. It keeps a few small
# "files" in memory and serves READ and WRITE requests that arrive over the VMM's IPC channels
# (channel 0: requests from the client; channel 1: its replies). See client.S for the other end.
#
# It has a bug on purpose, of the kind that takes down a monolithic kernel: it trusts the file
# number in a request. A bad one makes it follow a wild pointer, and with no trap handler (stvec
# is never set) the fault is fatal. Under the VMM that stops this guest alone: the client's next
# IPC call fails, and the client carries on.
#
# A request: op, file number, offset, length (a word each), then the data to write.
# A reply:   status (0 or -1), length (a word each), then the data read.

    .equ SBI_EXT_IPC, 0x08495043   # the lab's IPC extension (solution/vmm/channels.py)
    .equ IPC_SEND, 0               # send(channel, buffer, length)
    .equ IPC_RECEIVE, 1            # receive(channel, buffer, size) -> a1 = length
    .equ SBI_EXT_SRST, 0x53525354
    .equ SBI_EXT_DBCN, 0x4442434E

    .equ REQUESTS, 0               # channel ids, as the VMM's set-up makes them
    .equ REPLIES, 1

    .equ OP_READ, 1
    .equ OP_WRITE, 2
    .equ M_OP, 0                   # request fields
    .equ M_FILE, 4
    .equ M_OFFSET, 8
    .equ M_LENGTH, 12
    .equ M_DATA, 16
    .equ R_STATUS, 0               # reply fields
    .equ R_LENGTH, 4
    .equ R_DATA, 8

    .equ NFILES, 4
    .equ FILE_SIZE, 64

    .text
    .globl _start
_start:
    la a0, hello
    call puts

serve:
    li a0, REQUESTS                # wait for a request
    la a1, request
    li a2, M_DATA + FILE_SIZE
    li a6, IPC_RECEIVE
    li a7, SBI_EXT_IPC
    ecall
    bnez a0, no_client             # the client is gone (or there is no IPC here)

    la s0, request
    lw s1, M_FILE(s0)
    lw s2, M_OFFSET(s0)
    lw s3, M_LENGTH(s0)
    lw a0, M_OP(s0)                # "fileserver: read file 0x00000001"
    la t0, read_msg
    li t1, OP_READ
    beq a0, t1, 1f
    la t0, write_msg
1:  mv a0, t0
    call puts
    mv a0, s1
    call puthex
    la a0, newline
    call puts

    # BUG (on purpose): the file number is never checked against NFILES, so a bad one reads a
    # "file pointer" from wherever files[number] happens to be.
    la t0, files
    slli t1, s1, 2
    add t0, t0, t1
    lw s4, 0(t0)
    li t0, FILE_SIZE               # the offset and the length are checked
    bgtu s2, t0, refuse
    sub t0, t0, s2
    bgtu s3, t0, refuse
    add s4, s4, s2                 # where in the file

    la s5, reply
    sw zero, R_STATUS(s5)
    lw t0, M_OP(s0)
    li t1, OP_READ
    beq t0, t1, read
    li t1, OP_WRITE
    bne t0, t1, refuse

write:                             # copy the request's data into the file
    addi a0, s4, 0
    addi a1, s0, M_DATA
    mv a2, s3
    call copy
    sw zero, R_LENGTH(s5)
    li a2, R_DATA
    j answer

read:                              # copy the file into the reply
    addi a0, s5, R_DATA
    mv a1, s4                      # a wild pointer for a bad file number: this load faults
    mv a2, s3
    call copy
    sw s3, R_LENGTH(s5)
    addi a2, s3, R_DATA
    j answer

refuse:
    la s5, reply
    li t0, -1
    sw t0, R_STATUS(s5)
    sw zero, R_LENGTH(s5)
    li a2, R_DATA

answer:                            # send the reply (a2 = its length)
    li a0, REPLIES
    la a1, reply
    li a6, IPC_SEND
    li a7, SBI_EXT_IPC
    ecall
    beqz a0, serve

no_client:
    la a0, goodbye
    call puts
    li a7, SBI_EXT_SRST            # shut down
    li a6, 0
    li a0, 0
    li a1, 0
    ecall

copy:                              # copy a2 bytes from a1 to a0
    beqz a2, 2f
1:  lbu t0, 0(a1)
    sb t0, 0(a0)
    addi a0, a0, 1
    addi a1, a1, 1
    addi a2, a2, -1
    bnez a2, 1b
2:  ret

puts:                              # print the NUL-terminated string at a0 (paging is off:
    mv a1, a0                      # its address is the physical one the SBI wants)
1:  lbu t0, 0(a0)
    beqz t0, 2f
    addi a0, a0, 1
    j 1b
2:  sub a0, a0, a1
    li a2, 0
    li a6, 0
    li a7, SBI_EXT_DBCN
    ecall
    ret

puthex:                            # print a0 as 0x and eight hex digits
    la a1, hex_end
    li t2, 8
1:  andi t0, a0, 15
    la t1, digits
    add t1, t1, t0
    lbu t0, 0(t1)
    addi a1, a1, -1
    sb t0, 0(a1)
    srli a0, a0, 4
    addi t2, t2, -1
    bnez t2, 1b
    addi a1, a1, -2                # the "0x" in front
    li a0, 10
    li a2, 0
    li a6, 0
    li a7, SBI_EXT_DBCN
    ecall
    ret

    .data
hello:     .asciz "fileserver: serving 4 files of 64 bytes\n"
read_msg:  .asciz "fileserver: read file "
write_msg: .asciz "fileserver: write file "
goodbye:   .asciz "fileserver: no client, shutting down\n"
newline:   .asciz "\n"
digits:    .ascii "0123456789abcdef"
hex:       .ascii "0x00000000"
hex_end:
    .align 2
files:     .word file0, file1, file2, file3
file0:     .space FILE_SIZE
file1:     .space FILE_SIZE
file2:     .space FILE_SIZE
file3:     .space FILE_SIZE

    .bss
    .align 2
request:   .space M_DATA + FILE_SIZE
reply:     .space R_DATA + FILE_SIZE
