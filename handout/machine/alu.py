"""RV32M division and the signed views of a register: the corner cases the spec defines."""

M32 = 0xFFFF_FFFF


def signed(v: int) -> int:
    """A register's 32 bits read as two's complement."""
    return v - ((v & 0x8000_0000) << 1)


def div(a: int, b: int) -> int:
    if b == 0:
        return M32  # -1
    sa, sb = signed(a), signed(b)
    if sa == -0x8000_0000 and sb == -1:
        return a  # overflow: the dividend
    q = abs(sa) // abs(sb)  # RISC-V rounds toward zero
    return (-q if (sa < 0) != (sb < 0) else q) & M32


def divu(a: int, b: int) -> int:
    return a // b if b else M32


def rem(a: int, b: int) -> int:
    if b == 0:
        return a
    sa, sb = signed(a), signed(b)
    if sa == -0x8000_0000 and sb == -1:
        return 0
    r = abs(sa) % abs(sb)  # the remainder takes the dividend's sign
    return (-r if sa < 0 else r) & M32


def remu(a: int, b: int) -> int:
    return a % b if b else a
