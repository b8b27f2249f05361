"""``osvkit patch IMAGE``: a new kernel, command line or files in an existing image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import JsonOpt, app, emit
from .common import examples

EPILOG = examples(
    "osvkit patch usr.img --kernel loader-stripped.elf",
    "osvkit patch usr.qcow2 --add app.conf:/etc/app.conf --remove /etc/old.conf -o new.qcow2",
    "osvkit patch usr.img --cmdline '--rootfs=rofs /hello' --json",
) + """

\b
IMAGE is a raw or qcow2 usr.img (osvkit's, OSv's or Capstan's). --add/--remove rebuild the
ROFS partition (the result equals a fresh build from the equivalent manifest); they are an
error on a ZFS or ext partition, where --kernel and --cmdline still work. Without -o the
image is replaced, atomically, only when every step succeeded."""


@app.command("patch", epilog=EPILOG)
def patch_cmd(
    image: Annotated[str, typer.Argument(help="Image to patch (raw or qcow2).")],
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Write the patched image here; IMAGE stays untouched.")] = None,
    kernel: Annotated[Optional[str], typer.Option(
        "--kernel", help="New kernel: an ELF, or an image holding one.")] = None,
    cmdline: Annotated[Optional[str], typer.Option("--cmdline", help="New command line.")] = None,
    add: Annotated[Optional[list[str]], typer.Option(
        "--add", metavar="HOST[:GUEST]",
        help="Host file or directory to add to the ROFS (default: the same path) "
             "(repeatable).")] = None,
    remove: Annotated[Optional[list[str]], typer.Option(
        "--remove", metavar="GUEST", help="Guest path to remove from the ROFS (repeatable).")] = None,
    compression: Annotated[Optional[str], typer.Option(
        "--compression", metavar="fastlz|none",
        help="Payload of the new kernel [default: fastlz].")] = None,
    image_format: Annotated[Optional[str], typer.Option(
        "--image-format", metavar="raw|qcow2",
        help="Format of the result [default: IMAGE's].")] = None,
    partition: Annotated[Optional[int], typer.Option(
        "--partition", "-p", help="MBR entry holding the ROFS [default: 1].")] = None,
    force_cmdline: Annotated[bool, typer.Option(
        "--force-cmdline", help="Allow up to 32,255 bytes (boot16's area) instead of OSv's "
                                "1023.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Replace the kernel, the command line or files of an existing image."""
    from ..patch import patch_image

    emit(patch_image(image, output=output, kernel=kernel, cmdline=cmdline, add=add or (),
                     remove=remove or (), compression=compression, image_format=image_format,
                     partition=partition, force_cmdline=force_cmdline),
         json_output, lambda r: r.describe())
