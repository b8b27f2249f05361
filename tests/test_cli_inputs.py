"""Hostile numbers, whole command lines and usage mistakes through the CLI (real
subprocesses): one line on stderr, a sysexits status, nothing written."""

from __future__ import annotations

import hashlib
import json

import pytest

from test_cmdline_io import osv_like_image

HUGE = "9" * 4301          # one digit over Python's integer-string limit


def _one_line(r, status: int) -> str:
    err = r.stderr.decode()
    assert r.returncode == status, (r.returncode, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert len(err) < 400, err
    return err


@pytest.mark.parametrize("entry", [
    f"virtio_mmio.device={HUGE}@0x1000:5",
    f"virtio_mmio.device=4K@0x{'f' * 4301}:5",
    f"virtio_mmio.device=4K@{HUGE}:5",
    f"virtio_mmio.device=4K@0x1000:{HUGE}",
    f"virtio_mmio.device=4K@0x1000:5:{HUGE}",
], ids=["size", "hex-base", "base", "irq", "id"])
def test_mmio_huge_numbers_are_data_errors(cli, entry):
    """They were ValueError tracebacks (Python's 4,300-digit limit)."""
    for grammar in ("osv", "linux"):
        _one_line(cli("mmio", "decode", "--grammar", grammar, entry), 65)
    r = cli("mmio", "strip", "--", f"--nopci /hello {entry}")
    assert r.returncode == 0 and "Traceback" not in r.stderr.decode()


def test_mmio_encode_huge_numbers(cli):
    _one_line(cli("mmio", "encode", "--size", HUGE, "--base", "0", "--irq", "5"), 65)
    _one_line(cli("mmio", "encode", "--size", "4K", "--base", "0", "--irq", HUGE), 65)


def test_mmio_decode_whole_command_line(cli):
    """A whole command line (starting with --nopci) failed in option parsing."""
    line = ("--nopci /hello virtio_mmio.device=4K@0xd0000000:5 "
            "virtio_mmio.device=512@0xd0001000:6:3")
    want = ("size=4096 (4K) base=0xd0000000 irq=5 id=-\n"
            "size=512 (512) base=0xd0001000 irq=6 id=3\n").encode()
    r = cli("mmio", "decode", "--", line)                    # one argument after --
    assert (r.returncode, r.stdout, r.stderr) == (0, want, b"")
    r = cli("mmio", "decode", "--", *line.split())           # as separate words
    assert (r.returncode, r.stdout) == (0, want)
    r = cli("mmio", "decode", input=line.encode() + b"\n")   # on standard input
    assert (r.returncode, r.stdout) == (0, want)
    r = cli("mmio", "decode", "--json", "--", line)
    doc = json.loads(r.stdout)
    assert doc["cmdline"] == line
    assert [e["device"] for e in doc["entries"]] == [
        {"size": 4096, "base": 0xd0000000, "irq": 5, "id": None},
        {"size": 512, "base": 0xd0001000, "irq": 6, "id": 3}]
    # a bad entry anywhere in the line, or none at all, is a data error
    assert "4G@" in _one_line(cli("mmio", "decode", "--", "--nopci /x virtio_mmio.device=4G@0x1000:5"), 65)
    assert "no virtio_mmio.device= entry" in _one_line(cli("mmio", "decode", "--", "--nopci /x"), 65)


def test_one_mmio_grammar_for_decode_set_and_check(cli, tmp_path):
    """cmdline set/check accepted virtio_mmio.device=4G@... that mmio decode refuses."""
    img = tmp_path / "usr.img"
    osv_like_image(img)
    before = hashlib.sha256(img.read_bytes()).hexdigest()
    bad = "--nopci /hello virtio_mmio.device=4G@0xd0000000:5"
    decode = _one_line(cli("mmio", "decode", "--", bad), 65)
    check = _one_line(cli("cmdline", "check", "--", bad), 65)
    set_ = _one_line(cli("cmdline", "set", str(img), "--", bad), 65)
    same = "'G' between the size and '@' in 'virtio_mmio.device=4G@0xd0000000:5'"
    assert same in decode and same in check and same in set_
    assert hashlib.sha256(img.read_bytes()).hexdigest() == before
    good = "--nopci /hello virtio_mmio.device=4K@0xd0000000:5"
    assert cli("cmdline", "check", "--", good).returncode == 0
    assert cli("cmdline", "set", str(img), "--", good).returncode == 0


@pytest.mark.parametrize("args, text", [
    (["verify", "--no-such-flag"], "osvkit verify: No such option '--no-such-flag', expected "),
    (["cmdline", "get"], "osvkit cmdline get: Missing argument 'IMAGE', expected "),
    (["nope"], "osvkit: No such command 'nope', expected one listed by 'osvkit --help'"),
    (["cmdline", "set", "x.img", "a", "b"], "osvkit cmdline set: Got unexpected extra argument"),
    (["run", "x.img", "--memory"], "Option '--memory' requires an argument, expected "),
    (["decode", "mbr", "x", "--offset", HUGE], "--offset: a 4301-digit number, expected "),
    (["rofs", "ls", "x", "--offset", "-1"], "--offset '-1' is less than 0, expected at least 0"),
    (["build", "k", "-o", "o", "--format", "iso"], "--format 'iso', expected one of usr, vmlinux"),
], ids=["option", "argument", "command", "extra", "value", "digits", "negative", "choice"])
def test_usage_errors_are_one_line(cli, tmp_path, args, text):
    """Click printed four lines (Usage / Try / blank / Error); --help keeps the usage."""
    err = _one_line(cli(*args, cwd=tmp_path), 64)
    assert text in err
    r = cli(*args[:1], "--help")
    assert (r.returncode, r.stdout.startswith(b"Usage: ")) == ((0, True) if args != ["nope"]
                                                               else (64, False))


@pytest.mark.parametrize("text, message", [
    ("spec = 1\nx = " + "9" * 5001 + "\n", ":2: (syntax): a number of 5001 digits"),
    ("spec = 1\nx = " + "{a = " * 1000 + "1" + "}" * 1000 + "\n",
     ":2: (syntax): tables or arrays nested too deeply"),
    ("spec = 1\nx = " + "[" * 1000 + "]" * 1000 + "\n",
     ":2: (syntax): tables or arrays nested too deeply"),
    ("spec = 1\n" + "".join("[" + ".".join(["t"] * i) + "]\n" for i in range(1, 1001)),
     "nested more than 16 deep"),
    ("spec = 1\n[options]\nmemory = \"" + "9" * 5001 + "\"\n[[image]]\nname = \"a\"\n"
     "kernel = \"probe\"\noutputs = { usr = \"a.img\" }\n", "options.memory: bad memory size"),
    ("spec = 1\n[[image]]\nname = \"a\"\nkernel = \"probe:" + "9" * 5001 + "\"\n"
     "outputs = { usr = \"a.img\" }\n", "image[0].kernel: bad probe size"),
], ids=["integer", "inline-tables", "arrays", "tables", "memory", "probe-size"])
def test_hostile_build_files_are_one_line_data_errors(cli, tmp_path, text, message):
    """1,000 nested tables gave RecursionError, a 5,001-digit integer ValueError."""
    bf = tmp_path / "osvkit.toml"
    bf.write_text(text)
    for cmd in (["build", "-c", str(bf)], ["verify", "-c", str(bf)]):
        assert message in _one_line(cli(*cmd, cwd=tmp_path), 65)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["osvkit.toml"]
