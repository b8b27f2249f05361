"""``osvkit firecracker-config``: the document validates against Firecracker's API schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fcpath_kernels import make_kernel
from osvkit.errors import CmdlineError, FormatError, ToolError, UsageError
from osvkit.firecracker.config import build_firecracker_config
from osvkit.image.kernel import check_kernel
from osvkit.image.vmlinux import patch_vmlinux

SHARED = Path(__file__).resolve().parents[2] / "shared"
API = SHARED / "reference" / "firecracker-data" / "firecracker-api.yaml"


@pytest.fixture
def vmlinux(tmp_path) -> Path:
    p = tmp_path / "kernel.elf"
    p.write_bytes(patch_vmlinux(check_kernel(make_kernel()))[0])
    return p


@pytest.fixture(scope="module")
def validator():
    # jsonschema and PyYAML are in the test extra and shared/ is part of the checkout: a
    # missing one must fail, not skip the one test that checks the document against the API
    import jsonschema
    import yaml

    assert API.is_file(), f"{API} not found"
    spec = yaml.safe_load(API.read_text())
    schema = {"definitions": spec["definitions"], "$ref": "#/definitions/FullVmConfiguration"}
    return jsonschema.Draft4Validator(schema)


def test_document_validates(vmlinux, tmp_path, validator):
    disk = tmp_path / "usr.raw"
    disk.write_bytes(bytes(4096))
    cfg = build_firecracker_config(vmlinux, disk=disk, memory="256M", cpus=2,
                                   boot_args="--rootfs=rofs /hello")
    assert cfg.document == {
        "boot-source": {"kernel_image_path": str(vmlinux),
                        "boot_args": "--nopci --rootfs=rofs /hello"},
        "drives": [{"drive_id": "rootfs", "path_on_host": str(disk), "is_root_device": False,
                    "is_read_only": False}],
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": False},
    }
    validator.validate(cfg.document)
    # the schema really checks: a wrong type is rejected
    bad = json.loads(json.dumps(cfg.document))
    bad["machine-config"]["vcpu_count"] = "2"
    assert not validator.is_valid(bad)


def test_nopci_not_doubled(vmlinux):
    cfg = build_firecracker_config(vmlinux, boot_args="--nopci /x")
    assert cfg.document["boot-source"]["boot_args"] == "--nopci /x"
    assert cfg.document["drives"] == []
    # an application's own "--nopci" argument is not OSv's option: still prepended
    cfg = build_firecracker_config(vmlinux, boot_args="/x --nopci")
    assert cfg.document["boot-source"]["boot_args"] == "--nopci /x --nopci"
    cfg = build_firecracker_config(vmlinux, boot_args="--verbose --nopci /x")
    assert cfg.document["boot-source"]["boot_args"] == "--verbose --nopci /x"


def test_cmdline_limit(vmlinux):
    ok = "/" + "a" * (2047 - len("--nopci /"))          # 2047 bytes with "--nopci "
    cfg = build_firecracker_config(vmlinux, boot_args=ok)
    assert len(cfg.document["boot-source"]["boot_args"]) == 2047
    with pytest.raises(CmdlineError):
        build_firecracker_config(vmlinux, boot_args=ok + "b")


def test_refusals(vmlinux, tmp_path):
    q = tmp_path / "usr.qcow2"
    q.write_bytes(b"QFI\xfb" + bytes(100))
    with pytest.raises(FormatError, match="qcow2"):
        build_firecracker_config(vmlinux, disk=q)
    with pytest.raises(UsageError):
        build_firecracker_config(vmlinux, cpus=3)
    plain = tmp_path / "plain.elf"
    plain.write_bytes(make_kernel())
    with pytest.raises(FormatError, match="neither a Linux 64-bit entry nor a PVH note"):
        build_firecracker_config(plain)


def test_cli(cli, vmlinux, tmp_path, validator):
    out = tmp_path / "vm.json"
    r = cli("firecracker-config", vmlinux, "-o", out, "--cpus", "2", "--memory", "512M",
            "--boot-args", "/hello")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    validator.validate(doc)
    assert doc["machine-config"] == {"vcpu_count": 2, "mem_size_mib": 512, "smt": False}
    r = cli("firecracker-config", vmlinux, "-o", out, "--boot-args", "x" * 3000)
    assert r.returncode == 65
    # --cmdline, as on build/run/verify (--boot-args stays as an alias); OSVKIT_CMDLINE too
    r = cli("firecracker-config", vmlinux, "-o", out, "--cmdline", "/hi", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["boot-source"]["boot_args"] == "--nopci /hi"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSVKIT_")}
    r = cli("firecracker-config", vmlinux, "-o", out, env={**env, "OSVKIT_CMDLINE": "/env"})
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["boot-source"]["boot_args"] == "--nopci /env"


def test_no_firecracker_binary(vmlinux, monkeypatch):
    from osvkit.run.firecracker import run_firecracker

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolError) as exc:
        run_firecracker(vmlinux)
    assert exc.value.exit_status == 70
    assert str(exc.value) == "no firecracker binary on PATH, expected firecracker installed, " \
                             "or --firecracker PATH"
    with pytest.raises(ToolError):
        run_firecracker(vmlinux, firecracker=vmlinux.parent / "nope")
