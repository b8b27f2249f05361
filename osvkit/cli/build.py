"""``osvkit build KERNEL --format usr -o OUT``: build a bootable image from a kernel ELF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import os

from ..errors import UsageError
from ..rofs.manifest import parse_defines
from ._app import JsonOpt, app, emit
from .common import ConfigOpt, build_file_command  # [cli]

FORMATS = ("usr", "vmlinux")
"""Image kinds ``--format`` accepts (other parts add theirs, e.g. ``vmlinux``)."""


def _describe(result) -> str:
    d = result.to_dict()
    lines = [f"wrote {d['output']} ({d['image_format']}, {d['image_size']} bytes virtual, "
             f"file of {d['file_size']} bytes) in {d['elapsed']:.3f} s",
             f"  kernel {d['kernel_size']} bytes -> payload {d['payload_size']} bytes "
             f"({d['payload_sectors']} sectors, compression {d['compression']})",
             f"  partition 1 at {d['partition_offset']:#x}, {d['partition_size']} bytes",
             f"  cmdline: {d['cmdline']!r}"]
    return "\n".join(lines)


def _describe_apps(result) -> str:
    image = result.image
    if result.disk is not None:
        head = (f"wrote {image.output} (vmlinux ELF, {image.size} bytes) and its ROFS disk "
                f"{result.disk.output}\n")
    else:
        head = _describe(image) + "\n"
    kinds: dict[str, int] = {}
    for f in result.tree.files:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    r = result.rofs
    lines = [head.rstrip("\n"),
             f"  ROFS: {r['files']} files ({r['data_bytes']} bytes of data), "
             f"{r['symlinks_count']} symlinks: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
             f"  supplied by the kernel ({result.tree.closure.supplied_source}): "
             + (", ".join(u.soname for u in result.tree.closure.supplied) or "none needed")]
    if result.disk is not None:
        lines.append(f"  cmdline (on the disk; give it to the VMM): {result.cmdline!r}")
    return "\n".join(lines)


#: parameters that mean something with -c (the rest belong in the build file)
_WITH_CONFIG = {"config", "output", "json_output", "cmdline", "image_format", "kernel"}


def _given_on_command_line() -> set[str]:
    """Names of the build command's parameters the user typed (not defaults, not OSVKIT_*
    variables): a flag given with -c must either apply or be refused, never ignored."""
    try:  # typer >= 0.24 vendors click as typer._click
        from typer._click.core import ParameterSource
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover
        from click import get_current_context
        from click.core import ParameterSource

    ctx = get_current_context()
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}


#: options that only mean something for one --format (or with --manifest)
_USR_ONLY = {"cmdline", "compression", "image_format", "partition", "size", "force_cmdline",
             "manifest"}
_VMLINUX_ONLY = {"pvh", "replace_entry", "handover"}
_MANIFEST_ONLY = {"define", "manifest_root", "allow_missing", "follow_symlinks_anywhere"}
#: options that put host programs and files in the image (osvkit.apps)
_APP_OPTIONS = {"app_paths", "add", "deb"}
_APP_ONLY = {"exclude", "library_path", "env", "cwd", "bare", "deb_cache", "disk_output"}


def _refuse_unused(given: set[str], fmt: str, with_manifest: bool) -> None:
    """A flag the build would not use is a mistake to report, not to drop (--cmdline with
    --format vmlinux was silently lost: the ELF carries no command line)."""
    def names(ps):
        flag = {"pvh": "pvh/--no-pvh", "app_paths": "app"}
        return ", ".join(f"--{flag.get(p, p.replace('_', '-'))}" for p in sorted(ps))

    with_apps = bool(given & _APP_OPTIONS)
    if not with_apps and given & _APP_ONLY:
        raise UsageError(f"{names(given & _APP_ONLY)} without --app, --add or --deb",
                         expected="--app PROGRAM, --add PATH or --deb PACKAGE")
    if with_apps and "partition" in given:
        raise UsageError("--partition with --app/--add/--deb: both fill partition 1",
                         expected="one of them")
    if with_apps and fmt == "vmlinux":  # the disk's usr.img carries the command line
        given = given - {"cmdline", "force_cmdline", "manifest"} - _MANIFEST_ONLY
    if fmt == "usr" and "disk_output" in given:
        raise UsageError("--disk-output with --format usr", expected="it with --format vmlinux")
    unused = given & (_VMLINUX_ONLY if fmt == "usr" else _USR_ONLY | _MANIFEST_ONLY)
    if fmt == "vmlinux" and unused:
        hint = (" (the vmlinux ELF carries no command line: give it to the VMM, e.g. "
                "osvkit run --cmdline or firecracker-config --cmdline)"
                if "cmdline" in unused else "")
        raise UsageError(f"{names(unused)} with --format vmlinux{hint}",
                         expected="options of the vmlinux format: --pvh, --replace-entry, "
                                  "--handover")
    if fmt == "usr" and unused:
        raise UsageError(f"{names(unused)} with --format usr",
                         expected="these with --format vmlinux")
    also_apps = {"allow_missing", "follow_symlinks_anywhere"} if with_apps else set()
    if fmt == "usr" and not with_manifest and given & _MANIFEST_ONLY - also_apps:
        raise UsageError(f"{names(given & _MANIFEST_ONLY - also_apps)} without --manifest",
                         expected="--manifest usr.manifest")


@app.command("build")
def build(
    kernel: Annotated[Optional[Path], typer.Argument(help="Kernel ELF (OSv's loader-stripped.elf).")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Image file to write (with -c: the output directory).")] = None,
    format: Annotated[str, typer.Option("--format", help="Image kind: usr (BIOS usr.img) or vmlinux (Firecracker/PVH kernel ELF).")] = "usr",
    cmdline: Annotated[str, typer.Option("--cmdline", help="Kernel command line.")] = "",
    image_format: Annotated[str, typer.Option("--image-format",
                                              help="raw or qcow2.")] = "raw",
    compression: Annotated[str, typer.Option("--compression",
                                             help="fastlz or none.")] = "fastlz",
    partition: Annotated[Optional[Path], typer.Option(
        "--partition", help="Filesystem image (e.g. ROFS) for MBR partition 1.")] = None,
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Virtual disk size (bytes or 64K/512M/1G); default: just the content.")] = None,
    force_cmdline: Annotated[bool, typer.Option(
        "--force-cmdline", help="Allow a command line up to 32,255 bytes (OSv limits it to 1023).")] = False,
    manifest: Annotated[Optional[Path], typer.Option(
        "--manifest", help="OSv usr.manifest: build a ROFS into partition 1 (adds --rootfs=rofs).")] = None,
    define: Annotated[Optional[list[str]], typer.Option(
        "-D", "--define", help="Manifest substitution NAME=VALUE for %(NAME)s (repeatable).")] = None,
    manifest_root: Annotated[Optional[Path], typer.Option(
        "--manifest-root", help="Resolve relative host paths here (default: the current directory).")] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Skip manifest host paths that do not exist; with --app: warn "
                                "about libraries that cannot be found.")] = False,
    follow_symlinks_anywhere: Annotated[bool, typer.Option(
        "--follow-symlinks-anywhere",
        help="Follow host symlinks whose target lies outside the directories named "
             "(--manifest, --add).")] = False,
    app_paths: Annotated[Optional[list[str]], typer.Option(
        "--app", metavar="PATH[:GUEST]",
        help="Host program (ELF) to put at GUEST (default /NAME) with the libraries it needs "
             "(repeatable); the first is the command unless --cmdline names one.")] = None,
    add: Annotated[Optional[list[str]], typer.Option(
        "--add", metavar="HOST[:GUEST]",
        help="Host file or directory to add (default: the same path) (repeatable).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", metavar="GLOB", help="Skip added names/paths matching GLOB (repeatable).")] = None,
    deb: Annotated[Optional[list[str]], typer.Option(
        "--deb", metavar="PACKAGE[=VERSION]",
        help="Debian package to fetch with apt-get download and add (repeatable).")] = None,
    deb_cache: Annotated[Optional[Path], typer.Option(
        "--deb-cache", help="Where --deb packages are kept (default ~/.cache/osvkit/deb).")] = None,
    library_path: Annotated[Optional[list[str]], typer.Option(
        "--library-path", metavar="DIR",
        help="Search DIR for libraries, where LD_LIBRARY_PATH goes (repeatable).")] = None,
    env: Annotated[Optional[list[str]], typer.Option(
        "--env", metavar="NAME=VALUE", help="Loader option --env=NAME=VALUE (repeatable).")] = None,
    cwd: Annotated[Optional[str], typer.Option(
        "--cwd", metavar="DIR", help="Loader option --cwd=DIR.")] = None,
    bare: Annotated[bool, typer.Option(
        "--bare", help="With --app/--add/--deb: no /dev, /proc, /sys, /tmp, /etc skeleton.")] = False,
    disk_output: Annotated[Optional[Path], typer.Option(
        "--disk-output", help="--format vmlinux with --app: the usr.img holding the ROFS.")] = None,
    pvh: Annotated[bool, typer.Option(
        "--pvh/--no-pvh", help="vmlinux: add a PVH entry and Xen note (default on).")] = True,
    replace_entry: Annotated[bool, typer.Option(
        "--replace-entry", help="vmlinux: replace a Linux/PVH entry the kernel already has.")] = False,
    handover: Annotated[str, typer.Option(
        "--handover", help="vmlinux: start32 (default; works on stripped kernels) or start64.")] = "start32",
    json_output: JsonOpt = False,
    config: ConfigOpt = None,  # [cli] osvkit build -c osvkit.toml
) -> None:
    """Build a bootable image from a kernel ELF, or every image a build file (-c) declares."""
    if config is not None:  # [cli] build file: every image it declares, plus the manifest
        given = _given_on_command_line()
        ignored = [f"--{n.replace('_', '-')}" for n in given if n not in _WITH_CONFIG]
        if ignored:
            raise UsageError(f"{', '.join(sorted(ignored))} cannot be used with -c BUILD_FILE",
                             expected="these settings in the build file's [[image]] tables")
        return build_file_command(
            config, output, json_output, kernel=kernel,
            cmdline=cmdline if "cmdline" in given else None,
            image_format=image_format if "image_format" in given else None)
    if kernel is None or output is None:
        raise UsageError("missing KERNEL or -o OUTPUT", expected="KERNEL -o OUTPUT, or -c BUILD_FILE")
    given = _given_on_command_line()
    _refuse_unused(given, format, manifest is not None)
    if given & _APP_OPTIONS:
        from ..apps import build_host_app_image

        emit(build_host_app_image(
            kernel, output, format=format, disk_output=disk_output, cmdline=cmdline,
            env=env or (), cwd=cwd, force_cmdline=force_cmdline, pvh=pvh, handover=handover,
            replace_entry=replace_entry, apps=app_paths or (), adds=add or (),
            excludes=exclude or (), debs=deb or (), library_path=library_path or (),
            manifest=manifest, defines=parse_defines(define or []) if define else None,
            manifest_root=manifest_root, bare=bare, allow_missing=allow_missing,
            follow_symlinks_anywhere=follow_symlinks_anywhere,
            deb_cache=os.fspath(deb_cache) if deb_cache else None,
            **({"compression": compression, "image_format": image_format, "size": size}
               if format == "usr" else {})), json_output, _describe_apps)
        return
    if format == "usr":
        options = dict(cmdline=cmdline, compression=compression, image_format=image_format,
                       size=size, force_cmdline=force_cmdline)
        if manifest is not None:
            if partition is not None:
                raise UsageError("--manifest and --partition both fill partition 1",
                                 expected="one of them")
            from ..image.appimage import build_app_image

            result = build_app_image(kernel, output, manifest=manifest,
                                     defines=parse_defines(define or []),
                                     manifest_root=manifest_root, allow_missing=allow_missing,
                                     follow_symlinks_anywhere=follow_symlinks_anywhere,
                                     **options)
        else:
            from ..image.usrimg import build_usr_image

            result = build_usr_image(kernel, output, partition=partition, **options)
        emit(result, json_output, _describe)
        return
    if format == "vmlinux":  # [fcpath]
        from ..image.vmlinux import build_vmlinux, describe_vmlinux_result

        emit(build_vmlinux(kernel, output, pvh=pvh, handover=handover,
                           replace_entry=replace_entry), json_output, describe_vmlinux_result)
        return
    raise UsageError(f"--format {format!r}", expected=" or ".join(FORMATS))
