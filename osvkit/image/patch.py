"""Replace the kernel of a usr.img in place, keeping its command line and its partitions.

:func:`replace_kernel` is the library side of ``osvkit patch IMAGE --kernel KERNEL``:

* the new kernel (a kernel ELF, or an image holding one: :func:`load_any_kernel`) becomes a
  new payload at LBA 128 in osvkit's format (``fastlz`` or ``none``) behind osvkit's boot16 --
  also for an image made by OSv's scripts, whose boot16 could only start OSv's own
  ``lzloader.elf``;
* the command-line area (LBA 1-63) and the rest of the first 64 KiB are kept byte for byte;
* every partition is kept byte for byte.  When the new payload ends past the first
  partition's start, all partitions move by the same distance so that the first one starts at
  the next 2 MiB boundary after the payload (as a fresh ``build`` would place it); their MBR
  entries are rewritten with OSv's CHS packing (:func:`osvkit.boot.mbr.partition_entry_osv`),
  keeping their type and status.  Entries that do not move keep their 16 bytes;
* the virtual disk keeps its size, growing by the distance the partitions moved; bytes past
  the last partition's end (outside any partition) are not kept, they read as zeros;
* the payload area between the new payload and the first partition is zeroed (no stale bytes
  of the old kernel stay behind).

The new image is written whole to a temporary file (sparse: all-zero chunks are skipped) and
renamed over ``output`` (default: the image itself) only when complete; a qcow2 image stays
qcow2 (``qemu-img convert``) unless ``image_format`` says otherwise.  A failed call leaves
every file as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import layout
from ..boot import boot16, mbr
from ..disk import open_disk
from ..disk.partitions import PartitionExtent, parse_partition_table, read_mbr
from ..errors import FormatError, UsageError
from ..fileio import atomic_output, check_not_input, same_file
from ..structs import mbr as mbr_schema
from .extract import load_any_kernel
from .kernel import Kernel, check_kernel
from .usrimg import COMPRESSIONS, IMAGE_FORMATS, _write_qcow2, make_payload

COPY_CHUNK = 1 << 20
"""Bytes copied at a time; an all-zero chunk is skipped, so the raw scratch file stays sparse."""


@dataclass
class PatchResult:
    """What :func:`replace_kernel` did."""

    image: str
    output: str
    image_format: str
    compression: str
    kernel_size: int
    payload_size: int
    payload_sectors: int
    kernel_end: int
    """First byte after the payload, rounded up to 2 MiB (where a fresh build puts the
    partition)."""
    image_size: int
    moved: list[dict] = field(default_factory=list)
    """``{index, old_offset, new_offset, size}`` per partition that moved."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _used(parts: list[PartitionExtent]) -> list[PartitionExtent]:
    """Entries that describe a partition (a type, or a size): these are kept."""
    return [p for p in parts if p.system_id or p.sector_count]


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def _load(kernel) -> Kernel:
    if isinstance(kernel, Kernel):
        return kernel
    if isinstance(kernel, (bytes, bytearray)):
        return check_kernel(bytes(kernel))
    return load_any_kernel(kernel)


def _new_table(c, used: list[PartitionExtent], delta: int) -> bytes:
    """The 64-byte partition table: moved entries rebuilt with OSv's CHS packing, the others
    as they were."""
    entries = {}
    for i, entry in enumerate(c.partitions):
        part = next((p for p in used if p.index == i), None)
        if part is None or delta == 0:
            entries[i] = mbr_schema.PartitionEntry.build(entry)
        else:
            lba = (part.offset + delta) // layout.SECTOR_SIZE
            entries[i] = mbr.partition_entry_osv(lba, part.sector_count,
                                                 system_id=entry.system_id, status=entry.status)
    return mbr.partition_table(entries)


def _plan(disk, path: str, payload_sectors: int):
    """(MBR container, kept partitions, their first offset or None, distance they move,
    new virtual size)."""
    sector = read_mbr(disk)
    c = mbr_schema.MBR.parse(sector)
    used = _used(parse_partition_table(sector))
    payload_end = layout.KERNEL_OFFSET + payload_sectors * layout.SECTOR_SIZE
    for p in used:
        if p.offset < layout.KERNEL_OFFSET:
            raise FormatError(f"partition {p.index} starts at {p.offset:#x}, inside the boot area "
                              f"before LBA 128", path=path,
                              expected="partitions after the kernel, as in OSv's usr.img")
        if p.end > disk.size:
            raise FormatError(f"partition {p.index} ({p.size} bytes at {p.offset:#x}) runs past "
                              f"the {disk.size}-byte disk", path=path,
                              expected="a partition inside the disk")
    first = min((p.offset for p in used), default=None)
    delta = 0
    if first is not None and payload_end > first:
        delta = _round_up(payload_end, layout.PARTITION_ALIGN) - first
    size = max(disk.size + delta, payload_end)
    size = _round_up(size, layout.SECTOR_SIZE)
    last = max((p.end + delta for p in used), default=0)
    if (last - 1) // layout.SECTOR_SIZE >= 2**32:
        raise FormatError(f"the partitions would end at {last:#x}, past what an MBR entry "
                          "addresses (2 TiB)", path=path, expected="a smaller kernel or disk")
    return c, used, first, delta, size


def _copy(disk, f, start: int, end: int, delta: int) -> None:
    """Guest bytes [start, end) of ``disk`` to ``f`` at ``start + delta``, skipping zeros
    (between two partitions, whatever lies there is kept too)."""
    offset = start
    while offset < end:
        n = min(COPY_CHUNK, end - offset)
        chunk = disk.read(offset, n)
        if chunk.count(0) != n:
            f.seek(offset + delta)
            f.write(chunk)
        offset += n


def replace_kernel(image, kernel, *, output=None, compression: str = "fastlz",
                   image_format: str | None = None) -> PatchResult:
    """Give ``image`` (raw or qcow2) a new kernel; see the module docstring.  ``output``
    (default ``image``) is replaced atomically when everything succeeded."""
    image = os.fspath(image)
    output = image if output is None else os.fspath(output)
    if compression not in COMPRESSIONS:
        raise UsageError(f"compression {compression!r}", expected=" or ".join(COMPRESSIONS))
    if image_format is not None and image_format not in IMAGE_FORMATS:
        raise UsageError(f"image format {image_format!r}", expected=" or ".join(IMAGE_FORMATS))
    kern = _load(kernel)
    if kern.path is not None and not same_file(kern.path, image):
        check_not_input(output, [("the kernel of this patch", kern.path)])
    if layout.KERNEL_BASE_ADDR + len(kern.data) > layout.IDENTITY_MAP_END:
        raise FormatError(f"kernel file of {len(kern.data)} bytes reaches past 1 GiB at 0x200000",
                          path=kern.path, expected="a kernel below 1 GiB")
    payload, load_addr, entry, _ = make_payload(kern.data, compression)
    payload_sectors = _round_up(len(payload), layout.SECTOR_SIZE) // layout.SECTOR_SIZE
    with open_disk(image) as disk:
        c, used, first, delta, size = _plan(disk, image, payload_sectors)
        fmt = image_format or disk.format
        sector = boot16.build_boot_sector(payload_sectors=payload_sectors, load_addr=load_addr,
                                          decompressor_entry=entry,
                                          partitions=_new_table(c, used, delta))

        def write_raw(f):
            f.write(sector)
            f.write(disk.read(layout.SECTOR_SIZE, layout.KERNEL_OFFSET - layout.SECTOR_SIZE))
            f.write(payload)
            if first is not None:
                _copy(disk, f, first, max(p.end for p in used), delta)
            f.truncate(size)

        if fmt == "raw":
            with atomic_output(output) as f:
                write_raw(f)
        else:
            _write_qcow2(output, write_raw)
    kernel_end = _round_up(layout.KERNEL_OFFSET + payload_sectors * layout.SECTOR_SIZE,
                           layout.PARTITION_ALIGN)
    moved = [{"index": p.index, "old_offset": p.offset, "new_offset": p.offset + delta,
              "size": p.size} for p in used if delta]
    return PatchResult(image=image, output=output, image_format=fmt, compression=compression,
                       kernel_size=len(kern.data), payload_size=len(payload),
                       payload_sectors=payload_sectors, kernel_end=kernel_end, image_size=size,
                       moved=moved)
