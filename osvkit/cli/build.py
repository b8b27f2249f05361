"""``osvkit build KERNEL --format usr -o OUT``: build a bootable image from a kernel ELF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ._app import JsonOpt, app, emit

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


@app.command("build")
def build(
    kernel: Annotated[Path, typer.Argument(help="Kernel ELF (OSv's loader-stripped.elf).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image file to write.")],
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
    pvh: Annotated[bool, typer.Option(
        "--pvh/--no-pvh", help="vmlinux: add a PVH entry and Xen note (default on).")] = True,
    replace_entry: Annotated[bool, typer.Option(
        "--replace-entry", help="vmlinux: replace a Linux/PVH entry the kernel already has.")] = False,
    handover: Annotated[str, typer.Option(
        "--handover", help="vmlinux: start32 (default; works on stripped kernels) or start64.")] = "start32",
    json_output: JsonOpt = False,
) -> None:
    """Build a bootable image from a kernel ELF."""
    if format == "usr":
        from ..image.usrimg import build_usr_image

        result = build_usr_image(kernel, output, cmdline=cmdline, compression=compression,
                                 image_format=image_format, partition=partition, size=size,
                                 force_cmdline=force_cmdline)
        emit(result, json_output, _describe)
        return
    if format == "vmlinux":  # [fcpath]
        from ..image.vmlinux import build_vmlinux, describe_vmlinux_result

        emit(build_vmlinux(kernel, output, pvh=pvh, handover=handover,
                           replace_entry=replace_entry), json_output, describe_vmlinux_result)
        return
    raise UsageError(f"--format {format!r}", expected=" or ".join(FORMATS))
