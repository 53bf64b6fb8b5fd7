"""The reference machine against real QEMU: each guest ELF boots unchanged on qemu-system-riscv32's
`virt` board and on our Machine, with the same console output, byte for byte, and the same end.

QEMU has no 32-bit OpenSBI in Debian, so tests/qemu/sbi_shim.S stands in for it: an M-mode
firmware that enters the kernel as OpenSBI's fw_jump does and answers the SBI calls as
solution/machine/sbi.py does. The guests are solution/guests/*.S (new ones are picked up) and the
checks of the boot state and the SBI in tests/qemu/guests/*.S.

Without QEMU or GNU binutils for RISC-V the tests are skipped; under CI (CI=true) they fail and
name the Debian packages to install.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from machine import Machine
from machine.loader import load_elf
from tools import skip_or_fail

HERE = Path(__file__).resolve().parent
GUESTS = sorted((HERE.parent / "solution" / "guests").glob("*.S")) + \
    sorted((HERE / "qemu" / "guests").glob("*.S"))
SHIM = HERE / "qemu" / "sbi_shim.S"

PACKAGES = ("qemu-system-misc", "binutils-riscv64-unknown-elf")
TOOLS = {"as": "riscv64-unknown-elf-as", "ld": "riscv64-unknown-elf-ld",
         "qemu": "qemu-system-riscv32"}
AS_FLAGS = ("-march=rv32im_zicsr_zifencei", "-mabi=ilp32", "-mno-relax")
LD_FLAGS = ("--no-relax", "-m", "elf32lriscv")
FIRMWARE_BASE, KERNEL_BASE = 0x8000_0000, 0x8040_0000
# Our hart's ISA: no A, F, D or C (without C a jump to a 2-byte boundary is misaligned, as here);
# Sstc (on by default in QEMU 7.2), which the shim enables for S-mode.
CPU = "rv32,a=false,f=false,d=false,c=false,sstc=true"
TIMEOUT = 20  # seconds for QEMU; every guest here shuts down within a fraction of that
MAX_STEPS = 10_000_000  # a few seconds; every guest here needs far fewer

# How a run ends. The shim makes QEMU exit with 0 (shutdown), 1 (SRST system failure), 2 (SRST
# reboot) or 3 (a trap the firmware did not expect).
QEMU_ENDS = {0: "shutdown", 1: "failure", 2: "reboot", 3: "firmware trapped"}
STOPPED = ("shutdown", "failure", "reboot")
NO_STOP = "did not stop"  # QEMU timed out; our machine ran out of budget, or saw it never would


def tools() -> dict[str, str]:
    """Paths of QEMU and GNU as/ld, or skip (fail under CI) naming the Debian packages."""
    paths = {key: shutil.which(name) for key, name in TOOLS.items()}
    missing = [TOOLS[key] for key, path in paths.items() if path is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not found: the QEMU cross-check needs the Debian "
                     f"packages {' and '.join(PACKAGES)} (apt-get install {' '.join(PACKAGES)})")
    return paths  # type: ignore[return-value]


def build(source: Path, base: int, out: Path) -> Path:
    """Assemble and link `source` with .text at `base` into the ELF `out`."""
    paths = tools()
    obj = out.with_suffix(".o")
    for cmd in ([paths["as"], *AS_FLAGS, "-o", str(obj), str(source)],
                [paths["ld"], *LD_FLAGS, f"-Ttext={base:#x}", "-o", str(out), str(obj)]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{shlex.join(cmd)} failed:\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(SHIM, FIRMWARE_BASE, tmp_path_factory.mktemp("shim") / "shim.elf")


def qemu_command(shim: Path, kernel: Path, console: Path) -> list[str]:
    return [tools()["qemu"], "-M", "virt", "-m", "128M", "-cpu", CPU, "-smp", "1",
            "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", f"file:{console}", "-bios", str(shim), "-kernel", str(kernel)]


def run_qemu(cmd: list[str], console: Path) -> tuple[bytes, str]:
    """The console output and how the run ended."""
    try:
        result = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL,
                                timeout=TIMEOUT, check=False)
        end = QEMU_ENDS.get(result.returncode, f"qemu exited with status {result.returncode}: "
                            f"{result.stderr.decode(errors='replace').strip()}")
    except subprocess.TimeoutExpired:
        end = NO_STOP
    return (console.read_bytes() if console.exists() else b""), end


def run_machine(elf: Path) -> tuple[bytes, str, str]:
    """The console output, how the run ended, and our machine's own words for it."""
    m = Machine()  # 128 MiB, as QEMU's -m 128M: the device tree sits at the same address
    m.load(load_elf(elf.read_bytes(), elf.name))
    stop = m.run(MAX_STEPS)
    return m.console, (stop.reason if stop.reason in STOPPED else NO_STOP), str(stop)


@pytest.mark.parametrize("source", GUESTS, ids=[g.stem for g in GUESTS])
def test_guest_boots_the_same_on_qemu(source: Path, shim: Path, tmp_path: Path):
    elf = build(source, KERNEL_BASE, tmp_path / f"{source.stem}.elf")
    ours_console, ours_end, stop = run_machine(elf)
    assert ours_end in STOPPED, f"{source.name} must shut down by itself; on our machine it " \
        f"ended in {stop} (console: {ours_console!r})"
    console = tmp_path / "console.out"
    cmd = qemu_command(shim, elf, console)
    qemu_console, qemu_end = run_qemu(cmd, console)
    replay = f"QEMU run: {shlex.join(cmd)}"
    assert ours_console == qemu_console, (
        f"{source.name}: the console differs\n  ours: {ours_console!r}\n  QEMU: "
        f"{qemu_console!r}\n{replay}")
    assert ours_end == qemu_end, f"{source.name}: ours ended in {ours_end}, QEMU's in " \
        f"{qemu_end}\n{replay}"
