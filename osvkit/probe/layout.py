"""Where everything in the probe kernel lives: file offsets, bss, save area, boot values.

File offset X of the probe is physical ``BASE + X`` and virtual ``VM_BASE + X``:

========  =================================================================================
offset    content
========  =================================================================================
0x000     ELF64 header, then one program header (the only PT_LOAD, from file offset 0)
0x800     u64: physical address of ``start32`` (OSv's ``.start32_address`` slot)
0x808     probe info block (:data:`INFO_OFFSET`, :mod:`osvkit.probe.info`)
0x840     data: the GDT (OSv's selectors 0x08/0x10/0x18), its descriptor, a zero IDT
          descriptor and the report's key strings
0x1000    code: the report writer's routines, ``start64``, the optional ELF entry routine,
          then ``start32`` (each routine 16-byte aligned)
...       payload (only with ``size``): code-like filler (:mod:`osvkit.probe.payload`)
filesz    end of the PT_LOAD file image (a multiple of 16)
          bss (not in the file), from the next 4 KiB boundary: ``ident_pt_l4``, its l3 and
          l2 tables, a save area and the stack
          after the PT_LOAD: .symtab, .strtab, .shstrtab and the section headers
========  =================================================================================

Addresses of the boot contract (boot-info block, BIOS areas, MBR copy) come from
:mod:`osvkit.layout`; field offsets of the structures the probe reads (boot-info,
boot_params, MP tables, MBR) come from their construct schemas.
"""

from __future__ import annotations

from .. import layout
from ..structs.bootinfo import BOOTINFO_FLAG_BOOT_LOADER_NAME, BOOTINFO_OFFSETS, OSV_E820_OFFSETS
from ..structs.bootinfo import OSV_E820_ENTRY_SIZE, OSV_E820_ENT_SIZE
from ..structs.bootparams import BOOT_FLAG, BOOT_PARAMS_OFFSETS, E820_MAX_ENTRIES_ZEROPAGE
from ..structs.bootparams import BootE820Entry
from ..structs.mbr import MBR_OFFSETS
from ..structs.mptable import MPC_SIGNATURE, MPC_TABLE_OFFSETS, MPC_TABLE_SIZE
from ..structs.mptable import MPF_INTEL_OFFSETS, MPF_INTEL_SIZE, MPF_SIGNATURE, MP_PROCESSOR, MpcCpu
from ..structs.probe import PROBE_FLAG_ENTRY_REPORT, PROBE_INFO_MAGIC

# ----------------------------------------------------------------------------------------
# The file image
# ----------------------------------------------------------------------------------------
BASE = layout.KERNEL_BASE_ADDR            # 0x200000: physical address of file offset 0
VM_BASE = layout.KERNEL_VM_BASE           # 0x40200000: virtual address of file offset 0
VM_SHIFT = layout.KERNEL_VM_SHIFT
SLOT_OFFSET = layout.START32_SLOT_OFFSET  # 0x800
INFO_OFFSET = SLOT_OFFSET + 8             # 0x808
INFO_MAGIC = PROBE_INFO_MAGIC
INFO_VERSION = 1
INFO_SUMS_OFFSET = INFO_OFFSET + 0x10     # header sum, then body sum (8 bytes, read as 0)
INFO_SUMS_SIZE = 8
DATA_OFFSET = 0x840
CODE_OFFSET = layout.KERNEL_TEXT_OFFSET   # 0x1000
CODE_ALIGN = 16
CODE_FILL = 0xCC                          # int3 between routines
FLAG_ENTRY_REPORT = PROBE_FLAG_ENTRY_REPORT
MIN_SIZE_ALIGN = 16
MAX_SIZE = 512 * layout.MiB

# ----------------------------------------------------------------------------------------
# bss, relative to the 4 KiB boundary after the file image
# ----------------------------------------------------------------------------------------
BSS_ALIGN = 0x1000
BSS_L4, BSS_L3, BSS_L2 = 0x0000, 0x1000, 0x2000
BSS_SAVE = 0x3000                          # 4 KiB: the ELF-entry state dump and start32 notes
BSS_STACK_TOP = 0x8000
BSS_SIZE = 0x8000
PT_ENTRIES = 512
PT_ENTRY_SIZE = 8

# save area (offsets into BSS_SAVE): what start32 was entered with
S32_CR0, S32_ESP, S32_CS = 0x800, 0x808, 0x810

# save area: what the ELF entry routine was entered with
# (report key, save-area offset, hex digits)
STATE_REGS = [("rip", 0x48, 16), ("rsp", 0x38, 16), ("rbp", 0x30, 16), ("rsi", 0x20, 16),
              ("rdi", 0x28, 16), ("rbx", 0x08, 16), ("rax", 0x00, 16), ("rcx", 0x10, 16),
              ("rdx", 0x18, 16), ("rflags", 0x40, 16), ("cr0", 0x50, 16), ("cr3", 0x58, 16),
              ("cr4", 0x60, 16), ("efer", 0x68, 16),
              ("cs", 0x70, 4), ("ds", 0x72, 4), ("es", 0x74, 4), ("ss", 0x76, 4),
              ("fs", 0x78, 4), ("gs", 0x7A, 4), ("tr", 0x7C, 4)]
STATE_OFFSETS = {key: off for key, off, _digits in STATE_REGS}
SAVE_GDTR, SAVE_IDTR = 0x80, 0x90          # 10 bytes each: limit u16, base u64

# boot_params fields the ELF entry routine prints: (report key, size in bytes, hex digits);
# the offsets come from the boot_params schema
BP_FIELDS = [("boot_flag", 2, 4), ("header", 4, 8), ("type_of_loader", 1, 2),
             ("cmd_line_ptr", 4, 8), ("cmdline_size", 4, 8), ("kernel_alignment", 4, 8),
             ("e820_entries", 1, 2), ("acpi_rsdp_addr", 8, 16)]
BP = BOOT_PARAMS_OFFSETS
BP_E820_OFFSET = BP["e820_table"]          # 0x2d0
BP_E820_MAX = E820_MAX_ENTRIES_ZEROPAGE    # 128
BP_E820_ENTRY_SIZE = BootE820Entry.sizeof()  # 20

# ----------------------------------------------------------------------------------------
# Boot state the probe sets up (OSv's boot.S values)
# ----------------------------------------------------------------------------------------
# Markers start32 leaves in ESI for start64 ("which entry was used").
MARK_START32 = 0x32335453                  # "ST32"
MARK_ELF_ENTRY = 0x464C4545                # "EELF"

GDT = (0x0000000000000000, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x00CF9B000000FFFF)
SEL_CODE64, SEL_DATA, SEL_CODE32 = 0x08, 0x10, 0x18
IDT_DESC_SIZE = 10                         # limit u16, base u64

BOOT_CR0 = 0x80010003                      # PE | MP | WP | PG
BOOT_CR4 = 0x7B8                           # DE | PSE | PAE | PGE | PCE | OSFXSR | OSXMMEXCPT
BOOT_EFER = 0x900                          # LME | NXE
MSR_EFER = 0xC0000080
CR0_PG = 0x80000000
EFER_LME = 0x100
PT_TABLE_FLAGS = 0x67
PT_2M_FLAGS = 0x1E7
PAGE_2M = 0x200000

# ----------------------------------------------------------------------------------------
# The report and the structures it reads
# ----------------------------------------------------------------------------------------
REPORT_VERSION = 1
ELF_ENTRY_LOADER_NAME = "probe-elf-entry"
LIMIT = layout.IDENTITY_MAP_END            # pointers at or above this are not followed
LIMIT_4K = LIMIT - 0x1000                  # ... nor those of a structure of up to 4 KiB
LIMIT_64K = LIMIT - 0x10000                # ... or up to 64 KiB that starts above these
BOOT_INFO_ADDR = layout.BOOTINFO_ADDR      # 0x1000
BOOT_INFO_CLEAR_SIZE = 0x80                # what the ELF entry routine zeroes there
E820_ADDR = layout.E820_MAP_ADDR           # 0x2000
BI = BOOTINFO_OFFSETS
LOADER_NAME_FLAG = BOOTINFO_FLAG_BOOT_LOADER_NAME
LOADER_NAME_MAX = 0x40
CMDLINE_MAX = 0x10000
OSV_E820 = OSV_E820_OFFSETS
OSV_E820_RECORD = OSV_E820_ENTRY_SIZE      # 24: u32 size, then a 20-byte record
OSV_E820_MIN_SIZE = OSV_E820_ENT_SIZE      # 20
E820_MAP_MAX = 0x8000                      # the longest map the probe walks
E820_WALK_MAX = 0x100                      # and at most this many records

MP_OSV_SEARCH = layout.OSV_MP_SEARCH       # ((0x9fc00, 0x400), (0x0, 0x400))
MP_EBDA_SEGMENT_ADDR = layout.BDA_EBDA_SEGMENT_ADDR
MP_EBDA_SEARCH_SIZE = layout.MP_SPEC_SEARCH_SIZE
MP_ROM_START = layout.BIOS_ROM_START
MP_ROM_SIZE = layout.BIOS_ROM_END - layout.BIOS_ROM_START
MP_STEP = 16
MPF_SIGNATURE_U32 = int.from_bytes(MPF_SIGNATURE, "little")
MPF_SIZE = MPF_INTEL_SIZE                  # 16
MPF_PHYSPTR = MPF_INTEL_OFFSETS["physptr"]
MPC_SIGNATURE_U32 = int.from_bytes(MPC_SIGNATURE, "little")
MPC_LENGTH = MPC_TABLE_OFFSETS["length"]
MPC_HEADER_SIZE = MPC_TABLE_SIZE           # 44
MPC_PROCESSOR = MP_PROCESSOR
MPC_PROCESSOR_SIZE = MpcCpu.sizeof()       # 20
MPC_OTHER_SIZE = 8                         # OSv's walk: every other entry counts 8 bytes

MBR_COPY_ADDR = layout.BOOT16_LOAD_ADDR    # where the BIOS left sector 0
MBR_PARTITIONS_ADDR = MBR_COPY_ADDR + MBR_OFFSETS["partitions"]       # 0x7dbe
MBR_SIGNATURE_ADDR = MBR_COPY_ADDR + MBR_OFFSETS["boot_signature"]    # 0x7dfe
MBR_REPORT_SIZE = layout.SECTOR_SIZE - MBR_OFFSETS["partitions"]      # table + 55 aa
MBR_SIGNATURE = BOOT_FLAG                  # 0xaa55, as a little-endian u16

HEXLINE_BYTES = 0x20                       # bytes per hex line of the report
ADLER_MOD = 65521
ADLER_NMAX = 5552                          # bytes summed before the sums must be reduced


def align(x: int, a: int) -> int:
    """``x`` rounded up to a multiple of the power of two ``a``."""
    return (x + a - 1) & ~(a - 1)
