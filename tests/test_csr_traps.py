"""CSRs, privilege checks, traps, the timer interrupt and the counters, against the privileged
spec (RISC-V Privileged Architecture, the S-mode chapter; Sstc; Zicsr; Zicntr).

Every test runs on both the reference interpreter and the fast path.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import S_MODE, U_MODE, Machine, Program, Segment, TrapEvent
from vmlab.strategies.programs import FIXED, encode, li
from vmlab.strategies.states import CSR

RAM = 0x8000_0000
RAM_SIZE = 8 << 20
CODE = 0x8040_0000
TRAP = 0x8040_1000  # stvec: `j .`
DATA = 0x8040_2000
SPIN = encode("jal", 0, imm=0)
NOP = encode("addi", 0, 0, imm=0)
M32 = 0xFFFF_FFFF

SIE, SPIE, SPP, SUM, MXR = 1 << 1, 1 << 5, 1 << 8, 1 << 18, 1 << 19
STIE = STIP = 1 << 5
TIMER_IRQ = 0x8000_0005
ILLEGAL, BREAKPOINT, ECALL_U = 2, 3, 8


@pytest.fixture(params=[False, True], ids=["interpreter", "fast"])
def fast(request) -> bool:
    return request.param


class Run:
    """A machine with `words` at CODE, stvec = TRAP (a spin loop), and its traps recorded."""

    def __init__(self, words: list[int], fast: bool, mode: int = S_MODE,
                 csrs: dict[int, int] | None = None, regs: dict[int, int] | None = None,
                 extra: list[tuple[int, bytes]] | None = None) -> None:
        self.m = m = Machine(RAM_SIZE, fast=fast)
        segments = [Segment(CODE, _bytes(words)), Segment(TRAP, _bytes([SPIN]))]
        segments += [Segment(a, d) for a, d in extra or []]
        m.load(Program(segments, CODE))
        m.set_csr(CSR["stvec"], TRAP)
        for num, value in (csrs or {}).items():
            m.set_csr(num, value)
        for r, value in (regs or {}).items():
            m.set_reg(r, value)
        m.set_mode(mode)
        self.traps: list[TrapEvent] = []
        m.add_trap_observer(self.traps.append)

    def run(self, steps: int) -> Run:
        self.m.run(steps)
        return self

    @property
    def trap(self) -> TrapEvent:
        assert len(self.traps) == 1, self.traps
        return self.traps[0]

    def csr(self, name: str) -> int:
        return self.m.csr(CSR[name])

    def assert_trapped(self, cause: int, tval: int, epc: int, from_mode: int) -> None:
        m = self.m
        assert self.trap.cause == cause
        assert (m.csr(CSR["scause"]), m.csr(CSR["stval"]), m.csr(CSR["sepc"])) == (
            cause, tval, epc), (hex(m.csr(CSR["scause"])), hex(m.csr(CSR["stval"])),
                                hex(m.csr(CSR["sepc"])))
        assert m.mode == S_MODE and m.pc == TRAP
        assert bool(m.csr(CSR["sstatus"]) & SPP) == (from_mode == S_MODE)


def _bytes(words: list[int]) -> bytes:
    return b"".join((w & M32).to_bytes(4, "little") for w in words)


def csrr(rd: int, name: str) -> int:
    return encode("csrrs", rd, 0, imm=CSR[name])


def csrw(name: str, rs: int) -> int:
    return encode("csrrw", 0, rs, imm=CSR[name])


# ----- WARL: what a write keeps ------------------------------------------------------------------

# (CSR, value written, value read back). sstatus keeps SIE SPIE SPP SUM MXR (UBE, FS, VS, XS, SD
# are read-only zero on a hart without F/V and little-endian only); sie keeps STIE only (the
# timer is the only interrupt); stvec MODE is WARL and only Direct (0) exists; "sepc[0] is
# always zero. On implementations that support only IALIGN=32, the two low bits (sepc[1:0]) are
# always zero"; scounteren keeps CY TM IR (there are no hpmcounters); satp on RV32 is MODE,
# a 9-bit ASID and a 22-bit PPN.
WARL = [
    ("sstatus", M32, SIE | SPIE | SPP | SUM | MXR), ("sstatus", 0, 0),
    ("sie", M32, STIE), ("sie", 0, 0),
    ("stvec", M32, 0xFFFF_FFFC), ("stvec", 0x8040_0001, 0x8040_0000), ("stvec", 0, 0),
    ("sepc", M32, 0xFFFF_FFFC), ("sepc", 0x8040_0006, 0x8040_0004), ("sepc", 0, 0),
    ("scounteren", M32, 7), ("scounteren", 0, 0),
    ("sscratch", M32, M32), ("sscratch", 0, 0),
    ("stval", M32, M32), ("stval", 0, 0),
    ("scause", TIMER_IRQ, TIMER_IRQ), ("scause", 13, 13), ("scause", 0, 0),
    ("stimecmp", M32, M32), ("stimecmph", M32, M32), ("stimecmp", 0, 0),
    ("sip", M32, 0),  # STIP is read-only (Sstc: it follows stimecmp); SSIP, SEIP absent
]


@pytest.mark.parametrize("name,written,expected", WARL)
def test_warl_by_instruction(fast, name, written, expected):
    """csrrw writes, csrrs reads back what the CSR kept; csrrw returns the old value."""
    r = Run([*li(1, written), encode("csrrw", 3, 1, imm=CSR[name]), csrr(2, name), SPIN], fast,
            csrs={CSR["stimecmph"]: M32} if name == "sip" else None)
    before = r.csr(name)
    r.run(5)
    assert r.traps == []
    assert r.m.regs[2] == expected, hex(r.m.regs[2])
    assert r.m.regs[3] == before


@pytest.mark.parametrize("name,written,expected", WARL + [("satp", M32, M32), ("satp", 0, 0)])
def test_warl_by_api(name, written, expected):
    m = Machine(RAM_SIZE)
    m.set_csr(CSR[name], written)
    assert m.csr(CSR[name]) == expected


@pytest.mark.parametrize("name", ["cycle", "time", "instret", "cycleh", "timeh", "instreth"])
def test_counters_are_read_only(fast, name):
    """A CSR whose number has bits 11:10 = 11 is read-only: csrrw, and csrrs/csrrc with rs1 != x0
    (even if the register holds 0), are illegal; csrrs/csrrc with rs1 = x0 and csrrsi/csrrci
    with uimm = 0 only read ("will not write to the CSR at all")."""
    num = CSR[name]
    for word in (encode("csrrw", 5, 1, imm=num), encode("csrrw", 0, 0, imm=num),
                 encode("csrrs", 5, 6, imm=num), encode("csrrc", 5, 6, imm=num),
                 encode("csrrwi", 5, 0, imm=num), encode("csrrsi", 5, 1, imm=num)):
        r = Run([word, SPIN], fast, regs={5: 0x55, 6: 0}).run(1)
        r.assert_trapped(ILLEGAL, word, CODE, S_MODE)
        assert r.m.regs[5] == 0x55  # rd not written
    for word in (encode("csrrs", 5, 0, imm=num), encode("csrrc", 5, 0, imm=num),
                 encode("csrrsi", 5, 0, imm=num), encode("csrrci", 5, 0, imm=num)):
        r = Run([NOP, NOP, word, SPIN], fast, regs={5: 0x55}).run(3)
        assert r.traps == []
        assert r.m.regs[5] == (0 if name.endswith("h") else 2)


@pytest.mark.parametrize("num", [0x300, 0x305, 0x341, 0xF14, 0xC03, 0x5FF, 0x7C0, 0x000, 0x001,
                                 0x003, 0x14E])
def test_unimplemented_csrs_are_illegal(fast, num):
    """M-mode CSRs, hpmcounter3, the F extension's fcsr and unallocated numbers do not exist
    on this hart: an illegal-instruction trap with stval = the instruction."""
    word = encode("csrrs", 5, 0, imm=num)
    Run([word, SPIN], fast).run(1).assert_trapped(ILLEGAL, word, CODE, S_MODE)


# ----- privilege: what U-mode may not do ---------------------------------------------------------

S_CSRS = ["sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc", "scause", "stval", "sip",
          "stimecmp", "stimecmph", "satp"]


@pytest.mark.parametrize("name", S_CSRS)
def test_s_csrs_are_illegal_from_u(fast, name):
    for word in (csrr(5, name), encode("csrrw", 5, 1, imm=CSR[name]),
                 encode("csrrci", 0, 0, imm=CSR[name])):
        r = Run([NOP, word, SPIN], fast, mode=U_MODE, regs={5: 0x55, 1: M32})
        before = r.csr(name)
        r.run(2)
        r.assert_trapped(ILLEGAL, word, CODE + 4, U_MODE)
        assert r.m.regs[5] == 0x55
        if name not in ("sepc", "scause", "stval", "sstatus"):  # the trap itself writes these
            assert r.csr(name) == before


@pytest.mark.parametrize("word", [FIXED["sret"], FIXED["wfi"], encode("sfence.vma", 0, 0, 0),
                                  encode("sfence.vma", 0, 5, 6), FIXED["mret"]])
def test_privileged_instructions_are_illegal_from_u(fast, word):
    r = Run([word, SPIN], fast, mode=U_MODE,
            csrs={CSR["sie"]: STIE, CSR["stimecmp"]: 100, CSR["stimecmph"]: 0})
    r.run(1).assert_trapped(ILLEGAL, word, CODE, U_MODE)
    assert r.m.hart.idle == 0  # wfi did not wait


COUNTER_BITS = {"cycle": 1, "time": 2, "instret": 4, "cycleh": 1, "timeh": 2, "instreth": 4}


@settings(max_examples=40)
@given(name=st.sampled_from(sorted(COUNTER_BITS)), enabled=st.integers(0, 7),
       use_fast=st.booleans(), nops=st.integers(0, 5))
def test_counters_from_u_obey_scounteren(name, enabled, use_fast, nops):
    """"When the CY, TM, IR bit in the scounteren register is clear, attempts to read the cycle,
    time or instret register while executing in U-mode will cause an illegal-instruction
    exception. When one of these bits is set, access to the corresponding register is
    permitted.\""""
    word = csrr(5, name)
    r = Run([NOP] * nops + [word, SPIN], use_fast, mode=U_MODE,
            csrs={CSR["scounteren"]: enabled}, regs={5: 0x55}).run(nops + 1)
    if enabled & COUNTER_BITS[name]:
        assert r.traps == []
        assert r.m.regs[5] == (0 if name.endswith("h") else nops)
    else:
        r.assert_trapped(ILLEGAL, word, CODE + 4 * nops, U_MODE)
        assert r.m.regs[5] == 0x55


def test_s_mode_reads_counters_whatever_scounteren(fast):
    r = Run([NOP, csrr(5, "cycle"), csrr(6, "time"), csrr(7, "instret"), SPIN], fast,
            csrs={CSR["scounteren"]: 0}).run(4)
    assert r.traps == [] and r.m.regs[5:8] == [1, 2, 3]


def test_u_mode_cannot_write_counters_even_when_enabled(fast):
    word = encode("csrrw", 0, 1, imm=CSR["time"])
    Run([word, SPIN], fast, mode=U_MODE, csrs={CSR["scounteren"]: 7}).run(1).assert_trapped(
        ILLEGAL, word, CODE, U_MODE)


# ----- exceptions: cause, stval, sepc, sstatus ---------------------------------------------------

@pytest.mark.parametrize("mode", [S_MODE, U_MODE])
@pytest.mark.parametrize("sie", [0, SIE])
def test_trap_entry_sstatus(fast, mode, sie):
    """On a trap into S-mode: SPP = the previous mode, SPIE = SIE, SIE = 0; SUM and MXR stay."""
    r = Run([FIXED["ebreak"], SPIN], fast, mode=mode,
            csrs={CSR["sstatus"]: sie | SUM | MXR | (SPIE if not sie else 0)}).run(1)
    r.assert_trapped(BREAKPOINT, CODE, CODE, mode)
    status = r.csr("sstatus")
    assert status & SIE == 0
    assert bool(status & SPIE) == bool(sie)
    assert status & (SUM | MXR) == SUM | MXR


@pytest.mark.parametrize("mode", [S_MODE, U_MODE])
def test_ebreak(fast, mode):
    """Breakpoint: stval = the ebreak's address (the faulting virtual address)."""
    r = Run([NOP, NOP, FIXED["ebreak"], SPIN], fast, mode=mode).run(3)
    r.assert_trapped(BREAKPOINT, CODE + 8, CODE + 8, mode)
    assert r.m.hart.instret == 2  # ebreak does not retire


def test_ecall_from_u(fast):
    r = Run([NOP, FIXED["ecall"], SPIN], fast, mode=U_MODE, regs={17: 8}).run(2)
    r.assert_trapped(ECALL_U, 0, CODE + 4, U_MODE)
    assert r.m.hart.instret == 1  # ecall does not retire
    assert r.m.stopped is None  # a U-mode ecall is not an SBI call (a7 = 8 would shut down)


@pytest.mark.parametrize("word", [0xFFFF_FFFF, 0x0000_0000, FIXED["mret"], 0x0000_0013 | 1 << 25
                                  | 1 << 12,  # slli with bit 25 set (RV64's shamt[5])
                                  0x0200_0073, 0x4000_0033 | 1 << 12])  # sll with funct7 0x20
@pytest.mark.parametrize("mode", [S_MODE, U_MODE])
def test_illegal_instruction(fast, word, mode):
    r = Run([NOP, word, SPIN], fast, mode=mode, regs={5: 0x55}).run(2)
    r.assert_trapped(ILLEGAL, word, CODE + 4, mode)
    assert r.m.hart.instret == 1


@pytest.mark.parametrize("make", ["jal", "jalr", "beq", "jalr_rd_rs1"])
def test_misaligned_jump_traps_on_the_jump(fast, make):
    """"An instruction-address-misaligned exception is generated on a taken branch or
    unconditional jump if the target address is not IALIGN-bit aligned. This exception is
    reported on the branch or jump instruction, not on the target instruction." stval = the
    target; the link register is not written."""
    target = CODE + 4 + 6
    word = {"jal": encode("jal", 1, imm=6), "jalr": encode("jalr", 1, 2, imm=3),
            "beq": encode("beq", 0, 0, 0, 6), "jalr_rd_rs1": encode("jalr", 2, 2, imm=3)}[make]
    r = Run([NOP, word, SPIN], fast, regs={1: 0x11, 2: CODE + 7}).run(2)
    r.assert_trapped(0, target, CODE + 4, S_MODE)
    assert r.m.regs[1:3] == [0x11, CODE + 7]
    assert r.m.hart.instret == 1


def test_untaken_branch_to_misaligned_target_does_not_trap(fast):
    """"No instruction-address-misaligned exception is generated for a conditional branch that
    is not taken.\""""
    r = Run([encode("bne", 0, 0, 0, 6), SPIN], fast).run(3)
    assert r.traps == [] and r.m.pc == CODE + 4


def test_jalr_clears_bit_zero(fast):
    r = Run([encode("jalr", 1, 2, imm=1), NOP, SPIN], fast, regs={2: CODE + 8}).run(1)
    assert r.traps == [] and r.m.pc == CODE + 8 and r.m.regs[1] == CODE + 4


@pytest.mark.parametrize("op,cause", [("lh", 4), ("lhu", 4), ("lw", 4), ("sh", 6), ("sw", 6)])
@pytest.mark.parametrize("offset", [1, 2, 3])
def test_misaligned_access(fast, op, cause, offset):
    """Misaligned loads and stores trap on this hart (the spec allows either) with stval =
    the address; nothing is loaded or stored."""
    size = 2 if op in ("lh", "lhu", "sh") else 4
    if offset % size == 0:
        return
    word = (encode(op, 5, 6, imm=offset) if op.startswith("l")
            else encode(op, 0, 6, 7, imm=offset))
    r = Run([word, SPIN], fast, regs={5: 0x55, 6: DATA, 7: M32}).run(1)
    r.assert_trapped(cause, DATA + offset, CODE, S_MODE)
    assert r.m.regs[5] == 0x55
    assert r.m.read_phys(DATA, 8) == bytes(8)


@pytest.mark.parametrize("op,address,cause", [
    ("lw", 0x0000_0000, 5), ("lb", 0x7FFF_FFFF, 5), ("lw", RAM + RAM_SIZE, 5),
    ("lh", 0x1000_0000, 5),  # the UART has byte registers only
    ("sw", 0x0000_0000, 7), ("sb", 0x2000_0000, 7), ("sw", RAM + RAM_SIZE, 7),
    ("sh", 0xFFFF_FFFE, 7)])
def test_access_faults(fast, op, address, cause):
    """Outside RAM and the UART there is nothing: an access fault with stval = the address."""
    word = (encode(op, 5, 6, imm=0) if op.startswith("l") else encode(op, 0, 6, 7, imm=0))
    r = Run([word, SPIN], fast, regs={5: 0x55, 6: address}).run(1)
    r.assert_trapped(cause, address, CODE, S_MODE)
    assert r.m.regs[5] == 0x55


def test_last_word_of_ram_is_accessible(fast):
    end = RAM + RAM_SIZE
    r = Run([encode("sw", 0, 6, 7, imm=-4), encode("lw", 5, 6, imm=-4), SPIN], fast,
            regs={6: end, 7: 0x1234_5678}).run(2)
    assert r.traps == [] and r.m.regs[5] == 0x1234_5678


@pytest.mark.parametrize("target", [0x0000_0000, 0x1000_0000, RAM + RAM_SIZE])
def test_fetch_access_fault(fast, target):
    """A jump to where there is no RAM: the jump retires, the fetch at the target faults with
    sepc = stval = the target."""
    r = Run([encode("jalr", 1, 2, imm=0), SPIN], fast, regs={2: target}).run(2)
    r.assert_trapped(1, target, target, S_MODE)
    assert r.m.regs[1] == CODE + 4
    assert r.m.hart.instret == 1


# ----- page faults through a small Sv32 table ----------------------------------------------------

ROOT, L0 = 0x8050_0000, 0x8050_1000
V, R, W, X, U, G, A, D = (1 << i for i in range(8))


def page_table(mappings: dict[int, tuple[int, int]]) -> list[tuple[int, bytes]]:
    """A two-level Sv32 table for the 4 MiB region of CODE: va -> (pa, flags)."""
    root, l0 = bytearray(4096), bytearray(4096)
    root[(CODE >> 22) * 4:(CODE >> 22) * 4 + 4] = ((L0 >> 12) << 10 | V).to_bytes(4, "little")
    for va, (pa, flags) in mappings.items():
        i = (va >> 12) & 0x3FF
        l0[i * 4:i * 4 + 4] = ((pa >> 12) << 10 | flags).to_bytes(4, "little")
    return [(ROOT, bytes(root)), (L0, bytes(l0))]


PAGED = {CODE: (CODE, V | R | X | A), TRAP: (TRAP, V | R | X | A),
         DATA: (DATA, V | R | A),  # read-only
         DATA + 0x1000: (DATA + 0x1000, V | R | W | A),  # D clear
         DATA + 0x2000: (DATA + 0x2000, V | R | W | X | U | A | D),  # a user page
         DATA + 0x3000: (DATA + 0x3000, V | W | A | D)}  # W without R: reserved
SATP = 1 << 31 | ROOT >> 12


@pytest.mark.parametrize("word,address,cause", [
    (encode("lw", 5, 6, imm=0), DATA + 0x8000, 13),  # not mapped
    (encode("sw", 0, 6, 7, imm=0), DATA + 0x8000, 15),
    (encode("sw", 0, 6, 7, imm=4), DATA, 15),  # read-only
    (encode("sb", 0, 6, 7, imm=1), DATA + 0x1000, 15),  # D clear (Svade)
    (encode("lw", 5, 6, imm=0), DATA + 0x2000, 13),  # user page without SUM
    (encode("lw", 5, 6, imm=8), DATA + 0x3000, 13),  # reserved encoding
])
def test_load_store_page_faults(fast, word, address, cause):
    """A page fault: stval = the faulting virtual address (the access's own, offset included)."""
    imm = (word >> 20) if word & 0x7F == 0x03 else ((word >> 25) << 5 | (word >> 7) & 0x1F)
    r = Run([word, SPIN], fast, csrs={CSR["satp"]: SATP}, regs={5: 0x55, 6: address, 7: 1},
            extra=page_table(PAGED)).run(1)
    r.assert_trapped(cause, address + imm, CODE, S_MODE)
    assert r.m.regs[5] == 0x55


@pytest.mark.parametrize("target", [DATA, DATA + 0x2000, DATA + 0x8000])
def test_fetch_page_fault(fast, target):
    """Fetch from a page without X, from a user page in S-mode, from an unmapped page: an
    instruction page fault at the target, after the jump retired."""
    r = Run([encode("jalr", 1, 2, imm=0), SPIN], fast, csrs={CSR["satp"]: SATP},
            regs={2: target}, extra=page_table(PAGED)).run(2)
    r.assert_trapped(12, target, target, S_MODE)
    assert r.m.regs[1] == CODE + 4


def test_page_fault_from_u_mode(fast):
    mappings = {**PAGED, CODE: (CODE, V | R | X | U | A)}
    word = encode("lw", 5, 6, imm=0)
    r = Run([word, SPIN], fast, mode=U_MODE, csrs={CSR["satp"]: SATP}, regs={6: DATA},
            extra=page_table(mappings)).run(1)
    r.assert_trapped(13, DATA, CODE, U_MODE)


# ----- sret --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spp", [0, SPP])
@pytest.mark.parametrize("spie", [0, SPIE])
def test_sret(fast, spp, spie):
    """"SIE is set to SPIE; the privilege mode is changed to SPP; SPIE is set to 1; and SPP is
    set to the least-privileged supported mode (U)"; the pc becomes sepc."""
    target = DATA
    r = Run([FIXED["sret"], SPIN], fast, csrs={CSR["sstatus"]: spp | spie | SUM,
                                                CSR["sepc"]: target},
            extra=[(DATA, _bytes([SPIN]))]).run(1)
    assert r.traps == []
    assert r.m.pc == target
    assert r.m.mode == (S_MODE if spp else U_MODE)
    status = r.csr("sstatus")
    assert status == (SIE if spie else 0) | SPIE | SUM, hex(status)
    assert r.m.hart.instret == 1


def test_trap_and_sret_round_trip(fast):
    """U-mode ecall, the handler advances sepc and returns: U-mode again after the ecall."""
    handler = [csrr(30, "sepc"), encode("addi", 30, 30, imm=4), csrw("sepc", 30),
               FIXED["sret"]]
    r = Run([FIXED["ecall"], encode("addi", 5, 0, imm=7), SPIN], fast, mode=U_MODE,
            csrs={CSR["stvec"]: DATA, CSR["sstatus"]: SIE},
            extra=[(DATA, _bytes(handler))]).run(7)
    assert [t.cause for t in r.traps] == [ECALL_U]
    assert r.m.mode == U_MODE and r.m.regs[5] == 7 and r.m.pc == CODE + 8
    assert r.csr("sstatus") & (SIE | SPIE | SPP) == SIE | SPIE  # SIE restored from SPIE


# ----- the fatal trap ----------------------------------------------------------------------------

@pytest.mark.parametrize("stvec", [0x0, 0x1000_0000, RAM + RAM_SIZE])
def test_trap_to_stvec_outside_ram_stops_the_run(fast, stvec):
    r = Run([NOP, FIXED["ebreak"], SPIN], fast, csrs={CSR["stvec"]: stvec})
    stop = r.m.run(100)
    assert stop.reason == "fatal-trap", stop
    assert r.traps[0].cause == BREAKPOINT
    assert r.m.run(10) == stop  # stays stopped


# ----- the timer interrupt -----------------------------------------------------------------------

def timer(at: int) -> dict[int, int]:
    return {CSR["stimecmp"]: at & M32, CSR["stimecmph"]: at >> 32}


@settings(max_examples=30)
@given(at=st.integers(1, 12), use_fast=st.booleans(), chunk=st.integers(1, 20))
def test_timer_taken_exactly_when_time_reaches_stimecmp(at, use_fast, chunk):
    """In U-mode with STIE set, the interrupt is taken before the first instruction at which
    time >= stimecmp: after `at` instructions retired, with sepc = the next instruction."""
    r = Run([NOP] * 20 + [SPIN], use_fast, mode=U_MODE,
            csrs={CSR["sie"]: STIE, **timer(at)})
    retired: list[int] = []
    r.m.add_trap_observer(lambda event: retired.append(r.m.hart.instret))
    while r.m.steps < 30:
        r.m.run(chunk)
    assert r.traps[0].cause == TIMER_IRQ
    assert r.traps[0].pc == CODE + 4 * at and r.traps[0].mode == U_MODE
    assert r.m.csr(CSR["sepc"]) == CODE + 4 * at
    assert r.m.csr(CSR["stval"]) == 0
    assert retired[0] == at


@pytest.mark.parametrize("mode,status,sie,taken", [
    (U_MODE, 0, STIE, True),  # U-mode: S-level interrupts are enabled whatever SIE says
    (U_MODE, SIE, STIE, True),
    (S_MODE, SIE, STIE, True),
    (S_MODE, 0, STIE, False),  # S-mode: only with SIE
    (U_MODE, SIE, 0, False),  # masked in sie
    (S_MODE, SIE, 0, False),
])
def test_timer_enable_rules(fast, mode, status, sie, taken):
    r = Run([NOP] * 10 + [SPIN], fast, mode=mode,
            csrs={CSR["sstatus"]: status, CSR["sie"]: sie, **timer(3)}).run(8)
    if taken:
        assert [t.cause for t in r.traps] == [TIMER_IRQ]
        r.assert_trapped(TIMER_IRQ, 0, CODE + 12, mode)
        assert bool(r.csr("sstatus") & SPIE) == bool(status & SIE)
    else:
        assert r.traps == [] and r.m.pc == CODE + 32
    assert r.csr("sip") == STIP  # pending either way


def test_timer_pending_follows_stimecmp(fast):
    """Sstc: STIP is set while time >= stimecmp and cleared by writing a later stimecmp."""
    r = Run([NOP, NOP, csrr(5, "sip"), *li(6, 100), csrw("stimecmp", 6), csrr(7, "sip"), SPIN],
            fast, csrs=timer(1)).run(6)
    assert r.traps == []
    assert (r.m.regs[5], r.m.regs[7]) == (STIP, 0)


def test_enabling_a_pending_interrupt_takes_it_after_the_csr_write(fast):
    word = encode("csrrsi", 0, SIE, imm=CSR["sstatus"])
    r = Run([NOP, word, NOP, SPIN], fast, csrs={CSR["sie"]: STIE, **timer(0)}).run(5)
    r.assert_trapped(TIMER_IRQ, 0, CODE + 8, S_MODE)
    assert r.csr("sstatus") & SPIE


def test_interrupt_before_a_faulting_instruction(fast):
    """A pending enabled interrupt is taken before the next instruction executes: the ebreak
    there has not trapped (sepc points at it, scause is the interrupt)."""
    r = Run([NOP, FIXED["ebreak"], SPIN], fast, mode=U_MODE,
            csrs={CSR["sie"]: STIE, **timer(1)}).run(2)
    r.assert_trapped(TIMER_IRQ, 0, CODE + 4, U_MODE)


def test_sret_into_pending_interrupt(fast):
    """sret to U-mode with the timer pending: the interrupt is taken at the sret's target."""
    r = Run([FIXED["sret"], SPIN], fast,
            csrs={CSR["sepc"]: DATA, CSR["sie"]: STIE, **timer(0)},
            extra=[(DATA, _bytes([NOP, SPIN]))]).run(2)
    r.assert_trapped(TIMER_IRQ, 0, DATA, U_MODE)


def test_wfi_waits_for_the_timer(fast):
    """wfi in S-mode with SIE clear: time skips to stimecmp and execution goes on after the wfi
    (the interrupt is pending but not taken)."""
    r = Run([NOP, FIXED["wfi"], csrr(5, "time"), csrr(6, "instret"), csrr(7, "sip"), SPIN], fast,
            csrs={CSR["sie"]: STIE, **timer(1000)}).run(5)
    assert r.traps == []
    assert r.m.regs[5] >= 1000 and r.m.regs[6] == 3 and r.m.regs[7] == STIP
    assert r.m.hart.idle > 0


def test_wfi_then_interrupt_resumes_after_the_wfi(fast):
    """"If an enabled interrupt is present or later becomes present while the hart is stalled,
    the interrupt trap will be taken on the following instruction, i.e., execution resumes in
    the trap handler and sepc = pc + 4.\""""
    r = Run([NOP, FIXED["wfi"], NOP, SPIN], fast,
            csrs={CSR["sstatus"]: SIE, CSR["sie"]: STIE, **timer(500)}).run(3)
    r.assert_trapped(TIMER_IRQ, 0, CODE + 8, S_MODE)
    assert r.m.hart.instret == 2
    assert r.m.hart.time() >= 500


def test_wfi_with_the_timer_already_pending_does_not_wait(fast):
    r = Run([NOP, NOP, FIXED["wfi"], csrr(5, "time"), SPIN], fast,
            csrs={CSR["sie"]: STIE, **timer(1)}).run(4)
    assert r.traps == [] and r.m.regs[5] == 3 and r.m.hart.idle == 0


def test_wfi_with_nothing_to_wake_it_stops(fast):
    stop = Run([FIXED["wfi"], SPIN], fast, csrs={CSR["sie"]: 0}).m.run(10)
    assert stop.reason == "wfi-forever"


# ----- counting: instret, time, cycle and their high halves --------------------------------------

def test_what_retires(fast):
    """"Instructions that cause synchronous exceptions, including ECALL and EBREAK, are not
    considered to retire"; an SBI call (an S-mode ecall the firmware serves) counts as one."""
    handler = [csrr(30, "sepc"), encode("addi", 30, 30, imm=4), csrw("sepc", 30), FIXED["sret"]]
    words = [NOP,  # retires: 1
             FIXED["ebreak"],  # trap, handler (4 retire), back
             encode("lw", 5, 0, imm=0),  # access fault, handler 4
             encode("addi", 17, 0, imm=0x10), encode("addi", 16, 0, imm=0),  # 2
             FIXED["ecall"],  # SBI get_spec_version: 1
             csrr(10, "instret"), csrr(11, "time"), csrr(12, "cycle"), SPIN]
    r = Run(words, fast, csrs={CSR["stvec"]: DATA}, extra=[(DATA, _bytes(handler))]).run(20)
    assert [t.cause for t in r.traps] == [BREAKPOINT, 5]
    assert r.m.regs[10:13] == [12, 13, 14]


def test_high_halves(fast):
    """time/cycle/instret are 64-bit: the h CSRs read bits 63:32."""
    r = Run([csrr(5, "instret"), csrr(6, "instreth"), csrr(7, "cycleh"), csrr(8, "timeh"),
             csrr(9, "time"), SPIN], fast)
    snap = r.m.snapshot()
    r.m.restore(dataclasses.replace(snap, instret=(3 << 32) | 0xFFFF_FFFE, idle=(1 << 32) + 5))
    r.m.run(5)
    assert r.traps == []
    assert r.m.regs[5:10] == [0xFFFF_FFFE, 3, 5, 5, 0xFFFF_FFFE + 5 + 4 - (1 << 32)]


def test_wfi_across_the_32_bit_boundary(fast):
    at = (1 << 32) + 100
    r = Run([FIXED["wfi"], csrr(5, "timeh"), csrr(6, "time"), csrr(7, "instreth"), SPIN], fast,
            csrs={CSR["sie"]: STIE, **timer(at)}).run(4)
    assert r.traps == []
    assert r.m.regs[5] == 1 and r.m.regs[6] >= 100 and r.m.regs[7] == 0
