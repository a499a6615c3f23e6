"""Which classification checkpoint rule serves small validation sets? Replays rules on full traces.

For each (dataset, seed) the benchmark's rows (``mulsupcon.benchmark``) are finetuned from a MulSupCon
backbone and trained with BCE from scratch under ``configs/vectors.yaml``, but for all
``classify.epochs`` (no early stop); every epoch records the validation mAP and loss, a bootstrap
standard error of the validation mAP (30 resamples of the validation rows) and the TEST mAP. Each rule
then picks an epoch from the validation columns only (patience 50 as in the config), and the table
reports the test mAP of that epoch: mean over seeds, finetune and BCE, and their difference.

Rules: ``current`` (best validation mAP, ties by validation loss: the shipped rule), ``val_loss``,
``last`` (a fixed budget), ``ma10`` (best 10-epoch moving average of the validation mAP), ``1se``
(the latest epoch within one bootstrap standard error of the best validation mAP: Breiman's one-SE
rule, turned towards later epochs), and ``oracle`` (the best test epoch: no rule can do better).

    MULSUPCON_DATA=../shared/data .venv/bin/python benchmarks/selection_rules.py \
        [--datasets medical foodtruck ...] [--seeds 0 1 2] [--traces runs/selection-traces]

Traces are kept (one JSON per run) so a rerun only replays the rules.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np

from mulsupcon import benchmark as bench
from mulsupcon.metrics import mean_average_precision
from mulsupcon.train.classify import classify, score_split
from mulsupcon.train.rundir import RunDir

PATIENCE = 50
SMALL = ("yeast", "scene", "medical", "genbase", "flags", "cal500", "foodtruck", "yeast-3labels")


def trace(dataset: str, seed: int, method: str, backbones: Path) -> dict:
    """Per-epoch val_mAP, val_loss, val_se (bootstrap) and test_mAP of one full-length run."""
    cfg = bench.benchmark_config(dataset, overrides={"seed": seed, "classify.early_stop_patience": 10**6})
    data = bench.benchmark_data(dataset, cfg)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"val_mAP": [], "val_loss": [], "val_se": [], "test_mAP": []}

    def hook(model, record):
        device = next(model.parameters()).device  # the run's device (a GPU when the config picks one)
        vs, vt, _ = score_split(model, data.val, device)  # again: the record holds the mAP, not the scores
        ts, tt, _ = score_split(model, data.test, device)
        boot = [mean_average_precision(vs[i], vt[i]) for i in (rng.integers(0, len(vs), len(vs)) for _ in range(30))]
        rows["val_mAP"].append(record["val_mAP"])
        rows["val_loss"].append(record["val_loss"])
        rows["val_se"].append(float(np.nanstd(boot)))
        rows["test_mAP"].append(mean_average_precision(ts, tt))

    c = copy.deepcopy(cfg)
    c["eval"]["protocols"] = ["fixed"]
    backbone = None
    if method == "finetune":
        backbone = bench.pretrained_backbone(cfg, data, backbones / f"{dataset}-seed{seed}.pt")
        c["classify"]["mode"] = "finetune"
    else:
        c["classify"].update(mode="scratch", loss="bce")
    classify(c, RunDir.in_memory(), from_run=backbone, data=data, quiet=True, echo=False, epoch_hook=hook)
    return rows


def patience_pick(scores: list) -> tuple[int, int]:
    """(index of the best score, epochs run) when training stops PATIENCE epochs after the best."""
    best, bad = 0, 0
    for i in range(1, len(scores)):
        if scores[i] > scores[best]:
            best, bad = i, 0
        else:
            bad += 1
            if bad >= PATIENCE:
                return best, i + 1
    return best, len(scores)


def picks(r: dict) -> dict[str, int]:
    """Each rule's chosen epoch index, from the validation columns of trace ``r`` (test only for oracle)."""
    v, loss, se, t = (np.asarray(r[k]) for k in ("val_mAP", "val_loss", "val_se", "test_mAP"))
    cur, n = patience_pick(list(zip(v, -loss)))
    ma = np.array([v[max(0, i - 9): i + 1].mean() for i in range(len(v))])
    return {"current": cur, "val_loss": patience_pick(list(-loss))[0], "last": len(v) - 1,
            "ma10": patience_pick(list(zip(np.round(ma, 6), -loss)))[0],
            "1se": max(j for j in range(n) if v[j] >= v[cur] - se[cur]), "oracle": int(np.argmax(t))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(SMALL))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--traces", type=Path, default=Path("runs/selection-traces"))
    args = ap.parse_args()
    args.traces.mkdir(parents=True, exist_ok=True)
    print(f"test mAP of the epoch each rule picks (mean over seeds {args.seeds}); finetune / bce / finetune - bce;"
          f" epoch = mean chosen epoch of finetune")
    rules = None
    for d in args.datasets:
        got: dict[str, dict[str, list]] = {}
        for m in ("finetune", "bce"):
            for s in args.seeds:
                f = args.traces / f"{d}-seed{s}-{m}.json"
                if not f.is_file():
                    f.write_text(json.dumps(trace(d, s, m, args.traces / "backbones")))
                r = json.loads(f.read_text())
                for rule, i in picks(r).items():
                    got.setdefault(rule, {}).setdefault(m, []).append((r["test_mAP"][i], i + 1))
        if rules is None:
            rules = list(got)
            print(f"{'dataset':14s} " + " ".join(f"{k:>22s}" for k in rules))
        cells = []
        for k in rules:
            ft, bce = (np.mean([a for a, _ in got[k][m]]) for m in ("finetune", "bce"))
            epoch = np.mean([e for _, e in got[k]["finetune"]])
            cells.append(f"{ft:.3f}/{bce:.3f}/{ft - bce:+.3f} e{epoch:<3.0f}")
        print(f"{d:14s} " + " ".join(f"{c:>22s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
