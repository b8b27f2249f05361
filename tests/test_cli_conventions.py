"""CLI conventions, through click's runner and as a real subprocess: --json is only JSON
(even with -v), -v/-q on every command, sysexits statuses, --help examples, shell
completion, option precedence, nothing written on failure, reproducible builds."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from osvkit.cli import app
from osvkit.progress import Progress, progress, set_enabled

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

PROBE_BUILD_FILE = """\
spec = 1

[options]
timeout = 30

[[image]]
name = "p"
kernel = "probe"
cmdline.options = ["--verbose"]
cmdline.app = ["/hello"]
outputs = { usr = "out/p.img", vmlinux = "out/p.elf" }
verify = { vmms = ["qemu", "qemu-pvh"] }
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSVKIT_")}
    env.update(extra)
    return env


@pytest.fixture
def probe_project(tmp_path):
    pytest.importorskip("osvkit.probe", reason="needs the conformance kernel (probe branch)")
    (tmp_path / "osvkit.toml").write_text(PROBE_BUILD_FILE)
    return tmp_path / "osvkit.toml"


def _walk(group, prefix=()):
    import click
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def _click_group():
    return app


# --------------------------------------------------------------------------------------
# Every command
# --------------------------------------------------------------------------------------

def test_every_command_has_verbose_quiet_and_help():
    commands = list(_walk(_click_group()))
    assert len(commands) >= 8
    runner = CliRunner()
    for path, cmd in commands:
        opts = {o for p in cmd.params for o in (getattr(p, "opts", None) or ())}
        assert {"-v", "--verbose", "-q", "--quiet"} <= opts, path
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert "--quiet" in r.output


@pytest.mark.parametrize("command", [("verify",), ("demo",), ("build",)])
def test_our_commands_have_json_and_consistent_long_options(command):
    cmd = dict(_walk(_click_group()))[command]
    opts = {o for p in cmd.params for o in (getattr(p, "opts", None) or ())}
    assert "--json" in opts
    common = {"verify": {"--cmdline", "--memory", "--cpus", "--timeout", "--accel", "-c"},
              "demo": {"--memory", "--cpus", "--timeout", "--accel"},
              "build": {"--cmdline", "--image-format", "-c"}}[command[0]]
    assert common <= opts


@pytest.mark.parametrize("command", ["verify", "demo"])
def test_help_has_examples_and_exit_statuses(command):
    r = CliRunner().invoke(app, [command, "--help"])
    assert r.exit_code == 0
    assert "Examples:" in r.output and f"$ osvkit {command}" in r.output
    assert "Exit status: 0" in r.output and "--json prints" in r.output
    assert "[env: OSVKIT_TIMEOUT]" in r.output


def test_shell_completion(cli):
    r = cli(env={"_OSVKIT_COMPLETE": "bash_complete", "COMP_WORDS": "osvkit veri",
                 "COMP_CWORD": "1"})
    assert r.returncode == 0 and r.stdout.decode().split() == ["plain,verify"]
    r = cli(env={"_OSVKIT_COMPLETE": "bash_source"})
    assert b"_osvkit_completion()" in r.stdout


# --------------------------------------------------------------------------------------
# Exit statuses and one-line errors
# --------------------------------------------------------------------------------------

def test_bad_input_statuses(cli, tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"not an image" * 100)
    cases = [
        (["verify", str(tmp_path / "missing.img")], 66, "missing.img: no such file"),
        (["verify", str(junk)], 65, "junk.img: not a bootable image"),
        (["verify", str(junk), "--cpus", "many"], 64, "--cpus: bad CPU count 'many'"),
        (["verify", str(junk), "--plot", str(tmp_path / "x.jpg")], 64, "unknown picture format"),
        (["verify", "--vmm", "xen", str(junk)], 65, "junk.img: not a bootable image"),
        (["build", "-c", str(tmp_path / "none.toml")], 66, "none.toml: no such build file"),
        (["verify", "-c", str(tmp_path / "none.toml")], 66, "none.toml: no such build file"),
        (["demo", "--plot", "a.gif"], 64, "unknown picture format"),
        (["verify", "--no-such-flag"], 64, "No such option"),
        (["verify"], 64, "nothing to verify, expected IMAGE arguments, -c BUILD_FILE or "
                         "./osvkit.toml"),
        (["verify", str(junk), "-c", "x.toml"], 64, "give either IMAGE arguments or -c"),
        (["verify", str(junk), "--image", "a"], 64, "--image and --out need a build file"),
        # were tracebacks (exit 1): a file as the demo's directory, a file that cannot seek
        (["demo", "--out", str(junk)], 73, "junk.img: is not a directory, expected a directory"),
        (["cmdline", "get", "/proc/version"], 65, "/proc/version: cannot seek"),
        (["cmdline", "set", "/proc/version", "--", "/x"], 65, "/proc/version: cannot seek"),
    ]
    for args, status, text in cases:
        r = cli(*args, cwd=tmp_path, env=_clean_env())
        err = r.stderr.decode()
        assert r.returncode == status, (args, r.returncode, err)
        assert text in err, (args, err)
        assert "Traceback" not in err and r.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.img"]   # nothing written


def test_bad_expect_and_plot_place_are_found_before_any_boot(cli, tmp_path):
    """A bad --expect regex was exit 70 "no run backend could boot any image ... expected
    QEMU installed"; a --plot in a missing directory failed only after every boot."""
    img = tmp_path / "a.img"
    img.write_bytes(bytes(510) + b"\x55\xaa")
    (tmp_path / "pic.svg").mkdir()
    cases = [
        (["verify", str(img), "--expect", "("], 64,
         "error: --expect '(': bad regular expression: missing ), unterminated subpattern at "
         "position 0, expected a Python regular expression"),
        (["verify", str(img), "--plot", str(tmp_path / "no" / "t.svg")], 73,
         f"error: {tmp_path / 'no' / 't.svg'}: directory does not exist"),
        (["verify", str(img), "--plot", str(tmp_path / "pic.svg")], 73,
         f"error: {tmp_path / 'pic.svg'}: is a directory, expected a file name for the picture"),
        (["demo", "--plot", str(tmp_path / "no" / "t.png")], 73,
         f"error: {tmp_path / 'no' / 't.png'}: directory does not exist"),
    ]
    for args, status, line in cases:
        r = cli(*args, env=_clean_env())
        assert (r.returncode, r.stderr.decode(), r.stdout) == (status, line + "\n", b""), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.img", "pic.svg"]


def test_env_values_are_checked_with_their_name(cli, tmp_path):
    img = tmp_path / "a.img"
    img.write_bytes(bytes(510) + b"\x55\xaa")
    r = cli("verify", str(img), env=_clean_env(OSVKIT_CPUS="abc"))
    assert r.returncode == 64
    assert r.stderr.decode().strip() == ("error: OSVKIT_CPUS: bad CPU count 'abc', "
                                         "expected an integer from 1 to 255")


def test_invalid_build_file_lists_lines(cli, tmp_path):
    bf = tmp_path / "osvkit.toml"
    bf.write_text('spec = 1\n\n[[image]]\nname = "x"\nkernel = "probe"\ncpus = 0\n'
                  '[image.outputs]\nusr = "x.img"\nvmware = "x.vmx"\n')
    for cmd in (["build", "-c", str(bf)], ["verify", "-c", str(bf)]):
        r = cli(*cmd, env=_clean_env())
        err = r.stderr.decode()
        assert r.returncode == 65
        assert err.count("\n") == 1 and err.startswith("error: ")
        assert f"{bf}:6: image[0].cpus: 0 is less than 1, expected at least 1" in err
        assert f"{bf}:9: image[0].outputs.vmware: unknown key 'vmware'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["osvkit.toml"]


def test_runner_and_subprocess_agree_on_status(cli, tmp_path):
    missing = str(tmp_path / "nope.img")
    r = CliRunner().invoke(app, ["verify", missing])
    assert r.exit_code == 66
    assert cli("verify", missing).returncode == 66


# --------------------------------------------------------------------------------------
# Builds and boots through the CLI
# --------------------------------------------------------------------------------------

@pytest.mark.qemu
def test_build_and_verify_json_with_verbose(cli, probe_project, qemu):
    d = probe_project.parent
    r = cli("-v", "build", "-c", str(probe_project), "--json", "-v", env=_clean_env())
    assert r.returncode == 0, r.stderr.decode()
    manifest = json.loads(r.stdout)
    assert manifest["manifest_path"] == str(d / "osvkit-manifest.json")
    assert [o["path"] for o in manifest["images"][0]["outputs"]] == ["out/p.img", "out/p.elf"]
    assert "building usr.img" in r.stderr.decode()        # the logs went to stderr
    r = cli("-v", "verify", "-c", str(probe_project), "--json", "-vv",
            "--plot", str(d / "boot.png"), env=_clean_env())
    assert r.returncode == 0, r.stderr.decode()
    report = json.loads(r.stdout)
    assert report["passed"] is True
    assert report["summary"] == {"boots": 2, "passed": 2, "failed": 0, "skipped": 0}
    assert [(b["name"], b["vmm"], b["probe"]["loader"]) for b in report["boots"]] == [
        ("p/usr", "qemu", "osvkit-boot16"), ("p/vmlinux", "qemu-pvh", "osvkit-pvh")]
    assert report["boots"][1]["probe"]["cmdline"] == "--verbose /hello"
    assert "booting" in r.stderr.decode()
    assert (d / "boot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # -q: nothing on stderr
    r = cli("verify", "-c", str(probe_project), "-q", env=_clean_env())
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.decode().splitlines()[-1] == "PASSED: 2 passed, 0 failed, 0 skipped of 2 boots"


@pytest.mark.qemu
def test_verify_failure_exits_1_with_summary(cli, probe_project, qemu):
    cli("build", "-c", str(probe_project), env=_clean_env())
    img = probe_project.parent / "out" / "p.img"
    r = cli("verify", str(img), "--expect", "^no such line$", "--timeout", "20",
            env=_clean_env())
    assert r.returncode == 1
    out = r.stdout.decode()
    assert "FAIL p.img [qemu]" in out and "no console line matches '^no such line$'" in out
    assert out.splitlines()[-1] == "FAILED: 0 passed, 1 failed, 0 skipped of 1 boots"
    r = cli("verify", str(img), "--fail-pattern", "probe.", "--json", env=_clean_env())
    assert r.returncode == 1
    boot = json.loads(r.stdout)["boots"][0]
    assert boot["failures"][0]["pattern"] == "probe."


@pytest.mark.qemu
def test_timeout_precedence_flag_env_file(cli, probe_project, qemu):
    cli("build", "-c", str(probe_project), env=_clean_env())
    from osvkit.verify import verify_build_file
    import osvkit.verify as V
    seen = []
    real = V.boot_once

    def spy(req, vmm):
        seen.append(req.timeout)
        return real(req, vmm)

    V.boot_once = spy
    try:
        verify_build_file(probe_project, env={})
        verify_build_file(probe_project, env={"OSVKIT_TIMEOUT": "25"})
        verify_build_file(probe_project, flags={"timeout": "20"}, env={"OSVKIT_TIMEOUT": "25"})
    finally:
        V.boot_once = real
    assert seen == [30.0, 30.0, 25.0, 25.0, 20.0, 20.0]


@pytest.mark.qemu
def test_two_cli_builds_are_byte_identical(cli, tmp_path, qemu_img):
    pytest.importorskip("osvkit.probe", reason="the example uses the conformance kernel")
    trees = []
    for name in ("first", "second"):
        d = tmp_path / name
        shutil.copytree(EXAMPLES, d, ignore=shutil.ignore_patterns("out", "reference_output"))
        r = cli("build", "-c", str(d / "osvkit.toml"), "-q", env=_clean_env())
        assert r.returncode == 0, r.stderr.decode()
        trees.append({p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
                      if p.is_file()})
    assert trees[0] == trees[1]
    assert "osvkit-manifest.json" in trees[0] and "out/probe-gce.tar.gz" in trees[0]


def test_build_file_flags_apply_or_are_refused(cli, tmp_path):
    """With -c, --image-format is the flag level over OSVKIT_IMAGE_FORMAT over the file (the
    flag used to be ignored), and options that belong in the build file are refused (they
    used to be ignored without a word)."""
    pytest.importorskip("osvkit.probe", reason="needs the conformance kernel (probe branch)")
    bf = tmp_path / "osvkit.toml"
    bf.write_text('spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\n'
                  'image-format = "raw"\noutputs = { usr = "a.img" }\n')

    def fmt(*args, **env):
        r = cli("build", "-c", str(bf), "--json", *args, env=_clean_env(**env))
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)["images"][0]["outputs"][0]["format"]

    assert fmt() == "raw"                                                        # file
    assert fmt(OSVKIT_IMAGE_FORMAT="qcow2") == "qcow2"                           # env > file
    assert fmt("--image-format", "qcow2") == "qcow2"                             # flag > file
    assert fmt("--image-format", "raw", OSVKIT_IMAGE_FORMAT="qcow2") == "raw"    # flag > env
    for args, names in ((["--size", "1G", "--compression", "none"], "--compression, --size"),
                        (["-D", "a=b"], "--define"), (["--manifest", "m"], "--manifest"),
                        (["--format", "vmlinux"], "--format")):
        for p in tmp_path.iterdir():
            if p != bf:
                p.unlink()
        r = cli("build", "-c", str(bf), *args, env=_clean_env())
        assert r.returncode == 64
        assert r.stderr.decode() == (f"error: {names} cannot be used with -c BUILD_FILE, "
                                     "expected these settings in the build file's [[image]] "
                                     "tables\n")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["osvkit.toml"]


def test_build_file_cmdline_flag_env_file(cli, tmp_path):
    """--cmdline '' with -c clears the file's command line (it used to be taken as not
    given); flag > OSVKIT_CMDLINE > file."""
    pytest.importorskip("osvkit.probe", reason="needs the conformance kernel (probe branch)")
    bf = tmp_path / "osvkit.toml"
    bf.write_text('spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\ncmdline = "/file"\n'
                  'outputs = { usr = "a.img" }\n')

    def cmdline(*args, **env):
        r = cli("build", "-c", str(bf), "--json", *args, env=_clean_env(**env))
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)["images"][0]["cmdline"]

    assert cmdline() == "/file"
    assert cmdline(OSVKIT_CMDLINE="/env") == "/env"
    assert cmdline("--cmdline", "/flag", OSVKIT_CMDLINE="/env") == "/flag"
    assert cmdline("--cmdline", "") == ""


def test_build_refuses_options_its_format_would_drop(cli, tmp_path):
    """Options the chosen --format does not use were dropped without a word (--cmdline with
    --format vmlinux: the ELF carries no command line)."""
    pytest.importorskip("osvkit.probe", reason="needs the conformance kernel (probe branch)")
    kernel = tmp_path / "k.elf"
    assert cli("probe", "-o", str(kernel), env=_clean_env()).returncode == 0
    out = tmp_path / "o.img"
    cases = [
        (["--format", "vmlinux", "--cmdline", "/x"],
         "--cmdline with --format vmlinux (the vmlinux ELF carries no command line: give it to "
         "the VMM, e.g. osvkit run --cmdline or firecracker-config --cmdline), expected options "
         "of the vmlinux format: --pvh, --replace-entry, --handover"),
        (["--format", "vmlinux", "--size", "1G", "--compression", "none"],
         "--compression, --size with --format vmlinux, expected options of the vmlinux format: "
         "--pvh, --replace-entry, --handover"),
        (["--handover", "start64"], "--handover with --format usr, expected these with "
                                    "--format vmlinux"),
        (["-D", "a=b", "--allow-missing"],
         "--allow-missing, --define without --manifest, expected --manifest usr.manifest"),
    ]
    for args, line in cases:
        r = cli("build", str(kernel), "-o", str(out), *args, env=_clean_env())
        assert (r.returncode, r.stderr.decode()) == (64, f"error: {line}\n"), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.elf"]
    # the environment level is not a mistake: OSVKIT_CMDLINE with a vmlinux build is fine
    r = cli("build", str(kernel), "-o", str(out), "--format", "vmlinux",
            env=_clean_env(OSVKIT_CMDLINE="/x"))
    assert r.returncode == 0, r.stderr.decode()


def test_failed_cli_build_writes_nothing(cli, tmp_path):
    bf = tmp_path / "osvkit.toml"
    bf.write_text('spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\noutputs = { usr = "a.img" }\n'
                  '[[image]]\nname = "b"\nkernel = "missing.elf"\noutputs = { usr = "b.img" }\n')
    r = cli("build", "-c", str(bf), "-o", str(tmp_path / "out"), env=_clean_env())
    assert r.returncode == 66
    assert "missing.elf" in r.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["osvkit.toml"]


@pytest.mark.qemu
def test_demo_json(cli, qemu, tmp_path):
    pytest.importorskip("osvkit.probe", reason="needs the conformance kernel (probe branch)")
    r = cli("demo", "--json", "-v", "--out", str(tmp_path / "d"), env=_clean_env())
    report = json.loads(r.stdout)
    assert r.returncode == (0 if report["passed"] else 1)
    assert [(b["image"], b["vmm"]) for b in report["boots"]] == [
        ("usr.img", "qemu"), ("vmlinux.elf", "qemu-pvh"), ("vmlinux.elf", "qemu-fc")]
    for b in report["boots"]:
        if b["status"] == "pass":
            assert b["cmdline"].startswith("--verbose --bootchart /hello osvkit-demo")
            assert b["e820_entries"] > 0 and b["cpus"] == 1 and b["image_ok"] is True
    assert report["boots"][0]["loader"] == "osvkit-boot16"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["probe.elf", "usr.img",
                                                                 "vmlinux.elf"]


# --------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------

def test_progress_hidden_when_not_a_tty():
    buf = io.StringIO()
    with progress(100, "work", stream=buf) as bar:
        bar.update(100)
    assert buf.getvalue() == "" and bar.done == 100


def test_progress_drawn_when_forced(monkeypatch):
    import osvkit.progress as P
    monkeypatch.setattr(P, "DELAY", 0.0)
    monkeypatch.setattr(P, "INTERVAL", 0.0)
    buf = io.StringIO()
    with progress(4 << 20, "writing disk.raw", stream=buf, force=True) as bar:
        bar.update(1 << 20)
    text = buf.getvalue()
    assert text.startswith("\rwriting disk.raw [#######.......................]  25% "
                           "1.0 MiB/4.0 MiB")
    assert text.endswith("100% 4.0 MiB/4.0 MiB\x1b[K\n")
    assert Progress(None, "files", unit="files").render() == "files 0"


def test_progress_disabled_globally():
    import osvkit.progress as P

    class Tty(io.StringIO):
        def isatty(self):
            return True

    set_enabled(True)   # other in-process CLI runs (-q) may have turned it off
    assert P.enabled(Tty())
    set_enabled(False)
    try:
        assert not P.enabled(Tty())
    finally:
        set_enabled(True)


# --------------------------------------------------------------------------------------
# Shared options: one spelling, one environment variable, one check on every command
# --------------------------------------------------------------------------------------

def test_every_shared_long_option_has_an_environment_variable():
    from osvkit.config import OPTIONS
    checked = 0
    for path, cmd in _walk(_click_group()):
        for p in cmd.params:
            for opt in getattr(p, "opts", None) or ():
                if opt.startswith("--") and opt[2:] in OPTIONS:
                    env = OPTIONS[opt[2:]].env
                    assert p.envvar == env or f"[env: {env}]" in (p.help or ""), (path, opt)
                    checked += 1
    assert checked >= 10


def test_the_command_line_option_is_cmdline_everywhere():
    """Every command that takes a guest command line as an option spells it --cmdline."""
    found = []
    for path, cmd in _walk(_click_group()):
        for p in cmd.params:
            opts = getattr(p, "opts", None) or ()
            if any(o in ("--boot-args", "--append", "--cmdline") for o in opts):
                assert opts[0] == "--cmdline", (path, opts)
                found.append(path[0])
    assert {"build", "run", "verify", "firecracker-config"} <= set(found)


def test_shared_options_are_checked_alike_on_every_command(cli, tmp_path):
    """run, build and firecracker-config take --timeout/--cpus/--memory/--accel/--image-format
    as verify does (they had their own types once; values verify refuses, nan, 0 and -1,
    were accepted there): one parser, one message."""
    pytest.importorskip("osvkit.run.qemu", reason="needs osvkit run (probe branch)")
    img = tmp_path / "a.img"
    img.write_bytes(bytes(510) + b"\x55\xaa")
    cases = [
        (["run", str(img), "--dry-run", "--timeout", "nan"], {},
         "--timeout: bad timeout 'nan', expected a number of seconds above 0"),
        (["run", str(img), "--dry-run", "--cpus", "0"], {},
         "--cpus: bad CPU count '0', expected an integer from 1 to 255"),
        (["run", str(img), "--dry-run", "--accel", "xen"], {},
         "--accel: bad value 'xen', expected tcg or kvm"),
        (["run", str(img), "--dry-run"], {"OSVKIT_TIMEOUT": "-1"},
         "OSVKIT_TIMEOUT: bad timeout '-1', expected a number of seconds above 0"),
        (["verify", str(img), "--timeout", "nan"], {},
         "--timeout: bad timeout 'nan', expected a number of seconds above 0"),
        (["firecracker-config", str(img), "-o", str(tmp_path / "fc.json"), "--cpus", "0"], {},
         "--cpus: bad CPU count '0', expected an integer from 1 to 255"),
    ]
    for args, env, line in cases:
        r = cli(*args, env=_clean_env(**env))
        assert (r.returncode, r.stderr.decode(), r.stdout) == (64, f"error: {line}\n", b""), args
    r = cli("run", str(img), "--dry-run", "--timeout", "5", "--cpus", "2", env=_clean_env())
    assert r.returncode == 0 and b"-smp 2," in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.img"]


def test_run_dry_run_follows_flag_env_file_default(cli, tmp_path):
    pytest.importorskip("osvkit.run.qemu", reason="needs osvkit run (probe branch)")
    img = tmp_path / "a.img"
    img.write_bytes(bytes(510) + b"\x55\xaa")
    cfg = tmp_path / "osvkit.toml"
    cfg.write_text('spec = 1\n[options]\ncpus = 3\nmemory = "96M"\n'
                   '[[image]]\nname = "a"\nkernel = "probe"\noutputs = { usr = "a.img" }\n')

    def argv(*extra, **env):
        r = cli("run", str(img), "--dry-run", *extra, env=_clean_env(**env))
        assert r.returncode == 0, r.stderr.decode()
        words = r.stdout.decode().split()
        return words[words.index("-m") + 1], words[words.index("-smp") + 1].split(",")[0]

    assert argv() == ("256M", "1")                                         # default
    assert argv(OSVKIT_CONFIG=str(cfg)) == ("96M", "3")                    # file
    assert argv(OSVKIT_CONFIG=str(cfg), OSVKIT_CPUS="2") == ("96M", "2")   # env > file
    assert argv("--cpus", "4", OSVKIT_CONFIG=str(cfg), OSVKIT_CPUS="2") == ("96M", "4")  # flag
    r = cli("run", str(img), "--dry-run", env=_clean_env(OSVKIT_CPUS="x"))
    assert r.returncode == 64 and "OSVKIT_CPUS" in r.stderr.decode()


@pytest.mark.qemu
def test_verify_notices_an_output_changed_since_the_build(cli, probe_project, qemu):
    from osvkit.image.cmdline_io import set_cmdline
    assert cli("build", "-c", str(probe_project), env=_clean_env()).returncode == 0
    set_cmdline(probe_project.parent / "out" / "p.img", "--verbose /edited")
    r = cli("verify", "-c", str(probe_project), "--json", env=_clean_env())
    assert r.returncode == 1
    boots = json.loads(r.stdout)["boots"]
    assert boots[0]["reasons"] == ["out/p.img differs from the build recorded in "
                                   "osvkit-manifest.json"]
    assert boots[0]["probe"]["cmdline"] == "--verbose /edited"    # it still booted
    assert boots[1]["status"] == "pass"


def _example_lines(text: str) -> list[str]:
    return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]


def test_every_command_has_examples_that_parse(tmp_path, monkeypatch):
    import shlex
    monkeypatch.chdir(tmp_path)
    group = _click_group()
    for path, cmd in _walk(group):
        assert cmd.epilog and "Examples:" in cmd.epilog, path
        lines = _example_lines(cmd.epilog)
        assert lines, path
        for line in lines:
            words = shlex.split(line.split("  #")[0])
            while "=" in words[0]:
                words.pop(0)                   # VAR=value prefixes
            assert words[0] == "osvkit", line
            words = words[1:]
            assert tuple(words[:len(path)]) == path, (path, line)
            for w in words:                    # files the example names, so exists=True passes
                if "." in w and not w.startswith("-") and "/" not in w.rstrip("/")[:-1]:
                    (tmp_path / w).touch()
            ctx = cmd.make_context(" ".join(path), list(words[len(path):]))
            assert ctx.params is not None, line


def test_broken_osvkit_config(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("not toml at all\n")
    env = _clean_env(OSVKIT_CONFIG=str(bad))
    assert cli("--help", env=env).returncode == 0
    assert cli("verify", "--help", env=env).returncode == 0
    r = cli("verify", env=env)
    assert r.returncode == 65 and f"{bad}:1: (syntax): TOML syntax error" in r.stderr.decode()
    # every command that takes shared options (--memory, --cmdline...) reads OSVKIT_CONFIG;
    # one that takes none (inspect, cmdline get) does not read it
    r = cli("run", str(bad), "--dry-run", env=env)
    assert r.returncode == 65 and "(syntax)" in r.stderr.decode()
    r = cli("inspect", str(bad), env=env)
    assert r.returncode == 65 and "(syntax)" not in r.stderr.decode()


# --------------------------------------------------------------------------------------
# --json is only JSON on stdout, with -v, for every command (as a real subprocess)
# --------------------------------------------------------------------------------------

#: commands whose --json -v runs boot guests; covered by the qemu tests above
#: (test_build_and_verify_json_with_verbose, test_demo_json)
_BOOTING = {("verify",), ("demo",)}


def test_every_command_prints_only_json_with_verbose(cli, tmp_path):
    """Each leaf command, on good input, with -v before and after it and --json: stdout is
    one JSON document (json.loads), logs go to stderr.  A new command without a case here
    fails this test."""
    pytest.importorskip("osvkit.probe", reason="needs the conformance kernel (probe branch)")
    pytest.importorskip("osvkit.image.vmlinux", reason="needs the vmlinux builder (fcpath)")
    from osvkit.boot import bootinfo, firecracker as fc

    d = tmp_path
    mem = bytearray(0x100000)                       # a Firecracker-like guest memory dump
    mem[0x1000:0x1000 + 121] = bootinfo.build_bootinfo(
        flags=0x200, cmdline=0x20000, mmap_length=96, mmap_addr=0x2000, boot_loader_name=0x1100)
    e820 = fc.firecracker_e820(128 << 20)
    mem[0x2000:0x2000 + 96] = bootinfo.build_osv_e820(e820)
    mem[0x6000:0x6038] = fc.firecracker_pvh_start_info(len(e820))
    mem[0x7000:0x8000] = fc.firecracker_boot_params(len("--nopci /hello"), e820)
    mem[0x20000:0x2000F] = b"--nopci /hello\0"
    table = fc.firecracker_mptable(2)
    mem[0x9FC00:0x9FC00 + len(table)] = table
    (d / "mem.bin").write_bytes(bytes(mem))
    (d / "h").mkdir()
    (d / "h" / "a").write_bytes(b"hi")
    (d / "m").write_text("/a: h/a\n/l: ->/a\n")
    env = _clean_env()
    steps = [   # (command path, arguments); earlier steps make later steps' inputs
        (("probe",), ["-o", "k.elf"]),
        (("build",), ["k.elf", "-o", "usr.img", "--manifest", "m", "--cmdline", "/hello"]),
        (("rofs", "build"), ["m", "-o", "r.img"]),
        (("rofs", "ls"), ["usr.img", "-p", "1"]),
        (("rofs", "extract"), ["r.img", "tree"]),
        (("inspect",), ["usr.img"]),
        (("manifest", "from-host"), ["k.elf", "-o", "k.manifest"]),
        (("cmdline", "get"), ["usr.img"]),
        (("cmdline", "set"), ["usr.img", "--", "--rootfs=rofs /hello two"]),
        (("cmdline", "check"), ["--", "--nopci /hello"]),
        (("kernel", "extract"), ["usr.img", "-o", "k2.elf"]),
        (("decode", "mbr"), ["usr.img"]),
        (("decode", "mptable"), ["mem.bin"]),
        (("decode", "boot-params"), ["mem.bin", "--offset", "0x7000"]),
        (("decode", "bootinfo"), ["mem.bin", "--offset", "0x1000", "--base", "0"]),
        (("decode", "pvh"), ["mem.bin", "--offset", "0x6000"]),
        (("mmio", "encode"), ["--size", "4K", "--base", "0xc0001000", "--irq", "5"]),
        (("mmio", "decode"), ["virtio_mmio.device=4K@0xc0001000:5"]),
        (("mmio", "strip"), ["--", "--nopci /hello virtio_mmio.device=4K@0xd0000000:5"]),
        (("build",), ["k.elf", "--format", "vmlinux", "-o", "vm.elf"]),
        (("firecracker-config",), ["vm.elf", "-o", "vm.json", "--disk", "r.img"]),
        (("run",), ["usr.img", "--dry-run"]),
        (("manifest", "from-host"), ["k.elf"]),
        (("patch",), ["usr.img", "-o", "p.img", "--add", "h/a:/b"]),
        (("diff",), ["usr.img", "usr.img"]),
    ]
    commands = {path for path, _ in _walk(_click_group())}
    assert commands - _BOOTING <= {path for path, _ in steps}, "a command without a case"
    logged = 0
    for path, args in steps:
        if "--" in args:            # options go before "--"
            i = args.index("--")
            argv = ["-v", *path, *args[:i], "--json", "-vv", *args[i:]]
        else:
            argv = ["-v", *path, *args, "--json", "-vv"]
        r = cli(*argv, cwd=d, env=env)
        assert r.returncode == 0, (argv, r.stderr.decode())
        assert r.stdout.lstrip()[:1] in (b"{", b"["), (argv, r.stdout[:200])
        json.loads(r.stdout)
        logged += b"osvkit: " in r.stderr
    assert logged >= 2          # -v did make logs, and they went to stderr
