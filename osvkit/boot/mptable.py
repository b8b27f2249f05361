"""Intel MultiProcessor Specification 1.4 tables: floating pointer, configuration table and
the five base entry types.

Spec: Intel MP Spec 1.4 (1997) chapter 4; field names are Linux's
``arch/x86/include/asm/mpspec_def.h`` (``mpf_intel``, ``mpc_table``, ``mpc_cpu``, ``mpc_bus``,
``mpc_ioapic``, ``mpc_intsrc``, ``mpc_lintsrc``), which Firecracker's ``generated/mpspec.rs``
also uses.  Both checksums make their bytes sum to 0 mod 256; they are
computed on build and verified on parse (strict: :class:`~osvkit.errors.FormatError`; lenient:
reported in :attr:`MpTable.problems`).

The entries are walked by the header's ``length``, never by ``oemcount``: Firecracker writes
``oemcount = n + 29``, one more than the entries it writes (Linux ``smp_read_mpc`` and OSv both
walk by length too).

Two scanners find the floating pointer in a memory dump:

* ``"spec"`` (MP spec 4.1): the first KiB of the EBDA (segment in the BIOS data area word at
  0x40E), the last KiB of base memory (KiB count in the BDA word at 0x413), then the BIOS ROM
  0xF0000-0xFFFFF, on 16-byte boundaries, signature and checksum both required;
* ``"osv"``: OSv's ``parse_mp_table``: 0x9FC00 then 0x0, 1 KiB each
  (:data:`osvkit.layout.OSV_MP_SEARCH`), signature only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from .. import layout
from ..errors import FormatError, LayoutError
from ..structs import base as schema
from ..structs.mptable import (CPU_BOOTPROCESSOR, CPU_ENABLED, IRQTYPE_NAMES, MP_ENTRIES,
                               MP_ENTRY_BY_KIND, MP_SPEC_REV_1_4, MPC_SIGNATURE,
                               MPC_TABLE_OFFSETS, MPC_TABLE_SIZE, MPF_INTEL_OFFSETS,
                               MPF_INTEL_SIZE, MPF_SIGNATURE, BdaWord, MpcTable, MpfIntel)



# ---------------------------------------------------------------------------------
# Checksums and building
# ---------------------------------------------------------------------------------

def mp_checksum(data: bytes) -> int:
    """The byte that makes ``data`` (with its checksum byte zeroed) sum to 0 mod 256."""
    return -sum(data) & 0xFF


def sums_to_zero(data: bytes) -> bool:
    return sum(data) & 0xFF == 0


def build_entry(kind: str, **values) -> bytes:
    """One base entry: ``build_entry("processor", apicid=0, ...)``; unset fields are 0."""
    typ, st = MP_ENTRY_BY_KIND[kind]
    obj = schema.blank(st)
    obj.update(values)
    return schema.build(st, obj, what=f"MP {kind} entry")


def build_mp_table(address: int, entries: list[bytes], *, oem: bytes = b"\0" * 8,
                   productid: bytes = b"\0" * 12, lapic: int = layout.FC_APIC_ADDR,
                   oemcount: int | None = None, spec: int = MP_SPEC_REV_1_4) -> bytes:
    """Floating pointer at ``address`` immediately followed by the configuration table
    (``physptr = address + 16``), the built ``entries`` and both checksums.  ``oemcount``
    defaults to the true entry count."""
    body = b"".join(entries)
    length = MPC_TABLE_SIZE + len(body)
    if length > 0xFFFF:
        raise LayoutError(f"MP table of {length} bytes", expected="at most 65535 bytes")
    header = dict(length=length, spec=spec, checksum=0, oem=oem, productid=productid,
                  oemptr=0, oemsize=0, oemcount=len(entries) if oemcount is None else oemcount,
                  lapic=lapic, ext_table_length=0, ext_table_checksum=0, reserved=0)
    table = bytearray(schema.build(MpcTable, header, what="mpc_table") + body)
    table[MPC_TABLE_OFFSETS["checksum"]] = mp_checksum(table)
    mpf = bytearray(schema.build(MpfIntel, dict(
        physptr=address + MPF_INTEL_SIZE, length=1, specification=spec, checksum=0,
        feature1=0, feature2=0, feature3=0, feature4=0, feature5=0), what="mpf_intel"))
    mpf[MPF_INTEL_OFFSETS["checksum"]] = mp_checksum(mpf)
    return bytes(mpf + table)


# ---------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------

@dataclass
class MpTable:
    """A decoded floating pointer and configuration table."""
    offset: int                 # of the floating pointer in the data
    address: int                # guest-physical address of the floating pointer
    mpf: dict
    header: dict | None
    entries: list[dict] = field(default_factory=list)
    checksums: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    found_by: str | None = None
    suggested_base: int | None = None
    """After a whole-file scan: the ``--base`` that makes the pointers consistent."""

    kind = "mptable"

    @property
    def processors(self) -> list[dict]:
        return [e for e in self.entries if e["kind"] == "processor"]

    @property
    def ioapics(self) -> list[dict]:
        return [e for e in self.entries if e["kind"] == "ioapic"]

    @property
    def checksums_ok(self) -> bool:
        return all(c["ok"] for c in self.checksums.values())

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "offset": self.offset,
            "address": self.address,
            "found_by": self.found_by,
            "mpf": self.mpf,
            "header": self.header,
            "entries": self.entries,
            "cpus": len(self.processors),
            "checksums": self.checksums,
            "checksums_ok": self.checksums_ok,
            "problems": self.problems,
            "notes": self.notes,
            "suggested_base": self.suggested_base,
        }


def _text(b: bytes) -> str:
    return b.decode("latin-1")


def parse_mp_table(data, *, offset: int, base: int = 0, path=None,
                   lenient: bool = False) -> MpTable:
    """Decode the floating pointer at ``data[offset:]`` and the configuration table it points
    at.  ``base`` is the guest-physical address of ``data[0]``.  Checksum mismatches raise
    FormatError unless ``lenient``, which lists them in ``problems`` instead."""
    address = base + offset

    def problem(err: FormatError) -> None:
        if not lenient:
            raise err
        result.problems.append(str(err))

    mpf = schema.parse(MpfIntel, data, what="MP floating pointer", path=path, offset=offset)
    mpf_len = max(mpf.length, 1) * 16
    mpf_bytes = bytes(data[offset:offset + mpf_len])
    result = MpTable(offset, address, schema.plain(mpf), None)
    result.mpf["signature"] = _text(mpf.signature)
    ok = len(mpf_bytes) == mpf_len and sums_to_zero(mpf_bytes)
    result.checksums["mpf"] = {"stored": mpf.checksum, "ok": ok}
    if not ok:
        problem(schema.format_error(
            "MP floating pointer", f"is {mpf.checksum:#04x} (bytes sum to "
            f"{sum(mpf_bytes) & 0xFF:#04x})", path=path, offset=offset, field="checksum",
            field_offset=offset + MPF_INTEL_OFFSETS["checksum"],
            expected=f"{mp_checksum(mpf_bytes[:10] + bytes(1) + mpf_bytes[11:]):#04x}"))
    if mpf.length != 1:
        result.notes.append(f"floating pointer length {mpf.length} (16-byte units), expected 1")
    if mpf.physptr == 0:
        result.notes.append(f"no configuration table: default configuration {mpf.feature1}")
        return result

    toff = mpf.physptr - base
    if toff < 0 or toff >= len(data):
        raise schema.format_error(
            "MP floating pointer", f"points at {mpf.physptr:#x}, outside the data "
            f"({base:#x}-{base + len(data):#x})", path=path, offset=offset, field="physptr",
            field_offset=offset + MPF_INTEL_OFFSETS["physptr"],
            expected="a table inside the dump (check --base)")
    hdr = schema.parse(MpcTable, data, what="MP configuration table", path=path, offset=toff)
    result.header = schema.plain(hdr)
    for k in ("signature", "oem", "productid"):
        result.header[k] = _text(hdr[k])
    result.header["address"] = mpf.physptr
    result.header["offset"] = toff
    if hdr.length < MPC_TABLE_SIZE:
        raise schema.format_error(
            "MP configuration table", f"is {hdr.length}", path=path, offset=toff,
            field="length", field_offset=toff + MPC_TABLE_OFFSETS["length"],
            expected=f"at least {MPC_TABLE_SIZE}")
    if toff + hdr.length > len(data):
        raise schema.format_error(
            "MP configuration table", f"length {hdr.length} runs past the end of the data",
            path=path, offset=toff, expected=f"{hdr.length} bytes at {toff:#x}")
    table = bytes(data[toff:toff + hdr.length])
    ok = sums_to_zero(table)
    result.checksums["table"] = {"stored": hdr.checksum, "ok": ok}
    if not ok:
        fixed = bytearray(table)
        fixed[MPC_TABLE_OFFSETS["checksum"]] = 0
        problem(schema.format_error(
            "MP configuration table", f"is {hdr.checksum:#04x} (table sums to "
            f"{sum(table) & 0xFF:#04x})", path=path, offset=toff, field="checksum",
            field_offset=toff + MPC_TABLE_OFFSETS["checksum"],
            expected=f"{mp_checksum(fixed):#04x}"))

    pos = MPC_TABLE_SIZE
    while pos < hdr.length:
        typ = table[pos]
        if typ not in MP_ENTRIES:
            raise schema.format_error(
                "MP configuration table", f"has entry type {typ} at {toff + pos:#x}",
                path=path, offset=toff, expected="a base entry type 0-4")
        kind, st = MP_ENTRIES[typ]
        if pos + st.sizeof() > hdr.length:
            raise schema.format_error(
                "MP configuration table", f"{kind} entry at {toff + pos:#x} runs past the "
                f"table length {hdr.length}", path=path, offset=toff,
                expected="entries that end at the table length")
        entry = schema.plain(schema.parse(st, table, what=f"MP {kind} entry", path=path,
                                          offset=pos))
        if kind == "bus":
            entry["bustype"] = _text(entry["bustype"])
        result.entries.append({"kind": kind, "offset": toff + pos, **entry})
        pos += st.sizeof()

    if hdr.oemcount != len(result.entries):
        extra = " (Firecracker counts the floating pointer too)" \
            if hdr.oemcount == len(result.entries) + 1 else ""
        result.notes.append(f"oemcount {hdr.oemcount} but the table length holds "
                            f"{len(result.entries)} entries{extra}")
    if hdr.ext_table_length:
        ext = bytes(data[toff + hdr.length:toff + hdr.length + hdr.ext_table_length])
        ok = len(ext) == hdr.ext_table_length and \
            (sum(ext) + hdr.ext_table_checksum) & 0xFF == 0
        result.checksums["ext_table"] = {"stored": hdr.ext_table_checksum, "ok": ok}
        if not ok:
            problem(schema.format_error(
                "MP configuration table", f"is {hdr.ext_table_checksum:#04x}", path=path,
                offset=toff, field="ext_table_checksum",
                field_offset=toff + MPC_TABLE_OFFSETS["ext_table_checksum"],
                expected=f"{-sum(ext) & 0xFF:#04x} over {hdr.ext_table_length} bytes"))
    return result


# ---------------------------------------------------------------------------------
# Scanning
# ---------------------------------------------------------------------------------

def _u16_at(data, phys: int, base: int) -> int | None:
    off = phys - base
    if off < 0 or off + BdaWord.sizeof() > len(data):
        return None
    return schema.parse(BdaWord, data, what="BIOS data area", offset=off)


def mp_search_ranges(data, *, base: int = 0, method: str = "spec") -> list[tuple[int, int]]:
    """Guest-physical ``(start, length)`` ranges searched, in order."""
    if method == "osv":
        return list(layout.OSV_MP_SEARCH)
    if method != "spec":
        raise ValueError(f"method must be 'spec' or 'osv', not {method!r}")
    ranges = []
    seg = _u16_at(data, layout.BDA_EBDA_SEGMENT_ADDR, base)
    if seg:
        ranges.append((seg << 4, layout.MP_SPEC_SEARCH_SIZE))
    kib = _u16_at(data, layout.BDA_BASE_MEMORY_KIB_ADDR, base) or 640
    top = (kib * 1024 - layout.MP_SPEC_SEARCH_SIZE, layout.MP_SPEC_SEARCH_SIZE)
    if top not in ranges:
        ranges.append(top)
    ranges.append((layout.BIOS_ROM_START, layout.BIOS_ROM_END - layout.BIOS_ROM_START))
    return ranges


def find_mp_table(data, *, base: int = 0, method: str = "spec") -> int | None:
    """Guest-physical address of the MP floating pointer in a memory dump whose first byte is
    at ``base``, searched the MP-spec way (signature and checksum) or OSv's way (signature),
    or None."""
    for start, length in mp_search_ranges(data, base=base, method=method):
        lo = max(start, base)
        lo += -(lo - start) % 16
        hi = min(start + length, base + len(data)) - MPF_INTEL_SIZE
        for phys in range(lo, hi + 1, 16):
            off = phys - base
            if bytes(data[off:off + 4]) != MPF_SIGNATURE:
                continue
            if method == "osv" or sums_to_zero(bytes(data[off:off + MPF_INTEL_SIZE])):
                return phys
    return None


def _valid_mpf_at(data, off: int) -> bool:
    return off + MPF_INTEL_SIZE <= len(data) and sums_to_zero(bytes(data[off:off + MPF_INTEL_SIZE]))


def _table_offsets(data) -> list[int]:
    """File offsets of every configuration table (signature, sane length, checksum)."""
    out = []
    pos = data.find(MPC_SIGNATURE)
    while pos >= 0:
        if pos + MPC_TABLE_SIZE <= len(data):
            hdr = schema.parse(MpcTable, data, what="MP configuration table", offset=pos)
            end = pos + hdr.length
            if MPC_TABLE_SIZE <= hdr.length and end <= len(data) and \
                    sums_to_zero(bytes(data[pos:end])):
                out.append(pos)
        pos = data.find(MPC_SIGNATURE, pos + 1)
    return out


def find_mp_table_anywhere(data) -> tuple[int, int | None] | None:
    """The first consistent floating pointer anywhere in ``data``, as ``(file offset, base)``.

    A pointer counts when its signature and checksum are right and either it names no
    table (``physptr`` 0: a default configuration; ``base`` None) or some ``base`` (the
    guest-physical address of ``data[0]``, >= 0) puts the pointer on a 16-byte boundary, as
    the MP spec requires, and its ``physptr`` on a configuration table (signature, length and
    checksum right) in the data; the table nearest the pointer wins.  None when no pointer
    counts."""
    tables = None
    pos = data.find(MPF_SIGNATURE)
    while pos >= 0:
        if _valid_mpf_at(data, pos):
            physptr = schema.parse(MpfIntel, data, what="MP floating pointer", offset=pos).physptr
            if physptr == 0:
                return pos, None
            if tables is None:
                tables = _table_offsets(data)
            bases = sorted((abs(t - pos), physptr - t) for t in tables
                           if physptr >= t and (physptr - t + pos) % 16 == 0)
            if bases:
                return pos, bases[0][1]
        pos = data.find(MPF_SIGNATURE, pos + 1)
    return None


def scan_mp_table(data, *, base: int = 0, path=None, lenient: bool = False) -> MpTable:
    """Find (spec way first, then OSv's way) and decode the MP table in a memory dump.

    When both fail (a dump that does not start at physical ``base``, such as a 64 KiB
    F-segment dump without ``--base``), the whole file is scanned for a floating pointer with
    a valid checksum; the result says so (``found_by`` "scan") and which ``--base`` makes its
    pointer consistent (``suggested_base``), and is decoded with that base."""
    for method in ("spec", "osv"):
        phys = find_mp_table(data, base=base, method=method)
        if phys is not None:
            table = parse_mp_table(data, offset=phys - base, base=base, path=path,
                                   lenient=lenient)
            table.found_by = method
            return table
    found = find_mp_table_anywhere(data)
    if found is None:
        raise FormatError(
            f"no MP floating pointer in the dump ({base:#x}-{base + len(data):#x}), not even "
            "by a scan of the whole file", path=path,
            expected="'_MP_' in the EBDA, the last KiB of base memory, 0xF0000-0xFFFFF, "
                     "0x9FC00 or 0x0")
    offset, suggested = found
    table = parse_mp_table(data, offset=offset, base=base if suggested is None else suggested,
                           path=path, lenient=lenient)
    table.found_by = "scan"
    table.suggested_base = suggested
    where = (f"--base {suggested:#x} makes its physptr point at the configuration table"
             if suggested is not None else "it names no configuration table (default "
                                           "configuration), so any --base fits")
    table.notes.insert(0, f"the MP-spec and OSv searches found nothing (with base {base:#x}); a "
                          f"whole-file scan found the floating pointer at file offset "
                          f"{offset:#x}; {where}")
    return table


# ---------------------------------------------------------------------------------
# Description
# ---------------------------------------------------------------------------------

def describe_entry(e: dict) -> str:
    k = e["kind"]
    if k == "processor":
        flags = []
        if e["cpuflag"] & CPU_ENABLED:
            flags.append("enabled")
        if e["cpuflag"] & CPU_BOOTPROCESSOR:
            flags.append("BSP")
        return (f"processor apicid {e['apicid']} apicver {e['apicver']:#x} "
                f"cpuflag {e['cpuflag']:#x} ({', '.join(flags) or 'disabled'}) "
                f"signature {e['cpufeature']:#x} features {e['featureflag']:#x}")
    if k == "bus":
        return f"bus {e['busid']} {e['bustype'].strip()!r}"
    if k == "ioapic":
        return (f"ioapic apicid {e['apicid']} apicver {e['apicver']:#x} flags {e['flags']:#x} "
                f"addr {e['apicaddr']:#x}")
    if k == "intsrc":
        return (f"intsrc {IRQTYPE_NAMES.get(e['irqtype'], e['irqtype'])} flags "
                f"{e['irqflag']:#x} bus {e['srcbus']} irq {e['srcbusirq']} -> ioapic "
                f"{e['dstapic']} pin {e['dstirq']}")
    return (f"lintsrc {IRQTYPE_NAMES.get(e['irqtype'], e['irqtype'])} flags {e['irqflag']:#x} "
            f"bus {e['srcbusid']} irq {e['srcbusirq']} -> lapic {e['destapic']:#x} "
            f"LINT{e['destapiclint']}")


def describe_mp_table(t: MpTable) -> str:
    how = (", found by a whole-file scan" if t.found_by == "scan" else
           f", found by the {t.found_by} search" if t.found_by else "")
    m = t.mpf
    lines = [
        f"MP floating pointer at {t.address:#x} (offset {t.offset:#x}{how})",
        f"  signature: {m['signature']}  physptr: {m['physptr']:#x}  length: {m['length']}  "
        f"specification: 1.{m['specification']}",
        f"  checksum: {m['checksum']:#04x} ({'ok' if t.checksums['mpf']['ok'] else 'BAD'})  "
        f"feature1: {m['feature1']:#x}  feature2: {m['feature2']:#x}",
    ]
    h = t.header
    if h is not None:
        lines += [
            f"MP configuration table at {h['address']:#x} (offset {h['offset']:#x})",
            f"  signature: {h['signature']}  length: {h['length']}  spec: 1.{h['spec']}  "
            f"checksum: {h['checksum']:#04x} ({'ok' if t.checksums['table']['ok'] else 'BAD'})",
            f"  oem: {h['oem']!r}  productid: {h['productid']!r}",
            f"  oemptr: {h['oemptr']:#x}  oemsize: {h['oemsize']}  oemcount: {h['oemcount']}",
            f"  lapic: {h['lapic']:#x}  ext_table_length: {h['ext_table_length']}  "
            f"ext_table_checksum: {h['ext_table_checksum']:#04x}",
            f"  entries ({len(t.entries)}; {len(t.processors)} processors):",
        ]
        lines += [f"    {e['offset']:#07x} {describe_entry(e)}" for e in t.entries]
    lines += [f"  note: {n}" for n in t.notes]
    lines += [f"  problem: {p}" for p in t.problems]
    return "\n".join(lines)
