"""The probe's payload: deterministic filler that compresses about like kernel code.

With ``size``, the probe's PT_LOAD is padded with function-shaped x86-64 code drawn from a
fixed pool of assembled instructions (varied registers and immediates), calls, short
branches and recently seen idioms, so that FastLZ compresses any 1 MiB of it about as well
as a real kernel's text (tests check 0.45-0.65).
"""

from __future__ import annotations

import functools
import random


from ..asm import assemble
from ..structs.base import s32le

_REGS64 = ["rax", "rcx", "rdx", "rbx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
           "r13", "r14", "r15"]
_REGS32 = ["eax", "ecx", "edx", "ebx", "esi", "edi", "r8d", "r9d", "r12d", "r13d"]
_TEMPLATES = [
    "movq %{a}, %{b}", "movq {d:#x}(%{a}), %{b}", "movq %{a}, {d:#x}(%{b})",
    "movl {d:#x}(%{a}), %{c}", "movl ${i:#x}, %{c}", "leaq {d:#x}(%{a}), %{b}",
    "addq ${s:#x}, %{a}", "subq ${s:#x}, %{a}", "cmpq ${s:#x}, %{a}", "testq %{a}, %{b}",
    "xorl %{c}, %{c}", "andl ${i:#x}, %{c}", "cmpl ${i:#x}, {d:#x}(%{a})", "pushq %{a}",
    "popq %{a}", "movzbl {d:#x}(%{a}), %{c}", "shlq ${sh:#x}, %{a}", "shrq ${sh:#x}, %{a}",
    "imulq %{a}, %{b}", "incl %{c}", "movq {d:#x}(%{a},%{b},8), %{b}", "orq %{a}, %{b}",
    "addl %{c}, %{c}", "ret", "movabsq ${q:#x}, %{a}", "movq ${s:#x}, {d:#x}(%{a})",
]
_POOL_SIZE = 1500
_PAYLOAD_BLOCK = 512 * 1024
_IDIOM_P = 0.15
_ROTATION = 0x1F3D0


@functools.lru_cache(maxsize=1)
def _instruction_pool() -> tuple[bytes, ...]:
    """A fixed pool of assembled x86-64 instructions with varied registers and immediates."""
    rng = random.Random(0x05F0)
    texts = []
    for _ in range(_POOL_SIZE):
        t = rng.choice(_TEMPLATES)
        texts.append(t.format(
            a=rng.choice(_REGS64), b=rng.choice(_REGS64), c=rng.choice(_REGS32),
            d=rng.choice([0, 8, 16, 24, 32, 0x40, 0x58, 0x80, 0x118, -8, -16, -0x38]),
            i=rng.choice([0, 1, 2, 0xff, 0x1000, rng.randrange(1 << 31)]),
            s=rng.choice([1, 8, 16, 0x20, 0x78]), sh=rng.choice([1, 3, 4, 12, 21]),
            q=rng.randrange(1 << 47)))
    return tuple(assemble(t, bits=64) for t in texts)


@functools.lru_cache(maxsize=1)
def _payload_block() -> bytes:
    """512 KiB of function-shaped code from the pool; deterministic."""
    pool = _instruction_pool()
    rng = random.Random(0x0C0DE)
    prologue = assemble("pushq %rbp\nmovq %rsp, %rbp\npushq %rbx\npushq %r12", bits=64)
    epilogue = assemble("popq %r12\npopq %rbx\npopq %rbp\nret", bits=64)
    out = bytearray()
    n = len(pool)
    while len(out) < _PAYLOAD_BLOCK:
        out += prologue
        for _ in range(rng.randrange(4, 40)):
            r = rng.random()
            if r < _IDIOM_P and len(out) > 4096:   # an idiom seen recently, copied
                start = len(out) - rng.randrange(64, 4096)
                out += out[start:start + rng.randrange(6, 28)]
            elif r < _IDIOM_P + 0.08:   # call rel32 to a "function"
                out += b"\xE8" + s32le.build(rng.randrange(-0x80000, 0x80000))
            elif r < _IDIOM_P + 0.14:  # short conditional branch
                out += bytes((0x70 + rng.randrange(16), rng.randrange(2, 0x60)))
            else:
                out += pool[int(n * rng.random() ** 2.2)]
        out += epilogue
        while len(out) % 16:
            out.append(0xCC)
    return bytes(out[:_PAYLOAD_BLOCK])


def payload(length: int) -> bytes:
    """``length`` bytes of code-like filler: rotations of one 512 KiB block, so any 1 MiB
    FastLZ segment compresses about as well as the block itself."""
    block = _payload_block()
    parts = []
    k = 0
    total = 0
    while total < length:
        rot = (k * _ROTATION) % len(block)
        part = block[rot:] + block[:rot]
        parts.append(part)
        total += len(part)
        k += 1
    return b"".join(parts)[:length]
