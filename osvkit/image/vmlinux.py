"""Patch an OSv kernel ELF into a Firecracker / PVH bootable "vmlinux", and inspect one.

:func:`build_vmlinux` adds, without moving a byte of the kernel:

* a 64-bit Linux-boot-protocol entry stub (:mod:`osvkit.boot.stub64`) and ``e_entry``
  pointing at it, and
* (``pvh=True``) a 32-bit PVH stub (:mod:`osvkit.boot.pvhstub`) and a
  ``XEN_ELFNOTE_PHYS32_ENTRY`` note naming it (name "Xen\\0", type 18, 8-byte desc as OSv).

Both stubs live in one new ``PT_LOAD`` at physical :data:`STUB_ADDR` (1 MiB, inside
``layout.STUB_START..STUB_END``: below the kernel image at 2 MiB, above the boot structures,
inside Firecracker's identity map).  The note gets its own ``PT_NOTE``, the last program
header, because both Firecracker (linux-loader) and QEMU use the *last* PT_NOTE holding a
PVH note.

What changes in the file, and nothing else (``tests/test_vmlinux_patch.py`` diffs it):

* ``e_entry`` (only when the stub becomes the Linux entry) and ``e_phnum``;
* the new program-header slots right after the existing table -- they must fit before the
  start32 slot at +0x800 and be zero (else "no room");
* bytes appended at the end of the file (page-aligned): the stub segment.

OSv's invariants are kept: the first PT_LOAD (ELF header + phdrs, file = memory image at
0x200000) keeps its bytes and place, the program header table stays where it is, the section
headers stay where they are (nothing is inserted before them).  The stub segment's
``p_vaddr`` is chosen *above* every existing PT_LOAD's vaddr: OSv builds its own
``memory_image`` from these phdrs at run time and derives the kernel's load bias from the
lowest PT_LOAD vaddr (``core/elf.cc`` ``set_base``), so a lower vaddr would shift every
kernel symbol.  Loaders place segments at ``p_paddr``, so the vaddr is otherwise unused.

We write the program headers with :mod:`osvkit.structs.elf` (LIEF's ``Binary.add(segment)`` would move
the phdr table, set paddr = vaddr and rewrite .dynamic); tests read the result back with
pyelftools and LIEF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import layout
from ..boot import pvhstub, stub64
from ..errors import KernelError, LayoutError, UsageError
from ..fileio import check_not_input, write_atomic
from ..structs import base as schema
from ..structs import elf
from ..structs.elf import (PF_R, PF_W, PF_X, PHDR_SIZE, PT_LOAD, PT_NOTE,  # noqa: F401
                           XEN_ELFNOTE_PHYS32_ENTRY)
from .kernel import Kernel, check_kernel, load_kernel, osv_version

PAGE = 0x1000

STUB_ADDR = layout.STUB_START
"""Physical address of the stub segment (1 MiB)."""

# Offsets inside the stub segment
OFF_ENTRY64 = 0x000
OFF_COMPAT32 = 0x200
OFF_GDT = 0x240
OFF_GDT_DESC = 0x260
OFF_NAME64 = 0x270
OFF_NAME_PVH = 0x290
OFF_NOTE = 0x2A0
OFF_PVH = 0x300
STUB_SIZE = 0x500

XEN_NOTE_NAME = b"Xen\0"
NOTE_SIZE = elf.note_size(len(XEN_NOTE_NAME), elf.Elf64_Addr.sizeof())


@dataclass
class VmlinuxResult:
    """What :func:`build_vmlinux` did."""

    input: str | None
    output: str | None
    size: int
    entry: int
    original_entry: int
    start32: int
    handover: str
    linux64_entry: int | None
    pvh_entry: int | None
    stub_addr: int | None
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "input": self.input, "output": self.output, "size": self.size,
            "entry": self.entry, "original_entry": self.original_entry,
            "start32": self.start32, "handover": self.handover,
            "linux64_entry": self.linux64_entry, "pvh_entry": self.pvh_entry,
            "stub_addr": self.stub_addr, "added": self.added, "kept": self.kept,
        }


def _align(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


def existing_linux64_entry(kernel: Kernel) -> int | None:
    """e_entry, when it is a Linux 64-bit entry the file already has: the kernel's own
    (current OSv: ``vmlinux_entry64``; not start32 and inside the image segment) or osvkit's
    stub from an earlier ``build --format vmlinux``."""
    seg = kernel.image_segment
    if kernel.entry and kernel.entry != kernel.start32 and \
            seg.paddr <= kernel.entry < seg.paddr + seg.memsz:
        return kernel.entry
    own = osvkit_stub_segment(kernel)
    if own is not None and kernel.entry == own.paddr + OFF_ENTRY64:
        return kernel.entry
    return None


def osvkit_stub_segment(kernel: Kernel):
    """The PT_LOAD an earlier :func:`patch_vmlinux` added (at :data:`STUB_ADDR`, holding
    osvkit's stub names), or None."""
    for s in kernel.load_segments:
        if s.paddr == STUB_ADDR and s.filesz == STUB_SIZE and \
                _stub_name_at(kernel, STUB_ADDR + OFF_ENTRY64) is not None:
            return s
    return None


def stub_blob(*, handover: str, start64: int | None = None, ident_pt_l4: int | None = None,
              base: int = STUB_ADDR) -> bytes:
    """The stub segment's bytes (both stubs, GDT, names, PVH note) for physical ``base``."""
    entry64 = stub64.assemble_entry64(
        base + OFF_ENTRY64, gdt_desc_addr=base + OFF_GDT_DESC,
        compat32_addr=base + OFF_COMPAT32, name_addr=base + OFF_NAME64,
        handover=handover, start64=start64, ident_pt_l4=ident_pt_l4)
    compat32 = stub64.assemble_compat32(base + OFF_COMPAT32)
    pvh = pvhstub.assemble_pvh(base + OFF_PVH, name_addr=base + OFF_NAME_PVH)
    note = schema.build(elf.Elf64_Note, dict(
        n_type=XEN_ELFNOTE_PHYS32_ENTRY, name=XEN_NOTE_NAME,
        desc=schema.build(elf.Elf64_Addr, base + OFF_PVH)), what="PVH note")
    parts = [
        (OFF_ENTRY64, entry64, OFF_COMPAT32),
        (OFF_COMPAT32, compat32, OFF_GDT),
        (OFF_GDT, stub64.gdt_bytes(), OFF_GDT_DESC),
        (OFF_GDT_DESC, stub64.gdt_descriptor(base + OFF_GDT), OFF_NAME64),
        (OFF_NAME64, stub64.LOADER_NAME, OFF_NAME_PVH),
        (OFF_NAME_PVH, pvhstub.LOADER_NAME, OFF_NOTE),
        (OFF_NOTE, note, OFF_PVH),
        (OFF_PVH, pvh, STUB_SIZE),
    ]
    blob = bytearray(STUB_SIZE)
    for start, data, end in parts:
        if start + len(data) > end:  # pragma: no cover - a bug in the layout above
            raise AssertionError(f"stub part at {start:#x} is {len(data)} bytes, overruns {end:#x}")
        blob[start:start + len(data)] = data
    return bytes(blob)


def _phys(addr: int) -> int:
    """A kernel symbol's physical address (OSv links at virt = phys + 0x40000000)."""
    return addr - layout.KERNEL_VM_SHIFT if addr >= layout.KERNEL_VM_SHIFT else addr


def _check_ident_pt_l4(kernel: Kernel, ident: int) -> None:
    """The start64 handover loads CR3 = ident_pt_l4 before the kernel ran any code, so the
    table must be initialised in the file (OSv: boot.S .data), not built at run time."""
    for s in kernel.load_segments:
        if s.paddr <= ident < s.paddr + s.filesz and ident + 8 <= s.paddr + s.filesz:
            entry = schema.parse(elf.Elf64_Xword, kernel.data, what="ident_pt_l4[0]",
                                 offset=s.offset + ident - s.paddr)
            if entry & 1:  # present
                return
            break
    raise KernelError(f"ident_pt_l4 at physical {ident:#x} is not an initialised page table "
                      "in the file (bss or empty)",
                      expected="OSv's static ident_pt_l4 for --handover start64, or "
                               "--handover start32", path=kernel.path)


def patch_vmlinux(kernel: Kernel, *, pvh: bool = True, handover: str = "start32",
                  replace_entry: bool = False) -> tuple[bytes, VmlinuxResult]:
    """Return the patched ELF bytes and a description (no file I/O)."""
    if handover not in stub64.HANDOVERS:
        raise UsageError(f"handover {handover!r}", expected=" or ".join(stub64.HANDOVERS))
    data = kernel.data
    path = kernel.path
    if schema.parse(elf.Elf64_Ehdr, data, what="ELF header").e_phentsize != PHDR_SIZE:
        raise KernelError("e_phentsize is not 56", expected="ELF64 program headers", path=path)
    for s in kernel.load_segments:
        if s.memsz and s.paddr < layout.FC_HIMEM_START:
            raise KernelError(f"PT_LOAD at physical {s.paddr:#x} is below 1 MiB",
                              expected="every segment in 1 MiB-1 GiB (Firecracker loads at "
                                       "p_paddr >= 0x100000)", path=path)
    linux64 = existing_linux64_entry(kernel)
    pvh_old = kernel.pvh_entry
    add_linux = linux64 is None or replace_entry
    add_pvh = pvh and (pvh_old is None or replace_entry)
    result = VmlinuxResult(input=path, output=None, size=len(data), entry=kernel.entry,
                           original_entry=kernel.entry, start32=kernel.start32,
                           handover=handover, linux64_entry=linux64, pvh_entry=pvh_old,
                           stub_addr=None)
    if linux64 is not None and not add_linux:
        result.kept.append("linux64")
    if pvh_old is not None and not add_pvh:
        result.kept.append("pvh")
    if not add_linux and not add_pvh:
        return data, result

    start64 = ident = None
    if handover == "start64" and add_linux:
        missing = [n for n in ("start64", "ident_pt_l4") if n not in kernel.symbols]
        if missing:
            raise KernelError(f"no {' or '.join(missing)} symbol (stripped kernel?)",
                              expected="a .symtab with start64 and ident_pt_l4 for "
                                       "--handover start64, or --handover start32", path=path)
        # start64 at its linked (virtual) address, as OSv's own start32_from_64 does: ident_pt_l4
        # maps 1-2 GiB onto 0-1 GiB, and code running at the physical alias would keep
        # low-half return addresses that OSv's own page tables later unmap
        start64, ident = kernel.symbols["start64"], _phys(kernel.symbols["ident_pt_l4"])
        _check_ident_pt_l4(kernel, ident)

    own = osvkit_stub_segment(kernel)
    if own is not None:     # osvkit's own output again: regenerate its stub segment in place
        return _repatch(kernel, own, result, add_linux=add_linux, add_pvh=add_pvh,
                        handover=handover, start64=start64, ident=ident)

    stub_end = STUB_ADDR + STUB_SIZE
    if not (layout.STUB_START <= STUB_ADDR and stub_end <= layout.STUB_END):  # pragma: no cover
        raise AssertionError("stub outside layout.STUB_START..STUB_END")
    for s in kernel.load_segments:
        if s.memsz and s.paddr < stub_end and STUB_ADDR < s.paddr + s.memsz:
            raise LayoutError(f"no room for the stub: PT_LOAD at physical {s.paddr:#x}-"
                              f"{s.paddr + s.memsz:#x} overlaps {STUB_ADDR:#x}-{stub_end:#x}",
                              expected=f"nothing loaded at {STUB_ADDR:#x}-{stub_end:#x} (osvkit's stub)",
                              path=path)

    _check_phdr_room(kernel, 1 + (1 if add_pvh else 0))

    blob = stub_blob(handover=handover, start64=start64, ident_pt_l4=ident)
    offset = _align(len(data), PAGE)
    vaddr = _align(max(s.vaddr + s.memsz for s in kernel.load_segments), PAGE)
    phdrs = _phdr(PT_LOAD, PF_R | PF_X, offset, vaddr, STUB_ADDR, STUB_SIZE, PAGE)
    if add_pvh:
        phdrs += _note_phdr(offset, vaddr)

    out = bytearray(data)
    _append_phdrs(out, kernel, phdrs)
    if add_linux:
        _set_header(out, e_entry=STUB_ADDR + OFF_ENTRY64)
        result.entry = STUB_ADDR + OFF_ENTRY64
        result.linux64_entry = STUB_ADDR + OFF_ENTRY64
        result.added.append("linux64")
    if add_pvh:
        result.pvh_entry = STUB_ADDR + OFF_PVH
        result.added.append("pvh")
    out += bytes(offset - len(out)) + blob
    result.size = len(out)
    result.stub_addr = STUB_ADDR
    # read our own output back: it must still keep OSv's contract
    check_kernel(bytes(out), path=path)
    return bytes(out), result


def _check_phdr_room(kernel: Kernel, count: int) -> None:
    table_end = kernel.phoff + kernel.phnum * PHDR_SIZE
    new_end = table_end + count * PHDR_SIZE
    if new_end > layout.START32_SLOT_OFFSET:
        raise LayoutError(f"no room for {count} more program header(s): the table would "
                          f"end at {new_end:#x}",
                          expected=f"e_phoff + (e_phnum+{count})*56 <= 0x800 (the start32 slot)",
                          path=kernel.path)
    if any(kernel.data[table_end:new_end]):
        raise LayoutError(f"no room for {count} more program header(s): bytes "
                          f"{table_end:#x}-{new_end:#x} after the table are in use",
                          expected="zero padding between the program headers and +0x800",
                          path=kernel.path)


def _append_phdrs(out: bytearray, kernel: Kernel, phdrs: bytes) -> None:
    """Write ``phdrs`` into the (checked) zero room right after the table; bump e_phnum."""
    table_end = kernel.phoff + kernel.phnum * PHDR_SIZE
    out[table_end:table_end + len(phdrs)] = phdrs
    _set_header(out, e_phnum=kernel.phnum + len(phdrs) // PHDR_SIZE)


def _set_header(out: bytearray, **fields) -> None:
    """Rewrite ELF header ``fields`` of ``out`` in place."""
    hdr = schema.parse(elf.Elf64_Ehdr, out, what="ELF header")
    hdr.update(fields)
    out[:elf.EHDR_SIZE] = schema.build(elf.Elf64_Ehdr, hdr, what="ELF header")


def _phdr(p_type: int, flags: int, offset: int, vaddr: int, paddr: int, size: int,
          align: int) -> bytes:
    """One program header whose file and memory sizes are both ``size``."""
    return schema.build(elf.Elf64_Phdr, dict(
        p_type=p_type, p_flags=flags, p_offset=offset, p_vaddr=vaddr, p_paddr=paddr,
        p_filesz=size, p_memsz=size, p_align=align), what="program header")


def _note_phdr(offset: int, vaddr: int) -> bytes:
    """The PT_NOTE over the Xen note inside the stub segment at file ``offset``."""
    return _phdr(PT_NOTE, PF_R, offset + OFF_NOTE, vaddr + OFF_NOTE, STUB_ADDR + OFF_NOTE,
                 NOTE_SIZE, elf.NOTE_ALIGN)


def _repatch(kernel: Kernel, own, result: VmlinuxResult, *, add_linux: bool, add_pvh: bool,
             handover: str, start64, ident) -> tuple[bytes, VmlinuxResult]:
    """Re-patch osvkit's own output: the stub segment's bytes are regenerated where they are
    (same file offset, same program header); e_entry points at it when the Linux entry is
    (re)placed; a PT_NOTE is added only when the file has none for osvkit's note yet."""
    has_note = any(s.type == PT_NOTE and s.paddr == STUB_ADDR + OFF_NOTE for s in kernel.segments)
    note = add_pvh and not has_note
    if note:
        _check_phdr_room(kernel, 1)
    out = bytearray(kernel.data)
    out[own.offset:own.offset + STUB_SIZE] = stub_blob(handover=handover, start64=start64,
                                                      ident_pt_l4=ident)
    if note:
        _append_phdrs(out, kernel, _note_phdr(own.offset, own.vaddr))
    if add_linux:
        _set_header(out, e_entry=STUB_ADDR + OFF_ENTRY64)
        result.entry = result.linux64_entry = STUB_ADDR + OFF_ENTRY64
        result.added.append("linux64")
    if add_pvh:
        result.pvh_entry = STUB_ADDR + OFF_PVH
        result.added.append("pvh")
    result.size = len(out)
    result.stub_addr = STUB_ADDR
    check_kernel(bytes(out), path=kernel.path)
    return bytes(out), result


def build_vmlinux(kernel, output, *, pvh: bool = True, handover: str = "start32",
                  replace_entry: bool = False) -> VmlinuxResult:
    """Patch ``kernel`` (a path or :class:`Kernel`) and write the ELF to ``output``."""
    if not isinstance(kernel, Kernel):
        kernel = load_kernel(kernel)
    # patching in place is not what a build does: the user's kernel stays as it is
    check_not_input(output, [("the kernel of this build", kernel.path or None)])
    data, result = patch_vmlinux(kernel, pvh=pvh, handover=handover, replace_entry=replace_entry)
    write_atomic(output, data, mode=0o755)
    result.output = os.fspath(output)
    return result


# ---------------------------------------------------------------------------------------
# Inspection: the boot contract of a kernel ELF
# ---------------------------------------------------------------------------------------

@dataclass
class ElfInspection:
    """The boot contract of a kernel ELF, as ``osvkit inspect`` reports it."""

    path: str | None
    size: int
    e_entry: int
    start32: int
    segments: list[dict]
    entries: list[dict]
    notes: list[dict]
    symbols: dict[str, int]
    bootfs_size: int | None = None
    osv_version: str | None = None

    @property
    def protocols(self) -> list[str]:
        return [e["protocol"] for e in self.entries]

    def to_dict(self) -> dict:
        d = {
            "kind": "kernel-elf", "path": self.path, "size": self.size,
            "e_entry": self.e_entry, "start32": self.start32,
            "protocols": self.protocols, "entries": self.entries,
            "segments": self.segments, "notes": self.notes, "symbols": self.symbols,
            "osv_version": self.osv_version,
        }
        if self.bootfs_size is not None:
            d["bootfs_size"] = self.bootfs_size
        return d


_PT_NAMES = {elf.PT_NULL: "PT_NULL", elf.PT_LOAD: "PT_LOAD", elf.PT_DYNAMIC: "PT_DYNAMIC",
             elf.PT_INTERP: "PT_INTERP", elf.PT_NOTE: "PT_NOTE", elf.PT_PHDR: "PT_PHDR",
             elf.PT_TLS: "PT_TLS", elf.PT_GNU_EH_FRAME: "PT_GNU_EH_FRAME",
             elf.PT_GNU_STACK: "PT_GNU_STACK", elf.PT_GNU_RELRO: "PT_GNU_RELRO"}


def _stub_name_at(kernel: Kernel, paddr: int) -> str | None:
    """The osvkit stub that owns physical ``paddr`` (read from its segment), if any."""
    for s in kernel.load_segments:
        if s.paddr == STUB_ADDR and s.paddr <= paddr < s.paddr + s.filesz and \
                s.filesz >= STUB_SIZE:
            blob = kernel.data[s.offset:s.offset + s.filesz]
            if paddr - s.paddr == OFF_ENTRY64 and blob[OFF_NAME64:].startswith(stub64.LOADER_NAME):
                return stub64.LOADER_NAME.rstrip(b"\0").decode()
            if paddr - s.paddr == OFF_PVH and blob[OFF_NAME_PVH:].startswith(pvhstub.LOADER_NAME):
                return pvhstub.LOADER_NAME.rstrip(b"\0").decode()
    return None


def _segment_for(kernel: Kernel, paddr: int) -> int | None:
    for i, s in enumerate(kernel.segments):
        if s.type == PT_LOAD and s.paddr <= paddr < s.paddr + max(s.memsz, 1):
            return i
    return None


def _bootfs_size(kernel: Kernel) -> int | None:
    """``bootfs_end - bootfs_start`` when the kernel has both symbols (OSv's bootfs.S)."""
    import io

    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    symtab = ELFFile(io.BytesIO(kernel.data)).get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        return None
    start = symtab.get_symbol_by_name("bootfs_start")
    end = symtab.get_symbol_by_name("bootfs_end")
    if start and end:
        return end[0]["st_value"] - start[0]["st_value"]
    return None


def inspect_kernel_elf(kernel) -> ElfInspection:
    """Describe a kernel ELF's boot contract: where it loads, which entry serves which
    protocol (linux64 = Firecracker's 64-bit boot protocol at e_entry, pvh = the Xen
    PHYS32_ENTRY note, start32 = OSv's slot at +0x800 used by the BIOS path)."""
    if not isinstance(kernel, Kernel):
        kernel = load_kernel(kernel)
    entries = []
    linux64 = existing_linux64_entry(kernel)
    stub = _stub_name_at(kernel, kernel.entry) if kernel.entry else None
    if stub is not None or linux64 is not None:
        entries.append({"protocol": "linux64", "address": kernel.entry, "source": "e_entry",
                        "provider": stub or "kernel", "segment": _segment_for(kernel, kernel.entry)})
    pvh = kernel.pvh_entry
    if pvh is not None:
        n = sum(1 for x in kernel.notes if x["name"] == "Xen" and x["type"] == XEN_ELFNOTE_PHYS32_ENTRY)
        entries.append({"protocol": "pvh", "address": pvh,
                        "source": "note Xen/18 (XEN_ELFNOTE_PHYS32_ENTRY)"
                                  + (f", last of {n} (loaders use the last)" if n > 1 else ""),
                        "provider": _stub_name_at(kernel, pvh) or "kernel",
                        "segment": _segment_for(kernel, pvh)})
    entries.append({"protocol": "start32", "address": kernel.start32,
                    "source": f"slot at file offset {layout.START32_SLOT_OFFSET:#x}",
                    "provider": "kernel", "segment": _segment_for(kernel, kernel.start32)})
    segments = []
    for i, s in enumerate(kernel.segments):
        d = s.to_dict()
        d["type_name"] = _PT_NAMES.get(s.type, f"{s.type:#x}")
        d["index"] = i
        if s.type == PT_LOAD:
            d["role"] = ("image" if s.offset == 0 else
                         "osvkit-stub" if s.paddr == STUB_ADDR and _stub_name_at(kernel, s.paddr)
                         else "load")
        segments.append(d)
    return ElfInspection(path=kernel.path, size=len(kernel.data), e_entry=kernel.entry,
                         start32=kernel.start32, segments=segments, entries=entries,
                         notes=kernel.notes, symbols=kernel.symbols,
                         bootfs_size=_bootfs_size(kernel), osv_version=osv_version(kernel.data))


def describe_inspection(info: ElfInspection) -> str:
    """Human-readable rendering for ``osvkit inspect``."""
    return describe_inspection_dict(info.to_dict())


def describe_inspection_dict(d: dict) -> str:
    """Human-readable rendering of :meth:`ElfInspection.to_dict` output."""
    info = _Attrs(d)
    lines = [f"{info.path}: kernel ELF, {info.size} bytes",
             f"  OSv version: {d.get('osv_version') or 'not found'}",
             f"  e_entry {info.e_entry:#x}, start32 slot -> {info.start32:#x}",
             "  entry points:"]
    for e in info.entries:
        lines.append(f"    {e['protocol']:8} {e['address']:#x}  ({e['source']}; {e['provider']})")
    lines.append("  segments:")
    for s in info.segments:
        role = f" [{s['role']}]" if "role" in s else ""
        lines.append(f"    {s['type_name']:16} off {s['offset']:#9x} vaddr {s['vaddr']:#12x} "
                     f"paddr {s['paddr']:#10x} filesz {s['filesz']:#9x} memsz {s['memsz']:#9x}{role}")
    for n in info.notes:
        val = f" value {n['value']:#x}" if n["value"] is not None else ""
        lines.append(f"  note {n['name']!r} type {n['type']} descsz {n['descsz']}{val}")
    if info.symbols:
        lines.append("  symbols: " + ", ".join(f"{k}={v:#x}" for k, v in sorted(info.symbols.items())))
    if d.get("bootfs_size") is not None:
        lines.append(f"  bootfs: {d['bootfs_size']} bytes")
    return "\n".join(lines)


class _Attrs:
    def __init__(self, d: dict):
        self.__dict__.update(d)


def describe_vmlinux_result(result: VmlinuxResult) -> str:
    """Human-readable rendering for ``osvkit build --format vmlinux``."""
    d = result.to_dict()
    lines = [f"wrote {d['output']} ({d['size']} bytes)"]
    if d["added"]:
        lines.append(f"  added: {', '.join(d['added'])} (stub segment at physical "
                     f"{d['stub_addr']:#x}, handover {d['handover']})")
    if d["kept"]:
        lines.append(f"  kept the existing entries: {', '.join(d['kept'])}")
    if not d["added"]:
        lines.append("  nothing to add: the kernel already has every requested entry "
                     "(--replace-entry to replace them)")
    was = f" (was {d['original_entry']:#x})" if d["entry"] != d["original_entry"] else ""
    lines.append(f"  e_entry {d['entry']:#x}{was}")
    if d["pvh_entry"] is not None:
        lines.append(f"  PVH entry {d['pvh_entry']:#x}")
    lines.append(f"  start32 {d['start32']:#x}")
    return "\n".join(lines)
