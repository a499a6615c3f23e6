"""Does a post-hoc change of the linear layer close finetuning's per-row gap to BCE? (issue 15, medical)

    MULSUPCON_DATA=../shared/data python benchmarks/head_adjust.py runs/full3 --datasets medical --seeds 0 1 2

For each seed it finetunes the work folder's pretrained backbone (WORK/backbones/NAME-seedS.pt) and trains BCE
from scratch, both with the benchmark's code and config (deterministic on the CPU: the benchmark's cells),
then scores the test rows under the validation protocol with the layer changed in one of two ways:

- ``tau``: each label's weight row w_j divided by ||w_j||^tau, times the mean norm^tau (tau-normalisation,
  Kang et al., ICLR 2020: a classifier trained on imbalanced labels gives frequent labels larger norms);
- ``prior``: tau * log(prior_j) subtracted from each logit (logit adjustment, Menon et al., ICLR 2021),
  prior_j the label's (positives + 1) / (rows + 2) over the training rows.

tau = 0 is the unchanged model, so its row reproduces the benchmark cell. Prints precision@1, example F1
and mAP for each tau.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from mulsupcon.benchmark import arrays, pretrained_backbone
from mulsupcon.metrics import evaluate
from mulsupcon.predict import TrainedModel
from mulsupcon.train.classify import classify
from mulsupcon.train.rundir import RunDir

from per_label_ap import work_datasets

TAUS = (0.0, 0.25, 0.5, 1.0)
SHOWN = ("precision_at_1", "example_f1", "mAP")


def trained(cfg: dict, data, mode: str, backbone=None) -> TrainedModel:
    """The benchmark's finetune (``mode="finetune"``, from ``backbone``) or BCE (``"scratch"``) model."""
    c = copy.deepcopy(cfg)
    c["classify"].update(mode=mode, **({"loss": "bce"} if mode == "scratch" else {}))
    run = RunDir.in_memory()
    classify(c, run, from_run=backbone, data=data, quiet=True, echo=False)
    return TrainedModel(run.files["model.pt"])


def adjusted_scores(model: TrainedModel, x: np.ndarray, how: str, tau: float, prior: torch.Tensor) -> np.ndarray:
    """Probabilities (N, L) of standardised rows x (N, F) through the layer changed by ``how`` at ``tau``."""
    with torch.no_grad():
        z = model.model.embed(torch.as_tensor(x, dtype=torch.float32))
        w, b = model.model.fc.weight, model.model.fc.bias
        if how == "tau":
            norm = w.norm(dim=1, keepdim=True)
            w = w / norm.pow(tau) * norm.mean().pow(tau)
        else:
            b = b - tau * prior.log()
        return torch.sigmoid(z @ w.T + b).numpy()


def main() -> None:
    args, datasets = work_datasets(__doc__.splitlines()[0])
    for name, cfg, data in datasets:
        parts = arrays(data)
        (xv, yv), (xt, yt), y_train = parts["val"], parts["test"], parts["train"][1]
        prior = torch.as_tensor((y_train.sum(0) + 1) / (len(y_train) + 2), dtype=torch.float32)
        print(f"\n{name}: precision@1 / example F1 / mAP on the test rows (validation protocol)")
        print("| seed | method | change | " + " | ".join(f"tau {t:g}" for t in TAUS) + " |")
        print("|---|---|---|" + "---|" * len(TAUS))
        for s in args.seeds:
            c = copy.deepcopy(cfg)
            c["seed"] = s
            backbone = pretrained_backbone(c, data, args.work / "backbones" / f"{name}-seed{s}.pt")
            for method, model in (("finetune", trained(c, data, "finetune", backbone)), ("bce", trained(c, data, "scratch"))):
                for how in ("tau", "prior"):
                    cells = []
                    for t in TAUS:
                        sv, st = adjusted_scores(model, xv, how, t, prior), adjusted_scores(model, xt, how, t, prior)
                        m = evaluate(st, yt, protocol="validation", val_scores=sv, val_targets=yv)
                        cells.append(" / ".join(f"{m[k]:.3f}" for k in SHOWN))
                    print(f"| {s} | {method} | {how} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
