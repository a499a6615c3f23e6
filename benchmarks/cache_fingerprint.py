"""Cost of keying the image cache on file contents (sha256 of every image) against size + mtime.

    .venv/bin/python benchmarks/cache_fingerprint.py [--synthetic-mb 512]

Prints, side by side in one run, the time of `image_cache._fingerprint` (content) and of a stat-only
fingerprint over (a) the COCO subsets in MULSUPCON_DATA when present and (b) a synthetic folder of
random 160 KB files (COCO's mean JPEG size) totalling --synthetic-mb, read from the page cache.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mulsupcon.data.image_cache import _fingerprint
from mulsupcon.data.image_layouts import ImageList


def stat_fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def best_of(fn, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def row(name: str, paths: list[Path]) -> None:
    images = ImageList(paths=paths, labels=np.zeros((len(paths), 1), np.uint8), label_names=["x"], source=name)
    total = sum(p.stat().st_size for p in paths)
    stat_fingerprint(paths), _fingerprint(images, 224)  # warm the page cache
    t_stat = best_of(lambda: stat_fingerprint(paths))
    t_content = best_of(lambda: _fingerprint(images, 224))
    print(f"{name:28s} {len(paths):7d} {total / 1e6:9.1f} {t_stat * 1e3:9.2f} {t_content * 1e3:11.1f} "
          f"{total / t_content / 1e9:9.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic-mb", type=int, default=512)
    args = ap.parse_args()
    print(f"{'files':28s} {'count':>7s} {'MB':>9s} {'stat ms':>9s} {'content ms':>11s} {'GB/s':>9s}")
    home = os.environ.get("MULSUPCON_DATA")
    if home:
        coco = sorted(Path(p) for p in glob.glob(f"{home}/coco-*/**/*.jpg", recursive=True))
        if coco:
            row("COCO subsets (real JPEGs)", coco)
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        n = max(1, args.synthetic_mb * 1_000_000 // 160_000)
        paths = []
        for k in range(n):
            p = Path(d) / f"{k}.jpg"
            p.write_bytes(rng.integers(0, 256, 160_000, dtype=np.uint8).tobytes())
            paths.append(p)
        row(f"synthetic {args.synthetic_mb} MB", paths)


if __name__ == "__main__":
    main()
