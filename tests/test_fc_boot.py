"""Proof: the conformance kernel, patched by ``build_vmlinux``, boots under qemu-fc (1 and 4
vCPUs) and qemu-pvh (pc and microvm); the unpatched entry-report probe shows Firecracker's
entry state under qemu-fc; the patched ELF still boots through usr.img (BIOS path).

Real QEMU (TCG), few and short boots.  Expected values are written out from the facts."""

from __future__ import annotations

import struct

import pytest

from osvkit.boot import mptable
from osvkit.cmdline import find_mmio, strip_mmio
from osvkit.image.kernel import check_kernel
from osvkit.image.vmlinux import build_vmlinux
from osvkit.probe import build_probe, parse_report
from osvkit.run.fcloader import run_qemu_fc
from osvkit.run.pvh import run_qemu_pvh

pytestmark = pytest.mark.qemu

# Firecracker's e820 for 128 MiB: RAM to the EBDA, system region,
# PCI MMCONFIG, RAM from 1 MiB.
FC_E820_128M = [(0x0, 0x9FC00, 1), (0x9FC00, 0x40400, 2), (0xEEC00000, 0x10000000, 2),
                (0x100000, 0x7F00000, 1)]


@pytest.fixture(scope="module")
def vmlinux(tmp_path_factory):
    d = tmp_path_factory.mktemp("fcboot")
    (d / "probe.elf").write_bytes(build_probe())
    res = build_vmlinux(d / "probe.elf", d / "probe-vmlinux.elf")
    assert res.added == ["linux64", "pvh"]          # the probe has only start32
    return d / "probe-vmlinux.elf"


def _report(r):
    rep = parse_report(r.console)
    assert rep.complete, r.console[-2000:]
    return rep


def _e820(rep):
    return [(e.addr, e.size, e.type) for e in rep.e820]


def _check_common(rep, *, loader: str, cmdline: str):
    assert rep.image_ok is True                      # kernel body intact
    assert rep.header_ok is False                    # e_entry/e_phnum/phdrs changed on purpose
    assert rep.entry == "start32"
    assert rep.loader == loader
    assert rep.cmdline == cmdline
    assert rep.bootinfo_addr == 0x1000
    assert rep.e820_map[0] == 0x2000 and rep.e820_map[1] == 24 * len(rep.e820)
    assert rep.tsc[0] == rep.tsc[1] == rep.tsc[2] != 0
    assert rep.disk_err == 0


def test_qemu_fc_one_cpu(qemu, vmlinux):
    r = run_qemu_fc(vmlinux, machine="pc", cmdline="--nopci /hello.so a b", memory="128M",
                    cpus=1, timeout=30)
    rep = _report(r)
    _check_common(rep, loader="osvkit-vmlinux64", cmdline="--nopci /hello.so a b")
    assert _e820(rep) == FC_E820_128M
    assert rep.paging_at_start32 is True             # entered from compatibility mode
    assert rep.mptable_rule == "osv" and rep.mptable_addr == 0x9FC10 and rep.cpus == 1
    t = mptable.parse_mp_table(rep.mp_floating + rep.mptable, offset=0, base=0x9FC00)
    assert [p["apicid"] for p in t.processors] == [0]
    assert r.exit_reason == "poweroff" and r.boot_done is not None


def test_qemu_fc_four_cpus_2047_byte_cmdline(qemu, vmlinux):
    line = "--nopci /app " + "x" * (2047 - 13)
    assert len(line) == 2047
    r = run_qemu_fc(vmlinux, machine="microvm", cmdline=line, memory="128M", cpus=4, timeout=30)
    rep = _report(r)
    _check_common(rep, loader="osvkit-vmlinux64", cmdline=line)
    assert _e820(rep) == FC_E820_128M
    t = mptable.parse_mp_table(rep.mp_floating + rep.mptable, offset=0, base=0x9FC00)
    assert t.checksums_ok
    assert [p["apicid"] for p in t.processors] == [0, 1, 2, 3]
    assert [(p["cpuflag"], p["featureflag"]) for p in t.processors] == \
        [(3, 0x201), (1, 0x201), (1, 0x201), (1, 0x201)]
    assert [e["apicid"] for e in t.ioapics] == [5]
    assert rep.cpus == 4


def test_qemu_fc_entry_state_is_firecrackers(qemu, tmp_path):
    """The probe's entry_report mode records the state at its ELF entry (not patched)."""
    k = tmp_path / "probe-er.elf"
    k.write_bytes(build_probe(entry_report=True))
    r = run_qemu_fc(k, machine="pc", cmdline="--nopci /x", memory="128M", cpus=2, timeout=30)
    rep = _report(r)
    assert rep.entry == "elf-entry"
    s = rep.entry_state
    # RIP = the ELF's e_entry, read straight from the file header
    assert s["rip"] == struct.unpack_from("<Q", k.read_bytes(), 0x18)[0] >= 0x100000
    assert {n: s[n] for n in ("rax", "rbx", "rcx", "rdx", "rdi")} == dict.fromkeys(
        ("rax", "rbx", "rcx", "rdx", "rdi"), 0)
    assert (s["rsi"], s["rsp"], s["rbp"], s["rflags"]) == (0x7000, 0x8FF0, 0x8FF0, 0x2)
    assert (s["cr0"], s["cr3"], s["cr4"], s["efer"]) == (0xE0000011, 0x9000, 0x20, 0x500)
    assert (s["cs"], s["ds"], s["es"], s["ss"], s["fs"], s["gs"], s["tr"]) == \
        (0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x18)
    assert s["gdtr"] == {"base": 0x500, "limit": 31} and s["idtr"] == {"base": 0x520, "limit": 7}
    assert s["gdt"] == [0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x008F8B000000FFFF]
    # PML4[0] / PDPT[0] / PD[0], PD[1], PD[511] as Firecracker writes them (A/D bits the CPU
    # set since paging was enabled are masked)
    assert (s["pml4_0"] & ~0x60, s["pdpt_0"] & ~0x60) == (0xA003, 0xB003)
    assert [e & ~0x60 for e in s["pd"]] == [0x83, 0x200083, (511 << 21) + 0x83]
    bp = s["boot_params"]
    assert (bp["boot_flag"], bp["header"], bp["type_of_loader"], bp["cmd_line_ptr"],
            bp["cmdline_size"], bp["kernel_alignment"], bp["e820_entries"],
            bp["acpi_rsdp_addr"]) == (0xAA55, 0x53726448, 0xFF, 0x20000, len("--nopci /x") + 1,
                                      0x01000000, 4, 0xE0000)
    assert [(e["addr"], e["size"], e["type"]) for e in bp["e820"]] == FC_E820_128M


def test_qemu_pvh_pc(qemu, vmlinux):
    r = run_qemu_pvh(vmlinux, machine="pc", cmdline="--nopci /pvh.so", memory="128M", timeout=30)
    rep = _report(r)
    _check_common(rep, loader="osvkit-pvh", cmdline="--nopci /pvh.so")
    ram = [(e.addr, e.size) for e in rep.ram]
    assert ram[0] == (0, 0x9FC00)                    # SeaBIOS's map, through hvm_start_info
    assert any(a == 0x100000 for a, _ in ram)
    assert r.boot_done is not None


def test_qemu_pvh_microvm_mmio(qemu, vmlinux, tmp_path):
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(1 << 20))
    r = run_qemu_pvh(vmlinux, machine="microvm", cmdline="--nopci /app", memory="128M",
                     disk=disk, timeout=30)
    rep = _report(r)
    assert rep.loader == "osvkit-pvh" and rep.image_ok is True
    line = rep.cmdline
    assert line.startswith("--nopci /app virtio_mmio.device=512@0xfeb")
    (entry,) = find_mmio(line)
    dev = entry.device
    assert dev.size == 512 and (dev.base - 0xFEB00000) % 512 == 0 and 5 <= dev.irq <= 12
    assert strip_mmio(line) == "--nopci /app "


def test_patched_elf_boots_through_usr_img(qemu, vmlinux, tmp_path):
    from osvkit.image.usrimg import build_usr_image
    from osvkit.run.qemu import run_qemu
    from osvkit.run.pvh import machine_argv

    img = tmp_path / "usr.img"
    build_usr_image(vmlinux, img, cmdline="--bios /x")
    argv = machine_argv("pc", memory="128M", cpus=1) + ["-drive", f"file={img},format=raw,if=ide"]
    r = run_qemu(argv, timeout=60)
    rep = _report(r)
    assert rep.loader == "osvkit-boot16" and rep.cmdline == "--bios /x"
    assert rep.image_ok is True and rep.entry == "start32"
    assert rep.paging_at_start32 is False


@pytest.mark.osv
def test_real_osv_kernel_invariants(osv_kernel, tmp_path):
    """A real OSv loader-stripped.elf: current OSv already has a Linux entry and a PVH
    note; with --replace-entry osvkit's stubs take over; the first PT_LOAD's bytes after the
    phdr table and the start32 slot never change."""
    orig = osv_kernel.read_bytes()
    k = check_kernel(orig, path=str(osv_kernel))
    out = tmp_path / "vmlinux.elf"
    res = build_vmlinux(osv_kernel, out)
    assert set(res.kept) | set(res.added) >= {"linux64", "pvh"}
    res = build_vmlinux(osv_kernel, out, replace_entry=True)
    patched = out.read_bytes()
    table_end = k.phoff + k.phnum * 56
    assert patched[table_end + 2 * 56:len(orig)] == orig[table_end + 2 * 56:]
    assert patched[0x40:table_end] == orig[0x40:table_end]
    assert check_kernel(patched).start32 == k.start32
    assert struct.unpack_from("<Q", patched, 0x18)[0] == 0x100000


def test_qemu_pvh_uses_the_last_pvh_note(qemu, tmp_path):
    """--replace-entry on a kernel that has a PVH note: osvkit's note is the last PT_NOTE,
    and QEMU (like linux-loader) boots the last one -- the kernel's own note here points at
    the ELF header, which would crash."""
    p = bytearray(build_probe())
    assert struct.unpack_from("<H", p, 0x38)[0] == 1 and p[0x78:0xE8] == bytes(0x70)
    p[0x700:0x718] = struct.pack("<III4sQ", 4, 8, 18, b"Xen\0", 0x200000)
    struct.pack_into("<IIQQQQQQ", p, 0x78, 4, 4, 0x700, 0x40200700, 0x200700, 24, 24, 4)
    struct.pack_into("<H", p, 0x38, 2)
    (tmp_path / "noted.elf").write_bytes(bytes(p))
    res = build_vmlinux(tmp_path / "noted.elf", tmp_path / "out.elf", replace_entry=True)
    assert res.added == ["linux64", "pvh"]
    for machine in ("pc", "microvm"):
        r = run_qemu_pvh(tmp_path / "out.elf", machine=machine, cmdline="/x", memory="128M",
                         timeout=30)
        rep = _report(r)
        assert rep.loader == "osvkit-pvh" and rep.image_ok is True


def test_qemu_fc_pvh_protocol(qemu, vmlinux):
    """Firecracker >= 1.12 boots a vmlinux with a PVH note through PVH: the same vmlinux,
    entered through osvkit's PVH stub with Firecracker's start_info/memmap."""
    line = "--nopci /pvh " + "p" * (2047 - 13)
    r = run_qemu_fc(vmlinux, machine="microvm", cmdline=line, memory="128M", cpus=2,
                    timeout=30, protocol="pvh")
    rep = _report(r)
    _check_common(rep, loader="osvkit-pvh", cmdline=line)
    assert _e820(rep) == FC_E820_128M                 # Firecracker's memmap, same ranges
    assert rep.start32_cr0 == 0x11                    # PVH: CR0 = PE|ET, paging off
    assert rep.start32_esp == 0x7C00                  # the PVH stub's stack
    assert rep.cpus == 2


@pytest.mark.osv
@pytest.mark.parametrize("replace", [False, True], ids=["osv-entries", "osvkit-stubs"])
def test_real_osv_kernel_boots_the_firecracker_ways(osv_kernel, qemu, tmp_path, replace):
    """A real OSv loader-stripped.elf under qemu-fc (64-bit Linux entry and Firecracker's PVH)
    and qemu-pvh, through its own entries or osvkit's stubs: OSv gets as far as reading the
    command line (no disk: it reports the missing program and powers off)."""
    out = tmp_path / "vmlinux.elf"
    build_vmlinux(osv_kernel, out, replace_entry=replace)
    runs = [lambda: run_qemu_fc(out, cmdline="--nopci /none.so", memory="256M", timeout=60),
            lambda: run_qemu_fc(out, cmdline="--nopci /none.so", memory="256M", timeout=60,
                                protocol="pvh"),
            lambda: run_qemu_pvh(out, cmdline="--nopci /none.so", memory="256M", timeout=60)]
    for run in runs:
        r = run()
        assert "OSv v" in r.console and "Cmdline: /none.so" in r.console, r.console[-2000:]
        assert "Failed to load object: /none.so" in r.console
        assert r.exit_reason == "poweroff"
