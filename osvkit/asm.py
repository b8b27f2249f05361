"""Assemble generated boot code with Keystone, and disassemble it with capstone.

All boot code in osvkit is assembly text in AT&T syntax with *named* labels (Keystone
0.9.2 mis-handles Intel syntax ``mov si, label``, numeric local labels and far jumps).  Far
jumps are emitted as bytes with :func:`far_jump16`/:func:`far_jump32`.

>>> assemble("movl $1, %eax\\nhere: jmp here", bits=32)
b'\\xb8\\x01\\x00\\x00\\x00\\xeb\\xfe'
"""

from __future__ import annotations

import re

from .errors import OsvkitError

_MODES = {16: "KS_MODE_16", 32: "KS_MODE_32", 64: "KS_MODE_64"}


class AsmError(OsvkitError):
    """Generated assembly did not assemble (a bug in osvkit, not in the user's input)."""
    exit_status = 70


def assemble(text: str, *, bits: int, base: int = 0) -> bytes:
    """Assemble AT&T ``text`` for a ``bits``-bit CPU mode, as if loaded at ``base``."""
    import keystone

    if bits not in _MODES:
        raise ValueError(f"bits must be 16, 32 or 64, not {bits}")
    _reject_numeric_labels(text)
    _reject_bare_decimals(text)
    if bits == 64:
        _reject_movq_absolute_loads(text)
    ks = keystone.Ks(keystone.KS_ARCH_X86, getattr(keystone, _MODES[bits]))
    ks.syntax = keystone.KS_OPT_SYNTAX_ATT
    try:
        encoding, _count = ks.asm(text, base)
    except keystone.KsError as exc:  # pragma: no cover - message depends on keystone
        raise AsmError(f"keystone rejected {bits}-bit code: {exc}") from None
    if encoding is None:
        raise AsmError(f"keystone produced no code for {bits}-bit block")
    return bytes(encoding)


def _reject_numeric_labels(text: str) -> None:
    """Keystone rejects numeric local labels (``1:``, ``jmp 1b``); say so clearly."""
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if re.match(r"\s*\d+:", code) or re.search(r"\bj\w*\s+\d+[bf]\b", code):
            raise AsmError(f"numeric local label in generated code: {line.strip()!r}")


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BARE_DECIMAL = re.compile(r"(?<![\w.])(\d{2,})(?![\w.])")


def _reject_bare_decimals(text: str) -> None:
    """Keystone 0.9.2 in AT&T mode reads every bare number as hex: ``movl $20, %ecx`` loads
    0x20, ``.fill 10`` emits 16 bytes.  Numbers 0-9 mean the same either way; anything larger
    must be written ``0x..`` so that the code says what it assembles to."""
    for line in text.splitlines():
        code = _STRING.sub('""', line.split("#", 1)[0])
        for m in _BARE_DECIMAL.finditer(code):
            if int(m.group(1)) >= 10:
                raise AsmError(f"bare number {m.group(1)} in generated code (Keystone reads it as "
                               f"hex): {line.strip()!r}", expected="0x-prefixed numbers above 9")


_MOVQ_ABS_LOAD = re.compile(r"^\s*(?:\w+:\s*)?movq?\s+(0x[0-9a-fA-F]+|\d+)\s*,\s*%r\w+\s*$")


def _reject_movq_absolute_loads(text: str) -> None:
    """Keystone 0.9.2 in 64-bit mode encodes ``movq 0x1010, %rax`` (a 64-bit load from a
    numeric absolute address) as ``0x1010(%rip)`` without subtracting RIP; other sizes, stores
    and label operands come out right.  Refuse the broken form."""
    for line in text.splitlines():
        m = _MOVQ_ABS_LOAD.match(line.split("#", 1)[0])
        if m and not m.group(0).rstrip().endswith(("d", "w", "b")):
            raise AsmError(f"64-bit load from the absolute address {m.group(1)} "
                           f"(Keystone mis-encodes it): {line.strip()!r}",
                           expected="a register base, e.g. movl $addr, %r11d; movq (%r11), %rax")


def far_jump16(selector: int, offset: int) -> bytes:
    """``ljmp $selector, $offset`` from 16-bit code (EA ofs16 sel16)."""
    return b"\xEA" + offset.to_bytes(2, "little") + selector.to_bytes(2, "little")


def far_jump32(selector: int, offset: int) -> bytes:
    """``ljmpl $selector, $offset`` from 32-bit code (EA ofs32 sel16)."""
    return b"\xEA" + offset.to_bytes(4, "little") + selector.to_bytes(2, "little")


def far_jump16_to32(selector: int, offset: int) -> bytes:
    """A 32-bit-offset far jump from 16-bit code (66 EA ofs32 sel16), e.g. into protected mode."""
    return b"\x66" + far_jump32(selector, offset)


def byte_directive(data: bytes) -> str:
    """``.byte`` lines that emit ``data`` verbatim inside assembly text."""
    return "\n".join(
        ".byte " + ", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)
    )


def disassemble(code: bytes, *, bits: int, base: int = 0) -> list[tuple[int, str, str]]:
    """Return ``(address, mnemonic, operands)`` for each instruction (capstone, AT&T)."""
    import capstone

    mode = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32, 64: capstone.CS_MODE_64}[bits]
    md = capstone.Cs(capstone.CS_ARCH_X86, mode)
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return [(i.address, i.mnemonic, i.op_str) for i in md.disasm(code, base)]
