"""``osvkit mmio``: write, read and strip ``virtio_mmio.device=`` entries."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..cmdline import mmio
from ._app import JsonOpt, app, emit

mmio_app = typer.Typer(help="Encode, decode and strip virtio_mmio.device= entries.",
                       no_args_is_help=True)
app.add_typer(mmio_app, name="mmio")


def _device_line(dev: mmio.MmioDevice) -> str:
    ident = "-" if dev.id is None else str(dev.id)
    return (f"size={dev.size} ({mmio.format_size(dev.size)}) base={dev.base:#x} "
            f"irq={dev.irq} id={ident}")


@mmio_app.command("encode")
def encode_cmd(
    size: Annotated[str, typer.Option("--size", help="Bytes: 4096, 4K, 0x1000, 1G.")],
    base: Annotated[str, typer.Option("--base", help="Base address, e.g. 0xc0001000.")],
    irq: Annotated[int, typer.Option("--irq", help="Interrupt (GSI), e.g. 5.")],
    id: Annotated[Optional[int],  # noqa: A002
                  typer.Option("--id", help="Platform device id (Linux only).")] = None,
    linux: Annotated[bool, typer.Option("--linux", help="Write G for whole GiB like "
                                        "linux-loader (OSv cannot read G).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write one entry (OSv-safe by default: never a G suffix)."""
    entry = mmio.build_entry(size, base, irq, id, osv_safe=not linux)
    emit(entry, json_output, lambda e: e.text)


@mmio_app.command("decode")
def decode_cmd(
    text: Annotated[str, typer.Argument(help="virtio_mmio.device=<size>@<base>:<irq>[:<id>] "
                                        "(the prefix is optional).")],
    grammar: Annotated[str, typer.Option("--grammar", help="Whose parser: osv or linux.")] = "osv",
    json_output: JsonOpt = False,
) -> None:
    """Decode one entry strictly; a malformed entry exits 65 naming the problem."""
    emit(mmio.decode(text, grammar), json_output, _device_line)


@mmio_app.command("strip")
def strip_cmd(
    text: Annotated[str, typer.Argument(help="A whole command line (use -- before it when "
                                        "it starts with '-').")],
    json_output: JsonOpt = False,
) -> None:
    """Print the command line as OSv's option parser sees it after removing the entries."""
    emit(mmio.scan_devices(text), json_output, lambda r: r.stripped)
