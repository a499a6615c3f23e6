"""Evaluate a finished classification run: on its own test split from its saved scores (no model
needed), or on a new labelled file with its model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np


def evaluate_run(run: str | Path, protocols: Optional[Sequence[str]] = None, threshold: float = 0.5,
                 per_label: bool = False, as_json: bool = False, at: Sequence[int] = ()) -> str:
    """Metrics of a run's best checkpoint on test, under each protocol, as a Markdown table.

    Uses ``scores.npz`` written by :func:`mulsupcon.train.classify.classify` (test and validation
    probabilities of the checkpoint chosen on validation). ``per_label``: then a table of each label's
    numbers (:func:`per_label_report`). ``at``: then P@k and nDCG@k for each k (:func:`ranked_report`).
    ``as_json``: the same numbers as JSON (:func:`json_report`).
    """
    from mulsupcon.metrics import check_probability_threshold, evaluate
    from mulsupcon.tables import metrics_table
    from mulsupcon.train.rundir import check_classification_run

    threshold = check_probability_threshold(threshold)  # before any file is read: the scores are probabilities
    run = Path(run)
    check_classification_run(run, "scores.npz", "evaluate it")
    z = np.load(run / "scores.npz")
    ranked = ranked_numbers(z["test_scores"], z["test_targets"], cutoffs(at, z["test_scores"].shape[1]))
    results = {}
    for protocol in protocols or ("paper", "validation", "fixed"):
        kwargs = {}
        if protocol == "validation":
            kwargs = {"val_scores": z["val_scores"], "val_targets": z["val_targets"]}
        results[protocol] = evaluate(z["test_scores"], z["test_targets"], protocol=protocol, threshold=threshold, **kwargs)
    state = None
    if per_label or as_json:  # the label names
        from mulsupcon.train.checkpoint import load_checkpoint

        check_classification_run(run, "model.pt", "evaluate it per label" if per_label else "name its labels")
        state = load_checkpoint(run / "model.pt")
    if as_json:
        return json_report(str(run), "test", z["test_scores"], z["test_targets"], results, state["label_names"],
                           float(state["threshold"]) if per_label else None, state.get("train_positives"), ranked)
    rows = {f"test, {protocol} protocol": m for protocol, m in results.items()}
    out = metrics_table(rows, title=f"{run.name}") + labels_without_positives_note(z["test_targets"], "test rows")
    out += ranked_report(ranked, "test")
    if per_label:
        out += "\n\n" + per_label_report(z["test_scores"], z["test_targets"], state["label_names"], float(state["threshold"]),
                                         state.get("train_positives"), f"{run.name}, test rows")
    return out


def evaluate_file(run: str | Path, path: str | Path, protocols: Optional[Sequence[str]] = None,
                  threshold: float = 0.5, labels: Optional[str | Path] = None, per_label: bool = False,
                  as_json: bool = False, at: Sequence[int] = ()) -> str:
    """Metrics of a run's model on a new labelled vector file, or a folder of images with their label file
    ``labels`` (default ``path/labels.csv``), under each protocol, as Markdown.

    ``run`` is a run folder or its ``model.pt`` alone. The validation protocol applies the thresholds
    that the run's validation split chose (kept in ``model.pt``), exactly as for its own test split; the
    paper protocol picks them on ``path`` itself. ``per_label``: then a table of each label's numbers
    (:func:`per_label_report`). ``at``: then P@k and nDCG@k for each k (:func:`ranked_report`). ``as_json``:
    the same numbers as JSON (:func:`json_report`).
    """
    from mulsupcon.metrics import check_probability_threshold, evaluate
    from mulsupcon.predict import (labelled_image_folder, load_run, read_labelled_inputs, score_image_folder,
                                   scored_as_read)
    from mulsupcon.tables import metrics_table

    threshold = check_probability_threshold(threshold)
    run = Path(run)
    model = load_run(run)
    model.require_classifier()  # before reading the input
    ks = cutoffs(at, len(model.label_names))
    if model.is_image and Path(path).expanduser().is_dir():  # scored a chunk of images at a time
        folder = Path(path).expanduser()
        names, y, label_file = labelled_image_folder(folder, model, labels)
        scores = score_image_folder(model, folder, names, model.predict_proba, listed_in=label_file)
    else:
        x, y = read_labelled_inputs(path, model, labels)
        scores = scored_as_read(x, model.predict_proba, path)
    results = {}
    for protocol in protocols or ("paper", "validation", "fixed"):
        kwargs = {"val_thresholds": model.thresholds} if protocol == "validation" else {}
        results[protocol] = evaluate(scores, y, protocol=protocol, threshold=threshold, **kwargs)
    ranked = ranked_numbers(scores, y, ks)
    if as_json:
        return json_report(str(run), str(path), scores, y, results, model.label_names,
                           model.threshold if per_label else None, model.train_positives, ranked)
    rows = {f"{Path(path).name}, {protocol} protocol": m for protocol, m in results.items()}
    name = run.name if run.is_dir() else str(run)
    out = (metrics_table(rows, title=f"{name} on {Path(path).name} ({len(y)} rows)")
           + labels_without_positives_note(y, "rows", model.label_names) + ranked_report(ranked, Path(path).name))
    if per_label:
        out += "\n\n" + per_label_report(scores, y, model.label_names, model.threshold, model.train_positives,
                                         f"{name} on {Path(path).name}")
    return out


def cutoffs(at: Sequence[int], n_labels: int) -> list[int]:
    """The k of ``evaluate --at``, sorted, once each; each must be 1 to the number of labels."""
    bad = [k for k in at if not 1 <= k <= n_labels]
    if bad:
        raise ValueError(f"--at {bad[0]}: k is the number of best-scored labels per row, from 1 to {n_labels} (the model's labels)")
    return sorted(set(at))


def ranked_numbers(scores: np.ndarray, targets: np.ndarray, ks: Sequence[int]) -> Optional[dict[str, float]]:
    """``{"P@k": ..., "nDCG@k": ...}`` of (N, L) ``scores`` for each k of ``ks`` (None without any)."""
    from mulsupcon.metrics import ranked_at

    return ranked_at(scores, targets, ks) if ks else None


def ranked_report(ranked: Optional[dict[str, float]], rows: str) -> str:
    """The table of :func:`ranked_numbers` under the metrics table ("" without any). These measures of
    extreme multi-label classification need no threshold: they read each row's best-scored labels."""
    if ranked is None:
        return ""
    from mulsupcon.tables import metrics_table

    return "\n\n" + metrics_table({rows: ranked}, metrics=list(ranked), title=(
        "each row's best-scored labels (P@k: the fraction of its k best that are true; nDCG@k: the same weighted by "
        "rank, over the best its true labels allow)"))


def per_label_report(scores: np.ndarray, targets: np.ndarray, names: Sequence[str], threshold: float,
                     train_positives: Optional[Sequence[int]], title: str) -> str:
    """Each label's training positives (when the model kept them), positives among these rows, AP, and
    precision / recall / F1 of ``scores`` (N, L) >= ``threshold`` against ``targets`` (N, L): with the run's
    threshold these are the numbers of ``predict --labels``'s 0/1 output. Markdown."""
    from mulsupcon.metrics import per_label_metrics
    from mulsupcon.tables import per_label_table

    m = per_label_metrics(scores, targets, threshold)
    columns: dict[str, Sequence] = {} if train_positives is None else {"training positives": list(train_positives)}
    columns.update({"positives": m["positives"], "AP": m["AP"], "precision": m["precision"], "recall": m["recall"],
                    "F1": m["F1"]})
    notes = []
    if (m["positives"] == 0).any():
        notes.append(f"AP is '-' for the {int((m['positives'] == 0).sum())} label(s) without a positive among these rows.")
    unlearnable = [str(n) for n, k in zip(names, train_positives or ()) if k == 0]
    if unlearnable:
        notes.append(f"{len(unlearnable)} label(s) had no training positive, which no model can learn: "
                     + ", ".join(unlearnable[:10]) + (", ..." if len(unlearnable) > 10 else "") + ".")
    table = per_label_table(names, columns, title=f"{title}, per label (precision, recall, F1 at the run's threshold "
                                                  f"{threshold:g}, chosen on validation for micro-F1)")
    return table + "".join("\n\n" + n for n in notes)


def json_report(run: str, rows: str, scores: np.ndarray, targets: np.ndarray, results: dict[str, dict],
                names: Sequence[str], threshold: Optional[float], train_positives: Optional[Sequence[int]],
                ranked: Optional[dict[str, float]] = None) -> str:
    """The numbers of :func:`evaluate_run` / :func:`evaluate_file` as JSON, for scripts: ``run``, ``rows`` (which
    rows: 'test' or the input file), ``n_rows``, ``labels``, ``protocols`` (protocol -> the six metrics and their
    thresholds, as the run's ``metrics.json``), ``labels_without_positives`` (their AP is undefined and left out
    of mAP) and, when ``threshold`` is given, ``per_label`` (label -> training positives, positives, AP, precision,
    recall, F1 at ``threshold``, as :func:`per_label_report`; AP is null without a positive), and ``ranked``
    (P@k, nDCG@k) when given. ``scores`` and ``targets``: (N, L)."""
    import json

    from mulsupcon.metrics import per_label_metrics

    names = [str(n) for n in names]
    out: dict = {"run": run, "rows": rows, "n_rows": int(len(targets)), "labels": names, "protocols": results,
                 "labels_without_positives": [n for n, k in zip(names, np.asarray(targets).sum(axis=0)) if k == 0]}
    if ranked is not None:
        out["ranked"] = ranked
    if threshold is not None:
        m = per_label_metrics(scores, targets, threshold)
        out["threshold"] = float(threshold)
        out["per_label"] = {
            n: {**({"training_positives": int(train_positives[j])} if train_positives is not None else {}),
                "positives": int(m["positives"][j]), **{k: (None if np.isnan(m[k][j]) else float(m[k][j]))
                                                        for k in ("AP", "precision", "recall", "F1")}}
            for j, n in enumerate(names)}

    def plain(value):  # numpy numbers from the metrics, and NaN (an undefined metric) as null
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        return None if isinstance(value, float) and np.isnan(value) else value

    return json.dumps(plain(out), indent=2)


def labels_without_positives_note(targets: np.ndarray, rows: str, names: Optional[Sequence[str]] = None) -> str:
    """A line for under the metrics table when some labels have no positive among the evaluated ``targets``
    (N, L): their AP is undefined, so mAP averages fewer labels than the model has (macro-F1 counts them
    all, as 0 where nothing is predicted either); "" when every label has one."""
    absent = np.flatnonzero(np.asarray(targets).sum(axis=0) == 0)
    if not len(absent):
        return ""
    listed = ""
    if names is not None:
        shown = [str(names[j]) for j in absent[:10]]
        listed = ": " + ", ".join(shown) + (f", ... ({len(absent)} in all)" if len(absent) > 10 else "")
    n = targets.shape[1]
    verb = "has" if len(absent) == 1 else "have"
    return (f"\n\n{len(absent)} of the {n} labels {verb} no positive in these {rows}{listed}. mAP averages the other "
            f"{n - len(absent)} (their AP is undefined); macro-F1 counts all {n}.")


def find_runs(roots: Sequence[str | Path]) -> list[Path]:
    """The run folders (holding ``run.json`` and ``config.yaml``) at or below each of ``roots``, oldest first;
    a root that does not exist is an error."""
    from mulsupcon.train.rundir import read_json_file

    found: set[Path] = set()
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        found.update(p.parent for p in root.rglob("run.json") if (p.parent / "config.yaml").is_file())
    return sorted(found, key=lambda p: ((read_json_file(p / "run.json") or {}).get("created", ""), str(p)))


def run_records(roots: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One record per run below ``roots`` (:func:`find_runs`, oldest first): ``run`` (its folder), ``kind``,
    ``dataset``, ``state`` (``finished``, ``training``, ``stopped`` or ``not started``: killed before its first
    checkpoint), ``pid`` (the process training it now, else None), ``epochs_run`` (as of the last checkpoint),
    ``best_epoch`` (a classification run's, else None), ``protocols`` (its test metrics by threshold protocol,
    as in its ``metrics.json``; empty for pretraining or an unfinished run) and ``created``."""
    import yaml

    from mulsupcon.train.rundir import lock_holder, read_json_file

    records = []
    for run in find_runs(roots):
        info = read_json_file(run / "run.json") or {}
        kind = str(info.get("kind", "-"))
        try:
            dataset = str((yaml.safe_load((run / "config.yaml").read_text()) or {})["dataset"]["name"])
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            dataset = None
        history = read_json_file(run / "history.json")
        metrics = read_json_file(run / "metrics.json") or {}
        holder = lock_holder(run)
        if holder is not None:
            state = "training"
        elif (run / ("backbone.pt" if kind == "pretrain" else "model.pt")).is_file():
            state = "finished"
        elif (run / "checkpoints" / "last.pt").is_file():
            state = "stopped"
        else:  # killed before its first checkpoint (or failed before training)
            state = "not started"
        records.append({"run": str(run), "kind": kind, "dataset": dataset, "state": state, "pid": holder,
                        "epochs_run": len(history) if isinstance(history, list) else 0,
                        "best_epoch": metrics.get("best_epoch") if kind != "pretrain" else None,
                        "protocols": dict(metrics.get("protocols", {})), "created": info.get("created")})
    return records


def runs_table(roots: Sequence[str | Path], protocol: str = "validation") -> str:
    """:func:`run_records` as one Markdown row per run: kind, dataset, state (finished, training now with its
    pid, or stopped after epoch k, with the command that continues it), best epoch / epochs run, the test
    metrics under ``protocol`` (classification runs) and when it was made. For choosing among runs."""
    from mulsupcon.tables import METRIC_LABELS, METRIC_ORDER, format_value, markdown_table

    records = run_records(roots)
    if not records:
        return f"no runs in {', '.join(map(str, roots))} (a run folder holds run.json and config.yaml)"
    header = ["run", "kind", "dataset", "state", "epochs (best / run)", *(METRIC_LABELS.get(m, m) for m in METRIC_ORDER),
              "made"]
    state = {
        "finished": lambda r: "finished",
        "training": lambda r: f"training (pid {r['pid']})",
        "stopped": lambda r: f"stopped after epoch {r['epochs_run']}: --resume --run-dir {r['run']}",
        "not started": lambda r: f"stopped before its first checkpoint: --resume --run-dir {r['run']} starts it again",
    }
    body = []
    for r in records:
        best = r["best_epoch"] if r["best_epoch"] is not None else "-"
        scores = r["protocols"].get(protocol, {})
        body.append([r["run"], r["kind"], r["dataset"] or "-", state[r["state"]](r), f"{best} / {r['epochs_run']}",
                     *(format_value(scores.get(m)) for m in METRIC_ORDER), str(r["created"] or "-")])
    title = f"runs, test metrics under the {protocol} protocol"
    return markdown_table(header, body, title, [False] * 5 + [True] * len(METRIC_ORDER) + [False])
