"""The command line inside OSv images: get/set on raw and on qcow2
images made as OSv's scripts make them (qemu-img convert -O qcow2 of the raw image)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from osvkit.errors import CmdlineError, FormatError, OutputError
from osvkit.image.cmdline_io import get_cmdline, read_cmdline, set_cmdline

SIZE = 4 << 20
AREA = 32256            # 63 sectors from LBA 1, NUL included


def osv_like_image(path: Path, line: bytes = b"--rootfs=rofs /hello") -> bytes:
    """boot sector (55 AA, count32, 'VSO' signature), command line at 512, a kernel blob at
    LBA 128, MBR entry 1 (type 0x83) at 2 MiB -- OSv's usr.img layout."""
    rnd = random.Random(3)
    img = bytearray(SIZE)
    img[0:0x10] = rnd.randbytes(0x10)
    img[0x10:0x12] = (4).to_bytes(2, "little")                  # count32
    img[0x12:0x1B8] = rnd.randbytes(0x1B8 - 0x12)
    img[0x1B8:0x1BE] = b"VSO\0\0\0"
    entry = bytearray(16)
    entry[2] = 1                                                # nonzero sector field
    entry[4] = 0x83
    entry[8:12] = (4096).to_bytes(4, "little")                  # LBA 4096 = 2 MiB
    entry[12:16] = (2048).to_bytes(4, "little")
    img[0x1BE + 16:0x1BE + 32] = entry
    img[510:512] = b"\x55\xaa"
    img[512:512 + len(line) + 1] = line + b"\0"
    img[0x10000:0x10000 + 0x20000] = rnd.randbytes(0x20000)    # "lzloader.elf"
    img[2 << 20:(2 << 20) + 5000] = rnd.randbytes(5000)          # "rofs"
    path.write_bytes(img)
    return bytes(img)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def qemu_raw(qemu_img, image: Path) -> bytes:
    out = image.with_suffix(".check.raw")
    subprocess.run([qemu_img, "convert", "-O", "raw", str(image), str(out)], check=True)
    return out.read_bytes()


@pytest.fixture
def raw(tmp_path):
    p = tmp_path / "usr.raw"
    return p, osv_like_image(p)


@pytest.fixture
def qcow(qemu_img, raw, tmp_path):
    path, data = raw
    q = tmp_path / "usr.img"
    subprocess.run([qemu_img, "convert", "-O", "qcow2", str(path), str(q)], check=True)
    return q, data


def test_get_raw_and_qcow2(raw, qcow):
    assert get_cmdline(raw[0]) == "--rootfs=rofs /hello"
    assert get_cmdline(qcow[0]) == "--rootfs=rofs /hello"
    info = read_cmdline(qcow[0])
    assert (info.format, info.length, info.stale_bytes, info.unfit_targets) == \
        ("qcow2", 20, 0, [])
    assert info.to_dict()["split"]["options"] == ["--rootfs=rofs"]


def test_get_reports_imgedit_leftovers(tmp_path):
    # imgedit.py setargs writes the new line + NUL over the old one and clears nothing
    p = tmp_path / "old.img"
    osv_like_image(p, b"--rootfs=zfs /a/very/long/command")
    with open(p, "r+b") as f:
        f.seek(512)
        f.write(b"/x\0")
    info = read_cmdline(p)
    assert info.cmdline == "/x"
    assert info.stale_bytes == len(b"--rootfs=zfs /a/very/long/command") - 3


def test_set_raw_exact_bytes(raw):
    path, before = raw
    result = set_cmdline(path, "--nopci /hello world")
    after = path.read_bytes()
    new = b"--nopci /hello world"
    assert after[512:512 + AREA] == new + bytes(AREA - len(new))
    assert after[:512] == before[:512] and after[512 + AREA:] == before[512 + AREA:]
    assert result.old == "--rootfs=rofs /hello" and result.bytes_written == AREA
    assert result.cleared == 0      # same length (20 bytes): no old byte left after the NUL
    # a shorter line clears the old tail
    r2 = set_cmdline(path, "/x")
    assert r2.cleared == len(new) - len(b"/x") - 1
    assert path.read_bytes()[512:512 + AREA] == b"/x" + bytes(AREA - 2)


def test_set_qcow2_in_place(qemu_img, qcow):
    q, before = qcow
    result = set_cmdline(q, "--verbose --nopci /hello")
    assert result.format == "qcow2"
    ref = qemu_raw(qemu_img, q)
    new = b"--verbose --nopci /hello"
    assert ref[512:512 + AREA] == new + bytes(AREA - len(new))
    assert ref[:512] == before[:512] and ref[512 + AREA:] == before[512 + AREA:]
    subprocess.run([qemu_img, "check", str(q)], check=True, capture_output=True)
    assert get_cmdline(q) == "--verbose --nopci /hello"


def test_set_qcow2_unallocated_cluster_refused_unchanged(qemu_img, raw, tmp_path):
    path, _ = raw
    q = tmp_path / "small.qcow2"
    subprocess.run([qemu_img, "convert", "-O", "qcow2", "-o", "cluster_size=4096", str(path),
                    str(q)], check=True)
    before = sha(q)
    # 4000 bytes reach past 4096: cluster 0x1000 was all zeros and is not allocated
    with pytest.raises(FormatError) as e:
        set_cmdline(q, "a" * 4000, target="bios")
    assert "cluster at guest offset 0x1000 is not allocated" in str(e.value)
    assert sha(q) == before
    set_cmdline(q, "b" * 3000, target="bios")        # inside cluster 0: fine
    assert get_cmdline(q) == "b" * 3000


def test_set_compressed_refused_unchanged(qemu_img, raw, tmp_path):
    path, _ = raw
    q = tmp_path / "c.qcow2"
    subprocess.run([qemu_img, "convert", "-c", "-O", "qcow2", str(path), str(q)], check=True)
    before = sha(q)
    assert get_cmdline(q) == "--rootfs=rofs /hello"
    with pytest.raises(FormatError, match="compressed"):
        set_cmdline(q, "/x")
    assert sha(q) == before


@pytest.mark.parametrize("target, limit", [("osv", 1023), ("firecracker", 2047),
                                           ("bios", 32255)])
def test_set_target_limits(raw, target, limit):
    path, _ = raw
    set_cmdline(path, "a" * limit, target=target)
    assert get_cmdline(path) == "a" * limit
    before = sha(path)
    with pytest.raises(CmdlineError) as e:
        set_cmdline(path, "a" * (limit + 1), target=target)
    assert e.value.reason == CmdlineError.TOO_LARGE
    assert str(e.value).startswith(f"{path}: command line is {limit + 1} bytes, too long for")
    assert sha(path) == before


def test_force_still_bounded_by_bios_area(raw):
    path, _ = raw
    set_cmdline(path, "a" * 5000, force=True)
    assert get_cmdline(path) == "a" * 5000
    before = sha(path)
    with pytest.raises(CmdlineError, match="too long for bios"):
        set_cmdline(path, "a" * 32256, force=True)
    with pytest.raises(CmdlineError, match="unknown target"):
        set_cmdline(path, "a", target="uefi", force=True)
    with pytest.raises(CmdlineError) as e:
        set_cmdline(path, "a\0b")
    assert e.value.reason == CmdlineError.NUL
    assert sha(path) == before


def test_utf8_on_disk(raw):
    path, _ = raw
    set_cmdline(path, "/app café")
    assert path.read_bytes()[512:524] == b"/app caf\xc3\xa9\0\0"
    assert get_cmdline(path) == "/app café"


def test_bad_images(tmp_path, raw):
    path, data = raw
    nosig = tmp_path / "nosig.img"
    nosig.write_bytes(data[:510] + b"\0\0" + data[512:])
    with pytest.raises(FormatError, match="no MBR signature .* expected 55 aa"):
        get_cmdline(nosig)
    nonul = tmp_path / "nonul.img"
    nonul.write_bytes(data[:512] + b"x" * AREA + data[512 + AREA:])
    with pytest.raises(FormatError, match="no NUL in the 32256-byte command-line area"):
        get_cmdline(nonul)
    set_cmdline(nonul, "/fixed")                       # set repairs a line without NUL
    assert nonul.read_bytes()[512:512 + AREA] == b"/fixed" + bytes(AREA - 6)
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(data[:300])
    with pytest.raises(FormatError, match="only 300 bytes"):
        get_cmdline(tiny)
    latin = tmp_path / "latin.img"
    latin.write_bytes(data[:512] + b"caf\xe9\0" + data[517:])
    with pytest.raises(FormatError, match="byte 3 \\(0xe9\\) is not UTF-8"):
        get_cmdline(latin)


@pytest.mark.parametrize("entry, words", [
    (bytes([0, 0, 2, 0, 0xEE, 0, 0, 0]) + (1).to_bytes(4, "little") + (100).to_bytes(4, "little"),
     "GPT protective"),
    (bytes([0, 0, 2, 0, 0x83, 0, 0, 0]) + (40).to_bytes(4, "little") + (100).to_bytes(4, "little"),
     "overlaps the command-line area"),
])
def test_set_refuses_foreign_layouts(tmp_path, raw, entry, words):
    _, data = raw
    p = tmp_path / "foreign.img"
    p.write_bytes(data[:0x1BE] + entry + data[0x1BE + 16:])
    before = sha(p)
    with pytest.raises(FormatError, match=words):
        set_cmdline(p, "/x")
    assert sha(p) == before



def _locked_by_other(path: Path, byte: int) -> bool:
    with open(path, "rb+") as f:
        try:
            fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte, os.SEEK_SET)
        except OSError:
            return True
        fcntl.lockf(f.fileno(), fcntl.LOCK_UN, 1, byte, os.SEEK_SET)
        return False


def test_set_refuses_image_open_in_qemu(raw):
    # qemu-io takes QEMU's image locks (byte 100 + permission bit) as a running VM does
    qemu_io = shutil.which("qemu-io")
    if qemu_io is None:
        from conftest import missing_tool
        missing_tool("qemu-io is not installed (install.sh installs qemu-utils)")
    path, _ = raw
    proc = subprocess.Popen([qemu_io, "-f", "raw", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _locked_by_other(path, 101):
            assert time.monotonic() < deadline, "qemu-io never locked the image"
            time.sleep(0.05)
        before = sha(path)
        with pytest.raises(OutputError) as e:
            set_cmdline(path, "/x")
        assert str(e.value) == (f"{path}: image is in use: another process (QEMU?) holds its "
                                "write permission lock, expected an image no VM has open; stop "
                                "the VM first")
        assert sha(path) == before
        assert get_cmdline(path) == "--rootfs=rofs /hello"      # reading is fine
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    set_cmdline(path, "/y")
    assert get_cmdline(path) == "/y"


def test_changed_span_is_the_first_and_last_differing_byte():
    """set_cmdline writes a qcow2 image's area from the first to the last changed byte; the
    span is bisected with slice comparisons, checked here against the byte-by-byte answer."""
    import random

    from osvkit.image.cmdline_io import _changed_span

    rng = random.Random(13)
    for _ in range(2000):
        n = rng.randint(0, 40)
        old = bytes(rng.choice((0, 1)) for _ in range(n))
        new = bytearray(old)
        for _ in range(rng.randint(0, 3)):
            if n:
                new[rng.randrange(n)] ^= rng.choice((0, 1, 2))
        diff = [i for i in range(n) if old[i] != new[i]]
        lo, hi = _changed_span(old, bytes(new))
        assert (lo, hi) == ((diff[0], diff[-1] + 1) if diff else (0, 0))
    assert _changed_span(b"abcdef", b"abXdYf") == (2, 5)
