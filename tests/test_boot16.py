"""osvkit's boot16 sector: exact header bytes, placement, and the generated code's shape."""

from __future__ import annotations

import re

import pytest

from osvkit.asm import disassemble
from osvkit.boot import boot16, lzdecomp, mbr

# build_boot_sector(payload_sectors=0x1234, load_addr=0x100000, decompressor_entry=0x100000)
EXPECTED_HEADER = bytes.fromhex(
    "ea 637c 0000"              # 0x00 ljmp 0000:7C63
    "00"                        # 0x05 drive (run time)
    "01"                        # 0x06 version 1
    "00"                        # 0x07
    "6f73766b69743136"          # 0x08 "osvkit16"
    "4900"                      # 0x10 count32 = ceil(0x1234 * 512 / 32 KiB) = 73
    "34120000"                  # 0x12 payload_sectors 0x1234
    "00001000"                  # 0x16 load_addr 0x100000
    "00001000"                  # 0x1A decompressor_entry 0x100000
    "10 00 3f00 0000 e007 0100000000000000"  # 0x1E DAP: 16 bytes, 63 sectors, 07E0:0000, LBA 1
    "1700 2e7c0000 0000"        # 0x2E GDTR in the null slot: limit 23, base 0x7C2E
    "ffff0000009acf00"          # 0x36 0x08: flat 32-bit code
    "ffff00000092cf00"          # 0x3E 0x10: flat 32-bit data
    "6f73766b69742d626f6f74313600"  # 0x46 "osvkit-boot16\0"
    "3a206469736b206572726f720d0a00"  # 0x54 ": disk error\r\n\0"
)


def sector(**kw):
    args = dict(payload_sectors=0x1234, load_addr=0x100000, decompressor_entry=0x100000)
    args.update(kw)
    return boot16.build_boot_sector(**args)


def test_header_exact_bytes():
    s = sector()
    assert len(EXPECTED_HEADER) == boot16.CODE_OFFSET == 0x63
    assert s[:0x63] == EXPECTED_HEADER


def test_sector_tail_is_osv_compatible():
    table = bytes(16) + mbr.partition_entry_osv(4096, 8) + bytes(32)
    s = sector(partitions=table)
    assert len(s) == 512
    assert s[0x1B8:0x1BE] == b"VSO\x00\x00\x00"   # OSv's boot sector bytes
    assert s[0x1BE:0x1FE] == table
    assert s[0x1FE:] == b"\x55\xaa"
    info = mbr.parse_mbr(s)
    assert info.disk_signature == 0x004F5356 and info.count32 == 73
    assert (info.partitions[1].lba_start, info.partitions[1].sector_count) == (4096, 8)


def test_code_fits_before_the_disk_signature():
    code, off32 = boot16.boot_code()
    s = sector()
    end = boot16.CODE_OFFSET + len(code)
    assert end <= 0x1B8
    assert s[boot16.CODE_OFFSET:end] == code
    assert s[end:0x1B8] == bytes(0x1B8 - end)


def test_constants_from_the_reference():
    assert boot16.GDT_CODE32 == 0x00CF_9A00_0000_FFFF
    assert boot16.GDT_DATA32 == 0x00CF_9200_0000_FFFF
    assert boot16.A_DECOMP_ENTRY == 0x7C1A and boot16.A_DAP == 0x7C1E
    assert boot16.SECTORS_PER_READ == 127


def test_uncompressed_payload_calls_a_ret():
    addr = boot16.no_decompressor_addr()
    s = sector(load_addr=0x200000, decompressor_entry=None)
    assert s[addr - 0x7C00] == 0xC3
    assert boot16.parse_header(s).decompressor_entry == addr
    assert boot16.parse_header(s).load_addr == 0x200000


def _code16():
    code, off32 = boot16.boot_code()
    s = sector()
    return disassemble(s[boot16.CODE_OFFSET:off32], bits=16, base=0x7C00 + boot16.CODE_OFFSET)


def _code32():
    code, off32 = boot16.boot_code()
    s = sector()
    return disassemble(s[off32:boot16.CODE_OFFSET + len(code)], bits=32, base=0x7C00 + off32)


def test_entry_jump_and_protected_mode_jump_targets():
    first = disassemble(sector()[:5], bits=16, base=0x7C00)
    assert first == [(0x7C00, "ljmpw", "$0x0:$0x7c63")]
    code, off32 = boot16.boot_code()
    jumps = [op for _, m, op in _code16() if m.startswith("ljmp")]
    assert jumps == [f"$0x8:${0x7C00 + off32:#x}"]


def test_16bit_code_uses_the_bios_drive_and_the_expected_calls():
    insns = _code16()
    text = [f"{m} {op}" for _, m, op in insns]
    assert "movb %dl, 0x7c05" in text              # saves the BIOS boot drive
    assert "movb 0x7c05, %dl" in text              # and uses it for every read
    assert not any(t.startswith("movb $0x80, %dl") for t in text)  # no hard-coded 0x80
    ints = [op for _, m, op in insns if m == "int"]
    assert ints == ["$0x15", "$0x15", "$0x13", "$0x10"]  # A20, E820, disk, teletype
    assert sum(m == "rdtsc" for _, m, _ in insns) == 2
    assert "movl $0xe820, %eax" in text and "movl $0x534d4150, %edx" in text
    assert "movb $0x42, %ah" in text                # extended read
    assert "cmpl $0x7f, %ecx" in text               # 127 sectors per call
    # the sector count is re-read from the DAP as a zero-extended word (a 32-bit count above
    # 65535 once left garbage in ECX's upper half: caught by the 40 MiB uncompressed boot)
    assert "movzwl 0x7c20, %ecx" in text
    assert "movb $0x80, 0x7c26" in text             # payload from LBA 128
    assert "movw $0x1000, 0x7c24" in text           # bounce buffer segment (0x10000)
    assert "addw $0x18, %di" in text                # 24-byte e820 records
    assert "movw $0x3f8, %dx" in text               # COM1
    assert any(m == "rep movsl" for _, m, _ in insns)  # the unreal-mode copy


def test_32bit_tail_exact():
    text = [f"{m} {op}".strip() for _, m, op in _code32()]
    assert text == [
        "pushl $0x10", "popl %eax",
        "movl %eax, %ds", "movl %eax, %es", "movl %eax, %ss", "movl %eax, %fs", "movl %eax, %gs",
        "movzwl %sp, %esp",
        "calll *0x7c1a",                     # the decompressor (or a ret)
        "rdtsc", "movl $0x1000, %ebx",
        "movl %eax, 0x68(%ebx)", "movl %edx, 0x6c(%ebx)",   # tsc_uncompress_done (+104)
        "calll *0x200800",                   # start32 through the kernel's slot, EBX = 0x1000
        "retl",
    ]


@pytest.mark.parametrize("text", [boot16._code16(0x7D00), boot16._code32(), lzdecomp._code()],
                         ids=["code16", "code32", "lzdecomp"])
def test_generated_assembly_writes_numbers_in_hex(text):
    # Keystone 0.9.2 in AT&T mode reads "20" as 0x20: a bare decimal >= 10 would be a bug
    assert _bare_decimals("movl $20, %ecx\nmovl 12(%esi), %eax\nmovl $0x14, %ecx") == ["20", "12"]
    assert _bare_decimals(text) == []


def _bare_decimals(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if code.strip().startswith(".byte"):
            continue
        for tok in re.findall(r"[$\s,(-]([0-9][0-9a-fA-Fx]*)", code):
            if not tok.startswith("0x") and int(tok) >= 10:
                found.append(tok)
    return found
