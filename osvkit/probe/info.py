"""The probe's info block at +0x808, read back; the checksum it carries.

The info block (:data:`osvkit.structs.probe.ProbeInfo`) says the probe was made by osvkit
and carries two Adler-32 checksums (:func:`checksum`, the same value as ``zlib.adler32``): the
*header* sum over file bytes [0, 0x800) and the *body* sum over [0x800, p_filesz) with both
sum fields read as zero.  The probe recomputes both at boot (:mod:`osvkit.probe.checksum`).
"""

from __future__ import annotations

import zlib


from ..errors import FormatError
from ..structs.probe import PROBE_INFO_OFFSETS, PROBE_INFO_SIZE, ProbeInfo, StartSlot
from ..structs.x86 import GdtPointer64, gdt
from .layout import GDT, INFO_MAGIC, INFO_OFFSET
from ..structs.base import ConstructError

__all__ = ["ProbeInfo", "GdtPointer64", "StartSlot", "GdtTable", "INFO_FIELDS", "INFO_SIZE",
           "checksum", "read_info"]

INFO_FIELDS = PROBE_INFO_OFFSETS
INFO_SIZE = PROBE_INFO_SIZE
GdtTable = gdt(len(GDT))


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
