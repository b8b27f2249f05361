"""Import construct without the modules it loads but never uses in osvkit.

construct's package ``__init__`` imports its debugger (``construct.debug``: ``pdb``,
``inspect``, ``traceback``) and ``construct.core`` imports ``pickle`` and ``hashlib``; osvkit
uses none of the constructs that need them (``Probe``, ``Debugger``, ``Pickled``,
``Struct.compile``), yet importing them is about half of ``import construct`` (10 ms of a
command that reads one MBR).  :func:`import_construct` imports construct with those names bound
to stand-ins that import the real module on first attribute access; the stand-ins are only in
``sys.modules`` while construct itself is being imported, so every other ``import pdb`` (or
``pickle``, ...) in the process gets the real module as usual.  A module already imported is
used as it is.
"""

from __future__ import annotations

import importlib
import sys
import types

#: what construct imports at module level and uses only inside constructs osvkit never builds
UNUSED_AT_IMPORT = ("pdb", "pickle", "hashlib", "inspect", "traceback")


class OnFirstUse(types.ModuleType):
    """A module object that imports the real module named like it when an attribute is
    first read from it, and from then on answers from that module."""

    def __getattr__(self, attr: str):
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attr)


def import_construct() -> types.ModuleType:
    """``import construct``, with :data:`UNUSED_AT_IMPORT` deferred (see the module text)."""
    if "construct" in sys.modules:
        return sys.modules["construct"]
    placed = [name for name in UNUSED_AT_IMPORT if name not in sys.modules]
    for name in placed:
        sys.modules[name] = OnFirstUse(name)
    try:
        import construct
    finally:
        for name in placed:
            if isinstance(sys.modules.get(name), OnFirstUse):
                del sys.modules[name]
    return construct
