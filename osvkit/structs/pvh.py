"""PVH boot: Xen's ``hvm_start_info`` and the tables it points at.

Spec: Xen ``xen/include/public/arch-x86/hvm/start_info.h``.  ``hvm_start_info`` is 56 bytes
with magic 0x336EC578 (a constant here); memmap entries are 24 bytes, module-list entries 32.
"""

from __future__ import annotations

from construct import Const, Int32ul, Int64ul, Struct

from .base import field_offsets

XEN_HVM_START_MAGIC_VALUE = 0x336EC578
MEMMAP_TYPE_NAMES = {1: "RAM", 2: "reserved", 3: "ACPI", 4: "NVS", 5: "unusable",
                     6: "disabled", 7: "PMEM"}

HvmStartInfo = Struct(
    "magic" / Const(XEN_HVM_START_MAGIC_VALUE, Int32ul),  # 0
    "version" / Int32ul,            # 4
    "flags" / Int32ul,              # 8
    "nr_modules" / Int32ul,         # 12
    "modlist_paddr" / Int64ul,      # 16
    "cmdline_paddr" / Int64ul,      # 24
    "rsdp_paddr" / Int64ul,         # 32
    "memmap_paddr" / Int64ul,       # 40
    "memmap_entries" / Int32ul,     # 48
    "reserved" / Int32ul,           # 52
)
"""``struct hvm_start_info`` (56 bytes)."""

HvmMemmapTableEntry = Struct(
    "addr" / Int64ul,               # +0
    "size" / Int64ul,               # +8
    "type" / Int32ul,               # +16
    "reserved" / Int32ul,           # +20
)
"""``struct hvm_memmap_table_entry`` (24 bytes)."""

HvmModlistEntry = Struct(
    "paddr" / Int64ul,              # +0
    "size" / Int64ul,               # +8
    "cmdline_paddr" / Int64ul,      # +16
    "reserved" / Int64ul,           # +24
)
"""``struct hvm_modlist_entry`` (32 bytes)."""

HVM_START_INFO_OFFSETS = field_offsets(HvmStartInfo)
HVM_MEMMAP_ENTRY_OFFSETS = field_offsets(HvmMemmapTableEntry)
HVM_MODLIST_ENTRY_OFFSETS = field_offsets(HvmModlistEntry)

assert HvmStartInfo.sizeof() == 56
assert HvmMemmapTableEntry.sizeof() == 24 and HvmModlistEntry.sizeof() == 32
