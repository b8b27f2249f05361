"""``osvkit patch IMAGE``: a new kernel, command line or files in an existing image."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import choice, command, emit, json_option, PathType
from .common import cmdline_option, resolve, shared


@command("patch", examples_=(
    "osvkit patch usr.img --kernel loader-stripped.elf",
    "osvkit patch usr.qcow2 --add app.conf:/etc/app.conf --remove /etc/old.conf -o new.qcow2",
    "osvkit patch usr.img --cmdline '--rootfs=rofs /hello' --json"), notes="""

\b
IMAGE is a raw or qcow2 usr.img (osvkit's, OSv's or Capstan's). --add/--remove rebuild the
ROFS partition (the result equals a fresh build from the equivalent manifest); they are an
error on a ZFS or ext partition, where --kernel and --cmdline still work. Without -o the
image is replaced, atomically, only when every step succeeded.""")
@click.argument("image", type=PathType)
@click.option("-o", "--output", type=PathType, default=None,
              help="Write the patched image here; IMAGE stays untouched.")
@click.option("--kernel", type=PathType, metavar="KERNEL", default=None,
              help="New kernel: an ELF, or an image holding one.")
@cmdline_option
@click.option("--add", metavar="HOST[:GUEST]", multiple=True,
              help="Host file or directory to add to the ROFS (default: the same path) "
                   "(repeatable).")
@click.option("--remove", metavar="GUEST", multiple=True,
              help="Guest path to remove from the ROFS, a directory with its contents "
                   "(repeatable).")
@click.option("--compression", **choice("fastlz", "none"), default=None,
              help="Payload of the new kernel [default: fastlz].")
@shared("image-format", default="the image's")
@click.option("-p", "--partition", type=click.IntRange(0, 3), default=None,
              help="MBR entry holding the ROFS [default: 1, or the only one].")
@click.option("--force-cmdline", is_flag=True,
              help="Allow up to 32,255 bytes (boot16's area) instead of OSv's 1023.")
@json_option
def patch(image: Path, output, kernel, cmdline, add, remove, compression, image_format,
          partition, force_cmdline, json_output: bool) -> None:
    """Replace the kernel, the command line or files of an existing image.

    --cmdline and --image-format (or their OSVKIT_* variables) are patched in when given;
    otherwise the image keeps its command line and its format."""
    from ..cmdline import Cmdline
    from ..patch import patch_image

    opts = resolve(cmdline=cmdline, image_format=image_format).given()
    cmdline = opts.get("cmdline")
    if cmdline is not None:
        cmdline = str(Cmdline.from_value(cmdline))
    image_format = opts.get("image_format")

    emit(patch_image(image, output=output, kernel=kernel, cmdline=cmdline, add=add,
                     remove=remove, compression=compression, image_format=image_format,
                     partition=partition, force_cmdline=force_cmdline), json_output)
