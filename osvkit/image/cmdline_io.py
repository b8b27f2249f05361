"""Read and replace the command line stored in an OSv disk image (usr.img / loader.img).

OSv keeps the command line NUL-terminated at byte 512, in the 63-sector area boot16 reads
from LBA 1 (32,256 bytes, NUL included).  OSv's ``imgedit.py setargs``
needs ``qemu-nbd``, checks no length and leaves the old line's tail after the new NUL.
:func:`set_cmdline` works on raw and qcow2 images without qemu-nbd, root or KVM, checks the
line against a target's limit first, and clears the whole rest of the area after the new
NUL.  It validates everything before writing, so a refused call leaves the image untouched:

* raw: the whole 32,256-byte area is written with one ``pwrite`` and fsync'ed;
* qcow2: only the bytes that change are written, in place, inside allocated clusters
  (:mod:`osvkit.disk`); an image whose clusters there are unallocated, compressed
  or shared is refused with a message saying how to convert it.

Before writing, the image must look like an OSv disk: ``55 AA`` at 510, no GPT protective
partition, and no MBR partition starting inside the command-line area.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from .. import layout
from ..cmdline.model import TARGETS, check_cmdline, split_cmdline, unfit_targets
from ..errors import CmdlineError, FormatError, OsvkitIOError
from ..disk import open_disk

MBR_SIGNATURE = layout.MBR_BOOT_SIGNATURE
AREA_START = layout.CMDLINE_OFFSET
AREA_SIZE = layout.CMDLINE_AREA_SIZE
AREA_END = AREA_START + AREA_SIZE
GPT_PROTECTIVE_TYPE = 0xEE


class CmdlineInfo(NamedTuple):
    """What :func:`read_cmdline` found."""

    path: str
    format: str
    cmdline: str
    length: int                 # bytes, without the NUL
    stale_bytes: int            # non-zero bytes after the NUL inside the area
    unfit_targets: list

    def to_dict(self) -> dict:
        d = {"path": self.path, "format": self.format, "cmdline": self.cmdline,
             "length": self.length, "stale_bytes": self.stale_bytes,
             "unfit_targets": self.unfit_targets}
        try:
            d["split"] = split_cmdline(self.cmdline, strip_mmio=True).to_dict()
        except CmdlineError as exc:
            d["split"] = {"error": str(exc)}
        return d


class SetResult(NamedTuple):
    """What :func:`set_cmdline` changed."""

    path: str
    format: str
    old: str | None
    new: str
    target: str
    forced: bool
    bytes_written: int
    cleared: int                # old non-zero bytes zeroed after the new NUL

    def to_dict(self) -> dict:
        return self._asdict()


def _check_mbr(disk, path) -> None:
    if disk.size < AREA_START + 1:
        raise FormatError(f"image is only {disk.size} bytes", path=path,
                          expected=f"at least {AREA_START + 1} bytes (boot sector + command line)")
    sector = disk.read(0, layout.SECTOR_SIZE)
    if sector[layout.MBR_SIGNATURE_OFFSET:] != MBR_SIGNATURE:
        raise FormatError(f"no MBR signature (bytes 510-511 are "
                          f"{sector[layout.MBR_SIGNATURE_OFFSET:].hex(' ')})", path=path,
                          expected="55 aa (an OSv boot sector)")


def _check_layout_for_write(disk, path) -> None:
    from ..disk.partitions import parse_partition_table     # only writing needs the MBR table

    for part in parse_partition_table(disk.read(0, layout.SECTOR_SIZE)):
        if part.system_id == GPT_PROTECTIVE_TYPE:
            raise FormatError(f"MBR entry {part.index} is a GPT protective partition; LBA 1 "
                              "holds a GPT header, not a command line", path=path,
                              expected="an OSv MBR image")
        if part.system_id and part.sector_count and part.offset < AREA_END and \
                part.end > AREA_START:
            raise FormatError(f"MBR entry {part.index} (LBA {part.lba_start}, "
                              f"{part.sector_count} sectors) overlaps the command-line area "
                              f"(bytes {AREA_START}-{AREA_END - 1})",
                              path=path, expected="partitions after the kernel, as OSv's")


def _nonzero(data: bytes) -> int:
    """How many bytes of ``data`` are not zero."""
    return len(data) - data.count(0)


def _changed_span(old: bytes, new: bytes) -> tuple[int, int]:
    """``(lo, hi)``: the smallest slice outside which ``old`` and ``new`` (of one length)
    are equal; ``lo == hi`` when they are equal.  Found by bisecting on slice comparisons
    (memcmp), not by a loop over the 32 KiB area."""
    n = len(new)
    if old == new:
        return 0, 0
    lo, hi = 0, n                   # the longest common prefix is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[:mid] == new[:mid]:
            lo = mid
        else:
            hi = mid - 1
    first = lo
    lo, hi = 0, n - first           # the longest common suffix is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[n - mid:] == new[n - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return first, n - lo


def _area(disk) -> bytes:
    return disk.read(AREA_START, min(AREA_SIZE, disk.size - AREA_START))


def read_cmdline(path) -> CmdlineInfo:
    """The command line of an OSv image, with its length and leftovers."""
    path = os.fspath(path)
    with open_disk(path) as disk:
        _check_mbr(disk, path)
        area = _area(disk)
        fmt = disk.format
    nul = area.find(b"\0")
    if nul < 0:
        raise FormatError(f"no NUL in the {len(area)}-byte command-line area at {AREA_START}",
                          path=path, expected="a NUL-terminated command line within "
                          f"{AREA_SIZE} bytes")
    raw = area[:nul]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"command line byte {exc.start} ({raw[exc.start]:#04x}) is not UTF-8",
                          path=path, expected="UTF-8 text") from None
    stale = _nonzero(area[nul + 1:])
    return CmdlineInfo(path, fmt, text, nul, stale, unfit_targets(text))


def get_cmdline(path) -> str:
    """The NUL-terminated string at byte 512 of the image."""
    return read_cmdline(path).cmdline


def set_cmdline(path, text: str, *, target: str = "osv", force: bool = False) -> SetResult:
    """Replace the command line of a raw or qcow2 OSv image in place.

    The line must fit ``target`` (``osv`` 1023, ``bios`` 32,255, ``firecracker`` 2047 bytes)
    unless ``force``; even forced it must fit the BIOS area.  After the new NUL the whole rest
    of the area is zeroed.
    """
    path = os.fspath(path)
    try:
        if target not in TARGETS or not force:
            check_cmdline(text, target)      # an unknown target is an error even with force
        data = check_cmdline(text, "bios")   # nothing, forced or not, exceeds boot16's area
    except CmdlineError as exc:
        raise exc.with_path(path) from None
    with open_disk(path, writable=True) as disk:
        _check_mbr(disk, path)
        _check_layout_for_write(disk, path)
        old_area = _area(disk)
        if len(data) + 1 > len(old_area):
            raise CmdlineError(f"command line is {len(data)} bytes but the image has only "
                               f"{len(old_area)} bytes after the boot sector",
                               reason=CmdlineError.TOO_LARGE, path=path,
                               expected=f"at most {len(old_area) - 1} bytes")
        new_area = data + bytes(len(old_area) - len(data))
        old_nul = old_area.find(b"\0")
        try:
            old = old_area[:old_nul].decode("utf-8") if old_nul >= 0 else None
        except UnicodeDecodeError:
            old = None
        cleared = _nonzero(old_area[len(data) + 1:])
        if disk.format == "raw":
            disk.write(AREA_START, new_area)         # one write for the whole area
            written = len(new_area)
        else:
            lo, hi = _changed_span(old_area, new_area)
            if hi > lo:
                disk.write(AREA_START + lo, new_area[lo:hi])
            written = hi - lo
        if _area(disk) != new_area:
            raise OsvkitIOError("command line reads back differently after writing", path=path)
        fmt = disk.format
    return SetResult(path, fmt, old, text, target, force, written, cleared)
