"""Host programs, files and Debian packages -> the guest tree of an OSv image.

:func:`build_app_tree` assembles, in this order (a later entry for a guest path replaces an
earlier one): an optional OSv manifest, the files of ``--deb`` packages, the ``--add`` files
and directories, the libraries of the closure, the ``--app`` programs, and -- unless
``bare`` -- OSv's usual skeleton where the tree lacks it (``/dev``, ``/proc``, ``/sys``,
``/tmp``, ``/etc/fstab``, ``/etc/hosts``, ``/etc/mnttab -> /proc/mounts``).

The closure (:mod:`osvkit.apps.closure`) starts from every ``--app`` program and from every
x86-64 ELF object found among the ``--add`` and ``--deb`` files (Python extension modules,
plugins: what a program will ``dlopen``); for ``--deb`` objects the unpacked packages are
searched before the host.  A library whose file is already in the tree (from ``--add`` or
``--deb``) is not copied twice: its ``/usr/lib/<soname>`` entry is a symlink to it.

Symlinks inside an added directory stay symlinks when their target is inside that directory;
a symlink leading out of it is an error unless ``follow_symlinks_anywhere`` (then the file it
leads to is copied).  A Debian package's symlinks are kept as they are: they name paths of the
system the package is installed on, which is the guest.  ``excludes`` are ``fnmatch`` patterns matched against each name, each
path relative to the added directory, and each guest path; a matching directory is skipped
whole.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass, field

from ..errors import CmdlineError, ManifestInputError, MissingInputError, UsageError
from ..rofs.manifest import Dir, File, FileSource, GuestTree, Origin, Symlink
from .closure import AppSpec, Closure, Resolver, split_host_guest
from .elfinfo import is_elf
from .supplied import Supplied, supplied_sonames
from ..log import log


HOSTS = b"127.0.0.1 localhost osv.local\n"
MNTTAB_TARGET = "/proc/mounts"


@dataclass
class AddedFile:
    """One entry of the report: a file or symlink of the guest tree and where it came from."""

    guest: str
    kind: str            # app, library, add, deb, manifest, skeleton
    source: str | None   # host file (None for generated data and symlinks)
    target: str | None = None          # symlinks
    via: str | None = None
    soname: str | None = None
    needed_by: list[str] = field(default_factory=list)
    origin: str | None = None          # the --add/--deb argument

    def to_dict(self) -> dict:
        d = {"guest": self.guest, "kind": self.kind, "source": self.source}
        for k in ("target", "via", "soname", "origin"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.needed_by:
            d["needed_by"] = list(self.needed_by)
        return d


@dataclass
class AppTree:
    tree: GuestTree
    closure: Closure
    files: list[AddedFile]
    command: str | None
    """The first ``--app`` guest path: the default application command."""

    def to_dict(self) -> dict:
        return {"files": [f.to_dict() for f in self.files],
                "supplied": [u.to_dict() for u in self.closure.supplied],
                "supplied_source": self.closure.supplied_source,
                "missing": [u.to_dict() for u in self.closure.missing]}


class _Excluder:
    def __init__(self, patterns):
        self.patterns = list(patterns)
        self.regex = (re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns))
                      if self.patterns else None)

    def __call__(self, name: str, rel: str, guest: str) -> bool:
        m = self.regex
        return m is not None and bool(m.match(name) or m.match(rel) or m.match(guest))


def default_add_guest(host: str) -> str:
    """Where ``--add HOST`` goes without a GUEST: an absolute HOST at the same path, a
    relative one below ``/`` (its last component when it climbs out with ``..``)."""
    norm = os.path.normpath(host)
    if norm.startswith("/"):
        return norm
    if norm == ".." or norm.startswith("../") or norm == ".":
        return "/" + os.path.basename(os.path.abspath(host))
    return "/" + norm


class _Assembler:
    def __init__(self, excludes, anywhere: bool, allow_missing: bool):
        self.tree = GuestTree()
        self.report: dict[str, AddedFile] = {}
        self.exclude = _Excluder(excludes)
        self.anywhere = anywhere
        self.allow_missing = allow_missing
        self.elf_objects: list[tuple[str, str, str]] = []   # (host, guest, kind)
        self.by_real: dict[str, str] = {}                  # realpath of ELF files -> guest
        self._origins: dict[str, Origin] = {}

    def origin(self, text: str) -> Origin:
        o = self._origins.get(text)
        if o is None:
            o = self._origins[text] = Origin(text, None)
        return o

    def put(self, guest: str, node, rec: AddedFile) -> None:
        self.tree.add(guest, node)
        if not isinstance(node, Dir):
            self.report[guest] = rec

    def add_file(self, host: str, guest: str, kind: str, origin: str) -> None:
        self.put(guest, File(origin=self.origin(origin), source=FileSource(path=host)),
                 AddedFile(guest, kind, host, origin=origin))
        if is_elf(host):
            self.elf_objects.append((host, guest, kind))
            self.by_real[os.path.realpath(host)] = guest

    def add(self, text: str, kind: str = "add") -> None:
        host, guest = split_host_guest(text)
        guest = guest or default_add_guest(host)
        if not os.path.lexists(host):
            raise MissingInputError("no such file or directory", path=host,
                                    expected=f"an existing file or directory for --{kind}")
        real = os.path.realpath(host)
        if os.path.isdir(real):
            self.add_dir(real, guest, kind, text)
        elif os.path.isfile(real):
            self.add_file(real, guest, kind, text)
        else:
            raise ManifestInputError("not a regular file or directory", path=host,
                                     expected="a file or a directory")

    def add_dir(self, root: str, guest: str, kind: str, origin: str) -> None:
        self.tree.add(guest, Dir(origin=self.origin(origin)))
        stack = [(root, guest, "", (root,))]
        while stack:
            hdir, gdir, rdir, ancestors = stack.pop()
            try:
                entries = sorted(os.scandir(hdir), key=lambda e: os.fsencode(e.name))
            except OSError as exc:
                raise ManifestInputError(f"cannot list: {exc.strerror}", path=hdir) from None
            sub = []
            for e in entries:
                g = gdir.rstrip("/") + "/" + e.name
                rel = rdir + e.name
                if self.exclude(e.name, rel, g):
                    continue
                if e.is_symlink():
                    self._symlink(e.path, g, root, ancestors, sub, kind, origin)
                elif e.is_dir(follow_symlinks=False):
                    self.tree.add(g, Dir(origin=self.origin(origin)))
                    sub.append((e.path, g, rel + "/", ancestors + (e.path,)))
                elif e.is_file(follow_symlinks=False):
                    self.add_file(e.path, g, kind, origin)
            stack.extend(reversed(sub))

    def _symlink(self, path, guest, root, ancestors, sub, kind, origin) -> None:
        link = os.readlink(path)
        if kind == "deb":  # a package's links name paths of the system it is unpacked on
            self.put(guest, Symlink(origin=self.origin(origin), target=link),
                     AddedFile(guest, kind, None, target=link, origin=origin))
            return
        real = os.path.realpath(path)
        inside = real == root or real.startswith(root.rstrip("/") + "/")
        if not os.path.exists(path):
            if not self.allow_missing:
                raise ManifestInputError(f"dangling symlink (to {link})", path=path,
                                         expected="a symlink to an existing file "
                                                  "(or --allow-missing)")
            log.warning("warning: %s: dangling symlink skipped", path)
            return
        if inside and not link.startswith("/"):
            self.put(guest, Symlink(origin=Origin(origin, None), target=link),
                     AddedFile(guest, kind, None, target=link, origin=origin))
            return
        if inside and not os.path.isdir(real):
            target = os.path.relpath(real, os.path.dirname(path))
            self.put(guest, Symlink(origin=Origin(origin, None), target=target),
                     AddedFile(guest, kind, None, target=target, origin=origin))
            return
        if not inside and not self.anywhere:
            raise ManifestInputError(f"host symlink leads to {real}, outside {root}", path=path,
                                     expected="a target inside the added directory "
                                              "(or --follow-symlinks-anywhere)")
        if os.path.isdir(real):
            if real in ancestors:
                raise ManifestInputError(f"cyclic symlink to {real}", path=path,
                                         expected="no directory symlink loops")
            self.tree.add(guest, Dir(origin=self.origin(origin)))
            sub.append((real, guest, os.path.relpath(path, root) + "/", ancestors + (real,)))
        else:
            self.add_file(real, guest, kind, origin)


def _skeleton(asm: _Assembler) -> None:
    from ..rofs.writer import add_osv_defaults

    for guest in add_osv_defaults(asm.tree):
        node = asm.tree.lookup(guest)
        if not isinstance(node, Dir):
            asm.report[guest] = AddedFile(guest, "skeleton", None)
    if asm.tree.lookup("/etc/hosts") is None:
        asm.put("/etc/hosts", File(source=FileSource(data=HOSTS)),
                AddedFile("/etc/hosts", "skeleton", None))
    if asm.tree.lookup("/etc/mnttab") is None:
        asm.put("/etc/mnttab", Symlink(target=MNTTAB_TARGET),
                AddedFile("/etc/mnttab", "skeleton", None, target=MNTTAB_TARGET))


def build_app_tree(*, apps=(), adds=(), excludes=(), debs=(), library_path=(),
                   kernel=None, supplied: Supplied | None = None, manifest=None,
                   defines=None, manifest_root=None, bare: bool = False,
                   allow_missing: bool = False, follow_symlinks_anywhere: bool = False,
                   deb_cache: str | None = None, ld_cache=None,
                   scan_added_elf: bool = True) -> AppTree:
    """The guest tree (and its report) for ``apps`` (``"HOST[:GUEST]"`` strings or
    :class:`AppSpec`), ``adds`` (``"HOST[:GUEST]"``) and ``debs`` (``"PKG[=VERSION]"``)."""
    from ..rofs import parse_manifest

    asm = _Assembler(excludes, follow_symlinks_anywhere, allow_missing)
    if manifest is not None:
        asm.tree = parse_manifest(manifest, defines=defines, root=manifest_root,
                                  allow_missing=allow_missing,
                                  follow_symlinks_anywhere=follow_symlinks_anywhere)
        for guest, node in asm.tree.walk():
            if not isinstance(node, Dir):
                asm.report[guest] = AddedFile(
                    guest, "manifest", node.source.path if isinstance(node, File) else None,
                    target=node.target if isinstance(node, Symlink) else None,
                    origin=str(node.origin))
    sysroots = []
    if debs:
        from .deb import fetch_deb
        for spec in debs:
            unpacked = fetch_deb(spec, deb_cache)
            sysroots.append(unpacked.root)
            asm.add(f"{unpacked.root}:/", kind="deb")
            for rec in asm.report.values():
                if rec.kind == "deb" and rec.origin == f"{unpacked.root}:/":
                    rec.origin = spec
    for text in adds:
        asm.add(os.fspath(text))
    if supplied is None:
        supplied = supplied_sonames(kernel)
    res = Resolver(library_path=library_path, sysroots=sysroots, supplied=supplied,
                   ld_cache=ld_cache, allow_missing=allow_missing)
    specs = [a if isinstance(a, AppSpec) else AppSpec.parse(os.fspath(a)) for a in apps]
    for spec in specs:
        res.add_app(spec.host, spec.guest)
    if scan_added_elf:
        for host, guest, kind in asm.elf_objects:
            if res._try_info(host) is not None:
                res.add_app(host, guest, kind=kind)
    closure = res.result()
    _place(asm, closure)
    if not bare:
        _skeleton(asm)
    files = [asm.report[g] for g in sorted(asm.report)]
    return AppTree(asm.tree, closure, files, specs[0].guest if specs else None)


def _place(asm: _Assembler, closure: Closure) -> None:
    for e in closure.entries:
        if e.kind not in ("app", "library"):
            continue  # an added object: already in the tree
        rec = AddedFile(e.guest, e.kind, e.source, via=e.via, soname=e.soname,
                        needed_by=list(e.needed_by))
        have = asm.by_real.get(e.source) if e.kind == "library" else None
        if have is not None and have != e.guest:
            target = posixpath.relpath(have, posixpath.dirname(e.guest))
            rec.target, rec.source = target, None
            asm.put(e.guest, Symlink(origin=Origin("closure", None), target=target), rec)
        else:
            asm.put(e.guest, File(origin=Origin(e.host, None), source=FileSource(path=e.source)),
                    rec)


def parse_env(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` for ``--env``."""
    name, sep, value = text.partition("=")
    if not sep or not name or not (name[0].isalpha() or name[0] == "_") or \
            not all(c.isalnum() or c == "_" for c in name):
        raise UsageError(f"--env {text!r}", expected="NAME=VALUE with NAME of letters, digits "
                                                     "and _ (not starting with a digit)")
    return name, value


def compose_cmdline(cmdline: str = "", *, env=(), cwd: str | None = None,
                    command: str | None = None, rootfs: str | None = "rofs",
                    target: str = "osv") -> str:
    """``cmdline`` with ``--env=NAME=VALUE`` per ``env`` item, ``--cwd=DIR``, ``command`` as
    the application command when ``cmdline`` has none, and ``--rootfs=<rootfs>`` first unless
    a loader option names one -- composed with :class:`osvkit.cmdline.Cmdline`, which escapes
    each option and checks the limit of ``target``."""
    from ..cmdline import Cmdline, split_cmdline
    from ..cmdline.model import TARGETS

    cap = TARGETS[target] + 1
    parts = split_cmdline(cmdline or "")
    c = Cmdline(cap)
    names = [o.lstrip("-").partition("=")[0] for o in parts.options]
    if rootfs and "rootfs" not in names:
        c.insert("rootfs", rootfs)
    for token in parts.options:
        c.insert_option(token)
    try:
        for item in env:
            name, value = item if isinstance(item, tuple) else parse_env(item)
            c.insert("env", f"{name}={value}")
        if cwd is not None:
            if not cwd.startswith("/"):
                raise UsageError(f"--cwd {cwd!r}", expected="an absolute guest directory")
            c.insert("cwd", cwd)
        c.set_command(parts.command or command or "")
    except CmdlineError as exc:
        if exc.reason != CmdlineError.TOO_LARGE:
            raise
        more = "" if target == "bios" else " (or --force-cmdline for boot16's 32,255)"
        raise CmdlineError(f"the command line with its --env/--cwd options is too long: {exc.what}",
                           reason=CmdlineError.TOO_LARGE,
                           expected=f"at most {TARGETS[target]} bytes{more}") from None
    line = str(c)
    if parts.mmio:
        line = " ".join([line, *(e.text for e in parts.mmio)]).strip()
    return line
