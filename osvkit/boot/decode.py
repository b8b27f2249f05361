"""Decode a boot structure from a file or a raw guest-memory dump (``osvkit decode``).

:func:`decode_file` is the one library call behind every ``osvkit decode`` subcommand; its
result has ``to_dict()`` and :func:`describe` renders it for people.
"""

from __future__ import annotations

import mmap
import os
import stat

from ..errors import FormatError, UsageError
from ..fileio import open_input
from . import bootinfo, bootparams, mbr, mptable, pvh

KINDS = ("mbr", "boot-params", "mptable", "bootinfo", "pvh")

_QCOW2_MAGIC = b"QFI\xfb"


def _open(path) -> bytes | mmap.mmap:
    with open_input(path) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            # a pipe (<(...)) or a block device: fstat says 0 bytes and mmap cannot map it
            return f.read()
        if st.st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def decode_bytes(kind: str, data, *, path=None, offset: int | None = None, base: int = 0,
                 lenient: bool = False):
    """Decode ``kind`` from ``data`` whose first byte is at guest-physical ``base``.

    ``offset`` is the structure's offset in ``data`` (default 0); for ``mptable`` without an
    offset the floating pointer is searched for (MP-spec areas first, then OSv's, then the
    whole file)."""
    if kind not in KINDS:
        raise UsageError(f"unknown structure {kind!r}", expected=", ".join(KINDS))
    if offset is not None and offset < 0:
        raise UsageError(f"negative offset {offset}", expected="an offset >= 0")
    if len(data) == 0:
        raise FormatError("file is empty", path=path, expected=f"a {kind} structure")
    if kind == "mptable":
        if offset is None:
            return mptable.scan_mp_table(data, base=base, path=path, lenient=lenient)
        return mptable.parse_mp_table(data, offset=offset, base=base, path=path,
                                      lenient=lenient)
    offset = offset or 0
    if kind == "mbr":
        if bytes(data[:4]) == _QCOW2_MAGIC and offset == 0:
            raise FormatError("is a qcow2 image", path=path,
                              expected="a raw disk image (qemu-img convert -O raw)")
        return mbr.parse_mbr(data, path=path, offset=offset)
    parser = {"boot-params": bootparams.parse_boot_params, "bootinfo": bootinfo.parse_bootinfo,
              "pvh": pvh.parse_start_info}[kind]
    return parser(data, path=path, offset=offset, base=base, lenient=lenient)


def decode_file(kind: str, path, *, offset: int | None = None, base: int = 0,
                lenient: bool = False):
    """Decode ``kind`` from the file at ``path`` (see :func:`decode_bytes`)."""
    data = _open(path)
    try:
        return decode_bytes(kind, data, path=path, offset=offset, base=base, lenient=lenient)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def describe(result) -> str:
    """Human-readable text for any decode result."""
    return {
        "mbr": mbr.describe_mbr,
        "boot-params": bootparams.describe_boot_params,
        "mptable": mptable.describe_mp_table,
        "bootinfo": bootinfo.describe_bootinfo,
        "pvh": pvh.describe_start_info,
    }[result.kind](result)
