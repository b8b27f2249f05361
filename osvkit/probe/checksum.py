"""The image check: Adler-32 over the probe's own bytes, compared with the info block.

``csum`` (RSI start, RCX byte count, EAX running Adler-32 ``b << 16 | a`` -> EAX) is the
routine; :func:`section` is start64's part that prints ``probe.image ok|corrupt`` (the body
sum, with the two sum fields read as zero) and ``probe.header ok|changed`` (the sum over
[0, 0x800), which loaders' patchers legitimately change).
"""

from __future__ import annotations

from .info import INFO_FIELDS
from .layout import (ADLER_MOD, ADLER_NMAX, BASE, INFO_OFFSET, INFO_SUMS_OFFSET, INFO_SUMS_SIZE,
                     LIMIT, SLOT_OFFSET)
from .program import Program, at, saving

IMAGE_LEN_ADDR = BASE + INFO_OFFSET + INFO_FIELDS["image_len"]
HEADER_SUM_ADDR = BASE + INFO_OFFSET + INFO_FIELDS["header_sum"]
BODY_SUM_ADDR = BASE + INFO_OFFSET + INFO_FIELDS["body_sum"]
SUMS_END = INFO_SUMS_OFFSET + INFO_SUMS_SIZE     # file offset just past the two sums


def emit(p: Program) -> None:
    """Emit ``csum``."""
    p.emit("csum", saving("rsi rcx rdx rbx r8 r9", f"""
        movl %eax, %r8d
        andl $0xffff, %r8d
        movl %eax, %r9d
        shrl $0x10, %r9d
    adler_outer:
        testq %rcx, %rcx
        jz adler_done
        movq %rcx, %rbx
        cmpq ${ADLER_NMAX:#x}, %rbx
        jbe adler_chunk
        movl ${ADLER_NMAX:#x}, %ebx
    adler_chunk:
        subq %rbx, %rcx
    adler_inner:
        movzbl (%rsi), %eax
        addl %eax, %r8d
        addl %r8d, %r9d
        incq %rsi
        decq %rbx
        jnz adler_inner
        movl ${ADLER_MOD:#x}, %ebx
        movl %r8d, %eax
        xorl %edx, %edx
        divl %ebx
        movl %edx, %r8d
        movl %r9d, %eax
        xorl %edx, %edx
        divl %ebx
        movl %edx, %r9d
        jmp adler_outer
    adler_done:
        movl %r9d, %eax
        shll $0x10, %eax
        orl %r8d, %eax
    """), 64)


def section(p: Program) -> str:
    """start64: check the image and the header area (label ``s64_image``); falls through."""
    P, H, nl = p.puts, p.puthex, p.newline
    csum = p.sym["csum"]
    return f"""
    s64_image:
        movl $1, %eax
        movq ${BASE:#x}, %rsi
        movl ${SLOT_OFFSET:#x}, %ecx
        call {csum:#x}
        movl %eax, %r14d
        {at(IMAGE_LEN_ADDR)}
        movl (%r11), %r15d
        cmpl ${LIMIT - BASE:#x}, %r15d
        jae s64_image_bad
        cmpl ${SUMS_END:#x}, %r15d
        jb s64_image_bad
        movl $1, %eax
        movq ${BASE + SLOT_OFFSET:#x}, %rsi
        movl ${INFO_SUMS_OFFSET - SLOT_OFFSET:#x}, %ecx
        call {csum:#x}
        movq ${p.data.addr['idt_zero']:#x}, %rsi
        movl ${INFO_SUMS_SIZE:#x}, %ecx
        call {csum:#x}
        movq ${BASE + SUMS_END:#x}, %rsi
        movl %r15d, %ecx
        subl ${SUMS_END:#x}, %ecx
        call {csum:#x}
        movl %eax, %r15d
        {at(BODY_SUM_ADDR)}
        cmpl (%r11), %r15d
        jne s64_image_bad
        {P("probe.image ok 0x")}
        jmp s64_image_print
    s64_image_bad:
        {P("probe.image corrupt 0x")}
    s64_image_print:
        movl %r15d, %eax
        {H(8)}
        {P(" 0x")}
        {at(BODY_SUM_ADDR)}
        movl (%r11), %eax
        {H(8)}
        {P(" 0x")}
        {at(IMAGE_LEN_ADDR)}
        movl (%r11), %eax
        {H(8)}
        {nl}
        {at(HEADER_SUM_ADDR)}
        cmpl (%r11), %r14d
        jne s64_header_changed
        {P("probe.header ok 0x")}
        jmp s64_header_print
    s64_header_changed:
        {P("probe.header changed 0x")}
    s64_header_print:
        movl %r14d, %eax
        {H(8)}
        {P(" 0x")}
        {at(HEADER_SUM_ADDR)}
        movl (%r11), %eax
        {H(8)}
        {nl}
    """
