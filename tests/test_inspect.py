"""``osvkit inspect`` on images osvkit builds and on a synthetic image laid out like OSv's."""

from __future__ import annotations

import json
import struct

import pytest

from osvkit.boot import mbr
from osvkit.errors import FormatError, MissingInputError
from osvkit.image import lzloader
from osvkit.image.usrimg import build_usr_image
from osvkit.inspect import find_lz_blob_in_lzloader, inspect_file

from test_bios_boot_kernel import START32, mini_kernel


@pytest.fixture(scope="module")
def kernel_bytes():
    return mini_kernel(0x120000, seed=3)  # 1.125 MiB: two segments


@pytest.fixture(scope="module")
def kernel_file(tmp_path_factory, kernel_bytes):
    path = tmp_path_factory.mktemp("k") / "kernel.elf"
    path.write_bytes(kernel_bytes)
    return path


def test_inspect_osvkit_raw_image(kernel_file, kernel_bytes, tmp_path):
    fs = tmp_path / "fs.img"
    fs.write_bytes(b"R" * 1024)
    out = tmp_path / "usr.img"
    build_usr_image(kernel_file, out, cmdline='--rootfs=rofs "x y"', partition=fs)
    d = inspect_file(out).to_dict()
    assert d["kind"] == "disk-image" and d["format"] == "raw"
    assert d["cmdline"] == '--rootfs=rofs "x y"'
    assert d["boot"]["kind"] == "osvkit-boot16" and d["boot"]["load_addr"] == 0x100000
    assert d["boot"]["vso_signature"] is True
    p1 = d["partitions"][1]
    assert (p1["system_id"], p1["lba_start"], p1["sector_count"]) == (0x83, 4096, 2)
    assert p1["start_chs_osv"] == [0, 65, 2] and p1["end_chs_osv"] == [0, 65, 4]
    assert p1["osv_usable"] is True
    pl = d["payload"]
    assert pl["kind"] == "osvkit-lz" and pl["compression"] == "fastlz"
    assert [(s["usize"], s["compressed"]) for s in pl["lz"]["segments"]] == [
        (1 << 20, True), (0x20000, True)]
    assert pl["lz"]["uncompressed_size"] == len(kernel_bytes)
    assert 0 < pl["lz"]["ratio"] < 1
    assert d["kernel"]["start32"] == START32 and d["kernel"]["size"] == len(kernel_bytes)


def test_inspect_uncompressed_and_qcow2(kernel_file, kernel_bytes, tmp_path, qemu_img):
    out = tmp_path / "usr.qcow2"
    build_usr_image(kernel_file, out, compression="none", image_format="qcow2", cmdline="c")
    d = inspect_file(out).to_dict()
    assert d["format"] == "qcow2" and d["cmdline"] == "c"
    assert d["payload"]["kind"] == "kernel-elf" and d["payload"]["compression"] == "none"
    assert d["kernel"]["start32"] == START32 and d["kernel"]["size"] == len(kernel_bytes)


# --- a synthetic image in OSv's layout ---------------------
def _elf32_lzloader(blob: bytes, *, with_symbols: bool) -> bytes:
    """An ELF32 i386 file like lzloader.elf: headers, .text at file offset 0x1000 (address
    0x101000) holding a little decompressor stand-in then the lz blob; optional .symtab with
    _binary_loader_stripped_elf_lz_start/_size.  Padded to a multiple of 32 KiB."""
    blob_off = 0x1000 + 0x2A3  # "code" before the blob, odd offset on purpose
    text = b"\x90" * 0x2A3 + blob
    strtab = b"\0_binary_loader_stripped_elf_lz_start\0_binary_loader_stripped_elf_lz_size\0"
    symtab = bytes(16) + struct.pack("<IIIBBH", 1, 0x100000 + blob_off, 0, 0x10, 0, 1) + \
        struct.pack("<IIIBBH", 38, len(blob), 0, 0x10, 0, 0xFFF1)
    shstr = b"\0.text\0.symtab\0.strtab\0.shstrtab\0"
    body = bytearray(0x1000) + text
    sections = [bytes(40)]
    sections.append(struct.pack("<10I", 1, 1, 6, 0x101000, 0x1000, len(text), 0, 0, 16, 0))
    extra = []
    if with_symbols:
        symoff = len(body)
        body += symtab
        stroff = len(body)
        body += strtab
        sections.append(struct.pack("<10I", 7, 2, 0, 0, symoff, len(symtab), 3, 1, 4, 16))
        sections.append(struct.pack("<10I", 15, 3, 0, 0, stroff, len(strtab), 0, 0, 1, 0))
        extra = [symtab, strtab]
    shstroff = len(body)
    body += shstr
    sections.append(struct.pack("<10I", 23, 3, 0, 0, shstroff, len(shstr), 0, 0, 1, 0))
    shoff = len(body)
    for s in sections:
        body += s
    ehdr = (b"\x7fELF\x01\x01\x01" + bytes(9)
            + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0x101000 + 0x10, 52, shoff, 0, 52, 32, 1,
                          40, len(sections), len(sections) - 1))
    phdr = struct.pack("<8I", 1, 0, 0x100000, 0x100000, 0x1000 + len(text), 0x1000 + len(text), 5, 0x1000)
    body[0:52] = ehdr
    body[52:84] = phdr
    body += bytes(-len(body) % 32768)
    return bytes(body)


def _osv_style_image(path, kernel: bytes, *, with_symbols: bool, cmdline: bytes):
    blob = lzloader.compress(kernel)
    lzelf = _elf32_lzloader(blob, with_symbols=with_symbols)
    boot = bytearray(512)
    boot[0:5] = b"\xEA\x6C\x7C\x00\x00"                       # ljmp 0:init, like OSv's
    boot[0x10:0x12] = struct.pack("<H", len(lzelf) // 32768)  # count32 (imgedit setsize)
    boot[0x1B8:0x1BE] = b"VSO\0\0\0"
    boot[0x1FE:] = b"\x55\xaa"
    kernel_end = -(-(65536 + len(lzelf)) // (2 << 20)) * (2 << 20)
    boot = mbr.set_partition(bytes(boot), 1, mbr.partition_entry_osv(kernel_end // 512, 0))
    img = bytearray(kernel_end)
    img[0:512] = boot
    img[512:512 + len(cmdline) + 1] = cmdline + b"\0"
    img[0x10000:0x10000 + len(lzelf)] = lzelf
    path.write_bytes(img)
    return lzelf


@pytest.mark.parametrize("with_symbols", [True, False], ids=["symbols", "stripped"])
def test_inspect_osv_built_image(tmp_path, kernel_bytes, with_symbols):
    img = tmp_path / "osv-usr.img"
    lzelf = _osv_style_image(img, kernel_bytes, with_symbols=with_symbols,
                             cmdline=b"--rootfs=zfs /tools/hello.so")
    d = inspect_file(img).to_dict()
    assert d["boot"]["kind"] == "osv-boot16"
    assert d["boot"]["count32"] == len(lzelf) // 32768 and d["boot"]["count32_bytes"] == len(lzelf)
    assert d["cmdline"] == "--rootfs=zfs /tools/hello.so"
    pl = d["payload"]
    assert pl["kind"] == "osv-lzloader" and pl["blob_offset"] == 0x12A3
    assert pl["blob_found_by"] == ("symbol" if with_symbols else "scan")
    assert pl["lz"]["uncompressed_size"] == len(kernel_bytes)
    assert d["kernel"]["start32"] == START32
    assert d["partitions"][1]["lba_start"] == 4096


def test_find_blob_rejects_an_elf_without_one():
    with pytest.raises(FormatError, match="no lz segment table"):
        find_lz_blob_in_lzloader(b"\x7fELF\x01\x01\x01" + bytes(4000))


def test_inspect_errors(tmp_path, cli, kernel_file):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello" * 300)
    with pytest.raises(FormatError, match="junk.bin: unrecognised file type"):
        inspect_file(junk)
    with pytest.raises(MissingInputError):
        inspect_file(tmp_path / "missing.img")
    r = cli("inspect", junk)
    assert r.returncode == 65 and r.stderr.decode().startswith(f"error: {junk}: unrecognised")
    # a truncated image: the payload is cut short
    out = tmp_path / "usr.img"
    build_usr_image(kernel_file, out)
    data = out.read_bytes()
    out.write_bytes(data[:0x10000 + 5000])
    r = cli("inspect", out)
    assert r.returncode == 65 and b"Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_cli_inspect_human_and_json(cli, kernel_file, tmp_path):
    out = tmp_path / "usr.img"
    build_usr_image(kernel_file, out, cmdline="hello")
    r = cli("inspect", out)
    text = r.stdout.decode()
    assert r.returncode == 0
    assert "boot sector: osvkit-boot16" in text and "cmdline (5 bytes): 'hello'" in text
    assert "segment 0: 1048576 ->" in text and f"start32 {START32:#x}" in text
    r = cli("-vv", "inspect", out, "--json")
    d = json.loads(r.stdout)
    assert d["cmdline"] == "hello" and d["payload"]["kind"] == "osvkit-lz"


@pytest.mark.parametrize("offset, field", [(0x50, "loader_name"), (0x01, "jump"),
                                           (0x0A, "magic")])
def test_inspect_damaged_boot16_header_goes_on(cli, kernel_file, tmp_path, offset, field):
    # a flipped byte in a boot16 constant escaped as a construct ConstError traceback; a
    # flipped byte of the jump went unnoticed.  inspect reports the boot sector as not
    # recognised and describes the rest (OSv's count32 says how much payload to read).
    from osvkit.image.usrimg import build_usr_image
    img = tmp_path / "usr.img"
    build_usr_image(kernel_file, img, cmdline="hello")
    data = bytearray(img.read_bytes())
    data[offset] ^= 0xFF
    img.write_bytes(data)
    r = cli("inspect", img, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    if field == "magic":  # no magic: a far jump and "VSO" read as OSv's own boot16
        assert d["boot"]["kind"] == "osv-boot16" and "error" not in d["boot"]
    else:
        assert d["boot"]["kind"] == "unknown"
        assert d["boot"]["error"] == (f"damaged osvkit boot16 header ({field}), expected the "
                                      "constants boot16 writes (rebuild the image)")
    assert d["cmdline"] == "hello" and d["payload"]["kind"] == "osvkit-lz"
    assert d["kernel"]["start32"] == START32
    r = cli("inspect", img)
    assert r.returncode == 0 and r.stderr == b""
    if field != "magic":
        assert f"not recognised: damaged osvkit boot16 header ({field})" in r.stdout.decode()


@pytest.mark.parametrize("what", ["image", "kernel"])
def test_inspect_of_a_pipe_is_a_one_line_error(cli, kernel_file, tmp_path, what):
    # a pipe (bash <(...)): an image gave an io.UnsupportedOperation traceback, a kernel
    # "not an ELF file" (the type detector had consumed its head)
    import os
    import threading
    from osvkit.image.usrimg import build_usr_image
    src = kernel_file
    if what == "image":
        src = tmp_path / "usr.img"
        build_usr_image(kernel_file, src)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = src.read_bytes()

    def feed():
        try:
            fifo.write_bytes(data)
        except BrokenPipeError:
            pass
    threading.Thread(target=feed, daemon=True).start()
    r = cli("inspect", fifo)
    assert r.returncode == 65, r.stderr
    assert r.stderr.decode().startswith(f"error: {fifo}: cannot seek (a pipe?), expected ")
    assert r.stderr.count(b"\n") == 1
