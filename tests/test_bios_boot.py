"""Real BIOS boots (QEMU TCG + SeaBIOS) of usr.img images built from the conformance kernel.

About 8 combinations cover every value of: kernel size (64 KiB, exactly 1 MiB, 6 MiB, 40 MiB),
disk bus (IDE, virtio-blk), image format (raw, qcow2), compression (fastlz, none) and command
line (0, 1 and 1023 characters with spaces, quotes and backslashes).  Each boot asserts the
probe's "image ok", the exact command line, the boot-loader name, an e820 map as SeaBIOS reports
it, monotonic TSC stamps and the boot-done byte (123 on port 0x3F0, captured with QEMU's
isa-debugcon).  A truncated image must show boot16's disk-error message and halt.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from osvkit.image.usrimg import build_usr_image
from osvkit.probe import build_probe, parse_report

MiB = 1 << 20
MEMORY_MIB = 256
LONG_CMDLINE = ('--rootfs=rofs /app "quoted arg" \\back\\slash \'single\' ' * 40)[:1023]
assert len(LONG_CMDLINE) == 1023

pytestmark = pytest.mark.qemu

CASES = [
    # id, kernel size, bus, image format, compression, command line, with a partition
    ("64k-virtio-raw-empty", 64 * 1024, "virtio", "raw", "fastlz", "", False),
    ("1m-ide-qcow2-1char", 1 * MiB, "ide", "qcow2", "fastlz", "x", False),
    ("6m-virtio-qcow2-1023", 6 * MiB, "virtio", "qcow2", "fastlz", LONG_CMDLINE, False),
    ("40m-ide-raw-quotes", 40 * MiB, "ide", "raw", "fastlz", 'a "b c" \\d \\\\ e\'', False),
    ("40m-virtio-raw-none", 40 * MiB, "virtio", "raw", "none", "", False),
    ("6m-ide-raw-none-1char", 6 * MiB, "ide", "raw", "none", "\\", False),
    ("1m-virtio-raw-1023-partition", 1 * MiB, "virtio", "raw", "fastlz", LONG_CMDLINE, True),
    ("64k-ide-qcow2-none", 64 * 1024, "ide", "qcow2", "none", " spaces  around ", False),
]


def boot(qemu: str, image: Path, *, fmt: str, bus: str, timeout: float = 90,
         until: str | None = None) -> tuple[str, bytes, str]:
    """Boot ``image``; return (console text, bytes written to port 0x3F0, how it ended)."""
    console = image.with_suffix(".console")
    done = image.with_suffix(".done")
    argv = [qemu, "-accel", "tcg", "-m", f"{MEMORY_MIB}M", "-display", "none",
            "-monitor", "none", "-no-reboot", "-serial", f"file:{console}",
            "-chardev", f"file,id=bootdone,path={done}",
            "-device", "isa-debugcon,iobase=0x3f0,chardev=bootdone",
            "-drive", f"file={image},format={fmt},if={bus}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    how = "timeout"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            how = "exit"
            break
        if until and console.exists() and until in console.read_text(errors="replace"):
            time.sleep(1.0)  # give it a moment to do anything else it would do
            how = "running" if proc.poll() is None else "exit"
            break
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
    text = console.read_bytes().decode("latin-1") if console.exists() else ""
    return text, done.read_bytes() if done.exists() else b"", how


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_boot(qemu, qemu_img, tmp_path, case):
    _, size, bus, fmt, compression, cmdline, with_fs = case
    kernel = tmp_path / "probe.elf"
    kernel.write_bytes(build_probe(size))
    image = tmp_path / f"usr.{fmt}"
    fs = None
    if with_fs:
        fs = tmp_path / "fs.img"
        fs.write_bytes(b"ROFS" * 1000)
    r = build_usr_image(kernel, image, cmdline=cmdline, compression=compression,
                        image_format=fmt, partition=fs)
    console, done, how = boot(qemu, image, fmt=fmt, bus=bus)
    rep = parse_report(console)
    assert how == "exit", console[-2000:]
    assert rep.complete and rep.entry == "start32", console[-2000:]
    assert rep.image_ok is True and rep.header_ok is True
    assert rep.loader == "osvkit-boot16" and rep.bootinfo_flags & 0x200
    assert rep.bootinfo_addr == 0x1000 and rep.cmdline_addr == 0x7E00
    assert rep.cmdline_bytes == cmdline.encode() and rep.cmdline == cmdline
    # e820 as SeaBIOS reports it: 24-byte records at 0x2000, RAM from 1 MiB, RAM ~ -m
    assert rep.e820_map == (0x2000, 24 * len(rep.e820)) and rep.e820
    assert any(e.addr == 0x100000 and e.type == 1 for e in rep.e820)
    assert rep.e820[0].addr == 0 and rep.e820[0].type == 1
    ram = sum(e.size for e in rep.ram)
    assert MEMORY_MIB * MiB - 2 * MiB <= ram <= MEMORY_MIB * MiB
    t_init, t_disk, t_unc = rep.tsc
    assert 0 < t_init < t_disk < t_unc
    assert rep.disk_err == 0
    assert done == bytes([123])  # the probe's boot-done byte on port 0x3F0
    if with_fs:
        entry = rep.mbr_partitions[16:32]
        assert entry[4] == 0x83 and int.from_bytes(entry[8:12], "little") == r.kernel_end // 512
        assert int.from_bytes(entry[12:16], "little") == 8  # 4000 bytes -> 8 sectors


@pytest.mark.parametrize("bus", ["virtio", "ide"])
def test_truncated_image_shows_disk_error_and_halts(qemu, tmp_path, bus):
    kernel = tmp_path / "probe.elf"
    kernel.write_bytes(build_probe(6 * MiB))
    image = tmp_path / "usr.img"
    build_usr_image(kernel, image, compression="none")
    with open(image, "r+b") as f:
        f.truncate(2 * MiB)  # the payload needs 6 MiB from LBA 128
    console, done, how = boot(qemu, image, fmt="raw", bus=bus, timeout=60,
                              until="osvkit-boot16: disk error")
    assert "osvkit-boot16: disk error\r\n" in console
    assert "probe.begin" not in console
    assert done == b""
    assert how == "running"  # halted, not rebooted or exited; killed by the test
