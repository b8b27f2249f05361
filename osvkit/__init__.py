"""osvkit: build, patch, inspect and boot-verify OSv unikernel images.

The public Python API.  Names are imported lazily, so ``import osvkit`` stays cheap and
pulls in Keystone, LIEF or QEMU helpers only when they are used::

    import osvkit
    kernel = osvkit.load_kernel("loader-stripped.elf")

Every error is an :class:`osvkit.OsvkitError` whose ``str()`` is a one-line message naming
the file and the problem.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "OsvkitError": "osvkit.errors",
    "FormatError": "osvkit.errors",
    "KernelError": "osvkit.errors",
    "CmdlineError": "osvkit.errors",
    "UsageError": "osvkit.errors",
    "load_kernel": "osvkit.image.kernel",
    "check_kernel": "osvkit.image.kernel",
    "Kernel": "osvkit.image.kernel",
    # [fcpath] Firecracker path: vmlinux patching, qemu-fc / qemu-pvh, Firecracker config
    "build_vmlinux": "osvkit.image.vmlinux",
    "patch_vmlinux": "osvkit.image.vmlinux",
    "inspect_kernel_elf": "osvkit.image.vmlinux",
    "VmlinuxResult": "osvkit.image.vmlinux",
    "build_firecracker_config": "osvkit.firecracker.config",
    "write_firecracker_config": "osvkit.firecracker.config",
    "run_qemu_fc": "osvkit.run.fcloader",
    "build_fc_loader": "osvkit.run.fcloader",
    "run_qemu_pvh": "osvkit.run.pvh",
    "run_firecracker": "osvkit.run.firecracker",
    # [/fcpath]
    # [bios]
    "build_usr_image": "osvkit.image.usrimg",
    "inspect_file": "osvkit.inspect",
    # [/bios]
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'osvkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
