"""Resource control for the solution's VMM: whatever a guest runs, its writes land only in its own
frames; a bystander guest's memory, and every host page the VMM did not hand out, stay as they
were."""

from __future__ import annotations

from hypothesis import given, settings
from machine import Machine, Program, Segment
from machine.asm import assemble
from vmlab.strategies.programs import SystemProgram, system_programs
from vmm import VMM

GUEST_RAM = 8 << 20
BYSTANDER = assemble("1: j 1b\n", "bystander.S")  # never writes memory


@settings(max_examples=60)
@given(p=system_programs())
def test_a_guest_writes_only_its_own_frames(p: SystemProgram) -> None:
    v = VMM(host_memory=64 << 20, quantum=500)
    attacker = v.create_guest(Program([Segment(a, d) for a, d in p.segments], entry=p.state.pc),
                              "attacker", memory=GUEST_RAM, paging="shadow")
    p.state.apply(attacker.vcpu)
    bystander = v.create_guest(BYSTANDER, "bystander", memory=GUEST_RAM, paging="nested")
    before = bystander.mem.pages()
    host = v.machine.mem
    host.dirty.clear()  # from here on, every page the hardware writes is recorded
    v.run(40_000)
    assert bystander.stop is None, bystander.stop  # it was never disturbed
    assert bystander.mem.pages() == before
    # and the attacker's writes did land, where its own hardware would have put them
    bare = Machine(ram_size=GUEST_RAM)
    for addr, data in p.segments:
        bare.write_phys(addr, data)
    p.state.apply(bare)
    bare.run(20_000)
    if bare.stopped is not None and attacker.stop is not None:
        assert dict(bare.snapshot().pages) == attacker.mem.pages()
    assert attacker.native > 0
    owners = v.frames.owner
    for page in host.dirty:
        frame = 0x8000_0000 + page * 4096
        assert owners.get(frame) in ("attacker", "vmm"), (
            f"host page {frame:#x} (owner {owners.get(frame)}) was written")
