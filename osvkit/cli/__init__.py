"""The ``osvkit`` command line: a thin layer over the library API.

One module per command (group), loaded when the command is used (see
:data:`osvkit.cli._app.COMMANDS`); :data:`app` is the root click group.
"""

from __future__ import annotations

import sys

from .. import __version__


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        # the answer needs no command-line parser: skip importing one
        print(f"osvkit {__version__}")
        return 0
    from ._app import app

    return app.main(args=args, prog_name="osvkit", standalone_mode=False)


def __getattr__(name: str):
    if name == "app":
        from ._app import app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
