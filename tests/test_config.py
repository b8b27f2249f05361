"""The build-file model, its JSON Schema, line-numbered errors and option precedence."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import require_module

from osvkit import config
from osvkit.cmdline import Cmdline
from osvkit.cmdline.model import quote_arg
from osvkit.config import (BuildFileError, key_lines, load_build_file, memory_mib,
                           resolve_options)
from osvkit.errors import EX_DATAERR, EX_NOINPUT, MissingInputError, UsageError

ROOT = Path(__file__).resolve().parents[1]

GOOD = textwrap.dedent('''\
    spec = 1

    [options]
    memory = "512M"
    timeout = 30

    [[image]]
    name = "hello"
    kernel = "probe:6M"
    cmdline.options = ["--rootfs=rofs", "--verbose"]
    cmdline.app = ["/hello", "an arg"]
    outputs = { usr = "hello.img", vmlinux = "hello.elf" }
    verify = { expect = "^probe: ", vmms = ["qemu", "qemu-pvh"] }

    [[image]]
    name = "two"
    kernel = "kernels/loader-stripped.elf"
    cpus = 2
    image-format = "qcow2"
    cmdline = "--nopci /tools/hello.so"
    [image.rofs]
    manifest = "usr.manifest"
    defines = { libdir = "/usr/lib" }
    [image.outputs]
    usr = "two.qcow2"
    rofs = "two.rofs"
    gce = "two.tar.gz"
    ''')


def write(tmp_path: Path, text: str, name: str = "osvkit.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_file_model(tmp_path):
    bf = load_build_file(write(tmp_path, GOOD))
    assert bf.spec == 1
    assert bf.options == {"memory": "512M", "timeout": 30}
    hello, two = bf.images
    assert (hello.index, hello.name, hello.kernel, hello.line) == (0, "hello", "probe:6M", 7)
    assert hello.probe_size == 6 * 1024 * 1024
    # the one command-line model: options escaped, app arguments quoted when they hold a space
    assert isinstance(hello.cmdline, Cmdline)
    assert hello.cmdline.options == ("--rootfs=rofs", "--verbose")
    assert hello.cmdline.command == '/hello "an arg"'
    assert str(hello.cmdline) == '--rootfs=rofs --verbose /hello "an arg"'
    assert hello.outputs == {"usr": "hello.img", "vmlinux": "hello.elf"}
    assert hello.verify.expect == "^probe: " and hello.verify.vmms == ["qemu", "qemu-pvh"]
    assert (two.line, two.probe_size) == (15, False)
    assert two.options == {"cpus": 2, "image-format": "qcow2"}
    assert str(two.cmdline) == "--nopci /tools/hello.so"
    assert two.rofs_manifest == "usr.manifest" and two.rofs_defines == {"libdir": "/usr/lib"}
    assert two.outputs == {"usr": "two.qcow2", "rofs": "two.rofs", "gce": "two.tar.gz"}


def test_key_lines_exact():
    lines = key_lines(GOOD)
    assert lines[("options", "memory")] == 4
    assert lines[("image", 0, "cmdline", "app")] == 11
    assert lines[("image", 0, "outputs", "vmlinux")] == 12      # inside an inline table
    assert lines[("image", 0, "verify", "vmms")] == 13
    assert lines[("image", 1)] == 15
    assert lines[("image", 1, "cpus")] == 18
    assert lines[("image", 1, "rofs", "defines", "libdir")] == 23
    assert lines[("image", 1, "outputs")] == 24
    assert lines[("image", 1, "outputs", "gce")] == 27


BAD_CASES = [
    # (text, expected message parts in order)
    ('spec = 2\n[[image]]\nname="a"\nkernel="k"\noutputs={usr="a.img"}\n',
     ['osvkit.toml:1: spec: 2 is not allowed, expected 1']),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\ncpus = 0\noutputs={usr="a.img"}\n',
     ['osvkit.toml:5: image[0].cpus: 0 is less than 1, expected at least 1']),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\n[image.outputs]\nusr="a.img"\nvmware="b"\n',
     ["osvkit.toml:7: image[0].outputs.vmware: unknown key 'vmware', expected one of "
      "firecracker-config, gce, rofs, usr, vdi, vmdk, vmlinux"]),
    ('spec = 1\n\n[[image]]\nname="a"\noutputs={usr="a.img"}\n',
     ["osvkit.toml:3: image[0]: missing key 'kernel', expected a kernel ELF path"]),
    ('spec = 1\n[options]\nmemory = "lots"\n[[image]]\nname="a"\nkernel="k"\noutputs={usr="a"}\n',
     ['osvkit.toml:3: options.memory: "lots" has the wrong form, expected guest memory']),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\noutputs={usr="a"}\n'
     'cmdline.options = ["--ok", "not-an-option"]\n',
     ['osvkit.toml:6: image[0].cmdline.options[1]: "not-an-option" has the wrong form']),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\noutputs={usr="a"}\n'
     '[[image]]\nname="a"\nkernel="probe:6X"\noutputs={usr="a"}\n',
     ["osvkit.toml:7: image[1].name: duplicate image name 'a'",
      "osvkit.toml:8: image[1].kernel: bad probe size in 'probe:6X', expected probe:<n>[K|M|G]",
      "osvkit.toml:9: image[1].outputs.usr: output 'a' is also written by image[0].outputs.usr"]),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\noutputs={usr="a"}\nverify.expect = "(unclosed"\n',
     ["osvkit.toml:6: image[0].verify.expect: bad regular expression"]),
    ('spec = 1\n[[image]]\nname = "a"\nkernel = "k"\noutputs = {usr = "a"\n',
     ["osvkit.toml:5: (syntax): TOML syntax error"]),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\noutputs={rofs="a.rofs"}\n',
     ["osvkit.toml:5: image[0].outputs.rofs: rofs output without [image.rofs]"]),
    ('spec = 1\n[[image]]\nname="a"\nkernel="k"\n[image.outputs]\nusr="/tmp/a.img"\n'
     'vmlinux="out/../../a.elf"\n',
     ["osvkit.toml:6: image[0].outputs.usr: output '/tmp/a.img' is outside the output "
      "directory, expected a path relative to the output directory, inside it",
      "osvkit.toml:7: image[0].outputs.vmlinux: output 'out/../../a.elf' is outside the "
      "output directory"]),
]


@pytest.mark.parametrize("text,parts", BAD_CASES)
def test_bad_files_report_line_numbers(tmp_path, text, parts):
    p = write(tmp_path, text)
    with pytest.raises(BuildFileError) as info:
        load_build_file(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert info.value.exit_status == EX_DATAERR
    pos = 0
    for part in parts:
        idx = msg.find(part.replace("osvkit.toml", str(p)), pos)
        assert idx >= 0, (part, msg)
        pos = idx


def test_several_errors_all_listed(tmp_path):
    p = write(tmp_path, 'spec = 1\n[[image]]\nname="a b"\nkernel=""\ncpus=1.5\noutputs={}\n')
    with pytest.raises(BuildFileError) as info:
        load_build_file(p)
    assert [(e[0], e[1]) for e in info.value.errors] == [
        (3, "image[0].name"), (4, "image[0].kernel"), (5, "image[0].cpus"), (6, "image[0].outputs")]


def test_missing_and_non_utf8(tmp_path):
    with pytest.raises(MissingInputError) as info:
        load_build_file(tmp_path / "nope.toml")
    assert info.value.exit_status == EX_NOINPUT
    p = tmp_path / "bin.toml"
    p.write_bytes(b"spec = 1\n# \xff\xfe\n")
    with pytest.raises(BuildFileError, match=r"bin.toml:2: \(file\): not UTF-8"):
        load_build_file(p)


# --------------------------------------------------------------------------------------
# The published schema agrees with the loader
# --------------------------------------------------------------------------------------

def test_schema_is_package_data_and_valid():
    jsonschema = require_module("jsonschema")
    path = config.schema_path()
    assert path.name == "osvkit-build.schema.json" and path.is_file()
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    cfg = (ROOT / "setup.cfg").read_text()
    assert "osvkit.schema = *.json" in cfg.replace("\n    ", " ")


def _as_json(text: str) -> dict:
    import tomllib
    return tomllib.loads(text)


@pytest.mark.parametrize("text", [GOOD, (ROOT / "examples" / "osvkit.toml").read_text()]
                         + [c[0] for c in BAD_CASES if "duplicate" not in c[1][0]
                            and "regular" not in c[1][0] and "syntax" not in c[1][0]
                            and "without" not in c[1][0]])
def test_our_validator_agrees_with_jsonschema(text):
    jsonschema = require_module("jsonschema")
    data = _as_json(text)
    theirs = sorted(tuple(e.absolute_path) for e in
                    jsonschema.Draft202012Validator(config.schema()).iter_errors(data))
    ours = config.validate(data)
    assert bool(theirs) == bool(ours), (theirs, ours)


# --------------------------------------------------------------------------------------
# Option precedence: flag > environment > file > default
# --------------------------------------------------------------------------------------

def test_precedence_each_level():
    file_opts = {"memory": "1G", "cpus": 2}
    env = {"OSVKIT_MEMORY": "512M", "OSVKIT_TIMEOUT": "9"}
    r = resolve_options({"memory": None, "cpus": None, "timeout": None}, file_opts, env=env,
                        file_sources={"memory": "file:osvkit.toml:4", "cpus": "file:osvkit.toml:5"})
    assert r["memory"] == "512M" and r.sources["memory"] == "env:OSVKIT_MEMORY"
    assert r["cpus"] == 2 and r.sources["cpus"] == "file:osvkit.toml:5"
    assert r["timeout"] == 9.0 and r.sources["timeout"] == "env:OSVKIT_TIMEOUT"
    assert r["image-format"] == "raw" and r.sources["image-format"] == "default"
    assert r["accel"] == "tcg" and r["cmdline"] is None
    r = resolve_options({"memory": "64M", "cpus": "3"}, file_opts, env=env)
    assert (r["memory"], r.sources["memory"]) == ("64M", "flag")
    assert (r["cpus"], r.sources["cpus"]) == (3, "flag")


def test_empty_env_value_counts_as_unset():
    r = resolve_options({}, {"cpus": 4}, env={"OSVKIT_CPUS": ""})
    assert r["cpus"] == 4


@pytest.mark.parametrize("flags,env,message", [
    ({"cpus": "x"}, {}, "--cpus: bad CPU count 'x', expected an integer from 1 to 255"),
    ({}, {"OSVKIT_CPUS": "0"}, "OSVKIT_CPUS: bad CPU count '0', expected an integer from 1 to 255"),
    ({}, {"OSVKIT_MEMORY": "12Q"}, "OSVKIT_MEMORY: bad memory size '12Q'"),
    ({"timeout": "-1"}, {}, "--timeout: bad timeout '-1', expected a number of seconds above 0"),
    ({}, {"OSVKIT_IMAGE_FORMAT": "vmdk"}, "OSVKIT_IMAGE_FORMAT: bad value 'vmdk', expected raw or qcow2"),
])
def test_bad_values_name_their_source(flags, env, message):
    with pytest.raises(UsageError) as info:
        resolve_options(flags, {}, env=env)
    assert str(info.value).startswith(message)
    assert info.value.exit_status == 64


def test_image_keys_override_options_and_sources_have_lines(tmp_path):
    bf = load_build_file(write(tmp_path, GOOD))
    hello, two = bf.images
    r = bf.resolve(two, {}, env={})
    assert (r["memory"], r.sources["memory"]) == ("512M", "file:osvkit.toml:4")
    assert (r["cpus"], r.sources["cpus"]) == (2, "file:osvkit.toml:18")
    assert (r["image-format"], r.sources["image-format"]) == ("qcow2", "file:osvkit.toml:19")
    assert r["cmdline"] == "--nopci /tools/hello.so"
    r = bf.resolve(hello, {"cmdline": "--nopci /x"}, env={"OSVKIT_MEMORY": "2G"})
    assert r["cmdline"] == "--nopci /x" and r["memory"] == "2G"


@pytest.mark.parametrize("value,mib", [("256M", 256), ("1G", 1024), (512, 512), ("2048K", 2)])
def test_memory_mib(value, mib):
    assert memory_mib(value) == mib


def test_memory_mib_rejects():
    for bad in ("0", "1T", "1000K", "", "M"):
        with pytest.raises(UsageError):
            memory_mib(bad)


def test_cmdline_table_quoting():
    line = Cmdline.from_value({"options": ["--env=A=1"], "app": ["/bin/echo", 'say "hi"', "a;b", ""]})
    assert quote_arg('say "hi"') == '"say \\"hi\\""'
    assert quote_arg("a;b") == '"a;b"'
    assert quote_arg("") == '""'
    assert str(line) == '--env=A=1 /bin/echo "say \\"hi\\"" "a;b" ""'
