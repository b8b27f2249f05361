"""The MP table report: find the MP floating pointer, print it, its table and the CPU count.

``mpscan`` (RSI start, RCX length -> RAX address of the first ``_MP_`` on a 16-byte boundary,
or 0) is the routine; :func:`section` searches by OSv's rule first (0x9FC00 then 0x0, 1 KiB
each), then by the MP spec's (the EBDA's first KiB, then the BIOS ROM 0xF0000-0xFFFFF), and
counts processor entries the way OSv walks the table.
"""

from __future__ import annotations

from .layout import (LIMIT_64K, MP_EBDA_SEARCH_SIZE, MP_EBDA_SEGMENT_ADDR, MP_OSV_SEARCH,
                     MP_ROM_SIZE, MP_ROM_START, MP_STEP, MPC_HEADER_SIZE, MPC_LENGTH,
                     MPC_OTHER_SIZE, MPC_PROCESSOR, MPC_PROCESSOR_SIZE, MPC_SIGNATURE_U32,
                     MPF_PHYSPTR, MPF_SIGNATURE_U32, MPF_SIZE)
from .program import Program, at, saving


def emit(p: Program) -> None:
    """Emit ``mpscan``."""
    p.emit("mpscan", saving("rsi rcx", f"""
    mpscan_loop:
        cmpq ${MP_STEP:#x}, %rcx
        jb mpscan_none
        cmpl ${MPF_SIGNATURE_U32:#x}, (%rsi)
        je mpscan_found
        addq ${MP_STEP:#x}, %rsi
        subq ${MP_STEP:#x}, %rcx
        jmp mpscan_loop
    mpscan_none:
        xorl %esi, %esi
    mpscan_found:
        movq %rsi, %rax
    """), 64)


def _search(p: Program) -> str:
    mpscan = p.sym["mpscan"]
    osv = []
    for start, size in MP_OSV_SEARCH:
        osv.append(f"""
        {"xorl %esi, %esi" if start == 0 else f"movq ${start:#x}, %rsi"}
        movl ${size:#x}, %ecx
        call {mpscan:#x}
        testq %rax, %rax
        jnz s64_mp_osv
        """)
    return "".join(osv) + f"""
        {at(MP_EBDA_SEGMENT_ADDR)}
        movzwl (%r11), %esi
        shll $4, %esi
        movl ${MP_EBDA_SEARCH_SIZE:#x}, %ecx
        call {mpscan:#x}
        testq %rax, %rax
        jnz s64_mp_spec
        movq ${MP_ROM_START:#x}, %rsi
        movl ${MP_ROM_SIZE:#x}, %ecx
        call {mpscan:#x}
        testq %rax, %rax
        jnz s64_mp_spec
    """


def section(p: Program, done: str) -> str:
    """start64: the MP report (label ``s64_mptable``); ends by jumping to ``done``."""
    P, H, nl = p.puts, p.puthex, p.newline
    hexlines = p.sym["hexlines"]
    return f"""
    s64_mptable:
        {_search(p)}
        {P("probe.mptable.none")}
        {nl}
        jmp {done}
    s64_mp_osv:
        movq %rax, %r14
        {P("probe.mptable.rule osv")}
        jmp s64_mp_found
    s64_mp_spec:
        movq %rax, %r14
        {P("probe.mptable.rule spec")}
    s64_mp_found:
        {nl}
        {P("probe.mpfp 0x")}
        movq %r14, %rax
        {H(8)}
        {nl}
        movq ${p.string("probe.mpfp.hex "):#x}, %rsi
        movq %r14, %rdi
        movl ${MPF_SIZE:#x}, %ecx
        call {hexlines:#x}
        movl {MPF_PHYSPTR:#x}(%r14), %edi
        cmpl ${LIMIT_64K:#x}, %edi
        jae s64_mp_nopcmp
        cmpl ${MPC_SIGNATURE_U32:#x}, (%rdi)
        jne s64_mp_nopcmp
        movzwl {MPC_LENGTH:#x}(%rdi), %r15d
        {P("probe.mptable 0x")}
        movq %rdi, %rax
        {H(8)}
        {P(" 0x")}
        movq %r15, %rax
        {H(4)}
        {nl}
        movq ${p.string("probe.mptable.hex "):#x}, %rsi
        movq %r15, %rcx
        call {hexlines:#x}
        xorl %ecx, %ecx
        leaq (%rdi,%r15), %r15
        addq ${MPC_HEADER_SIZE:#x}, %rdi
    s64_mp_walk:
        cmpq %r15, %rdi
        jae s64_mp_count
        cmpb ${MPC_PROCESSOR:#x}, (%rdi)
        jne s64_mp_other
        incl %ecx
        addq ${MPC_PROCESSOR_SIZE:#x}, %rdi
        jmp s64_mp_walk
    s64_mp_other:
        addq ${MPC_OTHER_SIZE:#x}, %rdi
        jmp s64_mp_walk
    s64_mp_count:
        {P("probe.cpus 0x")}
        movl %ecx, %eax
        {H(4)}
        {nl}
        jmp {done}
    s64_mp_nopcmp:
        {P("probe.mptable.nopcmp 0x")}
        movl %edi, %eax
        {H(8)}
        {nl}
    """
