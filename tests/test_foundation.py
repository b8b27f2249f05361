"""The layout constants, the error type and the CLI's error handling."""

from __future__ import annotations

import itertools
import json

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
    # osv-boot.md 1.1-1.4 and firecracker-boot.md 1.1, written out, not derived
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
