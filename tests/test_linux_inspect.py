"""``osvkit inspect`` on a real Linux kernel (Debian's amd64 package, tests/linuxkernel.py).

Every value is compared with an oracle osvkit did not compute: ``readelf`` for the ELF
header, program headers and notes; the package's own ``/boot/config-*`` for what the setup
header derives from the build configuration; the package name and version for the version
strings; the fixture's extract-vmlinux-style magic search for the payload.  Some values are
also written out literally: they are fixed by the x86 boot protocol and Debian's bookworm
configuration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import missing_tool
from osvkit.image import linux


def _run(cli, *args):
    r = cli(*args)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def _inspect(cli, path) -> dict:
    rc, out, err = _run(cli, "inspect", "--json", path)
    assert rc == 0, err
    return json.loads(out)


def _readelf(*args) -> str:
    if shutil.which("readelf") is None:
        missing_tool("readelf is not installed (binutils; install.sh installs it)")
    return subprocess.run(["readelf", *args], capture_output=True, text=True, check=True).stdout


def _check_vmlinux(d: dict, k, path) -> None:
    """``d`` (inspect's description of the vmlinux) against readelf and the package."""
    hdr = _readelf("-hW", str(path))
    assert d["entry"] == int(re.search(r"Entry point address:\s+(0x[0-9a-f]+)", hdr).group(1), 16)
    assert d["machine"] == "EM_X86_64" and "X86-64" in hdr
    notes = _readelf("-nW", str(path))
    # the Xen note of type 0x12 (PHYS32_ENTRY): 8 bytes of description, little endian
    m = re.search(r"Xen\s+0x00000008\s+Unknown note type: \(0x00000012\)\s+description data: "
                  r"((?:[0-9a-f]{2} ?){8})", notes)
    assert m, notes
    assert d["pvh_entry"] == int.from_bytes(bytes.fromhex(m.group(1)), "little")
    assert d["build_id"] == re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
    assert d["boot_protocols"] == ["linux64", "pvh"]
    # the banner names the package's release and Debian version
    assert d["release"] == k.release
    assert d["version"].startswith(f"Linux version {k.release} ")
    assert f"Debian {k.version} " in d["version"]
    # literal facts: Debian links the 64-bit entry at CONFIG_PHYSICAL_START
    assert d["entry"] == int(k.config_value("PHYSICAL_START"), 16) == 0x100_0000
    assert d["phys_start"] == 0x100_0000


def test_vmlinux(cli, linux_kernel):
    d = _inspect(cli, linux_kernel.vmlinux)
    assert d["kind"] == "linux-vmlinux"
    _check_vmlinux(d, linux_kernel, linux_kernel.vmlinux)
    # program headers as readelf reads them
    ph = _readelf("-lW", str(linux_kernel.vmlinux))
    rows = re.findall(r"^\s+(LOAD|NOTE)\s+(0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) "
                      r"(0x[0-9a-f]+) (0x[0-9a-f]+)", ph, re.M)
    assert [(s["type"][3:], s["offset"], s["vaddr"], s["paddr"], s["filesz"], s["memsz"])
            for s in d["segments"]] == [(t, *(int(v, 16) for v in rest)) for t, *rest in rows]
    loads = [s for s in d["segments"] if s["type"] == "PT_LOAD"]
    assert d["phys_end"] == max(s["paddr"] + s["memsz"] for s in loads)
    assert d["size"] == linux_kernel.vmlinux.stat().st_size


def test_vmlinux_human(cli, linux_kernel):
    rc, out, err = _run(cli, "inspect", linux_kernel.vmlinux)
    assert rc == 0, err
    assert "Linux kernel (vmlinux ELF)" in out
    assert "64-bit entry (e_entry, physical): 0x1000000" in out
    assert "OSv" not in out and "loader.ld" not in out      # no OSv contract


def test_bzimage(cli, linux_kernel):
    k = linux_kernel
    d = _inspect(cli, k.bzimage)
    assert d["kind"] == "linux-bzimage"
    h = d["header"]
    data = k.bzimage.read_bytes()
    # the protected-mode part is syssize 16-byte paragraphs after the setup: the whole file
    assert d["setup_size"] + 16 * h["syssize"] == len(data)
    assert d["setup_size"] == (h["setup_sects"] + 1) * 512
    # the payload is where the fixture's magic search found the compressed ELF
    p = d["payload"]
    assert p["offset"] == k.payload_offset
    assert p["compression"] == k.compression
    assert k.config_value(f"KERNEL_{p['compression'].upper()}") == "y"
    assert p["uncompressed_size"] == k.vmlinux.stat().st_size
    assert p["offset"] + p["length"] <= len(data)
    # what the setup header takes from the build configuration
    assert h["pref_address"] == int(k.config_value("PHYSICAL_START"), 16)
    assert h["kernel_alignment"] == int(k.config_value("PHYSICAL_ALIGN"), 16)
    assert h["relocatable_kernel"] == (k.config_value("RELOCATABLE") == "y")
    assert ("XLF_5LEVEL" in d["xloadflags"]) == (k.config_value("X86_5LEVEL") == "y")
    assert ("XLF_EFI_HANDOVER_64" in d["xloadflags"]) == (k.config_value("EFI_STUB") == "y")
    # init_size covers the kernel image from pref_address
    assert h["init_size"] >= d["vmlinux"]["phys_end"] - h["pref_address"]
    # the version string names the package's release and Debian version
    assert d["kernel_version"].startswith(f"{k.release} ")
    assert f"Debian {k.version} " in d["kernel_version"]
    # literal: bookworm's 6.1 kernels (x86 boot protocol 2.15, 64-bit, relocatable, xz)
    assert d["protocol"] == "2.15" and h["version"] == 0x020F
    assert h["loadflags"] == 0x01 and d["loadflags"] == ["LOADED_HIGH"]
    assert h["xloadflags"] == 0x7F and d["xloadflags"][:2] == ["XLF_KERNEL_64",
                                                               "XLF_CAN_BE_LOADED_ABOVE_4G"]
    assert h["code32_start"] == 0x10_0000
    assert h["pref_address"] == 0x100_0000 and h["kernel_alignment"] == 0x20_0000
    assert h["cmdline_size"] == 2047 and h["initrd_addr_max"] == 0x7FFF_FFFF
    # the vmlinux inside is the one the fixture extracted, as readelf sees it
    inner = d["vmlinux"]
    _check_vmlinux(inner, k, k.vmlinux)
    assert inner["size"] == k.vmlinux.stat().st_size


def test_bzimage_file_oracle(cli, linux_kernel):
    """file(1)'s own bzImage decoder agrees on the version string (when file is installed;
    it is not one of osvkit's tools)."""
    if shutil.which("file") is None:
        pytest.skip("file(1) is not installed (optional oracle)")
    out = subprocess.run(["file", "-b", str(linux_kernel.bzimage)], capture_output=True,
                         text=True).stdout
    d = _inspect(cli, linux_kernel.bzimage)
    assert f"version {d['kernel_version']}," in out


def test_bzimage_human(cli, linux_kernel):
    rc, out, err = _run(cli, "inspect", linux_kernel.bzimage)
    assert rc == 0, err
    assert "Linux kernel (bzImage), boot protocol 2.15" in out
    assert "payload: xz," in out and "PVH entry" in out


# ------------------------------------------------------------------------------------------
# damaged kernels
# ------------------------------------------------------------------------------------------
def test_truncated_bzimage(cli, linux_kernel, tmp_path):
    data = linux_kernel.bzimage.read_bytes()
    cut = tmp_path / "cut.bzImage"
    cut.write_bytes(data[:len(data) // 2])
    rc, _, err = _run(cli, "inspect", cut)
    assert rc == 65, err
    assert err.startswith(f"error: {cut}: payload of ") and "expected a complete bzImage" in err
    assert len(err.strip().splitlines()) == 1
    head = tmp_path / "head.bzImage"
    head.write_bytes(data[:0x220])
    rc, _, err = _run(cli, "inspect", head)
    assert rc == 65 and "ends inside the setup header" in err, err


def test_bzimage_bad_payload(linux_kernel):
    """A payload that does not decompress is described as such; the header still is."""
    data = bytearray(linux_kernel.bzimage.read_bytes())
    d = linux.describe_bzimage_bytes(bytes(data), decompress=False)
    start = d["payload"]["offset"]
    data[start + 100:start + 4000] = bytes(3900)
    d = linux.describe_bzimage_bytes(bytes(data))
    assert d["protocol"] == "2.15"
    assert d["vmlinux"]["error"].startswith("payload does not decompress (xz:")


def test_detection_heads(linux_kernel):
    head = linux_kernel.vmlinux.read_bytes()[:4096]
    assert linux.is_linux_elf_head(head) and not linux.is_bzimage_head(head)
    bz = linux_kernel.bzimage.read_bytes()[:4096]
    assert linux.is_bzimage_head(bz) and not linux.is_linux_elf_head(bz)
    # the same ELF header for another machine (aarch64 = 183) is not a Linux x86-64 kernel
    foreign = bytearray(head)
    foreign[18:20] = (183).to_bytes(2, "little")
    assert not linux.is_linux_elf_head(bytes(foreign))
    assert not linux.is_linux_elf_head(head[:100])       # program headers cut off


def test_notes_walk():
    """The note walker on hand-made notes: name and description padded to 4 bytes."""
    def note(name: bytes, ntype: int, desc: bytes) -> bytes:
        n = name + b"\0"
        return (len(n).to_bytes(4, "little") + len(desc).to_bytes(4, "little")
                + ntype.to_bytes(4, "little") + n + bytes(-len(n) % 4) + desc + bytes(-len(desc) % 4))
    blob = note(b"Xen", 18, bytes.fromhex("50080001")) + note(b"GNU", 3, b"\xab" * 20) \
        + note(b"Xen", 18, bytes.fromhex("00100001"))
    notes = linux.walk_notes(blob)
    assert [(n["owner"], n["type"], n["desc"]) for n in notes] == [
        ("Xen", 18, bytes.fromhex("50080001")), ("GNU", 3, b"\xab" * 20),
        ("Xen", 18, bytes.fromhex("00100001"))]
    assert notes[0]["name"] == "PHYS32_ENTRY" and notes[1]["name"] is None
    assert linux.walk_notes(blob[:-2])[-1]["owner"] == "GNU"    # a cut last note is dropped
