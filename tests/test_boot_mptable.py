"""MP tables: schemas, Firecracker's table byte for byte, checksums, parser, scanners."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit import layout
from osvkit.boot import mptable
from osvkit.boot.firecracker import firecracker_mptable
from osvkit.errors import FormatError, LayoutError
from osvkit.structs import mptable as mptable_s


def h(text: str) -> bytes:
    """Hex with ``#`` comments and any whitespace."""
    return bytes.fromhex("".join(re.sub(r"#.*", "", line) for line in text.splitlines()))


# Firecracker's MP table for 1 vCPU, written out from Firecracker's mptable.rs.
# Checksums: the 16 MPF bytes sum to 0; the 288 table bytes sum to 0.
FC_MPTABLE_1 = h("""
    # --- mpf_intel @0x9fc00 (16) ---
    5f 4d 50 5f         # signature "_MP_"
    10 fc 09 00         # physptr 0x9fc10
    01                  # length 1 (x16 bytes)
    04                  # specification 1.4
    8b                  # checksum
    00 00 00 00 00      # feature1..5
    # --- mpc_table @0x9fc10 (44) ---
    50 43 4d 50         # signature "PCMP"
    20 01               # length 288 = 268 + 20*1
    04                  # spec 1.4
    45                  # checksum
    46 43 20 20 20 20 20 20                 # oem "FC      "
    30 30 30 30 30 30 30 30 30 30 30 30     # productid "000000000000"
    00 00 00 00         # oemptr
    00 00               # oemsize
    1e 00               # oemcount 30 = n + 29
    00 00 e0 fe         # lapic 0xfee00000
    00 00 00 00         # ext table length/checksum, reserved
    # --- processor (20) ---
    00 00 14 03         # type 0, apicid 0, apicver 0x14, cpuflag EN|BP
    00 06 00 00         # cpufeature 0x600
    01 02 00 00         # featureflag 0x201
    00 00 00 00 00 00 00 00  # reserved
    # --- bus (8) ---
    01 00 49 53 41 20 20 20  # type 1, busid 0, "ISA   "
    # --- ioapic (8) ---
    02 02 14 01 00 00 c0 fe  # type 2, apicid n+1 = 2, apicver 0x14, usable, 0xfec00000
    # --- intsrc x 24: type 3, INT, irqflag 0, srcbus 0, srcbusirq i, dstapic 2, dstirq i ---
    03 00 00 00 00 00 02 00
    03 00 00 00 00 01 02 01
    03 00 00 00 00 02 02 02
    03 00 00 00 00 03 02 03
    03 00 00 00 00 04 02 04
    03 00 00 00 00 05 02 05
    03 00 00 00 00 06 02 06
    03 00 00 00 00 07 02 07
    03 00 00 00 00 08 02 08
    03 00 00 00 00 09 02 09
    03 00 00 00 00 0a 02 0a
    03 00 00 00 00 0b 02 0b
    03 00 00 00 00 0c 02 0c
    03 00 00 00 00 0d 02 0d
    03 00 00 00 00 0e 02 0e
    03 00 00 00 00 0f 02 0f
    03 00 00 00 00 10 02 10
    03 00 00 00 00 11 02 11
    03 00 00 00 00 12 02 12
    03 00 00 00 00 13 02 13
    03 00 00 00 00 14 02 14
    03 00 00 00 00 15 02 15
    03 00 00 00 00 16 02 16
    03 00 00 00 00 17 02 17
    # --- lintsrc (8 each) ---
    04 03 00 00 00 00 00 00  # ExtINT, bus 0 irq 0 -> LAPIC 0 LINT0
    04 01 00 00 00 00 ff 01  # NMI -> all LAPICs (0xff) LINT1
""")

FC_MPTABLE_2 = h("""
    5f 4d 50 5f 10 fc 09 00 01 04 8b 00 00 00 00 00     # mpf_intel, same as n = 1
    50 43 4d 50         # "PCMP"
    34 01               # length 308 = 268 + 20*2
    04 f8               # spec 1.4, checksum
    46 43 20 20 20 20 20 20 30 30 30 30 30 30 30 30 30 30 30 30   # oem, productid
    00 00 00 00 00 00   # oemptr, oemsize
    1f 00               # oemcount 31 = n + 29
    00 00 e0 fe 00 00 00 00
    00 00 14 03 00 06 00 00 01 02 00 00 00 00 00 00 00 00 00 00  # cpu 0: EN|BP
    00 01 14 01 00 06 00 00 01 02 00 00 00 00 00 00 00 00 00 00  # cpu 1: EN
    01 00 49 53 41 20 20 20                                      # bus ISA
    02 03 14 01 00 00 c0 fe                                      # ioapic id 3
    03 00 00 00 00 00 03 00  03 00 00 00 00 01 03 01  03 00 00 00 00 02 03 02
    03 00 00 00 00 03 03 03  03 00 00 00 00 04 03 04  03 00 00 00 00 05 03 05
    03 00 00 00 00 06 03 06  03 00 00 00 00 07 03 07  03 00 00 00 00 08 03 08
    03 00 00 00 00 09 03 09  03 00 00 00 00 0a 03 0a  03 00 00 00 00 0b 03 0b
    03 00 00 00 00 0c 03 0c  03 00 00 00 00 0d 03 0d  03 00 00 00 00 0e 03 0e
    03 00 00 00 00 0f 03 0f  03 00 00 00 00 10 03 10  03 00 00 00 00 11 03 11
    03 00 00 00 00 12 03 12  03 00 00 00 00 13 03 13  03 00 00 00 00 14 03 14
    03 00 00 00 00 15 03 15  03 00 00 00 00 16 03 16  03 00 00 00 00 17 03 17
    04 03 00 00 00 00 00 00  04 01 00 00 00 00 ff 01             # LINT0 ExtINT, LINT1 NMI
""")


def test_sizes_and_offsets():
    assert mptable.MpfIntel.sizeof() == 16
    assert mptable.MpcTable.sizeof() == 44
    assert mptable_s.MpcCpu.sizeof() == 20
    for st_ in (mptable_s.MpcBus, mptable_s.MpcIoapic, mptable_s.MpcIntsrc, mptable_s.MpcLintsrc):
        assert st_.sizeof() == 8
    assert mptable.MPF_INTEL_OFFSETS == {
        "signature": 0, "physptr": 4, "length": 8, "specification": 9, "checksum": 10,
        "feature1": 11, "feature2": 12, "feature3": 13, "feature4": 14, "feature5": 15}
    assert mptable.MPC_TABLE_OFFSETS == {
        "signature": 0, "length": 4, "spec": 6, "checksum": 7, "oem": 8, "productid": 16,
        "oemptr": 28, "oemsize": 32, "oemcount": 34, "lapic": 36, "ext_table_length": 40,
        "ext_table_checksum": 42, "reserved": 43}


def test_hand_written_tables_are_consistent():
    # the literals themselves: sizes 284 + 20n, both checksums zero
    for n, blob in ((1, FC_MPTABLE_1), (2, FC_MPTABLE_2)):
        assert len(blob) == 284 + 20 * n
        assert sum(blob[:16]) % 256 == 0 and sum(blob[16:]) % 256 == 0


def test_firecracker_mptable_n1_byte_for_byte():
    assert firecracker_mptable(1) == FC_MPTABLE_1


def test_firecracker_mptable_n2_byte_for_byte():
    assert firecracker_mptable(2) == FC_MPTABLE_2


@pytest.mark.parametrize("n", [1, 2, 3, 8, 32, 254])
def test_firecracker_mptable_size_checksums_and_end(n):
    blob = firecracker_mptable(n)
    assert len(blob) == 284 + 20 * n
    assert sum(blob[:16]) % 256 == 0 and sum(blob[16:]) % 256 == 0
    if n == 32:
        assert layout.FC_MPTABLE_ADDR + len(blob) == 0x9FF9C
    t = mptable.parse_mp_table(blob, offset=0, base=0x9FC00)
    assert t.checksums_ok and not t.problems
    assert len(t.processors) == n
    assert t.header["oemcount"] == n + 29 == len(t.entries) + 1
    assert t.ioapics[0]["apicid"] == n + 1


@pytest.mark.parametrize("n", [0, 255])
def test_firecracker_mptable_cpu_limits(n):
    with pytest.raises(LayoutError):
        firecracker_mptable(n)


def test_parse_walks_by_length_not_oemcount():
    t = mptable.parse_mp_table(FC_MPTABLE_1, offset=0, base=0x9FC00)
    assert t.address == 0x9FC00 and t.header["address"] == 0x9FC10
    assert [e["kind"] for e in t.entries] == (
        ["processor", "bus", "ioapic"] + ["intsrc"] * 24 + ["lintsrc"] * 2)
    assert t.header["oem"] == "FC      " and t.header["productid"] == "000000000000"
    assert t.entries[0] == {"kind": "processor", "offset": 0x3C, "type": 0, "apicid": 0,
                            "apicver": 0x14, "cpuflag": 3, "cpufeature": 0x600,
                            "featureflag": 0x201, "reserved": [0, 0]}
    assert t.entries[-1]["destapic"] == 0xFF and t.entries[-1]["destapiclint"] == 1
    assert any("oemcount 30" in n and "Firecracker" in n for n in t.notes)
    d = t.to_dict()
    assert d["cpus"] == 1 and d["checksums_ok"] is True
    assert d["checksums"] == {"mpf": {"stored": 0x8B, "ok": True},
                              "table": {"stored": 0x45, "ok": True}}


def test_bad_checksums_strict_and_lenient():
    bad = bytearray(FC_MPTABLE_1)
    bad[16 + 44 + 1] = 7                # processor apicid: table checksum now wrong
    with pytest.raises(FormatError) as exc:
        mptable.parse_mp_table(bytes(bad), offset=0, base=0x9FC00, path="d.bin")
    line = str(exc.value)
    assert line.startswith("d.bin: MP configuration table at 0x10: field checksum (0x17) is 0x45")
    assert "\n" not in line and line.endswith("expected 0x3e")
    t = mptable.parse_mp_table(bytes(bad), offset=0, base=0x9FC00, lenient=True)
    assert t.checksums["table"]["ok"] is False and len(t.problems) == 1
    assert t.processors[0]["apicid"] == 7

    bad = bytearray(FC_MPTABLE_1)
    bad[10] ^= 1                        # floating pointer checksum
    with pytest.raises(FormatError, match=r"MP floating pointer at 0x0: field checksum"):
        mptable.parse_mp_table(bytes(bad), offset=0, base=0x9FC00)
    assert not mptable.parse_mp_table(bytes(bad), offset=0, base=0x9FC00,
                                      lenient=True).checksums_ok


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.__setitem__(slice(0, 4), b"_MX_"),
     r"field signature \(0x0\) is b'_MX_', expected b'_MP_'"),
    (lambda b: b.__setitem__(slice(16, 20), b"PCMX"),
     r"MP configuration table at 0x10: field signature \(0x10\) is b'PCMX', expected b'PCMP'"),
    (lambda b: b.__setitem__(slice(4, 8), (0x9FC10 + 0x1000).to_bytes(4, "little")),
     r"points at 0xa0c10, outside the data"),
    (lambda b: b.__setitem__(slice(20, 22), (400).to_bytes(2, "little")),
     r"length 400 runs past the end"),
    (lambda b: b.__setitem__(slice(20, 22), (10).to_bytes(2, "little")),
     r"field length \(0x14\) is 10, expected at least 44"),
    (lambda b: b.__setitem__(16 + 44, 9), r"has entry type 9 at 0x3c, expected a base entry"),
    (lambda b: b.__setitem__(slice(20, 22), (288 - 4).to_bytes(2, "little")),
     r"lintsrc entry at 0x128 runs past the table length 284"),
])
def test_bad_tables_raise_one_line(mutate, message):
    bad = bytearray(FC_MPTABLE_1)
    mutate(bad)
    with pytest.raises(FormatError, match=message) as exc:
        mptable.parse_mp_table(bytes(bad), offset=0, base=0x9FC00, path="x", lenient=True)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("x: ")


def test_truncated_floating_pointer():
    with pytest.raises(FormatError, match=r"MP floating pointer at 0x0 is truncated: 9 bytes, "
                                          r"expected 16 bytes"):
        mptable.parse_mp_table(FC_MPTABLE_1[:9], offset=0, base=0x9FC00)


def _dump_with(table: bytes, at: int, size: int = 0x100000, bda: dict | None = None) -> bytes:
    mem = bytearray(size)
    mem[at:at + len(table)] = table
    for addr, value in (bda or {}).items():
        mem[addr:addr + 2] = value.to_bytes(2, "little")
    return bytes(mem)


def test_scan_osv_way_finds_firecracker_table():
    dump = _dump_with(FC_MPTABLE_1, 0x9FC00)
    assert mptable.find_mp_table(dump, method="osv") == 0x9FC00
    t = mptable.scan_mp_table(dump)
    # 0x9fc00 is also the last KiB of 640 KiB base memory, the spec's second area
    assert t.address == 0x9FC00 and t.found_by == "spec" and len(t.processors) == 1


def test_scan_spec_way_uses_the_bda():
    table = mptable.build_mp_table(0x9D000, [mptable.build_entry("processor", apicid=0,
                                                                 cpuflag=3)])
    dump = _dump_with(table, 0x9D000, bda={0x40E: 0x9D00, 0x413: 628})
    assert mptable.mp_search_ranges(dump, method="spec") == [
        (0x9D000, 1024), (627 * 1024, 1024), (0xF0000, 0x10000)]
    assert mptable.find_mp_table(dump, method="spec") == 0x9D000
    assert mptable.find_mp_table(dump, method="osv") is None   # OSv would not find it
    # in the BIOS ROM area, 16-byte aligned
    table = mptable.build_mp_table(0xF5A50, [])
    dump = _dump_with(table, 0xF5A50)
    assert mptable.find_mp_table(dump, method="spec") == 0xF5A50
    assert mptable.scan_mp_table(dump).header["length"] == 44


def test_scan_spec_way_needs_a_checksum_osv_way_does_not():
    bad = bytearray(FC_MPTABLE_1)
    bad[10] ^= 0xFF
    dump = _dump_with(bytes(bad), 0x0)
    assert mptable.find_mp_table(dump, method="spec") is None
    assert mptable.find_mp_table(dump, method="osv") == 0x0


def test_scan_skips_unaligned_and_reports_nothing_found():
    dump = _dump_with(FC_MPTABLE_1, 0x9FC08)
    assert mptable.find_mp_table(dump, method="osv") is None
    with pytest.raises(FormatError, match=r"no MP floating pointer in the dump \(0x0-0x100000\)"):
        mptable.scan_mp_table(dump, path="m")


def test_scan_with_base_address():
    # a dump of 0x9f000-0xa0000 only
    dump = FC_MPTABLE_1.rjust(0xC00 + len(FC_MPTABLE_1), b"\0").ljust(0x1000, b"\0")
    t = mptable.scan_mp_table(dump, base=0x9F000)
    assert t.address == 0x9FC00 and t.offset == 0xC00


entry_values = {
    "processor": dict(apicid=st.integers(0, 255), apicver=st.integers(0, 255),
                      cpuflag=st.integers(0, 3), cpufeature=st.integers(0, 2**32 - 1),
                      featureflag=st.integers(0, 2**32 - 1)),
    "bus": dict(busid=st.integers(0, 255), bustype=st.binary(min_size=6, max_size=6)),
    "ioapic": dict(apicid=st.integers(0, 255), flags=st.integers(0, 1),
                   apicaddr=st.integers(0, 2**32 - 1)),
    "intsrc": dict(irqtype=st.integers(0, 3), irqflag=st.integers(0, 0xFFFF),
                   srcbusirq=st.integers(0, 255), dstirq=st.integers(0, 255)),
    "lintsrc": dict(irqtype=st.integers(0, 3), destapic=st.integers(0, 255),
                    destapiclint=st.integers(0, 1)),
}
entries_strategy = st.lists(st.sampled_from(sorted(entry_values)).flatmap(
    lambda k: st.fixed_dictionaries(entry_values[k]).map(lambda v: (k, v))), max_size=12)


@settings(max_examples=60, deadline=None)
@given(entries=entries_strategy, address=st.integers(0, 0xFFFF0).map(lambda a: a & ~15))
def test_build_parse_round_trip(entries, address):
    blob = mptable.build_mp_table(address, [mptable.build_entry(k, **v) for k, v in entries])
    assert len(blob) == 60 + sum(20 if k == "processor" else 8 for k, _ in entries)
    t = mptable.parse_mp_table(blob, offset=0, base=address)
    assert t.checksums_ok and t.header["oemcount"] == len(entries) and not t.notes
    assert [(e["kind"]) for e in t.entries] == [k for k, _ in entries]
    for e, (k, v) in zip(t.entries, entries):
        for name, value in v.items():
            got = e[name].encode("latin-1") if name == "bustype" else e[name]
            assert got == value
    # build(parse(b)) == b, entry by entry
    rebuilt = b"".join(mptable.build_entry(e["kind"], **{
        n: (x.encode("latin-1") if n == "bustype" else x)
        for n, x in e.items() if n not in ("kind", "offset", "type")}) for e in t.entries)
    assert rebuilt == blob[60:]


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(min_size=0, max_size=400), offset=st.integers(0, 32))
def test_garbage_never_escapes_as_anything_but_format_error(garbage, offset):
    try:
        mptable.parse_mp_table(garbage, offset=offset, base=0)
    except FormatError as exc:
        assert "\n" not in str(exc)


# -- whole-file scan (issue 13): a dump that does not start at physical 0, without --base --

def _fseg_dump(address: int = 0xF5A00, base: int = 0xF0000) -> bytes:
    """A 64 KiB F-segment dump holding a one-CPU MP table at ``address``."""
    table = mptable.build_mp_table(address, [mptable.build_entry(
        "processor", apicid=0, apicver=0x14, cpuflag=3)])
    dump = bytearray(0x10000)
    dump[address - base:address - base + len(table)] = table
    return bytes(dump)


def test_scan_of_a_dump_not_at_physical_0_finds_the_pointer_and_the_base():
    dump = _fseg_dump()
    assert mptable.find_mp_table(dump, method="spec") is None
    assert mptable.find_mp_table(dump, method="osv") is None
    assert mptable.find_mp_table_anywhere(dump) == (0x5A00, 0xF0000)
    t = mptable.scan_mp_table(dump, path="fseg.bin")
    assert t.found_by == "scan" and t.suggested_base == 0xF0000
    assert (t.offset, t.address, len(t.processors), t.checksums_ok) == (0x5A00, 0xF5A00, 1, True)
    assert t.header["address"] == 0xF5A10 and t.header["offset"] == 0x5A10
    assert "whole-file scan found the floating pointer at file offset 0x5a00" in t.notes[0]
    assert "--base 0xf0000 makes its physptr point at the configuration table" in t.notes[0]
    text = mptable.describe_mp_table(t)
    assert "found by a whole-file scan" in text and "--base 0xf0000" in text
    # with that base the spec search (BIOS ROM area) finds it the ordinary way
    t = mptable.scan_mp_table(dump, base=0xF0000)
    assert (t.found_by, t.suggested_base, t.address) == ("spec", None, 0xF5A00)


def test_scan_picks_the_table_the_pointer_names_and_skips_inconsistent_pointers():
    dump = bytearray(_fseg_dump(0xF5A00))
    # a decoy pointer earlier in the file whose checksum is right but whose physptr names no
    # table in the file at a 16-byte-aligned position
    decoy = bytearray(dump[0x5A00:0x5A10])
    decoy[4:8] = (0x12345).to_bytes(4, "little")
    decoy[10] = 0
    decoy[10] = -sum(decoy) & 0xFF
    dump[0x100:0x110] = decoy
    assert mptable.find_mp_table_anywhere(bytes(dump)) == (0x5A00, 0xF0000)


def test_scan_of_a_default_configuration_pointer():
    mpf = bytearray(mptable.build_mp_table(0xF5A00, [])[:16])
    mpf[4:8] = bytes(4)          # physptr 0: a default configuration, no table
    mpf[0xB] = 5                 # feature1: default configuration type 5
    mpf[10] = 0
    mpf[10] = -sum(mpf) & 0xFF
    dump = bytes(0x123) + bytes(mpf) + bytes(0x1000)
    t = mptable.scan_mp_table(dump)
    assert t.found_by == "scan" and t.suggested_base is None and t.offset == 0x123
    assert "any --base fits" in t.notes[0]
    assert any("default configuration 5" in n for n in t.notes)


def test_decode_cli_reports_the_scan(cli, tmp_path):
    f = tmp_path / "fseg.bin"
    f.write_bytes(_fseg_dump())
    r = cli("decode", "mptable", f)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "found by a whole-file scan" in out and "--base 0xf0000" in out
    r = cli("decode", "mptable", f, "--json")
    d = json.loads(r.stdout)
    assert d["found_by"] == "scan" and d["suggested_base"] == 0xF0000 and d["cpus"] == 1
