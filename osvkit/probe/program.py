"""The probe's code and data being laid out: a data area, emitted routines, their symbols.

Every routine module (:mod:`~osvkit.probe.console`, :mod:`~osvkit.probe.checksum`,
:mod:`~osvkit.probe.mptable`, ...) turns a :class:`Program` into assembly text: the addresses
of earlier routines are in :attr:`Program.sym`, report strings are added to the data area
with :meth:`Program.string` (in the order the text asks for them), and :meth:`Program.emit`
assembles the text with :func:`osvkit.asm.assemble` at its final address.

Keystone's pitfalls are handled by ``osvkit.asm``'s one policy: numbers above 9 are written
``0x..``, and 64-bit code reaches absolute addresses through ``%r11``, loaded by
:func:`at` (``movq $addr, %r11`` then an ``(%r11)`` operand).
"""

from __future__ import annotations

from ..asm import assemble
from .info import GdtPointer64, GdtTable
from .layout import (BASE, BSS_ALIGN, BSS_SAVE, CODE_ALIGN, CODE_FILL, CODE_OFFSET, DATA_OFFSET,
                     GDT, IDT_DESC_SIZE, align)


def at(addr: int) -> str:
    """``movq $addr, %r11``: the next instruction's ``(%r11)`` operand is the absolute
    address ``addr`` (Keystone 0.9.2 mis-encodes absolute memory operands in 64-bit code)."""
    return f"movq ${addr:#x}, %r11"


def saving(regs: str, body: str) -> str:
    """A routine that preserves ``regs`` (names, space-separated, e.g. ``"rsi rax"``): their
    pushes, ``body`` (which ends by falling through), their pops in reverse order, ``ret``."""
    names = regs.split()
    pushes = "".join(f"pushq %{r}\n" for r in names)
    pops = "".join(f"popq %{r}\n" for r in reversed(names))
    return f"{pushes}{body}\n{pops}ret\n"


class DataArea:
    """Bytes placed from file offset ``start`` up to ``limit``; named physical addresses."""

    def __init__(self, start: int, limit: int):
        self.start = start
        self.limit = limit
        self.buf = bytearray()
        self.addr: dict[str, int] = {}

    def add(self, name: str, blob: bytes, align: int = 1) -> int:
        while (self.start + len(self.buf)) % align:
            self.buf.append(0)
        off = self.start + len(self.buf)
        self.buf += blob
        if off + len(blob) > self.limit:
            raise AssertionError(f"probe data area overflows at {name}")
        self.addr[name] = BASE + off
        return BASE + off

    def string(self, text: str) -> int:
        key = "str:" + text
        if key not in self.addr:
            self.add(key, text.encode() + b"\0")
        return self.addr[key]


class Program:
    """One probe's code, data and symbols; ``filesz`` fixes the bss addresses."""

    def __init__(self, filesz: int, entry_report: bool):
        self.entry_report = entry_report
        self.bss = BASE + align(filesz, BSS_ALIGN)
        self.save = self.bss + BSS_SAVE
        self.data = DataArea(DATA_OFFSET, CODE_OFFSET)
        gdt = self.data.add("gdt", GdtTable.build(GDT), align=16)
        self.data.add("gdt_desc", GdtPointer64.build(dict(limit=len(GDT) * 8 - 1, base=gdt)),
                      align=16)
        self.data.add("idt_zero", bytes(IDT_DESC_SIZE), align=16)
        self.sym: dict[str, int] = {}
        self.code = bytearray()

    def string(self, text: str) -> int:
        """Physical address of the NUL-terminated ``text`` in the data area."""
        return self.data.string(text)

    def emit(self, name: str, text: str, bits: int) -> int:
        """Assemble ``text`` as routine ``name`` at the next aligned address; return it."""
        while len(self.code) % CODE_ALIGN:
            self.code.append(CODE_FILL)
        addr = BASE + CODE_OFFSET + len(self.code)
        self.code += assemble(text, bits=bits, base=addr)
        self.sym[name] = addr
        return addr

    # -- report-writer calls for the templates ----------------------------------------
    def puts(self, text: str) -> str:
        """Print the constant ``text``."""
        return f"movq ${self.string(text):#x}, %rsi\ncall {self.sym['puts']:#x}\n"

    def puthex(self, digits: int) -> str:
        """Print RAX as ``digits`` hex digits."""
        return f"movl ${digits:#x}, %ecx\ncall {self.sym['puthex']:#x}\n"

    @property
    def newline(self) -> str:
        return f"call {self.sym['newline']:#x}\n"
