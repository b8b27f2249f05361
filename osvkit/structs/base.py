"""The one place where construct meets osvkit's errors.

Every structure in :mod:`osvkit.structs` is a construct 2.10 ``Struct``.  Code never calls
``Struct.parse``/``Struct.build`` directly; it calls :func:`parse` and :func:`build` here, which
turn construct's exceptions into one-line :class:`~osvkit.errors.FormatError` /
:class:`~osvkit.errors.LayoutError` messages naming the file, the offset, the field path and
the problem::

    dump.bin: boot_params at 0x7000: field hdr.header (0x7202) is b'XXXX', expected b'HdrS'

:func:`field_offsets` derives the byte offset of every field of a fixed-size struct from the
schema itself, so boot stubs never restate an offset as a literal.
"""

from __future__ import annotations

import os
import re
from typing import Any

from construct import (Array, Computed, ConstError, Construct, ConstructError, Container,
                       ListContainer, Renamed, SizeofError, StreamError, StringEncoded, Struct,
                       Subconstruct)
from construct import Bytes as BytesCon
from construct import Int32sl, Int32ul

from ..errors import FormatError, LayoutError

#: a lone little-endian 32-bit word, for code outside this package that reads or writes one
#: (a bzImage's trailing size, a rel32 displacement); construct is imported only in here
u32le = Int32ul
s32le = Int32sl


# ---------------------------------------------------------------------------------
# Parsing and building
# ---------------------------------------------------------------------------------

def fixed_size(struct: Construct) -> int | None:
    """``struct.sizeof()``, or None when the size depends on the data."""
    try:
        return struct.sizeof()
    except SizeofError:
        return None


def parse(struct: Construct, data, *, what: str, path: str | os.PathLike | None = None,
          offset: int = 0) -> Container:
    """Parse ``struct`` from ``data[offset:]``.

    ``what`` names the structure in the error ("boot_params", "MBR", ...).  A short buffer, a
    wrong magic or any other construct failure becomes a :class:`FormatError` whose message
    names the file, the offset, the field path and the problem.
    """
    size = fixed_size(struct)
    avail = len(data) - offset
    if offset < 0 or avail <= 0:
        raise FormatError(f"{what} at {offset:#x} is past the end of the data "
                          f"({len(data)} bytes)", path=path,
                          expected=f"{size} bytes" if size else "more data")
    if size is not None and avail < size:
        raise FormatError(f"{what} at {offset:#x} is truncated: {avail} bytes", path=path,
                          expected=f"{size} bytes")
    chunk = bytes(data[offset:offset + size] if size is not None else data[offset:])
    try:
        return struct.parse(chunk)
    except ConstructError as exc:
        raise _translate(exc, struct, what=what, path=path, offset=offset) from None


def build(struct: Construct, obj: Any, *, what: str | None = None) -> bytes:
    """Build ``obj`` with ``struct``; a value that does not fit raises :class:`LayoutError`."""
    try:
        return struct.build(obj)
    except ConstructError as exc:
        field = _field_path(exc)
        problem = _last_line(exc)
        name = what or "structure"
        raise LayoutError(f"cannot build {name}: field {field or '?'}: {problem}") from None


def format_error(what: str, problem: str, *, path=None, offset: int = 0,
                 field: str | None = None, field_offset: int | None = None,
                 expected: str | None = None, cls=FormatError) -> FormatError:
    """A FormatError in the same shape :func:`parse` uses, for checks made outside construct
    (checksums, cross-structure pointers).  Its ``field`` attribute names the field (or is
    None)."""
    text = f"{what} at {offset:#x}"
    if field:
        where = f" ({field_offset:#x})" if field_offset is not None else ""
        text += f": field {field}{where}"
    text += f" {problem}" if field else f": {problem}"
    err = cls(text, path=path, expected=expected)
    err.field = field
    return err


def _field_path(exc: ConstructError) -> str:
    raw = getattr(exc, "path", None) or ""
    parts = [p.strip() for p in raw.split("->")][1:]
    return ".".join(p for p in parts if p)


def _last_line(exc: ConstructError) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


_CONST_RE = re.compile(r"expected (.*) but parsed (.*)$")


def _hex_if_int(text: str) -> str:
    return f"{int(text):#x}" if text.isdigit() else text


def _translate(exc: ConstructError, struct: Construct, *, what, path, offset) -> FormatError:
    field = _field_path(exc)
    rel = field_offsets(struct).get(field) if field else None
    field_offset = offset + rel if rel is not None else None
    message = _last_line(exc)
    if isinstance(exc, ConstError):
        m = _CONST_RE.search(message)
        if m:
            expected, got = _hex_if_int(m.group(1)), _hex_if_int(m.group(2))
            return format_error(what, f"is {got}", path=path, offset=offset, field=field,
                                field_offset=field_offset, expected=expected)
    if isinstance(exc, StreamError):
        return format_error(what, "runs past the end of the data", path=path, offset=offset,
                            field=field, field_offset=field_offset,
                            expected="a complete structure")
    return format_error(what, f"is invalid ({message})", path=path, offset=offset,
                        field=field or None, field_offset=field_offset)


# ---------------------------------------------------------------------------------
# Offsets and plain values
# ---------------------------------------------------------------------------------

def _unwrap(sub: Construct) -> Construct:
    while isinstance(sub, Subconstruct) and not isinstance(sub, (Struct, Array)):
        sub = sub.subcon
    return sub


def field_offsets(struct: Construct, prefix: str = "", base: int = 0) -> dict[str, int]:
    """Byte offset of every named field of a fixed-size ``struct``, nested fields as
    ``"hdr.cmd_line_ptr"``.  Fields after a variable-size field are left out."""
    out: dict[str, int] = {}
    inner = _unwrap(struct)
    if not isinstance(inner, Struct):
        return out
    pos = base
    for sub in inner.subcons:
        name = sub.name if isinstance(sub, Renamed) else None
        if name and not name.startswith("_") and not isinstance(_unwrap(sub), Computed):
            out[prefix + name] = pos
            child = _unwrap(sub)
            if isinstance(child, Struct):
                out.update(field_offsets(child, prefix + name + ".", pos))
        size = fixed_size(sub)
        if size is None:
            break
        pos += size
    return out


def blank(struct: Construct) -> Any:
    """A build object for ``struct`` with every field zero: integers 0, byte strings zeroed,
    strings empty, arrays of blank elements; constants, defaults and computed fields are left
    to the schema (they build themselves)."""
    inner = struct
    while isinstance(inner, Subconstruct) and not isinstance(inner, (Struct, Array,
                                                                      StringEncoded)):
        inner = inner.subcon
    if isinstance(inner, Struct):
        out = Container()
        for sub in inner.subcons:
            if isinstance(sub, Renamed) and not sub.flagbuildnone:
                out[sub.name] = blank(sub.subcon)
        return out
    if isinstance(inner, Array):
        return ListContainer(blank(inner.subcon) for _ in range(inner.count))
    if isinstance(inner, BytesCon):
        return bytes(inner.length)
    if isinstance(inner, StringEncoded):
        return ""
    return 0


def plain(obj: Any) -> Any:
    """A construct Container as plain dicts/lists (hidden ``_`` keys dropped)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, ListContainer, tuple)):
        return [plain(v) for v in obj]
    return obj


def e820_records(entries) -> list[dict]:
    """``(addr, size, type)`` tuples as the JSON records every decoder prints."""
    return [{"addr": a, "size": sz, "type": t} for a, sz, t in entries]
