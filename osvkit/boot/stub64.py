"""The 64-bit Linux-boot-protocol entry stub osvkit adds to a kernel ELF (``--format vmlinux``).

Firecracker (and osvkit's qemu-fc loader) enter ``e_entry`` in 64-bit mode with the first
1 GiB identity-mapped, RSI = the ``boot_params`` page and RSP = 0x8FF0.  The stub does what
OSv's own ``vmlinux_entry64`` + ``extract_linux_boot_params`` do, so the kernel needs no
Linux entry of its own:

1. zero OSv's boot-info block (0x1000, 121 bytes) -- OSv reads ``pvh_rsdp`` from it;
2. ``cmdline`` = ``boot_params.hdr.cmd_line_ptr``;
3. copy ``e820_entries`` (at most 128) 20-byte ``boot_e820_entry`` records to 0x2000 as
   24-byte ``e820ent`` records (ent_size 20), set ``mmap_addr``/``mmap_length``;
4. stamp the three TSC fields with one ``rdtsc`` (OSv's ``reset_bootchart`` does the same);
5. point ``boot_loader_name`` at "osvkit-vmlinux64" and set flags bit 9;
6. hand over with EBX/RBX = 0x1000, either

   * ``start32`` (default, OSv's current way): load the stub's GDT, ``lretq`` to its 32-bit
     code selector (compatibility mode, paging stays on), load flat data selectors and jump
     through the start32 slot at physical 0x200800.  Needs nothing but the slot, so it works
     on stripped kernels.  OSv's ``start32`` reloads CR4/CR3/EFER/CR0 itself and is written
     to be entered this way (``start32_from_64``);
   * ``start64`` (the seed's way): set CR4 = 0x7B8, CR3 = ``ident_pt_l4``, EFER |= LME|NXE,
     CR0 = 0x80010003 (OSv's BOOT_CR4/BOOT_CR0), then jump to ``start64``
     (at its linked address, as OSv's start32_from_64) with RDI = 0.  Needs the ``start64``
     and ``ident_pt_l4`` symbols.

Every boot_params / boot-info offset comes from :mod:`osvkit.structs.offsets` (the schemas).
"""

from __future__ import annotations

from .. import layout
from ..asm import assemble
from ..structs import base as schema
from ..structs import offsets as off
from ..structs.x86 import SEGMENT_DESCRIPTOR_SIZE, GdtPointer64, gdt

LOADER_NAME = b"osvkit-vmlinux64\0"

# OSv's boot.S values for the start64 handover
OSV_BOOT_CR4 = 0x7B8
"""DE|PSE|PAE|PGE|PCE|OSFXSR|OSXMMEXCPT."""
OSV_BOOT_CR0 = 0x8001_0003
"""PE|MP|WP|PG."""
MSR_EFER = 0xC000_0080
EFER_LME = 1 << 8
EFER_NXE = 1 << 11

# The stub's own GDT: OSv's selectors (boot.S:77-82)
SEL_CODE64 = 0x08
SEL_DATA = 0x10
SEL_CODE32 = 0x18
GDT = (
    0x0000_0000_0000_0000,  # 0x00 null
    0x00AF_9B00_0000_FFFF,  # 0x08 64-bit code (L=1)
    0x00CF_9300_0000_FFFF,  # 0x10 flat data
    0x00CF_9B00_0000_FFFF,  # 0x18 flat 32-bit code (D=1)
)

HANDOVERS = ("start32", "start64")


def gdt_bytes() -> bytes:
    return schema.build(gdt(len(GDT)), list(GDT), what="GDT")


def gdt_descriptor(gdt_addr: int) -> bytes:
    """The 10-byte ``lgdt`` operand (limit u16, base u64)."""
    return schema.build(GdtPointer64, dict(limit=len(GDT) * SEGMENT_DESCRIPTOR_SIZE - 1,
                                           base=gdt_addr), what="GDT pointer")


def entry64_asm(*, gdt_desc_addr: int, compat32_addr: int, name_addr: int, handover: str,
                start64: int | None = None, ident_pt_l4: int | None = None) -> str:
    """AT&T text of the 64-bit part (entered at its first byte)."""
    bp, bi, e20, e24 = off.BOOT_PARAMS, off.BOOTINFO, off.BOOT_E820_ENTRY, off.E820ENT
    text = f"""
    cli
    cld
    movq %rsi, %r8                          # r8 = boot_params
    movl ${layout.BOOTINFO_ADDR:#x}, %edi   # zero the boot-info block
    xorl %eax, %eax
    movl ${bi['sizeof']:#x}, %ecx
    rep stosb
    movl ${layout.BOOTINFO_ADDR:#x}, %ebx   # rbx = boot-info block
    movl {bp['cmd_line_ptr']:#x}(%r8), %eax
    movl %eax, {bi['cmdline']:#x}(%rbx)
    movzbl {bp['e820_entries']:#x}(%r8), %ecx
    cmpl ${off.E820_MAX_ENTRIES_ZEROPAGE:#x}, %ecx
    jbe e820_count_ok
    movl ${off.E820_MAX_ENTRIES_ZEROPAGE:#x}, %ecx
e820_count_ok:
    movl %ecx, %edx
    imull ${e24['sizeof']:#x}, %edx, %edx
    movl %edx, {bi['mmap_length']:#x}(%rbx)
    movl ${layout.E820_MAP_ADDR:#x}, {bi['mmap_addr']:#x}(%rbx)
    leaq {bp['e820_table']:#x}(%r8), %rsi
    movl ${layout.E820_MAP_ADDR:#x}, %edi
e820_loop:
    testl %ecx, %ecx
    jz e820_done
    movl ${e20['sizeof']:#x}, {e24['ent_size']:#x}(%rdi)
    movq {e20['addr']:#x}(%rsi), %rax
    movq %rax, {e24['addr']:#x}(%rdi)
    movq {e20['size']:#x}(%rsi), %rax
    movq %rax, {e24['size']:#x}(%rdi)
    movl {e20['type']:#x}(%rsi), %eax
    movl %eax, {e24['type']:#x}(%rdi)
    addq ${e20['sizeof']:#x}, %rsi
    addq ${e24['sizeof']:#x}, %rdi
    decl %ecx
    jmp e820_loop
e820_done:
    rdtsc
    movl %eax, {bi['tsc_init']:#x}(%rbx)
    movl %edx, {bi['tsc_init'] + 4:#x}(%rbx)
    movl %eax, {bi['tsc_disk_done']:#x}(%rbx)
    movl %edx, {bi['tsc_disk_done'] + 4:#x}(%rbx)
    movl %eax, {bi['tsc_uncompress_done']:#x}(%rbx)
    movl %edx, {bi['tsc_uncompress_done'] + 4:#x}(%rbx)
    orl ${off.BOOTINFO_FLAG_BOOT_LOADER_NAME:#x}, {bi['flags']:#x}(%rbx)
    movl ${name_addr:#x}, {bi['boot_loader_name']:#x}(%rbx)
    movl ${gdt_desc_addr:#x}, %eax
    lgdt (%rax)
"""
    if handover == "start32":
        text += f"""
    pushq ${SEL_CODE32:#x}
    pushq ${compat32_addr:#x}
    lretq
"""
    elif handover == "start64":
        if start64 is None or ident_pt_l4 is None:
            raise ValueError("the start64 handover needs the start64 and ident_pt_l4 addresses")
        text += f"""
    movl ${SEL_DATA:#x}, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq ${OSV_BOOT_CR4:#x}, %rax
    movq %rax, %cr4
    movq ${ident_pt_l4:#x}, %rax
    movq %rax, %cr3
    movl ${MSR_EFER:#x}, %ecx
    rdmsr
    orl ${EFER_LME | EFER_NXE:#x}, %eax
    wrmsr
    movq ${OSV_BOOT_CR0:#x}, %rax
    movq %rax, %cr0
    movl ${layout.BOOTINFO_ADDR:#x}, %ebx
    xorl %edi, %edi
    movq ${start64:#x}, %rax
    jmp *%rax
"""
    else:
        raise ValueError(f"handover must be one of {HANDOVERS}, not {handover!r}")
    return text


def compat32_asm(*, stack: int = layout.FC_BOOT_STACK_ADDR) -> str:
    """AT&T text of the 32-bit compatibility-mode part of the start32 handover."""
    return f"""
    movl ${SEL_DATA:#x}, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movl ${stack:#x}, %esp
    movl ${layout.BOOTINFO_ADDR:#x}, %ebx
    xorl %edi, %edi
    jmp *{layout.START32_SLOT_ADDR:#x}
"""


def assemble_entry64(base: int, **kw) -> bytes:
    return assemble(entry64_asm(**kw), bits=64, base=base)


def assemble_compat32(base: int, **kw) -> bytes:
    return assemble(compat32_asm(**kw), bits=32, base=base)
