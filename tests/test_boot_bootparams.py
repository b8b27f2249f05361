"""Linux boot_params / setup_header schema and offsets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit.boot import bootparams
from osvkit.structs import base as schema
from osvkit.structs.bootparams import BOOT_PARAMS_OFFSETS, BootParams, SetupHeader
from osvkit.errors import FormatError, LayoutError
from osvkit.structs import bootparams as bootparams_s

# Linux's bootparam.h, written out (absolute offsets in the zero page)
FACT_OFFSETS = {
    "screen_info": 0x000, "apm_bios_info": 0x040, "tboot_addr": 0x058, "ist_info": 0x060,
    "acpi_rsdp_addr": 0x070, "ext_ramdisk_image": 0x0C0, "ext_ramdisk_size": 0x0C4,
    "ext_cmd_line_ptr": 0x0C8, "cc_blob_address": 0x13C, "edid_info": 0x140,
    "efi_info": 0x1C0, "alt_mem_k": 0x1E0, "scratch": 0x1E4, "e820_entries": 0x1E8,
    "eddbuf_entries": 0x1E9, "edd_mbr_sig_buf_entries": 0x1EA, "kbd_status": 0x1EB,
    "secure_boot": 0x1EC, "sentinel": 0x1EF, "hdr": 0x1F1, "edd_mbr_sig_buffer": 0x290,
    "e820_table": 0x2D0, "eddbuf": 0xD00,
    "setup_sects": 0x1F1, "root_flags": 0x1F2, "syssize": 0x1F4, "ram_size": 0x1F8,
    "vid_mode": 0x1FA, "root_dev": 0x1FC, "boot_flag": 0x1FE, "jump": 0x200, "header": 0x202,
    "version": 0x206, "realmode_swtch": 0x208, "start_sys_seg": 0x20C,
    "kernel_version": 0x20E, "type_of_loader": 0x210, "loadflags": 0x211,
    "setup_move_size": 0x212, "code32_start": 0x214, "ramdisk_image": 0x218,
    "ramdisk_size": 0x21C, "bootsect_kludge": 0x220, "heap_end_ptr": 0x224,
    "ext_loader_ver": 0x226, "ext_loader_type": 0x227, "cmd_line_ptr": 0x228,
    "initrd_addr_max": 0x22C, "kernel_alignment": 0x230, "relocatable_kernel": 0x234,
    "min_alignment": 0x235, "xloadflags": 0x236, "cmdline_size": 0x238,
    "hardware_subarch": 0x23C, "hardware_subarch_data": 0x240, "payload_offset": 0x248,
    "payload_length": 0x24C, "setup_data": 0x250, "pref_address": 0x258, "init_size": 0x260,
    "handover_offset": 0x264, "kernel_info_offset": 0x268,
}


def test_sizes():
    assert BootParams.sizeof() == 4096
    assert SetupHeader.sizeof() == 123
    assert bootparams_s.BootE820Entry.sizeof() == 20
    assert schema.field_offsets(bootparams_s.BootE820Entry) == {"addr": 0, "size": 8, "type": 16}


def test_offsets_equal_the_reference_values():
    for name, offset in FACT_OFFSETS.items():
        assert BOOT_PARAMS_OFFSETS[name] == offset, name
    # the dict lists every named field (hd0_info, olpc_ofw_header, ... too) and nothing hidden
    assert set(FACT_OFFSETS) <= set(BOOT_PARAMS_OFFSETS)
    assert not any(k.startswith("_") for k in BOOT_PARAMS_OFFSETS)
    # what OSv's extract_linux_boot_params reads
    assert (BOOT_PARAMS_OFFSETS["e820_entries"], BOOT_PARAMS_OFFSETS["boot_flag"],
            BOOT_PARAMS_OFFSETS["header"], BOOT_PARAMS_OFFSETS["cmd_line_ptr"],
            BOOT_PARAMS_OFFSETS["e820_table"]) == (0x1E8, 0x1FE, 0x202, 0x228, 0x2D0)


def test_build_writes_magics_fields_and_e820_where_the_facts_say():
    page = bootparams.build_boot_params(
        hdr={"cmd_line_ptr": 0x20000, "cmdline_size": 12, "type_of_loader": 0xFF},
        e820=[(0, 0x9FC00, 1), (0x100000, 0x7F00000, 1)], acpi_rsdp_addr=0xE0000,
        ext_cmd_line_ptr=0x1)
    assert len(page) == 4096
    assert page[0x1FE:0x200] == bytes.fromhex("55 aa")
    assert page[0x202:0x206] == b"HdrS" == bytes.fromhex("48 64 72 53")
    assert page[0x228:0x22C] == bytes.fromhex("00 00 02 00")
    assert page[0x238:0x23C] == bytes.fromhex("0c 00 00 00")
    assert page[0x210] == 0xFF
    assert page[0x70:0x78] == bytes.fromhex("00 00 0e 00 00 00 00 00")
    assert page[0xC8:0xCC] == bytes.fromhex("01 00 00 00")
    assert page[0x1E8] == 2
    assert page[0x2D0:0x2E4] == bytes.fromhex(
        "0000000000000000" "00fc090000000000" "01000000")
    assert page[0x2E4:0x2F8] == bytes.fromhex(
        "0000100000000000" "0000f00700000000" "01000000")
    assert page[0x2F8:] .count(0) == len(page) - 0x2F8
    changed = {i for i, b in enumerate(page) if b}
    assert changed <= set(range(0x70, 0x78)) | {0xC8, 0x1E8, 0x1FE, 0x1FF, 0x210} \
        | set(range(0x202, 0x206)) | set(range(0x228, 0x23C)) | set(range(0x2D0, 0x2F8))


def test_parse_and_describe():
    page = bootparams.build_boot_params(hdr={"cmd_line_ptr": 0x1000, "cmdline_size": 6},
                                        e820=[(0, 0x9FC00, 1)])
    mem = bytearray(0x2000)
    mem[0:4096] = page
    mem[0x1000:0x1006] = b"hello\0"
    info = bootparams.parse_boot_params(bytes(mem), base=0)
    assert info.cmdline == "hello" and info.e820 == [(0, 0x9FC00, 1)]
    assert info.hdr["header"] == "HdrS" and info.hdr["boot_flag"] == 0xAA55
    text = bootparams.describe_boot_params(info)
    assert "cmd_line_ptr: 0x1000" in text and "cmdline: 'hello'" in text
    assert "[0x000000000000, 0x00000009fc00) size 0x9fc00 type 1 (RAM)" in text
    d = info.to_dict()
    assert d["e820"] == [{"addr": 0, "size": 0x9FC00, "type": 1}] and d["cmdline"] == "hello"
    # pointer outside the data: a note, not an error
    info = bootparams.parse_boot_params(page, base=0x7000)
    assert info.cmdline is None and "outside the data" in info.notes[0]


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.__setitem__(slice(0x1FE, 0x200), b"\0\0"),
     r"boot_params at 0x0: field hdr.boot_flag \(0x1fe\) is 0x0, expected 0xaa55"),
    (lambda p: p.__setitem__(slice(0x202, 0x206), b"HdrX"),
     r"field hdr.header \(0x202\) is b'HdrX', expected b'HdrS'"),
    (lambda p: p.__setitem__(0x1E8, 129), r"field e820_entries \(0x1e8\) is 129, "
                                          r"expected at most 128"),
])
def test_bad_input(mutate, message):
    page = bytearray(bootparams.build_boot_params())
    mutate(page)
    with pytest.raises(FormatError, match=message) as exc:
        bootparams.parse_boot_params(bytes(page), path="zp.bin")
    assert str(exc.value).startswith("zp.bin: ") and "\n" not in str(exc.value)


def test_truncated_and_lenient():
    page = bootparams.build_boot_params()
    with pytest.raises(FormatError, match=r"boot_params at 0x0 is truncated: 4095 bytes, "
                                          r"expected 4096 bytes"):
        bootparams.parse_boot_params(page[:-1])
    bad = bytearray(page)
    bad[0x1E8] = 200
    info = bootparams.parse_boot_params(bytes(bad), lenient=True)
    assert len(info.e820) == 128 and "at most 128" in info.notes[0]


def test_too_many_e820_entries_and_unbuildable_values():
    with pytest.raises(LayoutError):
        bootparams.build_boot_params(e820=[(0, 1, 1)] * 129)
    with pytest.raises(LayoutError, match=r"cannot build boot_params: field hdr.cmd_line_ptr"):
        bootparams.build_boot_params(hdr={"cmd_line_ptr": 2**32})


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64), sparse=st.dictionaries(st.integers(0, 4095),
                                                          st.integers(0, 255), max_size=64))
def test_round_trip_random_pages(seed, sparse):
    page = bytearray(random.Random(seed).randbytes(4096) if seed % 2 else bytes(4096))
    for i, v in sparse.items():
        page[i] = v
    page[0x1FE:0x200] = b"\x55\xAA"
    page[0x202:0x206] = b"HdrS"
    page = bytes(page)
    c = schema.parse(BootParams, page, what="boot_params")
    assert schema.build(BootParams, c) == page
    assert schema.parse(BootParams, schema.build(BootParams, c), what="boot_params") == c


@settings(max_examples=40, deadline=None)
@given(e820=st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                               st.integers(0, 2**32 - 1)), max_size=128),
       ptr=st.integers(0, 2**32 - 1))
def test_build_parse_round_trip(e820, ptr):
    page = bootparams.build_boot_params(hdr={"cmd_line_ptr": ptr}, e820=e820)
    info = bootparams.parse_boot_params(page)
    assert info.e820 == e820 and info.hdr["cmd_line_ptr"] == ptr
