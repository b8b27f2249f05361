"""The probe kernel generator and its report parser (no guest boot; see test_probe_boot.py)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvkit.asm import disassemble
from osvkit.errors import FormatError, UsageError
from osvkit.image.kernel import check_kernel
from osvkit.probe import build_probe, parse_report, write_probe
from osvkit.probe import info as pinfo

MiB = 1 << 20


@pytest.fixture(scope="module")
def probe() -> bytes:
    return build_probe()


@pytest.fixture(scope="module")
def probe_er() -> bytes:
    return build_probe(entry_report=True)


def _syms(data: bytes) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(data))
    return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}


def test_elf_header_and_single_load_segment(probe):
    # ELF64, little-endian, ET_EXEC, EM_X86_64 (written out, not taken from the generator)
    assert probe[:16] == b"\x7fELF\x02\x01\x01" + bytes(9)
    e_type, e_machine, e_version, e_entry, e_phoff = struct.unpack_from("<HHIQQ", probe, 16)
    assert (e_type, e_machine, e_version, e_phoff) == (2, 62, 1, 64)
    e_ehsize, e_phentsize, e_phnum = struct.unpack_from("<HHH", probe, 52)
    assert (e_ehsize, e_phentsize, e_phnum) == (64, 56, 1)
    p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = \
        struct.unpack_from("<IIQQQQQQ", probe, 64)
    assert (p_type, p_flags, p_offset, p_vaddr, p_paddr) == (1, 7, 0, 0x40200000, 0x200000)
    assert p_filesz % 16 == 0 and p_memsz == ((p_filesz + 0xFFF) & ~0xFFF) + 0x8000
    start32 = struct.unpack_from("<Q", probe, 0x800)[0]
    syms = _syms(probe)
    assert set(syms) >= {"start32", "start64", "ident_pt_l4"}
    # symbols are virtual (like OSv's loader.elf); the slot and e_entry are physical
    assert syms["start32"] - 0x40000000 == start32 == e_entry
    assert 0x201000 <= syms["start64"] - 0x40000000 < p_paddr + p_filesz
    assert syms["ident_pt_l4"] % 0x1000 == 0
    assert syms["ident_pt_l4"] - 0x40200000 >= p_filesz          # in bss, built at run time


def test_check_kernel_pyelftools_readelf_and_lief_agree(probe, tmp_path):
    k = check_kernel(probe)
    assert k.start32 == struct.unpack_from("<Q", probe, 0x800)[0]
    assert k.image_segment.paddr == 0x200000 and len(k.load_segments) == 1
    path = tmp_path / "probe.elf"
    path.write_bytes(probe)
    import lief
    binary = lief.parse(str(path))
    assert binary.header.entrypoint == k.entry
    lief_syms = {s.name: s.value for s in binary.symbols if s.name}
    assert lief_syms["start32"] == k.symbols["start32"]
    assert lief_syms["ident_pt_l4"] == k.symbols["ident_pt_l4"]
    if shutil.which("readelf") is None:
        from conftest import missing_tool
        missing_tool("readelf is not installed (install.sh installs binutils)")
    out = subprocess.run(["readelf", "-W", "-h", "-l", "-s", str(path)], capture_output=True,
                         text=True, check=True)
    assert "Warning" not in out.stderr and not out.stderr
    assert "LOAD           0x000000 0x0000000040200000 0x0000000000200000" in out.stdout
    assert f"{k.symbols['start64']:016x}" in out.stdout and " start64" in out.stdout


def test_entry_report_sets_e_entry_to_the_64bit_routine(probe_er):
    syms = _syms(probe_er)
    e_entry = struct.unpack_from("<Q", probe_er, 24)[0]
    assert e_entry == syms["probe_elf_entry"] - 0x40000000
    assert e_entry != syms["start32"] - 0x40000000
    assert pinfo.read_info(probe_er).flags == 1
    assert check_kernel(probe_er).start32 == syms["start32"] - 0x40000000
    assert pinfo.read_info(build_probe()).flags == 0


@pytest.mark.parametrize("size", [64 * 1024, MiB, 6 * MiB, 40 * MiB])
def test_size_is_exact_and_output_deterministic(size):
    a = build_probe(size)
    assert len(a) == size
    assert a == build_probe(size)
    k = check_kernel(a)
    assert k.image_segment.filesz > size - 1024


def test_output_is_identical_across_processes(tmp_path):
    import hashlib
    import os
    import sys
    code = ("import hashlib, sys; from osvkit.probe import build_probe; "
            "sys.stdout.write(hashlib.sha256(build_probe(1 << 20, entry_report=True)).hexdigest())")
    digests = set()
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True)
        digests.add(out.stdout)
    assert digests == {hashlib.sha256(build_probe(MiB, entry_report=True)).hexdigest()}


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0x2000, max_value=3 * MiB))
def test_any_size_builds_a_valid_kernel(size):
    try:
        data = build_probe(size)
    except UsageError:
        assert size < 0x3000                      # below the minimum (code + tail)
        return
    assert len(data) == size
    k = check_kernel(data)
    info = pinfo.read_info(data)
    assert info.image_len == k.image_segment.filesz <= size - 0x200
    assert info.body_sum == zlib.adler32(data[0x800:0x818] + bytes(8) + data[0x820:info.image_len])


def test_sizes_too_small_or_too_large_are_usage_errors():
    with pytest.raises(UsageError, match="probe size 4096 out of range, expected"):
        build_probe(4096)
    with pytest.raises(UsageError):
        build_probe(2 << 30)


def test_embedded_checksums_are_adler32(probe):
    info = pinfo.read_info(probe)
    assert probe[0x808:0x810] == b"OSVKPROB"
    filesz = struct.unpack_from("<Q", probe, 64 + 32)[0]
    assert info.image_len == filesz
    assert info.header_sum == zlib.adler32(probe[:0x800])
    body = bytearray(probe[0x800:filesz])
    body[0x18:0x20] = bytes(8)                    # the two sums, at file 0x818-0x81f
    assert info.body_sum == zlib.adler32(bytes(body))


def test_probe_info_block_layout():
    raw = (b"OSVKPROB"                       # +0x00 magic
           + bytes.fromhex("01000000")       # +0x08 version 1
           + bytes.fromhex("f0190000")       # +0x0c image length 0x19f0
           + bytes.fromhex("08067506")       # +0x10 header sum
           + bytes.fromhex("562735d7")       # +0x14 body sum
           + bytes.fromhex("01000000"))      # +0x18 flags: entry report
    info = pinfo.ProbeInfo.parse(raw)
    assert (info.version, info.image_len, info.header_sum, info.body_sum, info.flags) == \
        (1, 0x19F0, 0x06750608, 0xD7352756, 1)
    assert pinfo.ProbeInfo.build(info) == raw and pinfo.ProbeInfo.sizeof() == 0x1C
    with pytest.raises(FormatError, match="no probe info block at \\+0x808"):
        pinfo.read_info(bytes(0x1000))


def test_gdt_has_osvs_selectors(probe):
    gdt = bytes.fromhex("0000000000000000" "ffff0000009baf00" "ffff00000093cf00" "ffff0000009bcf00")
    at = probe.index(gdt)
    assert 0x840 <= at < 0x1000
    desc = struct.pack("<HQ", 31, 0x200000 + at)
    assert desc in probe[0x840:0x1000]


def _code(data: bytes, bits: int, start: int, end: int):
    return disassemble(data[start - 0x200000:end - 0x200000], bits=bits, base=start)


def test_start32_critical_instructions(probe):
    syms = {k: v - 0x40000000 for k, v in _syms(probe).items()}
    start32 = syms["start32"]
    ins = _code(probe, 32, start32, start32 + 0x200)
    text = [f"{m} {o}".strip() for _, m, o in ins]
    # CR4 = 0x7b8, CR3 = ident_pt_l4, EFER = 0x900, CR0 = 0x80010003, in that order
    i_cr4 = text.index("movl $0x7b8, %eax")
    assert text[i_cr4 + 1] == "movl %eax, %cr4"
    assert text[i_cr4 + 2] == f"movl ${syms['ident_pt_l4']:#x}, %eax"
    assert text[i_cr4 + 3] == "movl %eax, %cr3"
    assert text[i_cr4 + 4:i_cr4 + 8] == ["movl $0xc0000080, %ecx", "movl $0x900, %eax",
                                         "xorl %edx, %edx", "wrmsr"]
    assert text[i_cr4 + 8:i_cr4 + 10] == ["movl $0x80010003, %eax", "movl %eax, %cr0"]
    ljmp = ins[i_cr4 + 10]
    assert (ljmp[1], ljmp[2]) == ("ljmpl", f"$0x8:${syms['start64']:#x}")
    assert probe[ljmp[0] - 0x200000:][:7] == b"\xea" + struct.pack("<IH", syms["start64"], 8)
    # page-table entries exactly as OSv's boot.S: l4[0] -> l3 | 0x67, l3[0], l3[1] -> l2 | 0x67
    l4 = syms["ident_pt_l4"]
    assert f"movl ${l4 + 0x1000 + 0x67:#x}, {l4:#x}" in text
    assert f"movl ${l4 + 0x2000 + 0x67:#x}, {l4 + 0x1000:#x}" in text
    assert f"movl ${l4 + 0x2000 + 0x67:#x}, {l4 + 0x1008:#x}" in text
    assert "movl $0x1e7, %eax" in text and "addl $0x200000, %eax" in text
    # paging is switched off first when start32 is entered with it on
    assert "andl $0x7fffffff, %eax" in text


def test_start64_boot_done_and_power_off(probe):
    syms = {k: v - 0x40000000 for k, v in _syms(probe).items()}
    ins = _code(probe, 64, syms["start64"], syms["start32"])
    text = [f"{m} {o}".strip() for _, m, o in ins]
    i = text.index("movb $0x7b, %al")
    assert text[i:i + 6] == ["movb $0x7b, %al", "movw $0x3f0, %dx", "outb %al, %dx",
                             "movb $0xfe, %al", "movw $0x64, %dx", "outb %al, %dx"]
    assert "int3" in text[i + 6:i + 10] and "hlt" in text[i + 6:i + 12]
    sse = [t for t in text if t.split()[0].startswith(("movaps", "movups", "movdq", "pxor",
                                                      "xorps", "movq %xmm", "movss"))]
    assert not sse


def test_payload_compresses_like_kernel_code():
    import fastlz
    data = build_probe(6 * MiB)
    ratios = []
    for i in range(6):
        seg = data[i * MiB:(i + 1) * MiB]
        ratios.append((len(fastlz.compress(seg)) - 4) / len(seg))
    assert all(0.45 <= r <= 0.65 for r in ratios), ratios
    # and it is not a constant pattern: no 4 KiB page repeats within a segment
    pages = {data[o:o + 4096] for o in range(MiB, 2 * MiB, 4096)}
    assert len(pages) == 256


def test_write_probe_is_atomic_and_reports(tmp_path):
    out = tmp_path / "p.elf"
    res = write_probe(out, size=MiB)
    assert out.stat().st_size == MiB
    assert res.to_dict()["size"] == MiB and res.start32 == struct.unpack_from("<Q", out.read_bytes(), 0x800)[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".osvkit-")]


# SHA-256 of probes built before the generator was split into one module per routine
# (osvkit 0.x, kernel.py of 1,500 lines): the split and any later refactor must keep every
# byte.  A deliberate change of the probe's code or layout updates this list (and says so).
PINNED = {
    (None, False): "ce10d9d4d2f54ac1b8f6445794c92853f1e63bf9afc7ebedca9f7d845aa8c6e6",
    (0x2000, False): "9b06683b4a246ecdbba43b40b41da28ccf6e434da4cd9398ec546215e719a7e7",
    (13398, False): "24e3198771496d8d1ec8112abe4c22031332a2d67bb3d1a9b7242cc5059ff193",
    (64 * 1024, False): "9610ccc85a235427942d03408956e9ef3b00d82906184b17e7e068f29addeac2",
    (100001, False): "e9e9e30a65302cea01d97324e58d351052e9b0bcc58ece9be1c13c6c48a6061b",
    (MiB, False): "a6a53eec1162d6869fe21f854cc72843676bfe63d87dcc296f82a8793e0a27ae",
    (6 * MiB, False): "3db2fb8d786bd1114107673fc0889e87f52051df3c885aaa684770c81a61b44a",
    (None, True): "7a991d7498c98718937679f4d00afc7f81ab2b0452d749b5ad8f3000306d054c",
    (0x3000, True): "28a435900f65642cfe5e77044789b0f73f6a0304314ad4a27b65abb9ad75ebb9",
    (64 * 1024, True): "25084745576b5f2ff92b41f805d3dc774e78c1eba870833c85ae253511647074",
    (100001, True): "f870f8a03bffab7c2ec6de7058e5f328a685655a1daff96ef0d8c93a6d4d6584",
    (MiB, True): "269ff393532fa69b1bc6859587664f5930bed4f6edb0bfca8d480ad480e2cb3e",
    (6 * MiB, True): "795703c02f1427947f2fb63911d1d5b5ccbd1638a94de732ac58f8a207720702",
}


@pytest.mark.parametrize("size, entry_report", list(PINNED))
def test_probe_bytes_are_pinned(size, entry_report):
    import hashlib
    assert hashlib.sha256(build_probe(size, entry_report=entry_report)).hexdigest() == \
        PINNED[size, entry_report]


def test_probe_size_limits_are_pinned():
    with pytest.raises(UsageError, match="probe size 8192 out of range, expected 10024 to "
                                         "536870912 bytes"):
        build_probe(0x2000, entry_report=True)


def test_cli_writes_the_pinned_probe(tmp_path):
    import hashlib

    from conftest import run_cli
    out = tmp_path / "p.elf"
    res = run_cli("probe", "-o", out, "--size", "6M", "--entry-report")
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == PINNED[6 * MiB, True]


# ---------------------------------------------------------------------------- the parser
REPORT = """\
SeaBIOS noise
probe.begin 1
probe.entry start32
probe.start32.cr0 0x00000011
probe.start32.esp 0x00007bfc
probe.start32.cs 0x0008
probe.cr 0x80010013 0x00202000 0x000007b8 0x00000d00
probe.pt 0x0000000000203067 0x0000000000204067 0x0000000000204067 0x00000000000001e7 0x00000000002001e7 0x000000003fe001e7
probe.bootinfo 0x00001000
probe.bootinfo.flags 0x00000200
probe.loader test-boot
probe.loader.hex 746573742d626f6f74
probe.cmdline.addr 0x00008472
probe.cmdline.len 0x00000015
probe.cmdline hello "world" \\\\\\\\ \\x01\\x09\\xc3\\xbc
probe.cmdline.hex 68656c6c6f2022776f726c6422205c5c200109c3bc
probe.e820.map 0x00002000 0x00000030
probe.e820 0x0000000000000000 0x000000000009fc00 0x00000001
probe.e820 0x0000000000100000 0x0000000007ee0000 0x00000001
probe.tsc 0x0000000007047222 0x0000000007129ea8 0x0000000007129edc
probe.disk_err 0x00
probe.mptable.rule spec
probe.mpfp 0x000f5ba0
probe.mpfp.hex 5f4d505fb05b0f000104860000000000
probe.mptable 0x000f5bb0 0x0004
probe.mptable.hex 50434d50
probe.cpus 0x0002
probe.mbr 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
probe.mbr 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
probe.mbr 55aa
probe.image ok 0xd7352756 0xd7352756 0x000019f0
probe.header changed 0x06750608 0x06750609
probe.end 1
"""


def test_parse_report_fields():
    r = parse_report(REPORT.replace("\n", "\r\n"))
    assert r.version == 1 and r.complete
    assert r.entry == "start32" and r.loader == "test-boot"
    assert r.start32_cr0 == 0x11 and r.start32_esp == 0x7BFC and r.start32_cs == 8
    assert r.paging_at_start32 is False
    assert r.control_regs == {"cr0": 0x80010013, "cr3": 0x202000, "cr4": 0x7B8, "efer": 0xD00}
    assert r.page_tables == (0x203067, 0x204067, 0x204067, 0x1E7, 0x2001E7, 0x3FE001E7)
    assert r.bootinfo_addr == 0x1000 and r.bootinfo_flags == 0x200
    assert r.cmdline_bytes == b'hello "world" \\\\ \x01\t\xc3\xbc'
    assert r.cmdline == 'hello "world" \\\\ \x01\tü'
    assert r.e820 == [(0, 0x9FC00, 1), (0x100000, 0x7EE0000, 1)]
    assert r.e820[1].addr == 0x100000 and r.ram == r.e820
    assert r.tsc == (0x7047222, 0x7129EA8, 0x7129EDC)
    assert r.disk_err == 0
    assert r.mptable_rule == "spec" and r.mp_floating_addr == 0xF5BA0
    assert r.mp_floating == bytes.fromhex("5f4d505fb05b0f000104860000000000")
    assert r.mptable == b"PCMP" and r.mptable_addr == 0xF5BB0 and r.cpus == 2
    assert r.mbr_partitions == bytes(range(64)) + b"\x55\xaa"
    assert r.image_ok is True and r.image_checksum == (0xD7352756, 0xD7352756, 0x19F0)
    assert r.header_ok is False
    assert r.entry_state is None
    d = r.to_dict()
    assert d["cmdline_bytes"] == "68656c6c6f2022776f726c6422205c5c200109c3bc"
    assert d["e820"][1] == {"addr": 0x100000, "size": 0x7EE0000, "type": 1}
    import json
    json.dumps(d)


def test_parse_report_incomplete_and_missing_parts():
    cut = REPORT.split("probe.tsc")[0]
    r = parse_report(cut)
    assert not r.complete and r.tsc is None and r.image_ok is None and r.mptable is None
    r = parse_report("probe.begin 1\nprobe.loader.none\nprobe.cmdline.none\nprobe.mptable.none\n"
                     "probe.mbr.none\nprobe.end 1\n")
    assert r.complete and r.loader is None and r.cmdline is None and r.cpus is None
    assert r.mbr_partitions is None


@pytest.mark.parametrize("text, message", [
    ("", "no probe report in the console output, expected a 'probe.begin 1' line"),
    ("probe.begin 2\n", "probe report version '2', expected version 1"),
    ("probe.begin 1\nprobe.tsc 0x1 0x2\n", "has 2 values, expected 3 hex values"),
    ("probe.begin 1\nprobe.cpus 0xzz\n", "non-hex value"),
    ("probe.begin 1\nprobe.cmdline abc\nprobe.cmdline.hex 616263ff\n", "disagree"),
])
def test_parse_report_errors(text, message):
    with pytest.raises(FormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_report(text, path="console.txt")


def _escape(raw: bytes) -> str:
    """The probe's documented escaping, re-implemented here from the format description."""
    out = []
    for b in raw:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200).filter(lambda b: 0 not in b))
def test_cmdline_round_trip(raw):
    hexes = "".join(f"probe.cmdline.hex {raw[i:i + 32].hex()}\n" for i in range(0, len(raw), 32))
    text = f"probe.begin 1\nprobe.cmdline {_escape(raw)}\n{hexes}probe.end 1\n"
    assert parse_report(text).cmdline_bytes == raw


def test_parse_entry_state():
    text = """probe.state.begin 1
probe.state.rip 0x0000000000201930
probe.state.rsi 0x0000000000007000
probe.state.cs 0x0008
probe.state.gdtr 0x0000000000000500 0x001f
probe.state.gdt 0000000000000000ffff0000009baf00ffff00000093cf00ffff0000008b8f00
probe.state.pd 0x00000000000000e3 0x00000000002000e3 0x000000003fe00083
probe.state.bp.boot_flag 0xaa55
probe.state.bp.e820 0x0000000000000000 0x000000000009fc00 0x00000001
probe.state.end 1
probe.begin 1
probe.end 1
"""
    s = parse_report(text).entry_state
    assert s["complete"] and s["rip"] == 0x201930 and s["rsi"] == 0x7000 and s["cs"] == 8
    assert s["gdtr"] == {"base": 0x500, "limit": 0x1F}
    assert s["gdt"] == [0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x008F8B000000FFFF]
    assert s["pd"] == (0xE3, 0x2000E3, 0x3FE00083)
    assert s["boot_params"] == {"boot_flag": 0xAA55,
                                "e820": [{"addr": 0, "size": 0x9FC00, "type": 1}]}
