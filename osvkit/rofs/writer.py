"""Write a ROFS image from a manifest or a :class:`~osvkit.rofs.manifest.GuestTree`.

The image is laid out exactly as OSv's ``scripts/gen-rofs-img.py`` lays it out, with one deliberate difference: the children of every directory are taken in sorted
order (by their UTF-8 bytes, i.e. ``strcmp`` order), where gen-rofs-img takes them in
manifest order (Python dict insertion order, and ``os.walk`` order, which is the host
directory's, for ``/**`` lines).  Inode numbers, the order of file data, of symlinks and
of directory entries all follow from that order, so:

* the same manifest and host files give the same image bytes on any host, and
* when a manifest lists every directory's entries in sorted order (and names are ASCII),
  the image is byte-identical to gen-rofs-img's (checked in tests/test_rofs_osv.py).

OSv itself does not care: lookup is a linear ``strcmp`` over the children, and only
``readdir`` shows the order.

The order (for directory D with sorted children c1..cn, walked depth-first):

* inode numbers: pre-order from 1 (the root), each child numbered when it is visited,
  before its own subtree (D's subtree is numbered before D's next sibling);
* file data and symlinks: in the same pre-order, each file from a block boundary;
* directory entries: when D's walk ends, D's n entries are appended (post-order), so they
  are contiguous and D's inode points at the first with ``count = n``; the root's entries
  come last.

File data is copied by the kernel (``copy_file_range``, else ``sendfile``) or in 1 MiB
chunks, never held in memory, and holes in sparse host files stay holes.  Write-back of the
image is started as the copy goes (every 32 MiB, waiting for the window before: a
write-behind, in a thread of its own, that keeps the disk busy and the dirty page cache
small), and the image is fsynced once, before it is renamed into place.  Only the
directory tables are built in memory (a few dozen bytes per entry).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from ..errors import ManifestInputError, OsvkitIOError
from ..fileio import OUTPUT_ERRNOS, atomic_output, check_not_input
from ..progress import progress
from ..structs import rofs as S
from .manifest import (Dir, File, FileSource, GuestTree, Symlink, fsname,
                       parse_manifest)
from ..log import log


CHUNK_SIZE = 1 << 20
LIMITS = {
    # names, symlink targets
    "osv": (S.OSV_NAME_MAX, S.OSV_PATH_MAX - 1),
    "format": (S.NAME_LEN_MAX, S.NAME_LEN_MAX),
}


@dataclass
class RofsBuildResult:
    output: str
    size: int
    """Bytes in the image file."""
    structure_info_first_block: int
    structure_info_blocks_count: int
    directory_entries_count: int
    symlinks_count: int
    inodes_count: int
    files: int
    data_bytes: int
    """Sum of the file sizes."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line: the image's size and what it holds."""
        return (f"{self.output}: ROFS image, {self.size} bytes, {self.inodes_count} inodes, "
                f"{self.files} files ({self.data_bytes} bytes of data), "
                f"{self.symlinks_count} symlinks")


def add_osv_defaults(tree: GuestTree) -> list[str]:
    """Add what OSv needs on a read-only root when the tree lacks it: the mount-point
    directories /dev, /proc, /sys, /tmp and /etc/fstab (OSv's ``fstab_rofs``).  Returns the
    guest paths added."""
    added = []
    for name in S.OSV_MOUNT_POINTS:
        if tree.lookup("/" + name) is None:
            tree.add("/" + name, Dir())
            added.append("/" + name)
    if tree.lookup("/etc/fstab") is None:
        tree.add("/etc/fstab", File(source=FileSource(data=S.FSTAB_ROFS)))
        added.append("/etc/fstab")
    for path in ["/" + n for n in S.OSV_MOUNT_POINTS]:
        if not isinstance(tree.lookup(path), Dir):
            node = tree.lookup(path)
            raise node.origin.error(f"guest path {path} is not a directory",
                                    expected="a directory: OSv mounts a filesystem there")
    return added


def check_tree(tree: GuestTree, limits: str = "osv") -> int:
    """Check every name and symlink target fits the format (and OSv's limits when
    ``limits="osv"``); return the number of entries."""
    name_max, link_max = LIMITS[limits]
    n = 0
    for path, node in tree.walk():
        n += 1
        if isinstance(node, Dir):
            for name, child in node.children.items():
                raw = fsname(name)
                if not raw or name in (".", "..") or "/" in name or "\0" in name:
                    raise child.origin.error(f"bad name {name!r} in {path}",
                                             expected="a name without '/' or NUL, not . or ..")
                if len(raw) > name_max:
                    raise child.origin.error(
                        f"name of {len(raw)} bytes in {path} ({name[:40]!r}...)",
                        expected=f"at most {name_max} bytes"
                        + (" (OSv's NAME_MAX)" if limits == "osv" else " (u16 name_len)"))
        elif isinstance(node, Symlink):
            raw = fsname(node.target)
            if not raw or "\0" in node.target or len(raw) > link_max:
                raise node.origin.error(f"symlink {path} target of {len(raw)} bytes",
                                        expected=f"1 to {link_max} bytes without NUL")
    return n


def build_rofs(source, output: str | os.PathLike, *, defines: dict[str, str] | None = None,
               manifest_root: str | os.PathLike | None = None, allow_missing: bool = False,
               follow_symlinks_anywhere: bool = False, osv_defaults: bool = True,
               limits: str = "osv", outputs=()) -> RofsBuildResult:
    """Build a ROFS image at ``output`` from ``source``: a manifest path or a GuestTree.

    ``osv_defaults`` adds /dev, /proc, /sys, /tmp and /etc/fstab when missing (the tree is
    changed in place).  ``limits="osv"`` keeps names within OSv's NAME_MAX (255 bytes) and
    symlink targets within PATH_MAX; ``"format"`` allows the format's 65535 bytes.
    ``outputs`` names further files the caller writes from this image (a usr.img): neither
    they nor ``output`` may be the manifest or a host file it lists (a usage error)."""
    if isinstance(source, GuestTree):
        tree = source
    else:
        tree = parse_manifest(source, defines=defines, root=manifest_root,
                              allow_missing=allow_missing,
                              follow_symlinks_anywhere=follow_symlinks_anywhere)
    if limits not in LIMITS:
        raise ValueError(f"limits must be one of {sorted(LIMITS)}")
    if osv_defaults:
        add_osv_defaults(tree)
    check_tree(tree, limits)
    output = os.fspath(output)
    inputs = list(tree_inputs(tree, None if isinstance(source, GuestTree) else source))
    for out in (output, *outputs):
        check_not_input(out, inputs)
    with atomic_output(output) as f:
        result = _write(tree, f.fileno(), output)
    return result


def tree_inputs(tree: GuestTree, manifest=None):
    """``(what, path)`` for the manifest and every host file the tree copies data from."""
    if manifest is not None:
        yield "the manifest", manifest
    for guest, node in tree.walk():
        if isinstance(node, File) and node.source.path is not None:
            yield f"the host file of {guest}", node.source.path


@dataclass
class _Frame:
    node: Dir
    inode: list
    items: object
    entries: list


def _write(tree: GuestTree, fd: int, output: str) -> RofsBuildResult:
    bs = S.ROFS_BLOCK_SIZE
    block = 1                          # block 0 is the superblock, written last
    inodes: list[list] = []            # [mode, inode_no, data_offset, count]
    dir_entries: list[bytes] = []
    symlinks: list[bytes] = []
    files = data_bytes = 0

    def new_inode(mode: int) -> list:
        ino = [mode, len(inodes) + 1, 0, 0]
        inodes.append(ino)
        return ino

    def children(d: Dir):
        return iter(sorted(((fsname(n), c) for n, c in d.children.items()), key=lambda x: x[0]))

    with _Copier(fd, output) as copier:     # the write-behind ends with the copy
        root = new_inode(S.S_IFDIR)
        frames = [_Frame(tree.root, root, children(tree.root), [])]
        bar = progress(None, "writing ROFS")
        while frames:
            fr = frames[-1]
            item = next(fr.items, None)
            if item is None:
                frames.pop()
                fr.inode[2] = len(dir_entries)
                fr.inode[3] = len(fr.entries)
                dir_entries.extend(fr.entries)
                continue
            name, node = item
            if isinstance(node, Dir):
                ino = new_inode(S.S_IFDIR)
                frames.append(_Frame(node, ino, children(node), []))
            elif isinstance(node, Symlink):
                ino = new_inode(S.S_IFLNK)
                ino[2], ino[3] = len(symlinks), 1
                symlinks.append(S.rofs_symlink_c.build({"path": fsname(node.target)}))
            else:
                ino = new_inode(S.S_IFREG)
                size = _copy_in(node, copier, block * bs)
                ino[2], ino[3] = block, size
                block += S.blocks_for(size)
                files += 1
                data_bytes += size
                bar.update(size)
            fr.entries.append(S.rofs_dir_entry_c.build({"inode_no": ino[1], "filename": name}))

        bar.close()
    structure = bytearray()
    for e in dir_entries:
        structure += e
    for s in symlinks:
        structure += s
    for mode, no, off, count in inodes:
        structure += S.rofs_inode_c.build({"mode": mode, "inode_no": no, "data_offset": off,
                                           "count": count})
    nblocks = S.blocks_for(len(structure))
    # gen-rofs-img pads with 512 - len % 512 zeros: a whole extra block when already aligned
    structure += bytes(bs - len(structure) % bs)
    _pwrite_all(fd, bytes(structure), block * bs, output)
    sb = S.rofs_super_block_c.build({
        "block_size": bs,
        "structure_info_first_block": block,
        "structure_info_blocks_count": nblocks,
        "directory_entries_count": len(dir_entries),
        "symlinks_count": len(symlinks),
        "inodes_count": len(inodes),
    })
    _pwrite_all(fd, sb + bytes(bs - len(sb)), 0, output)
    size = block * bs + len(structure)
    os.ftruncate(fd, size)
    log.info("%s: %d inodes, %d files, %d bytes of data, %d bytes", output, len(inodes), files,
             data_bytes, size)
    return RofsBuildResult(output, size, block, nblocks, len(dir_entries), len(symlinks),
                           len(inodes), files, data_bytes)


def _pwrite_all(fd: int, data: bytes, offset: int, output: str) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.pwrite(fd, view, offset)
        except OSError as exc:
            raise OsvkitIOError(f"write failed: {exc.strerror}", path=output) from None
        view = view[n:]
        offset += n


def _copy_in(node: File, copier: "_Copier", dst_off: int) -> int:
    """Copy a file's data into the image at ``dst_off``; return its size in bytes."""
    dst, output = copier.dst, copier.output
    src = node.source
    if src.data is not None:
        _pwrite_all(dst, src.data, dst_off, output)
        return len(src.data)
    if src.read is not None:
        return _copy_read(src, dst, dst_off, output)
    origin = node.origin
    try:
        fd = os.open(src.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise origin.error(f"host file {src.path} disappeared", cls=ManifestInputError,
                           expected="an existing host file") from None
    except OSError as exc:
        raise origin.error(f"cannot read host file {src.path}: {exc.strerror}",
                           cls=ManifestInputError, expected="a readable file") from None
    try:
        st = os.fstat(fd)
        total = st.st_size
        if total == 0 and src.size is None and stat.S_ISREG(st.st_mode):
            # /proc, /sys and the like say 0 bytes and have content when read
            return _copy_unsized(fd, dst, dst_off, node, output)
        if src.size is not None:
            if src.offset + src.size > total:
                raise origin.error(f"{src.path} has {total} bytes, not {src.offset + src.size}",
                                   cls=ManifestInputError, expected="the bytes it had")
            total = src.size
        else:
            total -= src.offset
        copier.copy(fd, src.offset, total, dst_off, node)
        return total
    finally:
        os.close(fd)


def _copy_read(src: FileSource, dst: int, dst_off: int, output: str) -> int:
    """Copy ``src.size`` bytes through ``src.read`` a chunk at a time (all-zero chunks are
    left as holes: the image file is new)."""
    done = 0
    while done < src.size:
        n = min(CHUNK_SIZE, src.size - done)
        chunk = src.read(src.offset + done, n)
        if chunk.count(0) != n:
            _pwrite_all(dst, chunk, dst_off + done, output)
        done += n
    return src.size


#: the most a file whose size the host does not report (/proc) may hold
UNSIZED_MAX = 64 << 20


def _copy_unsized(fd: int, dst: int, dst_off: int, node: File, output: str) -> int:
    """Copy a host file that reports size 0 by reading it to its end (without waiting: a
    file that would block, such as /proc/kmsg, is an error)."""
    os.set_blocking(fd, False)
    total = 0
    while True:
        try:
            chunk = os.read(fd, CHUNK_SIZE)
        except BlockingIOError:
            raise node.origin.error(f"host file {node.source.path} reports no size and "
                                    "reading it would wait for more", cls=ManifestInputError,
                                    expected="a file that ends") from None
        except OSError as exc:
            raise node.origin.error(f"cannot read host file {node.source.path}: {exc.strerror}",
                                    cls=ManifestInputError, expected="a readable file") from None
        if not chunk:
            return total
        total += len(chunk)
        if total > UNSIZED_MAX:
            raise node.origin.error(f"host file {node.source.path} reports no size and has "
                                    f"more than {UNSIZED_MAX} bytes", cls=ManifestInputError,
                                    expected="a regular file with a size")
        _pwrite_all(dst, chunk, dst_off + total - len(chunk), output)


def _segments(fd: int, start: int, end: int):
    """Yield the (begin, end) byte ranges in [start, end) that may hold data (not holes)."""
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                return
            yield pos, end                # SEEK_DATA unsupported: all data
            return
        if data >= end:
            return
        try:
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError:
            hole = end
        yield data, min(hole, end)
        pos = hole


#: errnos that mean "this copy path does not work for these two files", not a bad input
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM,
                errno.EBADF, errno.ENOTSUP}
#: start writing the image back every this many bytes copied, and wait for the window
#: before the last to be on disk ("write-behind"): the disk works while the copy goes on,
#: the single fsync at the end has little left to do, and the image's dirty page cache stays
#: within a few windows instead of growing with the image (16-64 MiB measured alike, 128
#: MiB slower)
WRITEBACK_EVERY = 32 << 20
#: write-back is started only up to a multiple of this (the largest folio the page cache
#: uses): the next write never lands in a folio under write-back, which would make it wait
WRITEBACK_ALIGN = 2 << 20


class _Copier:
    """Copies host file ranges into the image with the fastest path that works: the
    kernel's ``copy_file_range``, then ``sendfile``, then reads and writes (1 MiB at a time,
    never more in memory); once a path fails for a pair of files it is not tried again.
    Each call copies at most :data:`WRITEBACK_EVERY` bytes, so the write-behind keeps pace."""

    def __init__(self, dst: int, output: str):
        self.dst, self.output = dst, output
        self.paths = [p for p in ("copy_file_range", "sendfile") if hasattr(os, p)] + ["read"]
        self.copied_to = 0                      # the end of the highest byte copied so far
        self.started_to = 0                     # write-back handed on for [0, started_to)
        self.behind = _WriteBehind(dst, output)
        self.buffer = None                      # the read path's 1 MiB buffer, made once

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # the thread is always ended before the image's fd is closed; its write error is
        # raised unless another error is already on its way out
        self.behind.close(raise_error=exc_type is None)

    def _once(self, path: str, src: int, pos: int, want: int, at: int) -> int:
        if path == "copy_file_range":
            return os.copy_file_range(src, self.dst, want, pos, at)
        if path == "sendfile":
            os.lseek(self.dst, at, os.SEEK_SET)
            return os.sendfile(self.dst, src, pos, want)
        if self.buffer is None:
            self.buffer = memoryview(bytearray(CHUNK_SIZE))
        view = self.buffer[:min(want, CHUNK_SIZE)]
        n = os.preadv(src, [view], pos) if hasattr(os, "preadv") else _pread_into(src, view, pos)
        _pwrite_all(self.dst, view[:n], at, self.output)
        return n

    def copy(self, src: int, off: int, size: int, dst_off: int, node: File) -> None:
        # look for holes only in files big enough to have them worth skipping
        segments = _segments(src, off, off + size) if size > CHUNK_SIZE else [(off, off + size)]
        for a, b in segments:
            pos = a
            while pos < b:
                path = self.paths[0]
                at = dst_off + (pos - off)
                try:
                    n = self._once(path, src, pos, min(b - pos, WRITEBACK_EVERY), at)
                except OSError as exc:
                    if exc.errno in OUTPUT_ERRNOS:
                        raise OsvkitIOError(f"write failed: {exc.strerror}",
                                            path=self.output) from None
                    if path == "read" or exc.errno not in _UNSUPPORTED:
                        raise node.origin.error(f"cannot read host file {node.source.path}: "
                                                f"{exc.strerror}", cls=ManifestInputError,
                                                expected="a readable file") from None
                    self.paths.pop(0)
                    continue
                if n == 0:
                    raise node.origin.error(f"host file {node.source.path} shrank while it was "
                                            "copied", cls=ManifestInputError,
                                            expected="a file that does not change")
                pos += n
                self._written(at + n)

    def _written(self, end: int) -> None:
        self.copied_to = max(self.copied_to, end)
        upto = self.copied_to - self.copied_to % WRITEBACK_ALIGN
        if upto - self.started_to >= WRITEBACK_EVERY:
            self.behind.submit(self.started_to, upto)
            self.started_to = upto


class _WriteBehind:
    """Starts the write-back of each window of the image and waits until the window
    before it is on disk, in a thread of its own: the kernel builds and submits the I/O in
    the thread that asks for it, so here that work runs beside the copy, not between its
    calls (the GIL is released in both).  At most two windows wait to be handed on; past
    that the copy waits, which bounds the image's dirty page cache.  The pages stay cached (a
    usr.img build reads the image again).  A write error found here is reported: the kernel
    reports it to the first caller that waits, and the final fsync would not see it again."""

    def __init__(self, fd: int, output: str):
        self.fd, self.output = fd, output
        self.thread = self.queue = None
        self.error: OsvkitIOError | None = None
        self.waiting = None                     # the window whose write-back runs

    def submit(self, begin: int, end: int) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            import queue
            import threading

            self.queue = queue.Queue(2)
            self.thread = threading.Thread(target=self._run, name="osvkit-write-behind",
                                           daemon=True)
            self.thread.start()
        self.queue.put((begin, end))

    def _run(self) -> None:
        while (window := self.queue.get()) is not None:
            if self.error is None:          # after an error, only drain the queue
                try:
                    self._one(window)
                except OsvkitIOError as exc:
                    self.error = exc

    def _one(self, window: tuple[int, int]) -> None:
        _sync_range(self.fd, *window, _SYNC_FILE_RANGE_WRITE, self.output)
        if self.waiting is not None:
            _sync_range(self.fd, *self.waiting, _SYNC_FILE_RANGE_WAIT_ALL, self.output)
        self.waiting = window

    def close(self, raise_error: bool = True) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if raise_error and self.error is not None:
            raise self.error


def _pread_into(fd: int, view: memoryview, pos: int) -> int:
    data = os.pread(fd, len(view), pos)
    view[:len(data)] = data
    return len(data)


# <linux/fs.h>: SYNC_FILE_RANGE_WAIT_BEFORE = 1, _WRITE = 2 (start write-out, no wait),
# _WAIT_AFTER = 4; all three: "write the range and wait until it is on disk"
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WAIT_ALL = 1 | 2 | 4
#: errnos of sync_file_range that mean "not for this file" (the write-behind is then left to
#: the final fsync), not a failed write
_SYNC_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP, errno.EPERM}
_sync_file_range = None


def _sync_range(fd: int, begin: int, end: int, flags: int, output: str) -> None:
    """Linux's ``sync_file_range(fd, begin, end - begin, flags)`` (not in the os module); a
    no-op where the C library or the file system lacks it.  A failed write is a one-line
    I/O error (74) naming ``output``."""
    global _sync_file_range
    if _sync_file_range is None:
        try:
            import ctypes

            func = ctypes.CDLL(None, use_errno=True).sync_file_range
            func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            _sync_file_range = func
        except (OSError, AttributeError):
            _sync_file_range = False
    if not _sync_file_range:
        return
    if _sync_file_range(fd, begin, end - begin, flags) != 0:
        import ctypes

        err = ctypes.get_errno()
        if err in _SYNC_UNSUPPORTED:
            _sync_file_range = False
            return
        raise OsvkitIOError(f"write failed: {os.strerror(err)}", path=output)
