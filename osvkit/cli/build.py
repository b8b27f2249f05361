"""``osvkit build KERNEL --format usr -o OUT``: build a bootable image from a kernel ELF."""

from __future__ import annotations

from pathlib import Path

import click

from ..cmdline import Cmdline
from ..errors import UsageError
from ..units import parse_size
from ._app import choice, command, emit, json_option, manifest_options, PathType
from .common import (cmdline_option, config_option, given_on_command_line, image_format_option,
                     resolve)

FORMATS = ("usr", "vmlinux")
"""Image kinds ``--format`` accepts."""

#: parameters that mean something with -c (the rest belong in the build file)
_WITH_CONFIG = {"config", "output", "json_output", "cmdline", "image_format", "kernel"}

#: options that only mean something for one --format (or with --manifest)
_USR_ONLY = {"cmdline", "compression", "image_format", "partition", "size", "force_cmdline",
             "manifest"}
_VMLINUX_ONLY = {"pvh", "replace_entry", "handover"}
_MANIFEST_ONLY = {"define", "manifest_root", "allow_missing", "follow_symlinks_anywhere"}
#: options that put host programs and files in the image (osvkit.apps)
_APP_OPTIONS = {"app_paths", "add", "deb"}
_APP_ONLY = {"exclude", "library_path", "env", "cwd", "bare", "deb_cache", "disk_output"}

NOTES = """

\b
With -c, -o names the output directory (default: the build file's) and --json prints
the manifest written to osvkit-manifest.json: {manifest_path, osvkit_manifest,
osvkit_version, build_file: {path, sha256}, source_date_epoch, images: [{name, kernel,
cmdline, options, outputs: [{image, kind, path, format, size, sha256, inputs, notes}]}]}.
Nothing is written unless every image builds."""


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


def _build_apps(kernel, output, fmt: str, opts, a: dict) -> None:
    """``--app``/``--add``/``--deb``: host programs, files and packages into the image."""
    import os

    from ..apps import build_host_app_image
    from ..rofs.manifest import parse_defines

    usr = ({"compression": a["compression"], "image_format": opts["image-format"],
            "size": a["size"]} if fmt == "usr" else {})
    return build_host_app_image(
        kernel, output, format=fmt, disk_output=a["disk_output"],
        cmdline=opts["cmdline"] or "", env=a["env"], cwd=a["cwd"],
        force_cmdline=a["force_cmdline"], pvh=a["pvh"], handover=a["handover"],
        replace_entry=a["replace_entry"], apps=a["app_paths"], adds=a["add"],
        excludes=a["exclude"], debs=a["deb"], library_path=a["library_path"],
        manifest=a["manifest"], defines=parse_defines(a["define"]) if a["define"] else None,
        manifest_root=a["manifest_root"], bare=a["bare"], allow_missing=a["allow_missing"],
        follow_symlinks_anywhere=a["follow_symlinks_anywhere"],
        deb_cache=os.fspath(a["deb_cache"]) if a["deb_cache"] else None, **usr)


def _build_file(config: Path, kernel, output, json_output: bool, cmdline, image_format) -> None:
    """``osvkit build -c FILE [-o DIR]``: every image of a build file, and its manifest."""
    from ..buildfile import build_from_file

    given = given_on_command_line()
    ignored = [f"--{n.replace('_', '-')}" for n in given if n not in _WITH_CONFIG]
    if ignored:
        raise UsageError(f"{', '.join(sorted(ignored))} cannot be used with -c BUILD_FILE",
                         expected="these settings in the build file's [[image]] tables")
    if kernel is not None:
        raise UsageError("a KERNEL argument and -c BUILD_FILE", expected="one of them")
    emit(build_from_file(config, out_dir=output,
                         flags={"cmdline": cmdline, "image-format": image_format}),
         json_output)


def _build_usr(kernel, output, options: dict, *, manifest, partition, define, manifest_root,
               allow_missing, follow_symlinks_anywhere):
    if manifest is None:
        from ..image.usrimg import build_usr_image

        return build_usr_image(kernel, output, partition=partition, **options)
    if partition is not None:
        raise UsageError("--manifest and --partition both fill partition 1",
                         expected="one of them")
    from ..image.appimage import build_app_image
    from ..rofs.manifest import parse_defines

    return build_app_image(kernel, output, manifest=manifest, defines=parse_defines(define),
                           manifest_root=manifest_root, allow_missing=allow_missing,
                           follow_symlinks_anywhere=follow_symlinks_anywhere, **options)




@command("build", examples_=(
    "osvkit build -c osvkit.toml                     # every image the file declares",
    "osvkit build loader-stripped.elf -o usr.img --cmdline '--rootfs=rofs /hello'",
    "osvkit build loader-stripped.elf -o app.img --manifest usr.manifest -D arch=x64",
    "osvkit build loader-stripped.elf --format vmlinux -o vmlinux.elf --json",
    "osvkit build loader-stripped.elf -o py.img --app /usr/bin/python3.11 "
    "--add /usr/lib/python3.11 --exclude test --env PYTHONHOME=/usr"), notes=NOTES)
@click.argument("kernel", type=PathType, required=False)
@click.option("-o", "--output", type=PathType,
              help="Image file to write (with -c: the output directory).")
@click.option("--format", "format", **choice(*FORMATS), default="usr",
              show_default=True,
              help="Image kind: usr (BIOS usr.img) or vmlinux (Firecracker/PVH kernel ELF).")
@cmdline_option
@image_format_option
@click.option("--compression", **choice("fastlz", "none"), default="fastlz",
              show_default=True, help="Kernel payload compression.")
@click.option("--partition", type=PathType, help="Filesystem image (e.g. ROFS) for MBR partition 1.")
@click.option("--size", metavar="SIZE",
              help="Virtual disk size (bytes or 64K/512M/1G); default: just the content.")
@click.option("--force-cmdline", is_flag=True,
              help="Allow a command line up to 32,255 bytes (OSv limits it to 1023).")
@click.option("--manifest", type=PathType,
              help="OSv usr.manifest: build a ROFS into partition 1 (adds --rootfs=rofs).")
@manifest_options
@click.option("--allow-missing", is_flag=True,
              help="Skip manifest host paths that do not exist; with --app: warn about "
                   "libraries that cannot be found.")
@click.option("--app", "app_paths", multiple=True, metavar="PATH[:GUEST]",
              help="Host program (ELF) to put at GUEST (default /NAME) with the libraries it "
                   "needs (repeatable); the first is the command unless --cmdline names one.")
@click.option("--add", multiple=True, metavar="HOST[:GUEST]",
              help="Host file or directory to add (default: the same path) (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip added names/paths matching GLOB (repeatable).")
@click.option("--deb", multiple=True, metavar="PACKAGE[=VERSION]",
              help="Debian package to fetch with apt-get download and add (repeatable).")
@click.option("--deb-cache", type=PathType,
              help="Where --deb packages are kept (default ~/.cache/osvkit/deb).")
@click.option("--library-path", multiple=True, metavar="DIR",
              help="Search DIR for libraries, where LD_LIBRARY_PATH goes (repeatable).")
@click.option("--env", multiple=True, metavar="NAME=VALUE",
              help="Loader option --env=NAME=VALUE (repeatable).")
@click.option("--cwd", metavar="DIR", help="Loader option --cwd=DIR.")
@click.option("--bare", is_flag=True,
              help="With --app/--add/--deb: no /dev, /proc, /sys, /tmp, /etc skeleton.")
@click.option("--disk-output", type=PathType,
              help="--format vmlinux with --app: the usr.img holding the ROFS.")
@click.option("--pvh/--no-pvh", default=True,
              help="vmlinux: add a PVH entry and Xen note (default on).")
@click.option("--replace-entry", is_flag=True,
              help="vmlinux: replace a Linux/PVH entry the kernel already has.")
@click.option("--handover", **choice("start32", "start64"), default="start32",
              help="vmlinux: start32 (default; works on stripped kernels) or start64.")
@json_option
@config_option
def build(kernel, output, format, cmdline, image_format, compression, partition, size,
          force_cmdline, manifest, define, manifest_root, allow_missing, **more) -> None:
    """Build a bootable image from a kernel ELF, or every image a build file (-c) declares.

    KERNEL is a kernel ELF (OSv's loader-stripped.elf) or an image holding one (usr.img,
    loader.img; raw or qcow2)."""
    json_output, config = more.pop("json_output"), more.pop("config")
    if config is not None:
        return _build_file(config, kernel, output, json_output, cmdline, image_format)
    if kernel is None or output is None:
        raise UsageError("missing KERNEL or -o OUTPUT", expected="KERNEL -o OUTPUT, or -c BUILD_FILE")
    given = given_on_command_line()
    _refuse_unused(given, format, manifest is not None)
    opts = resolve(cmdline=cmdline, image_format=image_format)
    if size is not None:      # the digits are bounded here; what the file can hold, by the builder
        size = parse_size(size, "--size", maximum=None)
    if given & _APP_OPTIONS:
        emit(_build_apps(kernel, output, format, opts, dict(
            more, compression=compression, size=size, force_cmdline=force_cmdline,
            manifest=manifest, define=define, manifest_root=manifest_root,
            allow_missing=allow_missing)), json_output)
        return
    if format == "vmlinux":
        from ..image.vmlinux import build_vmlinux

        emit(build_vmlinux(kernel, output, pvh=more["pvh"], handover=more["handover"],
                           replace_entry=more["replace_entry"]), json_output)
        return
    options = dict(cmdline=Cmdline.from_value(opts["cmdline"] or ""), compression=compression,
                   image_format=opts["image-format"], force_cmdline=force_cmdline, size=size)
    emit(_build_usr(kernel, output, options, manifest=manifest, partition=partition,
                    define=define, manifest_root=manifest_root, allow_missing=allow_missing,
                    follow_symlinks_anywhere=more["follow_symlinks_anywhere"]),
         json_output)
