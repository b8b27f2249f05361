"""x86 descriptor-table structures the generated boot stubs lay out as data.

* :data:`SegmentDescriptor` -- one 8-byte GDT entry (kept as its u64 value).
* :func:`gdt` -- ``count`` of them.
* :data:`GdtPointer64` -- the 10-byte ``lgdt`` operand in 64-bit mode (limit u16, base u64).
* :data:`PageTable` -- a 4 KiB paging table of 512 u64 entries.
"""

from __future__ import annotations

from construct import Array, Int16ul, Int64ul, Struct

SegmentDescriptor = Int64ul
SEGMENT_DESCRIPTOR_SIZE = SegmentDescriptor.sizeof()


def gdt(count: int):
    """A GDT of ``count`` descriptors."""
    return Array(count, SegmentDescriptor)


GdtPointer64 = Struct(
    "limit" / Int16ul,      # +0 table size - 1
    "base" / Int64ul,       # +2
)

PageTableEntry = Int64ul
PAGE_TABLE_ENTRIES = 512
PageTable = Array(PAGE_TABLE_ENTRIES, PageTableEntry)
"""One 4 KiB x86-64 paging table (PML4, PDPT or PD): 512 u64 entries."""
