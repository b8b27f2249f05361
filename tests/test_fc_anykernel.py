"""qemu-fc loads any kernel Firecracker's loader loads (vmlinux ELF and bzImage), with
Firecracker's rules and no OSv contract; bad kernels and initrds are one-line errors before
QEMU starts.  Kernels come from tests/anykernels.py (written with ``struct``); boots run in
real QEMU (TCG) and print their entry state (tests/fcpath_kernels.py state dumps)."""

from __future__ import annotations

import struct

import pytest

from anykernels import LINUX_PADDR, bzimage, linux_like_elf, pvh_note
from fcpath_kernels import parse_state_dump, pvh_state_dump_code, state_dump_code
from osvkit.errors import KernelError, LayoutError
from osvkit.run import fcloader
from osvkit.firecracker.kernel import parse_fc_kernel

MiB = 1 << 20


def _err(data: bytes, exc=KernelError, **kw) -> str:
    with pytest.raises(exc) as info:
        k = parse_fc_kernel(data, path="k")
        fcloader.build_loader(k, memory=kw.pop("memory", 128 * MiB), **kw)
    return str(info.value)


# -- Firecracker's loader rules -------------------------------------------------------------

def test_linux_like_elf_is_read_as_firecracker_reads_it():
    k = parse_fc_kernel(linux_like_elf(b"\xf4", entry=LINUX_PADDR + 0x10), path="v")
    assert (k.kind, k.entry, k.pvh_entry, k.setup_header) == ("elf", LINUX_PADDR + 0x10, None, None)
    # the PT_LOAD goes to p_paddr (not the high p_vaddr), p_filesz bytes from p_offset
    assert [p.to_dict() for p in k.pieces] == [
        {"dst": LINUX_PADDR, "offset": 0x1000, "size": 0x3000, "memsz": 0x4000}]
    assert k.kernel_end == LINUX_PADDR + 0x4000 and k.firecracker_protocol == "linux"
    # a PT_LOAD with p_filesz 0 is skipped (linux-loader copies nothing and records nothing)
    k = parse_fc_kernel(linux_like_elf(b"", extra_loads=[(0x2000000, 0, 0x1000)]))
    assert len(k.pieces) == 1


def test_pvh_note_rules():
    entry = LINUX_PADDR + 0x100
    other = (b"GNU\0", 3, b"\x11" * 20)
    k = parse_fc_kernel(linux_like_elf(b"", notes=[[other, pvh_note(entry)]]))
    assert k.pvh_entry == entry and k.firecracker_protocol == "pvh"
    # within one PT_NOTE the first PVH note wins
    k = parse_fc_kernel(linux_like_elf(b"", notes=[[pvh_note(entry), pvh_note(0x5000)]]))
    assert k.pvh_entry == entry
    # the last PT_NOTE decides: a later note segment without the note clears the find
    assert parse_fc_kernel(linux_like_elf(b"", notes=[[pvh_note(entry)], [other]])).pvh_entry is None
    assert parse_fc_kernel(linux_like_elf(b"", notes=[[other], [pvh_note(entry)]])).pvh_entry == entry
    # owner must be exactly "Xen\0" (4 bytes) and type 18
    assert parse_fc_kernel(linux_like_elf(b"", notes=[[(b"Xen2\0", 18, b"\0" * 4)]])).pvh_entry is None
    assert parse_fc_kernel(linux_like_elf(b"", notes=[[(b"Xen\0", 17, b"\0" * 4)]])).pvh_entry is None
    assert "2-byte descriptor" in _err(linux_like_elf(b"", notes=[[(b"Xen\0", 18, b"\0\0")]]))


def test_bad_kernels_are_one_line_errors():
    code = b"\xf4"
    assert _err(linux_like_elf(code, elfclass=1)) == \
        "k: a 32-bit kernel (ELF32), expected an ELF64 x86-64 kernel (Firecracker reads ELF64 only)"
    assert _err(linux_like_elf(code, machine=183)) == \
        "k: an ELF for AArch64, expected an x86-64 (EM_X86_64) kernel"
    assert _err(linux_like_elf(code, data=2)) == \
        "k: a big-endian ELF, expected a little-endian x86-64 kernel"
    assert _err(linux_like_elf(code, phentsize=32)) == \
        "k: e_phentsize 32, expected 56 (Firecracker: invalid program header size)"
    assert "e_phoff 0x20 overlaps the ELF header" in _err(linux_like_elf(code, phoff=0x20))
    assert _err(linux_like_elf(code, entry=0xFFFFF)).startswith(
        "k: e_entry 0xfffff is below 1 MiB, expected e_entry >= 0x100000")
    assert "runs past the end of the file" in _err(linux_like_elf(code)[:0x2000])
    assert _err(b"MZ" + bytes(1000)) == ("k: neither an ELF kernel (no \\x7fELF magic) nor a "
                                         "bzImage (no HdrS setup header), expected an x86-64 "
                                         "vmlinux ELF or bzImage")
    assert "truncated ELF header" in _err(b"\x7fELF\x02\x01")


def test_segments_placed_where_firecracker_writes_are_refused():
    code = b"\xf4"
    # overlapping the zero page (Firecracker writes it over the loaded kernel)
    msg = _err(linux_like_elf(code, paddr=0x6000, entry=LINUX_PADDR), LayoutError)
    assert msg.startswith("k: PT_LOAD at 0x6000-0xa000 overlaps the zero page (0x7000-0x8000), "
                          "which Firecracker writes over the loaded kernel")
    # a second segment in the MP table / BIOS area below 1 MiB
    msg = _err(linux_like_elf(code, extra_loads=[(0xF0000, 0x100, 0x100)]), LayoutError)
    assert "PT_LOAD at 0xf0000-0xf0100 overlaps the MP table/ACPI area and BIOS space" in msg
    # the PVH protocol writes start_info at 0x6000 instead
    k = parse_fc_kernel(linux_like_elf(code, paddr=0x5000, size=0x2000, bss=0, entry=LINUX_PADDR,
                                       notes=[[pvh_note(0x5000)]]), path="k")
    with pytest.raises(LayoutError, match="overlaps the PVH start_info"):
        fcloader.build_loader(k, memory=128 * MiB, protocol="pvh")
    fcloader.build_loader(k, memory=128 * MiB, protocol="linux")     # clear of the zero page
    # low memory Firecracker leaves alone is fine (the loader copies there)
    k = parse_fc_kernel(linux_like_elf(code, extra_loads=[(0x30000, 0x1000, 0x1000)]))
    _elf, plan = fcloader.build_loader(k, memory=128 * MiB)
    assert ("copy-kernel", 0x30000, 0x4000, 0x1000) in plan.ops


def test_kernel_larger_than_guest_memory():
    big = linux_like_elf(b"\xf4", extra_loads=[(0x3000000, 0x1000, 0x1000)])
    assert _err(big, LayoutError, memory=32 * MiB) == (
        "k: PT_LOAD at 0x3000000-0x3001000 lies beyond the guest's 32 MiB of RAM (the kernel "
        "does not fit: Firecracker refuses to load it), expected more guest memory (at least "
        "50 MiB)")


def test_initrd_placement_and_description():
    k = parse_fc_kernel(linux_like_elf(b"\xf4", notes=[[pvh_note(LINUX_PADDR)]]), path="k")
    # Firecracker: top of the RAM below 3 GiB, rounded down to 4 KiB
    assert fcloader.initrd_address(128 * MiB, 5000) == 128 * MiB - 0x2000
    assert fcloader.initrd_address(4 * 1024 * MiB - 0x1000, 4096) == 0xC0000000 - 0x1000
    _elf, plan = fcloader.build_loader(k, memory=128 * MiB, initrd_size=5000)
    assert plan.initrd == [128 * MiB - 0x2000, 5000]
    assert plan.kernel_size == len(k.data) + 5000                 # the module: kernel + initrd
    assert ("copy-kernel", 128 * MiB - 0x2000, len(k.data), 5000) in plan.ops
    _p, data, _ops = fcloader.plan_loader(k, memory=128 * MiB, cpus=1, initrd_size=5000)
    zp = data[data.index(b"HdrS") - 0x202:][:4096]
    assert struct.unpack_from("<II", zp, 0x218) == (128 * MiB - 0x2000, 5000)
    # PVH: one module at 0x6040 described in start_info
    _p, data, _ops = fcloader.plan_loader(k, memory=128 * MiB, cpus=1, initrd_size=5000,
                                          protocol="pvh")
    si = data[data.index(struct.pack("<I", 0x336EC578)):][:56]
    assert struct.unpack_from("<IIIIQ", si, 0) == (0x336EC578, 1, 0, 1, 0x6040)
    mod = data[data.index(struct.pack("<QQ", 128 * MiB - 0x2000, 5000)):][:32]
    assert mod == struct.pack("<QQQQ", 128 * MiB - 0x2000, 5000, 0, 0)


def test_initrd_that_does_not_fit():
    k = parse_fc_kernel(linux_like_elf(b"\xf4"), path="k")
    with pytest.raises(LayoutError) as exc:
        fcloader.build_loader(k, memory=64 * MiB, initrd_size=65 * MiB)
    assert str(exc.value) == ("an initrd of 68157440 bytes is larger than the guest's 64 MiB of "
                              "low RAM, expected a larger --memory")
    with pytest.raises(LayoutError, match=r"the initrd \(50331648 bytes\) does not fit: "
                                          r"Firecracker puts it at 0x1000000 \(top of RAM\)"):
        fcloader.build_loader(k, memory=64 * MiB, initrd_size=48 * MiB)


def test_bzimage_rules():
    payload = b"\xf4" * 0x600
    k = parse_fc_kernel(bzimage(payload, setup_sects=1), path="bz")
    assert (k.kind, k.entry, k.pvh_entry) == ("bzimage", 0x100200, None)
    assert [p.to_dict() for p in k.pieces] == [{"dst": 0x100000, "offset": 1024, "size": 0x600,
                                                "memsz": 0x600}]
    assert k.setup_header["kernel_alignment"] == 0x200000
    # setup_sects 0 means 4
    assert parse_fc_kernel(bzimage(payload, setup_sects=0)).pieces[0].offset == 5 * 512
    assert "without a 64-bit entry (boot protocol 2.11" in _err(bzimage(payload, version=0x20B))
    assert "without a 64-bit entry" in _err(bzimage(payload, xloadflags=0))
    assert "expected protocol 2.00 or later with LOADED_HIGH" in _err(bzimage(payload, loadflags=0))
    assert "code32_start 0x10000 is below 1 MiB" in _err(bzimage(payload, code32_start=0x10000))
    with pytest.raises(KernelError, match="Firecracker boots a bzImage only with the 64-bit"):
        fcloader.build_loader(k, memory=128 * MiB, protocol="pvh")


def test_cli_refuses_before_qemu_starts(cli, tmp_path):
    cases = {
        "elf32": (linux_like_elf(b"\xf4", elfclass=1), "a 32-bit kernel (ELF32)"),
        "arm64": (linux_like_elf(b"\xf4", machine=183), "an ELF for AArch64"),
        "low": (linux_like_elf(b"\xf4", paddr=0x7000, entry=LINUX_PADDR), "overlaps the zero page"),
        "big": (linux_like_elf(b"\xf4", extra_loads=[(0x9000000, 0x1000, 0x1000)]),
                "lies beyond the guest's 128 MiB of RAM"),
    }
    for name, (data, msg) in cases.items():
        (tmp_path / name).write_bytes(data)
        r = cli("run", tmp_path / name, "--vmm", "qemu-fc", "--memory", "128M", "--dry-run")
        err = r.stderr.decode()
        assert r.returncode == 65 and err.count("\n") == 1 and msg in err, err
        assert err.startswith(f"error: {tmp_path / name}: ")
    (tmp_path / "ok").write_bytes(linux_like_elf(b"\xf4"))
    (tmp_path / "rd").write_bytes(bytes(200 * MiB))
    r = cli("run", tmp_path / "ok", "--vmm", "qemu-fc", "--memory", "128M", "--initrd",
            tmp_path / "rd", "--dry-run")
    assert r.returncode == 65 and "larger than the guest's 128 MiB of low RAM" in r.stderr.decode()
    r = cli("run", tmp_path / "ok", "--vmm", "qemu-fc", "--initrd", tmp_path / "none", "--dry-run")
    assert r.returncode == 66 and r.stderr.decode() == f"error: {tmp_path / 'none'}: no such file\n"


# -- boots: the state at the entry -------------------------------------------------------------

INITRD_PATTERN = bytes(range(256)) * 16 + b"END-OF-INITRD!!!"      # 4112 bytes: 2 pages


def _initrd(tmp_path):
    p = tmp_path / "initrd.img"
    p.write_bytes(INITRD_PATTERN)
    return p


@pytest.mark.qemu
@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_linux_like_elf_with_initrd_boots_like_firecracker(qemu, tmp_path, machine):
    rd_addr = 128 * MiB - 0x2000
    mem = (("zeropage", 0x7000, 0x1000), ("initrd", rd_addr, len(INITRD_PATTERN)),
           ("low", 0x0, 0x500))
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(linux_like_elf(state_dump_code(base=LINUX_PADDR, mem=mem)))
    r = fcloader.run_qemu_fc(kernel, machine=machine, memory="128M", cmdline="console=ttyS0",
                             initrd=_initrd(tmp_path), timeout=60)
    regs, dump = parse_state_dump(r.console)
    assert regs, r.console[-2000:]
    assert (regs["rsi"], regs["rsp"], regs["rbp"], regs["rflags"]) == (0x7000, 0x8FF0, 0x8FF0, 2)
    assert (regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"]) == (0xE0000011, 0x9000, 0x20, 0x500)
    assert regs["cs"] == 0x08 and regs["ds"] == 0x10 and regs["tr"] == 0x18
    zp = dump["zeropage"]
    assert struct.unpack_from("<II", zp, 0x218) == (rd_addr, len(INITRD_PATTERN))
    assert struct.unpack_from("<II", zp, 0x228) == (0x20000, 0)            # cmd_line_ptr
    assert dump["initrd"] == INITRD_PATTERN
    assert r.fc_plan.initrd == [rd_addr, len(INITRD_PATTERN)]


@pytest.mark.qemu
def test_bzimage_boots_at_its_64bit_entry(qemu, tmp_path):
    mem = (("zeropage", 0x7000, 0x1000), ("kernel", 0x100000, 0x10))
    payload = bytes(0x200) + state_dump_code(base=0x100200, mem=mem)
    payload += bytes(0x2000 - len(payload))
    bz = tmp_path / "bzImage"
    bz.write_bytes(bzimage(payload))
    r = fcloader.run_qemu_fc(bz, memory="128M", cmdline="console=ttyS0 x", timeout=60)
    regs, dump = parse_state_dump(r.console)
    assert regs, r.console[-2000:]
    assert (regs["rsi"], regs["rsp"], regs["cr3"]) == (0x7000, 0x8FF0, 0x9000)
    zp = dump["zeropage"]
    # the image's own setup header, with the fields Firecracker sets
    assert zp[0x1F1] == 1 and zp[0x202:0x206] == b"HdrS"
    assert struct.unpack_from("<H", zp, 0x206)[0] == 0x020F
    assert zp[0x210] == 0xFF and zp[0x211] == 0x1                        # loader, loadflags
    assert struct.unpack_from("<I", zp, 0x214)[0] == 0x100000            # code32_start
    assert struct.unpack_from("<I", zp, 0x228)[0] == 0x20000
    assert struct.unpack_from("<I", zp, 0x230)[0] == 0x200000            # the image's alignment
    assert struct.unpack_from("<I", zp, 0x238)[0] == len("console=ttyS0 x") + 1
    assert struct.unpack_from("<I", zp, 0x260)[0] == 0x400000            # init_size kept
    assert zp[0x1E8] == 4                                                 # e820 entries
    assert dump["kernel"] == bytes(0x10)                                  # payload at 1 MiB


@pytest.mark.qemu
def test_pvh_entry_with_initrd(qemu, tmp_path):
    rd_addr = 128 * MiB - 0x2000
    mem = (("start_info", 0x6000, 0x40), ("modlist", 0x6040, 0x20),
           ("initrd", rd_addr, len(INITRD_PATTERN)))
    code = pvh_state_dump_code(base=LINUX_PADDR, mem=mem)
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(linux_like_elf(code, notes=[[pvh_note(LINUX_PADDR)]]))
    r = fcloader.run_qemu_fc(kernel, memory="128M", protocol="auto", initrd=_initrd(tmp_path),
                             timeout=60)
    regs, dump = parse_state_dump(r.console)
    assert regs, r.console[-2000:]
    assert r.fc_plan.protocol == "pvh"
    assert (regs["ebx"], regs["cr0"], regs["esp"]) == (0x6000, 0x11, 0)
    assert struct.unpack_from("<IIIIQQ", dump["start_info"], 0) == \
        (0x336EC578, 1, 0, 1, 0x6040, 0x20000)
    assert dump["modlist"] == struct.pack("<QQQQ", rd_addr, len(INITRD_PATTERN), 0, 0)
    assert dump["initrd"] == INITRD_PATTERN
