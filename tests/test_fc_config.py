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

SCHEMA = Path(__file__).resolve().parent / "data" / "firecracker-vm-config.schema.json"
"""A JSON Schema of the config-file document kept in the repository (restated from
Firecracker's API description)."""
FULL_API = os.environ.get("OSVKIT_FIRECRACKER_API")
"""Optional: a path to Firecracker's own API description (firecracker-api.yaml); when set,
documents are validated against it too."""


@pytest.fixture
def vmlinux(tmp_path) -> Path:
    p = tmp_path / "kernel.elf"
    p.write_bytes(patch_vmlinux(check_kernel(make_kernel()))[0])
    return p


class _Validators:
    """The repository's schema, plus Firecracker's full API description when given."""

    def __init__(self, validators):
        self.validators = validators

    def validate(self, doc):
        for v in self.validators:
            v.validate(doc)

    def is_valid(self, doc) -> bool:
        return all(v.is_valid(doc) for v in self.validators)


@pytest.fixture(scope="module")
def validator():
    # jsonschema is in the test extra: a missing one must fail, not skip the test that checks
    # the document against the schema
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validators = [jsonschema.Draft7Validator(schema)]
    if FULL_API:
        import yaml

        spec = yaml.safe_load(Path(FULL_API).read_text())
        validators.append(jsonschema.Draft4Validator(
            {"definitions": spec["definitions"], "$ref": "#/definitions/FullVmConfiguration"}))
    return _Validators(validators)


def test_schema_rejects_what_firecracker_rejects(validator):
    ok = {"boot-source": {"kernel_image_path": "/k", "initrd_path": "/i", "boot_args": ""},
          "drives": [{"drive_id": "d", "is_root_device": False, "path_on_host": "/d",
                      "is_read_only": True}],
          "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}
    validator.validate(ok)
    bad = [
        {"machine-config": ok["machine-config"]},                               # no boot-source
        {**ok, "boot-source": {"boot_args": "x"}},                               # no kernel
        {**ok, "drives": [{"drive_id": "d", "path_on_host": "/d"}]},             # no is_root_device
        {**ok, "machine-config": {"vcpu_count": 33, "mem_size_mib": 128}},       # over 32 vCPUs
        {**ok, "machine-config": {"vcpu_count": 0, "mem_size_mib": 128}},
        {**ok, "machine-config": {"vcpu_count": 1}},                             # no memory
        {**ok, "machine-config": {"vcpu_count": 1, "mem_size_mib": "128"}},      # wrong type
    ]
    for doc in bad:
        assert not validator.is_valid(doc), doc


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


def test_initrd_and_any_kernel(cli, tmp_path, validator):
    from anykernels import linux_like_elf

    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(linux_like_elf(b"\xf4"))          # not OSv: Firecracker's rules only
    rd = tmp_path / "initrd.img"
    rd.write_bytes(bytes(8192))
    out = tmp_path / "vm.json"
    r = cli("firecracker-config", kernel, "-o", out, "--initrd", rd, "--cmdline",
            "console=ttyS0")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    validator.validate(doc)
    assert doc["boot-source"]["initrd_path"] == str(rd)
    assert doc["boot-source"]["boot_args"] == "console=ttyS0"      # no OSv --nopci for Linux
    assert f"initrd {rd}" in r.stdout.decode()
    r = cli("firecracker-config", kernel, "-o", out, "--initrd", tmp_path / "none")
    assert r.returncode == 66 and r.stderr.decode() == f"error: {tmp_path / 'none'}: no such file\n"
    rd.write_bytes(bytes(3 << 20))
    r = cli("firecracker-config", kernel, "-o", out, "--initrd", rd, "--memory", "2M")
    assert r.returncode == 65
    assert r.stderr.decode() == (f"error: {rd}: an initrd of 3145728 bytes is larger than the "
                                 "guest's 2 MiB of low RAM, expected a larger --memory\n")
    bad = tmp_path / "arm64"
    bad.write_bytes(linux_like_elf(b"\xf4", machine=183))
    r = cli("firecracker-config", bad, "-o", out)
    assert r.returncode == 65 and "an ELF for AArch64" in r.stderr.decode()
