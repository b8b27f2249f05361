"""Run a kernel under a real Firecracker: ``firecracker --no-api --config-file``.

The guest's serial console is Firecracker's stdout.  The run ends when Firecracker exits
(OSv powers off through the i8042 reset, 0xFE to port 0x64, which Firecracker turns into a
clean VMM stop) or at the timeout (the process is killed).  Firecracker has no port-0x3F0
device, so ``boot_done`` is taken from its ``--boot-timer`` log line when present.  No
binary on PATH (and none given) is a :class:`~osvkit.errors.ToolError` (exit 70).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time

from ..errors import ToolError
from ..firecracker.config import build_firecracker_config

_BOOT_TIME = re.compile(r"Guest-boot-time\s*=\s*(\d+)\s*us")


def find_firecracker(path=None) -> str:
    if path is not None:
        p = os.fspath(path)
        if not (os.path.isfile(p) and os.access(p, os.X_OK)):
            raise ToolError("not an executable firecracker binary", path=p)
        return p
    found = shutil.which("firecracker")
    if found is None:
        raise ToolError("no firecracker binary on PATH",
                        expected="firecracker installed, or --firecracker PATH")
    return found


def firecracker_command(config_path, *, firecracker=None) -> list[str]:
    return [find_firecracker(firecracker), "--no-api", "--config-file", os.fspath(config_path),
            "--boot-timer"]


CONFIG_FILE = "vm.json"


def _config(spec):
    return build_firecracker_config(spec.image, disk=spec.disk, memory=spec.memory,
                                    cpus=spec.cpus, boot_args=spec.line, initrd=spec.initrd)


def command(spec, workdir: str) -> list[str]:
    """The ``firecracker`` backend's command for ``spec`` (the config document it writes is
    checked too)."""
    _config(spec)
    return firecracker_command(os.path.join(workdir, CONFIG_FILE), firecracker=spec.firecracker)


def run_firecracker(kernel, *, firecracker=None, disk=None, memory="128M", cpus: int = 1,
                    cmdline: str = "", timeout: float = 60, expect: str | None = None,
                    console_path=None, initrd=None):
    """Boot ``kernel`` in a real Firecracker; returns a :class:`~osvkit.run.result.RunResult`
    (``vmm`` "firecracker")."""
    from .spec import RunSpec

    return run(RunSpec(kernel, vmm="firecracker", firecracker=firecracker, disk=disk,
                       memory=memory, cpus=cpus, cmdline=cmdline, timeout=timeout, expect=expect,
                       console_path=console_path, initrd=initrd))


def run(spec):
    """Boot ``spec.image`` in a real Firecracker."""
    from .result import RunResult

    binary = find_firecracker(spec.firecracker)
    cfg = _config(spec)
    timeout, expect, console_path = spec.timeout, spec.expect, spec.console_path
    with tempfile.TemporaryDirectory(prefix="osvkit-fc-") as tmp:
        cfg_path = os.path.join(tmp, CONFIG_FILE)
        with open(cfg_path, "w") as f:
            f.write(cfg.to_json())
        argv = firecracker_command(cfg_path, firecracker=binary)
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        out = b""
        reason = "poweroff"
        pattern = re.compile(expect, re.MULTILINE) if expect is not None else None
        try:
            import selectors

            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    reason = "timeout"
                    break
                if sel.select(min(left, 0.5)):
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    out += chunk
                    if pattern is not None and pattern.search(out.decode("utf-8", "replace")):
                        reason = "expect"
                        break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        elapsed = time.monotonic() - start
    console = out.decode("utf-8", "replace")
    if reason == "poweroff" and proc.returncode:
        reason = "crash" if proc.returncode < 0 else "error"
    m = _BOOT_TIME.search(console)
    boot_done = int(m.group(1)) / 1e6 if m else None
    matched = None
    if reason == "expect":
        matched = pattern.search(console).group(0)
    if console_path is not None:
        with open(console_path, "wb") as f:
            f.write(out)
    return RunResult(exit_reason=reason, elapsed=elapsed, boot_done=boot_done, console=console,
                     command=argv, returncode=proc.returncode,
                     stderr=console if reason == "error" else "", expect=expect,
                     matched=matched, vmm="firecracker", pid=proc.pid, console_bytes=out)
