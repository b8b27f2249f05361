"""``osvkit build KERNEL --format usr -o OUT``: build a bootable image from a kernel ELF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ._app import JsonOpt, app, emit

FORMATS = ("usr",)
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
    format: Annotated[str, typer.Option("--format", help="Image kind: usr (BIOS usr.img).")] = "usr",
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
    raise UsageError(f"--format {format!r}", expected=" or ".join(FORMATS))
