"""Kernel command lines: OSv's option/command model, limits, and virtio-mmio entries."""

from __future__ import annotations

from .mmio import MmioDevice, MmioEntry
from .mmio import decode as decode_mmio
from .mmio import encode as encode_mmio
from .mmio import find_devices as find_mmio
from .mmio import strip_devices as strip_mmio
from .model import (TARGETS, Cmdline, CmdlineFit, SplitCmdline, check_cmdline, encode_cmdline,
                    fit_report, parse_option, render_cmdline, split_cmdline, unfit_targets)

__all__ = ["MmioDevice", "MmioEntry", "decode_mmio", "encode_mmio", "find_mmio", "strip_mmio",
           "TARGETS", "Cmdline", "CmdlineFit", "fit_report", "SplitCmdline", "check_cmdline", "encode_cmdline",
           "parse_option", "render_cmdline", "split_cmdline", "unfit_targets"]
