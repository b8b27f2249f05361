"""Recognise and describe Linux x86-64 kernels: the ``vmlinux`` ELF and the ``bzImage``.

``osvkit inspect`` uses this for a Linux kernel instead of checking OSv's boot contract.

* bzImage: the real-mode setup (``setup_sects`` + 1 sectors of 512 bytes, 4 when the field is
  0) starts with the boot sector; ``setup_header`` sits at 0x1F1 with ``boot_flag`` 0xAA55 at
  0x1FE and ``"HdrS"`` at 0x202 (Linux's x86 boot protocol).  The protected-mode part follows
  the setup; its compressed kernel starts ``payload_offset`` bytes into it and is
  ``payload_length`` bytes long, the last 4 of which are the uncompressed size (little
  endian).  ``kernel_version``, when not 0, points 0x200 bytes before a NUL-terminated version
  string.  The payload is decompressed when Python can (gzip, xz, lzma, bzip2; zstd with the
  ``zstandard`` module) and the vmlinux inside is described too.
* vmlinux: an ELF64 x86-64 executable whose segments are linked in the kernel's upper half
  (``p_vaddr`` from 0xffffffff80000000) and loaded at ``p_paddr``; its ``e_entry`` is the
  physical address of the 64-bit entry, the ``Xen`` note of type 18
  (``XEN_ELFNOTE_PHYS32_ENTRY``) the PVH entry, the ``"Linux version "`` banner its version.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import re
import zlib

from ..structs.bootparams import SetupHeader
from ..errors import FormatError
from ..fileio import open_input
from ..structs.base import ConstructError, u32le
from ..structs.elf import NHDR_SIZE, Elf64_Nhdr

SETUP_HEADER_OFFSET = 0x1F1
SETUP_HEADER_SIZE = SetupHeader.sizeof()
SECTOR = 512
KERNEL_HIGH_HALF = 0xFFFF_FFFF_8000_0000
"""Linux x86-64 links its image at __START_KERNEL_map (-2 GiB) and above."""
XEN_ELFNOTE_PHYS32_ENTRY = 18
EM_X86_64 = 62
MAX_DECOMPRESSED = 1 << 30
"""A kernel that claims more than this is not decompressed (a hostile size)."""

LOADFLAGS = {0x01: "LOADED_HIGH", 0x02: "KASLR_FLAG", 0x20: "QUIET_FLAG",
             0x40: "KEEP_SEGMENTS", 0x80: "CAN_USE_HEAP"}
XLOADFLAGS = {0x01: "XLF_KERNEL_64", 0x02: "XLF_CAN_BE_LOADED_ABOVE_4G",
              0x04: "XLF_EFI_HANDOVER_32", 0x08: "XLF_EFI_HANDOVER_64",
              0x10: "XLF_EFI_KEXEC", 0x20: "XLF_5LEVEL", 0x40: "XLF_5LEVEL_ENABLED"}
COMPRESSIONS = [            # (name, magic at the start of the payload)
    ("gzip", b"\x1f\x8b"),
    ("xz", b"\xfd7zXZ\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("bzip2", b"BZh"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("lzo", b"\x89LZO"),
    ("lzma", b"\x5d\x00\x00"),
]
XEN_NOTE_NAMES = {1: "INFO", 2: "ENTRY", 3: "HYPERCALL_PAGE", 4: "VIRT_BASE",
                  5: "PADDR_OFFSET", 6: "XEN_VERSION", 7: "GUEST_OS", 8: "GUEST_VERSION",
                  9: "LOADER", 10: "PAE_MODE", 11: "FEATURES", 12: "BSD_SYMTAB",
                  13: "HV_START_LOW", 14: "L1_MFN_VALID", 15: "SUSPEND_CANCEL",
                  16: "INIT_P2M", 17: "MOD_START_PFN", 18: "PHYS32_ENTRY"}


def flag_names(value: int, names: dict[int, str]) -> list[str]:
    out = [name for bit, name in names.items() if value & bit]
    rest = value & ~sum(names)
    if rest:
        out.append(f"{rest:#x}")
    return out


# ------------------------------------------------------------------------------------------
# detection (first 4 KiB of a file)
# ------------------------------------------------------------------------------------------
def is_bzimage_head(head: bytes) -> bool:
    """boot_flag 0xAA55 at 0x1FE and "HdrS" at 0x202: a Linux boot protocol >= 2.00 image."""
    return len(head) >= 0x206 and head[0x1FE:0x200] == b"\x55\xaa" and head[0x202:0x206] == b"HdrS"


def is_linux_elf_head(head: bytes) -> bool:
    """An ELF64 x86-64 file with a PT_LOAD linked in the kernel's upper half whose program
    headers are all in ``head``."""
    if head[:4] != b"\x7fELF" or len(head) < 64 or head[4] != 2:
        return False
    try:
        elf = _elf(head)
        if elf["e_machine"] != "EM_X86_64":
            return False
        return any(s["p_type"] == "PT_LOAD" and s["p_vaddr"] >= KERNEL_HIGH_HALF
                   for s in elf.iter_segments())
    except Exception:           # pyelftools raises many types on a cut or foreign header
        return False


def _elf(data: bytes):
    from elftools.elf.elffile import ELFFile

    return ELFFile(io.BytesIO(data))


# ------------------------------------------------------------------------------------------
# vmlinux
# ------------------------------------------------------------------------------------------
def linux_banner(data: bytes) -> str | None:
    """The kernel's ``Linux version ...`` string: the one with a build number (``#1``) when
    there are several (the kernel also keeps a copy without it)."""
    found = []
    start = 0
    while (pos := data.find(b"Linux version ", start)) >= 0 and len(found) < 16:
        end = data.find(b"\0", pos, pos + 512)
        found.append(data[pos:end if end >= 0 else pos + 512].decode("ascii", "replace").strip())
        start = pos + 1
    for text in found:
        if re.search(r" #[0-9]+ ", text):
            return text
    return found[0] if found else None


def describe_vmlinux_bytes(data: bytes, *, path=None) -> dict:
    """What a Linux vmlinux ELF is: class, machine, entry, PT_LOADs, notes, PVH entry,
    version.  FormatError when it is not a readable ELF64."""
    from elftools.common.exceptions import ELFError

    try:
        elf = _elf(data)
        hdr = elf.header
        segments = [{"type": s["p_type"], "offset": s["p_offset"], "vaddr": s["p_vaddr"],
                     "paddr": s["p_paddr"], "filesz": s["p_filesz"], "memsz": s["p_memsz"],
                     "flags": _pflags(s["p_flags"])} for s in elf.iter_segments()]
        notes, pvh_entry = [], None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_NOTE":
                found = walk_notes(data[seg["p_offset"]:seg["p_offset"] + seg["p_filesz"]])
                notes += found
                # as Firecracker's loader reads it: the first PVH note of a PT_NOTE segment,
                # and each PT_NOTE segment overrides the ones before it
                pvh = [n for n in found if n["owner"] == "Xen" and len(n["desc"]) >= 4
                       and n["type"] == XEN_ELFNOTE_PHYS32_ENTRY]
                pvh_entry = u32le.parse(pvh[0]["desc"][:4]) if pvh else None
    except (ELFError, ValueError, KeyError, TypeError, OverflowError, ConstructError) as exc:
        raise FormatError(f"not a readable ELF64 kernel ({exc})", path=path,
                          expected="a Linux vmlinux ELF") from None
    loads = [s for s in segments if s["type"] == "PT_LOAD"]
    gnu = [n for n in notes if n["owner"] == "GNU" and n["type"] == NT_GNU_BUILD_ID]
    build_id = gnu[0]["desc"].hex() if gnu else None
    banner = linux_banner(data)
    return {
        "elf_class": hdr["e_ident"]["EI_CLASS"],
        "machine": hdr["e_machine"],
        "elf_type": hdr["e_type"],
        "entry": hdr["e_entry"],
        "pvh_entry": pvh_entry,
        "version": banner,
        "release": banner.split()[2] if banner and len(banner.split()) > 2 else None,
        "build_id": build_id,
        "size": len(data),
        "phys_start": min((s["paddr"] for s in loads), default=None),
        "phys_end": max((s["paddr"] + s["memsz"] for s in loads), default=None),
        "segments": segments,
        "notes": [{"owner": n["owner"], "type": n["type"], "name": n["name"],
                   "size": len(n["desc"])} for n in notes],
        "boot_protocols": (["linux64"] if hdr["e_entry"] else []) + (["pvh"] if pvh_entry else []),
        # Firecracker >= 1.12 enters any ELF with the PVH note through it, older ones at e_entry
        "firecracker_protocol": "pvh" if pvh_entry is not None else "linux",
    }


NT_GNU_BUILD_ID = 3


def walk_notes(blob: bytes) -> list[dict]:
    """The ELF notes in one PT_NOTE segment: 12-byte header (namesz, descsz, type), then the
    name and the descriptor, each padded to 4 bytes.  Stops at a note that runs past the end."""
    out, pos = [], 0
    while pos + NHDR_SIZE <= len(blob):
        h = Elf64_Nhdr.parse(blob[pos:pos + NHDR_SIZE])
        name_at = pos + NHDR_SIZE
        desc_at = name_at + (h.n_namesz + 3) // 4 * 4
        end = desc_at + (h.n_descsz + 3) // 4 * 4
        if desc_at + h.n_descsz > len(blob):
            break
        owner = blob[name_at:name_at + h.n_namesz].rstrip(b"\0").decode("ascii", "replace")
        out.append({"owner": owner, "type": h.n_type, "desc": blob[desc_at:desc_at + h.n_descsz],
                    "name": XEN_NOTE_NAMES.get(h.n_type) if owner == "Xen" else None})
        pos = end
    return out


def _pflags(flags: int) -> str:
    return "".join(c if flags & bit else "-" for bit, c in ((4, "R"), (2, "W"), (1, "E")))


def inspect_vmlinux(path) -> dict:
    with open_input(path, "a Linux vmlinux") as f:
        data = f.read()
    return describe_vmlinux_bytes(data, path=path)


# ------------------------------------------------------------------------------------------
# bzImage
# ------------------------------------------------------------------------------------------
def parse_setup_header(data: bytes, *, path=None):
    """The ``setup_header`` at 0x1F1 (construct Container); FormatError when cut or foreign."""
    raw = data[SETUP_HEADER_OFFSET:SETUP_HEADER_OFFSET + SETUP_HEADER_SIZE]
    if len(raw) < SETUP_HEADER_SIZE:
        raise FormatError(f"file of {len(data)} bytes ends inside the setup header",
                          path=path, expected=f"at least {SETUP_HEADER_OFFSET + SETUP_HEADER_SIZE} "
                                              "bytes (a bzImage)")
    try:
        return SetupHeader.parse(raw)
    except ConstructError:
        raise FormatError("no 0xAA55 boot_flag and \"HdrS\" setup header", path=path,
                          expected="a Linux bzImage") from None


def payload_compression(payload: bytes) -> str:
    for name, magic in COMPRESSIONS:
        if payload.startswith(magic):
            return name
    return "unknown"


def decompress_payload(kind: str, payload: bytes, limit: int) -> bytes:
    """Decompress the kernel payload (at most ``limit`` bytes out); ValueError with the reason
    when Python cannot."""
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload, limit)
        if kind in ("xz", "lzma"):
            fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
            return lzma.LZMADecompressor(fmt).decompress(payload, limit)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(payload, limit)
        if kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise ValueError("zstd needs the zstandard module") from None
            return zstandard.ZstdDecompressor().decompress(payload, max_output_size=limit)
    except (lzma.LZMAError, zlib.error, OSError, EOFError) as exc:
        raise ValueError(f"{kind}: {exc}") from None
    except Exception as exc:        # zstandard.ZstdError
        raise ValueError(f"{kind}: {exc}") from None
    raise ValueError(f"no {kind} decompressor in Python")


def describe_bzimage_bytes(data: bytes, *, path=None, decompress: bool = True) -> dict:
    hdr = parse_setup_header(data, path=path)
    setup_sects = hdr.setup_sects or 4
    setup_size = (setup_sects + 1) * SECTOR
    out = {
        "protocol": f"{hdr.version >> 8}.{hdr.version & 0xFF:02d}",
        "kernel_version": _version_string(data, hdr),
        "setup_sects": hdr.setup_sects,
        "setup_size": setup_size,
        "syssize": hdr.syssize,
        "size": len(data),
        "header": {k: v for k, v in hdr.items() if not k.startswith("_")
                   and k not in ("boot_flag", "header")},
        "loadflags": flag_names(hdr.loadflags, LOADFLAGS),
        "xloadflags": flag_names(hdr.xloadflags, XLOADFLAGS),
    }
    if hdr.version < 0x208:
        out["payload"] = None
        return out
    start = setup_size + hdr.payload_offset
    payload = data[start:start + hdr.payload_length]
    if len(payload) < hdr.payload_length or hdr.payload_length < 4:
        raise FormatError(f"payload of {hdr.payload_length} bytes at {start:#x} is past the "
                          f"end of the file ({len(data)} bytes)", path=path,
                          expected="a complete bzImage")
    kind = payload_compression(payload)
    usize = u32le.parse(payload[-4:])
    out["payload"] = {"offset": start, "length": hdr.payload_length, "compression": kind,
                      "uncompressed_size": usize}
    if decompress:
        out["vmlinux"] = _inner_vmlinux(kind, payload, usize, path)
    return out


def _inner_vmlinux(kind: str, payload: bytes, usize: int, path) -> dict:
    if usize > MAX_DECOMPRESSED:
        return {"error": f"claims {usize} bytes uncompressed (over {MAX_DECOMPRESSED})"}
    try:
        elf = decompress_payload(kind, payload, usize + 1)
    except ValueError as exc:
        return {"error": f"payload does not decompress ({exc})"}
    if len(elf) != usize:
        return {"error": f"payload decompresses to {len(elf)} bytes, the trailer says {usize}"}
    if elf[:4] != b"\x7fELF":
        return {"error": "the decompressed payload is not an ELF file"}
    try:
        d = describe_vmlinux_bytes(elf, path=path)
    except FormatError as exc:
        return {"error": exc.what}
    d.pop("segments")
    return d


def _version_string(data: bytes, hdr) -> str | None:
    if not hdr.kernel_version:
        return None
    pos = hdr.kernel_version + 0x200
    end = data.find(b"\0", pos, pos + 256)
    if pos >= len(data) or end < 0:
        return None
    return data[pos:end].decode("ascii", "replace")


def inspect_bzimage(path, *, decompress: bool = True) -> dict:
    with open_input(path, "a Linux bzImage") as f:
        data = f.read()
    return describe_bzimage_bytes(data, path=os.fspath(path), decompress=decompress)


# ------------------------------------------------------------------------------------------
# human rendering
# ------------------------------------------------------------------------------------------
def _hex(v) -> str:
    return "none" if v is None else f"{v:#x}"


def describe_vmlinux_text(d: dict, indent: str = "  ") -> list[str]:
    lines = [f"{indent}version: {d['version'] or 'unknown (no Linux banner)'}",
             f"{indent}{d['elf_class']} {d['machine']} {d['elf_type']}, {d['size']} bytes",
             f"{indent}64-bit entry (e_entry, physical): {_hex(d['entry'])}",
             f"{indent}PVH entry (Xen note PHYS32_ENTRY): {_hex(d['pvh_entry'])}",
             f"{indent}loaded at physical {_hex(d['phys_start'])}-{_hex(d['phys_end'])}",
             f"{indent}Firecracker (>= 1.12) boots it with the {d['firecracker_protocol']} protocol "
             f"(osvkit run --vmm qemu-fc --fc-protocol {d['firecracker_protocol']})"]
    if d.get("build_id"):
        lines.append(f"{indent}build id: {d['build_id']}")
    for s in d.get("segments", []):
        lines.append(f"{indent}  {s['type']:<8} off {s['offset']:#x} vaddr {s['vaddr']:#x} "
                     f"paddr {s['paddr']:#x} filesz {s['filesz']:#x} memsz {s['memsz']:#x} "
                     f"{s['flags']}")
    return lines


def describe_vmlinux(result) -> str:
    d = result.to_dict()
    return "\n".join([f"{d['path']}: Linux kernel (vmlinux ELF)"] + describe_vmlinux_text(d))


def describe_bzimage(result) -> str:
    d = result.to_dict()
    h = d["header"]
    lines = [f"{d['path']}: Linux kernel (bzImage), boot protocol {d['protocol']}",
             f"  version: {d['kernel_version'] or 'unknown'}",
             f"  setup: {d['setup_sects']} sectors ({d['setup_size']} bytes with the boot sector)",
             f"  loadflags {h['loadflags']:#04x} ({', '.join(d['loadflags']) or 'none'}), "
             f"xloadflags {h['xloadflags']:#06x} ({', '.join(d['xloadflags']) or 'none'})",
             f"  code32_start {h['code32_start']:#x}, pref_address {h['pref_address']:#x}, "
             f"kernel_alignment {h['kernel_alignment']:#x}, relocatable "
             f"{bool(h['relocatable_kernel'])}, init_size {h['init_size']:#x}",
             f"  initrd_addr_max {h['initrd_addr_max']:#x}, cmdline_size {h['cmdline_size']}, "
             f"handover_offset {h['handover_offset']:#x}, kernel_info_offset "
             f"{h['kernel_info_offset']:#x}"]
    p = d.get("payload")
    if p:
        lines.append(f"  payload: {p['compression']}, {p['length']} bytes at {p['offset']:#x}, "
                     f"{p['uncompressed_size']} bytes uncompressed")
    v = d.get("vmlinux")
    if v and "error" in v:
        lines.append(f"  vmlinux: {v['error']}")
    elif v:
        lines.append("  vmlinux inside:")
        lines += describe_vmlinux_text(v, indent="    ")
    return "\n".join(lines)
