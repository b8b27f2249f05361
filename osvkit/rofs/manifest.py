"""OSv manifests (``usr.manifest``) and the guest tree they describe.

The syntax is OSv's (``scripts/manifest_common.py``), one entry a line::

    [manifest]                         # a section header: skipped
    # a comment                        # skipped, as are empty lines
    /guest/path: host/path             # a file (or, when host/path is a directory, an
                                       # empty directory); split on the first ": "
    /usr/lib/**: /opt/sysroot/lib/**   # every file below the host directory, recursively;
                                       # directories are implied (empty ones are not added)
    /&/etc/hosts: ../static/&          # shorthand: guest /etc/hosts from ../static/etc/hosts
    /lib/ld.so: ->/lib64/ld.so         # a symlink with that target
    /bin/sh: !/host/bin/sh             # "!": keep a host symlink as a symlink (not followed)
    /x: %(libdir)s/x.so                # -D libdir=/usr/lib; "%%" is a literal "%"

What osvkit does differently from OSv's scripts, on purpose:

* Errors instead of silence: a line without ``": "``, a second ``": "``, ``/**`` or ``/&``
  on one side only, an undefined ``%(name)s``, a guest path that is not absolute or climbs
  above ``/`` with ``..``, and a guest path used both as a file and as a directory are
  :class:`~osvkit.errors.ManifestError` naming the manifest and line (OSv drops the text after
  a second ``": "``, and silently replaces a directory by a file or crashes).
* A host path that does not exist (including a dangling symlink) is an error (exit 66)
  unless ``allow_missing``, in which case the line is skipped with a warning.
* Host symlinks are followed only when their final target lies inside a directory the
  manifest names (the directory of a ``/**`` line, the directory a plain line's host file is
  in, a host directory named on a line), unless ``follow_symlinks_anywhere``.  A symlink cycle
  is an error.  Symlinks to directories inside a ``/**`` tree are followed (OSv's
  ``os.walk`` silently drops them).  An absolute link target is first looked up below the
  link's ancestor directories, nearest first, as OSv's ``unsymlink`` does (sysroot trees).
* The ``/**`` walk is sorted and the writer sorts directory children, so the result does not
  depend on the host's directory order.  A later line for the same guest path replaces an
  earlier one, as in OSv's dict.
* ``.so`` files are not stripped and ``-stripped.so`` files are not skipped (OSv runs
  ``strip``; osvkit copies exactly the files named).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ManifestError, ManifestInputError, UsageError
from ..log import log


_SKIP = re.compile(r"^[ \t]*(|#.*|\[manifest\])$")
_SUBST = re.compile(r"%(?:%|\(([^)]*)\)s)")


@dataclass(frozen=True)
class Origin:
    """Where a tree entry came from: a manifest file and a 1-based line number."""

    manifest: str | None
    line: int | None

    def error(self, what: str, cls=ManifestError, **kw) -> ManifestError:
        return cls(what, path=self.manifest, line=self.line, **kw)

    def __str__(self) -> str:
        if self.manifest is None:
            return "<tree>"
        return f"{self.manifest}:{self.line}" if self.line else self.manifest


NO_ORIGIN = Origin(None, None)


@dataclass
class FileSource:
    """The data of one guest file: bytes in memory, or ``size`` bytes of a host file from
    ``offset`` (the whole file when ``size`` is None), or ``size`` bytes from ``offset`` of
    something only ``read(offset, n) -> bytes`` reaches (a file inside another image,
    read a range at a time)."""

    path: str | None = None
    offset: int = 0
    size: int | None = None
    data: bytes | None = None
    read: Callable[[int, int], bytes] | None = field(default=None, repr=False, compare=False)


@dataclass
class Node:
    origin: Origin = field(default=NO_ORIGIN, repr=False, compare=False)


@dataclass
class Dir(Node):
    children: dict[str, Node] = field(default_factory=dict)


@dataclass
class File(Node):
    source: FileSource = field(default_factory=FileSource)


@dataclass
class Symlink(Node):
    target: str = ""


@dataclass
class GuestTree:
    """The guest filesystem a manifest describes; names are ``str`` (undecodable host bytes
    kept with ``surrogateescape``)."""

    root: Dir = field(default_factory=Dir)

    def lookup(self, path: str) -> Node | None:
        node: Node = self.root
        for part in _split(path):
            if not isinstance(node, Dir) or part not in node.children:
                return None
            node = node.children[part]
        return node

    def add(self, guest: str, node: Node) -> None:
        """Insert ``node`` at absolute ``guest``; parents are created as directories.

        A later file or symlink replaces an earlier one; two directories merge; a file and a
        directory at the same path are a :class:`ManifestError`."""
        parts = _split(guest)
        origin = node.origin
        cur = self.root
        for i, part in enumerate(parts[:-1]):
            nxt = cur.children.get(part)
            if nxt is None:
                nxt = cur.children[part] = Dir(origin=origin)
            elif not isinstance(nxt, Dir):
                where = "/" + "/".join(parts[:i + 1])
                raise origin.error(f"guest path {where} is a {_kind(nxt)} (from {nxt.origin}) "
                                   f"and a directory (parent of {guest})",
                                   expected="each guest path either a file or a directory")
            cur = nxt
        if not parts:  # "/" itself
            if not isinstance(node, Dir):
                raise origin.error("guest path / must be a directory", expected="a directory")
            return
        name = parts[-1]
        old = cur.children.get(name)
        if old is not None and isinstance(old, Dir) != isinstance(node, Dir):
            raise origin.error(f"guest path {guest} is a {_kind(node)} here and a {_kind(old)} "
                               f"(from {old.origin})",
                               expected="each guest path either a file or a directory")
        if isinstance(old, Dir):
            return  # directories merge
        if old is not None:
            log.info("%s: %s replaces the entry from %s", origin, guest, old.origin)
        cur.children[name] = node

    def walk(self):
        """Yield ``(guest_path, node)`` in sorted pre-order, the root first as ``"/"``."""
        stack = [("/", self.root)]
        while stack:
            path, node = stack.pop()
            yield path, node
            if isinstance(node, Dir):
                base = path.rstrip("/")
                for name in sorted(node.children, key=fsname, reverse=True):
                    stack.append((f"{base}/{name}", node.children[name]))


def fsname(name: str) -> bytes:
    """A guest name's on-disk bytes (UTF-8; undecodable host bytes round-trip)."""
    return name.encode("utf-8", "surrogateescape")


def _kind(node: Node) -> str:
    return "directory" if isinstance(node, Dir) else "symlink" if isinstance(node, Symlink) else "file"


def _split(guest: str) -> list[str]:
    return [p for p in guest.split("/") if p]


# ------------------------------------------------------------------------------------------
# Reading a manifest
# ------------------------------------------------------------------------------------------
@dataclass
class ManifestLine:
    """One entry line, after substitution: ``guest`` and ``host`` as written (stripped)."""

    guest: str
    host: str
    origin: Origin


def parse_defines(values) -> dict[str, str]:
    """``-D name=value`` arguments as a dict (a later value for a name wins)."""
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name:
            raise UsageError(f"-D {v!r}", expected="-D name=value")
        out[name] = value
    return out


def substitute(text: str, defines: dict[str, str], origin: Origin) -> str:
    """Expand ``%(name)s`` from ``defines`` and ``%%`` to ``%``; any other ``%`` is an error."""
    out = []
    pos = 0
    while True:
        j = text.find("%", pos)
        if j < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:j])
        m = _SUBST.match(text, j)
        if m is None:
            raise origin.error(f"bad substitution {text[j:j + 12]!r} in {text!r}",
                               expected="%(name)s or %% for a literal %")
        if m.group(0) == "%%":
            out.append("%")
        else:
            name = m.group(1)
            if name not in defines:
                raise origin.error(f"%({name})s is not defined", expected=f"-D {name}=VALUE")
            out.append(defines[name])
        pos = m.end()


def read_manifest(path: str | os.PathLike, defines: dict[str, str] | None = None) -> list[ManifestLine]:
    """Read and check the syntax of a manifest; return its entry lines in order."""
    path = os.fspath(path)
    defines = dict(defines or {})
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ManifestInputError("no such file", path=path) from None
    except IsADirectoryError:
        raise ManifestInputError("is a directory", path=path, expected="a manifest file") from None
    except OSError as exc:
        raise ManifestInputError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ManifestError("not UTF-8 text", path=path, line=line, expected="a UTF-8 manifest") from None
    lines = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip()
        if _SKIP.match(line):
            continue
        origin = Origin(path, lineno)
        if "\0" in line:
            raise origin.error("NUL character in the line", expected="text")
        parts = line.split(": ")
        if len(parts) < 2:
            raise origin.error(f"no ': ' separator in {line.strip()!r}",
                               expected="'guest: host', '# comment' or '[manifest]'")
        if len(parts) > 2:
            raise origin.error(f"more than one ': ' in {line.strip()!r}",
                               expected="one 'guest: host' pair per line")
        guest, host = parts[0].strip(), parts[1].strip()
        if not guest or not host:
            raise origin.error(f"empty {'guest' if not guest else 'host'} path",
                               expected="'guest: host'")
        lines.append(ManifestLine(guest, substitute(host, defines, origin), origin))
    return lines


def normalise_guest(guest: str, origin: Origin) -> str:
    """Return the absolute, normalised form of ``guest``; ``..`` may not climb above ``/``."""
    if not guest.startswith("/"):
        raise origin.error(f"guest path {guest!r} is not absolute", expected="a path starting with /")
    parts: list[str] = []
    for part in guest.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise origin.error(f"guest path {guest!r} climbs above /", expected="a path inside /")
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


class _Resolver:
    """Host-side checks: existence, symlink following within allowed roots, cycles."""

    def __init__(self, roots: list[str], anywhere: bool, allow_missing: bool):
        self.roots = sorted({os.path.realpath(r) for r in roots})
        self.anywhere = anywhere
        self.allow_missing = allow_missing

    def inside(self, real: str) -> bool:
        if self.anywhere:
            return True
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in self.roots)

    def missing(self, what: str, origin: Origin) -> None:
        if not self.allow_missing:
            raise origin.error(what, cls=ManifestInputError,
                               expected="an existing host file (or --allow-missing)")
        log.warning("%s: skipped: %s", origin, what)

    def follow(self, path: str, origin: Origin) -> str | None:
        """Follow the symlink chain at ``path`` as OSv's ``unsymlink`` does; return the final
        non-link path, or None when it is missing (and missing paths are allowed)."""
        seen: set[str] = set()
        cur = path
        while os.path.islink(cur):
            key = os.path.join(os.path.realpath(os.path.dirname(cur) or "."), os.path.basename(cur))
            if key in seen:
                raise origin.error(f"cyclic symlink {path} (loops at {cur})",
                                   expected="a symlink chain that ends")
            seen.add(key)
            link = os.readlink(cur)
            if link.startswith("/"):
                # absolute: nearest ancestor that has it below, then the host root
                base = os.path.dirname(cur)
                while True:
                    cand = base.rstrip("/") + link
                    if os.path.lexists(cand) or base in ("/", ""):
                        break
                    base = os.path.dirname(base)
                cur = cand
            else:
                cur = os.path.join(os.path.dirname(cur), link)
        try:
            real = os.path.realpath(cur, strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise origin.error(f"cyclic symlink {path}", expected="a symlink chain that ends") from None
            self.missing(f"{path}: dangling symlink (no {cur})" if cur != path else f"no such file {path}",
                         origin)
            return None
        if cur != path and not self.inside(real):
            raise origin.error(
                f"host symlink {path} leads to {real}, outside the directories the manifest names",
                expected="a target inside them (or --follow-symlinks-anywhere)")
        return real if cur != path else cur


def parse_manifest(path: str | os.PathLike, *, defines: dict[str, str] | None = None,
                   root: str | os.PathLike | None = None, allow_missing: bool = False,
                   follow_symlinks_anywhere: bool = False, tree: GuestTree | None = None) -> GuestTree:
    """Read the manifest at ``path`` and return the guest tree it describes.

    Relative host paths resolve against ``root`` (default: the current directory).  ``tree``
    lets several manifests add to one tree (later lines win)."""
    lines = read_manifest(path, defines)
    base = os.path.abspath(os.fspath(root) if root is not None else os.getcwd())
    tree = tree if tree is not None else GuestTree()

    plan = []  # (kind, guest, host, keep_links, origin)
    roots: list[str] = []
    for ml in lines:
        origin, guest, host = ml.origin, ml.guest, ml.host
        if host.startswith("->"):
            target = host[2:]
            if not target:
                raise origin.error("empty symlink target after '->'", expected="->TARGET")
            if guest.endswith("/**") or "/&/" in guest:
                raise origin.error(f"symlink line with a pattern guest path {guest!r}",
                                   expected="a plain guest path for '->target'")
            plan.append(("link", normalise_guest(guest, origin), target, False, origin))
            continue
        keep = host.startswith("!")
        if keep:
            host = host[1:]
            if not host:
                raise origin.error("empty host path after '!'", expected="!HOSTPATH")
        if guest.endswith("/**") or host.endswith("/**"):
            if not (guest.endswith("/**") and host.endswith("/**")):
                raise origin.error("'/**' on one side only", expected="'/x/**: /host/dir/**'")
            gdir, hdir = guest[:-3] or "/", host[:-3] or "/"
            if "**" in gdir or "**" in hdir:
                raise origin.error("'**' before the end of a path", expected="'/x/**: /host/dir/**'")
            hdir = os.path.join(base, hdir)
            roots.append(hdir)
            plan.append(("tree", normalise_guest(gdir, origin), hdir, keep, origin))
            continue
        if "/&/" in guest or host.endswith("/&"):
            if not ("/&/" in guest and host.endswith("/&")):
                raise origin.error("'/&/' shorthand needs '/&/' in the guest path and a host path "
                                   "ending in '/&'", expected="'/&/etc/hosts: ../static/&'")
            prefix, suffix = guest.split("/&/", 1)
            guest = prefix + "/" + suffix
            host = host[:-1] + suffix
        hpath = os.path.join(base, host)
        roots.append(hpath if os.path.isdir(hpath) and not os.path.islink(hpath) else os.path.dirname(hpath))
        plan.append(("path", normalise_guest(guest, origin), hpath, keep, origin))

    res = _Resolver(roots, follow_symlinks_anywhere, allow_missing)
    for kind, guest, host, keep, origin in plan:
        if kind == "link":
            tree.add(guest, Symlink(origin=origin, target=host))
        elif kind == "tree":
            _add_tree(tree, guest, host, keep, origin, res)
        else:
            _add_path(tree, guest, host, keep, origin, res)
    return tree


def _add_path(tree, guest, host, keep, origin, res: _Resolver) -> None:
    if keep and os.path.islink(host):
        tree.add(guest, Symlink(origin=origin, target=os.readlink(host)))
        return
    real = res.follow(host, origin)
    if real is None:
        return
    st = os.stat(real)
    if stat.S_ISDIR(st.st_mode):
        tree.add(guest, Dir(origin=origin))
    elif stat.S_ISREG(st.st_mode):
        tree.add(guest, File(origin=origin, source=FileSource(path=real)))
    else:
        raise origin.error(f"host path {host} is not a regular file or directory",
                           expected="a file, a directory or a symlink")


def _add_tree(tree, guest, hdir, keep, origin, res: _Resolver) -> None:
    real = res.follow(hdir, origin)
    if real is None:
        return
    if not os.path.isdir(real):
        raise origin.error(f"host path {hdir} is not a directory", expected="a directory for '/**'")
    # iterative walk; each frame is (guest dir, host dir, realpaths of the walk's ancestors)
    stack = [(guest, real, (os.path.realpath(real),))]
    while stack:
        gdir, hdir_now, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(hdir_now), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            raise origin.error(f"cannot list {hdir_now}: {exc.strerror}", cls=ManifestInputError) from None
        subdirs = []
        for e in entries:
            g = gdir.rstrip("/") + "/" + e.name
            if e.is_symlink():
                if keep:
                    tree.add(g, Symlink(origin=origin, target=os.readlink(e.path)))
                    continue
                target = res.follow(e.path, origin)
                if target is None:
                    continue
                if os.path.isdir(target):
                    rt = os.path.realpath(target)
                    if rt in ancestors:
                        raise origin.error(f"cyclic symlink {e.path} -> {rt} (an ancestor of it)",
                                           expected="no directory symlink loops below a '/**' root")
                    subdirs.append((g, target, ancestors + (rt,)))
                elif os.path.isfile(target):
                    tree.add(g, File(origin=origin, source=FileSource(path=target)))
                else:
                    raise origin.error(f"host path {e.path} is not a regular file or directory",
                                       expected="files, directories and symlinks")
            elif e.is_dir(follow_symlinks=False):
                subdirs.append((g, e.path, ancestors + (os.path.realpath(e.path),)))
            elif e.is_file(follow_symlinks=False):
                tree.add(g, File(origin=origin, source=FileSource(path=e.path)))
            else:
                raise origin.error(f"host path {e.path} is not a regular file or directory",
                                   expected="files, directories and symlinks")
        stack.extend(reversed(subdirs))
