"""Kernel command lines: OSv's option/command model, limits, and virtio-mmio entries.

:mod:`.mmio` is imported when one of its names is first used (``osvkit cmdline get`` of a
line without virtio-mmio entries never loads it).
"""

from __future__ import annotations

from .model import (TARGETS, Cmdline, CmdlineFit, SplitCmdline, check_cmdline, encode_cmdline,
                    fit_report, parse_option, render_cmdline, split_cmdline, unfit_targets)

#: the names this package takes from :mod:`.mmio`, under their names there
_MMIO_NAMES = {"MmioDevice": "MmioDevice", "MmioEntry": "MmioEntry", "decode_mmio": "decode",
               "encode_mmio": "encode", "find_mmio": "find_devices",
               "strip_mmio": "strip_devices"}

__all__ = ["MmioDevice", "MmioEntry", "decode_mmio", "encode_mmio", "find_mmio", "strip_mmio",
           "TARGETS", "Cmdline", "CmdlineFit", "fit_report", "SplitCmdline", "check_cmdline", "encode_cmdline",
           "parse_option", "render_cmdline", "split_cmdline", "unfit_targets"]


def __getattr__(name: str):
    if name in _MMIO_NAMES:
        from . import mmio
        return getattr(mmio, _MMIO_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
