"""``osvkit decode``: decode a boot structure from a file or memory dump."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from ._app import command, emit, json_option, number, PathType, subgroup

decode_group = subgroup("decode", "Decode a boot structure from a file or a raw memory dump.")


def _decode_command(name: str, kind: str, example: str) -> Callable:
    """A ``decode`` subcommand: FILE, --offset, --base, --json, --lenient."""
    def deco(f: Callable) -> click.Command:
        @command(name, group=decode_group, examples_=(example,), help=f.__doc__)
        @click.argument("file", type=PathType, metavar="FILE")
        @click.option("--offset", metavar="N", callback=number,
                      help="Byte offset of the structure in FILE (decimal or 0x-hex; default "
                           "0, for mptable: search).")
        @click.option("--base", metavar="ADDR", callback=number,
                      help="Guest-physical address of FILE's first byte (default 0), used to "
                           "follow pointers.")
        @json_option
        @click.option("--lenient", is_flag=True,
                      help="Report bad checksums and implausible values instead of failing.")
        def run(file: Path, offset, base, json_output: bool, lenient: bool) -> None:
            from ..boot.decode import decode_file, describe

            result = decode_file(kind, file, offset=offset, base=base or 0, lenient=lenient)
            emit(result, json_output, describe)
        return run
    return deco


@_decode_command("mbr", "mbr", "osvkit decode mbr usr.img")
def mbr():
    """Master boot record.

    OSv's count32 and disk signature, and the partitions with both CHS packings.
    FILE is a file or a raw guest-memory dump."""


@_decode_command("boot-params", "boot-params", "osvkit decode boot-params zero-page.bin --json")
def boot_params():
    """Linux boot_params (zero page).

    The setup_header, the e820 table and the command line (when FILE covers it)."""


@_decode_command("mptable", "mptable", "osvkit decode mptable low-memory.dump --base 0 --json")
def mp_table():
    """Intel MP table (searched for without --offset).

    Without --offset the floating pointer is searched for the MP-spec way (EBDA, last KiB of
    base memory, 0xF0000-0xFFFFF), then OSv's way (0x9FC00, 0x0); FILE starts at --base.
    """


@_decode_command("bootinfo", "bootinfo", "osvkit decode bootinfo mem.dump --offset 0x1000 --base 0")
def boot_info():
    """OSv's boot-info block.

    osv_multiboot_info_type and the command line and e820 records it points at."""


@_decode_command("pvh", "pvh", "osvkit decode pvh start_info.bin")
def pvh_start_info():
    """PVH hvm_start_info.

    With the memmap, module list and command line it points at."""
