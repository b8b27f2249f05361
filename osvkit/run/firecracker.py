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
from dataclasses import dataclass, field

from ..errors import ToolError
from ..firecracker.config import build_firecracker_config

_BOOT_TIME = re.compile(r"Guest-boot-time\s*=\s*(\d+)\s*us")


@dataclass
class FirecrackerRun:
    exit_reason: str
    elapsed: float
    boot_done: float | None
    console: str
    command: list[str]
    returncode: int | None = None
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"vmm": "firecracker", "exit_reason": self.exit_reason, "elapsed": self.elapsed,
                "boot_done": self.boot_done, "console": self.console, "command": self.command,
                "returncode": self.returncode, "config": self.config}


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


def run_firecracker(kernel, *, firecracker=None, disk=None, memory="128M", cpus: int = 1,
                    cmdline: str = "", timeout: float = 60, expect: str | None = None) -> FirecrackerRun:
    binary = find_firecracker(firecracker)
    cfg = build_firecracker_config(kernel, disk=disk, memory=memory, cpus=cpus, boot_args=cmdline)
    with tempfile.TemporaryDirectory(prefix="osvkit-fc-") as tmp:
        cfg_path = os.path.join(tmp, "vm.json")
        with open(cfg_path, "w") as f:
            f.write(cfg.to_json())
        argv = [binary, "--no-api", "--config-file", cfg_path, "--boot-timer"]
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        out = b""
        reason = "poweroff"
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
                    if expect is not None and expect.encode() in out:
                        reason = "expect"
                        break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        elapsed = time.monotonic() - start
    console = out.decode("utf-8", "replace")
    if reason == "poweroff" and proc.returncode not in (0, None):
        reason = "crash"
    m = _BOOT_TIME.search(console)
    boot_done = int(m.group(1)) / 1e6 if m else None
    return FirecrackerRun(exit_reason=reason, elapsed=elapsed, boot_done=boot_done,
                          console=console, command=argv, returncode=proc.returncode,
                          config=cfg.document)
