"""Start-up: the command line imports only what a command uses.  (Speed itself is measured by
``bench/startup.py``, not by a timed test.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("lief", "keystone", "capstone", "rich", "typer", "pydantic", "elftools")


def _modules_after(code: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         env=env, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY}


def test_import_osvkit_cli_loads_no_heavy_library():
    modules = _modules_after("import osvkit.cli")
    assert not _heavy(modules)
    # nor any command module: they load when their command runs
    assert not {m for m in modules if m.startswith("osvkit.cli.") and m != "osvkit.cli._app"}


@pytest.mark.parametrize("argv, allowed", [
    (["--version"], set()),
    (["--help"], set()),
    (["cmdline", "--help"], set()),
    (["mmio", "decode", "virtio_mmio.device=4K@0x1000:5"], set()),
])
def test_quick_commands_load_no_heavy_library(argv, allowed):
    code = (f"from osvkit.cli import main\nimport contextlib, io\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    main({argv!r})")
    assert _heavy(_modules_after(code)) == allowed


def test_cmdline_get_loads_no_heavy_library(tmp_path):
    img = tmp_path / "usr.img"
    img.write_bytes(bytes(510) + b"\x55\xaa" + b"/hello\0" + bytes(64 * 1024))
    code = (f"from osvkit.cli import main\nimport contextlib, io\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['cmdline', 'get', {str(img)!r}]) == 0")
    modules = _modules_after(code)
    assert not _heavy(modules)
    assert not {m for m in modules if m.startswith(("osvkit.rofs", "osvkit.boot", "osvkit.probe"))}


def _raw_image(tmp_path, line: bytes = b"/hello") -> Path:
    img = tmp_path / "usr.img"
    img.write_bytes(bytes(510) + b"\x55\xaa" + line + b"\0" + bytes(64 * 1024))
    return img


def _run_main(argv: list[str]) -> str:
    return (f"from osvkit.cli import main\nimport contextlib, io\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({argv!r}) == 0")


def test_cmdline_get_of_a_raw_image_loads_no_construct(tmp_path):
    """Reading a raw image's line needs no schema: no construct, no qcow2 reader, no MBR
    table, and no virtio-mmio parser for a line without an entry."""
    modules = _modules_after(_run_main(["cmdline", "get", str(_raw_image(tmp_path))]))
    assert "osvkit.image.cmdline_io" in modules          # the command did run
    assert not {m for m in modules if m.split(".")[0] == "construct"}
    assert not {m for m in modules if m.startswith("osvkit.structs")}
    assert not {"osvkit.disk.qcow2", "osvkit.disk.partitions", "osvkit.cmdline.mmio"} & modules


def test_cmdline_set_of_a_raw_image_loads_no_qcow2_reader(tmp_path):
    img = _raw_image(tmp_path)
    modules = _modules_after(_run_main(["cmdline", "set", str(img), "--", "--nopci /x"]))
    assert "osvkit.disk.partitions" in modules           # the MBR table is checked before writing
    assert not {"osvkit.disk.qcow2", "osvkit.structs.qcow2", "osvkit.cmdline.mmio"} & modules
    assert img.read_bytes()[512:522] == b"--nopci /x"


def test_cmdline_get_loads_mmio_parser_for_a_line_holding_an_entry(tmp_path):
    img = _raw_image(tmp_path, b"/hello virtio_mmio.device=4K@0xc0001000:5")
    modules = _modules_after(_run_main(["cmdline", "get", "--json", str(img)]))
    assert "osvkit.cmdline.mmio" in modules


def test_model_knows_the_mmio_prefix():
    from osvkit.cmdline import mmio, model

    assert model._MMIO_PREFIX == mmio.PREFIX


def test_cmdline_set_imports_construct_without_its_debugger(tmp_path):
    """construct's own imports that osvkit never uses (its debugger's pdb, pickle, hashlib)
    are not loaded by a command that parses one MBR."""
    img = _raw_image(tmp_path)
    modules = _modules_after(_run_main(["cmdline", "set", str(img), "--", "/y"]))
    assert "construct" in modules and "osvkit.structs.mbr" in modules
    assert not {"pdb", "pickle", "hashlib", "bdb"} & modules


def test_construct_deferred_modules_load_on_first_use():
    """The stand-ins construct got import the real module when construct uses it, and the
    rest of the process imports the real modules as usual."""
    code = """
import sys
import osvkit.structs
import construct
from osvkit.structs._construct import OnFirstUse, UNUSED_AT_IMPORT
assert not any(isinstance(sys.modules.get(n), OnFirstUse) for n in UNUSED_AT_IMPORT)
assert isinstance(construct.core.hashlib, OnFirstUse)
assert construct.core.hashlib.sha1(b"").hexdigest().startswith("da39a3ee")
assert construct.Pickled.parse(construct.Pickled.build({"a": [1, 2]})) == {"a": [1, 2]}
import pdb, hashlib
assert type(pdb) is type(sys) and pdb.Pdb is construct.debug.pdb.Pdb
assert hashlib.sha256 is construct.core.hashlib.sha256
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_command_that_logs_nothing_loads_no_logging(tmp_path):
    modules = _modules_after(_run_main(["cmdline", "get", str(_raw_image(tmp_path))]))
    assert "osvkit.image.cmdline_io" in modules
    assert "logging" not in modules


def test_the_logger_loads_logging_on_its_first_message():
    """configure() before logging is loaded: the first message loads it and comes out on
    stderr with the osvkit prefix, at the configured level."""
    code = """
import sys
from osvkit import log as logs
logs.configure(logs.INFO)
assert "logging" not in sys.modules
logs.log.debug("not shown")
assert "logging" in sys.modules
logs.log.info("shown %d", 1)
logs.configure(logs.ERROR)
logs.log.warning("not shown either")
logs.log.error("an error")
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["osvkit: shown 1", "osvkit: an error"]


def test_stale_bytes_warning_still_reaches_stderr(tmp_path):
    img = tmp_path / "usr.img"
    img.write_bytes(bytes(510) + b"\x55\xaa" + b"/a\0stale" + bytes(64 * 1024))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "osvkit", "cmdline", "get", str(img)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "/a\n"
    assert out.stderr.startswith(f"osvkit: {img}: 5 stale non-zero bytes after the NUL")
    quiet = subprocess.run([sys.executable, "-m", "osvkit", "cmdline", "get", "-q", str(img)],
                           env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == "/a\n" and quiet.stderr == ""
