"""The root ``osvkit`` command, its error handling and output helpers.

The command line is a click group whose commands are loaded when they are used: the table
:data:`COMMANDS` names each command's module and one-line summary, so ``osvkit --version``,
``osvkit --help`` and ``osvkit cmdline get`` import only what they need (no LIEF, Keystone or
capstone, and none of the other commands' modules).  Each command module declares its
parameters with the shared options of :mod:`osvkit.cli.common`, calls one library function
and prints its result with :func:`emit`.

Errors never reach the user as tracebacks or as click's four-line usage message:
:func:`main` turns an :class:`~osvkit.errors.OsvkitError` into
``error: <file>: <what is wrong>, expected <what>`` and a usage mistake click finds (an
unknown option, a missing argument) into one ``error: ..., expected ...`` line, each with
its sysexits status.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Optional

import click

from .. import __version__
from .. import log as logs
from ..errors import EX_IOERR, EX_SOFTWARE, EX_USAGE, OsvkitError, UsageError

#: command name -> (module defining it, attribute, one-line summary for ``osvkit --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": ("osvkit.cli.build", "build",
              "Build a bootable image from a kernel ELF, or every image a build file declares."),
    "cmdline": ("osvkit.cli.cmdline", "cmdline_group",
                "Read or replace the command line stored in an OSv image."),
    "decode": ("osvkit.cli.decode", "decode_group",
               "Decode a boot structure from a file or a raw memory dump."),
    "diff": ("osvkit.cli.diff", "diff",
             "Say what differs between two images: boot path, cmdline, kernel, files."),
    "demo": ("osvkit.cli.demo", "demo",
             "Build the conformance kernel both ways and boot every path."),
    "firecracker-config": ("osvkit.cli.firecracker", "firecracker_config",
                           "Write a Firecracker --config-file document for an OSv kernel."),
    "inspect": ("osvkit.cli.inspect", "inspect",
                "Decode a disk image: boot sector, command line, partitions, payload, kernel."),
    "kernel": ("osvkit.cli.kernel", "kernel_group", "Kernel ELFs inside images."),
    "manifest": ("osvkit.cli.manifest", "manifest_group", "Write OSv manifests."),
    "mmio": ("osvkit.cli.mmio", "mmio_group",
             "Encode, decode and strip virtio_mmio.device= entries."),
    "patch": ("osvkit.cli.patch", "patch",
              "Replace the kernel, the command line or files of an existing image."),
    "probe": ("osvkit.cli.probe", "probe_command",
              "Write the conformance kernel: an OSv-contract ELF that reports its boot."),
    "rofs": ("osvkit.cli.rofs", "rofs_group", "Build (default), list or extract an OSv ROFS image."),
    "run": ("osvkit.cli.run", "run_command",
            "Boot an image in a VMM and report how the run ended."),
    "verify": ("osvkit.cli.verify", "verify",
               "Boot each image with the fitting backend and check its console."),
}


def fail(message: str, status: int) -> int:
    click.echo(f"error: {message}", err=True)
    return status


def setup_output(verbose: int = 0, quiet: bool = False) -> None:
    """Apply ``-v``/``-q`` (given before or after the command; a later flag only ever adds:
    ``-q`` anywhere wins, ``-v`` raises the level).  Logs and progress bars go to stderr."""
    from .. import progress

    current = logs.level()
    if quiet:
        logs.configure(logs.ERROR)
    elif verbose:
        level = (logs.INFO, logs.DEBUG)[min(verbose, 2) - 1]
        current = logs.WARNING if current is None else current
        if current < logs.ERROR:
            logs.configure(min(level, current))
    elif current is None:
        logs.configure(logs.WARNING)
    if quiet or (logs.level() or 0) >= logs.ERROR:
        progress.set_enabled(False)


def _verbose_cb(ctx, param, value):
    if value:
        setup_output(verbose=value)
    return value


def _quiet_cb(ctx, param, value):
    if value:
        setup_output(quiet=True)
    return value


def verbosity_options(f: Callable) -> Callable:
    """``-v/--verbose`` (repeatable) and ``-q/--quiet``: every command takes them."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet_cb,
                     help="Only errors on stderr; no progress bar.")(f)
    return click.option("-v", "--verbose", count=True, expose_value=False,
                        callback=_verbose_cb,
                        help="More log output on stderr (repeatable).")(f)


#: the type of every path-valued parameter: a :class:`pathlib.Path`, existence checked by the
#: library (which names the file in its one-line error)
PathType = click.Path(path_type=Path)


def manifest_options(f: Callable) -> Callable:
    """How a manifest's host paths are read (``build --manifest``, ``rofs build``):
    ``-D/--define``, ``--manifest-root`` and ``--follow-symlinks-anywhere``."""
    f = click.option("--follow-symlinks-anywhere", is_flag=True,
                     help="Follow host symlinks whose target lies outside the directories "
                          "the manifest (or --add) names.")(f)
    f = click.option("--manifest-root", type=PathType,
                     help="Resolve relative host paths here (default: the current directory).")(f)
    return click.option("-D", "--define", multiple=True, metavar="NAME=VALUE",
                        help="Manifest substitution NAME=VALUE for %(NAME)s in host paths "
                             "(repeatable).")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "json_output", is_flag=True,
                        help="Print only JSON on stdout.")(f)


def choice(*values: str) -> dict:
    """Keyword arguments for an option taking one of ``values``: a wrong value is the
    one-line usage error ``--opt 'x', expected one of a, b`` (exit 64)."""
    def check(ctx, param, value):
        if value is None or value in values:
            return value
        raise UsageError(f"{param.opts[0]} {value!r}", expected="one of " + ", ".join(values))
    return {"callback": check, "metavar": "|".join(values)}


def number(ctx, param, value):
    """Click callback: an integer option (decimal or 0x-hex, at least 0), bounded before it is
    converted (:func:`osvkit.units.parse_int`)."""
    from ..units import parse_int

    return None if value is None else parse_int(value, param.opts[0])


def examples(*lines: str) -> str:
    """An ``--help`` epilog listing example invocations (one per line)."""
    return "\b\nExamples:\n" + "\n".join(f"  $ {line}" for line in lines)


#: parameter names that name what a command writes (a file or a directory); every other
#: path-valued parameter, and the OSVKIT_CONFIG build file, is an input of the command
OUTPUT_PARAMS = ("output", "out", "out_dir", "directory", "plot", "disk_output")


def _param_label(p: click.Parameter) -> str:
    opts = [o for o in p.opts if o.startswith("-")]
    return max(opts, key=len) if opts else (p.name or "").upper()


def guard_outputs(cmd: click.Command) -> click.Command:
    """Make ``cmd`` refuse (usage error, 64) an output path that is one of its own inputs
    (the same file directly, through a symbolic link or a hard link: the one shared check,
    :func:`osvkit.fileio.check_not_input`).  Inputs the command finds while it runs (the
    host files of a manifest, a build file's kernels) are checked by the library too."""
    import functools
    import os

    callback = cmd.callback
    labels = {p.name: _param_label(p) for p in cmd.params}

    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        outputs = [v for n, v in kwargs.items() if n in OUTPUT_PARAMS and v is not None]
        if outputs:
            from ..fileio import check_not_input

            inputs = [("OSVKIT_CONFIG", os.environ.get("OSVKIT_CONFIG") or None)]
            for name, value in kwargs.items():
                values = value if isinstance(value, (list, tuple)) else [value]
                inputs += [(labels.get(name, name), v) for v in values
                           if name not in OUTPUT_PARAMS and isinstance(v, os.PathLike)]
            for out in outputs:
                check_not_input(out, inputs)
        return callback(*args, **kwargs)

    cmd.callback = guarded
    return cmd


def command(name: str, *, group: Optional[click.Group] = None, examples_: tuple = (),
            notes: str = "", **kw: Any) -> Callable:
    """Declare an osvkit command: a click command with ``-v``/``-q``, its ``--help``
    examples and notes as the epilog, the output-is-not-an-input check
    (:func:`guard_outputs`), registered on ``group`` when given."""
    def deco(f: Callable) -> click.Command:
        epilog = (examples(*examples_) if examples_ else "") + notes
        cmd = guard_outputs(click.command(
            name, epilog=epilog or None, context_settings={"help_option_names": ["-h", "--help"]},
            **kw)(verbosity_options(f)))
        if group is not None:
            group.add_command(cmd)
        return cmd
    return deco


def subgroup(name: str, help: str, cls: type = click.Group) -> click.Group:
    """A command group (``osvkit cmdline``, ``osvkit decode``, ...)."""
    return cls(name, help=help, no_args_is_help=True,
               context_settings={"help_option_names": ["-h", "--help"]})


class OsvkitGroup(click.Group):
    """The root group: commands come from :data:`COMMANDS`, imported on first use."""

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx, name: str) -> Optional[click.Command]:
        if name not in COMMANDS:
            return None
        module, attr, summary = COMMANDS[name]
        cmd = getattr(importlib.import_module(module), attr)
        cmd.short_help = cmd.short_help or summary
        return cmd

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        """Run the command line; every exit path has a sysexits status (returned, or with
        ``standalone_mode`` the process exits with it)."""
        status = self._run(args, prog_name, complete_var, **extra)
        if standalone_mode:
            raise SystemExit(status)
        return status

    def _run(self, args, prog_name, complete_var, **extra) -> int:
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except OsvkitError as exc:
            return fail(str(exc), exc.exit_status)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help(), err=True)
            return EX_USAGE
        except click.UsageError as exc:
            return fail(usage_line(exc), EX_USAGE)
        except click.ClickException as exc:
            return fail(exc.format_message(), exc.exit_code or 1)
        except click.Abort:
            click.echo("aborted", err=True)
            return 130
        except BrokenPipeError:
            return EX_IOERR
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            return 130
        except MemoryError:
            return fail("out of memory", EX_SOFTWARE)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return rv if isinstance(rv, int) else 0

    def format_commands(self, ctx, formatter) -> None:
        # the summaries come from the table: listing commands imports none of them
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version(ctx, param, value) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"osvkit {__version__}")
        ctx.exit(0)


@click.group("osvkit", cls=OsvkitGroup, no_args_is_help=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Print the version and exit.")
@verbosity_options
def app() -> None:
    """Build, patch, inspect and boot-verify OSv unikernel images."""
    if logs.level() is None:
        logs.configure(logs.WARNING)


def usage_line(exc: click.UsageError) -> str:
    """Click's usage message as ``<command>: <what>, expected <what>`` (one line)."""
    what = exc.format_message().strip().rstrip(".").replace("\n", " ")
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else "osvkit"
    if isinstance(exc, click.NoSuchOption) or "No such command" in what:
        expected = f"one listed by '{path} --help'"
    elif isinstance(exc, click.MissingParameter):
        expected = f"the arguments '{path} --help' shows"
    elif isinstance(exc, click.BadParameter):
        expected = f"a value as '{path} --help' describes"
    else:
        expected = f"the usage '{path} --help' shows"
    return f"{path}: {what}, expected {expected}"


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    return obj


def emit(result: Any, json_output: bool, human: Optional[Callable[[Any], str]] = None) -> None:
    """Print ``result``: JSON (only JSON) on stdout, or the ``human`` rendering -- by default
    the result's own ``describe()`` (formatting lives next to the data it formats)."""
    if human is None and not json_output and hasattr(result, "describe"):
        human = type(result).describe
    if json_output or human is None:
        import json     # only when printing JSON: it costs start-up time otherwise

        click.echo(json.dumps(to_jsonable(result), indent=2))
        return
    text = human(result)
    if text:
        click.echo(text.rstrip("\n"))
