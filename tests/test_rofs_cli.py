"""``osvkit rofs`` end to end: build (also as the default command), ls, extract; bad input
gives one ``error:`` line with file and line, exit 65/66, and no output file."""

from __future__ import annotations

import json
import os

import pytest

from osvkit.errors import EX_DATAERR, EX_NOINPUT, EX_USAGE

from test_rofs_bytes import SMALL_IMAGE


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "a").write_bytes(b"hi")
    (tmp_path / "h" / "e").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def test_build_ls_extract(cli, proj):
    (proj / "m").write_text("/a: %(d)s/a\n/d: h/e\n/l: ->a\n")
    r = cli("rofs", "build", "m", "-o", "out/r.img", "-D", "d=h", "--bare", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert (proj / "out" / "r.img").read_bytes() == SMALL_IMAGE   # hand-worked bytes
    # the default command is build; --manifest-root; --json prints only JSON
    r = cli("rofs", str(proj / "m"), "-o", str(proj / "out" / "r2.img"), "-D", "d=h",
            "--manifest-root", str(proj), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["inodes_count"] == 10 and res["files"] == 2   # /, a d l, dev etc fstab proc sys tmp
    r = cli("rofs", "ls", str(proj / "out" / "r.img"))
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[1:] == [
        "d            3 /", "-            2 /a", "d            0 /d", "l            1 /l -> a"]
    r = cli("rofs", "ls", str(proj / "out" / "r2.img"), "--json")
    paths = [e["path"] for e in json.loads(r.stdout)["entries"]]
    assert paths == ["/", "/a", "/d", "/dev", "/etc", "/etc/fstab", "/l", "/proc", "/sys", "/tmp"]
    r = cli("rofs", "extract", str(proj / "out" / "r2.img"), str(proj / "x"))
    assert r.returncode == 0, r.stderr
    assert (proj / "x" / "etc" / "fstab").read_bytes().startswith(b"/dev/vblk0.1 /")


def bad_build(cli, proj, manifest: str, *extra):
    (proj / "m").write_text(manifest)
    r = cli("rofs", "build", "m", "-o", "out/r.img", *extra, cwd=proj)
    assert os.listdir(proj / "out") == [], "no output (or temporary) file may be left behind"
    err = r.stderr.decode()
    assert b"Traceback" not in r.stderr and err.count("\n") == 1, err
    return r.returncode, err


def test_bad_syntax(cli, proj):
    code, err = bad_build(cli, proj, "# ok\n/a: h/a\n/b h/a\n")
    assert code == EX_DATAERR
    assert err.startswith("error: m:3: no ': ' separator in '/b h/a', expected")


def test_collision_file_and_directory(cli, proj):
    code, err = bad_build(cli, proj, "/a: h/a\n/a/b: h/a\n")
    assert code == EX_DATAERR
    assert err.startswith("error: m:2: guest path /a is a file (from m:1) and a directory")


def test_cyclic_symlinks(cli, proj):
    os.symlink("y", proj / "h" / "x")
    os.symlink("x", proj / "h" / "y")
    code, err = bad_build(cli, proj, "/a: h/a\n/x: h/x\n")
    assert code == EX_DATAERR
    assert err.startswith("error: m:2: cyclic symlink ")


def test_name_too_long(cli, proj):
    code, err = bad_build(cli, proj, f"/{'n' * 256}: h/a\n")
    assert code == EX_DATAERR
    assert err.startswith("error: m:1: name of 256 bytes in /") and "at most 255 bytes" in err


def test_missing_host_file_and_allow_missing(cli, proj):
    code, err = bad_build(cli, proj, "/a: h/a\n/b: h/nope\n")
    assert code == EX_NOINPUT
    assert err.startswith("error: m:2: no such file ")
    r = cli("rofs", "build", "m", "-o", "out/r.img", "--allow-missing", cwd=proj)
    assert r.returncode == 0 and b"m:2: skipped" in r.stderr


def test_unreadable_host_file(cli, proj):
    f = proj / "h" / "locked"
    f.write_bytes(b"secret")
    f.chmod(0)
    try:
        open(f, "rb").close()
        unreadable = "/proc/sys/vm/compact_memory"   # write-only even for root
        try:
            open(unreadable, "rb").close()
            pytest.skip("cannot make a file unreadable here (root without a write-only proc file)")
        except PermissionError:
            pass
    except PermissionError:
        unreadable = str(f)
    code, err = bad_build(cli, proj, f"/a: h/a\n/u: {unreadable}\n")
    assert code == EX_NOINPUT
    assert err.startswith(f"error: m:2: cannot read host file {unreadable}: Permission denied")


def test_missing_manifest_and_bad_define(cli, proj):
    r = cli("rofs", "build", "nope", "-o", "out/r.img", cwd=proj)
    assert r.returncode == EX_NOINPUT and r.stderr.decode().startswith("error: nope: no such file")
    (proj / "m").write_text("/a: h/a\n")
    r = cli("rofs", "build", "m", "-o", "out/r.img", "-D", "novalue", cwd=proj)
    assert r.returncode == EX_USAGE and b"expected -D name=value" in r.stderr
    assert os.listdir(proj / "out") == []


def test_malformed_image_cli(cli, proj):
    bad = proj / "bad.img"
    bad.write_bytes(b"\0" * 1024)
    for args in (("ls", str(bad)), ("extract", str(bad), str(proj / "x"))):
        r = cli("rofs", *args)
        assert r.returncode == EX_DATAERR
        assert r.stderr.decode() == f"error: {bad}: bad ROFS magic 0x0, expected 0xdeadbead\n"
    assert not (proj / "x").exists()


def test_group_help_and_offset(cli, proj):
    r = cli("rofs", "--help")
    assert r.returncode == 0 and all(c in r.stdout.decode() for c in ("build", "ls", "extract"))
    disk = proj / "disk.img"
    disk.write_bytes(bytes(1 << 20) + SMALL_IMAGE)
    r = cli("rofs", "ls", str(disk), "--offset", str(1 << 20), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["offset"] == 1 << 20
    r = cli("rofs", "ls", str(disk))
    assert r.returncode == EX_DATAERR and b"bad ROFS magic 0x0" in r.stderr
    # a negative offset is a usage error (it was "read failed: Invalid argument", exit 74)
    for args in (("ls", str(disk)), ("extract", str(disk), str(proj / "x"))):
        r = cli("rofs", *args, "--offset", "-5")
        assert r.returncode == EX_USAGE
        assert r.stderr.decode() == "error: --offset '-5' is less than 0, expected at least 0\n"
    assert not (proj / "x").exists()


def test_ls_partition_of_a_disk_image(cli, proj):
    from test_rofs_reader import _disk_with_rofs
    _disk_with_rofs(proj / "usr.img", SMALL_IMAGE)
    r = cli("rofs", "ls", str(proj / "usr.img"), "-p", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines()[-1] == "l            1 /l -> a"
    r = cli("rofs", "extract", str(proj / "usr.img"), str(proj / "x"), "--partition", "1")
    assert r.returncode == 0 and (proj / "x" / "a").read_bytes() == b"hi"
    r = cli("rofs", "ls", str(proj / "usr.img"), "-p", "2")
    assert r.returncode == EX_DATAERR and b"partition 2 is empty" in r.stderr
    # the whole disk image read as a ROFS: the error says which option reads it
    img = proj / "usr.img"
    magic = int.from_bytes(img.read_bytes()[:8], "little")
    for args in (("ls", str(img)), ("extract", str(img), str(proj / "y"))):
        r = cli("rofs", *args)
        assert r.returncode == EX_DATAERR
        assert r.stderr.decode() == (
            f"error: {img}: bad ROFS magic {magic:#x}, expected 0xdeadbead (this is a disk "
            "image with a partition table: give the MBR entry holding the ROFS with "
            "--partition N; OSv's usr.img keeps it in entry 1)\n")
    assert not (proj / "y").exists()


def _documented_keys(help_text: str) -> str:
    text = " ".join(help_text.split())
    return text[text.index("--json prints {"):]


def test_json_keys_are_the_documented_ones(cli, proj):
    """The keys --help documents for rofs build/ls/extract are exactly the keys printed."""
    import re
    (proj / "m").write_text("/a: h/a\n/l: ->/a\n")
    runs = {"build": ("build", "m", "-o", "out/r.img"), "ls": ("ls", "out/r.img"),
            "extract": ("extract", "out/r.img", "tree")}
    for name, args in runs.items():
        r = cli("rofs", *args, "--json", "-v", cwd=proj)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        helptext = cli("rofs", name, "--help").stdout.decode()
        keys = _documented_keys(helptext)
        top = re.match(r"--json prints \{(.*?)(?:, superblock|\})", keys).group(1)
        expected = [k.strip() for k in top.split(",")]
        if name == "ls":
            expected += ["superblock", "entries"]
            sb = re.search(r"superblock: \{([^}]*)\}", keys).group(1)
            assert list(doc["superblock"]) == [k.strip() for k in sb.split(",")]
            ent = [k.strip() for k in re.search(r"entries: \[\{([^}]*)\}", keys).group(1).split(",")]
            for e in doc["entries"]:
                assert list(e) == ent[:4] + (["target"] if e["type"] == "symlink" else [])
            assert any(e["type"] == "symlink" for e in doc["entries"])
        assert list(doc) == expected, name


def test_output_too_large_is_a_write_error(proj):
    """A full disk or a file-size limit while copying file data is the image's write failure
    (74, naming the image), not "cannot read host file" (66, naming the input); and no output
    is left behind.  The limit is a real RLIMIT_FSIZE on the child process."""
    import resource
    import signal
    import subprocess
    import sys
    from pathlib import Path

    (proj / "h" / "big").write_bytes(os.urandom(3 << 20))
    (proj / "m").write_text("/big: h/big\n")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-m", "osvkit", "rofs", "m", "-o", "out/r.img"],
                       cwd=proj, env=env, capture_output=True, preexec_fn=limit, timeout=120)
    assert (r.returncode, r.stderr.decode()) == (74, "error: out/r.img: write failed: "
                                                     "File too large\n")
    assert os.listdir(proj / "out") == []
