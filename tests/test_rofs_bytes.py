"""Byte-exact ROFS images of small trees, every byte worked out by hand from the format
and written out here; the writer must produce exactly these bytes."""

from __future__ import annotations

import os

from osvkit.rofs import Dir, File, FileSource, GuestTree, Symlink, build_rofs


def hexbytes(text: str) -> bytes:
    """Hex with comments (``# ...`` to end of line) and whitespace ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# /a (file "hi"), /d (empty directory), /l -> a.  Children sorted: a, d, l.
# Inodes pre-order from 1: 1 = /, 2 = /a, 3 = /d, 4 = /l.
# Block 0 superblock; block 1 data of /a; the structure starts at block 2 (offset 1024):
#   3 directory entries of 11 bytes (only the root has children; /d's count is 0 and its
#   data_offset is the table length when /d ended: 0), 1 symlink of 3 bytes, 4 inodes of 32
#   bytes = 164 bytes -> 1 block, then 512 - 164 = 348 zero bytes.  Total 3 blocks = 1536.
SMALL_IMAGE = hexbytes("""
# ---- block 0: superblock ----
adbeadde00000000  # magic 0xDEADBEAD
0100000000000000  # version 1
0002000000000000  # block_size 512
0200000000000000  # structure_info_first_block 2
0100000000000000  # structure_info_blocks_count 1
0300000000000000  # directory_entries_count 3
0100000000000000  # symlinks_count 1
0400000000000000  # inodes_count 4
""") + bytes(512 - 64) + hexbytes("""
# ---- block 1: data of /a ----
6869              # "hi"
""") + bytes(510) + hexbytes("""
# ---- block 2: directory entries (the root's, appended when the root's walk ended) ----
0200000000000000 0100 61   # inode 2 "a"
0300000000000000 0100 64   # inode 3 "d"
0400000000000000 0100 6c   # inode 4 "l"
# ---- symlinks ----
0100 61                    # "a"
# ---- inodes ----
00400000 00000000  0100000000000000  0000000000000000  0300000000000000  # 1 /: dir, entries 0..2
00800000 00000000  0200000000000000  0100000000000000  0200000000000000  # 2 /a: file, block 1, 2 bytes
00400000 00000000  0300000000000000  0000000000000000  0000000000000000  # 3 /d: dir, 0 entries at 0
00a00000 00000000  0400000000000000  0000000000000000  0100000000000000  # 4 /l: link, symlink 0, count 1
""") + bytes(348)


def small_tree() -> GuestTree:
    t = GuestTree()
    t.add("/l", Symlink(target="a"))          # insertion order differs from the sorted order
    t.add("/d", Dir())
    t.add("/a", File(source=FileSource(data=b"hi")))
    return t


def test_small_tree_exact_bytes(tmp_path):
    out = tmp_path / "small.img"
    r = build_rofs(small_tree(), out, osv_defaults=False)
    assert len(SMALL_IMAGE) == 1536
    assert out.read_bytes() == SMALL_IMAGE
    assert (r.size, r.structure_info_first_block, r.structure_info_blocks_count) == (1536, 2, 1)
    assert (r.inodes_count, r.directory_entries_count, r.symlinks_count, r.files) == (4, 3, 1, 1)


def test_host_file_source_gives_the_same_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"hi")
    t = small_tree()
    t.add("/a", File(source=FileSource(path=str(tmp_path / "a"))))
    build_rofs(t, tmp_path / "x.img", osv_defaults=False)
    assert (tmp_path / "x.img").read_bytes() == SMALL_IMAGE


# A nested tree: /b/c (file, 513 bytes of 0x41), /b/e (empty file), /b/f/ (empty dir), /z (dir)
# Inodes: 1 /, 2 /b, 3 /b/c, 4 /b/e, 5 /b/f, 6 /z.
# Data: /b/c at blocks 1-2 (513 bytes + 511 zeros); /b/e is empty: block 3, no blocks used.
# Directory entries in post-order: /b/f ends (0 entries, data_offset 0), /b ends -> c, e, f
# (indexes 0-2), /z ends (0 entries, data_offset 3), / ends -> b, z (indexes 3-4).
NESTED_IMAGE = hexbytes("""
adbeadde00000000 0100000000000000 0002000000000000
0300000000000000  # structure_info_first_block 3
0100000000000000  # structure_info_blocks_count 1
0500000000000000  # directory_entries_count 5
0000000000000000  # symlinks_count 0
0600000000000000  # inodes_count 6
""") + bytes(448) + b"A" * 513 + bytes(511) + hexbytes("""
0300000000000000 0100 63   # [0] inode 3 "c"
0400000000000000 0100 65   # [1] inode 4 "e"
0500000000000000 0100 66   # [2] inode 5 "f"
0200000000000000 0100 62   # [3] inode 2 "b"
0600000000000000 0100 7a   # [4] inode 6 "z"
00400000 00000000 0100000000000000 0300000000000000 0200000000000000  # 1 /: entries 3..4
00400000 00000000 0200000000000000 0000000000000000 0300000000000000  # 2 /b: entries 0..2
00800000 00000000 0300000000000000 0100000000000000 0102000000000000  # 3 /b/c: block 1, 513
00800000 00000000 0400000000000000 0300000000000000 0000000000000000  # 4 /b/e: block 3, 0
00400000 00000000 0500000000000000 0000000000000000 0000000000000000  # 5 /b/f: 0 at 0
00400000 00000000 0600000000000000 0300000000000000 0000000000000000  # 6 /z: 0 at 3
""") + bytes(512 - 55 - 192)


def test_nested_tree_exact_bytes(tmp_path):
    t = GuestTree()
    t.add("/z", Dir())
    t.add("/b/f", Dir())
    t.add("/b/e", File(source=FileSource(data=b"")))
    t.add("/b/c", File(source=FileSource(data=b"A" * 513)))
    build_rofs(t, tmp_path / "n.img", osv_defaults=False)
    assert len(NESTED_IMAGE) == 2048
    assert (tmp_path / "n.img").read_bytes() == NESTED_IMAGE


def test_block_aligned_structure_gets_a_whole_extra_zero_block(tmp_path):
    # two empty directories with 198-byte names: 2 * (10 + 198) + 3 * 32 = 512 bytes of
    # structure -> structure_info_blocks_count 1, then gen-rofs-img's 512 - 512 % 512 = 512
    # zero bytes: superblock + 1 structure block + 1 pad block.
    t = GuestTree()
    t.add("/" + "a" * 198, Dir())
    t.add("/" + "b" * 198, Dir())
    out = tmp_path / "al.img"
    r = build_rofs(t, out, osv_defaults=False)
    data = out.read_bytes()
    assert len(data) == 1536 == r.size
    assert data[24:40] == hexbytes("0100000000000000 0100000000000000")  # first block 1, count 1
    assert data[512:522] == hexbytes("0200000000000000 c600")             # inode 2, 198 bytes
    assert data[1024:] == bytes(512)


def test_osv_defaults_are_added_and_exact(tmp_path):
    out = tmp_path / "d.img"
    build_rofs(GuestTree(), out)
    data = out.read_bytes()
    # sorted: dev etc proc sys tmp; inodes 1 /, 2 /dev, 3 /etc, 4 /etc/fstab, 5 /proc, 6 /sys, 7 /tmp
    # /etc/fstab (235 bytes) at block 1; structure at block 2
    assert data[24:64] == hexbytes("""
        0200000000000000 0100000000000000 0600000000000000 0000000000000000 0700000000000000""")
    assert data[512:512 + 235].startswith(b"/dev/vblk0.1 /          rofs      defaults 0 0\n")
    assert data[1024:1024 + 12] == hexbytes("0400000000000000 0500 6673")  # [0] inode 4 "fstab"
    assert os.path.getsize(out) == 1536
