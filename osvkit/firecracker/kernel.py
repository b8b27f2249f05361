"""What Firecracker's x86_64 kernel loader makes of a kernel file.

Firecracker hands the kernel file to linux-loader's ELF loader and, only when the file has no
ELF magic, to its bzImage loader (bzImage support is in Firecracker's unreleased main branch,
changelog entry #6037; released versions boot ELF only).  :func:`parse_fc_kernel` applies the
same rules, in the same order, and returns what the loader would copy where
(:class:`FcKernel`).  The rules, restated:

ELF (``vmlinux``), always read as ELF64:

* little-endian (``EI_DATA`` = 1); ``e_phentsize`` = 56; ``e_phoff`` >= 64 (the header size);
* ``e_entry`` >= 0x100000 (the "high memory" start Firecracker passes);
* every ``PT_LOAD`` with ``p_filesz`` != 0 has its ``p_filesz`` bytes copied from
  ``p_offset`` to physical ``p_paddr`` (not ``p_vaddr``); bss is not cleared (fresh guest
  memory is zero); segments with ``p_filesz`` = 0 are skipped;
* every ``PT_NOTE`` is searched for the PVH entry note (owner ``"Xen\\0"``, type 18): within
  one segment the first match wins, across segments the *last* ``PT_NOTE`` decides (a later
  note segment without the note clears an earlier find); a matching note with a descriptor
  under 4 bytes is an error; the entry is the descriptor's first 4 bytes, little-endian.

Not checked by Firecracker, and refused by osvkit only because the result could never run in an
x86-64 guest: an ELF32 file (Firecracker would misread its 32-byte program headers, a
``e_phentsize`` error) and a machine other than ``EM_X86_64``.  OSv's boot contract (image at
0x200000, the start32 slot) is *not* checked: it is a requirement of ``osvkit build``, not of
booting.

bzImage:

* the setup header at file offset 0x1F1 with ``header`` = ``"HdrS"``, ``version`` >= 0x200
  and ``loadflags`` bit 0 (LOADED_HIGH);
* the setup code is ``(setup_sects or 4) + 1`` sectors of 512 bytes; the rest of the file is
  copied to ``code32_start``, which must be >= 0x100000;
* Firecracker then requires boot protocol >= 2.12 with ``xloadflags`` bit 0 (XLF_KERNEL_64)
  and enters the 64-bit entry at ``code32_start + 0x200``; the image's setup header seeds the
  zero page.  There is no PVH boot of a bzImage.

Where the copies land in guest memory (inside RAM, clear of Firecracker's structures) depends
on the memory size and is checked by the qemu-fc planner (:mod:`.fcloader`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import layout
from ..errors import KernelError
from ..fileio import read_input
from ..structs import bootparams as bp
from ..structs import elf
from ..structs.elf import (EHDR_SIZE, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64,
                           NHDR_SIZE, NOTE_ALIGN, PHDR_SIZE, PT_LOAD, PT_NOTE,
                           XEN_ELFNOTE_PHYS32_ENTRY)

PVH_NOTE_NAME = b"Xen\0"
MACHINE_NAMES = {3: "i386", 40: "ARM", 183: "AArch64", 243: "RISC-V", 8: "MIPS", 20: "PowerPC",
                 21: "PowerPC64", 22: "S/390"}

BZ_SECTOR = 512
BZ_DEFAULT_SETUP_SECTS = 4
BZ_MIN_VERSION = 0x200
BZ_64BIT_MIN_VERSION = 0x20C
BZ_LOADED_HIGH = 0x1
BZ_XLF_KERNEL_64 = 0x1
BZ_64BIT_ENTRY_OFFSET = 0x200

KINDS = ("elf", "bzimage")
FORMATS = "an x86-64 vmlinux ELF or bzImage"


@dataclass(frozen=True)
class LoadPiece:
    """One copy the loader makes: ``size`` bytes from file offset ``offset`` to guest
    physical ``dst``; ``memsz`` is what the piece occupies (ELF ``p_memsz``)."""

    dst: int
    offset: int
    size: int
    memsz: int

    @property
    def end(self) -> int:
        return self.dst + max(self.size, self.memsz)

    def to_dict(self) -> dict:
        return {"dst": self.dst, "offset": self.offset, "size": self.size, "memsz": self.memsz}


@dataclass
class FcKernel:
    """A kernel file as Firecracker's loader reads it."""

    path: str | None
    data: bytes = field(repr=False)
    kind: str
    entry: int
    """The Linux 64-bit boot protocol entry: ``e_entry``, or a bzImage's code32_start + 0x200."""
    pvh_entry: int | None
    pieces: list[LoadPiece]
    setup_header: dict | None = None
    """A bzImage's own setup header (seeds the zero page); None for ELF."""

    @property
    def kernel_end(self) -> int:
        """First physical byte past every loaded piece, bss included."""
        return max((p.end for p in self.pieces), default=layout.FC_HIMEM_START)

    @property
    def firecracker_protocol(self) -> str:
        """The protocol Firecracker >= 1.12 picks by itself: PVH when the note is there."""
        return "pvh" if self.pvh_entry is not None else "linux"

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "size": len(self.data), "entry": self.entry,
                "pvh_entry": self.pvh_entry, "pieces": [p.to_dict() for p in self.pieces]}


def read_fc_kernel(path: str | os.PathLike) -> FcKernel:
    """Read ``path`` and apply Firecracker's loader rules; errors name the file."""
    data = read_input(path, f"a kernel ({FORMATS})")
    return parse_fc_kernel(data, path=os.fspath(path))


def parse_fc_kernel(data: bytes, *, path: str | None = None) -> FcKernel:
    """Firecracker's loader rules applied to ``data`` (see the module docstring)."""
    if data[:4] == ELFMAG:
        return _parse_elf(bytes(data), path)
    if _looks_like_bzimage(data):
        return _parse_bzimage(bytes(data), path)
    raise KernelError("neither an ELF kernel (no \\x7fELF magic) nor a bzImage (no HdrS "
                      "setup header)", expected=FORMATS, path=path)


def _parse_elf(data: bytes, path, highmem_start: int | None = layout.FC_HIMEM_START) -> FcKernel:
    if len(data) < EHDR_SIZE:
        raise KernelError(f"truncated ELF header ({len(data)} bytes)",
                          expected=f"a {EHDR_SIZE}-byte ELF64 header", path=path)
    ident = elf.ElfIdent.parse(data)
    if ident.EI_CLASS != ELFCLASS64:
        cls = ident.EI_CLASS
        raise KernelError("a 32-bit kernel (ELF32)" if cls == ELFCLASS32 else f"ELF class {cls}",
                          expected="an ELF64 x86-64 kernel (Firecracker reads ELF64 only)",
                          path=path)
    if ident.EI_DATA != ELFDATA2LSB:
        raise KernelError("a big-endian ELF", expected="a little-endian x86-64 kernel",
                          path=path)
    ehdr = elf.Elf64_Ehdr.parse(data)
    if ehdr.e_machine != EM_X86_64:
        name = MACHINE_NAMES.get(ehdr.e_machine, f"machine {ehdr.e_machine}")
        raise KernelError(f"an ELF for {name}", expected="an x86-64 (EM_X86_64) kernel",
                          path=path)
    if ehdr.e_phentsize != PHDR_SIZE:
        raise KernelError(f"e_phentsize {ehdr.e_phentsize}",
                          expected=f"{PHDR_SIZE} (Firecracker: invalid program header size)",
                          path=path)
    if ehdr.e_phoff < EHDR_SIZE:
        raise KernelError(f"e_phoff {ehdr.e_phoff:#x} overlaps the ELF header",
                          expected=f"at least {EHDR_SIZE:#x} (Firecracker: invalid program "
                                   "header offset)", path=path)
    if highmem_start is not None and ehdr.e_entry < highmem_start:
        raise KernelError(f"e_entry {ehdr.e_entry:#x} is below 1 MiB",
                          expected=f"e_entry >= {layout.FC_HIMEM_START:#x} (Firecracker's "
                                   "kernel start; an OSv loader.elf needs osvkit build "
                                   "--format vmlinux)", path=path)
    end = ehdr.e_phoff + ehdr.e_phnum * PHDR_SIZE
    if end > len(data):
        raise KernelError(f"the program headers ({ehdr.e_phnum} x {PHDR_SIZE} bytes at "
                          f"{ehdr.e_phoff:#x}) run past the end of the file ({len(data)} bytes)",
                          expected="a complete ELF file", path=path)
    pieces, pvh = [], None
    for i in range(ehdr.e_phnum):
        ph = elf.Elf64_Phdr.parse(data[ehdr.e_phoff + i * PHDR_SIZE:])
        if ph.p_type == PT_LOAD and ph.p_filesz:
            if ph.p_offset + ph.p_filesz > len(data):
                raise KernelError(f"PT_LOAD {i} ({ph.p_filesz:#x} bytes at file offset "
                                  f"{ph.p_offset:#x}) runs past the end of the file "
                                  f"({len(data)} bytes)", expected="a complete file", path=path)
            pieces.append(LoadPiece(ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz))
        elif ph.p_type == PT_NOTE:
            pvh = _pvh_note(data, ph.p_offset, ph.p_filesz, path)
    if not pieces:
        raise KernelError("no PT_LOAD segment with file contents",
                          expected="a kernel with loadable segments", path=path)
    return FcKernel(path=path, data=data, kind="elf", entry=ehdr.e_entry, pvh_entry=pvh,
                    pieces=pieces)


def _align4(n: int) -> int:
    return (n + NOTE_ALIGN - 1) & ~(NOTE_ALIGN - 1)


def _pvh_note(data: bytes, offset: int, size: int, path) -> int | None:
    """linux-loader's walk of one PT_NOTE: the PVH entry, or None when absent."""
    pos = 0
    while pos < size:
        at = offset + pos
        if at + NHDR_SIZE > len(data):
            raise KernelError(f"a note header at file offset {at:#x} runs past the end of the "
                              "file", expected="complete PT_NOTE segments", path=path)
        n = elf.Elf64_Nhdr.parse(data[at:at + NHDR_SIZE])
        if n.n_type == XEN_ELFNOTE_PHYS32_ENTRY and n.n_namesz == len(PVH_NOTE_NAME) and \
                data[at + NHDR_SIZE:at + NHDR_SIZE + 4] == PVH_NOTE_NAME:
            if n.n_descsz < 4:
                raise KernelError(f"the PVH note at file offset {at:#x} has a {n.n_descsz}-byte "
                                  "descriptor", expected="a 4-byte entry address (Firecracker: "
                                  "invalid PVH note)", path=path)
            desc = at + NHDR_SIZE + _align4(n.n_namesz)
            if desc + 4 > len(data):
                raise KernelError(f"the PVH note at file offset {at:#x} runs past the end of the "
                                  "file", expected="a complete PT_NOTE segment", path=path)
            return elf.Elf64_Word.parse(data[desc:desc + 4])
        pos += NHDR_SIZE + _align4(n.n_namesz) + _align4(n.n_descsz)
    return None


def _looks_like_bzimage(data: bytes) -> bool:
    at = bp.BOOT_PARAMS_OFFSETS["header"]
    return data[at:at + len(bp.HDRS_MAGIC)] == bp.HDRS_MAGIC


def _setup_header(data: bytes) -> dict:
    """The image's setup header as a dict (``boot_flag`` read as Firecracker writes it: the
    loader does not check it and the zero page always gets 0xAA55)."""
    start = bp.SETUP_HEADER_OFFSET
    raw = bytearray(data[start:start + bp.SetupHeader.sizeof()])
    flag = bp.BOOT_PARAMS_OFFSETS["boot_flag"] - start
    raw[flag:flag + 2] = bp.BOOT_FLAG.to_bytes(2, "little")
    parsed = bp.SetupHeader.parse(bytes(raw))
    return {k: v for k, v in parsed.items() if not k.startswith("_")}


def _parse_bzimage(data: bytes, path) -> FcKernel:
    if len(data) < bp.SETUP_HEADER_OFFSET + bp.SetupHeader.sizeof():
        raise KernelError("truncated bzImage setup header", expected="a complete bzImage",
                          path=path)
    hdr = _setup_header(data)
    if hdr["version"] < BZ_MIN_VERSION or not hdr["loadflags"] & BZ_LOADED_HIGH:
        raise KernelError(f"a bzImage with boot protocol {hdr['version'] >> 8}."
                          f"{hdr['version'] & 0xFF:02d} and loadflags {hdr['loadflags']:#x}",
                          expected="protocol 2.00 or later with LOADED_HIGH (Firecracker: "
                                   "invalid bzImage)", path=path)
    setup = ((hdr["setup_sects"] or BZ_DEFAULT_SETUP_SECTS) + 1) * BZ_SECTOR
    if setup > len(data):
        raise KernelError(f"the setup code ({setup} bytes) is longer than the file "
                          f"({len(data)} bytes)", expected="a complete bzImage", path=path)
    start = hdr["code32_start"]
    if start < layout.FC_HIMEM_START:
        raise KernelError(f"bzImage code32_start {start:#x} is below 1 MiB",
                          expected=f"at least {layout.FC_HIMEM_START:#x} (Firecracker's kernel "
                                   "start)", path=path)
    if hdr["version"] < BZ_64BIT_MIN_VERSION or not hdr["xloadflags"] & BZ_XLF_KERNEL_64:
        raise KernelError("a bzImage without a 64-bit entry (boot protocol "
                          f"{hdr['version'] >> 8}.{hdr['version'] & 0xFF:02d}, xloadflags "
                          f"{hdr['xloadflags']:#x})", expected="protocol 2.12 or later with "
                          "XLF_KERNEL_64 (Firecracker enters bzImages in 64-bit mode)",
                          path=path)
    size = len(data) - setup
    return FcKernel(path=path, data=data, kind="bzimage",
                    entry=start + BZ_64BIT_ENTRY_OFFSET, pvh_entry=None,
                    pieces=[LoadPiece(start, setup, size, size)], setup_header=hdr)


PAGE_SIZE = 4096
"""Firecracker's guest page size (the initrd's alignment)."""


def initrd_address(memory: int, size: int) -> int:
    """Where Firecracker puts an initrd of ``size`` bytes in a guest of ``memory`` bytes: at
    the top of the first RAM region (below the 32-bit MMIO gap at 3 GiB), rounded down to a
    page.  Larger than that region: Firecracker refuses it."""
    from ..errors import LayoutError

    low = min(memory, layout.FC_MMIO32_START)
    if size > low:
        raise LayoutError(f"an initrd of {size} bytes is larger than the guest's "
                          f"{low // layout.MiB} MiB of low RAM", expected="a larger --memory")
    return (low - size) & ~(PAGE_SIZE - 1)


def read_pvh_kernel(path: str | os.PathLike) -> FcKernel:
    """A kernel for QEMU's own PVH boot (``qemu-pvh``): an ELF with the PVH entry note.
    QEMU decides the rest (it also accepts entries below 1 MiB), so only what it would refuse
    without a clear message is checked here."""
    data = read_input(path, "a kernel ELF with a PVH note")
    p = os.fspath(path)
    if data[:4] != ELFMAG:
        what = "a bzImage" if _looks_like_bzimage(data) else "not an ELF file"
        raise KernelError(what, path=p, expected="an ELF kernel with a PVH (Xen PHYS32_ENTRY) "
                          "note: QEMU boots a bzImage through its Linux boot ROM, not PVH")
    k = _parse_elf(data, p, highmem_start=None)
    if k.pvh_entry is None:
        raise KernelError("no XEN_ELFNOTE_PHYS32_ENTRY note", path=p,
                          expected="a PVH kernel (e.g. Linux with CONFIG_PVH=y, or osvkit "
                                   "build --format vmlinux --pvh)")
    return k

