"""Does the threshold grid's floor (0.1) cost finetuning its thresholded metrics against BCE?

    MULSUPCON_DATA=../shared/data python benchmarks/threshold_grid.py runs/full3 \
        --datasets yeast-3labels medical foodtruck cal500 --seeds 0 1 2 3 4

From a `mulsupcon benchmark vectors` work folder (shipped config), as `per_label_ap.py` reads it: the
finetuned model's kept probabilities and BCE's (recomputed when missing). Each is scored under the
validation protocol twice: with the paper's grid (0.1, ..., 0.9) and with 0.01, ..., 0.09 added. Printed
per dataset and grid: each method's six metrics (mean over seeds), the metrics finetuning wins per seed
and on the means, and the thresholds the validation rows chose for example, micro and macro F1.
"""

from __future__ import annotations

import numpy as np
from per_label_ap import bce_scores, work_datasets

from mulsupcon.metrics import PAPER_THRESHOLDS, evaluate

GRIDS = {"paper": PAPER_THRESHOLDS, "with 0.01-0.09": tuple(i / 100 for i in range(1, 10)) + PAPER_THRESHOLDS}
KEYS = ["mAP", "hamming_accuracy", "example_f1", "macro_f1", "micro_f1", "precision_at_1"]


def main() -> None:
    args, datasets = work_datasets(__doc__.splitlines()[0])
    for name, cfg, data in datasets:
        files = {"finetune": [args.work / "scores" / f"{name}-finetune-seed{s}.npz" for s in args.seeds],
                 "bce": [bce_scores(args.work, name, cfg, data, s) for s in args.seeds]}
        for grid_name, grid in GRIDS.items():
            res = {m: [] for m in files}
            for m, paths in files.items():
                for f in paths:
                    z = np.load(f)
                    res[m].append(evaluate(z["test_scores"], z["test_targets"], protocol="validation", grid=grid,
                                           val_scores=z["val_scores"], val_targets=z["val_targets"]))
            mean = {m: [np.mean([r[k] for r in res[m]]) for k in KEYS] for m in res}
            per_seed = [sum(f[k] > b[k] for k in KEYS) for f, b in zip(res["finetune"], res["bce"])]
            print(f"{name}, grid {grid_name}: finetune {' '.join(f'{v:.3f}' for v in mean['finetune'])} | BCE "
                  f"{' '.join(f'{v:.3f}' for v in mean['bce'])} | wins per seed {per_seed}, on the means "
                  f"{sum(f > b for f, b in zip(mean['finetune'], mean['bce']))}")
            for m in res:
                chosen = [tuple(r["thresholds"][k] for k in ("example_f1", "micro_f1", "macro_f1")) for r in res[m]]
                print(f"    {m} thresholds (example, micro, macro F1) per seed: {chosen}")


if __name__ == "__main__":
    main()
