"""Generate the conformance kernel ("probe"): a tiny ELF64 that keeps OSv's boot contract.

The probe stands in for OSv's ``loader-stripped.elf`` wherever osvkit needs a kernel whose
behaviour it fully knows.  It is entered exactly like OSv (``start32`` through the slot at
+0x800, or the ELF entry), switches to long mode the way OSv's ``boot.S`` does, and prints a
line-oriented report of everything the boot path handed it on COM1 (see
:mod:`osvkit.probe.report` for the format), then signals boot-done and powers off like OSv.

The parts, by role:

* :mod:`~osvkit.probe.layout`: file offsets, bss, save area, the values the probe sets;
* :mod:`~osvkit.probe.program`: the code and data being laid out, and assembled;
* the routines: :mod:`~osvkit.probe.console` (the report writer),
  :mod:`~osvkit.probe.start64` (the report, with :mod:`~osvkit.probe.bootinfo`,
  :mod:`~osvkit.probe.e820`, :mod:`~osvkit.probe.mptable`, :mod:`~osvkit.probe.partition`
  and :mod:`~osvkit.probe.checksum`), :mod:`~osvkit.probe.entry_report` (the optional ELF
  entry) and :mod:`~osvkit.probe.start32`;
* :mod:`~osvkit.probe.payload` (filler for ``size``), :mod:`~osvkit.probe.info` (the info
  block and its checksums) and :mod:`~osvkit.probe.elf` (the ELF container).

``e_entry`` is the physical address of ``start32`` (OSv kernels without a vmlinux entry have
only start32; a Firecracker-style loader must not jump there in 64-bit mode) or, with
``entry_report=True``, the physical address of the ELF entry routine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError
from ..structs.elf import STT_FUNC, STT_OBJECT
from . import checksum, console, elf, mptable, start32, start64
from . import entry_report as elf_entry
from .info import INFO_SIZE, ProbeInfo, StartSlot, read_info
from .info import checksum as adler32
from .layout import (BASE, BSS_L4, CODE_OFFSET, DATA_OFFSET, FLAG_ENTRY_REPORT, INFO_OFFSET,
                     INFO_VERSION, MAX_SIZE, MIN_SIZE_ALIGN, SLOT_OFFSET, VM_SHIFT, align)
from .payload import payload
from .program import Program

_PASS1_FILESZ = 0x100000    # any: the code's size does not depend on the bss address


def _program(filesz: int, entry_report: bool) -> Program:
    """Lay out and assemble every routine for a PT_LOAD of ``filesz`` bytes."""
    p = Program(filesz, entry_report)
    console.emit(p)
    checksum.emit(p)
    mptable.emit(p)
    start64.emit(p)
    if entry_report:
        elf_entry.emit(p)
    start32.emit(p)
    return p


def _symbols(p: Program) -> dict[str, elf.Symbol]:
    syms = {
        "start32": elf.Symbol(p.sym["start32"], ".text", STT_FUNC),
        "start64": elf.Symbol(p.sym["start64"], ".text", STT_FUNC),
        "ident_pt_l4": elf.Symbol(p.bss + BSS_L4, ".bss", STT_OBJECT),
        "probe_info": elf.Symbol(BASE + INFO_OFFSET, ".data", STT_OBJECT),
    }
    if p.entry_report:
        syms["probe_elf_entry"] = elf.Symbol(p.sym["elf_entry"], ".text", STT_FUNC)
    return syms


def _file_size(size: int | None, payload_off: int, tail: int) -> int:
    """The PT_LOAD's p_filesz for a file of ``size`` bytes (None: no payload)."""
    if size is None:
        return payload_off
    min_size = payload_off + tail
    if size < min_size or size > MAX_SIZE:
        raise UsageError(f"probe size {size} out of range",
                         expected=f"{min_size} to {MAX_SIZE} bytes")
    return max((size - tail) & ~(MIN_SIZE_ALIGN - 1), payload_off)


def build_probe(size: int | None = None, *, entry_report: bool = False) -> bytes:
    """Return the probe kernel ELF.  ``size`` pads the file to exactly that many bytes with
    code-like payload inside the PT_LOAD."""
    tail = elf.tail_size(5 if entry_report else 4)
    code_size = len(_program(_PASS1_FILESZ, entry_report).code)
    code_end = CODE_OFFSET + code_size
    payload_off = align(code_end, 16)
    filesz = _file_size(size, payload_off, tail)
    p = _program(filesz, entry_report)
    if len(p.code) != code_size:  # pragma: no cover - layout invariant
        raise AssertionError("probe code size depends on its bss address")
    img = elf.Image(entry=p.sym["elf_entry"] if entry_report else p.sym["start32"],
                    filesz=filesz, code_end=code_end, payload_off=payload_off,
                    bss_off=p.bss - BASE)

    image = bytearray(filesz)
    image[DATA_OFFSET:DATA_OFFSET + len(p.data.buf)] = p.data.buf
    image[CODE_OFFSET:code_end] = p.code
    if filesz > payload_off:
        image[payload_off:filesz] = payload(filesz - payload_off)
    image[SLOT_OFFSET:SLOT_OFFSET + StartSlot.sizeof()] = StartSlot.build(p.sym["start32"])

    symtab, strtab = elf.symbol_tables(_symbols(p))
    shdrs = elf.section_headers(img, symtab=symtab, strtab=strtab, size=size)
    shoff = elf.section_table_offset(img, symtab, strtab, size)
    elf.write_headers(image, img, shoff)
    _write_info(image, filesz, entry_report)
    out = elf.append_tail(image, img, symtab, strtab, shoff, shdrs)
    if size is not None and len(out) != size:  # pragma: no cover - layout invariant
        raise AssertionError(f"probe is {len(out)} bytes, not {size}")
    return out


def _write_info(image: bytearray, filesz: int, entry_report: bool) -> None:
    """The info block, then its two checksums over the finished PT_LOAD."""
    info = dict(version=INFO_VERSION, image_len=filesz, header_sum=0, body_sum=0,
                flags=FLAG_ENTRY_REPORT if entry_report else 0)
    image[INFO_OFFSET:INFO_OFFSET + INFO_SIZE] = ProbeInfo.build(info)
    view = memoryview(image)
    info["header_sum"] = adler32(view[:SLOT_OFFSET])
    info["body_sum"] = adler32(view[SLOT_OFFSET:filesz])
    image[INFO_OFFSET:INFO_OFFSET + INFO_SIZE] = ProbeInfo.build(info)


def probe_symbols(data: bytes) -> dict[str, int]:
    """Physical addresses of the probe's routines, read back from ``.symtab``."""
    from ..image.kernel import check_kernel

    k = check_kernel(data)
    return {name: value - VM_SHIFT for name, value in k.symbols.items()}


@dataclass
class ProbeBuild:
    """What :func:`osvkit.probe.write_probe` wrote."""

    path: str | None
    size: int
    entry: int
    start32: int
    start64: int
    entry_report: bool
    image_len: int
    header_sum: int
    body_sum: int

    @classmethod
    def from_bytes(cls, data: bytes, path: str | None = None) -> "ProbeBuild":
        from ..image.kernel import check_kernel

        info = read_info(data)
        syms = probe_symbols(data)
        entry = check_kernel(data).entry
        return cls(path=path, size=len(data), entry=entry, start32=syms["start32"],
                   start64=syms["start64"], entry_report=bool(info.flags & FLAG_ENTRY_REPORT),
                   image_len=info.image_len, header_sum=info.header_sum, body_sum=info.body_sum)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: the file, its sizes and its entry points."""
        return (f"wrote {self.path}: {self.size} bytes, image {self.image_len} bytes, "
                f"start32 {self.start32:#x}, e_entry {self.entry:#x}"
                + (" (entry report)" if self.entry_report else ""))
