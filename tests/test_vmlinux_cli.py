"""``osvkit build --format vmlinux`` and ``osvkit inspect`` on kernel ELFs, as subprocesses."""

from __future__ import annotations

import json

from fcpath_kernels import make_kernel
from osvkit.image.kernel import check_kernel
from osvkit.image.vmlinux import patch_vmlinux


def test_build_vmlinux_cli(cli, tmp_path):
    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel())
    out = tmp_path / "kernel.elf"
    r = cli("build", src, "--format", "vmlinux", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["entry"], d["pvh_entry"], d["added"]) == (0x100000, 0x100300, ["linux64", "pvh"])
    assert out.read_bytes() == patch_vmlinux(check_kernel(make_kernel()))[0]
    r = cli("build", src, "--format", "vmlinux", "-o", out, "--no-pvh")
    assert r.returncode == 0 and b"added: linux64 (" in r.stdout
    assert check_kernel(out.read_bytes()).pvh_entry is None


def test_inspect_kernel_elf_cli(cli, tmp_path):
    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel(entry=0x201100, pvh_note=0x201200))
    r = cli("inspect", src, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["kind"] == "kernel-elf"
    assert d["protocols"] == ["linux64", "pvh", "start32"]
    assert [(e["protocol"], e["address"], e["provider"]) for e in d["entries"]] == [
        ("linux64", 0x201100, "kernel"), ("pvh", 0x201200, "kernel"), ("start32", 0x201000, "kernel")]
    assert "bootfs_size" not in d
    r = cli("inspect", src)
    assert r.returncode == 0
    assert b"linux64  0x201100" in r.stdout and b"start32  0x201000" in r.stdout


def test_cli_errors_exit_65(cli, tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_bytes(make_kernel(machine=3))
    out = tmp_path / "out.elf"
    r = cli("build", bad, "--format", "vmlinux", "-o", out)
    assert r.returncode == 65
    assert r.stderr.decode().strip() == (f"error: {bad}: ELF machine EM_386, expected EM_X86_64")
    assert not out.exists()
    full = tmp_path / "full.elf"
    full.write_bytes(make_kernel(extra_phdrs=34))
    r = cli("build", full, "--format", "vmlinux", "-o", out)
    assert r.returncode == 65 and b"no room" in r.stderr and r.stderr.count(b"\n") == 1
    r = cli("build", tmp_path / "missing.elf", "--format", "vmlinux", "-o", out)
    assert r.returncode == 66


def test_inspect_bootfs_size(cli, tmp_path):
    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel(extra_symbols={"bootfs_start": 0x40202100,
                                               "bootfs_end": 0x40202100 + 0x480}))
    r = cli("inspect", src, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bootfs_size"] == 0x480
    assert b"bootfs: 1152 bytes" in cli("inspect", src).stdout


def test_qemu_pvh_needs_pvh_note(tmp_path):
    import pytest

    from osvkit.errors import KernelError
    from osvkit.run.pvh import qemu_pvh_argv

    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel())
    with pytest.raises(KernelError, match="no XEN_ELFNOTE_PHYS32_ENTRY note"):
        qemu_pvh_argv(src)


def test_build_refuses_options_of_the_other_format(cli, tmp_path):
    """A vmlinux has no command line or partition, a usr.img no PVH note: such options were
    silently ignored; now a usage error names them.  An OSVKIT_CMDLINE in the environment
    is not an option the user typed for this build and stays harmless."""
    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel())
    out = tmp_path / "kernel.elf"
    r = cli("build", src, "--format", "vmlinux", "-o", out, "--cmdline", "/x", "--size", "1M")
    assert r.returncode == 64 and not out.exists()
    err = r.stderr.decode()
    assert err.startswith("error: --cmdline, --size with --format vmlinux (the vmlinux ELF "
                          "carries no command line") and err.count("\n") == 1
    r = cli("build", src, "-o", tmp_path / "usr.img", "--no-pvh")
    assert r.returncode == 64 and b"--pvh/--no-pvh with --format usr" in r.stderr
    r = cli("build", src, "-o", tmp_path / "usr.img", "--handover", "start64")
    assert r.returncode == 64 and b"--handover with --format usr" in r.stderr
    r = cli("build", src, "--format", "vmlinux", "-o", out, env={"OSVKIT_CMDLINE": "/x"})
    assert r.returncode == 0, r.stderr


def test_build_vmlinux_twice_cli(cli, tmp_path):
    src = tmp_path / "loader.elf"
    src.write_bytes(make_kernel())
    once, twice = tmp_path / "once.elf", tmp_path / "twice.elf"
    assert cli("build", src, "--format", "vmlinux", "-o", once).returncode == 0
    r = cli("build", once, "--format", "vmlinux", "-o", twice, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["added"], d["kept"]) == ([], ["linux64", "pvh"])
    assert twice.read_bytes() == once.read_bytes()
