"""The boot-info report: OSv's block at EBX (flags, boot-loader name, command line, TSC
stamps, disk error), as boot16 or a vmlinux entry filled it."""

from __future__ import annotations

from .layout import BI, CMDLINE_MAX, LIMIT_4K, LIMIT_64K, LOADER_NAME_FLAG, LOADER_NAME_MAX
from .program import Program


def section(p: Program, invalid: str, done: str) -> str:
    """start64, R12 = EBX at start32: ``probe.bootinfo``, ``.flags``, ``probe.loader`` and
    ``probe.cmdline`` lines; jumps to ``invalid`` when R12 is no block, else to ``done``."""
    P, H, nl = p.puts, p.puthex, p.newline
    strnlen, putesc, hexlines = p.sym["strnlen"], p.sym["putesc"], p.sym["hexlines"]
    return f"""
        {P("probe.bootinfo 0x")}
        movq %r12, %rax
        {H(8)}
        {nl}
        cmpq ${LIMIT_4K:#x}, %r12
        jae s64_bad_bootinfo
        testq %r12, %r12
        jnz s64_bootinfo_ok
    s64_bad_bootinfo:
        {P("probe.bootinfo.invalid")}
        {nl}
        jmp {invalid}
    s64_bootinfo_ok:
        {P("probe.bootinfo.flags 0x")}
        movl {BI['flags']:#x}(%r12), %eax
        {H(8)}
        {nl}
        testl ${LOADER_NAME_FLAG:#x}, {BI['flags']:#x}(%r12)
        jz s64_noloader
        {_string_length(strnlen, 'boot_loader_name', LIMIT_4K, LOADER_NAME_MAX, 's64_noloader')}
        movq %rax, %rcx
        pushq %rcx
        {P("probe.loader ")}
        movq %rdi, %rsi
        popq %rcx
        call {putesc:#x}
        {nl}
        movq ${p.string("probe.loader.hex "):#x}, %rsi
        call {hexlines:#x}
        jmp s64_cmdline
    s64_noloader:
        {P("probe.loader.none")}
        {nl}
    s64_cmdline:
        {_string_length(strnlen, 'cmdline', LIMIT_64K, CMDLINE_MAX, 's64_nocmdline')}
        movq %rax, %r14
        {P("probe.cmdline.addr 0x")}
        movq %rdi, %rax
        {H(8)}
        {nl}
        {P("probe.cmdline.len 0x")}
        movq %r14, %rax
        {H(8)}
        {nl}
        {P("probe.cmdline ")}
        movq %rdi, %rsi
        movq %r14, %rcx
        call {putesc:#x}
        {nl}
        movq ${p.string("probe.cmdline.hex "):#x}, %rsi
        movq %r14, %rcx
        call {hexlines:#x}
        jmp {done}
    s64_nocmdline:
        {P("probe.cmdline.none")}
        {nl}
    """


def _string_length(strnlen: int, field: str, limit: int, max_len: int, absent: str) -> str:
    """R12 = boot-info block: RDI = its string pointer ``field``, RAX = that string's length
    (at most ``max_len``); to ``absent`` when the pointer is 0 or at/above ``limit``."""
    return f"""
        movl {BI[field]:#x}(%r12), %edi
        testl %edi, %edi
        jz {absent}
        cmpl ${limit:#x}, %edi
        jae {absent}
        movq %rdi, %rsi
        movl ${max_len:#x}, %ecx
        call {strnlen:#x}
    """


def tsc_section(p: Program) -> str:
    """start64, R12 = boot-info block: ``probe.tsc`` and ``probe.disk_err`` (label
    ``s64_tsc``); falls through."""
    P, H, nl = p.puts, p.puthex, p.newline
    return f"""
    s64_tsc:
        {P("probe.tsc 0x")}
        movq {BI['tsc_init']:#x}(%r12), %rax
        {H(16)}
        {P(" 0x")}
        movq {BI['tsc_disk_done']:#x}(%r12), %rax
        {H(16)}
        {P(" 0x")}
        movq {BI['tsc_uncompress_done']:#x}(%r12), %rax
        {H(16)}
        {nl}
        {P("probe.disk_err 0x")}
        movzbl {BI['disk_err']:#x}(%r12), %eax
        {H(2)}
        {nl}
    """
