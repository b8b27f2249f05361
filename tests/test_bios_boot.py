"""Real BIOS boots (QEMU TCG + SeaBIOS) of usr.img images built from the conformance kernel.

About 8 combinations cover every value of: kernel size (64 KiB, exactly 1 MiB, 6 MiB, 40 MiB),
disk bus (IDE, virtio-blk), image format (raw, qcow2), compression (fastlz, none) and command
line (0, 1 and 1023 characters with spaces, quotes and backslashes).  Each boot asserts the
probe's "image ok", the exact command line, the boot-loader name, an e820 map as SeaBIOS reports
it, monotonic TSC stamps and the boot-done byte (123 on port 0x3F0, captured by
osvkit.run).  A truncated image must show boot16's disk-error message and halt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from osvkit.image.usrimg import build_usr_image
from osvkit.probe import build_probe, parse_report
from osvkit.run import run_image

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


def boot(image: Path, *, bus: str, timeout: float = 90):
    """Boot ``image`` with the probe helper's runner (QEMU TCG, SeaBIOS, port 0x3F0 captured)."""
    return run_image(image, vmm="qemu", accel="tcg", memory=f"{MEMORY_MIB}M", disk_bus=bus,
                     timeout=timeout)


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
    res = boot(image, bus=bus)
    console = res.console
    rep = parse_report(console)
    assert res.exit_reason == "poweroff", (res.exit_reason, console[-2000:])
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
    assert res.boot_done is not None  # the probe's byte 123 on port 0x3F0
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
    # no expect: the run must last until the timeout (halted, not rebooted or powered off)
    res = boot(image, bus=bus, timeout=12)
    assert "osvkit-boot16: disk error\r\n" in res.console, res.console[-1000:]
    assert "probe.begin" not in res.console
    assert res.boot_done is None
    assert res.exit_reason == "timeout"
