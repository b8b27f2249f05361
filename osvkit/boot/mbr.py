"""Master boot record (MBR), as OSv's boot16 and ``imgedit.py`` use it.

Spec: the IBM PC MBR (446 bytes of boot code, four 16-byte partition entries, ``55 AA``), with
OSv's own fields inside the boot-code area:

* ``count32`` (u16 at 0x10): the number of 32 KiB chunks boot16 loads;
* the disk signature (u32 at 0x1B8; OSv writes ``56 53 4F 00`` = "VSO");
* partition entries whose CHS words OSv packs as a u16 ``(cylinder << 6) | sector`` (imgedit.py
  ``setpartition``; the kernel reads the same bit-fields, sector:6 cylinder:10), which is *not*
  the standard packing (sector in bits 0-5 of byte 2, cylinder bits 8-9 in bits 6-7 of byte 2,
  cylinder bits 0-7 in byte 3).

Both CHS decodings are exposed (:func:`chs_decode_standard`, :func:`chs_decode_osv`) with an
encoder for each, and :func:`lba_to_chs` is imgedit's conversion (63 sectors per track, 255
heads, clamped to (1023, 254, 63)).
"""

from __future__ import annotations

from dataclasses import dataclass, field


from .. import layout
from ..errors import LayoutError
from ..structs import base as schema
from ..structs.mbr import (CHS_HEADS, CHS_MAX, CHS_SECTORS_PER_TRACK, MBR, MBR_OFFSETS,
                           PARTITION_ENTRY_SIZE, PARTITION_TYPE_LINUX, ChsAddress, OsvChs,
                           PartitionEntry, PartitionEntryOsv, PartitionEntryStandard,
                           StandardChs)


# ---------------------------------------------------------------------------------
# CHS
# ---------------------------------------------------------------------------------

def lba_to_chs(lba: int) -> tuple[int, int, int]:
    """imgedit.py's conversion: 63 sectors/track, 255 heads, sector 1-based, clamped to
    (1023, 254, 63) when the cylinder exceeds 1023."""
    if lba < 0:
        raise LayoutError(f"negative LBA {lba}", expected="an LBA >= 0")
    track, sector0 = divmod(lba, CHS_SECTORS_PER_TRACK)
    cylinder, head = divmod(track, CHS_HEADS)
    if cylinder > 1023:
        return CHS_MAX
    return cylinder, head, sector0 + 1


def _check_chs(cylinder: int, head: int, sector: int) -> None:
    if not (0 <= cylinder <= 1023 and 0 <= head <= 255 and 0 <= sector <= 63):
        raise LayoutError(f"CHS ({cylinder}, {head}, {sector}) does not fit",
                          expected="cylinder 0-1023, head 0-255, sector 0-63")


def chs_encode_standard(cylinder: int, head: int, sector: int) -> bytes:
    """Standard MBR packing: head; sector | (cylinder bits 8-9) << 6; cylinder bits 0-7."""
    _check_chs(cylinder, head, sector)
    return schema.build(StandardChs, (cylinder, head, sector), what="CHS address")


def chs_encode_osv(cylinder: int, head: int, sector: int) -> bytes:
    """OSv packing (imgedit.py): head; u16 LE ``(cylinder << 6) | sector``."""
    _check_chs(cylinder, head, sector)
    return schema.build(OsvChs, (cylinder, head, sector), what="CHS address")


def chs_decode_standard(raw: bytes) -> tuple[int, int, int]:
    """(cylinder, head, sector) from 3 bytes in the standard packing."""
    return schema.parse(StandardChs, raw, what="CHS address")


def chs_decode_osv(raw: bytes) -> tuple[int, int, int]:
    """(cylinder, head, sector) from 3 bytes in OSv's packing (sector:6, cylinder:10)."""
    return schema.parse(OsvChs, raw, what="CHS address")


def _chs_bytes(chs) -> bytes:
    return schema.build(ChsAddress, chs, what="CHS address")


# ---------------------------------------------------------------------------------
# Partition entries
# ---------------------------------------------------------------------------------

def _check_entry(lba: int, sectors: int) -> None:
    if not (0 <= lba < 2**32 and 0 <= sectors < 2**32):
        raise LayoutError(f"partition LBA {lba} / {sectors} sectors do not fit in 32 bits",
                          expected="a partition below 2 TiB")


def partition_entry_osv(lba: int, sectors: int, *, system_id: int = PARTITION_TYPE_LINUX,
                        status: int = 0) -> bytes:
    """A 16-byte entry exactly as OSv's ``imgedit.py setpartition`` writes it: CHS in OSv's
    packing, the end CHS computed from ``lba + sectors`` (one past the end, as imgedit does),
    type 0x83.  The start sector field is never 0, so OSv's kernel accepts the entry."""
    _check_entry(lba, sectors)
    return schema.build(PartitionEntryOsv, dict(
        status=status, start_chs=lba_to_chs(lba), system_id=system_id,
        end_chs=lba_to_chs(lba + sectors), lba_start=lba, sector_count=sectors),
        what="partition entry")


def partition_entry_standard(lba: int, sectors: int, *, system_id: int = PARTITION_TYPE_LINUX,
                             status: int = 0) -> bytes:
    """The same entry with standard CHS packing and the end CHS of the last sector."""
    _check_entry(lba, sectors)
    return schema.build(PartitionEntryStandard, dict(
        status=status, start_chs=lba_to_chs(lba), system_id=system_id,
        end_chs=lba_to_chs(lba + max(sectors - 1, 0)), lba_start=lba, sector_count=sectors),
        what="partition entry")


def partition_table(entries: dict[int, bytes]) -> bytes:
    """The 64-byte partition table with ``entries`` (index -> 16-byte entry), the rest unused."""
    table = [partition_entry_unused()] * 4
    for index, entry in entries.items():
        if not 0 <= index <= 3:
            raise LayoutError(f"partition index {index}", expected="index 0-3")
        table[index] = entry
    return b"".join(table)


def partition_entry_unused() -> bytes:
    """An all-zero entry (system id 0: unused)."""
    return schema.build(PartitionEntryOsv, dict(start_chs=(0, 0, 0), system_id=0,
                                                 end_chs=(0, 0, 0), lba_start=0, sector_count=0),
                        what="partition entry")


def set_partition(mbr: bytes, index: int, entry: bytes) -> bytes:
    """Return ``mbr`` (a whole 512-byte MBR) with partition ``index`` (0-3) replaced."""
    if not 0 <= index <= 3 or len(entry) != PARTITION_ENTRY_SIZE:
        raise LayoutError(f"partition index {index} / entry of {len(entry)} bytes",
                          expected="index 0-3 and a 16-byte entry")
    c = schema.parse(MBR, mbr, what="MBR")
    c.partitions[index] = schema.parse(PartitionEntry, entry, what="partition entry")
    return schema.build(MBR, c, what="MBR") + bytes(mbr[MBR.sizeof():])


# ---------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------

@dataclass
class Partition:
    index: int
    status: int
    system_id: int
    lba_start: int
    sector_count: int
    start_chs_raw: bytes
    end_chs_raw: bytes

    @property
    def used(self) -> bool:
        return self.system_id != 0

    @property
    def osv_usable(self) -> bool:
        """OSv's ``read_partition_table`` skips entries with type 0 or a 0 start sector."""
        return self.system_id != 0 and chs_decode_osv(self.start_chs_raw)[2] != 0

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "status": self.status,
            "system_id": self.system_id,
            "lba_start": self.lba_start,
            "sector_count": self.sector_count,
            "offset": self.lba_start * layout.SECTOR_SIZE,
            "size": self.sector_count * layout.SECTOR_SIZE,
            "start_chs_standard": list(chs_decode_standard(self.start_chs_raw)),
            "end_chs_standard": list(chs_decode_standard(self.end_chs_raw)),
            "start_chs_osv": list(chs_decode_osv(self.start_chs_raw)),
            "end_chs_osv": list(chs_decode_osv(self.end_chs_raw)),
            "osv_usable": self.osv_usable,
        }


@dataclass
class MbrInfo:
    offset: int
    count32: int
    disk_signature: int
    partitions: list[Partition] = field(default_factory=list)

    kind = "mbr"

    @property
    def osv_kernel_size(self) -> int:
        """Bytes of lzloader.elf boot16 loads (count32 x 32 KiB)."""
        return self.count32 * 32 * 1024

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "offset": self.offset,
            "count32": self.count32,
            "disk_signature": self.disk_signature,
            "partitions": [p.to_dict() for p in self.partitions],
        }


def parse_mbr(data, *, path=None, offset: int = 0) -> MbrInfo:
    """Decode the MBR at ``data[offset:]`` (FormatError on a short buffer or no ``55 AA``)."""
    c = schema.parse(MBR, data, what="MBR", path=path, offset=offset)
    for i, p in enumerate(c.partitions):
        if p.status not in (0x00, 0x80):
            entry_offset = offset + MBR_OFFSETS["partitions"] + PARTITION_ENTRY_SIZE * i
            raise schema.format_error("MBR", f"is {p.status:#04x}", path=path, offset=offset,
                                      field=f"partitions[{i}].status",
                                      field_offset=entry_offset, expected="0x00 or 0x80")
    parts = [Partition(i, p.status, p.system_id, p.lba_start, p.sector_count,
                       _chs_bytes(p.start_chs), _chs_bytes(p.end_chs))
             for i, p in enumerate(c.partitions)]
    return MbrInfo(offset, c.bootcode.count32, c.bootcode.disk_signature, parts)


def describe_mbr(info: MbrInfo) -> str:
    lines = [
        f"MBR at {info.offset:#x}",
        f"  count32: {info.count32} ({info.osv_kernel_size} bytes loaded by boot16)",
        f"  disk_signature: {info.disk_signature:#010x}",
    ]
    for p in info.partitions:
        if not p.used and p.lba_start == 0 and p.sector_count == 0:
            lines.append(f"  partition {p.index}: empty")
            continue
        d = p.to_dict()
        lines.append(
            f"  partition {p.index}: type {p.system_id:#04x} status {p.status:#04x} "
            f"lba {p.lba_start} sectors {p.sector_count} (offset {d['offset']:#x}, "
            f"size {d['size']:#x})")
        lines.append(f"    chs standard {tuple(d['start_chs_standard'])} - "
                     f"{tuple(d['end_chs_standard'])}; osv {tuple(d['start_chs_osv'])} - "
                     f"{tuple(d['end_chs_osv'])}; osv_usable: {str(p.osv_usable).lower()}")
    return "\n".join(lines)
