"""A real Linux kernel as the independent witness of ``run --vmm qemu-fc`` and ``qemu-pvh``.

Debian's amd64 kernel (tests/linuxkernel.py) boots with an initramfs whose static ``/init``
reports what Linux saw.  Under qemu-fc Linux's own console must show

* the exact command line (``Command line:`` and the init's /proc/cmdline);
* ``BIOS-e820`` lines equal to Firecracker's map for the memory size -- computed with osvkit's
  builder AND written out literally below, so a wrong builder fails the test;
* the MP table found at 0x9FC00 (Firecracker's floating pointer) and the vCPU count from it
  (``Processors: N``: Linux has no ACPI here, the RSDP address Firecracker puts in the zero
  page, 0xE0000, holds no tables under QEMU);
* the init's report: command line, CPUs online, the System RAM ranges.

The qemu-fc matrix (protocol x vCPUs x memory) is covered pairwise in four boots so that every
protocol runs with 1 and 2 vCPUs and with 256 MiB and 3 GiB.  Under qemu-pvh (QEMU's own PVH
loader, pc and microvm) the same init runs.
"""

from __future__ import annotations

import json

import pytest

from linuxkernel import console_e820, init_report
from osvkit.boot.firecracker import firecracker_e820

pytestmark = pytest.mark.qemu

MiB = 1 << 20
GiB = 1 << 30
CMDLINE = "console=ttyS0 reboot=k panic=-1 osvkit.witness=linux"
EXPECT = "^INIT done"
TIMEOUT = 300

RAM, RESERVED = 1, 2
# Firecracker's e820 (>= v1.14) as Linux prints it (sorted by address): RAM up to 0x9FC00, the
# system data region 0x9FC00-0xE0000 (MP table, ACPI) reserved, RAM from 1 MiB to the end of
# memory or 3 GiB (where the 32-bit MMIO gap starts), the PCI MMCONFIG window
# 0xEEC00000-0xFEC00000 reserved; nothing at 0xE0000-0x100000.
FC_E820 = {
    256 * MiB: [(0x0, 0x9FC00, RAM), (0x9FC00, 0x40400, RESERVED),
                (0x100000, 0x0FF00000, RAM), (0xEEC00000, 0x10000000, RESERVED)],
    3 * GiB: [(0x0, 0x9FC00, RAM), (0x9FC00, 0x40400, RESERVED),
              (0x100000, 0xBFF00000, RAM), (0xEEC00000, 0x10000000, RESERVED)],
}
ISA_HOLE = (0xA0000, 0x60000, RESERVED)
"""Linux's PVH entry adds this reservation to the memory map it is given."""


def sanitized(entries) -> list[tuple[int, int, int]]:
    """An e820 map as Linux prints it: sorted by address, overlapping or touching ranges of the
    same type merged."""
    out: list[list[int]] = []
    for addr, size, kind in sorted(entries):
        if out and out[-1][2] == kind and addr <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], addr + size - out[-1][0])
        else:
            out.append([addr, size, kind])
    return [tuple(e) for e in out]


def boot(cli, kernel, initrd, *, vmm: str, cpus: int, memory: str, protocol: str | None = None,
         machine: str = "pc", cmdline: str = CMDLINE) -> dict:
    args = ["run", kernel, "--vmm", vmm, "--machine", machine, "--cpus", str(cpus),
            "--memory", memory, "--initrd", initrd, "--cmdline", cmdline, "--expect", EXPECT,
            "--timeout", str(TIMEOUT), "--json"]
    if protocol:
        args += ["--fc-protocol", protocol]
    r = cli(*args)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, (r.stderr.decode(errors="replace"), out[-3000:])
    res = json.loads(out)
    assert res["exit_reason"] == "expect", res["console"][-3000:]
    return res


def check_init(console: str, *, cpus: int, cmdline: str = CMDLINE):
    rep = init_report(console)
    assert rep.cmdline == cmdline
    assert rep.cpus == cpus
    return rep


@pytest.mark.parametrize("protocol,cpus,mem", [
    ("linux", 1, 256 * MiB), ("linux", 2, 3 * GiB), ("pvh", 2, 256 * MiB), ("pvh", 1, 3 * GiB)])
def test_qemu_fc(cli, linux_kernel, linux_initramfs, protocol, cpus, mem):
    res = boot(cli, linux_kernel.vmlinux, linux_initramfs, vmm="qemu-fc", protocol=protocol,
               cpus=cpus, memory=f"{mem // MiB}M")
    console = res["console"].replace("\r\n", "\n")
    # the command line, as the kernel took it
    assert f"\nCommand line: {CMDLINE}\n" in "\n" + _untimed(console)
    # Firecracker's e820, as Linux received it (PVH: plus Linux's own ISA-hole entry)
    fc = firecracker_e820(mem)
    assert sanitized(fc) == FC_E820[mem]             # osvkit's builder vs the literal facts
    expected = FC_E820[mem] if protocol == "linux" else sanitized(FC_E820[mem] + [ISA_HOLE])
    assert console_e820(console) == expected
    # Firecracker's MP table at 0x9FC00, with one processor entry per vCPU
    assert "found SMP MP-table at [mem 0x0009fc00-0x0009fc0f]" in console
    assert f"Processors: {cpus}\n" in _untimed(console)
    if cpus > 1:
        assert f"smp: Brought up 1 node, {cpus} CPUs" in console
    # the init ran: same command line, CPUs, and RAM = the usable e820 ranges (Linux keeps
    # page 0 for itself)
    rep = check_init(console, cpus=cpus)
    usable = [(a, a + s - 1) for a, s, t in expected if t == RAM]
    assert rep.ram == [(0x1000, usable[0][1])] + usable[1:]


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_qemu_pvh(cli, linux_kernel, linux_initramfs, machine):
    res = boot(cli, linux_kernel.vmlinux, linux_initramfs, vmm="qemu-pvh", machine=machine,
               cpus=2, memory="256M")
    rep = check_init(res["console"], cpus=2)
    assert rep.ram and rep.ram[-1][1] < 256 * MiB


def test_qemu_fc_bzimage(cli, linux_kernel, linux_initramfs):
    """Firecracker's bzImage path (code32_start + 0x200, 64-bit protocol) boots the same kernel
    from the package's vmlinuz."""
    res = boot(cli, linux_kernel.bzimage, linux_initramfs, vmm="qemu-fc", cpus=1, memory="256M")
    assert console_e820(res["console"]) == FC_E820[256 * MiB]
    check_init(res["console"], cpus=1)


def _untimed(console: str) -> str:
    """The console without printk's ``[    0.000000] `` prefixes."""
    import re

    return re.sub(r"^\[\s*[0-9]+\.[0-9]+\] ", "", console, flags=re.M)
