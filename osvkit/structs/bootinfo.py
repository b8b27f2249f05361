"""OSv's boot-info block ``osv_multiboot_info_type`` and its e820 records.

A packed multiboot-1 info structure (88 bytes) followed by OSv's own fields (three TSC stamps,
``disk_err``, the unaligned ``pvh_rsdp``), 121 bytes in all, at guest-physical
``layout.BOOTINFO_ADDR``.  The e820 records at ``mmap_addr`` are ``{u32 ent_size; u64 addr;
u64 size; u32 type}``, 24 bytes when ``ent_size`` is 20; OSv steps by ``ent_size + 4``.
osvkit's stubs also set ``boot_loader_name`` and multiboot flag bit 9
(:data:`BOOTINFO_FLAG_BOOT_LOADER_NAME`).
"""

from __future__ import annotations

from construct import Array, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .. import layout

from .base import field_offsets

BOOTINFO_FLAG_BOOT_LOADER_NAME = 1 << 9
OSV_E820_ENT_SIZE = 20
"""``ent_size`` of every record a direct-boot path writes (the record is 24 bytes)."""

OsvMultibootInfo = Struct(
    "flags" / Int32ul,              # 0
    "mem_lower" / Int32ul,          # 4
    "mem_upper" / Int32ul,          # 8
    "boot_device" / Int32ul,        # 12
    "cmdline" / Int32ul,            # 16 phys address of the NUL-terminated command line
    "mods_count" / Int32ul,         # 20
    "mods_addr" / Int32ul,          # 24
    "syms" / Array(4, Int32ul),     # 28
    "mmap_length" / Int32ul,        # 44 bytes of e820 records
    "mmap_addr" / Int32ul,          # 48 phys address of the records (0x2000)
    "drives_length" / Int32ul,      # 52
    "drives_addr" / Int32ul,        # 56
    "config_table" / Int32ul,       # 60
    "boot_loader_name" / Int32ul,   # 64 osvkit stubs: phys address of their name
    "apm_table" / Int32ul,          # 68
    "vbe_control_info" / Int32ul,   # 72
    "vbe_mode_info" / Int32ul,      # 76
    "vbe_mode" / Int16ul,           # 80
    "vbe_interface_seg" / Int16ul,  # 82
    "vbe_interface_off" / Int16ul,  # 84
    "vbe_interface_len" / Int16ul,  # 86
    "tsc_init" / Int64ul,           # 88 (tsc_init, tsc_init_hi)
    "tsc_disk_done" / Int64ul,      # 96 (tsc_disk_done, tsc_disk_done_hi)
    "tsc_uncompress_done" / Int64ul,  # 104 (tsc_uncompress_done, tsc_uncompress_done_hi)
    "disk_err" / Int8ul,            # 112 BIOS AH after a failed read
    "pvh_rsdp" / Int64ul,           # 113 unaligned
)
"""``struct osv_multiboot_info_type`` (121 bytes, packed)."""

OsvE820Entry = Struct(
    "ent_size" / Int32ul,           # +0 bytes that follow (20)
    "addr" / Int64ul,               # +4
    "size" / Int64ul,               # +12
    "type" / Int32ul,               # +20
)
"""``struct e820ent`` (24 bytes, packed)."""

BOOTINFO_OFFSETS: dict[str, int] = field_offsets(OsvMultibootInfo)
"""Offset of every field (``cmdline`` -> 16, ``pvh_rsdp`` -> 113), derived from the schema."""
OSV_E820_OFFSETS: dict[str, int] = field_offsets(OsvE820Entry)
OSV_E820_ENTRY_SIZE = OsvE820Entry.sizeof()
MAX_MMAP_LENGTH = layout.E820_MAP_END - layout.E820_MAP_ADDR

assert OsvMultibootInfo.sizeof() == layout.BOOTINFO_SIZE
assert OSV_E820_ENTRY_SIZE == 24
