"""The ROFS reader: every table bounds-checked, malformed images give one-line errors,
extraction never writes outside its directory."""

from __future__ import annotations

import os
import struct

import pytest

from osvkit.errors import EX_DATAERR, FormatError, MissingInputError, OsvkitIOError, OutputError
from osvkit.rofs import RofsImage, extract_rofs, inspect_rofs, is_rofs

from test_rofs_bytes import SMALL_IMAGE

# Offsets in SMALL_IMAGE (see test_rofs_bytes.py): superblock fields at 0..63, the structure
# at 1024: entries at 1024 (11 bytes each: "a", "d", "l"), the symlink at 1057, inodes at 1060.
ENT, SYM, INO = 1024, 1057, 1060


def patch(data: bytes, off: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


def test_small_image_listing(tmp_path):
    p = tmp_path / "s.img"
    p.write_bytes(SMALL_IMAGE)
    lst = inspect_rofs(p)
    assert [e.to_dict() for e in lst.entries] == [
        {"path": "/", "type": "dir", "inode": 1, "size": 3},
        {"path": "/a", "type": "file", "inode": 2, "size": 2},
        {"path": "/d", "type": "dir", "inode": 3, "size": 0},
        {"path": "/l", "type": "symlink", "inode": 4, "size": 1, "target": "a"},
    ]
    assert lst.superblock == {"magic": 0xDEADBEAD, "version": 1, "block_size": 512,
                              "structure_info_first_block": 2, "structure_info_blocks_count": 1,
                              "directory_entries_count": 3, "symlinks_count": 1, "inodes_count": 4}
    assert is_rofs(p) and not is_rofs(tmp_path)


def test_image_inside_a_larger_file_at_an_offset(tmp_path):
    p = tmp_path / "disk.img"
    p.write_bytes(bytes(4096) + SMALL_IMAGE + bytes(1000))
    with RofsImage(p, offset=4096) as img:
        assert img.read(img.entries[1]) == b"hi"
    assert is_rofs(p, 4096)


BAD = [
    ("too short", lambda d: d[:100], "100 bytes, too short for a ROFS superblock, expected at least 512 bytes"),
    ("magic", lambda d: patch(d, 0, "<Q", 0xDEADBEEF), "bad ROFS magic 0xdeadbeef, expected 0xdeadbead"),
    ("version", lambda d: patch(d, 8, "<Q", 2), "ROFS version 2, expected version 1"),
    ("block size", lambda d: patch(d, 16, "<Q", 4096), "block_size 4096, expected 512"),
    ("no structure", lambda d: patch(d, 32, "<Q", 0), "structure_info_blocks_count 0, expected at least 1"),
    ("structure first block 0", lambda d: patch(d, 24, "<Q", 0), "structure blocks 0..0 outside"),
    ("structure past end", lambda d: patch(d, 32, "<Q", 2), "structure blocks 2..3 outside the image's 3 blocks"),
    ("huge structure count", lambda d: patch(d, 32, "<Q", 2**64 - 1), "outside the image's 3 blocks"),
    ("truncated file", lambda d: d[:1100], "structure blocks 2..2 outside the image's 2 blocks"),
    ("too many entries", lambda d: patch(d, 40, "<Q", 2**63), "directory entry 8 name (512 bytes) out of bounds"),
    ("name out of bounds", lambda d: patch(d, ENT + 8, "<H", 600), "directory entry 0 name (600 bytes) out of bounds"),
    ("too many symlinks", lambda d: patch(d, 48, "<Q", 200), "symlink 1 path (16384 bytes) out of bounds"),
    ("entries fill the blocks", lambda d: patch(patch(d, 40, "<Q", 10**6), ENT + 8, "<H", 498),
     "directory entry table truncated at entry 1 of 1000000"),
    ("symlinks fill the blocks", lambda d: patch(patch(d, 48, "<Q", 9), SYM, "<H", 465),
     "symlink table truncated at symlink 7 of 9"),
    ("symlink out of bounds", lambda d: patch(d, SYM, "<H", 0xFFFF), "symlink 0 path (65535 bytes) out of bounds"),
    ("inode table", lambda d: patch(d, 56, "<Q", 20), "inode table (20 inodes) out of bounds, expected at most 14"),
    ("no inodes", lambda d: patch(d, 56, "<Q", 0), "no inodes, expected inode 1"),
    ("inode_no", lambda d: patch(d, INO + 32 + 8, "<Q", 9), "inode 2 has inode_no 9, expected 2"),
    ("mode", lambda d: patch(d, INO + 32, "<I", 0x6000), "inode 2 has mode 0x6000"),
    ("root not dir", lambda d: patch(d, INO, "<I", 0x8000), "file inode 1 data"),
    ("dir range", lambda d: patch(d, INO + 16, "<Q", 2**64 - 1), "directory inode 1 entries 18446744073709551615+3 out of bounds"),
    ("symlink index", lambda d: patch(d, INO + 96 + 16, "<Q", 1), "symlink inode 4 index 1 out of bounds, expected below 1"),
    ("file past end", lambda d: patch(d, INO + 32 + 24, "<Q", 5000), "file inode 2 data (block 1, 5000 bytes) outside the image"),
    ("entry inode 0", lambda d: patch(d, ENT, "<Q", 0), "entry /: b'a' has inode 0, expected 1..4"),
    ("entry inode big", lambda d: patch(d, ENT, "<Q", 5), "has inode 5, expected 1..4"),
    ("dot name", lambda d: patch(d, ENT + 10, "B", ord(".")), "bad name /: b'.'"),
    ("slash name", lambda d: patch(d, ENT + 10, "B", ord("/")), "bad name /: b'/'"),
    ("nul name", lambda d: patch(d, ENT + 10, "B", 0), "bad name /: b'\\x00'"),
    ("nul symlink target", lambda d: patch(d, SYM + 2, "B", 0), "symlink /l has target b'\\x00'"),
    ("duplicate", lambda d: patch(d, ENT + 11 + 10, "B", ord("a")), "two entries named /: b'a'"),
    ("cycle", lambda d: patch(d, ENT + 11, "<Q", 1), "directory inode 1 reached twice (at /d)"),
]


@pytest.mark.parametrize("name, mutate, message", BAD, ids=[b[0] for b in BAD])
def test_malformed_images(tmp_path, name, mutate, message):
    p = tmp_path / "bad.img"
    p.write_bytes(mutate(SMALL_IMAGE))
    with pytest.raises(FormatError) as e:
        inspect_rofs(p)
    text = str(e.value)
    assert text.startswith(f"{p}: ") and message in text, text
    assert "\n" not in text and e.value.exit_status == EX_DATAERR


def test_missing_image(tmp_path):
    with pytest.raises(MissingInputError, match="no such file"):
        inspect_rofs(tmp_path / "none.img")


def test_extract_refuses_non_empty_destination(tmp_path):
    p = tmp_path / "s.img"
    p.write_bytes(SMALL_IMAGE)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    with pytest.raises(OutputError, match="exists and is not an empty directory"):
        extract_rofs(p, tmp_path / "full")
    assert os.listdir(tmp_path / "full") == ["keep"]
    (tmp_path / "empty").mkdir()
    r = extract_rofs(p, tmp_path / "empty")
    assert (r.entries, r.files, r.bytes) == (4, 1, 2)
    assert sorted(os.listdir(tmp_path / "empty")) == ["a", "d", "l"]
    assert os.readlink(tmp_path / "empty" / "l") == "a"


def test_extract_symlink_is_not_followed(tmp_path):
    """An absolute link target is written as a link; nothing is written through it."""
    from osvkit.rofs import File, FileSource, GuestTree, Symlink, build_rofs
    victim = tmp_path / "victim"
    victim.mkdir()
    t = GuestTree()
    t.add("/etc", Symlink(target=str(victim)))
    t.add("/z/f", File(source=FileSource(data=b"data")))
    build_rofs(t, tmp_path / "o.img", osv_defaults=False)
    extract_rofs(tmp_path / "o.img", tmp_path / "ex")
    assert os.readlink(tmp_path / "ex" / "etc") == str(victim)
    assert os.listdir(victim) == []
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".osvkit")]


def test_failed_extract_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "s.img"
    p.write_bytes(SMALL_IMAGE)
    with pytest.raises(OutputError, match="parent directory does not exist"):
        extract_rofs(p, tmp_path / "no" / "dir")

    def no_symlinks(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "symlink", no_symlinks)
    with pytest.raises(OsvkitIOError, match=r"write failed: No space left on device "
                                            r"\(writing /l\)") as exc:
        extract_rofs(p, tmp_path / "ex")
    assert exc.value.path == str(tmp_path / "ex")      # the user's name, not the temporary's

    def no_permission(*a, **kw):
        raise OSError(13, "Permission denied")
    monkeypatch.setattr(os, "symlink", no_permission)
    with pytest.raises(OutputError, match=r"cannot write /l: Permission denied") as exc:
        extract_rofs(p, tmp_path / "ex")
    assert exc.value.path == str(tmp_path / "ex")
    assert sorted(os.listdir(tmp_path)) == ["s.img"]


from hypothesis import given, settings, strategies as st  # noqa: E402

from osvkit.errors import OsvkitError  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*range(0, 64), *range(1024, 1024 + 164)]),
                          st.integers(0, 255)), min_size=1, max_size=6))
def test_corrupted_images_fail_cleanly(edits):
    """Random byte changes in the superblock and the tables: the reader either reads a
    consistent tree or raises one OsvkitError line; never another exception.  Extraction of
    what it accepts stays inside the target directory."""
    import tempfile
    data = bytearray(SMALL_IMAGE)
    for off, val in edits:
        data[off] = val
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.img")
        with open(p, "wb") as f:
            f.write(data)
        try:
            lst = inspect_rofs(p)
        except OsvkitError as e:
            assert "\n" not in str(e) and str(e).startswith(p)
            return
        assert lst.entries[0].path == "/"
        try:
            extract_rofs(p, os.path.join(d, "ex"))
        except OsvkitError as e:
            assert "\n" not in str(e)
        assert sorted(os.listdir(d)) in (["ex", "f.img"], ["f.img"])


def _disk_with_rofs(path, image: bytes, lba: int = 2048, index: int = 1) -> None:
    """A raw disk: MBR with entry ``index`` = (lba, len(image) / 512), the image at lba."""
    mbr = bytearray(512)
    entry = bytes(8) + lba.to_bytes(4, "little") + (len(image) // 512).to_bytes(4, "little")
    mbr[0x1BE + 16 * index:0x1BE + 16 * (index + 1)] = entry
    mbr[4 + 0x1BE + 16 * index] = 0x83
    mbr[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(mbr)
        f.seek(lba * 512)
        f.write(image)
        f.write(bytes(4096))


def test_partition_of_raw_and_qcow2_disk(tmp_path, qemu_img):
    import subprocess
    raw = tmp_path / "usr.raw"
    _disk_with_rofs(raw, SMALL_IMAGE)
    lst = inspect_rofs(raw, partition=1)
    assert [e.path for e in lst.entries] == ["/", "/a", "/d", "/l"] and lst.offset == 2048 * 512
    qcow = tmp_path / "usr.qcow2"
    subprocess.run([qemu_img, "convert", "-O", "qcow2", str(raw), str(qcow)], check=True)
    with RofsImage(qcow, partition=1) as img:
        assert img.read(img.entries[1]) == b"hi"
    r = extract_rofs(qcow, tmp_path / "ex", partition=1)
    assert r.files == 1 and (tmp_path / "ex" / "a").read_bytes() == b"hi"
    with pytest.raises(FormatError, match="partition 0 is empty"):
        inspect_rofs(qcow, partition=0)
    with pytest.raises(FormatError, match="no MBR"):
        inspect_rofs(tmp_path / "ex" / "a", partition=1)
