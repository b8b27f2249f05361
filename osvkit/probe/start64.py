"""``start64``: the probe's 64-bit main routine, which prints the report and powers off.

Entered from ``start32`` through selector 0x08 with EBX = boot-info block and ESI = which
entry ran (``MARK_START32`` / ``MARK_ELF_ENTRY``; anything else: start64 was entered
directly).  It prints, in order: the entry, start32's notes, the live control registers and
page tables (:func:`_entry_and_paging`), the boot-info block (:mod:`~osvkit.probe.bootinfo`,
:mod:`~osvkit.probe.e820`), the MP table (:mod:`~osvkit.probe.mptable`), the partition table
(:mod:`~osvkit.probe.partition`) and the image check (:mod:`~osvkit.probe.checksum`), then
signals boot-done and resets like OSv (:func:`_power_off`).
"""

from __future__ import annotations

from .. import layout
from ..asm import load_data_segments
from . import bootinfo, checksum, e820, mptable, partition
from .layout import (BSS_L2, BSS_L3, BSS_L4, BSS_STACK_TOP, MARK_ELF_ENTRY, MARK_START32,
                     MSR_EFER, PT_ENTRIES, PT_ENTRY_SIZE, REPORT_VERSION, S32_CR0, S32_CS, S32_ESP,
                     SEL_DATA)
from .program import Program, at

UART_IER, UART_LCR = 1, 3          # interrupt enable, line control: no interrupts, 8N1
UART_LCR_8N1 = 3


def emit(p: Program) -> None:
    """Emit ``start64``."""
    text = (_entry_and_paging(p)
            + bootinfo.section(p, invalid="s64_mptable", done="s64_e820")
            + e820.section(p, done="s64_tsc")
            + bootinfo.tsc_section(p)
            + mptable.section(p, done="s64_mbr")
            + partition.section(p, done="s64_image")
            + checksum.section(p)
            + _power_off(p))
    p.emit("start64", text, 64)


def _entry_and_paging(p: Program) -> str:
    P, H, nl = p.puts, p.puthex, p.newline
    com = layout.COM1_PORT
    head = f"""
        {load_data_segments(SEL_DATA)}
        movl %ebx, %r12d
        movl %esi, %r13d
        movq ${p.bss + BSS_STACK_TOP:#x}, %rsp
        xorl %eax, %eax
        movw ${com + UART_IER:#x}, %dx
        outb %al, %dx
        movb ${UART_LCR_8N1:#x}, %al
        movw ${com + UART_LCR:#x}, %dx
        outb %al, %dx
        {nl}
        {P(f"probe.begin {REPORT_VERSION}")}
        {nl}
        {P("probe.entry ")}
        cmpl ${MARK_START32:#x}, %r13d
        je s64_from32
        cmpl ${MARK_ELF_ENTRY:#x}, %r13d
        je s64_fromelf
        {P("start64")}
        {nl}
        jmp s64_bootinfo
    s64_fromelf:
        {P("elf-entry")}
        jmp s64_start32_state
    s64_from32:
        {P("start32")}
    s64_start32_state:
        {nl}
        {P("probe.start32.cr0 0x")}
        {at(p.save + S32_CR0)}
        movl (%r11), %eax
        {H(8)}
        {nl}
        {P("probe.start32.esp 0x")}
        {at(p.save + S32_ESP)}
        movl (%r11), %eax
        {H(8)}
        {nl}
        {P("probe.start32.cs 0x")}
        {at(p.save + S32_CS)}
        movzwl (%r11), %eax
        {H(4)}
        {nl}
    s64_bootinfo:
        {P("probe.cr 0x")}
        movq %cr0, %rax
        {H(8)}
        {P(" 0x")}
        movq %cr3, %rax
        {H(8)}
        {P(" 0x")}
        movq %cr4, %rax
        {H(8)}
        {P(" 0x")}
        movl ${MSR_EFER:#x}, %ecx
        rdmsr
        {H(8)}
        {nl}
    """
    return head + _page_tables(p)


def _page_tables(p: Program) -> str:
    """``probe.pt``: the entries start32 wrote (l4[0], l3[0], l3[1], l2[0], l2[1], l2[511])."""
    entries = [BSS_L4, BSS_L3, BSS_L3 + PT_ENTRY_SIZE, BSS_L2, BSS_L2 + PT_ENTRY_SIZE,
               BSS_L2 + (PT_ENTRIES - 1) * PT_ENTRY_SIZE]
    parts = [p.puts("probe.pt 0x")]
    for i, off in enumerate(entries):
        if i:
            parts.append(p.puts(" 0x"))
        parts.append(f"""
        {at(p.bss + off)}
        movq (%r11), %rax
        {p.puthex(16)}
        """)
    parts.append(p.newline)
    return "".join(parts)


def _power_off(p: Program) -> str:
    return f"""
        {p.puts(f"probe.end {REPORT_VERSION}")}
        {p.newline}
        movb ${layout.BOOT_DONE_VALUE:#x}, %al
        movw ${layout.BOOT_DONE_PORT:#x}, %dx
        outb %al, %dx
        movb ${layout.I8042_RESET_VALUE:#x}, %al
        movw ${layout.I8042_COMMAND_PORT:#x}, %dx
        outb %al, %dx
        {at(p.data.addr['idt_zero'])}
        lidt (%r11)
        int3
    s64_halt:
        cli
        hlt
        jmp s64_halt
    """
