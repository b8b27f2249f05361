"""The probe's COM1 report: format (version 1) and parser.

The probe writes plain ASCII lines ending in ``\\n`` on COM1 (0x3F8).  Every line starts with
``probe.``; other console output (firmware, boot stubs) may come before, after or between
report lines and is ignored.  Numbers are hexadecimal with a ``0x`` prefix and fixed width;
byte strings are lowercase hex without separators, split over repeated lines of at most 32
bytes (the parser concatenates lines with the same key, in order).

Report format, version 1 (``probe.begin 1`` ... ``probe.end 1``; lines in this order):

============================================  ===============================================
line                                          meaning
============================================  ===============================================
``probe.begin 1``                             report start, format version
``probe.entry E``                             ``start32`` (entered at start32), ``elf-entry``
                                              (the ELF entry routine ran first, then
                                              start32), ``start64`` (start64 entered directly)
``probe.start32.cr0 0xX``                     CR0 when start32 was entered (bit 31 set: it was
                                              entered in compatibility mode with paging on)
``probe.start32.esp 0xX``, ``.cs 0xX``        ESP and CS at start32
``probe.cr 0xCR0 0xCR3 0xCR4 0xEFER``         live values in start64 (OSv's: 0x80010003,
                                              ident_pt_l4, 0x7b8, 0xd00 = 0x900 | LMA)
``probe.pt 0xL4 0xL3 0xL3_1 0xL2 0xL2_1 ...``  ident_pt_l4[0], l3[0], l3[1], l2[0], l2[1],
                                              l2[511] as start32 built them
``probe.bootinfo 0xX``                        EBX at start32: the boot-info block address
``probe.bootinfo.invalid``                    EBX is 0 or not below 1 GiB: no bootinfo lines
``probe.bootinfo.flags 0xX``                  u32 at +0
``probe.loader TEXT`` + ``probe.loader.hex``  the boot-loader name (u32 pointer at +64, used
                                              only when flags bit 9 is set; at most 64 bytes)
``probe.loader.none``                         no name (flag clear or pointer 0)
``probe.cmdline.addr 0xX``                    u32 at +16
``probe.cmdline.len 0xX``                     bytes before the NUL (at most 65536)
``probe.cmdline TEXT``                        the command line, escaped: printable ASCII as
                                              is, ``\\`` as ``\\\\``, other bytes as ``\\xNN``
``probe.cmdline.hex HEX``                     the same bytes in hex (the exact value)
``probe.cmdline.none``                        the pointer is 0 (or not below 1 GiB)
``probe.e820.map 0xADDR 0xLEN``               mmap_addr (+48) and mmap_length (+44)
``probe.e820 0xADDR 0xSIZE 0xTYPE``           one record, walked as OSv does (step size+4)
``probe.e820.bad 0xSIZE``                     a record with size < 20 stopped the walk
``probe.tsc 0xI 0xD 0xU``                     tsc_init, tsc_disk_done, tsc_uncompress_done
``probe.disk_err 0xNN``                       byte at +112
``probe.mptable.rule osv|spec``               where the MP floating pointer was found: by
                                              OSv's rule (0x9FC00 then 0x0, 1 KiB each) or,
                                              when that finds none, the MP spec's (EBDA, then
                                              0xF0000-0xFFFFF; SeaBIOS puts it there)
``probe.mpfp 0xADDR`` + ``probe.mpfp.hex``    the 16-byte floating pointer
``probe.mptable 0xADDR 0xLEN``                the "PCMP" table and its base length
``probe.mptable.hex HEX``                     the whole table
``probe.cpus 0xN``                            processor entries (type 0, 20 bytes; any other
                                              type counts 8 bytes: OSv's walk)
``probe.mptable.nopcmp 0xADDR``               the pointer does not lead to "PCMP"
``probe.mptable.none``                        no floating pointer found
``probe.mbr HEX``                             64-byte partition table + ``55aa`` at 0x7DBE,
                                              when 0x7DFE holds 55 AA
``probe.mbr.none``                            no 55 AA at 0x7DFE
``probe.image ok|corrupt 0xC 0xE 0xLEN``      body checksum computed, embedded, image length
``probe.header ok|changed 0xC 0xE``           ELF-header-area checksum computed, embedded
``probe.end 1``                               report complete
============================================  ===============================================

Then the probe writes 123 to port 0x3F0 (boot done), 0xFE to port 0x64, and triple-faults.

A probe built with ``entry_report=True`` first prints, from its ELF entry, an entry-state
block ``probe.state.begin 1`` ... ``probe.state.end 1`` with ``probe.state.<reg> 0xX`` for
rip rsp rbp rsi rdi rbx rax rcx rdx rflags cr0 cr3 cr4 efer cs ds es ss fs gs tr;
``probe.state.gdtr 0xBASE 0xLIMIT``, ``probe.state.idtr ...``; ``probe.state.gdt HEX`` (the
first 4 GDT entries); ``probe.state.pml4_0``, ``probe.state.pdpt_0``, ``probe.state.pd
0xPD0 0xPD1 0xPD511``; ``probe.state.bp.<field> 0xX`` for boot_flag header type_of_loader
cmd_line_ptr cmdline_size kernel_alignment e820_entries acpi_rsdp_addr, and
``probe.state.bp.e820 0xADDR 0xSIZE 0xTYPE`` per boot_params e820 entry (or
``probe.state.bp.none`` when RSI is 0 or not below 1 GiB).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from ..errors import FormatError

REPORT_VERSION = 1
_LINE = re.compile(r"(probe\.[a-z0-9_.]+)(?: (.*))?$")


class E820Entry(NamedTuple):
    """One e820 record; compares equal to the plain tuple ``(addr, size, type)``."""

    addr: int
    size: int
    type: int

    def to_dict(self) -> dict:
        return {"addr": self.addr, "size": self.size, "type": self.type}


@dataclass
class ProbeReport:
    """What the probe saw, parsed from its console report."""

    version: int
    complete: bool = False
    entry: str | None = None
    loader: str | None = None
    start32_cr0: int | None = None
    start32_esp: int | None = None
    start32_cs: int | None = None
    control_regs: dict | None = None
    page_tables: tuple[int, ...] | None = None
    bootinfo_addr: int | None = None
    bootinfo_flags: int | None = None
    cmdline: str | None = None
    cmdline_bytes: bytes | None = None
    cmdline_addr: int | None = None
    e820: list[E820Entry] = field(default_factory=list)
    e820_map: tuple[int, int] | None = None
    tsc: tuple[int, int, int] | None = None
    disk_err: int | None = None
    mptable_rule: str | None = None
    mp_floating: bytes | None = None
    mp_floating_addr: int | None = None
    mptable: bytes | None = None
    mptable_addr: int | None = None
    cpus: int | None = None
    mbr_partitions: bytes | None = None
    image_ok: bool | None = None
    image_checksum: tuple[int, int, int] | None = None
    header_ok: bool | None = None
    entry_state: dict | None = None

    @property
    def ram(self) -> list[E820Entry]:
        return [e for e in self.e820 if e.type == 1]

    @property
    def paging_at_start32(self) -> bool | None:
        return None if self.start32_cr0 is None else bool(self.start32_cr0 & 0x80000000)

    def to_dict(self) -> dict:
        d = {}
        for k, v in asdict(self).items():
            if isinstance(v, (bytes, bytearray)):
                v = v.hex()
            d[k] = v
        d["e820"] = [e.to_dict() for e in self.e820]
        if self.entry_state is not None:
            d["entry_state"] = _jsonable(self.entry_state)
        return d


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text[i + 1:i + 2] == "\\":
            out.append(0x5C)
            i += 2
        elif c == "\\" and text[i + 1:i + 2] == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += c.encode("ascii")
            i += 1
    return bytes(out)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _ints(value: str, n: int, where: str) -> tuple[int, ...]:
    parts = value.split()
    if len(parts) != n:
        raise FormatError(f"probe report line {where!r} has {len(parts)} values",
                          expected=f"{n} hex values")
    try:
        return tuple(int(p, 16) for p in parts)
    except ValueError:
        raise FormatError(f"probe report line {where!r} has a non-hex value",
                          expected="0x-prefixed hex numbers") from None


def _hex(value: str, where: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise FormatError(f"probe report line {where!r} is not hex", expected="hex bytes") from None


def parse_report(console_text: str | bytes, *, path: str | None = None) -> ProbeReport:
    """Parse the probe's report out of captured console output.

    Raises :class:`~osvkit.errors.FormatError` when there is no ``probe.begin`` line, the
    version is not :data:`REPORT_VERSION`, or a line is malformed.  A report cut off before
    ``probe.end`` parses with ``complete=False``.
    """
    if isinstance(console_text, (bytes, bytearray)):
        console_text = bytes(console_text).decode("latin-1")
    lines = []
    for raw in console_text.splitlines():
        raw = raw.rstrip("\r")
        pos = raw.find("probe.")
        if pos < 0:
            continue
        m = _LINE.match(raw[pos:])
        if m:
            lines.append((m.group(1), m.group(2) or ""))
    try:
        return _parse(lines)
    except FormatError as exc:
        raise exc.with_path(path) if path else exc


def _parse(lines: list[tuple[str, str]]) -> ProbeReport:
    begin = next((i for i, (k, _) in enumerate(lines) if k == "probe.begin"), None)
    state_begin = next((i for i, (k, _) in enumerate(lines) if k == "probe.state.begin"), None)
    if begin is None:
        raise FormatError("no probe report in the console output",
                          expected="a 'probe.begin 1' line from the probe kernel")
    version = lines[begin][1].strip()
    if version != str(REPORT_VERSION):
        raise FormatError(f"probe report version {version!r}",
                          expected=f"version {REPORT_VERSION}")
    rep = ProbeReport(version=REPORT_VERSION)
    if state_begin is not None and state_begin < begin:
        rep.entry_state = _parse_state(lines[state_begin:begin])
    multi: dict[str, list[str]] = {}
    for key, value in lines[begin + 1:]:
        where = f"{key} {value}".strip()
        if key == "probe.end":
            rep.complete = True
            break
        if key in ("probe.loader.hex", "probe.cmdline.hex", "probe.mpfp.hex", "probe.mptable.hex",
                   "probe.mbr"):
            multi.setdefault(key, []).append(value.strip())
        elif key == "probe.entry":
            rep.entry = value.strip()
        elif key == "probe.start32.cr0":
            rep.start32_cr0, = _ints(value, 1, where)
        elif key == "probe.start32.esp":
            rep.start32_esp, = _ints(value, 1, where)
        elif key == "probe.start32.cs":
            rep.start32_cs, = _ints(value, 1, where)
        elif key == "probe.cr":
            rep.control_regs = dict(zip(("cr0", "cr3", "cr4", "efer"), _ints(value, 4, where)))
        elif key == "probe.pt":
            rep.page_tables = _ints(value, 6, where)
        elif key == "probe.bootinfo":
            rep.bootinfo_addr, = _ints(value, 1, where)
        elif key == "probe.bootinfo.flags":
            rep.bootinfo_flags, = _ints(value, 1, where)
        elif key == "probe.cmdline.addr":
            rep.cmdline_addr, = _ints(value, 1, where)
        elif key == "probe.cmdline":
            multi.setdefault(key, []).append(value)
        elif key == "probe.e820.map":
            rep.e820_map = _ints(value, 2, where)
        elif key == "probe.e820":
            rep.e820.append(E820Entry(*_ints(value, 3, where)))
        elif key == "probe.tsc":
            rep.tsc = _ints(value, 3, where)
        elif key == "probe.disk_err":
            rep.disk_err, = _ints(value, 1, where)
        elif key == "probe.mptable.rule":
            rep.mptable_rule = value.strip()
        elif key == "probe.mpfp":
            rep.mp_floating_addr, = _ints(value, 1, where)
        elif key == "probe.mptable":
            rep.mptable_addr, _length = _ints(value, 2, where)
        elif key == "probe.cpus":
            rep.cpus, = _ints(value, 1, where)
        elif key == "probe.image":
            status, *nums = value.split(" ", 1)
            rep.image_ok = status == "ok"
            rep.image_checksum = _ints(nums[0] if nums else "", 3, where)
        elif key == "probe.header":
            rep.header_ok = value.split(" ", 1)[0] == "ok"
    if "probe.loader.hex" in multi:
        rep.loader = _decode(_hex("".join(multi["probe.loader.hex"]), "probe.loader.hex"))
    if "probe.cmdline.hex" in multi or "probe.cmdline" in multi:
        raw = _hex("".join(multi.get("probe.cmdline.hex", [])), "probe.cmdline.hex")
        escaped = _unescape(multi.get("probe.cmdline", [""])[0])
        if escaped != raw:
            raise FormatError("probe.cmdline and probe.cmdline.hex disagree",
                              expected="the same bytes escaped and in hex")
        rep.cmdline_bytes = raw
        rep.cmdline = _decode(raw)
    if "probe.mpfp.hex" in multi:
        rep.mp_floating = _hex("".join(multi["probe.mpfp.hex"]), "probe.mpfp.hex")
    if "probe.mptable.hex" in multi:
        rep.mptable = _hex("".join(multi["probe.mptable.hex"]), "probe.mptable.hex")
    if "probe.mbr" in multi:
        rep.mbr_partitions = _hex("".join(multi["probe.mbr"]), "probe.mbr")
    return rep


_STATE_BP = ("boot_flag", "header", "type_of_loader", "cmd_line_ptr", "cmdline_size",
             "kernel_alignment", "e820_entries", "acpi_rsdp_addr")


def _parse_state(lines: list[tuple[str, str]]) -> dict:
    """The entry-state block: register name -> value, plus gdtr/idtr/gdt/page tables/bp."""
    state: dict = {"complete": False}
    gdt = []
    bp: dict = {}
    for key, value in lines[1:]:
        where = f"{key} {value}".strip()
        if key == "probe.state.end":
            state["complete"] = True
            break
        name = key[len("probe.state."):]
        if name in ("gdtr", "idtr"):
            base, limit = _ints(value, 2, where)
            state[name] = {"base": base, "limit": limit}
        elif name == "gdt":
            gdt.append(_hex(value.strip(), where))
        elif name == "pd":
            state["pd"] = _ints(value, 3, where)
        elif name == "bp.none":
            state["boot_params"] = None
        elif name == "bp.e820":
            bp.setdefault("e820", []).append(E820Entry(*_ints(value, 3, where)).to_dict())
        elif name.startswith("bp."):
            bp[name[3:]], = _ints(value, 1, where)
        else:
            state[name], = _ints(value, 1, where)
    if gdt:
        blob = b"".join(gdt)
        state["gdt"] = [int.from_bytes(blob[i:i + 8], "little") for i in range(0, len(blob), 8)]
    if bp:
        bp.setdefault("e820", [])
        state["boot_params"] = bp
    return state
