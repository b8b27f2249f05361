"""MBR partitions of a disk image: where each one starts and how long it is.

OSv keeps its application filesystem in MBR entry 1 (``/dev/vblk0.1``).  Only the LBA and
the sector count matter for reading; the CHS fields (OSv packs them its own way) are the
boot layer's business.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import layout
from ..errors import FormatError, UsageError
from ..structs.mbr import PartitionTable

PARTITION_COUNT = PartitionTable.count


class PartitionExtent(NamedTuple):
    """One MBR entry as a byte range of the disk."""

    index: int
    system_id: int
    lba_start: int
    sector_count: int

    @property
    def offset(self) -> int:
        return self.lba_start * layout.SECTOR_SIZE

    @property
    def size(self) -> int:
        return self.sector_count * layout.SECTOR_SIZE

    @property
    def end(self) -> int:
        return self.offset + self.size


def read_mbr(disk) -> bytes:
    """Sector 0 of ``disk``; a FormatError when it has no ``55 AA`` signature."""
    sector = disk.read_upto(0, layout.SECTOR_SIZE)
    sig = sector[layout.MBR_SIGNATURE_OFFSET:layout.SECTOR_SIZE]
    if len(sector) < layout.SECTOR_SIZE or sig != layout.MBR_BOOT_SIGNATURE:
        raise FormatError("no MBR (55 aa) in sector 0", path=disk.path,
                          expected="a disk image with a partition table")
    return sector


def partition_table(disk) -> list[PartitionExtent]:
    """The four MBR entries of ``disk`` (empty ones included)."""
    return parse_partition_table(read_mbr(disk))


def parse_partition_table(sector: bytes) -> list[PartitionExtent]:
    """The four entries of a 512-byte MBR sector (its ``55 AA`` is not checked here)."""
    table = PartitionTable.parse(
        sector[layout.MBR_PARTITION_TABLE_OFFSET:layout.MBR_SIGNATURE_OFFSET])
    return [PartitionExtent(i, e.system_id, e.lba_start, e.sector_count)
            for i, e in enumerate(table)]


def partition_extent(disk, index: int) -> PartitionExtent:
    """MBR entry ``index`` (0-3) of ``disk``, checked to be non-empty and inside the disk."""
    if not 0 <= index < PARTITION_COUNT:
        raise UsageError(f"partition {index}", expected="an MBR entry 0..3")
    part = partition_table(disk)[index]
    if not part.sector_count:
        raise FormatError(f"partition {index} is empty", path=disk.path,
                          expected="a partition holding a filesystem")
    if part.end > disk.size:
        raise FormatError(f"partition {index} ({part.size} bytes at {part.offset:#x}) runs "
                          f"past the {disk.size}-byte disk", path=disk.path,
                          expected="a partition inside the disk")
    return part
