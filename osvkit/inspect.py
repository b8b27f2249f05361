"""``osvkit inspect``: say what a file is and decode it.

:func:`inspect_file` dispatches on the file's type through :data:`DETECTORS`, a list of
``(name, detect(head: bytes) -> bool, inspect(path) -> dict)``; other parts of osvkit add their
branches (kernel ELFs, ROFS images) by appending to it.

Disk images (raw or qcow2 with an MBR) are decoded by :func:`inspect_usr_image`: the boot
sector (osvkit's boot16 or OSv's, and their load-size fields), the command line, the partition
table (both CHS decodings), the payload at LBA 128 (osvkit's decompressor + lz blob, an
uncompressed kernel, or OSv's ``lzloader.elf``), the lz segment table and compression ratio,
and a summary of the kernel ELF recovered by decompressing it in Python.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from typing import Callable

from . import layout
from .boot import boot16, lzdecomp, mbr
from .errors import FormatError, KernelError, OsvkitError
from .fileio import read_head
from .disk import is_disk_head
from .image import lzloader
from .image.kernel import check_kernel, osv_version
from .structs import elf
from .structs.mbr import OSV_DISK_SIGNATURE

HEAD_SIZE = 4096


@dataclass
class InspectResult:
    path: str
    kind: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, **self.details}

    def describe(self) -> str:
        """What ``osvkit inspect`` prints (:func:`describe`)."""
        return describe(self)


DETECTORS: list[tuple[str, Callable[[bytes], bool], Callable[[str], dict]]] = []
"""(kind, detect(first 4 KiB), inspect(path) -> details dict), tried in order."""
DESCRIBERS: dict[str, Callable[["InspectResult"], str]] = {}
"""kind -> human rendering, for kinds whose own part renders them (ROFS, kernel ELFs)."""


def inspect_file(path) -> InspectResult:
    """Detect what ``path`` is and decode it; FormatError for unknown files."""
    path = os.fspath(path)
    with contextlib.suppress(OSError):       # a missing file: read_head says so
        if stat.S_ISFIFO(os.stat(path).st_mode):
            # checked before opening: opening a pipe with no writer blocks, and a detector's
            # read would consume the head the handler needs
            raise FormatError("cannot seek (a pipe?)", path=path,
                              expected="a file (inspect reads it more than once)")
    head = read_head(path, HEAD_SIZE)
    for kind, detect, handler in DETECTORS:
        if detect(head):
            return InspectResult(path, kind, handler(path))
    raise FormatError("unrecognised file type", path=path,
                      expected="a usr.img disk image (raw or qcow2)")


# ------------------------------------------------------------------------------------------
# disk images
# ------------------------------------------------------------------------------------------
def inspect_usr_image(path) -> dict:
    from .image.usrimg import open_image

    path = os.fspath(path)
    with open_image(path) as (read, fmt, size):
        sector = read(0, layout.SECTOR_SIZE)
        info = _parse_boot_sector(sector, path)
        out: dict = {"format": fmt, "virtual_size": size}
        area = read(layout.CMDLINE_OFFSET, layout.CMDLINE_AREA_SIZE)
        raw_cmd = area.split(b"\0", 1)[0]
        out["cmdline"] = raw_cmd.decode("utf-8", "replace")
        out["cmdline_bytes"] = len(raw_cmd)
        boot, load_size = _boot_sector(sector, info)
        out["boot"] = boot
        out["partitions"] = [p.to_dict() for p in info.partitions]
        for p in out["partitions"]:
            p["filesystem"] = _partition_filesystem(path, p, read)
        # a damaged header can claim up to 2 TiB: read no more than the image holds
        available = max(0, size - layout.KERNEL_OFFSET)
        payload = read(layout.KERNEL_OFFSET, min(load_size, available)) if load_size else b""
        if len(payload) < load_size:
            out["truncated"] = True
        out["payload"], kernel = _payload(payload, path)
        if kernel is not None:
            try:
                k = check_kernel(kernel, path=f"{path} (kernel)")
                out["kernel"] = _kernel_summary(k)
            except KernelError as exc:
                out["kernel"] = {"size": len(kernel), "error": str(exc)}
    return out


def _parse_boot_sector(sector: bytes, path: str):
    """The MBR of an image; FormatError when there is none."""
    try:
        return mbr.parse_mbr(sector, path=path)
    except FormatError as exc:
        if getattr(exc, "field", None) in ("boot_signature", None):
            raise FormatError("no boot sector (no 55 AA at byte 510)", path=path,
                              expected="an MBR disk image") from None
        raise


def _boot_sector(sector: bytes, info) -> tuple[dict, int]:
    """What boots the image, and how many payload bytes it loads from LBA 128.  A damaged
    osvkit boot16 header is reported (``kind`` "unknown", ``error``) and OSv's count32 used."""
    boot = {"count32": info.count32, "count32_bytes": info.osv_kernel_size,
            "disk_signature": info.disk_signature,
            "vso_signature": info.disk_signature == OSV_DISK_SIGNATURE}
    if boot16.is_osvkit_boot16(sector):
        try:
            hdr = boot16.parse_header(sector)
        except FormatError as exc:
            boot.update(kind="unknown", error=exc.line())
            return boot, info.osv_kernel_size
        boot.update(kind="osvkit-boot16", version=hdr.version,
                    payload_sectors=hdr.payload_sectors, load_addr=hdr.load_addr,
                    decompressor_entry=hdr.decompressor_entry)
        return boot, hdr.payload_sectors * layout.SECTOR_SIZE
    if boot16.is_osv_boot16(sector) and boot["vso_signature"]:
        boot["kind"] = "osv-boot16"
    else:
        boot["kind"] = "unknown"
    return boot, info.osv_kernel_size


def _payload(payload: bytes, path: str) -> tuple[dict, bytes | None]:
    """Describe the payload at LBA 128; return (details, kernel bytes or None).  The kernel
    is recovered by :mod:`osvkit.image.extract` (the code ``kernel extract`` uses); a kernel
    that cannot be recovered is reported in ``error`` and the rest is still described."""
    from .image import extract

    if not payload:
        return {"kind": "none", "size": 0}, None
    d: dict = {"size": len(payload)}
    if lzdecomp.is_payload(payload):
        hdr, blob = lzdecomp.parse_payload(payload, path=path)
        d.update(kind="osvkit-lz", compression="fastlz", decompressor_size=hdr.code_size,
                 blob_offset=hdr.blob_offset, lz=lzloader.parse(blob, path=path).to_dict(),
                 kernel_size=hdr.kernel_size)
    elif payload[:4] == extract.ELF_MAGIC and payload[4:5] == bytes([elf.ELFCLASS64]):
        d.update(kind="kernel-elf", compression="none")
    elif payload[:4] == extract.ELF_MAGIC and payload[4:5] == bytes([elf.ELFCLASS32]):
        offset, size, how = extract.locate_lz_blob(payload, path=path)
        blob = payload[offset:offset + size] if size is not None else payload[offset:]
        d.update(kind="osv-lzloader", compression="fastlz", blob_offset=offset,
                 blob_found_by=how)
        try:
            d["lz"] = lzloader.parse(blob, path=path).to_dict()
        except FormatError:
            d["lz"] = None          # OSv before 2018: the kernel is one FastLZ block
    else:
        return {"kind": "unknown", "size": len(payload)}, None
    try:
        _, kernel = extract.kernel_from_payload(payload, path=path)
    except OsvkitError as exc:
        d["error"] = exc.line()
        return d, None
    if d["kind"] == "osv-lzloader":
        d["kernel_size"] = len(kernel)
    return d, kernel


def _kernel_summary(k) -> dict:
    return {"size": len(k.data), "entry": k.entry, "start32": k.start32,
            "start32_slot": layout.START32_SLOT_ADDR, "pvh_entry": k.pvh_entry,
            "phys_end": k.phys_end, "segments": len(k.segments), "notes": k.notes,
            "symbols": k.symbols, "osv_version": osv_version(k.data)}


def _partition_filesystem(path, part: dict, read) -> dict | None:
    """What the partition holds: a ROFS tree summary, or None when empty or unknown."""
    from .rofs.reader import detect_rofs_head, inspect_rofs

    if not part["sector_count"]:
        return None
    if not detect_rofs_head(read(part["offset"], 16)):
        return {"format": "unknown"}
    return inspect_rofs(path, partition=part["index"]).summary()


def describe(result: InspectResult) -> str:
    """Human-readable rendering of :func:`inspect_file`'s result."""
    if result.kind in DESCRIBERS:  # kinds whose own part renders them
        return DESCRIBERS[result.kind](result)
    d = result.to_dict()
    lines = [f"{d['path']}: {d['kind']}"]
    if result.kind != "disk-image":
        for k, v in result.details.items():
            lines.append(f"  {k}: {v}")
        return "\n".join(lines)
    lines.append(f"  format: {d['format']}, virtual size {d['virtual_size']} bytes")
    b = d["boot"]
    lines.append(f"  boot sector: {b['kind']}; count32 {b['count32']} "
                 f"({b['count32_bytes']} bytes); VSO signature: {str(b['vso_signature']).lower()}")
    if b.get("error"):
        lines.append(f"    not recognised: {b['error']}")
    if b["kind"] == "osvkit-boot16":
        lines.append(f"    payload_sectors {b['payload_sectors']}, load_addr {b['load_addr']:#x}, "
                     f"decompressor_entry {b['decompressor_entry']:#x}")
    lines.append(f"  cmdline ({d['cmdline_bytes']} bytes): {d['cmdline']!r}")
    for p in d["partitions"]:
        if not p["system_id"] and not p["lba_start"] and not p["sector_count"]:
            continue
        lines.append(f"  partition {p['index']}: type {p['system_id']:#04x} lba {p['lba_start']} "
                     f"sectors {p['sector_count']} (offset {p['offset']:#x}, size {p['size']})")
        lines.append(f"    CHS osv {tuple(p['start_chs_osv'])}-{tuple(p['end_chs_osv'])}, "
                     f"standard {tuple(p['start_chs_standard'])}-{tuple(p['end_chs_standard'])}, "
                     f"osv_usable {str(p['osv_usable']).lower()}")
        fs = p.get("filesystem")
        if fs and fs["format"] == "rofs":
            lines.append(f"    filesystem: ROFS, {fs['files']} files ({fs['data_bytes']} bytes), "
                         f"{fs['directories']} directories, {fs['symlinks']} symlinks")
        elif fs:
            lines.append("    filesystem: unknown")
    pl = d["payload"]
    lines.append(f"  payload at LBA 128: {pl['kind']}, compression {pl.get('compression', '?')}, "
                 f"{pl['size']} bytes")
    if "lz" in pl:
        lz = pl["lz"]
        lines.append(f"    lz blob: {lz['size']} bytes for {lz['uncompressed_size']} "
                     f"(ratio {lz['ratio']:.3f}), {len(lz['segments'])} segments")
        for s in lz["segments"]:
            lines.append(f"      segment {s['index']}: {s['usize']} -> {s['ssize']} "
                         f"{'fastlz' if s['compressed'] else ('empty' if not s['usize'] else 'raw')}")
    k = d.get("kernel")
    if k:
        if "error" in k:
            lines.append(f"  kernel: {k['error']}")
        else:
            pvh = f"{k['pvh_entry']:#x}" if k["pvh_entry"] is not None else "none"
            lines.append(f"  kernel: {k['size']} bytes, entry {k['entry']:#x}, start32 {k['start32']:#x} "
                         f"(slot {k['start32_slot']:#x}), pvh {pvh}, {len(k['notes'])} notes")
            lines.append(f"    OSv version: {k.get('osv_version') or 'not found'}")
            for name, value in k["symbols"].items():
                lines.append(f"    {name} = {value:#x}")
    if d.get("truncated"):
        lines.append("  WARNING: the image is shorter than the payload the boot sector loads")
    return "\n".join(lines)


DETECTORS.append(("disk-image", is_disk_head, inspect_usr_image))

# ROFS images (osvkit.rofs.reader)
from .rofs.reader import detect_rofs_head, inspect_rofs_details  # noqa: E402

DETECTORS.append(("rofs", detect_rofs_head, inspect_rofs_details))


def _describe_rofs(result: InspectResult) -> str:
    from .rofs.reader import describe_rofs

    return describe_rofs(result.path, result.details)


DESCRIBERS["rofs"] = _describe_rofs



# kernel ELFs: the boot contract (osvkit.image.vmlinux)
def _is_elf(head: bytes) -> bool:
    return head.startswith(elf.ELFMAG)


def _inspect_kernel_elf(path) -> dict:
    from .image.vmlinux import inspect_kernel_elf

    d = inspect_kernel_elf(path).to_dict()
    d.pop("path", None)
    d.pop("kind", None)
    return d


def _describe_kernel_elf(result: InspectResult) -> str:
    from .image.vmlinux import describe_inspection_dict

    return describe_inspection_dict(result.to_dict())


DETECTORS.append(("kernel-elf", _is_elf, _inspect_kernel_elf))
DESCRIBERS["kernel-elf"] = _describe_kernel_elf

# Linux kernels (osvkit.image.linux): tried first -- a bzImage has 55 AA at 510 like a disk
# image, and a Linux vmlinux is an ELF that does not follow OSv's contract
from .image import linux as _linux  # noqa: E402

DETECTORS[:0] = [("linux-bzimage", _linux.is_bzimage_head, _linux.inspect_bzimage),
                 ("linux-vmlinux", _linux.is_linux_elf_head, _linux.inspect_vmlinux)]
DESCRIBERS["linux-bzimage"] = _linux.describe_bzimage
DESCRIBERS["linux-vmlinux"] = _linux.describe_vmlinux
