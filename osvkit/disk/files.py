"""Opening image files without ever blocking, and reading them at offsets.

A disk image names other files (a qcow2 image its backing file), so anyone who hands a user
an image chooses what osvkit opens.  Opening a FIFO for reading blocks until a writer
appears, a character device may never end and a directory is not data, so every image file
is checked *before* it is opened (``stat``), opened with ``O_NONBLOCK`` (a FIFO swapped in
after the check cannot block the open either) and checked again on the open descriptor
(``fstat``).  Only regular files -- and, for an image the user names directly, block
devices -- pass.
"""

from __future__ import annotations

import fcntl
import os
import stat

from ..errors import FormatError, MissingInputError, OutputError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str:
    """``"a regular file"``, ``"a FIFO (named pipe)"``, ... for an ``st_mode``."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _acceptable(mode: int, allow_block: bool) -> bool:
    return stat.S_ISREG(mode) or (allow_block and stat.S_ISBLK(mode))


def open_image_fd(path, *, writable: bool = False, allow_block: bool = True,
                  what: str = "a disk image", label: str | None = None) -> int:
    """Open ``path`` for positional reads (and writes); return the descriptor.

    Refused with a one-line :class:`~osvkit.errors.MissingInputError` (66): a missing path,
    a directory, a FIFO, a socket, a character device and (unless ``allow_block``) a block
    device.  ``label`` replaces the path in messages (e.g. "backing file 'b.img'")."""
    path = os.fspath(path)
    name = path if label is None else label
    expected = what + ("" if not allow_block else " (a regular file or block device)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise MissingInputError("no such file", path=name) from None
    except OSError as exc:
        raise MissingInputError(f"cannot read: {exc.strerror}", path=name) from None
    if not _acceptable(st.st_mode, allow_block):
        raise MissingInputError(f"is {file_kind(st.st_mode)}", path=name, expected=expected)
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK | os.O_NOCTTY \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if writable:
            raise OutputError(f"cannot open for writing: {exc.strerror}", path=name) from None
        raise MissingInputError(f"cannot read: {exc.strerror}", path=name) from None
    try:
        mode = os.fstat(fd).st_mode
        if not _acceptable(mode, allow_block):   # replaced between stat and open
            raise MissingInputError(f"is {file_kind(mode)}", path=name, expected=expected)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pread_exact(fd: int, offset: int, n: int, path, what: str) -> bytes:
    """``n`` bytes at ``offset``, or a one-line FormatError naming ``what`` (a truncated
    file, or an offset the kernel refuses)."""
    try:
        data = os.pread(fd, n, offset)
    except (OSError, OverflowError, ValueError) as exc:
        # a corrupt table offset can be beyond what lseek accepts (EINVAL) or 2**63
        raise FormatError(f"{what} at {offset:#x} cannot be read "
                          f"({getattr(exc, 'strerror', None) or exc})", path=path,
                          expected="an offset inside the file") from None
    if len(data) != n:
        raise FormatError(f"truncated: {what} at {offset:#x} needs {n} bytes, file has "
                          f"{len(data)}", path=path)
    return data


def pread_upto(fd: int, offset: int, n: int, path) -> bytes:
    """Up to ``n`` bytes at ``offset`` (fewer at the end of the file)."""
    try:
        return os.pread(fd, n, offset)
    except (OSError, OverflowError, ValueError) as exc:
        raise FormatError(f"{n} bytes at {offset:#x} cannot be read "
                          f"({getattr(exc, 'strerror', None) or exc})", path=path,
                          expected="an offset inside the file") from None
