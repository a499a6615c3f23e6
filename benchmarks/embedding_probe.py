"""Where is a set's weak part, the pretrained representation or the classifier on top?

    MULSUPCON_DATA=../shared/data python benchmarks/embedding_probe.py --datasets medical scene --work runs/benchmark
    python benchmarks/embedding_probe.py --datasets multidigits --set pretrain.instance_weight=0 --work runs/probe-i0

For each dataset (seed 0 unless ``--seed``) it pretrains MulSupCon with the benchmark's config (or reuses
the backbone ``mulsupcon benchmark vectors --work`` kept), then fits the same simple models on two
representations of identical rows: the standardised inputs, and the frozen backbone's output (the
embedding the probe and the finetuning start from). Printed: test mAP of a scikit-learn
LogisticRegression per label at three strengths of regularisation, and of a 10-nearest-neighbour vote
(cosine). Where the inputs win by a wide margin, pretraining lost information the labels need, and no
classification schedule on top of it can recover that (issue 15, medical).
"""

import argparse
import time
from pathlib import Path

import torch

from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, positive_probabilities, pretrained_backbone
from mulsupcon.cli import set_overrides
from mulsupcon.metrics import evaluate
from mulsupcon.train.classify import build_classifier, frozen_features


def embedded(cfg: dict, data, parts: dict, backbone_file: Path) -> dict:
    """The frozen pretrained backbone's output (N, D) for train, val and test, with the labels."""
    model, _ = build_classifier(cfg, data, pretrained_backbone(cfg, data, backbone_file))
    cpu = torch.device("cpu")
    return {p: (frozen_features(model, getattr(data, p), cpu)[0].numpy(), y) for p, (_, y) in parts.items()}


def probe_scores(parts: dict) -> dict[str, float]:
    """Test mAP of per-label logistic regression (C = 0.01, 0.1, 1) and cosine 10-NN on ``parts``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neighbors import KNeighborsClassifier

    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    models = {f"logreg C={c}": OneVsRestClassifier(LogisticRegression(C=c, max_iter=1000)) for c in (0.01, 0.1, 1.0)}
    models["10-NN cosine"] = KNeighborsClassifier(n_neighbors=10, metric="cosine")
    out = {}
    for name, model in models.items():
        model.fit(xtr, ytr)
        out[name] = float(evaluate(positive_probabilities(model, xte), yte, protocol="paper")["mAP"])
    return out


if __name__ == "__main__":
    import warnings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["medical"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("runs/benchmark"), help="where backbones are kept / reused")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", action="extend",
                    help="config overrides for pretraining, as `mulsupcon benchmark --set` takes them "
                         "(give each trial its own --work, since the backbone is reused from there)")
    args = ap.parse_args()
    overrides = set_overrides(args.set)
    warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
    for d in args.datasets:
        t0 = time.perf_counter()
        cfg = benchmark_config(d, overrides=overrides)
        cfg["seed"] = args.seed
        data = benchmark_data(d, cfg)
        parts = arrays(data)
        backbone_file = args.work / "backbones" / f"{d}-seed{args.seed}.pt"
        backbone_file.parent.mkdir(parents=True, exist_ok=True)
        rows = {"inputs": probe_scores(parts), "embedding": probe_scores(embedded(cfg, data, parts, backbone_file))}
        names = list(rows["inputs"])
        print(f"\n{d} (seed {args.seed}, {time.perf_counter() - t0:.0f} s): test mAP")
        print("| representation | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for rep, scores in rows.items():
            print(f"| {rep} | " + " | ".join(f"{scores[n]:.3f}" for n in names) + " |")
