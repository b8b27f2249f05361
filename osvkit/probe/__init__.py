"""The conformance kernel ("probe"): a generated ELF that reports how it was booted.

* :func:`build_probe` / :func:`write_probe` make the kernel (:mod:`osvkit.probe.kernel`).
* :func:`parse_report` reads its COM1 report back (:mod:`osvkit.probe.report`).
"""

from __future__ import annotations

import os

from .kernel import build_probe
from .report import ProbeReport, parse_report

__all__ = ["build_probe", "write_probe", "parse_report", "ProbeReport"]


def write_probe(path: str | os.PathLike, size: int | None = None, entry_report: bool = False):
    """Write the probe kernel to ``path`` atomically; returns a :class:`ProbeBuild`."""
    from ..errors import OutputError
    from ..fileio import write_atomic
    from .kernel import ProbeBuild

    data = build_probe(size, entry_report=entry_report)
    if os.path.isdir(path):
        raise OutputError("is a directory", path=path, expected="a file name for the kernel")
    try:
        write_atomic(path, data, mode=0o755)
    except OSError as exc:  # fileio wraps creation errors, not a failing rename
        raise OutputError(f"cannot write: {exc.strerror}", path=path) from None
    return ProbeBuild.from_bytes(data, path=os.fspath(path))
