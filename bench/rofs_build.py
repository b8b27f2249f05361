#!/usr/bin/env python3
"""Benchmark ``build_rofs`` against ``cp -r`` of the same tree, on the same disk, in one run.

Two trees: 10,000 small files (1-8 KiB, in 100 directories) and a few large files (2 GB in
total).  For each, in alternating order (``--reps`` times, best time kept):

* ``cp -r TREE COPY`` and ``cp -r TREE COPY && sync -f COPY`` (``build_rofs`` fsyncs its
  output before the rename, so the second is the like-for-like figure);
* every timed run starts after ``sync`` so that none pays for another's writeback, and with
  the source tree in the same state for all: written just before the first run, so it is in
  the page cache (nothing drops it) for every run of every kind;
* ``build_rofs`` in a child process (``python -c``), timed inside the child (no interpreter
  start-up or imports: those have a target of their own), its peak memory from
  ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``.

Throughput (best run) is file bytes / seconds; medians are printed too, since the disk may be
shared.  ``build_rofs_without_fsync`` (os.fsync stubbed out in the child) is informational: it
shows what the output's durability costs next to cp, which does not fsync.  Also
informational: ``build_rofs_whole_process`` (the child's wall clock seen from here, with the
interpreter's start-up and osvkit's imports, as cp's and sync's times include theirs) and
its ratio, and the peak of the page cache's Dirty + Writeback (/proc/meminfo, above its value
at the start) during ``cp -r + sync`` and ``build_rofs``: what each leaves for the disk to
catch up with.  Targets: at least 1.0x the throughput of ``cp -r`` followed by ``sync`` (the
like-for-like figure: both end with the data on disk), peak memory under 100 MB.  The ratio
to a bare ``cp -r`` (best and median) is printed for information, without a verdict: the
copy leaves its data in the page cache, unwritten (about the whole tree, the Dirty +
Writeback column shows), while ``build_rofs`` writes the image to disk as it goes; the
like-for-like figure above replaced it as the target.  Usage: ``python3 bench/rofs_build.py [--dir DIR] [--reps N]
[--large-gb G] [--small-files N]``.
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, time
from osvkit.rofs import build_rofs
if len(sys.argv) > 4 and sys.argv[4] == "nofsync":
    os.fsync = lambda fd: None   # informational only: what the durability costs
t0 = time.perf_counter()
r = build_rofs(sys.argv[1], sys.argv[2], manifest_root=sys.argv[3])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "data_bytes": r.data_bytes, "size": r.size}))
"""


def make_small(root: Path, n: int = 10_000) -> int:
    block = os.urandom(8192)
    total = 0
    for i in range(n):
        d = root / f"d{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        size = 1024 + (i * 7919) % 7168
        (d / f"f{i:05d}").write_bytes(block[:size])
        total += size
    return total


def make_large(root: Path, total_gb: float, files: int = 4) -> int:
    root.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    per = int(total_gb * 1e9) // files
    total = 0
    for i in range(files):
        with open(root / f"big{i}", "wb") as f:
            left = per
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
        total += per
    return total


def time_cmd(argv, cwd=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd)
    return time.perf_counter() - t0


def run_build(manifest: Path, out: Path, root: Path, mode: str = "fsync") -> tuple[float, float]:
    """Run build_rofs in a fresh child; return the seconds it took inside the child and the
    child's whole wall clock (start-up and imports included)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, str(manifest), str(out), str(root), mode],
                       check=True, capture_output=True, env=env, text=True)
    return json.loads(p.stdout)["seconds"], time.perf_counter() - t0


class DirtyPeak:
    """The peak of Dirty + Writeback in /proc/meminfo (MB above the value at the start)
    while the ``with`` body runs, sampled every 5 ms; None where /proc/meminfo is absent."""

    def __enter__(self):
        self.peak = self.start = self._now()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        if self.start is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        if self.start is not None:
            self.thread.join()

    @staticmethod
    def _now():
        try:
            with open("/proc/meminfo") as f:
                fields = dict(line.split(":", 1) for line in f)
        except OSError:
            return None
        return sum(int(fields[k].split()[0]) for k in ("Dirty", "Writeback")) / 1024

    def _sample(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, self._now())

    @property
    def mb(self):
        return None if self.start is None else round(self.peak - self.start, 1)


def measure_rss(manifest: Path, out: Path, root: Path) -> int:
    """Peak RSS (KiB) of a child that runs only build_rofs, via a wrapper process whose
    RUSAGE_CHILDREN holds nothing else."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', sys.argv[1], *sys.argv[2:]], check=True,"
        " stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", wrapper, CHILD, str(manifest), str(out), str(root)],
                       check=True, capture_output=True, env=env, text=True)
    return int(p.stdout.strip())


def bench(name: str, tree: Path, data_bytes: int, work: Path, reps: int) -> dict:
    manifest = work / f"{name}.manifest"
    manifest.write_text(f"/data/**: {tree.name}/**\n")
    out = work / f"{name}.img"
    cp_s, cps_s, ours_s, nofsync_s, whole_s = [], [], [], [], []
    dirty = {"cp_r_sync": 0.0, "build_rofs": 0.0}
    dest = work / f"{name}-copy"

    def cp_only():
        cp_s.append(time_cmd(["cp", "-r", str(tree), str(dest)]))
        shutil.rmtree(dest)

    def cp_sync():
        with DirtyPeak() as d:
            t0 = time.perf_counter()
            subprocess.run(["cp", "-r", str(tree), str(dest)], check=True)
            subprocess.run(["sync", "-f", str(dest)], check=True)
            cps_s.append(time.perf_counter() - t0)
        dirty["cp_r_sync"] = d.mb if d.mb is None else max(dirty["cp_r_sync"], d.mb)
        shutil.rmtree(dest)

    def ours():
        with DirtyPeak() as d:
            inside, whole = run_build(manifest, out, tree.parent)
        dirty["build_rofs"] = d.mb if d.mb is None else max(dirty["build_rofs"], d.mb)
        ours_s.append(inside)
        whole_s.append(whole)
        out.unlink()

    def ours_nofsync():
        nofsync_s.append(run_build(manifest, out, tree.parent, "nofsync")[0])
        out.unlink()

    runs = [cp_only, cp_sync, ours, ours_nofsync]
    for rep in range(reps):
        # each rep in another order: none always runs first, or always after another's
        # deletion, so the order favours nobody
        for run in runs[rep % len(runs):] + runs[:rep % len(runs)]:
            os.sync()   # every run starts with no dirty pages left by the previous one
            run()
    rss_kib = measure_rss(manifest, out, tree.parent)
    out.unlink()
    mb = data_bytes / 1e6
    cp, cps, ours = min(cp_s), min(cps_s), min(ours_s)
    return {
        "tree": name, "data_MB": round(mb, 1), "reps": reps,
        "median_s": {"cp_r": round(statistics.median(cp_s), 3),
                     "cp_r_sync": round(statistics.median(cps_s), 3),
                     "build_rofs": round(statistics.median(ours_s), 3),
                     "build_rofs_without_fsync": round(statistics.median(nofsync_s), 3),
                     "build_rofs_whole_process": round(statistics.median(whole_s), 3)},
        "best_s": {"cp_r": round(cp, 3), "cp_r_sync": round(cps, 3), "build_rofs": round(ours, 3),
                   "build_rofs_without_fsync": round(min(nofsync_s), 3),
                   "build_rofs_whole_process": round(min(whole_s), 3)},
        "cp_r_MBps": round(mb / cp, 1), "cp_r_sync_MBps": round(mb / cps, 1),
        "build_rofs_MBps": round(mb / ours, 1),
        "ratio_vs_cp_r": round(cp / ours, 3), "ratio_vs_cp_r_sync": round(cps / ours, 3),
        "ratio_vs_cp_r_sync_median": round(statistics.median(cps_s) / statistics.median(ours_s), 3),
        "ratio_vs_cp_r_median": round(statistics.median(cp_s) / statistics.median(ours_s), 3),
        "ratio_whole_process_vs_cp_r_sync": round(cps / min(whole_s), 3),
        "build_rofs_peak_rss_MB": round(rss_kib / 1024, 1),
        "peak_dirty_writeback_MB": dirty,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir in /tmp)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--large-gb", type=float, default=2.0)
    ap.add_argument("--small-files", type=int, default=10_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rofs-bench-", dir=args.dir))
    try:
        results = []
        small = work / "small"
        results.append(bench("small", small, make_small(small, args.small_files), work, args.reps))
        shutil.rmtree(small)
        large = work / "large"
        results.append(bench("large", large, make_large(large, args.large_gb), work, args.reps))
        for r in results:
            print(json.dumps(r))
        for r in results:
            verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
            print(f"{r['tree']}: >= 1.0x cp -r + sync: {verdict(r['ratio_vs_cp_r_sync'] >= 1.0)} "
                  f"({r['ratio_vs_cp_r_sync']}x; median {r['ratio_vs_cp_r_sync_median']}x, "
                  f"whole process {r['ratio_whole_process_vs_cp_r_sync']}x); "
                  f"peak < 100 MB: {verdict(r['build_rofs_peak_rss_MB'] < 100)} "
                  f"({r['build_rofs_peak_rss_MB']} MB); informational, bare cp -r (its data "
                  f"left in the page cache): {r['ratio_vs_cp_r']}x best, "
                  f"{r['ratio_vs_cp_r_median']}x median", file=sys.stderr)
        print(f"load average: {' '.join(open('/proc/loadavg').read().split()[:3])}"
              if os.path.exists("/proc/loadavg") else "", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
