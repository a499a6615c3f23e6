"""Trials of new defaults against the shipped ones, from `mulsupcon benchmark vectors` work folders.

    mulsupcon benchmark vectors --datasets medical flags --methods mulsupcon-finetune mulsupcon-probe bce sklearn-mlp \
        --work runs/benchmark
    mulsupcon benchmark vectors --datasets medical flags --methods mulsupcon-finetune mulsupcon-probe \
        --set pretrain.momentum=0.99 --work runs/trial-momentum
    python benchmarks/compare_trials.py runs/benchmark runs/trial-momentum

prints, per dataset, each folder's finetune mAP, its wins (of 6 metrics) against the reference's BCE and
its probe mAP (see mulsupcon.benchmark.compare_trials), and per folder the number of datasets that
meet both of issue 15's targets, the (dataset, seed) pairs that meet both when each seed is judged
alone, and the mean finetune mAP; --seeds 0 1 2 compares on those seeds only; --per-seed adds, for each
folder, the two targets seed by seed (mulsupcon.benchmark.seed_by_seed). A trial that changes only classification can
reuse the reference's backbones: copy runs/benchmark/backbones into its folder first.
"""

import argparse
from pathlib import Path

from mulsupcon.benchmark import compare_trials, seed_by_seed

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", type=Path, help="the work folder run with the shipped config")
    ap.add_argument("trials", type=Path, nargs="*", help="work folders run with --set overrides (none: the reference alone)")
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="only these seeds (default: all found)")
    ap.add_argument("--per-seed", action="store_true", help="also each folder's targets seed by seed")
    args = ap.parse_args()
    print(compare_trials(args.reference, args.trials, args.datasets, args.seeds), end="")
    if args.per_seed:
        for work in [args.reference, *args.trials]:
            print("\n" + seed_by_seed(args.reference, work, args.datasets, args.seeds), end="")
