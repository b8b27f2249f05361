"""``osvkit build --app/--add/--deb`` with the conformance kernel: the ROFS tree read back with
``osvkit rofs ls``, the --json report, loader options, the skeleton, determinism, the manifest
command, and the Python API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import osvkit
from osvkit.apps import build_app_tree, compose_cmdline
from osvkit.errors import CmdlineError, UsageError

from conftest import missing_tool


@pytest.fixture(scope="module")
def probe_elf(tmp_path_factory) -> Path:
    from osvkit.probe import build_probe
    p = tmp_path_factory.mktemp("probe") / "probe.elf"
    p.write_bytes(build_probe(None))
    return p


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    """bin/prog needing lib/libgreet.so.1 (-> libgreet.so.1.0) through $ORIGIN/../lib."""
    gcc = shutil.which("gcc")
    if gcc is None:
        missing_tool("gcc is not installed (install.sh installs it)")
    d = tmp_path_factory.mktemp("prog")
    (d / "lib").mkdir()
    (d / "bin").mkdir()
    (d / "greet.c").write_text('#include <stdio.h>\nvoid greet(void){puts("hi");}\n')
    (d / "main.c").write_text("void greet(void);\nint main(void){greet();return 0;}\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o",
                    str(d / "lib/libgreet.so.1.0"), str(d / "greet.c")], check=True)
    os.symlink("libgreet.so.1.0", d / "lib/libgreet.so.1")
    subprocess.run([gcc, "-o", str(d / "bin/prog"), str(d / "main.c"), f"-L{d / 'lib'}",
                    "-l:libgreet.so.1", "-Wl,-rpath,$ORIGIN/../lib"], check=True)
    return d / "bin/prog"


def _ls(cli, image) -> dict[str, dict]:
    r = cli("rofs", "ls", image, "-p", "1", "--json")
    assert r.returncode == 0, r.stderr.decode()
    return {e["path"]: e for e in json.loads(r.stdout)["entries"]}


def test_app_image_tree(cli, tmp_path, probe_elf, program):
    out = tmp_path / "usr.img"
    r = cli("build", probe_elf, "--app", f"{program}:/app/bin/prog", "--env", "GREETING=a b",
            "--cwd", "/app", "-o", out, "--json")
    assert r.returncode == 0, r.stderr.decode()
    report = json.loads(r.stdout)
    tree = _ls(cli, out)
    expected = {"/", "/app", "/app/bin", "/app/bin/prog", "/app/lib", "/app/lib/libgreet.so.1",
                "/dev", "/proc", "/sys", "/tmp", "/etc", "/etc/fstab", "/etc/hosts",
                "/etc/mnttab"}
    assert set(tree) == expected
    assert tree["/app/bin/prog"]["size"] == program.stat().st_size
    lib = program.parent.parent / "lib/libgreet.so.1.0"
    assert tree["/app/lib/libgreet.so.1"]["type"] == "file"
    assert tree["/app/lib/libgreet.so.1"]["size"] == lib.stat().st_size
    assert tree["/etc/mnttab"] == {**tree["/etc/mnttab"], "type": "symlink",
                                   "target": "/proc/mounts"}
    files = {f["guest"]: f for f in report["files"]}
    assert files["/app/lib/libgreet.so.1"] == {
        "guest": "/app/lib/libgreet.so.1", "kind": "library", "source": str(lib),
        "via": "runpath", "soname": "libgreet.so.1", "needed_by": ["/app/bin/prog"]}
    assert files["/app/bin/prog"]["kind"] == "app"
    assert files["/etc/hosts"]["kind"] == "skeleton"
    assert "libc.so.6" in [s["soname"] for s in report["supplied"]]
    line = "--rootfs=rofs --env=GREETING=a\\ b --cwd=/app /app/bin/prog"
    assert report["cmdline"] == line
    r = cli("cmdline", "get", out)
    assert r.stdout.decode().strip() == line
    # the same inputs give the same bytes
    r = cli("build", probe_elf, "--app", f"{program}:/app/bin/prog", "--env", "GREETING=a b",
            "--cwd", "/app", "-o", tmp_path / "again.img")
    assert r.returncode == 0 and (tmp_path / "again.img").read_bytes() == out.read_bytes()


def test_bare_add_exclude_and_symlinks(cli, tmp_path, probe_elf, program):
    data = tmp_path / "data"
    (data / "sub/__pycache__").mkdir(parents=True)
    (data / "sub/a.txt").write_text("a")
    (data / "sub/__pycache__/a.pyc").write_text("x")
    (data / "skip.log").write_text("x")
    os.symlink("sub/a.txt", data / "link")
    out = tmp_path / "usr.img"
    r = cli("build", probe_elf, "--app", program, "--add", f"{data}:/data", "--exclude",
            "__pycache__", "--exclude", "*.log", "--bare", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    tree = _ls(cli, out)
    assert set(tree) == {"/", "/prog", "/lib", "/lib/libgreet.so.1", "/data", "/data/sub",
                         "/data/sub/a.txt", "/data/link"}
    assert tree["/data/link"]["target"] == "sub/a.txt"
    # a symlink leading out of the added directory: error naming the option, then the option
    os.symlink(program, data / "outside")
    r = cli("build", probe_elf, "--add", f"{data}:/data", "-o", out)
    err = r.stderr.decode()
    assert r.returncode == 66 and "--follow-symlinks-anywhere" in err, err
    r = cli("build", probe_elf, "--add", f"{data}:/data", "--follow-symlinks-anywhere",
            "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    tree = _ls(cli, out)
    assert tree["/data/outside"]["type"] == "file"
    # an ELF object added as data gets its libraries too (found from its $ORIGIN)
    assert "/lib/libgreet.so.1" in tree


def test_manifest_option_follow_symlinks_anywhere(cli, tmp_path, probe_elf):
    (tmp_path / "d").mkdir()
    (tmp_path / "elsewhere.txt").write_text("x")
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "d/link.txt")
    (tmp_path / "m").write_text(f"/x: {tmp_path}/d/link.txt\n")
    r = cli("build", probe_elf, "--manifest", tmp_path / "m", "-o", tmp_path / "u.img")
    assert r.returncode != 0 and "--follow-symlinks-anywhere" in r.stderr.decode()
    r = cli("build", probe_elf, "--manifest", tmp_path / "m", "--follow-symlinks-anywhere",
            "-o", tmp_path / "u.img")
    assert r.returncode == 0, r.stderr.decode()
    assert _ls(cli, tmp_path / "u.img")["/x"]["size"] == 1


def test_vmlinux_and_disk(cli, tmp_path, probe_elf, program):
    r = cli("build", probe_elf, "--format", "vmlinux", "--app", program, "-o",
            tmp_path / "vmlinux.elf")
    assert r.returncode == 64 and "--disk-output" in r.stderr.decode()
    r = cli("build", probe_elf, "--format", "vmlinux", "--app", program, "--disk-output",
            tmp_path / "disk.img", "--cmdline", "--verbose", "-o", tmp_path / "vmlinux.elf")
    assert r.returncode == 0, r.stderr.decode()
    assert (tmp_path / "vmlinux.elf").read_bytes()[:4] == b"\x7fELF"
    assert "/prog" in _ls(cli, tmp_path / "disk.img")
    r = cli("cmdline", "get", tmp_path / "disk.img")
    assert r.stdout.decode().strip() == "--rootfs=rofs --verbose /prog"


def test_app_option_errors(cli, tmp_path, probe_elf, program):
    for args, text in [(["--env", "A=1"], "--env without --app"),
                       (["--app", program, "--env", "1A=x"], "--env '1A=x'"),
                       (["--app", program, "--cwd", "rel"], "--cwd 'rel'"),
                       (["--app", program, "--partition", program], "both fill partition 1"),
                       (["--app", program, "--env", "A=" + "x" * 1100], "--force-cmdline")]:
        r = cli("build", probe_elf, *args, "-o", tmp_path / "u.img")
        err = r.stderr.decode()
        assert r.returncode in (64, 65) and text in err and "Traceback" not in err, (args, err)
        assert not (tmp_path / "u.img").exists()


def test_compose_cmdline():
    assert compose_cmdline("", command="/hello") == "--rootfs=rofs /hello"
    assert compose_cmdline("--rootfs=zfs /x", env=["A=b\\c"]) == "--rootfs=zfs --env=A=b\\\\c /x"
    with pytest.raises(UsageError):
        compose_cmdline("", env=["NOEQUALS"])
    with pytest.raises(CmdlineError):
        compose_cmdline("", env=["A=" + "x" * 1020], command="/x")
    assert len(compose_cmdline("", env=["A=" + "x" * 1020], command="/x", target="bios")) > 1023


def test_manifest_from_host(cli, tmp_path, program, probe_elf):
    out = tmp_path / "usr.manifest"
    r = cli("manifest", "from-host", f"{program}:/app/bin/prog", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    lib = program.parent.parent / "lib/libgreet.so.1.0"
    assert out.read_text() == (f"[manifest]\n/app/bin/prog: {program}\n"
                               f"/app/lib/libgreet.so.1: {lib}\n")
    r = cli("build", probe_elf, "--manifest", out, "-o", tmp_path / "u.img")
    assert r.returncode == 0, r.stderr.decode()
    assert {"/app/bin/prog", "/app/lib/libgreet.so.1"} <= set(_ls(cli, tmp_path / "u.img"))


def test_python_api(tmp_path, program, probe_elf):
    files = osvkit.resolve_closure([program]).files()
    assert [(f.guest, f.kind) for f in files] == [("/lib/libgreet.so.1", "library"),
                                                  ("/prog", "app")]
    res = osvkit.build_host_app_image(probe_elf, tmp_path / "u.img", apps=[program],
                                      env=["X=1"])
    assert res.cmdline == "--rootfs=rofs --env=X=1 /prog"
    assert res.image.partition_size > 0
    tree = build_app_tree(apps=[program], bare=True)
    assert tree.tree.lookup("/dev") is None and tree.command == "/prog"


def test_deb_without_apt(cli, tmp_path, probe_elf):
    env = {"PATH": str(tmp_path)}  # no apt-get there
    r = cli("build", probe_elf, "--deb", "hello", "-o", tmp_path / "u.img", env=env)
    err = r.stderr.decode()
    assert r.returncode == 70 and "apt-get is not installed" in err, err


def test_deb_package(cli, tmp_path, probe_elf):
    """Debian's hello: fetched with apt-get download (needs the package lists and network)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        missing_tool("apt-get/dpkg-deb are not installed")
    probe = subprocess.run(["apt-get", "-qq", "--print-uris", "download", "hello"],
                           capture_output=True, text=True, cwd=tmp_path)
    if probe.returncode != 0 or ".deb" not in probe.stdout:
        pytest.skip("apt cannot fetch Debian's hello here (no package lists or network)")
    cache = tmp_path / "cache"
    r = cli("build", probe_elf, "--deb", "hello", "--deb-cache", cache, "--exclude",
            "/usr/share/*", "-o", tmp_path / "u.img", "--json")
    if r.returncode == 70 and "apt-get" in r.stderr.decode():
        pytest.skip("apt-get download failed: " + r.stderr.decode().strip())
    assert r.returncode == 0, r.stderr.decode()
    files = {f["guest"]: f for f in json.loads(r.stdout)["files"]}
    assert files["/usr/bin/hello"]["kind"] == "deb"
    assert files["/usr/bin/hello"]["origin"] == "hello"
    assert "/usr/bin/hello" in _ls(cli, tmp_path / "u.img")
    assert not any(g.startswith("/usr/share/") for g in files)
    assert list(cache.glob("hello_*.deb"))


def test_build_file_app_keys(cli, tmp_path, probe_elf, program):
    proj = tmp_path / "proj"
    shutil.copytree(program.parent.parent, proj / "app", symlinks=True)
    shutil.copy(probe_elf, proj / "probe.elf")
    (proj / "data").mkdir()
    (proj / "data/conf.txt").write_text("x=1\n")
    (proj / "data/junk.tmp").write_text("")
    (proj / "osvkit.toml").write_text(
        'spec = 1\n[[image]]\nname = "app"\nkernel = "probe.elf"\n'
        'app = ["app/bin/prog:/app/bin/prog"]\nadd = ["data:/etc/app"]\nexclude = ["*.tmp"]\n'
        'env = { GREETING = "a b" }\ncwd = "/app"\n'
        'outputs = { usr = "app.img", rofs = "app.rofs" }\n')
    r = cli("build", "-c", proj / "osvkit.toml", "--json")
    assert r.returncode == 0, r.stderr.decode()
    tree = _ls(cli, proj / "app.img")
    assert {"/app/bin/prog", "/app/lib/libgreet.so.1", "/etc/app/conf.txt",
            "/etc/hosts"} <= set(tree) and "/etc/app/junk.tmp" not in tree
    assert cli("cmdline", "get", proj / "app.img").stdout.decode().strip() == (
        "--rootfs=rofs --env=GREETING=a\\ b --cwd=/app /app/bin/prog")
    doc = json.loads((proj / "osvkit-manifest.json").read_text())
    inputs = doc["images"][0]["outputs"][0]["inputs"]
    lib = next(i for i in inputs if i.get("guest") == "/app/lib/libgreet.so.1")
    assert lib["path"] == "app/lib/libgreet.so.1.0" and lib["needed_by"] == ["/app/bin/prog"]
    # the same project elsewhere gives the same manifest (no absolute project paths in it)
    other = tmp_path / "elsewhere" / "proj"
    shutil.copytree(proj, other, symlinks=True)
    for f in ("app.img", "app.rofs", "osvkit-manifest.json"):
        (other / f).unlink()
    assert cli("build", "-c", other / "osvkit.toml").returncode == 0
    assert (other / "osvkit-manifest.json").read_text() == (
        proj / "osvkit-manifest.json").read_text()
    # schema problems are reported with their line
    head = 'spec = 1\n[[image]]\nname = "b"\nkernel = "probe.elf"\napp = ["app/bin/prog"]\n'
    for body, text in [('cwd = "rel"\n', 'bad.toml:6: image[0].cwd: "rel" has the wrong form'),
                       ('env = { "1X" = "y" }\n', "bad.toml:6: image[0].env: bad variable name '1X'"),
                       ('env = ["A=1"]\npartition = "x"\n', "both partition and app/add/deb")]:
        (proj / "bad.toml").write_text(head + body + 'outputs = { usr = "b.img" }\n')
        r = cli("build", "-c", proj / "bad.toml")
        err = r.stderr.decode()
        assert r.returncode == 65 and text in err, err
