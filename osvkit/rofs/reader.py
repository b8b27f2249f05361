"""Read a ROFS image: list its tree, read files, extract it to a directory.

Independent of the writer: it shares only :mod:`osvkit.structs.rofs`.  Opening an image
checks it the way OSv's mount does (``fs/rofs/rofs_vfsops.cc``: magic, version, a non-zero
structure block count, every directory entry, symlink and the inode table inside the
structure blocks) and then what OSv checks only when a path is used (``rofs_vnops.cc``): that
inode numbers and directory child ranges are inside their tables.  On top of that, so that
listing and extracting are safe, it checks that the tables lie inside the image, that file
data lies inside the image, that names are usable (not empty, ``.``, ``..``, no ``/`` or NUL),
that no directory has two children with one name, and that the directory graph is a tree
(no directory reached twice).  Every failure is a one-line
:class:`~osvkit.errors.FormatError`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from .. import layout
from ..disk import detect_format, open_disk
from ..disk.files import open_image_fd
from ..disk.partitions import partition_extent
from ..errors import FormatError, OsvkitError, OsvkitIOError, OutputError, UsageError
from ..fileio import OUTPUT_ERRNOS, check_not_input
from ..structs import rofs as S
from .manifest import Dir, File, FileSource, GuestTree, Origin, Symlink

_TYPES = {S.S_IFDIR: "dir", S.S_IFREG: "file", S.S_IFLNK: "symlink"}


@dataclass
class RofsEntry:
    """One path in the image."""

    path: str
    type: str                 # "dir" | "file" | "symlink"
    inode_no: int
    size: int                 # file: bytes; dir: children; symlink: target bytes
    target: str | None = None
    data_offset: int = 0      # file: byte offset of the data in the image (from its start)

    def to_dict(self) -> dict:
        d = {"path": self.path, "type": self.type, "inode": self.inode_no, "size": self.size}
        if self.target is not None:
            d["target"] = self.target
        return d


@dataclass
class RofsListing:
    """What ``osvkit inspect`` / ``osvkit rofs ls`` show about an image."""

    path: str
    offset: int
    superblock: dict
    entries: list[RofsEntry] = field(default_factory=list)
    partition: int | None = None

    def summary(self) -> dict:
        """Counts for a one-line tree summary (``osvkit inspect usr.img``)."""
        kinds = [e.type for e in self.entries]
        return {"format": "rofs", "files": kinds.count("file"), "directories": kinds.count("dir"),
                "symlinks": kinds.count("symlink"),
                "data_bytes": sum(e.size for e in self.entries if e.type == "file")}

    def to_dict(self) -> dict:
        return {"format": "rofs", "path": self.path, "offset": self.offset,
                "partition": self.partition,
                "superblock": self.superblock, "entries": [e.to_dict() for e in self.entries]}

    def describe(self) -> str:
        """``ls -l``-like text (:func:`format_listing`)."""
        return format_listing(self)


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class RofsImage:
    """A ROFS image in a file, from byte ``offset`` (e.g. a partition of a raw disk image),
    ``size`` bytes long (default: to the end of the file).

    With ``partition=N`` the file is a disk image, raw or qcow2 (read through
    :func:`osvkit.disk.open_disk`), and the ROFS is MBR partition entry ``N`` (OSv's
    usr.img keeps it in entry 1).  A qcow2 file is always read that way."""

    def __init__(self, path: str | os.PathLike, *, offset: int = 0, size: int | None = None,
                 partition: int | None = None):
        self.path = os.fspath(path)
        self.offset = offset
        self.partition = partition
        self._disk = None
        self._fd = -1
        if offset < 0:
            raise UsageError(f"offset {offset}", expected="a byte offset of 0 or more")
        if partition is not None or detect_format(self.path, what="a ROFS image") == "qcow2":
            self._open_disk(partition, size)
        else:
            self._fd = open_image_fd(self.path, what="a ROFS image")
            end = os.lseek(self._fd, 0, os.SEEK_END)     # files and block devices
            self.size = (end - offset) if size is None else size
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _open_disk(self, partition: int | None, size: int | None) -> None:
        self._disk = open_disk(self.path)
        try:
            if partition is not None:
                if self.offset:
                    raise UsageError("both an offset and a partition", expected="one of them")
                part = partition_extent(self._disk, partition)
                self.offset, self.size = part.offset, part.size
            else:
                self.size = (self._disk.size - self.offset) if size is None else size
        except BaseException:
            self._disk.close()
            raise

    # context manager / cleanup
    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _err(self, what: str, expected: str | None = None) -> FormatError:
        return FormatError(what, path=self.path, expected=expected)

    def _pread(self, n: int, off: int) -> bytes:
        if self._disk is not None:
            n = max(0, min(n, self.size - off))
            return self._disk.read_upto(self.offset + off, n)
        try:
            data = os.pread(self._fd, n, self.offset + off)
        except OSError as exc:
            raise OsvkitIOError(f"read failed: {exc.strerror}", path=self.path) from None
        return data

    def _disk_hint(self) -> str:
        """Words for the magic error when the whole of a disk image was read as a ROFS."""
        if self.partition is not None or self.offset:
            return ""
        sector = self._pread(layout.SECTOR_SIZE, 0)
        if sector[layout.MBR_SIGNATURE_OFFSET:layout.SECTOR_SIZE] != layout.MBR_BOOT_SIGNATURE:
            return ""
        return (" (this is a disk image with a partition table: give the MBR entry holding "
                "the ROFS with --partition N; OSv's usr.img keeps it in entry 1)")

    def _load(self) -> None:
        bs = S.ROFS_BLOCK_SIZE
        if self.size < bs:
            raise self._err(f"{max(self.size, 0)} bytes, too short for a ROFS superblock",
                            f"at least {bs} bytes")
        head = self._pread(S.ROFS_SUPER_BLOCK_SIZE, 0)
        magic = int.from_bytes(head[0:8], "little")
        if magic != S.ROFS_MAGIC:
            raise self._err(f"bad ROFS magic {magic:#x}", f"{S.ROFS_MAGIC:#x}" + self._disk_hint())
        version = int.from_bytes(head[8:16], "little")
        if version != S.ROFS_VERSION:
            raise self._err(f"ROFS version {version}", f"version {S.ROFS_VERSION}")
        sb = S.rofs_super_block.parse(head)
        self.superblock = {k: v for k, v in sb.items() if not k.startswith("_")}
        if sb.block_size != bs:
            raise self._err(f"block_size {sb.block_size}", f"{bs} (OSv reads 512-byte blocks)")
        first, count = sb.structure_info_first_block, sb.structure_info_blocks_count
        nblocks = self.size // bs
        if count == 0:
            raise self._err("structure_info_blocks_count 0", "at least 1")
        if first == 0 or first >= nblocks or count > nblocks - first:
            raise self._err(f"structure blocks {first}..{first + count - 1} outside the image's "
                            f"{nblocks} blocks", "tables after the superblock, inside the image")
        buf = self._pread(count * bs, first * bs)
        if len(buf) != count * bs:
            raise self._err("structure blocks truncated", f"{count * bs} bytes")
        pos = 0
        end = len(buf)
        # directory entries: u64 inode_no, u16 name_len, name
        self.dir_entries: list[tuple[int, bytes]] = []
        for i in range(sb.directory_entries_count):
            if end - pos < S.ROFS_DIR_ENTRY_HEAD_SIZE:
                raise self._err(f"directory entry table truncated at entry {i} of "
                                f"{sb.directory_entries_count}", "all entries inside the structure blocks")
            n = int.from_bytes(buf[pos + 8:pos + 10], "little")
            if end - pos - S.ROFS_DIR_ENTRY_HEAD_SIZE < n:
                raise self._err(f"directory entry {i} name ({n} bytes) out of bounds",
                                "names inside the structure blocks")
            e = S.rofs_dir_entry_c.parse(buf[pos:pos + S.ROFS_DIR_ENTRY_HEAD_SIZE + n])
            self.dir_entries.append((e.inode_no, e.filename))
            pos += S.ROFS_DIR_ENTRY_HEAD_SIZE + n
        # symlinks: u16 len, path
        self.symlinks: list[bytes] = []
        for i in range(sb.symlinks_count):
            if end - pos < S.ROFS_SYMLINK_HEAD_SIZE:
                raise self._err(f"symlink table truncated at symlink {i} of {sb.symlinks_count}",
                                "all symlinks inside the structure blocks")
            n = int.from_bytes(buf[pos:pos + 2], "little")
            if end - pos - S.ROFS_SYMLINK_HEAD_SIZE < n:
                raise self._err(f"symlink {i} path ({n} bytes) out of bounds",
                                "paths inside the structure blocks")
            self.symlinks.append(S.rofs_symlink_c.parse(buf[pos:pos + 2 + n]).path)
            pos += 2 + n
        # inodes: 32 bytes each
        if sb.inodes_count > (end - pos) // S.ROFS_INODE_SIZE:
            raise self._err(f"inode table ({sb.inodes_count} inodes) out of bounds",
                            f"at most {(end - pos) // S.ROFS_INODE_SIZE} inodes in the structure blocks")
        if sb.inodes_count == 0:
            raise self._err("no inodes", "inode 1, the root directory")
        self.inodes = []
        for i in range(sb.inodes_count):
            ino = S.rofs_inode_c.parse(buf[pos:pos + S.ROFS_INODE_SIZE])
            pos += S.ROFS_INODE_SIZE
            if ino.inode_no != i + 1:
                raise self._err(f"inode {i + 1} has inode_no {ino.inode_no}", f"{i + 1}")
            kind = _TYPES.get(ino.mode & S.S_IFMT)
            if kind is None:
                raise self._err(f"inode {i + 1} has mode {ino.mode:#x}", "0x4000, 0x8000 or 0xa000")
            if kind == "dir":
                if ino.data_offset + ino.count > sb.directory_entries_count:
                    raise self._err(f"directory inode {i + 1} entries {ino.data_offset}+{ino.count} "
                                    f"out of bounds", f"within the {sb.directory_entries_count} entries")
            elif kind == "symlink":
                if ino.data_offset >= sb.symlinks_count:
                    raise self._err(f"symlink inode {i + 1} index {ino.data_offset} out of bounds",
                                    f"below {sb.symlinks_count}")
            else:
                if ino.data_offset * bs + ino.count > self.size or (ino.count and ino.data_offset == 0):
                    raise self._err(f"file inode {i + 1} data (block {ino.data_offset}, {ino.count} "
                                    f"bytes) outside the image", f"inside its {self.size} bytes")
            self.inodes.append((kind, ino.data_offset, ino.count))
        if self.inodes[0][0] != "dir":
            raise self._err(f"root inode 1 is a {self.inodes[0][0]}", "a directory")
        self.entries = self._walk()

    def _walk(self) -> list[RofsEntry]:
        """The whole tree in pre-order (children in table order, i.e. readdir order);
        checks that it is a tree."""
        out = [RofsEntry("/", "dir", 1, self.inodes[0][2])]
        seen_dirs = {1}

        def frame(base: str, ino_no: int):
            _, first, count = self.inodes[ino_no - 1]
            return base, iter(range(first, first + count)), set()

        stack = [frame("", 1)]
        while stack:
            base, it, names = stack[-1]
            idx = next(it, None)
            if idx is None:
                stack.pop()
                continue
            child, raw = self.dir_entries[idx]
            shown = f"{base or '/'}: {raw[:40]!r}"
            if not raw or raw in (b".", b"..") or b"/" in raw or b"\0" in raw:
                raise self._err(f"bad name {shown}", "a name without '/' or NUL, not . or ..")
            if raw in names:
                raise self._err(f"two entries named {shown}", "unique names in a directory")
            names.add(raw)
            if not 1 <= child <= len(self.inodes):
                raise self._err(f"entry {shown} has inode {child}", f"1..{len(self.inodes)}")
            path = f"{base}/{_name(raw)}"
            kind, off, cnt = self.inodes[child - 1]
            if kind == "dir":
                if child in seen_dirs:
                    raise self._err(f"directory inode {child} reached twice (at {path})",
                                    "a tree without cycles")
                seen_dirs.add(child)
                out.append(RofsEntry(path, kind, child, cnt))
                stack.append(frame(path, child))
            elif kind == "symlink":
                target = self.symlinks[off]
                if not target or b"\0" in target:
                    raise self._err(f"symlink {path} has target {target[:40]!r}",
                                    "a non-empty target without NUL")
                out.append(RofsEntry(path, kind, child, len(target), target=_name(target)))
            else:
                out.append(RofsEntry(path, kind, child, cnt, data_offset=off * S.ROFS_BLOCK_SIZE))
        return out

    # -- data -------------------------------------------------------------------------------
    def read(self, entry: RofsEntry) -> bytes:
        """The whole content of a file entry (small files; extract streams)."""
        data = self._pread(entry.size, entry.data_offset)
        if len(data) != entry.size:
            raise self._err(f"{entry.path}: data truncated", f"{entry.size} bytes")
        return data

    def pread(self, offset: int, n: int) -> bytes:
        """Exactly ``n`` bytes at ``offset`` from the start of the ROFS (a one-line
        FormatError when the image ends first)."""
        data = self._pread(n, offset)
        if len(data) != n:
            raise self._err(f"data truncated: {len(data)} of {n} bytes at {offset:#x}",
                            f"{n} bytes")
        return data

    def guest_tree(self) -> GuestTree:
        """The tree as a :class:`~osvkit.rofs.manifest.GuestTree` whose files take their
        data from this image a range at a time, never whole: in a raw image file as a range
        of that file (so the writer copies it in the kernel), otherwise through
        :meth:`pread` (the image must stay open while the tree is used)."""
        tree = GuestTree()
        origin = Origin(self.path, None)
        in_file = self._disk is None or (self._disk.format == "raw" and os.path.isfile(self.path))
        for e in self.entries[1:]:
            if e.type == "dir":
                node = Dir(origin=origin)
            elif e.type == "symlink":
                node = Symlink(origin=origin, target=e.target)
            elif in_file:
                node = File(origin=origin, source=FileSource(
                    path=self.path, offset=self.offset + e.data_offset, size=e.size))
            else:
                node = File(origin=origin, source=FileSource(
                    read=self.pread, offset=e.data_offset, size=e.size))
            tree.add(e.path, node)
        return tree

    def listing(self) -> RofsListing:
        return RofsListing(self.path, self.offset, dict(self.superblock), list(self.entries),
                           self.partition)

    def extract(self, dest: str | os.PathLike) -> "ExtractResult":
        """Write the tree to ``dest`` (which must not exist, or be an empty directory).

        Extraction goes to a temporary directory beside ``dest``, renamed at the end; it
        creates every entry with ``O_EXCL``/``O_NOFOLLOW`` relative to its parent's
        descriptor, so nothing is written outside it."""
        dest = os.path.abspath(os.fspath(dest))
        parent = os.path.dirname(dest)
        try:
            os.lstat(dest)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise OutputError(f"cannot create: {exc.strerror}", path=dest,
                                  expected="a directory name the file system can hold") from None
        if os.path.lexists(dest):
            if not os.path.isdir(dest) or os.path.islink(dest) or os.listdir(dest):
                raise OutputError("exists and is not an empty directory", path=dest,
                                  expected="a new or empty directory")
        if not os.path.isdir(parent):
            raise OutputError("parent directory does not exist", path=dest)
        try:
            tmp = tempfile.mkdtemp(prefix=".osvkit-extract-", dir=parent)
        except OSError as exc:
            raise OutputError(f"cannot create: {exc.strerror}", path=dest) from None
        try:
            files, nbytes = self._extract_into(tmp, dest)
            os.chmod(tmp, 0o755)
            try:
                if os.path.isdir(dest):
                    os.rmdir(dest)
                os.rename(tmp, dest)
            except OSError as exc:   # a name over NAME_MAX, a directory filled meanwhile
                raise OutputError(f"cannot create: {exc.strerror}", path=dest,
                                  expected="a new or empty directory") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return ExtractResult(self.path, dest, len(self.entries), files, nbytes)

    def _extract_into(self, top: str, dest: str) -> tuple[int, int]:
        flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        # descriptors of the current directory and its ancestors only (pre-order walk), so
        # a wide tree does not run out of file descriptors
        stack = [("", os.open(top, flags_dir))]
        files = nbytes = 0
        e = self.entries[0]
        try:
            for e in self.entries[1:]:
                base, _, name = e.path.rpartition("/")
                while stack[-1][0] != base:
                    os.close(stack.pop()[1])
                pfd = stack[-1][1]
                if e.type == "dir":
                    os.mkdir(name, 0o755, dir_fd=pfd)
                    stack.append((e.path, os.open(name, flags_dir, dir_fd=pfd)))
                elif e.type == "symlink":
                    os.symlink(e.target, name, dir_fd=pfd)
                else:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | getattr(os, "O_CLOEXEC", 0), 0o644, dir_fd=pfd)
                    try:
                        self._copy_out(e, fd)
                    finally:
                        os.close(fd)
                    files += 1
                    nbytes += e.size
        except OSError as exc:     # named as the user named it, not as the temporary directory
            if exc.errno in OUTPUT_ERRNOS:
                raise OsvkitIOError(f"write failed: {exc.strerror} (writing {e.path})",
                                    path=dest) from None
            raise OutputError(f"cannot write {e.path}: {exc.strerror}", path=dest) from None
        finally:
            for _, fd in stack:
                os.close(fd)
        return files, nbytes

    def _copy_out(self, e: RofsEntry, out: int) -> None:
        """Copy a file's data out in 1 MiB pieces, leaving holes where the image has them."""
        if self._disk is not None:
            zero = bytes(1 << 20)
            for at in range(0, e.size, 1 << 20):
                chunk = self._pread(min(1 << 20, e.size - at), e.data_offset + at)
                if chunk != zero[:len(chunk)]:
                    view = memoryview(chunk)
                    pos = at
                    while view:
                        n = os.pwrite(out, view, pos)
                        view, pos = view[n:], pos + n
            os.ftruncate(out, e.size)
            return
        start = self.offset + e.data_offset
        end = start + e.size
        pos = start
        while pos < end:
            try:
                data_at = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                data_at = pos
            if data_at >= end:
                break
            try:
                hole_at = min(os.lseek(self._fd, data_at, os.SEEK_HOLE), end)
            except OSError:
                hole_at = end
            while data_at < hole_at:
                chunk = os.pread(self._fd, min(1 << 20, hole_at - data_at), data_at)
                if not chunk:
                    raise self._err(f"{e.path}: data truncated", f"{e.size} bytes")
                view = memoryview(chunk)
                at = data_at - start
                while view:
                    n = os.pwrite(out, view, at)
                    view, at = view[n:], at + n
                data_at += len(chunk)
            pos = hole_at
        os.ftruncate(out, e.size)


@dataclass
class ExtractResult:
    image: str
    directory: str
    entries: int
    files: int
    bytes: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line: the directory written and what went into it."""
        return f"{self.directory}: {self.entries} entries, {self.files} files, {self.bytes} bytes"


def is_rofs(path: str | os.PathLike, offset: int = 0) -> bool:
    """True when the file has the ROFS magic and version at ``offset``."""
    try:
        fd = open_image_fd(path)
    except OsvkitError:
        return False
    try:
        head = os.pread(fd, 16, offset)
    except (OSError, OverflowError):
        return False
    finally:
        os.close(fd)
    return detect_rofs_head(head)


def inspect_rofs(path: str | os.PathLike, offset: int = 0, *,
                 partition: int | None = None) -> RofsListing:
    """Read and check a ROFS image (or MBR ``partition`` of a raw/qcow2 disk image); return
    its superblock and tree (``osvkit inspect``, ``osvkit rofs ls``)."""
    with RofsImage(path, offset=offset, partition=partition) as img:
        return img.listing()


list_rofs = inspect_rofs


def extract_rofs(image: str | os.PathLike, directory: str | os.PathLike, *,
                 offset: int = 0, partition: int | None = None) -> ExtractResult:
    """Extract a ROFS image's tree (or that of MBR ``partition`` of a disk image) into
    ``directory`` (new or empty)."""
    check_not_input(directory, [("the image", image)])
    with RofsImage(image, offset=offset, partition=partition) as img:
        return img.extract(directory)


def format_listing(listing: RofsListing) -> str:
    """``ls -l``-like text: type, size, path and link target."""
    sb = listing.superblock
    lines = [f"{listing.path}: ROFS v{sb['version']}, {sb['inodes_count']} inodes, "
             f"{sb['directory_entries_count']} directory entries, {sb['symlinks_count']} symlinks, "
             f"structure blocks {sb['structure_info_first_block']}+{sb['structure_info_blocks_count']}"]
    for e in listing.entries:
        t = {"dir": "d", "file": "-", "symlink": "l"}[e.type]
        line = f"{t} {e.size:>12} {e.path}"
        if e.target is not None:
            line += f" -> {e.target}"
        lines.append(line)
    return "\n".join(lines)


# -- hooks for osvkit.inspect (its DETECTORS list: (kind, detect(head), inspect(path))) -------
def detect_rofs_head(head: bytes) -> bool:
    """True when the first bytes of a file are a ROFS superblock (magic and version 1)."""
    return (len(head) >= 16 and int.from_bytes(head[:8], "little") == S.ROFS_MAGIC
            and int.from_bytes(head[8:16], "little") == S.ROFS_VERSION)


def inspect_rofs_details(path) -> dict:
    """The ``details`` dict ``osvkit inspect`` shows for a ROFS image."""
    d = inspect_rofs(path).to_dict()
    d.pop("path", None)
    return d


def describe_rofs(path: str, details: dict) -> str:
    """Human rendering of :func:`inspect_rofs_details` (for ``osvkit inspect``)."""
    listing = RofsListing(path, details.get("offset", 0), details["superblock"],
                          [RofsEntry(e["path"], e["type"], e["inode"], e["size"], e.get("target"))
                           for e in details["entries"]])
    return format_listing(listing)
