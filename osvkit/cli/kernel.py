"""``osvkit kernel extract IMAGE -o loader.elf``: the kernel ELF an image holds."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import command, emit, json_option, PathType, subgroup

kernel_group = subgroup("kernel", "Kernel ELFs inside images.")


@command("extract", group=kernel_group, examples_=(
    "osvkit kernel extract usr.img -o loader-stripped.elf",
    "osvkit kernel extract usr.qcow2 -o kernel.elf --json"), notes="""

\b
IMAGE may be a usr.img or loader.img (raw or qcow2; OSv's, Capstan's or osvkit's), OSv's
lzloader.elf or vmlinuz.bin, or a kernel ELF (copied as it is). For an image built by OSv's
scripts the output is byte-identical to the loader-stripped.elf it was built from.
--json prints {path, source, payload, image_format, boot, size, sha256, output}.""")
@click.argument("image")
@click.option("-o", "--output", type=PathType, required=True,
              help="Kernel ELF to write.")
@json_option
def extract_cmd(image: str, output: Path, json_output: bool) -> None:
    """Write the kernel ELF that an OSv or osvkit image (IMAGE, or a kernel file) holds."""
    from ..image.extract import write_kernel

    emit(write_kernel(image, output), json_output)
