"""``osvkit mmio`` and ``osvkit cmdline`` as real subprocesses: output, JSON, exit codes."""

from __future__ import annotations

import hashlib
import json

from test_cmdline_io import osv_like_image


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mmio_encode(cli):
    r = cli("mmio", "encode", "--size", "4K", "--base", "0xc0001000", "--irq", "5")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"virtio_mmio.device=4K@0xc0001000:5\n", b"")
    r = cli("mmio", "encode", "--size", "1G", "--base", "4096", "--irq", "7", "--id", "2")
    assert r.stdout == b"virtio_mmio.device=1024M@0x1000:7:2\n"
    r = cli("mmio", "encode", "--size", "1G", "--base", "4096", "--irq", "7", "--linux", "--json")
    assert json.loads(r.stdout) == {"device": {"size": 1 << 30, "base": 4096, "irq": 7, "id": None},
                                    "text": "virtio_mmio.device=1G@0x1000:7", "ignored": ""}


def test_mmio_decode(cli):
    r = cli("mmio", "decode", "virtio_mmio.device=512@0xfeb00000:5")
    assert r.returncode == 0
    assert r.stdout == b"size=512 (512) base=0xfeb00000 irq=5 id=-\n"
    r = cli("mmio", "decode", "--grammar", "linux", "--json", "1G@0x100000000:7:3")
    assert json.loads(r.stdout) == {"size": 1 << 30, "base": 1 << 32, "irq": 7, "id": 3}


def test_mmio_decode_bad_text_exit_65_one_line(cli):
    for args in (("virtio_mmio.device=1G@0x1000:5",), ("4K@0x1000",),
                 ("--grammar", "linux", "4K@0x1000:0")):
        r = cli("mmio", "decode", *args)
        assert r.returncode == 65, r.stderr
        assert r.stdout == b""
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    r = cli("mmio", "encode", "--size", "0", "--base", "0", "--irq", "5")
    assert r.returncode == 65
    assert r.stderr == b"error: virtio-mmio size 0, expected a size of at least 1 byte\n"
    r = cli("mmio", "encode", "--size", "4Q", "--base", "0", "--irq", "5")
    assert r.returncode == 65 and b"size '4Q' is not a number" in r.stderr


def test_mmio_strip(cli):
    r = cli("mmio", "strip", "--", "--nopci /hello virtio_mmio.device=4K@0xc0001000:5")
    assert (r.returncode, r.stdout) == (0, b"--nopci /hello \n")
    r = cli("mmio", "strip", "--json", "--", "virtio_mmio.device=4K@0x1:5 /x")
    d = json.loads(r.stdout)
    assert d["stripped"] == " /x" and d["entries"][0]["text"] == "virtio_mmio.device=4K@0x1:5"


def test_cmdline_get_set(cli, tmp_path):
    img = tmp_path / "usr.img"
    osv_like_image(img)
    r = cli("cmdline", "get", img)
    assert (r.returncode, r.stdout) == (0, b"--rootfs=rofs /hello\n")
    r = cli("cmdline", "set", img, "--", "--rootfs=rofs --nopci /hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"{img}: command line set (28 bytes, raw, target osv)\n"
    r = cli("cmdline", "get", "--json", img)
    d = json.loads(r.stdout)
    assert d["cmdline"] == "--rootfs=rofs --nopci /hello" and d["length"] == 28
    assert d["split"] == {"options": ["--rootfs=rofs", "--nopci"], "command": "/hello", "mmio": []}


def test_cmdline_set_too_long_refused_image_unchanged(cli, tmp_path):
    img = tmp_path / "usr.img"
    osv_like_image(img)
    before = sha(img)
    r = cli("cmdline", "set", img, "x" * 1024)
    assert r.returncode == 65
    assert r.stderr.decode() == (f"error: {img}: command line is 1024 bytes, too long for osv, "
                                 "expected at most 1023 bytes (OSv's max_cmdline 1024 including "
                                 "the NUL)\n")
    assert sha(img) == before
    r = cli("cmdline", "set", "--target", "firecracker", img, "x" * 2048)
    assert r.returncode == 65 and sha(img) == before
    r = cli("cmdline", "set", "--force", img, "x" * 2048)
    assert r.returncode == 0 and b"forced" in r.stdout


def test_cmdline_unknown_target_is_a_usage_error(cli, tmp_path):
    # it was exit 65 with the image's name, as if the image were bad
    img = tmp_path / "usr.img"
    osv_like_image(img)
    before = sha(img)
    for args in (("set", img, "x", "--target", "bogus"), ("check", "x", "--target", "bogus")):
        r = cli("cmdline", *args)
        assert r.returncode == 64
        assert r.stderr.decode() == ("error: --target 'bogus', expected one of osv, bios, "
                                     "firecracker\n")
    assert sha(img) == before


def test_cmdline_missing_image_exit_66(cli, tmp_path):
    r = cli("cmdline", "get", tmp_path / "nope.img")
    assert r.returncode == 66
    assert r.stderr.decode() == f"error: {tmp_path / 'nope.img'}: no such file\n"


def test_cmdline_get_warns_about_stale_bytes_on_stderr(cli, tmp_path):
    img = tmp_path / "usr.img"
    osv_like_image(img, b"--rootfs=zfs /long/old/command")
    with open(img, "r+b") as f:
        f.seek(512)
        f.write(b"/x\0")
    r = cli("cmdline", "get", img)
    assert r.stdout == b"/x\n"
    assert b"stale non-zero bytes" in r.stderr
    r = cli("cmdline", "get", "--json", img)
    assert json.loads(r.stdout)["stale_bytes"] == 27


def test_cmdline_check(cli):
    r = cli("cmdline", "check", "--json", "--", "--nopci " + "x" * 1100)
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["bytes"] == 1108 and d["unfit"] == ["osv"]
    assert d["targets"]["firecracker"] == {"limit": 2047, "fits": True}
    r = cli("cmdline", "check", "/hello")
    assert r.stdout.decode().splitlines() == [
        "6 bytes", "  osv            1023  fits", "  bios          32255  fits",
        "  firecracker    2047  fits"]
    r = cli("cmdline", "check", "--target", "firecracker", "x" * 2048)
    assert r.returncode == 65 and r.stdout == b""
    assert r.stderr.startswith(b"error: command line is 2048 bytes, too long for firecracker")
