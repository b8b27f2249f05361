"""``osvkit cmdline``: read or replace the command line inside a raw or qcow2 OSv image."""

from __future__ import annotations

import click

from ..cmdline import model
from ..log import log
from ._app import choice, command, emit, json_option, subgroup

cmdline_group = subgroup("cmdline", "Read or replace the command line stored in an OSv image "
                                    "(raw or qcow2; no qemu-nbd, root or KVM).")



def _human_get(info) -> str:
    if info.stale_bytes:
        log.warning("%s: %d stale non-zero bytes after the NUL (an old, longer line); "
                    "'osvkit cmdline set' clears them", info.path, info.stale_bytes)
    if info.unfit_targets:
        log.warning("%s: the line does not fit %s", info.path, ", ".join(info.unfit_targets))
    return info.cmdline if info.cmdline else ""


@command("get", group=cmdline_group,
         examples_=("osvkit cmdline get usr.img", "osvkit cmdline get usr.qcow2 --json"))
@click.argument("image")
@json_option
def get_cmd(image: str, json_output: bool) -> None:
    """Print the NUL-terminated command line at byte 512 of IMAGE (usr.img or loader.img,
    raw or qcow2)."""
    from ..image import cmdline_io

    emit(cmdline_io.read_cmdline(image), json_output, _human_get)


@command("set", group=cmdline_group,
         examples_=("osvkit cmdline set usr.img -- '--rootfs=rofs --verbose /hello'",))
@click.argument("image")
@click.argument("text")
@click.option("--target", **choice(*model.TARGETS), default="osv", show_default=True,
              help="Limit to check: osv (1023 bytes), bios (32255), firecracker (2047).")
@click.option("--force", is_flag=True,
              help="Skip the target's limit (the BIOS area still applies).")
@json_option
def set_cmd(image: str, text: str, target: str, force: bool, json_output: bool) -> None:
    """Replace the command line of IMAGE with TEXT, in place; the rest of the area is zeroed.

    Put -- before TEXT when it starts with '-'."""
    from ..image import cmdline_io

    emit(cmdline_io.set_cmdline(image, text, target=target, force=force), json_output,
         lambda r: f"{r.path}: command line set ({len(r.new.encode())} bytes, "
                   f"{r.format}, target {r.target}{', forced' if r.forced else ''})")


@command("check", group=cmdline_group,
         examples_=("osvkit cmdline check --target firecracker -- '--nopci /hello'",))
@click.argument("text")
@click.option("--target", **choice(*model.TARGETS), default=None,
              help="Fail (exit 65) unless the line fits this target: osv, bios or firecracker.")
@json_option
def check_cmd(text: str, target: str | None, json_output: bool) -> None:
    """Measure a command line against OSv's, the BIOS area's and Firecracker's limits.

    Put -- before TEXT when it starts with '-'."""
    emit(model.fit_report(text, target), json_output)
