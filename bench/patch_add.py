#!/usr/bin/env python3
"""Benchmark ``osvkit patch --add`` of one small file against a full ``osvkit build``.

The image: the conformance kernel (1 MiB) and a ROFS of about 60 MB in about 1,400 files
(sizes from 1 KiB to 200 KiB, in 40 directories).  Both commands run as ``python -m
osvkit`` children (interpreter start-up included in both), raw and qcow2, alternating,
``--reps`` times after a ``sync``; the best and median wall times are printed, and the
peak memory of one patch run (``RUSAGE_CHILDREN`` of a wrapper process that runs only it).
The patch rebuilds the ROFS from the old image's tree plus the new file, streaming the old
files out of the image a range at a time.  Target: patch time <= build time (ratio
build/patch >= 1.0).  Usage: ``python3 bench/patch_add.py [--dir DIR] [--reps N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def make_tree(root: Path, files: int = 1400, total: int = 60_000_000) -> int:
    block = os.urandom(256 * 1024)
    weights = [1 + (i * 7919) % 200 for i in range(files)]
    scale = total / sum(weights)
    written = 0
    for i, w in enumerate(weights):
        d = root / f"d{i % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        size = max(1024, min(len(block), int(w * scale)))
        (d / f"f{i:04d}.bin").write_bytes(block[i % 1024:i % 1024 + size])
        written += size
    return written


def osvkit(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "osvkit", "-q", *args], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def peak_rss_mb(*args: str) -> float:
    wrapper = ("import resource, subprocess, sys\n"
               "subprocess.run([sys.executable, '-m', 'osvkit', '-q', *sys.argv[1:]], check=True,"
               " stdout=subprocess.DEVNULL)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    p = subprocess.run([sys.executable, "-c", wrapper, *args], check=True, capture_output=True,
                       env=ENV, text=True)
    return round(int(p.stdout.strip()) / 1024, 1)


def bench(work: Path, kernel: Path, manifest: Path, fmt: str, reps: int) -> dict:
    img, out = work / f"usr.{fmt}", work / f"patched.{fmt}"
    small = work / "small.conf"
    small.write_text("key=value\n")
    build_args = ["build", str(kernel), "--format", "usr", "--manifest", str(manifest),
                  "--cmdline", "/x", "--image-format", fmt]
    patch_args = ["patch", str(img), "--add", f"{small}:/etc/small.conf", "-o", str(out)]
    osvkit(*build_args, "-o", str(img))
    builds, patches = [], []
    for _ in range(reps):
        os.sync()
        builds.append(osvkit(*build_args, "-o", str(work / f"fresh.{fmt}")))
        os.sync()
        patches.append(osvkit(*patch_args))
    rss = peak_rss_mb(*patch_args)
    b, p = min(builds), min(patches)
    return {"image_format": fmt, "reps": reps,
            "best_s": {"build": round(b, 3), "patch_add": round(p, 3)},
            "median_s": {"build": round(statistics.median(builds), 3),
                         "patch_add": round(statistics.median(patches), 3)},
            "ratio_build_over_patch": round(b / p, 3), "patch_peak_rss_MB": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir in /tmp)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from osvkit.probe import build_probe

    work = Path(tempfile.mkdtemp(prefix="patch-bench-", dir=args.dir))
    try:
        tree = work / "tree"
        data = make_tree(tree)
        kernel = work / "probe.elf"
        kernel.write_bytes(build_probe(1 << 20))
        manifest = work / "usr.manifest"
        manifest.write_text(f"/data/**: {tree}/**\n")
        nfiles = sum(len(f) for _, _, f in os.walk(tree))
        print(json.dumps({"files": nfiles, "data_MB": round(data / 1e6, 1)}))
        formats = ["raw"] + (["qcow2"] if shutil.which("qemu-img") else [])
        for fmt in formats:
            r = bench(work, kernel, manifest, fmt, args.reps)
            print(json.dumps(r))
            ok = "met" if r["ratio_build_over_patch"] >= 1.0 else "NOT met"
            print(f"{fmt}: patch --add not slower than build: {ok} "
                  f"(build/patch {r['ratio_build_over_patch']}x; patch peak "
                  f"{r['patch_peak_rss_MB']} MB)", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
