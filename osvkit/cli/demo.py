"""``osvkit demo``: build the conformance kernel both ways and boot every path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..demo import format_result, run_demo
from ..errors import EX_FAIL, UsageError
from ._app import app, emit
from .common import (AccelOpt, CpusOpt, JsonOpt, MemoryOpt, QuietOpt, TimeoutOpt, VerboseOpt,
                     examples, flags, setup_output)

EPILOG = examples(
    "osvkit demo",
    "osvkit demo --out demo/ --plot demo/boot.png",
    "osvkit demo --json --timeout 60",
) + """

\b
Exit status: 0 every boot path passed, 1 a boot failed (or could not run), 64 bad usage,
70 a tool failed.  --json prints {"passed", "cmdline", "out_dir", "artifacts": [{path, kind,
size, sha256}], "boots": [{image, kind, vmm, status, reasons, loader, entry, cmdline,
e820_entries, cpus, image_ok, boot_done_ms, exit_reason}], "plot"}."""


@app.command("demo", epilog=EPILOG)
def demo(
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="DIR",
        help="Keep the images in DIR (default: a temporary directory, removed).")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", metavar="FILE",
        help="Draw the boot phases as a timeline (.png or .svg).")] = None,
    memory: MemoryOpt = None,
    cpus: CpusOpt = None,
    timeout: TimeoutOpt = None,
    accel: AccelOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Build the conformance kernel into usr.img and a vmlinux ELF, boot usr.img with qemu
    and the ELF with qemu-pvh and qemu-fc, and report what each boot path saw (boot loader,
    command line, e820 map, CPUs, image integrity, boot-done time)."""
    setup_output(verbose, quiet)
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {plot}: unknown picture format",
                         expected="a file name ending in .png or .svg")
    result = run_demo(out, flags=flags(memory=memory, cpus=cpus, timeout=timeout, accel=accel),
                      plot=plot)
    emit(result, json_output, format_result)
    if not result.passed:
        raise typer.Exit(EX_FAIL)
