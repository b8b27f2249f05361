"""Intel MultiProcessor Specification 1.4 tables: floating pointer, configuration table and
the five base entry types.

Spec: Intel MP Spec 1.4 chapter 4; field names are Linux's ``mpspec_def.h`` (``mpf_intel``,
``mpc_table``, ``mpc_cpu``, ``mpc_bus``, ``mpc_ioapic``, ``mpc_intsrc``, ``mpc_lintsrc``).
Both checksums make their bytes sum to 0 mod 256 (:func:`osvkit.boot.mptable.mp_checksum`).
"""

from __future__ import annotations

from construct import Array, Bytes, Const, Int8ul, Int16ul, Int32ul, Struct

from .base import field_offsets

MPF_SIGNATURE = b"_MP_"
MPC_SIGNATURE = b"PCMP"
MP_SPEC_REV_1_4 = 4

MP_PROCESSOR = 0
MP_BUS = 1
MP_IOAPIC = 2
MP_INTSRC = 3
MP_LINTSRC = 4

CPU_ENABLED = 1
CPU_BOOTPROCESSOR = 2
MPC_APIC_USABLE = 1

MP_IRQTYPE_INT = 0
MP_IRQTYPE_NMI = 1
MP_IRQTYPE_SMI = 2
MP_IRQTYPE_EXTINT = 3
IRQTYPE_NAMES = {0: "INT", 1: "NMI", 2: "SMI", 3: "ExtINT"}

MpfIntel = Struct(
    "signature" / Const(MPF_SIGNATURE),  # 0x0
    "physptr" / Int32ul,            # 0x4 configuration table address (0: default config)
    "length" / Int8ul,              # 0x8 in 16-byte units (1)
    "specification" / Int8ul,       # 0x9 1 or 4
    "checksum" / Int8ul,            # 0xa the 16 bytes sum to 0
    "feature1" / Int8ul,            # 0xb default configuration type, 0 = table present
    "feature2" / Int8ul,            # 0xc bit 7: IMCR present
    "feature3" / Int8ul,            # 0xd
    "feature4" / Int8ul,            # 0xe
    "feature5" / Int8ul,            # 0xf
)
"""MP floating pointer structure (16 bytes)."""

MpcTable = Struct(
    "signature" / Const(MPC_SIGNATURE),  # 0x00
    "length" / Int16ul,             # 0x04 base table length, header included
    "spec" / Int8ul,                # 0x06
    "checksum" / Int8ul,            # 0x07 header + base entries sum to 0
    "oem" / Bytes(8),               # 0x08
    "productid" / Bytes(12),        # 0x10
    "oemptr" / Int32ul,             # 0x1c
    "oemsize" / Int16ul,            # 0x20
    "oemcount" / Int16ul,           # 0x22 entry count (Firecracker: n + 29, one too many)
    "lapic" / Int32ul,              # 0x24 local APIC address
    "ext_table_length" / Int16ul,   # 0x28
    "ext_table_checksum" / Int8ul,  # 0x2a
    "reserved" / Int8ul,            # 0x2b
)
"""MP configuration table header (44 bytes)."""

MpcCpu = Struct(
    "type" / Const(MP_PROCESSOR, Int8ul),  # +0
    "apicid" / Int8ul,              # +1
    "apicver" / Int8ul,             # +2
    "cpuflag" / Int8ul,             # +3 bit 0 enabled, bit 1 bootstrap processor
    "cpufeature" / Int32ul,         # +4 CPU signature (family/model/stepping)
    "featureflag" / Int32ul,        # +8 CPUID.1 EDX
    "reserved" / Array(2, Int32ul),  # +12
)
"""Processor entry (20 bytes)."""

MpcBus = Struct(
    "type" / Const(MP_BUS, Int8ul),  # +0
    "busid" / Int8ul,               # +1
    "bustype" / Bytes(6),           # +2 e.g. b"ISA   "
)
"""Bus entry (8 bytes)."""

MpcIoapic = Struct(
    "type" / Const(MP_IOAPIC, Int8ul),  # +0
    "apicid" / Int8ul,              # +1
    "apicver" / Int8ul,             # +2
    "flags" / Int8ul,               # +3 bit 0 usable
    "apicaddr" / Int32ul,           # +4
)
"""I/O APIC entry (8 bytes)."""

MpcIntsrc = Struct(
    "type" / Const(MP_INTSRC, Int8ul),  # +0
    "irqtype" / Int8ul,             # +1
    "irqflag" / Int16ul,            # +2 polarity bits 0-1, trigger bits 2-3
    "srcbus" / Int8ul,              # +4
    "srcbusirq" / Int8ul,           # +5
    "dstapic" / Int8ul,             # +6
    "dstirq" / Int8ul,              # +7
)
"""I/O interrupt assignment entry (8 bytes)."""

MpcLintsrc = Struct(
    "type" / Const(MP_LINTSRC, Int8ul),  # +0
    "irqtype" / Int8ul,             # +1
    "irqflag" / Int16ul,            # +2
    "srcbusid" / Int8ul,            # +4
    "srcbusirq" / Int8ul,           # +5
    "destapic" / Int8ul,            # +6 0xff = all local APICs
    "destapiclint" / Int8ul,        # +7 LINT0 / LINT1
)
"""Local interrupt assignment entry (8 bytes)."""

MP_ENTRIES = {
    MP_PROCESSOR: ("processor", MpcCpu),
    MP_BUS: ("bus", MpcBus),
    MP_IOAPIC: ("ioapic", MpcIoapic),
    MP_INTSRC: ("intsrc", MpcIntsrc),
    MP_LINTSRC: ("lintsrc", MpcLintsrc),
}
MP_ENTRY_BY_KIND = {kind: (typ, st) for typ, (kind, st) in MP_ENTRIES.items()}

MPF_INTEL_SIZE = MpfIntel.sizeof()
MPC_TABLE_SIZE = MpcTable.sizeof()
MPF_INTEL_OFFSETS = field_offsets(MpfIntel)
MPC_TABLE_OFFSETS = field_offsets(MpcTable)

assert MPF_INTEL_SIZE == 16 and MPC_TABLE_SIZE == 44
assert MpcCpu.sizeof() == 20
assert all(st.sizeof() == 8 for t, (_, st) in MP_ENTRIES.items() if t != MP_PROCESSOR)

BdaWord = Int16ul
"""A u16 of the BIOS data area (the EBDA segment at 0x40E, base memory KiB at 0x413)."""
