"""Which container an image file is: raw or qcow2 (other VM image formats are refused).

Kept apart from :mod:`osvkit.disk.qcow2` so that telling the formats apart, and opening a
raw image, never loads the qcow2 reader or its schemas.
"""

from __future__ import annotations

import os

from .. import layout
from ..errors import FormatError
from .files import open_image_fd, pread_upto

_FOREIGN_MAGICS = {b"QED\0": "qed", b"KDMV": "vmdk", b"vhdx": "vhdx", b"conectix": "vpc"}


def is_disk_head(head: bytes) -> bool:
    """True when a file starting with ``head`` is a disk image osvkit reads: the qcow2 magic,
    or an MBR boot signature (55 AA at byte 510)."""
    sig = head[layout.MBR_SIGNATURE_OFFSET:layout.SECTOR_SIZE]
    return head[:4] == layout.QCOW2_MAGIC or sig == layout.MBR_BOOT_SIGNATURE


def detect_format(path, **open_options) -> str:
    """``"qcow2"`` for the qcow2 magic, else ``"raw"``; other VM image formats are refused.
    The file is opened as :func:`osvkit.disk.files.open_image_fd` does (never blocking)."""
    fd = open_image_fd(path, **open_options)
    try:
        head = pread_upto(fd, 0, 8, path)
    finally:
        os.close(fd)
    if head[:4] == layout.QCOW2_MAGIC:
        return "qcow2"
    for magic, name in _FOREIGN_MAGICS.items():
        if head.startswith(magic):
            raise FormatError(f"{name} image", path=open_options.get("label") or path,
                              expected="a raw or qcow2 image (qemu-img convert -O raw)")
    return "raw"
