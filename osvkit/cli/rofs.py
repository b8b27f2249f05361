"""``osvkit rofs``: build a ROFS image from an OSv manifest, list it, extract it.

``osvkit rofs build MANIFEST -o rofs.img`` is the build command; ``osvkit rofs MANIFEST -o
rofs.img`` is accepted as a shorthand for it (when the first argument is not ``build``,
``ls`` or ``extract``; a manifest file with one of those names needs the ``build`` form).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from ..errors import UsageError
from ..rofs.manifest import parse_defines
from ._app import JsonOpt, app, emit


class _RofsGroup(TyperGroup):
    """A group whose default command is ``build``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


OffsetOpt = Annotated[int, typer.Option("--offset", help="Byte offset of the ROFS in the file.")]
PartitionOpt = Annotated[Optional[int], typer.Option(
    "-p", "--partition", help="Read MBR partition N of a raw or qcow2 disk image "
                              "(OSv's usr.img: 1).")]

rofs_app = typer.Typer(cls=_RofsGroup, no_args_is_help=True,
                       help="Build (default), list or extract an OSv ROFS image.")
app.add_typer(rofs_app, name="rofs")


def _human_build(r) -> str:
    return (f"{r.output}: ROFS image, {r.size} bytes, {r.inodes_count} inodes, {r.files} files "
            f"({r.data_bytes} bytes of data), {r.symlinks_count} symlinks")


@rofs_app.command("build")
def build(
    manifest: Annotated[Path, typer.Argument(metavar="MANIFEST", help="OSv manifest (usr.manifest syntax).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The ROFS image to write.")],
    define: Annotated[Optional[list[str]], typer.Option(
        "-D", "--define", metavar="NAME=VALUE", help="Value for %(NAME)s in host paths (repeatable).")] = None,
    manifest_root: Annotated[Optional[Path], typer.Option(
        "--manifest-root", help="Directory relative host paths resolve against (default: cwd).")] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Skip lines whose host path does not exist (warn).")] = False,
    follow_symlinks_anywhere: Annotated[bool, typer.Option(
        "--follow-symlinks-anywhere",
        help="Follow host symlinks whose target lies outside the directories the manifest names.")] = False,
    bare: Annotated[bool, typer.Option(
        "--bare", help="Do not add /dev, /proc, /sys, /tmp and /etc/fstab when missing.")] = False,
    long_names: Annotated[bool, typer.Option(
        "--long-names", help="Allow names and link targets up to the format's 65535 bytes "
                             "(OSv itself handles names up to 255).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Build a ROFS image from an OSv manifest."""
    from ..rofs import build_rofs

    result = build_rofs(manifest, output, defines=parse_defines(define or []),
                        manifest_root=manifest_root, allow_missing=allow_missing,
                        follow_symlinks_anywhere=follow_symlinks_anywhere, osv_defaults=not bare,
                        limits="format" if long_names else "osv")
    emit(result, json_output, _human_build)


@rofs_app.command("ls")
def ls(
    image: Annotated[Path, typer.Argument(help="ROFS image.")],
    offset: OffsetOpt = 0,
    partition: PartitionOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List the tree of a ROFS image (type, size, path, link target)."""
    from ..rofs import format_listing, list_rofs

    emit(list_rofs(image, offset=offset, partition=partition), json_output, format_listing)


@rofs_app.command("extract")
def extract(
    image: Annotated[Path, typer.Argument(help="ROFS image.")],
    directory: Annotated[Path, typer.Argument(help="Directory to create (new or empty).")],
    offset: OffsetOpt = 0,
    partition: PartitionOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write the files of a ROFS image into a new directory (never outside it)."""
    from ..rofs import extract_rofs

    emit(extract_rofs(image, directory, offset=offset, partition=partition), json_output,
         lambda r: f"{r.directory}: {r.entries} entries, {r.files} files, {r.bytes} bytes")
