"""``osvkit kernel extract IMAGE -o loader.elf``: the kernel ELF an image holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..image.extract import ExtractedKernel, write_kernel
from ._app import JsonOpt, app, emit
from .common import examples

kernel_app = typer.Typer(help="Kernel ELFs inside images.", no_args_is_help=True)
app.add_typer(kernel_app, name="kernel")

EPILOG = examples(
    "osvkit kernel extract usr.img -o loader-stripped.elf",
    "osvkit kernel extract usr.qcow2 -o kernel.elf --json",
) + """

\b
IMAGE may be a usr.img or loader.img (raw or qcow2; OSv's, Capstan's or osvkit's), OSv's
lzloader.elf or vmlinuz.bin, or a kernel ELF (copied as it is). For an image built by OSv's
scripts the output is byte-identical to the loader-stripped.elf it was built from.
--json prints {path, source, payload, image_format, boot, size, sha256, output}."""


def _describe(ex: ExtractedKernel) -> str:
    if ex.image_format is None:
        where = f"{ex.payload} in a {ex.source} file"
    else:
        where = f"{ex.payload} payload of a {ex.image_format} disk image, {ex.boot} boot sector"
    return f"wrote {ex.output}: {len(ex.data)} bytes ({where})"


@kernel_app.command("extract", epilog=EPILOG)
def extract_cmd(
    image: Annotated[str, typer.Argument(help="Image or kernel file to take the kernel from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Kernel ELF to write.")],
    json_output: JsonOpt = False,
) -> None:
    """Write the kernel ELF that an OSv or osvkit image holds."""
    emit(write_kernel(image, output), json_output, _describe)
