"""qcow2 (versions 2 and 3) on-disk structures, as QEMU's qcow2 specification lays them out.

Everything is big-endian.

* :data:`Qcow2Header` -- the 72 bytes common to versions 2 and 3 (magic ``QFI\\xfb``).
* :data:`Qcow2HeaderV3` -- the version-3 additions at 0x48 (feature bit masks,
  ``refcount_order``, ``header_length``); 104 bytes in all.
* :data:`Qcow2HeaderFull` -- both, with the version-3 part present when ``version >= 3``,
  plus the one-byte ``compression_type`` at 104 when ``header_length`` exceeds 104.
* :data:`Qcow2Extension` -- a header extension's type and length; :data:`Qcow2ExtensionData`
  the whole extension with its data padded to 8 bytes; :data:`Qcow2FeatureName` one entry of
  the feature-name table.
* :data:`Qcow2TableEntry` -- one L1, L2 or refcount-table entry (u64); :func:`qcow2_table`
  an array of them.

The bit masks of the L1/L2 entries and of the feature fields are constants here too.
"""

from __future__ import annotations

from construct import (Aligned, Array, Bytes, Const, Default, If, Int8ub, Int32ub, Int64ub,
                       PaddedString, Rebuild, Struct, len_, this)

from .. import layout
from .base import field_offsets

QCOW2_MAGIC = layout.QCOW2_MAGIC

_COMMON = (
    "magic" / Const(QCOW2_MAGIC),                    # 0x00
    "version" / Int32ub,                             # 0x04
    "backing_file_offset" / Default(Int64ub, 0),     # 0x08
    "backing_file_size" / Default(Int32ub, 0),       # 0x10
    "cluster_bits" / Int32ub,                        # 0x14
    "size" / Int64ub,                                # 0x18
    "crypt_method" / Default(Int32ub, 0),            # 0x20
    "l1_size" / Int32ub,                             # 0x24
    "l1_table_offset" / Int64ub,                     # 0x28
    "refcount_table_offset" / Int64ub,               # 0x30
    "refcount_table_clusters" / Int32ub,             # 0x38
    "nb_snapshots" / Default(Int32ub, 0),            # 0x3c
    "snapshots_offset" / Default(Int64ub, 0),        # 0x40
)
_V3 = (
    "incompatible_features" / Default(Int64ub, 0),   # 0x48
    "compatible_features" / Default(Int64ub, 0),     # 0x50
    "autoclear_features" / Default(Int64ub, 0),      # 0x58
    "refcount_order" / Default(Int32ub, 4),          # 0x60
    "header_length" / Int32ub,                       # 0x64
)

Qcow2Header = Struct(*_COMMON)
"""The header fields common to qcow2 versions 2 and 3 (72 bytes)."""
QCOW2_V2_HEADER_SIZE = Qcow2Header.sizeof()

Qcow2HeaderV3 = Struct(*_V3)
"""Version 3 additions, at 0x48 (``header_length`` >= 104)."""
QCOW2_V3_HEADER_SIZE = QCOW2_V2_HEADER_SIZE + Qcow2HeaderV3.sizeof()
QCOW2_COMPRESSION_TYPE_OFFSET = QCOW2_V3_HEADER_SIZE
"""u8, present when ``header_length`` > 104: 0 zlib (deflate), 1 zstd."""
COMPRESSION_ZLIB, COMPRESSION_ZSTD = 0, 1

Qcow2CompressionType = Int8ub

Qcow2HeaderFull = Struct(
    *_COMMON,
    "v3" / If(this.version >= 3, Qcow2HeaderV3),
    "compression_type" / If(lambda ctx: ctx.v3 is not None
                            and ctx.v3.header_length > QCOW2_V3_HEADER_SIZE,
                            Qcow2CompressionType),
)
"""The header as a version-2 or version-3 reader sees it (variable size)."""

QCOW2_HEADER_OFFSETS = {**field_offsets(Qcow2Header),
                        **{k: QCOW2_V2_HEADER_SIZE + v
                           for k, v in field_offsets(Qcow2HeaderV3).items()},
                        "compression_type": QCOW2_COMPRESSION_TYPE_OFFSET}
"""Byte offset of every header field, versions 2 and 3."""

Qcow2Extension = Struct(
    "type" / Int32ub,
    "length" / Int32ub,
)
Qcow2ExtensionData = Struct(
    "type" / Int32ub,
    "length" / Rebuild(Int32ub, len_(this.data)),
    "data" / Aligned(8, Bytes(this.length)),
)
"""A whole header extension: the data is padded with zeros to a multiple of 8 bytes."""
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_NAMES = 0x6803F857

Qcow2FeatureName = Struct(
    "type" / Int8ub,              # 0 incompatible, 1 compatible, 2 autoclear
    "bit" / Int8ub,
    "name" / PaddedString(46, "ascii"),
)

# incompatible_features bits
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION
                  | INCOMPAT_EXTL2)
INCOMPAT_NAMES = {0: "dirty", 1: "corrupt", 2: "external data file", 3: "compression type",
                  4: "extended L2 entries"}
COMPAT_LAZY_REFCOUNTS = 1 << 0

# L1/L2 entry bits
Qcow2TableEntry = Int64ub
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
"""Bits 9..55: host offset of an L2 table or a standard data cluster."""
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1 << 0


def qcow2_table(count: int):
    """``count`` big-endian u64 entries (an L1, L2 or refcount table)."""
    return Array(count, Qcow2TableEntry)
