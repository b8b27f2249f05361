"""``osvkit decode``: decode a boot structure from a file or memory dump."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import JsonOpt, app, emit

decode_app = typer.Typer(help="Decode a boot structure from a file or a raw memory dump.",
                         no_args_is_help=True)
app.add_typer(decode_app, name="decode")


def _int(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        number = int(value, 0)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number (decimal or 0x-hex)") from None
    if number < 0:
        raise typer.BadParameter(f"{value!r} is negative")
    return number


FileArg = Annotated[Path, typer.Argument(help="A file or a raw guest-memory dump.", metavar="FILE",
                                         show_default=False)]
OffsetOpt = Annotated[Optional[str], typer.Option(
    "--offset", callback=_int, metavar="N",
    help="Byte offset of the structure in FILE (decimal or 0x-hex; default 0, for mptable: "
         "search).")]
BaseOpt = Annotated[Optional[str], typer.Option(
    "--base", callback=_int, metavar="ADDR",
    help="Guest-physical address of FILE's first byte (default 0), used to follow pointers.")]
LenientOpt = Annotated[bool, typer.Option(
    "--lenient", help="Report bad checksums and implausible values instead of failing.")]


def _run(kind: str, file: Path, offset, base, json_output: bool, lenient: bool) -> None:
    from ..boot.decode import decode_file, describe

    result = decode_file(kind, file, offset=offset, base=base or 0, lenient=lenient)
    emit(result, json_output, describe)


@decode_app.command("mbr")
def mbr(file: FileArg, offset: OffsetOpt = None, base: BaseOpt = None,
        json_output: JsonOpt = False, lenient: LenientOpt = False) -> None:
    """Master boot record.

    OSv's count32 and disk signature, and the partitions with both CHS packings."""
    _run("mbr", file, offset, base, json_output, lenient)


@decode_app.command("boot-params")
def boot_params(file: FileArg, offset: OffsetOpt = None, base: BaseOpt = None,
                json_output: JsonOpt = False, lenient: LenientOpt = False) -> None:
    """Linux boot_params (zero page).

    The setup_header, the e820 table and the command line (when FILE covers it)."""
    _run("boot-params", file, offset, base, json_output, lenient)


@decode_app.command("mptable")
def mp_table(file: FileArg, offset: OffsetOpt = None, base: BaseOpt = None,
             json_output: JsonOpt = False, lenient: LenientOpt = False) -> None:
    """Intel MP table (searched for without --offset).

    Without --offset the floating pointer is searched for the MP-spec way (EBDA, last KiB of
    base memory, 0xF0000-0xFFFFF), then OSv's way (0x9FC00, 0x0); FILE starts at --base.
    """
    _run("mptable", file, offset, base, json_output, lenient)


@decode_app.command("bootinfo")
def boot_info(file: FileArg, offset: OffsetOpt = None, base: BaseOpt = None,
              json_output: JsonOpt = False, lenient: LenientOpt = False) -> None:
    """OSv's boot-info block.

    osv_multiboot_info_type and the command line and e820 records it points at."""
    _run("bootinfo", file, offset, base, json_output, lenient)


@decode_app.command("pvh")
def pvh_start_info(file: FileArg, offset: OffsetOpt = None, base: BaseOpt = None,
                   json_output: JsonOpt = False, lenient: LenientOpt = False) -> None:
    """PVH hvm_start_info.

    With the memmap, module list and command line it points at."""
    _run("pvh", file, offset, base, json_output, lenient)
