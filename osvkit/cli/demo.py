"""``osvkit demo``: build the conformance kernel both ways and boot every path."""

from __future__ import annotations

import click

from ..errors import EX_FAIL
from ._app import command, emit, json_option, PathType
from .common import accel_option, cpus_option, flags, memory_option, timeout_option
from .verify import check_plot, plot_option

NOTES = """

\b
Exit status: 0 every boot path passed, 1 a boot failed (or could not run), 64 bad usage,
70 a tool failed.  --json prints {"passed", "cmdline", "out_dir", "artifacts": [{path, kind,
size, sha256}], "boots": [{image, kind, vmm, status, reasons, loader, entry, cmdline,
e820_entries, cpus, image_ok, boot_done_ms, exit_reason}], "plot"}."""


@command("demo", examples_=("osvkit demo", "osvkit demo --out demo/ --plot demo/boot.png",
                            "osvkit demo --json --timeout 60"), notes=NOTES)
@click.option("--out", "-o", type=PathType, metavar="DIR",
              help="Keep the images in DIR (default: a temporary directory, removed).")
@plot_option
@memory_option
@cpus_option
@timeout_option
@accel_option
@json_option
def demo(out, plot, memory, cpus, timeout, accel, json_output) -> None:
    """Build the conformance kernel into usr.img and a vmlinux ELF, boot usr.img with qemu
    and the ELF with qemu-pvh and qemu-fc, and report what each boot path saw (boot loader,
    command line, e820 map, CPUs, image integrity, boot-done time)."""
    from ..demo import run_demo

    check_plot(plot)
    result = run_demo(out, flags=flags(memory=memory, cpus=cpus, timeout=timeout, accel=accel),
                      plot=plot)
    emit(result, json_output)
    if not result.passed:
        raise SystemExit(EX_FAIL)
