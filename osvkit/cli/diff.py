"""``osvkit diff A B``: what changed between two images; exit 0 identical, 1 different."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EX_FAIL
from ._app import command, emit, json_option, PathType


@command("diff", examples_=("osvkit diff old.img new.img", "osvkit diff usr.img usr.qcow2 --json"),
         notes="""

\b
Compares the boot path (boot sector, loader), the command line, the kernel (size, SHA-256,
OSv version, entry points, notes), the partitions and every ROFS tree (added, removed and
changed files with sizes and SHA-256, symlink targets). A and B may also be kernel ELFs or
ROFS images. Exit 0 when identical, 1 when they differ, 64-74 on errors.""")
@click.argument("a", type=PathType)
@click.argument("b", type=PathType)
@json_option
def diff(a: Path, b: Path, json_output: bool) -> None:
    """Say what differs between two images (exit 0 identical, 1 different)."""
    from ..diff import diff_images

    result = diff_images(a, b)
    emit(result, json_output)
    if not result.identical:
        raise SystemExit(EX_FAIL)
