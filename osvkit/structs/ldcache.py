"""glibc's ``/etc/ld.so.cache`` in the ``glibc-ld.so.cache1.1`` format (glibc 2.32 and later
write only this format; older ones append it after the ``ld.so-1.7.0`` table).

Layout, little-endian (glibc ``sysdeps/generic/dl-cache.h``, written by ``ldconfig``)::

    header (48 bytes)
      magic           17 bytes  "glibc-ld.so.cache"
      version          3 bytes  "1.1"
      nlibs            u32      number of entries
      len_strings      u32      bytes of the string table after the entries
      flags            u8       byte order: 0 unknown, 1 invalid, 2 little, 3 big
      padding          3 bytes
      extension_offset u32      offset of the extension directory (0: none)
      unused           3 x u32
    entries: nlibs x 24 bytes
      flags            i32      FLAG_ELF_LIBC6 (3) | FLAG_X8664_LIB64 (0x300) on x86-64
      key              u32      offset of the library name (the soname)
      value            u32      offset of the library path
      osversion        u32      unused
      hwcap            u64      bit 62 set: the low 32 bits index the glibc-hwcaps list
    strings: NUL-terminated, offsets counted from the start of the header
    extension directory (optional)
      magic            u32      0xEAA42174
      count            u32
      sections: count x {tag u32, flags u32, offset u32, size u32}
      tag 1 (glibc-hwcaps): size/4 x u32 string offsets ("x86-64-v3", ...)
"""

from __future__ import annotations

from construct import Array, Bytes, Const, Int8ul, Int32sl, Int32ul, Int64ul, Struct

MAGIC = b"glibc-ld.so.cache"
VERSION = b"1.1"
OLD_MAGIC = b"ld.so-1.7.0"

FLAG_ELF_LIBC6 = 0x0003
FLAG_X8664_LIB64 = 0x0300
FLAG_AARCH64_LIB64 = 0x0A00
FLAG_TYPE_MASK = 0x00FF
FLAG_REQUIRED_MASK = 0xFF00

ENDIAN_LITTLE = 2
ENDIAN_BIG = 3

HWCAP_EXTENSION = 1 << 62
EXTENSION_MAGIC = 0xEAA42174
EXTENSION_TAG_GENERATOR = 0
EXTENSION_TAG_GLIBC_HWCAPS = 1

header_c = Struct(
    "magic" / Const(MAGIC),
    "version" / Const(VERSION),
    "nlibs" / Int32ul,
    "len_strings" / Int32ul,
    "flags" / Int8ul,
    "padding" / Bytes(3),
    "extension_offset" / Int32ul,
    "unused" / Array(3, Int32ul),
)
HEADER_SIZE = 48

entry_c = Struct(
    "flags" / Int32sl,
    "key" / Int32ul,
    "value" / Int32ul,
    "osversion" / Int32ul,
    "hwcap" / Int64ul,
)
ENTRY_SIZE = 24

extension_dir_c = Struct(
    "magic" / Const(EXTENSION_MAGIC, Int32ul),
    "count" / Int32ul,
)
extension_section_c = Struct(
    "tag" / Int32ul,
    "flags" / Int32ul,
    "offset" / Int32ul,
    "size" / Int32ul,
)
u32_c = Int32ul
