"""Numbers and sizes from user text, bounded before they are converted.

Every place that turns text a user wrote (an option, a build-file value, a command-line
entry) into an int goes through :func:`parse_int` or :func:`parse_size`.  They look at the
number of digits *before* converting, so a 5,000-digit number is a one-line
:class:`~osvkit.errors.UsageError` naming the limit, never Python's integer-string
``ValueError``; and they check the value against the caller's ``maximum``.

    >>> parse_size("64K")
    65536
    >>> parse_size("0x1000")
    4096
"""

from __future__ import annotations

import re

from .errors import UsageError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: binary unit suffixes, case-insensitive (``4k`` = ``4K`` = ``4KiB`` = ``4KB``)
UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}

U64_MAX = (1 << 64) - 1

#: longest digit string read (``2**64`` has 20 decimal digits, 16 hex, 22 octal)
MAX_DIGITS = 24

_SIZE_RE = re.compile(r"\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*([KMGTkmgt]?)(?:i?[bB])?\s*")
_INT_RE = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)\s*")


def format_size(n: int) -> str:
    """``2199023255552`` -> ``"2T"``; an exact multiple of the largest unit, else bytes."""
    for suffix in ("T", "G", "M", "K"):
        if n and n % UNITS[suffix] == 0:
            return f"{n // UNITS[suffix]}{suffix}"
    return str(n)


def _digits(text: str, what: str, expected: str) -> None:
    body = text.strip().lstrip("+-")
    if body[:2].lower() in ("0x", "0o", "0b"):
        body = body[2:]
    if len(body) > MAX_DIGITS:
        raise UsageError(f"{what}: a {len(body)}-digit number", expected=expected)


def _bounds(value: int, text: str, what: str, minimum: int | None, maximum: int | None,
            why: str | None, fmt=str) -> int:
    if minimum is not None and value < minimum:
        raise UsageError(f"{what} {text!r} is less than {fmt(minimum)}",
                         expected=f"at least {fmt(minimum)}")
    if maximum is not None and value > maximum:
        reason = f" ({why})" if why else ""
        raise UsageError(f"{what} {text!r} is more than {fmt(maximum)}",
                         expected=f"at most {fmt(maximum)}{reason}")
    return value


def parse_int(text: str | int, what: str, *, base: int = 0, minimum: int | None = 0,
              maximum: int | None = U64_MAX, why: str | None = None) -> int:
    """An integer (``base`` 0: decimal, ``0x`` hex, ``0o`` octal, ``0b`` binary), bounded.

    ``what`` names the value in the error (``--irq``, ``build file key``)."""
    if isinstance(text, bool):
        raise UsageError(f"{what} {text!r} is not a number", expected="an integer")
    if isinstance(text, int):
        return _bounds(text, str(text), what, minimum, maximum, why)
    expected = "an integer (decimal or 0x-hex)" if base == 0 else f"a base-{base} integer"
    _digits(str(text), what, f"{expected} of at most {MAX_DIGITS} digits")
    m = _INT_RE.fullmatch(str(text)) if base == 0 else None
    try:
        value = int(str(text).strip(), base) if m or base else None
    except ValueError:
        value = None
    if value is None:
        raise UsageError(f"{what} {text!r} is not a number", expected=expected)
    return _bounds(value, str(text), what, minimum, maximum, why)


def parse_size(text: str | int, what: str = "size", *, unit: int = 1, minimum: int | None = 0,
               maximum: int | None = U64_MAX, why: str | None = None,
               units: str = "KMGT") -> int:
    """A size in bytes: a count (decimal or ``0x`` hex) with an optional binary suffix
    (``K``/``M``/``G``/``T``, also ``KiB``/``KB``), bounded by ``minimum``..``maximum``.

    ``unit`` is what a bare number counts (1 byte; ``MiB`` for QEMU-style memory sizes);
    ``units`` limits the suffixes accepted."""
    expected = ("a byte count or a size like 64K, 6M, 1G" if unit == 1 else
                f"a number of {format_size(unit)} units or a size like 512M, 1G")
    if isinstance(text, bool):
        raise UsageError(f"{what} {text!r} is not a size", expected=expected)
    if isinstance(text, int):
        return _bounds(text * unit, str(text), what, minimum, maximum, why, format_size)
    _digits(str(text), what, f"{expected}, at most {MAX_DIGITS} digits")
    m = _SIZE_RE.fullmatch(str(text))
    if m is None or (m.group(2) and m.group(2).upper() not in units):
        raise UsageError(f"{what} {text!r}", expected=expected)
    suffix = m.group(2).upper()
    value = int(m.group(1), 0) * (UNITS[suffix] if suffix else unit)
    return _bounds(value, str(text), what, minimum, maximum, why, format_size)


_MEMORY_RE = re.compile(r"([1-9][0-9]{0,15})([KMG]?)")


def shown(value) -> str:
    """``repr(value)``, shortened when a hostile value is thousands of characters long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(str(value))} characters)"


def memory_mib(value: str | int) -> int:
    """Guest memory in MiB, as every VMM option and the build file take it: ``"256M"`` -> 256,
    ``"1G"`` -> 1024, ``"131072K"`` -> 128, and a bare number counts MiB as QEMU's ``-m`` does
    (``512`` and ``"512"`` -> 512); at most 16 digits, a whole number of MiB."""
    m = None if isinstance(value, bool) else _MEMORY_RE.fullmatch(str(value).strip()[:64])
    if not m:
        raise UsageError(f"bad memory size {shown(value)}",
                         expected="a number of MiB or <n>K/M/G (at most 16 digits)")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "K":
        if n % 1024:
            raise UsageError(f"memory size {value!r} is not a whole number of MiB",
                             expected="a multiple of 1024K")
        return n // 1024
    return n * (1024 if unit == "G" else 1)
