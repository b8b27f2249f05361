"""``osvkit probe``: write the conformance kernel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ._app import JsonOpt, app, emit

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``64K``, ``1M``, ``6M``, ``40M``, ``1G`` (binary units) or a byte count."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise UsageError(f"size {text!r}", expected="a byte count or a size like 64K, 6M, 1G")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def _human(r) -> str:
    return (f"wrote {r.path}: {r.size} bytes, image {r.image_len} bytes, "
            f"start32 {r.start32:#x}, e_entry {r.entry:#x}"
            + (" (entry report)" if r.entry_report else ""))


@app.command("probe")
def probe_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the kernel ELF.")],
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Pad the file to exactly this size (e.g. 6M) with code-like payload.")] = None,
    entry_report: Annotated[bool, typer.Option(
        "--entry-report", help="Make e_entry a 64-bit routine that reports the entry state "
                               "(Firecracker-style loaders).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write the conformance kernel: an OSv-contract ELF that reports its boot on COM1."""
    from ..probe import write_probe

    result = write_probe(output, size=parse_size(size) if size is not None else None,
                         entry_report=entry_report)
    emit(result, json_output, _human)
