"""``osvkit probe``: write the conformance kernel."""

from __future__ import annotations

from pathlib import Path

import click

from ..units import parse_size
from ._app import command, emit, json_option, PathType


@command("probe", examples_=("osvkit probe -o probe.elf",
                             "osvkit probe -o probe6m.elf --size 6M --json"))
@click.option("-o", "--output", type=PathType, required=True,
              help="Where to write the kernel ELF.")
@click.option("--size", metavar="SIZE",
              help="Pad the file to exactly this size (e.g. 6M) with code-like payload.")
@click.option("--entry-report", is_flag=True,
              help="Make e_entry a 64-bit routine that reports the entry state "
                   "(Firecracker-style loaders).")
@json_option
def probe_command(output: Path, size, entry_report: bool, json_output: bool) -> None:
    """Write the conformance kernel: an OSv-contract ELF that reports its boot on COM1."""
    from ..probe import write_probe

    result = write_probe(output, size=None if size is None else parse_size(size),
                         entry_report=entry_report)
    emit(result, json_output)
