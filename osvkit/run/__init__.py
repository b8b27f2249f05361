"""Boot images and kernels in a VMM and report how the run ended (:class:`RunResult`).

A run is described by a :class:`RunSpec`; the backends that carry it out (``qemu``,
``qemu-fc``, ``qemu-pvh``, ``firecracker``) are listed once, in :mod:`osvkit.run.backends`.
:func:`run` / :func:`command` take a spec; :func:`run_image` / :func:`image_command` take the
image and the spec's fields as keywords.
"""

from __future__ import annotations

from .backends import BACKENDS, KERNEL_VMMS, VMMS, Backend, get_backend
from .result import EXIT_REASONS, RunResult
from .spec import RUN_DIR, RunSpec

__all__ = ["run", "command", "run_image", "image_command", "RunSpec", "RunResult",
           "EXIT_REASONS", "VMMS", "KERNEL_VMMS", "BACKENDS", "Backend", "get_backend"]


def run(spec: RunSpec) -> RunResult:
    """Boot ``spec`` with its backend and return how the run ended."""
    return get_backend(spec.vmm).run(spec)


def command(spec: RunSpec, workdir: str = RUN_DIR) -> list[str]:
    """The VMM command :func:`run` runs for ``spec`` (before the capture options; ``osvkit
    run --dry-run`` prints it with them), files it generates named under ``workdir``."""
    return get_backend(spec.vmm).command(spec, workdir)


def image_command(image, *, vmm: str = "qemu", extra=(), **options) -> list[str]:
    """:func:`command` for ``image`` with :class:`RunSpec` fields as keywords."""
    return command(RunSpec(image, vmm=vmm, extra=tuple(extra), **options))


def run_image(image, *, vmm: str = "qemu", extra=(), **options) -> RunResult:
    """Boot ``image`` and return how the run ended; keywords are :class:`RunSpec` fields
    (``cmdline``, when given for ``qemu``, replaces the image's command line in a temporary
    raw copy -- the image itself is never modified)."""
    return run(RunSpec(image, vmm=vmm, extra=tuple(extra), **options))
