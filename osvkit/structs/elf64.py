"""The parts of a 64-bit little-endian ELF file a dynamic linker reads (``<elf.h>``): the file
header, the program headers and the ``PT_DYNAMIC`` entries.

:func:`compiled` gives construct's compiled parsers for the per-file hot path (a program and
its libraries are a few dozen files, each with a dozen program headers and a few dozen
dynamic entries)."""

from __future__ import annotations

from functools import lru_cache

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Int64sl, Int64ul, Struct

EHDR_SIZE = 64
PHDR_SIZE = 56
DYN_SIZE = 16

ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
EM_NAMES = {3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390",
            40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV"}

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
PT_NAMES = {PT_LOAD: "PT_LOAD", PT_DYNAMIC: "PT_DYNAMIC", PT_INTERP: "PT_INTERP"}

DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29

elf64_ehdr_c = Struct(
    "magic" / Const(b"\x7fELF"),
    "ei_class" / Int8ul,
    "ei_data" / Int8ul,
    "ei_version" / Int8ul,
    "ei_osabi" / Int8ul,
    "ei_abiversion" / Int8ul,
    "ei_pad" / Bytes(7),
    "e_type" / Int16ul,
    "e_machine" / Int16ul,
    "e_version" / Int32ul,
    "e_entry" / Int64ul,
    "e_phoff" / Int64ul,
    "e_shoff" / Int64ul,
    "e_flags" / Int32ul,
    "e_ehsize" / Int16ul,
    "e_phentsize" / Int16ul,
    "e_phnum" / Int16ul,
    "e_shentsize" / Int16ul,
    "e_shnum" / Int16ul,
    "e_shstrndx" / Int16ul,
)

elf64_phdr_c = Struct(
    "p_type" / Int32ul,
    "p_flags" / Int32ul,
    "p_offset" / Int64ul,
    "p_vaddr" / Int64ul,
    "p_paddr" / Int64ul,
    "p_filesz" / Int64ul,
    "p_memsz" / Int64ul,
    "p_align" / Int64ul,
)

elf64_dyn_c = Struct(
    "d_tag" / Int64sl,
    "d_val" / Int64ul,
)


@lru_cache(maxsize=None)
def compiled():
    """``(ehdr, phdr, dyn)`` compiled parsers (built once per process)."""
    return elf64_ehdr_c.compile(), elf64_phdr_c.compile(), elf64_dyn_c.compile()
