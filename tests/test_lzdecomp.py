"""The 32-bit FastLZ decompressor (osvkit.boot.lzdecomp), run under the unicorn CPU emulator.

Cross-checks three decoders: pyfastlz (via lzloader.compress), osvkit's Python decoder and the
assembly, on hand-written streams, pyfastlz output of both levels, raw segments that overlap
their output, and a 40 MiB kernel.
"""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit import layout
from osvkit.asm import disassemble
from osvkit.boot import lzdecomp
from osvkit.image import lzloader

from conftest import require_module  # noqa: E402

unicorn = require_module("unicorn")
from unicorn.x86_const import UC_X86_REG_ESP  # noqa: E402

from test_lzloader import ALL_STREAMS, _mixed  # noqa: E402

MiB = 1 << 20
RETURN_ADDR = 0x7000


def run_payload(payload: bytes, out_size: int, *, mem: int | None = None) -> bytes:
    """Load ``payload`` at 0x100000, call it in 32-bit flat mode, return the output at 2 MiB."""
    top = max(layout.LZ_BLOB_ADDR + len(payload), layout.KERNEL_BASE_ADDR + out_size)
    mem = mem or ((top + 2 * MiB) // MiB + 1) * MiB
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(0, mem)
    uc.mem_write(layout.LZ_BLOB_ADDR, payload)
    uc.mem_write(RETURN_ADDR, b"\xf4")
    uc.mem_write(0x7BFC, struct.pack("<I", RETURN_ADDR))
    uc.reg_write(UC_X86_REG_ESP, 0x7BFC)
    uc.emu_start(layout.LZ_BLOB_ADDR, RETURN_ADDR)
    assert uc.reg_read(UC_X86_REG_ESP) == 0x7C00  # returned with a balanced stack
    return bytes(uc.mem_read(layout.KERNEL_BASE_ADDR, out_size))


def single_segment_blob(stream: bytes, usize: int) -> bytes:
    """An lzloader blob holding one compressed segment (``stream`` decodes to usize bytes)."""
    info_offset = 4 + len(stream)
    return struct.pack("<i", info_offset) + stream + struct.pack("<iii", 1, usize, len(stream))


def pad_until_compressed(stream: bytes, expected: bytes) -> tuple[bytes, bytes]:
    """Append runs of the last byte until the stream is shorter than its output (otherwise the
    format stores it raw).  Level 1: E0 FF 00 = L 7 + 255 extra -> 264 bytes at distance 1;
    level 2: E0 FE 00 = 7 + 254 extra -> 263 bytes (255 would continue the length)."""
    level2 = stream[0] >> 5 == 1
    token, length = (bytes([0xE0, 0xFE, 0x00]), 263) if level2 else (bytes([0xE0, 0xFF, 0x00]), 264)
    while len(stream) >= len(expected):
        stream += token
        expected += expected[-1:] * length
    return stream, expected


def test_payload_header_exact_bytes():
    payload = lzdecomp.build_payload(b"BLOB", 1234)
    code = lzdecomp.decompressor_code()
    assert payload[:0x20] == (
        b"\xEB\x1E\x00\x00"                  # jmp +0x1e, 2 zero bytes
        + b"osvkitLZ"                         # magic
        + struct.pack("<I", 1)                # version
        + struct.pack("<I", 0x40 * -(-(0x20 + len(code)) // 0x40))  # blob_offset
        + struct.pack("<I", 4)                # blob_size
        + struct.pack("<I", 1234)             # kernel_size
        + struct.pack("<I", len(code)))       # code_size
    hdr, blob = lzdecomp.parse_payload(payload)
    assert blob == b"BLOB" and hdr.blob_offset <= 0x3000  # the reverse-order safety bound


def test_code_is_32bit_without_sse_and_returns():
    code = lzdecomp.decompressor_code()
    insns = disassemble(code, bits=32, base=layout.LZ_BLOB_ADDR + 0x20)
    assert sum(len(b) for b in [code]) == len(code)
    mnemonics = {m for _, m, _ in insns}
    assert not any(m.startswith(("movdq", "movap", "movup", "pxor", "xmm")) for m in mnemonics)
    assert insns[0][1] == "pushal" and "popal" in mnemonics and "retl" in mnemonics
    # the copies are string instructions (the point of the design under TCG)
    assert {"rep movsb", "rep movsl", "rep stosl", "std", "cld"} <= mnemonics


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_asm_decodes_hand_written_streams(name):
    stream, expected = pad_until_compressed(*ALL_STREAMS[name])
    assert lzloader.fastlz_decompress(stream, len(expected)) == expected
    payload = lzdecomp.build_payload(single_segment_blob(stream, len(expected)), len(expected))
    assert run_payload(payload, len(expected)) == expected


@pytest.mark.parametrize("size", [1, 100, 65535, 65536, MiB, MiB + 7, 3 * MiB + 12345])
def test_asm_matches_python_and_pyfastlz(size):
    kernel = _mixed(size, size)
    blob = lzloader.compress(kernel)
    assert lzloader.decompress(blob) == kernel
    assert run_payload(lzdecomp.build_payload(blob, size), size) == kernel


def test_raw_segments_overlapping_their_output():
    # incompressible segments are stored raw; the blob (at 1 MiB + 0x40 + 4) overlaps each raw
    # segment's output by the header size, so they must be copied backwards, last first
    kernel = os.urandom(3 * MiB) + _mixed(200_000, 7) + os.urandom(5)
    blob = lzloader.compress(kernel)
    kinds = [s.compressed for s in lzloader.parse(blob).segments]
    assert kinds == [False, False, False, True]
    assert run_payload(lzdecomp.build_payload(blob, len(kernel)), len(kernel)) == kernel


def test_forty_mib_kernel():
    # 40 MiB: compressible and raw segments interleaved, exact multiple of 1 MiB (empty tail)
    rnd = random.Random(40)
    parts = []
    for i in range(40):
        parts.append(rnd.randbytes(MiB) if i % 3 == 0 else _mixed(MiB, i))
    kernel = b"".join(parts)
    blob = lzloader.compress(kernel)
    segs = lzloader.parse(blob).segments
    assert len(segs) == 41 and (segs[-1].usize, segs[-1].ssize) == (0, 0)
    assert {s.compressed for s in segs[:-1]} == {True, False}
    assert run_payload(lzdecomp.build_payload(blob, len(kernel)), len(kernel)) == kernel


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.integers(1, 300)),
                min_size=1, max_size=30))
def test_asm_matches_python_property(pieces):
    # repeated short pieces give matches of every length and distance (incl. 1-3 and overlaps)
    kernel = b"".join(p * n for p, n in pieces)[:200_000]
    blob = lzloader.compress(kernel)
    assert lzloader.decompress(blob) == kernel
    assert run_payload(lzdecomp.build_payload(blob, len(kernel)), len(kernel)) == kernel
