"""Options shared by the commands, and the one place their precedence is applied.

A command declares a shared option with the decorator of the same name, so the same long
option means the same thing everywhere::

    @command("run")
    @memory_option
    @cpus_option
    def run(image, memory, cpus, ...):
        opts = resolve(memory=memory, cpus=cpus)
        ...

A shared option's value is ``None`` when the flag is not given; :func:`resolve` then applies
the one precedence rule (:func:`osvkit.config.resolve_options`): flag > ``OSVKIT_*``
environment variable > build file ``[options]`` (``-c`` or ``OSVKIT_CONFIG``) > built-in
default, naming the flag, variable or file line when a value is bad.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from ..config import OPTIONS, ResolvedOptions, find_build_file, load_build_file, resolve_options
from ._app import PathType


#: the shared options' flags, metavars and help (their defaults, parsers and OSVKIT_*
#: variables are :data:`osvkit.config.OPTIONS`)
_DECLS = {
    "memory": (("--memory", "-m"), "SIZE", "Guest memory, MiB or <n>K/M/G."),
    "cpus": (("--cpus",), "N", "Virtual CPUs."),
    "timeout": (("--timeout",), "SECONDS", "Seconds a boot may take."),
    "image-format": (("--image-format",), "raw|qcow2", "usr.img container format."),
    "accel": (("--accel",), "tcg|kvm", "QEMU accelerator."),
    "cmdline": (("--cmdline",), "TEXT", "Guest command line."),
}


def shared(name: str, *, default: str | None = "options", aliases: tuple = ()) -> Callable:
    """The decorator declaring shared option ``name``: given as text (``None`` when
    absent), parsed and checked by :func:`resolve`.  ``default`` is the default shown in
    ``--help``: ``"options"`` for :data:`~osvkit.config.OPTIONS`' own, or a command's text
    (its library function's default), or None.  ``aliases`` are further spellings."""
    decls, metavar, text = _DECLS[name]
    spec = OPTIONS[name]
    shown = spec.default if default == "options" else default
    help_text = f"{text} [env: {spec.env}]" + ("" if shown is None else f" [default: {shown}]")
    return click.option(*decls, *aliases, name.replace("-", "_"), metavar=metavar, default=None,
                        help=help_text)


memory_option = shared("memory")
cpus_option = shared("cpus")
timeout_option = shared("timeout")
image_format_option = shared("image-format")
accel_option = shared("accel")
cmdline_option = shared("cmdline")
config_option = click.option("-c", "--config", type=PathType, metavar="FILE",
                             default=None, help="Build file (osvkit.toml) [env: OSVKIT_CONFIG].")
out_dir_option = click.option("--out", "-o", "out", type=PathType,
                              metavar="DIR", default=None,
                              help="Output directory (default: the build file's).")


def flags(**values: Any) -> dict[str, Any]:
    """Command-line option values keyed by option name (``image_format`` -> ``image-format``),
    ``None`` meaning not given."""
    return {k.replace("_", "-"): v for k, v in values.items()}


def resolve(config: Path | None = None, **values: Any) -> ResolvedOptions:
    """Resolve the shared options a command takes: its flags (``None`` = not given) over
    ``OSVKIT_*`` over the build file's ``[options]`` (``config``, or ``OSVKIT_CONFIG``) over
    the defaults.  ``ResolvedOptions.given()`` leaves out the defaults, for commands whose
    library function has its own."""
    path = find_build_file(config)
    file_values, file_sources = ({}, {})
    if path is not None:
        file_values, file_sources = load_build_file(path).file_options(None)
    given = flags(**values)
    return resolve_options(given, file_values, names=list(given), file_sources=file_sources)


def given_on_command_line() -> set[str]:
    """Names of the current command's parameters the user typed (not defaults)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
