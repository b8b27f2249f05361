"""Rewrite a usr.img with a new kernel, command line or partition contents.

:func:`rewrite_image` is the image side of ``osvkit patch`` (:mod:`osvkit.patch` prepares a
rebuilt ROFS and calls it); :func:`replace_kernel` is its kernel-only form.  A new kernel:

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

Without a new kernel the boot sector and the payload are kept (OSv's boot16 and
``lzloader.elf`` too) and only changed partition entries are rewritten.  A new command-line
area replaces bytes 512 to 32 KiB.  New contents for one partition (:class:`NewPartition`)
replace its old ones and its entry's sector count follows; it must end before the next
partition starts.  A disk that ended where its last partition ended still does; a larger one
keeps its size (plus the distance the partitions moved), growing when the content needs it.

The new image is written whole to a temporary file (sparse: all-zero chunks are skipped) and
renamed over ``output`` (default: the image itself) only when complete; a qcow2 image stays
qcow2 (``qemu-img convert``) unless ``image_format`` says otherwise.  A failed call leaves
every file as it was.
"""

from __future__ import annotations

import os
from functools import partial
from dataclasses import dataclass, field

from .. import layout
from ..boot import boot16, mbr
from ..disk import open_disk
from ..disk.partitions import PartitionExtent, parse_partition_table, read_mbr
from ..errors import FormatError, UsageError
from ..fileio import atomic_output, check_not_input
from ..structs import mbr as mbr_schema
from .extract import load_any_kernel
from .kernel import Kernel, check_kernel
from .usrimg import (COMPRESSIONS, IMAGE_FORMATS, _copy_partition, _round_up, _write_qcow2,
                     make_payload)

COPY_CHUNK = 1 << 20
"""Bytes copied at a time; an all-zero chunk is skipped, so the raw scratch file stays sparse."""


@dataclass
class PatchResult:
    """What :func:`replace_kernel` did."""

    image: str
    output: str
    image_format: str
    compression: str | None
    """The new payload's (None: the kernel was kept)."""
    kernel_size: int | None
    payload_size: int | None
    payload_sectors: int | None
    kernel_end: int | None
    """First byte after the new payload, rounded up to 2 MiB (where a fresh build puts the
    partition)."""
    image_size: int
    moved: list[dict] = field(default_factory=list)
    """``{index, old_offset, new_offset, size}`` per partition that moved."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _used(parts: list[PartitionExtent]) -> list[PartitionExtent]:
    """Entries that describe a partition (a type, or a size): these are kept."""
    return [p for p in parts if p.system_id or p.sector_count]


def _load(kernel) -> Kernel:
    if isinstance(kernel, Kernel):
        return kernel
    if isinstance(kernel, (bytes, bytearray)):
        return check_kernel(bytes(kernel))
    return load_any_kernel(kernel)



@dataclass
class NewPartition:
    """New contents for MBR entry ``index``: the file ``path`` (``size`` bytes, a whole
    number of sectors), replacing the old ones; the entry's sector count follows."""

    index: int
    path: str
    size: int


def _new_table(c, used: list[PartitionExtent], delta: int,
               new_sectors: dict[int, int]) -> bytes:
    """The 64-byte partition table: moved or resized entries rebuilt with OSv's CHS
    packing, the others as they were."""
    entries = {}
    for i, entry in enumerate(c.partitions):
        part = next((p for p in used if p.index == i), None)
        if part is None or (delta == 0 and i not in new_sectors):
            entries[i] = mbr_schema.PartitionEntry.build(entry)
        else:
            lba = (part.offset + delta) // layout.SECTOR_SIZE
            entries[i] = mbr.partition_entry_osv(lba, new_sectors.get(i, part.sector_count),
                                                 system_id=entry.system_id, status=entry.status)
    return mbr.partition_table(entries)


def _check_partitions(disk, path: str, used: list[PartitionExtent]) -> None:
    for p in used:
        if p.offset < layout.KERNEL_OFFSET:
            raise FormatError(f"partition {p.index} starts at {p.offset:#x}, inside the boot area "
                              f"before LBA 128", path=path,
                              expected="partitions after the kernel, as in OSv's usr.img")
        if p.end > disk.size:
            raise FormatError(f"partition {p.index} ({p.size} bytes at {p.offset:#x}) runs past "
                              f"the {disk.size}-byte disk", path=path,
                              expected="a partition inside the disk")


def _check_room(path: str, used: list[PartitionExtent], new: NewPartition | None) -> None:
    """A resized partition must end before the next partition starts."""
    if new is None:
        return
    target = next((p for p in used if p.index == new.index), None)
    if target is None:
        raise FormatError(f"partition {new.index} is empty", path=path,
                          expected="a partition holding a filesystem")
    for p in used:
        if p.index != new.index and target.offset <= p.offset < target.offset + new.size:
            raise FormatError(f"the new filesystem of partition {new.index} ({new.size} bytes) "
                              f"would run into partition {p.index} at {p.offset:#x}", path=path,
                              expected="room before the next partition")


@dataclass
class _Plan:
    sector: bytes           # the new boot sector
    used: list
    first: int | None       # old offset of the first partition
    delta: int              # how far the partitions move
    size: int               # new virtual disk size
    payload: bytes | None   # the new payload (None: the old one is kept)
    payload_sectors: int


def _plan(disk, path: str, payload, payload_sectors: int, new: NewPartition | None,
          boot_sector) -> _Plan:
    sector = read_mbr(disk)
    c = mbr_schema.MBR.parse(sector)
    used = _used(parse_partition_table(sector))
    _check_partitions(disk, path, used)
    _check_room(path, used, new)
    first = min((p.offset for p in used), default=None)
    delta = 0
    payload_end = layout.KERNEL_OFFSET + payload_sectors * layout.SECTOR_SIZE
    if payload is not None and first is not None and payload_end > first:
        delta = _round_up(payload_end, layout.PARTITION_ALIGN) - first
    sizes = {p.index: p.size for p in used}
    if new is not None:
        sizes[new.index] = new.size
    old_last = max((p.end for p in used), default=0)
    new_last = max((p.offset + delta + sizes[p.index] for p in used), default=0)
    if used and disk.size == old_last:
        size = new_last               # the disk ended with its last partition: it still does
    else:
        size = max(disk.size + delta, new_last)
    size = _round_up(max(size, payload_end if payload is not None else 0), layout.SECTOR_SIZE)
    if (new_last - 1) // layout.SECTOR_SIZE >= 2**32:
        raise FormatError(f"the partitions would end at {new_last:#x}, past what an MBR entry "
                          "addresses (2 TiB)", path=path, expected="a smaller kernel or disk")
    new_sectors = {} if new is None else {new.index: new.size // layout.SECTOR_SIZE}
    table = _new_table(c, used, delta, new_sectors)
    if payload is not None:
        sector = boot_sector(partitions=table)
    else:
        sector = sector[:layout.MBR_PARTITION_TABLE_OFFSET] + table + \
            sector[layout.MBR_SIGNATURE_OFFSET:]
    return _Plan(sector, used, first, delta, size, payload, payload_sectors)


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


def _copy_file(path: str, f, at: int) -> None:
    """The whole file ``path`` into ``f`` at ``at`` (in the kernel when it can)."""
    f.seek(at)
    with open(path, "rb") as src:
        _copy_partition(src, f)


def _write(disk, f, plan: _Plan, cmdline_area: bytes | None, new: NewPartition | None) -> None:
    f.write(plan.sector)
    keep_end = layout.KERNEL_OFFSET if plan.payload is not None else \
        (plan.first if plan.first is not None else disk.size)
    _copy(disk, f, layout.SECTOR_SIZE, keep_end, 0)
    if cmdline_area is not None:
        f.seek(layout.CMDLINE_OFFSET)
        f.write(cmdline_area)
    if plan.payload is not None:
        f.seek(layout.KERNEL_OFFSET)
        f.write(plan.payload)
    if plan.first is not None:
        # the partitions' span only: past the last partition's end nothing is kept (a
        # large virtual disk's zeros are not read)
        last = max(p.end for p in plan.used)
        target = None if new is None else next(p for p in plan.used if p.index == new.index)
        if target is None:
            _copy(disk, f, plan.first, last, plan.delta)
        else:
            _copy(disk, f, plan.first, target.offset, plan.delta)
            _copy(disk, f, max(target.end, target.offset + new.size), last, plan.delta)
            _copy_file(new.path, f, target.offset + plan.delta)
    f.truncate(plan.size)


def rewrite_image(image, *, output=None, kernel=None, compression: str = "fastlz",
                  image_format: str | None = None, cmdline_area: bytes | None = None,
                  partition: NewPartition | None = None, inputs=()) -> PatchResult:
    """Write ``image`` (raw or qcow2) again with any of: a new ``kernel`` (its payload in
    ``compression``; the partitions move when it passes the first), a new command-line
    area (``cmdline_area``: the 32,256 bytes from byte 512), new contents for one
    ``partition``.  Everything else is kept byte for byte; ``output`` (default ``image``)
    is replaced atomically when everything succeeded.  ``inputs`` are further
    ``(what, path)`` pairs the output may not be."""
    image = os.fspath(image)
    output = image if output is None else os.fspath(output)
    if compression not in COMPRESSIONS:
        raise UsageError(f"compression {compression!r}", expected=" or ".join(COMPRESSIONS))
    if image_format is not None and image_format not in IMAGE_FORMATS:
        raise UsageError(f"image format {image_format!r}", expected=" or ".join(IMAGE_FORMATS))
    kern = _load(kernel) if kernel is not None else None
    if output != image:
        check_not_input(output, [("the kernel of this patch", kern and kern.path), *inputs])
    payload, boot_sector, payload_sectors = None, None, 0
    if kern is not None:
        if layout.KERNEL_BASE_ADDR + len(kern.data) > layout.IDENTITY_MAP_END:
            raise FormatError(f"kernel file of {len(kern.data)} bytes reaches past 1 GiB at "
                              "0x200000", path=kern.path, expected="a kernel below 1 GiB")
        payload, load_addr, entry, _ = make_payload(kern.data, compression)
        payload_sectors = _round_up(len(payload), layout.SECTOR_SIZE) // layout.SECTOR_SIZE
        boot_sector = partial(boot16.build_boot_sector, payload_sectors=payload_sectors,
                              load_addr=load_addr, decompressor_entry=entry)
    with open_disk(image) as disk:
        plan = _plan(disk, image, payload, payload_sectors, partition, boot_sector)
        fmt = image_format or disk.format
        if fmt == "raw":
            with atomic_output(output) as f:
                _write(disk, f, plan, cmdline_area, partition)
        else:
            _write_qcow2(output, lambda f: _write(disk, f, plan, cmdline_area, partition))
    kernel_end = _round_up(layout.KERNEL_OFFSET + payload_sectors * layout.SECTOR_SIZE,
                           layout.PARTITION_ALIGN) if kern is not None else None
    moved = [{"index": p.index, "old_offset": p.offset, "new_offset": p.offset + plan.delta,
              "size": p.size} for p in plan.used if plan.delta]
    return PatchResult(image=image, output=output, image_format=fmt,
                       compression=compression if kern is not None else None,
                       kernel_size=len(kern.data) if kern is not None else None,
                       payload_size=len(payload) if payload is not None else None,
                       payload_sectors=payload_sectors or None, kernel_end=kernel_end,
                       image_size=plan.size, moved=moved)


def replace_kernel(image, kernel, *, output=None, compression: str = "fastlz",
                   image_format: str | None = None) -> PatchResult:
    """Give ``image`` (raw or qcow2) a new kernel; see the module docstring.  ``output``
    (default ``image``) is replaced atomically when everything succeeded."""
    return rewrite_image(image, output=output, kernel=kernel, compression=compression,
                         image_format=image_format)
