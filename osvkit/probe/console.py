"""The report writer: the probe's 64-bit COM1 output routines.

Register conventions (every routine preserves all registers but its result):

* ``putc``: AL -> COM1 (polls the line status register, gives up after a while);
* ``puts``: the NUL-terminated string at RSI;
* ``puthex``: RAX as ECX (1..16) hex digits, most significant first, lowercase;
* ``newline``: ``\\n``;
* ``hexdump``: RCX bytes at RSI, two lowercase hex digits each;
* ``strnlen``: RAX = length of the string at RSI, at most RCX;
* ``putesc``: RCX bytes at RSI, printable ASCII as is, ``\\`` as ``\\\\``, others ``\\xNN``;
* ``hexlines``: RCX bytes at RDI as lines ``<key at RSI><hex of up to 32 bytes>``.
"""

from __future__ import annotations

from .. import layout
from .layout import HEXLINE_BYTES
from .program import Program, saving

LSR_OFFSET = 5                 # the UART's line status register
LSR_THR_EMPTY = 0x20
PUTC_TRIES = 200000            # polls before a byte is sent regardless


def emit(p: Program) -> None:
    """Emit the report writer's routines, in this order."""
    com = layout.COM1_PORT
    p.emit("putc", f"""
        pushq %rdx
        pushq %rcx
        pushq %rax
        movl ${PUTC_TRIES:#x}, %ecx
    putc_wait:
        movw ${com + LSR_OFFSET:#x}, %dx
        inb %dx, %al
        testb ${LSR_THR_EMPTY:#x}, %al
        jnz putc_ready
        decl %ecx
        jnz putc_wait
    putc_ready:
        popq %rax
        movw ${com:#x}, %dx
        outb %al, %dx
        popq %rcx
        popq %rdx
        ret
    """, 64)
    putc = p.sym["putc"]
    p.emit("puts", saving("rsi rax", f"""
    puts_loop:
        movb (%rsi), %al
        testb %al, %al
        jz puts_done
        call {putc:#x}
        incq %rsi
        jmp puts_loop
    puts_done:
    """), 64)
    p.emit("puthex", saving("rax rcx rdx rbx", f"""
        movq %rax, %rdx
        movl %ecx, %ebx
        movl $0x10, %ecx
        subl %ebx, %ecx
        shll $2, %ecx
        shlq %cl, %rdx
    puthex_loop:
        rolq $4, %rdx
        movl %edx, %eax
        andl $0xf, %eax
        cmpb $0xa, %al
        jb puthex_digit
        addb $0x27, %al
    puthex_digit:
        addb $0x30, %al
        call {putc:#x}
        decl %ebx
        jnz puthex_loop
    """), 64)
    puthex = p.sym["puthex"]
    p.emit("newline", saving("rax", f"""
        movb $0x0a, %al
        call {putc:#x}
    """), 64)
    p.emit("hexdump", saving("rsi rcx rax rdx", f"""
        movq %rcx, %rdx
    hexdump_loop:
        testq %rdx, %rdx
        jz hexdump_done
        movzbl (%rsi), %eax
        movl $2, %ecx
        call {puthex:#x}
        incq %rsi
        decq %rdx
        jmp hexdump_loop
    hexdump_done:
    """), 64)
    p.emit("strnlen", """
        xorl %eax, %eax
    strnlen_loop:
        cmpq %rcx, %rax
        jae strnlen_done
        cmpb $0, (%rsi,%rax)
        je strnlen_done
        incq %rax
        jmp strnlen_loop
    strnlen_done:
        ret
    """, 64)
    _emit_putesc(p)
    _emit_hexlines(p)


def _emit_putesc(p: Program) -> None:
    putc, puthex = p.sym["putc"], p.sym["puthex"]
    p.emit("putesc", saving("rsi rcx rax rdx", f"""
        movq %rcx, %rdx
    putesc_loop:
        testq %rdx, %rdx
        jz putesc_done
        movzbl (%rsi), %eax
        cmpb $0x5c, %al
        je putesc_backslash
        cmpb $0x20, %al
        jb putesc_hex
        cmpb $0x7e, %al
        ja putesc_hex
        call {putc:#x}
        jmp putesc_next
    putesc_backslash:
        call {putc:#x}
        call {putc:#x}
        jmp putesc_next
    putesc_hex:
        pushq %rax
        movb $0x5c, %al
        call {putc:#x}
        movb $0x78, %al
        call {putc:#x}
        popq %rax
        movl $2, %ecx
        call {puthex:#x}
    putesc_next:
        incq %rsi
        decq %rdx
        jmp putesc_loop
    putesc_done:
    """), 64)


def _emit_hexlines(p: Program) -> None:
    p.emit("hexlines", saving("rdi rcx rsi rdx", f"""
        movq %rsi, %rdx
    hexlines_loop:
        testq %rcx, %rcx
        jz hexlines_done
        movq %rdx, %rsi
        call {p.sym['puts']:#x}
        pushq %rcx
        cmpq ${HEXLINE_BYTES:#x}, %rcx
        jbe hexlines_last
        movl ${HEXLINE_BYTES:#x}, %ecx
    hexlines_last:
        movq %rdi, %rsi
        call {p.sym['hexdump']:#x}
        addq %rcx, %rdi
        movq %rcx, %rsi
        popq %rcx
        subq %rsi, %rcx
        call {p.sym['newline']:#x}
        jmp hexlines_loop
    hexlines_done:
    """), 64)
