"""The probe's own binary structures: the info block at +0x808, its GDT and descriptor.

The info block (:data:`ProbeInfo`) says the probe was made by osvkit and carries two
Adler-32 checksums (:func:`checksum`, the same value as ``zlib.adler32``): the *header* sum
over file bytes [0, 0x800) and the *body* sum over [0x800, p_filesz) with both sum fields
read as zero.  The probe recomputes both at boot (:mod:`osvkit.probe.checksum`).
"""

from __future__ import annotations

import zlib

from construct import Array, Const, ConstructError, Int16ul, Int32ul, Int64ul, Struct

from ..structs.base import field_offsets
from ..errors import FormatError
from .layout import GDT, INFO_MAGIC, INFO_OFFSET

ProbeInfo = Struct(
    "magic" / Const(INFO_MAGIC),      # +0x00
    "version" / Int32ul,              # +0x08
    "image_len" / Int32ul,            # +0x0C: PT_LOAD p_filesz
    "header_sum" / Int32ul,           # +0x10: checksum of [0, 0x800)
    "body_sum" / Int32ul,             # +0x14: checksum of [0x800, image_len), sums read as 0
    "flags" / Int32ul,                # +0x18: bit 0: built with entry_report
)
INFO_FIELDS = field_offsets(ProbeInfo)
INFO_SIZE = ProbeInfo.sizeof()

GdtTable = Array(len(GDT), Int64ul)
PseudoDescriptor = Struct(            # the operand of lgdt/lidt in 64-bit mode
    "limit" / Int16ul,
    "base" / Int64ul,
)
StartSlot = Int64ul                   # the u64 at +0x800: physical address of start32


def checksum(data: bytes, value: int = 1) -> int:
    """The probe's image checksum: Adler-32 (as ``zlib.adler32``), continuing from ``value``."""
    return zlib.adler32(data, value)


def read_info(data: bytes):
    """The probe info block at +0x808 (a construct Container); FormatError if absent."""
    try:
        return ProbeInfo.parse(data[INFO_OFFSET:INFO_OFFSET + INFO_SIZE])
    except ConstructError:
        raise FormatError(f"no probe info block at +{INFO_OFFSET:#x}",
                          expected=f"magic {INFO_MAGIC!r} (a kernel made by osvkit probe)"
                          ) from None
