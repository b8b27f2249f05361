"""Builders that reproduce Firecracker's boot data."""

from __future__ import annotations

import pytest

from osvkit.boot import bootparams, firecracker as fc
from osvkit.errors import LayoutError

GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize("mem, expected", [
    (128 * MiB, [(0x0, 0x9FC00, 1), (0x9FC00, 0x40400, 2), (0xEEC00000, 0x10000000, 2),
                 (0x100000, 0x7F00000, 1)]),
    (3 * GiB, [(0x0, 0x9FC00, 1), (0x9FC00, 0x40400, 2), (0xEEC00000, 0x10000000, 2),
               (0x100000, 0xBFF00000, 1)]),
    (4 * GiB, [(0x0, 0x9FC00, 1), (0x9FC00, 0x40400, 2), (0xEEC00000, 0x10000000, 2),
               (0x100000, 0xBFF00000, 1), (0x1_0000_0000, 0x4000_0000, 1)]),
    (300 * GiB, [(0x0, 0x9FC00, 1), (0x9FC00, 0x40400, 2), (0xEEC00000, 0x10000000, 2),
                 (0x100000, 0xBFF00000, 1), (0x1_0000_0000, 0x3F_0000_0000, 1),
                 (0x80_0000_0000, 0xB_4000_0000, 1)]),
])
def test_e820(mem, expected):
    assert fc.firecracker_e820(mem) == expected


def test_e820_too_small():
    with pytest.raises(LayoutError):
        fc.firecracker_e820(0x100000)


def test_gdt_entry_literals():
    # the values Firecracker's regs.rs tests assert
    assert fc.gdt_entry(0, 0, 0) == 0
    assert fc.gdt_entry(0xA09B, 0, 0xFFFFF) == 0x00AF9B000000FFFF
    assert fc.gdt_entry(0xC093, 0, 0xFFFFF) == 0x00CF93000000FFFF
    assert fc.gdt_entry(0x808B, 0, 0xFFFFF) == 0x008F8B000000FFFF
    assert fc.gdt_entry(0xC09B, 0, 0xFFFFFFFF) == 0x00CF9B000000FFFF
    # the access byte 0x8b belongs in bits 40-47 (Firecracker's regs.rs asserts
    # 0x00_8b00_0000_0067)
    assert fc.gdt_entry(0x008B, 0, 0x67) == 0x0000_8B00_0000_0067
    # base bits land in bytes 2-4 and 7
    assert fc.gdt_entry(0xA09B, 0x12345678, 0xFFFFF) == 0x12AF9B345678FFFF


def test_gdt_tables():
    assert fc.firecracker_gdt("linux") == bytes.fromhex(
        "0000000000000000" "ffff0000009baf00" "ffff00000093cf00" "ffff0000008b8f00")
    assert fc.firecracker_gdt("pvh") == bytes.fromhex(
        "0000000000000000" "ffff0000009bcf00" "ffff00000093cf00" "67000000008b0000")
    with pytest.raises(ValueError):
        fc.firecracker_gdt("multiboot")


def test_page_tables():
    pt = fc.firecracker_page_tables()
    assert len(pt) == 0x3000                          # 0x9000-0xC000
    assert pt[0:8] == bytes.fromhex("03a0000000000000")          # PML4[0] = 0xa003
    assert pt[0x1000:0x1008] == bytes.fromhex("03b0000000000000")  # PDPT[0] = 0xb003
    assert pt[0x2000:0x2008] == bytes.fromhex("8300000000000000")  # PD[0] = 0x83
    assert pt[0x2008:0x2010] == bytes.fromhex("8300200000000000")  # PD[1] = 0x200083
    assert pt[0x2FF8:0x3000] == bytes.fromhex("8300e03f00000000")  # PD[511] = 0x3fe00083
    assert pt[8:0x1000] == bytes(0x1000 - 8) and pt[0x1008:0x2000] == bytes(0x1000 - 8)


def test_boot_params_fields():
    page = fc.firecracker_boot_params(len("--nopci /hello"), fc.firecracker_e820(128 * MiB))
    assert len(page) == 4096
    assert page[0x1FE:0x200] == bytes.fromhex("55 aa")             # boot_flag
    assert page[0x202:0x206] == b"HdrS"                            # header
    assert page[0x210] == 0xFF                                     # type_of_loader
    assert page[0x228:0x22C] == bytes.fromhex("00 00 02 00")       # cmd_line_ptr 0x20000
    assert page[0x230:0x234] == bytes.fromhex("00 00 00 01")       # kernel_alignment
    assert page[0x238:0x23C] == bytes.fromhex("0f 00 00 00")       # cmdline_size = 14 + 1
    assert page[0x70:0x78] == bytes.fromhex("00 00 0e 00 00 00 00 00")  # acpi_rsdp_addr
    assert page[0x1E8] == 4                                        # e820_entries
    assert page[0x2D0 + 40:0x2D0 + 60] == bytes.fromhex(          # entry 2: MMCONFIG
        "0000c0ee00000000" "0000001000000000" "02000000")
    info = bootparams.parse_boot_params(page)
    assert info.e820 == fc.firecracker_e820(128 * MiB)
    assert info.hdr["version"] == 0 and info.hdr["loadflags"] == 0
    with pytest.raises(LayoutError):
        fc.firecracker_boot_params(2048, [])


def test_pvh_start_info():
    assert fc.firecracker_pvh_start_info(4) == bytes.fromhex(
        "78c56e33" "01000000" "00000000" "00000000" "0000000000000000"
        "0000020000000000" "0000000000000000" "0070000000000000" "04000000" "00000000")
    with_module = fc.firecracker_pvh_start_info(4, nr_modules=1)
    assert with_module[12:16] == bytes.fromhex("01000000")
    assert with_module[16:24] == bytes.fromhex("4060000000000000")   # modlist 0x6040
    assert fc.firecracker_pvh_memmap([(0, 0x9FC00, 1)]) == bytes.fromhex(
        "0000000000000000" "00fc090000000000" "01000000" "00000000")
