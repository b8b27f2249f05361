"""PNG structures (ISO/IEC 15948): the signature, a chunk, and the IHDR chunk's data.

Everything is big-endian.  :data:`PngChunk` rebuilds ``length`` from the data and computes
the CRC-32 over the chunk type and data (checked when parsing).
"""

from __future__ import annotations

import zlib

from construct import Bytes, Checksum, Int8ub, Int32ub, Rebuild, Struct, len_, this

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_RGB = 2

PngChunk = Struct(
    "length" / Rebuild(Int32ub, len_(this.data)),
    "type" / Bytes(4),
    "data" / Bytes(this.length),
    "crc" / Checksum(Int32ub, lambda b: zlib.crc32(b) & 0xFFFF_FFFF,
                     lambda ctx: ctx.type + ctx.data),
)

PngIhdr = Struct(
    "width" / Int32ub,
    "height" / Int32ub,
    "bit_depth" / Int8ub,
    "colour_type" / Int8ub,
    "compression" / Int8ub,     # 0: deflate
    "filter" / Int8ub,          # 0: adaptive
    "interlace" / Int8ub,       # 0: none
)
