"""The typer application, its error handling and output helpers.

Command modules register on :data:`app`; each command parses options, calls one library
function and renders its result with :func:`emit`.  Library errors never reach the user as
tracebacks: :class:`OsvkitGroup` turns an :class:`~osvkit.errors.OsvkitError` into
``error: <file>: <what is wrong>, expected <what>`` on stderr and its sysexits status.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any, Callable, Optional

import typer

try:  # typer >= 0.24 vendors click as typer._click
    from typer._click import echo
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import echo
    from click import exceptions as click_exc
from typer.core import TyperGroup

from .. import __version__
from ..errors import EX_IOERR, EX_SOFTWARE, EX_USAGE, OsvkitError

log = logging.getLogger("osvkit")


def fail(message: str, status: int) -> None:
    echo(f"error: {message}", err=True)
    raise SystemExit(status)


class OsvkitGroup(TyperGroup):
    """Runs click in non-standalone mode so that every exit path has a sysexits status."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from .common import ensure_common_options  # cli part: -v/-q on every command
        ensure_common_options(self)
        try:
            from .common import file_default_map  # cli part: OSVKIT_CONFIG [options]
            self.context_settings["default_map"] = file_default_map(self, args=args)
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except OsvkitError as exc:
            fail(str(exc), exc.exit_status)
        except click_exc.NoArgsIsHelpError as exc:
            exc.show()
            raise SystemExit(EX_USAGE)
        except click_exc.UsageError as exc:
            exc.show()
            raise SystemExit(EX_USAGE)
        except click_exc.ClickException as exc:
            exc.show()
            raise SystemExit(exc.exit_code or 1)
        except typer.Abort:
            echo("aborted", err=True)
            raise SystemExit(130)
        except BrokenPipeError:
            raise SystemExit(EX_IOERR)
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            raise SystemExit(130)
        except MemoryError:
            fail("out of memory", EX_SOFTWARE)
        except typer.Exit as exc:
            rv = exc.exit_code
        if not standalone_mode:
            return rv
        raise SystemExit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=OsvkitGroup,
    name="osvkit",
    help="Build, patch, inspect and boot-verify OSv unikernel images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        echo(f"osvkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True,
                                         help="More log output on stderr (repeatable).")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
) -> None:
    """Build, patch, inspect and boot-verify OSv unikernel images."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    setup_logging(level)
    from .. import progress as _progress  # cli part: -q hides progress bars
    _progress.set_enabled(not quiet)


def setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("osvkit: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


# Shared option types ------------------------------------------------------------------
JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]


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
    """Print ``result``: JSON (only JSON) on stdout, or the ``human`` rendering."""
    if json_output:
        echo(json.dumps(to_jsonable(result), indent=2))
    elif human is not None:
        text = human(result)
        if text:
            echo(text.rstrip("\n"))
    else:
        echo(json.dumps(to_jsonable(result), indent=2))
