"""End to end: a command line replaced by ``set_cmdline`` in a raw and a qcow2 usr.img is the
one the guest receives.  SeaBIOS boots osvkit's boot16 (bios part), which hands the line to the
conformance kernel (probe part); the probe reports it on COM1.

Needs the ``bios`` and ``probe`` parts (skipped, with the reason, on a branch without them).
"""

from __future__ import annotations

import subprocess

import pytest

from osvkit.image.cmdline_io import get_cmdline, read_cmdline, set_cmdline

import osvkit.image.usrimg as usrimg
import osvkit.probe as probe

NEW = '--verbose --env=A=b\\ c /hello "quoted" caf\u00e9'


@pytest.mark.qemu
@pytest.mark.parametrize("image_format", ["raw", "qcow2"])
def test_set_cmdline_reaches_the_guest(qemu, qemu_img, tmp_path, image_format):
    kernel = tmp_path / "probe.elf"
    kernel.write_bytes(probe.build_probe())
    image = tmp_path / f"usr.{image_format}"
    usrimg.build_usr_image(kernel, image, cmdline="--old /a/longer/old/command/line",
                           image_format=image_format)
    assert get_cmdline(image) == "--old /a/longer/old/command/line"

    result = set_cmdline(image, NEW)
    assert result.format == image_format and result.old == "--old /a/longer/old/command/line"
    info = read_cmdline(image)
    assert (info.cmdline, info.stale_bytes) == (NEW, 0)

    console = tmp_path / "console.txt"
    subprocess.run([qemu, "-accel", "tcg", "-m", "128M", "-display", "none", "-no-reboot",
                    "-monitor", "none", "-serial", f"file:{console}",
                    "-drive", f"file={image},format={image_format},if=ide",
                    "-device", "isa-debug-exit,iobase=0x3f0,iosize=1"],
                   capture_output=True, timeout=60)
    report = probe.parse_report(console.read_text(errors="replace"))
    assert report.loader == "osvkit-boot16"
    assert report.cmdline == NEW
