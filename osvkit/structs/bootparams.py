"""Linux ``boot_params`` ("zero page", 4096 bytes) and its ``setup_header``.

Spec: Linux ``Documentation/arch/x86/boot.rst`` (64-bit boot protocol) and
``arch/x86/include/uapi/asm/bootparam.h``; field names are Linux's.  The structure is packed;
``setup_header`` is 123 bytes at 0x1F1 (``boot_flag`` 0xAA55 and ``header`` "HdrS" are
constants), ``e820_table`` 128 x 20 bytes at 0x2D0.  :data:`BOOT_PARAMS_OFFSETS` gives every
field's offset (setup_header fields by their own name).
"""

from __future__ import annotations

from construct import Array, Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .base import field_offsets

E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_NVS = 4
E820_UNUSABLE = 5
E820_PMEM = 7
E820_TYPE_NAMES = {1: "RAM", 2: "reserved", 3: "ACPI", 4: "NVS", 5: "unusable",
                   6: "disabled", 7: "PMEM"}
E820_MAX_ENTRIES_ZEROPAGE = 128

BOOT_FLAG = 0xAA55
HDRS_MAGIC = b"HdrS"
"""``setup_header.header``; as a u32 0x53726448."""

BootE820Entry = Struct(
    "addr" / Int64ul,               # +0x0
    "size" / Int64ul,               # +0x8
    "type" / Int32ul,               # +0x10
)
"""``struct boot_e820_entry`` (20 bytes, packed)."""

SetupHeader = Struct(
    "setup_sects" / Int8ul,             # 0x1f1
    "root_flags" / Int16ul,             # 0x1f2
    "syssize" / Int32ul,                # 0x1f4
    "ram_size" / Int16ul,               # 0x1f8
    "vid_mode" / Int16ul,               # 0x1fa
    "root_dev" / Int16ul,               # 0x1fc
    "boot_flag" / Const(BOOT_FLAG, Int16ul),  # 0x1fe
    "jump" / Int16ul,                   # 0x200
    "header" / Const(HDRS_MAGIC),       # 0x202
    "version" / Int16ul,                # 0x206
    "realmode_swtch" / Int32ul,         # 0x208
    "start_sys_seg" / Int16ul,          # 0x20c
    "kernel_version" / Int16ul,         # 0x20e
    "type_of_loader" / Int8ul,          # 0x210
    "loadflags" / Int8ul,               # 0x211
    "setup_move_size" / Int16ul,        # 0x212
    "code32_start" / Int32ul,           # 0x214
    "ramdisk_image" / Int32ul,          # 0x218
    "ramdisk_size" / Int32ul,           # 0x21c
    "bootsect_kludge" / Int32ul,        # 0x220
    "heap_end_ptr" / Int16ul,           # 0x224
    "ext_loader_ver" / Int8ul,          # 0x226
    "ext_loader_type" / Int8ul,         # 0x227
    "cmd_line_ptr" / Int32ul,           # 0x228
    "initrd_addr_max" / Int32ul,        # 0x22c
    "kernel_alignment" / Int32ul,       # 0x230
    "relocatable_kernel" / Int8ul,      # 0x234
    "min_alignment" / Int8ul,           # 0x235
    "xloadflags" / Int16ul,             # 0x236
    "cmdline_size" / Int32ul,           # 0x238
    "hardware_subarch" / Int32ul,       # 0x23c
    "hardware_subarch_data" / Int64ul,  # 0x240
    "payload_offset" / Int32ul,         # 0x248
    "payload_length" / Int32ul,         # 0x24c
    "setup_data" / Int64ul,             # 0x250
    "pref_address" / Int64ul,           # 0x258
    "init_size" / Int32ul,              # 0x260
    "handover_offset" / Int32ul,        # 0x264
    "kernel_info_offset" / Int32ul,     # 0x268
)
"""``struct setup_header`` (123 bytes, packed; offsets in the comments are in boot_params)."""

BootParams = Struct(
    "screen_info" / Bytes(0x40),        # 0x000
    "apm_bios_info" / Bytes(0x14),      # 0x040
    "_pad2" / Bytes(4),                 # 0x054
    "tboot_addr" / Int64ul,             # 0x058
    "ist_info" / Bytes(0x10),           # 0x060
    "acpi_rsdp_addr" / Int64ul,         # 0x070
    "_pad3" / Bytes(8),                 # 0x078
    "hd0_info" / Bytes(16),             # 0x080
    "hd1_info" / Bytes(16),             # 0x090
    "sys_desc_table" / Bytes(0x10),     # 0x0a0
    "olpc_ofw_header" / Bytes(0x10),    # 0x0b0
    "ext_ramdisk_image" / Int32ul,      # 0x0c0
    "ext_ramdisk_size" / Int32ul,       # 0x0c4
    "ext_cmd_line_ptr" / Int32ul,       # 0x0c8
    "_pad4" / Bytes(112),               # 0x0cc
    "cc_blob_address" / Int32ul,        # 0x13c
    "edid_info" / Bytes(0x80),          # 0x140
    "efi_info" / Bytes(0x20),           # 0x1c0
    "alt_mem_k" / Int32ul,              # 0x1e0
    "scratch" / Int32ul,                # 0x1e4
    "e820_entries" / Int8ul,            # 0x1e8
    "eddbuf_entries" / Int8ul,          # 0x1e9
    "edd_mbr_sig_buf_entries" / Int8ul,  # 0x1ea
    "kbd_status" / Int8ul,              # 0x1eb
    "secure_boot" / Int8ul,             # 0x1ec
    "_pad5" / Bytes(2),                 # 0x1ed
    "sentinel" / Int8ul,                # 0x1ef
    "_pad6" / Bytes(1),                 # 0x1f0
    "hdr" / SetupHeader,                # 0x1f1
    "_pad7" / Bytes(0x290 - 0x26c),     # 0x26c
    "edd_mbr_sig_buffer" / Array(16, Int32ul),  # 0x290
    "e820_table" / Array(E820_MAX_ENTRIES_ZEROPAGE, BootE820Entry),  # 0x2d0
    "_pad8" / Bytes(48),                # 0xcd0
    "eddbuf" / Bytes(6 * 82),           # 0xd00 struct edd_info[6]
    "_pad9" / Bytes(276),               # 0xeec
)
"""``struct boot_params`` (4096 bytes)."""

BOOT_PARAMS_SIZE = 4096
SETUP_HEADER_OFFSET = 0x1F1


def _offsets() -> dict[str, int]:
    nested = field_offsets(BootParams)
    # setup_header names are unique in boot_params, so they are listed by their own name
    return {name.split(".")[-1]: off for name, off in nested.items()}


BOOT_PARAMS_OFFSETS: dict[str, int] = _offsets()
"""Offset of every boot_params field, setup_header fields included (``cmd_line_ptr`` ->
0x228).  Derived from the schema."""

assert BootParams.sizeof() == BOOT_PARAMS_SIZE
assert SetupHeader.sizeof() == 123 and BootE820Entry.sizeof() == 20
assert BOOT_PARAMS_OFFSETS["hdr"] == SETUP_HEADER_OFFSET
