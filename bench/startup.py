"""Print how long osvkit's quick commands take to start, against the interpreter's own start-up.

Every command runs as a fresh process; ``python3 -c pass`` is measured in the same run,
interleaved with the commands (so a busy machine slows both alike), and each figure is the
median of ``--runs`` runs.  The target: ``osvkit --version``, ``--help``, ``cmdline get`` and
``cmdline set`` (raw and qcow2, on a 2 GiB sparse image) within 60 ms of ``python3 -c pass``.
Not a test: speed targets live here, not in timed tests.  The commands run with their
``.pyc`` files written (``PYTHONDONTWRITEBYTECODE`` is removed from their environment), as
an installed osvkit has them.

    python3 bench/startup.py [--runs 15] [--importtime]

``--importtime`` also prints the slowest imports of ``osvkit --version`` and
``osvkit cmdline get`` (``python3 -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 60.0
SIZE = "2G"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # measure start-up as installed (pip writes the .pyc files): without this, a shell with
    # PYTHONDONTWRITEBYTECODE=1 recompiles every osvkit module on every run (~20 ms)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _osvkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "osvkit", *args]


def _images(tmp: Path) -> dict[str, Path]:
    """A 2 GiB raw and a 2 GiB qcow2 usr.img built from the conformance kernel."""
    env = _env()
    kernel = tmp / "probe.elf"
    subprocess.run(_osvkit("probe", "-o", str(kernel)), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    out = {}
    for fmt in ("raw", "qcow2"):
        path = tmp / f"usr-{fmt}.img"
        subprocess.run(_osvkit("build", str(kernel), "-o", str(path), "--size", SIZE,
                               "--image-format", fmt, "--cmdline", "--rootfs=rofs /hello"),
                       check=True, env=env, stdout=subprocess.DEVNULL)
        out[fmt] = path
    return out


def _time(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall-clock ms, CPU ms) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace').strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took * 1000.0, cpu * 1000.0


def _importtime(argv: list[str], env: dict, top: int = 12) -> None:
    argv = [argv[0], "-X", "importtime", *argv[1:]]
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = line.split("|")
            try:
                rows.append((int(parts[1]), parts[2].rstrip()))
            except ValueError:
                continue
    print(f"\nslowest imports (cumulative us) of: {' '.join(argv[3:])}")
    for cumulative, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative:>8}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    env = _env()
    with tempfile.TemporaryDirectory(prefix="osvkit-startup-") as tmp:
        images = _images(Path(tmp))
        cases = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "osvkit --version": _osvkit("--version"),
            "osvkit --help": _osvkit("--help"),
        }
        for fmt, path in images.items():
            cases[f"cmdline get ({fmt}, {SIZE})"] = _osvkit("cmdline", "get", str(path))
            cases[f"cmdline set ({fmt}, {SIZE})"] = _osvkit("cmdline", "set", str(path), "--",
                                                           "--rootfs=rofs /hello world")
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for name, argv in cases.items():      # warm the page cache and .pyc files
            _time(argv, env)
        for _ in range(args.runs):
            for name, argv in cases.items():
                samples[name].append(_time(argv, env))
        base = statistics.median(w for w, _ in samples["python3 -c pass"])
        base_cpu = statistics.median(c for _, c in samples["python3 -c pass"])
        print(f"median of {args.runs} runs each, interleaved; target: within {TARGET_MS:.0f} ms "
              f"of python3 -c pass (wall clock); load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs")
        print(f"{'command':<28} {'wall ms':>8} {'delta':>7} {'ratio':>6}   {'cpu ms':>7} "
              f"{'delta':>7}  target")
        failed = 0
        for name, values in samples.items():
            med = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            delta = med - base
            ok = name == "python3 -c pass" or delta <= TARGET_MS
            failed += not ok
            print(f"{name:<28} {med:>8.1f} {delta:>7.1f} {med / base:>6.2f}   {cpu:>7.1f} "
                  f"{cpu - base_cpu:>7.1f}  "
                  f"{'-' if name == 'python3 -c pass' else ('met' if ok else 'MISSED')}")
        if args.importtime:
            _importtime(cases["osvkit --version"], env)
            _importtime(cases[f"cmdline get (qcow2, {SIZE})"], env)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
