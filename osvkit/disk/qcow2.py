"""qcow2 images: random reads and in-place writes in pure Python (no qemu-nbd, no root).

qcow2 (versions 2 and 3) follows QEMU's ``docs/interop/qcow2.txt``:

* the header is big-endian; ``cluster_bits`` 9..21; the guest offset splits into an L1
  index, an L2 index and the offset in the cluster;
* an L1/L2 entry keeps the host offset in bits 9..55; bit 63 ("copied") says the cluster's
  refcount is exactly 1; an L2 entry's bit 62 marks a compressed cluster and, in version 3,
  bit 0 an all-zero cluster;
* a compressed cluster descriptor holds the host offset in bits ``0..x-1`` and the number of
  additional 512-byte sectors in bits ``x..61``, ``x = 62 - (cluster_bits - 8)``; the data is
  raw deflate (zlib ``wbits=-12``);
* unallocated clusters read as zeros, or from the backing file (opened read-only, raw or
  qcow2, within the limits :mod:`osvkit.disk.backing` sets).

Writes never change qcow2 metadata: they go only into clusters that are allocated,
uncompressed, not flagged all-zero and not shared (the "copied" bit set, i.e. refcount 1,
so snapshots are safe).  Anything else is refused before a byte is written, with an error
saying the image must be converted.  Refused outright: encryption, an external data file,
extended L2 entries (subclusters) and unknown incompatible-feature bits; images flagged
corrupt open read-only.  A header cut short anywhere is a one-line error.
"""

from __future__ import annotations

import os
import zlib
from typing import NamedTuple

from ..errors import FormatError
from ..structs.qcow2 import (EXT_BACKING_FORMAT, EXT_END, EXT_FEATURE_NAMES, INCOMPAT_CORRUPT,
                             INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, INCOMPAT_KNOWN, OFFSET_MASK,
                             OFLAG_COMPRESSED, OFLAG_COPIED, OFLAG_ZERO,
                             QCOW2_COMPRESSION_TYPE_OFFSET, QCOW2_MAGIC, QCOW2_V2_HEADER_SIZE,
                             QCOW2_V3_HEADER_SIZE, Qcow2CompressionType, Qcow2Extension,
                             Qcow2FeatureName, Qcow2Header, Qcow2HeaderV3, Qcow2TableEntry)
from . import backing as _backing
from .base import Disk, RawDisk
from .detect import detect_format
from .files import open_image_fd, pread_exact, pread_upto
from ..structs.base import ConstructError



class _Table:
    """An L1 or L2 table kept as its bytes; entries are decoded when used (a hostile header
    can ask for a 32 MiB L1 table: decoding it all up front would take seconds)."""

    def __init__(self, raw: bytes):
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw) // 8

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return Qcow2TableEntry.parse(self.raw[8 * index:8 * index + 8])


CONVERT_HINT = "convert it first (qemu-img convert -O raw, or -O qcow2 without -c)"


class _Cluster(NamedTuple):
    """Where one guest cluster lives."""
    kind: str          # "data" | "zero" | "unallocated" | "compressed"
    host: int = 0      # host offset of the cluster (data) or of the compressed bytes
    csize: int = 0     # compressed byte count
    copied: bool = False


MAX_L1_BYTES = 32 << 20
"""QEMU's bound on an L1 table (QCOW_MAX_L1_SIZE, 32 MiB): enough for 2**61-byte disks."""


class Qcow2Disk(Disk):
    """A qcow2 image (versions 2 and 3).  ``chain`` is for backing images: the (identity,
    path) of every image above this one."""

    format = "qcow2"

    def __init__(self, path, writable: bool = False, *, chain: tuple = (), **kw):
        super().__init__(path, writable, **kw)
        self.backing: Disk | None = None
        try:
            st = os.fstat(self._fd)
            self._chain = _backing.check_chain(self.path, (st.st_dev, st.st_ino), chain)
            self._open()
        except BaseException:
            self.close()
            raise

    def _header(self):
        """Parse the fixed header; every length is checked before construct sees bytes."""
        path = self.path
        head = pread_upto(self._fd, 0, QCOW2_COMPRESSION_TYPE_OFFSET + 1, path)
        if len(head) < QCOW2_V2_HEADER_SIZE:
            raise FormatError(f"truncated qcow2 header ({len(head)} bytes)", path=path,
                              expected=f"at least {QCOW2_V2_HEADER_SIZE} bytes")
        try:
            h = Qcow2Header.parse(head)
        except ConstructError:
            raise FormatError(f"bad qcow2 magic {head[:4]!r}", path=path,
                              expected=repr(QCOW2_MAGIC)) from None
        if h.version not in (2, 3):
            raise FormatError(f"qcow2 version {h.version}", path=path, expected="version 2 or 3")
        if not 9 <= h.cluster_bits <= 21:
            raise FormatError(f"qcow2 cluster_bits {h.cluster_bits}", path=path,
                              expected="9..21")
        v3 = None
        if h.version == 3:
            if len(head) < QCOW2_V3_HEADER_SIZE:
                raise FormatError(f"truncated qcow2 version 3 header ({len(head)} bytes)",
                                  path=path, expected=f"{QCOW2_V3_HEADER_SIZE} bytes")
            v3 = Qcow2HeaderV3.parse(head[QCOW2_V2_HEADER_SIZE:])
            if not QCOW2_V3_HEADER_SIZE <= v3.header_length <= (1 << h.cluster_bits):
                raise FormatError(f"qcow2 header_length {v3.header_length}", path=path,
                                  expected=f"{QCOW2_V3_HEADER_SIZE}..{1 << h.cluster_bits}")
            if v3.header_length > QCOW2_COMPRESSION_TYPE_OFFSET and len(head) <= \
                    QCOW2_COMPRESSION_TYPE_OFFSET:
                raise FormatError(f"truncated qcow2 header ({len(head)} of {v3.header_length} "
                                  "bytes)", path=path,
                                  expected=f"the whole {v3.header_length}-byte header")
        return h, v3, head

    def _open(self) -> None:
        path = self.path
        h, v3, head = self._header()
        self.header = h
        self.version = h.version
        if h.crypt_method != 0:
            raise FormatError(f"encrypted qcow2 image (crypt_method {h.crypt_method})",
                              path=path, expected="an unencrypted image")
        self.cluster_bits = h.cluster_bits
        self.cluster_size = 1 << h.cluster_bits
        self.size = h.size
        self.incompatible = 0
        self.compression_type = 0
        header_length = QCOW2_V2_HEADER_SIZE
        if v3 is not None:
            header_length = v3.header_length
            self.incompatible = v3.incompatible_features
            if header_length > QCOW2_COMPRESSION_TYPE_OFFSET:
                self.compression_type = Qcow2CompressionType.parse(
                    head[QCOW2_COMPRESSION_TYPE_OFFSET:][:1])
        self._feature_names = {}
        self.backing_format = None
        self._read_extensions(header_length)
        self._check_features()
        self._read_l1(h)
        self._l2_cache: dict[int, _Table] = {}
        self._zcache: tuple[int, bytes] | None = None
        self.backing_file = None
        if h.backing_file_offset:
            if h.backing_file_size == 0 or h.backing_file_size > 1023:
                raise FormatError(f"qcow2 backing_file_size {h.backing_file_size}", path=path,
                                  expected="1..1023")
            name = pread_exact(self._fd, h.backing_file_offset, h.backing_file_size, path,
                               "backing file name")
            self.backing_file = name.decode("utf-8", "replace")
            self.backing = self._open_backing()

    def _read_l1(self, h) -> None:
        l2_bits = self.cluster_bits - 3
        self._l2_entries = 1 << l2_bits
        needed = -(-self.size // (self.cluster_size << l2_bits))
        if h.l1_size < needed:
            raise FormatError(f"qcow2 l1_size {h.l1_size} too small for {self.size} bytes",
                              path=self.path, expected=f"at least {needed}")
        if needed * 8 > MAX_L1_BYTES:
            raise FormatError(f"qcow2 virtual size {self.size} needs an L1 table of "
                              f"{needed * 8} bytes", path=self.path,
                              expected=f"at most {MAX_L1_BYTES} bytes (QEMU's limit)")
        if h.l1_table_offset % self.cluster_size:
            raise FormatError(f"qcow2 l1_table_offset {h.l1_table_offset:#x} not cluster aligned",
                              path=self.path)
        raw = pread_exact(self._fd, h.l1_table_offset, 8 * needed, self.path, "L1 table")
        self._l1 = _Table(raw)

    def _read_extensions(self, offset: int) -> None:
        """Header extensions, between the header and the end of the first cluster."""
        while offset + 8 <= self.cluster_size:
            raw = pread_upto(self._fd, offset, 8, self.path)
            if len(raw) < 8:
                break
            ext = Qcow2Extension.parse(raw)
            if ext.type == EXT_END:
                break
            if offset + 8 + ext.length > self.cluster_size:
                raise FormatError(f"qcow2 header extension {ext.type:#010x} of {ext.length} "
                                  f"bytes at {offset:#x} runs past the first cluster",
                                  path=self.path, expected="extensions inside the first cluster")
            data = pread_exact(self._fd, offset + 8, ext.length, self.path,
                               f"qcow2 header extension {ext.type:#010x}")
            if ext.type == EXT_BACKING_FORMAT:
                self.backing_format = data.decode("ascii", "replace")
            elif ext.type == EXT_FEATURE_NAMES:
                size = Qcow2FeatureName.sizeof()
                for i in range(0, len(data) - size + 1, size):
                    try:
                        entry = Qcow2FeatureName.parse(data[i:i + size])
                    except (ConstructError, UnicodeDecodeError):
                        continue     # a name that is not ASCII only names a feature
                    if entry.type == 0:
                        self._feature_names[entry.bit] = entry.name
            offset += 8 + ((ext.length + 7) & ~7)

    def _check_features(self) -> None:
        bits = self.incompatible
        unknown = bits & ~INCOMPAT_KNOWN
        if unknown:
            names = ", ".join(f"bit {b} ({self._feature_names.get(b, 'unnamed')})"
                              for b in range(64) if unknown >> b & 1)
            raise FormatError(f"unknown qcow2 incompatible features: {names}", path=self.path,
                              expected=f"only known features; {CONVERT_HINT}")
        if bits & INCOMPAT_DATA_FILE:
            raise FormatError("qcow2 image with an external data file is not supported",
                              path=self.path, expected=f"data inside the image; {CONVERT_HINT}")
        if bits & INCOMPAT_EXTL2:
            raise FormatError("qcow2 extended L2 entries (subclusters) are not supported",
                              path=self.path, expected=f"standard L2 entries; {CONVERT_HINT}")
        if bits & INCOMPAT_CORRUPT and self.writable:
            raise FormatError("qcow2 image is marked corrupt; refusing to write", path=self.path,
                              expected="an image repaired with qemu-img check -r all")

    def _open_backing(self) -> Disk:
        """Open the backing file read-only, within :mod:`osvkit.disk.backing`'s limits."""
        name = self.backing_file
        full = _backing.backing_path(self.path, name)
        fmt = self.backing_format
        if fmt not in (None, "raw", "qcow2"):
            raise FormatError(f"backing file format {fmt!r} is not supported", path=self.path,
                              expected="a raw or qcow2 backing file")
        _backing.check_backing_place(self.path, name, full)
        label = f"{self.path}: backing file {name!r}"
        opts = dict(allow_block=False, label=label, what=_backing.BACKING_EXPECTED)
        if fmt is None:
            fmt = detect_format(full, **opts)
        if fmt == "qcow2":
            return Qcow2Disk(full, chain=self._chain, **opts)
        disk = RawDisk(full, **opts)
        try:   # a raw base counts in the chain too, and may not be an image above it
            st = os.fstat(disk.fileno())
            _backing.check_chain(full, (st.st_dev, st.st_ino), self._chain)
        except BaseException:
            disk.close()
            raise
        return disk

    # --- cluster lookup --------------------------------------------------------------
    def _l2_table(self, l2_offset: int) -> _Table:
        table = self._l2_cache.get(l2_offset)
        if table is None:
            if l2_offset % self.cluster_size:
                raise FormatError(f"qcow2 L2 table offset {l2_offset:#x} not cluster aligned",
                                  path=self.path)
            raw = pread_exact(self._fd, l2_offset, self.cluster_size, self.path, "L2 table")
            table = _Table(raw)
            if len(self._l2_cache) > 256:
                self._l2_cache.clear()
            self._l2_cache[l2_offset] = table
        return table

    def _cluster(self, index: int) -> _Cluster:
        l1_index, l2_index = divmod(index, self._l2_entries)
        l2_offset = self._l1[l1_index] & OFFSET_MASK
        if l2_offset == 0:
            return _Cluster("unallocated")
        entry = self._l2_table(l2_offset)[l2_index]
        if entry & OFLAG_COMPRESSED:
            x = 62 - (self.cluster_bits - 8)
            host = entry & ((1 << x) - 1)
            sectors = ((entry >> x) & ((1 << (self.cluster_bits - 8)) - 1)) + 1
            return _Cluster("compressed", host, sectors * 512 - (host & 511))
        host = entry & OFFSET_MASK
        if entry & OFLAG_ZERO and self.version >= 3:
            return _Cluster("zero", host)
        if host == 0:
            return _Cluster("unallocated")
        if host % self.cluster_size:
            raise FormatError(f"qcow2 data cluster offset {host:#x} not cluster aligned",
                              path=self.path)
        return _Cluster("data", host, copied=bool(entry & OFLAG_COPIED))

    def _segments(self, offset: int, n: int):
        """(guest offset, length, cluster index, offset in cluster) per touched cluster."""
        end = offset + n
        while offset < end:
            index, within = divmod(offset, self.cluster_size)
            length = min(self.cluster_size - within, end - offset)
            yield offset, length, index, within
            offset += length

    # --- read / write ----------------------------------------------------------------
    def _read(self, offset: int, n: int) -> bytes:
        out = bytearray()
        for guest, length, index, within in self._segments(offset, n):
            c = self._cluster(index)
            if c.kind == "data":
                data = os.pread(self._fd, length, c.host + within)
                out += data + bytes(length - len(data))   # past EOF reads as zeros
            elif c.kind == "compressed":
                out += self._decompress(index, c)[within:within + length]
            elif c.kind == "unallocated" and self.backing is not None:
                out += self._read_backing(guest, length)
            else:
                out += bytes(length)
        return bytes(out)

    def _read_backing(self, offset: int, n: int) -> bytes:
        avail = max(0, min(n, self.backing.size - offset))
        data = self.backing.read(offset, avail) if avail else b""
        return data + bytes(n - avail)

    def _decompress(self, index: int, c: _Cluster) -> bytes:
        if self._zcache and self._zcache[0] == index:
            return self._zcache[1]
        if self.compression_type != 0:
            raise FormatError(f"compressed cluster uses compression type "
                              f"{self.compression_type} (zstd)", path=self.path,
                              expected=f"zlib compression; {CONVERT_HINT}")
        raw = os.pread(self._fd, c.csize, c.host)
        try:
            data = zlib.decompressobj(-12).decompress(raw, self.cluster_size)
        except zlib.error as exc:
            raise FormatError(f"compressed cluster {index} at {c.host:#x} does not inflate: "
                              f"{exc}", path=self.path) from None
        if len(data) != self.cluster_size:
            raise FormatError(f"compressed cluster {index} inflates to {len(data)} bytes",
                              path=self.path, expected=f"{self.cluster_size} bytes")
        self._zcache = (index, data)
        return data

    def _write(self, offset: int, data: bytes) -> None:
        plan = []
        for guest, length, index, within in self._segments(offset, len(data)):
            c = self._cluster(index)
            where = f"the cluster at guest offset {index * self.cluster_size:#x}"
            if c.kind == "compressed":
                raise FormatError(f"{where} is compressed; writing would need reallocation",
                                  path=self.path, expected=f"an uncompressed image; {CONVERT_HINT}")
            if c.kind != "data":
                state = "an all-zero cluster" if c.kind == "zero" else "not allocated"
                raise FormatError(f"{where} is {state} in the qcow2 image; writing would need "
                                  "allocation",
                                  path=self.path, expected=f"an allocated cluster; {CONVERT_HINT}")
            if not c.copied:
                raise FormatError(f"{where} is shared (refcount > 1, e.g. with a snapshot)",
                                  path=self.path, expected=f"an unshared cluster; {CONVERT_HINT}")
            plan.append((c.host + within, data[guest - offset:guest - offset + length]))
        # merge host-contiguous pieces so a range inside one cluster run is one write
        merged: list[list] = []
        for host, piece in plan:
            if merged and merged[-1][0] + len(merged[-1][1]) == host:
                merged[-1][1] += piece
            else:
                merged.append([host, bytearray(piece)])
        for host, piece in merged:
            self._pwrite(host, bytes(piece))
        self._zcache = None

    def close(self) -> None:
        if getattr(self, "backing", None) is not None:
            self.backing.close()
            self.backing = None
        super().close()

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update({"version": self.version, "cluster_size": self.cluster_size,
                  "backing_file": self.backing_file})
        return d
