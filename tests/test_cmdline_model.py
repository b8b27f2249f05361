"""OSv's command-line split (core/commands.cc loader_parse_cmdline), limits, and the
Cmdline builder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osvkit.cmdline import (Cmdline, SplitCmdline, check_cmdline, parse_option, render_cmdline,
                            split_cmdline, unfit_targets)
from osvkit.cmdline.mmio import MmioDevice
from osvkit.errors import CmdlineError


# --- split: exact values -----------------------------------------------------------------
@pytest.mark.parametrize("line, options, command", [
    ("--rootfs=rofs /hello", ("--rootfs=rofs",), "/hello"),
    ("/hello", (), "/hello"),
    ("", (), ""),
    ("  \t\n ", (), ""),
    ("--nopci", ("--nopci",), ""),
    ("--nopci ", ("--nopci",), ""),
    # OSv's own example (commands.cc comment): escaped space inside an option
    (r"--env=AA=aa --env=BB=bb1\ bb2 app.so arg1 arg2",
     ("--env=AA=aa", "--env=BB=bb1 bb2"), "app.so arg1 arg2"),
    # several delimiters between tokens; the command keeps its inner whitespace
    ("--a \t\n--b   /x  y\t z ", ("--a", "--b"), "/x  y\t z "),
    # backslash: \\ is one backslash, \x is x; the command is not unescaped
    (r"--p=a\\b\c /cmd\ x", ("--p=a\\bc",), r"/cmd\ x"),
    # a '-' inside the command is not an option
    ("/app --verbose", (), "/app --verbose"),
    # \r and \v are not OSv delimiters
    ("--a\rb /c", ("--a\rb",), "/c"),
])
def test_split_exact(line, options, command):
    assert split_cmdline(line) == SplitCmdline(options, command)


def test_split_strip_mmio_first_like_osv():
    line = "--nopci virtio_mmio.device=4K@0xc0001000:5 /hello virtio_mmio.device=4K@0xc0002000:6"
    plain = split_cmdline(line)
    assert plain.command.startswith("virtio_mmio.device=")
    parts = split_cmdline(line, strip_mmio=True)
    assert parts.options == ("--nopci",) and parts.command == "/hello "
    assert [e.device for e in parts.mmio] == [MmioDevice(4096, 0xC0001000, 5),
                                             MmioDevice(4096, 0xC0002000, 6)]


@pytest.mark.parametrize("line, reason, words", [
    ("--a=b\\", CmdlineError.SYNTAX, "lone backslash"),
    ("--a\0 /x", CmdlineError.NUL, "NUL at index 3"),
    ("/x\ud800", CmdlineError.INVALID_CHAR, "no UTF-8 encoding"),
])
def test_split_errors(line, reason, words):
    with pytest.raises(CmdlineError) as e:
        split_cmdline(line)
    assert e.value.reason == reason and words in str(e.value)


def test_parse_option():
    assert parse_option("--env=A=b") == ("env", "A=b")
    assert parse_option("--nopci") == ("nopci", None)
    assert parse_option("--x=") == ("x", "")


def test_render_exact_and_refusals():
    assert render_cmdline(["--env=B=b1 b2", "--p=a\\b"], "/x y") == r"--env=B=b1\ b2 --p=a\\b /x y"
    assert render_cmdline([], "") == ""
    for options, command in ((["nodash"], ""), ([], "-x"), ([], " x"), ([], "\tx")):
        with pytest.raises(CmdlineError) as e:
            render_cmdline(options, command)
        assert e.value.reason == CmdlineError.SYNTAX


options = st.lists(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)))
                   .map(lambda t: "-" + t), max_size=5)
command = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))).filter(
    lambda c: not c or c[0] not in " \t\n-")


@given(options, command)
def test_split_render_roundtrip(opts, cmd):
    assert split_cmdline(render_cmdline(opts, cmd)) == SplitCmdline(tuple(opts), cmd)


# --- limits ----------------------------------------------------------------------------
def test_check_limits_exact_boundaries():
    assert check_cmdline("a" * 1023, "osv") == b"a" * 1023
    assert check_cmdline("a" * 2047, "firecracker") == b"a" * 2047
    assert check_cmdline("a" * 32255, "bios") == b"a" * 32255
    for target, n in (("osv", 1024), ("firecracker", 2048), ("bios", 32256)):
        with pytest.raises(CmdlineError) as e:
            check_cmdline("a" * n, target)
        assert e.value.reason == CmdlineError.TOO_LARGE
        assert str(e.value).startswith(f"command line is {n} bytes, too long for {target}")
        assert f"at most {n - 1} bytes" in str(e.value)


def test_limits_count_utf8_bytes():
    # 'é' is 2 bytes in UTF-8: 512 of them are 1024 bytes, over OSv's 1023
    assert unfit_targets("é" * 511 + "a") == []
    assert unfit_targets("é" * 512) == ["osv"]
    assert unfit_targets("a" * 2048) == ["osv", "firecracker"]
    assert unfit_targets("a" * 40000) == ["osv", "bios", "firecracker"]


def test_firecracker_target_takes_non_ascii_and_control_chars():
    # Cmdline::try_from only checks the length
    assert check_cmdline("/app caf\u00e9\x01", "firecracker") == b"/app caf\xc3\xa9\x01"


def test_check_errors():
    with pytest.raises(CmdlineError) as e:
        check_cmdline("a\0b", "osv")
    assert e.value.reason == CmdlineError.NUL
    with pytest.raises(CmdlineError, match="unknown target 'uefi'"):
        check_cmdline("a", "uefi")


# --- builder -----------------------------------------------------------------------------
def test_builder_renders_options_command_mmio():
    c = Cmdline(1024)
    c.insert("rootfs", "rofs")
    c.insert("env", "A=b c")
    c.insert("nopci")
    c.set_command("/hello world")
    c.add_virtio_mmio_device(1 << 30, 0xC0001000, 5)
    assert str(c) == (r"--rootfs=rofs --env=A=b\ c --nopci /hello world "
                      "virtio_mmio.device=1024M@0xc0001000:5")
    assert c.as_bytes_with_nul() == str(c).encode() + b"\0"
    assert len(c) == 85  # 13+1+12+1+7+1+12+1+37
    parts = split_cmdline(str(c), strip_mmio=True)
    assert parts.options == ("--rootfs=rofs", "--env=A=b c", "--nopci")
    assert parts.command == "/hello world "


def test_builder_capacity_counts_the_nul():
    c = Cmdline(10)
    c.insert("abcdefg")        # "--abcdefg" 9 bytes + NUL = 10: fits exactly
    assert str(c) == "--abcdefg"
    with pytest.raises(CmdlineError) as e:
        c.set_command("x")      # " x" would need 12 bytes
    assert e.value.reason == CmdlineError.TOO_LARGE
    assert str(e.value) == ("command line would need 12 bytes with its NUL, "
                            "expected at most the capacity, 10 bytes")
    assert str(c) == "--abcdefg"
    with pytest.raises(CmdlineError):
        Cmdline(0)


@pytest.mark.parametrize("call, reason", [
    (lambda c: c.insert("bad key", "v"), CmdlineError.SYNTAX),
    (lambda c: c.insert("k=v"), CmdlineError.SYNTAX),
    (lambda c: c.insert("-k"), CmdlineError.SYNTAX),
    (lambda c: c.insert(""), CmdlineError.SYNTAX),
    (lambda c: c.insert("k", "a\0b"), CmdlineError.NUL),
    (lambda c: c.insert_option("nodash"), CmdlineError.SYNTAX),
    (lambda c: c.set_command("-x"), CmdlineError.SYNTAX),
    (lambda c: c.set_command("x" * 2000), CmdlineError.TOO_LARGE),
    (lambda c: c.add_virtio_mmio_device(0, 0x1000, 5), CmdlineError.MMIO),
    (lambda c: c.add_virtio_mmio_device(4096, 0x1000, 1 << 32), CmdlineError.MMIO),
])
def test_rejected_insert_leaves_line_unchanged(call, reason):
    c = Cmdline(1024)
    c.insert("rootfs", "rofs")
    c.set_command("/hello")
    before = str(c)
    with pytest.raises(CmdlineError) as e:
        call(c)
    assert e.value.reason == reason
    assert str(c) == before and c.options == ("--rootfs=rofs",) and c.command == "/hello"


def test_from_str_moves_mmio_to_the_end():
    c = Cmdline.from_str("virtio_mmio.device=4K@0xc0001000:5 --nopci /hello", 2048)
    assert c.options == ("--nopci",) and c.command == "/hello"
    assert c.mmio_entries == ("virtio_mmio.device=4K@0xc0001000:5",)
    assert str(c) == "--nopci /hello virtio_mmio.device=4K@0xc0001000:5"
    with pytest.raises(CmdlineError) as e:
        Cmdline.from_str("/x" * 600, 1024)
    assert e.value.reason == CmdlineError.TOO_LARGE


def test_for_target_capacities():
    assert [Cmdline.for_target(t).capacity for t in ("osv", "bios", "firecracker")] == \
        [1024, 32256, 2048]
    c = Cmdline.for_target("firecracker")
    c.set_command("a" * 2047)
    with pytest.raises(CmdlineError):
        c.set_command("a" * 2048)
    assert c.command == "a" * 2047


def test_docstring_examples():
    import doctest

    from osvkit.cmdline import mmio, model
    for module in (mmio, model):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
