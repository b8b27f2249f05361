"""Atomic file output and careful file input.

Outputs are written to a temporary file in the destination directory and renamed over the
target only when complete, so a failed command never leaves a damaged or half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from .errors import MissingInputError, OutputError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: int = 0o644):
    """Yield a binary file object; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputError("directory does not exist", path=path)
    if os.path.isdir(path):
        raise OutputError("is a directory", path=path, expected="a file name to write")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".osvkit-", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror}", path=path) from None
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    with atomic_output(path, mode) as f:
        f.write(data)


def open_input(path: str | os.PathLike, what: str = "a file", *, writable: bool = False):
    """Open an input file (binary); a missing, directory or unreadable path becomes a one-line
    error naming the file.  ``writable`` opens it for in-place update (r+b)."""
    try:
        return open(path, "r+b" if writable else "rb")
    except FileNotFoundError:
        raise MissingInputError("no such file", path=path) from None
    except IsADirectoryError:
        raise MissingInputError("is a directory", path=path, expected=what) from None
    except OSError as exc:
        if writable:
            raise OutputError(f"cannot open for writing: {exc.strerror}", path=path) from None
        raise MissingInputError(f"cannot read: {exc.strerror}", path=path) from None


def read_input(path: str | os.PathLike, what: str = "a file") -> bytes:
    """Read a whole input file; missing or unreadable files become one-line errors."""
    with open_input(path, what) as f:
        return f.read()


def read_head(path: str | os.PathLike, size: int, what: str = "a file") -> bytes:
    """The first ``size`` bytes of an input file (fewer if it is shorter)."""
    with open_input(path, what) as f:
        return f.read(size)
