"""``virtio_mmio.device=`` command-line entries: encode, decode, find and strip.

A VMM without PCI tells the guest where its virtio-mmio transports are by adding one entry
per device to the kernel command line::

    virtio_mmio.device=<size>@<base>:<irq>[:<id>]

Two parsers read these entries and they do not agree, so every reader here takes a
``grammar``:

``"osv"`` -- OSv's ``drivers/virtio-mmio.cc`` (x86 only), in this order:

* the prefix is found with ``strstr`` *anywhere* in the line (no word boundary:
  ``--x=virtio_mmio.device=...`` matches);
* ``<size>`` is read with ``sscanf("%ld")``: leading C whitespace skipped, optional sign,
  decimal digits only;
* the first ``@`` after the size is found with ``strstr`` (it may lie further on);
  the character *immediately before* that ``@`` picks the multiplier: ``k``/``K`` (x1024) or
  ``m``/``M`` (x1 MiB).  There is no ``G``: ``1G@...`` is a 1-byte device;
* ``sscanf(at, "@%lli:%u")`` reads the base (``0x`` hex, leading-``0`` octal, decimal) and the
  irq (decimal, stored in 32 bits);
* everything from the ``@`` up to the next whitespace or NUL is part of the entry; what follows
  the irq there (``:<id>`` or anything else) is ignored;
* the entry -- prefix up to, not including, that whitespace -- is removed by copying the tail
  down; the separating whitespace stays;
* this repeats from the start of the line until no prefix is left **or one fails to parse**;
  a failing entry and every entry after it stay in the line and reach OSv's option parser.

  OSv's ``sscanf`` is musl's (OSv's Makefile builds ``musl/src/stdio/vfscanf.c``): numeric
  conversions skip C whitespace, an overflowing number becomes ``2**64 - 1``, a ``-`` negates
  modulo ``2**64`` and ``%u`` keeps the low 32 bits.  :func:`find_devices` and
  :func:`strip_devices` model that too, to match what OSv does with odd input;
  :func:`decode` is strict and rejects signs, overflow, a zero size and whitespace inside the
  entry, naming the problem.

``"linux"`` -- Linux's ``vm_cmdline_set`` (``drivers/virtio/virtio_mmio.c``): the entry is one
whitespace-separated kernel parameter; ``<size>`` is ``memparse`` (``simple_strtoull`` base 0,
then an optional ``K``/``M``/``G``/``T``/``P``/``E`` suffix, either case); then
``@%lli:%u[:%d]`` with nothing after; irq 0 is refused (recent kernels).  Parameters after a
bare ``--`` go to init and are not parsed.  Quoted parameters are not modelled.

:func:`encode` writes entries the way Firecracker's linux-loader does
(``virtio_mmio.device=4K@0xc0001000:5``), except that by default it
never writes ``G`` because OSv cannot read it (1 GiB is written ``1024M``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..errors import CmdlineError
from ..units import MAX_DIGITS, U64_MAX, GiB, KiB, MiB

PREFIX = "virtio_mmio.device="
C_SPACE = " \t\n\v\f\r"
"""C ``isspace`` in the C locale: where OSv ends an entry."""

U32_MAX = (1 << 32) - 1
ID_MAX = (1 << 31) - 1
"""Linux reads the id with ``%d`` into an ``int``."""

GRAMMARS = ("osv", "linux")

_MEMPARSE_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_OSV_MULT = {"k": KiB, "K": KiB, "m": MiB, "M": MiB}
_HEX = "0123456789abcdefABCDEF"


def _err(what: str, expected: str | None = None) -> CmdlineError:
    if len(what) > 200:     # an entry with thousands of digits: keep the line readable
        what = what[:120] + f"... ({len(what)} characters)"
    return CmdlineError(what, reason=CmdlineError.MMIO, expected=expected)


@dataclass(frozen=True)
class MmioDevice:
    """One virtio-mmio transport: ``size`` bytes at ``base``, interrupt ``irq``, optional
    platform-device ``id`` (Linux uses it, OSv ignores it)."""

    size: int
    base: int
    irq: int
    id: int | None = None

    def __post_init__(self):
        for name, value, top in (("size", self.size, U64_MAX), ("base", self.base, U64_MAX),
                                 ("irq", self.irq, U32_MAX)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
                raise _err(f"virtio-mmio {name} {value!r} out of range", f"0..{top:#x}")
        if self.id is not None and (not isinstance(self.id, int) or isinstance(self.id, bool)
                                    or not 0 <= self.id <= ID_MAX):
            raise _err(f"virtio-mmio id {self.id!r} out of range", f"0..{ID_MAX}")

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """``size=4096 (4K) base=0xc0001000 irq=5 id=-`` (``osvkit mmio decode``)."""
        ident = "-" if self.id is None else str(self.id)
        return (f"size={self.size} ({format_size(self.size)}) base={self.base:#x} "
                f"irq={self.irq} id={ident}")


@dataclass(frozen=True)
class MmioEntry:
    """An entry as found in a command line: the device, the exact text OSv removes (or the
    whole parameter for Linux) and the text after the irq that OSv ignores."""

    device: MmioDevice
    text: str
    ignored: str = ""

    def to_dict(self) -> dict:
        return {"device": self.device.to_dict(), "text": self.text, "ignored": self.ignored}


# ------------------------------------------------------------------------------------
# encode
# ------------------------------------------------------------------------------------
def format_size(size: int, *, osv_safe: bool = True) -> str:
    """``4096`` -> ``"4K"``; G/M/K suffix for an exact multiple (largest first, as
    linux-loader's ``guestusize_to_str``), else decimal bytes.  ``osv_safe`` skips ``G``."""
    units = ((MiB, "M"), (KiB, "K")) if osv_safe else ((GiB, "G"), (MiB, "M"), (KiB, "K"))
    for unit, suffix in units:
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def encode(dev: MmioDevice, *, osv_safe: bool = True) -> str:
    """Render ``dev`` as ``virtio_mmio.device=<size>@0x<base>:<irq>[:<id>]``.

    >>> encode(MmioDevice(0x1000, 0xc0001000, 5))
    'virtio_mmio.device=4K@0xc0001000:5'
    """
    if dev.size == 0:
        raise _err("virtio-mmio size 0", "a size of at least 1 byte")
    text = f"{PREFIX}{format_size(dev.size, osv_safe=osv_safe)}@0x{dev.base:x}:{dev.irq}"
    if dev.id is not None:
        text += f":{dev.id}"
    return text


# ------------------------------------------------------------------------------------
# OSv's scanner (musl sscanf semantics)
# ------------------------------------------------------------------------------------
@dataclass
class _Num:
    value: int      # what musl stores (64-bit pattern)
    end: int        # index after the last digit
    start: int      # index of the first character after skipped whitespace
    signed: bool    # a sign was present
    overflow: bool  # the digits did not fit in 64 bits


def _bounded_int(digits: str, base: int) -> int:
    """``int(digits, base)``, or ``U64_MAX + 1`` when there are too many digits to matter."""
    if len(digits.lstrip("0")) > MAX_DIGITS:
        return U64_MAX + 1
    return int(digits, base) if digits else 0


def _musl_int(s: str, i: int, base: int) -> _Num | None:
    """musl ``__intscan`` as used by ``%ld``/``%lli``/``%u``: None when nothing matched."""
    n = len(s)
    while i < n and s[i] in C_SPACE:
        i += 1
    start = i
    neg = signed = False
    if i < n and s[i] in "+-":
        neg, signed = s[i] == "-", True
        i += 1
    if base == 0:
        if s.startswith(("0x", "0X"), i):
            if i + 2 < n and s[i + 2] in _HEX:
                base, i = 16, i + 2
            else:
                return None  # "0x" without a hex digit: the next literal can never match
        elif i < n and s[i] == "0":
            base = 8
        else:
            base = 10
    digits = {10: "0123456789", 8: "01234567", 16: _HEX}[base]
    j = i
    while j < n and s[j] in digits:
        j += 1
    if j == i:
        return None
    value = _bounded_int(s[i:j], base)
    overflow = value > U64_MAX
    if overflow:
        value = U64_MAX            # musl: clamp to the limit, sign dropped
    elif neg:
        value = -value & U64_MAX
    return _Num(value, j, start, signed, overflow)


@dataclass
class _OsvParse:
    entry: MmioEntry
    start: int
    end: int
    nums: tuple  # (size, base, irq) _Num, for strict checks
    at: int


def _osv_parse_at(s: str, p: int) -> _OsvParse | None:
    """Parse the entry whose prefix starts at ``s[p]``, as OSv's ``parse_mmio_device_info``."""
    size_pos = p + len(PREFIX)
    size = _musl_int(s, size_pos, 10)
    if size is None:
        return None
    at = s.find("@", size_pos)
    if at < 0:
        return None
    size_value = (size.value * _OSV_MULT.get(s[at - 1], 1)) & U64_MAX
    base = _musl_int(s, at + 1, 0)
    if base is None or base.end >= len(s) or s[base.end] != ":":
        return None
    irq = _musl_int(s, base.end + 1, 10)
    if irq is None:
        return None
    end = at
    while end < len(s) and s[end] not in C_SPACE:
        end += 1
    ignored = s[irq.end:end] if irq.end < end else ""
    m = re.fullmatch(r":([0-9]+)", ignored)
    dev_id = _bounded_int(m.group(1), 10) if m else None
    dev_id = dev_id if dev_id is not None and dev_id <= ID_MAX else None
    dev = MmioDevice(size_value, base.value, irq.value & U32_MAX, dev_id)
    return _OsvParse(MmioEntry(dev, s[p:end], ignored), p, end, (size, base, irq), at)


def _check_nul(s: str) -> None:
    if "\0" in s:
        raise CmdlineError(f"NUL at index {s.index(chr(0))}", reason=CmdlineError.NUL,
                           expected="a command line without NUL bytes")


def _osv_scan(cmdline: str) -> tuple[list[MmioEntry], str]:
    _check_nul(cmdline)
    entries = []
    s = cmdline
    while True:
        p = s.find(PREFIX)
        if p < 0:
            break
        parsed = _osv_parse_at(s, p)
        if parsed is None:
            break  # OSv stops here and leaves this entry (and all later ones) in the line
        entries.append(parsed.entry)
        s = s[:p] + s[parsed.end:]
    return entries, s


def strip_devices(cmdline: str) -> str:
    """The command line OSv's option parser sees after its virtio-mmio pass.

    >>> strip_devices("--nopci /hello virtio_mmio.device=4K@0xc0001000:5")
    '--nopci /hello '
    """
    return _osv_scan(cmdline)[1]


# ------------------------------------------------------------------------------------
# Linux's parser
# ------------------------------------------------------------------------------------
_LINUX_PARAM = re.compile(r"virtio[-_]mmio\.device=")


def _strtoull0(s: str, i: int) -> tuple[int, int]:
    """Linux ``simple_strtoull(s, &end, 0)``: (value, end); end == i when no digits."""
    base = 10
    if s.startswith("0", i):
        if i + 2 < len(s) and s[i + 1] in "xX" and s[i + 2] in _HEX:
            base, i = 16, i + 2
        else:
            base = 8
    digits = {10: "0123456789", 8: "01234567", 16: _HEX}[base]
    j = i
    while j < len(s) and s[j] in digits:
        j += 1
    return _bounded_int(s[i:j], base), j


def _decode_linux(value: str) -> MmioDevice:
    if any(c in C_SPACE for c in value):
        raise _err(f"whitespace in {value!r}", "one kernel parameter without whitespace")
    size, i = _strtoull0(value, 0)
    if i == 0:
        raise _err(f"no size in {value!r}", "<size>[K|M|G|T|P|E]@<base>:<irq>[:<id>]")
    if i < len(value) and value[i].lower() in _MEMPARSE_SHIFT:
        size <<= _MEMPARSE_SHIFT[value[i].lower()]
        i += 1
    if size > U64_MAX:
        raise _err(f"size in {value!r} overflows 64 bits")
    if size == 0:
        raise _err(f"size 0 in {value!r}", "a size of at least 1 byte")
    if not value.startswith("@", i):
        raise _err(f"{value[i:i + 1] or 'end'!r} after the size in {value!r}", "'@'")
    j = i + 1
    if value.startswith(("-", "+"), j):
        raise _err(f"signed base in {value!r}", "an unsigned base")
    base, k = _strtoull0(value, j)
    if k == j:
        raise _err(f"no base after '@' in {value!r}", "0x<hex>, 0<octal> or decimal")
    if base > U64_MAX:
        raise _err(f"base in {value!r} overflows 64 bits")
    m = re.fullmatch(r":([0-9]+)(?::([0-9]+))?", value[k:])
    if m is None:
        raise _err(f"bad irq/id {value[k:]!r} in {value!r}", "':<irq>[:<id>]' with decimal numbers")
    irq = _bounded_int(m.group(1), 10)
    if not 0 < irq <= U32_MAX:
        raise _err(f"irq {m.group(1)[:30]} in {value!r} out of range", f"1..{U32_MAX} (Linux refuses irq 0)")
    dev_id = None if m.group(2) is None else _bounded_int(m.group(2), 10)
    if dev_id is not None and dev_id > ID_MAX:
        raise _err(f"id {m.group(2)[:30]} in {value!r} out of range", f"0..{ID_MAX}")
    return MmioDevice(size, base, irq, dev_id)


# ------------------------------------------------------------------------------------
# decode / find
# ------------------------------------------------------------------------------------
def _check_grammar(grammar: str) -> None:
    if grammar not in GRAMMARS:
        raise CmdlineError(f"unknown virtio-mmio grammar {grammar!r}", reason=CmdlineError.MMIO,
                           expected="'osv' or 'linux'")


def decode(text: str, grammar: str = "osv") -> MmioDevice:
    """Decode one entry, with or without the ``virtio_mmio.device=`` prefix.

    Strict: anything OSv (or Linux) would not parse, and anything OSv would parse
    surprisingly (a sign, a number over 64 bits, size 0, whitespace inside the entry), raises
    :class:`~osvkit.errors.CmdlineError` with reason ``mmio`` naming the problem.
    With ``grammar="osv"`` text after the irq is accepted (OSv ignores it); ``:<id>`` there
    becomes ``id``.
    """
    _check_grammar(grammar)
    _check_nul(text)
    body = text.strip(C_SPACE)
    if grammar == "linux":
        m = _LINUX_PARAM.match(body)
        return _decode_linux(body[m.end():] if m else body)
    if not body.startswith(PREFIX):
        body = PREFIX + body
    if any(c in C_SPACE for c in body):
        raise _err(f"whitespace inside {body!r}; OSv removes the entry only up to the first "
                   "whitespace", "one entry without whitespace")
    parsed = _osv_parse_at(body, 0)
    if parsed is None:
        raise _err(_osv_failure(body), "<size>[K|M]@<base>:<irq>[:<id>]")
    size, base, irq = parsed.nums
    for name, num in (("size", size), ("base", base), ("irq", irq)):
        if num.signed:
            raise _err(f"signed {name} in {body!r}; OSv would wrap it", f"an unsigned {name}")
        if num.overflow:
            raise _err(f"{name} in {body!r} overflows 64 bits")
    if irq.value > U32_MAX:
        raise _err(f"irq in {body!r} does not fit 32 bits; OSv would truncate it",
                   f"0..{U32_MAX}")
    if size.end != parsed.at - (1 if body[parsed.at - 1] in _OSV_MULT else 0):
        raise _err(f"{body[size.end:parsed.at]!r} between the size and '@' in {body!r}",
                   "only a K or M suffix (OSv has no G)")
    if parsed.entry.device.size == 0:
        raise _err(f"size 0 in {body!r}", "a size of at least 1 byte")
    if parsed.entry.device.id is None and re.fullmatch(r":[0-9]+", parsed.entry.ignored):
        raise _err(f"id in {body!r} out of range", f"0..{ID_MAX}")
    return parsed.entry.device


def decode_all(cmdline: str, grammar: str = "osv") -> list[MmioEntry]:
    """Decode, strictly as :func:`decode`, every entry of a whole command line.

    ``osv``: every whitespace-separated word holding the prefix (OSv finds it anywhere in a
    word); ``linux``: every ``virtio_mmio.device=`` parameter before a bare ``--``.  The
    first entry that does not decode raises; the caller decides whether no entry at all is
    an error.  This is the one grammar ``osvkit mmio decode``, ``cmdline set`` and
    ``cmdline check`` share."""
    _check_grammar(grammar)
    _check_nul(cmdline)
    entries = []
    for token in re.split(r"[ \t\n\v\f\r]+", cmdline):
        if grammar == "linux":
            if token == "--":
                break
            if _LINUX_PARAM.match(token):
                entries.append(MmioEntry(decode(token, "linux"), token))
            continue
        p = token.find(PREFIX)
        if p >= 0:
            entries.append(MmioEntry(decode(token[p:], "osv"), token[p:]))
    return entries


def _osv_failure(body: str) -> str:
    """Say which step of OSv's parse fails for ``body`` (which starts with the prefix)."""
    rest = body[len(PREFIX):]
    size = _musl_int(body, len(PREFIX), 10)
    if size is None:
        return f"no decimal size in {rest!r}"
    at = body.find("@", len(PREFIX))
    if at < 0:
        return f"no '@' in {rest!r}"
    base = _musl_int(body, at + 1, 0)
    if base is None:
        return f"no base after '@' in {rest!r}"
    if base.end >= len(body) or body[base.end] != ":":
        return f"no ':' after the base in {rest!r}"
    return f"no decimal irq after ':' in {rest!r}"


def find_devices(cmdline: str, grammar: str = "osv") -> list[MmioEntry]:
    """Every entry the ``grammar``'s parser takes from ``cmdline``, in order.

    ``osv``: as OSv -- prefix anywhere, and the scan **stops at the first entry that fails
    to parse** (that one and all later ones are not devices and stay in the line).
    ``linux``: every whitespace-separated ``virtio_mmio.device=`` parameter before a bare
    ``--``; a parameter that does not parse is skipped, as Linux rejects just that one.
    """
    _check_grammar(grammar)
    if grammar == "osv":
        return _osv_scan(cmdline)[0]
    _check_nul(cmdline)
    entries = []
    for token in re.split(r"[ \t\n\v\f\r]+", cmdline):
        if token == "--":
            break
        m = _LINUX_PARAM.match(token)
        if m is None:
            continue
        try:
            entries.append(MmioEntry(_decode_linux(token[m.end():]), token))
        except CmdlineError:
            continue
    return entries


# ------------------------------------------------------------------------------------
# helpers for the CLI
# ------------------------------------------------------------------------------------
def parse_number(text: str | int, what: str, *, suffixes: bool = False) -> int:
    """``"4K"`` -> 4096 (with ``suffixes``), ``"0xc0001000"`` -> int; CmdlineError otherwise."""
    if isinstance(text, int):
        return text
    s = text.strip()
    shift = 0
    if suffixes and s[-1:].lower() in ("k", "m", "g", "t"):
        shift = {"k": 10, "m": 20, "g": 30, "t": 40}[s[-1].lower()]
        s = s[:-1]
    try:
        if len(s.lstrip("+-0xXoObB")) > MAX_DIGITS:
            raise ValueError(s)
        value = int(s, 0)
    except ValueError:
        raise _err(f"{what} {text!r} is not a number",
                   "decimal or 0x-hex" + (" with an optional K/M/G/T suffix" if suffixes else "")
                   ) from None
    return value << shift


def build_entry(size, base, irq, id=None, *, osv_safe: bool = True) -> MmioEntry:  # noqa: A002
    """Encode from CLI-style values (``size="4K"``, ``base="0xc0001000"``)."""
    dev = MmioDevice(parse_number(size, "size", suffixes=True), parse_number(base, "base"),
                     parse_number(irq, "irq"), None if id is None else parse_number(id, "id"))
    return MmioEntry(dev, encode(dev, osv_safe=osv_safe))


@dataclass(frozen=True)
class MmioScan:
    """A command line before and after OSv's virtio-mmio pass."""

    cmdline: str
    stripped: str
    entries: tuple

    def to_dict(self) -> dict:
        return {"cmdline": self.cmdline, "stripped": self.stripped,
                "entries": [e.to_dict() for e in self.entries]}

    def describe(self) -> str:
        return self.stripped


def scan_devices(cmdline: str) -> MmioScan:
    """:func:`find_devices` and :func:`strip_devices` (OSv) in one result."""
    entries, stripped = _osv_scan(cmdline)
    return MmioScan(cmdline, stripped, tuple(entries))
