"""osvkit.structs.elf: exact bytes from the System V ABI, round trips, and a file laid out
with the schemas read back by pyelftools."""

from __future__ import annotations

import io

import pytest
from elftools.elf.elffile import ELFFile

from osvkit.errors import FormatError, LayoutError
from osvkit.structs import base, elf


def test_sizes_and_offsets_are_the_abi_s():
    assert (elf.EHDR_SIZE, elf.PHDR_SIZE, elf.SHDR_SIZE, elf.NHDR_SIZE, elf.SYM_SIZE,
            elf.DYN_SIZE, elf.RELA_SIZE) == (64, 56, 64, 12, 24, 16, 24)
    o = elf.EHDR_OFFSETS
    assert (o["e_ident.EI_CLASS"], o["e_ident.EI_DATA"], o["e_type"], o["e_machine"],
            o["e_version"], o["e_entry"], o["e_phoff"], o["e_shoff"], o["e_flags"],
            o["e_ehsize"], o["e_phentsize"], o["e_phnum"], o["e_shentsize"], o["e_shnum"],
            o["e_shstrndx"]) == (4, 5, 0x10, 0x12, 0x14, 0x18, 0x20, 0x28, 0x30, 0x34, 0x36,
                                 0x38, 0x3A, 0x3C, 0x3E)
    p = elf.PHDR_OFFSETS
    assert [p[k] for k in ("p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz",
                           "p_memsz", "p_align")] == [0, 4, 8, 0x10, 0x18, 0x20, 0x28, 0x30]
    s = elf.SHDR_OFFSETS
    assert [s[k] for k in ("sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size",
                           "sh_link", "sh_info", "sh_addralign", "sh_entsize")] == \
        [0, 4, 8, 0x10, 0x18, 0x20, 0x28, 0x2C, 0x30, 0x38]


EHDR = dict(e_ident={}, e_type=elf.ET_EXEC, e_machine=elf.EM_X86_64, e_entry=0x200000,
            e_phoff=64, e_shoff=0x1000, e_phnum=2, e_shnum=5, e_shstrndx=4)


def test_ehdr_exact_bytes_and_round_trip():
    data = base.build(elf.Elf64_Ehdr, EHDR)
    assert data == (b"\x7fELF\x02\x01\x01\x00" + bytes(8)
                    + bytes.fromhex("0200 3e00 01000000") + (0x200000).to_bytes(8, "little")
                    + (64).to_bytes(8, "little") + (0x1000).to_bytes(8, "little")
                    + bytes(4) + bytes.fromhex("4000 3800 0200 4000 0500 0400"))
    parsed = base.parse(elf.Elf64_Ehdr, data, what="ELF header")
    assert parsed.e_phentsize == 56 and parsed.e_entry == 0x200000
    assert base.build(elf.Elf64_Ehdr, parsed) == data


def test_ehdr_refuses_elf32_and_big_endian_with_one_line():
    data = bytearray(base.build(elf.Elf64_Ehdr, EHDR))
    data[elf.EHDR_OFFSETS["e_ident.EI_CLASS"]] = elf.ELFCLASS32
    with pytest.raises(FormatError) as exc:
        base.parse(elf.Elf64_Ehdr, data, what="ELF header", path="k.elf")
    assert str(exc.value) == ("k.elf: ELF header at 0x0: field e_ident.EI_CLASS (0x4) is 0x1, "
                              "expected 0x2")
    with pytest.raises(FormatError, match="truncated: 10 bytes"):
        base.parse(elf.Elf64_Ehdr, bytes(data[:10]), what="ELF header")


def test_phdr_shdr_sym_dyn_rela_exact_bytes():
    ph = dict(p_type=elf.PT_LOAD, p_flags=elf.PF_R | elf.PF_X, p_offset=0, p_vaddr=0x200000,
              p_paddr=0x200000, p_filesz=0x1234, p_memsz=0x2000, p_align=0x1000)
    b = base.build(elf.Elf64_Phdr, ph)
    assert b == (bytes.fromhex("01000000 05000000") + bytes(8)
                 + (0x200000).to_bytes(8, "little") * 2 + (0x1234).to_bytes(8, "little")
                 + (0x2000).to_bytes(8, "little") + (0x1000).to_bytes(8, "little"))
    assert base.build(elf.Elf64_Phdr, base.parse(elf.Elf64_Phdr, b, what="phdr")) == b
    sym = dict(st_name=7, st_info=elf.st_info(elf.STB_GLOBAL, elf.STT_FUNC), st_shndx=1,
               st_value=0x200800, st_size=16)
    b = base.build(elf.Elf64_Sym, sym)
    assert b == bytes.fromhex("07000000 12 00 0100") + (0x200800).to_bytes(8, "little") + \
        (16).to_bytes(8, "little")
    parsed = base.parse(elf.Elf64_Sym, b, what="symbol")
    assert (elf.st_bind(parsed.st_info), elf.st_type(parsed.st_info)) == (1, 2)
    assert base.build(elf.Elf64_Dyn, dict(d_tag=-1, d_val=3)) == b"\xff" * 8 + b"\x03" + bytes(7)
    assert base.build(elf.Elf64_Rela, dict(r_offset=8, r_info=0x100000008, r_addend=-8)) == (
        (8).to_bytes(8, "little") + (0x100000008).to_bytes(8, "little") + b"\xf8" + b"\xff" * 7)
    b = base.build(elf.Elf64_Shdr, dict(sh_name=1, sh_type=elf.SHT_SYMTAB, sh_flags=0, sh_addr=0,
                                        sh_offset=0x40, sh_size=48, sh_link=3, sh_info=1,
                                        sh_addralign=8, sh_entsize=24))
    assert b[4:8] == b"\x02\0\0\0" and b[0x28:0x30] == b"\x03\0\0\0\x01\0\0\0"
    assert len(b) == 64


def test_note_pads_name_and_desc_and_rebuilds_sizes():
    b = base.build(elf.Elf64_Note, dict(n_type=elf.XEN_ELFNOTE_PHYS32_ENTRY, name=b"Xen\0",
                                        desc=(0x200100).to_bytes(8, "little")))
    assert b == bytes.fromhex("04000000 08000000 12000000") + b"Xen\0" + \
        (0x200100).to_bytes(8, "little")
    b = base.build(elf.Elf64_Note, dict(n_type=elf.NT_GNU_BUILD_ID, name=b"GNU\0x", desc=b"\1"))
    assert b == bytes.fromhex("05000000 01000000 03000000") + b"GNU\0x\0\0\0" + b"\1\0\0\0"
    assert len(b) == elf.note_size(5, 1)
    n = base.parse(elf.Elf64_Note, b, what="note")
    assert (n.name, n.desc) == (b"GNU\0x", b"\1")
    assert base.build(elf.Elf64_Note, n) == b
    h = base.parse(elf.Elf64_Nhdr, b, what="note header")
    assert (h.n_namesz, h.n_descsz, h.n_type) == (5, 1, 3)


def test_a_value_that_does_not_fit_is_a_layout_error():
    with pytest.raises(LayoutError, match="e_phnum"):
        base.build(elf.Elf64_Ehdr, dict(EHDR, e_phnum=70000))


def _strtab(names):
    blob, index = b"\0", {}
    for n in names:
        index[n] = len(blob)
        blob += n.encode() + b"\0"
    return blob, index


def build_elf(symbols: dict[str, int], note: bytes, text: bytes = b"\xf4" * 16) -> bytes:
    """An ELF64 executable laid out with the schemas only: one PT_LOAD, one PT_NOTE,
    sections .text, .note, .symtab, .strtab, .shstrtab."""
    shstr, shidx = _strtab([".text", ".note", ".symtab", ".strtab", ".shstrtab"])
    strtab, stridx = _strtab(list(symbols))
    base_addr = 0x400000
    phoff = elf.EHDR_SIZE
    text_off = phoff + 2 * elf.PHDR_SIZE
    note_off = text_off + len(text)
    syms = base.build(elf.Elf64_Sym, dict(st_name=0, st_info=0, st_shndx=0, st_value=0,
                                          st_size=0))
    for name, value in symbols.items():
        syms += base.build(elf.Elf64_Sym, dict(
            st_name=stridx[name], st_info=elf.st_info(elf.STB_GLOBAL, elf.STT_FUNC),
            st_shndx=1, st_value=value, st_size=0))
    sym_off = note_off + len(note)
    sym_off += -sym_off % 8
    str_off = sym_off + len(syms)
    shstr_off = str_off + len(strtab)
    shoff = shstr_off + len(shstr)
    shoff += -shoff % 8
    body = bytearray(shoff)
    body[text_off:note_off] = text
    body[note_off:note_off + len(note)] = note
    body[sym_off:str_off] = syms
    body[str_off:shstr_off] = strtab
    body[shstr_off:shstr_off + len(shstr)] = shstr
    body[:elf.EHDR_SIZE] = base.build(elf.Elf64_Ehdr, dict(
        e_ident={}, e_type=elf.ET_EXEC, e_machine=elf.EM_X86_64, e_entry=base_addr + text_off,
        e_phoff=phoff, e_shoff=shoff, e_phnum=2, e_shnum=6, e_shstrndx=5))
    body[phoff:text_off] = base.build(elf.Elf64_Phdr, dict(
        p_type=elf.PT_LOAD, p_flags=elf.PF_R | elf.PF_X, p_offset=0, p_vaddr=base_addr,
        p_paddr=base_addr, p_filesz=note_off + len(note), p_memsz=note_off + len(note),
        p_align=0x1000)) + base.build(elf.Elf64_Phdr, dict(
            p_type=elf.PT_NOTE, p_flags=elf.PF_R, p_offset=note_off,
            p_vaddr=base_addr + note_off, p_paddr=base_addr + note_off, p_filesz=len(note),
            p_memsz=len(note), p_align=4))

    def sh(name, type_, off, size, **kw):
        return base.build(elf.Elf64_Shdr, dict(
            dict(sh_name=shidx[name] if name else 0, sh_type=type_, sh_flags=0, sh_addr=0,
                 sh_offset=off, sh_size=size, sh_link=0, sh_info=0, sh_addralign=1,
                 sh_entsize=0), **kw))
    return bytes(body) + sh(None, elf.SHT_NULL, 0, 0) + b"".join([
        sh(".text", elf.SHT_PROGBITS, text_off, len(text), sh_flags=elf.SHF_ALLOC
           | elf.SHF_EXECINSTR, sh_addr=base_addr + text_off),
        sh(".note", elf.SHT_NOTE, note_off, len(note), sh_flags=elf.SHF_ALLOC, sh_addralign=4),
        sh(".symtab", elf.SHT_SYMTAB, sym_off, len(syms), sh_link=4, sh_info=1,
           sh_addralign=8, sh_entsize=elf.SYM_SIZE),
        sh(".strtab", elf.SHT_STRTAB, str_off, len(strtab)),
        sh(".shstrtab", elf.SHT_STRTAB, shstr_off, len(shstr)),
    ])


def test_a_file_laid_out_with_the_schemas_reads_back_with_pyelftools():
    note = base.build(elf.Elf64_Note, dict(n_type=elf.XEN_ELFNOTE_PHYS32_ENTRY, name=b"Xen\0",
                                           desc=(0x400078).to_bytes(8, "little")))
    data = build_elf({"start32": 0x400078, "start64": 0x400080}, note)
    f = ELFFile(io.BytesIO(data))
    assert f.elfclass == 64 and f.little_endian
    assert f.header["e_machine"] == "EM_X86_64" and f.header["e_type"] == "ET_EXEC"
    assert f.header["e_entry"] == 0x400000 + elf.EHDR_SIZE + 2 * elf.PHDR_SIZE
    segs = list(f.iter_segments())
    assert [s["p_type"] for s in segs] == ["PT_LOAD", "PT_NOTE"]
    (n,) = list(segs[1].iter_notes())
    assert n["n_name"] == "Xen" and n["n_type"] == 18 and n["n_descsz"] == 8
    symtab = f.get_section_by_name(".symtab")
    assert symtab["sh_type"] == "SHT_SYMTAB"
    assert symtab.get_symbol_by_name("start64")[0]["st_value"] == 0x400080
    assert symtab.get_symbol_by_name("start32")[0]["st_info"]["bind"] == "STB_GLOBAL"
    assert [s.name for s in f.iter_sections()] == ["", ".text", ".note", ".symtab", ".strtab",
                                                   ".shstrtab"]
    # and the schemas read back what they wrote
    hdr = base.parse(elf.Elf64_Ehdr, data, what="ELF header")
    ph = base.parse(elf.Elf64_Phdr, data, what="phdr",
                    offset=hdr.e_phoff + elf.PHDR_SIZE)
    assert (ph.p_type, ph.p_filesz) == (elf.PT_NOTE, len(note))
