# client.S: an application of the microkernel-style pair (see fileserver.S). It stores a line in
# file 1 through the file server, reads it back and prints it. Then it sends a request with a bad
# file number, which crashes the buggy server: under the VMM that stops the server alone, so the
# client's wait for the reply ends in an error instead of taking the client down too. It says so,
# finishes some work of its own without the server, and shuts down.
#
# Channels: 0 carries requests to the server, 1 the server's replies.

    .equ SBI_EXT_IPC, 0x08495043   # the lab's IPC extension (solution/vmm/channels.py)
    .equ IPC_SEND, 0               # send(channel, buffer, length)
    .equ IPC_RECEIVE, 1            # receive(channel, buffer, size) -> a1 = length
    .equ SBI_ERR_FAILED, -1        # the other end has stopped
    .equ SBI_EXT_SRST, 0x53525354
    .equ SBI_EXT_DBCN, 0x4442434E

    .equ REQUESTS, 0
    .equ REPLIES, 1

    .equ OP_READ, 1                # the file server's message layout
    .equ OP_WRITE, 2
    .equ M_OP, 0
    .equ M_FILE, 4
    .equ M_OFFSET, 8
    .equ M_LENGTH, 12
    .equ M_DATA, 16
    .equ R_STATUS, 0
    .equ R_LENGTH, 4
    .equ R_DATA, 8
    .equ MAX_DATA, 64

    .equ BAD_FILE, 0xdead          # there are 4 files: 0 to 3

    .text
    .globl _start
_start:
    la s0, request
    la s1, reply

    la a0, writing                 # WRITE the line into file 1 at offset 0
    call puts
    li t0, OP_WRITE
    sw t0, M_OP(s0)
    li t0, 1
    sw t0, M_FILE(s0)
    sw zero, M_OFFSET(s0)
    la t0, line_end
    la a1, line
    sub s2, t0, a1                 # s2 = its length
    sw s2, M_LENGTH(s0)
    addi a0, s0, M_DATA
    mv a2, s2
    call copy
    addi a0, s2, M_DATA
    call rpc
    bnez a0, server_gone
    lw t0, R_STATUS(s1)
    bnez t0, refused

    li t0, OP_READ                 # READ it back
    sw t0, M_OP(s0)
    li a0, M_DATA
    call rpc
    bnez a0, server_gone
    lw t0, R_STATUS(s1)
    bnez t0, refused
    la a0, read_back               # client: read back "..."
    call puts
    addi a0, s1, R_DATA
    lw a1, R_LENGTH(s1)
    call print
    la a0, quote_newline
    call puts

    la a0, asking                  # a READ of file 0xdead: the server does not check it
    call puts
    li t0, BAD_FILE
    sw t0, M_FILE(s0)
    li a0, M_DATA
    call rpc
    bnez a0, server_gone
    la a0, no_crash                # not reached when the server has the bug
    call puts
    j alone

refused:
    la a0, refused_msg
    call puts
    j alone

server_gone:                       # a0 = the SBI error of the IPC call
    la t0, died
    li t1, SBI_ERR_FAILED
    beq a0, t1, 1f
    la t0, no_ipc                  # e.g. SBI_ERR_NOT_SUPPORTED on a machine without IPC
1:  mv a0, t0
    call puts

alone:                             # some work of our own: 1 + 2 + ... + 100
    li t0, 100
    li s3, 0
1:  add s3, s3, t0
    addi t0, t0, -1
    bnez t0, 1b
    la a0, sum_msg
    call puts
    mv a0, s3
    call putdec
    la a0, newline
    call puts
    la a0, done
    call puts
    li a7, SBI_EXT_SRST            # shut down cleanly
    li a6, 0
    li a0, 0
    li a1, 0
    ecall

rpc:                               # send the request (a0 = its length) and wait for the reply;
    mv a2, a0                      # a0 = 0, or the SBI error of the call that failed
    li a0, REQUESTS
    la a1, request                 # paging is off: addresses are guest-physical, as IPC wants
    li a6, IPC_SEND
    li a7, SBI_EXT_IPC
    ecall
    bnez a0, 1f
    li a0, REPLIES
    la a1, reply
    li a2, R_DATA + MAX_DATA
    li a6, IPC_RECEIVE
    ecall
1:  ret

copy:                              # copy a2 bytes from a1 to a0
    beqz a2, 2f
1:  lbu t0, 0(a1)
    sb t0, 0(a0)
    addi a0, a0, 1
    addi a1, a1, 1
    addi a2, a2, -1
    bnez a2, 1b
2:  ret

puts:                              # print the NUL-terminated string at a0
    mv a1, a0
1:  lbu t0, 0(a0)
    beqz t0, 2f
    addi a0, a0, 1
    j 1b
2:  sub a0, a0, a1
    # fall through

console_write:                     # print a0 bytes at a1 through the SBI debug console
    li a2, 0
    li a6, 0
    li a7, SBI_EXT_DBCN
    ecall
    ret

print:                             # print a1 bytes at a0
    mv t0, a0
    mv a0, a1
    mv a1, t0
    j console_write

putdec:                            # print a0 in decimal
    la a1, digits_end
    li t1, 10
1:  remu t0, a0, t1
    addi t0, t0, '0'
    addi a1, a1, -1
    sb t0, 0(a1)
    divu a0, a0, t1
    bnez a0, 1b
    la a0, digits_end
    sub a0, a0, a1
    j console_write

    .data
line:          .ascii "kept safe by the file server"
line_end:
writing:       .asciz "client: writing file 1 through the file server\n"
read_back:     .asciz "client: read back \""
quote_newline: .asciz "\"\n"
asking:        .asciz "client: asking for file 0xdead, which does not exist\n"
no_crash:      .asciz "client: the file server survived that\n"
refused_msg:   .asciz "client: the file server refused a request\n"
died:          .asciz "client: the file server died (SBI_ERR_FAILED); carrying on without it\n"
no_ipc:        .asciz "client: no IPC to a file server here; carrying on without it\n"
sum_msg:       .asciz "client: on my own, 1 + 2 + ... + 100 = "
done:          .asciz "client: done, shutting down\n"
newline:       .asciz "\n"

    .bss
    .align 2
request:       .space M_DATA + MAX_DATA
reply:         .space R_DATA + MAX_DATA
digits:        .space 12
digits_end:
