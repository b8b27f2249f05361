"""``osvkit run``: boot an image in a VMM and report how the run ended."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ToolError
from ..run.backends import KERNEL_VMMS, vmm_help
from ._app import JsonOpt, app, emit


def _human(result) -> str:
    lines = []
    if result.console:
        lines.append(result.console.rstrip("\n"))
        lines.append("")
    lines.append(f"exit: {result.exit_reason} after {result.elapsed:.2f} s")
    lines.append("boot-done: " + ("not seen" if result.boot_done is None
                                  else f"{result.boot_done:.2f} s"))
    if result.expect is not None:
        lines.append(f"expect {result.expect!r}: " + ("matched" if result.matched is not None
                                                      else "not matched"))
    return "\n".join(lines)


@app.command("run")
def run_command(
    image: Annotated[Path, typer.Argument(help="Disk image to boot (raw or qcow2), or a kernel "
                                                f"for {', '.join(KERNEL_VMMS)}.")],
    vmm: Annotated[str, typer.Option("--vmm", help=f"VMM: {vmm_help()}.")] = "qemu",
    accel: Annotated[str, typer.Option("--accel", help="QEMU accelerator: tcg or kvm.")] = "tcg",
    memory: Annotated[str, typer.Option("--memory", help="Guest memory, e.g. 256M.")] = "256M",
    cpus: Annotated[int, typer.Option("--cpus", help="Number of vCPUs.")] = 1,
    disk_bus: Annotated[str, typer.Option("--disk-bus", help="virtio or ide.")] = "virtio",
    image_format: Annotated[Optional[str], typer.Option(
        "--image-format", help="raw or qcow2 (default: detected).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before the VMM is killed.")] = 60,
    expect: Annotated[Optional[str], typer.Option(
        "--expect", help="Stop with success when the console matches this regex.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the VMM command and exit.")] = False,
    # [fcpath] kernel-ELF VMMs
    cmdline: Annotated[Optional[str], typer.Option(
        "--cmdline", help="Command line (kernel VMMs: -append / boot_args; qemu: replaces "
                          "the image's, in a temporary copy).")] = None,
    machine: Annotated[str, typer.Option("--machine", help="qemu-fc/qemu-pvh: pc or microvm.")] = "pc",
    disk: Annotated[Optional[Path], typer.Option(
        "--disk", help="qemu-fc/qemu-pvh/firecracker: disk image attached as virtio-blk.")] = None,
    firecracker: Annotated[Optional[Path], typer.Option(
        "--firecracker", help="firecracker binary (default: from PATH).")] = None,
    fc_protocol: Annotated[str, typer.Option(
        "--fc-protocol", help="qemu-fc: linux (64-bit boot protocol at e_entry, default), pvh "
                              "(the PVH note, as Firecracker >= 1.12) or auto (Firecracker's "
                              "choice: pvh when the note is there).")] = "linux",
    initrd: Annotated[Optional[Path], typer.Option(
        "--initrd", help="qemu-fc/qemu-pvh: initrd (placed where Firecracker puts it / "
                         "QEMU's -initrd).")] = None,
    # [/fcpath]
    json_output: JsonOpt = False,
) -> None:
    """Boot IMAGE with the serial console captured; exit 0 when the guest powered off (or
    --expect matched), 1 on timeout, crash or no match, 70 when the VMM cannot run."""
    from ..run import RunSpec, command, run
    from ..run.qemu import capture_options
    from ..run.spec import RUN_DIR

    spec = RunSpec(image, vmm=vmm, accel=accel, memory=memory, cpus=cpus, disk_bus=disk_bus,
                   timeout=timeout, expect=expect, image_format=image_format, cmdline=cmdline,
                   machine=machine, disk=disk, firecracker=firecracker,
                   fc_protocol=fc_protocol, initrd=initrd)
    if dry_run:
        argv = command(spec)
        argv += capture_options(RUN_DIR, argv)
        emit({"command": argv}, json_output, lambda r: shlex.join(r["command"]))
        return
    result = run(spec)
    if result.exit_reason == "error":
        raise ToolError(f"{Path(result.command[0]).name} failed: {result.error_line}")
    emit(result, json_output, _human)
    raise typer.Exit(result.exit_status)
