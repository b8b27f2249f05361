"""``osvkit build KERNEL --format usr -o OUT``: build a bootable image from a kernel ELF."""

from __future__ import annotations

from pathlib import Path

import click

from .. import layout
from ..cmdline import Cmdline
from ..errors import UsageError
from ..units import parse_size
from ._app import choice, command, emit, json_option
from .common import (cmdline_option, config_option, given_on_command_line, image_format_option,
                     resolve)

FORMATS = ("usr", "vmlinux")
"""Image kinds ``--format`` accepts."""

#: the largest disk an MBR describes: 2**32 sectors (a usr.img's partition table is an MBR)
MAX_DISK_SIZE = (1 << 32) * layout.SECTOR_SIZE

#: parameters that mean something with -c (the rest belong in the build file)
_WITH_CONFIG = {"config", "output", "json_output", "cmdline", "image_format", "kernel"}

#: options that only mean something for one --format (or with --manifest)
_USR_ONLY = {"cmdline", "compression", "image_format", "partition", "size", "force_cmdline",
             "manifest"}
_VMLINUX_ONLY = {"pvh", "replace_entry", "handover"}
_MANIFEST_ONLY = {"define", "manifest_root", "allow_missing"}

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
        flag = {"pvh": "pvh/--no-pvh"}
        return ", ".join(f"--{flag.get(p, p.replace('_', '-'))}" for p in sorted(ps))

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
    if fmt == "usr" and not with_manifest and given & _MANIFEST_ONLY:
        raise UsageError(f"{names(given & _MANIFEST_ONLY)} without --manifest",
                         expected="--manifest usr.manifest")


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
               allow_missing):
    if manifest is None:
        from ..image.usrimg import build_usr_image

        return build_usr_image(kernel, output, partition=partition, **options)
    if partition is not None:
        raise UsageError("--manifest and --partition both fill partition 1",
                         expected="one of them")
    from ..image.appimage import build_app_image
    from ..rofs.manifest import parse_defines

    return build_app_image(kernel, output, manifest=manifest, defines=parse_defines(define),
                           manifest_root=manifest_root, allow_missing=allow_missing, **options)


PathType = click.Path(path_type=Path)


@command("build", examples_=(
    "osvkit build -c osvkit.toml                     # every image the file declares",
    "osvkit build loader-stripped.elf -o usr.img --cmdline '--rootfs=rofs /hello'",
    "osvkit build loader-stripped.elf -o app.img --manifest usr.manifest -D arch=x64",
    "osvkit build loader-stripped.elf --format vmlinux -o vmlinux.elf --json"), notes=NOTES)
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
              help="Virtual disk size (bytes or 64K/512M/1G, at most 2T); default: just the "
                   "content.")
@click.option("--force-cmdline", is_flag=True,
              help="Allow a command line up to 32,255 bytes (OSv limits it to 1023).")
@click.option("--manifest", type=PathType,
              help="OSv usr.manifest: build a ROFS into partition 1 (adds --rootfs=rofs).")
@click.option("-D", "--define", multiple=True, metavar="NAME=VALUE",
              help="Manifest substitution NAME=VALUE for %(NAME)s (repeatable).")
@click.option("--manifest-root", type=PathType,
              help="Resolve relative host paths here (default: the current directory).")
@click.option("--allow-missing", is_flag=True, help="Skip manifest host paths that do not exist.")
@click.option("--pvh/--no-pvh", default=True,
              help="vmlinux: add a PVH entry and Xen note (default on).")
@click.option("--replace-entry", is_flag=True,
              help="vmlinux: replace a Linux/PVH entry the kernel already has.")
@click.option("--handover", **choice("start32", "start64"), default="start32",
              help="vmlinux: start32 (default; works on stripped kernels) or start64.")
@json_option
@config_option
def build(kernel, output, format, cmdline, image_format, compression, partition, size,
          force_cmdline, manifest, define, manifest_root, allow_missing, pvh, replace_entry,
          handover, json_output, config) -> None:
    """Build a bootable image from a kernel ELF, or every image a build file (-c) declares."""
    if config is not None:
        return _build_file(config, kernel, output, json_output, cmdline, image_format)
    if kernel is None or output is None:
        raise UsageError("missing KERNEL or -o OUTPUT", expected="KERNEL -o OUTPUT, or -c BUILD_FILE")
    _refuse_unused(given_on_command_line(), format, manifest is not None)
    if format == "vmlinux":
        from ..image.vmlinux import build_vmlinux, describe_vmlinux_result

        emit(build_vmlinux(kernel, output, pvh=pvh, handover=handover,
                           replace_entry=replace_entry), json_output, describe_vmlinux_result)
        return
    opts = resolve(cmdline=cmdline, image_format=image_format)
    options = dict(cmdline=Cmdline.from_value(opts["cmdline"] or ""), compression=compression,
                   image_format=opts["image-format"], force_cmdline=force_cmdline,
                   size=None if size is None else parse_size(
                       size, "--size", maximum=MAX_DISK_SIZE,
                       why="an MBR disk holds 2**32 sectors of 512 bytes"))
    emit(_build_usr(kernel, output, options, manifest=manifest, partition=partition,
                    define=define, manifest_root=manifest_root, allow_missing=allow_missing),
         json_output)
