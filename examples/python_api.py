#!/usr/bin/env python3
"""osvkit from Python: declare images, build them reproducibly, boot-verify them, plot.

    python examples/python_api.py [WORKDIR]        # a readable report
    python examples/python_api.py --test [WORKDIR] # stable lines only (compared by the tests
                                                   # with examples/reference_output/python_api.out)

Needs QEMU (qemu-system-x86_64, qemu-img) for the boots and the vmdk conversion.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import osvkit

BUILD_FILE = """\
spec = 1

[options]
memory = "128M"
timeout = 30

[[image]]
name = "hello"
kernel = "probe"                        # osvkit's built-in conformance kernel
cmdline.options = ["--verbose"]
cmdline.app = ["/hello", "from Python"]
[image.outputs]
usr = "out/hello.img"
vmlinux = "out/hello.elf"
firecracker-config = "out/hello-fc.json"
vmdk = "out/hello.vmdk"
"""

# What OSv prints with --bootchart (a sample; the conformance kernel prints a probe report)
SAMPLE_CONSOLE = "OSv v0.57.0\n\tdisk read (real mode): 58.62ms, (+58.62ms)\n" \
                 "\tuncompress lzloader.elf: 60.20ms, (+1.58ms)\n\tTotal time: 178.15ms, (+117.95ms)\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", nargs="?", help="where to write (default: a temporary directory)")
    ap.add_argument("--test", action="store_true", help="print only stable lines")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="osvkit-example-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "osvkit.toml").write_text(BUILD_FILE)

    # 1. the build file, validated against the published schema
    bf = osvkit.load_build_file(work / "osvkit.toml")
    image = bf.images[0]
    print(f"image {image.name}: kernel {image.kernel}, cmdline {str(image.cmdline)!r}")

    # 2. options: flag > OSVKIT_* environment > build file > default
    opts = bf.resolve(image, flags={"cpus": "2"}, env={"OSVKIT_MEMORY": "256M"})
    for name in ("memory", "cpus", "timeout"):
        print(f"option {name} = {opts[name]} (from {opts.sources[name]})")

    # 3. build everything, twice: the outputs and the manifest are byte-identical
    first = osvkit.build_from_file(work / "osvkit.toml", env={})
    manifest1 = (work / "osvkit-manifest.json").read_bytes()
    osvkit.build_from_file(work / "osvkit.toml", env={})
    same = manifest1 == (work / "osvkit-manifest.json").read_bytes()
    for out in first.outputs:
        line = f"built {out['kind']} {out['path']} ({out['format']})"
        print(line if args.test else f"{line} {out['size']} bytes sha256 {out['sha256'][:12]}")
    print(f"rebuild identical: {same}")

    # 4. boot every usr/vmlinux output and judge the consoles
    result = osvkit.verify_build_file(work / "osvkit.toml", plot=work / "boot.svg")
    for boot in result.checks:
        probe = boot.probe or {}
        line = f"boot {boot.name} with {boot.vmm}: {boot.status}, loader {probe.get('loader')}"
        if not args.test and boot.boot_done_s is not None:
            line += f", boot-done {boot.boot_done_s * 1000:.1f} ms"
        print(line)
    print(f"verify passed: {result.passed}")

    # 5. OSv's boot timing from a console
    timing = osvkit.parse_bootchart(SAMPLE_CONSOLE)
    print("bootchart:", ", ".join(f"{p.name} +{p.delta_ms}ms" for p in timing.phases))
    if not args.test:
        print(f"files in {work}; timeline in {work / 'boot.svg'}")
        print(json.dumps(result.summary()))
    return 0 if result.passed and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
