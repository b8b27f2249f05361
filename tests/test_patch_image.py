"""``osvkit patch`` and ``osvkit diff`` (issue 12).

Oracles: a fresh ``build`` from the equivalent manifest (byte comparison), the probe
kernel's boot report under QEMU (TCG), and ``diff``'s own view of the ROFS trees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from osvkit.boot import mbr
from osvkit.diff import diff_images
from osvkit.disk import open_disk
from osvkit.errors import FormatError, UsageError
from osvkit.image.usrimg import build_usr_image
from osvkit.patch import patch_image
from osvkit.probe import build_probe, parse_report

MiB = 1 << 20


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernels")
    small, big = d / "small.elf", d / "big.elf"
    small.write_bytes(build_probe(1 * MiB))
    big.write_bytes(build_probe(6 * MiB))      # its payload passes the 2 MiB partition start
    return small, big


@pytest.fixture
def tree(tmp_path):
    """Host files and a manifest naming them."""
    host = tmp_path / "host"
    (host / "lib").mkdir(parents=True)
    (host / "a.txt").write_text("hello\n")
    (host / "lib" / "big.bin").write_bytes(hashlib.sha256(b"x").digest() * 40000)  # 1.28 MB
    (host / "lib" / "small.so").write_bytes(b"\x7fELF not really")
    m = tmp_path / "m1"
    m.write_text(f"/a.txt: {host}/a.txt\n/lib/big.bin: {host}/lib/big.bin\n"
                 f"/lib/small.so: {host}/lib/small.so\n/lib/link: ->small.so\n")
    return host, m


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(cli, kernel, manifest, out, *extra):
    r = cli("build", kernel, "--format", "usr", "--manifest", manifest, "--cmdline", "/x",
            "-o", out, *extra)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("image_format", ["raw", "qcow2"])
def test_add_and_remove_equal_a_fresh_build(cli, kernels, tree, tmp_path, image_format,
                                            request):
    if image_format == "qcow2":
        request.getfixturevalue("qemu_img")
    small, _ = kernels
    host, m1 = tree
    img = tmp_path / f"usr.{image_format}"
    build(cli, small, m1, img, "--image-format", image_format)
    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "conf").write_text("key=value\n")
    (extra / "sub" / "data").write_bytes(bytes(range(256)) * 10)
    new = tmp_path / "new.txt"
    new.write_text("new file\n")
    before = sha(img)
    r = cli("patch", img, "-o", tmp_path / "out.img", "--image-format", "raw",
            "--add", f"{new}:/etc/new.txt", "--add", f"{extra}:/opt/extra",
            "--remove", "/lib/big.bin", "--remove", "/a.txt", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["removed"] == ["/lib/big.bin", "/a.txt"]
    assert rep["added"] == ["/etc/new.txt", "/opt/extra/conf", "/opt/extra/sub/data"]
    assert sha(img) == before                      # -o leaves IMAGE untouched
    ls = cli("rofs", "ls", tmp_path / "out.img", "-p", "1", "--json")
    paths = {e["path"]: e for e in json.loads(ls.stdout)["entries"]}
    assert "/a.txt" not in paths and "/lib/big.bin" not in paths
    assert paths["/etc/new.txt"]["size"] == 9 and paths["/opt/extra/sub/data"]["size"] == 2560
    assert paths["/lib/link"]["target"] == "small.so"
    m2 = tmp_path / "m2"
    m2.write_text(f"/lib/small.so: {host}/lib/small.so\n/lib/link: ->small.so\n"
                  f"/etc/new.txt: {new}\n/opt/extra/**: {extra}/**\n")
    fresh = tmp_path / "fresh.img"
    build(cli, small, m2, fresh)
    assert (tmp_path / "out.img").read_bytes() == fresh.read_bytes()
    # in place: the image itself becomes the fresh build (qcow2 stays qcow2)
    r = cli("patch", img, "--add", f"{new}:/etc/new.txt", "--add", f"{extra}:/opt/extra",
            "--remove", "/lib/big.bin", "--remove", "/a.txt")
    assert r.returncode == 0, r.stderr
    with open_disk(img) as d, open_disk(fresh) as f:
        assert d.format == image_format and d.read(0, d.size) == f.read(0, f.size)


@pytest.mark.qemu
@pytest.mark.parametrize("image_format", ["raw", "qcow2"])
def test_larger_kernel_moves_the_partition_and_boots(cli, qemu, kernels, tree, tmp_path,
                                                     image_format, request):
    from osvkit.run import run_image

    if image_format == "qcow2":
        request.getfixturevalue("qemu_img")
    small, big = kernels
    _, m1 = tree
    img = tmp_path / f"usr.{image_format}"
    build(cli, small, m1, img, "--image-format", image_format)
    old = tmp_path / "old.img"
    shutil.copyfile(img, old)
    r = cli("patch", img, "--kernel", big, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["moved"] == [{"index": 1, "old_offset": 2 * MiB, "new_offset": 4 * MiB,
                             "size": rep["moved"][0]["size"]}]
    res = run_image(img, vmm="qemu", accel="tcg", memory="256M", timeout=240)
    probe = parse_report(res.console)
    assert res.exit_reason == "poweroff", res.console[-2000:]
    assert probe.complete and probe.image_ok is True and probe.cmdline == "--rootfs=rofs /x"
    with open_disk(img) as d:
        table = d.read(0x1BE, 66)
    assert probe.mbr_partitions == table
    assert table[16 + 8:16 + 12] == (8192).to_bytes(4, "little")    # LBA of 4 MiB
    # diff: the kernel and the partition's place changed, not one file
    d = diff_images(old, img)
    assert not d.identical and all(t.identical for t in d.trees) and len(d.trees) == 1
    fields = {c["field"] for c in d.changes}
    assert {"kernel.size", "kernel.sha256", "partitions.1.offset"} <= fields
    assert not any(f.startswith("cmdline") or f.startswith("boot") for f in fields)


def test_diff_of_two_builds(cli, kernels, tree, tmp_path):
    small, _ = kernels
    host, m1 = tree
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    build(cli, small, m1, a)
    build(cli, small, m1, b)
    r = cli("diff", a, b)
    assert r.returncode == 0 and b"identical" in r.stdout, r.stdout + r.stderr
    (host / "lib" / "small.so").write_bytes(b"\x7fELF changed!!")
    build(cli, small, m1, c)
    r = cli("diff", a, c, "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["changes"] == [] and out["identical"] is False
    (tree_diff,) = out["rofs"]
    assert tree_diff["added"] == [] and tree_diff["removed"] == []
    (changed,) = tree_diff["changed"]
    assert changed["path"] == "/lib/small.so"
    assert changed["a"]["sha256"] == hashlib.sha256(b"\x7fELF not really").hexdigest()
    assert changed["b"]["sha256"] == hashlib.sha256(b"\x7fELF changed!!").hexdigest()
    r = cli("diff", a, c)
    assert r.returncode == 1 and b"~ /lib/small.so" in r.stdout
    assert cli("diff", a, tmp_path / "missing").returncode == 66


def test_diff_names_boot_path_cmdline_and_kernel(kernels, tmp_path):
    small, big = kernels
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    build_usr_image(small, a, cmdline="/one")
    build_usr_image(big, b, cmdline="/two", compression="none")
    d = diff_images(a, b).to_dict()
    by = {c["field"]: (c["a"], c["b"]) for c in d["changes"]}
    assert by["cmdline"] == ("/one", "/two")
    assert by["boot.loader"] == ("osvkit-lz", "uncompressed")
    assert by["kernel.sha256"] == (sha(small), sha(big))
    assert "kernel.osv_version" not in by and "boot.boot_sector" not in by


def test_cmdline_only_keeps_everything_else(cli, kernels, tree, tmp_path):
    small, _ = kernels
    _, m1 = tree
    img = tmp_path / "usr.img"
    build(cli, small, m1, img)
    before = img.read_bytes()
    r = cli("patch", img, "--cmdline", "--rootfs=rofs /lib/small.so")
    assert r.returncode == 0, r.stderr
    after = img.read_bytes()
    assert after[:512] == before[:512] and after[0x8000:] == before[0x8000:]
    assert after[512:0x8000].rstrip(b"\0") == b"--rootfs=rofs /lib/small.so"


def _unchanged(path: Path, digest: str) -> None:
    assert sha(path) == digest, f"{path} changed"


def test_bad_input_is_one_line_and_leaves_the_image(cli, kernels, tree, tmp_path, qemu_img):
    small, big = kernels
    host, m1 = tree
    img = tmp_path / "usr.img"
    build(cli, small, m1, img)
    digest = sha(img)
    cases = [
        (("--remove", "/nope"), 64, "--remove /nope: no such path in the ROFS of partition 1"),
        (("--remove", "/"), 64, "the root cannot be removed"),
        (("--add", tmp_path / "missing.txt"), 66, "no such file"),
        (("--compression", "none"), 64, "--compression without --kernel"),
        ((), 64, "nothing to patch"),
        (("--kernel", big, "--compression", "lz4"), 64, "compression 'lz4'"),
        (("--add", f"{host}/a.txt", "-o", host / "a.txt"), 64, "the output is"),
    ]
    for args, status, text in cases:
        r = cli("patch", img, *args)
        err = r.stderr.decode()
        assert r.returncode == status and text in err, (args, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
        _unchanged(img, digest)
    # an image without a partition
    bare = tmp_path / "bare.img"
    build_usr_image(small, bare, cmdline="/x")
    d = sha(bare)
    r = cli("patch", bare, "--add", f"{host}/a.txt:/a")
    assert r.returncode == 65 and "no partition to add files to" in r.stderr.decode()
    _unchanged(bare, d)
    # a damaged ROFS: the superblock's table pointer past the partition
    bad = tmp_path / "bad.img"
    data = bytearray(img.read_bytes())
    data[2 * MiB + 24:2 * MiB + 32] = (1 << 40).to_bytes(8, "little")
    bad.write_bytes(bytes(data))
    d = sha(bad)
    r = cli("patch", bad, "--remove", "/a.txt")
    assert r.returncode == 65 and "structure blocks" in r.stderr.decode(), r.stderr
    _unchanged(bad, d)
    # a kernel whose payload would push the partition past what the MBR addresses
    huge = tmp_path / "huge.qcow2"
    raw = tmp_path / "huge.raw"
    with open(raw, "wb") as f:
        f.write(img.read_bytes()[:2 * MiB])
        count = 2**32 - 4096 - 1000          # from 2 MiB to 1000 sectors before 2 TiB
        f.seek(0)
        f.write(mbr.set_partition(img.read_bytes()[:512], 1, mbr.partition_entry_osv(4096, count)))
        f.truncate((4096 + count) * 512)
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, huge], check=True)
    raw.unlink()
    d = sha(huge)
    r = cli("patch", huge, "--kernel", big)
    assert r.returncode == 65 and "past what an MBR entry addresses" in r.stderr.decode()
    _unchanged(huge, d)


def test_other_filesystems_are_named(kernels, tmp_path):
    """ZFS and ext partitions: --add is refused naming the filesystem; the kernel and the
    command line are still patched."""
    small, big = kernels
    for kind, fs in (("ZFS", bytearray(256 * 1024)), ("ext2/3/4", bytearray(64 * 1024))):
        if kind == "ZFS":
            fs[128 * 1024 + 5 * 1024:128 * 1024 + 5 * 1024 + 8] = \
                (0x00BAB10C).to_bytes(8, "little")
        else:
            fs[1024 + 56:1024 + 58] = (0xEF53).to_bytes(2, "little")
        part = tmp_path / "fs.img"
        part.write_bytes(bytes(fs))
        img = tmp_path / "usr.img"
        build_usr_image(small, img, cmdline="/x", partition=part)
        digest = sha(img)
        with pytest.raises(FormatError, match=f"partition 1 holds {kind}, which osvkit cannot"):
            patch_image(img, add=[str(part) + ":/x"])
        _unchanged(img, digest)
        patch_image(img, kernel=big, cmdline="/y")
        with open_disk(img) as d:
            assert d.read(4 * MiB, len(fs)) == bytes(fs)
        assert diff_images(img, img).identical


def test_api():
    import osvkit

    assert osvkit.patch_image is patch_image and osvkit.diff_images is diff_images
    with pytest.raises(UsageError, match="nothing to patch"):
        osvkit.patch_image(os.devnull)


def test_grown_rofs_may_not_run_into_the_next_partition(kernels, tree, tmp_path):
    """A second partition right after the ROFS: a smaller ROFS keeps it where it was (its
    bytes too), a larger one is an error and the image stays as it was."""
    from osvkit.rofs import build_rofs

    small, _ = kernels
    host, m1 = tree
    rofs = tmp_path / "r.img"
    size = build_rofs(m1, rofs).size
    img = tmp_path / "usr.img"
    build_usr_image(small, img, cmdline="/x", partition=rofs)
    data = bytearray(img.read_bytes())
    second = (2 * MiB + size) // 512
    data[:512] = mbr.set_partition(bytes(data[:512]), 2, mbr.partition_entry_osv(second, 8))
    data += b"\xab" * 4096
    img.write_bytes(bytes(data))
    digest = sha(img)
    with pytest.raises(FormatError, match="would run into partition 2"):
        patch_image(img, add=[f"{host}/lib/big.bin:/more.bin"])
    _unchanged(img, digest)
    out = tmp_path / "out.img"
    patch_image(img, remove=["/lib/big.bin"], output=out)
    after = out.read_bytes()
    assert after[-4096:] == b"\xab" * 4096 and len(after) == len(data)
    assert after[0x1BE + 32:0x1BE + 48] == bytes(data[0x1BE + 32:0x1BE + 48])
