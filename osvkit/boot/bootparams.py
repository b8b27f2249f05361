"""Linux ``boot_params`` ("zero page", 4096 bytes) and its ``setup_header``.

Spec: Linux ``Documentation/arch/x86/boot.rst`` (64-bit boot protocol) and
``arch/x86/include/uapi/asm/bootparam.h``, as bindgen'd by rust-vmm linux-loader v0.14.0
``loader_gen/x86_64/bootparam.rs``.  Field names are Linux's.
The structure is packed; ``setup_header`` is 123 bytes at 0x1F1, ``e820_table`` 128 x 20 bytes
at 0x2D0.

OSv's ``extract_linux_boot_params`` reads only ``e820_entries`` (0x1E8), ``boot_flag``
(0x1FE, asserted 0xAA55), ``header`` (0x202, asserted "HdrS"), ``cmd_line_ptr`` (0x228) and the
e820 table.  :data:`BOOT_PARAMS_OFFSETS` gives every field's offset from the
schema; the Firecracker entry stub takes its offsets from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from ..errors import LayoutError
from ..structs import base as schema
from ..structs.bootparams import (  # noqa: F401 (BOOT_FLAG, HDRS_MAGIC, BOOT_PARAMS_SIZE)
    BOOT_FLAG, BOOT_PARAMS_OFFSETS, BOOT_PARAMS_SIZE, E820_MAX_ENTRIES_ZEROPAGE, E820_TYPE_NAMES,
    HDRS_MAGIC, BootParams)


def boot_params_defaults():
    """A build object (Container) with every field zero (the two magics are constants)."""
    return schema.blank(BootParams)


def build_boot_params(*, hdr: dict | None = None, e820=(), **fields) -> bytes:
    """Build a 4096-byte zero page: all zero except ``boot_flag``/``header`` (always set),
    the given ``hdr`` fields, top-level ``fields`` and the ``e820`` list of
    ``(addr, size, type)`` (``e820_entries`` is set to its length)."""
    e820 = list(e820)
    if len(e820) > E820_MAX_ENTRIES_ZEROPAGE:
        raise LayoutError(f"{len(e820)} e820 entries do not fit in boot_params",
                          expected=f"at most {E820_MAX_ENTRIES_ZEROPAGE}")
    obj = boot_params_defaults()
    obj["hdr"].update(hdr or {})
    obj.update(fields)
    for i, (addr, size, typ) in enumerate(e820):
        obj["e820_table"][i] = {"addr": addr, "size": size, "type": typ}
    obj["e820_entries"] = len(e820)
    return schema.build(BootParams, obj, what="boot_params")


# ---------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------

@dataclass
class BootParamsInfo:
    offset: int
    address: int | None
    fields: dict
    hdr: dict
    e820: list[tuple[int, int, int]]
    cmdline: str | None = None
    notes: list[str] = field(default_factory=list)

    kind = "boot-params"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "offset": self.offset,
            "address": self.address,
            "fields": self.fields,
            "hdr": self.hdr,
            "e820": schema.e820_records(self.e820),
            "cmdline": self.cmdline,
            "notes": self.notes,
        }


_SHOWN = ("acpi_rsdp_addr", "ext_ramdisk_image", "ext_ramdisk_size", "ext_cmd_line_ptr",
          "alt_mem_k", "e820_entries", "sentinel", "tboot_addr")


def parse_boot_params(data, *, path=None, offset: int = 0, base: int | None = None,
                      lenient: bool = False) -> BootParamsInfo:
    """Decode a zero page at ``data[offset:]``.  With ``base`` (the guest-physical address of
    ``data[0]``) the command line at ``cmd_line_ptr`` is read too when the data covers it."""
    c = schema.parse(BootParams, data, what="boot_params", path=path, offset=offset)
    n = c.e820_entries
    notes = []
    if n > E820_MAX_ENTRIES_ZEROPAGE:
        err = schema.format_error(
            "boot_params", f"is {n}", path=path, offset=offset, field="e820_entries",
            field_offset=offset + BOOT_PARAMS_OFFSETS["e820_entries"],
            expected=f"at most {E820_MAX_ENTRIES_ZEROPAGE}")
        if not lenient:
            raise err
        notes.append(str(err))
        n = E820_MAX_ENTRIES_ZEROPAGE
    e820 = [(e.addr, e.size, e.type) for e in c.e820_table[:n]]
    hdr = schema.plain(c.hdr)
    hdr["header"] = hdr["header"].decode("ascii")
    fields = {k: c[k] for k in _SHOWN}
    address = (base + offset) if base is not None else None
    cmdline = None
    if base is not None and hdr["cmd_line_ptr"]:
        cmdline = read_cstring(data, hdr["cmd_line_ptr"] - base, hdr["cmdline_size"] or 4096)
        if cmdline is None:
            notes.append(f"cmd_line_ptr {hdr['cmd_line_ptr']:#x} is outside the data")
    return BootParamsInfo(offset, address, fields, hdr, e820, cmdline, notes)


def read_cstring(data, start: int, limit: int) -> str | None:
    """The NUL-terminated string at ``data[start:]`` (at most ``limit`` bytes), or None when
    ``start`` is outside ``data``."""
    if start < 0 or start >= len(data):
        return None
    chunk = bytes(data[start:start + limit])
    return chunk.split(b"\0", 1)[0].decode("utf-8", "replace")


def describe_e820(e820, indent: str = "  ") -> list[str]:
    lines = []
    for addr, size, typ in e820:
        name = E820_TYPE_NAMES.get(typ, "?")
        lines.append(f"{indent}[{addr:#014x}, {addr + size:#014x}) size {size:#x} "
                     f"type {typ} ({name})")
    return lines


_HEX_HDR = {"cmd_line_ptr", "code32_start", "ramdisk_image", "ramdisk_size", "kernel_alignment",
            "initrd_addr_max", "pref_address", "setup_data", "boot_flag", "version",
            "type_of_loader", "loadflags", "xloadflags", "init_size"}


def describe_boot_params(info: BootParamsInfo) -> str:
    where = f" (guest-physical {info.address:#x})" if info.address is not None else ""
    lines = [f"boot_params at {info.offset:#x}{where}"]
    for k, v in info.fields.items():
        lines.append(f"  {k}: {v:#x}" if k != "e820_entries" else f"  {k}: {v}")
    lines.append("  setup_header:")
    for k, v in info.hdr.items():
        if isinstance(v, int) and (k in _HEX_HDR):
            lines.append(f"    {k}: {v:#x}")
        else:
            lines.append(f"    {k}: {v}")
    lines.append(f"  e820 ({len(info.e820)} entries):")
    lines += describe_e820(info.e820, "    ")
    if info.cmdline is not None:
        lines.append(f"  cmdline: {info.cmdline!r}")
    lines += [f"  note: {n}" for n in info.notes]
    return "\n".join(lines)
