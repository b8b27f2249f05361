"""The header of osvkit's compressed boot payload (decompressor + lzloader blob at LBA 128).

boot16 loads the payload to ``layout.LZ_BLOB_ADDR`` and calls its first byte; the header
starts with a short jump over itself to the decompressor code::

    0x00  4  jmp +0x1e, two zero bytes
    0x04  8  magic b"osvkitLZ"
    0x0C  4  version
    0x10  4  blob_offset: where the lzloader blob starts in the payload
    0x14  4  blob_size
    0x18  4  kernel_size: the uncompressed kernel's size
    0x1C  4  code_size: the decompressor's size
"""

from __future__ import annotations

from construct import Const, Int32ul, Struct

from .base import field_offsets

PAYLOAD_MAGIC = b"osvkitLZ"
PAYLOAD_VERSION = 1
PAYLOAD_JUMP = b"\xEB\x1E\x00\x00"
"""``jmp +0x1e`` (to 0x20, the code) and two zero bytes."""

PayloadHeader = Struct(
    "jump" / Const(PAYLOAD_JUMP),          # 0x00
    "magic" / Const(PAYLOAD_MAGIC),        # 0x04
    "version" / Int32ul,                   # 0x0C
    "blob_offset" / Int32ul,               # 0x10
    "blob_size" / Int32ul,                 # 0x14
    "kernel_size" / Int32ul,               # 0x18
    "code_size" / Int32ul,                 # 0x1C
)
HEADER_SIZE = PayloadHeader.sizeof()
PAYLOAD_OFFSETS = field_offsets(PayloadHeader)
assert HEADER_SIZE == 2 + PAYLOAD_JUMP[1]
