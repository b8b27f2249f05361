"""OSv's lzloader segment format: compress a kernel, parse a blob, decompress it in Python.

The format (OSv ``fastlz/lz.cc``), all integers little-endian int32::

    0              info_offset        file offset of the segment table
    4              payloads           segment 0 .. n-1, each FastLZ-compressed or raw
    info_offset    n                  segment count
    +4             n x (usize, ssize) uncompressed size, stored size

* Segments are ``SEGMENT_SIZE`` (1 MiB) of the kernel each; ``n = len // 1 MiB + 1``, so a
  kernel whose size is an exact multiple of 1 MiB ends with an empty (0, 0) segment.
* A segment is stored compressed only when ``clen < usize`` and
  ``clen <= MAX_COMPRESSED_SEGMENT_SIZE``; otherwise it is stored raw (``ssize == usize``).
  The bound keeps every compressed segment below its output when the blob is loaded
  ``LZ_BLOB_ADDR`` (1 MiB) below the kernel and decompressed last segment first (see
  :mod:`osvkit.boot.lzdecomp`).

Compression uses the ``fastlz`` module (pyfastlz: level 1 below 64 KiB, level 2 above, like
OSv's FastLZ 0.1.0; its output has a 4-byte length prefix that is stripped).  Decompression
here is an independent pure-Python FastLZ decoder (levels 1 and 2), used by ``inspect`` and to
cross-check the assembly decoder and pyfastlz.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatError
from ..layout import MiB
from ..progress import progress
from ..structs import base as schema
from ..structs.lzloader import (LZ_ENTRY_SIZE, LZ_HEADER_SIZE, LzInfoOffset, LzSegmentCount, LzSegmentTable,
                                PyFastlzPrefix, lz_table_size)

SEGMENT_SIZE = 1 * MiB
"""Uncompressed size of every segment but the last (fastlz.h SEGMENT_SIZE)."""
MAX_COMPRESSED_SEGMENT_SIZE = SEGMENT_SIZE - 4 - 0x3000
"""1,036,284: a compressed segment larger than this is stored raw (fastlz.h)."""
MAX_BLOB_HEADROOM = 0x3000
"""How far past LZ_BLOB_ADDR the blob may start for the reverse-order decompression to be
safe (fastlz.h's design assumption: the blob starts at most 0x3000 into lzloader.elf)."""
MAX_DISTANCE = 8191
"""FastLZ's near-match distance limit; level 2's far escape adds it."""


@dataclass(frozen=True)
class LzSegment:
    index: int
    offset: int
    """Byte offset of the stored payload in the blob."""
    usize: int
    ssize: int

    @property
    def compressed(self) -> bool:
        return self.ssize < self.usize

    def to_dict(self) -> dict:
        return {"index": self.index, "offset": self.offset, "usize": self.usize,
                "ssize": self.ssize, "compressed": self.compressed}


@dataclass(frozen=True)
class LzBlob:
    """A parsed lzloader blob (the bytes from ``info_offset`` on)."""

    info_offset: int
    segments: tuple[LzSegment, ...]
    size: int
    """Bytes the blob occupies: the table's end."""

    @property
    def uncompressed_size(self) -> int:
        return sum(s.usize for s in self.segments)

    @property
    def stored_size(self) -> int:
        return sum(s.ssize for s in self.segments)

    @property
    def ratio(self) -> float:
        """Blob size / uncompressed size (smaller is better)."""
        return self.size / self.uncompressed_size if self.uncompressed_size else 1.0

    def to_dict(self) -> dict:
        return {"info_offset": self.info_offset, "size": self.size,
                "uncompressed_size": self.uncompressed_size, "ratio": round(self.ratio, 4),
                "segments": [s.to_dict() for s in self.segments]}


# ------------------------------------------------------------------------------------------
# compression
# ------------------------------------------------------------------------------------------
def fastlz_compress(data: bytes) -> bytes:
    """pyfastlz without its 4-byte length prefix (level chosen by size, like FastLZ 0.1.0)."""
    import fastlz

    out = fastlz.compress(bytes(data))
    if schema.parse(PyFastlzPrefix, out, what="pyfastlz output") != len(data):  # pragma: no cover
        raise FormatError("pyfastlz returned an unexpected length prefix")
    return out[PyFastlzPrefix.sizeof():]


def compress(kernel: bytes) -> bytes:
    """Return ``kernel`` in OSv's lzloader segment format."""
    payloads: list[bytes] = []
    table: list[tuple[int, int]] = []
    nseg = len(kernel) // SEGMENT_SIZE + 1
    with progress(len(kernel), "compressing kernel") as bar:
        for i in range(nseg):
            chunk = kernel[i * SEGMENT_SIZE:(i + 1) * SEGMENT_SIZE]
            stored = chunk
            if chunk:
                packed = fastlz_compress(chunk)
                if len(packed) < len(chunk) and len(packed) <= MAX_COMPRESSED_SEGMENT_SIZE:
                    stored = packed
            payloads.append(stored)
            table.append((len(chunk), len(stored)))
            bar.update(len(chunk))
    info_offset = LZ_HEADER_SIZE + sum(len(p) for p in payloads)
    out = bytearray(schema.build(LzInfoOffset, info_offset, what="lz info_offset"))
    for p in payloads:
        out += p
    out += schema.build(LzSegmentTable, {"segments": [{"usize": u, "ssize": s} for u, s in table]},
                        what="lz segment table")
    return bytes(out)


# ------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------
def parse(blob: bytes, *, path: str | None = None) -> LzBlob:
    """Parse and check the segment table of ``blob`` (which may have trailing bytes)."""
    minimum = LZ_HEADER_SIZE + lz_table_size(0)
    if len(blob) < minimum:
        raise FormatError(f"lz blob of {len(blob)} bytes is truncated", path=path,
                          expected=f"at least {minimum} bytes (info_offset and segment count)")
    info_offset = schema.parse(LzInfoOffset, blob, what="lz blob", path=path)
    if info_offset < LZ_HEADER_SIZE or info_offset + lz_table_size(0) > len(blob):
        raise FormatError(f"lz info_offset {info_offset} is outside the blob ({len(blob)} bytes)",
                          path=path, expected="a segment table inside the blob")
    n = schema.parse(LzSegmentCount, blob, what="lz segment table", path=path, offset=info_offset)
    end = info_offset + lz_table_size(n)
    if n < 1 or end > len(blob):
        room = (len(blob) - info_offset - lz_table_size(0)) // LZ_ENTRY_SIZE
        raise FormatError(f"lz segment count {n} does not fit the blob", path=path,
                          expected=f"1..{room} segments")
    # a view: bounding the table at ``end`` without copying the payloads before it
    table = schema.parse(LzSegmentTable, memoryview(blob)[:end], what="lz segment table",
                         path=path, offset=info_offset)
    segments = []
    pos = LZ_HEADER_SIZE
    for i, entry in enumerate(table.segments):
        usize, ssize = entry.usize, entry.ssize
        if not 0 <= usize <= SEGMENT_SIZE or not 0 <= ssize <= usize:
            raise FormatError(f"lz segment {i} has sizes ({usize}, {ssize})", path=path,
                              expected=f"0 <= stored <= uncompressed <= {SEGMENT_SIZE}")
        if i < n - 1 and usize != SEGMENT_SIZE:
            raise FormatError(f"lz segment {i} of {n} holds {usize} bytes", path=path,
                              expected=f"{SEGMENT_SIZE} in every segment but the last")
        segments.append(LzSegment(i, pos, usize, ssize))
        pos += ssize
    if pos != info_offset:
        raise FormatError(f"lz segments end at {pos}, the table is at {info_offset}", path=path,
                          expected="payloads that end where the table starts")
    return LzBlob(info_offset, tuple(segments), end)


def decompress(blob: bytes, *, path: str | None = None) -> bytes:
    """Restore the kernel from ``blob`` with the pure-Python FastLZ decoder."""
    info = parse(blob, path=path)
    out = bytearray()
    for seg in info.segments:
        data = blob[seg.offset:seg.offset + seg.ssize]
        if seg.compressed:
            try:
                chunk = fastlz_decompress(data, seg.usize)
            except FormatError as exc:
                raise FormatError(f"lz segment {seg.index}: {exc.what}", path=path,
                                  expected=exc.expected) from None
            out += chunk
        else:
            out += data
    return bytes(out)


# ------------------------------------------------------------------------------------------
# pure-Python FastLZ decoder (levels 1 and 2)
# ------------------------------------------------------------------------------------------
def fastlz_level(data: bytes) -> int:
    """The level stored in the top 3 bits of the first byte (1 or 2)."""
    return (data[0] >> 5) + 1 if data else 1


def fastlz_decompress(data: bytes, expected_size: int | None = None, *,
                      stats: dict | None = None) -> bytes:
    """Decode one FastLZ block (no length prefix).  Raises FormatError on bad input.

    ``stats``, when given, counts the token kinds seen (``literal``, ``match``,
    ``long_length``, ``far``, ``overlap``); tests use it to show a stream exercises a path."""
    def count(key):
        if stats is not None:
            stats[key] = stats.get(key, 0) + 1

    if not data:
        return b""
    level = fastlz_level(data)
    if level not in (1, 2):
        raise FormatError(f"FastLZ level {level}", expected="level 1 or 2")
    out = bytearray()
    n = len(data)
    ip = 1
    ctrl = data[0] & 31
    while True:
        if ctrl >= 32:
            length = (ctrl >> 5) - 1
            ofs = (ctrl & 31) << 8
            if length == 6:
                count("long_length")
                if level == 1:
                    if ip >= n:
                        raise FormatError("FastLZ match length runs past the input")
                    length += data[ip]
                    ip += 1
                else:
                    while True:
                        if ip >= n:
                            raise FormatError("FastLZ match length runs past the input")
                        code = data[ip]
                        ip += 1
                        length += code
                        if code != 255:
                            break
            if ip >= n:
                raise FormatError("FastLZ match distance runs past the input")
            code = data[ip]
            ip += 1
            length += 3
            distance = ofs + code + 1
            if level == 2 and code == 255 and ofs == 31 << 8:
                if ip + 2 > n:
                    raise FormatError("FastLZ far distance runs past the input")
                distance = (data[ip] << 8 | data[ip + 1]) + MAX_DISTANCE + 1
                ip += 2
                count("far")
            count("match")
            start = len(out) - distance
            if start < 0:
                raise FormatError(f"FastLZ match {distance} bytes back at output {len(out)}",
                                  expected="a distance inside the output")
            if distance >= length:
                out += out[start:start + length]
            else:  # overlapping: repeat the last `distance` bytes
                count("overlap")
                pattern = out[start:]
                reps, rest = divmod(length, distance)
                out += pattern * reps + pattern[:rest]
        else:
            run = ctrl + 1
            count("literal")
            if ip + run > n:
                raise FormatError("FastLZ literal run runs past the input")
            out += data[ip:ip + run]
            ip += run
        if ip >= n:
            break
        ctrl = data[ip]
        ip += 1
    if expected_size is not None and len(out) != expected_size:
        raise FormatError(f"FastLZ block decodes to {len(out)} bytes",
                          expected=f"{expected_size}")
    return bytes(out)
