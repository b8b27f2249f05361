"""A write that fails because of the output (a full file system, a file-size limit, a quota)
is the one-line ``error: <output>: write failed: <reason>`` with exit status 74, for every
command that writes a file -- never a traceback -- and leaves neither the output nor a
temporary file behind.

The failure is real: each command runs as a child process whose RLIMIT_FSIZE is 64 bytes
(SIGXFSZ ignored, so a write past the limit fails with EFBIG, as it does on a file system
that cannot hold the file).  The commands are the ones ``test_output_not_input`` finds by
walking the CLI (a new writing command without a case here fails
:func:`test_every_writing_command_is_covered`).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import missing_tool, run_cli  # noqa: E402
from test_output_not_input import output_commands

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 64

#: command path -> argv ({out} is the output, the other names are files made below); the
#: commands that boot a VMM first (verify, demo) are covered with --plot/--out after a boot
CASES: dict[tuple[str, ...], list[str]] = {
    ("build",): ["build", "{kernel}", "-o", "{out}"],
    ("manifest", "from-host"): ["manifest", "from-host", "{prog}", "-o", "{out}"],
    ("patch",): ["patch", "{usr}", "--cmdline", "/x", "-o", "{out}"],
    ("probe",): ["probe", "-o", "{out}"],
    ("kernel", "extract"): ["kernel", "extract", "{usr}", "-o", "{out}"],
    ("firecracker-config",): ["firecracker-config", "{vmlinux}", "-o", "{out}"],
    ("rofs", "build"): ["rofs", "build", "{manifest}", "-o", "{out}"],
    ("rofs", "extract"): ["rofs", "extract", "{rofs}", "{out}"],
    ("verify",): ["verify", "{usr}", "--plot", "{out}"],
    ("demo",): ["demo", "--out", "{out}"],
}

#: more outputs of the same commands: the other formats and paths of writing
MORE = [
    ["build", "{kernel}", "--image-format", "qcow2", "-o", "{out}"],
    ["build", "{kernel}", "--format", "vmlinux", "-o", "{out}"],
    ["build", "{kernel}", "--manifest", "{manifest}", "-o", "{out}"],
    ["patch", "{usr}", "--cmdline", "/x", "--image-format", "qcow2", "-o", "{out}"],
    ["patch", "{usr}", "--add", "{host}:/more.txt", "-o", "{out}"],
]


def _limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    f = {k: d / n for k, n in [("kernel", "k.elf"), ("vmlinux", "v.elf"), ("usr", "u.img"),
                                ("rofs", "r.img"), ("manifest", "m.manifest"),
                                ("host", "hello.txt"), ("prog", "prog")]}
    f["prog"].write_bytes(Path(sys.executable).resolve().read_bytes())
    f["prog"].chmod(0o755)
    f["host"].write_bytes(os.urandom(4096))
    f["manifest"].write_text(f"/hello.txt: {f['host']}\n")
    for argv in (["probe", "-o", f["kernel"]],
                 ["build", f["kernel"], "--format", "vmlinux", "-o", f["vmlinux"]],
                 ["rofs", "build", f["manifest"], "-o", f["rofs"]],
                 ["build", f["kernel"], "--partition", f["rofs"], "-o", f["usr"]]):
        r = run_cli(*map(str, argv), "-q")
        assert r.returncode == 0, r.stderr
    return f


def test_every_writing_command_is_covered():
    missing = sorted(" ".join(p) for p in output_commands() if p not in CASES)
    assert not missing, f"commands that write a file but have no write-failure case: {missing}"


def _params():
    for path, argv in CASES.items():
        yield pytest.param(argv, id=" ".join(path))
    for argv in MORE:
        yield pytest.param(argv, id=" ".join(a for a in argv if not a.startswith("{")))


@pytest.mark.parametrize("argv", list(_params()))
def test_write_failure_is_one_line_74(files, tmp_path, argv):
    tool = ("qemu-system-x86_64" if argv[0] in ("verify", "demo") else
            "qemu-img" if "qcow2" in argv else None)
    if tool and shutil.which(tool) is None:
        missing_tool(f"{tool} is not installed")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / ("result.png" if argv[0] == "verify" else "result")
    names = {k: str(v) for k, v in files.items()} | {"out": str(out)}
    before = {k: p.read_bytes() for k, p in files.items()}
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    env.pop("OSVKIT_CONFIG", None)
    r = subprocess.run([sys.executable, "-m", "osvkit", *[a.format(**names) for a in argv]],
                       env=env, capture_output=True, text=True, preexec_fn=_limit, timeout=600)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 74, r.stderr
    assert lines[-1].startswith("error: ") and "write failed: File too large" in lines[-1], \
        r.stderr
    assert {k: p.read_bytes() for k, p in files.items()} == before
    left = sorted(p.name for p in out_dir.rglob("*") if p.is_file() and p.stat().st_size)
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".osvkit-")], left
    assert not left
    if not (argv[:2] == ["rofs", "extract"] or argv[0] == "demo"):   # those write directories
        assert not out.exists()
