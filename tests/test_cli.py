"""The command line as a person uses it: what reaches stdout, stderr, and the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from machine import Machine
from machine.loader import load_program

REPO = Path(__file__).resolve().parents[1]
GUESTS = REPO / "solution" / "guests"


def vmlab(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "grader"))
    return subprocess.run([sys.executable, "-m", "vmlab", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=300)


def test_stdout_is_exactly_the_console() -> None:
    m = Machine()
    m.load(load_program(str(GUESTS / "hello.S")))
    m.run(100_000)
    r = vmlab("run", str(GUESTS / "hello.S"))
    assert r.returncode == 0
    assert r.stdout == m.console
    assert b"shutdown" in r.stderr


def test_trace_goes_to_stderr_and_names_mode_pc_and_registers() -> None:
    r = vmlab("run", "--trace", str(GUESTS / "user.S"))
    assert r.returncode == 0
    plain = vmlab("run", str(GUESTS / "user.S"))
    assert r.stdout == plain.stdout
    lines = r.stderr.decode().splitlines()
    assert lines[0].startswith("S 0x80400000  auipc t0")
    assert any(line.startswith("U ") for line in lines)  # the user program's instructions
    assert any("trap: illegal instruction" in line for line in lines)
    assert any("a0=0x" in line for line in lines)


def test_exit_status_names_how_the_guest_stopped(tmp_path: Path) -> None:
    fail = tmp_path / "fail.S"
    fail.write_text("li a7, 0x53525354\nli a6, 0\nli a0, 0\nli a1, 1\necall\n")
    r = vmlab("run", str(fail))
    assert r.returncode == 1 and b"failure" in r.stderr
    spin = tmp_path / "spin.S"
    spin.write_text("1: j 1b\n")
    r = vmlab("run", "--max-steps", "1000", str(spin))
    assert r.returncode == 4 and b"budget" in r.stderr


def test_running_off_the_end_of_memory_is_a_fatal_trap(tmp_path: Path) -> None:
    # jump to the last word of RAM: the next fetch is outside RAM, and with no trap vector
    # set the trap cannot be delivered either
    prog = tmp_path / "off.S"
    prog.write_text("li t0, 0x87fffffc\nli t1, 0x00000013\nsw t1, 0(t0)\njr t0\n")
    r = vmlab("run", str(prog))
    assert r.returncode == 3
    err = r.stderr.decode()
    assert "fatal-trap" in err and "instruction access fault" in err and "0x88000000" in err


@pytest.mark.parametrize("args, words", [
    (["run", "--max-steps", "0", "X"], ["--max-steps", "positive"]),
    (["run", "--ram", "4", "X"], ["--ram"]),
    (["run", "/nonexistent/prog.S"], ["/nonexistent/prog.S"]),
    (["run", "/bin/true"], ["/bin/true", "RISC-V"]),
    (["disasm", "--base", "zz", "X"], ["--base"]),
])
def test_bad_input_is_one_paragraph_and_exit_2(args: list[str], words: list[str]) -> None:
    args = [str(GUESTS / "hello.S") if a == "X" else a for a in args]
    r = vmlab(*args)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "Traceback" not in err
    assert all(w in err for w in words), err


def test_malformed_assembly_names_file_line_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.S"
    bad.write_text("nop\naddd a0, a0, a1\naddi a0, a0, 5000\n")
    r = vmlab("run", str(bad))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "Traceback" not in err
    assert f"{bad}:2:" in err and "addd" in err
    assert f"{bad}:3:" in err and "5000" in err


def test_asm_and_disasm_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "user.bin"
    assert vmlab("asm", str(GUESTS / "user.S"), "-o", str(out)).returncode == 0
    listing = vmlab("disasm", str(out))
    assert listing.returncode == 0
    again = tmp_path / "again.S"
    again.write_text(listing.stdout.decode())
    out2 = tmp_path / "again.bin"
    assert vmlab("asm", str(again), "-o", str(out2)).returncode == 0
    assert out2.read_bytes() == out.read_bytes()


def test_vmm_runs_several_guests_with_channels() -> None:
    r = vmlab("run", "--vmm", "shadow,nested", "--stats", "--channel", "0:1", "--channel", "1:0",
              str(GUESTS / "client.S"), str(GUESTS / "fileserver.S"))
    out = r.stdout.decode()
    assert "[client]" in out and "[fileserver]" in out
    assert "carrying on without it" in out
    assert r.returncode == 3  # the file server's fatal trap; the client shut down cleanly
    err = r.stderr.decode()
    assert "client (shadow): shutdown" in err and "fileserver (nested): fatal-trap" in err
    assert "run directly" in err and "traps:" in err
