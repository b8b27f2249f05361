"""The memory-map report: OSv's 24-byte e820 records the boot-info block points at."""

from __future__ import annotations

from .layout import (BI, E820_MAP_MAX, E820_WALK_MAX, LIMIT_64K, OSV_E820, OSV_E820_MIN_SIZE,
                     OSV_E820_RECORD)
from .program import Program


def section(p: Program, done: str) -> str:
    """start64, R12 = boot-info block: ``probe.e820.map`` then one ``probe.e820`` line per
    record, walked as OSv does (next record at +4 + its size field), or ``probe.e820.bad``
    for a record shorter than 20 bytes (label ``s64_e820``); ends at ``done``."""
    P, H, nl = p.puts, p.puthex, p.newline
    return f"""
    s64_e820:
        movl {BI['mmap_addr']:#x}(%r12), %edi
        movl {BI['mmap_length']:#x}(%r12), %r14d
        {P("probe.e820.map 0x")}
        movq %rdi, %rax
        {H(8)}
        {P(" 0x")}
        movq %r14, %rax
        {H(8)}
        {nl}
        cmpl ${LIMIT_64K:#x}, %edi
        jae {done}
        cmpl ${E820_MAP_MAX:#x}, %r14d
        ja {done}
        addq %rdi, %r14
        movl ${E820_WALK_MAX:#x}, %r15d
    s64_e820_loop:
        leaq {OSV_E820_RECORD:#x}(%rdi), %rax
        cmpq %r14, %rax
        ja {done}
        cmpl ${OSV_E820_MIN_SIZE:#x}, (%rdi)
        jb s64_e820_bad
        {P("probe.e820 0x")}
        movq {OSV_E820['addr']:#x}(%rdi), %rax
        {H(16)}
        {P(" 0x")}
        movq {OSV_E820['size']:#x}(%rdi), %rax
        {H(16)}
        {P(" 0x")}
        movl {OSV_E820['type']:#x}(%rdi), %eax
        {H(8)}
        {nl}
        movl (%rdi), %eax
        leaq {OSV_E820['addr']:#x}(%rdi,%rax), %rdi
        decl %r15d
        jnz s64_e820_loop
        jmp {done}
    s64_e820_bad:
        {P("probe.e820.bad 0x")}
        movl (%rdi), %eax
        {H(8)}
        {nl}
    """
