"""The 32-bit PVH entry stub osvkit adds to a kernel ELF (``--format vmlinux --pvh``).

A PVH loader (QEMU ``-kernel`` on pc via ``pvh.bin`` or on microvm via qboot, Firecracker
>= 1.12) enters the address in the ``XEN_ELFNOTE_PHYS32_ENTRY`` note in 32-bit protected
mode, paging off, EBX = ``hvm_start_info``.  The stub does
what OSv's ``hvm_xen_start`` + ``hvm_xen_extract_boot_params`` do, before
entering the kernel:

1. zero the boot-info block (0x1000);
2. ``cmdline`` = ``cmdline_paddr`` (low 32 bits, as OSv), ``pvh_rsdp`` = ``rsdp_paddr``;
3. copy ``memmap_entries`` 24-byte ``hvm_memmap_table_entry`` records to 0x2000 as 24-byte
   ``e820ent`` records (ent_size 20), set ``mmap_addr``/``mmap_length``;
4. stamp the TSC fields, name the loader "osvkit-pvh" (flags bit 9);
5. ESP = 0x7C00 (as OSv's hvm_xen_start), EBX = 0x1000, jump through the start32 slot.

Offsets come from :mod:`osvkit.structs.offsets` (the schemas).
"""

from __future__ import annotations

from .. import layout
from ..asm import assemble
from ..structs import offsets as off

LOADER_NAME = b"osvkit-pvh\0"
PVH_STACK_ADDR = layout.BOOT16_STACK_ADDR
"""0x7C00, where OSv's own hvm_xen_start puts the stack."""
MAX_MEMMAP_ENTRIES = (layout.E820_MAP_END - layout.E820_MAP_ADDR) // off.E820ENT["sizeof"]


def pvh_asm(*, name_addr: int) -> str:
    si, bi, mm, e24 = off.START_INFO, off.BOOTINFO, off.HVM_MEMMAP_ENTRY, off.E820ENT
    return f"""
    cli
    cld
    movl ${PVH_STACK_ADDR:#x}, %esp
    movl %ebx, %esi                         # esi = hvm_start_info
    movl ${layout.BOOTINFO_ADDR:#x}, %edi   # zero the boot-info block
    xorl %eax, %eax
    movl ${bi['sizeof']:#x}, %ecx
    rep stosb
    movl ${layout.BOOTINFO_ADDR:#x}, %ebx
    movl {si['cmdline_paddr']:#x}(%esi), %eax
    movl %eax, {bi['cmdline']:#x}(%ebx)
    movl {si['rsdp_paddr']:#x}(%esi), %eax
    movl %eax, {bi['pvh_rsdp']:#x}(%ebx)
    movl {si['rsdp_paddr'] + 4:#x}(%esi), %eax
    movl %eax, {bi['pvh_rsdp'] + 4:#x}(%ebx)
    movl {si['memmap_entries']:#x}(%esi), %ecx
    cmpl ${MAX_MEMMAP_ENTRIES:#x}, %ecx
    jbe memmap_count_ok
    movl ${MAX_MEMMAP_ENTRIES:#x}, %ecx
memmap_count_ok:
    movl %ecx, %edx
    imull ${e24['sizeof']:#x}, %edx, %edx
    movl %edx, {bi['mmap_length']:#x}(%ebx)
    movl ${layout.E820_MAP_ADDR:#x}, {bi['mmap_addr']:#x}(%ebx)
    movl {si['memmap_paddr']:#x}(%esi), %esi
    movl ${layout.E820_MAP_ADDR:#x}, %edi
memmap_loop:
    testl %ecx, %ecx
    jz memmap_done
    movl ${off.BOOT_E820_ENTRY['sizeof']:#x}, {e24['ent_size']:#x}(%edi)
    movl {mm['addr']:#x}(%esi), %eax
    movl %eax, {e24['addr']:#x}(%edi)
    movl {mm['addr'] + 4:#x}(%esi), %eax
    movl %eax, {e24['addr'] + 4:#x}(%edi)
    movl {mm['size']:#x}(%esi), %eax
    movl %eax, {e24['size']:#x}(%edi)
    movl {mm['size'] + 4:#x}(%esi), %eax
    movl %eax, {e24['size'] + 4:#x}(%edi)
    movl {mm['type']:#x}(%esi), %eax
    movl %eax, {e24['type']:#x}(%edi)
    addl ${mm['sizeof']:#x}, %esi
    addl ${e24['sizeof']:#x}, %edi
    decl %ecx
    jmp memmap_loop
memmap_done:
    rdtsc
    movl %eax, {bi['tsc_init']:#x}(%ebx)
    movl %edx, {bi['tsc_init'] + 4:#x}(%ebx)
    movl %eax, {bi['tsc_disk_done']:#x}(%ebx)
    movl %edx, {bi['tsc_disk_done'] + 4:#x}(%ebx)
    movl %eax, {bi['tsc_uncompress_done']:#x}(%ebx)
    movl %edx, {bi['tsc_uncompress_done'] + 4:#x}(%ebx)
    orl ${off.BOOTINFO_FLAG_BOOT_LOADER_NAME:#x}, {bi['flags']:#x}(%ebx)
    movl ${name_addr:#x}, {bi['boot_loader_name']:#x}(%ebx)
    xorl %edi, %edi
    jmp *{layout.START32_SLOT_ADDR:#x}
"""


def assemble_pvh(base: int, *, name_addr: int) -> bytes:
    return assemble(pvh_asm(name_addr=name_addr), bits=32, base=base)
