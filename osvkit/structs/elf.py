"""ELF64 little-endian (x86-64) structures, with the System V ABI's field names.

Organised like pyelftools' ``ELFStructs``: the scalar types first (``Elf64_Addr``,
``Elf64_Off``, ``Elf64_Half``, ``Elf64_Word``, ``Elf64_Sword``, ``Elf64_Xword``,
``Elf64_Sxword``), then the file header (``Elf64_Ehdr`` with its ``e_ident`` sub-structure),
program header (``Elf64_Phdr``), section header (``Elf64_Shdr``), note header
(``Elf64_Nhdr``) and a whole note (``Elf64_Note``: header, name and descriptor, each padded
to 4 bytes), dynamic entry (``Elf64_Dyn``), symbol (``Elf64_Sym``) and relocation with
addend (``Elf64_Rela``).  The enumerations osvkit uses are plain integer constants.

osvkit reads ELF with pyelftools and writes it (LIEF for rewriting, these schemas for the
bytes it lays out itself); every offset and size of these structures comes from here, e.g.
``EHDR_OFFSETS["e_phnum"]`` (0x38) or ``PHDR_SIZE`` (56).  Parse and build through
:func:`osvkit.structs.base.parse` / :func:`~osvkit.structs.base.build` for one-line errors.
"""

from __future__ import annotations

from construct import (Aligned, Bytes, Const, Default, Int8ul, Int16ul, Int32sl, Int32ul,
                       Int64sl, Int64ul, Padding, Rebuild, Struct, len_, this)

from .base import field_offsets

# -- scalar types (gABI names) -------------------------------------------------------------
Elf64_Addr = Int64ul
Elf64_Off = Int64ul
Elf64_Half = Int16ul
Elf64_Word = Int32ul
Elf64_Sword = Int32sl
Elf64_Xword = Int64ul
Elf64_Sxword = Int64sl

# -- e_ident ---------------------------------------------------------------------------------
ELFMAG = b"\x7fELF"
EI_NIDENT = 16
ELFCLASSNONE, ELFCLASS32, ELFCLASS64 = 0, 1, 2
ELFDATANONE, ELFDATA2LSB, ELFDATA2MSB = 0, 1, 2
EV_NONE, EV_CURRENT = 0, 1
ELFOSABI_SYSV = 0

# -- e_type / e_machine -----------------------------------------------------------------------
ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE = 0, 1, 2, 3, 4
EM_386, EM_X86_64 = 3, 62

# -- p_type / p_flags -------------------------------------------------------------------------
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_SHLIB, PT_PHDR, PT_TLS = range(8)
PT_GNU_EH_FRAME, PT_GNU_STACK, PT_GNU_RELRO = 0x6474E550, 0x6474E551, 0x6474E552
PF_X, PF_W, PF_R = 1, 2, 4

# -- sh_type / sh_flags / special section indices ---------------------------------------------
(SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_HASH, SHT_DYNAMIC, SHT_NOTE,
 SHT_NOBITS, SHT_REL, SHT_SHLIB, SHT_DYNSYM) = range(12)
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2

# -- symbols ----------------------------------------------------------------------------------
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4

# -- dynamic tags -----------------------------------------------------------------------------
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SYMTAB, DT_RELA, DT_RELASZ, DT_RELAENT = 0, 1, 5, 6, 7, 8, 9
DT_STRSZ, DT_SYMENT = 10, 11

# -- notes ------------------------------------------------------------------------------------
NT_GNU_BUILD_ID = 3
XEN_ELFNOTE_PHYS32_ENTRY = 18
"""The PVH entry note (owner ``"Xen"``): the 32-bit physical entry address."""
NOTE_ALIGN = 4


def st_info(bind: int, type_: int) -> int:
    """``ELF64_ST_INFO``: binding in the high nibble, type in the low one."""
    return (bind << 4) | (type_ & 0xF)


def st_bind(info: int) -> int:
    return info >> 4


def st_type(info: int) -> int:
    return info & 0xF


ElfIdent = Struct(
    "EI_MAG" / Const(ELFMAG),
    "EI_CLASS" / Int8ul,
    "EI_DATA" / Int8ul,
    "EI_VERSION" / Int8ul,
    "EI_OSABI" / Int8ul,
    "EI_ABIVERSION" / Int8ul,
    Padding(EI_NIDENT - 9),
)
"""``e_ident`` of any ELF file (class and data read, not checked): for telling files apart."""

Elf64_Ident = Struct(
    "EI_MAG" / Const(ELFMAG),
    "EI_CLASS" / Const(ELFCLASS64, Int8ul),
    "EI_DATA" / Const(ELFDATA2LSB, Int8ul),
    "EI_VERSION" / Default(Int8ul, EV_CURRENT),
    "EI_OSABI" / Default(Int8ul, ELFOSABI_SYSV),
    "EI_ABIVERSION" / Default(Int8ul, 0),
    Padding(EI_NIDENT - 9),
)
"""``e_ident``: parsing refuses anything but a little-endian ELF64 file."""

Elf64_Ehdr = Struct(
    "e_ident" / Elf64_Ident,
    "e_type" / Elf64_Half,
    "e_machine" / Elf64_Half,
    "e_version" / Default(Elf64_Word, EV_CURRENT),
    "e_entry" / Elf64_Addr,
    "e_phoff" / Elf64_Off,
    "e_shoff" / Elf64_Off,
    "e_flags" / Default(Elf64_Word, 0),
    "e_ehsize" / Default(Elf64_Half, 64),
    "e_phentsize" / Default(Elf64_Half, 56),
    "e_phnum" / Elf64_Half,
    "e_shentsize" / Default(Elf64_Half, 64),
    "e_shnum" / Elf64_Half,
    "e_shstrndx" / Elf64_Half,
)

Elf64_Phdr = Struct(
    "p_type" / Elf64_Word,
    "p_flags" / Elf64_Word,
    "p_offset" / Elf64_Off,
    "p_vaddr" / Elf64_Addr,
    "p_paddr" / Elf64_Addr,
    "p_filesz" / Elf64_Xword,
    "p_memsz" / Elf64_Xword,
    "p_align" / Elf64_Xword,
)

Elf64_Shdr = Struct(
    "sh_name" / Elf64_Word,
    "sh_type" / Elf64_Word,
    "sh_flags" / Elf64_Xword,
    "sh_addr" / Elf64_Addr,
    "sh_offset" / Elf64_Off,
    "sh_size" / Elf64_Xword,
    "sh_link" / Elf64_Word,
    "sh_info" / Elf64_Word,
    "sh_addralign" / Elf64_Xword,
    "sh_entsize" / Elf64_Xword,
)

Elf64_Nhdr = Struct(
    "n_namesz" / Elf64_Word,
    "n_descsz" / Elf64_Word,
    "n_type" / Elf64_Word,
)

Elf64_Note = Struct(
    "n_namesz" / Rebuild(Elf64_Word, len_(this.name)),
    "n_descsz" / Rebuild(Elf64_Word, len_(this.desc)),
    "n_type" / Elf64_Word,
    "name" / Aligned(NOTE_ALIGN, Bytes(this.n_namesz)),
    "desc" / Aligned(NOTE_ALIGN, Bytes(this.n_descsz)),
)
"""One note: ``name`` includes its terminating NUL (``b"Xen\\0"``); name and descriptor are
each padded with zeros to a multiple of 4 bytes; the sizes are rebuilt from the bytes."""

Elf64_Dyn = Struct(
    "d_tag" / Elf64_Sxword,
    "d_val" / Elf64_Xword,
)

Elf64_Sym = Struct(
    "st_name" / Elf64_Word,
    "st_info" / Int8ul,
    "st_other" / Default(Int8ul, 0),
    "st_shndx" / Elf64_Half,
    "st_value" / Elf64_Addr,
    "st_size" / Elf64_Xword,
)

Elf64_Rela = Struct(
    "r_offset" / Elf64_Addr,
    "r_info" / Elf64_Xword,
    "r_addend" / Elf64_Sxword,
)

EHDR_SIZE = Elf64_Ehdr.sizeof()
PHDR_SIZE = Elf64_Phdr.sizeof()
SHDR_SIZE = Elf64_Shdr.sizeof()
NHDR_SIZE = Elf64_Nhdr.sizeof()
DYN_SIZE = Elf64_Dyn.sizeof()
SYM_SIZE = Elf64_Sym.sizeof()
RELA_SIZE = Elf64_Rela.sizeof()

EHDR_OFFSETS = field_offsets(Elf64_Ehdr)
"""``{"e_ident.EI_CLASS": 4, "e_entry": 0x18, "e_phoff": 0x20, "e_phnum": 0x38, ...}``"""
PHDR_OFFSETS = field_offsets(Elf64_Phdr)
SHDR_OFFSETS = field_offsets(Elf64_Shdr)


def note_size(namesz: int, descsz: int) -> int:
    """Bytes one note takes: the header plus name and descriptor padded to 4."""
    pad = NOTE_ALIGN - 1
    return NHDR_SIZE + ((namesz + pad) & ~pad) + ((descsz + pad) & ~pad)
