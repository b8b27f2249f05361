"""The Linux witness fixture's own pieces (no network, no QEMU): the cpio "newc" writer, the
extract-vmlinux search, the console parsers; and ``osvkit.image.linux`` on a small bzImage
made here with gzip (the Debian kernel, tested elsewhere, is xz)."""

from __future__ import annotations

import gzip

from linuxkernel import (E820_TYPES, build_initramfs, console_e820, cpio_entry, extract_vmlinux,
                         init_report, kernel_time)
from osvkit.image import linux
from osvkit.structs.bootparams import SetupHeader


def test_cpio_entry_exact_bytes():
    rec = cpio_entry("init", 0o100755, b"abcde", ino=4)
    header = (b"070701" b"00000004" b"000081ed" b"00000000" b"00000000" b"00000001"
              b"00000000" b"00000005" b"00000000" b"00000000" b"00000000" b"00000000"
              b"00000005" b"00000000")
    assert len(header) == 110
    # name + NUL ends at 115 -> padded to 116; data 5 bytes -> padded to 8
    assert rec == header + b"init\0" + b"\0" + b"abcde" + b"\0\0\0"
    dev = cpio_entry("dev/console", 0o020600, ino=2, rdev=(5, 1))
    assert dev[6 + 8 * 9:6 + 8 * 11] == b"0000000500000001"        # rdevmajor, rdevminor


def test_initramfs_archive():
    arc = build_initramfs(b"\x7fELF-init", compress=False)
    assert len(arc) % 512 == 0
    assert arc.startswith(b"070701")
    names = []
    pos = 0
    while True:
        namesize = int(arc[pos + 94:pos + 102], 16)
        filesize = int(arc[pos + 54:pos + 62], 16)
        name = arc[pos + 110:pos + 110 + namesize - 1].decode()
        names.append(name)
        if name == "TRAILER!!!":
            break
        pos += (110 + namesize + 3) // 4 * 4
        pos += (filesize + 3) // 4 * 4
    assert names == ["dev", "dev/console", "proc", "init", "TRAILER!!!"]
    assert gzip.decompress(build_initramfs(b"\x7fELF-init")) == arc
    assert build_initramfs(b"x") == build_initramfs(b"x")              # deterministic


def _fake_bzimage(payload_elf: bytes, *, setup_sects: int = 3) -> bytes:
    """A bzImage-shaped file: setup sectors with a setup header, then a gzip'd ELF with the
    4-byte uncompressed-size trailer the kernel's build appends."""
    comp = gzip.compress(payload_elf, mtime=0) + len(payload_elf).to_bytes(4, "little")
    setup = bytearray((setup_sects + 1) * 512)
    payload_offset = 0x40
    fields = {sc.name: 0 for sc in SetupHeader.subcons if sc.name}
    fields.update(setup_sects=setup_sects, version=0x020F, loadflags=0x01, xloadflags=0x3,
                  payload_offset=payload_offset, payload_length=len(comp),
                  pref_address=0x1000000, init_size=0x200000, kernel_version=0x100)
    fields.pop("boot_flag", None)
    fields.pop("header", None)
    setup[0x1F1:0x1F1 + SetupHeader.sizeof()] = SetupHeader.build(fields)
    setup[0x300:0x310] = b"9.9.9-test (me)\0"
    return bytes(setup) + bytes(payload_offset) + comp


def test_bzimage_description_exact():
    elf = b"\x7fELF" + bytes(60)                       # not a readable ELF: reported, not raised
    data = _fake_bzimage(elf)
    assert linux.is_bzimage_head(data[:4096])
    d = linux.describe_bzimage_bytes(data)
    assert d["protocol"] == "2.15" and d["setup_sects"] == 3 and d["setup_size"] == 2048
    assert d["kernel_version"] == "9.9.9-test (me)"
    assert d["loadflags"] == ["LOADED_HIGH"]
    assert d["xloadflags"] == ["XLF_KERNEL_64", "XLF_CAN_BE_LOADED_ABOVE_4G"]
    assert d["payload"] == {"offset": 2048 + 0x40, "length": len(data) - 2048 - 0x40,
                            "compression": "gzip", "uncompressed_size": len(elf)}
    assert "error" in d["vmlinux"]
    # the fixture's magic search finds the same payload
    out, offset, kind = extract_vmlinux(data)
    assert (out, offset, kind) == (elf, d["payload"]["offset"], "gzip")
    # a lying size trailer is reported
    bad = data[:-4] + (len(elf) + 1).to_bytes(4, "little")
    assert "trailer says" in linux.describe_bzimage_bytes(bad)["vmlinux"]["error"]


def test_console_parsers():
    console = ("[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\r\n"
               "[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x00000000000dffff] reserved\n"
               "[    0.000000] BIOS-e820: [mem 0x00000000000d0000-0x00000000000effff] ACPI NVS\n"
               "[    2.504873] Run /init as init process\n"
               "INIT cmdline: console=ttyS0 a=b\nINIT cpus: 2\n"
               "INIT ram: 00001000-0009fbff : System RAM\nINIT uptime: 2.61 1.0\nINIT done\n")
    assert console_e820(console) == [(0, 0x9FC00, 1), (0x9FC00, 0x40400, 2),
                                     (0xD0000, 0x20000, E820_TYPES["ACPI NVS"])]
    rep = init_report(console)
    assert (rep.cmdline, rep.cpus, rep.ram, rep.uptime) == ("console=ttyS0 a=b", 2,
                                                             [(0x1000, 0x9FBFF)], 2.61)
    assert kernel_time(console, "Run /init as init process") == 2.504873
