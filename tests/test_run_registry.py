"""The run backends' registry (the one list of VMMs) and :class:`RunSpec`."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from osvkit.errors import UsageError
from osvkit.run import BACKENDS, KERNEL_VMMS, VMMS, RunSpec, command, get_backend
from osvkit.run.backends import IMAGE, KERNEL, one_of

MiB = 1 << 20


def test_the_registry_is_the_one_list_of_vmms():
    import osvkit.config
    import osvkit.demo
    import osvkit.verify

    assert VMMS == ("qemu", "qemu-pvh", "qemu-fc", "firecracker")
    assert KERNEL_VMMS == ("qemu-pvh", "qemu-fc", "firecracker")
    assert {n: b.boots for n, b in BACKENDS.items()} == {
        "qemu": IMAGE, "qemu-pvh": KERNEL, "qemu-fc": KERNEL, "firecracker": KERNEL}
    assert osvkit.config.VMMS is VMMS and osvkit.verify.KNOWN_VMMS is VMMS
    assert set(osvkit.demo.EXPECTED_LOADER) == set(VMMS)
    # the build-file JSON Schema is static text: it must list the same names
    schema = json.loads(resources.files("osvkit.schema").joinpath(
        "osvkit-build.schema.json").read_text())
    enums = []

    def walk(node):
        if isinstance(node, dict):
            if "enum" in node and "qemu" in node["enum"]:
                enums.append(node["enum"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(schema)
    assert enums and all(tuple(e) == VMMS for e in enums)


def test_unknown_vmm():
    with pytest.raises(UsageError) as exc:
        get_backend("xen")
    assert str(exc.value) == "VMM 'xen', expected qemu, qemu-pvh, qemu-fc or firecracker"
    assert one_of(["a"]) == "a" and one_of(["a", "b"]) == "a or b"


def test_runspec():
    spec = RunSpec("k.elf", vmm="qemu-fc", cmdline="console=ttyS0")
    assert spec.line == "console=ttyS0" and RunSpec("x").line == ""
    with pytest.raises(Exception):
        spec.vmm = "qemu"                            # frozen
    other = spec.replace(cpus=2)
    assert (other.cpus, spec.cpus, other.vmm) == (2, 1, "qemu-fc")
    d = other.to_dict()
    assert d["image"] == "k.elf" and d["extra"] == [] and d["fc_protocol"] == "linux"


def test_timeout_is_checked_by_every_backend(tmp_path):
    for vmm in VMMS:
        with pytest.raises(UsageError, match="timeout"):
            get_backend(vmm).run(RunSpec(tmp_path / "x", vmm=vmm, timeout=float("nan")))


def test_dry_run_with_cmdline_names_the_copy_it_boots(cli, tmp_path, qemu):
    """Issue 14: ``run --dry-run --cmdline X`` printed the original image, which would boot
    with its own command line; the run boots a raw copy holding X."""
    img = tmp_path / "usr.img"
    img.write_bytes(bytes(MiB))
    r = cli("run", img, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    drive = [a for a in json.loads(r.stdout)["command"] if a.startswith("file=")]
    assert drive == [f"file={img},format=raw,if=virtio,cache=unsafe"]
    r = cli("run", img, "--dry-run", "--json", "--cmdline", "/hello")
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)["command"]
    drive = [a for a in argv if a.startswith("file=")]
    assert drive == ["file=$OSVKIT_RUN_DIR/image.raw,format=raw,if=virtio,cache=unsafe"]
    assert str(img) not in " ".join(argv)
    # the library's command for the same spec, in a given directory, is the one the run uses
    argv = command(RunSpec(img, cmdline="/hello"), "/run/dir")
    assert "file=/run/dir/image.raw,format=raw,if=virtio,cache=unsafe" in argv
    # a missing image is still refused first
    r = cli("run", tmp_path / "none.img", "--dry-run", "--cmdline", "/x")
    assert r.returncode == 66


def test_kernel_backends_dry_run_with_initrd(cli, tmp_path, qemu):
    from anykernels import linux_like_elf, pvh_note

    k = tmp_path / "vmlinux"
    k.write_bytes(linux_like_elf(b"\xf4", notes=[[pvh_note(0x1000000)]]))
    rd = tmp_path / "initrd"
    rd.write_bytes(bytes(4096))
    r = cli("run", k, "--vmm", "qemu-fc", "--initrd", rd, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)["command"]
    assert argv[argv.index("-kernel") + 1] == "$OSVKIT_RUN_DIR/fc-loader.elf"
    assert argv[argv.index("-initrd") + 1] == "$OSVKIT_RUN_DIR/fc-module.img"
    r = cli("run", k, "--vmm", "qemu-pvh", "--initrd", rd, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)["command"]
    assert argv[argv.index("-initrd") + 1] == str(rd) and argv[argv.index("-kernel") + 1] == str(k)
