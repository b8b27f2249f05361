"""PNG (ISO/IEC 15948): the signature, a chunk, and the IHDR chunk's data.

Used by :mod:`osvkit.plot` to write boot timelines as 8-bit RGB pictures.
"""

from __future__ import annotations

import zlib

from construct import Bytes, Checksum, Const, Int8ub, Int32ub, Rebuild, Struct, len_, this

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPE_RGB = 2

PngSignature = Const(PNG_SIGNATURE)

PngChunk = Struct(
    "length" / Rebuild(Int32ub, len_(this.data)),
    "type" / Bytes(4),
    "data" / Bytes(this.length),
    "crc" / Checksum(Int32ub, lambda body: zlib.crc32(body) & 0xFFFFFFFF,
                     lambda ctx: ctx.type + ctx.data),
)
"""One chunk: the CRC-32 covers the type and the data, not the length."""

PngIhdr = Struct(
    "width" / Int32ub,
    "height" / Int32ub,
    "bit_depth" / Int8ub,
    "color_type" / Int8ub,
    "compression" / Const(0, Int8ub),
    "filter" / Const(0, Int8ub),
    "interlace" / Int8ub,
)

assert PngIhdr.sizeof() == 13
