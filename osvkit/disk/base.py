"""The :class:`Disk` interface and raw images.

A :class:`Disk` is a guest-visible byte array: ``read(offset, n)``, ``read_upto(offset, n)``
(clamped at the end of the disk), ``write(offset, data)``, ``size`` (the guest-visible size)
and ``format`` (``"raw"`` or ``"qcow2"``); it is a context manager.
"""

from __future__ import annotations

import fcntl
import os

from ..errors import FormatError, OsvkitError, OsvkitIOError, OutputError
from .files import open_image_fd

QEMU_LOCK_BYTES = {101: "write permission", 201: "unshared write"}
"""Bytes QEMU locks (OFD locks) in an image it has open: 100 + permission bit while it holds
the permission, 200 + bit while it forbids others that permission; bit 1 is "write"."""


class Disk:
    """Base class: a guest-visible byte array backed by an image file."""

    format = "?"

    def __init__(self, path, writable: bool, *, allow_block: bool = True,
                 label: str | None = None, what: str = "a disk image"):
        self.path = os.fspath(path)
        self.writable = writable
        self.size = 0
        self._fd = -1
        self._fd = open_image_fd(self.path, writable=writable, allow_block=allow_block,
                                 label=label, what=what)
        if writable:
            self._check_not_in_use()

    # --- public ----------------------------------------------------------------------
    def read(self, offset: int, n: int) -> bytes:
        """Exactly ``n`` bytes at guest ``offset`` (FormatError past the end)."""
        self._check_range(offset, n)
        return self._read(offset, n)

    def read_upto(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at guest ``offset``: fewer (or none) at the end of the disk."""
        n = max(0, min(n, self.size - offset))
        return self.read(offset, n) if n and offset >= 0 else b""

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` at guest ``offset``; everything is validated before any byte
        changes, then the file is fsync'ed."""
        if not self.writable:
            raise OsvkitError("disk opened read-only", path=self.path,
                              expected="open_disk(path, writable=True)")
        self._check_range(offset, len(data))
        self._write(offset, bytes(data))
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise OsvkitIOError(f"fsync failed: {exc.strerror}", path=self.path) from None

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "size": self.size}

    # --- for subclasses ----------------------------------------------------------------
    def _read(self, offset: int, n: int) -> bytes:
        raise NotImplementedError

    def _write(self, offset: int, data: bytes) -> None:
        raise NotImplementedError

    def _check_not_in_use(self) -> None:
        """Refuse to write an image a running QEMU (or qemu-io, qemu-nbd) has open."""
        for byte, what in QEMU_LOCK_BYTES.items():
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte, os.SEEK_SET)
            except OSError:
                self.close()
                raise OutputError(f"image is in use: another process (QEMU?) holds its "
                                  f"{what} lock", path=self.path,
                                  expected="an image no VM has open; stop the VM first") from None
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, byte, os.SEEK_SET)

    def _check_range(self, offset: int, n: int) -> None:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise FormatError(f"access to {n} bytes at {offset:#x} is past the end of the "
                              f"{self.size}-byte disk", path=self.path,
                              expected="a range inside the disk")

    def _pwrite(self, host_offset: int, data: bytes) -> None:
        try:
            written = os.pwrite(self._fd, data, host_offset)
        except OSError as exc:
            raise OsvkitIOError(f"write failed: {exc.strerror}", path=self.path) from None
        if written != len(data):
            raise OsvkitIOError(f"short write at {host_offset:#x}: {written} of {len(data)} bytes",
                                path=self.path)


class RawDisk(Disk):
    """A raw image: guest offset = file offset; the size is the file's (or device's)."""

    format = "raw"

    def __init__(self, path, writable: bool = False, **kw):
        super().__init__(path, writable, **kw)
        try:
            self.size = os.lseek(self._fd, 0, os.SEEK_END)   # files and block devices
        except OSError as exc:
            self.close()
            raise FormatError(f"cannot seek: {exc.strerror}", path=self.path,
                              expected="a disk image file or block device") from None

    def _read(self, offset: int, n: int) -> bytes:
        data = os.pread(self._fd, n, offset)
        if len(data) != n:   # the file shrank under us
            raise FormatError(f"short read: {len(data)} of {n} bytes at {offset:#x}",
                              path=self.path, expected="a file that is not being truncated")
        return data

    def _write(self, offset: int, data: bytes) -> None:
        self._pwrite(offset, data)   # one write for the whole range
