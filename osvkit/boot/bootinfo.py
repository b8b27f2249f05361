"""OSv's boot-info block ``osv_multiboot_info_type`` and its e820 records.

Spec: OSv ``arch/x64/arch-setup.hh:16-54``: a packed multiboot-1 info
structure (88 bytes) followed by OSv's own fields, 121 bytes in all, at guest-physical 0x1000
(``layout.BOOTINFO_ADDR``).  boot16 fills ``cmdline`` (16), ``mmap_length`` (44),
``mmap_addr`` (48), the three TSC stamps (88, 96, 104; each a u64 that boot16 stores as lo/hi
u32 halves) and, on a disk error, ``disk_err`` (112); the PVH path sets ``pvh_rsdp`` (113,
unaligned).  The e820 records at ``mmap_addr`` (0x2000) are ``{u32 ent_size; u64 addr; u64 size;
u32 type}``, 24 bytes when ``ent_size`` is 20; OSv steps by ``ent_size + 4``.

osvkit's boot stubs also set ``boot_loader_name`` (64) and bit 9 of ``flags`` (the multiboot
"boot loader name valid" bit); see :data:`BOOTINFO_FLAG_BOOT_LOADER_NAME`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from ..structs import base as schema
from .bootparams import E820_TYPE_NAMES, describe_e820, read_cstring

from ..structs.bootinfo import (
    BOOTINFO_FLAG_BOOT_LOADER_NAME, OSV_E820_ENT_SIZE, OsvMultibootInfo, OsvE820Entry,
    BOOTINFO_OFFSETS, OSV_E820_OFFSETS, MAX_MMAP_LENGTH)


def build_bootinfo(**fields) -> bytes:
    """A 121-byte block, zero except ``fields``."""
    obj = schema.blank(OsvMultibootInfo)
    obj.update(fields)
    return schema.build(OsvMultibootInfo, obj, what="osv_multiboot_info")


def build_osv_e820(entries) -> bytes:
    """24-byte records (ent_size 20) for ``(addr, size, type)`` tuples."""
    return b"".join(schema.build(OsvE820Entry, {"ent_size": OSV_E820_ENT_SIZE, "addr": a,
                                                "size": s, "type": t}, what="e820ent")
                    for a, s, t in entries)


def parse_osv_e820(data, length: int, *, path=None, offset: int = 0):
    """Walk ``length`` bytes of records at ``data[offset:]`` the way OSv does (step
    ``ent_size + 4``); returns ``[(addr, size, type), ...]``."""
    out = []
    pos = 0
    while pos + 4 <= length:
        rec = schema.parse(OsvE820Entry, data, what="e820 record", path=path,
                           offset=offset + pos)
        if rec.ent_size < 20:
            raise schema.format_error("e820 record", f"is {rec.ent_size}", path=path,
                                      offset=offset + pos, field="ent_size",
                                      field_offset=offset + pos, expected="at least 20")
        out.append((rec.addr, rec.size, rec.type))
        pos += rec.ent_size + 4
    return out


@dataclass
class BootInfo:
    offset: int
    address: int | None
    fields: dict
    e820: list | None = None
    cmdline: str | None = None
    boot_loader_name: str | None = None
    notes: list[str] = field(default_factory=list)

    kind = "bootinfo"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "offset": self.offset,
            "address": self.address,
            "fields": self.fields,
            "e820": None if self.e820 is None else
            schema.e820_records(self.e820),
            "cmdline": self.cmdline,
            "boot_loader_name": self.boot_loader_name,
            "notes": self.notes,
        }


def parse_bootinfo(data, *, path=None, offset: int = 0, base: int | None = None,
                   lenient: bool = False) -> BootInfo:
    """Decode the block at ``data[offset:]``.  With ``base`` (guest-physical address of
    ``data[0]``), the command line, the boot-loader name and the e820 records it points at are
    decoded too when ``data`` covers them."""
    c = schema.parse(OsvMultibootInfo, data, what="osv_multiboot_info", path=path,
                     offset=offset)
    fields = schema.plain(c)
    info = BootInfo(offset, None if base is None else base + offset, fields)
    # The block has no magic; these are the values every boot path writes (boot16, the
    # Linux-entry and PVH code), so anything else is not a boot-info block.
    checks = [
        ("cmdline", c.cmdline != 0, "is 0", "the physical address of the command line"),
        ("mmap_length", c.mmap_length <= MAX_MMAP_LENGTH, f"is {c.mmap_length}",
         f"at most {MAX_MMAP_LENGTH} (the e820 area 0x2000-0x6000)"),
        ("mmap_addr", c.mmap_addr != 0 or c.mmap_length == 0, "is 0",
         "the address of the e820 records"),
    ]
    for name, ok, problem, expected in checks:
        if ok:
            continue
        err = schema.format_error("osv_multiboot_info", problem, path=path, offset=offset,
                                  field=name, field_offset=offset + BOOTINFO_OFFSETS[name],
                                  expected=expected)
        if not lenient:
            raise err
        info.notes.append(str(err))
    if base is None:
        return info
    if c.cmdline:
        info.cmdline = read_cstring(data, c.cmdline - base, 64 * 1024)
        if info.cmdline is None:
            info.notes.append(f"cmdline {c.cmdline:#x} is outside the data")
    if c.boot_loader_name and (c.flags & BOOTINFO_FLAG_BOOT_LOADER_NAME):
        info.boot_loader_name = read_cstring(data, c.boot_loader_name - base, 256)
    if c.mmap_length:
        start = c.mmap_addr - base
        if start < 0 or start + c.mmap_length > len(data) or c.mmap_length > MAX_MMAP_LENGTH:
            info.notes.append(f"e820 records at {c.mmap_addr:#x} are outside the data")
        else:
            info.e820 = parse_osv_e820(data, c.mmap_length, path=path, offset=start)
    return info


_HEX = {"flags", "cmdline", "mmap_addr", "boot_loader_name", "pvh_rsdp", "mods_addr"}


def describe_bootinfo(info: BootInfo) -> str:
    where = f" (guest-physical {info.address:#x})" if info.address is not None else ""
    lines = [f"osv_multiboot_info at {info.offset:#x}{where}"]
    for k, v in info.fields.items():
        if k in ("syms", "mem_lower", "mem_upper", "boot_device", "drives_length",
                 "drives_addr", "config_table", "apm_table", "vbe_control_info",
                 "vbe_mode_info", "vbe_mode", "vbe_interface_seg", "vbe_interface_off",
                 "vbe_interface_len", "mods_count", "mods_addr") and not any(v if isinstance(v, list)
                                                                else [v]):
            continue  # multiboot fields OSv does not use, when zero
        lines.append(f"  {k}: {v:#x}" if k in _HEX else f"  {k}: {v}")
    if info.cmdline is not None:
        lines.append(f"  cmdline text: {info.cmdline!r}")
    if info.boot_loader_name is not None:
        lines.append(f"  boot loader: {info.boot_loader_name}")
    if info.e820 is not None:
        lines.append(f"  e820 ({len(info.e820)} records):")
        lines += describe_e820(info.e820, "    ")
    lines += [f"  note: {n}" for n in info.notes]
    return "\n".join(lines)


__all__ = ["OsvMultibootInfo", "OsvE820Entry", "BOOTINFO_OFFSETS", "OSV_E820_OFFSETS",
           "build_bootinfo", "build_osv_e820", "parse_osv_e820", "parse_bootinfo",
           "describe_bootinfo", "BootInfo", "E820_TYPE_NAMES"]
