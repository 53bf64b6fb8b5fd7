"""Whole VMMs written otherwise: correct designs the grader must give full marks, and realistic
bugs it must catch, each written from the contract alone (LAB.md and the stubs' docstrings).

Like tests/buggy_vmms.py, each entry is a list of exact text replacements in one file of the
solution's student parts. The bugs here are of another kind than buggy_vmms.py's: mistakes that
show only in situations the generators had to be taught to reach (a physical page above 4 GiB,
hundreds of flushes, a PTE changed after use). `caught_by` names the part whose tests catch
the bug: its own part's where a unit test can see it; the whole-guest tests where only a long
run can (a table leaked a flush is invisible to one flush).
"""

from __future__ import annotations

from dataclasses import dataclass

TRAP, SHADOW, NESTED = "vmm/trap.py", "vmm/shadow.py", "vmm/nested.py"


@dataclass(frozen=True)
class Design:
    name: str
    file: str
    part: str  # the student part it is in
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs once in `file`
    why: str
    caught_by: str | None = None  # a bug: the part whose tests catch it; None: correct


MAP_BODY = """        host = self.mem.host_address(gpa & ~(PAGE - 1))
        if host is None:
            return False
        vpn1, vpn0 = gpa >> 22, (gpa >> 12) & 0x3FF
        table = self.leaves.get(vpn1)
        if table is None:
            table = self.leaves[vpn1] = self.frames.vmm_frame()
            self.machine.write_phys(table, bytes(PAGE))
            pointer = (table >> 12) << 10 | PTE_V
            self.machine.write_phys(self.root + vpn1 * 4, pointer.to_bytes(4, "little"))
        pte = (host >> 12) << 10 | GUEST_LEAF
        self.machine.write_phys(table + vpn0 * 4, pte.to_bytes(4, "little"))
        self.fills += 1
        return True
"""

MAP_ONE = """
    def _map_one(self, gpa: int) -> None:
        host = self.mem.host_address(gpa)
        vpn1, vpn0 = gpa >> 22, (gpa >> 12) & 0x3FF
        table = self.leaves.get(vpn1)
        if table is None:
            table = self.leaves[vpn1] = self.frames.vmm_frame()
            self.machine.write_phys(table, bytes(PAGE))
            pointer = (table >> 12) << 10 | PTE_V
            self.machine.write_phys(self.root + vpn1 * 4, pointer.to_bytes(4, "little"))
        pte = (host >> 12) << 10 | GUEST_LEAF
        self.machine.write_phys(table + vpn0 * 4, pte.to_bytes(4, "little"))
        self.fills += 1
"""

FLUSH_BODY = """        for view in VIEWS:
            self.machine.write_phys(self.root[view], bytes(PAGE))
            self.spare += self.leaves[view].values()
            self.leaves[view] = {}
            self.machine.hart.mmu.sfence(None, self.asid[view])
"""

FILL_TAIL = """        self._write_leaf(vcpu.mode, va, host, flags)
        self.fills += 1
        return m.gpa
"""

DESIGNS: list[Design] = [
    # ----- correct ------------------------------------------------------------------------------
    Design("gstage-maps-all-ram-at-first-fault", NESTED, "nested-map", ((MAP_BODY, """\
        if not self.mem.contains(gpa):
            return False
        if not self.leaves:  # the first fault: every page of guest RAM, once
            for page in range(self.mem.base, self.mem.base + self.mem.size, PAGE):
                self._map_one(page)
        return True
""" + MAP_ONE),), "The G-stage maps the whole of guest RAM up front: more frames, no more faults."),
    Design("gstage-maps-the-faulting-megapage-region", NESTED, "nested-map", ((MAP_BODY, """\
        if not self.mem.contains(gpa):
            return False
        region = gpa & ~((1 << 22) - 1)
        for page in range(region, region + (1 << 22), PAGE):
            if self.mem.contains(page):
                self._map_one(page)
        return True
""" + MAP_ONE),), "Each fault maps every RAM page of its 4 MiB region (a leaf table's worth)."),
    Design("shadow-prefetches-backed-neighbours", SHADOW, "shadow-fill", ((FILL_TAIL, """\
        self._write_leaf(vcpu.mode, va, host, flags)
        self.fills += 1
        for near in range(1, 4):  # the next pages too, where the guest maps backed RAM
            self._prefetch(vcpu, (va & ~(PAGE - 1)) + near * PAGE, sum_, mxr, paging)
        return m.gpa

    def _prefetch(self, vcpu: VirtualCPU, va: int, sum_: bool, mxr: bool,
                  paging: bool) -> None:
        if va >> 32:
            return
        try:
            m = guestwalk.walk(self.mem, vcpu.satp, va)
        except guestwalk.GuestFault:
            return
        host = self.mem.host_address(m.gpa & ~(PAGE - 1), allocate=False)
        if host is None:
            return
        flags = 0
        for kind, bits in ((LOAD, PTE_R), (STORE, PTE_W | PTE_D), (FETCH, PTE_X)):
            if not paging or guestwalk.permits(m.pte, kind, vcpu.mode, sum_, mxr):
                flags |= bits
        if flags:  # (an entry granting nothing would read as a pointer)
            self._write_leaf(vcpu.mode, va, host, flags | PTE_V | PTE_U | PTE_A)
"""),), "A fill also composes the next three pages the guest maps to RAM already backed, "
             "granting each exactly what the guest's PTE grants: a TLB may prefetch."),
    Design("flush-takes-fresh-roots", SHADOW, "shadow-flush", ((FLUSH_BODY, """\
        for view in VIEWS:
            self.spare += [self.root[view], *self.leaves[view].values()]
            self.leaves[view] = {}
            self.root[view] = self._table()  # zeroed; the old root waits in spare
            self.machine.hart.mmu.sfence(None, self.asid[view])
"""),), "A flush swaps in fresh roots and keeps the old ones, with the leaves, for reuse."),
    Design("flush-clears-only-the-root-entries-used", SHADOW, "shadow-flush", ((FLUSH_BODY, """\
        for view in VIEWS:
            for vpn1, table in self.leaves[view].items():
                self.machine.write_phys(self.root[view] + 4 * vpn1, bytes(4))
                self.spare.append(table)
            self.leaves[view] = {}
            self.machine.hart.mmu.sfence(None, self.asid[view])
"""),), "A flush zeroes only the root entries that point at a leaf table."),
    # ----- bugs -------------------------------------------------------------------------------
    Design("shadow-fill-32-bit-page-mask", SHADOW, "shadow-fill", ((
        "        host = self.mem.host_address(m.gpa & ~(PAGE - 1))\n",
        "        host = self.mem.host_address(m.gpa & 0xFFFF_F000)\n"),),
        "The page is aligned with a 32-bit mask: a PTE naming a page above 4 GiB (Sv32 "
        "addresses are 34 bits) is composed with the RAM page of its low bits.", "shadow-fill"),
    Design("gstage-32-bit-page-mask", NESTED, "nested-map", ((
        "        host = self.mem.host_address(gpa & ~(PAGE - 1))\n",
        "        host = self.mem.host_address(gpa & 0xFFFF_F000)\n"),),
        "The same in the G-stage: a guest-physical address above 4 GiB is backed by RAM.",
        "nested-map"),
    Design("flush-leaks-its-leaf-tables", SHADOW, "shadow-flush", ((
        "            self.spare += self.leaves[view].values()\n", ""),),
        "A flush drops the second-level tables without keeping them for reuse: every flush "
        "leaks a few frames, and a guest that switches satp in a loop exhausts the VMM's "
        "memory.", "whole-guests"),
    Design("flush-leaks-its-roots", SHADOW, "shadow-flush", ((FLUSH_BODY, """\
        for view in VIEWS:
            self.spare += self.leaves[view].values()
            self.leaves[view] = {}
            self.root[view] = self._table()  # the old root is never given back
            self.machine.hart.mmu.sfence(None, self.asid[view])
"""),), "A flush takes fresh roots and forgets the old ones: two frames leaked a flush.",
        "whole-guests"),
    Design("fill-remembers-compositions-across-flushes", SHADOW, "shadow-fill", (
        ("        sum_ = bool(vcpu.sstatus & csr.SSTATUS_SUM)\n",
         "        key = (vcpu.mode, va >> 12, vcpu.satp, vcpu.sstatus, access)\n"
         "        memo = self.__dict__.setdefault('memo', {})\n"
         "        if key in memo:  # composed before: the guest's walk is slow\n"
         "            host, flags, gpa = memo[key]\n"
         "            self._write_leaf(vcpu.mode, va, host, flags)\n"
         "            return gpa\n"
         "        sum_ = bool(vcpu.sstatus & csr.SSTATUS_SUM)\n"),
        (FILL_TAIL, "        self._write_leaf(vcpu.mode, va, host, flags)\n"
                    "        self.fills += 1\n"
                    "        memo[key] = (host, flags, m.gpa)\n"
                    "        return m.gpa\n")),
        "fill caches what it composed and flush does not forget it: after the guest changes "
        "a PTE it used (an upgrade to writable, another frame) and fences, the shadow is "
        "stale.", "whole-guests"),
    Design("sfence-of-one-address-ignored", TRAP, "emulate", ((
        "        vmm.guest_sfence(guest)\n",
        "        if ins.rs1 == 0:  # a fence of one page: our shadows are flushed whole anyway\n"
        "            vmm.guest_sfence(guest)\n"),),
        "sfence.vma with an address is taken for a no-op: the shadow of that page stays stale "
        "after the guest changes its PTE.", "emulate"),
    Design("satp-switch-unnoticed-unless-paging-toggles", TRAP, "emulate", ((
        "        translation = (v.satp, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR))\n",
        "        translation = (v.satp >> 31, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR))\n"),
        ("        if (v.satp, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR)) != translation:\n",
         "        if (v.satp >> 31, v.sstatus & (csr.SSTATUS_SUM | csr.SSTATUS_MXR)) != "
         "translation:\n")),
        "Only turning paging on or off counts as a change of translation: a switch to "
        "another root keeps the old shadows.", "emulate"),
]

CORRECT = [d for d in DESIGNS if d.caught_by is None]
BUGS = [d for d in DESIGNS if d.caught_by is not None]
