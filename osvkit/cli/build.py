"""``osvkit build KERNEL --format usr -o OUT``: build a bootable image from a kernel ELF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ._app import JsonOpt, app, emit
from .common import ConfigOpt, build_file_command  # [cli]

FORMATS = ("usr", "vmlinux")
"""Image kinds ``--format`` accepts (other parts add theirs, e.g. ``vmlinux``)."""


def _describe(result) -> str:
    d = result.to_dict()
    lines = [f"wrote {d['output']} ({d['image_format']}, {d['image_size']} bytes virtual, "
             f"{d['file_size']} on disk) in {d['elapsed']:.3f} s",
             f"  kernel {d['kernel_size']} bytes -> payload {d['payload_size']} bytes "
             f"({d['payload_sectors']} sectors, compression {d['compression']})",
             f"  partition 1 at {d['partition_offset']:#x}, {d['partition_size']} bytes",
             f"  cmdline: {d['cmdline']!r}"]
    return "\n".join(lines)


# [fcpath] options that only one --format uses; given on the command line for the other one
# they would be silently ignored (a vmlinux has no command line or partition; a usr.img no PVH)
_USR_ONLY = {"cmdline": "--cmdline", "image_format": "--image-format",
             "compression": "--compression", "partition": "--partition", "size": "--size",
             "force_cmdline": "--force-cmdline", "manifest": "--manifest", "define": "--define",
             "manifest_root": "--manifest-root", "allow_missing": "--allow-missing"}
_VMLINUX_ONLY = {"pvh": "--pvh/--no-pvh", "replace_entry": "--replace-entry",
                 "handover": "--handover"}


def _refuse_options_of_other_format(ctx: typer.Context, format: str) -> None:  # noqa: A002
    from typer._click.core import ParameterSource

    other = {"usr": _VMLINUX_ONLY, "vmlinux": _USR_ONLY}.get(format, {})
    given = [opt for name, opt in other.items()
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if given:
        raise UsageError(f"{', '.join(given)} with --format {format}",
                         expected=f"only options that apply to --format {format} "
                                  "(see osvkit build --help)")


@app.command("build")
def build(
    ctx: typer.Context,
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
        "--allow-missing", help="Skip manifest host paths that do not exist.")] = False,
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
        return build_file_command(config, output, json_output, kernel=kernel, cmdline=cmdline or None)
    if kernel is None or output is None:
        raise UsageError("missing KERNEL or -o OUTPUT", expected="KERNEL -o OUTPUT, or -c BUILD_FILE")
    _refuse_options_of_other_format(ctx, format)
    if format == "usr":
        options = dict(cmdline=cmdline, compression=compression, image_format=image_format,
                       size=size, force_cmdline=force_cmdline)
        if manifest is not None:
            if partition is not None:
                raise UsageError("--manifest and --partition both fill partition 1",
                                 expected="one of them")
            from ..image.appimage import build_app_image
            from ..rofs.manifest import parse_defines

            result = build_app_image(kernel, output, manifest=manifest,
                                     defines=parse_defines(define or []),
                                     manifest_root=manifest_root, allow_missing=allow_missing,
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
