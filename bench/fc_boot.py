#!/usr/bin/env python3
"""Firecracker-path timings next to the BIOS path's, for one 6 MiB conformance kernel.

Prints (seconds, median of --runs):

* ``osvkit build --format vmlinux`` time (library call, in process) and the usr.img build;
* time to boot-done (byte 123 on port 0x3F0) under qemu-fc (pc), qemu-pvh (pc and microvm)
  and the BIOS path (usr.img on pc), each with the ratio to the BIOS path.

Boots are QEMU TCG; absolute numbers depend on the host -- compare the ratios.
Usage: python3 bench/fc_boot.py [--size 6M] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from osvkit.image.usrimg import build_usr_image, parse_size  # noqa: E402
from osvkit.image.vmlinux import build_vmlinux  # noqa: E402
from osvkit.probe import build_probe  # noqa: E402
from osvkit.run.qemu import run_qemu  # noqa: E402
from osvkit.run.fcloader import run_qemu_fc  # noqa: E402
from osvkit.run.pvh import machine_argv, run_qemu_pvh  # noqa: E402


def _timed(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _boot(fn, runs):
    vals = []
    for _ in range(runs):
        r = fn()
        if r.boot_done is None:
            raise SystemExit(f"no boot-done ({r.exit_reason}):\n{r.console[-1500:]}")
        vals.append(r.boot_done)
    return statistics.median(vals)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="6M")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="osvkit-bench-") as tmp:
        probe = os.path.join(tmp, "probe.elf")
        Path(probe).write_bytes(build_probe(parse_size(args.size)))
        vml = os.path.join(tmp, "vmlinux.elf")
        img = os.path.join(tmp, "usr.img")
        t_vml = _timed(lambda: build_vmlinux(probe, vml), args.runs)
        t_usr = _timed(lambda: build_usr_image(probe, img, cmdline="/x"), args.runs)
        size = os.path.getsize(probe)
        common = dict(cmdline="--nopci /x", memory="256M", timeout=120)
        bios = _boot(lambda: run_qemu(machine_argv("pc", memory="256M", cpus=1)
                                      + ["-drive", f"file={img},format=raw,if=ide"],
                                      timeout=120), args.runs)
        rows = [
            ("qemu-fc (pc)", _boot(lambda: run_qemu_fc(vml, machine="pc", **common), args.runs)),
            ("qemu-fc (microvm)", _boot(lambda: run_qemu_fc(vml, machine="microvm", **common), args.runs)),
            ("qemu-pvh (pc)", _boot(lambda: run_qemu_pvh(vml, machine="pc", **common), args.runs)),
            ("qemu-pvh (microvm)", _boot(lambda: run_qemu_pvh(vml, machine="microvm", **common), args.runs)),
            ("bios usr.img (pc)", bios),
        ]
    print(f"conformance kernel: {size} bytes ({args.size}), median of {args.runs} runs, TCG")
    print(f"build --format vmlinux: {t_vml:8.4f} s   (build --format usr: {t_usr:.4f} s, "
          f"ratio {t_vml / t_usr:.3f})")
    print(f"{'path':22} {'boot-done s':>12} {'vs BIOS':>8}")
    for name, t in rows:
        print(f"{name:22} {t:12.3f} {t / bios:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
