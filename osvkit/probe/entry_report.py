"""The ELF entry routine (``entry_report=True``): what a 64-bit Linux-boot-protocol loader
left, printed before the probe continues like OSv's ``vmlinux_entry64``.

It saves the general registers, RIP, RFLAGS, control registers, EFER, segment selectors,
TR, GDTR and IDTR in the bss save area, prints them as ``probe.state.*`` lines with the GDT,
the first page-table entries and the boot_params fields at RSI; then copies the command line
and the e820 map into the boot-info block at 0x1000/0x2000, names the loader
``probe-elf-entry``, loads the probe's GDT and ``lretq``\\ s to ``start32`` in 32-bit
compatibility mode with EBX = 0x1000.
"""

from __future__ import annotations

from ..asm import assemble
from .layout import (BASE, BI, BOOT_INFO_ADDR, BOOT_INFO_CLEAR_SIZE, BP, BP_E820_ENTRY_SIZE,
                     BP_E820_MAX, BP_E820_OFFSET, BP_FIELDS, BSS_STACK_TOP, E820_ADDR,
                     ELF_ENTRY_LOADER_NAME, LIMIT_4K, LOADER_NAME_FLAG, MARK_ELF_ENTRY, MSR_EFER,
                     OSV_E820, OSV_E820_MIN_SIZE, OSV_E820_RECORD, REPORT_VERSION, SAVE_GDTR,
                     SAVE_IDTR, SEL_CODE32, SLOT_OFFSET, STATE_OFFSETS, STATE_REGS)
from .program import Program, at

GP_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")
SEGMENTS = ("cs", "ds", "es", "ss", "fs", "gs")
PHYS_ADDR_MASK = 0x000FFFFFFFFFF000      # a page-table entry's address bits
PTE_PRESENT, PTE_LARGE = 0x1, 0x80
GDT_REPORT_SIZE = 0x20                   # four descriptors
LEA_RIP_SIZE = 7                         # leaq 0(%rip), %rax


def emit(p: Program) -> None:
    """Emit ``elf_entry``."""
    p.string(ELF_ENTRY_LOADER_NAME)   # the first of its strings in the data area
    p.emit("elf_entry", _save_state(p) + _print_registers(p) + _print_tables(p)
           + _print_boot_params(p) + _handover(p), 64)


def _save_state(p: Program) -> str:
    sv = p.save
    prefix = "".join(f"""
        {at(sv + STATE_OFFSETS[reg])}
        movq %{reg}, (%r11)
    """ for reg in GP_REGS)
    prefix_len = len(assemble(prefix, bits=64, base=BASE))
    segments = "".join(f"""
        {at(sv + STATE_OFFSETS[seg])}
        movw %{seg}, (%r11)
    """ for seg in SEGMENTS)
    return prefix + f"""
        leaq 0(%rip), %rax
        movq ${p.bss + BSS_STACK_TOP:#x}, %rsp
        pushfq
        subq ${prefix_len + LEA_RIP_SIZE:#x}, %rax
        {at(sv + STATE_OFFSETS['rip'])}
        movq %rax, (%r11)
        popq %rax
        {at(sv + STATE_OFFSETS['rflags'])}
        movq %rax, (%r11)
        movq %cr0, %rax
        {at(sv + STATE_OFFSETS['cr0'])}
        movq %rax, (%r11)
        movq %cr3, %rax
        {at(sv + STATE_OFFSETS['cr3'])}
        movq %rax, (%r11)
        movq %cr4, %rax
        {at(sv + STATE_OFFSETS['cr4'])}
        movq %rax, (%r11)
        movl ${MSR_EFER:#x}, %ecx
        rdmsr
        shlq $0x20, %rdx
        orq %rdx, %rax
        {at(sv + STATE_OFFSETS['efer'])}
        movq %rax, (%r11)
        {segments}
        str %ax
        {at(sv + STATE_OFFSETS['tr'])}
        movw %ax, (%r11)
        {at(sv + SAVE_GDTR)}
        sgdt (%r11)
        {at(sv + SAVE_IDTR)}
        sidt (%r11)
    """


def _print_registers(p: Program) -> str:
    P, H, nl = p.puts, p.puthex, p.newline
    sv = p.save
    lines = [f"""
        {nl}
        {P(f"probe.state.begin {REPORT_VERSION}")}
        {nl}
    """]
    for key, off, digits in STATE_REGS:
        mov = "movq" if digits == 16 else "movzwq"
        lines.append(f"""
        {P(f"probe.state.{key} 0x")}
        {at(sv + off)}
        {mov} (%r11), %rax
        {H(digits)}
        {nl}
        """)
    for key, off in (("gdtr", SAVE_GDTR), ("idtr", SAVE_IDTR)):
        lines.append(f"""
        {P(f"probe.state.{key} 0x")}
        {at(sv + off + 2)}
        movq (%r11), %rax
        {H(16)}
        {P(" 0x")}
        {at(sv + off)}
        movzwq (%r11), %rax
        {H(4)}
        {nl}
        """)
    return "".join(lines)


def _print_tables(p: Program) -> str:
    """The GDT the loader left, and the first page-table entries on CR3's path."""
    P, H, nl = p.puts, p.puthex, p.newline
    sv = p.save
    return f"""
        {at(sv + SAVE_GDTR + 2)}
        movq (%r11), %rdi
        cmpq ${LIMIT_4K:#x}, %rdi
        jae ee_nogdt
        movq ${p.string("probe.state.gdt "):#x}, %rsi
        movl ${GDT_REPORT_SIZE:#x}, %ecx
        call {p.sym['hexlines']:#x}
    ee_nogdt:
        {at(sv + STATE_OFFSETS['cr3'])}
        movq (%r11), %rdi
        movabsq ${PHYS_ADDR_MASK:#018x}, %r8
        andq %r8, %rdi
        cmpq ${LIMIT_4K:#x}, %rdi
        jae ee_nopt
        {P("probe.state.pml4_0 0x")}
        movq (%rdi), %rax
        {H(16)}
        {nl}
        {_next_table(large_ends=False)}
        {P("probe.state.pdpt_0 0x")}
        movq (%rdi), %rax
        {H(16)}
        {nl}
        {_next_table(large_ends=True)}
        {P("probe.state.pd 0x")}
        movq (%rdi), %rax
        {H(16)}
        {P(" 0x")}
        movq 8(%rdi), %rax
        {H(16)}
        {P(" 0x")}
        movq 0xff8(%rdi), %rax
        {H(16)}
        {nl}
    ee_nopt:
    """


def _next_table(large_ends: bool) -> str:
    """RDI = the first entry of a table, R8 = the address mask: RDI = the table it points
    at; to ``ee_nopt`` if the entry is not present (or, ``large_ends``, maps a large page)
    or the table would reach past the identity-mapped memory."""
    large = f"""
        testb ${PTE_LARGE:#x}, %dil
        jnz ee_nopt""" if large_ends else ""
    return f"""
        movq (%rdi), %rdi
        testb ${PTE_PRESENT:#x}, %dil
        jz ee_nopt{large}
        andq %r8, %rdi
        cmpq ${LIMIT_4K:#x}, %rdi
        jae ee_nopt
    """


def _print_boot_params(p: Program) -> str:
    """RSI at entry -> R12 (0 if it is no boot_params): the fields and its e820 table."""
    P, H, nl = p.puts, p.puthex, p.newline
    lines = [f"""
        {at(p.save + STATE_OFFSETS['rsi'])}
        movq (%r11), %r12
        testq %r12, %r12
        jz ee_nobp
        cmpq ${LIMIT_4K:#x}, %r12
        jb ee_bp
    ee_nobp:
        {P("probe.state.bp.none")}
        {nl}
        xorl %r12d, %r12d
        jmp ee_continue
    ee_bp:
    """]
    for key, size, digits in BP_FIELDS:
        mov = {1: "movzbq", 2: "movzwq", 4: "movl", 8: "movq"}[size]
        dst = "%eax" if size == 4 else "%rax"
        lines.append(f"""
        {P(f"probe.state.bp.{key} 0x")}
        {mov} {BP[key]:#x}(%r12), {dst}
        {H(digits)}
        {nl}
        """)
    lines.append(f"""
        movzbl {BP['e820_entries']:#x}(%r12), %r13d
        cmpl ${BP_E820_MAX:#x}, %r13d
        jbe ee_e820_count
        movl ${BP_E820_MAX:#x}, %r13d
    ee_e820_count:
        leaq {BP_E820_OFFSET:#x}(%r12), %rdi
    ee_e820_print:
        testl %r13d, %r13d
        jz ee_continue
        {P("probe.state.bp.e820 0x")}
        movq (%rdi), %rax
        {H(16)}
        {P(" 0x")}
        movq 8(%rdi), %rax
        {H(16)}
        {P(" 0x")}
        movl 0x10(%rdi), %eax
        {H(8)}
        {nl}
        addq ${BP_E820_ENTRY_SIZE:#x}, %rdi
        decl %r13d
        jmp ee_e820_print
    ee_continue:
        {P(f"probe.state.end {REPORT_VERSION}")}
        {nl}
    """)
    return "".join(lines)


def _handover(p: Program) -> str:
    """Fill the boot-info block from boot_params (R12) like vmlinux_entry64, enter start32."""
    bi = BOOT_INFO_ADDR
    name = p.string(ELF_ENTRY_LOADER_NAME)
    tsc = "".join(f"""
        {at(bi + BI[field])}
        movl %eax, (%r11)
        {at(bi + BI[field] + 4)}
        movl %edx, (%r11)
    """ for field in ("tsc_init", "tsc_disk_done", "tsc_uncompress_done"))
    return f"""
        movq ${bi:#x}, %rdi
        xorl %eax, %eax
        movl ${BOOT_INFO_CLEAR_SIZE:#x}, %ecx
        rep stosb
        {at(bi + BI['flags'])}
        movl ${LOADER_NAME_FLAG:#x}, (%r11)
        {at(bi + BI['boot_loader_name'])}
        movl ${name:#x}, (%r11)
        {at(bi + BI['mmap_addr'])}
        movl ${E820_ADDR:#x}, (%r11)
        testq %r12, %r12
        jz ee_tsc
        movl {BP['cmd_line_ptr']:#x}(%r12), %eax
        {at(bi + BI['cmdline'])}
        movl %eax, (%r11)
        movzbl {BP['e820_entries']:#x}(%r12), %ecx
        cmpl ${BP_E820_MAX:#x}, %ecx
        jbe ee_copy_count
        movl ${BP_E820_MAX:#x}, %ecx
    ee_copy_count:
        imull ${OSV_E820_RECORD:#x}, %ecx, %eax
        {at(bi + BI['mmap_length'])}
        movl %eax, (%r11)
        leaq {BP_E820_OFFSET:#x}(%r12), %rsi
        movq ${E820_ADDR:#x}, %rdi
    ee_copy:
        testl %ecx, %ecx
        jz ee_tsc
        movl ${OSV_E820_MIN_SIZE:#x}, (%rdi)
        movq (%rsi), %rax
        movq %rax, {OSV_E820['addr']:#x}(%rdi)
        movq 8(%rsi), %rax
        movq %rax, {OSV_E820['size']:#x}(%rdi)
        movl 0x10(%rsi), %eax
        movl %eax, {OSV_E820['type']:#x}(%rdi)
        addq ${BP_E820_ENTRY_SIZE:#x}, %rsi
        addq ${OSV_E820_RECORD:#x}, %rdi
        decl %ecx
        jmp ee_copy
    ee_tsc:
        rdtsc
        {tsc}
        {at(p.data.addr['gdt_desc'])}
        lgdt (%r11)
        movl ${bi:#x}, %ebx
        movq %r12, %rdi
        movl ${MARK_ELF_ENTRY:#x}, %esi
        {at(BASE + SLOT_OFFSET)}
        movl (%r11), %eax
        pushq ${SEL_CODE32:#x}
        pushq %rax
        lretq
    """
