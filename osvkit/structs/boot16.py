"""osvkit's BIOS boot sector ("boot16"): its data header and the whole 512-byte sector.

The header sits at the start of the sector (which the BIOS loads at 0x7C00); the generated
code follows it at :data:`CODE_OFFSET` and the MBR's own fields close the sector::

    0x000  5   far jump to 0000:7C00+CODE_OFFSET (normalises CS:IP)
    0x005  1   drive (written at run time from DL)
    0x006  1   version
    0x008  8   magic b"osvkit16"
    0x010  2   count32: payload size in 32 KiB units, rounded up (OSv's field)
    0x012  4   payload_sectors: exact number of sectors to load from LBA 128
    0x016  4   load_addr
    0x01A  4   decompressor_entry: 32-bit address called after loading
    0x01E  16  disk address packet (int 0x13 AH=0x42)
    0x02E  24  GDT; its null slot holds the GDTR
    0x046  14  b"osvkit-boot16\\0"     (the boot-loader name)
    0x054  15  b": disk error\\r\\n\\0"
    0x063      code, zero-padded up to 0x1B8
    0x1B8  6   disk signature "VSO" (u32 0x004F5356) and two zero bytes
    0x1BE  64  partition table
    0x1FE  2   55 AA
"""

from __future__ import annotations

from construct import (Const, FixedSized, GreedyBytes, Int8ul, Int16ul, Int32ul, Int64ul,
                       Padding, Struct)

from .. import layout
from ..asm import far_jump16
from .base import field_offsets
from .mbr import OSV_DISK_SIGNATURE, PartitionTable

BOOT16_MAGIC = b"osvkit16"
BOOT16_VERSION = 1
LOADER_NAME = b"osvkit-boot16"
ERROR_MESSAGE = b": disk error\r\n"

Dap = Struct(
    "size" / Const(16, Int8ul),      # 0x0
    "reserved" / Const(0, Int8ul),   # 0x1
    "count" / Int16ul,               # 0x2 sectors
    "offset" / Int16ul,              # 0x4 buffer offset
    "segment" / Int16ul,             # 0x6 buffer segment
    "lba" / Int64ul,                 # 0x8
)
"""The int 0x13 extended-read disk address packet."""

_CODE_OFFSET = 0x63
"""Where the code starts; checked against the header's size below."""

Boot16Header = Struct(
    "jump" / Const(far_jump16(0, layout.BOOT16_LOAD_ADDR + _CODE_OFFSET)),  # 0x00
    "drive" / Int8ul,                         # 0x05 written at run time from DL
    "version" / Int8ul,                       # 0x06
    Padding(1),                               # 0x07
    "magic" / Const(BOOT16_MAGIC),            # 0x08
    "count32" / Int16ul,                      # 0x10 OSv: 32 KiB units
    "payload_sectors" / Int32ul,              # 0x12
    "load_addr" / Int32ul,                    # 0x16
    "decompressor_entry" / Int32ul,           # 0x1A
    "dap" / Dap,                              # 0x1E
    "gdtr_limit" / Int16ul,                   # 0x2E (the GDT's null slot)
    "gdtr_base" / Int32ul,                    # 0x30
    Padding(2),                               # 0x34
    "gdt_code32" / Int64ul,                   # 0x36 selector 0x08
    "gdt_data32" / Int64ul,                   # 0x3E selector 0x10
    "loader_name" / Const(LOADER_NAME + b"\0"),          # 0x46
    "error_message" / Const(ERROR_MESSAGE + b"\0"),      # 0x54
)                                                        # 0x63
BOOT16_OFFSETS = field_offsets(Boot16Header)
"""``{"drive": 5, "payload_sectors": 0x12, "dap.lba": 0x26, "loader_name": 0x46, ...}``"""
CODE_OFFSET = Boot16Header.sizeof()
assert CODE_OFFSET == _CODE_OFFSET
CODE_END = layout.MBR_DISK_SIGNATURE_OFFSET

Boot16Sector = Struct(
    "header" / Boot16Header,                               # 0x000
    "code" / FixedSized(CODE_END - CODE_OFFSET, GreedyBytes),  # 0x063 zero-padded
    "disk_signature" / Const(OSV_DISK_SIGNATURE, Int32ul),  # 0x1b8 "VSO\0"
    "reserved" / Const(0, Int16ul),                        # 0x1bc
    "partitions" / PartitionTable,                         # 0x1be
    "boot_signature" / Const(b"\x55\xAA"),                 # 0x1fe
)
"""The whole boot sector; ``code`` parses as the 341 bytes between header and signature."""

assert Boot16Sector.sizeof() == layout.SECTOR_SIZE
