"""The PNG schemas osvkit.plot writes with: exact bytes, round trips, a whole picture."""

from __future__ import annotations

import zlib

import pytest
from construct import ChecksumError, GreedyRange

from osvkit.plot import Phase, TimelineRow, render_png
from osvkit.structs.png import PNG_SIGNATURE, PngChunk, PngIhdr

# a 1x1 8-bit RGB picture's IHDR chunk, written out: length 13, "IHDR", width 1, height 1,
# bit depth 8, colour type 2, compression 0, filter 0, interlace 0, CRC-32 of type + data
IHDR_1X1 = bytes.fromhex("0000000d" "49484452" "00000001" "00000001" "0802000000" "907753de")


def test_ihdr_chunk_exact_bytes_and_round_trip():
    data = PngIhdr.build(dict(width=1, height=1, bit_depth=8, color_type=2, interlace=0))
    assert data == IHDR_1X1[8:21]
    chunk = PngChunk.build(dict(type=b"IHDR", data=data))
    assert chunk == IHDR_1X1
    parsed = PngChunk.parse(chunk)
    assert (parsed.length, parsed.type, parsed.crc) == (13, b"IHDR", 0x907753DE)
    assert PngChunk.build(parsed) == chunk
    ihdr = PngIhdr.parse(parsed.data)
    assert (ihdr.width, ihdr.height, ihdr.bit_depth, ihdr.color_type) == (1, 1, 8, 2)
    assert PngChunk.build(dict(type=b"IEND", data=b"")) == bytes.fromhex("0000000049454e44ae426082")


def test_a_damaged_chunk_fails_its_crc():
    bad = bytearray(IHDR_1X1)
    bad[12] ^= 1
    with pytest.raises(ChecksumError):
        PngChunk.parse(bytes(bad))


def test_render_png_reads_back_pixel_exact():
    rows = [TimelineRow("a", [Phase("boot", 0.0, 12.5), Phase("kernel", 12.5, 40.0)]),
            TimelineRow("b", [Phase("boot", 0.0, 20.0)])]
    png = render_png(rows)
    assert png.startswith(PNG_SIGNATURE)
    chunks = GreedyRange(PngChunk).parse(png[len(PNG_SIGNATURE):])
    assert [c.type for c in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    ihdr = PngIhdr.parse(chunks[0].data)
    raw = zlib.decompress(chunks[1].data)
    stride = 1 + 3 * ihdr.width
    assert len(raw) == ihdr.height * stride
    assert all(raw[y * stride] == 0 for y in range(ihdr.height))   # filter type 0 per row
    assert png == render_png(rows)                                  # deterministic
