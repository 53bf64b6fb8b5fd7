"""The solution's guests, run whole: the lecture's points as programs.

- kernel.S, hello.S and user.S print the same and stop the same way on the bare machine and
  under the VMM, with shadow paging and with nested paging (Popek and Goldberg's equivalence).
- kernel.S really has two address spaces, and the timer really preempts its processes.
- fileserver.S and client.S over IPC: a crash of the server stops the server alone; the client
  gets an error, carries on and shuts down cleanly, and a guest beside them does not notice.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from machine import Machine, Program, Stop
from machine.loader import load_program
from machine.traps import ECALL_U, S_TIMER_INTERRUPT
from vmm import VMM
from vmm.guest import Guest

GUESTS = Path(__file__).resolve().parents[1] / "solution" / "guests"
RAM = 32 << 20  # a guest's RAM under the VMM; the bare machine gets as much
BUDGET = 1_000_000  # steps; kernel.S needs about 105,000 bare
CHUNK = 5_000  # the VMM runs in chunks, so that a VMM that stops making progress fails fast
PAGINGS = ("shadow", "nested")

KERNEL_OUTPUT = b"""\
kernel: two user processes, A and B, each in its own address space
[A] round 1
[B] round 1
[A] round 2
[B] round 2
[A] round 3
[B] round 3
[A] 309 primes below 2048
kernel: process A exited with status 0
[B] 564 primes below 4096
kernel: process B exited with status 0
kernel: all processes have exited after 22 system calls and 4 page faults
"""
EXPECTED = {
    "kernel.S": KERNEL_OUTPUT,
    "hello.S": b"hello from S-mode, through the UART\nand goodbye through the SBI\n",
    "user.S": b"user mode says hi\nkernel: user tried a privileged instruction\n"
              b"kernel: user exited\n",
}
CLIENT_OUTPUT = b"""\
client: writing file 1 through the file server
client: read back "kept safe by the file server"
client: asking for file 0xdead, which does not exist
client: the file server died (SBI_ERR_FAILED); carrying on without it
client: on my own, 1 + 2 + ... + 100 = 5050
client: done, shutting down
"""
SERVER_OUTPUT = b"""\
fileserver: serving 4 files of 64 bytes
fileserver: write file 0x00000001
fileserver: read file 0x00000001
fileserver: read file 0x0000dead
"""


@cache
def program(name: str) -> Program:
    return load_program(str(GUESTS / name))


@cache
def bare(name: str) -> tuple[bytes, Stop, int, dict[str, int], list]:
    """Console, stop, instructions retired, kernel counters and the traps taken, bare."""
    m = Machine(ram_size=RAM)
    m.load(program(name))
    traps: list = []
    m.add_trap_observer(traps.append)
    stop = m.run(BUDGET)
    return m.console, stop, m.hart.instret, counters(name, m.read_phys), traps


def counters(name: str, read) -> dict[str, int]:  # noqa: ANN001
    """kernel.S's own counts of its events, read from its memory."""
    if name != "kernel.S":
        return {}
    symbols = program(name).symbols
    return {k: int.from_bytes(read(symbols[k], 4), "little")
            for k in ("n_syscalls", "n_faults", "n_preempts", "n_switches")}


def run(vmm: VMM) -> Stop:
    """vmm.run, in chunks: stop at once when no guest retires an instruction in a whole chunk."""
    for _ in range(BUDGET // CHUNK):
        before = [g.vcpu.instret for g in vmm.guests]
        stop = vmm.run(CHUNK)
        if stop.reason != "budget":
            return stop
        stuck = [g for g, n in zip(vmm.guests, before, strict=True)
                 if g.running and g.vcpu.instret == n]
        assert len(stuck) < sum(g.running for g in vmm.guests), \
            f"the VMM ran {CHUNK} steps and no guest made progress: " + "; ".join(
                f"{g.name} at pc={g.vcpu.pc:#010x}, traps by cause {dict(g.traps)}" for g in stuck)
    return stop


def alone(name: str, paging: str) -> Guest:
    vmm = VMM()
    guest = vmm.create_guest(program(name), paging=paging)
    stop = run(vmm)
    assert stop.reason == "halted", f"{name} under the VMM ({paging}): {stop}"
    return guest


# --- (a) the same on the bare machine and under the VMM ------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guest_on_the_bare_machine(name):
    console, stop, _, _, _ = bare(name)
    assert stop.reason == "shutdown", f"{name}: {stop}"
    assert console == EXPECTED[name]


@pytest.mark.parametrize("paging", PAGINGS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guest_under_the_vmm_is_as_on_the_bare_machine(name, paging):
    console, stop, instret, kernel_counts, _ = bare(name)
    guest = alone(name, paging)
    assert guest.stop == stop, f"{name} ({paging}) stopped otherwise than on the bare machine"
    assert bytes(guest.console) == console
    assert guest.vcpu.instret == instret, "guest time must be what the bare machine counts"
    assert counters(name, guest.mem.read) == kernel_counts  # the same events, timer included
    assert guest.traps[ECALL_U] > 0  # its SBI calls, at least, went through the VMM


# --- kernel.S: what it claims to do --------------------------------------------------------------


def test_kernel_timer_preempts_the_user_processes():
    _, _, _, kernel_counts, traps = bare("kernel.S")
    user = program("kernel.S").symbols
    size = user["user_text_end"] - user["user_text"]
    assert size <= 4096, "the user program must fit the one page the kernel maps for it"
    preempted = [t for t in traps if t.cause == S_TIMER_INTERRUPT]
    assert preempted and all(t.mode == 0 and 0x10000 <= t.pc < 0x10000 + size for t in preempted)
    assert kernel_counts["n_preempts"] == len(preempted) >= 2
    assert kernel_counts["n_faults"] == 4  # heap and stack, in each process
    assert kernel_counts["n_switches"] > 6  # more than the yields alone make


def test_kernel_processes_have_their_own_address_spaces():
    """Walk the two processes' page tables (left in RAM at the end of the run): the same
    virtual address, different pages for the data; the kernel mapped for S-mode only."""
    m = Machine(ram_size=RAM)
    prog = program("kernel.S")
    m.load(prog)
    assert m.run(BUDGET).reason == "shutdown"
    sym = prog.symbols

    def word(addr: int) -> int:
        return int.from_bytes(m.read_phys(addr, 4), "little")

    def leaf(root: int, va: int) -> tuple[int, int]:  # (physical page, flags) of an Sv32 walk
        pte = word(root + (va >> 22) * 4)
        if not pte & 0xE:  # a pointer to the next level
            pte = word((pte >> 10 << 12) + ((va >> 12) & 0x3FF) * 4)
        return pte >> 10 << 12, pte & 0xFF

    a, b = (leaf(sym[root], 0x20000) for root in ("root_a", "root_b"))
    assert a == (sym["data_a"], 0xD7) and b == (sym["data_b"], 0xD7)  # V R W U A D
    assert leaf(sym["root_a"], 0x10000) == leaf(sym["root_b"], 0x10000) == \
        (sym["user_text"], 0x5B)  # the code is shared: V R X U A
    for root in ("root_a", "root_b"):
        page, flags = leaf(sym[root], 0x8040_0000)
        assert page == 0x8040_0000 and not flags & 0x10  # the kernel: U=0
        heap, stack = leaf(sym[root], 0x30000), leaf(sym[root], 0x3F000)
        assert sym["pool"] <= heap[0] < sym["pool_end"] and sym["pool"] <= stack[0]
    assert len({leaf(sym[r], va)[0] for r in ("root_a", "root_b")
                for va in (0x30000, 0x3F000)}) == 4  # each page fault got a page of its own


# --- (b) the file server and its client over IPC -------------------------------------------------


def start_pair(vmm: VMM, client_paging: str, server_paging: str,
               server_first: bool) -> tuple[Guest, Guest]:
    """The client and the file server as guests, with the two channels the pair expects."""
    def client() -> Guest:
        return vmm.create_guest(program("client.S"), "client", paging=client_paging)

    def server() -> Guest:
        return vmm.create_guest(program("fileserver.S"), "fileserver", paging=server_paging)

    if server_first:
        s, c = server(), client()
    else:
        c, s = client(), server()
    assert vmm.connect(c, s) == 0  # requests
    assert vmm.connect(s, c) == 1  # replies
    return c, s


def check_pair(vmm: VMM, client: Guest, server: Guest) -> None:
    assert bytes(client.console) == CLIENT_OUTPUT
    assert client.stop is not None and client.stop.reason == "shutdown", client.stop
    assert bytes(server.console) == SERVER_OUTPUT
    assert server.stop is not None and server.stop.reason == "fatal-trap", server.stop
    assert vmm.channels.sent == vmm.channels.received == 5  # 3 requests, 2 replies


@pytest.mark.parametrize(("client_paging", "server_paging", "server_first"), [
    ("shadow", "shadow", False), ("nested", "nested", True),
    ("shadow", "nested", True), ("nested", "shadow", False)])
def test_file_server_crash_stops_only_the_file_server(client_paging, server_paging,
                                                      server_first):
    vmm = VMM()
    client, server = start_pair(vmm, client_paging, server_paging, server_first)
    stop = run(vmm)
    assert stop.reason == "halted", stop
    check_pair(vmm, client, server)


@pytest.mark.parametrize("paging", PAGINGS)
def test_guest_beside_the_pair_does_not_notice_the_crash(paging):
    vmm = VMM()
    bystander = vmm.create_guest(program("kernel.S"), "kernel", paging=paging)
    client, server = start_pair(vmm, paging, paging, server_first=False)
    stop = run(vmm)
    assert stop.reason == "halted", stop
    check_pair(vmm, client, server)
    console, bare_stop, instret, _, _ = bare("kernel.S")
    assert bystander.stop == bare_stop and bytes(bystander.console) == console
    assert bystander.vcpu.instret == instret


@pytest.mark.parametrize(("name", "output"), [
    ("client.S", b"client: writing file 1 through the file server\n"
                 b"client: no IPC to a file server here; carrying on without it\n"
                 b"client: on my own, 1 + 2 + ... + 100 = 5050\nclient: done, shutting down\n"),
    ("fileserver.S", b"fileserver: serving 4 files of 64 bytes\n"
                     b"fileserver: no client, shutting down\n")])
def test_pair_without_ipc_shuts_down_cleanly(name, output):
    """The bare machine (and QEMU) has no IPC: each of the pair says so and stops."""
    m = Machine(ram_size=RAM)
    m.load(program(name))
    assert m.run(BUDGET).reason == "shutdown"
    assert m.console == output
