"""Where finetuning gains or loses against BCE, label by label, from a `mulsupcon benchmark vectors` work folder.

    mulsupcon benchmark vectors --datasets medical genbase --methods mulsupcon-finetune bce --work runs/full3
    MULSUPCON_DATA=../shared/data python benchmarks/per_label_ap.py runs/full3 --datasets medical genbase

For each dataset and seed it reads the finetuned model's test probabilities that the benchmark kept
(WORK/scores/NAME-finetune-seedS.npz) and BCE's (WORK/scores/NAME-bce-seedS.npz; trained here with the
benchmark's own code and config when missing: it is deterministic on the CPU, so these are the BCE cell's
probabilities). It prints, averaged over seeds, each method's AP per label grouped by the label's number of
training positives, and mAP over the labels that have training positives against those that have none
(their test rows are ranked arbitrarily by every method, yet every label-averaged metric counts them), then,
seed by seed, where the two methods' precision@1 differs: the training positives of the labels each puts on top.
Only default-config work folders (no --set) are read correctly.
"""

from __future__ import annotations

import argparse
import copy
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from sklearn.metrics import average_precision_score

from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, parse_datasets, run_scratch

BINS = [(0, 1), (1, 2), (2, 5), (5, 10), (10, 30), (30, None)]


def label_aps(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AP of each label's column (N, L) -> (L,), NaN where the test rows have no positive."""
    return np.array([average_precision_score(y[:, j], scores[:, j]) if y[:, j].any() else np.nan
                     for j in range(y.shape[1])])


def bce_scores(work: Path, name: str, cfg: dict, data, seed: int) -> Path:
    """WORK/scores/NAME-bce-seedS.npz: BCE's test and validation probabilities for ``seed``, trained here
    with the benchmark's own code and config when missing (deterministic on the CPU: the BCE cell's)."""
    path = work / "scores" / f"{name}-bce-seed{seed}.npz"
    if not path.is_file():
        c = copy.deepcopy(cfg)
        c["seed"] = seed
        run_scratch(c, data, "bce", keep=path)
    return path


def work_datasets(description: str) -> tuple[argparse.Namespace, Iterator[tuple[str, dict, Any]]]:
    """The command line of the scripts that read a benchmark work folder (WORK --datasets ... --seeds ...):
    the parsed arguments, and each dataset as ``(name, config, prepared data)``, its rows as the benchmark's."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("work", type=Path, help="a benchmark work folder with finetune cells (shipped config)")
    ap.add_argument("--datasets", nargs="+", required=True, metavar="NAME|NAME=PATH")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args()

    def each() -> Iterator[tuple[str, dict, Any]]:
        for name, path in parse_datasets(args.datasets).items():
            cfg = benchmark_config(name, "vectors", None, path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the split's warning about labels absent from training
                data = benchmark_data(name, cfg)
            yield name, cfg, data

    return args, each()


def main() -> None:
    args, datasets = work_datasets(__doc__.splitlines()[0])
    for name, cfg, data in datasets:
        parts = arrays(data)
        train_pos, y_test = parts["train"][1].sum(0), parts["test"][1]
        aps = {"finetune": [], "bce": []}
        for s in args.seeds:
            bce_file = bce_scores(args.work, name, cfg, data, s)
            for method, f in (("finetune", args.work / "scores" / f"{name}-finetune-seed{s}.npz"), ("bce", bce_file)):
                aps[method].append(label_aps(np.load(f)["test_scores"], y_test))
        # Every seed has the same test rows (the split does not depend on the seed): NaN in the same columns.
        ft, bce = (np.stack(aps[m]).mean(axis=0) for m in ("finetune", "bce"))
        scored = ~np.isnan(ft)
        print(f"\n{name}: {scored.sum()} labels with test positives, seeds {' '.join(map(str, args.seeds))}")
        print("| training positives | labels | BCE AP | finetune AP | finetune - BCE |\n|---|---|---|---|---|")
        for lo, hi in BINS:
            m = scored & (train_pos >= lo) & (train_pos < (hi if hi is not None else np.inf))
            if m.any():
                label = f"{lo}" if hi == lo + 1 else (f"{lo}+" if hi is None else f"{lo}-{hi - 1}")
                print(f"| {label} | {m.sum()} | {bce[m].mean():.3f} | {ft[m].mean():.3f} | "
                      f"{ft[m].mean() - bce[m].mean():+.3f} |")
        for what, m in (("with training positives", scored & (train_pos > 0)), ("without", scored & (train_pos == 0))):
            if m.any():
                print(f"mAP over the {m.sum()} labels {what}: BCE {bce[m].mean():.4f}, finetune {ft[m].mean():.4f}")
        top1_disagreements(args.work, name, args.seeds, train_pos, y_test)


def top1_split(top_ft: np.ndarray, top_bce: np.ndarray, y: np.ndarray, train_pos: np.ndarray) -> dict[str, float]:
    """Each method's top label per test row, top_ft and top_bce (N,), against the test labels y (N, L) and the
    training positives per label train_pos (L,) -> the rows where only finetuning / only BCE is right, the
    median training positives of the label each put on top on BCE's rows, and how often each put a label
    without training positives on top."""
    rows = np.arange(len(y))
    ft_right, bce_right = y[rows, top_ft] == 1, y[rows, top_bce] == 1
    only_bce = bce_right & ~ft_right
    return {"only_finetune": int((ft_right & ~bce_right).sum()), "only_bce": int(only_bce.sum()),
            "finetune_top_pos": float(np.median(train_pos[top_ft[only_bce]])) if only_bce.any() else np.nan,
            "bce_top_pos": float(np.median(train_pos[top_bce[only_bce]])) if only_bce.any() else np.nan,
            "finetune_unlearnable": int((train_pos[top_ft] == 0).sum()),
            "bce_unlearnable": int((train_pos[top_bce] == 0).sum())}


def top1_disagreements(work: Path, name: str, seeds: list[int], train_pos: np.ndarray, y: np.ndarray) -> None:
    """Prints :func:`top1_split` seed by seed. A method that puts frequent labels on top where the other
    finds the rarer right one loses the per-row metrics."""
    print("| seed | rows: only finetune right / only BCE right | training positives of the top label, "
          "only BCE right: finetune's / BCE's (median) | top label without training positives: finetune / BCE |")
    print("|---|---|---|---|")
    for s in seeds:
        top = {m: np.load(work / "scores" / f"{name}-{m}-seed{s}.npz")["test_scores"].argmax(1) for m in ("finetune", "bce")}
        t = top1_split(top["finetune"], top["bce"], y, train_pos)
        print(f"| {s} | {t['only_finetune']} / {t['only_bce']} | {t['finetune_top_pos']:.0f} / {t['bce_top_pos']:.0f} | "
              f"{t['finetune_unlearnable']} / {t['bce_unlearnable']} |")


if __name__ == "__main__":
    main()
