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
    assert cmd[cmd.index("-M") + 1] == ("microvm,x-option-roms=off,pit=on,pic=on,rtc=off,"
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


def _one_line_error(r, status: int) -> str:
    err = r.stderr.decode()
    assert r.returncode == status, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    return err.strip()


def test_run_kernel_vmm_disk_errors(cli, vmlinux, qemu, tmp_path):
    """--disk that is missing or a directory: one line, exit 66 (was a FileNotFoundError
    traceback from the argv builder); --nopci with a PCI disk on pc: usage error."""
    for vmm in ("qemu-fc", "qemu-pvh"):
        r = cli("run", vmlinux, "--vmm", vmm, "--disk", tmp_path / "nodisk", "--timeout", "5")
        assert _one_line_error(r, 66) == f"error: {tmp_path / 'nodisk'}: no such file"
        r = cli("run", vmlinux, "--vmm", vmm, "--disk", tmp_path, "--timeout", "5")
        assert _one_line_error(r, 66).startswith(f"error: {tmp_path}: is a directory, expected a disk image")
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(4096))
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--disk", disk, "--cmdline", "--nopci /x",
            "--dry-run")
    assert "--nopci with --disk on the pc machine" in _one_line_error(r, 64)
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--machine", "microvm", "--disk", disk,
            "--cmdline", "--nopci /x", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    r = cli("run", vmlinux, "--vmm", "qemu-pvh", "--disk", disk, "--cmdline", "/x --nopci",
            "--dry-run", "--json")                  # an application argument, not OSv's option
    assert r.returncode == 0, r.stderr


def test_run_qemu_fc_dry_run_refuses_what_the_run_refuses(cli, vmlinux, qemu, tmp_path):
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--cmdline", "x" * 2048, "--dry-run")
    assert _one_line_error(r, 65) == ("error: command line is 2048 bytes, too long for "
                                      "firecracker, expected at most 2047 bytes (Firecracker's "
                                      "CMDLINE_MAX_SIZE 2048 including the NUL)")
    unpatched = vmlinux.parent / "probe.elf"     # Firecracker's loader accepts it (e_entry >= 1 MiB)
    r = cli("run", unpatched, "--vmm", "qemu-fc", "--dry-run")
    assert r.returncode == 0, r.stderr
    r = cli("run", vmlinux, "--vmm", "qemu-fc", "--cmdline", "x" * 2047, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr


def _stand_in(tmp_path, body: str):
    """An executable standing in for the firecracker binary (none can be installed here):
    it sees exactly the argv and config file osvkit gives a real one."""
    p = tmp_path / "firecracker"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def test_run_firecracker_plumbing(cli, vmlinux, tmp_path):
    """argv is ``--no-api --config-file FILE --boot-timer``; the config names the kernel and
    the --nopci command line; stdout is the console; the --boot-timer log line gives
    boot_done; a clean exit is a power-off; a hang is killed at the timeout."""
    fc = _stand_in(tmp_path, 'test "$1 $2 $4" = "--no-api --config-file --boot-timer" || exit 3\n'
                             'cat "$3"\n'
                             'echo "Guest-boot-time =   2500 us 2 ms, 1000 CPU us 1 CPU ms"\n')
    r = cli("run", vmlinux, "--vmm", "firecracker", "--firecracker", fc, "--cmdline", "/fc a",
            "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["vmm"], d["exit_reason"], d["boot_done"]) == ("firecracker", "poweroff", 0.0025)
    cfg = json.loads(d["console"][:d["console"].index("Guest-boot-time")])
    assert cfg["boot-source"] == {"kernel_image_path": str(vmlinux), "boot_args": "--nopci /fc a"}
    hang = _stand_in(tmp_path, "echo booting\nexec sleep 30\n")
    r = cli("run", vmlinux, "--vmm", "firecracker", "--firecracker", hang, "--timeout", "1",
            "--json")
    d = json.loads(r.stdout)
    assert (r.returncode, d["exit_reason"], d["console"]) == (1, "timeout", "booting\n")
    bad = _stand_in(tmp_path, "echo 'Error: bad config' >&2\nexit 1\n")
    r = cli("run", vmlinux, "--vmm", "firecracker", "--firecracker", bad)
    assert _one_line_error(r, 70) == "error: firecracker failed: Error: bad config"


def test_run_kernel_vmm_memory_and_cpus_errors(cli, vmlinux, qemu):
    """Sizes are osvkit's (bytes or K/M/G) for every kernel VMM: qemu-pvh passed --memory
    through to QEMU, where a bare '1' is 1 MiB (the guest hung until the timeout) and 'abc'
    was reported as a QEMU failure (exit 70); --cpus 0 went to -smp."""
    for vmm in ("qemu-pvh", "qemu-fc"):
        r = cli("run", vmlinux, "--vmm", vmm, "--memory", "1", "--dry-run")
        assert _one_line_error(r, 64) == ("error: guest memory '1', expected a whole number "
                                          "of MiB, at least 2M (e.g. 128M)")
        r = cli("run", vmlinux, "--vmm", vmm, "--memory", "abc", "--dry-run")
        assert _one_line_error(r, 64).startswith("error: --memory: bad memory size 'abc'")
        r = cli("run", vmlinux, "--vmm", vmm, "--cpus", "0", "--dry-run")
        # the CLI's shared option check names the flag before the backend sees the value
        assert _one_line_error(r, 64) == ("error: --cpus: bad CPU count 0, expected an integer "
                                          "from 1 to 255")
    r = cli("run", vmlinux, "--vmm", "qemu-pvh", "--memory", "2M", "--dry-run")
    assert _one_line_error(r, 65) == ("error: guest memory of 2 MiB is too small for the kernel "
                                      "(loaded up to 0x20a000), expected at least 4 MiB")
    r = cli("run", vmlinux, "--vmm", "qemu-pvh", "--memory", "4M", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    cmd = json.loads(r.stdout)["command"]
    assert cmd[cmd.index("-m") + 1] == "4M"
