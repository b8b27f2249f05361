"""The outcome of one guest run (:class:`RunResult`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from ..errors import EX_FAIL, EX_OK, EX_SOFTWARE

EXIT_REASONS = ("poweroff", "timeout", "expect", "crash", "error")


@dataclass
class RunResult:
    """How a guest run ended.

    ``exit_reason``:
      * ``poweroff``: the VMM exited by itself with status 0 (guest power-off, or a guest
        reset/triple fault, which ``-no-reboot`` turns into an exit);
      * ``expect``: the ``expect`` regex matched the console; the VMM was then stopped;
      * ``timeout``: the time limit passed; the VMM was killed;
      * ``crash``: the VMM died from a signal osvkit did not send;
      * ``error``: the VMM exited with a non-zero status (bad option, missing file, no
        KVM): it did not run the guest; ``stderr`` says why.

    ``elapsed`` and ``boot_done`` are seconds since the VMM was started; ``boot_done`` is
    when the guest wrote 123 to port 0x3F0 (OSv's boot-done signal), or None.
    """

    exit_reason: str
    elapsed: float
    boot_done: float | None
    console: str
    command: list[str]
    returncode: int | None = None
    stderr: str = ""
    expect: str | None = None
    matched: str | None = None
    vmm: str = "qemu"
    pid: int | None = None
    console_bytes: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """True when the run passed: the expectation matched, or (without one) the guest
        powered off."""
        if self.expect is not None:
            return self.exit_reason == "expect"
        return self.exit_reason == "poweroff"

    @property
    def exit_status(self) -> int:
        """The CLI's status: 0 passed, 1 timed out/crashed/no match, 70 the VMM failed."""
        if self.exit_reason == "error":
            return EX_SOFTWARE
        return EX_OK if self.ok else EX_FAIL

    @property
    def error_line(self) -> str:
        """The VMM's first meaningful stderr line (for ``error`` results)."""
        for line in self.stderr.splitlines():
            if line.strip():
                return line.strip()
        return f"exited with status {self.returncode}"

    def command_line(self) -> str:
        return shlex.join(self.command)

    def describe(self) -> str:
        """The console, then how the run ended: exit reason, boot-done time, expectation."""
        lines = []
        if self.console:
            lines.append(self.console.rstrip("\n"))
            lines.append("")
        lines.append(f"exit: {self.exit_reason} after {self.elapsed:.2f} s")
        lines.append("boot-done: " + ("not seen" if self.boot_done is None
                                      else f"{self.boot_done:.2f} s"))
        if self.expect is not None:
            lines.append(f"expect {self.expect!r}: " + ("matched" if self.matched is not None
                                                        else "not matched"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "vmm": self.vmm,
            "exit_reason": self.exit_reason,
            "ok": self.ok,
            "elapsed": round(self.elapsed, 6),
            "boot_done": None if self.boot_done is None else round(self.boot_done, 6),
            "returncode": self.returncode,
            "pid": self.pid,
            "expect": self.expect,
            "matched": self.matched,
            "command": list(self.command),
            "stderr": self.stderr,
            "console": self.console,
        }
