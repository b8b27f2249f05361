"""The QEMU runner (osvkit.run) and the ``osvkit run`` / ``osvkit probe`` commands."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import struct

import pytest

import _probeboot as pb
from conftest import run_cli
from osvkit.errors import FormatError, MissingInputError, ToolError, UsageError
from osvkit.probe import build_probe, parse_report
from osvkit.run import run_image
from osvkit.run.qemu import qemu_command, run_qemu

MiB = 1 << 20


def _sector(code16: str) -> bytes:
    code = pb.assemble(code16, bits=16, base=0x7C00)
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def serial_text_sector(text: str, then: str) -> bytes:
    """A boot sector that prints ``text`` on COM1 and then does ``then``."""
    outs = "\n".join(f"movb ${b:#x}, %al\noutb %al, %dx" for b in text.encode())
    return _sector(f"""
        cli
        movw $0x3f8, %dx
        {outs}
        {then}
    """)


HANG = "hang:\nhlt\njmp hang"
RESET = "movb $0xfe, %al\nmovw $0x64, %dx\noutb %al, %dx\n" + HANG


@pytest.fixture
def disk(tmp_path):
    def make(sector: bytes, name="disk.raw") -> str:
        path = tmp_path / name
        path.write_bytes(sector + bytes(MiB - len(sector)))   # SeaBIOS virtio-blk: not too tiny
        return str(path)
    return make


@pytest.fixture(scope="module")
def probe_disk(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe")
    (d / "disk.raw").write_bytes(pb.build_loader_disk("pm32", b"console check", size=MiB))
    (d / "probe.elf").write_bytes(build_probe())
    return str(d / "disk.raw"), ["-device", f"loader,file={d / 'probe.elf'},addr=0x200000,force-raw=on"]


# ------------------------------------------------------------------ command construction
def test_qemu_command_exact(tmp_path, qemu_img):
    img = tmp_path / "a.img"
    img.write_bytes(bytes(1024))
    argv = qemu_command(img, qemu="/opt/qemu", memory="512M", cpus=2, disk_bus="ide")
    assert argv == ["/opt/qemu", "-machine", "pc", "-accel", "tcg", "-m", "512M",
                    "-smp", "2,sockets=2,cores=1,threads=1", "-display", "none", "-nodefaults",
                    "-no-user-config", "-drive", f"file={img},format=raw,if=ide,cache=unsafe"]
    # a damaged qcow2 header is refused before QEMU would follow it
    img.write_bytes(b"QFI\xfb" + bytes(1020))
    with pytest.raises(FormatError, match="qcow2 version 0"):
        qemu_command(img, qemu="q")
    img.unlink()
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(img), "1M"], check=True)
    assert f"file={img},format=qcow2,if=virtio,cache=unsafe" in qemu_command(img, qemu="q")
    assert "format=qcow2" in qemu_command(img, qemu="q", image_format="qcow2")[-1]
    # a qcow2 file attached as raw would let the guest overwrite its qcow2 metadata
    with pytest.raises(UsageError) as exc:
        qemu_command(img, qemu="q", image_format="raw")
    assert str(exc.value) == (f"{img}: a qcow2 image, not raw, expected --image-format qcow2 "
                              "(or no --image-format)")
    img.write_bytes(bytes(1024))
    with pytest.raises(UsageError, match="a.img: a raw image, not qcow2"):
        qemu_command(img, qemu="q", image_format="qcow2")
    assert qemu_command(img, qemu="q", accel="kvm", extra=["-S"])[3:5] == ["-accel", "kvm"]


@pytest.mark.parametrize("kw, message", [
    ({"accel": "hvf"}, "accelerator 'hvf', expected tcg or kvm"),
    ({"disk_bus": "scsi"}, "disk bus 'scsi', expected virtio or ide"),
    ({"cpus": 0}, "0 CPUs, expected 1 to 255"),
    ({"memory": "lots"}, "bad memory size 'lots', expected a number of MiB or <n>K/M/G "
                         "(at most 16 digits)"),
    ({"image_format": "vmdk"}, "image format 'vmdk', expected raw or qcow2"),
])
def test_qemu_command_rejects_bad_options(tmp_path, kw, message):
    img = tmp_path / "a.img"
    img.write_bytes(bytes(512))
    with pytest.raises(UsageError) as exc:
        qemu_command(img, qemu="q", **kw)
    assert str(exc.value) == message


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_timeout_must_be_positive(tmp_path, timeout):
    # NaN compared false with "<= 0" and the run never timed out
    img = tmp_path / "a.img"
    img.write_bytes(bytes(512))
    with pytest.raises(UsageError, match="expected a positive number of seconds"):
        run_image(img, timeout=timeout)


def test_bad_expect_regex_and_console_path(tmp_path):
    with pytest.raises(UsageError, match="expect pattern '\\(' is not a regex"):
        run_qemu(["q"], timeout=1, expect="(")
    from osvkit.errors import OutputError
    with pytest.raises(OutputError, match="cannot create"):
        run_qemu(["q"], timeout=1, console_path=tmp_path / "no" / "console.txt")


@pytest.mark.parametrize("script, reason, status", [
    ("printf 'guest\\n'; exit 0", "poweroff", 0),
    ("printf 'guest\\n'; kill -SEGV $$", "crash", 1),
    ("echo 'qemu: bad option' >&2; exit 1", "error", 70),
])
def test_exit_reasons_from_the_vmm_process(script, reason, status):
    # any command works as the "VMM": these stand-ins end the way QEMU can end
    r = run_qemu(["sh", "-c", script], timeout=20, capture=False)
    assert (r.exit_reason, r.exit_status) == (reason, status)
    if reason == "error":
        assert r.error_line == "qemu: bad option"
    else:
        assert r.console == "guest\n"


def test_missing_image_and_missing_qemu(tmp_path, monkeypatch):
    with pytest.raises(MissingInputError, match="nope.img: no such file"):
        qemu_command(tmp_path / "nope.img", qemu="q")
    img = tmp_path / "a.img"
    img.write_bytes(bytes(512))
    monkeypatch.setenv("OSVKIT_QEMU", str(tmp_path / "no-qemu"))
    with pytest.raises(ToolError) as exc:
        qemu_command(img)
    assert exc.value.exit_status == 70 and "is not an executable" in str(exc.value)


# ------------------------------------------------------------------------- real runs
@pytest.mark.qemu
def test_probe_run_powers_off_with_boot_done(qemu, probe_disk, tmp_path):
    image, extra = probe_disk
    console_file = tmp_path / "console.txt"
    r = run_image(image, disk_bus="ide", cpus=2, timeout=30, extra=extra,
                  console_path=console_file)
    assert r.exit_reason == "poweroff" and r.ok and r.exit_status == 0 and r.returncode == 0
    assert r.boot_done is not None and 0 < r.boot_done <= r.elapsed
    rep = parse_report(r.console)
    assert rep.complete and rep.cmdline == "console check" and rep.cpus == 2
    assert console_file.read_bytes() == r.console_bytes
    assert "-no-reboot" in r.command and "isa-debugcon,iobase=0x3f0,chardev=osvkit-bootdone" in r.command
    json.dumps(r.to_dict())


@pytest.mark.qemu
def test_qcow2_image_is_detected_and_booted(qemu, qemu_img, probe_disk, tmp_path):
    import subprocess
    image, extra = probe_disk
    qcow = tmp_path / "disk.qcow2"
    subprocess.run([qemu_img, "convert", "-O", "qcow2", image, str(qcow)], check=True)
    r = run_image(qcow, timeout=30, extra=extra)
    assert f"file={qcow},format=qcow2,if=virtio,cache=unsafe" in r.command
    assert r.exit_reason == "poweroff" and parse_report(r.console).cmdline == "console check"


@pytest.mark.qemu
def test_boot_done_absent_when_port_not_written(qemu, disk):
    # a guest that resets the machine without writing 123 to 0x3f0
    r = run_image(disk(serial_text_sector("bye\n", RESET)), timeout=30)
    assert r.exit_reason == "poweroff" and r.boot_done is None and r.console == "bye\n"


@pytest.mark.qemu
def test_image_name_with_a_comma_boots(qemu, disk, tmp_path, monkeypatch):
    # QEMU splits option values on commas: "file=a,b.img" was "file=a" plus an option "b.img"
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp,dir"))   # the boot-done file too
    (tmp_path / "tmp,dir").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    r = run_image(disk(serial_text_sector("bye\n", RESET), name="a,b.img"), timeout=30)
    assert r.exit_reason == "poweroff" and r.console == "bye\n", r.stderr
    assert any(a.startswith("file=") and "a,,b.img" in a for a in r.command)


@pytest.mark.qemu
def test_timeout_kills_and_reaps_qemu(qemu, disk):
    r = run_image(disk(serial_text_sector("up\n", HANG)), timeout=1.5)
    assert r.exit_reason == "timeout" and not r.ok and r.exit_status == 1
    assert 1.5 <= r.elapsed < 10 and r.console == "up\n"
    with pytest.raises(ChildProcessError):
        os.waitpid(r.pid, os.WNOHANG)          # already reaped: no zombie left behind
    assert not os.path.exists(f"/proc/{r.pid}") or \
        open(f"/proc/{r.pid}/stat").read().split()[2] != "Z"


@pytest.mark.qemu
def test_expect_stops_the_run_early(qemu, disk):
    r = run_image(disk(serial_text_sector("ready: 42\n", HANG)), timeout=30,
                  expect=r"ready: \d+\n")     # checked as output arrives: anchor the end
    assert r.exit_reason == "expect" and r.matched == "ready: 42\n" and r.ok
    assert r.elapsed < 20
    r = run_image(disk(serial_text_sector("bye\n", RESET)), timeout=30, expect="never")
    assert r.exit_reason == "poweroff" and not r.ok and r.exit_status == 1


@pytest.mark.qemu
def test_qemu_startup_failure_is_an_error(qemu, disk):
    r = run_image(disk(_sector(HANG)), timeout=30, extra=["-no-such-option"])
    assert r.exit_reason == "error" and r.exit_status == 70
    assert r.error_line == "qemu-system-x86_64: -no-such-option: invalid option"


@pytest.mark.qemu
def test_run_qemu_with_a_prepared_command(qemu, probe_disk):
    image, extra = probe_disk
    argv = [qemu, "-machine", "pc", "-accel", "tcg", "-m", "128M", "-display", "none",
            "-nodefaults", "-drive", f"file={image},format=raw,if=ide", *extra]
    r = run_qemu(argv, timeout=30)
    assert r.exit_reason == "poweroff" and r.boot_done is not None
    assert r.command[:len(argv)] == argv and r.command[len(argv):len(argv) + 2] == ["-serial", "stdio"]


# ---------------------------------------------------------------------------------- CLI
def test_cli_run_dry_run(cli, tmp_path, qemu):
    img = tmp_path / "x.img"
    img.write_bytes(bytes(512))
    p = cli("run", img, "--dry-run", "--cpus", "2", "--disk-bus", "ide", "--memory", "1G")
    assert p.returncode == 0, p.stderr
    assert shlex.split(p.stdout.decode()) == [
        qemu, "-machine", "pc", "-accel", "tcg", "-m", "1024M", "-smp", "2,sockets=2,cores=1,threads=1",
        "-display", "none", "-nodefaults", "-no-user-config",
        "-drive", f"file={img},format=raw,if=ide,cache=unsafe", "-serial", "stdio",
        "-chardev", "file,id=osvkit-bootdone,path=$OSVKIT_RUN_DIR/bootdone",
        "-device", "isa-debugcon,iobase=0x3f0,chardev=osvkit-bootdone", "-no-reboot"]


def test_cli_run_without_qemu_exits_70(cli, tmp_path):
    img = tmp_path / "x.img"
    img.write_bytes(bytes(512))
    p = cli("run", img, env={"OSVKIT_QEMU": "/nonexistent/qemu"})
    assert p.returncode == 70
    assert p.stderr.decode().count("\n") == 1 and p.stderr.startswith(b"error: ")
    assert b"Traceback" not in p.stderr


@pytest.mark.qemu
def test_cli_run_qemu_failing_to_start_exits_70(cli, tmp_path, qemu):
    img = tmp_path / "x.img"
    img.write_bytes(bytes(MiB))
    p = cli("run", img, "--memory", "99999999G", "--timeout", "20", "--json")
    assert p.returncode == 70 and p.stdout == b""
    assert p.stderr.decode().startswith("error: qemu-system-x86_64 failed: qemu-system-x86_64: ")
    assert p.stderr.count(b"\n") == 1


def test_cli_run_missing_image_exits_66(cli, tmp_path):
    p = cli("run", tmp_path / "nope.img")
    assert p.returncode == 66 and p.stderr.decode() == f"error: {tmp_path / 'nope.img'}: no such file\n"


@pytest.mark.qemu
def test_cli_run_statuses(cli, disk, qemu):
    hang = disk(serial_text_sector("up\n", HANG), "hang.raw")
    p = cli("run", hang, "--timeout", "1", "--json")
    assert p.returncode == 1, p.stderr
    d = json.loads(p.stdout)
    assert d["exit_reason"] == "timeout" and d["console"] == "up\n" and d["boot_done"] is None
    p = cli("run", hang, "--timeout", "20", "--expect", "u+p")
    assert p.returncode == 0 and b"exit: expect" in p.stdout and b"expect 'u+p': matched" in p.stdout
    bye = disk(serial_text_sector("bye\n", RESET), "bye.raw")
    p = cli("run", bye, "--timeout", "20")
    assert p.returncode == 0 and p.stdout.startswith(b"bye\n") and b"boot-done: not seen" in p.stdout
    p = cli("run", bye, "--accel", "tcg", "--timeout", "20", "--vmm", "xen")
    assert p.returncode == 64 and p.stderr == (b"error: VMM 'xen', expected qemu, qemu-pvh, "
                                            b"qemu-fc or firecracker\n")


def test_cli_probe(cli, tmp_path):
    out = tmp_path / "probe.elf"
    p = cli("probe", "-o", out, "--size", "1M", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["size"] == MiB == out.stat().st_size and d["entry"] == d["start32"]
    assert out.read_bytes() == build_probe(MiB)
    p = cli("probe", "-o", out, "--entry-report")
    assert p.returncode == 0 and b"(entry report)" in p.stdout
    assert out.read_bytes() == build_probe(entry_report=True)
    assert struct.unpack_from("<Q", out.read_bytes(), 24)[0] != struct.unpack_from(
        "<Q", out.read_bytes(), 0x800)[0]


@pytest.mark.parametrize("args, status, message", [
    (["--size", "6X"], 64, "error: size '6X', expected a byte count or a size like 64K, 6M, 1G\n"),
    (["--size", "1K"], 64, "error: probe size 1024 out of range, expected "),
])
def test_cli_probe_bad_sizes(cli, tmp_path, args, status, message):
    out = tmp_path / "p.elf"
    p = cli("probe", "-o", out, *args)
    assert p.returncode == status and p.stderr.decode().startswith(message)
    assert not out.exists()


def test_cli_probe_unwritable_directory(cli, tmp_path):
    p = cli("probe", "-o", tmp_path / "no" / "dir" / "p.elf")
    assert p.returncode == 73 and p.stderr.decode().startswith("error: ")
    p = cli("probe", "-o", tmp_path)
    assert p.returncode == 73
    assert p.stderr.decode() == f"error: {tmp_path}: is a directory, expected a file name for the kernel\n"


def test_parse_size():
    from osvkit.cli.probe import parse_size
    assert [parse_size(s) for s in ("64K", "1M", "6M", "40M", "1G", "4096", "2m", "3MiB")] == \
        [65536, 1048576, 6291456, 41943040, 1073741824, 4096, 2097152, 3145728]


@pytest.mark.qemu
def test_run_image_cmdline_override_on_a_bios_image(qemu, tmp_path):
    from osvkit.image import usrimg
    image = tmp_path / "usr.img"
    usrimg.build_usr_image(build_probe(MiB), image, cmdline="--rootfs=rofs /hello")
    before = image.read_bytes()
    r = run_image(image, timeout=60, cpus=2, cmdline='--verbose /other "x y"')
    rep = parse_report(r.console)
    assert r.exit_reason == "poweroff" and r.boot_done is not None
    assert rep.loader == "osvkit-boot16" and rep.entry == "start32" and rep.image_ok
    assert rep.cmdline == '--verbose /other "x y"' and rep.cpus == 2
    assert image.read_bytes() == before                 # the image itself is untouched
    rep = parse_report(run_image(image, timeout=60).console)
    assert rep.cmdline == "--rootfs=rofs /hello"


def test_every_qemu_backend_honours_osvkit_qemu(tmp_path, monkeypatch):
    """$OSVKIT_QEMU names the QEMU binary for qemu, qemu-pvh and qemu-fc alike (the dry-run
    command starts with it), and a backend counts as installed through it."""
    from osvkit.run.backends import BACKENDS, QEMU
    from osvkit.run.spec import RunSpec

    fake = tmp_path / "my-qemu"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    kernel = tmp_path / "k.elf"
    assert run_cli("probe", "-o", kernel).returncode == 0
    img = tmp_path / "u.img"
    assert run_cli("build", kernel, "-o", img).returncode == 0
    vml = tmp_path / "v.elf"
    assert run_cli("build", kernel, "--format", "vmlinux", "-o", vml).returncode == 0
    monkeypatch.setenv("OSVKIT_QEMU", str(fake))
    monkeypatch.setenv("PATH", str(tmp_path))          # no qemu-system-x86_64 on PATH
    for name, image in (("qemu", img), ("qemu-pvh", vml), ("qemu-fc", vml)):
        backend = BACKENDS[name]
        assert backend.tool == QEMU and backend.installed(), name
        argv = backend.command(RunSpec(image=str(image), vmm=name))
        assert argv[0] == str(fake), (name, argv[:3])
    monkeypatch.setenv("OSVKIT_QEMU", str(tmp_path / "absent"))
    assert not BACKENDS["qemu-pvh"].installed()


@pytest.mark.parametrize("memory, mib", [("128", 128), (128, 128), ("128M", 128), ("1G", 1024),
                                         ("131072K", 128)])
def test_memory_means_the_same_to_every_qemu_backend(tmp_path, memory, mib):
    """One memory grammar (units.memory_mib): a bare number is MiB for qemu, qemu-pvh and
    qemu-fc alike, K/M/G suffixes everywhere; each passes QEMU the size in MiB."""
    from osvkit.run.backends import BACKENDS
    from osvkit.run.spec import RunSpec
    from osvkit.units import memory_mib

    assert memory_mib(memory) == mib
    kernel = tmp_path / "k.elf"
    assert run_cli("probe", "-o", kernel).returncode == 0
    img, vml = tmp_path / "u.img", tmp_path / "v.elf"
    assert run_cli("build", kernel, "-o", img).returncode == 0
    assert run_cli("build", kernel, "--format", "vmlinux", "-o", vml).returncode == 0
    for name, image in (("qemu", img), ("qemu-pvh", vml), ("qemu-fc", vml)):
        argv = BACKENDS[name].command(RunSpec(image=str(image), vmm=name, memory=memory))
        assert argv[argv.index("-m") + 1] == f"{mib}M", name
