"""Peak memory and time of reading a large CSV with ``mulsupcon.data.formats.read_csv``.

Usage::

    python benchmarks/csv_memory.py [--work DIR] [--src SRC ...]

Two files are written once into ``--work`` (default ``runs/csv_memory``): a wide one (2,000 rows x
20,000 0/1 columns + 20 labels, 80 MB, like a bag of words) and a tall one (200,000 rows x 100
features with 6 decimals + 10 labels, 150 MB). Each file is read in a fresh process per source tree
named by ``--src`` (default: this checkout's ``src``), so that trees can be compared side by side in
one run (``git worktree add /tmp/old REV`` gives an old one). A row reports the process's peak
resident memory (``ru_maxrss``) less its resident memory after the imports, the size of the dataset's
arrays, and the wall time of the read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# Run in the child: import, note the memory, read, report.
CHILD = """
import json, resource, sys, time
from mulsupcon.data.formats import read_csv
def rss_mb():  # the current resident memory, from /proc (ru_maxrss only gives the peak)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
before = rss_mb()
t = time.perf_counter()
ds = read_csv(sys.argv[1], int(sys.argv[2]))
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
arrays = (ds.features.nbytes + ds.labels.nbytes) / 2**20
print(json.dumps({"extra_mb": peak - before, "arrays_mb": arrays, "wall_s": wall, "shape": list(ds.features.shape)}))
"""


def make_files(work: Path) -> list[tuple[Path, int]]:
    """The two CSVs (written once) and their label counts."""
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    wide, tall = work / "wide.csv", work / "tall.csv"
    if not wide.exists():
        x = (rng.random((2000, 20020)) < 0.01).astype(np.uint8)
        header = ",".join([f"w{j}" for j in range(20000)] + [f"l{j}" for j in range(20)])
        np.savetxt(wide, x, fmt="%d", delimiter=",", header=header, comments="")
    if not tall.exists():
        x = rng.standard_normal((200_000, 100))
        y = (rng.random((200_000, 10)) < 0.2).astype(np.float64)
        header = ",".join([f"f{j}" for j in range(100)] + [f"l{j}" for j in range(10)])
        np.savetxt(tall, np.hstack([x, y]), fmt=["%.6f"] * 100 + ["%d"] * 10, delimiter=",", header=header,
                   comments="")
    return [(wide, 20), (tall, 10)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="runs/csv_memory", help="where the CSVs are written (once)")
    ap.add_argument("--src", nargs="+", default=[str(HERE.parent / "src")],
                    help="source trees (folders holding the mulsupcon package) to compare")
    args = ap.parse_args(argv)
    files = make_files(Path(args.work))
    print("| file | MB on disk | source | shape | arrays MB | peak extra MB | peak / arrays | read s |")
    print("|---|---|---|---|---|---|---|---|")
    for path, n_labels in files:
        for src in args.src:
            env = dict(os.environ, PYTHONPATH=src)
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(n_labels)], env=env,
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {path.name} | {path.stat().st_size / 2**20:.0f} | {src} | {r['shape'][0]} x {r['shape'][1]} | "
                  f"{r['arrays_mb']:.0f} | {r['extra_mb']:.0f} | {r['extra_mb'] / r['arrays_mb']:.1f} | "
                  f"{r['wall_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
