"""Read a kernel ELF and check OSv's boot contract.

The contract, as every osvkit boot path relies on it:

* ELF64, little-endian, x86-64.
* The file is its own memory image at physical ``KERNEL_BASE_ADDR`` (0x200000): the PT_LOAD
  that holds the ELF header maps file offset X to physical 0x200000 + X.
* An 8-byte slot at file offset 0x800 holds the physical address of ``start32``, which lies
  inside that image.
* Everything the kernel loads lies below 1 GiB (the boot page tables map only that).

:func:`load_kernel` reads a file and returns a :class:`Kernel`; :func:`check_kernel` checks
bytes already in memory.  pyelftools does the reading.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field

from .. import layout
from ..errors import FormatError, KernelError
from ..fileio import read_input
from ..structs import base as schema
from ..structs import elf
from ..structs.elf import EM_X86_64, PT_LOAD, PT_NOTE, XEN_ELFNOTE_PHYS32_ENTRY  # noqa: F401

KNOWN_SYMBOLS = ("start32", "start64", "start32_from_64", "ident_pt_l4", "vmlinux_entry64",
                 "hvm_xen_start", "start32_from_vmlinuz")


@dataclass
class Segment:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int
    align: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("type", "offset", "vaddr", "paddr", "filesz",
                                              "memsz", "flags", "align")}


@dataclass
class Kernel:
    """A kernel ELF that keeps OSv's boot contract."""

    path: str | None
    data: bytes
    entry: int
    phoff: int
    phnum: int
    segments: list[Segment]
    start32: int
    notes: list[dict] = field(default_factory=list)
    symbols: dict[str, int] = field(default_factory=dict)

    @property
    def image_segment(self) -> Segment:
        """The PT_LOAD holding the ELF header, at physical 0x200000."""
        return next(s for s in self.segments if s.type == PT_LOAD and s.offset == 0)

    @property
    def load_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    @property
    def pvh_entry(self) -> int | None:
        """The PVH entry loaders use: linux-loader (Firecracker) and QEMU walk every PT_NOTE
        and keep the *last* XEN_ELFNOTE_PHYS32_ENTRY."""
        values = [n["value"] for n in self.notes if n["name"] == "Xen"
                  and n["type"] == XEN_ELFNOTE_PHYS32_ENTRY and n["value"] is not None]
        return values[-1] if values else None

    @property
    def phys_end(self) -> int:
        """First physical byte past everything the kernel loads (bss included)."""
        return max(s.paddr + s.memsz for s in self.load_segments)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "size": len(self.data),
            "entry": self.entry,
            "start32": self.start32,
            "pvh_entry": self.pvh_entry,
            "segments": [s.to_dict() for s in self.segments],
            "notes": self.notes,
            "symbols": self.symbols,
        }


def load_kernel(path: str | os.PathLike) -> Kernel:
    """Read ``path`` and check the boot contract; errors name the file."""
    data = read_input(path, "a kernel ELF file")
    try:
        return check_kernel(data, path=os.fspath(path))
    except KernelError as exc:
        raise exc.with_path(path)


def check_kernel(data: bytes, *, path: str | None = None) -> Kernel:
    """Check ``data`` against OSv's kernel boot contract and return what it found."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    hdr = _elf64_header(data, path)
    for what, off, count, size in (("program headers", hdr.e_phoff, hdr.e_phnum, hdr.e_phentsize),
                                   ("section headers", hdr.e_shoff, hdr.e_shnum, hdr.e_shentsize)):
        # the header tables must be inside the file (pyelftools' own errors on a truncated
        # file are cryptic: "expected 8, found 4")
        if count and off + count * size > len(data):
            raise KernelError(f"the {what} ({count} x {size} bytes at offset {off:#x}) run past "
                              f"the end of the file ({len(data)} bytes; truncated?)",
                              expected="a complete ELF file", path=path)
    try:
        elf_file = ELFFile(io.BytesIO(data))
        machine = elf_file.header["e_machine"]
        if machine not in ("EM_X86_64", EM_X86_64):
            raise KernelError(f"ELF machine {machine}", expected="EM_X86_64", path=path)
        segments = [
            Segment(type=_ptype(seg["p_type"]), offset=seg["p_offset"], vaddr=seg["p_vaddr"],
                    paddr=seg["p_paddr"], filesz=seg["p_filesz"], memsz=seg["p_memsz"],
                    flags=seg["p_flags"], align=seg["p_align"])
            for seg in elf_file.iter_segments()
        ]
        notes = _notes(elf_file)
        symbols = _symbols(elf_file)
        entry, phoff, phnum = hdr.e_entry, hdr.e_phoff, hdr.e_phnum
    except ELFError as exc:
        raise KernelError(f"truncated or malformed ELF ({exc})",
                          expected="a complete ELF64 x86-64 kernel", path=path) from None
    except (ValueError, KeyError, OverflowError, MemoryError) as exc:
        # OverflowError/MemoryError: a corrupt size or offset that pyelftools passes to read()
        raise KernelError(f"truncated or malformed ELF ({exc or type(exc).__name__})",
                          expected="a complete ELF64 x86-64 kernel", path=path) from None
    for s in segments:
        if s.type == PT_LOAD and s.offset + s.filesz > len(data):
            raise KernelError(f"PT_LOAD at offset {s.offset:#x} runs past the end of the file "
                              f"({len(data)} bytes)", expected="a complete file", path=path)
    loads = [s for s in segments if s.type == PT_LOAD]
    if not loads:
        raise KernelError("no PT_LOAD segment", path=path)
    image = [s for s in loads if s.offset == 0]
    if not image:
        raise KernelError("no PT_LOAD holds the ELF header",
                          expected="a first PT_LOAD from file offset 0 (OSv's loader.ld)", path=path)
    seg = image[0]
    if seg.paddr != layout.KERNEL_BASE_ADDR:
        raise KernelError(f"the image segment is at physical {seg.paddr:#x}",
                          expected=f"physical {layout.KERNEL_BASE_ADDR:#x}", path=path)
    if seg.filesz < layout.START32_SLOT_OFFSET + 8:
        raise KernelError("the image is too small for the start32 slot at +0x800", path=path)
    if phoff + phnum * elf.PHDR_SIZE > layout.START32_SLOT_OFFSET:
        raise KernelError("the program headers reach the start32 slot at +0x800", path=path)
    start32 = schema.parse(elf.Elf64_Addr, data, what="start32 slot",
                           offset=layout.START32_SLOT_OFFSET)
    image_end = seg.paddr + seg.memsz
    if not (seg.paddr + layout.KERNEL_TEXT_OFFSET <= start32 < image_end):
        raise KernelError(f"the start32 slot at +0x800 holds {start32:#x}, outside the kernel image",
                          expected=f"a physical address in {seg.paddr + layout.KERNEL_TEXT_OFFSET:#x}"
                                   f"-{image_end:#x}", path=path)
    for s in loads:
        if s.memsz and s.paddr + s.memsz > layout.IDENTITY_MAP_END:
            raise KernelError(f"PT_LOAD at physical {s.paddr:#x}-{s.paddr + s.memsz:#x} ends above 1 GiB",
                              expected="every segment below 1 GiB (the boot page tables map no more)",
                              path=path)
    return Kernel(path=path, data=data, entry=entry, phoff=phoff, phnum=phnum, segments=segments,
                  start32=start32, notes=notes, symbols=symbols)


def _ptype(value) -> int:
    if isinstance(value, int):
        return value
    from elftools.elf.enums import ENUM_P_TYPE_BASE
    return ENUM_P_TYPE_BASE.get(value, 0)


def _elf64_header(data: bytes, path):
    """The ELF64 little-endian header, or a KernelError saying what the file is instead."""
    try:
        ident = schema.parse(elf.ElfIdent, data, what="ELF identification")
    except FormatError:
        raise KernelError("not an ELF file", expected="an ELF64 x86-64 kernel", path=path) from None
    if ident.EI_CLASS != elf.ELFCLASS64:
        raise KernelError(f"ELF class {ident.EI_CLASS}"
                          + (" (ELF32)" if ident.EI_CLASS == elf.ELFCLASS32 else ""),
                          expected="ELF64 (class 2)", path=path)
    if ident.EI_DATA != elf.ELFDATA2LSB:
        raise KernelError("big-endian ELF", expected="little-endian x86-64", path=path)
    try:
        return schema.parse(elf.Elf64_Ehdr, data, what="ELF header")
    except FormatError as exc:
        raise KernelError(exc.what, expected="a complete ELF64 x86-64 kernel", path=path) from None


def _notes(elf_file) -> list[dict]:
    """Walk every PT_NOTE (12-byte Elf64_Nhdr, name and desc 4-byte aligned)."""
    out = []
    for seg in elf_file.iter_segments():
        if seg["p_type"] != "PT_NOTE":
            continue
        blob = seg.data()
        pos = 0
        while pos + elf.NHDR_SIZE <= len(blob):
            try:
                note = schema.parse(elf.Elf64_Note, blob, what="note", offset=pos)
            except FormatError:
                break
            name = note.name.rstrip(b"\0").decode("latin-1")
            value = None
            if name == "Xen" and note.n_type == XEN_ELFNOTE_PHYS32_ENTRY and note.n_descsz >= 4:
                # linux-loader reads the entry as a little-endian u32 (OSv writes a .quad)
                value = schema.parse(elf.Elf64_Word, note.desc, what="PVH entry note")
            out.append({"name": name, "type": note.n_type, "descsz": note.n_descsz,
                        "value": value, "offset": seg["p_offset"] + pos})
            pos += elf.note_size(note.n_namesz, note.n_descsz)
    return out


def _symbols(elf_file) -> dict[str, int]:
    """The :data:`KNOWN_SYMBOLS` the kernel's symbol table defines.  Only a section of type
    SHT_SYMTAB is read: one named ``.symtab`` with another type is no symbol table."""
    from elftools.elf.sections import SymbolTableSection

    symtab = elf_file.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        return {}
    found = {}
    for name in KNOWN_SYMBOLS:
        syms = symtab.get_symbol_by_name(name)
        if syms:
            found[name] = syms[0]["st_value"]
    return found


OSV_VERSION_RE = re.compile(rb"OSv v[0-9]+\.[0-9]+[0-9A-Za-z.+_~-]{0,80}")
"""OSv's loader prints ``"OSv " OSV_VERSION`` at boot (the version from ``git describe``,
e.g. ``v0.57.0-12-gabcdef0``), so the kernel carries the string in its read-only data."""


def osv_version(data: bytes) -> str | None:
    """The OSv version string in a kernel's bytes (``"OSv v0.57.0-..."``), or None."""
    m = OSV_VERSION_RE.search(data)
    return m.group(0).decode("ascii") if m else None
