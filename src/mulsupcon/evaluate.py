"""Re-evaluate a finished classification run from its saved scores (no model needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def evaluate_run(run: str | Path, protocols: Optional[Sequence[str]] = None, threshold: float = 0.5) -> str:
    """Metrics of a run's best checkpoint on test, under each protocol, as a Markdown table.

    Uses ``scores.npz`` written by :func:`mulsupcon.train.classify.classify` (test and validation
    probabilities of the checkpoint chosen on validation).
    """
    from mulsupcon.metrics import evaluate
    from mulsupcon.tables import metrics_table

    run = Path(run)
    path = run / "scores.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run} a finished `mulsupcon train` run?")
    z = np.load(path)
    rows = {}
    for protocol in protocols or ("paper", "validation", "fixed"):
        kwargs = {}
        if protocol == "validation":
            kwargs = {"val_scores": z["val_scores"], "val_targets": z["val_targets"]}
        rows[f"test, {protocol} protocol"] = evaluate(z["test_scores"], z["test_targets"], protocol=protocol, threshold=threshold, **kwargs)
    return metrics_table(rows, title=f"{run.name}")
