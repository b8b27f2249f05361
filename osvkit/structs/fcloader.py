"""The in-memory tables of osvkit's qemu-fc loader (:mod:`osvkit.run.fcloader`).

* :data:`LoaderOp` -- one 16-byte operation of the loader's table (``op`` 0 ends it; the
  meaning of the others is the loader's);
* :data:`LoaderVars` -- the loader's variables: the kernel entry, the module's address as the
  firmware placed it, the command line's length;
* :data:`DescriptorPointer32` -- the 6-byte ``lgdt``/``lidt`` operand in 32-bit mode, padded to
  8 bytes in the loader's table of descriptors.
"""

from __future__ import annotations

from construct import Int16ul, Int32ul, Int64ul, Padded, Struct

from .base import field_offsets

LoaderOp = Struct(
    "op" / Int32ul,
    "dst" / Int32ul,
    "src" / Int32ul,
    "length" / Int32ul,
)
LOADER_OP_SIZE = LoaderOp.sizeof()

LoaderVars = Struct(
    "entry" / Int64ul,          # where the loader jumps
    "module" / Int32ul,         # physical address of the module (the kernel file [+ initrd])
    "cmdline_length" / Int32ul,
)
LOADER_VARS_OFFSETS = field_offsets(LoaderVars)

DescriptorPointer32 = Padded(8, Struct(
    "limit" / Int16ul,          # table size - 1
    "base" / Int32ul,
))
DESCRIPTOR_POINTER_SIZE = DescriptorPointer32.sizeof()
