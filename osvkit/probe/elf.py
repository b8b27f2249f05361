"""The probe's ELF64 container: the header, one PT_LOAD, and the section/symbol tables.

Symbols in ``.symtab`` carry *virtual* addresses (``VM_BASE`` + offset), as in OSv's
``loader.elf``; the code runs at the physical addresses (virtual - 0x40000000).  The tables
follow the PT_LOAD: .symtab, .strtab, .shstrtab, then the section headers (with ``size``,
the section headers end the file exactly at ``size``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..structs.elf import (EHDR_SIZE, EM_X86_64, ET_EXEC, EV_CURRENT, PF_R, PF_W, PF_X, PHDR_SIZE,
                           PT_LOAD, SHDR_SIZE, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS,
                           SHT_NULL, SHT_PROGBITS, SHT_STRTAB, SHT_SYMTAB, STB_GLOBAL,
                           SYM_SIZE, Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr, Elf64_Sym, st_info)
from .layout import BASE, BSS_SIZE, CODE_OFFSET, SLOT_OFFSET, VM_BASE, VM_SHIFT, align

SEGMENT_ALIGN = 0x1000

SHSTRTAB = b"\0.text\0.data\0.probe.payload\0.bss\0.symtab\0.strtab\0.shstrtab\0"
SECTIONS = ("", ".text", ".data", ".probe.payload", ".bss", ".symtab", ".strtab", ".shstrtab")
SHN = {name: i for i, name in enumerate(SECTIONS)}
SYMBOLS = ("start32", "start64", "ident_pt_l4", "probe_info", "probe_elf_entry")
"""Every symbol the probe may have, in .symtab order."""


@dataclass
class Symbol:
    value: int          # physical address
    section: str
    kind: int           # STT_FUNC or STT_OBJECT (osvkit.structs.elf)


@dataclass
class Image:
    """Where the parts of the PT_LOAD are (file offsets), and the entry point."""

    entry: int
    filesz: int
    code_end: int
    payload_off: int
    bss_off: int

    @property
    def memsz(self) -> int:
        return self.bss_off + BSS_SIZE


def _shname(name: str) -> int:
    return SHSTRTAB.index(b"\0" + name.encode() + b"\0") + 1 if name else 0


def tail_size(nsyms: int) -> int:
    """Bytes after the PT_LOAD for ``nsyms`` symbols: tables, padding, section headers."""
    strtab = 1 + sum(len(s) + 1 for s in SYMBOLS)
    size = (1 + nsyms) * SYM_SIZE + strtab + len(SHSTRTAB)
    return align(size, 8) + len(SECTIONS) * SHDR_SIZE


def write_headers(image: bytearray, img: Image, shoff: int) -> None:
    """The ELF header and the program header, at the start of ``image``."""
    image[0:EHDR_SIZE] = Elf64_Ehdr.build(dict(
        e_ident=dict(), e_type=ET_EXEC, e_machine=EM_X86_64,
        e_version=EV_CURRENT, e_entry=img.entry, e_phoff=EHDR_SIZE, e_shoff=shoff, e_flags=0,
        e_ehsize=EHDR_SIZE, e_phentsize=PHDR_SIZE, e_phnum=1, e_shentsize=SHDR_SIZE,
        e_shnum=len(SECTIONS), e_shstrndx=SHN[".shstrtab"]))
    image[EHDR_SIZE:EHDR_SIZE + PHDR_SIZE] = Elf64_Phdr.build(dict(
        p_type=PT_LOAD, p_flags=PF_R | PF_W | PF_X, p_offset=0, p_vaddr=VM_BASE, p_paddr=BASE,
        p_filesz=img.filesz, p_memsz=img.memsz, p_align=SEGMENT_ALIGN))


def symbol_tables(symbols: dict[str, Symbol]) -> tuple[bytes, bytes]:
    """``.symtab`` and ``.strtab`` for ``symbols`` (names from :data:`SYMBOLS`)."""
    syms = [Elf64_Sym.build(dict(st_name=0, st_info=0, st_other=0, st_shndx=0, st_value=0,
                                 st_size=0))]
    strtab = bytearray(b"\0")
    for name in SYMBOLS:
        if name not in symbols:
            continue
        sym = symbols[name]
        st_name = len(strtab)
        strtab += name.encode() + b"\0"
        syms.append(Elf64_Sym.build(dict(st_name=st_name, st_info=st_info(STB_GLOBAL, sym.kind),
                                         st_other=0, st_shndx=SHN[sym.section],
                                         st_value=sym.value + VM_SHIFT, st_size=0)))
    return b"".join(syms), bytes(strtab)


def _section(name: str, sh_type: int, flags: int, offset: int, size: int, *, addr: bool,
             addralign: int, link: int = 0, info: int = 0, entsize: int = 0) -> dict:
    return dict(sh_name=_shname(name), sh_type=sh_type, sh_flags=flags,
                sh_addr=VM_BASE + offset if addr else 0, sh_offset=offset, sh_size=size,
                sh_link=link, sh_info=info, sh_addralign=addralign, sh_entsize=entsize)


def section_headers(img: Image, *, symtab: bytes, strtab: bytes, size: int | None) -> list[dict]:
    """The section headers; the tables follow the PT_LOAD in the order named."""
    symtab_off = img.filesz
    strtab_off = symtab_off + len(symtab)
    shstr_off = strtab_off + len(strtab)
    return [
        dict(sh_name=0, sh_type=SHT_NULL, sh_flags=0, sh_addr=0, sh_offset=0, sh_size=0,
             sh_link=0, sh_info=0, sh_addralign=0, sh_entsize=0),
        _section(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, CODE_OFFSET,
                 img.code_end - CODE_OFFSET, addr=True, addralign=16),
        _section(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, SLOT_OFFSET,
                 CODE_OFFSET - SLOT_OFFSET, addr=True, addralign=8),
        _section(".probe.payload", SHT_PROGBITS, SHF_ALLOC, img.payload_off,
                 img.filesz - img.payload_off, addr=True, addralign=16),
        dict(_section(".bss", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, img.bss_off, BSS_SIZE,
                      addr=True, addralign=SEGMENT_ALIGN),
             sh_offset=img.bss_off if size is None else img.filesz),
        _section(".symtab", SHT_SYMTAB, 0, symtab_off, len(symtab), addr=False, addralign=8,
                 link=SHN[".strtab"], info=1, entsize=SYM_SIZE),
        _section(".strtab", SHT_STRTAB, 0, strtab_off, len(strtab), addr=False, addralign=1),
        _section(".shstrtab", SHT_STRTAB, 0, shstr_off, len(SHSTRTAB), addr=False, addralign=1),
    ]


def section_table_offset(img: Image, symtab: bytes, strtab: bytes, size: int | None) -> int:
    """e_shoff: after the tables (8-aligned), or so that the file ends at ``size``."""
    if size is not None:
        return size - len(SECTIONS) * SHDR_SIZE
    return align(img.filesz + len(symtab) + len(strtab) + len(SHSTRTAB), 8)


def append_tail(image: bytes, img: Image, symtab: bytes, strtab: bytes, shoff: int,
                shdrs: list[dict]) -> bytes:
    """The file: ``image`` (the PT_LOAD), the tables, padding, the section headers."""
    out = bytearray(image)
    out += bytes(img.filesz - len(out))
    out += symtab + strtab + SHSTRTAB
    out += bytes(shoff - len(out))
    out += b"".join(Elf64_Shdr.build(s) for s in shdrs)
    return bytes(out)
