"""Forward+backward time of the MulSupCon loss vs the paper-literal algorithm and the unavoidable work (CPU).

Usage: ``PYTHONPATH=src python benchmarks/loss_speed.py [--reps 21] [--threads 1] [--stat median|min]``

For each configuration (MoCo mode: K = batch keys + queue) it prints the median time of one forward+backward of
* ours        : ``MulSupConLoss(positives="mulsupcon")`` (fused, no per-pair rows),
* literal     : one row per (anchor, label) pair (benchmarks/_paper_literal.py),
* unavoidable : the (B, K) score matmul + one log-softmax over it, forward and backward,
and the ratios literal/ours and ours/unavoidable, each the median over rounds of the ratio of two timings taken
back to back (robust to a drifting shared machine). It also checks that ours and literal give the same value.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _paper_literal import make_inputs, paper_literal_loss, unavoidable_work  # noqa: E402

from mulsupcon.losses import MulSupConLoss  # noqa: E402

# (name, B, K, C, D, label density): yeast-like 4.2/14 labels, COCO-like 2.9/80 labels.
CONFIGS = [
    ("yeast-like", 64, 64 + 256, 14, 256, 0.30),
    ("coco-like", 64, 64 + 2048, 80, 256, 2.9 / 80),
    ("coco-like", 256, 256 + 8192, 80, 256, 2.9 / 80),
]


def interleaved_times(fns: dict, reps: int) -> dict:
    """Time every function once per round, ``reps`` rounds (after a warm-up round), so slow phases
    of a shared machine hit all of them alike; returns the per-round seconds of each function."""
    import time

    for f in fns.values():
        f()
    times: dict = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def paired_ratio(num: list, den: list) -> float:
    """Median over rounds of num[r] / den[r]: the two were timed back to back in each round, so the
    machine's drift between rounds cancels (a ratio of two medians mixes different rounds)."""
    return statistics.median(a / b for a, b in zip(num, den))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21, help="timed rounds per configuration")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic of the printed times over the rounds (min: the intrinsic cost on a noisy "
                         "machine); the ratios are always medians of per-round ratios")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared 2-core machine 2 threads time the neighbours)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, times: {args.stat} of {args.reps} interleaved "
          "rounds, ratios: median of per-round ratios; forward+backward, float32, temperature 0.1")
    header = (f"{'data':<11}{'B':>5}{'K':>7}{'C':>5}{'D':>5}{'pairs':>7} | {'ours ms':>9}{'literal ms':>11}"
              f"{'unavoid ms':>11} | {'literal/ours':>12}{'ours/unavoid':>13}")
    print(header)
    print("-" * len(header))
    loss_fn = MulSupConLoss(0.1, positives="mulsupcon")
    for name, b, k, c, d, dens in CONFIGS:
        q, y, keys, yk = make_inputs(b, k, c, d, dens)
        ours_val = loss_fn(q, y, keys, yk).item()
        lit_val = paper_literal_loss(q, y, keys, yk, 0.1).item()
        if abs(ours_val - lit_val) > 1e-4 * max(1.0, abs(lit_val)):
            raise SystemExit(f"value mismatch on {name}: ours {ours_val} vs literal {lit_val}")
        grad_out = torch.randn(b, k)

        def run(f):
            def step():
                q.grad = None
                keys.grad = None
                f()
            return step

        fns = {
            "ours": run(lambda: loss_fn(q, y, keys, yk).backward()),
            "literal": run(lambda: paper_literal_loss(q, y, keys, yk, 0.1).backward()),
            "unavoidable": run(lambda: unavoidable_work(q, keys, grad_out)),
        }
        times = interleaved_times(fns, args.reps)
        pick = statistics.median if args.stat == "median" else min
        t_ours, t_lit, t_min = (pick(times[k]) for k in fns)
        pairs = int(y.sum())
        print(f"{name:<11}{b:>5}{k:>7}{c:>5}{d:>5}{pairs:>7} | {t_ours * 1e3:>9.2f}{t_lit * 1e3:>11.2f}"
              f"{t_min * 1e3:>11.2f} | {paired_ratio(times['literal'], times['ours']):>11.2f}x"
              f"{paired_ratio(times['ours'], times['unavoidable']):>12.2f}x")


if __name__ == "__main__":
    main()
