"""Boot-verify images: boot each with the fitting run backend and judge the console.

A boot passes when

* the guest stopped by itself (``poweroff``) or printed the expected line (``expect``),
  not by ``timeout``, ``crash`` or ``error``;
* the expected-line regular expression (``--expect`` or ``verify.expect`` in the build file),
  if any, matches some console line;
* no console line holds one of OSv's failure patterns (:data:`FAILURE_PATTERNS`, the ones
  OSv's ``scripts/tests/testing.py`` scans for) or a pattern the build file adds;
* for the conformance kernel ("probe"), its report does not say ``image_ok`` is false.

The report also carries OSv's boot timing: the ``--bootchart`` lines
``\\t<name>: <ms>ms, (+<ms>ms)`` and ``Booted up in <ms> ms`` (:func:`parse_bootchart`),
the probe's TSC stamps, and the host-side boot-done time, and
:func:`verify_images` can draw every boot's phases with :mod:`osvkit.plot`.

Backends: ``usr.img`` (MBR or qcow2) boots with ``qemu``; a vmlinux ELF with ``qemu-pvh`` and
``qemu-fc`` (``firecracker`` on request).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .cmdline import Cmdline
from .config import MANIFEST_NAME, OPTIONS, load_build_file, resolve_options
from .errors import FormatError, MissingInputError, OsvkitError, ToolError, UsageError
from .run import RunSpec, get_backend, run
from .run.backends import IMAGE, IMAGE_VMMS, KERNEL_VMMS, VMMS, one_of
from .log import log


#: console substrings that mean a failed OSv boot (OSv scripts/tests/testing.py)
FAILURE_PATTERNS = ("Assertion failed", "Aborted", "[backtrace]", "Failed to load object",
                    "exception")

#: run backends per output kind, when none are named
DEFAULT_VMMS = {"usr": ("qemu",), "vmlinux": ("qemu-pvh", "qemu-fc")}
KNOWN_VMMS = VMMS
PASSING_EXITS = ("poweroff", "expect")

_BOOTCHART_RE = re.compile(
    r"^\s*(?P<name>\S[^\n]*?):\s*(?P<at>\d+(?:\.\d+)?)ms,\s*\(\+(?P<delta>\d+(?:\.\d+)?)ms\)\s*$")
_BOOTED_RE = re.compile(r"Booted up in (?P<ms>\d+(?:\.\d+)?) ms")
_SKIPPED_CHART = "Skipping bootchart"
"""OSv prints this instead of the chart when its clock cannot turn ticks into time (every
clock but kvmclock and xenclock: under QEMU TCG it runs on the HPET, ``core/chart.cc``);
its ``Booted up in`` then reads 0.00 ms."""


# --------------------------------------------------------------------------------------
# Console parsers
# --------------------------------------------------------------------------------------

@dataclass
class BootPhase:
    """One ``--bootchart`` line: the event ``name`` at ``at_ms`` after boot start,
    ``delta_ms`` after the previous event (the phase ends at ``at_ms``)."""
    name: str
    at_ms: float
    delta_ms: float

    @property
    def start_ms(self) -> float:
        return round(self.at_ms - self.delta_ms, 6)

    def to_dict(self) -> dict:
        return {"name": self.name, "at_ms": self.at_ms, "delta_ms": self.delta_ms}


@dataclass
class BootTiming:
    """OSv's boot timing from a console: bootchart phases and/or ``Booted up in``."""
    phases: list[BootPhase] = field(default_factory=list)
    booted_up_ms: float | None = None
    chart_skipped: bool = False
    """OSv said it could not print the chart (no clock that converts ticks to time)."""

    @property
    def total_ms(self) -> float | None:
        """The guest's boot time, or None when it printed none it could measure."""
        for ph in self.phases:
            if ph.name == "Total time":
                return ph.at_ms
        if self.phases:
            return self.phases[-1].at_ms
        if self.chart_skipped or not self.booted_up_ms:
            return None           # "Booted up in 0.00 ms" from a clock that cannot tell
        return self.booted_up_ms

    def to_dict(self) -> dict:
        return {"phases": [p.to_dict() for p in self.phases], "booted_up_ms": self.booted_up_ms,
                "chart_skipped": self.chart_skipped, "total_ms": self.total_ms}


def parse_bootchart(console: str) -> BootTiming:
    """Parse OSv's ``--bootchart`` output and ``Booted up in N ms`` from console text."""
    timing = BootTiming()
    for line in console.splitlines():
        line = line.rstrip("\r")
        m = _BOOTCHART_RE.match(line)
        if m and line[:1] in ("\t", " "):
            timing.phases.append(BootPhase(m.group("name"), float(m.group("at")),
                                           float(m.group("delta"))))
            continue
        m = _BOOTED_RE.search(line)
        if m:
            timing.booted_up_ms = float(m.group("ms"))
        if _SKIPPED_CHART in line:
            timing.chart_skipped = True
    return timing


@dataclass
class ConsoleFailure:
    """A console line holding a failure pattern (line numbers from 1)."""
    line: int
    pattern: str
    text: str

    def to_dict(self) -> dict:
        return {"line": self.line, "pattern": self.pattern, "text": self.text}


def scan_failures(console: str, patterns: Iterable[str] = FAILURE_PATTERNS) -> list[ConsoleFailure]:
    """Every console line that contains one of ``patterns`` (case-sensitive, like OSv's
    test scripts), with the first pattern it matched."""
    patterns = tuple(patterns)
    found = []
    for n, line in enumerate(console.splitlines(), 1):
        for pat in patterns:
            if pat in line:
                found.append(ConsoleFailure(n, pat, line.rstrip("\r")))
                break
    return found


def find_expected(console: str, regex: str) -> str | None:
    """The first console line matching ``regex`` (``re.search`` per line), or None."""
    rx = re.compile(regex)
    for line in console.splitlines():
        line = line.rstrip("\r")
        if rx.search(line):
            return line
    return None


# --------------------------------------------------------------------------------------
# Image detection
# --------------------------------------------------------------------------------------

def detect_kind(path: str | os.PathLike) -> str:
    """``"usr"`` for a raw MBR disk or qcow2 image, ``"vmlinux"`` for an ELF kernel."""
    from .disk import is_disk_head
    from .fileio import read_head

    head = read_head(path, 512, "a usr.img or vmlinux ELF")
    if head[:4] == b"\x7fELF":
        return "vmlinux"
    if is_disk_head(head):
        return "usr"
    raise FormatError(f"not a bootable image (starts {head[:4].hex() or 'empty'})", path=path,
                      expected="a usr.img (MBR 55 AA or qcow2) or a vmlinux ELF")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

@dataclass
class BootCheck:
    """One boot of one image with one backend, and the verdict."""
    image: str
    name: str
    kind: str
    vmm: str
    status: str                      # "pass" | "fail" | "skip"
    reasons: list[str] = field(default_factory=list)
    exit_reason: str | None = None
    elapsed_s: float | None = None
    boot_done_s: float | None = None
    expect: str | None = None
    expect_line: str | None = None
    failures: list[ConsoleFailure] = field(default_factory=list)
    timing: BootTiming = field(default_factory=BootTiming)
    probe: dict | None = None
    command: list[str] = field(default_factory=list)
    console_tail: list[str] = field(default_factory=list)
    console: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def phases_ms(self) -> list[tuple[str, float, float]]:
        """``(name, start, end)`` for the plot: bootchart phases, else the host boot-done."""
        if self.timing.phases:
            return [(p.name, p.start_ms, p.at_ms) for p in self.timing.phases]
        if self.timing.total_ms is not None:
            return [("booted up (guest)", 0.0, self.timing.total_ms)]
        if self.boot_done_s is not None:
            return [("boot-done (host)", 0.0, round(self.boot_done_s * 1000, 3))]
        return []

    def to_dict(self) -> dict:
        return {
            "image": self.image, "name": self.name, "kind": self.kind, "vmm": self.vmm,
            "status": self.status, "passed": self.passed, "reasons": list(self.reasons),
            "exit_reason": self.exit_reason, "elapsed_s": self.elapsed_s,
            "boot_done_s": self.boot_done_s, "expect": self.expect,
            "expect_line": self.expect_line,
            "failures": [f.to_dict() for f in self.failures],
            "timing": self.timing.to_dict(), "probe": self.probe,
            "command": list(self.command), "console_tail": list(self.console_tail),
        }


@dataclass
class VerifyResult:
    """Every boot, the overall verdict, and the plot written (if any)."""
    checks: list[BootCheck]
    plot: str | None = None

    @property
    def passed(self) -> bool:
        """True when no boot failed and every image passed at least one boot."""
        if any(c.status == "fail" for c in self.checks):
            return False
        images = {c.image for c in self.checks}
        return bool(images) and all(
            any(c.passed for c in self.checks if c.image == img) for img in images)

    def summary(self) -> dict:
        return {"boots": len(self.checks),
                "passed": sum(c.status == "pass" for c in self.checks),
                "failed": sum(c.status == "fail" for c in self.checks),
                "skipped": sum(c.status == "skip" for c in self.checks)}

    def to_dict(self) -> dict:
        return {"passed": self.passed, "summary": self.summary(),
                "boots": [c.to_dict() for c in self.checks], "plot": self.plot}

    def describe(self) -> str:
        """The summary ``osvkit verify`` prints (:func:`format_result`)."""
        return format_result(self)


# --------------------------------------------------------------------------------------
# Booting
# --------------------------------------------------------------------------------------

@dataclass
class BootRequest:
    """What to boot and how (an internal work item)."""
    image: Path
    name: str
    kind: str
    vmms: tuple[str, ...]
    explicit_vmms: bool
    memory: str
    cpus: int
    timeout: float
    accel: str
    cmdline: Cmdline | str | None
    expect: str | None
    fail_patterns: tuple[str, ...]
    probe: bool | None = None        # None: try to parse a probe report anyway
    disk: Path | None = None         # ELF boots: the disk holding the application (usr.img)
    pre_reasons: tuple[str, ...] = ()  # known before booting (e.g. changed since the build)


def _probe_report(console: str) -> dict | None:
    from .probe import parse_report

    try:
        report = parse_report(console)
    except OsvkitError:
        return None
    except Exception:  # a partial report must not turn into a traceback
        return None
    if report is None:
        return None
    return report.to_dict() if hasattr(report, "to_dict") else dict(report)


def _probe_tsc(report: Mapping[str, Any]) -> dict | None:
    tsc = report.get("tsc")
    if not tsc:
        return None
    if isinstance(tsc, Mapping):
        init, disk, unc = tsc.get("init"), tsc.get("disk_done"), tsc.get("uncompress_done")
    else:
        init, disk, unc = (list(tsc) + [None, None, None])[:3]
    out = {"init": init, "disk_done": disk, "uncompress_done": unc}
    if init and disk and disk >= init:
        out["disk_read_ticks"] = disk - init
    if disk and unc and unc >= disk:
        out["uncompress_ticks"] = unc - disk
    return out


def _spec(req: BootRequest, vmm: str) -> RunSpec:
    """The run for ``req`` with ``vmm``: a disk-image backend for usr.img, a kernel backend
    for a vmlinux ELF (with the command line as its boot args and the disk attached).
    Every runner takes ``expect`` as a regex; every console is also matched here."""
    if (get_backend(vmm).boots == IMAGE) != (req.kind == "usr"):
        raise UsageError(f"no {vmm} backend for a {req.kind} image",
                         expected=f"{one_of(IMAGE_VMMS)} for usr.img, "
                                  f"{one_of(KERNEL_VMMS)} for a vmlinux ELF")
    spec = RunSpec(str(req.image), vmm=vmm, accel=req.accel, memory=req.memory,
                   cpus=req.cpus, timeout=req.timeout, expect=req.expect,
                   cmdline=req.cmdline or None)
    if req.kind == "usr":
        return spec
    return spec.replace(cmdline=req.cmdline or "",
                        disk=None if req.disk is None else str(req.disk))


def boot_once(req: BootRequest, vmm: str) -> BootCheck:
    """Boot ``req.image`` with ``vmm`` and judge it."""
    check = BootCheck(image=str(req.image), name=req.name, kind=req.kind, vmm=vmm,
                      status="fail", expect=req.expect)
    backend = get_backend(vmm)
    if not backend.installed():
        check.status = "fail" if req.explicit_vmms else "skip"
        check.reasons.append(f"{backend.tool} is not installed")
        return check
    try:
        result = run(_spec(req, vmm))
    except (UsageError, ToolError) as exc:
        # a backend this osvkit lacks, or a tool that is missing
        check.status = "fail" if req.explicit_vmms else "skip"
        check.reasons.append(str(exc))
        return check
    except OsvkitError as exc:
        check.reasons.append(str(exc))
        return check
    console = getattr(result, "console", "") or ""
    check.console = console
    check.exit_reason = getattr(result, "exit_reason", None)
    check.elapsed_s = getattr(result, "elapsed", None)
    check.boot_done_s = getattr(result, "boot_done", None)
    check.command = list(getattr(result, "command", []) or [])
    check.console_tail = console.splitlines()[-20:]
    check.timing = parse_bootchart(console)
    check.failures = scan_failures(console, req.fail_patterns)
    if req.probe is not False:
        report = _probe_report(console)
        if report is not None:
            tsc = _probe_tsc(report)
            if tsc:
                report = {**report, "tsc": tsc}
            check.probe = report
    if req.expect is not None:
        check.expect_line = find_expected(console, req.expect)
    reasons = []
    kept_running = (check.exit_reason == "timeout" and req.expect is not None
                    and check.expect_line is not None)   # e.g. a server that printed its line
    if check.exit_reason not in PASSING_EXITS and not kept_running:
        reasons.append(f"guest ended by {check.exit_reason}")
    if req.expect is not None and check.expect_line is None:
        reasons.append(f"no console line matches {req.expect!r}")
    for f in check.failures[:5]:
        reasons.append(f"console line {f.line}: {f.pattern!r}: {f.text.strip()}")
    if check.probe is not None and check.probe.get("image_ok") is False:
        reasons.append("probe: image_ok is false (the loaded image does not match)")
    if (check.probe is not None and check.probe.get("complete") is False
            and check.exit_reason != "expect"):   # stopping at --expect cuts the report short
        reasons.append("probe: the report is incomplete")
    if req.probe and check.probe is None:
        reasons.append("no probe report on the console")
    check.reasons = list(req.pre_reasons) + reasons
    check.status = "fail" if check.reasons else "pass"
    return check


def _vmms_for(kind: str, vmms: Iterable[str] | None) -> tuple[tuple[str, ...], bool]:
    if vmms:
        chosen = tuple(vmms)
        for v in chosen:
            if v not in KNOWN_VMMS:
                raise UsageError(f"unknown VMM {v!r}", expected=one_of(KNOWN_VMMS))
        if kind == "usr":
            bad = [v for v in chosen if v not in IMAGE_VMMS]
            if bad:
                raise UsageError(f"a usr.img boots only with {one_of(IMAGE_VMMS)}, not "
                                 f"{', '.join(bad)}", expected="--vmm qemu")
        else:
            bad = [v for v in chosen if v not in KERNEL_VMMS]
            if bad:
                raise UsageError(f"a vmlinux ELF boots with {one_of(KERNEL_VMMS)}, "
                                 f"not {', '.join(bad)}",
                                 expected="--vmm qemu-pvh or --vmm qemu-fc")
        return chosen, True
    return DEFAULT_VMMS[kind], False


def check_expect(expect: str | None) -> None:
    """A bad ``--expect`` regex is the caller's mistake (64), found before any boot (the run
    backends' UsageError for it used to read as "backend not available")."""
    if expect is not None:
        try:
            re.compile(expect)
        except re.error as exc:
            raise UsageError(f"--expect {expect!r}: bad regular expression: {exc}",
                             expected="a Python regular expression") from None


def check_plot_path(plot: str | os.PathLike | None) -> None:
    """The picture's place is checked before the boots, not after minutes of them."""
    if plot is None:
        return
    from .errors import OutputError
    p = Path(plot)
    if p.is_dir():
        raise OutputError("is a directory", path=p, expected="a file name for the picture")
    if not p.parent.resolve().is_dir():
        raise OutputError("directory does not exist", path=p)


def run_checks(requests: list[BootRequest], plot: str | os.PathLike | None = None,
               title: str = "osvkit verify") -> VerifyResult:
    check_plot_path(plot)
    for req in requests:
        check_expect(req.expect)
    checks = []
    for req in requests:
        for vmm in req.vmms:
            log.info("booting %s with %s (timeout %gs)", req.image, vmm, req.timeout)
            check = boot_once(req, vmm)
            log.info("%s %s: %s%s", req.name, vmm, check.status,
                     f" ({'; '.join(check.reasons)})" if check.reasons else "")
            checks.append(check)
    result = VerifyResult(checks)
    if checks and all(c.status == "skip" for c in checks):
        reasons = sorted({r for c in checks for r in c.reasons})
        raise ToolError("no run backend could boot any image: " + "; ".join(reasons),
                        expected="QEMU installed (install.sh) or --vmm naming one that is")
    if plot is not None:
        from .plot import Phase, TimelineRow, plot_timeline
        rows = [TimelineRow(f"{c.name} ({c.vmm})", [Phase(*p) for p in c.phases_ms()],
                            note=c.status.upper()) for c in checks if c.status != "skip"]
        plot_timeline(rows, plot, title=title)
        result.plot = os.fspath(plot)
    return result


def verify_images(images: Iterable[str | os.PathLike], *, flags: Mapping[str, Any] | None = None,
                  vmms: Iterable[str] | None = None, expect: str | None = None,
                  fail_patterns: Iterable[str] = (), plot: str | os.PathLike | None = None,
                  env: Mapping[str, str] | None = None,
                  disk: str | os.PathLike | None = None) -> VerifyResult:
    """Boot each image file with its fitting backends; ``disk`` is attached to kernel-ELF
    boots (the usr.img or raw disk holding the application filesystem).

    ``flags`` holds command-line option values (``memory``, ``cpus``, ``timeout``, ``accel``,
    ``cmdline``; None = not given), resolved against ``OSVKIT_*`` variables and defaults."""
    images = [Path(p) for p in images]
    if not images:
        raise UsageError("no image to verify", expected="IMAGE arguments or -c BUILD_FILE")
    opts = resolve_options(flags, None, env=env)
    vmms = list(vmms) if vmms else None
    requests = []
    for img in images:
        kind = detect_kind(img)
        chosen, explicit = _vmms_for(kind, vmms)
        requests.append(BootRequest(
            image=img, name=img.name, kind=kind, vmms=chosen, explicit_vmms=explicit,
            memory=opts["memory"], cpus=opts["cpus"], timeout=opts["timeout"],
            accel=opts["accel"], cmdline=opts["cmdline"], expect=expect,
            fail_patterns=tuple(FAILURE_PATTERNS) + tuple(fail_patterns),
            disk=Path(disk) if disk is not None and kind == "vmlinux" else None))
    return run_checks(requests, plot)


def _boot_cmdline(img, opts) -> Cmdline | None:
    """A kernel boot's command line as the one model: the image's own :class:`Cmdline` when
    the build file's line is the one that applies, else the flag's, variable's or
    ``[options]`` text parsed (None: none given)."""
    if img.has_cmdline and opts.sources.get("cmdline", "").startswith("file:"):
        return img.cmdline
    return None if opts["cmdline"] is None else Cmdline.from_value(opts["cmdline"])


def verify_build_file(path: str | os.PathLike, *, flags: Mapping[str, Any] | None = None,
                      out_dir: str | os.PathLike | None = None, vmms: Iterable[str] | None = None,
                      expect: str | None = None, fail_patterns: Iterable[str] = (),
                      plot: str | os.PathLike | None = None, only: Iterable[str] | None = None,
                      env: Mapping[str, str] | None = None) -> VerifyResult:
    """Boot every ``usr`` and ``vmlinux`` output a build file declares (build them first)."""
    bf = load_build_file(path)
    base = Path(out_dir) if out_dir is not None else bf.directory
    only = set(only) if only else None
    if only:
        unknown = only - {i.name for i in bf.images}
        if unknown:
            raise UsageError(f"no image named {', '.join(sorted(unknown))} in {bf.path.name}",
                             expected=", ".join(i.name for i in bf.images))
    flags = dict(flags or {})
    vmms = list(vmms) if vmms else None
    built = _manifest_hashes(base / MANIFEST_NAME)
    requests = []
    for img in bf.images:
        if img.verify.skip or (only and img.name not in only):
            continue
        opts = bf.resolve(img, flags, env=env)
        timeout = opts["timeout"]
        # verify.timeout is the file's most specific timeout; a flag or variable still wins
        if img.verify.timeout is not None and opts.sources["timeout"] not in (
                "flag", "env:" + OPTIONS["timeout"].env):
            timeout = float(img.verify.timeout)
        for kind in ("usr", "vmlinux"):
            if kind not in img.outputs:
                continue
            file = base / img.outputs[kind]
            if not file.is_file():
                raise MissingInputError("no such file (run `osvkit build -c` first)",
                                        path=file)
            if vmms or img.verify.vmms:
                # one list covers both kinds: image backends boot usr.img, the others the ELF
                for v in vmms or ():
                    if v not in KNOWN_VMMS:
                        raise UsageError(f"unknown VMM {v!r}", expected=one_of(KNOWN_VMMS))
                fitting = [v for v in (vmms or img.verify.vmms)
                           if (v in IMAGE_VMMS) == (kind == "usr")]
                if not fitting:
                    continue
                chosen, explicit = _vmms_for(kind, fitting)
            else:
                chosen, explicit = _vmms_for(kind, None)
            cmdline, disk = None, None          # usr.img: the command line is in the image
            if kind == "vmlinux":
                cmdline = _boot_cmdline(img, opts)
                if img.rofs_manifest and "usr" in img.outputs:
                    # the application is on the ROFS in usr.img's partition 1: attach it and
                    # name it the root, as the usr.img's own command line does
                    from .image.appimage import with_rootfs

                    cmdline = Cmdline.from_value(with_rootfs("" if cmdline is None
                                                             else str(cmdline)))
                    disk = base / img.outputs["usr"]
            requests.append(BootRequest(
                image=file, name=f"{img.name}/{kind}", kind=kind, vmms=chosen,
                explicit_vmms=explicit, memory=opts["memory"], cpus=opts["cpus"],
                timeout=timeout, accel=opts["accel"], cmdline=cmdline, disk=disk,
                expect=expect if expect is not None else img.verify.expect,
                fail_patterns=tuple(FAILURE_PATTERNS) + tuple(img.verify.fail_patterns)
                + tuple(fail_patterns),
                probe=True if img.probe_size is not False else None,
                pre_reasons=_changed(file, img.outputs[kind], built)))
    if not requests:
        raise UsageError(f"{bf.path.name}: nothing to verify",
                         expected="an image with a usr or vmlinux output")
    return run_checks(requests, plot, title=f"osvkit verify {bf.path.name}")


def _manifest_hashes(path: Path) -> dict[str, str] | None:
    """``{output path: sha256}`` from an ``osvkit-manifest.json``, or None without one."""
    import json

    try:
        data = json.loads(path.read_text("utf-8"))
        return {o["path"]: o["sha256"] for img in data["images"] for o in img["outputs"]}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"unreadable build manifest ({exc})", path=path,
                          expected="an osvkit-manifest.json written by osvkit build") from None


def _changed(file: Path, rel: str, built: dict[str, str] | None) -> tuple[str, ...]:
    if built is None:
        return ()
    key = Path(os.path.normpath(rel)).as_posix()
    if key not in built:
        return (f"{key} is not in {MANIFEST_NAME} (rebuild with `osvkit build -c`)",)
    from .buildfile import sha256_file
    if sha256_file(file) != built[key]:
        return (f"{key} differs from the build recorded in {MANIFEST_NAME}",)
    return ()


def format_result(result: VerifyResult) -> str:
    """The human summary ``osvkit verify`` prints."""
    lines = []
    for c in result.checks:
        timing = ""
        if c.timing.total_ms is not None:
            timing = f" boot {c.timing.total_ms:.2f} ms (guest)"
        elif c.boot_done_s is not None:
            timing = f" boot-done {c.boot_done_s * 1000:.1f} ms (host)"
        lines.append(f"{c.status.upper():4} {c.name} [{c.vmm}]{timing}")
        for r in c.reasons:
            lines.append(f"     {r}")
        if c.probe:
            p = c.probe
            lines.append(f"     probe: loader={p.get('loader')} entry={p.get('entry')} "
                         f"cpus={p.get('cpus')} e820={len(p.get('e820') or [])} "
                         f"image_ok={p.get('image_ok')}")
            tsc = p.get("tsc") or {}
            if isinstance(tsc, dict) and "disk_read_ticks" in tsc:
                lines.append(f"     probe TSC: disk read {tsc['disk_read_ticks']} ticks, "
                             f"uncompress {tsc.get('uncompress_ticks', '-')} ticks")
    s = result.summary()
    lines.append(f"{'PASSED' if result.passed else 'FAILED'}: {s['passed']} passed, "
                 f"{s['failed']} failed, {s['skipped']} skipped of {s['boots']} boots")
    if result.plot:
        lines.append(f"timeline: {result.plot}")
    return "\n".join(lines)
