"""The kernel ELF from anything that holds one: a kernel file or an OSv disk image.

:func:`extract_kernel` takes a path and returns the kernel's bytes with where they came from:

* **a 64-bit kernel ELF** (OSv's ``loader-stripped.elf``, or osvkit's own ``--format
  vmlinux`` output): returned as it is.  osvkit's vmlinux keeps OSv's boot contract (it only
  adds a stub segment, program headers and a note, see :mod:`osvkit.image.vmlinux`), so it
  builds a usr.img that boots, and building a vmlinux from it again re-uses its stubs;
  "un-patching" it would guess at bytes the patch replaced;
* **OSv's vmlinuz.bin** (the 2 KiB Linux setup header and 32-bit stub, then
  ``loader-stripped.elf`` at byte 2048): the ELF after the stub;
* **OSv's lzloader.elf** (the 32-bit decompressor with the compressed kernel);
* **a disk image**, raw or qcow2 (:mod:`osvkit.disk`): OSv's ``loader.img`` / ``usr.img``
  (made by OSv's scripts or Capstan) or osvkit's ``usr.img``.  The boot sector says how much
  it loads from LBA 128 (osvkit's boot16: ``payload_sectors``; OSv's: ``count32`` 32 KiB
  chunks), and that payload is one of:

  - osvkit's decompressor + lz blob: the blob decompressed; its length is checked against
    the ``kernel_size`` the payload header records;
  - OSv's ``lzloader.elf``: the blob is found through its symbols
    ``_binary_loader_stripped_elf_lz_start`` / ``_size`` (the file is copied raw to 1 MiB
    and the decompressor reads the blob at that address, so file offset = address - 1 MiB),
    or, in a stripped lzloader, by scanning for a segment table whose payloads end exactly
    where it starts.  OSv's ``lz`` tool stores the kernel in 1 MiB segments with the exact
    sizes in its table, so the result is byte-identical to the ``loader-stripped.elf`` the
    image was built from.  Kernels before OSv's 2018 "almost-in-place decompression" are one
    FastLZ block, decoded whole;
  - an uncompressed ELF64 (osvkit's ``--compression none``): it is zero-padded to whole
    sectors, so its length is the ELF's own extent (the end of the last segment, section or
    header table).

Anything else -- an image whose payload area is empty or unrecognised, a truncated image, a
blob that does not decompress to an ELF64 -- is a one-line :class:`FormatError` saying that
the image holds no recoverable kernel.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass

from .. import layout
from ..boot import boot16, lzdecomp
from ..disk import is_disk_head, open_disk
from ..disk.files import open_image_fd
from ..errors import FormatError, KernelError
from ..fileio import check_not_input, write_atomic
from ..structs import lzdecomp as lz_schema
from ..structs import mbr as mbr_schema
from ..structs.lzloader import LZ_COUNT_SIZE, LZ_ENTRY_SIZE, LZ_HEADER_SIZE, lz_table_size
from . import lzloader

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
HEAD_SIZE = 4096
VMLINUZ_HDRS_OFFSET = 0x202
VMLINUZ_KERNEL_OFFSET = 0x800
"""OSv's vmlinuz.bin: ``HdrS`` at 0x202 (Linux setup header), loader-stripped.elf at 2 KiB."""
LZ_BLOB_SYMBOLS = ("_binary_loader_stripped_elf_lz_start", "_binary_loader_stripped_elf_lz_size")
SCAN_LIMIT = 0x10000
"""How far into a stripped lzloader.elf the blob is looked for (OSv puts it within 0x3000)."""
MAX_SEGMENTS = 4096
"""A 4 GiB kernel: OSv's check-image-size.sh refuses anything larger."""
PAYLOAD_HEAD = 64 * layout.KiB
"""Bytes of the payload read first, to learn how long it is."""
MAX_PAYLOAD = layout.IDENTITY_MAP_END - layout.KERNEL_BASE_ADDR
"""No kernel below 1 GiB, compressed or not, needs more."""
OSV_CHUNK = 32 * layout.KiB
"""OSv's boot16 loads ``count32`` chunks of this size from LBA 128."""
NO_KERNEL = "an image with a kernel (OSv's or osvkit's usr.img/loader.img), or a kernel ELF"


@dataclass
class ExtractedKernel:
    """A kernel ELF and where it came from."""

    path: str
    source: str
    """``kernel-elf``, ``vmlinuz``, ``lzloader-elf`` or ``disk-image``."""
    payload: str
    """``elf`` (as it is), ``osvkit-lz``, ``osv-lzloader``, ``osv-lzloader-single-block`` or
    ``uncompressed``."""
    data: bytes
    image_format: str | None = None
    """``raw`` or ``qcow2`` for a disk image."""
    boot: str | None = None
    """The boot sector of a disk image: ``osvkit-boot16``, ``osv-boot16`` or ``unknown``."""
    output: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "source": self.source, "payload": self.payload,
                "image_format": self.image_format, "boot": self.boot, "size": len(self.data),
                "sha256": hashlib.sha256(self.data).hexdigest(), "output": self.output}

    def describe(self) -> str:
        """One line: what was written and where the kernel came from."""
        if self.image_format is None:
            where = f"{self.payload} in a {self.source} file"
        else:
            where = (f"{self.payload} payload of a {self.image_format} disk image, "
                     f"{self.boot} boot sector")
        return f"wrote {self.output}: {len(self.data)} bytes ({where})"


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------
def extract_kernel(path) -> ExtractedKernel:
    """The kernel ELF held by ``path`` (see the module docstring for what is understood)."""
    path = os.fspath(path)
    fd = open_image_fd(path, what="a kernel ELF file or a disk image holding one")
    try:
        head = os.pread(fd, HEAD_SIZE, 0)
        if head[:4] == ELF_MAGIC and len(head) > 4 and head[4] == ELFCLASS64:
            return ExtractedKernel(path, "kernel-elf", "elf", _read_all(fd, path))
        if head[:4] == ELF_MAGIC and len(head) > 4 and head[4] == ELFCLASS32:
            data = _read_all(fd, path)
            try:
                how, kernel = kernel_from_lzloader(data, path=path)
            except FormatError as exc:
                raise KernelError(f"ELF class 1 (ELF32), and not OSv's lzloader.elf "
                                  f"({exc.what})", path=path,
                                  expected="an ELF64 x86-64 kernel, or an image holding one"
                                  ) from None
            return ExtractedKernel(path, "lzloader-elf", how, kernel)
        if head[VMLINUZ_HDRS_OFFSET:VMLINUZ_HDRS_OFFSET + 4] == b"HdrS" and \
                head[VMLINUZ_KERNEL_OFFSET:VMLINUZ_KERNEL_OFFSET + 4] == ELF_MAGIC:
            data = _read_all(fd, path)[VMLINUZ_KERNEL_OFFSET:]
            return ExtractedKernel(path, "vmlinuz", "elf", _check_elf64(data, path, "vmlinuz"))
    finally:
        os.close(fd)
    if is_disk_head(head):
        return kernel_from_disk(path)
    raise KernelError("not an ELF file", path=path,
                      expected="an ELF64 x86-64 kernel, or a disk image holding one")


def read_kernel_bytes(path) -> bytes:
    """Only the bytes of :func:`extract_kernel`."""
    return extract_kernel(path).data


def load_any_kernel(path):
    """:func:`osvkit.image.kernel.check_kernel` of the kernel ``path`` holds: what ``osvkit
    build KERNEL`` uses, so KERNEL may be an image too.  ``Kernel.path`` is ``path``."""
    from .kernel import check_kernel

    path = os.fspath(path)
    ex = extract_kernel(path)
    try:
        return check_kernel(ex.data, path=path)
    except FormatError as exc:
        if ex.source == "kernel-elf":
            raise exc.with_path(path) from None
        raise type(exc)(f"the kernel recovered from this {ex.source}: {exc.what}", path=path,
                        expected=exc.expected) from None


def write_kernel(path, output) -> ExtractedKernel:
    """Extract the kernel of ``path`` into ``output`` (atomically, mode 0755)."""
    check_not_input(output, [("the image to extract from", path)])
    ex = extract_kernel(path)
    write_atomic(output, ex.data, mode=0o755)
    ex.output = os.fspath(output)
    return ex


# ------------------------------------------------------------------------------------------
# disk images
# ------------------------------------------------------------------------------------------
def kernel_from_disk(path) -> ExtractedKernel:
    """The kernel in the payload at LBA 128 of a raw or qcow2 OSv/osvkit disk image."""
    with open_disk(path) as disk:
        sector = disk.read_upto(0, layout.SECTOR_SIZE)
        if len(sector) < layout.SECTOR_SIZE or sector[layout.MBR_SIGNATURE_OFFSET:] != layout.MBR_BOOT_SIGNATURE:
            raise FormatError("no boot sector (no 55 AA at byte 510)", path=path,
                              expected=NO_KERNEL)
        if boot16.is_osvkit_boot16(sector):
            try:
                hdr = boot16.parse_header(sector)
            except FormatError as exc:
                raise exc.with_path(path) from None
            boot, load_size = "osvkit-boot16", hdr.payload_sectors * layout.SECTOR_SIZE
        else:
            boot = "osv-boot16" if boot16.is_osv_boot16(sector) else "unknown"
            load_size = mbr_schema.MBR.parse(sector).bootcode.count32 * OSV_CHUNK
        if disk.size <= layout.KERNEL_OFFSET:
            raise FormatError(f"the {disk.size}-byte image ends before LBA 128, where the "
                              "kernel would be: no kernel to recover", path=path,
                              expected=NO_KERNEL)
        if load_size == 0:
            raise FormatError("the boot sector loads nothing from LBA 128 (size field 0): "
                              "no kernel to recover", path=path, expected=NO_KERNEL)
        head = disk.read_upto(layout.KERNEL_OFFSET, min(load_size, PAYLOAD_HEAD))
        need = payload_length(head, load_size)
        if need > MAX_PAYLOAD:
            raise FormatError(f"the payload at LBA 128 claims {need} bytes, more than a kernel "
                              "below 1 GiB can take", path=path, expected=NO_KERNEL)
        payload = disk.read_upto(layout.KERNEL_OFFSET, need)
        fmt = disk.format
    truncated = len(payload) < need
    try:
        kind, kernel = kernel_from_payload(payload, path=path)
    except FormatError as exc:
        if truncated:
            raise FormatError(f"truncated: the payload at LBA 128 needs {need} bytes but the "
                              f"image holds {len(payload)} ({exc.what})", path=path,
                              expected="a complete image") from None
        raise
    return ExtractedKernel(path, "disk-image", kind, kernel, image_format=fmt, boot=boot)


def payload_length(head: bytes, load_size: int) -> int:
    """How many of the ``load_size`` bytes a boot sector loads the payload uses, judged from
    its first bytes (osvkit's header, or the ELF's header tables), so that a header claiming
    terabytes on a sparse image is not read whole."""
    need = load_size
    try:
        if lzdecomp.is_payload(head):
            hdr = lz_schema.PayloadHeader.parse(head[:lz_schema.HEADER_SIZE])
            need = hdr.blob_offset + hdr.blob_size
        elif head[:4] == ELF_MAGIC:
            from elftools.elf.elffile import ELFFile

            elf = ELFFile(io.BytesIO(head))
            h = elf.header
            need = max([h["e_ehsize"], h["e_phoff"] + h["e_phnum"] * h["e_phentsize"],
                        h["e_shoff"] + h["e_shnum"] * h["e_shentsize"]]
                       + [seg["p_offset"] + seg["p_filesz"] for seg in elf.iter_segments()])
    except Exception:    # noqa: BLE001 -- a damaged header: the whole load is examined
        need = load_size
    return min(need, load_size)


def kernel_from_payload(payload: bytes, *, path=None) -> tuple[str, bytes]:
    """(payload kind, kernel ELF) from the bytes a boot sector loads from LBA 128."""
    if lzdecomp.is_payload(payload):
        hdr, blob = lzdecomp.parse_payload(payload, path=path)
        kernel = decompress_segments(blob, path=path)
        if len(kernel) != hdr.kernel_size:
            raise FormatError(f"the lz blob decompresses to {len(kernel)} bytes, the payload "
                              f"header says {hdr.kernel_size}", path=path,
                              expected="a consistent osvkit payload")
        return "osvkit-lz", _check_elf64(kernel, path, "decompressed kernel")
    if payload[:4] == ELF_MAGIC and len(payload) > 4 and payload[4] == ELFCLASS64:
        end = elf64_extent(payload, path=path)
        return "uncompressed", payload[:end]
    if payload[:4] == ELF_MAGIC and len(payload) > 4 and payload[4] == ELFCLASS32:
        how, kernel = kernel_from_lzloader(payload, path=path)
        return how, kernel
    what = "all zeros" if not any(payload) else f"unrecognised bytes ({payload[:8].hex(' ')} ...)"
    raise FormatError(f"no kernel at LBA 128: the payload is {what}", path=path,
                      expected=NO_KERNEL)


# ------------------------------------------------------------------------------------------
# OSv's lzloader.elf
# ------------------------------------------------------------------------------------------
def locate_lz_blob(elf32: bytes, *, path=None) -> tuple[int, int | None, str]:
    """(file offset, size or None, how it was found) of the compressed kernel inside OSv's
    lzloader.elf: from its symbols (``symbol``) or, when it is stripped, by a scan for a
    segment table (``scan``, size unknown)."""
    found = _blob_by_symbols(elf32, path)
    if found is not None:
        return found[0], found[1], "symbol"
    return find_lz_blob(elf32, path=path), None, "scan"


def kernel_from_lzloader(elf32: bytes, *, path=None) -> tuple[str, bytes]:
    """(``osv-lzloader`` or ``osv-lzloader-single-block``, kernel) from OSv's lzloader.elf."""
    offset, size, _ = locate_lz_blob(elf32, path=path)
    if size is None:
        blob = elf32[offset:]
        return "osv-lzloader", _check_elf64(decompress_segments(blob, path=path), path,
                                            "decompressed kernel")
    if offset + size > len(elf32):
        raise FormatError(f"the lzloader's compressed kernel ({size} bytes at offset "
                          f"{offset:#x}) runs past the {len(elf32)} bytes present", path=path,
                          expected="a complete lzloader.elf")
    blob = elf32[offset:offset + size]
    try:
        info = lzloader.parse(blob, path=path)
    except FormatError:
        info = None
    if info is not None and info.size == size:
        return "osv-lzloader", _check_elf64(decompress_segments(blob, path=path), path,
                                            "decompressed kernel")
    try:    # OSv before 2018: the whole kernel as one FastLZ block
        kernel = lzloader.fastlz_decompress(blob)
    except FormatError as exc:
        raise FormatError(f"the lzloader's compressed kernel is neither OSv's segment format "
                          f"nor one FastLZ block ({exc.what})", path=path,
                          expected="OSv's lzloader.elf") from None
    return "osv-lzloader-single-block", _check_elf64(kernel, path, "decompressed kernel")


def _blob_by_symbols(elf32: bytes, path) -> tuple[int, int] | None:
    """(file offset, size) of the blob from lzloader.elf's symbol table, or None."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    try:
        elf = ELFFile(io.BytesIO(elf32))
        symtab = elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            return None
        start = symtab.get_symbol_by_name(LZ_BLOB_SYMBOLS[0])
        size = symtab.get_symbol_by_name(LZ_BLOB_SYMBOLS[1])
        if not start or not size:
            return None
        return start[0]["st_value"] - layout.LZ_BLOB_ADDR, size[0]["st_value"]
    except (ELFError, ValueError, KeyError, OverflowError, MemoryError) as exc:
        raise FormatError(f"the 32-bit ELF at LBA 128 is malformed ({exc})", path=path,
                          expected="OSv's lzloader.elf") from None


def find_lz_blob(elf32: bytes, *, path=None) -> int:
    """Offset of a segment-format lz blob in a stripped lzloader.elf: the first offset whose
    4-byte ``info_offset`` points at a table that :func:`osvkit.image.lzloader.parse`
    accepts (payloads ending exactly where the table starts)."""
    # the two words are read with int.from_bytes: this loop runs at every offset, where a
    # construct parse costs ten times as much
    limit = min(len(elf32) - lz_table_size(1), SCAN_LIMIT)
    for offset in range(0, max(limit, 0)):
        info_offset = int.from_bytes(elf32[offset:offset + LZ_HEADER_SIZE], "little", signed=True)
        table = offset + info_offset
        if info_offset < LZ_HEADER_SIZE + LZ_ENTRY_SIZE or table + lz_table_size(1) > len(elf32):
            continue
        n = int.from_bytes(elf32[table:table + LZ_COUNT_SIZE], "little", signed=True)
        if not 1 <= n <= MAX_SEGMENTS:
            continue
        try:
            lzloader.parse(elf32[offset:table + lz_table_size(n)])
        except FormatError:
            continue
        return offset
    raise FormatError("no compressed kernel found in the 32-bit ELF at LBA 128 (no lz symbols, "
                      "no segment table)", path=path, expected="OSv's lzloader.elf")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def decompress_segments(blob: bytes, *, path=None) -> bytes:
    """The kernel from a segment-format lz blob (FastLZ in C through pyfastlz; every
    segment's length is checked against its table entry)."""
    import fastlz

    info = lzloader.parse(blob, path=path)
    if info.uncompressed_size > MAX_PAYLOAD:
        raise FormatError(f"the lz segment table promises {info.uncompressed_size} bytes, more "
                          "than a kernel below 1 GiB", path=path, expected=NO_KERNEL)
    out = bytearray()
    for seg in info.segments:
        data = blob[seg.offset:seg.offset + seg.ssize]
        if not seg.compressed:
            out += data
            continue
        try:
            chunk = fastlz.decompress(seg.usize.to_bytes(4, "little") + data)
        except Exception as exc:   # pyfastlz's own error class; bad data, not a bug here
            raise FormatError(f"lz segment {seg.index} does not decompress ({exc})", path=path,
                              expected="a FastLZ level 1 or 2 block") from None
        if len(chunk) != seg.usize:
            raise FormatError(f"lz segment {seg.index} decompresses to {len(chunk)} bytes",
                              path=path, expected=f"{seg.usize} bytes")
        out += chunk
    return bytes(out)


def elf64_extent(data: bytes, *, path=None) -> int:
    """Where an ELF64 file inside zero-padded sectors ends: the furthest of its header
    tables, segments and (non-NOBITS) sections."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        h = elf.header
        end = max(h["e_ehsize"], h["e_phoff"] + h["e_phnum"] * h["e_phentsize"],
                  h["e_shoff"] + h["e_shnum"] * h["e_shentsize"])
        for seg in elf.iter_segments():
            end = max(end, seg["p_offset"] + seg["p_filesz"])
        for sec in elf.iter_sections():
            if sec["sh_type"] != "SHT_NOBITS":
                end = max(end, sec["sh_offset"] + sec["sh_size"])
    except (ELFError, ValueError, KeyError, OverflowError, MemoryError) as exc:
        raise FormatError(f"the uncompressed kernel at LBA 128 is malformed or cut short "
                          f"({exc})", path=path, expected="a complete ELF64 kernel") from None
    if end > len(data):
        raise FormatError(f"the uncompressed kernel at LBA 128 needs {end} bytes, "
                          f"{len(data)} are loaded", path=path, expected="a complete ELF64 kernel")
    return end


def _check_elf64(data: bytes, path, what: str) -> bytes:
    if data[:4] != ELF_MAGIC or len(data) < 5 or data[4] != ELFCLASS64:
        raise FormatError(f"the {what} is not an ELF64 file (starts {data[:8].hex(' ')})",
                          path=path, expected="an ELF64 kernel")
    return data


def _read_all(fd: int, path) -> bytes:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    if len(data) != size:
        raise FormatError(f"short read: {len(data)} of {size} bytes", path=path)
    return data
