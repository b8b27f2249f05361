"""``osvkit firecracker-config KERNEL -o vm.json``: a Firecracker --config-file document."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import command, emit, json_option, PathType
from .common import resolve, shared


@command("firecracker-config", examples_=(
    "osvkit firecracker-config vmlinux.elf -o vm.json --disk usr.img --cmdline /hello",))
@click.argument("kernel", type=PathType)
@click.option("-o", "--output", type=PathType, required=True,
              help="JSON file to write.")
@click.option("--disk", type=PathType, help="Raw application disk (non-root drive).")
@shared("memory", default="128M")
@shared("cpus")
@shared("cmdline", aliases=("--boot-args",))
@click.option("--initrd", type=PathType, help="Initrd (boot-source initrd_path).")
@json_option
def firecracker_config(kernel: Path, output: Path, disk, memory, cpus, cmdline, initrd,
                       json_output: bool) -> None:
    """Write a Firecracker --config-file document for an OSv kernel.

    KERNEL is a kernel ELF: an OSv kernel with a Linux/PVH entry (osvkit build --format
    vmlinux) or any vmlinux Firecracker boots.  The command line becomes Firecracker's
    boot_args (--nopci is prepended for an OSv kernel).  Without --memory the guest gets
    128 MiB, without --cpus one vCPU (1 or even, up to 32)."""
    from ..firecracker.config import write_firecracker_config

    given = resolve(memory=memory, cpus=cpus,
                    cmdline=cmdline).given()
    if "cmdline" in given:
        given["boot_args"] = given.pop("cmdline")
    result = write_firecracker_config(kernel, output, disk=disk, initrd=initrd, **given)
    emit(result, json_output)
