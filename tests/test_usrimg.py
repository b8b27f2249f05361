"""usr.img builder: layout, MBR entry, command-line limits, errors, determinism, CLI."""

from __future__ import annotations

import json
import os
import stat
import struct

import pytest

from osvkit.boot import boot16, lzdecomp
from osvkit.errors import (CmdlineError, KernelError, LayoutError, MissingInputError,
                           OutputError, UsageError)
from osvkit.image import lzloader
from osvkit.image.kernel import check_kernel
from osvkit.image.usrimg import build_usr_image, parse_size

from test_bios_boot_kernel import mini_kernel

MiB = 1 << 20


@pytest.fixture(scope="module")
def kernel_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("k") / "kernel.elf"
    path.write_bytes(mini_kernel(0x30000))
    return path


def test_layout_exact(kernel_file, tmp_path):
    out = tmp_path / "usr.img"
    r = build_usr_image(kernel_file, out, cmdline="--rootfs=rofs /hello")
    img = out.read_bytes()
    kernel = kernel_file.read_bytes()
    payload = lzdecomp.build_payload(lzloader.compress(kernel), len(kernel))
    sectors = -(-len(payload) // 512)
    assert r.payload_sectors == sectors and r.payload_size == len(payload)
    hdr = boot16.parse_header(img[:512])
    assert (hdr.payload_sectors, hdr.load_addr, hdr.decompressor_entry) == (sectors, 0x100000, 0x100000)
    assert struct.unpack_from("<H", img, 0x10)[0] == -(-sectors * 512 // 32768)  # count32
    assert img[512:512 + 21] == b"--rootfs=rofs /hello\0"
    assert img[0x10000:0x10000 + len(payload)] == payload
    assert img[0x10000:0x1000C] == b"\xEB\x1E\x00\x00osvkitLZ"
    # no filesystem: an empty entry at the next 2 MiB boundary (LBA 4096), OSv CHS packing:
    # LBA 4096 = track 65 (head 65, cylinder 0), sector 4096 - 65*63 + 1 = 2
    assert img[0x1BE:0x1CE] == bytes(16)
    assert img[0x1CE:0x1DE] == bytes.fromhex("00 41 0200 83 41 0200 00100000 00000000")
    assert img[0x1DE:0x1FE] == bytes(32)
    assert img[0x1B8:0x1BE] == b"VSO\0\0\0" and img[510:512] == b"\x55\xaa"
    assert len(img) == r.image_size == 2 * MiB == r.kernel_end


def test_partition_placed_at_2mib_boundary(kernel_file, tmp_path):
    fs = tmp_path / "rofs.img"
    fs.write_bytes(bytes(range(256)) * 19 + b"tail")  # 4868 bytes -> 10 sectors
    out = tmp_path / "usr.img"
    r = build_usr_image(kernel_file, out, partition=fs)
    img = out.read_bytes()
    # end CHS from LBA 4096 + 10 = 4106: track 65, sector 4106 - 4095 + 1 = 12
    assert img[0x1CE:0x1DE] == bytes.fromhex("00 41 0200 83 41 0c00 00100000 0a000000")
    assert img[0x200000:0x200000 + 4868] == fs.read_bytes()
    assert len(img) == 0x200000 + 10 * 512 == r.image_size
    assert r.partition_offset == 0x200000 and r.partition_size == 5120


def test_size_option(kernel_file, tmp_path):
    out = tmp_path / "usr.img"
    assert build_usr_image(kernel_file, out, size="8M").image_size == 8 * MiB
    assert out.stat().st_size == 8 * MiB
    with pytest.raises(LayoutError, match="smaller than the content"):
        build_usr_image(kernel_file, out, size="1M")
    assert parse_size("64K") == 65536 and parse_size("1G") == 1 << 30 and parse_size(4096) == 4096
    with pytest.raises(UsageError):
        parse_size("lots")


def test_uncompressed_payload(kernel_file, tmp_path):
    out = tmp_path / "usr.img"
    r = build_usr_image(kernel_file, out, compression="none")
    img = out.read_bytes()
    kernel = kernel_file.read_bytes()
    assert img[0x10000:0x10000 + len(kernel)] == kernel
    hdr = boot16.parse_header(img)
    assert hdr.load_addr == 0x200000 and hdr.decompressor_entry == boot16.no_decompressor_addr()
    assert r.payload_sectors == len(kernel) // 512


@pytest.mark.parametrize("cmdline", ["", "a", "x" * 1023, 'say "hi" \\ there'])
def test_cmdline_written_nul_terminated(kernel_file, tmp_path, cmdline):
    out = tmp_path / "usr.img"
    build_usr_image(kernel_file, out, cmdline=cmdline)
    data = cmdline.encode()
    assert out.read_bytes()[512:512 + len(data) + 1] == data + b"\0"


def test_cmdline_limits(kernel_file, tmp_path):
    out = tmp_path / "usr.img"
    with pytest.raises(CmdlineError, match="1024 bytes, too long for osv"):
        build_usr_image(kernel_file, out, cmdline="x" * 1024)
    assert not out.exists()
    build_usr_image(kernel_file, out, cmdline="x" * 32255, force_cmdline=True)
    assert out.read_bytes()[512 + 32255] == 0
    with pytest.raises(CmdlineError, match="too long for bios"):
        build_usr_image(kernel_file, tmp_path / "b.img", cmdline="x" * 32256, force_cmdline=True)
    with pytest.raises(CmdlineError, match="NUL"):
        build_usr_image(kernel_file, tmp_path / "c.img", cmdline="a\0b")


def test_kernel_validation(tmp_path):
    out = tmp_path / "usr.img"
    notelf = tmp_path / "notelf"
    notelf.write_bytes(b"MZ" + bytes(5000))
    with pytest.raises(KernelError, match="notelf: not an ELF file"):
        build_usr_image(notelf, out)
    elf32 = tmp_path / "elf32"
    elf32.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(5000))
    with pytest.raises(KernelError, match="ELF32"):
        build_usr_image(elf32, out)
    k = bytearray(mini_kernel(0x4000))
    k[18:20] = struct.pack("<H", 3)  # e_machine EM_386
    (tmp_path / "i386").write_bytes(k)
    with pytest.raises(KernelError, match="machine"):
        build_usr_image(tmp_path / "i386", out)
    k = bytearray(mini_kernel(0x4000))
    struct.pack_into("<Q", k, 64 + 24, 0x300000)  # p_paddr
    (tmp_path / "high").write_bytes(k)
    with pytest.raises(KernelError, match="physical 0x300000, expected physical 0x200000"):
        build_usr_image(tmp_path / "high", out)
    k = bytearray(mini_kernel(0x4000))
    struct.pack_into("<Q", k, 0x800, 0)  # empty start32 slot
    (tmp_path / "noslot").write_bytes(k)
    with pytest.raises(KernelError, match="start32 slot"):
        build_usr_image(tmp_path / "noslot", out)
    with pytest.raises(MissingInputError, match="no such file"):
        build_usr_image(tmp_path / "missing", out)
    assert not out.exists()


@pytest.mark.parametrize("cut, message", [
    (100, r"the program headers \(1 x 56 bytes at offset 0x40\) run past the end of the file "
          r"\(100 bytes; truncated\?\), expected a complete ELF file$"),
    (0x1C00, r"the section headers \(\d+ x 64 bytes at offset 0x[0-9a-f]+\) run past the end "
             r"of the file \(7168 bytes; truncated\?\), expected a complete ELF file$"),
])
def test_truncated_kernel_is_named_as_such(tmp_path, cut, message):
    # pyelftools' own message for these was "malformed ELF: expected 8, found 4"
    from osvkit.probe import build_probe
    k = tmp_path / "cut.elf"
    k.write_bytes(build_probe()[:cut])
    with pytest.raises(KernelError, match=message) as exc:
        build_usr_image(k, tmp_path / "usr.img")
    assert "\n" not in str(exc.value) and str(exc.value).startswith(f"{k}: ")
    assert not (tmp_path / "usr.img").exists()


def test_bad_options_and_outputs(kernel_file, tmp_path):
    with pytest.raises(UsageError, match="compression 'zstd'"):
        build_usr_image(kernel_file, tmp_path / "a", compression="zstd")
    with pytest.raises(UsageError, match="image format 'vmdk'"):
        build_usr_image(kernel_file, tmp_path / "a", image_format="vmdk")
    with pytest.raises(MissingInputError, match="no-fs.img: no such file"):
        build_usr_image(kernel_file, tmp_path / "a", partition=tmp_path / "no-fs.img")
    with pytest.raises(OutputError, match="directory does not exist"):
        build_usr_image(kernel_file, tmp_path / "nodir" / "usr.img")
    existing = tmp_path / "keep.img"
    existing.write_bytes(b"precious")
    with pytest.raises(CmdlineError):
        build_usr_image(kernel_file, existing, cmdline="x" * 5000)
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.img"]  # no temp files left


def test_accepts_kernel_object_and_is_deterministic(kernel_file, tmp_path):
    k = check_kernel(kernel_file.read_bytes())
    build_usr_image(k, tmp_path / "a.img", cmdline="x y")
    build_usr_image(kernel_file, tmp_path / "b.img", cmdline="x y")
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()


def test_qcow2_output_is_deterministic_and_converts_back(kernel_file, tmp_path, qemu_img):
    import subprocess

    build_usr_image(kernel_file, tmp_path / "raw.img", cmdline="q")
    for name in ("a.qcow2", "b.qcow2"):
        r = build_usr_image(kernel_file, tmp_path / name, cmdline="q", image_format="qcow2")
        assert r.image_format == "qcow2"
    a, b = (tmp_path / "a.qcow2").read_bytes(), (tmp_path / "b.qcow2").read_bytes()
    assert a[:4] == b"QFI\xfb" and a == b
    subprocess.run([qemu_img, "convert", "-O", "raw", str(tmp_path / "a.qcow2"),
                    str(tmp_path / "back.img")], check=True)
    assert (tmp_path / "back.img").read_bytes() == (tmp_path / "raw.img").read_bytes()


def test_cli_build_json_and_errors(cli, kernel_file, tmp_path):
    out = tmp_path / "usr.img"
    r = cli("build", kernel_file, "--format", "usr", "-o", out, "--cmdline", "a b", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["output"] == str(out) and d["cmdline"] == "a b" and d["compression"] == "fastlz"
    r = cli("build", tmp_path / "nope.elf", "-o", out)
    assert r.returncode == 66 and r.stderr.decode().startswith("error: ")
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"not an elf at all" * 10)
    r = cli("build", bad, "-o", tmp_path / "x.img")
    assert r.returncode == 65 and b"Traceback" not in r.stderr
    assert r.stderr.decode().strip() == (f"error: {bad}: not an ELF file, expected an ELF64 "
                                         "x86-64 kernel, or a disk image holding one")
    r = cli("build", kernel_file, "-o", tmp_path / "x.img", "--format", "iso")
    assert r.returncode == 64 and b"--format 'iso'" in r.stderr
    r = cli("build", kernel_file, "-o", tmp_path / "x.img", "--cmdline", "y" * 1024)
    assert r.returncode == 65 and b"too long for osv" in r.stderr
    assert not (tmp_path / "x.img").exists()


@pytest.mark.parametrize("image_format", ["raw", "qcow2"])
def test_output_to_a_fifo_is_written_into(kernel_file, tmp_path, image_format, request):
    # the qcow2 path renamed its result over the output: "-o /dev/null" replaced the device
    import threading
    if image_format == "qcow2":
        request.getfixturevalue("qemu_img")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    build_usr_image(kernel_file, fifo, image_format=image_format)
    reader.join(30)
    build_usr_image(kernel_file, tmp_path / "file.img", image_format=image_format)
    assert got == [(tmp_path / "file.img").read_bytes()]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_output_that_is_an_input_is_refused(kernel_file, tmp_path):
    # "-o" naming the kernel (or a link to it) replaced the user's kernel with the image
    k = tmp_path / "k.elf"
    k.write_bytes(kernel_file.read_bytes())
    (tmp_path / "link.elf").symlink_to(k)
    with pytest.raises(UsageError) as exc:
        build_usr_image(tmp_path / "link.elf", k)
    assert str(exc.value) == (f"{k}: the output is the kernel of this build "
                              f"({tmp_path / 'link.elf'}), expected an output path that is "
                              "not an input")
    assert k.read_bytes() == kernel_file.read_bytes()
    fs = tmp_path / "fs.img"
    fs.write_bytes(b"ROFS" * 100)
    with pytest.raises(UsageError, match="the output is the partition of this build"):
        build_usr_image(k, fs, partition=fs)
    assert fs.read_bytes() == b"ROFS" * 100


def test_corrupt_sizes_in_a_kernel_are_one_line_errors(tmp_path):
    # a PT_NOTE whose p_filesz is 2**64-1: pyelftools' read() raised OverflowError (traceback)
    from osvkit.probe import build_probe
    k = bytearray(build_probe())
    struct.pack_into("<I", k, 64, 4)              # phdr 0 p_type = PT_NOTE
    struct.pack_into("<Q", k, 64 + 32, (1 << 64) - 1)   # phdr 0 p_filesz
    (tmp_path / "k.elf").write_bytes(k)
    with pytest.raises(KernelError, match=r"truncated or malformed ELF \(.+\), expected a "
                                          r"complete ELF64 x86-64 kernel$"):
        build_usr_image(tmp_path / "k.elf", tmp_path / "u.img")


def test_inspect_reads_no_more_than_the_image_holds(kernel_file, tmp_path):
    # payload_sectors 0xffffffff (2 TiB) in a damaged header: inspect read it all (MemoryError)
    from osvkit.inspect import inspect_file
    img = tmp_path / "usr.img"
    build_usr_image(kernel_file, img)
    data = bytearray(img.read_bytes())
    struct.pack_into("<I", data, 0x12, 0xFFFFFFFF)
    img.write_bytes(data)
    d = inspect_file(img).to_dict()
    assert d["truncated"] is True and d["boot"]["payload_sectors"] == 0xFFFFFFFF


def test_qcow2_output_through_a_symlink_keeps_the_link(kernel_file, tmp_path, qemu_img):
    target = tmp_path / "images" / "usr.qcow2"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "usr.qcow2"
    link.symlink_to(target)
    build_usr_image(kernel_file, link, image_format="qcow2")
    assert link.is_symlink() and target.read_bytes()[:4] == b"QFI\xfb"


def test_partition_from_a_pipe_is_refused(kernel_file, tmp_path):
    # stat gives a pipe 0 bytes: the image came out with an empty partition, silently
    fifo = tmp_path / "fs.fifo"
    os.mkfifo(fifo)
    with pytest.raises(MissingInputError, match=r"fs.fifo: is not a regular file \(a pipe or "
                                                r"device\?\), expected a filesystem image file$"):
        build_usr_image(kernel_file, tmp_path / "u.img", partition=fifo)
    assert not (tmp_path / "u.img").exists()
