"""The whole-guest and translation examples fit the guest RAM they run in.

Guest RAM per example is kept small (a VMM may back every page of it at its first fault, and
pays for each page in every example), so the programs, the isolation secrets, the IPC buffers
and the guests' page tables sit close under its end. A change to any of them that put one
outside RAM would make the bare machine fault where the test means to store, and the test
would quietly check something else."""

from __future__ import annotations

from hypothesis import HealthCheck, find, given, settings
from vmlab.hardware import pages_of
from vmlab.properties import composition, guests, ipc_guests
from vmlab.strategies.programs import RAM_BASE, system_programs

PAGE = 4096
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _in(addr: int, n: int, size: int) -> bool:
    return RAM_BASE <= addr and addr + n <= RAM_BASE + size


def _pages(addr: int, n: int) -> set[int]:
    """The pages of [addr, addr + n); an empty range names its page (a buffer is somewhere)."""
    return set(pages_of(addr, max(n, 1)))


@FAST
@given(p=system_programs())
def test_a_programs_segments_lie_in_guest_ram(p) -> None:
    for addr, data in p.segments:
        assert _in(addr, len(data), guests.GUEST_RAM), f"{addr:#x}+{len(data)}"


@FAST
@given(a=guests.attacks())
def test_the_secrets_lie_in_guest_ram_apart_from_the_programs(a: dict) -> None:
    loaded = set()
    for p in (a["program"], a["rival"]):
        for addr, data in (p.segments if p is not None else ()):
            loaded |= _pages(addr, len(data))
    for who, (at, secret) in a["secrets"].items():
        n = len(bytes.fromhex(secret))
        assert _in(at, n, guests.GUEST_RAM), f"{who}'s secret at {at:#x}"
        if who == "attacker" or at != 0x8040_0100:  # (an idle bystander's may sit in its code)
            assert not _pages(at, n) & loaded, f"{who}'s secret at {at:#x} is in a loaded page"


def test_the_highest_secret_ends_where_guest_ram_does() -> None:
    assert max(guests.SECRET_HOMES) + 16 == RAM_BASE + guests.GUEST_RAM


@FAST
@given(conv=ipc_guests.conversations())
def test_every_ipc_buffer_lies_in_guest_ram_apart_from_the_program(conv) -> None:
    for who in ("producer", "consumer"):
        segs = ipc_guests.segments(conv, who)
        code_at, code = segs[0]
        code_pages = _pages(code_at, len(code))
        assert _in(code_at, len(code), guests.GUEST_RAM)
        results = 8 * len(conv.producer if who == "producer" else conv.consumer)
        assert _in(ipc_guests.RESULTS, results, guests.GUEST_RAM)
        assert not _pages(ipc_guests.RESULTS, results) & code_pages
        for c in (conv.producer if who == "producer" else conv.consumer):
            if c.what == "stop":
                continue
            _, _, _, buf, length = ipc_guests._arguments(conv, who, c)
            if c.what == "too-long":  # refused before any byte is read
                length = 0
            assert _in(buf, length, guests.GUEST_RAM), f"{c}: {buf:#x}+{length}"
            assert not _pages(buf, length) & code_pages, f"{c} overlaps the program"


@FAST
@given(a=composition.translation_examples())
def test_the_guests_tables_lie_in_its_ram(a: dict) -> None:
    for gpa, _ in a["writes"]:
        assert _in(gpa, 4, composition.GUEST_RAM), f"a PTE at {gpa:#x}"


def _straddles(a: dict) -> bool:
    """Whether the guest's root maps a megapage across the end of guest RAM."""
    end = RAM_BASE + composition.GUEST_RAM
    return any(
        composition.ROOT <= gpa < composition.ROOT + PAGE and word & 1 and word & 0xE
        and (word >> 20) << 22 < end < ((word >> 20) + 1) << 22
        for gpa, word in a["writes"])


def test_ram_can_end_inside_a_megapage_the_guest_maps() -> None:
    """Guest RAM ends inside its second megapage, and the guest's tables may map that
    megapage whole: the part past RAM's end must translate to no host frame (the translation
    tests check each example; here, that such examples are drawn)."""
    find(composition.translation_examples(), _straddles,
         settings=settings(max_examples=500, database=None, deadline=None,
                           suppress_health_check=list(HealthCheck)))
