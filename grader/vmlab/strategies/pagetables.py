"""Page tables as hypothesis strategies: Sv32 (a first stage) and Sv32x4 (a G-stage), as data.

Everything here is plain values, so that any implementation can be checked with it:

* a PTE is an int, `ppn << 10 | flags` (`make_pte`);
* a table set is a `PageTables`: the physical address of its root, the (physical address, 32-bit
  word) writes that build it, the address regions the generator populated (to aim addresses at
  mapped and at unmapped space) and the leaves it wrote;
* `nested_tables` composes a guest's Sv32 tables (placed at guest-physical addresses) with a
  G-stage that maps them, as the host-physical writes a machine needs, plus vsatp and hgatp.

The strategies produce well-formed entries most of the time and malformed ones on purpose the
rest of it (V clear, W without R, reserved bits in a pointer, a misaligned megapage, a pointer at
the last level or to a table outside RAM, A or D clear, U wrong for a G-stage), so that every
fault path of the translation algorithm is reached. Pass `flawed=False` for tables that only
contain well-formed entries.

    tables = draw(page_tables(root=0x80C0_0000, table_pages=[0x80C0_1000, 0x80C0_2000]))
    for pa, word in tables.writes: machine.write_phys(pa, word.to_bytes(4, "little"))
    machine.set_csr(SATP, tables.satp(asid=3))
    va = draw(addresses(tables, align=4))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from hypothesis import strategies as st

from .sources import HypothesisSource, Source

T = TypeVar("T")

RAM_BASE = 0x8000_0000  # QEMU virt's RAM, where the lab's machine has it too
PAGE_SIZE = 4096
MEGAPAGE_SIZE = 1 << 22
PPN_MASK = (1 << 22) - 1
MODE_PAGED = 1 << 31  # satp.MODE = Sv32, hgatp.MODE = Sv32x4

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
FETCH, LOAD, STORE = 0, 1, 2
U_MODE, S_MODE = 0, 1

Write = tuple[int, int]  # (physical address, 32-bit little-endian word)

_GOOD_PERMS = (PTE_R, PTE_R | PTE_W, PTE_X, PTE_R | PTE_X, PTE_R | PTE_W | PTE_X)


@dataclass(frozen=True)
class Region:
    """`size` bytes of address space from `base` (a page or a megapage)."""

    base: int
    size: int


@dataclass(frozen=True)
class Leaf:
    """A leaf PTE the generator wrote, whatever its flags: the `size` bytes at `base` map to
    `target` (the address the PTE's PPN names; not aligned down when the megapage is
    misaligned)."""

    base: int
    size: int
    target: int
    pte: int


@dataclass(frozen=True)
class PageTables:
    """One stage's tables: where the root is, what to write, and what the generator put where."""

    root: int  # physical address of the root table (16 KiB aligned for a G-stage)
    writes: tuple[Write, ...]
    regions: tuple[Region, ...]  # every range whose root or leaf PTE the generator wrote
    leaves: tuple[Leaf, ...]
    wide_root: bool = False  # an Sv32x4 root: 4096 entries, indexed by address bits 33:22

    def satp(self, asid: int = 0) -> int:
        """satp (or vsatp) selecting Sv32 with this root and `asid` (9 bits)."""
        return MODE_PAGED | (asid & 0x1FF) << 22 | (self.root >> 12) & PPN_MASK

    def hgatp(self, vmid: int = 0) -> int:
        """hgatp selecting Sv32x4 with this root and `vmid` (7 bits)."""
        return MODE_PAGED | (vmid & 0x7F) << 22 | (self.root >> 12) & PPN_MASK

    def pte_addresses(self) -> tuple[int, ...]:
        """The physical addresses of every PTE the generator wrote (to change them later)."""
        return tuple(pa for pa, _ in self.writes)

    def resolve(self, address: int) -> int | None:
        """Where the generator meant `address` to go, ignoring the leaf's flags (not a
        translation: a placement helper for building the next stage's memory image)."""
        for leaf in self.leaves:
            if leaf.base <= address < leaf.base + leaf.size:
                return (leaf.target & ~(leaf.size - 1)) | (address & (leaf.size - 1))
        return None


@dataclass(frozen=True)
class NestedTables:
    """A guest's first stage and the VMM's G-stage, as a host-physical memory image."""

    writes: tuple[Write, ...]  # host-physical: the G-stage tables, then the guest's tables
    vsatp: int  # 0 when the guest's paging is off (Bare)
    hgatp: int  # 0 for a Bare G-stage
    guest: PageTables | None  # at guest-physical addresses
    gstage: PageTables | None  # at host-physical addresses
    window: Region  # the guest-physical range the guest's tables and data live in


def make_pte(ppn: int, flags: int) -> int:
    """A PTE from a physical page number (22 bits) and flags (V R W X U G A D and RSW)."""
    return ((ppn & PPN_MASK) << 10) | (flags & 0x3FF)


def write_bytes(writes: Sequence[Write]) -> list[tuple[int, bytes]]:
    """The writes as (address, 4 little-endian bytes), in order (later writes win)."""
    return [(pa, (word & 0xFFFF_FFFF).to_bytes(4, "little")) for pa, word in writes]


# ----- flags and single PTEs ---------------------------------------------------------------------
# Each generator is written once against a `Source` (sources.py): the strategies below run it
# with hypothesis drawing every choice; the grader runs it from records, which costs a tenth.

Ranges = tuple[tuple[int, int], ...]  # a choice among integer ranges, each [lo, hi]

_BOOLS = (False, True)
_SOMETIMES = (False, False, True)
_LEAF_FLAWS = (None,) * 12 + ("no-a", "no-d", "invalid", "w-without-r", "flip-u", "any")
_POINTER_FLAWS = (None,) * 6 + ("invalid", "reserved")
_RESERVED = (PTE_A, PTE_D, PTE_U, PTE_A | PTE_D)
_RSW = (0, 0, 1 << 8, 1 << 9)
_LOW10 = st.integers(1, 0x3FF)


def pick(src: Source, ranges: Ranges) -> int:
    """An integer from one of `ranges` (each as likely; repeat one to make it likelier)."""
    lo, hi = ranges[0] if len(ranges) == 1 else src.choice(ranges)
    return src.integer(lo, hi)


def leaf_flags_from(src: Source, user: bool | None = None, global_: bool | None = None,
                    flawed: bool = True, perms: tuple[int, ...] = _GOOD_PERMS) -> int:
    """See `leaf_flags`."""
    flags = PTE_V | src.choice(perms) | PTE_A | PTE_D
    if user if user is not None else src.choice(_BOOLS):
        flags |= PTE_U
    if global_ if global_ is not None else src.choice(_SOMETIMES):
        flags |= PTE_G
    if not flawed:
        return flags
    flaw = src.choice(_LEAF_FLAWS)
    if flaw == "no-a":
        flags &= ~PTE_A
    elif flaw == "no-d":
        flags &= ~PTE_D
    elif flaw == "invalid":
        flags &= ~PTE_V
    elif flaw == "w-without-r":
        flags = (flags & ~(PTE_R | PTE_X)) | PTE_W | (PTE_X if src.choice(_BOOLS) else 0)
    elif flaw == "flip-u":
        flags ^= PTE_U
    elif flaw == "any":
        flags = src.integer(0, 0x3FF)
    return flags


@cache
def leaf_flags(user: bool | None = None, global_: bool | None = None, flawed: bool = True,
               perms: tuple[int, ...] = _GOOD_PERMS) -> st.SearchStrategy[int]:
    """Flags of a leaf: V, a legal R/W/X combination and A and D set, U as `user` says (None:
    either), G as `global_` says (None: sometimes). With `flawed`, sometimes one flaw: A clear,
    D clear, V clear, W without R, U flipped, or any 10 bits at all. `perms`: the R/W/X
    combinations to choose from (repeat one to make it likelier)."""
    return _from_source(leaf_flags_from, user, global_, flawed, perms)


def pointer_flags_from(src: Source, global_: bool | None = None, flawed: bool = True) -> int:
    """See `pointer_flags`."""
    flags = PTE_V | src.choice(_RSW)
    if global_ if global_ is not None else src.choice(_SOMETIMES):
        flags |= PTE_G
    if not flawed:
        return flags
    flaw = src.choice(_POINTER_FLAWS)
    if flaw == "invalid":
        flags &= ~PTE_V
    elif flaw == "reserved":
        flags |= src.choice(_RESERVED)
    return flags


@cache
def pointer_flags(global_: bool | None = None, flawed: bool = True) -> st.SearchStrategy[int]:
    """Flags of a non-leaf PTE (R = W = X = 0): V, maybe G, sometimes RSW bits (which must be
    ignored). With `flawed`, sometimes V clear or a bit reserved in a pointer (D, A, U) set."""
    return _from_source(pointer_flags_from, global_, flawed)


@st.composite
def _from_source(draw: st.DrawFn, generator: Callable[..., T], *args: object) -> T:
    return generator(HypothesisSource(draw), *args)


def ptes(ppns: st.SearchStrategy[int], flags: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """A PTE with a PPN from `ppns` and flags from `flags`."""
    return st.builds(make_pte, ppns, flags)


def page_range(base: int = RAM_BASE, size: int = 16 << 20) -> Ranges:
    """The page numbers of RAM [base, base + size)."""
    return ((base >> 12, ((base + size) >> 12) - 1),)


def megapage_range(base: int = RAM_BASE, size: int = 16 << 20) -> Ranges:
    """PPN[1] (the megapage number) of the megapages of RAM [base, base + size)."""
    return ((base >> 22, ((base + size) >> 22) - 1),)


def ranges_outside(base: int = RAM_BASE, size: int = 16 << 20) -> Ranges:
    """Page numbers (22 bits) of pages that are not in RAM [base, base + size)."""
    above = ((base + size) >> 12, PPN_MASK)
    return ((0, (base >> 12) - 1), above) if base >= PAGE_SIZE else (above,)


@cache
def _ranges(ranges: Ranges) -> st.SearchStrategy[int]:
    return st.one_of(*(st.integers(lo, hi) for lo, hi in ranges))


def ram_pages(base: int = RAM_BASE, size: int = 16 << 20) -> st.SearchStrategy[int]:
    """Page numbers of the pages of RAM [base, base + size)."""
    return _ranges(page_range(base, size))


def pages_outside(base: int = RAM_BASE, size: int = 16 << 20) -> st.SearchStrategy[int]:
    """Page numbers (22 bits) of pages that are not in RAM [base, base + size)."""
    return _ranges(ranges_outside(base, size))


def ram_megapages(base: int = RAM_BASE, size: int = 16 << 20) -> st.SearchStrategy[int]:
    """PPN[1] (the megapage number) of the megapages of RAM [base, base + size)."""
    return _ranges(megapage_range(base, size))


def leaves(ppns: st.SearchStrategy[int] | None = None,
           flags: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[int]:
    """A 4 KiB leaf PTE: a page of RAM (by default) and leaf flags."""
    return ptes(ppns if ppns is not None else ram_pages(),
                flags if flags is not None else leaf_flags())


def megapages(ppn1s: st.SearchStrategy[int] | None = None, aligned: bool | None = True,
              flags: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[int]:
    """A 4 MiB leaf PTE whose PPN[1] comes from `ppn1s` (12 bits; by default a megapage of RAM).
    `aligned`: PPN[0] is zero (True), not zero (False: a misaligned megapage), or either."""
    ppn1s = ppn1s if ppn1s is not None else ram_megapages()
    if aligned is True:
        low: st.SearchStrategy[int] = st.just(0)
    elif aligned is False:
        low = _LOW10
    else:
        low = st.one_of(st.just(0), _LOW10)
    return ptes(st.builds(lambda hi, lo: (hi & 0xFFF) << 10 | lo, ppn1s, low),
                flags if flags is not None else leaf_flags())


def pointers(table_ppn: int | st.SearchStrategy[int],
             flags: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[int]:
    """A non-leaf PTE pointing at the table in page `table_ppn`."""
    ppns = table_ppn if isinstance(table_ppn, st.SearchStrategy) else st.just(table_ppn)
    return ptes(ppns, flags if flags is not None else pointer_flags())


def invalid_pte_from(src: Source) -> int:
    """See `invalid_ptes`."""
    return src.integer(0, 0xFFFF_FFFF) & ~PTE_V if src.choice(_BOOLS) else 0


_INVALID = _from_source(invalid_pte_from)


def invalid_ptes() -> st.SearchStrategy[int]:
    """A PTE with V clear (every other bit is the software's: anything at all)."""
    return _INVALID


# ----- whole tables ------------------------------------------------------------------------------

_ROOT_KINDS = {True: ("pointer", "pointer", "pointer", "megapage", "megapage", "misaligned",
                      "invalid", "nowhere", "high"),
               False: ("pointer", "pointer", "megapage")}
_LEAF_KINDS = {True: ("leaf",) * 6 + ("pointer", "invalid", "high"), False: ("leaf",)}
# "high": a leaf whose physical page lies above 4 GiB (Sv32 addresses are 34 bits) with low
# 32 bits that name a page of the targets: whoever drops bits 33:32 lands in RAM


def distinct_from(src: Source, lo: int, hi: int, most: int) -> list[int]:
    """Between one and `most` distinct integers in [lo, hi]: a count, then that many tries
    (a repeat is dropped, so that each try is one record's worth of choices)."""
    seen: list[int] = []
    for _ in range(src.integer(1, most)):
        value = src.integer(lo, hi)
        if value not in seen:
            seen.append(value)
    return seen


def page_tables_from(src: Source, root: int, table_pages: Sequence[int],
                     targets: Ranges | None = None, mega_targets: Ranges | None = None,
                     outside: Ranges | None = None, wide_root: bool = False,
                     user: bool | None = None, max_root_entries: int = 6, max_leaves: int = 8,
                     flawed: bool = True) -> PageTables:
    """See `page_tables`; one record per root entry, its table's leaves included."""
    if wide_root and root & 0x3FFF:
        raise ValueError(f"an Sv32x4 root must be 16 KiB aligned, not at {root:#x}")
    targets = targets or page_range()
    mega_targets = mega_targets or megapage_range()
    outside = outside or ranges_outside()
    free = list(table_pages)
    writes: list[Write] = []
    regions: list[Region] = []
    found: list[Leaf] = []
    used: set[int] = set()
    for _ in range(src.integer(1, max_root_entries)):
        src.record()
        index = src.integer(0, 4095 if wide_root else 1023)
        if index in used:
            continue
        used.add(index)
        base = index << 22
        kind = src.choice(_ROOT_KINDS[flawed])
        if kind == "pointer" and not free:
            kind = "megapage"
        regions.append(Region(base, MEGAPAGE_SIZE))
        if kind == "pointer":
            table = free.pop(0)
            writes.append((root + 4 * index,
                           make_pte(table >> 12, pointer_flags_from(src, flawed=flawed))))
            for j in distinct_from(src, 0, 1023, max_leaves):
                va = base | j << 12
                writes.append((table + 4 * j, _second_level(src, va, targets, outside, user,
                                                            flawed, found)))
                regions.append(Region(va, PAGE_SIZE))
        elif kind in ("megapage", "misaligned", "high"):
            low = 0 if kind != "misaligned" else src.integer(1, 0x3FF)
            above = src.integer(1, 3) << 10 if kind == "high" else 0  # PPN[1] bits 11:10
            pte = make_pte(((pick(src, mega_targets) | above) & 0xFFF) << 10 | low,
                           leaf_flags_from(src, user=user, flawed=flawed))
            writes.append((root + 4 * index, pte))
            found.append(Leaf(base, MEGAPAGE_SIZE, (pte >> 10) << 12, pte))
        elif kind == "invalid":
            writes.append((root + 4 * index, invalid_pte_from(src)))
        else:  # a pointer to a table that is not in RAM
            writes.append((root + 4 * index, make_pte(pick(src, outside),
                                                      pointer_flags_from(src, flawed=False))))
    return PageTables(root, tuple(writes), tuple(regions), tuple(found), wide_root)


def _second_level(src: Source, va: int, targets: Ranges, outside: Ranges, user: bool | None,
                  flawed: bool, found: list[Leaf]) -> int:
    """The PTE for the page at `va` in a second-level table (a leaf is added to `found`)."""
    kind = src.choice(_LEAF_KINDS[flawed])
    if kind in ("leaf", "high"):
        above = src.integer(1, 3) << 20 if kind == "high" else 0  # PPN bits 21:20
        pte = make_pte(pick(src, targets) | above,
                       leaf_flags_from(src, user=user, flawed=flawed))
        found.append(Leaf(va, PAGE_SIZE, (pte >> 10) << 12, pte))
        return pte
    if kind == "pointer":  # a pointer where only a leaf may be
        ppn = pick(src, targets) if src.choice(_BOOLS) else pick(src, outside)
        return make_pte(ppn, pointer_flags_from(src, flawed=False))
    return invalid_pte_from(src)


@st.composite
def page_tables(draw: st.DrawFn, root: int, table_pages: Sequence[int],
                targets: Ranges | None = None, mega_targets: Ranges | None = None,
                outside: Ranges | None = None, wide_root: bool = False,
                user: bool | None = None, max_root_entries: int = 6, max_leaves: int = 8,
                flawed: bool = True) -> PageTables:
    """A two-level table set with its root at physical address `root` and its second-level
    tables in the pages at the addresses `table_pages` (used in order, as needed).

    `targets`: page numbers 4 KiB leaves point at (default: RAM); `mega_targets`: PPN[1] of
    megapages (default: RAM's megapages); `outside`: page numbers that are not RAM, for
    pointers to nowhere; `wide_root`: an Sv32x4 root (4096 entries, the root must be 16 KiB
    aligned); `user`: the U bit of leaves (None: either). At most `max_root_entries` root
    entries, and `max_leaves` entries in each second-level table."""
    return page_tables_from(HypothesisSource(draw), root, table_pages, targets, mega_targets,
                            outside, wide_root, user, max_root_entries, max_leaves, flawed)


def gstage_tables(root: int, table_pages: Sequence[int], **kwargs: object) -> st.SearchStrategy[
        PageTables]:
    """A G-stage (Sv32x4) table set: a 16 KiB root at `root`, leaves usually with U set (the
    G-stage treats every access as a user access). Other arguments as for `page_tables`."""
    kwargs.setdefault("user", True)
    return page_tables(root, table_pages, wide_root=True, **kwargs)  # type: ignore[arg-type]


# ----- addresses and who is asking ---------------------------------------------------------------

def address_from(src: Source, tables: PageTables | None, mask: int = 0xFFFF_FFFF) -> int:
    """See `addresses`."""
    choices = []
    if tables is not None and tables.leaves:
        choices += [tables.leaves] * 3
    if tables is not None and tables.regions:
        choices.append(tables.regions)
        # the root entries' regions on their own too: among the many leaf slots, the few root
        # entries that fault (V clear, a table outside RAM) would be rare targets
        roots = [r for r in tables.regions if r.size == MEGAPAGE_SIZE]
        if roots:
            choices.append(roots)
    pick_ = src.integer(0, len(choices))
    if pick_ == len(choices):
        return src.integer(0, 0xFFFF_FFFF) & mask
    regions = choices[pick_]
    region = regions[src.integer(0, len(regions) - 1)]
    return (region.base + src.integer(0, region.size - 1)) & mask


def addresses(tables: PageTables | None = None, align: int = 1,
              bits: int = 32) -> st.SearchStrategy[int]:
    """Addresses (`bits` wide, at most 32; multiples of `align`): mostly in the pages the
    generator's leaves map, then in the other regions it populated (unmapped and faulting ones
    alike; its root entries' megapages in particular), then anywhere."""
    return _from_source(address_from, tables, ((1 << bits) - 1) & ~(align - 1))


_ACCESS = (FETCH, LOAD, STORE)
_PRIV = (U_MODE, S_MODE)


Request = tuple[int, int, int, bool, bool]  # address, access type, privilege, SUM, MXR


def request_from(src: Source, tables: PageTables | None, mask: int = 0xFFFF_FFFF) -> Request:
    """See `requests`."""
    if tables is None or not tables.leaves or src.choice(_BOOLS):
        return (address_from(src, tables, mask), src.choice(_ACCESS), src.choice(_PRIV),
                src.choice(_BOOLS), src.choice(_BOOLS))
    leaf = tables.leaves[src.integer(0, len(tables.leaves) - 1)]
    address = (leaf.base + src.integer(0, leaf.size - 1)) & mask
    flags = leaf.pte
    wanted = [a for a, ok in ((FETCH, flags & PTE_X), (LOAD, flags & (PTE_R | PTE_X)),
                              (STORE, flags & PTE_W)) if ok] or [LOAD]
    access = wanted[src.integer(0, len(wanted) - 1)]
    user = bool(flags & PTE_U)
    priv = U_MODE if user and (access == FETCH or src.choice(_BOOLS)) else S_MODE
    return address, access, priv, user and priv == S_MODE, bool(
        access == LOAD and not flags & PTE_R) or src.choice(_BOOLS)


def requests(tables: PageTables | None = None, align: int = 1,
             bits: int = 32) -> st.SearchStrategy[Request]:
    """Who asks for what: (address, access type, privilege, SUM, MXR). Half of them are aimed
    at a leaf with an access, privilege, SUM and MXR that its flags allow (the walk may still
    fault on the way); the other half are `addresses` with anything at all."""
    return _from_source(request_from, tables, ((1 << bits) - 1) & ~(align - 1))


_ACCESS_TYPES = st.sampled_from(_ACCESS)
_PRIVILEGES = st.sampled_from(_PRIV)


def access_types() -> st.SearchStrategy[int]:
    """0 fetch, 1 load, 2 store."""
    return _ACCESS_TYPES


def privileges() -> st.SearchStrategy[int]:
    """0 U-mode, 1 S-mode."""
    return _PRIVILEGES


def sum_bits() -> st.SearchStrategy[bool]:
    """sstatus.SUM (or vsstatus.SUM)."""
    return st.booleans()


def mxr_bits() -> st.SearchStrategy[bool]:
    """sstatus.MXR (or vsstatus.MXR)."""
    return st.booleans()


# ----- two stages --------------------------------------------------------------------------------

_MOSTLY = st.sampled_from((True, True, True, False))
_ASID = st.integers(0, 0x1FF)
_VMID = st.integers(0, 0x7F)


_L2_INDEX = st.integers(0, 1023)


@cache
def _unique_lists(elements: st.SearchStrategy[int], min_size: int,
                  max_size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(elements, min_size=min_size, max_size=max_size, unique=True)


@cache
def _window_choices(window: Region) -> tuple[st.SearchStrategy[int], st.SearchStrategy[int],
                                              Ranges, Ranges]:
    """The window's pages and megapages (strategies), and where the guest's leaves point
    (ranges): mostly into the window, sometimes anywhere."""
    (pages,), (megas,) = page_range(window.base, window.size), megapage_range(window.base,
                                                                               window.size)
    return (st.integers(*pages), st.integers(*megas), (pages, pages, pages, (0, PPN_MASK)),
            (megas, megas, (0, 0xFFF)))


@st.composite
def nested_tables(draw: st.DrawFn, host_base: int = RAM_BASE, host_size: int = 16 << 20,
                  window: Region = Region(RAM_BASE, 8 << 20),
                  first_stage: bool | None = None, g_stage: bool | None = None,
                  flawed: bool = True, max_root_entries: int = 4,
                  max_leaves: int = 4) -> NestedTables:
    """A guest's Sv32 tables in the guest-physical `window`, and a G-stage (Sv32x4) that maps
    the guest's tables and the pages its leaves point at to host RAM [host_base, host_base +
    host_size), not identically and not contiguously.

    Host layout: the G-stage's tables in the last 4 MiB of host RAM (root first, 16 KiB), and
    every page the G-stage maps to in the rest. `first_stage` / `g_stage`: whether vsatp /
    hgatp select paging (None: usually). With a Bare G-stage the window must be host RAM.
    `max_root_entries`, `max_leaves`: the size of the guest's tables."""
    use_first = draw(_MOSTLY) if first_stage is None else first_stage
    use_g = draw(_MOSTLY) if g_stage is None else g_stage
    pages, megas, targets, mega_targets = _window_choices(window)
    guest = None
    vsatp = 0
    if use_first:
        table_gpns = draw(_unique_lists(pages, 5, 5))
        guest = draw(page_tables(table_gpns[0] << 12, [p << 12 for p in table_gpns[1:]],
                                 targets=targets, mega_targets=mega_targets, flawed=flawed,
                                 max_root_entries=max_root_entries, max_leaves=max_leaves))
        vsatp = guest.satp(draw(_ASID))
        wanted = set(table_gpns)
        mega_wanted = set()
        for leaf in guest.leaves:
            if leaf.size == PAGE_SIZE:
                wanted.add(leaf.target >> 12)
            else:
                mega_wanted.add((leaf.target >> 22) & 0xFFF)
    else:
        wanted = set(draw(_unique_lists(pages, 1, 8)))
        mega_wanted = set(draw(_unique_lists(megas, 0, 1)))
    gstage = None
    hgatp = 0
    writes: list[Write] = []
    if use_g:
        gstage = draw(_gstage_for(host_base, host_size, frozenset(wanted),
                                  frozenset(mega_wanted), flawed))
        hgatp = gstage.hgatp(draw(_VMID))
        writes += gstage.writes
    if guest is not None:
        for gpa, word in guest.writes:
            hpa = gstage.resolve(gpa) if gstage is not None else gpa
            if hpa is not None and host_base <= hpa < host_base + host_size:
                writes.append((hpa, word))
    return NestedTables(tuple(writes), vsatp, hgatp, guest, gstage, window)


# every guest access goes through several G-stage entries: flaws are rarer there
_G_KINDS = {True: st.sampled_from(("megapage", "megapage", "pointer")),  # megapage wanted
            False: st.sampled_from(("pointer", "pointer", "pointer", "megapage"))}
_G_ROOT_FLAW = st.sampled_from((None,) * 7 + ("invalid", "nowhere", "misaligned"))
_G_FLAWED = st.sampled_from((False, False, False, True))
# a VMM maps guest memory read-write-execute, mostly
_G_PERMS = (PTE_R | PTE_W | PTE_X,) * 4 + _GOOD_PERMS


@st.composite
def _gstage_for(draw: st.DrawFn, host_base: int, host_size: int, wanted: frozenset[int],
                mega_wanted: frozenset[int], flawed: bool) -> PageTables:
    """A G-stage that maps the guest-physical pages `wanted` and the guest-physical megapages
    `mega_wanted` (by their number, gpa >> 22), mostly well, sometimes not."""
    table_area = host_base + host_size - MEGAPAGE_SIZE
    root = table_area
    next_table = table_area + 4 * PAGE_SIZE
    data_pages = ram_pages(host_base, host_size - MEGAPAGE_SIZE)
    data_megas = ram_megapages(host_base, host_size - MEGAPAGE_SIZE)
    outside = pages_outside(host_base, host_size)
    good_flags = leaf_flags(user=True, flawed=False, perms=_G_PERMS)
    any_flags = leaf_flags(user=True, flawed=flawed, perms=_G_PERMS)

    def flags() -> int:
        return draw(any_flags if draw(_G_FLAWED) else good_flags)

    groups: dict[int, list[int]] = {}
    for gpn in sorted(wanted):
        groups.setdefault(gpn >> 10, []).append(gpn)
    for mega in sorted(mega_wanted):
        groups.setdefault(mega, [])
    writes: list[Write] = []
    regions: list[Region] = []
    found: list[Leaf] = []
    for index, gpns in sorted(groups.items()):
        base = index << 22
        regions.append(Region(base, MEGAPAGE_SIZE))
        kind = (draw(_G_ROOT_FLAW) if flawed else None) or draw(
            _G_KINDS[index in mega_wanted or not gpns])
        if kind == "pointer":
            table, next_table = next_table, next_table + PAGE_SIZE
            pointer = pointer_flags(flawed=flawed and draw(_G_FLAWED))
            writes.append((root + 4 * index, make_pte(table >> 12, draw(pointer))))
            targets = draw(_unique_lists(data_pages, len(gpns), len(gpns)))
            taken = {gpn & 0x3FF for gpn in gpns}
            extra = [e for e in draw(_unique_lists(_L2_INDEX, 0, 2)) if e not in taken]
            for gpn, hpn in zip(gpns + [base >> 12 | e for e in extra],
                                targets + [draw(data_pages) for _ in extra], strict=True):
                pte = make_pte(hpn, flags())
                va = gpn << 12
                writes.append((table + 4 * (gpn & 0x3FF), pte))
                regions.append(Region(va, PAGE_SIZE))
                found.append(Leaf(va, PAGE_SIZE, hpn << 12, pte))
        elif kind in ("megapage", "misaligned"):
            low = 0 if kind == "megapage" else draw(_LOW10)
            pte = make_pte((draw(data_megas) & 0xFFF) << 10 | low, flags())
            writes.append((root + 4 * index, pte))
            found.append(Leaf(base, MEGAPAGE_SIZE, (pte >> 10) << 12, pte))
        elif kind == "invalid":
            writes.append((root + 4 * index, draw(_INVALID)))
        else:
            writes.append((root + 4 * index,
                           make_pte(draw(outside), draw(pointer_flags(flawed=False)))))
    return PageTables(root, tuple(writes), tuple(regions), tuple(found), wide_root=True)


def guest_addresses(nested: NestedTables, align: int = 1) -> st.SearchStrategy[int]:
    """Guest-virtual addresses for `nested`: the guest's populated regions (or, with its paging
    off, the window), and anywhere."""
    if nested.guest is not None:
        return addresses(nested.guest, align)
    return addresses(PageTables(0, (), (nested.window,), ()), align)


def guest_requests(nested: NestedTables, align: int = 1) -> st.SearchStrategy[Request]:
    """`requests` for the guest of `nested`: (guest-virtual address, access type, the guest's
    privilege (hstatus.SPVP), vsstatus.SUM, vsstatus.MXR)."""
    if nested.guest is not None:
        return requests(nested.guest, align)
    return requests(PageTables(0, (), (nested.window,), ()), align)
