"""The conformance kernel's own structures (:mod:`osvkit.probe`).

* :data:`ProbeInfo`: the info block at file offset 0x808 of every probe kernel: magic, format
  version, PT_LOAD length, the two Adler-32 sums the probe checks at boot, flags.
* :data:`StartSlot`: the u64 at +0x800 holding the physical address of ``start32``.

The probe's GDT and its ``lgdt`` operand are :mod:`osvkit.structs.x86`'s.
"""

from __future__ import annotations

from construct import Const, Int32ul, Int64ul, Struct

from .base import field_offsets

PROBE_INFO_MAGIC = b"OSVKPROB"
PROBE_FLAG_ENTRY_REPORT = 1

ProbeInfo = Struct(
    "magic" / Const(PROBE_INFO_MAGIC),  # +0x00
    "version" / Int32ul,                # +0x08
    "image_len" / Int32ul,              # +0x0C: PT_LOAD p_filesz
    "header_sum" / Int32ul,             # +0x10: Adler-32 of [0, 0x800)
    "body_sum" / Int32ul,               # +0x14: of [0x800, image_len), the sums read as 0
    "flags" / Int32ul,                  # +0x18: bit 0: built with entry_report
)
PROBE_INFO_OFFSETS = field_offsets(ProbeInfo)
PROBE_INFO_SIZE = ProbeInfo.sizeof()

StartSlot = Int64ul

assert PROBE_INFO_SIZE == 0x1C
