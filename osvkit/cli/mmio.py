"""``osvkit mmio``: write, read and strip ``virtio_mmio.device=`` entries."""

from __future__ import annotations

import sys

import click

from ..cmdline import mmio
from ..errors import CmdlineError
from ._app import choice, command, emit, json_option, subgroup

mmio_group = subgroup("mmio", "Encode, decode and strip virtio_mmio.device= entries.")


def _text(words: tuple[str, ...]) -> str:
    """The words given (joined with spaces), or standard input when there are none."""
    if words:
        return " ".join(words)
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError as exc:
        raise CmdlineError(f"standard input: byte {exc.start} is not UTF-8",
                           reason=CmdlineError.INVALID_CHAR, expected="UTF-8 text") from None


@command("encode", group=mmio_group,
         examples_=("osvkit mmio encode --size 4K --base 0xc0001000 --irq 5",))
@click.option("--size", required=True, help="Bytes: 4096, 4K, 0x1000, 1G.")
@click.option("--base", required=True, help="Base address, e.g. 0xc0001000.")
@click.option("--irq", required=True, help="Interrupt (GSI), e.g. 5.")
@click.option("--id", "id_", default=None, help="Platform device id (Linux only).")
@click.option("--linux", is_flag=True,
              help="Write G for whole GiB like linux-loader (OSv cannot read G).")
@json_option
def encode_cmd(size, base, irq, id_, linux: bool, json_output: bool) -> None:
    """Write one entry (OSv-safe by default: never a G suffix)."""
    entry = mmio.build_entry(size, base, irq, id_, osv_safe=not linux)
    emit(entry, json_output, lambda e: e.text)


@command("decode", group=mmio_group, examples_=(
    "osvkit mmio decode 'virtio_mmio.device=4K@0xc0001000:5'",
    "osvkit mmio decode -- --nopci /hello virtio_mmio.device=4K@0xc0001000:5",
    "osvkit mmio decode < cmdline.txt"))
@click.argument("text", nargs=-1)
@click.option("--grammar", **choice(*mmio.GRAMMARS), default="osv", show_default=True,
              help="Whose parser: osv or linux.")
@json_option
def decode_cmd(text: tuple[str, ...], grammar: str, json_output: bool) -> None:
    """Decode entries strictly; a malformed entry exits 65 naming the problem.

    TEXT is one entry (virtio_mmio.device=<size>@<base>:<irq>[:<id>], the prefix optional)
    or a whole command line (put -- before it when it starts with '-'), in which every entry
    is decoded; without TEXT the command line is read from standard input.  --json prints
    one device {size, base, irq, id} for one entry, and {cmdline, entries: [{device, text,
    ignored}]} for a command line."""
    line = _text(text)
    words = line.split()
    if len(words) == 1 and (words[0].startswith(mmio.PREFIX) or mmio.PREFIX not in line):
        emit(mmio.decode(line, grammar), json_output)
        return
    entries = mmio.decode_all(line, grammar)
    if not entries:
        raise CmdlineError(f"no virtio_mmio.device= entry in {line[:80]!r}",
                           reason=CmdlineError.MMIO,
                           expected="a command line with at least one entry")
    emit({"cmdline": line, "entries": entries}, json_output,
         lambda r: "\n".join(e.device.describe() for e in r["entries"]))


@command("strip", group=mmio_group, examples_=(
    "osvkit mmio strip -- '--nopci /hello virtio_mmio.device=4K@0xd0000000:5'",))
@click.argument("text", nargs=-1)
@json_option
def strip_cmd(text: tuple[str, ...], json_output: bool) -> None:
    """Print the command line as OSv's option parser sees it after removing the entries.

    TEXT is a whole command line (put -- before it when it starts with '-'); without it the
    line is read from standard input."""
    emit(mmio.scan_devices(_text(text)), json_output)
