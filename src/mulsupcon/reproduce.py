"""``mulsupcon reproduce vectors``: the paper's Tables 2/3 on yeast, scene and delicious.

For each dataset and seed: MulSupCon pretraining then finetune and linear probe; BCE from scratch;
ALL and ANY positives (finetuned); the Eq. 6 per-sample weighting (finetuned). Prints mean +- std
over seeds of the six metrics under the ``paper`` protocol (best threshold per metric on test, as
the published tables) and the ``validation`` protocol (thresholds chosen on validation), next to
the paper's numbers, and writes the same as Markdown to ``out``.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from mulsupcon.config import load_config

# Tables 2/3 of the paper (example-F1, micro-F1, macro-F1, Hamming accuracy).
PAPER = {
    "yeast": {
        "MulSupCon (paper)": {"example_f1": 0.659, "micro_f1": 0.667, "macro_f1": 0.475, "hamming_accuracy": 0.799},
        "C-GMVAE (paper)": {"example_f1": 0.656, "micro_f1": 0.665, "macro_f1": 0.487, "hamming_accuracy": 0.796},
    },
    "scene": {
        "MulSupCon (paper)": {"example_f1": 0.787, "micro_f1": 0.773, "macro_f1": 0.776, "hamming_accuracy": 0.922},
        "C-GMVAE (paper)": {"example_f1": 0.777, "micro_f1": 0.762, "macro_f1": 0.769, "hamming_accuracy": 0.915},
    },
    "delicious": {
        "MulSupCon (paper)": {"example_f1": 0.386, "micro_f1": 0.399, "macro_f1": 0.185, "hamming_accuracy": 0.983},
        "C-GMVAE (paper)": {"example_f1": 0.381, "micro_f1": 0.403, "macro_f1": 0.197, "hamming_accuracy": 0.983},
    },
}

# name -> (pretrain overrides or None for scratch, classify mode)
METHODS = {
    "MulSupCon finetune": ({}, "finetune"),
    "MulSupCon linear probe": ({}, "probe"),
    "BCE from scratch": (None, "scratch"),
    "ALL finetune": ({"positives": "all"}, "finetune"),
    "ANY finetune": ({"positives": "any"}, "finetune"),
    "MulSupCon Eq.6 weighting finetune": ({"weighting": "sample"}, "finetune"),
}
REPORT_TITLE = "# Vector datasets: reproduction of Tables 2/3"
DEFAULT_SEEDS = {"yeast": 5, "scene": 5, "delicious": 3}


def reproduce_vectors(
    datasets: Optional[Sequence[str]] = None,
    seeds: Optional[int] = None,
    out: Optional[Path] = None,
    runs_root: Path = Path("runs/reproduce"),
    scale: float = 1.0,
    quiet: bool = True,
    methods: Optional[Sequence[str]] = None,
) -> dict:
    """Run the grid (resuming finished runs: a run whose metrics.json exists is reused); the tables go to
    ``out`` (None: ``runs_root/report.md``), rewritten after each dataset. An existing ``out`` that is not
    such a report (``results/vectors.md`` is curated from per-dataset reports) is refused before any run."""
    from mulsupcon.io import check_folder_path, check_report_overwritable
    from mulsupcon.tables import aggregate, side_by_side  # noqa: F401  (side_by_side used in _render)
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    runs_root = Path(runs_root)
    out = runs_root / "report.md" if out is None else Path(out)
    check_report_overwritable(out, REPORT_TITLE)
    check_folder_path(runs_root, "--runs-root")
    datasets = list(dict.fromkeys(datasets or PAPER))  # in order, each once
    unknown = [name for name in datasets if name not in PAPER]
    if unknown:
        raise ValueError(f"reproduce vectors runs the paper's Tables 2/3 datasets ({', '.join(PAPER)}), not "
                         f"{', '.join(unknown)}; for other data use `mulsupcon benchmark vectors --datasets ...`")
    if seeds is not None and (not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds (per dataset) must be a positive integer, got {seeds!r}")
    if not scale > 0 or scale == float("inf"):
        raise ValueError(f"scale (a fraction of the pretraining schedule) must be a positive number, got {scale!r}")
    methods = list(methods or METHODS)
    results: dict = {}
    t0 = time.time()
    for name in datasets:
        base = load_config(name)
        if scale != 1.0:
            base["pretrain"]["epochs"] = max(1, int(round(base["pretrain"]["epochs"] * scale)))
        data = prepare_data(base["dataset"])
        n_seeds = DEFAULT_SEEDS[name] if seeds is None else seeds
        results[name] = {m: [] for m in methods}
        for seed in range(n_seeds):
            pre_dirs: dict = {}
            for method in methods:
                pre_over, mode = METHODS[method]
                cfg = copy.deepcopy(base)
                cfg["seed"] = seed
                cfg["classify"]["mode"] = mode
                from_run = None
                if pre_over is not None:
                    key = json.dumps(pre_over, sort_keys=True)
                    if key not in pre_dirs:
                        pcfg = copy.deepcopy(cfg)
                        pcfg["pretrain"].update(pre_over)
                        tag = "-".join(f"{k}_{v}" for k, v in pre_over.items()) or "mulsupcon"
                        pdir = runs_root / name / f"seed{seed}" / f"pretrain-{tag}"
                        if (pdir / "backbone.pt").is_file():
                            _check_reusable(pdir, pcfg, ignore=("classify",))
                        else:
                            _say(f"[reproduce] {name} seed {seed}: pretraining ({tag})")
                            pretrain(pcfg, pdir, resume=pdir.exists(), quiet=quiet, data=data)
                        pre_dirs[key] = pdir
                    from_run = pre_dirs[key]
                    cfg["pretrain"].update(pre_over)
                cdir = runs_root / name / f"seed{seed}" / method.lower().replace(" ", "-").replace(".", "")
                if (cdir / "metrics.json").is_file():
                    _check_reusable(cdir, cfg)
                    res = json.loads((cdir / "metrics.json").read_text())
                else:
                    _say(f"[reproduce] {name} seed {seed}: {method}")
                    res = classify(cfg, cdir, from_run=from_run, resume=cdir.exists(), quiet=quiet, data=data)
                results[name][method].append(res)
        _write(results, out, scale, time.time() - t0, seeds)
    return results


def _check_reusable(run_dir: Path, cfg: dict, ignore: tuple[str, ...] = ()) -> None:
    """A finished run is reused only if it was made with this config (else its numbers would be stale)."""
    from mulsupcon.train.rundir import config_differences

    detail = config_differences(run_dir, cfg, ignore)
    if detail:
        raise ValueError(
            f"{run_dir} is a finished run with another config ({detail}); delete it or pass another --runs-root"
        )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _write(results: dict, out: Path, scale: float, seconds: float, seeds: Optional[int] = None) -> None:
    from mulsupcon.tables import aggregate, metrics_table
    from mulsupcon.io import atomic_write_text

    parts = [
        REPORT_TITLE,
        "",
        f"Command: `MULSUPCON_DATA=../shared/data mulsupcon reproduce vectors --datasets {' '.join(results)}"
        f"{'' if seeds is None else f' --seeds {seeds}'}{'' if scale == 1.0 else f' --scale {scale}'}` "
        f"(pretraining schedule x{scale}); wall time {seconds / 60:.0f} min on this machine.",
        "Mean ± std over seeds (std with ddof=0 as documented in `mulsupcon.tables`).",
        "`paper` protocol = best threshold per metric on the test set (what the published tables use);",
        "`validation` protocol = thresholds chosen on the validation split, then applied to test.",
        "",
    ]
    for name, per_method in results.items():
        for protocol in ("paper", "validation"):
            rows = {}
            for method, runs in per_method.items():
                if runs:
                    rows[f"{method} (n={len(runs)})"] = aggregate([r["protocols"][protocol] for r in runs])
            if protocol == "paper":
                rows.update(PAPER.get(name, {}))
            parts.append(metrics_table(rows, title=f"{name}, {protocol} protocol"))
            parts.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(parts) + "\n")
    print("\n".join(parts))
