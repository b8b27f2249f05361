"""``osvkit inspect FILE``: say what a file is and decode it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import JsonOpt, app, emit


@app.command("inspect")
def inspect(
    path: Annotated[Path, typer.Argument(help="usr.img (raw or qcow2) or another osvkit file.")],
    json_output: JsonOpt = False,
) -> None:
    """Decode a disk image: boot sector, command line, partitions, payload, kernel."""
    from ..inspect import describe, inspect_file

    emit(inspect_file(path), json_output, describe)
