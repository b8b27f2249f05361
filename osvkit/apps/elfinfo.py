"""What the dynamic linker needs to know about one ELF file, read with pyelftools.

:func:`read_elf_info` checks that the file is an ELF object OSv can load for the kernel's
machine (64-bit, little-endian, an executable or a shared object) and returns its
``DT_NEEDED`` names, ``DT_SONAME``, ``DT_RPATH``, ``DT_RUNPATH`` and ``PT_INTERP``.  Anything
else (a script, a 32-bit or foreign-machine ELF, a relocatable object, a truncated file) is a
one-line :class:`~osvkit.errors.FormatError` saying what the file is and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import FormatError, MissingInputError

ELF_MAGIC = b"\x7fELF"
ELF64_HEADER_SIZE = 64
EI_CLASS, EI_DATA = 4, 5
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1

MACHINE_NAMES = {"EM_X86_64": "x86-64", "EM_AARCH64": "aarch64", "EM_386": "i386",
                 "EM_ARM": "32-bit ARM", "EM_RISCV": "RISC-V", "EM_PPC64": "ppc64",
                 "EM_S390": "s390"}
TYPE_NAMES = {"ET_REL": "a relocatable object (.o)", "ET_CORE": "a core dump",
              "ET_NONE": "an ELF file of no type"}


def expected_for(machine: str) -> str:
    return f"a 64-bit {MACHINE_NAMES.get(machine, machine)} ELF executable or shared object"


@dataclass
class ElfInfo:
    path: str
    machine: str
    type: str                       # ET_EXEC or ET_DYN
    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    rpath: list[str] | None = None  # DT_RPATH entries (None: no DT_RPATH)
    runpath: list[str] | None = None
    interp: str | None = None

    @property
    def static(self) -> bool:
        """No PT_INTERP and nothing needed: a static executable (or a self-contained object)."""
        return self.interp is None and not self.needed


def _sniff(path: str, head: bytes, machine: str) -> None:
    exp = expected_for(machine)
    if not head:
        raise FormatError("empty file", path=path, expected=exp)
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")[:60]
        raise FormatError(f"a script (#!{line}), not an ELF file", path=path,
                          expected=f"{exp} (give the interpreter with --app and the "
                                   "script with --add)")
    if not head.startswith(ELF_MAGIC):
        raise FormatError(f"not an ELF file (starts with {head[:4]!r})", path=path, expected=exp)
    if len(head) <= EI_DATA:
        raise FormatError(f"truncated ELF header: {len(head)} bytes", path=path, expected=exp)
    if head[EI_CLASS] == ELFCLASS32:
        raise FormatError("a 32-bit ELF file (ELFCLASS32)", path=path,
                          expected=f"{exp}: OSv loads 64-bit programs only")
    if head[EI_CLASS] != ELFCLASS64:
        raise FormatError(f"bad ELF class {head[EI_CLASS]}", path=path, expected=exp)
    if head[EI_DATA] != ELFDATA2LSB:
        raise FormatError("a big-endian ELF file", path=path, expected=exp)
    if len(head) < ELF64_HEADER_SIZE:
        raise FormatError(f"truncated ELF header: {len(head)} bytes", path=path,
                          expected=f"{ELF64_HEADER_SIZE} bytes ({exp})")


def is_elf(path: str | os.PathLike) -> bool:
    """True when the file starts with the ELF magic (unreadable files: False)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def read_elf_info(path: str | os.PathLike, machine: str = "EM_X86_64") -> ElfInfo:
    """Read ``path``'s dynamic information; raise FormatError unless it is a 64-bit
    little-endian ``machine`` executable or shared object."""
    from elftools.common.exceptions import ELFError
    from elftools.construct import ConstructError
    from elftools.elf.elffile import ELFFile

    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise MissingInputError("no such file", path=path, expected=expected_for(machine)) from None
    except IsADirectoryError:
        raise FormatError("a directory", path=path, expected=expected_for(machine)) from None
    except OSError as exc:
        raise MissingInputError(f"cannot read: {exc.strerror}", path=path) from None
    with f:
        head = f.read(ELF64_HEADER_SIZE)
        _sniff(path, head, machine)
        size = os.fstat(f.fileno()).st_size
        try:
            elf = ELFFile(f)
            return _read(elf, path, size, machine)
        except (ELFError, ConstructError, ValueError, IndexError, KeyError, TypeError,
                OverflowError, UnicodeError) as exc:
            what = " ".join(str(exc).split()) or type(exc).__name__
            raise FormatError(f"damaged ELF file ({what[:100]})", path=path,
                              expected=expected_for(machine)) from None


def _read(elf, path: str, size: int, machine: str) -> ElfInfo:
    exp = expected_for(machine)
    got = elf["e_machine"]
    if got != machine:
        name = MACHINE_NAMES.get(got, str(got))
        raise FormatError(f"an ELF file for {name} ({got})", path=path, expected=exp)
    etype = elf["e_type"]
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise FormatError(f"{TYPE_NAMES.get(etype, etype)}", path=path, expected=exp)
    phend = elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]
    if phend > size:
        raise FormatError(f"truncated: the program headers end at {phend}, the file has "
                          f"{size} bytes", path=path, expected=exp)
    info = ElfInfo(path, got, etype)
    dynamic = None
    for i, seg in enumerate(elf.iter_segments()):
        end = seg["p_offset"] + seg["p_filesz"]
        if seg["p_type"] in ("PT_LOAD", "PT_DYNAMIC", "PT_INTERP") and end > size:
            raise FormatError(f"truncated: segment {i} ({seg['p_type']}) ends at {end}, "
                              f"the file has {size} bytes", path=path, expected=exp)
        if seg["p_type"] == "PT_INTERP":
            info.interp = seg.get_interp_name()
        elif seg["p_type"] == "PT_DYNAMIC":
            dynamic = seg
    if dynamic is None:
        return info
    for tag in dynamic.iter_tags():
        t = tag.entry.d_tag
        if t == "DT_NEEDED":
            info.needed.append(tag.needed)
        elif t == "DT_SONAME":
            info.soname = tag.soname
        elif t == "DT_RPATH":
            info.rpath = (info.rpath or []) + tag.rpath.split(":")
        elif t == "DT_RUNPATH":
            info.runpath = (info.runpath or []) + tag.runpath.split(":")
        elif t == "DT_NULL":
            break
    return info
