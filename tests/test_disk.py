"""Raw and qcow2 random access, checked against real qemu-img output (qemu-img convert
-O raw is the reference reader; qemu-img check judges our writes)."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from osvkit.errors import FormatError, MissingInputError, OsvkitError
from osvkit.disk import open_disk

SIZE = 4 << 20


def make_raw(path: Path, size: int = SIZE) -> bytes:
    """A deterministic image: boot sector + command line, data islands, zero gaps."""
    rnd = random.Random(7)
    data = bytearray(size)
    data[0:446] = rnd.randbytes(446)
    data[510:512] = b"\x55\xaa"
    line = b"--rootfs=rofs /hello\0"
    data[512:512 + len(line)] = line
    for start in range(0x10000, size, 0x31000):       # islands straddling cluster edges
        data[start:start + 9000] = rnd.randbytes(9000)
    data[size - 100:] = rnd.randbytes(100)
    path.write_bytes(data)
    return bytes(data)


def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True)


def to_raw(qemu_img, image: Path, tmp_path: Path) -> bytes:
    out = tmp_path / (image.name + ".ref.raw")
    run(qemu_img, "convert", "-O", "raw", str(image), str(out))
    return out.read_bytes()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def raw(tmp_path):
    p = tmp_path / "disk.raw"
    return p, make_raw(p)


# --- raw ---------------------------------------------------------------------------------
def test_raw_read_write(raw):
    path, data = raw
    with open_disk(path) as d:
        assert (d.format, d.size) == ("raw", SIZE)
        assert d.read(510, 2) == b"\x55\xaa"
        assert d.read(512, 20) == b"--rootfs=rofs /hello"
        with pytest.raises(OsvkitError, match="read-only"):
            d.write(0, b"x")
    with open_disk(path, writable=True) as d:
        d.write(SIZE - 3, b"abc")
    assert path.read_bytes() == data[:-3] + b"abc"


def test_raw_past_end(raw):
    path, _ = raw
    with open_disk(path) as d:
        with pytest.raises(FormatError) as e:
            d.read(SIZE - 1, 2)
    assert str(e.value) == (f"{path}: access to 2 bytes at 0x3fffff is past the end of the "
                            f"4194304-byte disk, expected a range inside the disk")


def test_missing_and_foreign(tmp_path):
    with pytest.raises(MissingInputError):
        open_disk(tmp_path / "nope.img")
    vmdk = tmp_path / "x.vmdk"
    vmdk.write_bytes(b"KDMV" + bytes(508))
    with pytest.raises(FormatError, match="vmdk image, expected a raw or qcow2 image"):
        open_disk(vmdk)


# --- qcow2 reads against qemu-img -----------------------------------------------------------
@pytest.mark.parametrize("options", [
    [],                                                  # v3, 64 KiB clusters
    ["-o", "compat=0.10,cluster_size=4096"],             # v2, 4 KiB
    ["-o", "cluster_size=512"],                          # smallest clusters, 2-level spans
    ["-c"],                                              # compressed (deflate)
    ["-c", "-o", "compat=0.10,cluster_size=2M"],         # v2 compressed, largest clusters
])
def test_qcow2_read_matches_qemu(qemu_img, raw, tmp_path, options):
    path, data = raw
    q = tmp_path / "disk.qcow2"
    run(qemu_img, "convert", "-O", "qcow2", *options, str(path), str(q))
    ref = to_raw(qemu_img, q, tmp_path)
    assert ref == data
    with open_disk(q) as d:
        assert (d.format, d.size) == ("qcow2", SIZE)
        assert d.read(0, SIZE) == ref
        # unaligned reads across cluster boundaries
        for off, n in ((0x10000 - 3, 10), (511, 600), (0x31000 * 3 - 7, 20000), (SIZE - 1, 1)):
            assert d.read(off, n) == ref[off:off + n]


def test_qcow2_header_fields_from_qemu_img(qemu_img, raw, tmp_path):
    path, _ = raw
    v3, v2 = tmp_path / "v3.qcow2", tmp_path / "v2.qcow2"
    run(qemu_img, "convert", "-O", "qcow2", str(path), str(v3))
    run(qemu_img, "convert", "-O", "qcow2", "-o", "compat=0.10,cluster_size=4096", str(path),
        str(v2))
    # values read with xxd from QEMU 7.2's output (qcow2.txt header layout)
    with open_disk(v3) as d:
        h = d.header
        assert (d.version, h.cluster_bits, h.size, h.l1_size) == (3, 16, SIZE, 1)
        assert (h.l1_table_offset, h.refcount_table_offset) == (0x30000, 0x10000)
        assert d.cluster_size == 65536 and d.incompatible == 0
    with open_disk(v2) as d:
        h = d.header
        assert (d.version, h.cluster_bits, h.l1_size, h.l1_table_offset) == (2, 12, 2, 0x3000)
    assert v3.read_bytes()[0x64:0x68] == b"\x00\x00\x00\x70"   # header_length 112


def test_qcow2_backing_chain(qemu_img, raw, tmp_path):
    path, data = raw
    base = tmp_path / "base.qcow2"
    run(qemu_img, "convert", "-O", "qcow2", "-o", "cluster_size=4096", str(path), str(base))
    top = tmp_path / "top.qcow2"
    run(qemu_img, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(top))
    run("qemu-io", "-c", "write -P 0x5a 0x20000 0x1000", str(top))
    ref = to_raw(qemu_img, top, tmp_path)
    assert ref[0x20000:0x21000] == b"\x5a" * 0x1000 and ref[:0x20000] == data[:0x20000]
    with open_disk(top) as d:
        assert d.backing_file == "base.qcow2" and d.backing.format == "qcow2"
        assert d.read(0, SIZE) == ref
        # raw backing (as OSv's scripts never do, but users may)
    top2 = tmp_path / "top2.qcow2"
    run(qemu_img, "create", "-q", "-f", "qcow2", "-b", str(path), "-F", "raw", str(top2))
    with open_disk(top2) as d:
        assert d.backing.format == "raw" and d.read(0, SIZE) == data
    path.rename(tmp_path / "gone.raw")
    with pytest.raises(MissingInputError, match="backing file"):
        open_disk(top2)


# --- qcow2 writes ---------------------------------------------------------------------------
@pytest.fixture
def qcow(qemu_img, raw, tmp_path):
    path, data = raw
    q = tmp_path / "w.qcow2"
    run(qemu_img, "convert", "-O", "qcow2", "-o", "cluster_size=4096", str(path), str(q))
    return q, data


def test_qcow2_write_allocated_clusters(qemu_img, qcow, tmp_path):
    q, data = qcow
    patch = bytes(range(256)) * 20                    # 5120 bytes: spans two clusters
    with open_disk(q, writable=True) as d:
        d.write(0x10000 + 4000, patch)
    expected = bytearray(data)
    expected[0x10000 + 4000:0x10000 + 4000 + len(patch)] = patch
    assert to_raw(qemu_img, q, tmp_path) == bytes(expected)
    run(qemu_img, "check", str(q))                    # metadata untouched: no leaks/errors


def test_qcow2_write_unallocated_refused_file_unchanged(qcow):
    q, _ = qcow
    before = sha(q)
    with open_disk(q, writable=True) as d:
        with pytest.raises(FormatError) as e:
            # cluster 0x12000 holds the end of a data island (allocated); 0x13000 is in a
            # zero gap that qemu-img convert left unallocated: nothing may be written
            d.write(0x12FF0, b"x" * 0x20)
    assert "cluster at guest offset 0x13000 is not allocated" in str(e.value)
    assert "qemu-img convert -O raw" in str(e.value)
    assert sha(q) == before


def test_qcow2_write_compressed_refused(qemu_img, raw, tmp_path):
    path, _ = raw
    q = tmp_path / "c.qcow2"
    run(qemu_img, "convert", "-c", "-O", "qcow2", str(path), str(q))
    before = sha(q)
    with open_disk(q, writable=True) as d:
        with pytest.raises(FormatError, match="is compressed"):
            d.write(512, b"x")
    assert sha(q) == before


def test_qcow2_write_shared_cluster_refused(qemu_img, qcow):
    q, _ = qcow
    run(qemu_img, "snapshot", "-c", "snap1", str(q))
    before = sha(q)
    with open_disk(q, writable=True) as d:
        with pytest.raises(FormatError, match="is shared"):
            d.write(512, b"x")
    assert sha(q) == before


def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_qcow2_zero_flag_cluster(qcow):
    q, data = qcow
    with open_disk(q) as d:
        l2 = d._l1[0] & 0x00FF_FFFF_FFFF_FE00
        entry = int.from_bytes(q.read_bytes()[l2:l2 + 8], "big")
    _patch(q, l2, (entry | 1).to_bytes(8, "big"))    # v3 "all zeros" flag on cluster 0
    with open_disk(q, writable=True) as d:
        assert d.read(0, 4096) == bytes(4096)
        assert d.read(4096, 16) == data[4096:4112]
        with pytest.raises(FormatError, match="all-zero cluster"):
            d.write(0, b"x")


@pytest.mark.parametrize("bits, writable, words", [
    (1 << 5, False, "unknown qcow2 incompatible features: bit 5"),
    (1 << 2, False, "external data file"),
    (1 << 4, False, "extended L2 entries"),
    (1 << 1, True, "marked corrupt"),
])
def test_qcow2_incompatible_features(qcow, bits, writable, words):
    q, _ = qcow
    _patch(q, 0x48, bits.to_bytes(8, "big"))
    with pytest.raises(FormatError, match=words):
        open_disk(q, writable=writable)


def test_qcow2_corrupt_still_readable(qcow):
    q, data = qcow
    _patch(q, 0x48, (2).to_bytes(8, "big"))
    with open_disk(q) as d:
        assert d.read(0, 4096) == data[:4096]


@pytest.mark.parametrize("offset, value, words", [
    (0x20, (1).to_bytes(4, "big"), "encrypted qcow2 image"),
    (0x04, (4).to_bytes(4, "big"), "qcow2 version 4, expected version 2 or 3"),
    (0x14, (8).to_bytes(4, "big"), "cluster_bits 8"),
    (0x24, (0).to_bytes(4, "big"), "l1_size 0 too small"),
    # an L1 offset past what lseek accepts was an OSError traceback (EINVAL)
    (0x28, (1 << 50).to_bytes(8, "big"),
     # (EINVAL where the filesystem's size limit is below 2**50, else a short read)
     r"L1 table at 0x4000000000000 (cannot be read \(Invalid argument\), expected an offset "
     r"inside the file|needs)"),
])
def test_qcow2_bad_headers(qcow, offset, value, words):
    q, _ = qcow
    _patch(q, offset, value)
    with pytest.raises(FormatError, match=words):
        open_disk(q)


def test_qcow2_truncated(qcow, tmp_path):
    q, _ = qcow
    t = tmp_path / "t.qcow2"
    t.write_bytes(q.read_bytes()[:60])
    with pytest.raises(FormatError, match="truncated qcow2 header"):
        open_disk(t)
    shutil.copy(q, t)
    with open(t, "r+b") as f:
        f.truncate(0x2000)                            # L1 table (0x3000) is gone
    with pytest.raises(FormatError, match="truncated: L1 table"):
        open_disk(t)


def test_qcow2_preallocation_and_qemu_io_zero_clusters(qemu_img, tmp_path):
    """preallocation=metadata (data clusters past EOF), qemu-io write -z (v3 zero flag,
    with and without unmap), lazy refcounts: reads match qemu-img, writes go where allowed."""
    q = tmp_path / "pm.qcow2"
    run(qemu_img, "create", "-q", "-f", "qcow2", "-o",
        "preallocation=metadata,lazy_refcounts=on,cluster_size=65536", str(q), "8M")
    run("qemu-io", "-c", "write -P 0x11 0x1000 0x3000", "-c", "write -z 0x20000 0x10000",
        "-c", "write -z -u 0x40000 0x10000", str(q))
    ref = to_raw(qemu_img, q, tmp_path)
    assert ref[0x1000:0x4000] == b"\x11" * 0x3000 and ref[0x20000:0x50000] == bytes(0x30000)
    with open_disk(q, writable=True) as d:
        assert d.read(0, d.size) == ref
        assert [d._cluster(i).kind for i in range(6)] == \
            ["data", "data", "zero", "data", "zero", "data"]
        d.write(0x20000 - 2, b"ab")                   # preallocated cluster 1: allowed
        with pytest.raises(FormatError, match="0x20000 is an all-zero cluster"):
            d.write(0x20000, b"x")
    ref = to_raw(qemu_img, q, tmp_path)
    assert ref[0x20000 - 2:0x20000] == b"ab"
    run(qemu_img, "check", str(q))
