"""``osvkit verify``: boot images and judge their consoles (exit 1 when any boot fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import DEFAULT_NAME, find_build_file
from ..errors import EX_FAIL, UsageError
from ..verify import format_result, verify_build_file, verify_images
from ._app import app, emit
from .common import (AccelOpt, CmdlineOpt, ConfigOpt, CpusOpt, JsonOpt, MemoryOpt, OutDirOpt,
                     QuietOpt, TimeoutOpt, VerboseOpt, examples, flags, setup_output)

EPILOG = examples(
    "osvkit verify -c osvkit.toml --plot boot.svg",
    "osvkit verify usr.img --expect 'Hello from OSv' --timeout 20",
    "osvkit verify vmlinux.elf --vmm qemu-pvh --cmdline '--nopci /hello' --json",
    "OSVKIT_TIMEOUT=90 osvkit verify -c osvkit.toml --image hello",
) + """

\b
Exit status: 0 every boot passed, 1 a boot failed, 64 bad usage, 65 bad input,
66 missing input, 70 a tool (QEMU) failed.
\b
--json prints {"passed", "summary": {boots, passed, failed, skipped}, "boots": [{image,
name, kind, vmm, status, passed, reasons, exit_reason, elapsed_s, boot_done_s, expect,
expect_line, failures, timing: {phases, booted_up_ms, chart_skipped, total_ms}, probe, command,
console_tail}], "plot"}."""


@app.command("verify", epilog=EPILOG)
def verify(
    images: Annotated[Optional[list[Path]], typer.Argument(
        metavar="IMAGE", help="usr.img or vmlinux ELF files to boot.",
        show_default=False)] = None,
    config: ConfigOpt = None,
    out: OutDirOpt = None,
    image: Annotated[Optional[list[str]], typer.Option(
        "--image", metavar="NAME", help="Only this image of the build file (repeatable).")] = None,
    vmm: Annotated[Optional[list[str]], typer.Option(
        "--vmm", metavar="VMM",
        help="Run backend: qemu, qemu-pvh, qemu-fc, firecracker (repeatable; default: qemu "
             "for usr.img, qemu-pvh and qemu-fc for a vmlinux ELF).")] = None,
    expect: Annotated[Optional[str], typer.Option(
        "--expect", metavar="REGEX", help="A console line must match this regex.")] = None,
    fail_pattern: Annotated[Optional[list[str]], typer.Option(
        "--fail-pattern", metavar="TEXT",
        help="Extra console text that means failure (repeatable).")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", metavar="FILE",
        help="Draw the boot phases as a timeline (.png or .svg).")] = None,
    disk: Annotated[Optional[Path], typer.Option(
        "--disk", metavar="IMAGE",
        help="Disk for kernel-ELF boots: the usr.img (or raw copy) holding the application "
             "filesystem.")] = None,
    memory: MemoryOpt = None,
    cpus: CpusOpt = None,
    timeout: TimeoutOpt = None,
    accel: AccelOpt = None,
    cmdline: CmdlineOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Boot each image with the fitting backend and check its console.

    With -c (or OSVKIT_CONFIG, or ./osvkit.toml) it boots the usr and vmlinux outputs of
    every image in the build file, with the expectations the file sets.  A boot fails on a
    timeout or crash, a missing expected line, one of OSv's failure patterns (Assertion
    failed, Aborted, [backtrace], Failed to load object, exception), or a bad probe report.
    """
    setup_output(verbose, quiet)
    given = flags(memory=memory, cpus=cpus, timeout=timeout, accel=accel, cmdline=cmdline)
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {plot}: unknown picture format",
                         expected="a file name ending in .png or .svg")
    build_file = find_build_file(config)
    if images and build_file is not None and config is not None:
        raise UsageError("give either IMAGE arguments or -c BUILD_FILE, not both",
                         expected="one of them")
    if images:
        if image or out:
            raise UsageError("--image and --out need a build file (-c), not IMAGE arguments",
                             expected="-c BUILD_FILE")
        result = verify_images(images, flags=given, vmms=vmm, expect=expect,
                               fail_patterns=fail_pattern or (), plot=plot, disk=disk)
    else:
        if disk is not None:
            raise UsageError("--disk is for IMAGE arguments; a build file attaches its own usr.img",
                             expected="IMAGE arguments with --disk")
        if build_file is None:
            if not Path(DEFAULT_NAME).is_file():
                raise UsageError("nothing to verify",
                                 expected=f"IMAGE arguments, -c BUILD_FILE or ./{DEFAULT_NAME}")
            build_file = Path(DEFAULT_NAME)
        result = verify_build_file(build_file, flags=given, out_dir=out, vmms=vmm,
                                   expect=expect, fail_patterns=fail_pattern or (), plot=plot,
                                   only=image)
    emit(result, json_output, format_result)
    if not result.passed:
        raise typer.Exit(EX_FAIL)
