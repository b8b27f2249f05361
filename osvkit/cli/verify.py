"""``osvkit verify``: boot images and judge their consoles (exit 1 when any boot fails)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EX_FAIL, UsageError
from ..run.backends import VMMS
from ._app import command, emit, json_option, PathType
from .common import (accel_option, cmdline_option, config_option, cpus_option, flags,
                     memory_option, out_dir_option, timeout_option)

NOTES = """

\b
Exit status: 0 every boot passed, 1 a boot failed, 64 bad usage, 65 bad input,
66 missing input, 70 a tool (QEMU) failed.
\b
--json prints {"passed", "summary": {boots, passed, failed, skipped}, "boots": [{image,
name, kind, vmm, status, passed, reasons, exit_reason, elapsed_s, boot_done_s, expect,
expect_line, failures, timing: {phases, booted_up_ms, chart_skipped, total_ms}, probe, command,
console_tail}], "plot"}."""


def check_plot(plot: Path | None) -> None:
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {plot}: unknown picture format",
                         expected="a file name ending in .png or .svg")


plot_option = click.option("--plot", type=PathType, metavar="FILE",
                           help="Draw the boot phases as a timeline (.png or .svg).")


@command("verify", examples_=(
    "osvkit verify -c osvkit.toml --plot boot.svg",
    "osvkit verify usr.img --expect 'Hello from OSv' --timeout 20",
    "osvkit verify vmlinux.elf --vmm qemu-pvh --cmdline '--nopci /hello' --json",
    "OSVKIT_TIMEOUT=90 osvkit verify -c osvkit.toml --image hello"), notes=NOTES)
@click.argument("images", nargs=-1, type=PathType, metavar="[IMAGE]...")
@config_option
@out_dir_option
@click.option("--image", "only", multiple=True, metavar="NAME",
              help="Only this image of the build file (repeatable).")
@click.option("--vmm", multiple=True, metavar="VMM",
              help=f"Run backend: {', '.join(VMMS)} (repeatable; default: qemu for usr.img, "
                   "qemu-pvh and qemu-fc for a vmlinux ELF).")
@click.option("--expect", metavar="REGEX", help="A console line must match this regex.")
@click.option("--fail-pattern", multiple=True, metavar="TEXT",
              help="Extra console text that means failure (repeatable).")
@plot_option
@click.option("--disk", type=PathType, metavar="IMAGE",
              help="Disk for kernel-ELF boots: the usr.img (or raw copy) holding the "
                   "application filesystem.")
@memory_option
@cpus_option
@timeout_option
@accel_option
@cmdline_option
@json_option
def verify(images, config, out, only, vmm, expect, fail_pattern, plot, disk, memory, cpus,
           timeout, accel, cmdline, json_output) -> None:
    """Boot each image with the fitting backend and check its console.

    With -c (or OSVKIT_CONFIG, or ./osvkit.toml) it boots the usr and vmlinux outputs of
    every image in the build file, with the expectations the file sets.  A boot fails on a
    timeout or crash, a missing expected line, one of OSv's failure patterns (Assertion
    failed, Aborted, [backtrace], Failed to load object, exception), or a bad probe report.
    """
    from ..config import DEFAULT_NAME, find_build_file
    from ..verify import verify_build_file, verify_images

    given = flags(memory=memory, cpus=cpus, timeout=timeout, accel=accel, cmdline=cmdline)
    check_plot(plot)
    build_file = find_build_file(config)
    if images and build_file is not None and config is not None:
        raise UsageError("give either IMAGE arguments or -c BUILD_FILE, not both",
                         expected="one of them")
    if images:
        if only or out:
            raise UsageError("--image and --out need a build file (-c), not IMAGE arguments",
                             expected="-c BUILD_FILE")
        result = verify_images(list(images), flags=given, vmms=list(vmm) or None, expect=expect,
                               fail_patterns=fail_pattern, plot=plot, disk=disk)
    else:
        if disk is not None:
            raise UsageError("--disk is for IMAGE arguments; a build file attaches its own usr.img",
                             expected="IMAGE arguments with --disk")
        if build_file is None:
            if not Path(DEFAULT_NAME).is_file():
                raise UsageError("nothing to verify",
                                 expected=f"IMAGE arguments, -c BUILD_FILE or ./{DEFAULT_NAME}")
            build_file = Path(DEFAULT_NAME)
        result = verify_build_file(build_file, flags=given, out_dir=out, vmms=list(vmm) or None,
                                   expect=expect, fail_patterns=fail_pattern, plot=plot,
                                   only=list(only) or None)
    emit(result, json_output)
    if not result.passed:
        raise SystemExit(EX_FAIL)
