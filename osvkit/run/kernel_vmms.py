"""``run_image`` / ``image_command`` branches for the VMMs that boot a kernel ELF directly:
``qemu-fc`` (:mod:`.fcloader`), ``qemu-pvh`` (:mod:`.pvh`) and ``firecracker``
(:mod:`.firecracker`)."""

from __future__ import annotations

import os

KERNEL_VMMS = ("qemu-fc", "qemu-pvh", "firecracker")


def kernel_command(vmm: str, kernel, *, accel: str = "tcg", memory="256M", cpus: int = 1,
                   cmdline: str | None = None, machine: str = "pc", disk=None,
                   firecracker=None, fc_protocol: str = "linux",
                   workdir: str = "$OSVKIT_RUN_DIR", initrd=None) -> list[str]:
    """The command ``run_kernel`` runs (for ``osvkit run --dry-run``); generated files
    (the qemu-fc loader, the Firecracker config) are named under ``workdir``."""

    line = cmdline or ""
    if vmm == "qemu-pvh":
        from .pvh import qemu_pvh_argv
        return qemu_pvh_argv(kernel, machine=machine, cmdline=line, memory=memory, cpus=cpus,
                             disk=disk, accel=accel, initrd=initrd)
    if vmm == "qemu-fc":
        from ..firecracker.kernel import read_fc_kernel
        from .fcloader import check_fc_cmdline, initrd_size, plan_loader, qemu_fc_argv
        from .pvh import guest_memory

        # refuse here what run_qemu_fc would refuse, so --dry-run prints no command that fails
        mem = guest_memory(memory)
        check_fc_cmdline(line)
        plan_loader(read_fc_kernel(kernel), memory=mem, cpus=cpus, protocol=fc_protocol,
                    initrd_size=initrd_size(initrd))
        module = kernel if initrd is None else os.path.join(workdir, "fc-module.img")
        return qemu_fc_argv(module, os.path.join(workdir, "fc-loader.elf"), machine=machine,
                            cmdline=line, memory=mem, cpus=cpus, disk=disk, accel=accel)
    if vmm == "firecracker":
        from .firecracker import firecracker_command
        return firecracker_command(os.path.join(workdir, "vm.json"), firecracker=firecracker)
    raise ValueError(vmm)


def run_kernel(vmm: str, kernel, *, accel: str = "tcg", memory="256M", cpus: int = 1,
               timeout: float = 60, expect: str | None = None, cmdline: str | None = None,
               machine: str = "pc", disk=None, firecracker=None, fc_protocol: str = "linux",
               console_path=None, initrd=None):
    line = cmdline or ""
    if vmm == "qemu-pvh":
        from .pvh import run_qemu_pvh
        return run_qemu_pvh(kernel, machine=machine, cmdline=line, memory=memory, cpus=cpus,
                            disk=disk, accel=accel, timeout=timeout, expect=expect,
                            console_path=console_path, initrd=initrd)
    if vmm == "qemu-fc":
        from .fcloader import run_qemu_fc
        return run_qemu_fc(kernel, machine=machine, cmdline=line, memory=memory, cpus=cpus,
                           disk=disk, accel=accel, timeout=timeout, expect=expect,
                           console_path=console_path, protocol=fc_protocol, initrd=initrd)
    if vmm == "firecracker":
        from .firecracker import run_firecracker
        return run_firecracker(kernel, firecracker=firecracker, disk=disk, memory=memory,
                               cpus=cpus, cmdline=line, timeout=timeout, expect=expect,
                               console_path=console_path)
    raise ValueError(vmm)
