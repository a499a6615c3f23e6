"""The yeast-authors pretraining step of this checkout against another commit, side by side in one run.

Usage (from the repository root, data home in MULSUPCON_DATA)::

    .venv/bin/python benchmarks/compare_step.py --before becd68a [--after HEAD]
        [--before-set pretrain.fused_forward=true] [--rounds 5] [--steps 200 1200]

The commit ``--before`` (and ``--after``, default: the working tree) is checked out into a temporary
git worktree. Each round runs, in a fresh
subprocess per code version and taking turns (this machine drifts by 30% over minutes), the REAL
pretraining loop on config ``yeast-authors`` (batch 64, queue 256, MLP 103-256-512-256 + head,
2 threads) cut after one epoch of S1 and of S2 steps; the per-step time is the difference divided by
S2 - S1, so start-up, data loading and checkpoint writing cancel out. Reported: the median over rounds
of each version's ms/step and the median of the per-round ratio after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
from mulsupcon.config import load_config
from mulsupcon.train.data import prepare_data
from mulsupcon.train.pretrain import pretrain
overrides = json.loads(sys.argv[1]); steps = [int(s) for s in sys.argv[2:]]
cfg = load_config("yeast-authors", overrides)
data = prepare_data(cfg["dataset"])
out = []
for n in [20] + steps:  # the first run warms up (and builds any extension); not timed
    cfg["pretrain"]["steps_per_epoch"] = n
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        pretrain(cfg, Path(tmp) / "run", quiet=True, data=data, stop_after_epochs=1, echo=False)
        out.append(time.perf_counter() - t)
print(json.dumps(out[1:]))
"""


def _parse_set(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def _time(src: Path, overrides: dict, steps: tuple[int, int]) -> float:
    """Seconds per step of the code under ``src`` (one fresh process)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides), *map(str, steps)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{src}: {proc.stderr[-3000:]}")
    t1, t2 = json.loads(proc.stdout.strip().splitlines()[-1])
    return (t2 - t1) / (steps[1] - steps[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="commit to compare against")
    ap.add_argument("--after", default=None, help="commit to measure (default: this checkout's working tree)")
    ap.add_argument("--before-set", nargs="*", default=[], help="config overrides for the old code (key=value)")
    ap.add_argument("--after-set", nargs="*", default=[], help="config overrides for this checkout (key=value)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, nargs=2, default=(200, 1200))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": args.before, "after": args.after}
        for name, rev in trees.items():
            if rev is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(Path(tmp) / name), rev],
                               check=True, capture_output=True)
        try:
            src = {n: (Path(tmp) / n / "src") if rev is not None else REPO / "src" for n, rev in trees.items()}
            versions = {"before": (src["before"], _parse_set(args.before_set)),
                        "after": (src["after"], _parse_set(args.after_set))}
            times: dict[str, list[float]] = {k: [] for k in versions}
            for r in range(args.rounds):
                order = list(versions) if r % 2 == 0 else list(reversed(versions))
                for name in order:
                    times[name].append(_time(*versions[name], tuple(args.steps)))
                print(f"round {r + 1}: " + ", ".join(f"{k} {1e3 * v[-1]:.2f} ms/step" for k, v in times.items()),
                      flush=True)
        finally:
            for name, rev in trees.items():
                if rev is not None:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(Path(tmp) / name)],
                                   check=False)
    ratios = [a / b for a, b in zip(times["after"], times["before"])]
    a, _, c = os.getloadavg()
    print(f"\nyeast-authors pretraining step, {args.rounds} rounds taking turns, load average {a:.2f}/{c:.2f}")
    print("| code | median ms/step | settings |\n|---|---:|---|")
    print(f"| before ({args.before}) | {1e3 * statistics.median(times['before']):.2f} | {args.before_set or 'config'} |")
    print(f"| after ({args.after or 'this checkout'}) | {1e3 * statistics.median(times['after']):.2f} | "
          f"{args.after_set or 'config'} |")
    print(f"median per-round ratio after/before: {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
