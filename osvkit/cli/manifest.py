"""``osvkit manifest from-host ELF... [-o usr.manifest]``: an OSv usr.manifest of the programs'
library closure, for users of OSv's own ``scripts/build``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import JsonOpt, app, echo, emit
from .common import examples

manifest_app = typer.Typer(help="Write OSv manifests.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")


@manifest_app.command("from-host", epilog=examples(
    "osvkit manifest from-host /usr/bin/python3.11 -o usr.manifest",
    "osvkit manifest from-host ./bin/server:/app/bin/server --library-path ./lib --json",
) + """

\b
--json prints {files: [{guest, host, source, kind, via, soname, needed_by}], supplied:
[{soname, needed_by}], missing: [...], supplied_source}.""")
def from_host(
    programs: Annotated[list[str], typer.Argument(
        metavar="ELF[:GUEST]...", help="Host programs or shared objects (default guest /NAME).")],
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Manifest to write (default: standard output).")] = None,
    library_path: Annotated[Optional[list[str]], typer.Option(
        "--library-path", metavar="DIR",
        help="Search DIR for libraries, where LD_LIBRARY_PATH goes (repeatable).")] = None,
    kernel: Annotated[Optional[Path], typer.Option(
        "--kernel", help="The OSv kernel: the libraries it supplies are left out "
                         "(default: the list every kernel supplies).")] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Warn about libraries that cannot be found.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write the usr.manifest lines of the programs and every library they need."""
    from ..apps import resolve_closure, write_usr_manifest

    opts = dict(library_path=library_path or (), kernel=kernel, allow_missing=allow_missing)
    text = write_usr_manifest(programs, output, **opts)
    if json_output:
        emit(resolve_closure(programs, **opts), True)
    elif output is None:
        echo(text.rstrip("\n"))
