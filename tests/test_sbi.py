"""The SBI firmware against the RISC-V Supervisor Binary Interface specification, v2.0.

"a7 encodes the SBI extension ID (EID), a6 encodes the SBI function ID (FID) ... All registers
except a0 & a1 must be preserved across an SBI call by the callee. SBI functions must return a
pair of values in a0 and a1, with a0 returning an error code." The legacy extensions (EIDs
0x00-0x0F) differ: "The SBI function ID field in a6 register is ignored ... Nothing is returned
in a1 register. All registers except a0 must be preserved". "An ECALL with an unsupported SBI
extension ID (EID) or an unsupported SBI function ID (FID) must return the error code
SBI_ERR_NOT_SUPPORTED."
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine import Machine, Program, Segment, TrapEvent
from vmlab.strategies.programs import FIXED, encode, li
from vmlab.strategies.states import CSR

RAM = 0x8000_0000
RAM_SIZE = 8 << 20
CODE = 0x8040_0000
DATA = 0x8040_2000
SPIN = encode("jal", 0, imm=0)
M32 = 0xFFFF_FFFF

SUCCESS, ERR_FAILED, ERR_NOT_SUPPORTED, ERR_INVALID_PARAM = 0, -1, -2, -3
BASE, TIME, SRST, DBCN = 0x10, 0x54494D45, 0x53525354, 0x4442434E
LEGACY_SET_TIMER, LEGACY_PUTCHAR, LEGACY_GETCHAR, LEGACY_SHUTDOWN = 0x00, 0x01, 0x02, 0x08
A0, A1, A2, A6, A7 = 10, 11, 12, 16, 17


@pytest.fixture(params=[False, True], ids=["interpreter", "fast"])
def fast(request) -> bool:
    return request.param


class Call:
    """An S-mode program that makes one SBI call with the given registers, then spins."""

    def __init__(self, eid: int, fid: int = 0, args: tuple[int, ...] = (), fast: bool = True,
                 regs: dict[int, int] | None = None, data: bytes = b"") -> None:
        words = [*li(A7, eid), *li(A6, fid)]
        for i, value in enumerate(args):
            words += li(A0 + i, value)
        self.ecall_at = CODE + 4 * len(words)
        words += [FIXED["ecall"], SPIN]
        self.m = m = Machine(RAM_SIZE, fast=fast)
        segments = [Segment(CODE, b"".join(w.to_bytes(4, "little") for w in words))]
        if data:
            segments.append(Segment(DATA, data))
        m.load(Program(segments, CODE))
        for r, value in (regs or {}).items():
            m.set_reg(r, value)
        self.traps: list[TrapEvent] = []
        m.add_trap_observer(self.traps.append)
        self.setup = len(words) - 2
        m.run(self.setup)
        assert m.pc == self.ecall_at
        self.before = list(m.regs)
        self.instret = m.hart.instret
        self.stop = m.run(1)

    @property
    def returned(self) -> tuple[int, int]:
        """(error, value) as signed numbers, after checking the call came back normally."""
        m = self.m
        assert self.stop.reason == "budget", self.stop
        assert self.traps == [], self.traps
        assert m.pc == self.ecall_at + 4
        assert m.hart.instret == self.instret + 1  # an SBI call retires as one instruction
        return _signed(m.regs[A0]), _signed(m.regs[A1])

    def preserved(self, except_regs: tuple[int, ...] = (A0, A1)) -> None:
        for i in range(32):
            if i not in except_regs:
                assert self.m.regs[i] == self.before[i], f"x{i} changed"


def _signed(v: int) -> int:
    return v - (1 << 32) if v & 0x8000_0000 else v


# ----- base extension ----------------------------------------------------------------------------

def test_spec_version(fast):
    """"The minor number of the SBI specification is encoded in the low 24 bits, with the major
    number encoded in the next 7 bits. Bit 31 must be 0": v2.0."""
    c = Call(BASE, 0, fast=fast)
    error, value = c.returned
    assert (error, value) == (SUCCESS, 2 << 24)
    c.preserved()


@pytest.mark.parametrize("fid", [1, 2, 4, 5, 6])
def test_base_queries_succeed(fast, fid):
    """Implementation id and version, mvendorid, marchid, mimpid: "All functions in the base
    extension must be supported by all SBI implementations, so there are no error returns";
    0 is always a legal value for the machine ids."""
    c = Call(BASE, fid, fast=fast)
    error, value = c.returned
    assert error == SUCCESS
    if fid in (4, 5, 6):
        assert value == 0
    c.preserved()


SUPPORTED = [BASE, TIME, SRST, DBCN, LEGACY_SET_TIMER, LEGACY_PUTCHAR, LEGACY_GETCHAR,
             LEGACY_SHUTDOWN]
UNSUPPORTED = [0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0F, 0x735049, 0x52464E43, 0x48534D,
               0x504D55, 0x53555350, 0x43505043, 0x535345, 0x4E41434C, 0x535441, 0x46574654,
               0x08000000, 0x09000000, 0x0A000000, 0x12345678, M32]


@pytest.mark.parametrize("eid", SUPPORTED)
def test_probe_supported(fast, eid):
    """"Returns 0 if the given SBI extension ID (EID) is not available, or 1 if it is available
    unless defined as any other non-zero value by the implementation.\""""
    error, value = Call(BASE, 3, (eid,), fast=fast).returned
    assert error == SUCCESS and value != 0


@pytest.mark.parametrize("eid", UNSUPPORTED)
def test_probe_unsupported(fast, eid):
    assert Call(BASE, 3, (eid,), fast=fast).returned == (SUCCESS, 0)


@pytest.mark.parametrize("eid", UNSUPPORTED[7:])
def test_unsupported_extension(fast, eid):
    c = Call(eid, 0, (1, 2, 3), fast=fast)
    error, _ = c.returned
    assert error == ERR_NOT_SUPPORTED
    c.preserved()


@pytest.mark.parametrize("eid,fid", [(BASE, 7), (BASE, 0x100), (BASE, M32), (TIME, 1),
                                     (SRST, 1), (DBCN, 3), (DBCN, M32)])
def test_unsupported_function(fast, eid, fid):
    c = Call(eid, fid, (0, 0, 0), fast=fast)
    assert c.returned[0] == ERR_NOT_SUPPORTED
    assert c.m.stopped is None
    c.preserved()


# ----- legacy extensions -------------------------------------------------------------------------

def test_legacy_putchar(fast):
    """Returns 0 in a0; a1 is preserved (nothing is returned in it); a6 is ignored."""
    c = Call(LEGACY_PUTCHAR, 0x55, (ord("Z"), 0x1234), fast=fast)
    assert c.returned[0] == 0
    assert c.m.console == b"Z"
    c.preserved(except_regs=(A0,))


def test_legacy_getchar(fast):
    """"The SBI call returns the byte on success, or -1 for failure": there is no input."""
    c = Call(LEGACY_GETCHAR, 0, (0, 0x1234), fast=fast)
    assert c.returned[0] == -1
    c.preserved(except_regs=(A0,))


def test_legacy_set_timer(fast):
    """stime_value in a0 (low) and a1 (high) on RV32; returns 0; "also clears the pending timer
    interrupt bit" (with Sstc: stimecmp is set)."""
    value = (7 << 32) | 0x89AB_CDEF
    c = Call(LEGACY_SET_TIMER, 0, (value & M32, value >> 32), fast=fast)
    assert c.returned[0] == 0
    assert c.m.hart.stimecmp == value
    assert c.m.csr(CSR["stimecmp"]) == value & M32 and c.m.csr(CSR["stimecmph"]) == 7
    assert c.m.csr(CSR["sip"]) == 0
    c.preserved(except_regs=(A0,))


def test_legacy_shutdown(fast):
    c = Call(LEGACY_SHUTDOWN, 0, fast=fast)
    assert c.stop.reason == "shutdown" and c.stop.exit_code == 0
    assert c.m.run(10) == c.stop


@pytest.mark.parametrize("eid", [0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0F])
def test_legacy_unsupported(fast, eid):
    c = Call(eid, 0, (0, 0), fast=fast)
    assert c.returned[0] == ERR_NOT_SUPPORTED
    assert c.m.stopped is None


# ----- TIME --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0x1_0000_0005, 1000, M32, (1 << 64) - 1])
def test_time_set_timer(fast, value):
    """"This function always returns SBI_SUCCESS"; the timer is programmed to the absolute
    time (a0 low, a1 high); a time in the future clears the pending bit."""
    c = Call(TIME, 0, (value & M32, value >> 32), fast=fast,
             regs={})
    assert c.returned[0] == SUCCESS
    assert c.m.hart.stimecmp == value
    assert c.m.csr(CSR["sip"]) == 0
    c.preserved()


def test_time_set_timer_in_the_past_makes_the_interrupt_pending(fast):
    c = Call(TIME, 0, (3, 0), fast=fast)
    assert c.returned[0] == SUCCESS
    assert c.m.csr(CSR["sip"]) == 1 << 5


def test_time_set_timer_interrupts(fast):
    """After set_timer(now + 5) with STIE and SIE set, the interrupt comes 5 ticks later."""
    m = Machine(RAM_SIZE, fast=fast)
    words = [*li(A7, TIME), encode("addi", A6, 0, imm=0), encode("csrrs", A0, 0, imm=CSR["time"]),
             encode("addi", A0, A0, imm=5), encode("addi", A1, 0, imm=0), FIXED["ecall"]]
    words += [encode("addi", 5, 5, imm=1)] * 10 + [SPIN]
    m.load(Program([Segment(CODE, b"".join(w.to_bytes(4, "little") for w in words))], CODE))
    m.set_csr(CSR["stvec"], DATA)
    m.set_csr(CSR["sie"], 1 << 5)
    m.set_csr(CSR["sstatus"], 1 << 1)
    traps: list[TrapEvent] = []
    m.add_trap_observer(traps.append)
    m.run(20)
    assert traps[0].cause == 0x8000_0005
    # csrr time (the 4th instruction) read 3, so stimecmp = 8: the ecall (the 7th) retires,
    # then one addi, and the interrupt comes before the 9th instruction
    assert traps[0].pc == CODE + 4 * 8


# ----- SRST --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,reason,stop", [
    (0, 0, "shutdown"), (0, 1, "failure"), (1, 0, "reboot"), (2, 0, "reboot"),
    (1, 1, "failure"), (2, 1, "failure")])
def test_system_reset(fast, kind, reason, stop):
    """"a synchronous call and does not return if it succeeds": the run stops. Shutdown for no
    reason is the clean exit (0); a system failure reason is a failure (non-zero)."""
    c = Call(SRST, 0, (kind, reason), fast=fast)
    assert c.stop.reason == stop
    assert (c.stop.exit_code == 0) == (stop == "shutdown")


@pytest.mark.parametrize("kind,reason", [
    (3, 0), (0xEFFF_FFFF, 0), (0xF000_0000, 0), (M32, 0),  # reserved, platform-specific
    (0, 2), (0, 0xDFFF_FFFF), (0, 0xE000_0000), (0, 0xF000_0000), (0, M32), (1, 5)])
def test_system_reset_invalid(fast, kind, reason):
    """"SBI_ERR_INVALID_PARAM: At least one of reset_type or reset_reason is reserved or is
    platform-specific and unimplemented." The call returns and the run goes on."""
    c = Call(SRST, 0, (kind, reason), fast=fast)
    assert c.returned[0] == ERR_INVALID_PARAM
    assert c.m.stopped is None
    c.preserved()


# ----- DBCN --------------------------------------------------------------------------------------

def test_console_write(fast):
    """console_write(num_bytes, base_addr_lo, base_addr_hi): the bytes at that physical address
    go to the console; "The number of bytes written is returned in sbiret.value".\""""
    text = b"hello, world\n"
    c = Call(DBCN, 0, (len(text), DATA + 3, 0), fast=fast, data=b"xxx" + text + b"yyy")
    assert c.returned == (SUCCESS, len(text))
    assert c.m.console == text
    c.preserved()


def test_console_write_nothing(fast):
    c = Call(DBCN, 0, (0, DATA, 0), fast=fast)
    assert c.returned == (SUCCESS, 0)
    assert c.m.console == b""


def test_console_write_up_to_the_end_of_ram(fast):
    c = Call(DBCN, 0, (4, RAM + RAM_SIZE - 4, 0), fast=fast)
    assert c.returned == (SUCCESS, 4)
    assert len(c.m.console) == 4


@pytest.mark.parametrize("n,lo,hi", [
    (4, 0x0000_1000, 0),  # not RAM
    (8, RAM + RAM_SIZE - 4, 0),  # runs past the end of RAM
    (4, RAM + RAM_SIZE, 0),
    (4, DATA, 1),  # above 4 GiB
    (M32, DATA, 0),  # longer than RAM
    (2, 0x1000_0000, 0),  # the UART is not memory
])
def test_console_write_invalid_range(fast, n, lo, hi):
    """"SBI_ERR_INVALID_PARAM: The memory pointed to by the num_bytes, base_addr_lo, and
    base_addr_hi parameters does not satisfy the requirements" (v2.0; v3.0 says
    SBI_ERR_INVALID_ADDRESS). Nothing is written."""
    c = Call(DBCN, 0, (n, lo, hi), fast=fast)
    assert c.returned[0] == ERR_INVALID_PARAM
    assert c.m.console == b""
    c.preserved()


def test_console_read_has_no_input(fast):
    """"it will not write anything into the output memory if there are no bytes to be read":
    0 bytes read, memory untouched."""
    c = Call(DBCN, 1, (16, DATA, 0), fast=fast, data=b"\xaa" * 16)
    assert c.returned == (SUCCESS, 0)
    assert c.m.read_phys(DATA, 16) == b"\xaa" * 16


@pytest.mark.parametrize("n,lo,hi", [(4, 0x0000_1000, 0), (8, RAM + RAM_SIZE - 4, 0),
                                     (4, DATA, 1)])
def test_console_read_invalid_range(fast, n, lo, hi):
    """The same memory requirements hold for console_read's output memory."""
    assert Call(DBCN, 1, (n, lo, hi), fast=fast).returned[0] == ERR_INVALID_PARAM


def test_console_write_byte(fast):
    """"The sbiret.uvalue is set to zero"; only the low byte of a0 is the byte."""
    c = Call(DBCN, 2, (0x1234_5641,), fast=fast)
    assert c.returned == (SUCCESS, 0)
    assert c.m.console == b"A"
    c.preserved()


# ----- the calling convention, on generated registers --------------------------------------------

CALLS = [(BASE, 0, ()), (BASE, 3, (TIME,)), (BASE, 1, ()), (DBCN, 2, (0x41,)),
         (DBCN, 0, (3, DATA, 0)), (TIME, 0, (0, 1)), (0x12345678, 9, ()), (SRST, 0, (7, 0)),
         (LEGACY_PUTCHAR, 0, (0x42,)), (LEGACY_GETCHAR, 0, ()), (LEGACY_SET_TIMER, 0, (9, 0))]


@settings(max_examples=60)
@given(call=st.sampled_from(CALLS), use_fast=st.booleans(),
       regs=st.lists(st.integers(0, M32), min_size=31, max_size=31))
def test_calls_preserve_the_other_registers(call, use_fast, regs):
    eid, fid, args = call
    c = Call(eid, fid, args, fast=use_fast, regs=dict(enumerate(regs, start=1)))
    c.returned  # noqa: B018  (checks that the call came back, retired once, did not trap)
    c.preserved(except_regs=(A0,) if eid < 0x10 else (A0, A1))


def test_ecall_from_u_mode_is_not_an_sbi_call(fast):
    m = Machine(RAM_SIZE, fast=fast)
    words = [*li(A7, LEGACY_SHUTDOWN), FIXED["ecall"], SPIN]
    m.load(Program([Segment(CODE, b"".join(w.to_bytes(4, "little") for w in words))], CODE))
    m.set_csr(CSR["stvec"], CODE + 12)
    m.set_mode(0)
    stop = m.run(10)
    assert stop.reason == "budget"
    assert m.csr(CSR["scause"]) == 8
