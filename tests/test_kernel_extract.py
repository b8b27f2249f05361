"""``osvkit kernel extract`` and ``build`` from an image: the kernel ELF back out of images.

osvkit's own images are built by ``build_usr_image``; OSv-style images are assembled the way
OSv's Makefile assembles loader.img -- the compressed kernel turned into an object by the real
``objcopy -I binary`` (so its symbols are ``_binary_loader_stripped_elf_lz_start``/``_size``),
linked by the real ``ld`` at 0x101000 after a stand-in for the decompressor, padded to 32 KiB,
written at LBA 128 behind a boot sector whose count32 says how many 32 KiB chunks to load, the
ROFS partition at the next 2 MiB boundary -- and the kernel that comes out must be the
kernel that went in, byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import missing_tool
from osvkit.boot import mbr
from osvkit.errors import FormatError
from osvkit.image import lzloader
from osvkit.image.extract import extract_kernel, load_any_kernel
from osvkit.image.usrimg import build_usr_image
from osvkit.image.vmlinux import build_vmlinux
from osvkit.probe import build_probe, parse_report

MiB = 1 << 20


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("k") / "probe.elf"
    path.write_bytes(build_probe(1 * MiB + 12345))     # not a round size
    return path


def run(*argv, cwd=None):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, cwd=cwd)


# --- osvkit's own images ------------------------------------------------------------------
@pytest.mark.parametrize("image_format", ["raw", "qcow2"])
@pytest.mark.parametrize("compression", ["fastlz", "none"])
def test_extract_from_osvkit_images(cli, qemu_img, probe, tmp_path, image_format, compression):
    img = tmp_path / f"usr.{image_format}"
    fs = tmp_path / "fs.img"
    fs.write_bytes(b"R" * 5000)
    build_usr_image(probe, img, compression=compression, image_format=image_format,
                    cmdline="--rootfs=rofs /x", partition=fs, size="8M")
    out = tmp_path / "loader.elf"
    r = cli("kernel", "extract", img, "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == probe.read_bytes()
    d = json.loads(r.stdout)
    assert d["payload"] == ("osvkit-lz" if compression == "fastlz" else "uncompressed")
    assert (d["source"], d["image_format"], d["boot"]) == ("disk-image", image_format,
                                                           "osvkit-boot16")
    assert (d["size"], d["sha256"]) == (len(probe.read_bytes()),
                                        hashlib.sha256(probe.read_bytes()).hexdigest())
    assert (out.stat().st_mode & 0o777) == 0o755


@pytest.mark.parametrize("size", [64 * 1024, 6 * MiB])
def test_uncompressed_payload_length_is_the_elf_extent(tmp_path, size):
    kernel = build_probe(size)
    img = tmp_path / "usr.img"
    build_usr_image(kernel, img, compression="none")
    assert extract_kernel(img).data == kernel


def test_kernel_files_are_returned_as_they_are(probe, tmp_path):
    ex = extract_kernel(probe)
    assert (ex.source, ex.payload, ex.data) == ("kernel-elf", "elf", probe.read_bytes())
    # osvkit's vmlinux keeps the boot contract: as it is, and it builds a bootable usr.img
    vml = tmp_path / "vmlinux.elf"
    build_vmlinux(probe, vml)
    assert extract_kernel(vml).data == vml.read_bytes() != probe.read_bytes()
    # OSv's vmlinuz.bin: a 2 KiB Linux setup header + stub, then loader-stripped.elf
    setup = bytearray(2048)
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x202:0x206] = b"HdrS"
    vmlinuz = tmp_path / "vmlinuz.bin"
    vmlinuz.write_bytes(bytes(setup) + probe.read_bytes())
    ex = extract_kernel(vmlinuz)
    assert (ex.source, ex.data) == ("vmlinuz", probe.read_bytes())


# --- images assembled the way OSv's build does --------------------------------------------
LINKER_SCRIPT = """\
OUTPUT_ARCH(i386)
OUTPUT_FORMAT(elf32-i386)
SECTIONS
{
    . = 0x100000 + 0x1000;
    .text : { *(.text) }
    .rodata : { *(.rodata .rodata.*) }
    .data : { *(.data) }
    .bss : { *(.bss) }
} ENTRY(uncompress_loader)
"""
DECOMPRESSOR_STANDIN = """\
.text
.globl uncompress_loader
uncompress_loader:
    .fill 0x2a3, 1, 0x90
    ret
"""


@pytest.fixture(scope="module")
def binutils():
    for tool in ("as", "ld", "objcopy", "strip"):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} is not installed (install.sh installs binutils)")


def osv_lzloader(workdir: Path, blob: bytes, *, stripped: bool = False) -> bytes:
    """lzloader.elf as OSv's Makefile links it (blob object first, then the code)."""
    workdir.mkdir()
    (workdir / "loader-stripped.elf.lz").write_bytes(blob)
    run("objcopy", "-B", "i386", "-I", "binary", "-O", "elf32-i386", "loader-stripped.elf.lz",
        "loader-stripped.elf.lz.o", cwd=workdir)
    (workdir / "stub.S").write_text(DECOMPRESSOR_STANDIN)
    run("as", "--32", "-o", "stub.o", "stub.S", cwd=workdir)
    (workdir / "lzloader.ld").write_text(LINKER_SCRIPT)
    run("ld", "-m", "elf_i386", "-o", "lzloader.elf", "-z", "max-page-size=4096",
        "-T", "lzloader.ld", "loader-stripped.elf.lz.o", "stub.o", cwd=workdir)
    if stripped:
        run("strip", "lzloader.elf", cwd=workdir)
    data = (workdir / "lzloader.elf").read_bytes()
    return data + bytes(-len(data) % 32768)            # truncate -s %32768


def osv_image(path: Path, lzelf: bytes, *, cmdline: bytes, rofs: bytes = b"") -> None:
    """loader.img (OSv-like boot sector, cmdline at 512, lzloader.elf at LBA 128), with the
    application partition at the next 2 MiB boundary, as scripts/build lays out usr.img."""
    boot = bytearray(512)
    boot[0:5] = b"\xEA\x6C\x7C\x00\x00"                       # a far jump, like OSv's boot16
    boot[0x10:0x12] = (len(lzelf) // 32768).to_bytes(2, "little")      # imgedit setsize
    boot[0x1B8:0x1BE] = b"VSO\0\0\0"
    boot[0x1FE:] = b"\x55\xaa"
    kernel_end = -(-(65536 + len(lzelf)) // (2 * MiB)) * (2 * MiB)
    part = mbr.partition_entry_osv(kernel_end // 512, -(-len(rofs) // 512))
    boot = mbr.set_partition(bytes(boot), 1, part)
    img = bytearray(kernel_end + len(rofs) + (-len(rofs) % 512))
    img[0:512] = boot
    img[512:512 + len(cmdline) + 1] = cmdline + b"\0"
    img[0x10000:0x10000 + len(lzelf)] = lzelf
    img[kernel_end:kernel_end + len(rofs)] = rofs
    path.write_bytes(img)


def _kernel_under_test(osv_kernel_path=None) -> bytes:
    if osv_kernel_path is not None:
        return Path(osv_kernel_path).read_bytes()
    return build_probe(3 * MiB + 777)                # 4 lz segments, the last one short


@pytest.mark.parametrize("variant", ["symbols", "stripped", "single-block"])
def test_extract_from_osv_built_images(cli, binutils, qemu_img, tmp_path, variant):
    kernel = _kernel_under_test()
    blob = lzloader.fastlz_compress(kernel) if variant == "single-block" \
        else lzloader.compress(kernel)
    lzelf = osv_lzloader(tmp_path / "build", blob, stripped=variant == "stripped")
    raw = tmp_path / "usr.raw"
    osv_image(raw, lzelf, cmdline=b"--rootfs=rofs /hello", rofs=b"\xad\xbe" * 3000)
    qcow = tmp_path / "usr.qcow2"
    run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow)
    for img in (raw, qcow):
        out = tmp_path / f"{img.name}.elf"
        r = cli("kernel", "extract", img, "-o", out, "--json")
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == kernel, (variant, img)
        d = json.loads(r.stdout)
        assert d["boot"] == "osv-boot16"
        assert d["payload"] == ("osv-lzloader-single-block" if variant == "single-block"
                                else "osv-lzloader")
    # the lzloader.elf file itself is a source too
    lzfile = tmp_path / "lzloader.elf"
    lzfile.write_bytes(lzelf)
    assert extract_kernel(lzfile).data == kernel


def test_extract_real_osv_kernel_through_osv_layout(osv_kernel, binutils, tmp_path):
    kernel = _kernel_under_test(osv_kernel)
    lzelf = osv_lzloader(tmp_path / "build", lzloader.compress(kernel))
    img = tmp_path / "loader.img"
    osv_image(img, lzelf, cmdline=b"")
    assert extract_kernel(img).data == kernel


# --- no kernel, truncated ------------------------------------------------------------------
def test_truncated_images_are_a_clear_error(cli, probe, tmp_path):
    img = tmp_path / "usr.img"
    build_usr_image(probe, img)
    data = img.read_bytes()
    cases = [
        (400_000, "truncated: the payload at LBA 128 needs "),       # cut inside the lz blob
        (0x10000 + 20, "truncated: the payload at LBA 128 needs "),  # just past LBA 128
        (0x8000, "image ends before LBA 128, where the kernel would be: no kernel to recover"),
    ]
    for n, words in cases:
        cut = tmp_path / f"cut{n}.img"
        cut.write_bytes(data[:n])
        out = tmp_path / "k.elf"
        r = cli("kernel", "extract", cut, "-o", out)
        err = r.stderr.decode()
        assert r.returncode == 65, (n, err)
        assert err.startswith(f"error: {cut}: ") and words in err and err.count("\n") == 1, err
        assert not out.exists()


def test_images_without_a_kernel(cli, tmp_path):
    sector = bytearray(512)
    sector[0x1FE:] = b"\x55\xaa"
    empty = tmp_path / "disk.img"                       # OSv's kernel-less disk.bin + data
    empty.write_bytes(bytes(sector) + bytes(4 * MiB))
    loads_zeros = tmp_path / "zeros.img"
    sector[0x10:0x12] = (4).to_bytes(2, "little")
    loads_zeros.write_bytes(bytes(sector) + bytes(4 * MiB))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an image" * 100)
    for path, words in ((empty, "the boot sector loads nothing from LBA 128"),
                        (loads_zeros, "no kernel at LBA 128: the payload is all zeros"),
                        (junk, "not an ELF file, expected an ELF64 x86-64 kernel, or a disk "
                               "image holding one")):
        r = cli("kernel", "extract", path, "-o", tmp_path / "k.elf")
        err = r.stderr.decode()
        assert r.returncode == 65 and words in err and err.count("\n") == 1, err
    with pytest.raises(FormatError, match="expected an image with a kernel"):
        extract_kernel(empty)


def test_extract_refuses_to_overwrite_its_input(cli, probe, tmp_path):
    img = tmp_path / "usr.img"
    build_usr_image(probe, img)
    before = img.read_bytes()
    r = cli("kernel", "extract", img, "-o", img)
    assert r.returncode == 64 and b"the output is the image to extract from" in r.stderr
    assert img.read_bytes() == before
    from osvkit.errors import UsageError
    from osvkit.image.extract import write_kernel
    with pytest.raises(UsageError, match="the output is the image to extract from"):
        write_kernel(img, img)
    assert img.read_bytes() == before


# --- build KERNEL, where KERNEL is an image ----------------------------------------------
def test_build_vmlinux_from_an_image_equals_build_from_the_elf(cli, qemu_img, probe, tmp_path):
    img = tmp_path / "usr.qcow2"
    build_usr_image(probe, img, image_format="qcow2")
    a, b = tmp_path / "a.elf", tmp_path / "b.elf"
    assert cli("build", probe, "--format", "vmlinux", "-o", a).returncode == 0
    r = cli("build", img, "--format", "vmlinux", "-o", b)
    assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
    assert load_any_kernel(img).path == str(img)


def test_build_refuses_its_image_as_output(cli, probe, tmp_path):
    img = tmp_path / "usr.img"
    build_usr_image(probe, img)
    before = img.read_bytes()
    r = cli("build", img, "-o", img)
    assert r.returncode == 64, r.stderr
    assert img.read_bytes() == before


@pytest.mark.qemu
def test_build_from_an_image_boots(cli, qemu, probe, tmp_path):
    from osvkit.run import run_image

    src = tmp_path / "old.img"
    build_usr_image(probe, src, compression="none", cmdline="old")
    new = tmp_path / "new.img"
    r = cli("build", src, "-o", new, "--cmdline", "--from-image")
    assert r.returncode == 0, r.stderr
    assert extract_kernel(new).data == probe.read_bytes()
    res = run_image(new, vmm="qemu", accel="tcg", memory="256M", timeout=120)
    rep = parse_report(res.console)
    assert res.exit_reason == "poweroff", res.console[-2000:]
    assert rep.complete and rep.image_ok is True and rep.cmdline == "--from-image"


def test_build_file_kernel_may_be_an_image(cli, qemu_img, probe, tmp_path):
    img = tmp_path / "base.qcow2"
    build_usr_image(probe, img, image_format="qcow2", cmdline="old")
    (tmp_path / "osvkit.toml").write_text(
        'spec = 1\n[[image]]\nname = "app"\nkernel = "base.qcow2"\ncmdline = "/hello"\n'
        '[image.outputs]\nusr = "out/app.img"\nvmlinux = "out/app.elf"\n')
    r = cli("build", "-c", tmp_path / "osvkit.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert extract_kernel(tmp_path / "out" / "app.img").data == probe.read_bytes()
    assert load_any_kernel(tmp_path / "out" / "app.elf").start32 == \
        load_any_kernel(probe).start32


def test_a_payload_claiming_terabytes_is_not_read_whole(qemu_img, probe, tmp_path):
    """boot16's payload_sectors is a u32: a damaged one claims 2 TiB, which a sparse qcow2
    image of that virtual size can 'hold'.  Only what the payload's own header needs is read."""
    from osvkit.boot import boot16

    raw = tmp_path / "usr.img"
    build_usr_image(probe, raw)
    data = bytearray(raw.read_bytes())
    at = boot16.BOOT16_OFFSETS["payload_sectors"]
    data[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    raw.write_bytes(bytes(data))
    big = tmp_path / "big.qcow2"
    run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, big)
    run(qemu_img, "resize", "-q", big, "3T")
    assert extract_kernel(big).data == probe.read_bytes()
    # a blob whose own header claims a gigabyte more than the image holds
    at = 0x10000 + 0x14                                   # the payload header's blob_size
    data[at:at + 4] = (0x7FFFFFFF).to_bytes(4, "little")
    raw.write_bytes(bytes(data))
    run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, big)
    run(qemu_img, "resize", "-q", big, "3T")
    with pytest.raises(FormatError, match="more than a kernel below 1 GiB can take"):
        extract_kernel(big)
