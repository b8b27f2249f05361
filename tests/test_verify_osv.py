"""``osvkit verify`` on a real OSv kernel (OSVKIT_KERNEL): the bootchart it prints with
``--bootchart`` (osv-boot.md 9) is parsed into phases.  Skipped without a kernel."""

from __future__ import annotations

import pytest

from osvkit.buildfile import build_from_file
from osvkit.verify import verify_build_file


@pytest.mark.osv
@pytest.mark.qemu
def test_real_osv_bootchart_is_parsed(osv_kernel, qemu, tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "hello.txt").write_text("hello\n")
    (tmp_path / "usr.manifest").write_text("/hello.txt: rootfs/hello.txt\n")
    (tmp_path / "osvkit.toml").write_text(f"""\
spec = 1
[[image]]
name = "osv"
kernel = "{osv_kernel}"
cmdline.options = ["--bootchart", "--nopci"]
cmdline.app = ["/hello.txt"]
rofs = {{ manifest = "usr.manifest" }}
outputs = {{ usr = "osv.img", vmlinux = "osv.elf" }}
verify = {{ timeout = 60, fail-patterns = [] }}
""")
    build_from_file(tmp_path / "osvkit.toml", env={})
    result = verify_build_file(tmp_path / "osvkit.toml", env={}, plot=tmp_path / "osv.png")
    for check in result.checks:
        names = [p.name for p in check.timing.phases]
        # OSv prints the chart whatever the app does; the fixed events come first
        assert names[:3] == ["disk read (real mode)", "uncompress lzloader.elf",
                             "TLS initialization"], (check.vmm, check.console_tail)
        assert check.timing.total_ms is not None and check.timing.total_ms > 0
