"""Typed errors for osvkit.

Every error osvkit raises for bad input, a missing file or an output that cannot be
written is an :class:`OsvkitError`.  Its ``str()`` is the one line the CLI prints::

    <file>: <what is wrong>, expected <what>

and its ``exit_status`` is the sysexits(3) code the CLI exits with.  construct's own
exceptions are translated in exactly one place, :func:`osvkit.structs.base.parse`.
"""

from __future__ import annotations

import os

# sysexits(3)
EX_OK = 0
EX_FAIL = 1  # the command ran, but what it checked failed (a boot did not pass)
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74


class OsvkitError(Exception):
    """Base class. ``what`` says what is wrong; ``path`` names the file; ``expected``
    says what was expected instead."""

    exit_status = EX_DATAERR

    def __init__(self, what: str, *, path: str | os.PathLike | None = None,
                 expected: str | None = None):
        self.what = what
        self.path = os.fspath(path) if path is not None else None
        self.expected = expected
        super().__init__(self.line())

    def line(self) -> str:
        text = self.what
        if self.expected:
            text += f", expected {self.expected}"
        if self.path:
            text = f"{self.path}: {text}"
        # one line, whatever the parts contained
        return " ".join(text.split("\n"))

    def with_path(self, path) -> "OsvkitError":
        """Return the same error naming ``path`` (when it named no file yet)."""
        if self.path is None:
            self.path = os.fspath(path)
            self.args = (self.line(),)
        return self


class UsageError(OsvkitError):
    """The call itself is wrong: options that contradict each other, a bad value."""
    exit_status = EX_USAGE


class FormatError(OsvkitError):
    """Input data is malformed: truncated, foreign, bad magic or checksum."""
    exit_status = EX_DATAERR


class KernelError(FormatError):
    """A kernel ELF does not keep OSv's boot contract."""


class LayoutError(FormatError):
    """Something does not fit where it must go (addresses, sizes, partitions)."""


class CmdlineError(FormatError):
    """A command line that cannot be encoded or does not fit its target.

    ``reason`` is one of the string constants below."""

    TOO_LARGE = "too-large"
    INVALID_CHAR = "invalid-char"
    NUL = "nul"
    MMIO = "mmio"
    SYNTAX = "syntax"

    def __init__(self, what: str, *, reason: str = SYNTAX, **kw):
        self.reason = reason
        super().__init__(what, **kw)


class ManifestError(FormatError):
    """A manifest line that cannot be used (syntax, escaping its root, missing host file)."""

    def __init__(self, what: str, *, line: int | None = None, **kw):
        self.lineno = line
        if line is not None and kw.get("path") is not None:
            kw["path"] = f"{os.fspath(kw['path'])}:{line}"
        super().__init__(what, **kw)


class MissingInputError(OsvkitError):
    """An input file does not exist or cannot be opened."""
    exit_status = EX_NOINPUT


class OutputError(OsvkitError):
    """An output file cannot be created."""
    exit_status = EX_CANTCREAT


class OsvkitIOError(OsvkitError):
    """Reading or writing failed part-way."""
    exit_status = EX_IOERR


class ToolError(OsvkitError):
    """An external tool (QEMU, qemu-img, firecracker) is missing or failed."""
    exit_status = EX_SOFTWARE


class ManifestInputError(ManifestError):
    """A host file a manifest line names is missing or cannot be read (exit 66)."""
    exit_status = EX_NOINPUT
