"""Images from host programs: the guest tree of :mod:`osvkit.apps.builder` as a ROFS in MBR
partition 1 of a usr.img, or a vmlinux ELF plus a usr.img that serves as its ROFS disk.

The command line gets ``--rootfs=rofs`` (unless it names a root filesystem), the ``--env=``
and ``--cwd=`` loader options, and the first ``--app``'s guest path as the application
command when it has none."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from ..errors import OutputError, UsageError
from .builder import AppTree, build_app_tree, compose_cmdline

_TREE_KEYS = ("apps", "adds", "excludes", "debs", "library_path", "supplied", "manifest",
              "defines", "manifest_root", "bare", "allow_missing", "follow_symlinks_anywhere",
              "deb_cache", "ld_cache")


@dataclass
class AppImageResult:
    image: object
    """The usr.img's BuildResult, or the VmlinuxResult."""
    tree: AppTree
    cmdline: str
    rofs: dict
    disk: object | None = None
    """With ``format="vmlinux"``: the usr.img written as the ROFS disk."""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dict(self.image.to_dict())
        d["cmdline"] = self.cmdline
        d["rofs"] = self.rofs
        if self.disk is not None:
            d["disk"] = self.disk.to_dict()
        d.update(self.tree.to_dict())
        return d


def _split(options: dict) -> tuple[dict, dict]:
    tree = {k: options.pop(k) for k in _TREE_KEYS if k in options}
    return tree, options


def build_rofs_for_apps(output, *, kernel=None, **tree_options) -> tuple[AppTree, dict]:
    """Build only the ROFS image of the apps' tree at ``output``."""
    from ..rofs import build_rofs

    tree = build_app_tree(kernel=kernel, **tree_options)
    res = build_rofs(tree.tree, output, osv_defaults=not tree_options.get("bare", False))
    return tree, res.to_dict()


def build_host_app_image(kernel, output, *, format: str = "usr", disk_output=None,  # noqa: A002
                         cmdline: str = "", env=(), cwd: str | None = None,
                         force_cmdline: bool = False, pvh: bool = True,
                         handover: str = "start32", replace_entry: bool = False,
                         **options) -> AppImageResult:
    """Build ``output`` from ``kernel`` and host programs.

    ``format="usr"``: a usr.img with the ROFS in partition 1 (``options`` may also hold
    build_usr_image's compression, image_format, size).  ``format="vmlinux"``: the vmlinux
    ELF at ``output`` and a raw usr.img at ``disk_output`` holding the ROFS (and a kernel,
    unused when booting the ELF).  Tree options (``apps``, ``adds``, ``excludes``, ``debs``,
    ``library_path``, ``bare``, ``allow_missing``, ``follow_symlinks_anywhere``,
    ``manifest``...) go to :func:`~osvkit.apps.builder.build_app_tree`."""
    from ..image.usrimg import build_usr_image
    from ..image.vmlinux import build_vmlinux

    tree_opts, usr_opts = _split(dict(options))
    if format not in ("usr", "vmlinux"):
        raise UsageError(f"format {format!r}", expected="usr or vmlinux")
    if format == "vmlinux" and disk_output is None:
        raise UsageError("--format vmlinux with applications needs a disk for the ROFS",
                         expected="--disk-output DISK (a raw usr.img holding the ROFS)")
    directory = os.path.dirname(os.path.abspath(os.fspath(output)))
    if not os.path.isdir(directory):
        raise OutputError("directory does not exist", path=output)
    tree = build_app_tree(kernel=kernel, **tree_opts)
    line = compose_cmdline(cmdline, env=env, cwd=cwd, command=tree.command,
                           target="bios" if force_cmdline else "osv")
    try:
        tmp = tempfile.TemporaryDirectory(prefix=".osvkit-rofs-", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot create a temporary file: {exc.strerror}", path=output) from None
    from ..rofs import build_rofs

    with tmp:
        rofs_path = os.path.join(tmp.name, "rofs.img")
        rofs = build_rofs(tree.tree, rofs_path, osv_defaults=not tree_opts.get("bare", False))
        rofs_info = {k: v for k, v in rofs.to_dict().items() if k != "output"}
        if format == "usr":
            image = build_usr_image(kernel, output, cmdline=line, partition=rofs_path,
                                    force_cmdline=force_cmdline, **usr_opts)
            return AppImageResult(image, tree, line, rofs_info)
        disk = build_usr_image(kernel, disk_output, cmdline=line, partition=rofs_path,
                               force_cmdline=force_cmdline, **usr_opts)
        image = build_vmlinux(kernel, output, pvh=pvh, handover=handover,
                              replace_entry=replace_entry)
        return AppImageResult(image, tree, line, rofs_info, disk=disk)


def write_usr_manifest(apps, output=None, **options) -> str:
    """An OSv ``usr.manifest`` of the closure of ``apps`` (for OSv's own ``scripts/build``):
    one ``/guest: /host`` line per program and library, sorted.  Written atomically to
    ``output`` when given; the text is returned."""
    from .closure import resolve_closure

    closure = resolve_closure(apps, **options)
    lines = ["[manifest]"]
    for e in closure.entries:
        for p in (e.guest, e.source):
            if ": " in p or "\n" in p or "%" in p or p.endswith("/**") or "/&/" in p:
                raise UsageError(f"path {p!r} cannot be written in a manifest",
                                 expected="paths without ': ', '%', newlines, '/**' or '/&/'")
        lines.append(f"{e.guest}: {e.source}")
    text = "\n".join(lines) + "\n"
    if output is not None:
        from ..fileio import write_atomic
        write_atomic(output, text.encode("utf-8"))
    return text
