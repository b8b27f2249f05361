"""Print how fast the probe builds and how its payload compresses (FastLZ, 1 MiB segments
as OSv's lz tool cuts them).  Not a test: speed targets live here, not in timed tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastlz  # noqa: E402

from osvkit.probe import build_probe  # noqa: E402

MiB = 1 << 20

for size in (64 * 1024, MiB, 6 * MiB, 40 * MiB):
    t = time.perf_counter()
    data = build_probe(size)
    took = time.perf_counter() - t
    segs = [data[i:i + MiB] for i in range(0, len(data), MiB)]
    packed = sum(len(fastlz.compress(s)) - 4 for s in segs)
    print(f"{size // 1024:>6} KiB: built in {took:.3f} s, FastLZ ratio {packed / len(data):.3f}")
