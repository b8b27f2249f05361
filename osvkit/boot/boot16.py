"""osvkit's BIOS boot sector ("boot16"), generated as 16/32-bit assembly.

It does what OSv's ``arch/x64/boot16.S`` does, with these differences:

* it uses the boot drive the BIOS passes in DL (OSv hard-codes 0x80);
* it loads the exact number of sectors in ``payload_sectors`` (0x12), 127 sectors (65,024
  bytes) per ``int 0x13`` extended read through a bounce buffer at ``BOUNCE_BUFFER_ADDR``,
  and copies each chunk above 1 MiB in *unreal mode* (a flat 4 GiB DS/ES limit re-established
  after every BIOS call, since SeaBIOS may reload segment limits); OSv's ``count32`` (0x10,
  32 KiB units) is still written for OSv's tools, but osvkit's boot16 does not read it;
* it zeroes the boot-info block before filling it, records its name (``boot_loader_name``,
  flags bit 9), writes e820 records with ``size = 20`` stepped by 24 bytes, and counts only
  complete records;
* a disk error is fatal: it stores the BIOS status in ``disk_err`` (boot-info +112), prints
  ``osvkit-boot16: disk error`` through ``int 0x10`` teletype *and* COM1, and halts;
* with ``--compression none`` the payload is the kernel itself, loaded straight to 0x200000,
  and ``decompressor_entry`` points at a ``ret`` (:func:`no_decompressor_addr`).

Like OSv's it enables A20 with ``int 0x15`` AX=0x2401 (result unchecked), enters 32-bit flat
protected mode with interrupts off (DS/ES/FS/GS/SS = 0x10, ESP = the real-mode SP zero-extended,
just below 0x7C00), calls the decompressor, takes the last TSC stamp and calls ``start32``
through the pointer at 0x200800 with EBX = 0x1000.

Sector map (all offsets from the start of the sector, which the BIOS loads at 0x7C00):

====== ==== =========================================================================
0x000  5    far jump to 0000:7C00+``CODE_OFFSET`` (normalises CS:IP)
0x005  1    ``drive`` (written at run time from DL)
0x006  1    ``version`` (1)
0x008  8    magic ``b"osvkit16"``
0x010  2    ``count32``: payload size in 32 KiB units, rounded up (OSv's field)
0x012  4    ``payload_sectors``: exact number of sectors to load from LBA 128
0x016  4    ``load_addr``: where the payload goes (0x100000, or 0x200000 uncompressed)
0x01A  4    ``decompressor_entry``: 32-bit address called after loading; for an
            uncompressed payload it points at a ``ret`` at the end of boot16's code
0x01E  16   disk address packet (first reads the command line: 63 sectors from LBA 1 to
            07E0:0000, then is reused for the payload reads into the bounce buffer)
0x02E  24   GDT; the null slot holds the GDTR (limit 23, base 0x7C2E); 0x08 flat 32-bit code,
            0x10 flat 32-bit data
0x046  14   ``b"osvkit-boot16\\0"`` (the boot-loader name; also the error-message prefix)
0x054  15   ``b": disk error\\r\\n\\0"``
0x063  ...  16-bit code, then 32-bit code; zero up to 0x1B8
0x1B8  6    disk signature ``"VSO"`` (u32 0x004F5356) and two zero bytes (OSv's)
0x1BE  64   partition table
0x1FE  2    ``55 AA``
====== ==== =========================================================================
"""

from __future__ import annotations

from functools import lru_cache

from .. import layout
from ..asm import assemble, byte_directive, far_jump16
from ..errors import FormatError
from ..structs import base as schema
from ..structs.bootinfo import (BOOTINFO_FLAG_BOOT_LOADER_NAME, BOOTINFO_OFFSETS,
                                OSV_E820_ENT_SIZE, OSV_E820_ENTRY_SIZE, OSV_E820_OFFSETS)
from ..structs.boot16 import (BOOT16_MAGIC, BOOT16_OFFSETS, BOOT16_VERSION, CODE_END,  # noqa: F401
                              CODE_OFFSET, Boot16Header,
                              Boot16Sector)
from ..structs.mbr import PartitionTable

SECTORS_PER_READ = layout.BOOT16_READ_SECTORS
"""Sectors per int 0x13 call (65,024 bytes; the classic limit some BIOSes impose)."""

GDT_CODE32 = 0x00CF_9A00_0000_FFFF
"""Flat 4 GiB, 32-bit, execute/read, DPL 0."""
GDT_DATA32 = 0x00CF_9200_0000_FFFF
"""Flat 4 GiB, 32-bit, read/write, DPL 0."""
SEL_CODE32 = 0x08
SEL_DATA32 = 0x10
SMAP = 0x534D4150
"""``"SMAP"``, the signature int 0x15 AX=0xE820 takes in EDX."""

# boot-info block fields, from the schema
BI_FLAGS = BOOTINFO_OFFSETS["flags"]
BI_CMDLINE = BOOTINFO_OFFSETS["cmdline"]
BI_MMAP_LENGTH = BOOTINFO_OFFSETS["mmap_length"]
BI_MMAP_ADDR = BOOTINFO_OFFSETS["mmap_addr"]
BI_BOOT_LOADER_NAME = BOOTINFO_OFFSETS["boot_loader_name"]
BI_TSC_INIT = BOOTINFO_OFFSETS["tsc_init"]
BI_TSC_DISK_DONE = BOOTINFO_OFFSETS["tsc_disk_done"]
BI_TSC_UNCOMPRESS_DONE = BOOTINFO_OFFSETS["tsc_uncompress_done"]
BI_DISK_ERR = BOOTINFO_OFFSETS["disk_err"]

# absolute addresses of header fields once loaded, from the schema
_B = layout.BOOT16_LOAD_ADDR
A_DRIVE = _B + BOOT16_OFFSETS["drive"]
A_PAYLOAD_SECTORS = _B + BOOT16_OFFSETS["payload_sectors"]
A_LOAD_ADDR = _B + BOOT16_OFFSETS["load_addr"]
A_DECOMP_ENTRY = _B + BOOT16_OFFSETS["decompressor_entry"]
A_DAP = _B + BOOT16_OFFSETS["dap"]
A_DAP_COUNT = _B + BOOT16_OFFSETS["dap.count"]
A_DAP_SEGMENT = _B + BOOT16_OFFSETS["dap.segment"]
A_DAP_LBA = _B + BOOT16_OFFSETS["dap.lba"]
A_GDTR = _B + BOOT16_OFFSETS["gdtr_limit"]
A_NAME = _B + BOOT16_OFFSETS["loader_name"]
A_CODE = _B + CODE_OFFSET


_E820_ADDR = OSV_E820_OFFSETS["addr"]
"""Offset of ``addr`` in an e820 record (``ent_size`` comes first)."""


def _code16(pm32_addr: int) -> str:
    # NOTE: every number is written in hex: Keystone 0.9.2 in AT&T mode reads "20" as 0x20.
    bi = layout.BOOTINFO_ADDR
    bounce_seg = layout.BOUNCE_BUFFER_ADDR >> 4
    far = byte_directive(far_jump16(SEL_CODE32, pm32_addr))
    return f"""
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw ${layout.BOOT16_STACK_ADDR:#x}, %sp
    movb %dl, {A_DRIVE:#x}
    # zero the boot-info block (0x80 bytes), then fill what we know
    movw ${bi:#x}, %di
    movw $0x40, %cx
    rep stosw
    rdtsc
    movl %eax, {BI_TSC_INIT - 0x80:#x}(%di)
    movl %edx, {BI_TSC_INIT + 4 - 0x80:#x}(%di)
    movw ${BOOTINFO_FLAG_BOOT_LOADER_NAME:#x}, {BI_FLAGS - 0x80:#x}(%di)
    movw ${A_NAME:#x}, {BI_BOOT_LOADER_NAME - 0x80:#x}(%di)
    movw ${layout.BOOT16_CMDLINE_ADDR:#x}, {BI_CMDLINE - 0x80:#x}(%di)
    movw ${layout.E820_MAP_ADDR:#x}, {BI_MMAP_ADDR - 0x80:#x}(%di)
    # A20 through the BIOS
    movw $0x2401, %ax
    int $0x15
    # the command-line area: the DAP starts as 63 sectors from LBA 1 to 0x7E00
    call read_dap
    movw ${bounce_seg:#x}, {A_DAP_SEGMENT:#x}
    movb ${layout.KERNEL_LBA:#x}, {A_DAP_LBA:#x}
load_loop:
    movl {A_PAYLOAD_SECTORS:#x}, %ecx
    jecxz load_done
    cmpl ${SECTORS_PER_READ:#x}, %ecx
    jbe count_ok
    movw ${SECTORS_PER_READ:#x}, %cx
count_ok:
    movw %cx, {A_DAP_COUNT:#x}
    call read_dap
    movzwl {A_DAP_COUNT:#x}, %ecx
    subl %ecx, {A_PAYLOAD_SECTORS:#x}
    addl %ecx, {A_DAP_LBA:#x}
    shll $0x7, %ecx
    # unreal mode: load flat DS/ES in protected mode and return to real mode at once
    call enter_pm
    pushw ${SEL_DATA32:#x}
    popw %ds
    pushw %ds
    popw %es
    andb $0xfe, %al
    movl %eax, %cr0
    pushw $0x0
    popw %ds
    pushw %ds
    popw %es
    movl ${layout.BOUNCE_BUFFER_ADDR:#x}, %esi
    movl {A_LOAD_ADDR:#x}, %edi
    .byte 0x67, 0x66, 0xf3, 0xa5
    movl %edi, {A_LOAD_ADDR:#x}
    sti
    jmp load_loop
load_done:
    rdtsc
    movl %eax, {bi + BI_TSC_DISK_DONE:#x}
    movl %edx, {bi + BI_TSC_DISK_DONE + 4:#x}
    # e820 map: 24-byte records {{u32 size=20, u64 addr, u64 len, u32 type}} at 0x2000
    movw ${layout.E820_MAP_ADDR + _E820_ADDR:#x}, %di
    xorl %ebx, %ebx
e820_loop:
    movl $0xe820, %eax
    movl ${SMAP:#x}, %edx
    pushl ${OSV_E820_ENT_SIZE:#x}
    popl %ecx
    int $0x15
    jc e820_done
    movl %ecx, -{_E820_ADDR:#x}(%di)
    addw ${OSV_E820_ENTRY_SIZE:#x}, %di
    testl %ebx, %ebx
    jnz e820_loop
e820_done:
    subw ${layout.E820_MAP_ADDR + _E820_ADDR:#x}, %di
    movw %di, {bi + BI_MMAP_LENGTH:#x}
    # 32-bit flat protected mode
    call enter_pm
{far}
enter_pm:
    cli
    lgdt {A_GDTR:#x}
    movl %cr0, %eax
    orb $0x1, %al
    movl %eax, %cr0
    ret
read_dap:
    movb $0x42, %ah
    movb {A_DRIVE:#x}, %dl
    movw ${A_DAP:#x}, %si
    int $0x13
    jc disk_error
    ret
disk_error:
    movb %ah, {bi + BI_DISK_ERR:#x}
    # the message goes to COM1 in one pass, then through the BIOS teletype in another
    # (with -nographic SeaBIOS mirrors int 0x10 to the serial port; one pass each keeps
    # the serial text readable)
    movw ${layout.COM1_PORT:#x}, %dx
    call print_message
    xorw %dx, %dx
    call print_message
halt:
    hlt
    jmp halt
print_message:
    movw ${A_NAME:#x}, %si
    call print
print:
    lodsb
    testb %al, %al
    jz print_done
    testw %dx, %dx
    jz print_tty
    outb %al, %dx
    jmp print
print_tty:
    movb $0xe, %ah
    xorw %bx, %bx
    int $0x10
    jmp print
print_done:
    ret
"""


def _code32() -> str:
    bi = layout.BOOTINFO_ADDR
    return f"""
    pushl ${SEL_DATA32:#x}
    popl %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movzwl %sp, %esp
    call *{A_DECOMP_ENTRY:#x}
    rdtsc
    movl ${bi:#x}, %ebx
    movl %eax, {BI_TSC_UNCOMPRESS_DONE:#x}(%ebx)
    movl %edx, {BI_TSC_UNCOMPRESS_DONE + 4:#x}(%ebx)
    call *{layout.START32_SLOT_ADDR:#x}
no_decompressor:
    ret
"""


@lru_cache(maxsize=1)
def boot_code() -> tuple[bytes, int]:
    """Assemble the code; return (code bytes placed at CODE_OFFSET, offset of the 32-bit part)."""
    # the far jump into 32-bit code has a fixed size, so assemble once to find the 16-bit
    # part's length, then again with the real target
    probe = assemble(_code16(0), bits=16, base=A_CODE)
    marker = far_jump16(SEL_CODE32, 0)
    end16 = probe.index(marker) + len(marker)
    # the 32-bit code goes right after the 16-bit code (read_dap etc. follow the far jump)
    code16 = assemble(_code16(A_CODE + len(probe)), bits=16, base=A_CODE)
    assert len(code16) == len(probe) and end16 <= len(code16)
    code32 = assemble(_code32(), bits=32, base=A_CODE + len(code16))
    code = code16 + code32
    if CODE_OFFSET + len(code) > CODE_END:  # pragma: no cover - a bug in this module
        raise AssertionError(f"boot16 code is {len(code)} bytes, {CODE_END - CODE_OFFSET} fit")
    return code, CODE_OFFSET + len(code16)


def no_decompressor_addr() -> int:
    """Address of the ``ret`` that ends boot16's code: the "decompressor" of a raw payload."""
    code, _ = boot_code()
    assert code[-1] == 0xC3
    return A_CODE + len(code) - 1


def build_boot_sector(*, payload_sectors: int, load_addr: int, decompressor_entry: int | None,
                      partitions: bytes | None = None) -> bytes:
    """The 512-byte boot sector for a payload of ``payload_sectors`` sectors at LBA 128.

    ``decompressor_entry`` None means the payload is the uncompressed kernel; ``partitions``
    is the 64-byte partition table (default: all entries unused)."""
    if decompressor_entry is None:
        decompressor_entry = no_decompressor_addr()
    table = schema.parse(PartitionTable, partitions if partitions is not None
                         else bytes(PartitionTable.sizeof()), what="partition table")
    header = dict(
        count32=min(0xFFFF, -(-payload_sectors * layout.SECTOR_SIZE // (32 * layout.KiB))),
        payload_sectors=payload_sectors,
        load_addr=load_addr,
        decompressor_entry=decompressor_entry,
        drive=0,
        version=BOOT16_VERSION,
        dap=dict(count=layout.CMDLINE_AREA_SECTORS, offset=0,
                 segment=layout.BOOT16_CMDLINE_ADDR >> 4,
                 lba=layout.CMDLINE_OFFSET // layout.SECTOR_SIZE),
        gdtr_limit=3 * 8 - 1,
        gdtr_base=A_GDTR,
        gdt_code32=GDT_CODE32,
        gdt_data32=GDT_DATA32,
    )
    code, _ = boot_code()
    return schema.build(Boot16Sector, dict(header=header, code=code, partitions=table),
                        what="boot16 sector")


def is_osvkit_boot16(sector: bytes) -> bool:
    """True when ``sector`` carries boot16's magic (its header may still be damaged)."""
    at = BOOT16_OFFSETS["magic"]
    return sector[at:at + len(BOOT16_MAGIC)] == BOOT16_MAGIC


def parse_header(sector: bytes):
    """Parse the osvkit boot16 header (construct container); a damaged header (a constant
    that does not match) is a FormatError naming the field."""
    try:
        return schema.parse(Boot16Header, sector, what="boot16 header")
    except FormatError as exc:
        field = getattr(exc, "field", None) or "header"
        raise FormatError(f"damaged osvkit boot16 header ({field})",
                          expected="the constants boot16 writes (rebuild the image)") from None


def is_osv_boot16(sector: bytes) -> bool:
    """True when ``sector`` starts with a far jump, as OSv's own boot16 does (it normalises
    CS:IP that way); the caller also checks the "VSO" disk signature."""
    return sector[:1] == far_jump16(0, 0)[:1]
