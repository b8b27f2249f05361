"""Programs from the host run on a real OSv kernel (``OSVKIT_KERNEL``; skipped otherwise):
a C program linked against zlib and a C++ program using libstdc++ and threads, compiled
here, each put in an image with ``--app`` -- a usr.img, and a vmlinux ELF with a usr.img as
its ROFS disk -- booted under QEMU (TCG); and Debian's python3.11 with its standard library
and extension modules.  The expected console line is what the same binary prints when run on
the host."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import missing_tool

pytestmark = [pytest.mark.osv, pytest.mark.qemu]

C_ZLIB = r"""
#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(void) {
    const char *s = "osvkit zlib round trip, osvkit zlib round trip, osvkit zlib round trip";
    unsigned char z[512], back[512];
    uLongf zl = sizeof z, bl = sizeof back;
    if (compress(z, &zl, (const Bytef *)s, strlen(s)) != Z_OK) return 1;
    if (uncompress(back, &bl, z, zl) != Z_OK) return 2;
    printf("zlib-app: zlib %s, %lu -> %lu bytes, round trip %s, crc32 %08lx\n", zlibVersion(),
           (unsigned long)strlen(s), (unsigned long)zl,
           bl == strlen(s) && memcmp(back, s, bl) == 0 ? "ok" : "BAD",
           crc32(0, (const Bytef *)s, strlen(s)));
    return 0;
}
"""

CXX_THREADS = r"""
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
int main() {
    std::mutex m;
    long total = 0;
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; i++)
        threads.emplace_back([&, i] {
            long s = 0;
            for (int j = 0; j <= 100000; j++) s += (long)j * (i + 1);
            std::lock_guard<std::mutex> g(m);
            total += s;
        });
    for (auto &t : threads) t.join();
    std::cout << "cxx-app: " << threads.size() << " threads, total " << total << std::endl;
    return 0;
}
"""


def _compile(tmp: Path, name: str) -> tuple[Path, str]:
    if name == "zlib":
        cc, src, ext, libs = "gcc", C_ZLIB, "c", ["-lz"]
        if not Path("/usr/include/zlib.h").exists():
            missing_tool("zlib.h is not installed (install.sh installs zlib1g-dev)")
    else:
        cc, src, ext, libs = "g++", CXX_THREADS, "cc", ["-pthread"]
    if shutil.which(cc) is None:
        missing_tool(f"{cc} is not installed (install.sh installs it)")
    (tmp / f"{name}.{ext}").write_text(src)
    prog = tmp / f"{name}-app"
    subprocess.run([cc, "-O2", "-o", str(prog), str(tmp / f"{name}.{ext}"), *libs], check=True)
    line = subprocess.run([str(prog)], capture_output=True, text=True, check=True).stdout.strip()
    # the host's line is the guest's expectation: check it against literal facts first, so a
    # program that misbehaves the same way on both sides cannot pass
    if name == "zlib":
        assert re.fullmatch(r"zlib-app: zlib \S+, 70 -> \d+ bytes, round trip ok, crc32 f0225b1d",
                            line), line
    else:
        # 4 threads, thread i adds (i + 1) * (0 + 1 + ... + 100000) = (i + 1) * 5000050000
        assert line == "cxx-app: 4 threads, total 50000500000", line
    return prog, line


@pytest.mark.parametrize("name", ["zlib", "cxx"])
def test_app_runs_from_usr_img(cli, osv_kernel, qemu, tmp_path, name):
    from osvkit.run import run_image

    prog, line = _compile(tmp_path, name)
    img = tmp_path / "usr.img"
    r = cli("build", osv_kernel, "--app", prog, "-o", img, "--json")
    assert r.returncode == 0, r.stderr.decode()
    report = json.loads(r.stdout)
    if name == "zlib":
        assert "/usr/lib/libz.so.1" in {f["guest"] for f in report["files"]}
    res = run_image(img, memory="512M", timeout=180, expect=re.escape(line))
    assert res.exit_reason == "expect", res.console[-3000:]


@pytest.mark.parametrize("name", ["zlib", "cxx"])
def test_app_runs_from_vmlinux_and_rofs_disk(cli, osv_kernel, qemu, tmp_path, name):
    """QEMU's own PVH boot, and Firecracker's start state (qemu-fc) by its Linux 64-bit
    protocol and by its PVH protocol, with two vCPUs."""
    from osvkit.run import run_image

    prog, line = _compile(tmp_path, name)
    elf, disk = tmp_path / "vmlinux.elf", tmp_path / "disk.img"
    r = cli("build", osv_kernel, "--format", "vmlinux", "--app", prog, "--disk-output", disk,
            "-o", elf, "--json")
    assert r.returncode == 0, r.stderr.decode()
    cmdline = json.loads(r.stdout)["cmdline"]
    for vmm, protocol in (("qemu-pvh", "linux"), ("qemu-fc", "linux"), ("qemu-fc", "pvh")):
        res = run_image(elf, vmm=vmm, fc_protocol=protocol, cmdline=cmdline, disk=disk, cpus=2,
                        memory="512M", timeout=180, expect=re.escape(line))
        assert res.exit_reason == "expect", (vmm, protocol, res.console[-3000:])


def test_supplied_sonames_of_the_real_kernel(osv_kernel):
    from osvkit.apps import DEFAULT_SUPPLIED, supplied_sonames

    s = supplied_sonames(osv_kernel)
    assert s.source == f"kernel {osv_kernel}"
    assert set(DEFAULT_SUPPLIED) <= s.names


def test_debian_python_with_extension_modules(cli, osv_kernel, qemu, tmp_path):
    """Debian's python3.11 and its standard library: the extension modules' libraries
    (libsqlite3, libssl/libcrypto, liblzma) come from the closure of lib-dynload's objects."""
    from osvkit.run import run_image

    python, stdlib = "/usr/bin/python3.11", "/usr/lib/python3.11"
    if not (Path(python).exists() and Path(stdlib).is_dir()):
        missing_tool("Debian's python3.11 is not installed")
    # OSv splits its command on ';' and knows only double quotes
    code = ("print('py-ext:', __import__('sqlite3').sqlite_version, "
            "__import__('ssl').OPENSSL_VERSION, "
            "__import__('lzma').decompress(__import__('lzma').compress(b'ok')).decode())")
    line = subprocess.run([python, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert re.fullmatch(r"py-ext: \S+ OpenSSL \S+ .* ok", line), line
    img = tmp_path / "py.img"
    r = cli("build", osv_kernel, "--app", python, "--add", stdlib, "--exclude", "test",
            "--exclude", "tests", "--follow-symlinks-anywhere", "--env", "PYTHONHOME=/usr",
            "--cmdline", f'/python3.11 -c "{code}"', "-o", img, "--json")
    assert r.returncode == 0, r.stderr.decode()
    guests = {f["guest"] for f in json.loads(r.stdout)["files"]}
    assert {"/usr/lib/libsqlite3.so.0", "/usr/lib/libssl.so.3", "/usr/lib/liblzma.so.5"} <= guests
    res = run_image(img, memory="1G", timeout=300, expect=re.escape(line))
    assert res.exit_reason == "expect", res.console[-3000:]


def test_kernel_taken_from_an_image(cli, osv_kernel, qemu, tmp_path):
    """KERNEL may be an image holding the kernel (here a qcow2 usr.img): the supplied
    libraries are read from the kernel inside it, and the program runs."""
    from osvkit.run import run_image

    base = tmp_path / "base.qcow2"
    assert cli("build", osv_kernel, "--image-format", "qcow2", "-o", base).returncode == 0
    prog, line = _compile(tmp_path, "cxx")
    img = tmp_path / "usr.img"
    r = cli("build", base, "--app", prog, "-o", img, "--json")
    assert r.returncode == 0, r.stderr.decode()
    report = json.loads(r.stdout)
    assert report["supplied_source"] == f"kernel {base}"
    res = run_image(img, memory="512M", timeout=180, expect=re.escape(line))
    assert res.exit_reason == "expect", res.console[-3000:]
