"""A minimal kernel ELF ("mini kernel") for the usr.img / inspect unit tests: small, fast to
build, deterministic, and bootable on the BIOS path (it was used to bring boot16 up before the
conformance kernel existed; the boot tests use the conformance kernel).

It keeps OSv's boot contract (ELF64 x86-64, one PT_LOAD from offset 0 at physical 0x200000,
start32 pointer at +0x800) and, entered at start32 with EBX = boot-info block, prints on COM1::

    cmdline=<the command line>
    loader=<boot_loader_name>
    tsc=<tsc_init> <tsc_disk_done> <tsc_uncompress_done>      (16 hex digits each)
    e820=<addr> <size> <type>                                  (one line per record)
    image=ok|bad                                               (dword sum of 0x202000..end)
    done

then writes 123 to port 0x3F0 and 0xFE to port 0x64 (run QEMU with -no-reboot).
This file holds no tests.
"""

from __future__ import annotations

import random
import struct

from osvkit.asm import assemble

BASE = 0x200000
START32 = BASE + 0x1000
STRINGS = BASE + 0x1800
BODY = 0x2000
SUM_COUNT_ADDR = BASE + 0x808
SUM_EXPECTED_ADDR = BASE + 0x80C

_STRINGS = {"cmdline": b"cmdline=", "loader": b"\nloader=", "tsc": b"\ntsc=", "sp": b" ",
            "e820": b"\ne820=", "ok": b"\nimage=ok", "bad": b"\nimage=bad", "done": b"\ndone\n"}


def _string_table():
    addrs, blob = {}, bytearray()
    for name, text in _STRINGS.items():
        addrs[name] = STRINGS + len(blob)
        blob += text + b"\0"
    return addrs, bytes(blob)


def _code(s) -> str:
    def puts(name):
        return f"    movl ${s[name]:#x}, %esi\n    call puts\n"

    return f"""
    movl %ebx, %ebp
    movw $0x3f8, %dx
{puts("cmdline")}
    movl 0x10(%ebp), %esi
    call puts
{puts("loader")}
    movl 0x40(%ebp), %esi
    call puts
{puts("tsc")}
    movl 0x5c(%ebp), %eax
    call hex
    movl 0x58(%ebp), %eax
    call hex
{puts("sp")}
    movl 0x64(%ebp), %eax
    call hex
    movl 0x60(%ebp), %eax
    call hex
{puts("sp")}
    movl 0x6c(%ebp), %eax
    call hex
    movl 0x68(%ebp), %eax
    call hex
    movl 0x30(%ebp), %edi
    movl 0x2c(%ebp), %ebx
    addl %edi, %ebx
e820_loop:
    cmpl %ebx, %edi
    jae e820_done
{puts("e820")}
    movl 0x8(%edi), %eax
    call hex
    movl 0x4(%edi), %eax
    call hex
{puts("sp")}
    movl 0x10(%edi), %eax
    call hex
    movl 0xc(%edi), %eax
    call hex
{puts("sp")}
    movl 0x14(%edi), %eax
    call hex
    movl (%edi), %eax
    leal 0x4(%edi,%eax), %edi
    jmp e820_loop
e820_done:
    xorl %eax, %eax
    movl ${BASE + BODY:#x}, %esi
    movl {SUM_COUNT_ADDR:#x}, %ecx
    jecxz sum_done
sum_loop:
    addl (%esi), %eax
    addl $0x4, %esi
    loop sum_loop
sum_done:
    cmpl {SUM_EXPECTED_ADDR:#x}, %eax
    jne image_bad
{puts("ok")}
    jmp finish
image_bad:
{puts("bad")}
finish:
{puts("done")}
    movb $0x7b, %al
    movw $0x3f0, %dx
    outb %al, %dx
    movb $0xfe, %al
    outb %al, $0x64
stop:
    cli
    hlt
    jmp stop
puts:
    lodsb
    testb %al, %al
    jz puts_done
    outb %al, %dx
    jmp puts
puts_done:
    ret
hex:
    movl $0x8, %ecx
hex_loop:
    roll $0x4, %eax
    pushl %eax
    andl $0xf, %eax
    cmpl $0xa, %eax
    jb hex_digit
    addl $0x27, %eax
hex_digit:
    addl $0x30, %eax
    outb %al, %dx
    popl %eax
    loop hex_loop
    ret
"""


def _body(size: int, seed: int) -> bytes:
    """Deterministic, partly compressible filler: random bytes, zeros, short repeats, text."""
    rnd = random.Random(seed)
    text = b"".join(b"mov %%eax, %d(%%ebx) # osvkit mini kernel line %d\n" % (i, i)
                    for i in range(200))
    out = bytearray()
    while len(out) < size:
        kind, n = rnd.randrange(4), rnd.randint(64, 65536)
        if kind == 0:
            out += rnd.randbytes(n)
        elif kind == 1:
            out += bytes(n)
        elif kind == 2:
            out += (rnd.randbytes(rnd.randint(1, 16)) * (n // 2 + 1))[:n]
        else:
            start = rnd.randrange(len(text))
            out += (text[start:] + text * (n // len(text) + 1))[:n]
    return bytes(out[:size])


def mini_kernel(size: int = 0x10000, *, seed: int = 1) -> bytes:
    """The mini kernel as an ELF file of exactly ``size`` bytes (>= 0x2000, multiple of 4)."""
    if size < BODY or size % 4:
        raise ValueError("size must be >= 0x2000 and a multiple of 4")
    s, strings = _string_table()
    code = assemble(_code(s), bits=32, base=START32)
    assert len(code) <= 0x800
    img = bytearray(size)
    img[BODY:] = _body(size - BODY, seed)
    ehdr = (b"\x7fELF\x02\x01\x01" + bytes(9)
            + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, START32, 64, 0, 0, 64, 56, 1, 64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, 0x4020_0000, BASE, size, size, 0x20_0000)
    img[0:64] = ehdr
    img[64:120] = phdr
    count = (size - BODY) // 4
    total = sum(struct.unpack_from(f"<{count}I", img, BODY)) & 0xFFFF_FFFF
    img[0x800:0x810] = struct.pack("<QII", START32, count, total)
    img[0x1000:0x1000 + len(code)] = code
    img[0x1800:0x1800 + len(strings)] = strings
    return bytes(img)
