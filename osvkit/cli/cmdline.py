"""``osvkit cmdline``: read or replace the command line inside a raw or qcow2 OSv image."""

from __future__ import annotations

from typing import Annotated

import typer

from ..cmdline import model
from ..errors import UsageError
from ..image import cmdline_io
from ._app import JsonOpt, app, emit, log

cmdline_app = typer.Typer(help="Read or replace the command line stored in an OSv image "
                          "(raw or qcow2; no qemu-nbd, root or KVM).", no_args_is_help=True)
app.add_typer(cmdline_app, name="cmdline")


def _check_target(target: str) -> None:
    # a bad option value is a usage error (64), not bad data in the image (65)
    if target not in model.TARGETS:
        raise UsageError(f"--target {target!r}", expected="one of " + ", ".join(model.TARGETS))


def _human_get(info: cmdline_io.CmdlineInfo) -> str:
    if info.stale_bytes:
        log.warning("%s: %d stale non-zero bytes after the NUL (an old, longer line); "
                    "'osvkit cmdline set' clears them", info.path, info.stale_bytes)
    if info.unfit_targets:
        log.warning("%s: the line does not fit %s", info.path, ", ".join(info.unfit_targets))
    return info.cmdline if info.cmdline else ""


@cmdline_app.command("get")
def get_cmd(
    image: Annotated[str, typer.Argument(help="usr.img or loader.img, raw or qcow2.")],
    json_output: JsonOpt = False,
) -> None:
    """Print the NUL-terminated command line at byte 512."""
    emit(cmdline_io.read_cmdline(image), json_output, _human_get)


@cmdline_app.command("set")
def set_cmd(
    image: Annotated[str, typer.Argument(help="usr.img or loader.img, raw or qcow2.")],
    text: Annotated[str, typer.Argument(help="The new command line (put -- before it when it "
                                        "starts with '-').")],
    target: Annotated[str, typer.Option("--target", help="Limit to check: osv (1023 bytes), "
                                        "bios (32255), firecracker (2047).")] = "osv",
    force: Annotated[bool, typer.Option("--force", help="Skip the target's limit (the BIOS "
                                        "area still applies).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Replace the command line in place; the rest of the area is zeroed."""
    _check_target(target)
    result = cmdline_io.set_cmdline(image, text, target=target, force=force)
    emit(result, json_output,
         lambda r: f"{r.path}: command line set ({len(r.new.encode())} bytes, "
                   f"{r.format}, target {r.target}{', forced' if r.forced else ''})")


def _human_fit(fit: model.CmdlineFit) -> str:
    lines = [f"{fit.size} bytes"]
    for name, limit in model.TARGETS.items():
        verdict = "does not fit" if name in fit.unfit else "fits"
        lines.append(f"  {name:<12} {limit:>6}  {verdict}")
    return "\n".join(lines)


@cmdline_app.command("check")
def check_cmd(
    text: Annotated[str, typer.Argument(help="A command line (put -- before it when it starts "
                                        "with '-').")],
    target: Annotated[str, typer.Option("--target", help="Fail (exit 65) unless the line fits "
                                        "this target: osv, bios or firecracker.")] = "",
    json_output: JsonOpt = False,
) -> None:
    """Measure a command line against OSv's, the BIOS area's and Firecracker's limits."""
    if target:
        _check_target(target)
    emit(model.fit_report(text, target or None), json_output, _human_fit)
