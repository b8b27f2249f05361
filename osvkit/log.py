"""osvkit's logger, the ``logging`` logger named ``osvkit``, imported when it is first used.

Library modules log through :data:`log` (``log.info(...)``, ``log.warning(...)``: the
``logging.Logger`` methods).  The command line decides where messages go with
:func:`configure`: to stderr, as ``osvkit: <message>``, from a level on.  The ``logging``
package (a few milliseconds of start-up) is imported on the first message, or by
:func:`configure` when something else has imported it already: a command that logs nothing
(``osvkit cmdline get``) never loads it.  Without :func:`configure` (osvkit used as a library)
the logger is left as ``logging`` makes it, for the application to configure.
"""

from __future__ import annotations

import sys

NAME = "osvkit"
#: ``logging``'s levels (the same numbers), usable without importing it
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
FORMAT = "osvkit: %(message)s"

_level: int | None = None        # what configure() asked for; None: not configured
_applied = False                 # whether the logger has been set up for _level


def configure(level: int) -> None:
    """Send osvkit's messages at ``level`` and above to stderr as ``osvkit: <message>``
    (replacing an earlier :func:`configure`); applied now if ``logging`` is loaded, else on
    the first message."""
    global _level, _applied
    _level, _applied = level, False
    if "logging" in sys.modules:
        _apply()


def level() -> int | None:
    """The level :func:`configure` set, or None when it was not called."""
    return _level


def _apply() -> None:
    global _applied
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger(NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(_level)
    logger.propagate = False
    _applied = True


def logger():
    """The ``logging.Logger`` named ``osvkit``, set up as :func:`configure` asked."""
    import logging

    if _level is not None and not _applied:
        _apply()
    return logging.getLogger(NAME)


class _Log:
    """:data:`log`: the osvkit logger's methods, loading ``logging`` on first use."""

    __slots__ = ()

    def __getattr__(self, name: str):
        return getattr(logger(), name)


log = _Log()
