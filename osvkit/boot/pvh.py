"""PVH boot: Xen's ``hvm_start_info`` and the tables it points at.

Spec: Xen ``docs/misc/pvh.pandoc`` / ``xen/include/public/arch-x86/hvm/start_info.h``, as
bindgen'd by rust-vmm linux-loader v0.14.0 ``loader_gen/x86_64/start_info.rs``.
``hvm_start_info`` is 56 bytes with magic 0x336EC578; memmap entries are 24 bytes,
module-list entries 32.  OSv reads ``cmdline_paddr`` (24), ``rsdp_paddr`` (32),
``memmap_paddr`` (40) and ``memmap_entries`` (48) and checks neither the magic nor the
version.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from ..structs import base as schema
from .bootparams import describe_e820, read_cstring

from ..structs.pvh import (HvmStartInfo, HvmMemmapTableEntry, HvmModlistEntry)


def build_start_info(*, cmdline_paddr: int = 0, memmap_paddr: int = 0, memmap_entries: int = 0,
                     nr_modules: int = 0, modlist_paddr: int = 0, rsdp_paddr: int = 0,
                     version: int = 1, flags: int = 0) -> bytes:
    return schema.build(HvmStartInfo, dict(
        version=version, flags=flags, nr_modules=nr_modules, modlist_paddr=modlist_paddr,
        cmdline_paddr=cmdline_paddr, rsdp_paddr=rsdp_paddr, memmap_paddr=memmap_paddr,
        memmap_entries=memmap_entries, reserved=0), what="hvm_start_info")


def build_memmap(entries) -> bytes:
    """24-byte memmap entries for ``(addr, size, type)`` tuples."""
    return b"".join(schema.build(HvmMemmapTableEntry, dict(addr=a, size=s, type=t, reserved=0),
                                 what="hvm_memmap_table_entry") for a, s, t in entries)


def build_modlist(modules) -> bytes:
    """32-byte module entries for ``(paddr, size, cmdline_paddr)`` tuples."""
    return b"".join(schema.build(HvmModlistEntry, dict(paddr=p, size=s, cmdline_paddr=c,
                                                       reserved=0), what="hvm_modlist_entry")
                    for p, s, c in modules)


@dataclass
class PvhStartInfo:
    offset: int
    address: int | None
    fields: dict
    memmap: list | None = None
    modules: list | None = None
    cmdline: str | None = None
    notes: list[str] = field(default_factory=list)

    kind = "pvh"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "offset": self.offset,
            "address": self.address,
            "fields": self.fields,
            "memmap": None if self.memmap is None else
            schema.e820_records(self.memmap),
            "modules": self.modules,
            "cmdline": self.cmdline,
            "notes": self.notes,
        }


def parse_start_info(data, *, path=None, offset: int = 0, base: int | None = None,
                     lenient: bool = False) -> PvhStartInfo:
    """Decode ``hvm_start_info`` at ``data[offset:]``; with ``base`` (guest-physical address of
    ``data[0]``) also the memmap, module list and command line it points at, when covered."""
    c = schema.parse(HvmStartInfo, data, what="hvm_start_info", path=path, offset=offset)
    fields = schema.plain(c)
    info = PvhStartInfo(offset, None if base is None else base + offset, fields)
    if base is None:
        return info
    if c.cmdline_paddr:
        info.cmdline = read_cstring(data, c.cmdline_paddr - base, 64 * 1024)
        if info.cmdline is None:
            info.notes.append(f"cmdline_paddr {c.cmdline_paddr:#x} is outside the data")
    if c.memmap_entries:
        start = c.memmap_paddr - base
        if start < 0 or start + 24 * c.memmap_entries > len(data):
            info.notes.append(f"memmap at {c.memmap_paddr:#x} is outside the data")
        else:
            info.memmap = []
            for i in range(c.memmap_entries):
                e = schema.parse(HvmMemmapTableEntry, data, what=f"memmap[{i}]", path=path,
                                 offset=start + 24 * i)
                info.memmap.append((e.addr, e.size, e.type))
    if c.nr_modules:
        start = c.modlist_paddr - base
        if start < 0 or start + 32 * c.nr_modules > len(data):
            info.notes.append(f"modlist at {c.modlist_paddr:#x} is outside the data")
        else:
            info.modules = [schema.plain(schema.parse(HvmModlistEntry, data,
                                                      what=f"modlist[{i}]", path=path,
                                                      offset=start + 32 * i))
                            for i in range(c.nr_modules)]
    return info


_HEX = {"magic", "modlist_paddr", "cmdline_paddr", "rsdp_paddr", "memmap_paddr", "flags"}


def describe_start_info(info: PvhStartInfo) -> str:
    where = f" (guest-physical {info.address:#x})" if info.address is not None else ""
    lines = [f"hvm_start_info at {info.offset:#x}{where}"]
    for k, v in info.fields.items():
        lines.append(f"  {k}: {v:#x}" if k in _HEX else f"  {k}: {v}")
    if info.cmdline is not None:
        lines.append(f"  cmdline text: {info.cmdline!r}")
    if info.memmap is not None:
        lines.append(f"  memmap ({len(info.memmap)} entries):")
        lines += describe_e820(info.memmap, "    ")
    for i, m in enumerate(info.modules or []):
        lines.append(f"  module {i}: paddr {m['paddr']:#x} size {m['size']:#x} "
                     f"cmdline_paddr {m['cmdline_paddr']:#x}")
    lines += [f"  note: {n}" for n in info.notes]
    return "\n".join(lines)
