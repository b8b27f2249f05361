"""The disk layer: raw and qcow2 images, random access, MBR partitions.

Below :mod:`osvkit.cmdline`, :mod:`osvkit.rofs` and :mod:`osvkit.image`, above
:mod:`osvkit.structs` (whose schemas it reads with).  No qemu-nbd, no root.

* :func:`open_disk` -- a :class:`~osvkit.disk.base.Disk` (``read``, ``read_upto``,
  ``write``, ``size``, ``format``) for a raw or qcow2 image, format detected;
* :func:`detect_format` -- ``"raw"`` or ``"qcow2"`` (other VM image formats refused);
* :func:`is_disk_head` -- whether a file's first bytes are a disk image's (qcow2 or MBR);
* :class:`Qcow2Disk` (:mod:`osvkit.disk.qcow2`) is imported when a qcow2 image is opened
  (or the name is asked for): a raw image never loads the qcow2 reader or construct;
* :mod:`osvkit.disk.backing` -- the limits on qcow2 backing files;
* :mod:`osvkit.disk.files` -- opening image files without blocking.
"""

from __future__ import annotations

import os

from ..errors import FormatError
from ..layout import QCOW2_MAGIC
from .base import Disk, RawDisk
from .detect import detect_format, is_disk_head

__all__ = ["Disk", "RawDisk", "Qcow2Disk", "QCOW2_MAGIC", "detect_format", "is_disk_head", "open_disk"]


def open_disk(path, writable: bool = False, *, format: str | None = None) -> Disk:  # noqa: A002
    """Open a raw or qcow2 image for random access (format detected unless given).

    ``path`` must be a regular file or a block device; a qcow2 image's backing chain is
    followed read-only within :mod:`osvkit.disk.backing`'s limits."""
    path = os.fspath(path)
    fmt = format or detect_format(path)
    if fmt == "raw":
        return RawDisk(path, writable)
    if fmt == "qcow2":
        from .qcow2 import Qcow2Disk

        return Qcow2Disk(path, writable)
    raise FormatError(f"disk format {fmt!r} is not supported", path=path,
                      expected="'raw' or 'qcow2'")


def __getattr__(name: str):
    if name == "Qcow2Disk":
        from .qcow2 import Qcow2Disk
        return Qcow2Disk
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
