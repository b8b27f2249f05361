"""Read the host's ``/etc/ld.so.cache`` natively (format in :mod:`osvkit.structs.ldcache`).

Only the ``glibc-ld.so.cache1.1`` format is read, which is what glibc 2.32 and later write; a
cache in the old ``ld.so-1.7.0`` format is found behind the old table when the new one
follows it (as glibc 2.31 and older write it by default).

Entries for the glibc-hwcaps subdirectories (``x86-64-v3``...) are skipped: an OSv image runs
on CPUs the host knows nothing about, so the baseline library is the one to copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from construct import ConstructError

from ..errors import FormatError, MissingInputError
from ..structs import ldcache as S

DEFAULT_PATH = "/etc/ld.so.cache"

#: ELF e_machine -> the entry flags ldconfig writes for that machine's 64-bit libc6 libraries
MACHINE_FLAGS = {
    "EM_X86_64": S.FLAG_ELF_LIBC6 | S.FLAG_X8664_LIB64,
    "EM_AARCH64": S.FLAG_ELF_LIBC6 | S.FLAG_AARCH64_LIB64,
}

_EXPECTED = "a glibc-ld.so.cache1.1 file (ldconfig's output)"


@dataclass(frozen=True)
class CacheEntry:
    name: str
    path: str
    flags: int
    hwcaps: str | None
    """The glibc-hwcaps subdirectory the entry is for, or None for the baseline."""


@dataclass
class LdCache:
    path: str
    entries: list[CacheEntry]
    generator: str | None = None
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def lookup(self, soname: str, machine: str = "EM_X86_64") -> str | None:
        """The path the cache gives for ``soname`` on ``machine`` (baseline entries only),
        or None.  The first matching entry wins, as in glibc's ``search_cache``."""
        if machine not in self._index:
            self._index[machine] = self.by_name(machine)
        return self._index[machine].get(soname)

    def by_name(self, machine: str = "EM_X86_64") -> dict[str, str]:
        """Every baseline ``soname -> path`` for ``machine`` (the first entry of a name)."""
        want = MACHINE_FLAGS.get(machine)
        out: dict[str, str] = {}
        for e in self.entries:
            if e.hwcaps is None and e.flags == want:
                out.setdefault(e.name, e.path)
        return out


def _cstr(data: bytes, offset: int, path: str, what: str) -> str:
    end = data.find(b"\0", offset)
    if offset >= len(data) or end < 0:
        raise FormatError(f"{what} string offset {offset:#x} is outside the file "
                          f"({len(data)} bytes)", path=path, expected=_EXPECTED)
    return data[offset:end].decode("utf-8", "surrogateescape")


def parse_ld_cache(data: bytes, path: str = DEFAULT_PATH) -> LdCache:
    """Parse the bytes of an ld.so.cache."""
    base = 0
    if data.startswith(S.OLD_MAGIC):
        base = data.find(S.MAGIC + S.VERSION)
        if base < 0:
            raise FormatError("old ld.so-1.7.0 cache without the new table", path=path,
                              expected=_EXPECTED)
    new = data[base:]
    if len(new) < S.HEADER_SIZE:
        raise FormatError(f"truncated: {len(new)} bytes", path=path,
                          expected=f"a {S.HEADER_SIZE}-byte header ({_EXPECTED})")
    try:
        head = S.header_c.parse(new[:S.HEADER_SIZE])
    except ConstructError:
        raise FormatError(f"bad magic {bytes(new[:20])!r}", path=path,
                          expected=_EXPECTED) from None
    if head.flags == S.ENDIAN_BIG:
        raise FormatError("big-endian cache", path=path, expected="a little-endian cache")
    table_end = S.HEADER_SIZE + head.nlibs * S.ENTRY_SIZE
    if table_end > len(new):
        raise FormatError(f"truncated: {head.nlibs} entries need {table_end} bytes, the file "
                          f"has {len(new)}", path=path, expected=_EXPECTED)
    hwcaps = _hwcaps(new, head, path)
    entries = []
    for i in range(head.nlibs):
        off = S.HEADER_SIZE + i * S.ENTRY_SIZE
        e = S.entry_c.parse(new[off:off + S.ENTRY_SIZE])
        sub = None
        if e.hwcap & S.HWCAP_EXTENSION:
            idx = e.hwcap & 0xFFFFFFFF
            sub = hwcaps[idx] if idx < len(hwcaps) else f"#{idx}"
        elif e.hwcap:
            sub = f"hwcap {e.hwcap:#x}"  # legacy hwcap subdirectory entries
        entries.append(CacheEntry(_cstr(new, e.key, path, "name"),
                                  _cstr(new, e.value, path, "path"), e.flags, sub))
    return LdCache(path, entries, _generator(new, head, path))


def _sections(new: bytes, head, path: str):
    off = head.extension_offset
    if not off:
        return
    if off + 8 > len(new):
        raise FormatError(f"extension directory at {off:#x} is outside the file", path=path,
                          expected=_EXPECTED)
    try:
        d = S.extension_dir_c.parse(new[off:off + 8])
    except ConstructError:
        raise FormatError(f"bad extension directory magic at {off:#x}", path=path,
                          expected=f"{S.EXTENSION_MAGIC:#x}") from None
    for i in range(d.count):
        at = off + 8 + 16 * i
        if at + 16 > len(new):
            raise FormatError("truncated extension directory", path=path, expected=_EXPECTED)
        s = S.extension_section_c.parse(new[at:at + 16])
        if s.offset + s.size > len(new):
            raise FormatError(f"extension section {s.tag} is outside the file", path=path,
                              expected=_EXPECTED)
        yield s


def _hwcaps(new: bytes, head, path: str) -> list[str]:
    for s in _sections(new, head, path):
        if s.tag == S.EXTENSION_TAG_GLIBC_HWCAPS:
            return [_cstr(new, S.u32_c.parse(new[s.offset + 4 * i:s.offset + 4 * i + 4]),
                          path, "glibc-hwcaps")
                    for i in range(s.size // 4)]
    return []


def _generator(new: bytes, head, path: str) -> str | None:
    for s in _sections(new, head, path):
        if s.tag == S.EXTENSION_TAG_GENERATOR:
            return new[s.offset:s.offset + s.size].decode("utf-8", "replace")
    return None


def load_ld_cache(path: str | os.PathLike = DEFAULT_PATH, *, missing_ok: bool = True) -> LdCache:
    """Read the cache at ``path``; a missing file is an empty cache when ``missing_ok``
    (the dynamic linker then goes on to the default directories too)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if missing_ok:
            return LdCache(path, [])
        raise MissingInputError("no such file", path=path, expected=_EXPECTED) from None
    except OSError as exc:
        raise MissingInputError(f"cannot read: {exc.strerror}", path=path) from None
    return parse_ld_cache(data, path)
