"""``osvkit decode``: decode a boot structure from a file or memory dump."""

from __future__ import annotations

import typer

from ._app import app

decode_app = typer.Typer(help="Decode a boot structure from a file or a raw memory dump.",
                         no_args_is_help=True)
app.add_typer(decode_app, name="decode")
