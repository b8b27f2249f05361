"""Boot the probe for real in QEMU (TCG) with the test-only loader in tests/_probeboot.py.

QEMU's generic loader places the probe file at 0x200000 (OSv's contract); SeaBIOS boots the
test loader disk, which enters the probe in one of three ways (see _probeboot).
"""

from __future__ import annotations

import subprocess

import pytest

import _probeboot as pb
from osvkit.probe import build_probe, parse_report

pytestmark = pytest.mark.qemu

CMDLINE = b'--rootfs=rofs /tools/hello.so "a b" back\\slash \x01\ttab \xc3\xbc\xe2\x82\xac end'
PARTITIONS = bytes.fromhex(
    "00000201" "83000000" "00100000" "00080000"   # an entry with the kernel's fields
) + bytes(48)


# A Firecracker-style MP table at 0x9FC00: floating pointer, then the "PCMP" table at
# 0x9FC10 with two processors, an ISA bus and an I/O APIC (MP spec 1.4 layouts).
MP_FLOATING = (b"_MP_" + (0x9FC10).to_bytes(4, "little")
               + bytes([1, 4, 0x00, 0, 0, 0, 0, 0]))           # length 1 (16 B), rev 1.4
MP_TABLE = (b"PCMP" + (100).to_bytes(2, "little") + bytes([4, 0x00])
            + b"OSVKIT  " + b"PROBETEST   "
            + bytes(4) + bytes(2) + (4).to_bytes(2, "little")  # oem ptr, oem size, 4 entries
            + (0xFEE00000).to_bytes(4, "little") + bytes(4)   # lapic, ext len/cksum, reserved
            + bytes([0, 0, 0x14, 3]) + bytes(16)               # CPU 0: enabled | BSP
            + bytes([0, 1, 0x14, 1]) + bytes(16)               # CPU 1: enabled
            + bytes([1, 0]) + b"ISA   "                        # bus 0
            + bytes([2, 2, 0x11, 1]) + (0xFEC00000).to_bytes(4, "little"))  # I/O APIC


def boot(qemu, tmp_path, mode, probe: bytes, *, cpus="2,sockets=2", cmdline=CMDLINE,
         partitions=PARTITIONS, timeout=30, mptable=None):
    disk = tmp_path / "disk.raw"
    disk.write_bytes(pb.build_loader_disk(mode, cmdline, partitions=partitions,
                                          mptable=mptable))
    kernel = tmp_path / "probe.elf"
    kernel.write_bytes(probe)
    serial, bootdone = tmp_path / "serial.txt", tmp_path / "bootdone.bin"
    argv = pb.qemu_argv(qemu, str(disk), str(kernel), str(serial), str(bootdone))
    argv[argv.index("-smp") + 1] = cpus
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return serial.read_text("latin-1"), bootdone.read_bytes()


def test_pm32_entry_reports_everything(qemu, tmp_path):
    console, done = boot(qemu, tmp_path, "pm32", build_probe(64 * 1024))
    r = parse_report(console)
    assert done == bytes([123])                      # boot-done byte on port 0x3f0
    assert r.complete and r.entry == "start32" and r.loader == "test-boot"
    assert r.paging_at_start32 is False and r.start32_cs == 0x08
    assert r.cmdline_bytes == CMDLINE and r.cmdline == CMDLINE.decode()
    assert r.bootinfo_addr == 0x1000 and r.bootinfo_flags == 0x200
    assert r.e820_map[0] == 0x2000 and r.e820_map[1] == 24 * len(r.e820)
    assert any(e.addr == 0x100000 and e.type == 1 and e.size > 100 << 20 for e in r.e820)
    assert r.e820[0].addr == 0 and r.e820[0].type == 1
    init, disk_done, unc = r.tsc
    assert 0 < init < disk_done <= unc
    assert r.disk_err == 0
    # OSv's long-mode state, exactly (CR0 reads back with ET, bit 4, set)
    assert r.control_regs["cr0"] & ~0x10 == 0x80010003
    assert r.control_regs["cr4"] == 0x7B8 and r.control_regs["efer"] == 0xD00
    l4 = r.control_regs["cr3"]
    assert r.page_tables == (l4 + 0x1000 + 0x67, l4 + 0x2000 + 0x67, l4 + 0x2000 + 0x67,
                             0x1E7, 0x2001E7, 0x3FE001E7)
    # SeaBIOS keeps its MP table in the F segment, so only the MP-spec search finds it
    assert r.mptable_rule == "spec" and r.mptable[:4] == b"PCMP" and r.cpus == 2
    assert r.mp_floating[:4] == b"_MP_"
    assert r.mbr_partitions == PARTITIONS + b"\x55\xaa"
    assert r.image_ok is True and r.header_ok is True


def test_corrupted_payload_byte_is_detected(qemu, tmp_path):
    data = bytearray(build_probe(256 * 1024))
    data[200 * 1024] ^= 0x40                          # one payload byte
    console, done = boot(qemu, tmp_path, "pm32", bytes(data), cpus="1")
    r = parse_report(console)
    assert r.complete and r.image_ok is False and r.header_ok is True
    assert r.image_checksum[0] != r.image_checksum[1]
    assert done == bytes([123])


def test_compatibility_mode_entry_with_paging_on(qemu, tmp_path):
    # Firecracker's own MP table for 3 vCPUs (osvkit's builder), with its 8-byte
    # interrupt-source entries between and after the processor entries
    from osvkit.boot.firecracker import firecracker_mptable
    fc_table = firecracker_mptable(3)
    console, done = boot(qemu, tmp_path, "compat", build_probe(), cpus="1", mptable=fc_table)
    r = parse_report(console)
    assert r.mptable_rule == "osv" and r.cpus == 3
    assert r.mp_floating == fc_table[:16] and r.mptable == fc_table[16:]
    assert r.complete and r.entry == "start32"
    assert r.start32_cr0 & 0x80000001 == 0x80000001   # entered with paging on
    assert r.control_regs["cr0"] & ~0x10 == 0x80010003 and r.control_regs["cr4"] == 0x7B8
    assert r.page_tables[3:] == (0x1E7, 0x2001E7, 0x3FE001E7)
    assert r.cmdline_bytes == CMDLINE and r.image_ok
    assert done == bytes([123])


def test_elf_entry_report_firecracker_style_state(qemu, tmp_path):
    probe = build_probe(entry_report=True)
    console, done = boot(qemu, tmp_path, "elf64", probe, cpus="1",
                         mptable=MP_FLOATING + MP_TABLE)
    r = parse_report(console)
    s = r.entry_state
    e_entry = int.from_bytes(probe[24:32], "little")
    assert s["complete"]
    assert s["rip"] == e_entry
    assert (s["rsp"], s["rbp"], s["rsi"], s["rflags"]) == (0x8FF0, 0x8FF0, 0x7000, 0x2)
    assert (s["rax"], s["rbx"], s["rcx"], s["rdx"], s["rdi"]) == (0, 0, 0, 0, 0)
    assert s["cr3"] == 0x9000 and s["cr4"] == 0x20 and s["efer"] == 0x500
    assert s["cr0"] & 0x80000001 == 0x80000001
    assert (s["cs"], s["ds"], s["ss"]) == (0x08, 0x10, 0x10)
    assert s["gdtr"] == {"base": 0x500, "limit": 31} and s["idtr"] == {"base": 0x520, "limit": 7}
    assert s["gdt"] == [0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x008F8B000000FFFF]
    assert s["pml4_0"] & ~0x60 == 0xA003 and s["pdpt_0"] & ~0x60 == 0xB003   # A/D may be set
    assert [p & ~0x60 for p in s["pd"]] == [0x83, 0x200083, 0x3FE00083]
    bp = s["boot_params"]
    assert bp["boot_flag"] == 0xAA55 and bp["header"] == 0x53726448
    assert bp["type_of_loader"] == 0xFF and bp["kernel_alignment"] == 0x1000000
    assert bp["cmdline_size"] == len(CMDLINE) + 1 and bp["acpi_rsdp_addr"] == 0xE0000
    assert bp["e820_entries"] == len(bp["e820"]) > 2
    # then the normal report, through the OSv-style copy into the boot-info block
    assert r.complete and r.entry == "elf-entry" and r.loader == "probe-elf-entry"
    assert r.paging_at_start32 is True and r.start32_cs == 0x18
    assert r.cmdline_bytes == CMDLINE
    assert [e.to_dict() for e in r.e820] == bp["e820"]
    assert r.tsc[0] == r.tsc[1] == r.tsc[2] != 0
    # the MP table at 0x9FC00, found by OSv's own search rule, two processor entries
    assert len(MP_TABLE) == 100 and len(MP_FLOATING) == 16
    assert r.mptable_rule == "osv" and r.mp_floating_addr == 0x9FC00
    assert r.mp_floating == MP_FLOATING and r.mptable_addr == 0x9FC10 and r.mptable == MP_TABLE
    assert r.cpus == 2
    assert r.image_ok and r.header_ok
    assert done == bytes([123])
