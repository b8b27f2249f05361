"""The run backends: the one list of VMMs osvkit can boot a guest in.

Each :class:`Backend` has a name, says what it boots (a disk image or a kernel), and offers
``command(spec)`` (the VMM command, as ``osvkit run --dry-run`` prints it) and ``run(spec)``
(a :class:`~osvkit.run.result.RunResult`).  The implementation lives in one module per backend
and is imported only when the backend is used, so reading the list stays cheap.  Everything
else that names VMMs (the CLI's help, build-file validation, ``verify``, ``demo``) reads
:data:`VMMS` / :data:`BACKENDS`.

A new VMM: a module with ``command(spec, workdir)`` and ``run(spec)``, and one entry below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ToolError, UsageError
from .spec import RUN_DIR, RunSpec

IMAGE = "disk image"
KERNEL = "kernel"
QEMU = "qemu-system-x86_64"


def _qemu():
    from . import qemu
    return qemu


def _qemu_fc():
    from . import fcloader
    return fcloader


def _qemu_pvh():
    from . import pvh
    return pvh


def _firecracker():
    from . import firecracker
    return firecracker


@dataclass(frozen=True)
class Backend:
    name: str
    boots: str
    """:data:`IMAGE` or :data:`KERNEL`."""
    summary: str
    tool: str
    """The program the backend runs (for "is it installed?" checks)."""
    _load: Callable = None

    def installed(self) -> bool:
        """Whether the backend's program can be found (for QEMU: ``$OSVKIT_QEMU`` or
        ``qemu-system-x86_64`` on PATH, as the backend itself looks it up)."""
        if self.tool == QEMU:
            from .qemu import find_qemu
            try:
                find_qemu()
            except ToolError:
                return False
            return True
        import shutil
        return shutil.which(self.tool) is not None

    def command(self, spec: RunSpec, workdir: str = RUN_DIR) -> list[str]:
        """The VMM command for ``spec``, with generated files named under ``workdir``;
        refuses (one-line errors) what :meth:`run` would refuse."""
        return self._load().command(spec, workdir)

    def run(self, spec: RunSpec):
        """Boot ``spec`` and return how the run ended."""
        if not spec.timeout > 0:        # also NaN, which compares false and made the run endless
            raise UsageError(f"timeout {spec.timeout}", expected="a positive number of seconds")
        return self._load().run(spec)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("qemu", IMAGE, "a disk image (raw or qcow2) on SeaBIOS", QEMU, _qemu),
    Backend("qemu-pvh", KERNEL, "a kernel with a PVH note, booted by QEMU's own PVH loader",
            QEMU, _qemu_pvh),
    Backend("qemu-fc", KERNEL, "a kernel in Firecracker's start state, emulated in QEMU",
            QEMU, _qemu_fc),
    Backend("firecracker", KERNEL, "a kernel in a real Firecracker (--no-api --config-file)",
            "firecracker", _firecracker),
)}

VMMS: tuple[str, ...] = tuple(BACKENDS)
"""Every VMM name, in the order the help lists them."""
KERNEL_VMMS: tuple[str, ...] = tuple(n for n, b in BACKENDS.items() if b.boots == KERNEL)
IMAGE_VMMS: tuple[str, ...] = tuple(n for n, b in BACKENDS.items() if b.boots == IMAGE)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; an unknown name is a usage error listing the known ones."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise UsageError(f"VMM {name!r}", expected=one_of(VMMS)) from None


def one_of(names) -> str:
    """``a, b or c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def vmm_help() -> str:
    """One line per VMM, for help texts."""
    return "; ".join(f"{b.name}: {b.summary}" for b in BACKENDS.values())
