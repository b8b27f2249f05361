"""qemu-fc fidelity: the state at the kernel's ELF entry equals Firecracker's,
checked with a 64-bit state-dump kernel (tests/fcpath_kernels.py)
booted in real QEMU (TCG).  Expected values are written out from the facts."""

from __future__ import annotations

import struct

import pytest

from fcpath_kernels import make_dump_kernel, parse_state_dump
from osvkit.boot import mptable
from osvkit.errors import CmdlineError, KernelError, LayoutError
from osvkit.image.kernel import check_kernel
from osvkit.run import fcloader

MiB = 1 << 20

# Firecracker's e820 for 128 MiB
E820_128M = [(0x0, 0x9FC00, 1), (0x9FC00, 0x40400, 2), (0xEEC00000, 0x10000000, 2),
             (0x100000, 0x7F00000, 1)]

FC_GDT = bytes.fromhex("0000000000000000" "ffff0000009baf00" "ffff00000093cf00" "ffff0000008b8f00")


@pytest.fixture(scope="module")
def dump_kernel(tmp_path_factory):
    p = tmp_path_factory.mktemp("fc") / "dump.elf"
    p.write_bytes(make_dump_kernel())
    return p


def _boot(kernel, **kw):
    r = fcloader.run_qemu_fc(kernel, memory="128M", timeout=30, **kw)
    regs, mem = parse_state_dump(r.console)
    assert regs, r.console[-2000:]
    return r, regs, mem


def _check_entry_state(regs, mem, *, cmdline: str, cpus: int):
    zero = {k: 0 for k in ("rax", "rbx", "rcx", "rdx", "rdi", "r8", "r9", "r10", "r11", "r12",
                           "r13", "r14", "r15")}
    assert {k: regs[k] for k in zero} == zero
    assert (regs["rsi"], regs["rsp"], regs["rbp"]) == (0x7000, 0x8FF0, 0x8FF0)
    assert regs["rflags"] == 0x2
    assert (regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"]) == (0xE0000011, 0x9000, 0x20, 0x500)
    assert (regs["cs"], regs["ds"], regs["es"], regs["ss"], regs["fs"], regs["gs"], regs["tr"]) == \
        (0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x18)
    assert (regs["gdtr_base"], regs["gdtr_limit"], regs["idtr_base"], regs["idtr_limit"]) == \
        (0x500, 31, 0x520, 7)
    assert mem["gdt"] == FC_GDT
    assert mem["idt"] == bytes(8)
    zp = mem["zeropage"]
    assert zp[0x1E8] == 4                                                 # e820_entries
    assert struct.unpack_from("<H", zp, 0x1FE)[0] == 0xAA55               # boot_flag
    assert zp[0x202:0x206] == b"HdrS"                                     # header
    assert zp[0x210] == 0xFF                                              # type_of_loader
    assert struct.unpack_from("<I", zp, 0x228)[0] == 0x20000              # cmd_line_ptr
    assert struct.unpack_from("<I", zp, 0x230)[0] == 0x01000000           # kernel_alignment
    assert struct.unpack_from("<I", zp, 0x238)[0] == len(cmdline) + 1     # cmdline_size
    assert struct.unpack_from("<Q", zp, 0x70)[0] == 0xE0000               # acpi_rsdp_addr
    assert [struct.unpack_from("<QQI", zp, 0x2D0 + 20 * i) for i in range(4)] == E820_128M
    assert zp[0x2D0 + 80:] == bytes(4096 - 0x2D0 - 80)
    # every other byte of the zero page is 0 (Firecracker sets only these)
    rest = bytearray(zp)
    for start, end in ((0x70, 0x78), (0x1E8, 0x1E9), (0x1FE, 0x200), (0x202, 0x206),
                       (0x210, 0x211), (0x228, 0x22C), (0x230, 0x234), (0x238, 0x23C),
                       (0x2D0, 0x2D0 + 80)):
        rest[start:end] = bytes(end - start)
    assert rest == bytes(4096)
    # page tables as written; the CPU's page walks since paging
    # was enabled set Accessed (0x20) / Dirty (0x40) bits -- KVM's would too -- so mask them
    pt = mem["pt"]
    ad = ~0x60
    assert struct.unpack_from("<Q", pt, 0)[0] & ad == 0xA003 and pt[8:0x1000] == bytes(0xFF8)
    assert struct.unpack_from("<Q", pt, 0x1000)[0] & ad == 0xB003
    assert pt[0x1008:0x2000] == bytes(0xFF8)
    assert [e & ad for e in struct.unpack_from("<512Q", pt, 0x2000)] == \
        [(i << 21) + 0x83 for i in range(512)]
    t = mptable.parse_mp_table(mem["mptable"], offset=0, base=0x9FC00)
    assert t.checksums_ok
    assert [p["apicid"] for p in t.processors] == list(range(cpus))
    # Firecracker's MP table written out: the floating pointer and the table header
    mp = mem["mptable"]
    assert mp[0:10] == b"_MP_" + struct.pack("<IBB", 0x9FC10, 1, 4) and mp[11:16] == bytes(5)
    assert sum(mp[0:16]) % 256 == 0
    assert struct.unpack_from("<4sHB", mp, 16) == (b"PCMP", 268 + 20 * cpus, 4)
    assert mp[24:44] == b"FC      " + b"0" * 12
    assert struct.unpack_from("<IHHII", mp, 44) == (0, 0, cpus + 29, 0xFEE00000, 0)
    assert sum(mp[16:16 + 268 + 20 * cpus]) % 256 == 0
    assert mp[16 + 268 + 20 * cpus:] == bytes(0x400 - 284 - 20 * cpus)
    assert t.header["oem"] in (b"FC      ", "FC      ")
    assert [e["apicid"] for e in t.ioapics] == [cpus + 1]
    line = mem["cmdline"]
    assert line[:len(cmdline) + 1] == cmdline.encode() + b"\0"
    assert line[len(cmdline) + 1:] == bytes(len(line) - len(cmdline) - 1)
    assert mem["low"] == bytes(0x500)
    assert mem["bss"] == bytes(0x1000)


@pytest.mark.qemu
def test_qemu_fc_pc_one_cpu(qemu, dump_kernel):
    r, regs, mem = _boot(dump_kernel, machine="pc", cmdline="--nopci /hello world", cpus=1)
    _check_entry_state(regs, mem, cmdline="--nopci /hello world", cpus=1)
    assert r.boot_done is not None


@pytest.mark.qemu
def test_qemu_fc_microvm_four_cpus_2047_byte_cmdline(qemu, dump_kernel):
    line = "/x " + "a" * (2047 - 3)
    assert len(line) == 2047
    r, regs, mem = _boot(dump_kernel, machine="microvm", cmdline=line, cpus=4)
    _check_entry_state(regs, mem, cmdline=line, cpus=4)


@pytest.mark.qemu
def test_qemu_fc_microvm_mmio_passthrough(qemu, dump_kernel, tmp_path):
    from osvkit.cmdline import find_mmio, strip_mmio

    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(1 << 20))
    r, regs, mem = _boot(dump_kernel, machine="microvm", cmdline="--nopci /app", disk=disk)
    line = mem["cmdline"].split(b"\0")[0].decode()
    # QEMU microvm appends its entries: 512 bytes at 0xfeb00000 + i*512, IRQ 5.. (acpi=off)
    assert line.startswith("--nopci /app virtio_mmio.device=512@0xfeb")
    entries = find_mmio(line)
    assert len(entries) == 1
    dev = entries[0].device
    assert dev.size == 512 and 0xFEB00000 <= dev.base < 0xFEB00000 + 8 * 512 and 5 <= dev.irq <= 12
    assert strip_mmio(line) == "--nopci /app "   # OSv leaves the separator


def test_loader_refusals(tmp_path):
    k = check_kernel(make_dump_kernel(entry=0x1000), path="low.elf")
    with pytest.raises(KernelError, match="below 1 MiB"):
        fcloader.build_loader(k, memory=128 * MiB)
    k = check_kernel(make_dump_kernel(), path="dump.elf")
    # e_entry == start32 (an OSv loader.elf not patched by osvkit build): Firecracker's loader
    # checks only e_entry >= 1 MiB, so qemu-fc loads it too (OSv's contract is build's business)
    _elf, plan = fcloader.build_loader(check_kernel(make_dump_kernel(start32=0x201000)),
                                       memory=128 * MiB)
    assert plan.kernel_entry == 0x201000
    with pytest.raises(LayoutError, match="too small"):
        fcloader.build_loader(k, memory=4 * MiB)
    with pytest.raises(CmdlineError):
        fcloader.check_fc_cmdline("a" * 2048)
    fcloader.check_fc_cmdline("a" * 2047)


def test_loader_plan_and_code():
    from osvkit.asm import disassemble

    k = check_kernel(make_dump_kernel(), path="dump.elf")
    elf, plan = fcloader.build_loader(k, memory=128 * MiB, cpus=2)
    assert plan.loader_addr == 0x300000          # first 1 MiB boundary above the kernel's end
    assert plan.ops[:5] == [
        ("zero", 0x0, 0, 0x9FC00), ("zero", 0x9FC00, 0, 0x400), ("zero", 0x100000, 0, 0x200000),
        ("copy-kernel", 0x200000, 0, 0x3000),
        ("copy-structure", 0x500, plan.ops[4][2], 32)]
    assert [(o[0], o[1], o[3]) for o in plan.ops[5:]] == [
        ("copy-structure", 0x7000, 4096), ("copy-structure", 0x9000, 0x3000),
        ("copy-structure", 0x9FC00, 284 + 20 * 2)]
    # PVH ELF: one PT_LOAD at the loader address, note Xen/18 with the entry
    assert struct.unpack_from("<IIQQQ", elf, 64)[:5] == (1, 7, 0x1000, 0x300000, 0x300000)
    assert elf[0x100:0x118] == bytes.fromhex("04000000" "08000000" "12000000" "58656e00"
                                             "0000300000000000")
    # the 64-bit tail: RFLAGS first, then plain movs (no flag changes), then the jump
    code64 = elf[0x1000 + fcloader.L_CODE64:0x1000 + fcloader.L_VARS]
    ins = [(mn, ops) for _a, mn, ops in disassemble(code64, bits=64, base=0x300000 + fcloader.L_CODE64)]
    end = next(i for i, (mn, _ops) in enumerate(ins) if mn == "jmpq")
    assert ins[1:3] == [("pushq", "$2"), ("popfq", "")]
    # jmpq *disp(%rip) reads the u64 e_entry at L_VARS
    addrs = [a for a, _mn, _ops in disassemble(code64, bits=64, base=0x300000 + fcloader.L_CODE64)]
    disp = int(ins[end][1].split("(")[0].lstrip("*"), 16)
    assert addrs[end + 1] + disp == 0x300000 + fcloader.L_VARS
    assert struct.unpack_from("<Q", elf, 0x1000 + fcloader.L_VARS)[0] == 0x201000   # e_entry
    assert ins[end - 3:end] == [("movl", "$0x8ff0, %esp"), ("movl", "$0x8ff0, %ebp"),
                                ("movl", "$0x7000, %esi")]
    assert all(mn == "movl" for mn, _ in ins[3:end])


def test_firecracker_format_mmio_entries():
    # Firecracker's format: 4K windows from 0xc0001000, IRQ 5..
    assert fcloader.mmio_cmdline([(0x1000, 0xC0001000, 5), (0x1000, 0xC0002000, 6)]) == \
        "virtio_mmio.device=4K@0xc0001000:5 virtio_mmio.device=4K@0xc0002000:6"
    assert fcloader.mmio_cmdline([]) == ""


def test_qemu_fc_argv(tmp_path, dump_kernel):
    argv = fcloader.qemu_fc_argv(dump_kernel, tmp_path / "l.elf", machine="microvm",
                                 cmdline="--nopci /x", memory="128M", cpus=2)
    assert argv[1:] == ["-accel", "tcg", "-M", "microvm,x-option-roms=off,pit=on,pic=on,"
                        "rtc=off,auto-kernel-cmdline=on,acpi=off", "-m", "128M", "-smp", "2",
                        "-no-reboot", "-nodefaults", "-display", "none",
                        "-global", "virtio-mmio.force-legacy=off",
                        "-kernel", str(tmp_path / "l.elf"), "-initrd", str(dump_kernel),
                        "-append", "--nopci /x"]
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(512))
    argv = fcloader.qemu_fc_argv(dump_kernel, tmp_path / "l.elf", machine="pc", disk=disk)
    assert argv[-4:] == ["-drive", f"file={disk},if=none,id=hd0,format=raw",
                         "-device", "virtio-blk-pci,drive=hd0"]


@pytest.mark.qemu
def test_qemu_fc_mmio_entries_reach_the_kernel(qemu, dump_kernel):
    r, regs, mem = _boot(dump_kernel, machine="pc", cmdline="--nopci /app",
                         mmio_devices=[(0x1000, 0xC0001000, 5)])
    line = mem["cmdline"].split(b"\0")[0].decode()
    assert line == "--nopci /app virtio_mmio.device=4K@0xc0001000:5"


@pytest.mark.qemu
def test_loader_refuses_a_different_module(qemu, tmp_path, dump_kernel):
    from osvkit.run.pvh import machine_argv
    from osvkit.run.qemu import run_qemu

    elf, _plan = fcloader.build_loader(check_kernel(make_dump_kernel()), memory=128 * MiB)
    (tmp_path / "loader.elf").write_bytes(elf)
    other = tmp_path / "other.elf"
    other.write_bytes(make_dump_kernel() + b"\0" * 16)
    for initrd, msg in ((["-initrd", str(other)], "kernel module size differs"),
                        ([], "no kernel module")):
        argv = machine_argv("pc", memory="128M", cpus=1) + \
            ["-kernel", str(tmp_path / "loader.elf"), "-append", "x"] + initrd
        r = run_qemu(argv, timeout=30)
        assert f"osvkit-fc-loader: {msg}" in r.console
        assert r.exit_reason == "poweroff" and r.boot_done is None


def test_pvh_protocol_plan():
    from osvkit.errors import UsageError as _UsageError
    from osvkit.image.vmlinux import patch_vmlinux

    k = check_kernel(patch_vmlinux(check_kernel(make_dump_kernel()))[0], path="v.elf")
    elf, plan = fcloader.build_loader(k, memory=128 * MiB, cpus=1, protocol="pvh")
    assert plan.protocol == "pvh" and plan.kernel_entry == 0x100300     # the PVH note's entry
    assert [(o[0], o[1], o[3]) for o in plan.ops if o[0] == "copy-structure"] == [
        ("copy-structure", 0x500, 32), ("copy-structure", 0x6000, 56),
        ("copy-structure", 0x7000, 4 * 24), ("copy-structure", 0x9FC00, 284 + 20)]
    # the PVH GDT as loaded: TSS available (0x89) so that ltr can mark it busy (0x8b)
    assert fcloader.fc_gdt_for_ltr("pvh") == bytes.fromhex(
        "0000000000000000" "ffff0000009bcf00" "ffff00000093cf00" "6700000000890000")
    with pytest.raises(KernelError, match="no XEN_ELFNOTE_PHYS32_ENTRY"):
        fcloader.build_loader(check_kernel(make_dump_kernel()), memory=128 * MiB, protocol="pvh")
    with pytest.raises(_UsageError):
        fcloader.build_loader(k, memory=128 * MiB, protocol="efi")


@pytest.mark.qemu
@pytest.mark.parametrize("machine,cpus", [("pc", 2), ("microvm", 1)])
def test_qemu_fc_pvh_entry_state_is_firecrackers(qemu, tmp_path, machine, cpus):
    """--fc-protocol pvh: the state at the PVH note's entry, recorded by a 32-bit dump
    kernel before it touches anything, against Firecracker's documented entry state
    (written out here).  Before this test only what osvkit's PVH stub passed on was seen."""
    from fcpath_kernels import make_pvh_dump_kernel

    k = tmp_path / "pvhdump.elf"
    k.write_bytes(make_pvh_dump_kernel())
    r, regs, mem = _boot(k, machine=machine, cmdline="--nopci /pvh", cpus=cpus, protocol="pvh")
    assert r.exit_reason == "poweroff" and r.boot_done is not None
    assert {n: regs[n] for n in ("eax", "ecx", "edx", "esi", "edi", "ebp", "esp")} == \
        dict.fromkeys(("eax", "ecx", "edx", "esi", "edi", "ebp", "esp"), 0)
    assert (regs["ebx"], regs["eflags"]) == (0x6000, 0x2)
    assert (regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"]) == (0x11, 0, 0, 0)
    assert (regs["cs"], regs["ds"], regs["es"], regs["ss"], regs["fs"], regs["gs"], regs["tr"]) == \
        (0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x18)
    assert (regs["gdtr_base"], regs["gdtr_limit"], regs["idtr_base"], regs["idtr_limit"]) == \
        (0x500, 31, 0x520, 7)
    assert mem["gdt"] == bytes.fromhex("0000000000000000" "ffff0000009bcf00"
                                       "ffff00000093cf00" "67000000008b0000")
    assert mem["idt"] == bytes(8)
    # hvm_start_info: magic, version 1, flags 0, no modules, modlist 0, cmdline 0x20000,
    # rsdp 0, memmap 0x7000, 4 entries, reserved 0
    assert struct.unpack_from("<IIIIQQQQII", mem["start_info"]) == (
        0x336EC578, 1, 0, 0, 0, 0x20000, 0, 0x7000, 4, 0)
    assert mem["start_info"][56:] == bytes(8)
    assert [struct.unpack_from("<QQII", mem["memmap"], 24 * i) for i in range(4)] == \
        [(a, s, t, 0) for a, s, t in E820_128M]
    assert mem["memmap"][96:] == bytes(0x100 - 96)
    t = mptable.parse_mp_table(mem["mptable"], offset=0, base=0x9FC00)
    assert t.checksums_ok and [p["apicid"] for p in t.processors] == list(range(cpus))
    assert mem["cmdline"] == b"--nopci /pvh" + bytes(0x800 - 12)
    assert mem["low"] == bytes(0x500) and mem["bss"] == bytes(0x1000)


@pytest.mark.qemu
def test_loader_refuses_a_cmdline_over_2047_bytes_in_the_guest(qemu, tmp_path, dump_kernel):
    """The host checks the line it is given; on microvm QEMU appends its virtio_mmio entries
    afterwards, so the loader itself must refuse a line that ends up over 2047 bytes
    (Firecracker's 2048 with the NUL) instead of truncating or overrunning it."""
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(1 << 20))
    line = "--nopci /x " + "y" * (2047 - 11)           # 2047: fits before QEMU appends
    assert len(line) == 2047
    r = fcloader.run_qemu_fc(dump_kernel, machine="microvm", cmdline=line, memory="128M",
                             disk=disk, timeout=30)
    assert "osvkit-fc-loader: command line over 2047 bytes (Firecracker's limit)" in r.console
    assert r.boot_done is None and "REG " not in r.console


@pytest.mark.qemu
def test_start64_handover_boots_at_the_linked_address(qemu, tmp_path):
    """``--handover start64`` under qemu-fc: osvkit's 64-bit stub loads OSv's BOOT_CR4/CR0,
    CR3 = ident_pt_l4 (physical), EFER |= LME|NXE, and enters ``start64`` at its linked
    address with RBX = 0x1000, RDI = 0 and the boot-info block filled."""
    from fcpath_kernels import make_start64_kernel
    from osvkit.image.vmlinux import build_vmlinux

    src = tmp_path / "k.elf"
    src.write_bytes(make_start64_kernel())
    out = tmp_path / "v.elf"
    build_vmlinux(src, out, handover="start64")
    r, regs, mem = _boot(out, machine="pc", cmdline="--nopci /s64", cpus=1)
    assert 0x40201010 <= regs["rip"] < 0x40201010 + 0x800           # not the 0x201010 alias
    assert (regs["rbx"], regs["rdi"]) == (0x1000, 0)
    # CR0 = BOOT_CR0 0x80010003 plus ET (0x10), which the CPU keeps set; EFER LME|LMA|NXE
    assert (regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"]) == (0x80010013, 0x202000,
                                                                     0x7B8, 0xD00)
    assert (regs["cs"], regs["ds"], regs["ss"]) == (0x08, 0x10, 0x10)
    assert mem["cmdline"][:12] == b"--nopci /s64"


def test_loader_table_bytes():
    """The loader's tables (osvkit.structs.fcloader): exact bytes and round trips."""
    from osvkit.structs import fcloader as fcs

    table = fcloader.op_table([(1, 0x500, 0x300000, 32)])
    assert table == bytes.fromhex("01000000" "00050000" "00003000" "20000000") + bytes(16)
    assert fcs.LoaderOp.build(fcs.LoaderOp.parse(table)) == table[:16]
    assert dict(fcs.LoaderOp.parse(table[:16]), _io=None) == \
        {"op": 1, "dst": 0x500, "src": 0x300000, "length": 32, "_io": None}
    v = fcs.LoaderVars.build(dict(entry=0x1000000, module=0x7000000, cmdline_length=5))
    assert v == bytes.fromhex("0000000100000000" "00000007" "05000000")
    assert fcs.LOADER_VARS_OFFSETS == {"entry": 0, "module": 8, "cmdline_length": 12}
    d = fcs.DescriptorPointer32.build(dict(limit=31, base=0x500))
    assert d == bytes.fromhex("1f00" "00050000" "0000")
    assert fcs.DescriptorPointer32.parse(d).base == 0x500
