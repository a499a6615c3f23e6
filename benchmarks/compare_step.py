"""The yeast-authors pretraining step (or the loss) of one commit against another, side by side in one run.

Usage (from the repository root, data home in MULSUPCON_DATA)::

    .venv/bin/python benchmarks/compare_step.py --before becd68a [--after HEAD]
        [--before-set pretrain.fused_forward=true] [--rounds 5] [--steps 200 1200]
    .venv/bin/python benchmarks/compare_step.py --loss --before becd68a [--after HEAD] [--rounds 5]

``--loss`` times ``MulSupConLoss`` forward + backward (one thread, D = 256, temperature 0.1, queries
with gradient, keys without as in MoCo, labels with 10% ones) at B=64 K=320 C=14 (yeast),
B=256 K=8448 C=80 (COCO) and B=1024 K=65536 C=365 (Objects365-sized), median of several calls per
round, instead of the pretraining step.

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


CHILD_LOSS = r"""
import json, statistics, time, torch
from mulsupcon.losses import MulSupConLoss
torch.set_num_threads(1)
out = []
for (b, k, c), reps in (((64, 320, 14), 200), ((256, 8448, 80), 10), ((1024, 65536, 365), 2)):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(b, 256, generator=g, requires_grad=True)
    keys = torch.randn(k, 256, generator=g)
    y = (torch.rand(b, c, generator=g) < 0.1).to(torch.uint8)
    yk = (torch.rand(k, c, generator=g) < 0.1).to(torch.uint8)
    fn = MulSupConLoss(0.1)
    fn(q, y, keys, yk).backward()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(q, y, keys, yk).backward()
        times.append(time.perf_counter() - t)
    out.append(statistics.median(times))
print(json.dumps(out))
"""
LOSS_SIZES = ("B=64 K=320 C=14", "B=256 K=8448 C=80", "B=1024 K=65536 C=365")


def _time_loss(src: Path) -> list[float]:
    """Median seconds of one loss forward + backward at each of LOSS_SIZES (one fresh process)."""
    proc = subprocess.run([sys.executable, "-c", CHILD_LOSS], env={**os.environ, "PYTHONPATH": str(src)},
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{src}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--loss", action="store_true", help="time the loss at three sizes instead of the step")
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
            if args.loss:
                return _compare_loss(src, args)
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


def _compare_loss(src: dict[str, Path], args: argparse.Namespace) -> None:
    times: dict[str, list[list[float]]] = {k: [] for k in src}
    for r in range(args.rounds):
        for name in (list(src) if r % 2 == 0 else list(reversed(src))):
            times[name].append(_time_loss(src[name]))
        print(f"round {r + 1}: " + "; ".join(f"{k} " + ", ".join(f"{1e3 * t:.1f}" for t in v[-1]) + " ms"
                                            for k, v in times.items()), flush=True)
    print(f"\nMulSupConLoss forward + backward, 1 thread, {args.rounds} rounds taking turns")
    print(f"| size | before ({args.before}) ms | after ({args.after or 'this checkout'}) ms | median ratio |")
    print("|---|---:|---:|---:|")
    for i, size in enumerate(LOSS_SIZES):
        b = [t[i] for t in times["before"]]
        a = [t[i] for t in times["after"]]
        ratio = statistics.median(x / y for x, y in zip(a, b))
        print(f"| {size} | {1e3 * statistics.median(b):.2f} | {1e3 * statistics.median(a):.2f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
