"""PVH hvm_start_info, memmap and module-list entries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit.boot import pvh
from osvkit.structs import base as schema
from osvkit.errors import FormatError
from osvkit.structs import pvh as pvh_s


def test_sizes_and_offsets():
    assert pvh.HvmStartInfo.sizeof() == 56
    assert pvh.HvmMemmapTableEntry.sizeof() == 24
    assert pvh.HvmModlistEntry.sizeof() == 32
    # Xen's start_info.h, written out
    assert pvh_s.HVM_START_INFO_OFFSETS == {
        "magic": 0, "version": 4, "flags": 8, "nr_modules": 12, "modlist_paddr": 16,
        "cmdline_paddr": 24, "rsdp_paddr": 32, "memmap_paddr": 40, "memmap_entries": 48,
        "reserved": 52}
    assert pvh_s.HVM_MEMMAP_ENTRY_OFFSETS == {"addr": 0, "size": 8, "type": 16, "reserved": 20}
    assert pvh_s.HVM_MODLIST_ENTRY_OFFSETS == {"paddr": 0, "size": 8, "cmdline_paddr": 16,
                                             "reserved": 24}


def test_build_exact_bytes():
    blob = pvh.build_start_info(cmdline_paddr=0x20000, memmap_paddr=0x7000, memmap_entries=4)
    assert blob == bytes.fromhex(
        "78c56e33"          # magic 0x336ec578
        "01000000"          # version 1
        "00000000"          # flags
        "00000000"          # nr_modules
        "0000000000000000"  # modlist_paddr
        "0000020000000000"  # cmdline_paddr 0x20000
        "0000000000000000"  # rsdp_paddr
        "0070000000000000"  # memmap_paddr 0x7000
        "04000000"          # memmap_entries
        "00000000")         # reserved
    assert pvh.build_memmap([(0x100000, 0x1000, 1)]) == bytes.fromhex(
        "0000100000000000" "0010000000000000" "01000000" "00000000")
    assert pvh.build_modlist([(0x800000, 0x1234, 0)]) == bytes.fromhex(
        "0000800000000000" "3412000000000000" "0000000000000000" "0000000000000000")


def test_parse_follows_pointers():
    mem = bytearray(0x21000)
    mem[0x6000:0x6038] = pvh.build_start_info(cmdline_paddr=0x20000, memmap_paddr=0x7000,
                                              memmap_entries=2, nr_modules=1,
                                              modlist_paddr=0x6040)
    mem[0x6040:0x6060] = pvh.build_modlist([(0x800000, 0x1000, 0)])
    mem[0x7000:0x7030] = pvh.build_memmap([(0, 0x9FC00, 1), (0x9FC00, 0x40400, 2)])
    mem[0x20000:0x20006] = b"--foo\0"
    info = pvh.parse_start_info(bytes(mem), offset=0x6000, base=0)
    assert info.fields["magic"] == 0x336EC578 and info.cmdline == "--foo"
    assert info.memmap == [(0, 0x9FC00, 1), (0x9FC00, 0x40400, 2)]
    assert info.modules == [{"paddr": 0x800000, "size": 0x1000, "cmdline_paddr": 0,
                             "reserved": 0}]
    text = pvh.describe_start_info(info)
    assert "magic: 0x336ec578" in text and "module 0: paddr 0x800000" in text
    info = pvh.parse_start_info(bytes(mem[0x6000:0x6038]), base=0x6000)
    assert info.memmap is None and len(info.notes) == 3


def test_bad_magic_and_truncated():
    blob = bytearray(pvh.build_start_info())
    blob[0] ^= 1
    with pytest.raises(FormatError, match=r"p.bin: hvm_start_info at 0x0: field magic \(0x0\) "
                                          r"is 0x336ec579, expected 0x336ec578"):
        pvh.parse_start_info(bytes(blob), path="p.bin")
    with pytest.raises(FormatError, match=r"truncated: 55 bytes, expected 56 bytes"):
        pvh.parse_start_info(pvh.build_start_info()[:55])


@settings(max_examples=50, deadline=None)
@given(body=st.binary(min_size=52, max_size=52))
def test_round_trip(body):
    blob = (0x336EC578).to_bytes(4, "little") + body
    c = schema.parse(pvh.HvmStartInfo, blob, what="hvm_start_info")
    assert schema.build(pvh.HvmStartInfo, c) == blob
    assert schema.parse(pvh.HvmStartInfo, schema.build(pvh.HvmStartInfo, c),
                        what="hvm_start_info") == c


@settings(max_examples=50, deadline=None)
@given(values=st.fixed_dictionaries({
    "cmdline_paddr": st.integers(0, 2**64 - 1), "memmap_paddr": st.integers(0, 2**64 - 1),
    "memmap_entries": st.integers(0, 2**32 - 1), "nr_modules": st.integers(0, 2**32 - 1),
    "modlist_paddr": st.integers(0, 2**64 - 1), "rsdp_paddr": st.integers(0, 2**64 - 1),
    "version": st.integers(0, 2**32 - 1), "flags": st.integers(0, 2**32 - 1)}))
def test_object_round_trip(values):
    info = pvh.parse_start_info(pvh.build_start_info(**values))
    assert {k: info.fields[k] for k in values} == values
