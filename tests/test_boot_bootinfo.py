"""OSv's boot-info block and its e820 records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit import layout
from osvkit.boot import bootinfo
from osvkit.structs import base as schema
from osvkit.errors import FormatError


def test_size_and_offsets_from_the_reference():
    assert bootinfo.OsvMultibootInfo.sizeof() == 121 == layout.BOOTINFO_SIZE
    o = bootinfo.BOOTINFO_OFFSETS
    # OSv's arch-setup.hh, written out
    assert (o["flags"], o["cmdline"], o["mmap_length"], o["mmap_addr"]) == (0, 16, 44, 48)
    assert o["boot_loader_name"] == 64
    assert (o["tsc_init"], o["tsc_disk_done"], o["tsc_uncompress_done"]) == (88, 96, 104)
    assert (o["disk_err"], o["pvh_rsdp"]) == (112, 113)
    assert bootinfo.OsvE820Entry.sizeof() == 24
    assert bootinfo.OSV_E820_OFFSETS == {"ent_size": 0, "addr": 4, "size": 12, "type": 20}
    assert bootinfo.BOOTINFO_FLAG_BOOT_LOADER_NAME == 0x200


def test_build_exact_bytes():
    block = bootinfo.build_bootinfo(flags=0x200, cmdline=0x7E00, mmap_length=48,
                                    mmap_addr=0x2000, boot_loader_name=0x1100,
                                    tsc_init=0x1122334455667788, disk_err=0x80,
                                    pvh_rsdp=0xE0000)
    expected = bytearray(121)
    expected[0:4] = bytes.fromhex("00 02 00 00")
    expected[16:20] = bytes.fromhex("00 7e 00 00")
    expected[44:48] = bytes.fromhex("30 00 00 00")
    expected[48:52] = bytes.fromhex("00 20 00 00")
    expected[64:68] = bytes.fromhex("00 11 00 00")
    expected[88:96] = bytes.fromhex("88 77 66 55 44 33 22 11")  # tsc_init lo, then hi
    expected[112] = 0x80
    expected[113:121] = bytes.fromhex("00 00 0e 00 00 00 00 00")  # unaligned u64
    assert block == bytes(expected)
    assert bootinfo.build_osv_e820([(0, 0x9FC00, 1)]) == bytes.fromhex(
        "14000000" "0000000000000000" "00fc090000000000" "01000000")


def _memory() -> bytes:
    mem = bytearray(0x8000)
    mem[0x1000:0x1000 + 121] = bootinfo.build_bootinfo(
        flags=0x200, cmdline=0x7E00, mmap_length=48, mmap_addr=0x2000, boot_loader_name=0x1100)
    mem[0x1100:0x110E] = b"osvkit-boot16\0"
    mem[0x2000:0x2030] = bootinfo.build_osv_e820([(0, 0x9FC00, 1), (0x100000, 0x7F00000, 1)])
    mem[0x7E00:0x7E10] = b"--nopci /hello\0\0"
    return bytes(mem)


def test_parse_follows_pointers_in_a_dump():
    info = bootinfo.parse_bootinfo(_memory(), offset=0x1000, base=0)
    assert info.address == 0x1000
    assert info.cmdline == "--nopci /hello"
    assert info.boot_loader_name == "osvkit-boot16"
    assert info.e820 == [(0, 0x9FC00, 1), (0x100000, 0x7F00000, 1)]
    text = bootinfo.describe_bootinfo(info)
    assert "cmdline: 0x7e00" in text and "boot loader: osvkit-boot16" in text
    assert "e820 (2 records)" in text
    assert info.to_dict()["e820"][1] == {"addr": 0x100000, "size": 0x7F00000, "type": 1}


def test_e820_walk_steps_by_ent_size_plus_4():
    recs = bytearray(bootinfo.build_osv_e820([(0, 0x1000, 1)]))
    # a BIOS may return 24-byte entries (ACPI 3 attributes): ent_size 24, step 28
    recs = bytes.fromhex("18000000") + recs[4:] + b"\x01\0\0\0" + \
        bootinfo.build_osv_e820([(0x100000, 0x1000, 2)])
    assert bootinfo.parse_osv_e820(recs, len(recs)) == [(0, 0x1000, 1), (0x100000, 0x1000, 2)]
    with pytest.raises(FormatError, match=r"e820 record at 0x0: field ent_size \(0x0\) is 4"):
        bootinfo.parse_osv_e820(bytes.fromhex("04000000") + bytes(20), 24)


@pytest.mark.parametrize("fields, message", [
    (dict(cmdline=0), r"field cmdline \(0x10\) is 0, expected the physical address"),
    (dict(cmdline=0x7E00, mmap_length=0x5000, mmap_addr=0x2000),
     r"field mmap_length \(0x2c\) is 20480, expected at most 16384"),
    (dict(cmdline=0x7E00, mmap_length=24, mmap_addr=0), r"field mmap_addr \(0x30\) is 0"),
])
def test_implausible_blocks(fields, message):
    block = bootinfo.build_bootinfo(**fields)
    with pytest.raises(FormatError, match=message) as exc:
        bootinfo.parse_bootinfo(block, path="b.bin")
    assert str(exc.value).startswith("b.bin: osv_multiboot_info at 0x0: ")
    assert bootinfo.parse_bootinfo(block, lenient=True).notes


def test_truncated():
    with pytest.raises(FormatError, match=r"truncated: 120 bytes, expected 121 bytes"):
        bootinfo.parse_bootinfo(bytes(120))


@settings(max_examples=60, deadline=None)
@given(body=st.binary(min_size=121, max_size=121))
def test_round_trip(body):
    c = schema.parse(bootinfo.OsvMultibootInfo, body, what="bootinfo")
    assert schema.build(bootinfo.OsvMultibootInfo, c) == body
    assert schema.parse(bootinfo.OsvMultibootInfo, schema.build(bootinfo.OsvMultibootInfo, c),
                        what="bootinfo") == c


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=60, deadline=None)
@given(fields=st.fixed_dictionaries({
    "flags": u32, "cmdline": st.integers(1, 2**32 - 1), "mmap_length": st.integers(0, 0x4000),
    "mmap_addr": st.integers(1, 2**32 - 1), "boot_loader_name": u32, "tsc_init": u64,
    "tsc_disk_done": u64, "tsc_uncompress_done": u64, "disk_err": st.integers(0, 255),
    "pvh_rsdp": u64}),
    e820=st.lists(st.tuples(u64, u64, u32), max_size=20))
def test_object_round_trip(fields, e820):
    info = bootinfo.parse_bootinfo(bootinfo.build_bootinfo(**fields))
    assert {k: info.fields[k] for k in fields} == fields
    assert not info.notes
    recs = bootinfo.build_osv_e820(e820)
    assert len(recs) == 24 * len(e820)
    assert bootinfo.parse_osv_e820(recs, len(recs)) == e820
