"""``osvkit manifest from-host ELF... [-o usr.manifest]``: an OSv usr.manifest of the programs'
library closure, for users of OSv's own ``scripts/build``."""

from __future__ import annotations

import click

from ._app import command, emit, json_option, PathType, subgroup

manifest_group = subgroup("manifest", "Write OSv manifests.")


@command("from-host", group=manifest_group, examples_=(
    "osvkit manifest from-host /usr/bin/python3.11 -o usr.manifest",
    "osvkit manifest from-host ./bin/server:/app/bin/server --library-path ./lib --json"),
    notes="""

\b
--json prints {files: [{guest, host, source, kind, via, soname, needed_by}], supplied:
[{soname, needed_by}], missing: [...], supplied_source}.""")
@click.argument("programs", nargs=-1, required=True, metavar="ELF[:GUEST]...")
@click.option("-o", "--output", type=PathType,
              help="Manifest to write (default: standard output).")
@click.option("--library-path", multiple=True, metavar="DIR",
              help="Search DIR for libraries, where LD_LIBRARY_PATH goes (repeatable).")
@click.option("--kernel", type=PathType,
              help="The OSv kernel: the libraries it supplies are left out (default: the list "
                   "every kernel supplies).")
@click.option("--allow-missing", is_flag=True, help="Warn about libraries that cannot be found.")
@json_option
def from_host(programs, output, library_path, kernel, allow_missing, json_output) -> None:
    """Write the usr.manifest lines of the programs (host programs or shared objects, at
    /NAME by default) and every library they need."""
    from ..apps import resolve_closure, write_usr_manifest
    from ..fileio import check_not_input

    check_not_input(output, [("the program ELF", p.split(":", 1)[0]) for p in programs]
                    + [("--kernel", kernel)])
    opts = dict(library_path=library_path, kernel=kernel, allow_missing=allow_missing)
    text = write_usr_manifest(list(programs), output, **opts)
    if json_output:
        emit(resolve_closure(list(programs), **opts), True)
    elif output is None:
        click.echo(text.rstrip("\n"))
