"""Which filesystem a partition of an image holds, by its magic numbers.

osvkit reads and rewrites ROFS; the others are only named, so that a command that cannot
edit a partition says what it found there:

* ``rofs``: OSv's read-only filesystem (superblock magic and version at byte 0);
* ``zfs``: a ZFS vdev -- the first label's uberblock array (at 128 KiB into the vdev, one
  uberblock per 1 KiB or larger slot) holds uberblocks starting with the magic
  ``0x00bab10c``, in either byte order;
* ``ext``: ext2, ext3 or ext4 -- the superblock at byte 1024 has ``0xef53`` at its byte 56;
* ``empty``: all zeros where those would be; ``unknown``: anything else.
"""

from __future__ import annotations

from ..rofs.reader import detect_rofs_head

ZFS_UBERBLOCK_MAGIC = 0x00BAB10C
ZFS_UBERBLOCK_ARRAY = 128 * 1024
ZFS_UBERBLOCK_ARRAY_SIZE = 128 * 1024
ZFS_UBERBLOCK_SLOT = 1024
EXT_SUPERBLOCK = 1024
EXT_MAGIC_OFFSET = 56
EXT_MAGIC = 0xEF53

NAMES = {"rofs": "ROFS", "zfs": "ZFS", "ext": "ext2/3/4", "empty": "no filesystem (zeros)",
         "unknown": "an unrecognised filesystem"}
"""How messages name each kind."""


def identify(read, offset: int, size: int) -> str:
    """The kind of filesystem in the ``size`` bytes at ``offset``, read with
    ``read(offset, n) -> bytes`` (fewer bytes at the end of the disk)."""
    head = read(offset, 4096)
    if detect_rofs_head(head):
        return "rofs"
    magic = head[EXT_SUPERBLOCK + EXT_MAGIC_OFFSET:EXT_SUPERBLOCK + EXT_MAGIC_OFFSET + 2]
    if len(magic) == 2 and int.from_bytes(magic, "little") == EXT_MAGIC:
        return "ext"
    if size >= ZFS_UBERBLOCK_ARRAY + ZFS_UBERBLOCK_SLOT:
        array = read(offset + ZFS_UBERBLOCK_ARRAY,
                     min(ZFS_UBERBLOCK_ARRAY_SIZE, size - ZFS_UBERBLOCK_ARRAY))
        for slot in range(0, len(array) - 7, ZFS_UBERBLOCK_SLOT):
            word = array[slot:slot + 8]
            if ZFS_UBERBLOCK_MAGIC in (int.from_bytes(word, "little"),
                                       int.from_bytes(word, "big")):
                return "zfs"
    if not head.strip(b"\0"):
        return "empty"
    return "unknown"
