"""The shared libraries an OSv kernel supplies itself, so that an image need not carry them.

OSv's dynamic linker (``core/elf.cc``, ``program::program``) registers the kernel under a fixed
list of names before it loads anything, and ``program::load_object`` looks a ``DT_NEEDED`` name
up in that registry before it searches any directory.  A program's ``libc.so.6`` is therefore
always the kernel's, and a copy on the image would never be opened.

The list depends on the architecture and on how the kernel was built:

* always: the dynamic linker's soname (``ld-linux-x86-64.so.2`` on x86-64,
  ``ld-linux-aarch64.so.1`` on aarch64), ``libresolv.so.2``, ``libc.so.6``, ``libm.so.6``,
  ``libpthread.so.0``, ``libdl.so.2``, ``librt.so.1``, ``libaio.so.1``, ``libxenstore.so.3.0``,
  ``libcrypt.so.1``, ``libutil.so``; on x86-64 also musl's ``libc.musl-x86_64.so.1`` and
  ``ld-musl-x86_64.so.1``;
* only in kernels built without ``conf_hide_symbols=1``: ``libstdc++.so.6``;
* only in kernels built without ``conf_hide_symbols=1`` against Boost older than 1.69:
  ``libboost_system.so.1.55.0`` (x86-64) / ``libboost_system-mt.so.1.55.0`` (aarch64).

:func:`supplied_sonames` reads the list from the kernel at hand: the names are C string
literals, so each one the kernel registers stands NUL-terminated in its read-only data (the
sections that are allocated, not executable and not ``NOBITS``; the whole file when it has no
section headers).  A name counts when it occurs there as a complete string (followed by a NUL
and not preceded by a character a file name could continue with; a linker that merges string
tails may leave ``/`` before it).  The kernel is recognised as OSv's when the dynamic linker's
soname, ``libc.so.6`` and ``libm.so.6`` are all found; otherwise (osvkit's conformance kernel,
an unreadable or compressed kernel) :data:`DEFAULT_SUPPLIED` is used: the names every kernel
supplies, which leaves out ``libstdc++.so.6`` -- copying it to a kernel that supplies it costs
only space, because the kernel's registration wins.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DL_SONAME = {"EM_X86_64": "ld-linux-x86-64.so.2", "EM_AARCH64": "ld-linux-aarch64.so.1"}

_COMMON = ("libresolv.so.2", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
           "librt.so.1", "libaio.so.1", "libxenstore.so.3.0", "libcrypt.so.1", "libutil.so")
_MUSL = {"EM_X86_64": ("libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"), "EM_AARCH64": ()}
_BOOST = {"EM_X86_64": "libboost_system.so.1.55.0",
          "EM_AARCH64": "libboost_system-mt.so.1.55.0"}
LIBSTDCXX = "libstdc++.so.6"


def default_supplied(machine: str = "EM_X86_64") -> tuple[str, ...]:
    """The names every OSv kernel for ``machine`` supplies (``conf_hide_symbols=1``)."""
    return tuple(sorted((DL_SONAME[machine], *_COMMON, *_MUSL[machine])))


def candidate_sonames(machine: str = "EM_X86_64") -> tuple[str, ...]:
    """Every name some OSv kernel for ``machine`` may supply."""
    return tuple(sorted((*default_supplied(machine), LIBSTDCXX, _BOOST[machine])))


DEFAULT_SUPPLIED = default_supplied("EM_X86_64")


@dataclass(frozen=True)
class Supplied:
    names: frozenset[str]
    source: str
    """Where the list came from: ``kernel <path>`` or ``default (<why>)``."""

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def to_dict(self) -> dict:
        return {"sonames": sorted(self.names), "source": self.source}


def default(reason: str = "no kernel given", machine: str = "EM_X86_64") -> Supplied:
    return Supplied(frozenset(default_supplied(machine)), f"default ({reason})")


def _readonly_chunks(data: bytes) -> list[bytes]:
    """The allocated, non-executable, non-NOBITS sections of an ELF64 file (the whole file
    when it is not one or has no section headers)."""
    from io import BytesIO

    from elftools.common.exceptions import ELFError
    from elftools.construct import ConstructError
    from elftools.elf.elffile import ELFFile

    if not data.startswith(b"\x7fELF"):
        return [data]
    try:
        elf = ELFFile(BytesIO(data))
        chunks = []
        for sec in elf.iter_sections():
            flags = sec["sh_flags"]
            if flags & 0x2 and not flags & 0x4 and sec["sh_type"] != "SHT_NOBITS":  # ALLOC, !EXEC
                off, size = sec["sh_offset"], sec["sh_size"]
                chunks.append(data[off:off + size])
        return chunks or [data]
    except (ELFError, ConstructError, ValueError, IndexError, KeyError, TypeError):
        return [data]


def scan_supplied(data: bytes, machine: str = "EM_X86_64") -> set[str]:
    """The candidate sonames that stand as complete strings in ``data``'s read-only data."""
    found = set()
    chunks = _readonly_chunks(data)
    for name in candidate_sonames(machine):
        pat = re.compile(rb"(?<![A-Za-z0-9_.+\-])" + re.escape(name.encode()) + rb"\0")
        if any(pat.search(c) for c in chunks):
            found.add(name)
    return found


def supplied_sonames(kernel: str | os.PathLike | bytes | None,
                     machine: str = "EM_X86_64") -> Supplied:
    """The sonames ``kernel`` (a path or its bytes) supplies, or the default list when it
    cannot be told (see the module documentation)."""
    if kernel is None:
        return default("no kernel given", machine)
    label = "<bytes>"
    if isinstance(kernel, (bytes, bytearray, memoryview)):
        data = bytes(kernel)
    else:
        label = os.fspath(kernel)
        try:
            with open(label, "rb") as f:
                data = f.read()
        except OSError as exc:
            return default(f"cannot read {label}: {exc.strerror}", machine)
    found = scan_supplied(data, machine)
    if not {DL_SONAME[machine], "libc.so.6", "libm.so.6"} <= found:
        return default(f"{label} does not register OSv's library names", machine)
    return Supplied(frozenset(found), f"kernel {label}")
