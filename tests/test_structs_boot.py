"""Exact bytes and round trips for the boot-side schemas of osvkit.structs: MBR CHS adapters
and partition entries, boot16's header and sector, the lz payload header and segment table,
the x86 descriptor structures, and base.blank."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit import layout
from osvkit.errors import FormatError
from osvkit.structs import base, boot16, bootinfo, bootparams, lzdecomp, lzloader, mbr, x86


# -- MBR ---------------------------------------------------------------------------------------

def test_chs_adapters_exact_bytes():
    # cylinder 0x2A5 (677), head 0x12, sector 0x21: OSv packs (c << 6) | s as a LE u16
    assert base.build(mbr.OsvChs, (677, 0x12, 0x21)) == bytes([0x12]) + \
        ((677 << 6) | 0x21).to_bytes(2, "little")
    # standard: head; sector | (c >> 8) << 6; c & 0xff
    assert base.build(mbr.StandardChs, (677, 0x12, 0x21)) == bytes([0x12, 0x21 | 0x80, 0xA5])
    assert base.parse(mbr.StandardChs, bytes([0x12, 0xA1, 0xA5]), what="chs") == (677, 0x12, 0x21)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1023), st.integers(0, 255), st.integers(0, 63))
def test_chs_adapters_round_trip(c, h, s):
    for chs in (mbr.OsvChs, mbr.StandardChs):
        raw = base.build(chs, (c, h, s))
        assert len(raw) == 3 and base.parse(chs, raw, what="chs") == (c, h, s)
        assert base.build(chs, base.parse(chs, raw, what="chs")) == raw
        # the raw view keeps the word; both computed readings agree with the adapters
        view = base.parse(mbr.ChsAddress, raw, what="chs")
        if chs is mbr.OsvChs:
            assert (view.osv_cylinder, view.head, view.sector) == (c, h, s)
        else:
            assert (view.cylinder, view.head, view.sector) == (c, h, s)


def test_partition_entry_osv_exact_bytes_and_table():
    e = base.build(mbr.PartitionEntryOsv, dict(status=0, start_chs=(0, 65, 2), system_id=0x83,
                                               end_chs=(0, 97, 4), lba_start=4096,
                                               sector_count=2048))
    assert e == bytes.fromhex("00 41 0200 83 61 0400 00100000 00080000")
    assert mbr.PARTITION_ENTRY_SIZE == 16 and mbr.PartitionTable.sizeof() == 64
    table = base.parse(mbr.PartitionTable, bytes(16) + e + bytes(32), what="table")
    assert table[1].lba_start == 4096 and table[1].start_chs.sector == 2
    assert base.build(mbr.PartitionTable, table) == bytes(16) + e + bytes(32)
    assert mbr.MBR_OFFSETS == {"count32": 0x10, "disk_signature": 0x1B8, "partitions": 0x1BE,
                               "boot_signature": 0x1FE}


# -- boot16 ------------------------------------------------------------------------------------

def test_boot16_offsets_are_the_documented_map():
    o = boot16.BOOT16_OFFSETS
    assert (o["jump"], o["drive"], o["version"], o["magic"], o["count32"],
            o["payload_sectors"], o["load_addr"], o["decompressor_entry"], o["dap"],
            o["dap.count"], o["dap.segment"], o["dap.lba"], o["gdtr_limit"], o["gdtr_base"],
            o["gdt_code32"], o["gdt_data32"], o["loader_name"], o["error_message"]) == (
        0, 5, 6, 8, 0x10, 0x12, 0x16, 0x1A, 0x1E, 0x20, 0x24, 0x26, 0x2E, 0x30, 0x36, 0x3E,
        0x46, 0x54)
    assert boot16.CODE_OFFSET == 0x63 and boot16.CODE_END == 0x1B8
    assert o["count32"] == layout.MBR_COUNT32_OFFSET
    sector = base.field_offsets(boot16.Boot16Sector)
    assert (sector["code"], sector["disk_signature"], sector["partitions"],
            sector["boot_signature"]) == (0x63, 0x1B8, 0x1BE, 0x1FE)


HEADER = dict(drive=0, version=1, count32=3, payload_sectors=130, load_addr=0x100000,
              decompressor_entry=0x100020,
              dap=dict(count=63, offset=0, segment=0x7E0, lba=1),
              gdtr_limit=23, gdtr_base=0x7C2E, gdt_code32=0x00CF_9A00_0000_FFFF,
              gdt_data32=0x00CF_9200_0000_FFFF)


def test_boot16_sector_exact_bytes_and_round_trip():
    code = b"\xfa\xf4"
    table = bytes(16) + bytes.fromhex("00 41 0200 83 61 0400 00100000 00080000") + bytes(32)
    sector = base.build(boot16.Boot16Sector, dict(
        header=HEADER, code=code, partitions=base.parse(mbr.PartitionTable, table, what="t")))
    assert len(sector) == 512
    assert sector[:5] == bytes.fromhex("ea 637c 0000")           # ljmp 0000:7c63
    assert sector[8:16] == b"osvkit16" and sector[0x10:0x12] == b"\x03\x00"
    assert sector[0x12:0x16] == (130).to_bytes(4, "little")
    assert sector[0x1E:0x2E] == bytes.fromhex("10 00 3f00 0000 e007") + (1).to_bytes(8, "little")
    assert sector[0x46:0x63] == b"osvkit-boot16\0: disk error\r\n\0"
    assert sector[0x63:0x65] == code and not any(sector[0x65:0x1B8])
    assert sector[0x1B8:0x1BE] == b"VSO\0\0\0" and sector[0x1BE:0x1FE] == table
    assert sector[0x1FE:] == b"\x55\xaa"
    parsed = base.parse(boot16.Boot16Sector, sector, what="boot16 sector")
    assert parsed.header.payload_sectors == 130 and parsed.code[:2] == code
    assert base.build(boot16.Boot16Sector, parsed) == sector


def test_boot16_damaged_jump_is_a_named_field():
    sector = bytearray(base.build(boot16.Boot16Header, HEADER))
    sector[1] ^= 0xFF
    with pytest.raises(FormatError) as exc:
        base.parse(boot16.Boot16Header, sector, what="boot16 header")
    assert exc.value.field == "jump"


# -- lz payload header and segment table --------------------------------------------------------

def test_payload_header_exact_bytes():
    h = base.build(lzdecomp.PayloadHeader, dict(version=1, blob_offset=0x340, blob_size=0x1234,
                                                kernel_size=0x120000, code_size=0x300))
    assert h == (bytes.fromhex("eb1e0000") + b"osvkitLZ" + bytes.fromhex(
        "01000000 40030000 34120000 00001200 00030000"))
    assert lzdecomp.HEADER_SIZE == 0x20 and lzdecomp.PAYLOAD_OFFSETS["blob_offset"] == 0x10
    assert base.build(lzdecomp.PayloadHeader, base.parse(lzdecomp.PayloadHeader, h,
                                                         what="h")) == h


def test_lz_segment_table_exact_bytes_and_round_trip():
    t = base.build(lzloader.LzSegmentTable, {"segments": [
        {"usize": 1 << 20, "ssize": 1000}, {"usize": 5, "ssize": 5}]})
    assert t == bytes.fromhex("02000000 00001000 e8030000 05000000 05000000")
    assert len(t) == lzloader.lz_table_size(2) == 20
    p = base.parse(lzloader.LzSegmentTable, t, what="table")
    assert p.count == 2 and base.build(lzloader.LzSegmentTable, p) == t
    assert base.build(lzloader.LzInfoOffset, 0x1234) == bytes.fromhex("34120000")


# -- x86 ----------------------------------------------------------------------------------------

def test_gdt_pointer_and_page_table_exact_bytes():
    assert base.build(x86.GdtPointer64, dict(limit=31, base=0x100240)) == \
        bytes.fromhex("1f00 4002100000000000")
    assert base.build(x86.gdt(2), [0, 0x00AF_9B00_0000_FFFF]) == \
        bytes(8) + bytes.fromhex("ffff0000009baf00")
    pt = base.build(x86.PageTable, [0x83] + [0] * 511)
    assert len(pt) == 4096 and pt[:8] == bytes.fromhex("8300000000000000")


# -- base.blank ---------------------------------------------------------------------------------

def test_blank_builds_zeros_and_constants():
    b = base.build(bootparams.BootParams, base.blank(bootparams.BootParams))
    o = bootparams.BOOT_PARAMS_OFFSETS
    assert len(b) == 4096
    assert b[o["boot_flag"]:o["boot_flag"] + 2] == b"\x55\xaa"
    assert b[o["header"]:o["header"] + 4] == b"HdrS"
    assert b.count(0) == 4096 - 6
    assert base.build(bootinfo.OsvMultibootInfo, base.blank(bootinfo.OsvMultibootInfo)) == \
        bytes(layout.BOOTINFO_SIZE)
