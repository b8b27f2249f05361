"""The layout constants, the error type and the CLI's error handling."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import pytest

import osvkit
from osvkit import layout
from osvkit.errors import (EX_DATAERR, EX_NOINPUT, EX_USAGE, FormatError, MissingInputError,
                           OsvkitError)


@pytest.mark.parametrize("path", sorted(layout.REGIONS))
def test_regions_do_not_overlap(path):
    regions = layout.REGIONS[path]
    for (a, (a0, a1)), (b, (b0, b1)) in itertools.combinations(regions.items(), 2):
        assert a0 < a1 and b0 < b1, (a, b)
        if frozenset({a, b}) in layout.ALLOWED_OVERLAPS:
            continue
        assert a1 <= b0 or b1 <= a0, f"{path}: {a} {a0:#x}-{a1:#x} overlaps {b} {b0:#x}-{b1:#x}"


def test_layout_values_from_the_reference():
    # OSv's and Firecracker's values, written out, not derived
    assert layout.CMDLINE_OFFSET == 512
    assert layout.KERNEL_OFFSET == 0x10000
    assert layout.CMDLINE_AREA_SIZE == 32256
    assert layout.START32_SLOT_ADDR == 0x200800
    assert layout.KERNEL_VM_SHIFT == 0x4000_0000
    assert layout.FC_SYSTEM_MEM_SIZE == 0x40400
    assert layout.FC_ZERO_PAGE_ADDR == 0x7000 and layout.FC_CMDLINE_ADDR == 0x20000


def test_error_line_names_file_problem_and_expectation():
    e = FormatError("bad magic b'XXXX'", path="disk.img", expected="b'_MP_'")
    assert str(e) == "disk.img: bad magic b'XXXX', expected b'_MP_'"
    assert e.exit_status == EX_DATAERR
    assert MissingInputError("no such file").exit_status == EX_NOINPUT
    assert "\n" not in str(OsvkitError("a\nb", path="x"))


def test_public_api_is_lazy_and_complete():
    for name in osvkit.__all__:
        assert getattr(osvkit, name) is not None
    with pytest.raises(AttributeError):
        osvkit.no_such_name  # noqa: B018


def test_kernel_errors(tmp_path):
    bad = tmp_path / "notelf"
    bad.write_bytes(b"hello world" * 10)
    with pytest.raises(osvkit.KernelError, match="notelf: not an ELF file"):
        osvkit.load_kernel(bad)
    elf32 = tmp_path / "elf32"
    elf32.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(100))
    with pytest.raises(osvkit.KernelError, match="ELF32"):
        osvkit.load_kernel(elf32)
    with pytest.raises(MissingInputError, match="no such file"):
        osvkit.load_kernel(tmp_path / "missing")


def test_cli_version_and_usage_status(cli):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.decode().strip() == f"osvkit {osvkit.__version__}"
    r = cli("no-such-command")
    assert r.returncode == EX_USAGE
    assert b"Traceback" not in r.stderr


def test_atomic_output_errors_and_no_leftovers(tmp_path):
    from osvkit.errors import OutputError
    from osvkit.fileio import atomic_output, write_atomic

    write_atomic(tmp_path / "a", b"one")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "a") as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert (tmp_path / "a").read_bytes() == b"one"
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_atomic(tmp_path / "d", b"x")
    with pytest.raises(OutputError, match="directory does not exist"):
        write_atomic(tmp_path / "missing" / "x", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "d"]


def _char_device(tmp_path):
    """A private /dev/null twin (root only): never risk the real one in a test."""
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return None
    return dev


def test_atomic_output_writes_into_devices_and_fifos_never_replaces_them(tmp_path):
    # renaming the temporary file over "-o /dev/null" turned /dev/null into a regular file
    import threading

    from osvkit.fileio import write_atomic

    dev = _char_device(tmp_path)
    if dev is not None:
        write_atomic(dev, b"gone")
        assert stat.S_ISCHR(os.stat(dev).st_mode) and dev.read_bytes() == b""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["fifo"] + (["null"] if dev is not None else []))


def test_cli_probe_to_a_device_keeps_the_device(cli, tmp_path):
    dev = _char_device(tmp_path)
    if dev is None:
        pytest.skip("mknod needs root")
    r = cli("probe", "-o", str(dev))
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_character_devices_are_refused_as_inputs(cli, tmp_path):
    # reading /dev/zero whole never ended (osvkit build /dev/zero hung)
    r = cli("build", "/dev/zero", "--format", "usr", "-o", str(tmp_path / "u.img"))
    assert r.returncode == 66 and b"Traceback" not in r.stderr
    assert r.stderr.decode() == ("error: /dev/zero: is a character device, expected a kernel "
                                 "ELF file or a disk image holding one (a regular file or "
                                 "block device)\n")
    r = cli("decode", "mbr", "/dev/zero")
    assert r.returncode == 66 and r.stderr.decode().startswith("error: /dev/zero: is a character")
    assert not (tmp_path / "u.img").exists()


def test_missing_tools_fail_under_require_tools(tmp_path):
    # CI sets OSVKIT_REQUIRE_TOOLS=1: a QEMU that install.sh failed to install must fail the
    # boot tests rather than skip them all
    import subprocess
    import sys
    t = tmp_path / "test_t.py"
    t.write_text("def test_needs_qemu(qemu):\n    pass\n")
    (tmp_path / "conftest.py").write_text(
        (Path(__file__).parent / "conftest.py").read_text())
    env = dict(os.environ, PATH=str(tmp_path))       # no qemu on PATH
    for require, outcome in (("0", "1 skipped"), ("1", "1 error")):
        env["OSVKIT_REQUIRE_TOOLS"] = require
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(tmp_path), str(t)], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
        assert outcome in r.stdout and r.returncode == (0 if require == "0" else 1), r.stdout
    assert "qemu-system-x86_64 is not installed" in r.stdout
    assert "OSVKIT_REQUIRE_TOOLS=1" in (Path(__file__).parents[1] / ".ci" / "run").read_text()


def test_atomic_output_through_a_symlink_replaces_the_target_keeps_the_link(tmp_path):
    # os.replace over the link replaced the link itself (think -o /dev/stdout > file)
    from osvkit.fileio import write_atomic
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "image"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    write_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["image"]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "real" / "new-file")
    write_atomic(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "real" / "new-file").read_bytes() == b"made"
