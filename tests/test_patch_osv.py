"""``osvkit patch`` on an image made by OSv's own scripts, booted on real OSv.

Needs ``OSVKIT_KERNEL`` (a real ``loader-stripped.elf``) and ``OSVKIT_OSV_IMAGE``: a usr.img
built by OSv's ``scripts/build`` (qcow2, fs=rofs; OSv's native-example has ``/hello``); both
skip when unset.  The image gets a file and a small C program that prints it (OSv's example
image has no ``cat``), and a command line that runs the program on the file; the patched
image must still boot under QEMU (TCG) and print the file.  Once with OSv's own boot16 and
lzloader kept, once with the kernel replaced too (osvkit's boot16; the partition moves)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import missing_tool

pytestmark = [pytest.mark.osv, pytest.mark.qemu]

CAT = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    char buf[4096];
    size_t n;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) { perror(argv[i]); return 1; }
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
        fclose(f);
    }
    fflush(stdout);
    return 0;
}
"""
MESSAGE = "osvkit patch: this line was added to an OSv-built image\n"


@pytest.mark.parametrize("new_kernel", [False, True], ids=["osv-boot", "new-kernel"])
def test_osv_image_patched_with_a_file_boots_and_shows_it(cli, osv_kernel, osv_image, qemu,
                                                          tmp_path, new_kernel):
    from osvkit.diff import diff_images
    from osvkit.image.extract import extract_kernel
    from osvkit.run import run_image

    if shutil.which("gcc") is None:
        missing_tool("gcc is not installed (install.sh installs it)")
    (tmp_path / "cat.c").write_text(CAT)
    prog = tmp_path / "cat"
    subprocess.run(["gcc", "-O2", "-fPIE", "-pie", "-o", prog, tmp_path / "cat.c"], check=True)
    msg = tmp_path / "msg.txt"
    msg.write_text(MESSAGE)
    img = tmp_path / "usr.img"
    args = ["patch", osv_image, "-o", img, "--add", f"{prog}:/tools/cat",
            "--add", f"{msg}:/etc/osvkit-msg.txt",
            "--cmdline", "--rootfs=rofs /tools/cat /etc/osvkit-msg.txt", "--json"]
    if new_kernel:
        args += ["--kernel", osv_kernel]
    r = cli(*args)
    assert r.returncode == 0, r.stderr.decode()
    rep = json.loads(r.stdout)
    assert rep["image_format"] == "qcow2" and rep["added"] == ["/etc/osvkit-msg.txt",
                                                               "/tools/cat"]
    d = diff_images(osv_image, img)
    (tree,) = d.trees
    assert sorted(tree.added) == ["/etc/osvkit-msg.txt", "/tools", "/tools/cat"]
    assert not tree.removed and not tree.changed
    fields = {c["field"] for c in d.changes}
    assert "cmdline" in fields and ("boot.boot_sector" in fields) is new_kernel
    expected = osv_kernel.read_bytes() if new_kernel else extract_kernel(osv_image).data
    assert extract_kernel(img).data == expected
    res = run_image(img, memory="512M", timeout=240, expect=re.escape(MESSAGE.strip()))
    assert res.exit_reason == "expect", res.console[-3000:]
    assert "Cmdline: /tools/cat /etc/osvkit-msg.txt" in res.console   # printed by OSv first
