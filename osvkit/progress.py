"""A tiny progress bar on stderr for work that takes longer than about half a second.

Builders call it without knowing whether anyone watches::

    from osvkit.progress import progress

    with progress(len(data), "compressing kernel") as bar:
        for chunk in chunks:
            ...
            bar.update(len(chunk))          # add n units of work done

The bar is drawn only when stderr is a terminal, progress is enabled (the CLI disables it for
``--quiet``; ``OSVKIT_NO_PROGRESS=1`` disables it too) and the work has run for at least :data:`DELAY` seconds, so fast
work and CI logs never see it.  Otherwise every call is a cheap no-op.  Nothing is ever
written to stdout.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

#: seconds of work before the bar first appears
DELAY = 0.5
#: seconds between redraws
INTERVAL = 0.1
WIDTH = 30

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn every progress bar on or off (the CLI turns them off for ``--quiet``)."""
    global _enabled
    _enabled = bool(enabled)


def enabled(stream: TextIO | None = None) -> bool:
    """True when a bar would be drawn on ``stream`` (default stderr)."""
    stream = sys.stderr if stream is None else stream
    if not _enabled or os.environ.get("OSVKIT_NO_PROGRESS"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _human(n: int, unit: str) -> str:
    if unit == "B":
        for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if n >= scale:
                return f"{n / scale:.1f} {name}"
        return f"{n} B"
    return f"{n}"


class Progress:
    """One bar.  ``update(n)`` adds ``n`` units done; ``close()`` finishes the line."""

    def __init__(self, total: int | None, label: str, *, unit: str = "B",
                 stream: TextIO | None = None, force: bool | None = None):
        self.total = total if total and total > 0 else None
        self.label = label
        self.unit = unit
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.active = enabled(self.stream) if force is None else force
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.active:
            return
        now = time.monotonic()
        if now - self._start < DELAY or now - self._last < INTERVAL:
            return
        self._last = now
        self._draw()

    def render(self) -> str:
        """The bar's text (without the leading carriage return)."""
        if self.total:
            frac = min(self.done / self.total, 1.0)
            fill = int(frac * WIDTH)
            return (f"{self.label} [{'#' * fill}{'.' * (WIDTH - fill)}] {frac * 100:3.0f}% "
                    f"{_human(self.done, self.unit)}/{_human(self.total, self.unit)}")
        return f"{self.label} {_human(self.done, self.unit)}"

    def _draw(self) -> None:
        self.stream.write("\r" + self.render() + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.active and self._drawn:
            if self.total:
                self.done = max(self.done, self.total)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        self.active = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None, label: str, *, unit: str = "B", stream: TextIO | None = None,
             force: bool | None = None) -> Progress:
    """A context manager for ``total`` units of work called ``label``.

    ``unit="B"`` shows sizes in KiB/MiB; any other unit shows plain counts.  ``force`` draws
    (True) or hides (False) the bar regardless of the terminal test (for tests).
    """
    return Progress(total, label, unit=unit, stream=stream, force=force)
