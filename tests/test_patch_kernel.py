"""Replacing an image's kernel (the library side of ``osvkit patch --kernel``).

The oracle for a patch that moves the partition is a fresh ``build`` of the same kernel,
command line, partition and size: the two images must be byte-identical.  Patched images
boot (QEMU TCG, SeaBIOS) and the probe reports the moved partition entry."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import missing_tool
from osvkit.boot import mbr
from osvkit.disk import open_disk
from osvkit.disk.partitions import partition_table
from osvkit.errors import FormatError, KernelError, UsageError
from osvkit.image import lzloader
from osvkit.image.extract import extract_kernel
from osvkit.image.patch import replace_kernel
from osvkit.image.usrimg import build_usr_image
from osvkit.probe import build_probe, parse_report

MiB = 1 << 20
CMDLINE = "--rootfs=rofs /hello 'a b'"


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernels")
    small, big = d / "small.elf", d / "big.elf"
    small.write_bytes(build_probe(1 * MiB))
    big.write_bytes(build_probe(6 * MiB))      # its payload (~3.3 MiB) passes 2 MiB
    return small, big


@pytest.fixture
def fs(tmp_path) -> Path:
    p = tmp_path / "fs.img"
    p.write_bytes(hashlib.sha256(b"seed").digest() * 9000)     # 288,000 bytes
    return p


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def guest_bytes(path: Path) -> bytes:
    with open_disk(path) as d:
        return d.read(0, d.size)


@pytest.mark.parametrize("image_format", ["raw", "qcow2"])
def test_patch_that_moves_the_partition_equals_a_fresh_build(kernels, fs, tmp_path, image_format,
                                                             request):
    if image_format == "qcow2":
        request.getfixturevalue("qemu_img")
    small, big = kernels
    img = tmp_path / f"usr.{image_format}"
    build_usr_image(small, img, cmdline=CMDLINE, partition=fs, size="16M",
                    image_format=image_format)
    r = replace_kernel(img, big)
    assert r.moved == [{"index": 1, "old_offset": 2 * MiB, "new_offset": 4 * MiB,
                        "size": 288256}]
    assert (r.kernel_end, r.image_size, r.image_format) == (4 * MiB, 18 * MiB, image_format)
    fresh = tmp_path / f"fresh.{image_format}"
    build_usr_image(big, fresh, cmdline=CMDLINE, partition=fs, size="18M",
                    image_format=image_format)
    assert guest_bytes(img) == guest_bytes(fresh)
    if image_format == "raw":
        assert img.read_bytes() == fresh.read_bytes()
    with open_disk(img) as d:
        part = partition_table(d)[1]
        entry = d.read(0x1BE + 16, 16)
    assert (part.offset, part.sector_count) == (4 * MiB, 563)
    assert entry == mbr.partition_entry_osv(8192, 563)


def test_smaller_kernel_keeps_the_partition_where_it_is(kernels, fs, tmp_path):
    small, big = kernels
    img = tmp_path / "usr.img"
    build_usr_image(big, img, cmdline=CMDLINE, partition=fs)
    before = img.read_bytes()
    r = replace_kernel(img, small, compression="none")
    after = img.read_bytes()
    assert r.moved == [] and len(after) == len(before)
    assert after[0x1BE:0x1FE] == before[0x1BE:0x1FE]             # the table, byte for byte
    assert after[512:0x10000] == before[512:0x10000]             # the command-line area
    assert after[4 * MiB:] == before[4 * MiB:]                   # the partition
    end = 0x10000 + r.payload_sectors * 512
    assert after[end:4 * MiB] == bytes(4 * MiB - end)            # no stale lz bytes
    assert extract_kernel(img).data == small.read_bytes()


def test_output_leaves_the_image_untouched_and_is_deterministic(kernels, fs, tmp_path):
    small, big = kernels
    img = tmp_path / "usr.img"
    build_usr_image(small, img, cmdline=CMDLINE, partition=fs)
    before = sha(img)
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    replace_kernel(img, big, output=a)
    replace_kernel(img, big, output=b)
    assert sha(img) == before and a.read_bytes() == b.read_bytes()
    # the kernel may come from another image
    c = tmp_path / "c.img"
    replace_kernel(img, a, output=c)
    assert c.read_bytes() == a.read_bytes()


@pytest.mark.qemu
def test_patched_image_boots_the_new_kernel(qemu, kernels, fs, tmp_path):
    from osvkit.run import run_image

    small, big = kernels
    img = tmp_path / "usr.img"
    build_usr_image(small, img, cmdline=CMDLINE, partition=fs)
    replace_kernel(img, big)
    res = run_image(img, vmm="qemu", accel="tcg", memory="256M", timeout=180)
    rep = parse_report(res.console)
    assert res.exit_reason == "poweroff", res.console[-2000:]
    assert rep.complete and rep.image_ok is True and rep.cmdline == CMDLINE
    assert rep.mbr_partitions[16:32] == mbr.partition_entry_osv(8192, 563)


@pytest.mark.qemu
def test_patch_an_osv_layout_image(qemu, qemu_img, kernels, tmp_path):
    """An image in OSv's layout (OSv's boot sector, lzloader.elf at LBA 128, ROFS at 2 MiB,
    qcow2) gets osvkit's boot16 and the new kernel, keeps its partition, and boots."""
    from test_kernel_extract import osv_image, osv_lzloader
    from osvkit.run import run_image

    for tool in ("as", "ld", "objcopy"):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} is not installed (install.sh installs binutils)")
    small, big = kernels
    rofs = b"\x5a" * 100_000
    lzelf = osv_lzloader(tmp_path / "build", lzloader.compress(small.read_bytes()))
    raw = tmp_path / "osv.raw"
    osv_image(raw, lzelf, cmdline=CMDLINE.encode(), rofs=rofs)
    img = tmp_path / "usr.qcow2"
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, img], check=True)
    r = replace_kernel(img, big)
    assert r.moved[0]["new_offset"] == 4 * MiB and r.image_format == "qcow2"
    with open_disk(img) as d:
        part = partition_table(d)[1]
        assert d.read(part.offset, len(rofs)) == rofs
    assert extract_kernel(img).data == big.read_bytes()
    res = run_image(img, vmm="qemu", accel="tcg", memory="256M", timeout=180)
    rep = parse_report(res.console)
    assert rep.complete and rep.image_ok is True and rep.cmdline == CMDLINE, res.console[-2000:]


def test_bad_input_leaves_everything_unchanged(kernels, fs, tmp_path):
    small, big = kernels
    img = tmp_path / "usr.img"
    build_usr_image(small, img, cmdline=CMDLINE, partition=fs)
    before = sha(img)
    notelf = tmp_path / "notelf"
    notelf.write_bytes(b"MZ" + bytes(4000))
    with pytest.raises(KernelError, match="not an ELF file"):
        replace_kernel(img, notelf)
    with pytest.raises(UsageError, match="compression 'lz4'"):
        replace_kernel(img, big, compression="lz4")
    with pytest.raises(UsageError, match="the output is the kernel of this patch"):
        replace_kernel(img, big, output=big)
    assert sha(img) == before
    # a partition inside the boot area (OSv's kernel-less disk puts one at 512)
    data = bytearray(img.read_bytes())
    data[0:512] = mbr.set_partition(bytes(data[0:512]), 1, mbr.partition_entry_osv(1, 100))
    odd = tmp_path / "odd.img"
    odd.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="partition 1 starts at 0x200, inside the boot area"):
        replace_kernel(odd, big)
    # no boot sector at all
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(4 * MiB))
    with pytest.raises(FormatError, match=r"no MBR \(55 aa\)"):
        replace_kernel(blank, big)
    assert blank.read_bytes() == bytes(4 * MiB) and odd.read_bytes() == bytes(data)
