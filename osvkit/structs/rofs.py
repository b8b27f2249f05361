"""On-disk structures of OSv's read-only filesystem (ROFS), as construct 2.10 schemas.

Source: cloudius-systems/osv ``scripts/gen-rofs-img.py`` (the writer) and ``fs/rofs/rofs.hh``,
``fs/rofs/rofs_vfsops.cc`` (the kernel's mount).
Everything is little-endian; the block size is 512, hard-wired in the kernel (``block << 9``).

Layout of an image, in block order::

    block 0                  superblock (this module's ``rofs_super_block``), rest zero
    blocks 1..               file data, each file from a block boundary, zero-padded
    structure_info_first_block
                             directory entries, then symlinks, then inodes, packed
    (pad)                    zeros to the next block boundary; when the structure bytes are
                             already a whole number of blocks, one more zero block follows
                             (gen-rofs-img.py writes ``512 - bytes % 512`` zeros), which the
                             superblock does not count

This module holds schemas and constants only: no I/O.  The writer and the reader share it
and nothing else.
"""

from __future__ import annotations

from construct import (Bytes, Const, GreedyBytes, Int16ul, Int32ul, Int64ul, Padding, Prefixed,
                       Struct)

ROFS_MAGIC = 0xDEAD_BEAD
"""``ROFS_MAGIC`` (``fs/rofs/rofs.hh``)."""
ROFS_VERSION = 1
"""``ROFS_VERSION``; the mount refuses any other (``rofs_vfsops.cc``)."""
ROFS_BLOCK_SIZE = 512
"""The kernel reads blocks as ``block << 9`` whatever ``block_size`` says."""
ROFS_SUPERBLOCK_BLOCK = 0

S_IFMT = 0o170000
S_IFDIR = 0x4000
"""``DIR_MODE`` in gen-rofs-img.py."""
S_IFREG = 0x8000
"""``REG_MODE``."""
S_IFLNK = 0xA000
"""``LINK_MODE``."""

ROOT_INODE_NO = 1
"""Inode numbers are 1-based (table index = inode_no - 1); inode 1 is the root directory."""

NAME_LEN_MAX = 0xFFFF
"""The format's limit for a name or a symlink target: a u16 length prefix."""
OSV_NAME_MAX = 255
"""OSv's ``NAME_MAX`` (musl ``limits.h``): readdir copies names into ``d_name[256]`` with
``strlcpy``, so a longer name is truncated there and cannot be looked up by what readdir shows."""
OSV_PATH_MAX = 4096
"""OSv's ``PATH_MAX``; a symlink target longer than ``PATH_MAX - 1`` cannot be resolved."""

rofs_super_block = "struct rofs_super_block (fs/rofs/rofs.hh), block 0" * Struct(
    "magic" / Const(ROFS_MAGIC, Int64ul),               # 0x00
    "version" / Const(ROFS_VERSION, Int64ul),           # 0x08
    "block_size" / Int64ul,                             # 0x10  512
    "structure_info_first_block" / Int64ul,             # 0x18
    "structure_info_blocks_count" / Int64ul,            # 0x20  ceil(bytes / 512), >= 1
    "directory_entries_count" / Int64ul,                # 0x28
    "symlinks_count" / Int64ul,                         # 0x30
    "inodes_count" / Int64ul,                           # 0x38
)
ROFS_SUPER_BLOCK_SIZE = 64

rofs_dir_entry = "directory entry (gen-rofs-img.py DirectoryEntry.write)" * Struct(
    "inode_no" / Int64ul,                               # +0
    "filename" / Prefixed(Int16ul, GreedyBytes),        # +8 u16 name_len, +10 name, no NUL
)
ROFS_DIR_ENTRY_HEAD_SIZE = 10

rofs_symlink = "symlink record (gen-rofs-img.py SymbolicLink.write)" * Struct(
    "path" / Prefixed(Int16ul, GreedyBytes),            # +0 u16 len, +2 path, no NUL
)
ROFS_SYMLINK_HEAD_SIZE = 2

rofs_inode = "struct rofs_inode (fs/rofs/rofs.hh), 32 bytes" * Struct(
    "mode" / Int32ul,                                   # +0x00 mode_t; gen-rofs-img writes a u64
    Padding(4),                                         # +0x04 its high half, always zero
    "inode_no" / Int64ul,                               # +0x08 redundant: table index + 1
    "data_offset" / Int64ul,                            # +0x10 dir: first entry index;
                                                        #       file: first block; link: index
    "count" / Int64ul,                                  # +0x18 dir: children; file: size in
                                                        #       bytes; link: 1
)
ROFS_INODE_SIZE = 32

rofs_block = Bytes(ROFS_BLOCK_SIZE)

# Compiled forms: the same schemas, 5-10x faster for tables of thousands of records.
rofs_dir_entry_c = rofs_dir_entry.compile()
rofs_symlink_c = rofs_symlink.compile()
rofs_inode_c = rofs_inode.compile()
rofs_super_block_c = rofs_super_block.compile()


def blocks_for(size: int) -> int:
    """Number of 512-byte blocks ``size`` bytes occupy."""
    return -(-size // ROFS_BLOCK_SIZE)


FSTAB_ROFS = (
    b"/dev/vblk0.1 /          rofs      defaults 0 0\n"
    b"none         /dev       devfs     defaults 0 0\n"
    b"none         /proc      procfs    defaults 0 0\n"
    b"none         /sys       sysfs     defaults 0 0\n"
    b"none         /tmp       ramfs     defaults 0 0\n"
)
"""The content of OSv's ``static/etc/fstab_rofs`` (read in cloudius-systems/osv at 0e34e4dc2b27):
the root is ROFS on partition 1 of the first virtio disk, and devfs, procfs, sysfs and a ramfs
/tmp are mounted on directories that must exist in the image."""

OSV_MOUNT_POINTS = ("dev", "proc", "sys", "tmp")
"""Directories the image must contain: ``mkdir`` fails on a read-only root
(``fs/vfs/main.cc``), so every mount point in :data:`FSTAB_ROFS` must be in the image."""
