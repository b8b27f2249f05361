"""The Keystone wrapper refuses the constructs Keystone 0.9.2 mis-assembles."""

from __future__ import annotations

import pytest

from osvkit.asm import AsmError, assemble, disassemble, far_jump16, far_jump16_to32, far_jump32


def test_assembles_att_with_named_labels():
    assert assemble("movl $0x14, %ecx\nspin: jmp spin", bits=32) == b"\xb9\x14\x00\x00\x00\xeb\xfe"
    # mov of a label's address in 16-bit code is an immediate, not a memory load
    assert assemble("mov $msg, %si\nmsg: .byte 1", bits=16, base=0x7C00) == b"\xbe\x03\x7c\x01"


@pytest.mark.parametrize("text", ["movl $20, %ecx", ".fill 10, 1, 0", "movl 16(%ebx), %eax",
                                  "addl $-100, %eax"])
def test_rejects_bare_decimals_keystone_reads_as_hex(text):
    with pytest.raises(AsmError, match="bare number"):
        assemble(text, bits=32)


@pytest.mark.parametrize("text", ["movl $9, %eax", "lbl10: jmp lbl10", '.ascii "x 12"',
                                  "movl 0x10(%ebx), %eax  # 16 bytes in"])
def test_accepts_digits_that_mean_the_same_in_hex(text):
    assemble(text, bits=32)


def test_rejects_numeric_local_labels():
    with pytest.raises(AsmError, match="numeric local label"):
        assemble("1: jmp 1b", bits=32)


def test_far_jump_bytes_disassemble_as_far_jumps():
    assert far_jump16(0x08, 0x7C50) == bytes.fromhex("ea507c0800")
    assert far_jump32(0x08, 0x201000) == bytes.fromhex("ea001020000800")
    assert disassemble(far_jump16(0x08, 0x7C50), bits=16) == [(0, "ljmpw", "$0x8:$0x7c50")]
    assert disassemble(far_jump16_to32(0x08, 0x201000), bits=16) == [(0, "ljmpl", "$0x8:$0x201000")]
    assert disassemble(far_jump32(0x18, 0x200000), bits=32) == [(0, "ljmpl", "$0x18:$0x200000")]


@pytest.mark.parametrize("text", ["movq 0x205048, %rax", "spin: movq 0x1010, %r8"])
def test_rejects_64bit_absolute_loads_keystone_misencodes(text):
    with pytest.raises(AsmError, match="absolute address"):
        assemble(text, bits=64, base=0x100000)


@pytest.mark.parametrize("text,target", [("movl 0x1010, %r8d", 0x1010), ("movq %rax, 0x1010", 0x1010)])
def test_other_absolute_forms_come_out_right(text, target):
    import re

    code = assemble(text, bits=64, base=0x100000)
    (_, _, ops), = disassemble(code, bits=64, base=0x100000)
    disp = int(re.search(r"(-?0x[0-9a-f]+)\(%rip\)", ops).group(1), 16)
    assert 0x100000 + len(code) + disp == target
