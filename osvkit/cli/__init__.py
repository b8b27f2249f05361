"""The ``osvkit`` command line: a thin layer over the library API.

One module per command (group); each registers on :data:`osvkit.cli._app.app`.
"""

from __future__ import annotations

from ._app import app  # noqa: F401

# Importing a command module registers its commands.
from . import decode as _decode  # noqa: F401,E402
# [bios] build (usr format) and inspect
from . import build as _build  # noqa: F401,E402
from . import inspect as _inspect  # noqa: F401,E402
# [/bios]
# --- probe helper: conformance kernel and guest runner ---
from . import probe as _probe  # noqa: F401,E402
from . import run as _run  # noqa: F401,E402
# --- end probe helper ---
# --- cmdline part ---
from . import mmio as _mmio  # noqa: F401,E402
from . import cmdline as _cmdline  # noqa: F401,E402
# --- end cmdline part ---
# --- rofs part ---
from . import rofs as _rofs  # noqa: F401,E402
from . import manifest as _manifest  # noqa: F401,E402
# [fcpath] firecracker-config
from . import firecracker as _firecracker  # noqa: F401,E402
# [/fcpath]
# -- cli part: verify and demo commands --
from . import verify as _verify  # noqa: F401,E402
from . import demo as _demo  # noqa: F401,E402
# -- end cli part --


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    try:
        app(args=argv, prog_name="osvkit")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
