"""The mean of two finetunes' probabilities, against the mean of two BCE runs: is it the method or the ensemble?

    mulsupcon benchmark vectors --datasets yeast medical --methods mulsupcon-finetune bce sklearn-mlp --work runs/ref
    cp -r runs/ref/backbones runs/vl/
    mulsupcon benchmark vectors --datasets yeast medical --methods mulsupcon-finetune \\
        --set classify.head_init=fit classify.select_by=val_loss --work runs/vl
    python benchmarks/average_finetunes.py runs/ref runs/vl --datasets yeast medical --seeds 0 1 2 --bce-work runs/bce2

Both folders keep each finetune's validation and test probabilities (scores/DATASET-finetune-seedS.npz). BCE
from scratch is trained twice per seed (seeds S and S + 1000, probabilities kept under --bce-work, so a rerun
reuses them). Printed per dataset, means over the seeds under the validation protocol: mAP of BCE, of the mean
of two BCE runs, of the first folder's finetune and of the mean of both folders' finetunes, and the wins (of 6
metrics) of the averaged finetunes against single BCE and against averaged BCE.
"""

import argparse
import copy
from pathlib import Path

import numpy as np

from mulsupcon.benchmark import METRICS, benchmark_config, benchmark_data, run_scratch
from mulsupcon.metrics import evaluate


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def mean_of(a: dict, b: dict) -> dict:
    if not np.array_equal(a["test_targets"], b["test_targets"]):
        raise ValueError("the two runs were scored on different test rows")
    return {**a, "val_scores": (a["val_scores"] + b["val_scores"]) / 2, "test_scores": (a["test_scores"] + b["test_scores"]) / 2}


def scored(z: dict) -> dict[str, float]:
    r = evaluate(z["test_scores"], z["test_targets"], protocol="validation",
                 val_scores=z["val_scores"], val_targets=z["val_targets"])
    return {m: float(r[m]) for m in METRICS}


def wins(a: dict[str, float], b: dict[str, float]) -> int:
    """How many of the six metrics ``a`` is strictly better on (all six are higher-is-better)."""
    return sum(a[m] > b[m] for m in METRICS)


def bce_scores(dataset: str, seed: int, work: Path, cache: dict) -> dict:
    f = work / f"{dataset}-bce-seed{seed}.npz"
    if not f.is_file():
        if dataset not in cache:
            cfg = benchmark_config(dataset)
            cache[dataset] = (cfg, benchmark_data(dataset, cfg))
        cfg, data = cache[dataset]
        c = copy.deepcopy(cfg)
        c["seed"] = seed
        f.parent.mkdir(parents=True, exist_ok=True)
        run_scratch(c, data, "bce", keep=f)
    return load(f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", type=Path, help="work folder of one finetune variant")
    ap.add_argument("second", type=Path, help="work folder of the other")
    ap.add_argument("--datasets", nargs="+", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--bce-work", type=Path, required=True, help="where the BCE probabilities are kept")
    args = ap.parse_args()
    cache: dict = {}
    print("| dataset | BCE | BCE x2 | finetune | finetune x2 | wins of x2 vs BCE | vs BCE x2 |")
    print("|---|---|---|---|---|---|---|")
    for d in args.datasets:
        rows: dict[str, list] = {k: [] for k in ("bce", "bce2", "ft", "ft2")}
        for s in args.seeds:
            a, b = (load(w / "scores" / f"{d}-finetune-seed{s}.npz") for w in (args.first, args.second))
            b1, b2 = bce_scores(d, s, args.bce_work, cache), bce_scores(d, s + 1000, args.bce_work, cache)
            for k, z in (("bce", b1), ("bce2", mean_of(b1, b2)), ("ft", a), ("ft2", mean_of(a, b))):
                rows[k].append(scored(z))
        mean = {k: {m: float(np.mean([r[m] for r in v])) for m in METRICS} for k, v in rows.items()}
        print(f"| {d} | " + " | ".join(f"{mean[k]['mAP']:.3f}" for k in ("bce", "bce2", "ft", "ft2"))
              + f" | {wins(mean['ft2'], mean['bce'])} | {wins(mean['ft2'], mean['bce2'])} |", flush=True)


if __name__ == "__main__":
    main()
