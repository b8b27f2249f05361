"""OSv's lzloader segment format (the compressed kernel boot16 loads), and pyfastlz's prefix.

All integers are little-endian int32 (OSv's ``fastlz/lz.cc``)::

    0              info_offset        offset of the segment table in the blob
    4              payloads           segment 0 .. n-1, each FastLZ-compressed or raw
    info_offset    n                  segment count
    +4             n x (usize, ssize) uncompressed size, stored size

:data:`LzInfoOffset` is the first word, :data:`LzSegmentTable` the table (count rebuilt from
the entries), :data:`LzSegmentEntry` one entry.  :data:`PyFastlzPrefix` is the u32 length
that the ``pyfastlz`` module puts before its output.
"""

from __future__ import annotations

from construct import Array, Int32sl, Int32ul, Rebuild, Struct, len_, this

LzInfoOffset = Int32sl
LzSegmentCount = Int32sl
LzSegmentEntry = Struct(
    "usize" / Int32sl,      # +0 uncompressed size
    "ssize" / Int32sl,      # +4 stored size (== usize: stored raw)
)
LzSegmentTable = Struct(
    "count" / Rebuild(LzSegmentCount, len_(this.segments)),
    "segments" / Array(this.count, LzSegmentEntry),
)
LZ_HEADER_SIZE = LzInfoOffset.sizeof()
LZ_ENTRY_SIZE = LzSegmentEntry.sizeof()
LZ_COUNT_SIZE = LzSegmentCount.sizeof()


def lz_table_size(count: int) -> int:
    """Bytes of a segment table with ``count`` entries."""
    return LZ_COUNT_SIZE + count * LZ_ENTRY_SIZE


PyFastlzPrefix = Int32ul
"""pyfastlz's 4-byte little-endian uncompressed length before the FastLZ block."""
