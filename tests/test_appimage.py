"""usr.img with the application ROFS from a manifest (``osvkit build --manifest``)."""

from __future__ import annotations

import json

import pytest

from osvkit.image.appimage import build_app_image, with_rootfs
from osvkit.probe import build_probe, parse_report
from osvkit.rofs import RofsImage
from osvkit.structs.rofs import FSTAB_ROFS
from osvkit.run import run_image


@pytest.fixture
def app_tree(tmp_path):
    host = tmp_path / "host"
    (host / "lib").mkdir(parents=True)
    (host / "hello").write_bytes(b"#!hello\n" * 100)
    (host / "lib" / "libx.so").write_bytes(bytes(range(256)) * 40)
    manifest = tmp_path / "usr.manifest"
    manifest.write_text("[manifest]\n/hello: hello\n/lib/**: lib/**\n/etc/motd: %(motd)s\n"
                        "/bin/hi: ->/hello\n")
    (host / "motd").write_text("hi there\n")
    kernel = tmp_path / "probe.elf"
    kernel.write_bytes(build_probe(64 * 1024))
    return tmp_path, host, manifest, kernel


def test_with_rootfs():
    assert with_rootfs("") == "--rootfs=rofs"
    assert with_rootfs("/hello a") == "--rootfs=rofs /hello a"
    assert with_rootfs("--rootfs=zfs /hello") == "--rootfs=zfs /hello"
    assert with_rootfs("--verbose /x --rootfs=zfs") == "--rootfs=rofs --verbose /x --rootfs=zfs"


def test_build_app_image_puts_rofs_in_partition_1(app_tree):
    tmp, host, manifest, kernel = app_tree
    out = tmp / "usr.img"
    r = build_app_image(kernel, out, manifest=manifest, defines={"motd": "motd"},
                        manifest_root=host, cmdline="/hello")
    assert r.cmdline == "--rootfs=rofs /hello"
    assert r.partition_offset % (2 << 20) == 0 and r.partition_size > 0
    with RofsImage(out, partition=1) as img:
        listing = {e.path: e for e in img.listing().entries}
    assert listing["/hello"].size == 800 and listing["/lib/libx.so"].size == 10240
    assert listing["/bin/hi"].target == "/hello"
    for mount_point in ("/dev", "/proc", "/sys", "/tmp", "/etc/fstab"):
        assert mount_point in listing
    # no temporary files left beside the output
    assert sorted(p.name for p in tmp.iterdir()) == ["host", "probe.elf", "usr.img", "usr.manifest"]


def test_cli_build_manifest_and_inspect(app_tree, cli):
    tmp, host, manifest, kernel = app_tree
    out = tmp / "usr.img"
    r = cli("build", kernel, "--format", "usr", "--manifest", manifest, "-D", "motd=motd",
            "--manifest-root", host, "--cmdline", "/hello", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cmdline"] == "--rootfs=rofs /hello"
    r = cli("inspect", out, "--json")
    assert r.returncode == 0, r.stderr
    part = json.loads(r.stdout)["partitions"][1]
    # /hello, /lib/libx.so, /etc/motd and the default /etc/fstab; directories /, /lib, /etc,
    # /bin, /dev, /proc, /sys, /tmp
    assert part["filesystem"] == {"format": "rofs", "files": 4, "directories": 8, "symlinks": 1,
                                  "data_bytes": 800 + 10240 + 9 + len(FSTAB_ROFS)}
    r = cli("inspect", out)
    assert "filesystem: ROFS, 4 files" in r.stdout.decode()


def test_cli_build_manifest_errors_leave_nothing(app_tree, cli):
    tmp, host, manifest, kernel = app_tree
    out = tmp / "usr.img"
    bad = tmp / "bad.manifest"
    bad.write_text("/hello hello\n")
    r = cli("build", kernel, "--manifest", bad, "--manifest-root", host, "-o", out)
    assert r.returncode == 65
    err = r.stderr.decode()
    assert err.startswith("error: ") and "bad.manifest:1" in err and err.count("\n") == 1
    assert not out.exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".osvkit")]
    r = cli("build", kernel, "--manifest", manifest, "--partition", kernel, "-o", out)
    assert r.returncode == 64 and not out.exists()


def test_boot_with_rofs_partition_reports_partition_table(app_tree, qemu):
    tmp, host, manifest, kernel = app_tree
    out = tmp / "usr.img"
    r = build_app_image(kernel, out, manifest=manifest, defines={"motd": "motd"},
                        manifest_root=host, cmdline="/hello")
    run = run_image(out, memory="128M", timeout=60)
    rep = parse_report(run.console)
    assert run.exit_reason == "poweroff" and run.boot_done is not None
    assert rep.image_ok and rep.cmdline == "--rootfs=rofs /hello"
    entry = rep.mbr_partitions[16:32]
    assert entry[4] == 0x83
    assert int.from_bytes(entry[8:12], "little") * 512 == r.partition_offset
    assert int.from_bytes(entry[12:16], "little") * 512 == r.partition_size
