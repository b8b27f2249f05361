"""qemu-pvh: boot a kernel ELF through QEMU's own PVH loader (``-kernel kernel.elf``).

QEMU accepts an uncompressed ELF for ``-kernel`` only when it carries a
``XEN_ELFNOTE_PHYS32_ENTRY`` note: on ``pc`` the ``pvh.bin``
option ROM and on ``microvm`` qboot build ``hvm_start_info`` and enter the note's address in
32-bit protected mode -- osvkit's PVH stub (``osvkit build --format vmlinux``), OSv's own
``hvm_xen_start``, or any other kernel with the note (Linux built with ``CONFIG_PVH``): which
kernel it is, QEMU decides; osvkit only checks that the note is there and the memory is large
enough.  An ``initrd`` is QEMU's own ``-initrd`` (module 0 of ``hvm_start_info``).  On microvm (``acpi=off``, ``auto-kernel-cmdline=on``) QEMU appends one
``virtio_mmio.device=512@0x...:<irq>`` entry per virtio-mmio device to the command line; attach
a disk (``disk=``) to see one.

:func:`machine_argv` and :func:`disk_argv` are shared with qemu-fc (:mod:`.fcloader`).  The
guest runs under TCG with ``-no-reboot``: OSv's power-off (and the probe's) ends in a triple
fault, and a Linux guest's reboot (``reboot=k`` or ``reboot=t``) in a reset, either of which
then stops QEMU -- as a guest reboot stops a Firecracker VM.
"""

from __future__ import annotations

import os

from ..errors import UsageError
from ..units import memory_mib
from .qemu import find_qemu, opt_value

MACHINES = ("pc", "microvm")
MICROVM = "microvm,x-option-roms=off,pit=on,pic=on,rtc=off,auto-kernel-cmdline=on,acpi=off"
"""OSv's scripts/run.py microvm options, but with the i8254 PIT and the i8259 PIC that
Firecracker also gives its guests (an in-kernel PIT and irqchip): under TCG a Linux guest has
no other clock to calibrate against (no HPET, no TSC-deadline timer) and without them hangs
before it starts its second CPU."""


MiB = 1024 * 1024


def guest_memory(memory: str | int) -> int:
    """Guest memory in bytes, from a size as every VMM option takes it
    (:func:`osvkit.units.memory_mib`: ``128`` and ``"128M"`` are 128 MiB); at least 2 MiB."""
    size = memory_mib(memory) * MiB
    if size < 2 * MiB:
        raise UsageError(f"guest memory {memory!r}",
                         expected="a whole number of MiB, at least 2M (e.g. 128M)")
    return size


def machine_argv(machine: str, *, memory: str | int, cpus: int, accel: str = "tcg") -> list[str]:
    if machine not in MACHINES:
        raise UsageError(f"machine {machine!r}", expected=" or ".join(MACHINES))
    mem = f"{guest_memory(memory) // MiB}M"
    if cpus < 1:
        raise UsageError(f"{cpus} vCPUs", expected="at least 1")
    argv = [find_qemu(), "-accel", accel,
            "-M", "pc" if machine == "pc" else MICROVM,
            "-m", mem, "-smp", str(cpus), "-no-reboot", "-nodefaults", "-display", "none"]
    if machine == "microvm":
        argv += ["-global", "virtio-mmio.force-legacy=off"]
    return argv


def check_disk_cmdline(machine: str, disk, cmdline: str) -> None:
    """On ``pc`` the disk is virtio-blk over PCI, so OSv's ``--nopci`` (among the leading
    options) would hide it: refuse that combination."""
    from ..cmdline import split_cmdline

    if disk is None or machine != "pc":
        return
    if "--nopci" in split_cmdline(cmdline, strip_mmio=True).options:
        raise UsageError("--nopci with --disk on the pc machine (the disk is virtio-blk "
                         "over PCI, which --nopci hides from OSv)",
                         expected="no --nopci on pc, or --machine microvm (virtio-mmio)")


def disk_argv(machine: str, disk) -> list[str]:
    """virtio-blk: PCI on pc, virtio-mmio on microvm."""
    if disk is None:
        return []
    from ..disk import detect_format

    path = os.fspath(disk)
    fmt = detect_format(path)       # missing/directory/foreign image: a one-line error
    dev = "virtio-blk-pci" if machine == "pc" else "virtio-blk-device"
    return ["-drive", f"file={opt_value(path)},if=none,id=hd0,format={fmt}", "-device", f"{dev},drive=hd0"]


def qemu_pvh_argv(kernel, *, machine: str = "pc", cmdline: str = "", memory="256M",
                  cpus: int = 1, disk=None, accel: str = "tcg", initrd=None) -> list[str]:
    """The QEMU command line (without the console/boot-done plumbing the runner adds).
    Any ELF with a PVH note: QEMU's loader decides the rest."""
    from ..firecracker.kernel import read_pvh_kernel

    k = read_pvh_kernel(kernel)
    if guest_memory(memory) < k.kernel_end + MiB:
        from ..errors import LayoutError

        raise LayoutError(f"guest memory of {guest_memory(memory) // MiB} MiB is too small for "
                          f"the kernel (loaded up to {k.kernel_end:#x})",
                          expected=f"at least {(k.kernel_end + 2 * MiB - 1) // MiB} MiB")
    check_disk_cmdline(machine, disk, cmdline)
    extra = []
    if initrd is not None:
        from ..fileio import open_input

        with open_input(initrd, "an initrd file"):       # missing/unreadable: exit 66
            pass
        extra = ["-initrd", os.fspath(initrd)]
    return machine_argv(machine, memory=memory, cpus=cpus, accel=accel) + \
        ["-kernel", os.fspath(kernel), "-append", cmdline] + extra + disk_argv(machine, disk)


def command(spec, workdir: str) -> list[str]:
    """The ``qemu-pvh`` backend's command for ``spec`` (:class:`~osvkit.run.spec.RunSpec`)."""
    return qemu_pvh_argv(spec.image, machine=spec.machine, cmdline=spec.line,
                         memory=spec.memory, cpus=spec.cpus, disk=spec.disk, accel=spec.accel,
                         initrd=spec.initrd) + list(spec.extra)


def run(spec):
    """Boot ``spec.image`` with QEMU's PVH loader and return the runner's RunResult."""
    from .qemu import run_qemu

    result = run_qemu(command(spec, ""), timeout=spec.timeout, expect=spec.expect,
                      console_path=spec.console_path)
    result.vmm = "qemu-pvh"
    return result


def run_qemu_pvh(kernel, *, machine: str = "pc", cmdline: str = "", memory="256M",
                 cpus: int = 1, disk=None, accel: str = "tcg", timeout: float = 60,
                 expect: str | None = None, console_path=None, initrd=None):
    """Boot ``kernel`` with QEMU's PVH loader and return the runner's RunResult."""
    from .spec import RunSpec

    return run(RunSpec(kernel, vmm="qemu-pvh", machine=machine, cmdline=cmdline, memory=memory,
                       cpus=cpus, disk=disk, accel=accel, timeout=timeout, expect=expect,
                       console_path=console_path, initrd=initrd))
