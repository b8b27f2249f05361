"""image/kernel.py: a ``.symtab`` section of another type (issue 13 item 2) and the OSv version
string read from a kernel's bytes (issue 12), through the library and ``osvkit`` itself."""

from __future__ import annotations

import json

import pytest

from osvkit.image.kernel import check_kernel, osv_version
from osvkit.probe import build_probe
from osvkit.structs import base, elf

from test_structs_elf import build_elf

VERSION = "OSv v0.57.0-12-gabcdef0"


def _section_headers(data: bytes):
    hdr = base.parse(elf.Elf64_Ehdr, data, what="ELF header")
    shdrs = [base.parse(elf.Elf64_Shdr, data, what="section header",
                        offset=hdr.e_shoff + i * hdr.e_shentsize) for i in range(hdr.e_shnum)]
    strtab = shdrs[hdr.e_shstrndx]

    def name(sh):
        start = strtab.sh_offset + sh.sh_name
        return data[start:data.index(b"\0", start)].decode()
    return hdr, [(name(sh), sh) for sh in shdrs]


def retype_symtab(data: bytes, sh_type: int = elf.SHT_PROGBITS) -> bytes:
    """``data`` with the ``.symtab`` section header's sh_type changed."""
    hdr, shdrs = _section_headers(data)
    (index, sh), = [(i, sh) for i, (n, sh) in enumerate(shdrs) if n == ".symtab"]
    assert sh.sh_type == elf.SHT_SYMTAB
    sh.sh_type = sh_type
    out = bytearray(data)
    at = hdr.e_shoff + index * hdr.e_shentsize
    out[at:at + elf.SHDR_SIZE] = base.build(elf.Elf64_Shdr, sh)
    return bytes(out)


@pytest.fixture(scope="module")
def probe() -> bytes:
    return build_probe()


@pytest.fixture(scope="module")
def bad_symtab(tmp_path_factory, probe):
    path = tmp_path_factory.mktemp("k") / "retyped.elf"
    path.write_bytes(retype_symtab(probe))
    return path


def test_probe_has_symbols_and_the_retyped_one_has_none(probe, bad_symtab):
    assert check_kernel(probe).symbols          # the probe has a real symbol table
    # was: AttributeError: 'Section' object has no attribute 'get_symbol_by_name'
    k = check_kernel(bad_symtab.read_bytes())
    assert k.symbols == {}


@pytest.mark.parametrize("args", [
    ["build", "{k}", "--format", "vmlinux", "-o", "{out}"],
    ["build", "{k}", "--format", "vmlinux", "--replace-entry", "-o", "{out}"],
    ["build", "{k}", "-o", "{out}"],
    ["inspect", "{k}"],
])
def test_commands_accept_a_kernel_with_a_retyped_symtab(cli, bad_symtab, tmp_path, args):
    r = cli(*[a.format(k=bad_symtab, out=tmp_path / "out") for a in args])
    assert r.returncode == 0, r.stderr.decode()
    assert b"Traceback" not in r.stderr


def test_start64_handover_needs_symbols_and_says_so(cli, bad_symtab, tmp_path):
    r = cli("build", bad_symtab, "--format", "vmlinux", "--handover", "start64",
            "-o", tmp_path / "out")
    assert r.returncode == 65
    assert r.stderr.decode().count("\n") == 1 and "no start64 or ident_pt_l4 symbol" in \
        r.stderr.decode()


def test_osv_version_in_a_schema_built_elf():
    text = b"\xf4" * 8 + b"OSv " + b"v0.57.0-12-gabcdef0\n\0" + b"\xf4" * 8
    data = build_elf({"start32": 0x400078}, b"", text=text)
    assert osv_version(data) == VERSION
    assert osv_version(build_elf({"start32": 0x400078}, b"")) is None
    assert osv_version(b"OSv v0.57.0\0") == "OSv v0.57.0"
    assert osv_version(b"OSv version") is None


def test_inspect_shows_the_version_of_kernels_and_usr_images(cli, probe, tmp_path):
    assert osv_version(probe) is None
    plain = tmp_path / "plain.elf"
    plain.write_bytes(probe)
    d = json.loads(cli("inspect", plain, "--json").stdout)
    assert d["osv_version"] is None
    assert "OSv version: not found" in cli("inspect", plain).stdout.decode()
    # the loader's banner string, as OSv's read-only data holds it: written over zero bytes
    # inside the loaded image (still a valid kernel)
    banner = b"OSv " + b"v0.57.0-12-gabcdef0\n\0"
    hdr = base.parse(elf.Elf64_Ehdr, probe, what="ELF header")
    at = probe.index(bytes(64), 0x900)
    assert at + len(banner) < hdr.e_shoff
    versioned = tmp_path / "versioned.elf"
    versioned.write_bytes(probe[:at] + banner + probe[at + len(banner):])
    d = json.loads(cli("inspect", versioned, "--json").stdout)
    assert d["osv_version"] == VERSION
    assert f"OSv version: {VERSION}" in cli("inspect", versioned).stdout.decode()
    for compression in ("fastlz", "none"):
        img = tmp_path / f"usr-{compression}.img"
        r = cli("build", versioned, "--compression", compression, "-o", img)
        assert r.returncode == 0, r.stderr.decode()
        d = json.loads(cli("inspect", img, "--json").stdout)
        assert d["kernel"]["osv_version"] == VERSION, compression
        assert f"OSv version: {VERSION}" in cli("inspect", img).stdout.decode()
