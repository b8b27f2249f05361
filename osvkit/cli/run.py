"""``osvkit run``: boot an image in a VMM and report how the run ended."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..errors import ToolError
from ..run.backends import KERNEL_VMMS, vmm_help
from ._app import command, emit, json_option, PathType
from .common import (accel_option, cmdline_option, cpus_option, memory_option, resolve, shared,
                     timeout_option)



@command("run", examples_=(
    "osvkit run usr.img --expect 'Hello' --timeout 30",
    "osvkit run vmlinux.elf --vmm qemu-fc --cmdline '--nopci /hello' --json",
    "OSVKIT_MEMORY=512M osvkit run usr.img --dry-run"), help=f"""
    Boot IMAGE (a disk image, raw or qcow2, or a kernel for {', '.join(KERNEL_VMMS)}) with
    the serial console captured.

    Exit 0 when the guest powered off (or --expect matched), 1 on timeout, crash or no
    match, 70 when the VMM cannot run.  Without --image-format the format is detected.""")
@click.argument("image", type=PathType)
@click.option("--vmm", default="qemu", show_default=True, help=f"VMM: {vmm_help()}.")
@accel_option
@memory_option
@cpus_option
@click.option("--disk-bus", default="virtio", show_default=True, help="qemu: virtio or ide.")
@shared("image-format", default="detected")
@timeout_option
@click.option("--expect", metavar="REGEX",
              help="Stop with success when the console matches this regex.")
@click.option("--dry-run", is_flag=True, help="Print the VMM command and exit.")
@cmdline_option
@click.option("--machine", default="pc", show_default=True,
              help="qemu-fc/qemu-pvh: pc or microvm.")
@click.option("--disk", type=PathType,
              help="qemu-fc/qemu-pvh/firecracker: disk image attached as virtio-blk.")
@click.option("--firecracker", type=PathType, help="firecracker binary (default: from PATH).")
@click.option("--fc-protocol", default="linux", show_default=True,
              help="qemu-fc: linux (64-bit boot protocol at e_entry), pvh (the PVH note, as "
                   "Firecracker >= 1.12) or auto (Firecracker's choice: pvh when the note is "
                   "there).")
@click.option("--initrd", type=PathType,
              help="qemu-fc/qemu-pvh: initrd (placed where Firecracker puts it / QEMU's -initrd).")
@json_option
def run_command(image, vmm, accel, memory, cpus, disk_bus, image_format, timeout, expect,
                dry_run, cmdline, machine, disk, firecracker, fc_protocol, initrd,
                json_output) -> None:
    from ..cmdline import Cmdline
    from ..run import RunSpec
    from ..run import command as vmm_command
    from ..run import run as run_spec
    from ..run.qemu import capture_options
    from ..run.spec import RUN_DIR

    opts = resolve(accel=accel, memory=memory, cpus=cpus, timeout=timeout, cmdline=cmdline,
                   image_format=image_format)
    line = None if opts["cmdline"] is None else Cmdline.from_value(opts["cmdline"])
    spec = RunSpec(image, vmm=vmm, accel=opts["accel"], memory=opts["memory"],
                   cpus=opts["cpus"], timeout=opts["timeout"], expect=expect,
                   image_format=opts.given().get("image_format"), cmdline=line,
                   disk_bus=disk_bus, machine=machine, disk=disk, firecracker=firecracker,
                   fc_protocol=fc_protocol, initrd=initrd)
    if dry_run:
        argv = vmm_command(spec)
        argv += capture_options(RUN_DIR, argv)
        emit({"command": argv}, json_output, lambda r: shlex.join(r["command"]))
        return
    result = run_spec(spec)
    if result.exit_reason == "error":
        raise ToolError(f"{Path(result.command[0]).name} failed: {result.error_line}")
    emit(result, json_output)
    raise SystemExit(result.exit_status)
