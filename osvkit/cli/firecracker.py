"""``osvkit firecracker-config KERNEL -o vm.json``: a Firecracker --config-file document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import JsonOpt, app, emit


def _describe(cfg) -> str:
    d = cfg.document
    lines = [f"wrote {cfg.output}",
             f"  kernel {d['boot-source']['kernel_image_path']}",
             f"  boot_args {d['boot-source']['boot_args']!r}",
             *([f"  initrd {d['boot-source']['initrd_path']}"]
               if "initrd_path" in d["boot-source"] else []),
             f"  {d['machine-config']['vcpu_count']} vCPU(s), {d['machine-config']['mem_size_mib']} MiB"]
    for drv in d["drives"]:
        lines.append(f"  drive {drv['drive_id']}: {drv['path_on_host']} (root device: no)")
    lines.append(f"  run: firecracker --no-api --config-file {cfg.output}")
    return "\n".join(lines)


@app.command("firecracker-config")
def firecracker_config(
    kernel: Annotated[Path, typer.Argument(help="Kernel ELF with a Linux/PVH entry "
                                                "(osvkit build --format vmlinux).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON file to write.")],
    disk: Annotated[Optional[Path], typer.Option(
        "--disk", help="Raw application disk (non-root drive).")] = None,
    memory: Annotated[str, typer.Option("--memory", help="Guest memory (default 128M).")] = "128M",
    cpus: Annotated[int, typer.Option("--cpus", help="vCPUs: 1 or even, up to 32 (default 1).")] = 1,
    boot_args: Annotated[str, typer.Option(
        "--cmdline", "--boot-args", metavar="TEXT",
        help="Command line, Firecracker's boot_args (--nopci is prepended).")] = "",
    initrd: Annotated[Optional[Path], typer.Option(
        "--initrd", help="Initrd (boot-source initrd_path).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a Firecracker --config-file document for an OSv kernel."""
    from ..firecracker.config import write_firecracker_config

    emit(write_firecracker_config(kernel, output, disk=disk, memory=memory, cpus=cpus,
                                  boot_args=boot_args, initrd=initrd), json_output, _describe)
