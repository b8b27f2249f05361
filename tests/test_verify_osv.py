"""``osvkit verify`` on a real OSv kernel (OSVKIT_KERNEL), skipped without one.

The build file puts an application ROFS in usr.img; verify boots usr.img through SeaBIOS and
the vmlinux ELF through qemu-pvh and qemu-fc with usr.img attached and ``--rootfs=rofs``, as
the usr.img's own command line has it.  The application is a text file, so every path must get
as far as OSv's ELF loader reading it from the ROFS and refusing it ("bad elf header", a
failure pattern the build file adds): that proves the disk, the partition and the root
filesystem on every path (without the disk OSv says "Failed to load object"), and that verify
fails the boot on the file's own pattern.  OSv prints a ``--bootchart`` chart only once booted, and only with
a clock that converts ticks to time (kvmclock); under TCG it says it skips it."""

from __future__ import annotations

import pytest

from osvkit.buildfile import build_from_file
from osvkit.verify import verify_build_file


@pytest.mark.osv
@pytest.mark.qemu
def test_real_osv_verify_every_path_reaches_the_rofs(osv_kernel, qemu, tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "hello.txt").write_text("hello, not an ELF file\n" * 10)
    (tmp_path / "usr.manifest").write_text("/hello.txt: rootfs/hello.txt\n")
    (tmp_path / "osvkit.toml").write_text(f"""\
spec = 1
[[image]]
name = "osv"
kernel = "{osv_kernel}"
cmdline.options = ["--bootchart"]
cmdline.app = ["/hello.txt"]
rofs = {{ manifest = "usr.manifest" }}
outputs = {{ usr = "osv.img", vmlinux = "osv.elf" }}
verify = {{ timeout = 60, fail-patterns = ["bad elf header"] }}
""")
    build_from_file(tmp_path / "osvkit.toml", env={})
    result = verify_build_file(tmp_path / "osvkit.toml", env={}, plot=tmp_path / "osv.png")
    assert sorted(c.vmm for c in result.checks) == ["qemu", "qemu-fc", "qemu-pvh"]
    for check in result.checks:
        console = "\n".join(check.console_tail) if isinstance(check.console_tail, list) \
            else check.console_tail
        assert check.status == "fail", (check.vmm, console)
        assert [f.pattern for f in check.failures] == ["bad elf header"], (check.vmm, console)
        assert "Cmdline: /hello.txt" in console, (check.vmm, console)
        # the app fails before OSv would print its chart (or say it skips it)
        if check.timing.phases:
            names = [p.name for p in check.timing.phases]
            assert names[:3] == ["disk read (real mode)", "uncompress lzloader.elf",
                                 "TLS initialization"], (check.vmm, console)
        else:
            assert check.timing.total_ms is None
