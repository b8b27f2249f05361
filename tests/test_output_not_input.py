"""No command may write its output over one of its own inputs.

Every command that takes an output path (found by walking the CLI's command tree, so a new
command without a case here FAILS :func:`test_every_output_command_has_cases`) is run with
its output naming each kind of input it reads -- the same path, a symbolic link to it and a
hard link to it.  Each must be refused as a usage error (64) with a one-line ``error:``
message, and the input must be byte-identical afterwards.  The commands run in-process through
:func:`osvkit.cli.main` (the same code path as ``python -m osvkit``, without a start-up per
case); one case also runs as a real subprocess.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from osvkit.cli import main
from osvkit.cli._app import OUTPUT_PARAMS

from conftest import run_cli  # noqa: E402


# in-process CLI runs change process-wide state (progress bar, logger): put it back
pytestmark = pytest.mark.usefixtures("restore_cli_state")

#: per command path: (input kind, argv with {out} for the output, the input file key,
#: environment).  File keys: kernel (probe ELF), vmlinux, usr (usr.img with a ROFS in
#: partition 1), rofs, manifest, host (a host file the manifest lists), toml (a build file),
#: prog (a copy of a dynamically linked host program)
CASES: dict[tuple[str, ...], list[tuple[str, list[str], str, dict]]] = {
    ("build",): [
        ("KERNEL (usr)", ["build", "{kernel}", "-o", "{out}"], "kernel", {}),
        ("KERNEL (usr, qcow2)", ["build", "{kernel}", "--image-format", "qcow2", "-o", "{out}"],
         "kernel", {}),
        ("KERNEL (vmlinux)", ["build", "{kernel}", "--format", "vmlinux", "-o", "{out}"],
         "kernel", {}),
        ("--partition", ["build", "{kernel}", "--partition", "{rofs}", "-o", "{out}"], "rofs", {}),
        ("--manifest", ["build", "{kernel}", "--manifest", "{manifest}", "-o", "{out}"],
         "manifest", {}),
        ("a host file the manifest lists",
         ["build", "{kernel}", "--manifest", "{manifest}", "-o", "{out}"], "host", {}),
        ("-c build file", ["build", "-c", "{toml}", "-o", "{out}"], "toml", {}),
        ("--app", ["build", "{kernel}", "--app", "{prog}", "-o", "{out}"], "prog", {}),
        ("--add", ["build", "{kernel}", "--add", "{host}:/h.txt", "-o", "{out}"], "host", {}),
        ("--disk-output over --app", ["build", "{kernel}", "--format", "vmlinux", "--app",
                                      "{prog}", "--disk-output", "{out}", "-o", "{tmp}/v.elf"],
         "prog", {}),
        ("--disk-output over KERNEL", ["build", "{kernel}", "--format", "vmlinux", "--app",
                                       "{prog}", "--disk-output", "{out}", "-o", "{tmp}/v.elf"],
         "kernel", {}),
        ("OSVKIT_CONFIG", ["build", "{kernel}", "-o", "{out}"], "toml", {"OSVKIT_CONFIG": "{toml}"}),
    ],
    ("manifest", "from-host"): [
        ("ELF", ["manifest", "from-host", "{prog}", "-o", "{out}"], "prog", {}),
        ("ELF (static)", ["manifest", "from-host", "{kernel}", "-o", "{out}"], "kernel", {}),
        ("--kernel", ["manifest", "from-host", "{prog}", "--kernel", "{kernel}", "-o", "{out}"],
         "kernel", {}),
        ("OSVKIT_CONFIG", ["manifest", "from-host", "{prog}", "-o", "{out}"], "toml",
         {"OSVKIT_CONFIG": "{toml}"}),
    ],
    ("patch",): [
        # patching in place is what patch does without -o; -o names a different file
        ("IMAGE", ["patch", "{usr}", "-o", "{out}"], "usr", {}),
        ("--kernel", ["patch", "{usr}", "--kernel", "{kernel}", "-o", "{out}"], "kernel", {}),
        ("--add", ["patch", "{usr}", "--add", "{host}:/h.txt", "-o", "{out}"], "host", {}),
        ("OSVKIT_CONFIG", ["patch", "{usr}", "-o", "{out}"], "toml",
         {"OSVKIT_CONFIG": "{toml}"}),
    ],
    ("probe",): [
        ("OSVKIT_CONFIG", ["probe", "-o", "{out}"], "toml", {"OSVKIT_CONFIG": "{toml}"}),
    ],
    ("kernel", "extract"): [
        ("IMAGE", ["kernel", "extract", "{usr}", "-o", "{out}"], "usr", {}),
        ("IMAGE (a kernel ELF)", ["kernel", "extract", "{kernel}", "-o", "{out}"], "kernel", {}),
        ("OSVKIT_CONFIG", ["kernel", "extract", "{usr}", "-o", "{out}"], "toml",
         {"OSVKIT_CONFIG": "{toml}"}),
    ],
    ("firecracker-config",): [
        ("KERNEL", ["firecracker-config", "{vmlinux}", "-o", "{out}"], "vmlinux", {}),
        ("--disk", ["firecracker-config", "{vmlinux}", "--disk", "{usr}", "-o", "{out}"],
         "usr", {}),
        ("OSVKIT_CONFIG", ["firecracker-config", "{vmlinux}", "-o", "{out}"], "toml",
         {"OSVKIT_CONFIG": "{toml}"}),
    ],
    ("rofs", "build"): [
        ("MANIFEST", ["rofs", "build", "{manifest}", "-o", "{out}"], "manifest", {}),
        ("a host file the manifest lists", ["rofs", "build", "{manifest}", "-o", "{out}"],
         "host", {}),
        ("MANIFEST (shorthand)", ["rofs", "{manifest}", "-o", "{out}"], "manifest", {}),
    ],
    ("rofs", "extract"): [
        ("IMAGE", ["rofs", "extract", "{rofs}", "{out}"], "rofs", {}),
        ("IMAGE (partition)", ["rofs", "extract", "{usr}", "{out}", "-p", "1"], "usr", {}),
    ],
    ("verify",): [
        ("--plot over IMAGES", ["verify", "{usr}", "--plot", "{out}"], "usr", {}),
        ("--plot over --disk", ["verify", "{vmlinux}", "--disk", "{usr}", "--plot", "{out}"],
         "usr", {}),
        ("--plot over -c", ["verify", "-c", "{toml}", "--plot", "{out}"], "toml", {}),
        ("--out over -c", ["verify", "-c", "{toml}", "--out", "{out}"], "toml", {}),
    ],
    ("demo",): [
        ("--plot over OSVKIT_CONFIG", ["demo", "--plot", "{out}"], "toml",
         {"OSVKIT_CONFIG": "{toml}"}),
        ("--out over OSVKIT_CONFIG", ["demo", "--out", "{out}"], "toml",
         {"OSVKIT_CONFIG": "{toml}"}),
    ],
}

LINKS = ("direct", "symlink", "hardlink")


def _commands():
    import click

    from osvkit.cli import app

    def walk(cmd, path=()):
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), path + (name,))
        else:
            yield path, cmd
    return dict(walk(app))


def _is_path(param) -> bool:
    td = getattr(param, "type_descriptor", None)
    if td is not None:
        return "Path" in str(td.annotation)
    return "Path" in type(getattr(param, "type", None)).__name__


def _is_output(param) -> bool:
    """A path parameter that names something the command writes: by name, by
    -o/--output/--out, or by its help text."""
    if not _is_path(param):
        return False
    opts = set(getattr(param, "opts", None) or ())
    text = (getattr(param, "help", None) or "").lower()
    return (param.name in OUTPUT_PARAMS or "output" in param.name or param.name.startswith("out")
            or bool(opts & {"-o", "--output", "--out"})
            or re.search(r"\b(writes?|create|output (file|directory|path))\b", text) is not None)


def output_commands() -> dict[tuple[str, ...], list[str]]:
    found = {}
    for path, cmd in _commands().items():
        outs = [p.name for p in cmd.params if _is_output(p) and p.name != "json_output"]
        if outs:
            found[path] = outs
    return found


def test_every_output_command_has_cases():
    found = output_commands()
    missing = sorted(" ".join(p) for p in found if p not in CASES)
    assert not missing, f"commands that write a file but have no output-is-input case: {missing}"
    # the CLI guard knows an output parameter by its name: a new name would slip past it
    unguarded = {" ".join(p): [n for n in names if n not in OUTPUT_PARAMS]
                 for p, names in found.items()}
    assert not any(unguarded.values()), (
        f"output parameters the guard does not know (add to OUTPUT_PARAMS): {unguarded}")
    stale = sorted(" ".join(p) for p in CASES if p not in found)
    assert not stale, f"cases for commands that no longer write anything: {stale}"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    f = {k: d / n for k, n in [("kernel", "k.elf"), ("vmlinux", "v.elf"), ("usr", "u.img"),
                                ("rofs", "r.img"), ("manifest", "m.manifest"),
                                ("host", "hello.txt"), ("toml", "osvkit.toml"),
                                ("prog", "prog")]}
    # a host program (a copy: nothing outside the test's directory is ever at risk)
    shutil.copy(shutil.which("true") or "/bin/true", f["prog"])
    f["host"].write_text("hello\n")
    f["manifest"].write_text(f"/hello.txt: {f['host']}\n")
    f["toml"].write_text('spec = 1\n[options]\nmemory = "128M"\n[[image]]\nname = "p"\n'
                         'kernel = "probe"\n[image.outputs]\nvmlinux = "out/p.elf"\n')
    for argv in (["probe", "-o", f["kernel"]],
                 ["build", f["kernel"], "--format", "vmlinux", "-o", f["vmlinux"]],
                 ["rofs", "build", f["manifest"], "-o", f["rofs"]],
                 ["build", f["kernel"], "--partition", f["rofs"], "-o", f["usr"]]):
        assert main([str(a) for a in argv] + ["-q"]) == 0, argv
    return f


def _all_cases():
    for path, cases in CASES.items():
        for label, argv, key, env in cases:
            for link in LINKS:
                yield pytest.param(argv, key, env, link, id=f"{' '.join(path)}-{label}-{link}")


@pytest.mark.parametrize("argv,key,env,link", list(_all_cases()))
def test_output_that_is_an_input_is_refused(files, tmp_path, monkeypatch, capsys, argv, key,
                                            env, link):
    target = files[key]
    if link == "direct":
        out = target
    elif link == "symlink":
        out = tmp_path / "link"
        out.symlink_to(target)
    else:
        out = tmp_path / "hard"
        os.link(target, out)
    names = {k: str(v) for k, v in files.items()} | {"out": str(out), "tmp": str(tmp_path)}
    monkeypatch.delenv("OSVKIT_CONFIG", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(**names))
    before = {k: p.read_bytes() for k, p in files.items()}
    capsys.readouterr()
    status = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert status == 64, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert "the output is" in err and "not an input" in err, err
    assert {k: p.read_bytes() for k, p in files.items()} == before
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".osvkit-")]


def test_refused_as_a_subprocess(files):
    """The same through ``python -m osvkit``: firecracker-config used to turn the disk into
    JSON (exit 0)."""
    before = files["usr"].read_bytes()
    r = run_cli("firecracker-config", files["vmlinux"], "--disk", files["usr"], "-o", files["usr"])
    assert r.returncode == 64, r.stderr
    assert r.stderr.decode().startswith(f"error: {files['usr']}: the output is --disk")
    assert files["usr"].read_bytes() == before


def test_distinct_output_is_not_refused(files, tmp_path):
    """The check compares files, not names: an output beside the input is written."""
    out = tmp_path / "vm.json"
    assert main(["firecracker-config", str(files["vmlinux"]), "--disk", str(files["usr"]),
                 "-o", str(out), "-q"]) == 0
    assert out.stat().st_size > 0


def test_same_file_helper(tmp_path):
    from osvkit.fileio import same_file

    a = tmp_path / "a"
    a.write_bytes(b"x")
    (tmp_path / "s").symlink_to(a)
    os.link(a, tmp_path / "h")
    (tmp_path / "d").mkdir()
    (tmp_path / "ld").symlink_to(tmp_path / "d")
    assert same_file(a, tmp_path / "s") and same_file(a, tmp_path / "h")
    assert same_file(tmp_path / "ld" / "new", tmp_path / "d" / "new")   # neither exists
    assert not same_file(a, tmp_path / "b") and not same_file(tmp_path / "b", tmp_path / "c2")


def test_existing_inputs_are_compared_by_one_stat(tmp_path, monkeypatch):
    """check_not_input resolves the output's path once and stats each existing input once:
    a ROFS build compares the output with every host file, and resolving each input's path
    (an lstat per component) was a third of a 2,000-file build.  Missing inputs are still
    compared by resolved path."""
    from osvkit import fileio
    from osvkit.errors import UsageError

    inputs = []
    for i in range(50):
        inputs.append(tmp_path / f"in{i}")
        inputs[-1].write_bytes(b"x")
    calls = []
    real = os.path.realpath
    monkeypatch.setattr(fileio.os.path, "realpath", lambda p: calls.append(p) or real(p))
    fileio.check_not_input(tmp_path / "out.img", inputs)
    assert calls == [tmp_path / "out.img"]
    with pytest.raises(UsageError):
        fileio.check_not_input(tmp_path / "in7", inputs)       # an existing input: same inode
    (tmp_path / "d").mkdir()
    (tmp_path / "ld").symlink_to(tmp_path / "d")
    with pytest.raises(UsageError):                          # neither exists: same resolved path
        fileio.check_not_input(tmp_path / "ld" / "new", [tmp_path / "d" / "new"])
