"""Run a prepared QEMU argv for the fcpath backends (qemu-pvh, qemu-fc).

Uses the probe part's :func:`osvkit.run.qemu.run_qemu` when it is there; until then a small
local runner with the same contract: COM1 to a file, the boot-done port 0x3F0 captured with
an ``isa-debugcon`` (value 123, osv-boot.md 6), stop at QEMU's exit, at ``expect`` or at the
timeout.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .. import layout


@dataclass
class FcRunResult:
    exit_reason: str
    elapsed: float
    boot_done: float | None
    console: str
    command: list[str] = field(default_factory=list)
    returncode: int | None = None

    def to_dict(self) -> dict:
        return {"exit_reason": self.exit_reason, "elapsed": self.elapsed,
                "boot_done": self.boot_done, "console": self.console, "command": self.command,
                "returncode": self.returncode}


def run_argv(argv: list[str], *, timeout: float, expect: str | None = None, console_path=None):
    try:
        from .qemu import run_qemu  # the probe part's runner
    except ImportError:
        run_qemu = None
    if run_qemu is not None:
        return run_qemu(argv, timeout=timeout, expect=expect, console_path=console_path)
    return _local_run(argv, timeout=timeout, expect=expect, console_path=console_path)


def _local_run(argv, *, timeout, expect, console_path):
    with tempfile.TemporaryDirectory(prefix="osvkit-run-") as tmp:
        con = os.fspath(console_path) if console_path else os.path.join(tmp, "console.txt")
        bd = os.path.join(tmp, "bootdone.bin")
        full = list(argv) + [
            "-serial", f"file:{con}", "-monitor", "none",
            "-chardev", f"file,id=osvkit_bootdone,path={bd}",
            "-device", f"isa-debugcon,iobase={layout.BOOT_DONE_PORT:#x},chardev=osvkit_bootdone",
        ]
        start = time.monotonic()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        boot_done = None
        reason = "poweroff"
        try:
            while True:
                now = time.monotonic() - start
                done = proc.poll() is not None
                if boot_done is None and os.path.exists(bd):
                    with open(bd, "rb") as f:
                        if bytes([layout.BOOT_DONE_VALUE]) in f.read():
                            boot_done = now
                if expect is not None and os.path.exists(con):
                    with open(con, "rb") as f:
                        if expect.encode() in f.read():
                            reason = "expect"
                            break
                if done:
                    break
                if now > timeout:
                    reason = "timeout"
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
            _out, err = proc.communicate()
        elapsed = time.monotonic() - start
        console = open(con, "rb").read().decode("utf-8", "replace") if os.path.exists(con) else ""
    if reason == "poweroff" and proc.returncode != 0:
        reason = "error"
        console += err.decode("utf-8", "replace")
    return FcRunResult(exit_reason=reason, elapsed=elapsed, boot_done=boot_done,
                       console=console, command=full, returncode=proc.returncode)
