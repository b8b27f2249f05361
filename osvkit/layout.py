"""Every guest-physical address and fixed file offset osvkit reads or writes.

One flat list of named constants, in the style of Firecracker's ``layout.rs``: suffixes
``_START`` (first byte), ``_END`` (first byte past), ``_SIZE``, ``_ADDR`` (a single
address) and ``_OFFSET`` (a byte offset in a file or structure).  Derived values are
expressions, not new literals.  ``REGIONS`` lists the guest-memory regions per boot path;
``tests/test_foundation.py`` checks they do not overlap except where ``ALLOWED_OVERLAPS`` says
why.

Sources: OSv's ``arch/x64`` boot code and linker script, Firecracker's ``arch/x86_64`` layout.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# ----------------------------------------------------------------------------------
# Disk image (usr.img) offsets
# ----------------------------------------------------------------------------------
SECTOR_SIZE = 512
MBR_COUNT32_OFFSET = 0x10
"""u16: number of 32 KiB chunks boot16 loads (OSv's boot sector field)."""
MBR_DISK_SIGNATURE_OFFSET = 0x1B8
MBR_PARTITION_TABLE_OFFSET = 0x1BE
MBR_SIGNATURE_OFFSET = 0x1FE
MBR_BOOT_SIGNATURE = b"\x55\xaa"
MBR_BOOTCODE_SIZE = 446
CMDLINE_OFFSET = 0x200
"""The kernel command line, NUL-terminated, starts at byte 512 of the disk."""
QCOW2_MAGIC = b"QFI\xfb"
"""The first four bytes of a qcow2 image (its header is :mod:`osvkit.structs.qcow2`)."""
CMDLINE_AREA_SECTORS = 63
CMDLINE_AREA_SIZE = CMDLINE_AREA_SECTORS * SECTOR_SIZE
"""boot16 reads 63 sectors from LBA 1: 32,256 bytes including the NUL."""
OSV_CMDLINE_MAX = 1024
"""OSv's ``max_cmdline``: the longest command line its runtime keeps, NUL included."""
KERNEL_LBA = 128
KERNEL_OFFSET = KERNEL_LBA * SECTOR_SIZE
"""The compressed kernel (OSv: lzloader.elf) starts at LBA 128 (64 KiB)."""
PARTITION_ALIGN = 2 * MiB
"""The application partition starts at the next 2 MiB boundary after the kernel."""
APP_PARTITION_INDEX = 1
"""MBR entry index of the application filesystem (OSv's /dev/vblk0.1)."""

# ----------------------------------------------------------------------------------
# OSv's guest-physical layout on the BIOS path
# ----------------------------------------------------------------------------------
AP_TRAMPOLINE_ADDR = 0x0
"""OSv copies its SMP trampoline to physical 0 (and searches it for an MP table)."""
BOOTINFO_ADDR = 0x1000
"""OSv's ``osv_multiboot_info_type`` (121 bytes)."""
BOOTINFO_SIZE = 121
E820_MAP_ADDR = 0x2000
"""OSv's 24-byte e820 records, pointed at by the boot-info block."""
E820_MAP_END = 0x6000
"""Room for 682 records; Firecracker's PVH start_info follows at 0x6000."""
BOOT16_LOAD_ADDR = 0x7C00
BOOT16_STACK_ADDR = 0x7C00
BOOT16_CMDLINE_ADDR = 0x7E00
"""Where boot16 reads the command-line area (63 sectors, to 0xFC00)."""
BOOT16_CMDLINE_END = BOOT16_CMDLINE_ADDR + CMDLINE_AREA_SIZE
BOUNCE_BUFFER_ADDR = 0x10000
"""Real-mode disk-read bounce buffer used by osvkit's boot16 (below 640 KiB)."""
BOUNCE_BUFFER_END = 0x80000
LZ_BLOB_ADDR = 0x100000
"""Where osvkit's boot16 places the decompressor and the compressed kernel
(OSv: lzkernel_base)."""
KERNEL_BASE_ADDR = 0x200000
"""Physical address of the kernel ELF image (its ELF header sits here)."""
KERNEL_VM_BASE = 0x4020_0000
"""Virtual link address of loader.elf."""
KERNEL_VM_SHIFT = KERNEL_VM_BASE - KERNEL_BASE_ADDR
START32_SLOT_OFFSET = 0x800
"""8-byte slot in the kernel image holding the physical address of start32."""
START32_SLOT_ADDR = KERNEL_BASE_ADDR + START32_SLOT_OFFSET
VMLINUZ_SLOT_OFFSET = 0x900
KERNEL_TEXT_OFFSET = 0x1000
BOOT_DONE_PORT = 0x3F0
BOOT_DONE_VALUE = 123
COM1_PORT = 0x3F8
I8042_COMMAND_PORT = 0x64
I8042_RESET_VALUE = 0xFE
IDENTITY_MAP_END = 1 * GiB
"""OSv's and Firecracker's boot page tables map only the first 1 GiB."""
OSV_MP_SEARCH = ((0x9FC00, 0x400), (0x0, 0x400))
"""OSv searches for the MP floating pointer here, in this order, in 16-byte steps."""

# ----------------------------------------------------------------------------------
# Firecracker x86_64 layout
# ----------------------------------------------------------------------------------
FC_GDT_ADDR = 0x500
FC_GDT_SIZE = 4 * 8
FC_IDT_ADDR = 0x520
FC_IDT_SIZE = 8
FC_PVH_INFO_ADDR = 0x6000
FC_PVH_MODLIST_ADDR = 0x6040
FC_PVH_MEMMAP_ADDR = 0x7000
FC_ZERO_PAGE_ADDR = 0x7000
"""boot_params; the same address as the PVH memmap (the two are never both used)."""
FC_ZERO_PAGE_SIZE = 4096
FC_BOOT_STACK_ADDR = 0x8FF0
FC_PML4_ADDR = 0x9000
FC_PDPTE_ADDR = 0xA000
FC_PDE_ADDR = 0xB000
FC_PAGE_TABLES_END = 0xC000
FC_CMDLINE_ADDR = 0x20000
FC_CMDLINE_MAX_SIZE = 2048
"""Including the NUL: 2047 visible bytes."""
FC_SYSTEM_MEM_START = 0x9FC00
FC_RSDP_ADDR = 0xE0000
FC_SYSTEM_MEM_SIZE = FC_RSDP_ADDR - FC_SYSTEM_MEM_START
FC_MPTABLE_ADDR = FC_SYSTEM_MEM_START
FC_HIMEM_START = 0x100000
FC_MMIO32_START = 0xC000_0000
FC_PCI_MMCONFIG_START = 0xEEC0_0000
FC_PCI_MMCONFIG_SIZE = 256 * MiB
FC_IOAPIC_ADDR = 0xFEC0_0000
FC_APIC_ADDR = 0xFEE0_0000
FC_RAM_GAP_START = FC_MMIO32_START
"""DRAM below 4 GiB ends here (3 GiB); the rest starts at 4 GiB."""
FC_RAM_HIGH_START = 4 * GiB
FC_MMIO64_START = 256 * GiB
FC_PAST_MMIO64_START = 512 * GiB
FC_VIRTIO_MMIO_START = FC_MMIO32_START + 0x1000
FC_MMIO_LEN = 0x1000
FC_IRQ_BASE = 5

# ----------------------------------------------------------------------------------
# osvkit's own placement on the Firecracker path
# ----------------------------------------------------------------------------------
STUB_START = 0x100000
"""The vmlinux entry stub osvkit adds: a PT_LOAD in 1 MiB-2 MiB, below the kernel."""
STUB_END = KERNEL_BASE_ADDR
# qemu-fc loader
LOW_RAM_END = 0xA0000
"""End of conventional RAM (the VGA window follows): qemu-fc zeroes [0x9FC00, LOW_RAM_END),
the part of Firecracker's system region that is RAM in QEMU."""
FC_LOADER_ALIGN = 1 * MiB
"""qemu-fc places its loader at the first 1 MiB boundary above the kernel's last byte."""

# ----------------------------------------------------------------------------------
# PC BIOS areas searched for the MP floating pointer (MP spec 1.4 section 4)
# ----------------------------------------------------------------------------------
BDA_EBDA_SEGMENT_ADDR = 0x40E
"""BIOS data area: u16 real-mode segment of the extended BIOS data area (EBDA)."""
BDA_BASE_MEMORY_KIB_ADDR = 0x413
"""BIOS data area: u16 base (conventional) memory size in KiB."""
BIOS_ROM_START = 0xF0000
BIOS_ROM_END = 0x100000
MP_SPEC_SEARCH_SIZE = 1 * KiB
"""The MP spec searches the first KiB of the EBDA and the last KiB of base memory."""

# ----------------------------------------------------------------------------------
# osvkit's boot16 and decompressor scratch (inside the bounce buffer, which is free
# once boot16 has loaded the payload; no region of their own)
# ----------------------------------------------------------------------------------
BOOT16_READ_SECTORS = 127
"""Sectors per int 0x13 extended read into the bounce buffer (65,024 bytes)."""
LZ_TABLE_COPY_ADDR = BOUNCE_BUFFER_ADDR + 0x10000
"""The decompressor copies the lz segment table here before overwriting the blob."""
LZ_OP_LIMIT_ADDR = LZ_TABLE_COPY_ADDR - 4
"""u32 scratch: the current segment's output end - 32 (bound of the 32-byte fast copies)."""

# ----------------------------------------------------------------------------------
# Regions, for the overlap test
# ----------------------------------------------------------------------------------
REGIONS = {
    "bios": {
        "ap_trampoline": (AP_TRAMPOLINE_ADDR, 0x1000),
        "bootinfo": (BOOTINFO_ADDR, BOOTINFO_ADDR + BOOTINFO_SIZE),
        "e820_map": (E820_MAP_ADDR, E820_MAP_END),
        "boot16": (BOOT16_LOAD_ADDR, BOOT16_LOAD_ADDR + SECTOR_SIZE),
        "boot16_cmdline": (BOOT16_CMDLINE_ADDR, BOOT16_CMDLINE_END),
        "bounce_buffer": (BOUNCE_BUFFER_ADDR, BOUNCE_BUFFER_END),
        "mp_search_low": (0x9FC00, 0xA0000),
        "lz_blob": (LZ_BLOB_ADDR, KERNEL_BASE_ADDR),
        "kernel": (KERNEL_BASE_ADDR, IDENTITY_MAP_END),
    },
    "firecracker": {
        "ap_trampoline": (AP_TRAMPOLINE_ADDR, 0x500),
        "gdt": (FC_GDT_ADDR, FC_GDT_ADDR + FC_GDT_SIZE),
        "idt": (FC_IDT_ADDR, FC_IDT_ADDR + FC_IDT_SIZE),
        "bootinfo": (BOOTINFO_ADDR, BOOTINFO_ADDR + BOOTINFO_SIZE),
        "e820_map": (E820_MAP_ADDR, E820_MAP_END),
        "pvh_info": (FC_PVH_INFO_ADDR, FC_PVH_MODLIST_ADDR),
        "zero_page": (FC_ZERO_PAGE_ADDR, FC_ZERO_PAGE_ADDR + FC_ZERO_PAGE_SIZE),
        "pvh_memmap": (FC_PVH_MEMMAP_ADDR, FC_PVH_MEMMAP_ADDR + FC_ZERO_PAGE_SIZE),
        "stack": (FC_BOOT_STACK_ADDR - 0x800, FC_BOOT_STACK_ADDR),
        "page_tables": (FC_PML4_ADDR, FC_PAGE_TABLES_END),
        "cmdline": (FC_CMDLINE_ADDR, FC_CMDLINE_ADDR + FC_CMDLINE_MAX_SIZE),
        "system_mem": (FC_SYSTEM_MEM_START, FC_SYSTEM_MEM_START + FC_SYSTEM_MEM_SIZE),
        "stub": (STUB_START, STUB_END),
        "kernel": (KERNEL_BASE_ADDR, IDENTITY_MAP_END),
    },
}

ALLOWED_OVERLAPS = {
    # Firecracker: the PVH memmap and the zero page share 0x7000; a boot uses one of them.
    frozenset({"zero_page", "pvh_memmap"}),
}
