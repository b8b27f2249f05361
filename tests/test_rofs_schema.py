"""ROFS schemas: sizes, field offsets and exact bytes, written out from OSv's rofs.hh
(``fs/rofs/rofs.hh``, ``scripts/gen-rofs-img.py``)."""

from __future__ import annotations

import pytest
from construct import ConstError

from osvkit.structs import rofs as S


def test_constants_from_the_reference():
    assert S.ROFS_MAGIC == 0xDEADBEAD
    assert S.ROFS_VERSION == 1
    assert S.ROFS_BLOCK_SIZE == 512
    assert (S.S_IFDIR, S.S_IFREG, S.S_IFLNK) == (0x4000, 0x8000, 0xA000)
    assert S.NAME_LEN_MAX == 65535 and S.OSV_NAME_MAX == 255


def test_superblock_bytes_and_size():
    sb = S.rofs_super_block.build(dict(block_size=512, structure_info_first_block=7,
                                       structure_info_blocks_count=2, directory_entries_count=9,
                                       symlinks_count=3, inodes_count=10))
    assert S.rofs_super_block.sizeof() == S.ROFS_SUPER_BLOCK_SIZE == 64
    assert sb == bytes.fromhex(
        "adbeadde00000000"  # 0x00 magic 0xDEADBEAD
        "0100000000000000"  # 0x08 version 1
        "0002000000000000"  # 0x10 block_size 512
        "0700000000000000"  # 0x18 structure_info_first_block
        "0200000000000000"  # 0x20 structure_info_blocks_count
        "0900000000000000"  # 0x28 directory_entries_count
        "0300000000000000"  # 0x30 symlinks_count
        "0a00000000000000"  # 0x38 inodes_count
    )
    assert S.rofs_super_block.parse(sb).inodes_count == 10
    assert S.rofs_super_block_c.build(S.rofs_super_block.parse(sb)) == sb


def test_superblock_rejects_bad_magic_and_version():
    good = S.rofs_super_block.build(dict(block_size=512, structure_info_first_block=1,
                                         structure_info_blocks_count=1, directory_entries_count=0,
                                         symlinks_count=0, inodes_count=1))
    with pytest.raises(ConstError):
        S.rofs_super_block.parse(b"\xae" + good[1:])
    with pytest.raises(ConstError):
        S.rofs_super_block.parse(good[:8] + b"\x02" + good[9:])


def test_inode_is_32_bytes_with_u32_mode():
    assert S.rofs_inode.sizeof() == S.ROFS_INODE_SIZE == 32
    raw = S.rofs_inode.build(dict(mode=0x8000, inode_no=2, data_offset=1, count=5 << 30))
    assert raw == bytes.fromhex(
        "00800000" "00000000"   # +0x00 mode (u32) and the zero high half gen-rofs-img writes
        "0200000000000000"      # +0x08 inode_no
        "0100000000000000"      # +0x10 data_offset (first block)
        "0000004001000000"      # +0x18 count: 5 GiB, needs the u64
    )
    p = S.rofs_inode.parse(raw)
    assert (p.mode, p.inode_no, p.data_offset, p.count) == (0x8000, 2, 1, 5 << 30)
    # the kernel reads only the low u32 of mode: a non-zero high half is ignored
    assert S.rofs_inode.parse(raw[:4] + b"\xff" * 4 + raw[8:]).mode == 0x8000


def test_dir_entry_and_symlink_bytes():
    assert S.rofs_dir_entry.build(dict(inode_no=3, filename=b"etc")) == bytes.fromhex(
        "0300000000000000"  # inode_no
        "0300"              # name_len
        "657463"            # "etc", no NUL
    )
    assert S.rofs_symlink.build(dict(path=b"/a")) == bytes.fromhex("0200" "2f61")
    e = S.rofs_dir_entry_c.parse(bytes.fromhex("0400000000000000" "0100" "78"))
    assert (e.inode_no, e.filename) == (4, b"x")


def test_blocks_for():
    assert [S.blocks_for(n) for n in (0, 1, 511, 512, 513, 1024)] == [0, 1, 1, 1, 2, 2]


def test_fstab_rofs_constant():
    # OSv static/etc/fstab_rofs, five lines, the first mounts partition 1 as the rofs root
    lines = S.FSTAB_ROFS.decode().splitlines()
    assert len(S.FSTAB_ROFS) == 235
    assert lines[0].split() == ["/dev/vblk0.1", "/", "rofs", "defaults", "0", "0"]
    assert [l.split()[1] for l in lines[1:]] == ["/dev", "/proc", "/sys", "/tmp"]
    assert [l.split()[2] for l in lines[1:]] == ["devfs", "procfs", "sysfs", "ramfs"]
