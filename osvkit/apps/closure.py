"""The ``DT_NEEDED`` closure of host programs, resolved as the host's dynamic linker would.

For each object (breadth first from the program, as glibc's ``_dl_map_object_deps`` loads
them) and each of its ``DT_NEEDED`` names, in order:

* a name OSv's kernel supplies (:mod:`osvkit.apps.supplied`) is not searched: OSv never opens
  a file for it;
* a name already loaded (by a ``DT_NEEDED`` name or a ``DT_SONAME``) is that object again, so
  cycles terminate;
* a name with a ``/`` is a path (relative ones from the current directory);
* otherwise the directories are tried in glibc's order: the ``DT_RPATH`` of the object and of
  every object above it up to the program (only when the object has no ``DT_RUNPATH``), the
  ``library_path`` directories (where ``LD_LIBRARY_PATH`` goes), the object's own
  ``DT_RUNPATH``, the unpacked Debian packages (``sysroots``), the host's ``/etc/ld.so.cache``,
  then the default directories.  ``$ORIGIN`` is the directory of the object (of the program's
  real path for the program), ``$LIB`` is ``lib/x86_64-linux-gnu`` (Debian's multiarch
  directory) and ``$PLATFORM`` ``x86_64``; a file that is not an ELF object for the machine
  is skipped, as glibc skips it.

Where a library goes in the guest: OSv's linker searches the needing object's own run path
(``DT_RUNPATH``, else ``DT_RPATH``; only ``$ORIGIN`` expanded, against the object's guest
directory), then ``/`` and ``/usr/lib``.  A library found through an entry of the needing
object's own run path goes into that entry's guest directory (``$ORIGIN/../lib`` stays next to
the program; entries without ``$ORIGIN`` name host directories, not guest ones); every other
one goes into ``/usr/lib`` under its ``DT_NEEDED`` name, as a
regular file holding the bytes of the host file the name leads to (symlinks resolved), so OSv
finds it under the very name it looks for.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import deque
from dataclasses import dataclass, field

from ..errors import FormatError, MissingInputError, UsageError
from .elfinfo import ElfInfo, read_elf_info
from .ldcache import LdCache, load_ld_cache
from .supplied import Supplied, default
from ..log import log


DEFAULT_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                "/lib", "/usr/lib")
"""glibc's system directories on Debian x86-64 (``ld.so --help``), plus ``lib64``."""
DST_LIB = "lib/x86_64-linux-gnu"
DST_PLATFORM = "x86_64"
GUEST_LIBDIR = "/usr/lib"

_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")


class MissingLibraryError(MissingInputError):
    """A ``DT_NEEDED`` library that cannot be found (exit 66)."""


@dataclass
class ClosureEntry:
    """One file of the closure: a program or a library."""

    guest: str
    """Where it goes in the guest."""
    host: str
    """The path it was found at (a program: as given)."""
    source: str
    """The host file whose bytes are copied (``host`` with symlinks resolved)."""
    kind: str
    """``app`` (given as a program or an added ELF object) or ``library``."""
    via: str
    """How it was found: ``app``, ``rpath``, ``runpath``, ``library-path``, ``sysroot``,
    ``ld.so.cache``, ``default-dir`` or ``path``."""
    soname: str | None = None
    """The ``DT_NEEDED`` name it was loaded as (libraries)."""
    needed_by: list[str] = field(default_factory=list)
    """Guest paths of the objects that need it (sorted)."""

    def to_dict(self) -> dict:
        return {"guest": self.guest, "host": self.host, "source": self.source,
                "kind": self.kind, "via": self.via, "soname": self.soname,
                "needed_by": list(self.needed_by)}


@dataclass
class Unresolved:
    """A ``DT_NEEDED`` name that is not copied: supplied by the kernel, or missing."""

    soname: str
    needed_by: list[str]

    def to_dict(self) -> dict:
        return {"soname": self.soname, "needed_by": list(self.needed_by)}


@dataclass
class Closure:
    entries: list[ClosureEntry]
    """Programs and libraries, sorted by guest path."""
    supplied: list[Unresolved]
    missing: list[Unresolved]
    supplied_source: str = ""

    def files(self) -> list[ClosureEntry]:
        return list(self.entries)

    def to_dict(self) -> dict:
        return {"files": [e.to_dict() for e in self.entries],
                "supplied": [u.to_dict() for u in self.supplied],
                "missing": [u.to_dict() for u in self.missing],
                "supplied_source": self.supplied_source}


@dataclass
class AppSpec:
    """A program (or shared object) to put in the image: ``host`` at ``guest``."""

    host: str
    guest: str

    @classmethod
    def parse(cls, text: str) -> "AppSpec":
        host, guest = split_host_guest(text)
        return cls(host, guest or "/" + os.path.basename(host.rstrip("/")))


def split_host_guest(text: str) -> tuple[str, str | None]:
    """``HOST[:GUEST]``: the text after the last ``:`` is the guest path when it is absolute
    (so host paths with colons still work)."""
    host, sep, guest = text.rpartition(":")
    if sep and host and guest.startswith("/"):
        return host, guest_norm(guest)
    if not text:
        raise UsageError("empty path", expected="HOST[:GUEST]")
    return text, None


def guest_norm(path: str) -> str:
    """An absolute guest path, normalised (``..`` stops at ``/``, as in OSv's realpath)."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


# ------------------------------------------------------------------------------------------
# one object, loaded
# ------------------------------------------------------------------------------------------
@dataclass
class _Loaded:
    info: ElfInfo
    host: str
    origin: str          # $ORIGIN on the host
    guest: str
    loader: "_Loaded | None"


def resolve_in_root(path: str, root: str, limit: int = 40) -> str:
    """Follow the symlinks of ``path`` (below ``root``) as if ``root`` were ``/``."""
    root = root.rstrip("/")
    rel = path[len(root):].lstrip("/").split("/")
    done: list[str] = []
    hops = 0
    while rel:
        part = rel.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        cur = root + "/" + "/".join(done + [part])
        if os.path.islink(cur):
            hops += 1
            if hops > limit:
                return cur
            target = os.readlink(cur)
            if target.startswith("/"):
                done = []
            rel = [p for p in target.split("/") if p] + rel
            continue
        done.append(part)
    return root + "/" + "/".join(done)


def expand_dst(entry: str, origin: str) -> str | None:
    """Expand ``$ORIGIN``/``$LIB``/``$PLATFORM`` (and ``${...}``) in a run path entry."""
    def sub(m):
        name = m.group(1) or m.group(2)
        return {"ORIGIN": origin, "LIB": DST_LIB, "PLATFORM": DST_PLATFORM}[name]
    out = _DST.sub(sub, entry)
    return out or None


def _guest_dir_for(entry: str, loader: _Loaded) -> str | None:
    """The guest directory OSv's linker reads the ``$ORIGIN`` run path ``entry`` of ``loader``
    as; None for entries without ``$ORIGIN`` (host directories: the library goes to
    /usr/lib) and for ``$LIB``/``$PLATFORM`` ones (OSv does not expand those)."""
    if "ORIGIN" not in entry:
        return None  # an absolute host directory: /usr/lib, which OSv searches too
    if "$LIB" in entry or "${LIB}" in entry or "PLATFORM" in entry:
        return None
    gdir = entry.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", posixpath.dirname(loader.guest))
    if not gdir.startswith("/"):
        return None
    return guest_norm(gdir)


class Resolver:
    """Resolve the closure of programs; one instance may resolve several (each is its own
    process: objects are shared between programs only when they are the same file)."""

    def __init__(self, *, library_path=(), sysroots=(), supplied: Supplied | None = None,
                 ld_cache: LdCache | str | None = None, default_dirs=DEFAULT_DIRS,
                 machine: str = "EM_X86_64", allow_missing: bool = False):
        self.library_path = [os.fspath(p) for p in library_path]
        self.sysroots = [os.fspath(p) for p in sysroots]
        self.supplied = supplied if supplied is not None else default()
        if ld_cache is None or isinstance(ld_cache, (str, os.PathLike)):
            ld_cache = load_ld_cache(ld_cache or "/etc/ld.so.cache")
        self.cache = ld_cache
        self.default_dirs = list(default_dirs)
        self.machine = machine
        self.allow_missing = allow_missing
        self._info: dict[str, ElfInfo | None] = {}
        self.entries: dict[str, ClosureEntry] = {}
        self._supplied: dict[str, set[str]] = {}
        self._missing: dict[str, set[str]] = {}

    # -- reading ELF files, cached -----------------------------------------------------
    def _try_info(self, path: str) -> ElfInfo | None:
        """The object at ``path`` when it is one glibc would accept, else None."""
        if path not in self._info:
            source = self._source(path)
            try:
                self._info[path] = (read_elf_info(source, self.machine)
                                    if os.path.isfile(source) else None)
            except (FormatError, MissingInputError):
                self._info[path] = None
        return self._info[path]

    def _source(self, path: str) -> str:
        """The file whose bytes ``path`` leads to: symlinks resolved, those below a sysroot
        (an unpacked package) with absolute targets taken inside that sysroot."""
        for root in self.sysroots:
            if path.startswith(root.rstrip("/") + "/"):
                return resolve_in_root(path, root)
        return os.path.realpath(path)

    # -- the search ---------------------------------------------------------------------
    def _candidates(self, name: str, obj: _Loaded):
        if obj.info.runpath is None:
            chain = obj
            while chain is not None:
                for entry in chain.info.rpath or ():
                    d = expand_dst(entry, chain.origin)
                    if d:
                        yield os.path.join(d, name), ("rpath", entry if chain is obj else None)
                chain = chain.loader
        for d in self.library_path:
            yield os.path.join(d, name), ("library-path", None)
        for entry in obj.info.runpath or ():
            d = expand_dst(entry, obj.origin)
            if d:
                yield os.path.join(d, name), ("runpath", entry)
        for root in self.sysroots:
            for d in self.default_dirs:
                yield root.rstrip("/") + d + "/" + name, ("sysroot", None)
        hit = self.cache.lookup(name, self.machine)
        if hit:
            yield hit, ("ld.so.cache", None)
        for d in self.default_dirs:
            yield os.path.join(d, name), ("default-dir", None)

    def find(self, name: str, obj: _Loaded):
        """``(host path, ElfInfo, via, own run path entry or None)`` or None."""
        if "/" in name:
            info = self._try_info(os.path.abspath(name))
            return (os.path.abspath(name), info, "path", None) if info else None
        for path, (via, entry) in self._candidates(name, obj):
            info = self._try_info(path)
            if info is not None:
                return path, info, via, entry
        return None

    # -- one program --------------------------------------------------------------------
    def add_app(self, host: str, guest: str, *, kind: str = "app") -> None:
        """Add the program (or object) ``host`` at ``guest`` and resolve its closure.
        ``kind`` other than ``app`` marks an object that is in the image already (``add``,
        ``deb``): it is reported but not placed again."""
        info = self._info.get(host) or read_elf_info(host, self.machine)  # clear errors
        real = os.path.realpath(host)
        top = _Loaded(info, host, os.path.dirname(real), guest, None)
        self._put(ClosureEntry(guest, host, real, kind, kind, info.soname), None)
        loaded: dict[str, _Loaded] = {}
        queue = deque([top])
        while queue:
            obj = queue.popleft()
            for name in obj.info.needed:
                if name in self.supplied:
                    self._supplied.setdefault(name, set()).add(obj.guest)
                    continue
                if name in loaded:
                    self._needed(loaded[name], obj)
                    continue
                hit = self.find(name, obj)
                if hit is None:
                    self._missing.setdefault(name, set()).add(f"{obj.guest} ({obj.host})")
                    continue
                path, linfo, via, own = hit
                gdir = _guest_dir_for(own, obj) if own is not None else None
                lib = _Loaded(linfo, path, os.path.dirname(os.path.abspath(path)),
                              posixpath.join(gdir or GUEST_LIBDIR, posixpath.basename(name)),
                              obj)
                existing = next((o for o in loaded.values()
                                 if self._source(o.host) == self._source(path)), None)
                if existing is not None and existing.guest == lib.guest:
                    lib = existing
                else:
                    self._put(ClosureEntry(lib.guest, path, self._source(path), "library",
                                           via, name), obj)
                    queue.append(lib)
                loaded[name] = lib
                if linfo.soname:
                    loaded.setdefault(linfo.soname, lib)
                self._needed(lib, obj)

    def _needed(self, lib: _Loaded, obj: _Loaded) -> None:
        entry = self.entries[lib.guest]
        if obj.guest not in entry.needed_by:
            entry.needed_by.append(obj.guest)

    def _put(self, entry: ClosureEntry, needer: _Loaded | None) -> None:
        old = self.entries.get(entry.guest)
        if old is None:
            self.entries[entry.guest] = entry
            return
        if old.source != entry.source:
            by = f" (needed by {needer.guest})" if needer else ""
            raise UsageError(f"two different files for guest {entry.guest}: {old.source} and "
                             f"{entry.source}{by}",
                             expected="one file per guest path (give the programs distinct "
                                      "guest paths, or one library version)")

    def result(self) -> Closure:
        missing = [Unresolved(n, sorted(b)) for n, b in sorted(self._missing.items())]
        if missing and not self.allow_missing:
            m = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MissingLibraryError(
                f"library {m.soname} needed by {m.needed_by[0]} not found{more}",
                path=m.soname,
                expected="it in the run path, --library-path, /etc/ld.so.cache or the default "
                         "directories (or --allow-missing)")
        for m in missing:
            log.warning("warning: library %s needed by %s not found (skipped)", m.soname,
                        ", ".join(m.needed_by))
        entries = sorted(self.entries.values(), key=lambda e: e.guest)
        for e in entries:
            e.needed_by.sort()
        return Closure(entries, [Unresolved(n, sorted(b)) for n, b in sorted(self._supplied.items())],
                       missing, self.supplied.source)


def resolve_closure(apps, *, library_path=(), sysroots=(), kernel=None,
                    supplied: Supplied | None = None, ld_cache=None,
                    allow_missing: bool = False, machine: str = "EM_X86_64") -> Closure:
    """The closure of ``apps`` (paths, ``"HOST:GUEST"`` strings or :class:`AppSpec`):
    every program and library to copy, sorted by guest path.

    ``kernel`` (a path) tells which libraries the kernel supplies (else the default list);
    a library that cannot be found raises :class:`MissingLibraryError` unless
    ``allow_missing``."""
    from .supplied import supplied_sonames

    if supplied is None:
        supplied = supplied_sonames(kernel, machine)
    r = Resolver(library_path=library_path, sysroots=sysroots, supplied=supplied,
                 ld_cache=ld_cache, machine=machine, allow_missing=allow_missing)
    for app in apps:
        spec = app if isinstance(app, AppSpec) else AppSpec.parse(os.fspath(app))
        r.add_app(spec.host, spec.guest)
    return r.result()
