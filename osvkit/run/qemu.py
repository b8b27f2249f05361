"""Run guests in QEMU with the serial console and OSv's boot-done port captured.

:func:`run_qemu` runs a prepared command line; it adds what it needs to watch the guest:

* ``-serial stdio`` (unless the command already routes a serial port): the console is read
  from QEMU's stdout as it comes, so an ``expect`` regex can stop the run early;
* ``-chardev file,id=osvkit-bootdone,path=<dir>/bootdone`` +
  ``-device isa-debugcon,iobase=0x3f0,chardev=osvkit-bootdone``: the byte OSv writes to port
  0x3F0 when it has booted (123).  On the i440fx ``pc`` machine QEMU's floppy controller is
  present even with ``-nodefaults``, but it claims only ports 0x3F1-0x3F5 and 0x3F7, so the
  debugcon device gets 0x3F0 (``info mtree`` shows both; a test checks the byte arrives);
* ``-no-reboot``: a guest reset (OSv's power-off without ACPI: 0xFE to port 0x64, then a
  triple fault) makes QEMU exit instead of rebooting.

:func:`qemu_command` builds the command for booting a disk image on SeaBIOS.
"""

from __future__ import annotations

import codecs
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time

from .. import layout
from ..errors import OutputError, ToolError, UsageError
from ..disk import detect_format as detect_image_format
from ..units import memory_mib
from .result import RunResult

QEMU = "qemu-system-x86_64"
BOOTDONE_CHARDEV = "osvkit-bootdone"
ACCELS = ("tcg", "kvm")
DISK_BUSES = ("virtio", "ide")
IMAGE_FORMATS = ("raw", "qcow2")
QCOW2_MAGIC = layout.QCOW2_MAGIC
_POLL = 0.02
_EXPECT_WINDOW = 64 * 1024


def find_qemu(name: str = QEMU) -> str:
    """The QEMU binary: ``$OSVKIT_QEMU`` or ``name`` on PATH; ToolError (exit 70) if absent."""
    override = os.environ.get("OSVKIT_QEMU")
    if override:
        if shutil.which(override) is None:
            raise ToolError(f"OSVKIT_QEMU={override} is not an executable",
                            expected=f"a path to {name}")
        return shutil.which(override)
    path = shutil.which(name)
    if path is None:
        raise ToolError(f"{name} not found in PATH", expected="QEMU installed (see install.sh)")
    return path


def opt_value(value: str | os.PathLike) -> str:
    """``value`` as one QEMU option value: QEMU's option parser splits on commas, and a
    doubled comma stands for one (so an image named ``a,b.img`` stays one file name)."""
    return os.fspath(value).replace(",", ",,")


def smp_option(cpus: int) -> str:
    """``-smp`` value with one CPU per socket: SeaBIOS lists one MP-table processor entry per
    package, so ``-smp 2`` (QEMU 7.2: 2 cores in 1 socket) would show OSv's MP-table walk
    only 1 CPU."""
    return f"{cpus},sockets={cpus},cores=1,threads=1"


def qemu_command(image: str | os.PathLike, *, accel: str = "tcg", memory: str = "256M",
                 cpus: int = 1, disk_bus: str = "virtio", image_format: str | None = None,
                 extra: list[str] | tuple[str, ...] = (), qemu: str | None = None,
                 drive_path: str | None = None) -> list[str]:
    """The QEMU command that boots ``image`` from SeaBIOS (i440fx ``pc`` machine), without
    the capture options :func:`run_qemu` adds.  With ``drive_path``, ``image`` is checked but
    the drive is the raw copy at ``drive_path`` (a run with its own command line)."""
    if accel not in ACCELS:
        raise UsageError(f"accelerator {accel!r}", expected=" or ".join(ACCELS))
    if disk_bus not in DISK_BUSES:
        raise UsageError(f"disk bus {disk_bus!r}", expected=" or ".join(DISK_BUSES))
    if not isinstance(cpus, int) or cpus < 1 or cpus > 255:
        raise UsageError(f"{cpus} CPUs", expected="1 to 255")
    mib = memory_mib(memory)
    image = os.fspath(image)
    detected = detect_image_format(image)          # also: the image must exist
    fmt = image_format or detected
    if fmt not in IMAGE_FORMATS:
        raise UsageError(f"image format {fmt!r}", expected=" or ".join(IMAGE_FORMATS))
    if fmt != detected:
        # a qcow2 file attached as raw lets the guest write over its qcow2 metadata
        raise UsageError(f"a {detected} image, not {fmt}", path=image,
                         expected=f"--image-format {detected} (or no --image-format)")
    if fmt == "qcow2":
        # QEMU would follow the image's backing chain itself (and wait forever on a FIFO):
        # opening it here applies osvkit.disk's checks to every file of the chain first
        from ..disk import open_disk

        with open_disk(image):
            pass
    if drive_path is not None:
        image, fmt = drive_path, "raw"
    return [qemu or find_qemu(), "-machine", "pc", "-accel", accel, "-m", f"{mib}M",
            "-smp", smp_option(cpus), "-display", "none", "-nodefaults", "-no-user-config",
            "-drive", f"file={opt_value(image)},format={fmt},if={disk_bus},cache=unsafe",
            *extra]


CMDLINE_COPY = "image.raw"
"""The raw copy a run with its own command line boots, in the run's directory."""


def command(spec, workdir: str) -> list[str]:
    """The ``qemu`` backend's command for ``spec`` (:class:`~osvkit.run.spec.RunSpec`): the
    image itself, or -- with ``spec.cmdline`` -- the raw copy :func:`run` makes in
    ``workdir``."""
    copy = os.path.join(workdir, CMDLINE_COPY) if spec.cmdline is not None else None
    return qemu_command(spec.image, accel=spec.accel, memory=spec.memory, cpus=spec.cpus,
                        disk_bus=spec.disk_bus, image_format=spec.image_format,
                        extra=list(spec.extra), drive_path=copy)


def run(spec):
    """Boot ``spec.image`` on SeaBIOS; a ``spec.cmdline`` goes into a temporary raw copy
    (the image itself is never modified)."""
    with tempfile.TemporaryDirectory(prefix="osvkit-run-") as tmp:
        argv = command(spec, tmp)
        if spec.cmdline is not None:
            fmt = spec.image_format or detect_image_format(spec.image)
            make_cmdline_copy(spec.image, fmt, spec.cmdline, os.path.join(tmp, CMDLINE_COPY))
        return run_qemu(argv, timeout=spec.timeout, expect=spec.expect,
                        console_path=spec.console_path, workdir=tmp)


def make_cmdline_copy(image, fmt: str, cmdline: str, copy: str) -> str:
    """A raw copy of ``image`` at ``copy`` with its command line set to ``cmdline``."""
    from ..image.cmdline_io import set_cmdline

    if fmt == "qcow2":
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            raise ToolError("qemu-img not found in PATH", expected="QEMU tools installed")
        proc = subprocess.run([qemu_img, "convert", "-O", "raw", os.fspath(image), copy],
                              capture_output=True, text=True)
        if proc.returncode:
            raise ToolError(f"qemu-img convert failed: {proc.stderr.strip()}", path=image)
    else:
        shutil.copyfile(image, copy)
    set_cmdline(copy, cmdline)
    return copy


def capture_options(workdir: str, argv: list[str]) -> list[str]:
    """The options :func:`run_qemu` appends to ``argv`` (see the module docstring)."""
    opts = []
    if "-serial" not in argv:
        opts += ["-serial", "stdio"]
    opts += ["-chardev", f"file,id={BOOTDONE_CHARDEV},path={opt_value(os.path.join(workdir, 'bootdone'))}",
             "-device", f"isa-debugcon,iobase={layout.BOOT_DONE_PORT:#x},chardev={BOOTDONE_CHARDEV}"]
    if "-no-reboot" not in argv:
        opts.append("-no-reboot")
    return opts


def run_qemu(argv: list[str], *, timeout: float, expect: str | None = None,
             console_path: str | os.PathLike | None = None, capture: bool = True,
             workdir: str | None = None) -> RunResult:
    """Run the QEMU command ``argv`` until it exits, ``timeout`` seconds pass, or the console
    matches ``expect`` (a regex, multiline).  The console is also written to
    ``console_path`` when given.  QEMU is always reaped (no zombie) before this returns."""
    if not argv:
        raise UsageError("empty QEMU command")
    try:
        pattern = re.compile(expect, re.MULTILINE) if expect is not None else None
    except re.error as exc:
        raise UsageError(f"expect pattern {expect!r} is not a regex ({exc})") from None
    try:
        console_file = open(console_path, "wb") if console_path is not None else None
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror}", path=console_path) from None
    own_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="osvkit-run-")
    bootdone = os.path.join(workdir, "bootdone")
    cmd = list(argv) + (capture_options(workdir, argv) if capture else [])
    console = bytearray()
    stderr = bytearray()
    boot_done = None
    matched = None
    reason = None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = ""
    searched = 0
    start = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise ToolError(f"{cmd[0]} not found", expected="QEMU installed (see install.sh)") from None
        except PermissionError:
            raise ToolError(f"{cmd[0]} is not executable", expected="a QEMU binary") from None
        try:
            sel = selectors.DefaultSelector()
            for stream in (proc.stdout, proc.stderr):
                os.set_blocking(stream.fileno(), False)
                sel.register(stream, selectors.EVENT_READ)
            open_streams = 2
            deadline = start + timeout
            while True:
                now = time.monotonic()
                if open_streams:
                    for key, _ in sel.select(max(0.0, min(_POLL, deadline - now))):
                        try:
                            chunk = os.read(key.fd, 65536)
                        except BlockingIOError:
                            continue
                        if not chunk:
                            sel.unregister(key.fileobj)
                            open_streams -= 1
                        elif key.fileobj is proc.stdout:
                            console += chunk
                            if console_file:
                                console_file.write(chunk)
                        else:
                            stderr += chunk
                else:
                    time.sleep(_POLL)
                now = time.monotonic()
                if boot_done is None and _boot_done_seen(bootdone):
                    boot_done = now - start
                if pattern is not None and len(console) > searched:
                    text += decoder.decode(bytes(console[searched:]))
                    searched = len(console)
                    # a match must end in the new text; look back at most 64 KiB
                    m = pattern.search(text, max(0, len(text) - _EXPECT_WINDOW))
                    if m:
                        matched = m.group(0)
                        reason = "expect"
                        break
                if proc.poll() is not None and not open_streams:
                    break
                if now >= deadline:
                    reason = "timeout"
                    break
        finally:
            killed = _stop(proc)
            for stream in (proc.stdout, proc.stderr):
                rest = _drain(stream)
                if rest:
                    if stream is proc.stdout:
                        console += rest
                        if console_file:
                            console_file.write(rest)
                    else:
                        stderr += rest
                stream.close()
        elapsed = time.monotonic() - start
        if boot_done is None and _boot_done_seen(bootdone):
            boot_done = elapsed
        rc = proc.returncode
        if reason is None:
            if rc == 0:
                reason = "poweroff"
            elif rc is not None and rc < 0 and not killed:
                reason = "crash"
            else:
                reason = "error"
        if reason == "expect" and matched is None:  # pragma: no cover
            reason = "error"
    finally:
        if console_file:
            console_file.close()
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    return RunResult(exit_reason=reason, elapsed=elapsed, boot_done=boot_done,
                     console=console.decode("utf-8", "replace"), command=cmd, returncode=rc,
                     stderr=stderr.decode("utf-8", "replace"), expect=expect, matched=matched,
                     console_bytes=bytes(console), pid=proc.pid)


def _drain(stream) -> bytes:
    """Whatever is left in a pipe after the process exited."""
    out = bytearray()
    try:
        os.set_blocking(stream.fileno(), True)
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    except (OSError, ValueError):
        pass
    return bytes(out)


def _boot_done_seen(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return layout.BOOT_DONE_VALUE in f.read()
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> bool:
    """Terminate and reap ``proc`` if it still runs; True if it had to be stopped."""
    if proc.poll() is not None:
        return False
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return True
