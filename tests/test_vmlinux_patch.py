"""``build_vmlinux``: exactly which bytes change, read back with pyelftools and LIEF, and
the errors for kernels that cannot be patched."""

from __future__ import annotations

import io
import struct

import pytest

from fcpath_kernels import START32, make_kernel
from osvkit.errors import KernelError, LayoutError, MissingInputError, UsageError
from osvkit.image.kernel import check_kernel
from osvkit.image.vmlinux import build_vmlinux, inspect_kernel_elf, patch_vmlinux


def _patch(data: bytes, **kw):
    return patch_vmlinux(check_kernel(data, path="kernel.elf"), **kw)


def _diff_ranges(a: bytes, b: bytes) -> list[tuple[int, int]]:
    """Byte ranges [start, end) where a and b differ (over len(a))."""
    out, start = [], None
    for i in range(len(a)):
        if a[i] != b[i]:
            if start is None:
                start = i
        elif start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(a)))
    return out


def test_only_intended_bytes_change():
    orig = make_kernel()
    out, res = _patch(orig)
    # appended at the next page boundary: 0x3000 image + symtab/strtab/shstrtab/shdrs
    assert len(orig) == 0x31E0
    assert len(out) == 0x4000 + 0x500
    assert out[len(orig):0x4000] == bytes(0x4000 - len(orig))
    changed = _diff_ranges(orig, out[:len(orig)])
    # e_entry (0x18-0x1f), e_phnum (0x38), and two new phdrs after the one at 0x40
    for start, end in changed:
        assert (0x18 <= start and end <= 0x20) or (start, end) == (0x38, 0x39) or \
            (0x78 <= start and end <= 0x78 + 2 * 56), (hex(start), hex(end))
    assert struct.unpack_from("<Q", out, 0x18)[0] == 0x100000          # e_entry
    assert struct.unpack_from("<H", out, 0x38)[0] == 3                 # e_phnum
    assert out[0x800:0x808] == struct.pack("<Q", START32)              # slot untouched
    assert out[0x40:0x78] == orig[0x40:0x78]                           # old phdr untouched
    # new PT_LOAD: type 1, flags R|X, offset 0x4000, vaddr just above the image's
    # 0x40200000 + memsz 0x4000, paddr 1 MiB, 0x500 bytes, page aligned
    assert struct.unpack_from("<IIQQQQQQ", out, 0x78) == (
        1, 5, 0x4000, 0x40204000, 0x100000, 0x500, 0x500, 0x1000)
    # new PT_NOTE over the note inside the stub segment (+0x2a0), 24 bytes, align 4
    assert struct.unpack_from("<IIQQQQQQ", out, 0xB0) == (
        4, 4, 0x42A0, 0x402042A0, 0x1002A0, 24, 24, 4)
    assert res.added == ["linux64", "pvh"] and res.kept == []
    assert res.entry == 0x100000 and res.pvh_entry == 0x100300 and res.original_entry == START32


def test_read_back_with_pyelftools():
    from elftools.elf.elffile import ELFFile

    out, _ = _patch(make_kernel())
    elf = ELFFile(io.BytesIO(out))
    assert elf.header["e_entry"] == 0x100000
    segs = [(s["p_type"], s["p_offset"], s["p_vaddr"], s["p_paddr"], s["p_filesz"])
            for s in elf.iter_segments()]
    assert segs == [("PT_LOAD", 0, 0x40200000, 0x200000, 0x3000),
                    ("PT_LOAD", 0x4000, 0x40204000, 0x100000, 0x500),
                    ("PT_NOTE", 0x42A0, 0x402042A0, 0x1002A0, 24)]
    notes = list(list(elf.iter_segments())[2].iter_notes())
    assert [(n["n_name"], n["n_type"], n["n_descsz"]) for n in notes] == [("Xen", 18, 8)]
    # section headers are where they were, with the same contents
    orig = ELFFile(io.BytesIO(make_kernel()))
    assert [(s.name, s["sh_offset"], s.data()) for s in elf.iter_sections()] == \
        [(s.name, s["sh_offset"], s.data()) for s in orig.iter_sections()]
    assert elf.get_section_by_name(".symtab").get_symbol_by_name("start32")[0]["st_value"] == \
        0x40201000


def test_read_back_with_lief():
    import lief     # an install requirement: no skip
    out, _ = _patch(make_kernel())
    b = lief.parse(list(out))
    assert b is not None
    assert b.entrypoint == 0x100000
    loads = [(s.file_offset, s.virtual_address, s.physical_address, s.physical_size)
             for s in b.segments if s.type == lief.ELF.Segment.TYPE.LOAD]
    assert loads == [(0, 0x40200000, 0x200000, 0x3000), (0x4000, 0x40204000, 0x100000, 0x500)]
    assert b.header.program_header_offset == 0x40
    assert b.header.section_header_offset == struct.unpack_from("<Q", make_kernel(), 0x28)[0]


def test_deterministic():
    a, _ = _patch(make_kernel())
    b, _ = _patch(make_kernel())
    assert a == b


def test_no_pvh_adds_one_phdr():
    out, res = _patch(make_kernel(), pvh=False)
    assert struct.unpack_from("<H", out, 0x38)[0] == 2
    assert out[0xB0:0xE8] == bytes(56)
    assert res.added == ["linux64"] and res.pvh_entry is None
    assert check_kernel(out).pvh_entry is None


def test_existing_linux_entry_and_pvh_note_are_kept():
    orig = make_kernel(entry=0x201100, pvh_note=0x201200)     # like current OSv
    out, res = _patch(orig)
    assert out == orig
    assert res.kept == ["linux64", "pvh"] and res.added == []
    assert res.linux64_entry == 0x201100 and res.pvh_entry == 0x201200


def test_existing_linux_entry_kept_pvh_added():
    out, res = _patch(make_kernel(entry=0x201100))
    assert struct.unpack_from("<Q", out, 0x18)[0] == 0x201100
    assert res.kept == ["linux64"] and res.added == ["pvh"]
    assert check_kernel(out).pvh_entry == 0x100300


def test_replace_entry_overrides_both():
    orig = make_kernel(entry=0x201100, pvh_note=0x201200)
    out, res = _patch(orig, replace_entry=True)
    assert res.added == ["linux64", "pvh"]
    k = check_kernel(out)
    assert k.entry == 0x100000
    # two PVH notes now; loaders take the last PT_NOTE, which is ours
    assert [n["value"] for n in k.notes] == [0x201200, 0x100300]
    info = inspect_kernel_elf(k)
    assert [(e["protocol"], e["address"], e["provider"]) for e in info.entries] == [
        ("linux64", 0x100000, "osvkit-vmlinux64"), ("pvh", 0x100300, "osvkit-pvh"),
        ("start32", 0x201000, "kernel")]
    assert info.entries[1]["source"].endswith("last of 2 (loaders use the last)")


def test_start64_handover_needs_symbols():
    with pytest.raises(KernelError) as exc:
        _patch(make_kernel(symbols=False), handover="start64")
    assert str(exc.value) == ("kernel.elf: no start64 or ident_pt_l4 symbol (stripped kernel?), "
                              "expected a .symtab with start64 and ident_pt_l4 for --handover "
                              "start64, or --handover start32")
    out, res = _patch(make_kernel(), handover="start64")
    assert res.handover == "start64"
    # start64 at its linked address 0x40201010 (OSv's start32_from_64 jumps there too; the
    # physical alias 0x201010 leaves low-half return addresses OSv later unmaps -- a real
    # OSv died after its banner), CR3 = ident_pt_l4 physical = 0x40202000 - 0x40000000
    assert b"\x48\xc7\xc0" + struct.pack("<I", 0x40201010) in out[0x4000:0x4200]  # movq $start64, %rax
    assert b"\x48\xc7\xc0" + struct.pack("<I", 0x202000) in out[0x4000:0x4200]  # movq $ident_pt_l4


def test_bad_handover():
    with pytest.raises(UsageError):
        _patch(make_kernel(), handover="start16")


def test_no_room_for_phdrs():
    # 33 phdrs + 2 new end at 0x40 + 35*56 = 0x7e8 <= 0x800: fits
    out, _ = _patch(make_kernel(extra_phdrs=32))
    assert struct.unpack_from("<H", out, 0x38)[0] == 35
    # 34 + 2 would end at 0x820 > 0x800
    with pytest.raises(LayoutError) as exc:
        _patch(make_kernel(extra_phdrs=33))
    assert str(exc.value) == ("kernel.elf: no room for 2 more program header(s): the table would "
                              "end at 0x820, expected e_phoff + (e_phnum+2)*56 <= 0x800 "
                              "(the start32 slot)")
    # room for one (no PVH) but not two
    out, _ = _patch(make_kernel(extra_phdrs=33), pvh=False)
    assert struct.unpack_from("<H", out, 0x38)[0] == 35


def test_no_room_when_padding_is_used():
    data = bytearray(make_kernel())
    data[0xE0] = 1          # inside the second new slot (0xb0-0xe8)
    with pytest.raises(LayoutError, match="bytes 0x78-0xe8 after the table are in use"):
        _patch(bytes(data))


def _with_load(paddr: int, memsz: int) -> bytes:
    """make_kernel() with its second phdr turned into a PT_LOAD at ``paddr``."""
    data = bytearray(make_kernel(extra_phdrs=1))
    struct.pack_into("<IIQQQQQQ", data, 0x78, 1, 6, 0x2000, 0x40000000 + paddr, paddr, 0x100,
                     memsz, 0x1000)
    return bytes(data)


def test_segment_below_1mib():
    with pytest.raises(KernelError) as exc:
        _patch(_with_load(0x90000, 0x1000))
    assert str(exc.value) == ("kernel.elf: PT_LOAD at physical 0x90000 is below 1 MiB, expected "
                              "every segment in 1 MiB-1 GiB (Firecracker loads at p_paddr >= "
                              "0x100000)")


def test_segment_overlapping_stub_area():
    with pytest.raises(LayoutError) as exc:
        _patch(_with_load(0x100400, 0x1000))
    assert str(exc.value) == ("kernel.elf: no room for the stub: PT_LOAD at physical "
                              "0x100400-0x101400 overlaps 0x100000-0x100500, expected nothing "
                              "loaded at 0x100000-0x100500 (osvkit's stub)")
    out, _ = _patch(_with_load(0x180000, 0x1000))          # clear of the stub: fine
    assert struct.unpack_from("<H", out, 0x38)[0] == 4


def test_segment_above_1gib():
    with pytest.raises(KernelError, match="ends above 1 GiB"):
        _patch(_with_load(0x3FFFF000, 0x2000))


def test_not_elf64_x86_64():
    with pytest.raises(KernelError, match="ELF machine"):
        _patch(make_kernel(machine=3))
    with pytest.raises(KernelError, match="not an ELF file"):
        _patch(b"MZ" + bytes(100))


def test_no_start32_slot():
    with pytest.raises(KernelError, match="start32 slot"):
        _patch(make_kernel(start32=0))


def test_build_vmlinux_writes_file(tmp_path):
    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel())
    res = build_vmlinux(src, tmp_path / "kernel.elf")
    assert (tmp_path / "kernel.elf").read_bytes() == _patch(make_kernel())[0]
    assert res.output == str(tmp_path / "kernel.elf")
    with pytest.raises(MissingInputError):
        build_vmlinux(tmp_path / "missing.elf", tmp_path / "x.elf")
    assert not (tmp_path / "x.elf").exists()


def test_start64_handover_needs_static_ident_pt_l4():
    data = bytearray(make_kernel())
    data[0x2000:0x2008] = bytes(8)           # ident_pt_l4[0] empty (a bss-built table)
    with pytest.raises(KernelError) as exc:
        _patch(bytes(data), handover="start64")
    assert str(exc.value) == ("kernel.elf: ident_pt_l4 at physical 0x202000 is not an "
                              "initialised page table in the file (bss or empty), expected "
                              "OSv's static ident_pt_l4 for --handover start64, or "
                              "--handover start32")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(image_pages=st.integers(3, 12), bss=st.integers(0, 0x40000), extra=st.integers(0, 32),
       pvh=st.booleans(), linux=st.booleans())
def test_patch_changes_only_allowed_bytes(image_pages, bss, extra, pvh, linux):
    """For any kernel shape: only e_entry, e_phnum, the new phdr slots and the appended
    page-aligned stub change; pyelftools reads the new segments back at the chosen places."""
    from elftools.elf.elffile import ELFFile

    orig = make_kernel(image_size=image_pages * 0x1000, bss=bss, extra_phdrs=extra,
                       entry=START32 if linux else 0x201100)
    out, res = _patch(orig, pvh=pvh)
    if not linux and not pvh:                 # the kernel already has its Linux entry
        assert out == orig and res.added == [] and res.kept == ["linux64"]
        return
    phnum = 1 + extra
    slots = (0x40 + phnum * 56, 0x40 + (phnum + 1 + pvh) * 56)
    allowed = [(0x18, 0x20), (0x38, 0x3A), slots]
    for start, end in _diff_ranges(orig, out[:len(orig)]):
        assert any(a <= start and end <= b for a, b in allowed), (hex(start), hex(end))
    assert out[len(orig):len(out) - 0x500] == bytes(len(out) - 0x500 - len(orig))
    assert len(out) % 0x1000 == 0x500
    elf = ELFFile(io.BytesIO(out))
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    stub = loads[-1]
    assert (stub["p_paddr"], stub["p_offset"], stub["p_filesz"]) == (0x100000, len(out) - 0x500, 0x500)
    assert stub["p_vaddr"] >= 0x40200000 + image_pages * 0x1000 + bss   # above the image's vaddrs
    assert elf.header["e_entry"] == (0x100000 if linux else 0x201100)
    k = check_kernel(out)
    assert (k.pvh_entry == 0x100300) == pvh


def test_repatching_osvkits_output_keeps_or_regenerates_in_place():
    """osvkit's own output is recognised: patching it again keeps its entries (same bytes);
    --replace-entry regenerates the stub where it is; a --no-pvh output gets the PVH note's
    program header and nothing else, ending byte-identical to a one-step patch.  (Before,
    each of these failed with "no room for the stub".)"""
    once, _ = _patch(make_kernel())
    again, res = _patch(once)
    assert again == once
    assert res.kept == ["linux64", "pvh"] and res.added == []
    assert (res.linux64_entry, res.pvh_entry) == (0x100000, 0x100300)
    replaced, res = _patch(once, replace_entry=True)
    assert replaced == once and res.added == ["linux64", "pvh"]
    no_pvh, _ = _patch(make_kernel(), pvh=False)
    both, res = _patch(no_pvh)
    assert res.kept == ["linux64"] and res.added == ["pvh"]
    assert both == once
    changed = _diff_ranges(no_pvh, both)
    assert changed[0] == (0x38, 0x39)                                  # e_phnum 2 -> 3
    assert all(0xB0 <= a and b <= 0xE8 for a, b in changed[1:])       # the new phdr slot
    assert struct.unpack_from("<IIQQQQQQ", both, 0xB0) == (
        4, 4, 0x42A0, 0x402042A0, 0x1002A0, 24, 24, 4)
    # a different handover rewrites only the stub segment's bytes (offset 0x4000, 0x500)
    s64, res = _patch(once, replace_entry=True, handover="start64")
    assert res.handover == "start64"
    assert [r for r in _diff_ranges(once, s64) if not (0x4000 <= r[0] and r[1] <= 0x4500)] == []
    assert s64[:0x4000] == once[:0x4000] and s64 != once
