"""MBR schema, both CHS packings, OSv partition entries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit import layout
from osvkit.boot import mbr
from osvkit.structs import base as schema
from osvkit.errors import FormatError, LayoutError
from osvkit.structs import mbr as mbr_s


def osv_boot_sector() -> bytes:
    """A boot sector laid out like OSv's boot.bin after imgedit."""
    s = bytearray(512)
    s[0x00:0x05] = bytes.fromhex("ea 40 7c 00 00")     # far jump to init
    s[0x10:0x12] = bytes.fromhex("0e 00")              # count32 = 14 (14 x 32 KiB)
    s[0x12:0x22] = bytes.fromhex("10 00 40 00 00 00 00 80 80 00 00 00 00 00 00 00")  # DAP 1
    s[0x1B8:0x1BE] = bytes.fromhex("56 53 4f 00 00 00")  # "VSO" disk signature + 2 zero
    # entry index 1 = imgedit setpartition 2 at 2 MiB, 1 MiB long:
    s[0x1CE:0x1DE] = bytes.fromhex(
        "00"            # status
        "41 02 00"      # start: head 65, (cyl 0 << 6) | sector 2
        "83"            # type
        "61 22 00"      # end (LBA 6144, one past the end): head 97, sector 34
        "00 10 00 00"   # LBA 4096
        "00 08 00 00")  # 2048 sectors
    s[0x1FE:0x200] = b"\x55\xAA"
    return bytes(s)


def test_sizes_and_offsets():
    assert mbr.MBR.sizeof() == 512
    assert mbr_s.BootCode.sizeof() == 446
    assert mbr_s.PartitionEntry.sizeof() == 16
    assert mbr_s.MBR_OFFSETS == {"count32": 0x10, "disk_signature": 0x1B8, "partitions": 0x1BE,
                               "boot_signature": 0x1FE}
    assert schema.field_offsets(mbr_s.PartitionEntry) == {
        "status": 0, "start_chs": 1, "start_chs.head": 1, "start_chs.sector_cylinder": 2,
        "system_id": 4, "end_chs": 5, "end_chs.head": 5, "end_chs.sector_cylinder": 6,
        "lba_start": 8, "sector_count": 12}


def test_parse_osv_boot_sector():
    info = mbr.parse_mbr(osv_boot_sector())
    assert info.count32 == 14 and info.osv_kernel_size == 14 * 32768
    assert info.disk_signature == 0x004F5356 == mbr_s.OSV_DISK_SIGNATURE
    p = info.partitions[1]
    assert (p.system_id, p.lba_start, p.sector_count) == (0x83, 4096, 2048)
    d = p.to_dict()
    assert d["offset"] == 0x200000 and d["size"] == 0x100000
    assert d["start_chs_osv"] == [0, 65, 2] and d["end_chs_osv"] == [0, 97, 34]
    assert p.osv_usable
    assert [q.used for q in info.partitions] == [False, True, False, False]
    text = mbr.describe_mbr(info)
    assert "count32: 14" in text and "disk_signature: 0x004f5356" in text
    assert "partition 1: type 0x83" in text and "offset 0x200000" in text


def test_partition_entry_osv_matches_imgedit_bytes():
    assert mbr.partition_entry_osv(4096, 2048) == osv_boot_sector()[0x1CE:0x1DE]
    # a start past cylinder 0: LBA 1,000,000 -> (62, 63, 2); OSv word (62 << 6) | 2 = 0x0f82
    entry = mbr.partition_entry_osv(1_000_000, 63)
    assert entry[1:4] == bytes.fromhex("3f 82 0f")
    assert entry[4] == 0x83 and entry[8:12] == (1_000_000).to_bytes(4, "little")


def test_partition_entry_standard():
    entry = mbr.partition_entry_standard(1_000_000, 63)
    # standard packing: head 63; sector 2 | (62 >> 8) << 6; 62 & 0xff
    assert entry[1:4] == bytes.fromhex("3f 02 3e")
    # end = last sector 1,000,062 -> track 15874, sector 1: (62, 64, 1)
    assert entry[5:8] == bytes.fromhex("40 01 3e")
    assert entry[12:16] == (63).to_bytes(4, "little")


@pytest.mark.parametrize("lba, chs", [
    (0, (0, 0, 1)),
    (62, (0, 0, 63)),
    (63, (0, 1, 1)),
    (4096, (0, 65, 2)),
    (63 * 255, (1, 0, 1)),
    (1_000_000, (62, 63, 2)),
    (1023 * 255 * 63 + 254 * 63 + 62, (1023, 254, 63)),
    (1024 * 255 * 63, (1023, 254, 63)),           # clamped
    (2**32 - 1, (1023, 254, 63)),
])
def test_lba_to_chs(lba, chs):
    assert mbr.lba_to_chs(lba) == chs


def test_schema_views_of_both_packings():
    sector = mbr.set_partition(osv_boot_sector(), 0, mbr.partition_entry_osv(1_000_000, 63))
    c = schema.parse(mbr.MBR, sector, what="MBR")
    start = c.partitions[0].start_chs
    assert (start.head, start.sector, start.osv_cylinder, start.cylinder) == (63, 2, 62, 527)
    std = schema.parse(mbr_s.ChsAddress, mbr.chs_encode_standard(62, 63, 2), what="chs")
    assert (std.head, std.sector, std.cylinder) == (63, 2, 62)
    # the views are not written back
    assert schema.build(mbr.MBR, c) == sector


def test_chs_packings_differ_and_decode():
    osv = mbr.chs_encode_osv(62, 63, 2)
    std = mbr.chs_encode_standard(62, 63, 2)
    assert osv == bytes.fromhex("3f 82 0f") and std == bytes.fromhex("3f 02 3e")
    assert mbr.chs_decode_osv(osv) == (62, 63, 2)
    assert mbr.chs_decode_standard(std) == (62, 63, 2)
    assert mbr.chs_decode_standard(osv) == (527, 63, 2)   # read the wrong way
    assert mbr.chs_encode_osv(1023, 254, 63) == mbr.chs_encode_standard(1023, 254, 63) \
        == bytes.fromhex("fe ff ff")
    with pytest.raises(LayoutError):
        mbr.chs_encode_osv(1024, 0, 1)


@given(c=st.integers(0, 1023), h=st.integers(0, 255), s=st.integers(0, 63))
def test_chs_round_trips(c, h, s):
    assert mbr.chs_decode_osv(mbr.chs_encode_osv(c, h, s)) == (c, h, s)
    assert mbr.chs_decode_standard(mbr.chs_encode_standard(c, h, s)) == (c, h, s)


@given(lba=st.integers(0, 2**32 - 1), sectors=st.integers(0, 2**20))
def test_osv_entries_are_usable_by_osv(lba, sectors):
    if lba + sectors >= 2**32:
        return
    entry = mbr.partition_entry_osv(lba, sectors)
    sector = mbr.set_partition(osv_boot_sector(), 2, entry)
    p = mbr.parse_mbr(sector).partitions[2]
    assert p.osv_usable and (p.lba_start, p.sector_count) == (lba, sectors)
    assert mbr.chs_decode_osv(p.start_chs_raw) == mbr.lba_to_chs(lba)


@settings(max_examples=50)
@given(body=st.binary(min_size=510, max_size=510))
def test_build_parse_round_trip(body):
    data = bytearray(body + b"\x55\xAA")
    for i in range(4):  # keep status bytes valid
        data[0x1BE + 16 * i] &= 0x80
    data = bytes(data)
    c = schema.parse(mbr.MBR, data, what="MBR")
    assert schema.build(mbr.MBR, c) == data
    assert schema.parse(mbr.MBR, schema.build(mbr.MBR, c), what="MBR") == c


def test_set_partition_rejects_bad_index():
    with pytest.raises(LayoutError):
        mbr.set_partition(osv_boot_sector(), 4, bytes(16))


@pytest.mark.parametrize("data, message", [
    (b"", r"MBR at 0x0 is past the end of the data \(0 bytes\), expected 512 bytes"),
    (b"\0" * 100, r"MBR at 0x0 is truncated: 100 bytes, expected 512 bytes"),
    (b"\0" * 512, r"MBR at 0x0: field boot_signature \(0x1fe\) is b'\\x00\\x00', "
                  r"expected b'U\\xaa'"),
    (osv_boot_sector()[:0x1BE] + b"\x07" + osv_boot_sector()[0x1BF:],
     r"field partitions\[0\].status \(0x1be\) is 0x07, expected 0x00 or 0x80"),
])
def test_bad_input(data, message):
    with pytest.raises(FormatError, match=message) as exc:
        mbr.parse_mbr(data, path="disk.img")
    assert str(exc.value).startswith("disk.img: ") and exc.value.exit_status == 65


def test_offset_into_a_bigger_buffer():
    data = b"\0" * 1024 + osv_boot_sector()
    assert mbr.parse_mbr(data, offset=1024).count32 == 14
    with pytest.raises(FormatError, match=r"MBR at 0x400: field boot_signature \(0x5fe\)"):
        mbr.parse_mbr(data[:1024] + bytes(512), offset=1024)
    assert layout.MBR_SIGNATURE_OFFSET == 0x1FE
