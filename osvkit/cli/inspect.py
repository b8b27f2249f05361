"""``osvkit inspect FILE``: say what a file is and decode it."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import command, emit, json_option, PathType


@command("inspect", examples_=("osvkit inspect usr.img", "osvkit inspect vmlinux.elf --json"))
@click.argument("path", type=PathType)
@json_option
def inspect(path: Path, json_output: bool) -> None:
    """Decode a disk image: boot sector, command line, partitions, payload, kernel.

    PATH is a usr.img (raw or qcow2) or another osvkit file."""
    from ..inspect import inspect_file

    emit(inspect_file(path), json_output)
