"""Write a Firecracker ``--config-file`` document that boots an OSv kernel.

The document has the keys of Firecracker's ``FullVmConfiguration`` (its API description's
name for the config file's object):

* ``boot-source``: ``kernel_image_path`` (absolute) and ``boot_args`` = ``--nopci`` + the
  command line -- OSv's own scripts/firecracker.py prepends ``--nopci`` because Firecracker
  has no PCI bus; it is not added twice, nor to a kernel that is not OSv's (a Linux vmlinux
  gets its command line as given);
* ``drives``: the application disk as a **non-root** drive (``is_root_device`` false: with
  true, Firecracker appends ``root=/dev/vda`` to the command line, which OSv would run as the
  application), read-write, like scripts/firecracker.py;
* ``machine-config``: ``vcpu_count`` (1 or an even number up to 32, the API schema's rule)
  and ``mem_size_mib``.

Which entry Firecracker uses: since v1.12 a kernel with a ``XEN_ELFNOTE_PHYS32_ENTRY`` note is
always booted through PVH (there is no knob); older versions, or a vmlinux
built with ``--no-pvh``, use the 64-bit Linux entry (``e_entry``).

An ``initrd`` becomes ``boot-source.initrd_path`` (absolute); it must exist and fit in the
guest's low RAM, where Firecracker places it (:func:`osvkit.firecracker.kernel.initrd_address`).

Refused: a kernel Firecracker's loader refuses (:mod:`osvkit.firecracker.kernel`), an OSv
kernel that was not patched for it (neither a Linux 64-bit entry nor a PVH note: Firecracker
would enter OSv's 32-bit ``start32`` in 64-bit mode), a command line Firecracker refuses (over
2047 bytes with the virtio-mmio entries it appends not counted -- osvkit cannot know how many
-- so the visible part alone must fit), a qcow2 disk (Firecracker reads raw files only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .. import layout
from ..errors import FormatError, UsageError
from ..fileio import check_not_input, read_head, write_atomic
from ..units import memory_mib

NOPCI = "--nopci"
MAX_VCPUS = 32


@dataclass
class FirecrackerConfig:
    """A ``--config-file`` document (``document``) and where it was written."""

    document: dict
    output: str | None = None

    def to_dict(self) -> dict:
        return {"output": self.output, "config": self.document}

    def to_json(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=False) + "\n"

    def describe(self) -> str:
        """What was written, for people (``osvkit firecracker-config`` without --json)."""
        d = self.document
        machine = d["machine-config"]
        lines = [f"wrote {self.output}",
                 f"  kernel {d['boot-source']['kernel_image_path']}",
                 f"  boot_args {d['boot-source']['boot_args']!r}",
                 *([f"  initrd {d['boot-source']['initrd_path']}"]
                   if "initrd_path" in d["boot-source"] else []),
                 f"  {machine['vcpu_count']} vCPU(s), {machine['mem_size_mib']} MiB"]
        for drv in d["drives"]:
            lines.append(f"  drive {drv['drive_id']}: {drv['path_on_host']} (root device: no)")
        lines.append(f"  run: firecracker --no-api --config-file {self.output}")
        return "\n".join(lines)


def fc_boot_args(cmdline: str) -> str:
    """``--nopci`` + ``cmdline`` (once), checked against Firecracker's 2047-byte limit."""
    from ..cmdline import check_cmdline

    from ..cmdline import split_cmdline

    # only OSv's own options count (an application's "--nopci" argument is not one)
    has = NOPCI in split_cmdline(cmdline, strip_mmio=True).options
    args = cmdline.strip() if has else (NOPCI + " " + cmdline.strip()).strip()
    check_cmdline(args, "firecracker")
    return args


def _other_boot_args(cmdline: str) -> str:
    """A kernel that is not OSv's gets its command line as given (``--nopci`` is OSv's
    option), checked against Firecracker's limit."""
    from ..cmdline import check_cmdline

    args = cmdline.strip()
    check_cmdline(args, "firecracker")
    return args


def _parse_memory_mib(memory) -> int:
    mib = memory_mib(memory)
    if mib < 2:
        raise UsageError(f"memory {memory!r}", expected="a whole number of MiB, at least 2M")
    return mib


def _check_disk(disk) -> str:
    path = os.path.abspath(os.fspath(disk))
    if read_head(disk, 4, "a raw disk image") == b"QFI\xfb":
        raise FormatError("qcow2 disk image", path=disk,
                          expected="a raw image (Firecracker reads raw files only; "
                                   "qemu-img convert -O raw)")
    return path


def _check_osv_kernel(kernel) -> bool:
    """Whether ``kernel`` is an OSv kernel (one that keeps OSv's boot contract); such a kernel
    must have been patched for Firecracker.  Any other kernel is judged by Firecracker's
    loader rules alone."""
    from ..errors import KernelError
    from ..image.kernel import load_kernel
    from ..image.vmlinux import existing_linux64_entry

    try:
        k = load_kernel(kernel)
    except KernelError:
        return False

    if k.pvh_entry is None and existing_linux64_entry(k) is None and \
            not (layout.STUB_START <= k.entry < layout.STUB_END):
        raise FormatError("the kernel has neither a Linux 64-bit entry nor a PVH note",
                          path=kernel, expected="a vmlinux (osvkit build --format vmlinux)")
    return True


def _check_initrd(initrd, memory) -> str:
    from ..fileio import open_input
    from .kernel import initrd_address

    with open_input(initrd, "an initrd file") as f:
        size = os.fstat(f.fileno()).st_size
    try:
        initrd_address(_parse_memory_mib(memory) * layout.MiB, size)
    except FormatError as exc:
        raise exc.with_path(initrd)
    return os.path.abspath(os.fspath(initrd))


def build_firecracker_config(kernel, *, disk=None, memory="128M", cpus: int = 1,
                             boot_args: str = "", initrd=None) -> FirecrackerConfig:
    """The document for ``kernel`` (any kernel Firecracker's loader accepts; an OSv kernel
    patched by ``osvkit build --format vmlinux``) and an optional ``initrd``."""
    from .kernel import read_fc_kernel

    read_fc_kernel(kernel)
    osv = _check_osv_kernel(kernel)
    if not (cpus == 1 or (cpus % 2 == 0 and 2 <= cpus <= MAX_VCPUS)):
        raise UsageError(f"{cpus} vCPUs", expected=f"1 or an even number up to {MAX_VCPUS} "
                                                   "(Firecracker's machine-config rule)")
    doc = {
        "boot-source": {
            "kernel_image_path": os.path.abspath(os.fspath(kernel)),
            "boot_args": fc_boot_args(boot_args) if osv else _other_boot_args(boot_args),
        },
        "drives": [],
        "machine-config": {
            "vcpu_count": cpus,
            "mem_size_mib": _parse_memory_mib(memory),
            "smt": False,
        },
    }
    if initrd is not None:
        doc["boot-source"]["initrd_path"] = _check_initrd(initrd, memory)
    if disk is not None:
        doc["drives"].append({
            "drive_id": "rootfs",
            "path_on_host": _check_disk(disk),
            "is_root_device": False,
            "is_read_only": False,
        })
    return FirecrackerConfig(document=doc)


def write_firecracker_config(kernel, output, **kw) -> FirecrackerConfig:
    """Build the document and write it (JSON) to ``output`` atomically."""
    check_not_input(output, [("the kernel", kernel), ("the --disk image", kw.get("disk"))])
    cfg = build_firecracker_config(kernel, **kw)
    write_atomic(output, cfg.to_json().encode())
    cfg.output = os.fspath(output)
    return cfg
