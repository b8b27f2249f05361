"""Field offsets the fcpath stubs and the qemu-fc loader use, taken from the schemas.

One place that names every boot_params / boot-info / hvm_start_info offset the generated
assembly refers to, so no offset is typed into assembly text.  The values come from the
construct schemas of ``osvkit.boot`` (schemas part) when they are importable; until then
from the tables below, which restate ``osv-boot.md`` 1.4 and ``firecracker-boot.md`` 3.1,
3.2, 5.4 field by field.  ``tests/test_stub_offsets.py`` checks both agree.
"""

from __future__ import annotations

# boot_params ("zero page") -- firecracker-boot.md 3.1/3.2 (linux-loader bootparam.rs)
BOOT_PARAMS = {
    "acpi_rsdp_addr": 0x070,
    "e820_entries": 0x1E8,
    "boot_flag": 0x1FE,
    "header": 0x202,
    "type_of_loader": 0x210,
    "cmd_line_ptr": 0x228,
    "kernel_alignment": 0x230,
    "cmdline_size": 0x238,
    "e820_table": 0x2D0,
}
BOOT_E820_ENTRY = {"addr": 0, "size": 8, "type": 16, "sizeof": 20}
E820_MAX_ENTRIES_ZEROPAGE = 128

# OSv's osv_multiboot_info_type at 0x1000 -- osv-boot.md 1.4
BOOTINFO = {
    "flags": 0,
    "cmdline": 16,
    "mmap_length": 44,
    "mmap_addr": 48,
    "boot_loader_name": 64,
    "tsc_init": 88,
    "tsc_disk_done": 96,
    "tsc_uncompress_done": 104,
    "disk_err": 112,
    "pvh_rsdp": 113,
    "sizeof": 121,
}
BOOTINFO_FLAG_BOOT_LOADER_NAME = 0x200
"""multiboot ``flags`` bit 9: ``boot_loader_name`` is valid (interfaces.md)."""
E820ENT = {"ent_size": 0, "addr": 4, "size": 12, "type": 20, "sizeof": 24}
"""OSv's packed ``e820ent`` record at 0x2000 (ent_size is 20, records step by 24)."""

# hvm_start_info and friends -- firecracker-boot.md 5.4 (Xen start_info.h)
START_INFO = {
    "magic": 0,
    "version": 4,
    "flags": 8,
    "nr_modules": 12,
    "modlist_paddr": 16,
    "cmdline_paddr": 24,
    "rsdp_paddr": 32,
    "memmap_paddr": 40,
    "memmap_entries": 48,
    "sizeof": 56,
}
HVM_MODLIST_ENTRY = {"paddr": 0, "size": 8, "cmdline_paddr": 16, "sizeof": 32}
HVM_MEMMAP_ENTRY = {"addr": 0, "size": 8, "type": 16, "sizeof": 24}
