"""OSv's lzloader segment format and the pure-Python FastLZ decoder."""

from __future__ import annotations

import os
import random
import struct

import fastlz
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit.errors import FormatError
from osvkit.image import lzloader

MiB = 1 << 20

# Hand-written FastLZ streams: (stream, decoded output), written out from the format rules.
STREAMS = {
    # level 1: literal run "abc" (ctrl 2 = 3 bytes), then match L=1 -> len 3, distance 2+1
    "l1_literal_match": (bytes([0x02, 0x61, 0x62, 0x63, 0x20, 0x02]), b"abcabc"),
    # level 1: "a", then match L=2 (len 4) at distance 0+1: a run of the previous byte
    "l1_run": (bytes([0x00, 0x61, 0x40, 0x00]), b"aaaaa"),
    # level 1: L=7 takes one extra length byte (5): len 7+2+5 = 14
    "l1_long": (bytes([0x00, 0x61, 0xE0, 0x05, 0x00]), b"a" * 15),
    # level 1: distance 2 overlapping: "ab" then len 6 from 2 back
    "l1_overlap2": (bytes([0x01, 0x61, 0x62, 0x80, 0x01]), b"abababab"),
    # level 2 (bit 5 of byte 0): "a", then L=7 with extra bytes 255, 3: len 7+2+258 = 267
    "l2_long": (bytes([0x20, 0x61, 0xE0, 0xFF, 0x03, 0x00]), b"a" * 268),
    # level 2: literal "xyz" then L=7 extra 0: len 9, distance 3 -> overlapping dword-ish copy
    "l2_overlap3": (bytes([0x22, 0x78, 0x79, 0x7A, 0xE0, 0x00, 0x02]), b"xyz" * 4),
}


def _literals(data: bytes, first_level_bits: int = 0) -> bytes:
    """Encode ``data`` as literal runs of 32 (the first ctrl byte carries the level bits)."""
    out = bytearray()
    for i in range(0, len(data), 32):
        chunk = data[i:i + 32]
        ctrl = len(chunk) - 1
        if i == 0:
            ctrl |= first_level_bits
        out.append(ctrl)
        out += chunk
    return bytes(out)


PATTERN = bytes(range(256)) * 36  # 9216 bytes


def far_stream() -> tuple[bytes, bytes]:
    """Level 2 far match: ctrl 0x3F (L=1, ofs 31) + code 0xFF + BE u16 10 -> distance 8202,
    then a one-byte literal "!" (FastLZ's bound check wants bytes after a far match, and real
    streams always end with literals)."""
    stream = _literals(PATTERN, 0x20) + bytes([0x3F, 0xFF, 0x00, 0x0A, 0x00, 0x21])
    start = len(PATTERN) - 8202
    return stream, PATTERN + PATTERN[start:start + 3] + b"!"


def near_8192_stream() -> tuple[bytes, bytes]:
    """Level 1: the same bytes 3F FF are a plain match at distance 31*256+255+1 = 8192."""
    stream = _literals(PATTERN) + bytes([0x3F, 0xFF])
    start = len(PATTERN) - 8192
    return stream, PATTERN + PATTERN[start:start + 3]


ALL_STREAMS = dict(STREAMS, l2_far=far_stream(), l1_distance_8192=near_8192_stream())


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_python_decoder_on_hand_written_streams(name):
    stream, expected = ALL_STREAMS[name]
    assert lzloader.fastlz_decompress(stream, len(expected)) == expected


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_pyfastlz_agrees_on_hand_written_streams(name):
    stream, expected = ALL_STREAMS[name]
    assert fastlz.decompress(struct.pack("<I", len(expected)) + stream) == expected


def test_levels_by_size_like_osv():
    # FastLZ 0.1.0 (and pyfastlz): level 1 below 65,536 bytes, level 2 from there
    data = b"osvkit " * 10000
    assert lzloader.fastlz_level(lzloader.fastlz_compress(data[:65535])) == 1
    assert lzloader.fastlz_level(lzloader.fastlz_compress(data[:65536])) == 2


def _mixed(n: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        kind, m = rnd.randrange(4), rnd.randint(1, 6000)
        if kind == 0:
            out += rnd.randbytes(m)
        elif kind == 1:
            out += bytes(m)
        elif kind == 2:
            out += (rnd.randbytes(rnd.randint(1, 7)) * m)[:m]
        else:
            out += bytes(rnd.choice(b"mov %eax, %ebx\n") for _ in range(m))
    return bytes(out[:n])


def test_pyfastlz_streams_exercise_level2_far_and_long_paths():
    # far repeats (> 8191 back) and long runs in a level-2 block
    block = os.urandom(3000)
    data = block + os.urandom(20000) + block + bytes(70000)
    packed = lzloader.fastlz_compress(data)
    stats: dict = {}
    assert lzloader.fastlz_level(packed) == 2
    assert lzloader.fastlz_decompress(packed, len(data), stats=stats) == data
    assert stats.get("far", 0) >= 1 and stats.get("long_length", 0) >= 1


@pytest.mark.parametrize("size", [1, 31, 32, 33, 65535, 65536, 300_000])
def test_python_decoder_matches_pyfastlz(size):
    data = _mixed(size, size)
    packed = lzloader.fastlz_compress(data)
    assert lzloader.fastlz_decompress(packed, size) == data
    assert fastlz.decompress(struct.pack("<I", size) + packed) == data


def test_segment_table_exact_multiple_of_1mib_has_empty_tail():
    kernel = bytes(2 * MiB)
    blob = lzloader.compress(kernel)
    info = lzloader.parse(blob)
    assert [(s.usize, s.compressed) for s in info.segments] == [(MiB, True), (MiB, True), (0, False)]
    assert info.segments[-1].ssize == 0
    # header: info_offset, then n = 3 and the (usize, ssize) pairs at the end
    info_offset, = struct.unpack_from("<i", blob, 0)
    assert info_offset == 4 + info.segments[0].ssize + info.segments[1].ssize
    assert struct.unpack_from("<i", blob, info_offset)[0] == 3
    assert struct.unpack_from("<6i", blob, info_offset + 4)[4:] == (0, 0)
    assert len(blob) == info_offset + 4 + 3 * 8
    assert lzloader.decompress(blob) == kernel


def test_incompressible_segment_is_stored_raw():
    kernel = os.urandom(MiB + 100)
    blob = lzloader.compress(kernel)
    info = lzloader.parse(blob)
    assert [(s.usize, s.ssize) for s in info.segments] == [(MiB, MiB), (100, 100)]
    assert blob[4:4 + MiB] == kernel[:MiB]
    assert lzloader.decompress(blob) == kernel


def test_max_compressed_segment_size_value():
    # fastlz.h: 1 MiB - 4 - 0x3000
    assert lzloader.MAX_COMPRESSED_SEGMENT_SIZE == 1_036_284


def test_parse_rejects_bad_blobs():
    good = lzloader.compress(b"hello" * 100)
    with pytest.raises(FormatError, match="truncated"):
        lzloader.parse(good[:5])
    with pytest.raises(FormatError, match="info_offset"):
        lzloader.parse(struct.pack("<i", 10_000) + good[4:])
    bad_count = bytearray(good)
    info_offset, = struct.unpack_from("<i", good, 0)
    struct.pack_into("<i", bad_count, info_offset, 50)
    with pytest.raises(FormatError, match="segment count 50"):
        lzloader.parse(bytes(bad_count))
    bad_size = bytearray(good)
    struct.pack_into("<i", bad_size, info_offset + 8, 10 ** 6)
    with pytest.raises(FormatError, match="sizes"):
        lzloader.parse(bytes(bad_size), path="x.lz")


def test_decoder_rejects_garbage():
    with pytest.raises(FormatError, match="distance inside the output"):
        lzloader.fastlz_decompress(bytes([0x00, 0x61, 0x20, 0x05]))  # 6 back from 1 byte
    with pytest.raises(FormatError, match="literal run"):
        lzloader.fastlz_decompress(bytes([0x05, 0x61]))
    with pytest.raises(FormatError, match="level 3"):
        lzloader.fastlz_decompress(bytes([0x40, 0x61]))


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.integers(0, 3))
def test_roundtrip_property(data, reps):
    kernel = data * (reps + 1)
    blob = lzloader.compress(kernel)
    info = lzloader.parse(blob)
    assert info.uncompressed_size == len(kernel)
    assert lzloader.decompress(blob) == kernel
