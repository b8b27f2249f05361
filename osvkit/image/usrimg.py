"""Build and read BIOS-bootable usr.img disk images.

Layout of an image built here (compatible with OSv's tools)::

    0x00000  LBA 0     osvkit boot16 (the MBR: "VSO" signature, partition table, 55 AA)
    0x00200  LBA 1     the command line, NUL-terminated (area of 63 sectors)
    0x10000  LBA 128   the payload: osvkit's decompressor + the kernel in OSv's lzloader
                       segment format (``compression="fastlz"``), or the kernel ELF itself
                       (``compression="none"``)
    kernel_end         MBR entry index 1 (type 0x83, OSv's CHS packing): the application
                       filesystem, at the next 2 MiB boundary after the payload
                       (``kernel_end = roundup(64 KiB + payload, 2 MiB)``, like scripts/build);
                       without ``partition`` the entry is empty (size 0) but still valid, as
                       in OSv's ramfs images, so OSv's kernel sees /dev/vblk0.1.

The image is written atomically; ``image_format="qcow2"`` converts the raw image with
``qemu-img convert -O qcow2`` (deterministic: the same input gives the same bytes).

The reader (:func:`osvkit.inspect.inspect_usr_image`) also understands images made by OSv's
own scripts (OSv's boot16 and ``lzloader.elf`` at LBA 128).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .. import layout, units
from ..boot import boot16, lzdecomp, mbr
from ..cmdline import Cmdline
from ..disk import open_disk
from ..errors import (LayoutError, MissingInputError, OsvkitIOError, OutputError, ToolError,
                      UsageError)
from ..fileio import (atomic_output, check_not_input, largest_file_size, output_errors,
                      remove_stale_temporaries)
from . import lzloader
from .extract import load_any_kernel
from .kernel import Kernel, check_kernel

COMPRESSIONS = ("fastlz", "none")
IMAGE_FORMATS = ("raw", "qcow2")


def parse_size(value: int | str) -> int:
    """``4096``, ``"512M"``, ``"1G"``, ``"64K"`` (binary units) -> bytes (bounded: see
    :func:`osvkit.units.parse_size`)."""
    return units.parse_size(value, "size", maximum=None)


#: the largest size a file can have anywhere (off_t is a signed 64-bit number)
MAX_FILE_SIZE = (1 << 63) - 1


def fit_size(f, size: int, output) -> None:
    """Set the size of the image being written to ``size`` (sparse); a size the output's
    file system cannot hold is a usage error naming that file system's limit."""
    try:
        f.truncate(size)
    except (OSError, OverflowError) as exc:
        if isinstance(exc, OSError) and exc.errno != errno.EFBIG:
            raise OsvkitIOError(f"cannot write: {exc.strerror}", path=output) from None
        limit = largest_file_size(f)
        raise UsageError(f"--size {size} is more than the file system of the output holds "
                         f"in one file", path=output, expected=f"at most {limit} bytes") from None


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


@dataclass
class BuildResult:
    output: str
    image_format: str
    compression: str
    kernel_size: int
    payload_size: int
    payload_sectors: int
    cmdline: str
    kernel_end: int
    partition_offset: int
    partition_size: int
    image_size: int
    """Virtual disk size."""
    file_size: int
    elapsed: float
    segments: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "output", "image_format", "compression", "kernel_size", "payload_size",
            "payload_sectors", "cmdline", "kernel_end", "partition_offset", "partition_size",
            "image_size", "file_size", "elapsed", "segments")}

    def describe(self) -> str:
        """What was built, for people (``osvkit build`` without --json)."""
        return "\n".join([
            f"wrote {self.output} ({self.image_format}, {self.image_size} bytes virtual, "
            f"file of {self.file_size} bytes) in {self.elapsed:.3f} s",
            f"  kernel {self.kernel_size} bytes -> payload {self.payload_size} bytes "
            f"({self.payload_sectors} sectors, compression {self.compression})",
            f"  partition 1 at {self.partition_offset:#x}, {self.partition_size} bytes",
            f"  cmdline: {self.cmdline!r}"])


def check_usr_cmdline(cmdline: str, *, force: bool = False) -> bytes:
    """The command line's bytes: at most 1023 (OSv's ``save_cmdline`` limit) or, with
    ``force``, what boot16's 63-sector area holds (32,255 bytes + NUL)."""
    from ..cmdline import check_cmdline

    return check_cmdline(cmdline, "bios" if force else "osv")


def make_payload(kernel_data: bytes, compression: str) -> tuple[bytes, int, int | None, list]:
    """(payload bytes, load address, decompressor entry or None, segment table dicts)."""
    if compression == "fastlz":
        blob = lzloader.compress(kernel_data)
        info = lzloader.parse(blob)
        if len(info.segments) > lzdecomp.MAX_SEGMENTS:  # pragma: no cover - > 40 GiB
            raise LayoutError(f"{len(info.segments)} lz segments", expected="fewer")
        payload = lzdecomp.build_payload(blob, len(kernel_data))
        return payload, layout.LZ_BLOB_ADDR, layout.LZ_BLOB_ADDR, [s.to_dict() for s in info.segments]
    if compression == "none":
        return kernel_data, layout.KERNEL_BASE_ADDR, None, []
    raise UsageError(f"compression {compression!r}", expected=" or ".join(COMPRESSIONS))


def _copy_partition(src, dst) -> None:
    """Copy ``src`` to ``dst`` at its position: in the kernel (``copy_file_range``, no trip
    through user space) when the files allow it, else in 1 MiB chunks."""
    dst.flush()
    pos, done = dst.tell(), 0
    size = os.fstat(src.fileno()).st_size
    if hasattr(os, "copy_file_range"):
        try:
            while done < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - done, done, pos + done)
                if n == 0:
                    break
                done += n
        except OSError:
            pass  # another filesystem, or no support: the plain copy below
    if done < size:
        src.seek(done)
        dst.seek(pos + done)
        shutil.copyfileobj(src, dst, 1 << 20)
    dst.seek(pos + size)


def build_usr_image(kernel, output, *, cmdline: Cmdline | str = "",
                    compression: str = "fastlz", image_format: str = "raw", partition=None,
                    size=None, force_cmdline: bool = False) -> BuildResult:
    """Build a BIOS-bootable usr.img from ``kernel`` (a path or a :class:`Kernel`);
    ``cmdline`` is an :class:`osvkit.cmdline.Cmdline` or its text."""
    started = time.perf_counter()
    cmdline = str(cmdline)
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"image format {image_format!r}", expected=" or ".join(IMAGE_FORMATS))
    if compression not in COMPRESSIONS:
        raise UsageError(f"compression {compression!r}", expected=" or ".join(COMPRESSIONS))
    if isinstance(kernel, Kernel):
        kern = kernel
    elif isinstance(kernel, (bytes, bytearray)):
        kern = check_kernel(bytes(kernel))
    else:
        kern = load_any_kernel(kernel)    # a kernel ELF, or an image holding one
    check_not_input(output, [("the kernel of this build", kern.path or None),
                             ("the partition of this build", partition)])
    data = kern.data
    if layout.KERNEL_BASE_ADDR + len(data) > layout.IDENTITY_MAP_END:
        raise LayoutError(f"kernel file of {len(data)} bytes reaches past 1 GiB at 0x200000",
                          path=kern.path, expected="a kernel below 1 GiB")
    cmd_bytes = check_usr_cmdline(cmdline, force=force_cmdline)

    payload, load_addr, entry, segments = make_payload(data, compression)
    payload_sectors = _round_up(len(payload), layout.SECTOR_SIZE) // layout.SECTOR_SIZE
    payload_end = layout.KERNEL_OFFSET + payload_sectors * layout.SECTOR_SIZE
    kernel_end = _round_up(payload_end, layout.PARTITION_ALIGN)

    part_size = 0
    if partition is not None:
        try:
            part_size = os.path.getsize(partition)
        except FileNotFoundError:
            raise MissingInputError("no such file", path=partition) from None
        except OSError as exc:
            raise MissingInputError(f"cannot read: {exc.strerror}", path=partition) from None
        if os.path.isdir(partition):
            raise MissingInputError("is a directory", path=partition,
                                    expected="a filesystem image file")
        if not os.path.isfile(partition):
            # a pipe or device: stat says 0 bytes, and the partition came out empty
            raise MissingInputError("is not a regular file (a pipe or device?)", path=partition,
                                    expected="a filesystem image file")
    part_sectors = _round_up(part_size, layout.SECTOR_SIZE) // layout.SECTOR_SIZE
    content_end = kernel_end + part_sectors * layout.SECTOR_SIZE
    image_size = content_end
    if size is not None:
        image_size = parse_size(size)
        if image_size > MAX_FILE_SIZE:
            raise UsageError(f"--size {image_size} is more than a file can hold",
                             expected=f"at most {MAX_FILE_SIZE} bytes (the largest file offset)")
        if image_size < content_end:
            raise LayoutError(f"--size {image_size} is smaller than the content "
                              f"({content_end} bytes)", expected=f"at least {content_end}")
        if image_size % layout.SECTOR_SIZE:
            raise LayoutError(f"--size {image_size} is not a multiple of 512",
                              expected="a whole number of sectors")

    table = mbr.partition_table({layout.APP_PARTITION_INDEX: mbr.partition_entry_osv(
        kernel_end // layout.SECTOR_SIZE, part_sectors)})
    sector = boot16.build_boot_sector(payload_sectors=payload_sectors, load_addr=load_addr,
                                      decompressor_entry=entry, partitions=table)

    def write_raw(f):
        f.write(sector)
        f.write(cmd_bytes + b"\0")
        f.seek(layout.KERNEL_OFFSET)
        f.write(payload)
        if partition is not None:
            f.seek(kernel_end)
            try:
                with open(partition, "rb") as src:
                    _copy_partition(src, f)
            except OSError as exc:
                raise MissingInputError(f"cannot read: {exc.strerror}", path=partition) from None
        fit_size(f, image_size, output)

    if image_format == "raw":
        with atomic_output(output) as f:
            write_raw(f)
    else:
        _write_qcow2(output, write_raw)
    return BuildResult(
        output=os.fspath(output), image_format=image_format, compression=compression,
        kernel_size=len(data), payload_size=len(payload), payload_sectors=payload_sectors,
        cmdline=cmdline, kernel_end=kernel_end, partition_offset=kernel_end,
        partition_size=part_sectors * layout.SECTOR_SIZE, image_size=image_size,
        file_size=os.path.getsize(output), elapsed=round(time.perf_counter() - started, 4),
        segments=segments)


def _write_qcow2(output, write_raw) -> None:
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise ToolError("qemu-img not found", expected="qemu-img on PATH for --image-format qcow2")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise OutputError("directory does not exist", path=output)
    # scratch space next to a regular output (same filesystem, cheap rename); elsewhere for
    # "-o /dev/stdout" and the like, which atomic_output writes into
    scratch = directory if not os.path.islink(output) and (
        not os.path.exists(output) or os.path.isfile(output)) else None
    if scratch is not None:
        remove_stale_temporaries(scratch)
    try:
        tmpdir = tempfile.TemporaryDirectory(prefix=".osvkit-", dir=scratch)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror}", path=output) from None
    with tmpdir as tmp:
        raw = os.path.join(tmp, "raw.img")
        with output_errors(output), open(raw, "wb") as f:
            write_raw(f)
        qcow = os.path.join(tmp, "out.qcow2")
        proc = subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolError(f"qemu-img convert failed: {proc.stderr.strip()}", path=output)
        if scratch is not None and not os.path.isdir(output):
            os.chmod(qcow, 0o644)
            try:
                os.replace(qcow, output)
            except OSError as exc:
                raise OutputError(f"cannot create: {exc.strerror}", path=output) from None
        else:   # a device or FIFO is written into, never replaced (see atomic_output)
            with open(qcow, "rb") as src, atomic_output(output) as dst:
                shutil.copyfileobj(src, dst)


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_image(path):
    """Yield ``(reader, format, virtual_size)`` where ``reader(offset, size) -> bytes`` reads
    up to ``size`` bytes (fewer at the end); raw and qcow2 through :func:`osvkit.disk.open_disk`."""
    with open_disk(path) as disk:
        yield disk.read_upto, disk.format, disk.size
