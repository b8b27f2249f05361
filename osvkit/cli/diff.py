"""``osvkit diff A B``: what changed between two images; exit 0 identical, 1 different."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import EX_FAIL
from ._app import JsonOpt, app, emit
from .common import examples

EPILOG = examples(
    "osvkit diff old.img new.img",
    "osvkit diff usr.img usr.qcow2 --json",
) + """

\b
Compares the boot path (boot sector, loader), the command line, the kernel (size, SHA-256,
OSv version, entry points, notes), the partitions and every ROFS tree (added, removed and
changed files with sizes and SHA-256, symlink targets). A and B may also be kernel ELFs or
ROFS images. Exit 0 when identical, 1 when they differ, 64-74 on errors."""


@app.command("diff", epilog=EPILOG)
def diff_cmd(
    a: Annotated[str, typer.Argument(help="First image.")],
    b: Annotated[str, typer.Argument(help="Second image.")],
    json_output: JsonOpt = False,
) -> None:
    """Say what differs between two images."""
    from ..diff import diff_images

    result = diff_images(a, b)
    emit(result, json_output, lambda r: r.describe())
    if not result.identical:
        raise typer.Exit(EX_FAIL)
