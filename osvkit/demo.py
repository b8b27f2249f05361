"""``osvkit demo``: build the conformance kernel both ways and boot every path.

1. build the conformance kernel ("probe", :mod:`osvkit.probe`);
2. wrap it as a BIOS ``usr.img`` and as a vmlinux ELF;
3. boot ``usr.img`` with ``qemu`` and the ELF with ``qemu-pvh`` and ``qemu-fc`` (a backend this
   osvkit or this machine lacks is reported as skipped, with the reason);
4. read the probe's report from each console: which boot stub ran (``loader``), the command
   line it received, the e820 map, CPUs, whether the image arrived intact, and the boot-done
   time.

The demo passes only if every boot it ran passed and at least one boot ran per image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .config import resolve_options
from .errors import OsvkitError, OutputError
from .verify import FAILURE_PATTERNS, BootCheck, BootRequest, boot_once
from .log import log


#: the command line the demo images carry: loader options, then an application command
DEMO_CMDLINE = "--verbose --bootchart /hello osvkit-demo"

#: the boot-loader name each path's osvkit boot stub leaves (in the boot info it passes)
EXPECTED_LOADER = {"qemu": "osvkit-boot16", "qemu-pvh": "osvkit-pvh",
                   "qemu-fc": "osvkit-vmlinux64", "firecracker": "osvkit-vmlinux64"}

PATHS = (("usr", "usr.img", "qemu"), ("vmlinux", "vmlinux.elf", "qemu-pvh"),
         ("vmlinux", "vmlinux.elf", "qemu-fc"))


@dataclass
class DemoBoot:
    image: str
    kind: str
    vmm: str
    status: str
    reasons: list[str] = field(default_factory=list)
    loader: str | None = None
    entry: str | None = None
    cmdline: str | None = None
    e820_entries: int | None = None
    cpus: int | None = None
    image_ok: bool | None = None
    boot_done_ms: float | None = None
    exit_reason: str | None = None
    check: BootCheck | None = None

    def to_dict(self) -> dict:
        return {"image": self.image, "kind": self.kind, "vmm": self.vmm, "status": self.status,
                "reasons": list(self.reasons), "loader": self.loader, "entry": self.entry,
                "cmdline": self.cmdline, "e820_entries": self.e820_entries, "cpus": self.cpus,
                "image_ok": self.image_ok, "boot_done_ms": self.boot_done_ms,
                "exit_reason": self.exit_reason}


@dataclass
class DemoResult:
    out_dir: str | None
    kept: bool
    artifacts: list[dict]
    boots: list[DemoBoot]
    cmdline: str
    plot: str | None = None

    @property
    def passed(self) -> bool:
        if any(b.status == "fail" for b in self.boots):
            return False
        images = {b.image for b in self.boots}
        return bool(images) and all(any(b.status == "pass" for b in self.boots if b.image == i)
                                    for i in images)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "cmdline": self.cmdline,
                "out_dir": self.out_dir if self.kept else None,
                "artifacts": list(self.artifacts), "boots": [b.to_dict() for b in self.boots],
                "plot": self.plot}

    def describe(self) -> str:
        """The report ``osvkit demo`` prints (:func:`format_result`)."""
        return format_result(self)


def _judge(check: BootCheck, vmm: str, cmdline: str) -> DemoBoot:
    boot = DemoBoot(image=Path(check.image).name, kind=check.kind, vmm=vmm, status=check.status,
                    reasons=list(check.reasons), exit_reason=check.exit_reason, check=check)
    if check.boot_done_s is not None:
        boot.boot_done_ms = round(check.boot_done_s * 1000, 3)
    p = check.probe
    if check.status == "skip" or p is None:
        return boot
    boot.loader = p.get("loader")
    boot.entry = p.get("entry")
    boot.cmdline = p.get("cmdline")
    boot.e820_entries = len(p.get("e820") or [])
    boot.cpus = p.get("cpus")
    boot.image_ok = p.get("image_ok")
    problems = []
    want = EXPECTED_LOADER.get(vmm)
    if want and boot.loader != want:
        problems.append(f"loader is {boot.loader!r}, expected {want!r}")
    if boot.cmdline is None or not boot.cmdline.startswith(cmdline):
        problems.append(f"cmdline is {boot.cmdline!r}, expected it to start with {cmdline!r}")
    if not boot.e820_entries:
        problems.append("no e820 entries reported")
    if problems:
        boot.reasons.extend(problems)
        boot.status = "fail"
    return boot


def run_demo(out_dir: str | os.PathLike | None = None, *,
             flags: Mapping[str, Any] | None = None, plot: str | os.PathLike | None = None,
             env: Mapping[str, str] | None = None, cmdline: str = DEMO_CMDLINE) -> DemoResult:
    """Build the conformance kernel into ``usr.img`` and ``vmlinux.elf`` (in ``out_dir``, or a
    temporary directory removed afterwards) and boot every path."""
    from .buildfile import _build_usr, _build_vmlinux, _probe_bytes
    from .fileio import write_atomic

    from .verify import check_plot_path

    opts = resolve_options(flags, None, env=env)
    check_plot_path(plot)          # before building and booting, not after
    kept = out_dir is not None
    out = Path(out_dir) if kept else Path(tempfile.mkdtemp(prefix="osvkit-demo-"))
    if kept:
        if out.exists() and not out.is_dir():
            raise OutputError("is not a directory", path=out,
                              expected="a directory for the demo's files")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the directory: {exc.strerror}", path=out) from None
    try:
        kernel = out / "probe.elf"
        data = _probe_bytes(None)
        write_atomic(kernel, data)
        artifacts = [{"path": "probe.elf", "kind": "kernel", "size": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()}]
        built: dict[str, Path] = {}
        errors: dict[str, str] = {}
        for kind, name, builder in (("usr", "usr.img", "usr"), ("vmlinux", "vmlinux.elf", "vm")):
            target = out / name
            try:
                if builder == "usr":
                    _build_usr(kernel, target, cmdline=cmdline, image_format="raw",
                               partition=None)
                else:
                    _build_vmlinux(kernel, target, cmdline=cmdline)
            except OsvkitError as exc:
                errors[kind] = str(exc)
                log.warning("demo: cannot build %s: %s", name, exc)
                continue
            built[kind] = target
            blob = target.read_bytes()
            artifacts.append({"path": name, "kind": kind, "size": len(blob),
                              "sha256": hashlib.sha256(blob).hexdigest()})
        boots: list[DemoBoot] = []
        for kind, name, vmm in PATHS:
            if kind not in built:
                boots.append(DemoBoot(image=name, kind=kind, vmm=vmm, status="fail",
                                      reasons=[f"not built: {errors.get(kind)}"]))
                continue
            req = BootRequest(image=built[kind], name=name, kind=kind, vmms=(vmm,),
                              explicit_vmms=(vmm == "qemu"), memory=opts["memory"],
                              cpus=opts["cpus"], timeout=opts["timeout"], accel=opts["accel"],
                              cmdline=cmdline if kind == "vmlinux" else None, expect=None,
                              fail_patterns=FAILURE_PATTERNS, probe=True)
            log.info("demo: booting %s with %s", name, vmm)
            boots.append(_judge(boot_once(req, vmm), vmm, cmdline))
        result = DemoResult(out_dir=os.fspath(out), kept=kept, artifacts=artifacts, boots=boots,
                            cmdline=cmdline)
        if plot is not None:
            from .plot import Phase, TimelineRow, plot_timeline
            rows = [TimelineRow(f"{b.image} ({b.vmm})",
                                [Phase(*p) for p in b.check.phases_ms()],
                                note=b.status.upper())
                    for b in boots if b.check is not None and b.status != "skip"]
            plot_timeline(rows, plot, title="osvkit demo")
            result.plot = os.fspath(plot)
        return result
    finally:
        if not kept:
            shutil.rmtree(out, ignore_errors=True)


def format_result(result: DemoResult) -> str:
    lines = [f"osvkit demo: the conformance kernel, command line {result.cmdline!r}"]
    for a in result.artifacts:
        lines.append(f"  built {a['path']:12} {a['size']:>9} bytes  sha256 {a['sha256'][:16]}...")
    lines.append("")
    lines.append(f"  {'image':12} {'vmm':9} {'result':6} {'loader':17} {'e820':>4} {'cpus':>4} "
                 f"{'image_ok':8} {'boot-done':>10}")
    for b in result.boots:
        done = f"{b.boot_done_ms:.1f} ms" if b.boot_done_ms is not None else "-"
        lines.append(f"  {b.image:12} {b.vmm:9} {b.status.upper():6} {str(b.loader):17} "
                     f"{'-' if b.e820_entries is None else b.e820_entries:>4} "
                     f"{'-' if b.cpus is None else b.cpus:>4} {str(b.image_ok):8} {done:>10}")
        if b.cmdline is not None:
            lines.append(f"      cmdline: {b.cmdline!r}")
        for r in b.reasons:
            lines.append(f"      {r}")
    lines.append("")
    lines.append("PASSED: every boot path saw the probe intact" if result.passed
                 else "FAILED: see the reasons above")
    if result.kept:
        lines.append(f"files in {result.out_dir}")
    if result.plot:
        lines.append(f"timeline: {result.plot}")
    return "\n".join(lines)
