"""Atomic file output and careful file input.

Outputs are written to a temporary file in the destination directory and renamed over the
target only when complete, so a failed command never leaves a damaged or half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile

from .errors import MissingInputError, OsvkitIOError, OutputError, UsageError

#: errnos of a write that failed because of the output: its file system is full, the file
#: would pass a size limit (the file system's or RLIMIT_FSIZE), a disk quota
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


@contextlib.contextmanager
def output_errors(path: str | os.PathLike):
    """Report a write into ``path`` that failed for one of :data:`OUTPUT_ERRNOS` as the
    one-line ``write failed: <reason>`` (exit 74) naming ``path``; other errors pass."""
    try:
        yield
    except OSError as exc:
        if exc.errno in OUTPUT_ERRNOS:
            raise OsvkitIOError(f"write failed: {exc.strerror}", path=path) from None
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when paths ``a`` and ``b`` name the same file: the same resolved path (symbolic
    links followed, so a link to an input or a new name through a linked directory counts),
    or, both existing, the same device and inode (a hard link counts)."""
    return _same_as(_identity(a), b)


def _identity(path: str | os.PathLike) -> tuple[str | None, tuple[int, int] | None]:
    """``path``'s resolved path and (device, inode), None where they cannot be had: what
    :func:`same_file` compares, found once for a path compared with many."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        real = None
    try:
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        ident = None
    return real, ident


def _same_as(identity: tuple[str | None, tuple[int, int] | None], b: str | os.PathLike) -> bool:
    real, ident = identity
    # an existing ``b`` is the file at its resolved path: the same as ``a`` exactly when
    # ``a`` exists with the same device and inode (one stat, not realpath's lstat of every
    # component: a ROFS build compares the output with each of its thousands of host files)
    try:
        sb = os.stat(b)
    except (OSError, ValueError):
        sb = None
    if sb is not None:
        return ident is not None and ident == (sb.st_dev, sb.st_ino)
    try:
        return real is not None and real == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def check_not_input(output: str | os.PathLike, inputs) -> None:
    """Refuse (usage error, 64) an ``output`` that names one of a command's ``inputs``:
    writing it would destroy the input.  ``inputs`` holds paths or ``(what, path)`` pairs
    (``what`` such as "the kernel of this build" or "--disk"); ``None`` entries are skipped.

    This is the one check every command that writes a file runs before it writes."""
    if output is None:
        return
    identity = _identity(output)        # the output's side of same_file, once, not per input
    for item in inputs:
        what, src = item if isinstance(item, tuple) else ("an input", item)
        if src is None:
            continue
        if _same_as(identity, src):
            raise UsageError(f"the output is {what} ({os.fspath(src)})", path=output,
                             expected="an output path that is not an input")


#: temporary files and directories osvkit makes beside an output: ``.osvkit-`` (and
#: ``build-``, ``rofs-``, ``extract-``) followed by tempfile's eight random characters
TEMP_NAME = re.compile(r"\.osvkit-(?:build-|rofs-|extract-)?[a-z0-9_]{8}")
#: a temporary nothing was written to for this long was left by a killed command
STALE_AGE = 15 * 60


def _newest_mtime(path: str, st: os.stat_result) -> float:
    newest = st.st_mtime
    if stat.S_ISDIR(st.st_mode):
        for top, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(top, name)).st_mtime)
                except OSError:
                    pass
    return newest


def remove_stale_temporaries(directory: str | os.PathLike, *, age: float = STALE_AGE) -> list[str]:
    """Remove what a killed osvkit command left in ``directory``: entries named like its
    temporaries (:data:`TEMP_NAME`), owned by this user, regular files or real directories
    (never a symbolic link), in which nothing changed for ``age`` seconds.  Nothing else is
    touched; errors are ignored (another command may be cleaning too).  Returns the paths
    removed."""
    import time

    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            kind_ok = stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
            if st.st_uid != os.getuid() or not kind_ok:
                continue
            if now - _newest_mtime(entry.path, st) < age:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: int = 0o644):
    """Yield a binary file object; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    # a symbolic link keeps pointing where it did: its target is replaced, not the link
    # (renaming over "/dev/stdout" or a user's link to a shared image would replace the link)
    target = os.path.realpath(path) if os.path.islink(path) else path
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise OutputError("directory does not exist", path=path)
    if os.path.isdir(path):
        raise OutputError("is a directory", path=path, expected="a file name to write")
    # an existing character device or FIFO (-o /dev/null, -o /dev/stdout, a pipe) is written
    # into, never replaced: renaming over it would turn /dev/null into a regular file
    try:
        st_mode = os.stat(path).st_mode
    except OSError:
        st_mode = None
    stream = st_mode is not None and (stat.S_ISCHR(st_mode) or stat.S_ISFIFO(st_mode))
    if st_mode is not None and not stream and not stat.S_ISREG(st_mode):
        kind = "a block device" if stat.S_ISBLK(st_mode) else "not a regular file"
        raise OutputError(f"is {kind}", path=path, expected="a regular file name to write")
    if not stream:
        remove_stale_temporaries(directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".osvkit-", dir=None if stream else directory)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror}", path=path) from None
    try:
        with output_errors(path), os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            if stream:
                f.seek(0)
                try:
                    with open(path, "wb") as out:
                        shutil.copyfileobj(f, out)
                except OSError as exc:
                    raise OutputError(f"cannot write: {exc.strerror}", path=path) from None
            else:
                os.fsync(f.fileno())
        if stream:
            os.unlink(tmp)
            return
        os.chmod(tmp, mode)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def largest_file_size(f) -> int:
    """The largest size the file system holding the open file ``f`` allows a file to have,
    found by setting the (sparse) size of ``f`` itself; its size is restored afterwards."""
    fd = f.fileno()
    keep = os.fstat(fd).st_size
    lo, hi = keep, (1 << 63) - 1       # lo: known to fit; hi: the most any file can be
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            os.ftruncate(fd, mid)
            lo = mid
        except (OSError, OverflowError):
            hi = mid - 1
    os.ftruncate(fd, keep)
    return lo


def write_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    with atomic_output(path, mode) as f:
        f.write(data)


def open_input(path: str | os.PathLike, what: str = "a file", *, writable: bool = False):
    """Open an input file (binary); a missing, directory or unreadable path becomes a one-line
    error naming the file.  ``writable`` opens it for in-place update (r+b)."""
    try:
        f = open(path, "r+b" if writable else "rb")
    except FileNotFoundError:
        raise MissingInputError("no such file", path=path) from None
    except IsADirectoryError:
        raise MissingInputError("is a directory", path=path, expected=what) from None
    except OSError as exc:
        if writable:
            raise OutputError(f"cannot open for writing: {exc.strerror}", path=path) from None
        raise MissingInputError(f"cannot read: {exc.strerror}", path=path) from None
    # a character device (/dev/zero, a tty) never ends or is not data: reading it whole
    # would hang or exhaust memory; block devices and pipes end and are read as files
    if stat.S_ISCHR(os.fstat(f.fileno()).st_mode):
        f.close()
        raise MissingInputError("is a character device", path=path, expected=what)
    return f


def read_input(path: str | os.PathLike, what: str = "a file") -> bytes:
    """Read a whole input file; missing or unreadable files become one-line errors."""
    with open_input(path, what) as f:
        return f.read()


def read_head(path: str | os.PathLike, size: int, what: str = "a file") -> bytes:
    """The first ``size`` bytes of an input file (fewer if it is shorter)."""
    with open_input(path, what) as f:
        return f.read(size)
