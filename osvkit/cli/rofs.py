"""``osvkit rofs``: build a ROFS image from an OSv manifest, list it, extract it.

``osvkit rofs build MANIFEST -o rofs.img`` is the build command; ``osvkit rofs MANIFEST -o
rofs.img`` is accepted as a shorthand for it (when the first argument is not ``build``,
``ls`` or ``extract``; a manifest file with one of those names needs the ``build`` form).
"""

from __future__ import annotations

import click

from ._app import (command, emit, json_option, manifest_options, number, PathType,
                   subgroup)


class _RofsGroup(click.Group):
    """A group whose default command is ``build``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


rofs_group = subgroup("rofs", "Build (default), list or extract an OSv ROFS image.", _RofsGroup)



def _image_options(f):
    f = click.option("-p", "--partition", metavar="N", callback=number, default=None,
                     help="Read MBR partition N of a raw or qcow2 disk image "
                          "(OSv's usr.img: 1).")(f)
    return click.option("--offset", metavar="N", callback=number, default="0", show_default=True,
                        help="Byte offset of the ROFS in the file.")(f)


@command("build", group=rofs_group,
         examples_=("osvkit rofs build usr.manifest -o rofs.img -D libdir=/usr/lib",),
         notes="""

\b
--json prints {output, size, structure_info_first_block, structure_info_blocks_count,
directory_entries_count, symlinks_count, inodes_count, files, data_bytes}. Nothing is
written when the manifest or a host file is bad (the error names file:line).""")
@click.argument("manifest", type=PathType, metavar="MANIFEST")
@click.option("-o", "--output", type=PathType, required=True, help="The ROFS image to write.")
@manifest_options
@click.option("--allow-missing", is_flag=True,
              help="Skip lines whose host path does not exist (warn).")
@click.option("--bare", is_flag=True,
              help="Do not add /dev, /proc, /sys, /tmp and /etc/fstab when missing.")
@click.option("--long-names", is_flag=True,
              help="Allow names and link targets up to the format's 65535 bytes (OSv itself "
                   "handles names up to 255).")
@json_option
def build(manifest, output, define, manifest_root, allow_missing, follow_symlinks_anywhere,
          bare, long_names, json_output) -> None:
    """Build a ROFS image from an OSv manifest (usr.manifest syntax)."""
    from ..rofs import build_rofs
    from ..rofs.manifest import parse_defines

    result = build_rofs(manifest, output, defines=parse_defines(define),
                        manifest_root=manifest_root, allow_missing=allow_missing,
                        follow_symlinks_anywhere=follow_symlinks_anywhere, osv_defaults=not bare,
                        limits="format" if long_names else "osv")
    emit(result, json_output)


@command("ls", group=rofs_group,
         examples_=("osvkit rofs ls rofs.img", "osvkit rofs ls usr.img -p 1 --json"),
         notes="""

\b
--json prints {format, path, offset, partition, superblock: {magic, version, block_size,
structure_info_first_block, structure_info_blocks_count, directory_entries_count,
symlinks_count, inodes_count}, entries: [{path, type, inode, size, target}]} (type: dir,
file or symlink; target only for symlinks).""")
@click.argument("image", type=PathType)
@_image_options
@json_option
def ls(image, offset, partition, json_output) -> None:
    """List the tree of a ROFS image (type, size, path, link target)."""
    from ..rofs import list_rofs

    emit(list_rofs(image, offset=offset, partition=partition), json_output)


@command("extract", group=rofs_group,
         examples_=("osvkit rofs extract usr.img tree/ --partition 1",),
         notes="""

\b
--json prints {image, directory, entries, files, bytes}. The tree is extracted beside
DIRECTORY and renamed into place at the end: on failure nothing is written.""")
@click.argument("image", type=PathType)
@click.argument("directory", type=PathType)
@_image_options
@json_option
def extract(image, directory, offset, partition, json_output) -> None:
    """Write the files of a ROFS image into DIRECTORY, new or empty (never outside it)."""
    from ..rofs import extract_rofs

    emit(extract_rofs(image, directory, offset=offset, partition=partition), json_output)
