"""The bad-input corpus: a seeded generator of hostile inputs, each run through every command
that reads that kind of input.

Input kinds: raw and qcow2 usr.img, ROFS images, kernel ELFs (random byte mutants,
truncations and field-by-field mutants of every header each reader parses), manifests, build
files, command lines, output paths, qcow2 backing files that are not regular files (FIFO,
directory, device, socket), backing chains that loop or are deep, and oversized numbers in
every option that takes one.  The cases are generated from :data:`SEED`, so a failure names a
case that reproduces: ``pytest tests/test_bad_input_corpus.py -k <id>``.

For every case and command (run in-process through :func:`osvkit.cli.main`, the code
``python -m osvkit`` runs, with an alarm against hangs) the rules are those of the project:

* the exit status is 0 (the input was acceptable) or a sysexits status (64 65 66 70 73 74);
* on failure stderr is ONE line ``error: ...``; never a traceback (an exception out of main);
* no hang (each run has :data:`TIMEOUT` seconds);
* the inputs are byte-identical afterwards (the command's own output aside; ``cmdline set``
  may change its image only when it succeeds).

Known failures in other parts of osvkit are marked ``xfail(strict=True)`` in :data:`KNOWN`
with who owns the fix: a fixed case then fails as XPASS until its entry is removed.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from osvkit.cli import main

SEED = 20261130
TIMEOUT = 30
STATUSES = {0, 64, 65, 66, 70, 73, 74}


@pytest.fixture(autouse=True)
def _restore_cli_state():
    """In-process CLI runs with -q turn the progress bar off and set up the osvkit logger:
    put both back so later tests see the defaults."""
    import logging

    from osvkit import progress

    log = logging.getLogger("osvkit")
    saved = (progress._enabled, list(log.handlers), log.level, log.propagate)
    yield
    progress.set_enabled(saved[0])
    log.handlers[:], log.level, log.propagate = saved[1], saved[2], saved[3]

# -- the generator ------------------------------------------------------------------------

U64 = (0, 1, 0x7F, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 40, (1 << 63) - 1,
       (1 << 64) - 1)

#: raw usr.img fields: (name, offset, width); "part" offsets are relative to partition 1
USR_FIELDS = [("boot16-jump", 0, 2), ("boot16-header", 2, 8), ("boot16-word-0x10", 0x10, 4),
              ("boot16-word-0x18", 0x18, 8), ("cmdline", 512, 8), ("mbr-status", 462, 1),
              ("mbr-type", 466, 1), ("mbr-lba", 470, 4), ("mbr-sectors", 474, 4),
              ("mbr-signature", 510, 2), ("mbr-entry0", 446, 16)]
ROFS_FIELDS = [("magic", 0, 8), ("version", 8, 8), ("block_size", 16, 8),
               ("structure_info_first_block", 24, 8), ("structure_info_blocks_count", 32, 8),
               ("directory_entries_count", 40, 8), ("symlinks_count", 48, 8),
               ("inodes_count", 56, 8)]
ELF_FIELDS = [("ei_class", 4, 1), ("ei_data", 5, 1), ("ei_version", 6, 1), ("e_type", 16, 2),
              ("e_machine", 18, 2), ("e_entry", 24, 8), ("e_phoff", 32, 8), ("e_shoff", 40, 8),
              ("e_ehsize", 52, 2), ("e_phentsize", 54, 2), ("e_phnum", 56, 2),
              ("e_shentsize", 58, 2), ("e_shnum", 60, 2), ("e_shstrndx", 62, 2),
              ("ph0-type", "ph0", 4), ("ph0-offset", "ph0+8", 8), ("ph0-vaddr", "ph0+16", 8),
              ("ph0-filesz", "ph0+32", 8), ("ph0-memsz", "ph0+40", 8),
              ("symtab-type", "symtab+4", 4), ("symtab-offset", "symtab+24", 8),
              ("symtab-size", "symtab+32", 8), ("symtab-entsize", "symtab+56", 8),
              ("symtab-link", "symtab+40", 4)]
QCOW2_FIELDS = [("magic", 0, 4), ("version", 4, 4), ("backing_file_offset", 8, 8),
                ("backing_file_size", 16, 4), ("cluster_bits", 20, 4), ("size", 24, 8),
                ("crypt_method", 32, 4), ("l1_size", 36, 4), ("l1_table_offset", 40, 8),
                ("refcount_table_offset", 48, 8), ("refcount_table_clusters", 56, 4),
                ("nb_snapshots", 60, 4), ("snapshots_offset", 64, 8),
                ("incompatible_features", 72, 8), ("header_length", 100, 4)]


def _field_values(width: int, rng: random.Random) -> list[int]:
    """Zero, all ones, and one more boundary value (seeded) for a field of ``width`` bytes."""
    top = (1 << (8 * width)) - 1
    return sorted({0, top, rng.choice(U64[1:-1]) & top})


def mutants(kind: str, fields, rng: random.Random, n_random: int) -> list[tuple]:
    """Mutation specs for one input kind: every field set to each boundary value,
    truncations (fixed points and random), and random byte flips."""
    specs = []
    for name, off, width in fields:
        for v in _field_values(width, rng):
            specs.append(("field", name, off, width, v))
    for n in (0, 1, 64, 104, 512, 513):
        specs.append(("trunc", n))
    for _ in range(n_random // 4):
        specs.append(("trunc-frac", round(rng.random(), 4)))
    for _ in range(n_random):
        flips = tuple((round(rng.random(), 6), rng.randrange(256)) for _ in range(rng.randint(1, 8)))
        specs.append(("flip", flips))
    return specs


def spec_id(spec: tuple) -> str:
    if spec[0] == "field":
        return f"{spec[1]}={spec[4]:#x}"
    if spec[0] == "flip":
        return "flip-" + hashlib.sha1(repr(spec).encode()).hexdigest()[:8]
    return f"{spec[0]}-{spec[1]}"


def apply(spec: tuple, data: bytes, anchors: dict[str, int]) -> bytes:
    b = bytearray(data)
    if spec[0] == "field":
        _, _, off, width, value = spec
        if isinstance(off, str):
            base, _, plus = off.partition("+")
            if base not in anchors:
                return bytes(b)
            off = anchors[base] + int(plus or 0)
        b[off:off + width] = value.to_bytes(width, "little")
    elif spec[0] == "trunc":
        del b[spec[1]:]
    elif spec[0] == "trunc-frac":
        del b[int(len(b) * spec[1]):]
    elif spec[0] == "flip":
        for frac, value in spec[1]:
            b[int(frac * (len(b) - 1))] = value
    return bytes(b)


# -- the commands that read each kind ------------------------------------------------------

IMAGE_COMMANDS = {
    "inspect": ["inspect", "{in}", "--json"],
    "cmdline-get": ["cmdline", "get", "{in}"],
    "cmdline-set": ["cmdline", "set", "{in}", "--", "--rootfs=rofs /hello"],
    "rofs-ls-p1": ["rofs", "ls", "{in}", "-p", "1"],
    "rofs-extract-p1": ["rofs", "extract", "{in}", "{dir}", "-p", "1"],
    "decode-mbr": ["decode", "mbr", "{in}"],
    "patch": ["patch", "{in}", "--cmdline", "/x", "-o", "{out}"],
    "kernel-extract": ["kernel", "extract", "{in}", "-o", "{out}"],
}
ROFS_COMMANDS = {
    "inspect": ["inspect", "{in}"],
    "rofs-ls": ["rofs", "ls", "{in}", "--json"],
    "rofs-extract": ["rofs", "extract", "{in}", "{dir}"],
    "build-partition": ["build", "{kernel}", "--partition", "{in}", "-o", "{out}"],
}
ELF_COMMANDS = {
    "inspect": ["inspect", "{in}"],
    "build-usr": ["build", "{in}", "-o", "{out}"],
    "build-vmlinux": ["build", "{in}", "--format", "vmlinux", "-o", "{out}"],
    "build-replace-entry": ["build", "{in}", "--format", "vmlinux", "--replace-entry",
                            "-o", "{out}"],
    "firecracker-config": ["firecracker-config", "{in}", "-o", "{out}"],
    "run-dry-run": ["run", "{in}", "--vmm", "qemu-fc", "--dry-run"],
}

#: case id -> (owner, reason): known failures in other parts, xfail(strict=True) until fixed
#: (a fixed case then fails as XPASS: remove its entry)
KNOWN: dict[str, tuple[str, str]] = {
}


def _known(case_id: str):
    if case_id in KNOWN:
        owner, reason = KNOWN[case_id]
        return [pytest.mark.xfail(strict=True, reason=f"{owner}: {reason}")]
    return []


def _cases(prefix: str, names, commands=(None,)):
    return [pytest.param(n, c, id=f"{prefix}-{n}" + (f"-{c}" if c else ""),
                         marks=_known(f"{prefix}-{n}" + (f"-{c}" if c else "")))
            for n in names for c in commands]


def _params(kind: str, fields, commands: dict, n_random: int, only=None):
    rng = random.Random(f"{SEED}-{kind}")
    out = []
    for spec in mutants(kind, fields, rng, n_random):
        for name, argv in commands.items():
            if only is not None and not only(spec, name):
                continue
            cid = f"{kind}-{spec_id(spec)}-{name}"
            out.append(pytest.param(spec, argv, id=cid, marks=_known(cid)))
    return out


# -- running a case ------------------------------------------------------------------------

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def tree_digest(root: Path, skip=()) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if any(p == s or s in p.parents for s in skip):
            continue
        if p.is_symlink():
            out[str(p)] = "->" + os.readlink(p)
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif not p.is_dir():
            out[str(p)] = "special"
    return out


def _show(argv) -> str:
    return "osvkit " + " ".join(str(a) if len(str(a)) < 80 else f"{str(a)[:60]}...({len(str(a))})"
                                for a in argv)


def run_case(argv: list[str], capsys, *, inputs_dir: Path, skip=(), env=None,
             may_change: bool = False) -> tuple[int, str]:
    """Run one command in-process; check the rules; return (status, stderr)."""
    before = tree_digest(inputs_dir, skip)
    capsys.readouterr()
    old = signal.signal(signal.SIGALRM, _alarm)
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    signal.alarm(TIMEOUT)
    try:
        status = main([str(a) for a in argv])
    except Hang:
        pytest.fail(f"hung for {TIMEOUT} s: {_show(argv)}")
    except BaseException as exc:      # an exception out of main is a traceback for the user
        pytest.fail(f"traceback: {type(exc).__name__}: {str(exc)[:200]}: {_show(argv)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    err = capsys.readouterr().err
    assert status in STATUSES, (status, err[:500], _show(argv))
    if status != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (err[:500], _show(argv))
    assert "Traceback" not in err, err
    if not (may_change and status == 0):
        assert tree_digest(inputs_dir, skip) == before, f"an input changed (status {status})"
    return status, err


# -- base inputs ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """The valid inputs every mutant starts from, and where their fields are."""
    from elftools.elf.elffile import ELFFile

    d = tmp_path_factory.mktemp("base")
    (d / "hello.txt").write_text("hello\n")
    (d / "m").write_text(f"/hello.txt: {d / 'hello.txt'}\n/lib/x: {d / 'hello.txt'}\n"
                         "/l: ->/hello.txt\n")
    kernel = d / "k.elf"
    assert main(["probe", "-o", str(kernel), "-q"]) == 0
    assert main(["rofs", "build", str(d / "m"), "-o", str(d / "r.img"), "-q"]) == 0
    assert main(["build", str(kernel), "--partition", str(d / "r.img"), "-o", str(d / "u.img"),
                 "-q"]) == 0
    data = {"kernel": kernel, "elf": kernel.read_bytes(), "rofs": (d / "r.img").read_bytes(),
            "usr": (d / "u.img").read_bytes()}
    part = int.from_bytes(data["usr"][470:474], "little") * 512
    anchors = {"part": part}
    with open(kernel, "rb") as f:
        elf = ELFFile(f)
        anchors["ph0"] = elf["e_phoff"]
        sym = elf.get_section_by_name(".symtab")
        if sym is not None:
            idx = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".symtab")
            anchors["symtab"] = elf["e_shoff"] + idx * elf["e_shentsize"]
    data["anchors"] = anchors
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(d / "u.img"),
                        str(d / "u.qcow2")], check=True)
        data["qcow2"] = (d / "u.qcow2").read_bytes()
    return data


def _case_dir(tmp_path: Path, name: str, content: bytes) -> tuple[Path, Path]:
    inputs = tmp_path / "in"
    inputs.mkdir()
    p = inputs / name
    p.write_bytes(content)
    return inputs, p


def _fill(argv, **names):
    return [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]


def _run_mutant(tmp_path, capsys, base, kind, spec, argv, content):
    mutated = apply(spec, content, base["anchors"])
    inputs, path = _case_dir(tmp_path, {"usr": "u.img", "qcow2": "u.qcow2", "rofs": "r.img",
                                        "elf": "k.elf"}[kind], mutated)
    if "{kernel}" in argv:
        shutil.copy(base["kernel"], inputs / "kernel.elf")
    out, outdir = tmp_path / "out.bin", tmp_path / "x"
    may_change = argv[:2] == ["cmdline", "set"]
    run_case(_fill(argv, **{"in": path, "dir": outdir, "out": out,
                            "kernel": inputs / "kernel.elf"}),
             capsys, inputs_dir=inputs, may_change=may_change)


# usr.img fields sit in the image; the ROFS fields are relative to partition 1
_USR = USR_FIELDS + [(f"rofs-{n}", f"part+{o}", w) for n, o, w in ROFS_FIELDS]


@pytest.mark.parametrize("spec,argv", _params("usr", _USR, IMAGE_COMMANDS, 16))
def test_raw_usr_img(tmp_path, capsys, base, spec, argv):
    _run_mutant(tmp_path, capsys, base, "usr", spec, argv, base["usr"])


@pytest.mark.parametrize("spec,argv", _params("qcow2", QCOW2_FIELDS, IMAGE_COMMANDS, 8))
def test_qcow2_usr_img(tmp_path, capsys, base, spec, argv):
    if "qcow2" not in base:
        from conftest import missing_tool
        missing_tool("qemu-img is not installed (install.sh installs it)")
    _run_mutant(tmp_path, capsys, base, "qcow2", spec, argv, base["qcow2"])


@pytest.mark.parametrize("spec,argv", _params("rofs", ROFS_FIELDS, ROFS_COMMANDS, 12))
def test_rofs_image(tmp_path, capsys, base, spec, argv):
    _run_mutant(tmp_path, capsys, base, "rofs", spec, argv, base["rofs"])


@pytest.mark.parametrize("spec,argv", _params("elf", ELF_FIELDS, ELF_COMMANDS, 12))
def test_kernel_elf(tmp_path, capsys, base, spec, argv):
    _run_mutant(tmp_path, capsys, base, "elf", spec, argv, base["elf"])


# -- manifests ------------------------------------------------------------------------------

MANIFESTS = {
    "no-colon": "/hello.txt hello.txt\n",
    "missing-host": "/a: does-not-exist\n",
    "empty-guest": ": hello.txt\n",
    "relative-guest": "a/b: hello.txt\n",
    "dotdot-guest": "/../../etc/x: hello.txt\n",
    "undefined-define": "/a: %(nope)s\n",
    "bad-define-syntax": "/a: %(x\n",
    "fifo-host": "/a: fifo\n",
    "dir-as-file": "/a: sub\n",
    "device-host": "/a: /dev/null\n",
    "char-device-zero": "/a: /dev/zero\n",
    "symlink-loop": "/a/**: loop/**\n",
    "self-symlink-dir": "/a/**: sub/**\n",
    "long-name": f"/{'n' * 300}: hello.txt\n",
    "long-link": f"/l: ->/{'t' * 5000}\n",
    "nul-in-line": "/a\0b: hello.txt\n",
    "file-then-dir": "/a: hello.txt\n/a/b: hello.txt\n",
    "binary-junk": "\xff\xfe\x00garbage\n",
    "huge-line": "/a: " + "x" * 200_000 + "\n",
    "many-levels": "/" + "/".join(["d"] * 2000) + ": hello.txt\n",
    "5001-digit-name": "/" + "9" * 5001 + ": hello.txt\n",
    "proc-file": "/v: /proc/version\n",
    "manifest-is-dir": None,
}


@pytest.fixture
def manifest_dir(tmp_path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("f\n")
    (d / "sub" / "up").symlink_to("..")
    (d / "hello.txt").write_text("hello\n")
    os.mkfifo(d / "fifo")
    (d / "loop").mkdir()
    (d / "loop" / "again").symlink_to("../loop")
    return d


@pytest.mark.parametrize("name,command", _cases("manifest", MANIFESTS, ("rofs-build",
                                                                        "build-manifest")))
def test_hostile_manifest(tmp_path, capsys, base, manifest_dir, name, command):
    text = MANIFESTS[name]
    m = manifest_dir / "usr.manifest"
    if text is None:
        m.mkdir()
    else:
        m.write_text(text, errors="surrogateescape")
    out = tmp_path / "out.img"
    argv = (["rofs", "build", m, "-o", out, "--manifest-root", manifest_dir] if command == "rofs-build"
            else ["build", base["kernel"], "--manifest", m, "--manifest-root", manifest_dir,
                  "-o", out])
    run_case(argv, capsys, inputs_dir=manifest_dir)


# -- build files ----------------------------------------------------------------------------

def _nested(n: int, inline: bool) -> str:
    if inline:
        return "spec = 1\nx = " + "{a = " * n + "1" + "}" * n + "\n"
    return "spec = 1\n" + "".join(f"[{'.'.join(['t'] * (i + 1))}]\n" for i in range(n))


BUILD_FILES = {
    "nested-tables-1000": _nested(1000, False),
    "nested-inline-1000": _nested(1000, True),
    "nested-arrays-1000": "spec = 1\nx = " + "[" * 1000 + "]" * 1000 + "\n",
    "5001-digit-int": "spec = 1\n[options]\nmemory = " + "9" * 5001 + "\n",
    "huge-int": "spec = 1\n[options]\ncpus = 99999999999999999999999999\n",
    "huge-memory": 'spec = 1\n[options]\nmemory = "99999999999999999999999G"\n',
    "negative-timeout": "spec = 1\n[options]\ntimeout = -1\n",
    "nan-timeout": "spec = 1\n[options]\ntimeout = nan\n",
    "inf-timeout": "spec = 1\n[options]\ntimeout = inf\n",
    "not-toml": "spec = = 1\n",
    "not-utf8": b"spec = 1\n\xff\xfe\n",
    "wrong-spec": "spec = 99\n",
    "string-spec": 'spec = "1"\n',
    "image-not-table": "spec = 1\nimage = 3\n",
    "kernel-missing": 'spec = 1\n[[image]]\nname = "a"\nkernel = "nope.elf"\n'
                      '[image.outputs]\nusr = "a.img"\n',
    "kernel-is-dir": 'spec = 1\n[[image]]\nname = "a"\nkernel = "."\n[image.outputs]\nusr = "a.img"\n',
    "output-escapes": 'spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\n'
                      '[image.outputs]\nusr = "../../../../../../tmp/escape.img"\n',
    "output-is-build-file": 'spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\n'
                            '[image.outputs]\nusr = "osvkit.toml"\n',
    "probe-size-huge": 'spec = 1\n[[image]]\nname = "a"\nkernel = "probe:99999999999999999999G"\n'
                       '[image.outputs]\nusr = "a.img"\n',
    "image-size-huge": 'spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\n'
                       'size = "18446744073709551616"\n[image.outputs]\nusr = "a.img"\n',
    "long-cmdline": 'spec = 1\n[[image]]\nname = "a"\nkernel = "probe"\ncmdline = "'
                    + "x" * 40000 + '"\n[image.outputs]\nusr = "a.img"\n',
    "control-chars": 'spec = 1\n[[image]]\nname = "a\\u0000b"\nkernel = "probe"\n'
                     '[image.outputs]\nusr = "a.img"\n',
    "empty": "",
}


@pytest.mark.parametrize("name,command", _cases("build-file", BUILD_FILES,
                                                 ("build", "osvkit-config")))
def test_hostile_build_file(tmp_path, capsys, name, command):
    d = tmp_path / "in"
    d.mkdir()
    text = BUILD_FILES[name]
    bf = d / "osvkit.toml"
    bf.write_bytes(text if isinstance(text, bytes) else text.encode())
    if command == "build":
        argv, env = ["build", "-c", bf, "-o", tmp_path / "out"], None
    else:   # the build file as OSVKIT_CONFIG of a command that only reads options
        argv, env = ["cmdline", "check", "--", "/hello"], {"OSVKIT_CONFIG": str(bf)}
    run_case(argv, capsys, inputs_dir=d, env=env)
    assert not (Path("/tmp") / "escape.img").exists()


# -- command lines and oversized numbers ----------------------------------------------------

BIG = "9" * 5001
ARGV_CASES = {
    "mmio-decode-4301-digits": ["mmio", "decode", f"virtio_mmio.device=4K@0x{BIG[:4301]}:5"],
    "mmio-decode-4301-digit-irq": ["mmio", "decode", f"virtio_mmio.device=4K@0xd0000000:{BIG[:4301]}"],
    "mmio-decode-4301-digit-size": ["mmio", "decode", f"virtio_mmio.device={BIG[:4301]}K@0xd0000000:5"],
    "mmio-strip-4301-digits": ["mmio", "strip", "--", f"/hello virtio_mmio.device=4K@{BIG[:4301]}:5"],
    "mmio-encode-huge-size": ["mmio", "encode", "--size", BIG, "--base", "0xd0000000", "--irq", "5"],
    "mmio-encode-huge-base": ["mmio", "encode", "--size", "4K", "--base", "0x" + "f" * 40, "--irq", "5"],
    "mmio-encode-huge-irq": ["mmio", "encode", "--size", "4K", "--base", "0xd0000000", "--irq", BIG],
    "cmdline-check-4G-mmio": ["cmdline", "check", "--", "virtio_mmio.device=4G@0xd0000000:5 /x"],
    "cmdline-check-huge": ["cmdline", "check", "--", "x" * 100_000],
    "cmdline-check-controls": ["cmdline", "check", "--", "/hello \x01\x7f\x1b[31m"],
    "cmdline-check-unicode": ["cmdline", "check", "--", "/hello \udcff"],
    "probe-size-huge": ["probe", "-o", "{out}", "--size", BIG],
    "probe-size-2^64": ["probe", "-o", "{out}", "--size", "18446744073709551616"],
    "probe-size-neg": ["probe", "-o", "{out}", "--size", "-1"],
    "build-size-5001": ["build", "{kernel}", "-o", "{out}", "--size", BIG],
    "build-size-2^64": ["build", "{kernel}", "-o", "{out}", "--size", "18446744073709551616"],
    "build-size-2^63": ["build", "{kernel}", "-o", "{out}", "--size", str(1 << 63)],
    "build-size-16T": ["build", "{kernel}", "-o", "{out}", "--size", "17592186044416"],
    "build-size-huge-G": ["build", "{kernel}", "-o", "{out}", "--size", "99999999999999999G"],
    "build-cmdline-huge": ["build", "{kernel}", "-o", "{out}", "--cmdline", "x" * 40000],
    "build-cmdline-force-huge": ["build", "{kernel}", "-o", "{out}", "--force-cmdline",
                                 "--cmdline", "x" * 40000],
    "rofs-ls-offset-huge": ["rofs", "ls", "{usr}", "--offset", BIG[:30]],
    "rofs-ls-offset-2^63": ["rofs", "ls", "{usr}", "--offset", str(1 << 63)],
    "rofs-ls-partition-huge": ["rofs", "ls", "{usr}", "-p", BIG[:30]],
    "rofs-ls-partition-neg": ["rofs", "ls", "{usr}", "-p", "-1"],
    "decode-mbr-offset-huge": ["decode", "mbr", "{usr}", "--offset", BIG[:30]],
    "decode-mptable-base-huge": ["decode", "mptable", "{usr}", "--base", BIG[:30]],
    "decode-bootinfo-offset-5001": ["decode", "bootinfo", "{usr}", "--offset", BIG],
    "decode-pvh-offset-hex-huge": ["decode", "pvh", "{usr}", "--offset", "0x" + "f" * 40],
    "fc-config-memory-huge": ["firecracker-config", "{vmlinux}", "-o", "{out}", "--memory", BIG],
    "fc-config-cpus-huge": ["firecracker-config", "{vmlinux}", "-o", "{out}", "--cpus", BIG],
    "run-memory-huge": ["run", "{usr}", "--dry-run", "--memory", BIG],
    "run-cpus-huge": ["run", "{usr}", "--dry-run", "--cpus", BIG],
    "run-timeout-huge": ["run", "{usr}", "--dry-run", "--timeout", BIG],
    "run-timeout-nan": ["run", "{usr}", "--dry-run", "--timeout", "nan"],
    "verify-memory-huge": ["verify", "{usr}", "--memory", BIG],
    # output paths
    "out-proc": ["build", "{kernel}", "-o", "/proc/x"],
    "out-proc-qcow2": ["build", "{kernel}", "--image-format", "qcow2", "-o", "/proc/x"],
    "out-missing-dir": ["build", "{kernel}", "-o", "{tmp}/no/such/dir/u.img"],
    "out-is-dir": ["build", "{kernel}", "-o", "{tmp}"],
    "out-name-too-long": ["build", "{kernel}", "-o", "{tmp}/" + "n" * 300],
    "out-dev-full": ["build", "{kernel}", "-o", "/dev/full"],
    "rofs-out-proc": ["rofs", "build", "{manifest}", "-o", "/proc/x"],
    "extract-name-too-long": ["rofs", "extract", "{usr}", "{tmp}/" + "d" * 300, "-p", "1"],
    "extract-into-file": ["rofs", "extract", "{usr}", "{usr}", "-p", "1"],
    "extract-into-proc": ["rofs", "extract", "{usr}", "/proc/x", "-p", "1"],
    "fc-out-proc": ["firecracker-config", "{vmlinux}", "-o", "/proc/x"],
    "probe-out-dir": ["probe", "-o", "{tmp}"],
}


@pytest.mark.parametrize("name,command", _cases("argv", ARGV_CASES))
def test_hostile_command_line(tmp_path, capsys, base, name, command):
    d = tmp_path / "in"
    d.mkdir()
    (d / "u.img").write_bytes(base["usr"])
    shutil.copy(base["kernel"], d / "k.elf")
    assert main(["build", str(d / "k.elf"), "--format", "vmlinux", "-o", str(d / "v.elf"),
                 "-q"]) == 0
    (d / "hello.txt").write_text("hi\n")
    (d / "m").write_text(f"/hello.txt: {d / 'hello.txt'}\n")
    names = {"usr": d / "u.img", "kernel": d / "k.elf", "vmlinux": d / "v.elf",
             "manifest": d / "m", "out": tmp_path / "out.bin", "tmp": tmp_path}
    argv = ARGV_CASES[name]
    if name.startswith("verify"):
        argv = argv + ["--timeout", "1"]
    run_case(_fill(argv, **names), capsys, inputs_dir=d)


# -- qcow2 backing files --------------------------------------------------------------------

BACKING_KINDS = ["fifo", "directory", "char-device", "socket", "missing", "self-loop",
                 "two-loop", "deep-chain-64", "symlink-to-fifo", "absolute-outside"]
BACKING_COMMANDS = {"inspect": ["inspect", "{in}"], "cmdline-get": ["cmdline", "get", "{in}"],
                    "cmdline-set": ["cmdline", "set", "{in}", "--", "/x"],
                    "rofs-ls-p1": ["rofs", "ls", "{in}", "-p", "1"],
                    "run-dry-run": ["run", "{in}", "--dry-run"]}


def _qcow2_with_backing(path: Path, backing: str, fmt: str = "raw") -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", fmt, "-u",
                    str(path), "2M"], check=True, capture_output=True)


def _backing_case(d: Path, kind: str) -> tuple[Path, list]:
    top = d / "o.qcow2"
    keep = []
    if kind in ("fifo", "symlink-to-fifo"):
        os.mkfifo(d / "fifo.img")
        if kind == "symlink-to-fifo":
            (d / "link.img").symlink_to("fifo.img")
        _qcow2_with_backing(top, "fifo.img" if kind == "fifo" else "link.img")
    elif kind == "directory":
        (d / "dir.img").mkdir()
        _qcow2_with_backing(top, "dir.img")
    elif kind == "char-device":
        _qcow2_with_backing(top, "/dev/zero")
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(d / "sock.img"))
        keep.append(s)
        _qcow2_with_backing(top, "sock.img")
    elif kind == "missing":
        _qcow2_with_backing(top, "missing.img")
    elif kind == "self-loop":
        _qcow2_with_backing(top, "o.qcow2", "qcow2")
    elif kind == "two-loop":
        _qcow2_with_backing(top, "b.qcow2", "qcow2")
        _qcow2_with_backing(d / "b.qcow2", "o.qcow2", "qcow2")
    elif kind == "deep-chain-64":
        (d / "c0.img").write_bytes(bytes(2 << 20))
        prev, fmt = "c0.img", "raw"
        for i in range(1, 64):
            _qcow2_with_backing(d / f"c{i}.qcow2", prev, fmt)
            prev, fmt = f"c{i}.qcow2", "qcow2"
        _qcow2_with_backing(top, prev, fmt)
    elif kind == "absolute-outside":
        _qcow2_with_backing(top, "/etc/hostname")
    return top, keep


def _backing_params():
    out = []
    for kind in BACKING_KINDS:
        for name, argv in BACKING_COMMANDS.items():
            cid = f"backing-{kind}-{name}"
            out.append(pytest.param(kind, argv, id=cid, marks=_known(cid)))
    return out


@pytest.mark.parametrize("kind,argv", _backing_params())
def test_qcow2_backing_file(tmp_path, capsys, kind, argv):
    if not shutil.which("qemu-img"):
        from conftest import missing_tool
        missing_tool("qemu-img is not installed (install.sh installs it)")
    d = tmp_path / "in"
    d.mkdir()
    top, keep = _backing_case(d, kind)
    try:
        status, err = run_case(_fill(argv, **{"in": top}), capsys, inputs_dir=d,
                               may_change=argv[:2] == ["cmdline", "set"])
    finally:
        for s in keep:
            s.close()
    if kind not in ("absolute-outside",):
        # none of these chains ends in a readable disk image: refused, as bad data or missing
        assert status in (65, 66), (status, err[:300])


def test_corpus_is_deterministic():
    """The generator gives the same cases every run (the ids name reproducible cases)."""
    a = [spec_id(s) for s in mutants("usr", _USR, random.Random(f"{SEED}-usr"), 16)]
    b = [spec_id(s) for s in mutants("usr", _USR, random.Random(f"{SEED}-usr"), 16)]
    assert a == b and len(set(a)) > 60
