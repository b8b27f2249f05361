"""``osvkit run KERNEL --vmm qemu-fc|qemu-pvh|firecracker`` through the CLI."""

from __future__ import annotations

import json
import os

import pytest

from osvkit.image.vmlinux import build_vmlinux
from osvkit.probe import build_probe, parse_report


@pytest.fixture(scope="module")
def vmlinux(tmp_path_factory):
    d = tmp_path_factory.mktemp("fcrun")
    (d / "probe.elf").write_bytes(build_probe())
    build_vmlinux(d / "probe.elf", d / "kernel.elf")
    return d / "kernel.elf"


@pytest.mark.qemu
def test_run_qemu_fc_cli(qemu, cli, vmlinux):
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--cmdline", "--nopci /cli", "--memory", "128M",
            "--cpus", "4", "--timeout", "30", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["vmm"] == "qemu-fc" and d["exit_reason"] == "poweroff" and d["boot_done"] is not None
    rep = parse_report(d["console"])
    assert (rep.loader, rep.cmdline, rep.cpus, rep.image_ok) == ("osvkit-vmlinux64", "--nopci /cli", 4, True)


@pytest.mark.qemu
def test_run_qemu_pvh_cli_microvm(qemu, cli, vmlinux):
    r = cli("run", vmlinux, "--vmm", "qemu-pvh", "--machine", "microvm", "--cmdline", "/m",
            "--memory", "128M", "--timeout", "30", "--json")
    assert r.returncode == 0, r.stderr
    rep = parse_report(json.loads(r.stdout)["console"])
    assert (rep.loader, rep.cmdline) == ("osvkit-pvh", "/m")


def test_run_dry_run_commands(cli, vmlinux, qemu):
    r = cli("run", vmlinux, "--vmm", "qemu-pvh", "--machine", "microvm", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    cmd = json.loads(r.stdout)["command"]
    assert cmd[cmd.index("-M") + 1] == ("microvm,x-option-roms=off,pit=off,pic=off,rtc=off,"
                                        "auto-kernel-cmdline=on,acpi=off")
    assert cmd[cmd.index("-kernel") + 1] == str(vmlinux)
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--dry-run", "--json")
    cmd = json.loads(r.stdout)["command"]
    assert cmd[cmd.index("-kernel") + 1] == "$OSVKIT_RUN_DIR/fc-loader.elf"
    assert cmd[cmd.index("-initrd") + 1] == str(vmlinux)


def test_run_firecracker_without_binary_exits_70(cli, vmlinux):
    r = cli("run", vmlinux, "--vmm", "firecracker", env={"PATH": "/nonexistent"})
    assert r.returncode == 70
    assert r.stderr.decode().strip() == ("error: no firecracker binary on PATH, expected "
                                         "firecracker installed, or --firecracker PATH")


def test_run_qemu_fc_refuses_long_cmdline(cli, vmlinux):
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--cmdline", "x" * 2048)
    assert r.returncode == 65
    assert r.stderr.count(b"\n") == 1
