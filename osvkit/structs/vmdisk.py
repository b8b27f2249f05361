"""Headers of the VM disk formats osvkit's build files export to, and the gzip trailer.

* :data:`VmdkSparseHeader` -- the start of a VMDK sparse extent header (``KDMV``), up to the
  embedded descriptor's place (``descriptor_offset``/``descriptor_size``, in sectors).
* :data:`VdiHeader` -- a VirtualBox VDI image header (version 1.1) up to the four UUIDs;
  ``uuid_create`` is the image UUID, ``uuid_modify`` the last-snapshot UUID.
* :data:`GzipTrailer` -- the 8 bytes closing a gzip member (CRC-32 and size mod 2**32).
"""

from __future__ import annotations

from construct import Bytes, Const, Int32ul, Int64ul, Struct

from .base import field_offsets

VMDK_MAGIC = b"KDMV"

VmdkSparseHeader = Struct(
    "magic" / Const(VMDK_MAGIC),         # 0x00
    "version" / Int32ul,                 # 0x04
    "flags" / Int32ul,                   # 0x08
    "capacity" / Int64ul,                # 0x0C sectors
    "grain_size" / Int64ul,              # 0x14 sectors
    "descriptor_offset" / Int64ul,       # 0x1C sectors
    "descriptor_size" / Int64ul,         # 0x24 sectors
)

VDI_SIGNATURE = 0xBEDA107F

VdiHeader = Struct(
    "text" / Bytes(0x40),                # 0x000 "<<< Oracle VM VirtualBox Disk Image >>>\n"
    "signature" / Const(VDI_SIGNATURE, Int32ul),  # 0x040
    "version" / Int32ul,                 # 0x044
    "header_size" / Int32ul,             # 0x048
    "image_type" / Int32ul,              # 0x04C
    "flags" / Int32ul,                   # 0x050
    "comment" / Bytes(256),              # 0x054
    "blocks_offset" / Int32ul,           # 0x154
    "data_offset" / Int32ul,             # 0x158
    "cylinders" / Int32ul,               # 0x15C legacy geometry
    "heads" / Int32ul,                   # 0x160
    "sectors" / Int32ul,                 # 0x164
    "sector_size" / Int32ul,             # 0x168
    "unused" / Int32ul,                  # 0x16C
    "disk_size" / Int64ul,               # 0x170
    "block_size" / Int32ul,              # 0x178
    "block_extra" / Int32ul,             # 0x17C
    "blocks" / Int32ul,                  # 0x180
    "blocks_allocated" / Int32ul,        # 0x184
    "uuid_create" / Bytes(16),           # 0x188 the image's UUID
    "uuid_modify" / Bytes(16),           # 0x198 the last snapshot's UUID
    "uuid_linkage" / Bytes(16),          # 0x1A8
    "uuid_parent_modify" / Bytes(16),    # 0x1B8
)
VDI_OFFSETS = field_offsets(VdiHeader)

GzipTrailer = Struct(
    "crc32" / Int32ul,
    "isize" / Int32ul,                   # uncompressed size mod 2**32
)
