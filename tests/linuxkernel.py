"""A real Linux kernel and a tiny initramfs for the Linux witness tests.

The kernel is Debian's ``linux-image-<release>-amd64-unsigned`` package, fetched with
``apt-get download`` into a cache directory the first time the tests run
(``$OSVKIT_TEST_CACHE``, else ``$XDG_CACHE_HOME/osvkit-tests``, else ``~/.cache/osvkit-tests``);
later runs reuse the cached package and never touch the network.  The release is the one
Debian's ``linux-image-amd64`` metapackage depends on (``apt-cache depends``).

From the package's ``/boot/vmlinuz-*`` (a bzImage) the vmlinux ELF is extracted the way the
kernel's own ``scripts/extract-vmlinux`` does it: look for the magic of each compressor the
kernel supports, decompress from there, keep the first result that is an ELF.  This is done
here, independently of ``osvkit.image.linux``, so that the inspect tests can compare the two.

The initramfs holds one static program, ``/init``, compiled with ``gcc -static``: it mounts
/proc and prints (one ``INIT`` line each) the command line, the CPU count and the System RAM
lines of /proc/iomem, then ``INIT done`` and powers off.  The cpio ("newc") archive is
written here in Python.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

METAPACKAGE = "linux-image-amd64"


class Unavailable(Exception):
    """A tool, the network or the Debian archive is missing: the caller skips (or fails
    under ``OSVKIT_REQUIRE_TOOLS=1``) with this message."""


@dataclass(frozen=True)
class LinuxKernel:
    deb: Path               # the cached .deb
    package: str            # e.g. linux-image-6.1.0-57-amd64-unsigned
    version: str            # Debian package version, e.g. 6.1.192-3
    release: str            # uname -r, e.g. 6.1.0-57-amd64
    bzimage: Path           # /boot/vmlinuz-<release> from the package
    vmlinux: Path           # the ELF extracted from it
    payload_offset: int     # file offset of the compressed payload inside the bzImage
    compression: str        # the compressor whose magic was found there
    config: Path            # /boot/config-<release>: the kernel's build configuration

    def config_value(self, name: str) -> str | None:
        """``CONFIG_<name>``'s value (``y``, ``0x1000000``, ...), None when not set."""
        m = re.search(rf"^CONFIG_{name}=(.*)$", self.config.read_text(), re.M)
        return m.group(1) if m else None


def cache_dir() -> Path:
    value = os.environ.get("OSVKIT_TEST_CACHE")
    if value:
        path = Path(value)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(base) / "osvkit-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(argv, **kw) -> subprocess.CompletedProcess:
    if shutil.which(argv[0]) is None:
        raise Unavailable(f"{argv[0]} is not installed (Debian's apt/dpkg are needed to fetch "
                          f"the Linux test kernel)")
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def _candidate_package() -> str:
    """The kernel package Debian's metapackage currently points at, ``-unsigned`` flavour."""
    proc = _run(["apt-cache", "depends", METAPACKAGE])
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)\s*$", proc.stdout, re.M)
    if proc.returncode or not m:
        raise Unavailable(f"apt-cache knows no {METAPACKAGE} (run apt-get update; "
                          f"{proc.stderr.strip() or 'no Depends line'})")
    return m.group(1) + "-unsigned"


def _cached_debs(cache: Path) -> list[Path]:
    return sorted(cache.glob("linux-image-*-amd64-unsigned_*_amd64.deb"))


def fetch_deb(cache: Path) -> Path:
    """The cached kernel package; downloaded with ``apt-get download`` when none is cached."""
    cached = _cached_debs(cache)
    if cached:
        return cached[-1]
    package = _candidate_package()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        proc = _run(["apt-get", "download", package], cwd=tmp, timeout=900)
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode or len(debs) != 1:
            raise Unavailable(f"apt-get download {package} failed: "
                              f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        final = cache / debs[0].name
        os.replace(debs[0], final)          # atomic: a half download is never cached
    return final


def _deb_field(deb: Path, name: str) -> str:
    proc = _run(["dpkg-deb", "--field", str(deb), name])
    if proc.returncode:
        raise Unavailable(f"dpkg-deb cannot read {deb}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def extract_boot_files(deb: Path, dest: Path) -> None:
    """``/boot/vmlinuz-*`` and ``/boot/config-*`` from the package into ``dest`` (streamed
    out of ``dpkg-deb --fsys-tarfile``)."""
    if shutil.which("dpkg-deb") is None:
        raise Unavailable("dpkg-deb is not installed")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    wanted = {"vmlinuz", "config"}
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                m = re.fullmatch(r"\./boot/(vmlinuz|config)-[^/]+", member.name)
                if m and member.isfile():
                    _write_atomic(dest / os.path.basename(member.name),
                                  tar.extractfile(member).read())
                    wanted.discard(m.group(1))
                    if not wanted:
                        break
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    if wanted:
        raise AssertionError(f"{deb} holds no ./boot/{'-*, ./boot/'.join(sorted(wanted))}-*")


# compressor magics, as scripts/extract-vmlinux searches for them
MAGICS = [
    ("gzip", b"\x1f\x8b\x08"),
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
]


def _decompress(kind: str, data: bytes) -> bytes | None:
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if kind == "xz":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
        if kind == "lzma":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
        if kind == "zstd":
            import zstandard
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except (lzma.LZMAError, OSError, EOFError, zlib.error, ValueError, ImportError):
        return None
    return None


def extract_vmlinux(bzimage: bytes) -> tuple[bytes, int, str]:
    """(vmlinux ELF, payload file offset, compressor) by magic search, like extract-vmlinux."""
    for kind, magic in MAGICS:
        start = 0
        while (pos := bzimage.find(magic, start)) >= 0:
            out = _decompress(kind, bzimage[pos:])
            if out and out[:4] == b"\x7fELF":
                return out, pos, kind
            start = pos + 1
    raise AssertionError("no compressed ELF found in the bzImage")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def linux_kernel() -> LinuxKernel:
    """Fetch (once), extract (once, cached next to the package) and describe the kernel."""
    cache = cache_dir()
    deb = fetch_deb(cache)
    package = _deb_field(deb, "Package")
    version = _deb_field(deb, "Version")
    m = re.fullmatch(r"linux-image-(.+-amd64)-unsigned", package)
    assert m, package
    release = m.group(1)
    work = cache / f"{package}_{version}"
    work.mkdir(exist_ok=True)
    bzimage = work / f"vmlinuz-{release}"
    config = work / f"config-{release}"
    if not bzimage.is_file() or not config.is_file():
        extract_boot_files(deb, work)
    vmlinux = work / "vmlinux"
    meta = work / "payload"
    data = bzimage.read_bytes()
    if not vmlinux.is_file() or not meta.is_file():
        elf, offset, kind = extract_vmlinux(data)
        _write_atomic(vmlinux, elf)
        _write_atomic(meta, f"{offset} {kind}\n".encode())
    offset, kind = meta.read_text().split()
    return LinuxKernel(deb, package, version, release, bzimage, vmlinux, int(offset), kind,
                       config)


# ------------------------------------------------------------------------------------------
# the initramfs
# ------------------------------------------------------------------------------------------
INIT_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
    char line[4096];
    FILE *f;
    int cpus = 0;

    if (mount("proc", "/proc", "proc", 0, NULL) != 0)
        perror("INIT mount /proc");
    f = fopen("/proc/cmdline", "r");
    if (f && fgets(line, sizeof line, f))
        printf("INIT cmdline: %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "processor", 9) == 0)
            cpus++;
    if (f)
        fclose(f);
    printf("INIT cpus: %d\n", cpus);
    f = fopen("/proc/iomem", "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "System RAM"))
            printf("INIT ram: %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/uptime", "r");
    if (f && fgets(line, sizeof line, f))
        printf("INIT uptime: %s", line);
    if (f)
        fclose(f);
    printf("INIT done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
"""


def build_init(dest: Path) -> Path:
    """``/init``: the program above, ``gcc -static``."""
    if shutil.which("gcc") is None:
        raise Unavailable("gcc is not installed (install.sh installs gcc and libc6-dev)")
    src = dest / "init.c"
    src.write_text(INIT_C)
    out = dest / "init"
    proc = subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(out), str(src)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise Unavailable(f"gcc -static failed (libc6-dev missing?): {proc.stderr.strip()[-300:]}")
    return out


def cpio_entry(name: str, mode: int, data: bytes = b"", *, ino: int,
               rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One "newc" (070701) cpio record: 110-byte ASCII header, name + NUL, data, each padded
    to 4 bytes."""
    raw_name = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw_name), 0)
    record = b"070701" + "".join(f"{v:08x}" for v in fields).encode() + raw_name
    record += b"\0" * (-len(record) % 4)
    return record + data + b"\0" * (-len(data) % 4)


def build_initramfs(init: bytes, *, compress: bool = True) -> bytes:
    """The archive: /dev, /dev/console (char 5:1), /proc, /init; gzip'd unless told not to."""
    arc = (cpio_entry("dev", 0o040755, ino=1)
           + cpio_entry("dev/console", 0o020600, ino=2, rdev=(5, 1))
           + cpio_entry("proc", 0o040755, ino=3)
           + cpio_entry("init", 0o100755, init, ino=4)
           + cpio_entry("TRAILER!!!", 0, ino=0))
    arc += b"\0" * (-len(arc) % 512)
    return gzip.compress(arc, mtime=0) if compress else arc


# ------------------------------------------------------------------------------------------
# reading the console
# ------------------------------------------------------------------------------------------
E820_LINE = re.compile(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (.+?)\s*$", re.M)
E820_TYPES = {"usable": 1, "reserved": 2, "ACPI data": 3, "ACPI NVS": 4, "unusable": 5}


def console_e820(console: str) -> list[tuple[int, int, int]]:
    """The ``BIOS-e820`` lines Linux prints, as (addr, size, type), in Linux's order."""
    out = []
    for m in E820_LINE.finditer(console):
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        out.append((start, end + 1 - start, E820_TYPES.get(m.group(3), -1)))
    return out


@dataclass
class InitReport:
    cmdline: str
    cpus: int
    ram: list[tuple[int, int]]      # System RAM ranges (start, end inclusive) from /proc/iomem
    uptime: float


def init_report(console: str) -> InitReport:
    text = console.replace("\r\n", "\n")
    cmd = re.search(r"^INIT cmdline: (.*)$", text, re.M)
    cpus = re.search(r"^INIT cpus: (\d+)$", text, re.M)
    up = re.search(r"^INIT uptime: ([0-9.]+)", text, re.M)
    assert cmd and cpus and up and re.search(r"^INIT done$", text, re.M), text[-3000:]
    ram = [(int(a, 16), int(b, 16)) for a, b in
           re.findall(r"^INIT ram: ([0-9a-f]+)-([0-9a-f]+) : System RAM$", text, re.M)]
    return InitReport(cmd.group(1), int(cpus.group(1)), ram, float(up.group(1)))


def kernel_time(console: str, message: str) -> float | None:
    """The printk timestamp of the first console line containing ``message``."""
    m = re.search(r"^\[\s*([0-9]+\.[0-9]+)\] .*" + re.escape(message), console, re.M)
    return float(m.group(1)) if m else None
