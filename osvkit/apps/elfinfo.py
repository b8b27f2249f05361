"""What the dynamic linker needs to know about one ELF file.

:func:`read_elf_info` checks that the file is an ELF object OSv can load for the kernel's
machine (64-bit, little-endian, an executable or a shared object) and returns its
``DT_NEEDED`` names, ``DT_SONAME``, ``DT_RPATH``, ``DT_RUNPATH`` and ``PT_INTERP``.  Anything
else (a script, a 32-bit or foreign-machine ELF, a relocatable object, a truncated file) is a
one-line :class:`~osvkit.errors.FormatError` saying what the file is and what was expected.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from ..errors import FormatError, MissingInputError
from ..structs import elf64 as E

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
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        return os.read(fd, 4) == ELF_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def read_elf_info(path: str | os.PathLike, machine: str = "EM_X86_64") -> ElfInfo:
    """Read ``path``'s dynamic information; raise FormatError unless it is a 64-bit
    little-endian ``machine`` executable or shared object.

    The file header, program headers and ``PT_DYNAMIC`` entries are parsed with the construct
    schemas of :mod:`osvkit.structs.elf64` (pyelftools, which the tests check this reader
    against, builds every section header and costs ten times as much per file)."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MissingInputError("no such file", path=path, expected=expected_for(machine)) from None
    except OSError as exc:
        raise MissingInputError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise FormatError("a directory", path=path, expected=expected_for(machine))
        head = os.pread(fd, ELF64_HEADER_SIZE, 0)
        _sniff(path, head, machine)
        return _read(fd, head, path, os.fstat(fd).st_size, machine)
    except OSError as exc:
        raise MissingInputError(f"cannot read: {exc.strerror}", path=path) from None
    finally:
        os.close(fd)


def _damaged(path: str, what: str, machine: str) -> FormatError:
    return FormatError(f"damaged ELF file ({what})", path=path, expected=expected_for(machine))


def _read(fd: int, head: bytes, path: str, size: int, machine: str) -> ElfInfo:
    ehdr_c, phdr_c, dyn_c = E.compiled()
    exp = expected_for(machine)
    eh = ehdr_c.parse(head)
    got = E.EM_NAMES.get(eh.e_machine, f"machine {eh.e_machine}")
    if got != machine:
        name = MACHINE_NAMES.get(got, got)
        raise FormatError(f"an ELF file for {name} ({got})", path=path, expected=exp)
    etype = E.ET_NAMES.get(eh.e_type, f"type {eh.e_type}")
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise FormatError(f"{TYPE_NAMES.get(etype, etype)}", path=path, expected=exp)
    if eh.e_phnum and eh.e_phentsize != E.PHDR_SIZE:
        raise _damaged(path, f"e_phentsize {eh.e_phentsize}, not {E.PHDR_SIZE}", machine)
    phend = eh.e_phoff + eh.e_phnum * E.PHDR_SIZE
    if phend > size:
        raise FormatError(f"truncated: the program headers end at {phend}, the file has "
                          f"{size} bytes", path=path, expected=exp)
    table = os.pread(fd, eh.e_phnum * E.PHDR_SIZE, eh.e_phoff)
    info = ElfInfo(path, got, etype)
    loads, dynamic = [], None
    for i in range(eh.e_phnum):
        ph = phdr_c.parse(table[i * E.PHDR_SIZE:(i + 1) * E.PHDR_SIZE])
        if ph.p_type in E.PT_NAMES and ph.p_offset + ph.p_filesz > size:
            raise FormatError(f"truncated: segment {i} ({E.PT_NAMES[ph.p_type]}) ends at "
                              f"{ph.p_offset + ph.p_filesz}, the file has {size} bytes",
                              path=path, expected=exp)
        if ph.p_type == E.PT_LOAD:
            loads.append(ph)
        elif ph.p_type == E.PT_INTERP:
            raw = os.pread(fd, ph.p_filesz, ph.p_offset)
            info.interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif ph.p_type == E.PT_DYNAMIC:
            dynamic = ph
    if dynamic is not None:
        _read_dynamic(fd, dynamic, loads, info, path, machine)
    return info


def _read_dynamic(fd, dynamic, loads, info: ElfInfo, path: str, machine: str) -> None:
    dyn_c = E.compiled()[2]
    raw = os.pread(fd, dynamic.p_filesz, dynamic.p_offset)
    entries = []
    for off in range(0, len(raw) - E.DYN_SIZE + 1, E.DYN_SIZE):
        d = dyn_c.parse(raw[off:off + E.DYN_SIZE])
        if d.d_tag == E.DT_NULL:
            break
        entries.append((d.d_tag, d.d_val))
    tags = dict(entries)
    wanted = [(t, v) for t, v in entries
              if t in (E.DT_NEEDED, E.DT_SONAME, E.DT_RPATH, E.DT_RUNPATH)]
    if not wanted:
        return
    if E.DT_STRTAB not in tags:
        raise _damaged(path, "DT_NEEDED/DT_SONAME/DT_RPATH without DT_STRTAB", machine)
    addr, strsz = tags[E.DT_STRTAB], tags.get(E.DT_STRSZ)
    seg = next((p for p in loads if p.p_vaddr <= addr < p.p_vaddr + p.p_filesz), None)
    if seg is None:
        raise _damaged(path, f"DT_STRTAB {addr:#x} is in no PT_LOAD segment", machine)
    start = addr - seg.p_vaddr + seg.p_offset
    limit = seg.p_offset + seg.p_filesz - start
    strtab = os.pread(fd, min(strsz, limit) if strsz is not None else limit, start)
    for tag, val in wanted:
        end = strtab.find(b"\0", val)
        if val >= len(strtab) or end < 0:
            raise _damaged(path, f"string offset {val:#x} is outside DT_STRTAB "
                                 f"({len(strtab)} bytes)", machine)
        text = strtab[val:end].decode("utf-8", "surrogateescape")
        if tag == E.DT_NEEDED:
            info.needed.append(text)
        elif tag == E.DT_SONAME:
            info.soname = text
        elif tag == E.DT_RPATH:
            info.rpath = (info.rpath or []) + text.split(":")
        else:
            info.runpath = (info.runpath or []) + text.split(":")
