#!/usr/bin/env python3
"""Benchmark: a usr.img of Debian's ``python3.11`` with its standard library, from nothing.

What is timed is what ``osvkit build KERNEL --app /usr/bin/python3.11 --add
/usr/lib/python3.11 --exclude test --exclude tests --follow-symlinks-anywhere`` does: read the
ELF files, resolve the library closure (of the program and of the extension modules in
lib-dynload), walk the standard library, write the ROFS and the usr.img.  It runs in a fresh
child process (``--reps`` times, best and median kept), timed two ways: inside the child from
before ``import osvkit`` (the build "from nothing", imports included), and the whole child
process (interpreter start-up included).  The kernel is osvkit's conformance kernel, written
once beforehand.  Peak memory is the child's ``ru_maxrss``.

The reference is copying the same files with ``cp`` (the standard library with ``cp -r``, the
program and its libraries with ``cp -L``), then ``sync -f`` (the build fsyncs its output).
Targets: under 1.5 s wall and under 100 MB peak.  Usage:
``python3 bench/app_python.py [--dir DIR] [--reps N]``.
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
PYTHON = "/usr/bin/python3.11"
STDLIB = "/usr/lib/python3.11"
EXCLUDES = ["test", "tests"]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from osvkit.apps import build_host_app_image
r = build_host_app_image(sys.argv[1], sys.argv[2], apps=[sys.argv[3]], adds=[sys.argv[4]],
                         excludes=sys.argv[5].split(","), follow_symlinks_anywhere=True)
dt = time.perf_counter() - t0
kinds = {}
for f in r.tree.files:
    kinds[f.kind] = kinds.get(f.kind, 0) + 1
print(json.dumps({"seconds": dt, "files": r.rofs["files"], "data_bytes": r.rofs["data_bytes"],
                  "image_bytes": r.image.file_size, "kinds": kinds,
                  "sources": sorted({f.source for f in r.tree.files if f.source})}))
"""

WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "p = subprocess.run([sys.executable, '-c', *sys.argv[1:]], check=True, capture_output=True,"
    " text=True)\n"
    "wall = time.perf_counter() - t0\n"
    "d = json.loads(p.stdout)\n"
    "d['process_seconds'] = wall\n"
    "d['peak_rss_kib'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps(d))\n"
)


def run_build(kernel: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", WRAPPER, CHILD, str(kernel), str(out), PYTHON,
                        STDLIB, ",".join(EXCLUDES)], check=True, capture_output=True, env=env,
                       text=True)
    return json.loads(p.stdout)


def run_cp(sources: list[str], dest: Path) -> float:
    """Copy the standard library (cp -r, excludes removed after: they are tiny) and the
    program and its libraries (cp -L), then sync -f."""
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", STDLIB, str(dest / "stdlib")], check=True)
    extra = [s for s in sources if not s.startswith(STDLIB + "/")]
    subprocess.run(["cp", "-L", *extra, str(dest)], check=True)
    subprocess.run(["sync", "-f", str(dest)], check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir in /tmp)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    for p in (PYTHON, STDLIB):
        if not os.path.exists(p):
            print(f"app_python: {p} is not installed (Debian's python3.11)", file=sys.stderr)
            return 69
    work = Path(tempfile.mkdtemp(prefix="app-bench-", dir=args.dir))
    try:
        sys.path.insert(0, str(ROOT))
        from osvkit.probe import build_probe
        kernel = work / "probe.elf"
        kernel.write_bytes(build_probe(None))
        runs, cps = [], []
        for _ in range(args.reps):
            os.sync()
            out = work / "py.img"
            runs.append(run_build(kernel, out))
            out.unlink()
            os.sync()
            dest = work / "copy"
            dest.mkdir()
            cps.append(run_cp(runs[-1]["sources"], dest))
            shutil.rmtree(dest)
        inside = [r["seconds"] for r in runs]
        process = [r["process_seconds"] for r in runs]
        last = runs[-1]
        result = {
            "program": PYTHON, "stdlib": STDLIB, "excludes": EXCLUDES, "reps": args.reps,
            "files": last["files"], "data_MB": round(last["data_bytes"] / 1e6, 1),
            "image_MB": round(last["image_bytes"] / 1e6, 1), "by_kind": last["kinds"],
            "best_s": {"build_in_process": round(min(inside), 3),
                       "build_whole_process": round(min(process), 3),
                       "cp_and_sync": round(min(cps), 3)},
            "median_s": {"build_in_process": round(statistics.median(inside), 3),
                         "build_whole_process": round(statistics.median(process), 3),
                         "cp_and_sync": round(statistics.median(cps), 3)},
            "ratio_build_to_cp": round(min(process) / min(cps), 2),
            "peak_rss_MB": round(max(r["peak_rss_kib"] for r in runs) / 1024, 1),
        }
        print(json.dumps(result))
        verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
        best = result["best_s"]["build_whole_process"]
        print(f"python3.11 image ({result['files']} files, {result['data_MB']} MB): "
              f"< 1.5 s wall: {verdict(best < 1.5)} ({best} s whole process, "
              f"{result['best_s']['build_in_process']} s in process; cp + sync "
              f"{result['best_s']['cp_and_sync']} s, ratio {result['ratio_build_to_cp']}); "
              f"peak < 100 MB: {verdict(result['peak_rss_MB'] < 100)} "
              f"({result['peak_rss_MB']} MB)", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
