"""Master boot record (MBR) with OSv's fields, and both CHS packings.

The IBM PC MBR (446 bytes of boot code, four 16-byte partition entries, ``55 AA``), with OSv's
fields inside the boot-code area: ``count32`` (u16 at 0x10, the 32 KiB chunks boot16 loads)
and the disk signature (u32 at 0x1B8).

A CHS address is 3 bytes: the head, then a 16-bit word.  :data:`ChsAddress` keeps the raw word
(so either packing round-trips) with both readings as computed views.  The adapters
:data:`OsvChs` and :data:`StandardChs` turn ``(cylinder, head, sector)`` tuples into the two
packings: OSv's ``imgedit.py`` writes the word as ``(cylinder << 6) | sector`` (the kernel
reads the same bit-fields, sector:6 cylinder:10); the standard packing puts cylinder bits 8-9
in bits 6-7 of the second byte and cylinder bits 0-7 in the third.
:data:`PartitionEntryOsv` / :data:`PartitionEntryStandard` are whole entries using them.
"""

from __future__ import annotations

from construct import (Adapter, Array, Bytes, Computed, Const, Default, Int8ul, Int16ul, Int32ul,
                       Struct, this)

from .. import layout

from .base import field_offsets

CHS_SECTORS_PER_TRACK = 63
CHS_HEADS = 255
CHS_MAX = (1023, 254, 63)
"""imgedit.py clamps any cylinder above 1023 to this (cylinder, head, sector)."""

PARTITION_TYPE_LINUX = 0x83
"""The system id imgedit.py writes for OSv partitions."""
OSV_DISK_SIGNATURE = 0x004F5356
"""boot16's bytes ``56 53 4F 00`` at 0x1B8 ("VSO")."""

ChsAddress = Struct(
    "head" / Int8ul,                # +0
    "sector_cylinder" / Int16ul,    # +1 raw word, kept so both packings round-trip
    # views (not written on build): the sector is bits 0-5 of byte +1 in both packings;
    # only the cylinder differs
    "sector" / Computed(this.sector_cylinder & 0x3F),
    "cylinder" / Computed(((this.sector_cylinder & 0xC0) << 2) | (this.sector_cylinder >> 8)),
    "osv_cylinder" / Computed(this.sector_cylinder >> 6),
)
"""3-byte CHS address with both decodings: ``cylinder`` (standard) and ``osv_cylinder``."""

PartitionEntry = Struct(
    "status" / Int8ul,              # +0x0 0x80 = active (bootable); imgedit leaves 0
    "start_chs" / ChsAddress,       # +0x1
    "system_id" / Int8ul,           # +0x4 partition type, 0 = unused
    "end_chs" / ChsAddress,         # +0x5
    "lba_start" / Int32ul,          # +0x8
    "sector_count" / Int32ul,       # +0xc
)
"""One 16-byte partition table entry."""

BootCode = Struct(
    "head" / Bytes(0x10),           # 0x000 boot code (OSv: far jump to init)
    "count32" / Int16ul,            # 0x010 OSv: 32 KiB chunks of lzloader.elf boot16 loads
    "code" / Bytes(0x1B8 - 0x12),   # 0x012 boot code and data
    "disk_signature" / Int32ul,     # 0x1b8
    "reserved" / Int16ul,           # 0x1bc
)
"""The 446-byte boot-code area with OSv's fields."""

PartitionTable = Array(4, PartitionEntry)
"""The four entries of the partition table (64 bytes at 0x1be)."""

MBR = Struct(
    "bootcode" / BootCode,                  # 0x000
    "partitions" / PartitionTable,          # 0x1be
    "boot_signature" / Const(layout.MBR_BOOT_SIGNATURE),  # 0x1fe
)
"""The 512-byte master boot record."""

MBR_OFFSETS = {
    "count32": field_offsets(MBR)["bootcode.count32"],
    "disk_signature": field_offsets(MBR)["bootcode.disk_signature"],
    "partitions": field_offsets(MBR)["partitions"],
    "boot_signature": field_offsets(MBR)["boot_signature"],
}

assert BootCode.sizeof() == layout.MBR_BOOTCODE_SIZE
assert PartitionEntry.sizeof() == 16 and MBR.sizeof() == layout.SECTOR_SIZE
assert MBR_OFFSETS["count32"] == layout.MBR_COUNT32_OFFSET
assert MBR_OFFSETS["disk_signature"] == layout.MBR_DISK_SIGNATURE_OFFSET
assert MBR_OFFSETS["partitions"] == layout.MBR_PARTITION_TABLE_OFFSET
assert MBR_OFFSETS["boot_signature"] == layout.MBR_SIGNATURE_OFFSET


class _OsvChs(Adapter):
    """``(cylinder, head, sector)`` <-> head byte + u16 ``(cylinder << 6) | sector``."""

    def _decode(self, obj, context, path):
        return (obj.word >> 6, obj.head, obj.word & 0x3F)

    def _encode(self, obj, context, path):
        cylinder, head, sector = obj
        return {"head": head, "word": (cylinder << 6) | sector}


class _StandardChs(Adapter):
    """``(cylinder, head, sector)`` <-> head; sector | cylinder bits 8-9 << 6; cylinder 0-7."""

    def _decode(self, obj, context, path):
        return (((obj.sector_cyl_hi >> 6) << 8) | obj.cyl_lo, obj.head,
                obj.sector_cyl_hi & 0x3F)

    def _encode(self, obj, context, path):
        cylinder, head, sector = obj
        return {"head": head, "sector_cyl_hi": sector | ((cylinder >> 8) << 6),
                "cyl_lo": cylinder & 0xFF}


OsvChs = _OsvChs(Struct("head" / Int8ul, "word" / Int16ul))
"""A CHS address in OSv's packing, as a ``(cylinder, head, sector)`` tuple."""
StandardChs = _StandardChs(Struct("head" / Int8ul, "sector_cyl_hi" / Int8ul,
                                  "cyl_lo" / Int8ul))
"""A CHS address in the standard packing, as a ``(cylinder, head, sector)`` tuple."""


def _partition_entry(chs):
    return Struct(
        "status" / Default(Int8ul, 0),  # +0x0
        "start_chs" / chs,              # +0x1
        "system_id" / Int8ul,           # +0x4
        "end_chs" / chs,                # +0x5
        "lba_start" / Int32ul,          # +0x8
        "sector_count" / Int32ul,       # +0xc
    )


PartitionEntryOsv = _partition_entry(OsvChs)
"""A partition entry whose CHS fields are ``(cylinder, head, sector)`` in OSv's packing."""
PartitionEntryStandard = _partition_entry(StandardChs)
"""A partition entry whose CHS fields are ``(cylinder, head, sector)`` in the standard packing."""
PARTITION_ENTRY_SIZE = PartitionEntry.sizeof()
PartitionTable = Array(4, PartitionEntry)
"""The 64-byte partition table (raw CHS words kept, so it round-trips whatever packing)."""

assert PartitionEntryOsv.sizeof() == PartitionEntryStandard.sizeof() == PARTITION_ENTRY_SIZE
