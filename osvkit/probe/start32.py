"""``start32``: the probe's 32-bit entry, OSv's boot contract (EBX = boot-info block).

It records CR0/ESP/CS, loads the probe's GDT (OSv's selectors), reloads CS with 0x18; if
paging is on (it was entered in compatibility mode, as OSv's ``vmlinux_entry64`` rejoins it)
it clears CR0.PG (the code is identity-mapped below 1 GiB) and EFER.LME; then it builds
OSv's page tables in bss (``ident_pt_l4[0]`` -> l3 | 0x67, l3[0] and l3[1] -> l2 | 0x67,
l2[i] = i << 21 | 0x1E7), sets CR4, CR3, EFER and CR0 like OSv's ``boot.S`` and far-jumps
to ``start64`` through selector 0x08.  ESI tells start64 which entry ran.
"""

from __future__ import annotations

from ..asm import byte_directive, far_jump32
from .layout import (BOOT_CR0, BOOT_CR4, BOOT_EFER, BSS_L2, BSS_L3, BSS_L4, BSS_SAVE,
                     BSS_STACK_TOP, CR0_PG, EFER_LME, MARK_ELF_ENTRY, MARK_START32, MSR_EFER,
                     PAGE_2M, PT_2M_FLAGS, PT_ENTRIES, PT_ENTRY_SIZE, PT_TABLE_FLAGS, S32_CR0,
                     S32_CS, S32_ESP, SEL_CODE32, SEL_CODE64, SEL_DATA)
from .program import Program

PAGE_TABLES_DWORDS = (BSS_SAVE - BSS_L4) // 4   # l4, l3 and l2, zeroed with rep stosl


def emit(p: Program) -> None:
    """Emit ``start32`` (after ``start64``, whose address its far jump encodes)."""
    l4, l3, l2 = p.bss + BSS_L4, p.bss + BSS_L3, p.bss + BSS_L2
    ljmp = byte_directive(far_jump32(SEL_CODE64, p.sym["start64"]))
    p.emit("start32", f"""
        cli
        cld
        movl %cr0, %eax
        movl %eax, {p.save + S32_CR0:#x}
        movl %esp, {p.save + S32_ESP:#x}
        movl $0, {p.save + S32_CS:#x}
        movw %cs, {p.save + S32_CS:#x}
        cmpl ${MARK_ELF_ENTRY:#x}, %esi
        je s32_marked
        movl ${MARK_START32:#x}, %esi
    s32_marked:
        lgdtl {p.data.addr['gdt_desc']:#x}
        movl ${SEL_DATA:#x}, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %fs
        movl %eax, %gs
        movl %eax, %ss
        movl ${p.bss + BSS_STACK_TOP:#x}, %esp
        pushl ${SEL_CODE32:#x}
        pushl $s32_reloaded
        lretl
    s32_reloaded:
        movl %cr0, %eax
        testl ${CR0_PG:#x}, %eax
        jz s32_paging_off
        andl ${~CR0_PG & 0xFFFFFFFF:#x}, %eax
        movl %eax, %cr0
    s32_paging_off:
        movl ${MSR_EFER:#x}, %ecx
        rdmsr
        andl ${~EFER_LME & 0xFFFFFFFF:#x}, %eax
        wrmsr
        movl ${l4:#x}, %edi
        xorl %eax, %eax
        movl ${PAGE_TABLES_DWORDS:#x}, %ecx
        rep stosl
        movl ${l3 | PT_TABLE_FLAGS:#x}, {l4:#x}
        movl ${l2 | PT_TABLE_FLAGS:#x}, {l3:#x}
        movl ${l2 | PT_TABLE_FLAGS:#x}, {l3 + PT_ENTRY_SIZE:#x}
        movl ${l2:#x}, %edi
        movl ${PT_2M_FLAGS:#x}, %eax
        movl ${PT_ENTRIES:#x}, %ecx
    s32_l2:
        movl %eax, (%edi)
        addl ${PAGE_2M:#x}, %eax
        addl ${PT_ENTRY_SIZE:#x}, %edi
        decl %ecx
        jnz s32_l2
        movl ${BOOT_CR4:#x}, %eax
        movl %eax, %cr4
        movl ${l4:#x}, %eax
        movl %eax, %cr3
        movl ${MSR_EFER:#x}, %ecx
        movl ${BOOT_EFER:#x}, %eax
        xorl %edx, %edx
        wrmsr
        movl ${BOOT_CR0:#x}, %eax
        movl %eax, %cr0
        {ljmp}
    """, 32)
