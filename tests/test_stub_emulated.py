"""Run the vmlinux and PVH entry stubs in unicorn and check what they leave in memory.

Inputs (boot_params, hvm_start_info) are written out field by field here from the facts; the
expected boot-info block / e820 records follow OSv's ``arch-setup.hh``.  The hand-over
itself (far return, jump through 0x200800) is checked by disassembly here and by the QEMU
boot tests.
"""

from __future__ import annotations

import struct

import pytest

from osvkit.asm import disassemble
from osvkit.image import vmlinux

import unicorn  # in the test extra: a missing emulator must fail, not skip these tests
from unicorn import x86_const as X

BASE = 0x100000

# Firecracker's e820 for 128 MiB (HEAD order)
FC_E820_128M = [
    (0x0, 0x9FC00, 1),
    (0x9FC00, 0xE0000 - 0x9FC00, 2),
    (0xEEC00000, 0x10000000, 2),
    (0x100000, 0x8000000 - 0x100000, 1),
]


def _emu(bits: int):
    mode = unicorn.UC_MODE_64 if bits == 64 else unicorn.UC_MODE_32
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, mode)
    uc.mem_map(0, 4 * 1024 * 1024)
    return uc


def _find(code: bytes, bits: int, base: int, mnemonic: str) -> int:
    for addr, mn, _ops in disassemble(code, bits=bits, base=base):
        if mn.startswith(mnemonic):
            return addr
    raise AssertionError(f"no {mnemonic} in the stub")


def _code(code: bytes, bits: int, base: int):
    """Instructions up to the final far return / indirect jump (the zero padding after
    the code is not code)."""
    out = []
    for ins in disassemble(code, bits=bits, base=base):
        out.append(ins)
        if ins[1] == "lretq" or (ins[1] in ("jmpl", "jmpq") and ins[2].startswith("*")):
            break
    return out


def _boot_params(cmdline_ptr: int, e820) -> bytes:
    bp = bytearray(4096)
    bp[0x1E8] = len(e820)                                  # e820_entries
    struct.pack_into("<H", bp, 0x1FE, 0xAA55)              # hdr.boot_flag
    struct.pack_into("<I", bp, 0x202, 0x53726448)          # hdr.header "HdrS"
    struct.pack_into("<I", bp, 0x228, cmdline_ptr)         # hdr.cmd_line_ptr
    for i, (addr, size, typ) in enumerate(e820):           # e820_table, 20-byte entries
        struct.pack_into("<QQI", bp, 0x2D0 + 20 * i, addr, size, typ)
    return bytes(bp)


def _check_bootinfo(mem: bytes, *, cmdline: int, e820, name: bytes, rsdp: int = 0):
    bi = mem[0x1000:0x1000 + 121]
    assert struct.unpack_from("<I", bi, 0)[0] == 0x200            # flags: boot_loader_name
    assert struct.unpack_from("<I", bi, 16)[0] == cmdline          # cmdline
    assert struct.unpack_from("<I", bi, 44)[0] == 24 * len(e820)   # mmap_length
    assert struct.unpack_from("<I", bi, 48)[0] == 0x2000           # mmap_addr
    name_ptr = struct.unpack_from("<I", bi, 64)[0]                 # boot_loader_name
    assert mem[name_ptr:name_ptr + len(name) + 1] == name + b"\0"
    tsc = struct.unpack_from("<QQQ", bi, 88)                       # three TSC stamps, equal
    assert tsc[0] == tsc[1] == tsc[2]
    assert bi[112] == 0                                            # disk_err
    assert struct.unpack_from("<Q", bi, 113)[0] == rsdp            # pvh_rsdp
    # every other byte of the block was zeroed
    others = bytearray(bi)
    for start, size in ((0, 4), (16, 4), (44, 8), (64, 4), (88, 24), (113, 8)):
        others[start:start + size] = bytes(size)
    assert others == bytes(121)
    recs = [struct.unpack_from("<IQQI", mem, 0x2000 + 24 * i) for i in range(len(e820))]
    assert recs == [(20, a, s, t) for a, s, t in e820]


@pytest.fixture(scope="module")
def blob() -> bytes:
    return vmlinux.stub_blob(handover="start32")


def test_entry64_copies_boot_params(blob):
    uc = _emu(64)
    uc.mem_write(BASE, blob)
    uc.mem_write(0x1000, b"\xaa" * 121)          # garbage the stub must clear
    uc.mem_write(0x7000, _boot_params(0x20000, FC_E820_128M))
    uc.reg_write(X.UC_X86_REG_RSI, 0x7000)
    uc.reg_write(X.UC_X86_REG_RSP, 0x8FF0)
    stop = _find(blob[:vmlinux.OFF_COMPAT32], 64, BASE, "lgdt")
    uc.emu_start(BASE, stop)
    mem = bytes(uc.mem_read(0, 0x3000)) + bytes(0x100000 - 0x3000) + \
        bytes(uc.mem_read(BASE, vmlinux.STUB_SIZE))
    _check_bootinfo(mem, cmdline=0x20000, e820=FC_E820_128M, name=b"osvkit-vmlinux64")
    assert uc.reg_read(X.UC_X86_REG_RBX) == 0x1000


def test_entry64_caps_e820_at_128(blob):
    uc = _emu(64)
    uc.mem_write(BASE, blob)
    e820 = [(i * 0x1000, 0x1000, 1) for i in range(128)]
    bp = bytearray(_boot_params(0x20000, e820))
    bp[0x1E8] = 200                                  # corrupt count: the stub caps at 128
    uc.mem_write(0x7000, bytes(bp))
    uc.reg_write(X.UC_X86_REG_RSI, 0x7000)
    uc.emu_start(BASE, _find(blob[:vmlinux.OFF_COMPAT32], 64, BASE, "lgdt"))
    assert struct.unpack("<I", uc.mem_read(0x1000 + 44, 4))[0] == 128 * 24


def test_entry64_start32_handover_code(blob):
    ins = _code(blob[:vmlinux.OFF_COMPAT32], 64, BASE)
    tail = [(mn, ops) for _a, mn, ops in ins[-4:]]
    assert tail == [("lgdtq", "(%rax)"), ("pushq", "$0x18"), ("pushq", "$0x100200"),
                    ("lretq", "")]
    assert ("movl", "$0x100260, %eax") in [(mn, ops) for _a, mn, ops in ins]
    compat = _code(blob[vmlinux.OFF_COMPAT32:vmlinux.OFF_GDT], 32, 0x100200)
    assert [(mn, ops) for _a, mn, ops in compat if mn] == [
        ("movl", "$0x10, %eax"), ("movl", "%eax, %ds"), ("movl", "%eax, %es"),
        ("movl", "%eax, %ss"), ("movl", "%eax, %fs"), ("movl", "%eax, %gs"),
        ("movl", "$0x8ff0, %esp"), ("movl", "$0x1000, %ebx"), ("xorl", "%edi, %edi"),
        ("jmpl", "*0x200800"),
    ]
    # the GDT the stub loads: OSv's selectors 0x08 64-bit code, 0x10 data, 0x18 32-bit code
    assert blob[0x240:0x260] == bytes.fromhex(
        "0000000000000000" "ffff0000009baf00" "ffff00000093cf00" "ffff0000009bcf00")
    assert blob[0x260:0x26A] == bytes.fromhex("1f00" "4002100000000000")  # limit 31, base


def test_entry64_start64_handover_code():
    blob = vmlinux.stub_blob(handover="start64", start64=0x201010, ident_pt_l4=0x202000)
    ins = [(mn, ops) for _a, mn, ops in _code(blob[:vmlinux.OFF_COMPAT32], 64, BASE)]
    i = ins.index(("lgdtq", "(%rax)"))
    assert ins[i + 1:] == [
        ("movl", "$0x10, %eax"), ("movl", "%eax, %ds"), ("movl", "%eax, %es"),
        ("movl", "%eax, %ss"), ("movl", "%eax, %fs"), ("movl", "%eax, %gs"),
        ("movq", "$0x7b8, %rax"), ("movq", "%rax, %cr4"),
        ("movq", "$0x202000, %rax"), ("movq", "%rax, %cr3"),
        ("movl", "$0xc0000080, %ecx"), ("rdmsr", ""), ("orl", "$0x900, %eax"), ("wrmsr", ""),
        ("movabsq", "$0x80010003, %rax"), ("movq", "%rax, %cr0"),
        ("movl", "$0x1000, %ebx"), ("xorl", "%edi, %edi"),
        ("movq", "$0x201010, %rax"), ("jmpq", "*%rax"),
    ]


def _start_info(*, cmdline: int, memmap_addr: int, memmap, rsdp: int) -> bytes:
    si = struct.pack("<IIIIQQQQII", 0x336EC578, 1, 0, 0, 0, cmdline, rsdp, memmap_addr,
                     len(memmap), 0)
    assert len(si) == 56
    return si


def test_pvh_stub_copies_start_info(blob):
    uc = _emu(32)
    uc.mem_write(BASE, blob)
    uc.mem_write(0x1000, b"\x55" * 121)
    memmap = FC_E820_128M
    uc.mem_write(0x6000, _start_info(cmdline=0x20000, memmap_addr=0x7000, memmap=memmap,
                                     rsdp=0xF5A20))
    for i, (a, s, t) in enumerate(memmap):              # hvm_memmap_table_entry, 24 bytes
        uc.mem_write(0x7000 + 24 * i, struct.pack("<QQII", a, s, t, 0))
    uc.reg_write(X.UC_X86_REG_EBX, 0x6000)
    pvh = BASE + vmlinux.OFF_PVH
    code = blob[vmlinux.OFF_PVH:]
    stop = [a for a, mn, ops in disassemble(code, bits=32, base=pvh) if mn == "jmpl"][-1]
    uc.emu_start(pvh, stop)
    mem = bytes(uc.mem_read(0, 0x3000)) + bytes(0x100000 - 0x3000) + \
        bytes(uc.mem_read(BASE, vmlinux.STUB_SIZE))
    _check_bootinfo(mem, cmdline=0x20000, e820=memmap, name=b"osvkit-pvh", rsdp=0xF5A20)
    assert uc.reg_read(X.UC_X86_REG_EBX) == 0x1000
    assert uc.reg_read(X.UC_X86_REG_ESP) == 0x7C00
    assert uc.reg_read(X.UC_X86_REG_EDI) == 0
    last = disassemble(code, bits=32, base=pvh)
    assert [(mn, ops) for a, mn, ops in last if a == stop] == [("jmpl", "*0x200800")]


def test_pvh_note_bytes(blob):
    # Elf64_Nhdr: namesz 4, descsz 8, type 18 (XEN_ELFNOTE_PHYS32_ENTRY), "Xen\0", u64 entry
    assert blob[0x2A0:0x2B8] == bytes.fromhex(
        "04000000" "08000000" "12000000" "58656e00" "0003100000000000")


def test_asm_text_has_no_decimal_numbers():
    """Keystone 0.9.2 in AT&T mode reads bare numbers as hex ($121 -> 0x121): every number
    in the generated text must be written 0x..."""
    import re

    from osvkit.boot import pvhstub, stub64
    texts = [
        stub64.entry64_asm(gdt_desc_addr=1, compat32_addr=2, name_addr=3, handover="start32"),
        stub64.entry64_asm(gdt_desc_addr=1, compat32_addr=2, name_addr=3, handover="start64",
                           start64=4, ident_pt_l4=5),
        stub64.compat32_asm(), pvhstub.pvh_asm(name_addr=6),
    ]
    for text in texts:
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            bad = [t for t in re.findall(r"(?<![\w%])\$?-?\d+\b", code) if t.lstrip("$-") != "0"
                   and not t.lstrip("$-").startswith("0x")]
            assert not bad, f"decimal number in {line!r}"
