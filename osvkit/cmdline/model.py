"""OSv's kernel command line: loader options, the application command, and its limits.

OSv splits its command line in ``loader_parse_cmdline`` (``core/commands.cc``)
after the virtio-mmio pass (:mod:`osvkit.cmdline.mmio`) has removed the device entries:

* whitespace is ``" \\t\\n"``;
* while the next non-whitespace character is ``-``, the next token is a *loader option*;
  tokens are cut with NetBSD ``stresep``: a backslash makes the next character literal (the
  backslash is removed), so ``--env=A=b\\ c`` is the one option ``--env=A=b c``;
* from the first token that does not start with ``-`` the rest of the line, untouched, is the
  *application command* (OSv parses it later with its own rules for ``;``, ``&`` and quotes);
* options use the ``--key=value`` or ``--flag`` form (a value in the next token is not
  supported by OSv's option parser).

A line that ends in a lone backslash inside the options makes ``stresep`` read past the
NUL (undefined behaviour in OSv), so :func:`split_cmdline` refuses it.

Limits (:data:`TARGETS`, from :mod:`osvkit.layout`), counted in UTF-8 bytes without the NUL
-- OSv's ``setargs`` and ``save_cmdline`` write UTF-8 and compare ``std::string::size()``,
which counts bytes:

* ``osv``: 1023 -- OSv's runtime ``save_cmdline`` refuses ``size() >= max_cmdline``
  (``layout.OSV_CMDLINE_MAX``, 1024);
* ``bios``: 32,255 -- boot16 reads the 63-sector area from LBA 1
  (``layout.CMDLINE_AREA_SIZE``, 32,256 bytes), NUL included;
* ``firecracker``: 2047 -- ``CMDLINE_MAX_SIZE`` (``layout.FC_CMDLINE_MAX_SIZE``, 2048)
  includes the NUL.

Character set: a NUL is refused everywhere (it would end the C string).  Firecracker passes the
user's ``boot_args`` through linux-loader's ``Cmdline::try_from``, which checks only the
length, so the ``firecracker`` target does **not** require printable ASCII; only linux-loader's ``insert*`` methods would, and Firecracker uses those only for what
it appends itself (``virtio_mmio.device=...``, ``pci=off``, ``root=...``).
"""

from __future__ import annotations

from typing import NamedTuple

import re

from .. import layout
from ..errors import CmdlineError

DELIMITERS = " \t\n"
"""OSv's ``loader_parse_cmdline`` delimiters."""
ESCAPE = "\\"
_MMIO_PREFIX = "virtio_mmio.device="
""":data:`osvkit.cmdline.mmio.PREFIX`: :mod:`~osvkit.cmdline.mmio` is loaded only for a line
that holds one."""

TARGETS = {
    "osv": layout.OSV_CMDLINE_MAX - 1,
    "bios": layout.CMDLINE_AREA_SIZE - 1,
    "firecracker": layout.FC_CMDLINE_MAX_SIZE - 1,
}
"""Longest command line, in bytes without the terminating NUL, per target."""

TARGET_LIMITS = {
    "osv": f"OSv's max_cmdline {layout.OSV_CMDLINE_MAX} including the NUL",
    "bios": f"boot16's {layout.CMDLINE_AREA_SECTORS}-sector area, "
            f"{layout.CMDLINE_AREA_SIZE:,} bytes including the NUL",
    "firecracker": f"Firecracker's CMDLINE_MAX_SIZE {layout.FC_CMDLINE_MAX_SIZE} including "
                   "the NUL",
}


# ------------------------------------------------------------------------------------
# encoding and limits
# ------------------------------------------------------------------------------------
def encode_cmdline(line: str) -> bytes:
    """The bytes written to disk or guest memory (UTF-8, without the NUL)."""
    if not isinstance(line, str):
        raise CmdlineError(f"command line of type {type(line).__name__}", expected="a str")
    if "\0" in line:
        raise CmdlineError(f"NUL at index {line.index(chr(0))}", reason=CmdlineError.NUL,
                           expected="a command line without NUL characters")
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CmdlineError(f"character {line[exc.start]!r} at index {exc.start} has no UTF-8 "
                           "encoding", reason=CmdlineError.INVALID_CHAR,
                           expected="valid Unicode text") from None


def _check_target(target: str) -> int:
    if target not in TARGETS:
        raise CmdlineError(f"unknown target {target!r}", reason=CmdlineError.SYNTAX,
                           expected="one of " + ", ".join(TARGETS))
    return TARGETS[target]


def _check_mmio(line: str) -> None:
    if _MMIO_PREFIX in line:
        from . import mmio

        mmio.decode_all(line, "osv")


def check_cmdline(line: str, target: str = "osv") -> bytes:
    """Check that ``line`` can be encoded and fits ``target``; return its bytes (no NUL).

    >>> check_cmdline("--rootfs=rofs /hello", "osv")
    b'--rootfs=rofs /hello'
    """
    limit = _check_target(target)
    data = encode_cmdline(line)
    _check_mmio(line)                     # one grammar: what `mmio decode` refuses is refused
    if len(data) > limit:
        raise CmdlineError(f"command line is {len(data)} bytes, too long for {target}",
                           reason=CmdlineError.TOO_LARGE,
                           expected=f"at most {limit} bytes ({TARGET_LIMITS[target]})")
    return data


def unfit_targets(line: str) -> list[str]:
    """The targets ``line`` does not fit, in :data:`TARGETS` order (empty when it fits all)."""
    size = len(encode_cmdline(line))
    return [name for name, limit in TARGETS.items() if size > limit]


class CmdlineFit(NamedTuple):
    """How a line measures up against every target (see :func:`fit_report`)."""

    line: str
    size: int                       # UTF-8 bytes without the NUL
    unfit: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"cmdline": self.line, "bytes": self.size,
                "targets": {t: {"limit": TARGETS[t], "fits": t not in self.unfit}
                            for t in TARGETS},
                "unfit": list(self.unfit)}

    def describe(self) -> str:
        """The size and, per target, whether the line fits (``osvkit cmdline check``)."""
        lines = [f"{self.size} bytes"]
        for name, limit in TARGETS.items():
            verdict = "does not fit" if name in self.unfit else "fits"
            lines.append(f"  {name:<12} {limit:>6}  {verdict}")
        return "\n".join(lines)


def fit_report(line: str, target: str | None = None) -> CmdlineFit:
    """Measure ``line`` against all targets; with ``target``, raise like
    :func:`check_cmdline` when it does not fit that one."""
    if target is not None:
        check_cmdline(line, target)
    else:
        _check_mmio(line)
    return CmdlineFit(line, len(encode_cmdline(line)), tuple(unfit_targets(line)))


# ------------------------------------------------------------------------------------
# split / render
# ------------------------------------------------------------------------------------
class SplitCmdline(NamedTuple):
    """A command line as OSv reads it: loader option tokens (escapes removed) and the
    application command (raw, leading whitespace dropped)."""

    options: tuple[str, ...]
    command: str
    mmio: tuple[MmioEntry, ...] = ()

    def option_items(self) -> list[tuple[str, str | None]]:
        return [parse_option(o) for o in self.options]

    def to_dict(self) -> dict:
        return {"options": list(self.options), "command": self.command,
                "mmio": [e.to_dict() for e in self.mmio]}


def _stresep(s: str, i: int) -> tuple[str, int | None]:
    """One NetBSD ``stresep`` token from ``s[i:]``: (token, index after its delimiter or None
    at the end)."""
    out = []
    n = len(s)
    while i < n:
        c = s[i]
        if c == ESCAPE:
            if i + 1 == n:
                raise CmdlineError("lone backslash at the end of the loader options",
                                   reason=CmdlineError.SYNTAX,
                                   expected="a backslash followed by the character it escapes")
            out.append(s[i + 1])
            i += 2
        elif c in DELIMITERS:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return "".join(out), None


def split_cmdline(line: str, *, strip_mmio: bool = False) -> SplitCmdline:
    """Split ``line`` as OSv's ``loader_parse_cmdline`` does.

    With ``strip_mmio`` the virtio-mmio entries are first removed exactly as OSv does before
    it splits (they are reported in ``mmio``).

    >>> split_cmdline(r"--env=A=b\\ c --nopci /hello  world")
    SplitCmdline(options=('--env=A=b c', '--nopci'), command='/hello  world', mmio=())
    """
    encode_cmdline(line)
    entries: tuple = ()
    if strip_mmio and _MMIO_PREFIX in line:
        from . import mmio

        found, line = mmio._osv_scan(line)
        entries = tuple(found)
    options = []
    i: int | None = 0
    n = len(line)
    while i is not None:
        j = i
        while j < n and line[j] in DELIMITERS:
            j += 1
        if j == n:
            return SplitCmdline(tuple(options), "", entries)
        if line[j] != "-":
            return SplitCmdline(tuple(options), line[j:], entries)
        token, i = _stresep(line, j)
        options.append(token)
    return SplitCmdline(tuple(options), "", entries)


def escape_option(token: str) -> str:
    """Backslash-escape OSv's delimiters and the backslash itself."""
    return "".join(ESCAPE + c if c in DELIMITERS or c == ESCAPE else c for c in token)


def _check_option(token: str) -> None:
    encode_cmdline(token)
    if not token.startswith("-"):
        raise CmdlineError(f"loader option {token!r} does not start with '-'",
                           reason=CmdlineError.SYNTAX, expected="'--key=value' or '--flag'")


def _check_command(command: str) -> None:
    encode_cmdline(command)
    if command and (command[0] in DELIMITERS or command[0] == "-"):
        raise CmdlineError(f"application command {command[:20]!r} starts with "
                           f"{command[0]!r}", reason=CmdlineError.SYNTAX,
                           expected="a command that does not start with whitespace or '-'")


def render_cmdline(options=(), command: str = "") -> str:
    """Join escaped ``options`` and ``command`` with single spaces;
    ``split_cmdline(render_cmdline(o, c)) == SplitCmdline(tuple(o), c)``."""
    for token in options:
        _check_option(token)
    _check_command(command)
    parts = [escape_option(t) for t in options]
    if command:
        parts.append(command)
    return " ".join(parts)


_NEEDS_QUOTES = re.compile(r"[\s\"';&!]")


def quote_arg(arg: str) -> str:
    """Quote one application argument for OSv's command parser (double quotes, with ``\\"``
    and ``\\\\`` escaped) when it holds whitespace, a quote or a command separator."""
    if arg and not _NEEDS_QUOTES.search(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_option(token: str) -> tuple[str, str | None]:
    """``"--env=A=b"`` -> ``("env", "A=b")``; ``"--nopci"`` -> ``("nopci", None)``."""
    name, eq, value = token.lstrip("-").partition("=")
    return name, (value if eq else None)


# ------------------------------------------------------------------------------------
# builder
# ------------------------------------------------------------------------------------
class Cmdline:
    """Build an OSv command line within ``capacity`` bytes (the NUL included), in the
    spirit of linux-loader's ``Cmdline``: every method validates the new line and checks the
    capacity **before** changing anything, so a rejected call leaves the line as it was.

    The line is rendered as ``<options> <command> <virtio-mmio entries>``: options
    escaped, the command raw, then the mmio entries (OSv removes those before it splits,
    wherever they are; Firecracker also appends them at the end).

    >>> c = Cmdline(1024)
    >>> c.insert("rootfs", "rofs"); c.insert("nopci"); c.set_command("/hello")
    >>> c.add_virtio_mmio_device(0x1000, 0xc0001000, 5)
    >>> str(c)
    '--rootfs=rofs --nopci /hello virtio_mmio.device=4K@0xc0001000:5'
    """

    def __init__(self, capacity: int = TARGETS["osv"] + 1):
        if not isinstance(capacity, int) or capacity < 1:
            raise CmdlineError(f"capacity {capacity!r} cannot hold the NUL",
                               reason=CmdlineError.TOO_LARGE, expected="a capacity of at least 1")
        self.capacity = capacity
        self._options: list[str] = []
        self._command = ""
        self._mmio: list[str] = []
        self._text: str | None = None     # the line as parsed, until a method changes it

    @staticmethod
    def _render(options, command, entries) -> str:
        head = render_cmdline(options, command)
        return " ".join(p for p in (head, *entries) if p)

    def _commit(self, options, command, entries) -> None:
        text = self._render(options, command, entries)
        size = len(encode_cmdline(text)) + 1
        if size > self.capacity:
            raise CmdlineError(f"command line would need {size} bytes with its NUL",
                               reason=CmdlineError.TOO_LARGE,
                               expected=f"at most the capacity, {self.capacity} bytes")
        self._options, self._command, self._mmio = list(options), command, list(entries)
        self._text = None

    def insert(self, key: str, value: str | None = None) -> None:
        """Add the loader option ``--key=value`` (or ``--key`` when ``value`` is None)."""
        encode_cmdline(key)
        if not key or key.startswith("-") or "=" in key or ESCAPE in key or \
                any(c in DELIMITERS for c in key):
            raise CmdlineError(f"option name {key!r} is empty or has '-' first, '=', '\\' or "
                               "whitespace", reason=CmdlineError.SYNTAX,
                               expected="a name like 'env' or 'rootfs'")
        token = f"--{key}" if value is None else f"--{key}={value}"
        self._commit(self._options + [token], self._command, self._mmio)

    def insert_option(self, token: str) -> None:
        """Add one loader option token as it should reach OSv (escaped when rendered)."""
        _check_option(token)
        self._commit(self._options + [token], self._command, self._mmio)

    def set_command(self, command: str) -> None:
        """Set (replace) the application command."""
        self._commit(self._options, command, self._mmio)

    def add_virtio_mmio_device(self, size: int, base: int, irq: int,
                               id: int | None = None) -> None:  # noqa: A002
        """Append ``virtio_mmio.device=...`` written so that OSv can read it (no ``G``)."""
        from . import mmio

        entry = mmio.encode(mmio.MmioDevice(size, base, irq, id), osv_safe=True)
        self._commit(self._options, self._command, self._mmio + [entry])

    @classmethod
    def for_target(cls, target: str) -> "Cmdline":
        """An empty line with the capacity of ``target`` (its limit plus the NUL)."""
        return cls(_check_target(target) + 1)

    @classmethod
    def from_str(cls, line: str, capacity: int = TARGETS["osv"] + 1, *,
                 as_written: bool = False) -> "Cmdline":
        """Parse ``line`` (like linux-loader's ``try_from``): the mmio entries OSv would take
        are moved to the end, the rest is split into options and command.  With
        ``as_written`` the line is checked and split the same way but ``str()`` gives it
        back exactly as written until a method changes it (what a user typed is what the
        image gets)."""
        c = cls(capacity)
        size = len(encode_cmdline(line)) + 1
        if size > capacity:
            raise CmdlineError(f"command line is {size - 1} bytes",
                               reason=CmdlineError.TOO_LARGE,
                               expected=f"at most {capacity - 1} bytes")
        parts = split_cmdline(line, strip_mmio=True)
        c._options, c._command = list(parts.options), parts.command
        c._mmio = [e.text for e in parts.mmio]
        if as_written:
            c._text = line      # str() gives the line back exactly as written
        else:
            c._commit(c._options, c._command, c._mmio)
        return c

    @classmethod
    def from_parts(cls, options=(), app=(), capacity: int = TARGETS["bios"] + 1) -> "Cmdline":
        """Loader option tokens and the application's arguments (each quoted for OSv's
        command parser when needed): the build file's ``cmdline.options``/``cmdline.app``."""
        c = cls(capacity)
        command = " ".join(quote_arg(a) for a in app)
        c._commit(list(options), command, [])
        return c

    @classmethod
    def from_value(cls, value, capacity: int = TARGETS["bios"] + 1) -> "Cmdline":
        """A :class:`Cmdline` from what a user wrote: a string (kept as written), a table
        ``{"options": [...], "app": [...]}``, or a :class:`Cmdline` (returned as is)."""
        if isinstance(value, Cmdline):
            return value
        if value is None:
            return cls(capacity)
        if isinstance(value, str):
            return cls.from_str(value, capacity, as_written=True)
        return cls.from_parts(value.get("options", ()), value.get("app", ()), capacity)

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self._options)

    @property
    def command(self) -> str:
        return self._command

    @property
    def mmio_entries(self) -> tuple[str, ...]:
        return tuple(self._mmio)

    def as_str(self) -> str:
        if self._text is not None:
            return self._text
        return self._render(self._options, self._command, self._mmio)

    def __eq__(self, other) -> bool:
        if isinstance(other, (Cmdline, str)):
            return self.as_str() == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.as_str())

    __str__ = as_str

    def render(self) -> str:
        """The line (as :meth:`as_str`); the name a build file's command line had before it
        was a :class:`Cmdline`."""
        return self.as_str()

    def as_bytes_with_nul(self) -> bytes:
        return encode_cmdline(self.as_str()) + b"\0"

    def __len__(self) -> int:
        """Bytes without the NUL."""
        return len(encode_cmdline(self.as_str()))

    def __repr__(self) -> str:
        return f"Cmdline({self.as_str()!r}, capacity={self.capacity})"
