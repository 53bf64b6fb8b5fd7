"""CSR numbers, names and fields: the privileged spec's, for the subset this hart has.

The address itself encodes who may touch a CSR: bits 9:8 give the lowest privilege (0 U, 1 S,
2 hypervisor, 3 M) and bits 11:10 == 0b11 mark it read-only.
"""

# Supervisor trap setup and handling
SSTATUS = 0x100
SIE = 0x104
STVEC = 0x105
SCOUNTEREN = 0x106
SSCRATCH = 0x140
SEPC = 0x141
SCAUSE = 0x142
STVAL = 0x143
SIP = 0x144
STIMECMP = 0x14D  # Sstc
STIMECMPH = 0x15D
SATP = 0x180

# Hypervisor CSRs used by nested paging (a subset of the H extension; see mmu.py)
HSTATUS = 0x600
HTVAL = 0x643
HTINST = 0x64A
HGATP = 0x680
VSSTATUS = 0x200
VSATP = 0x280

# Unprivileged counters (Zicntr), read-only
CYCLE = 0xC00
TIME = 0xC01
INSTRET = 0xC02
CYCLEH = 0xC80
TIMEH = 0xC81
INSTRETH = 0xC82

NAMES: dict[str, int] = {
    "sstatus": SSTATUS, "sie": SIE, "stvec": STVEC, "scounteren": SCOUNTEREN,
    "sscratch": SSCRATCH, "sepc": SEPC, "scause": SCAUSE, "stval": STVAL, "sip": SIP,
    "stimecmp": STIMECMP, "stimecmph": STIMECMPH, "satp": SATP,
    "hstatus": HSTATUS, "htval": HTVAL, "htinst": HTINST, "hgatp": HGATP,
    "vsstatus": VSSTATUS, "vsatp": VSATP,
    "cycle": CYCLE, "time": TIME, "instret": INSTRET,
    "cycleh": CYCLEH, "timeh": TIMEH, "instreth": INSTRETH,
}
NUMBERS: dict[int, str] = {v: k for k, v in NAMES.items()}

# sstatus fields (RV32)
SSTATUS_SIE = 1 << 1
SSTATUS_SPIE = 1 << 5
SSTATUS_SPP = 1 << 8
SSTATUS_SUM = 1 << 18
SSTATUS_MXR = 1 << 19
SSTATUS_WRITABLE = SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP | SSTATUS_SUM | SSTATUS_MXR

# sie / sip: only the supervisor timer interrupt exists on this hart
IRQ_S_TIMER = 5
SIP_STIP = 1 << IRQ_S_TIMER
SIE_STIE = 1 << IRQ_S_TIMER

# satp (Sv32): MODE[31] ASID[30:22] PPN[21:0]
SATP_MODE_SV32 = 1 << 31
SATP_ASID_SHIFT = 22
SATP_ASID_MASK = 0x1FF
SATP_PPN_MASK = 0x3F_FFFF

# hgatp (Sv32x4): MODE[31] VMID[28:22] PPN[21:0]
HGATP_MODE_SV32X4 = 1 << 31
HGATP_VMID_SHIFT = 22
HGATP_VMID_MASK = 0x7F

# hstatus fields that this hart implements
HSTATUS_GVA = 1 << 6  # stval holds a guest-virtual address
HSTATUS_SPV = 1 << 7  # the trap came from (or sret returns to) a virtualized guest
HSTATUS_SPVP = 1 << 8  # the guest's virtual privilege (1 = VS) for first-stage checks
HSTATUS_WRITABLE = HSTATUS_GVA | HSTATUS_SPV | HSTATUS_SPVP
VSSTATUS_WRITABLE = SSTATUS_SUM | SSTATUS_MXR

# scounteren bits
COUNTEREN_CY = 1 << 0
COUNTEREN_TM = 1 << 1
COUNTEREN_IR = 1 << 2


def privilege_needed(num: int) -> int:
    """The lowest privilege (0 U, 1 S, 2 hypervisor, 3 M) that may access CSR `num`."""
    return (num >> 8) & 3


def is_read_only(num: int) -> bool:
    return (num >> 10) & 3 == 3
