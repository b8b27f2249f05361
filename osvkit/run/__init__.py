"""Boot images in a VMM and report how the run ended (:class:`RunResult`).

:func:`run_image` dispatches on ``vmm``; the ``qemu`` backend (SeaBIOS, disk image) lives in
:mod:`osvkit.run.qemu`.  Other backends (``qemu-fc``, ``qemu-pvh``, ``firecracker``) add a
branch here and a module of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from ..errors import ToolError, UsageError
from .result import EXIT_REASONS, RunResult

__all__ = ["run_image", "image_command", "RunResult", "EXIT_REASONS", "VMMS"]

VMMS = ("qemu",)
# [fcpath] VMMs that boot a kernel ELF: qemu-fc, qemu-pvh, firecracker (osvkit.run.kernel_vmms)
from .kernel_vmms import KERNEL_VMMS  # noqa: E402
VMMS = VMMS + KERNEL_VMMS
# [/fcpath]


def image_command(image, *, vmm: str = "qemu", accel: str = "tcg", memory: str = "256M",
                  cpus: int = 1, disk_bus: str = "virtio", image_format: str | None = None,
                  extra=(), cmdline: str | None = None, machine: str = "pc", disk=None,
                  firecracker=None, fc_protocol: str = "linux", initrd=None) -> list[str]:
    """The VMM command :func:`run_image` runs (before the capture options; ``osvkit run
    --dry-run`` prints it with them)."""
    if vmm in KERNEL_VMMS:  # [fcpath]
        from .kernel_vmms import kernel_command
        return kernel_command(vmm, image, accel=accel, memory=memory, cpus=cpus, cmdline=cmdline,
                              machine=machine, disk=disk, firecracker=firecracker,
                              fc_protocol=fc_protocol, initrd=initrd) + list(extra)
    if vmm == "qemu":
        from .qemu import qemu_command
        return qemu_command(image, accel=accel, memory=memory, cpus=cpus, disk_bus=disk_bus,
                            image_format=image_format, extra=list(extra))
    raise UsageError(f"VMM {vmm!r}", expected=" or ".join(VMMS))


def run_image(image, *, vmm: str = "qemu", accel: str = "tcg", memory: str = "256M",
              cpus: int = 1, disk_bus: str = "virtio", timeout: float = 60,
              expect: str | None = None, cmdline: str | None = None, extra=(),
              image_format: str | None = None, console_path=None, machine: str = "pc",
              disk=None, firecracker=None, fc_protocol: str = "linux", initrd=None) -> RunResult:
    """Boot ``image`` and return how the run ended.

    ``cmdline``, when given, replaces the image's command line in a temporary raw copy (the
    image itself is never modified); it needs ``osvkit.image.cmdline_io``.
    """
    if not timeout > 0:        # also NaN, which compares false and made the run endless
        raise UsageError(f"timeout {timeout}", expected="a positive number of seconds")
    if vmm in KERNEL_VMMS:  # [fcpath] ``image`` is a kernel ELF; cmdline is its command line
        from .kernel_vmms import run_kernel
        return run_kernel(vmm, image, accel=accel, memory=memory, cpus=cpus, timeout=timeout,
                          expect=expect, cmdline=cmdline, machine=machine, disk=disk,
                          firecracker=firecracker, fc_protocol=fc_protocol,
                          console_path=console_path, initrd=initrd)
    if vmm != "qemu":
        raise UsageError(f"VMM {vmm!r}", expected=" or ".join(VMMS))
    from .qemu import detect_image_format, run_qemu

    fmt = image_format or detect_image_format(image)
    with tempfile.TemporaryDirectory(prefix="osvkit-run-") as tmp:
        if cmdline is not None:
            image = _with_cmdline(image, fmt, cmdline, tmp)
            fmt = "raw"
        argv = image_command(image, vmm=vmm, accel=accel, memory=memory, cpus=cpus,
                             disk_bus=disk_bus, image_format=fmt, extra=extra)
        return run_qemu(argv, timeout=timeout, expect=expect, console_path=console_path,
                        workdir=tmp)


def _with_cmdline(image, fmt: str, cmdline: str, tmp: str) -> str:
    try:
        from ..image.cmdline_io import set_cmdline
    except ImportError:
        raise ToolError("cmdline override needs osvkit.image.cmdline_io",
                        expected="the cmdline part of osvkit") from None
    copy = os.path.join(tmp, "image.raw")
    if fmt == "qcow2":
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            raise ToolError("qemu-img not found in PATH", expected="QEMU tools installed")
        proc = subprocess.run([qemu_img, "convert", "-O", "raw", os.fspath(image), copy],
                              capture_output=True, text=True)
        if proc.returncode:
            raise ToolError(f"qemu-img convert failed: {proc.stderr.strip()}", path=image)
    else:
        shutil.copyfile(image, copy)
    set_cmdline(copy, cmdline)
    return copy
