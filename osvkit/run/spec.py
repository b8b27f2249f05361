"""What to run: :class:`RunSpec`, the one description every run backend takes."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

RUN_DIR = "$OSVKIT_RUN_DIR"
"""Stands for the run's temporary directory in commands printed by ``--dry-run``."""


@dataclass(frozen=True)
class RunSpec:
    """One guest run.  ``image`` is a disk image for ``qemu`` and a kernel (vmlinux ELF or
    bzImage) for the kernel VMMs; fields a backend has no use for are ignored by it."""

    image: str | os.PathLike
    vmm: str = "qemu"
    """A name in :data:`osvkit.run.backends.VMMS`."""
    accel: str = "tcg"
    """QEMU accelerator: ``tcg`` or ``kvm``."""
    memory: str | int = "256M"
    """Guest memory: bytes or a size such as ``256M``."""
    cpus: int = 1
    timeout: float = 60
    """Seconds before the VMM is stopped (``exit_reason`` "timeout")."""
    expect: str | None = None
    """A regex: the run ends, passed, when the console matches it."""
    cmdline: str | None = None
    """``qemu``: replaces the image's command line in a temporary copy; kernel VMMs: the
    kernel's command line (``-append`` / Firecracker's ``boot_args``)."""
    console_path: str | os.PathLike | None = None
    """Also write the console to this file."""
    extra: tuple[str, ...] = ()
    """More VMM arguments, appended to the QEMU command."""
    disk_bus: str = "virtio"
    """``qemu``: ``virtio`` or ``ide``."""
    image_format: str | None = None
    """``qemu``: ``raw`` or ``qcow2`` (default: detected)."""
    machine: str = "pc"
    """``qemu-fc``/``qemu-pvh``: ``pc`` or ``microvm``."""
    disk: str | os.PathLike | None = None
    """Kernel VMMs: a disk image attached as virtio-blk."""
    initrd: str | os.PathLike | None = None
    """Kernel VMMs: an initrd (``qemu-fc``/``firecracker``: where Firecracker puts it;
    ``qemu-pvh``: QEMU's ``-initrd``)."""
    fc_protocol: str = "linux"
    """``qemu-fc``: ``linux`` (64-bit boot protocol), ``pvh`` (the PVH note) or ``auto``
    (Firecracker's own choice: PVH when the note is there)."""
    firecracker: str | os.PathLike | None = None
    """``firecracker``: the binary (default: from PATH)."""

    def replace(self, **changes) -> "RunSpec":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @property
    def line(self) -> str:
        """The kernel command line ("" when none was given)."""
        return self.cmdline or ""

    def to_dict(self) -> dict:
        return {f.name: (os.fspath(v) if isinstance(v, os.PathLike) else
                         list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}
