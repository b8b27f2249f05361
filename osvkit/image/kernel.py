"""Read a kernel ELF and check OSv's boot contract (osv-boot.md 4.1).

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
import struct
from dataclasses import dataclass, field

from .. import layout
from ..errors import KernelError
from ..fileio import read_input

EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18

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
        and keep the *last* XEN_ELFNOTE_PHYS32_ENTRY (firecracker-boot.md 5.2)."""
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

    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise KernelError("not an ELF file", expected="an ELF64 x86-64 kernel", path=path)
    if data[4] != 2:
        raise KernelError(f"ELF class {data[4]} (ELF32)" if data[4] == 1 else f"ELF class {data[4]}",
                          expected="ELF64 (class 2)", path=path)
    if data[5] != 1:
        raise KernelError("big-endian ELF", expected="little-endian x86-64", path=path)
    # the header tables must be inside the file (pyelftools' own errors on a truncated file
    # are cryptic: "expected 8, found 4")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    for what, off, count, size in (("program headers", phoff, phnum, phentsize),
                                   ("section headers", shoff, shnum, shentsize)):
        if count and off + count * size > len(data):
            raise KernelError(f"the {what} ({count} x {size} bytes at offset {off:#x}) run past "
                              f"the end of the file ({len(data)} bytes; truncated?)",
                              expected="a complete ELF file", path=path)
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf.header["e_machine"]
        if machine not in ("EM_X86_64", EM_X86_64):
            raise KernelError(f"ELF machine {machine}", expected="EM_X86_64", path=path)
        segments = [
            Segment(type=_ptype(seg["p_type"]), offset=seg["p_offset"], vaddr=seg["p_vaddr"],
                    paddr=seg["p_paddr"], filesz=seg["p_filesz"], memsz=seg["p_memsz"],
                    flags=seg["p_flags"], align=seg["p_align"])
            for seg in elf.iter_segments()
        ]
        notes = _notes(elf)
        symbols = _symbols(elf)
        entry, phoff, phnum = elf.header["e_entry"], elf.header["e_phoff"], elf.header["e_phnum"]
    except ELFError as exc:
        raise KernelError(f"truncated or malformed ELF ({exc})",
                          expected="a complete ELF64 x86-64 kernel", path=path) from None
    except (struct.error, ValueError, KeyError, OverflowError, MemoryError) as exc:
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
    if phoff + phnum * 56 > layout.START32_SLOT_OFFSET:
        raise KernelError("the program headers reach the start32 slot at +0x800", path=path)
    start32 = struct.unpack_from("<Q", data, layout.START32_SLOT_OFFSET)[0]
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


def _notes(elf) -> list[dict]:
    """Walk every PT_NOTE (12-byte Elf64_Nhdr, name and desc 4-byte aligned)."""
    out = []
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_NOTE":
            continue
        blob = seg.data()
        pos = 0
        while pos + 12 <= len(blob):
            namesz, descsz, ntype = struct.unpack_from("<III", blob, pos)
            name_at = pos + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            end = desc_at + ((descsz + 3) & ~3)
            if desc_at + descsz > len(blob):
                break
            name = blob[name_at:name_at + namesz].rstrip(b"\0").decode("latin-1")
            desc = blob[desc_at:desc_at + descsz]
            value = None
            if name == "Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY and descsz >= 4:
                # linux-loader reads the entry as a little-endian u32 (OSv writes a .quad)
                value = struct.unpack_from("<I", desc)[0]
            out.append({"name": name, "type": ntype, "descsz": descsz, "value": value,
                        "offset": seg["p_offset"] + pos})
            pos = end
    return out


def _symbols(elf) -> dict[str, int]:
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        return {}
    found = {}
    for name in KNOWN_SYMBOLS:
        syms = symtab.get_symbol_by_name(name)
        if syms:
            found[name] = syms[0]["st_value"]
    return found
