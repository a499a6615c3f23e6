"""``mulsupcon benchmark vectors``: MulSupCon against what a user would pick instead, on identical rows.

For every dataset the train / validation / test rows are fixed once (the dataset's official split, or
a carved one, validation carved by ``split_seed`` 0) and every method sees exactly those rows, the
same standardised features, and the same seeds:

=====================  ========================================================================
``mulsupcon-finetune`` MoCo + MulSupCon pretraining, then finetuning (the config's ``classify``)
``mulsupcon-probe``    the same pretrained backbone, frozen, with a linear layer
``bce``                the same MLP trained from scratch with binary cross-entropy
``asl``                the same, with the asymmetric loss
``sklearn-mlp``        ``sklearn.neural_network.MLPClassifier`` with its defaults, hidden 256-512-256
``logistic-regression`` one ``sklearn.linear_model.LogisticRegression`` per label (its defaults, C=1), on
                       the same standardised features: the linear model a user would try first
``random-forest``      ``sklearn.ensemble.RandomForestClassifier``, 500 trees, other defaults; not run
                       where its memory bound exceeds the available memory (:func:`forest_too_large`)
``finetune+forest``    the mean of the finetuned MulSupCon model's and the forest's probabilities
                       (the stretch idea of issue 15: an ensemble with a tree model)
``boomer``             BOOMER (``mlrl-boomer``, gradient-boosted multi-label rules), its defaults, in the
                       interpreter given by ``boomer_python`` (see below); left out when none is given
=====================  ========================================================================

Every method's test probabilities are scored by :func:`mulsupcon.metrics.evaluate` under the
``validation`` protocol (thresholds chosen on the validation rows) and the ``paper`` protocol. Each
(dataset, method, seed) result is stored as one JSON file under ``--work`` as soon as it is done, so an
interrupted benchmark continues where it stopped; the markdown report is rewritten after every result.

BOOMER (``mlrl-boomer``) runs in a Python environment of its own: its current release (0.12.3, via
``mlrl-common``) requires ``scikit-learn<1.8``, and installing it beside this package would downgrade
the scikit-learn this package is tested with. ``python3 -m venv .venv-boomer && .venv-boomer/bin/pip
install mlrl-boomer`` makes one (nothing else is needed there); ``--boomer-python .venv-boomer/bin/python``
(or ``MULSUPCON_BOOMER_PYTHON``) points the benchmark at it. The cell's features and labels go to
:mod:`mulsupcon.boomer_worker` in a file and its probabilities come back the same way, so BOOMER sees
exactly the rows the other methods see and is scored by the same code.

``yeast-3labels`` is a derived case for rows without any label (common in real data): yeast with only
its three rarest labels kept, so that most rows have none (they stay, as references that are only
negatives in pretraining and as all-negative rows in classification).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from mulsupcon.config import check_seed, load_config
from mulsupcon.data.dataset import MultiLabelDataset, Splits
from mulsupcon.data.download import sha256_file
from mulsupcon.io import (atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text,
                          check_report_overwritable)
from mulsupcon.metrics import evaluate
from mulsupcon.train.classify import classify
from mulsupcon.train.data import PreparedData, load_dataset_splits, prepare_data
from mulsupcon.train.pretrain import pretrain
from mulsupcon.train.rundir import RunDir

METHODS = ("mulsupcon-finetune", "mulsupcon-probe", "bce", "asl", "sklearn-mlp", "logistic-regression", "random-forest",
           "finetune+forest", "boomer")
# Every vector set of the data home with an official split, then the two with a carved one, then the
# derived no-label case.
DATASETS = ("yeast", "scene", "medical", "genbase", "flags", "bibtex", "corel5k", "tmc2007-500", "delicious",
            "cal500", "foodtruck", "yeast-3labels")
METRICS = ("mAP", "hamming_accuracy", "example_f1", "macro_f1", "micro_f1", "precision_at_1")
PROTOCOLS = ("validation", "paper")
NO_LABEL_CASES = {"yeast-3labels": ("yeast", 3)}
# Embedded image sets the harness takes as flat pixel vectors (no download; not in the default list):
# `multidigits`, the demo's data (3,000 / 1,000 / 1,000 canvases of 576 pixels, 10 labels).
AS_VECTORS = ("multidigits",)
shapes: dict[str, dict] = {}  # dataset -> its row counts (also saved beside its cells)


# ----------------------------------------------------------------------------- data
def named_datasets() -> list[str]:
    """The names ``--datasets`` takes without a path: :data:`DATASETS` (the default), then every other
    registered vector dataset (``mulsupcon datasets list``: emotions, birds, enron, ... once in the data home),
    then the embedded image sets read as pixel vectors (:data:`AS_VECTORS`)."""
    from mulsupcon.data.registry import list_datasets

    registered = [s.name for s in list_datasets() if s.kind == "vector" and s.name not in DATASETS]
    return list(DATASETS) + registered + list(AS_VECTORS)


def parse_datasets(entries: Sequence[str]) -> dict[str, Optional[str]]:
    """``--datasets`` entries -> {name: None for a registered vector dataset (:func:`named_datasets`), or the
    absolute path of your own file or folder, given as ``NAME=PATH``}. ValueError / FileNotFoundError say
    what is wrong with an entry."""
    out: dict[str, Optional[str]] = {}
    known = named_datasets()
    for entry in entries:
        name, sep, path = str(entry).partition("=")
        if name in out:
            raise ValueError(f"--datasets: {name!r} is named twice")
        if not sep:
            if name not in known:
                raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(known)} (the registered vector "
                                 "datasets, and the demo's images as pixel vectors), or give your own file as "
                                 "NAME=PATH (read as by `mulsupcon train --dataset.path PATH`)")
            out[name] = None
            continue
        if name in known:
            raise ValueError(f"--datasets {entry}: {name!r} is a registered dataset; give your file another name")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(f"--datasets {entry}: the name {name!r} must be letters, digits, '.', '_' or '-' "
                             "(it names the dataset's folder under --work)")
        resolved = Path(path).expanduser().resolve()
        if not path or not resolved.exists():
            raise FileNotFoundError(f"--datasets {entry}: no file or folder at {resolved}")
        out[name] = str(resolved)
    return out


def benchmark_config(dataset: str, config: str = "vectors", overrides: Optional[Mapping[str, Any]] = None,
                     path: Optional[str] = None) -> dict:
    """The config every MulSupCon/BCE/ASL run of ``dataset`` uses: ``config`` with the dataset set
    (``path``: your own file, read with the ``dataset.*`` options of ``overrides``, as `mulsupcon train` does)."""
    base = NO_LABEL_CASES.get(dataset, (dataset,))[0]
    values: dict[str, Any] = {"dataset.name": base, "device": "cpu" if not torch.cuda.is_available() else "auto"}
    if path is not None:
        values["dataset.path"] = path
    elif base in AS_VECTORS:
        values["dataset.as_vectors"] = True
    values.update(overrides or {})
    return load_config(config, values)


def data_files(cfg: Mapping[str, Any]) -> dict[str, str]:
    """{absolute path: sha256} of the files a config's own-data options name (path, test_path, xml, labels);
    empty for a dataset of the data home (its catalogue pins its files)."""
    ds = cfg["dataset"]
    files = [Path(ds[k]) for k in ("path", "test_path", "xml", "labels", "test_labels") if ds.get(k)]
    return {str(f): sha256_file(f) for f in files if f.is_file()}


def check_same_data(work: Path, dataset: str, files: Mapping[str, str]) -> None:
    """Raise ValueError when a cell of ``dataset`` under ``work`` was computed from other data files."""
    for cell in sorted((Path(work) / "cells" / dataset).glob("*-seed*.json")):
        before = json.loads(cell.read_text()).get("data", {})
        if before != dict(files):
            raise ValueError(f"{cell} was computed from {before or 'a dataset of the data home'}, not from {dict(files)}: "
                             f"give this data another name, or use another --work folder")


def benchmark_data(dataset: str, cfg: Mapping[str, Any]) -> PreparedData:
    """The fixed rows of ``dataset`` (standardised on its training rows)."""
    splits = load_dataset_splits(cfg["dataset"])  # its errors name --dataset.* flags, which the benchmark takes too
    if dataset in NO_LABEL_CASES:
        splits = keep_rarest_labels(splits, NO_LABEL_CASES[dataset][1], name=dataset)
    return prepare_data(cfg["dataset"], splits)


def keep_rarest_labels(splits: Splits, k: int, name: str) -> Splits:
    """``splits`` with only the ``k`` labels rarest in the training rows; rows left without a label stay."""
    keep = np.sort(np.argsort(splits.train.labels.sum(0), kind="stable")[:k])

    def cut(ds: Optional[MultiLabelDataset]) -> Optional[MultiLabelDataset]:
        if ds is None:
            return None
        return MultiLabelDataset(features=ds.features, labels=ds.labels[:, keep],
                                 label_names=[ds.label_names[j] for j in keep], feature_names=ds.feature_names,
                                 source=ds.source, name=name)

    return Splits(train=cut(splits.train), val=cut(splits.val), test=cut(splits.test),
                  info=dict(splits.info, kept_labels=[splits.train.label_names[j] for j in keep]))


def arrays(data: PreparedData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(x standardised float32 (N, F), y uint8 (N, L)) of train, val and test, as the MLPs see them."""
    out = {}
    for part in ("train", "val", "test"):
        source = getattr(data, part)
        x, y = source.batch(torch.arange(source.n))
        out[part] = (x.numpy(), y.numpy())
    return out


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """12 hex digits hashing this package's Python source and shipped configs (names and bytes).

    Every cell records it: a resumed benchmark never recomputes a finished cell, so one report can
    combine cells computed by different code, which then differ for no visible reason (2026-12-06: a
    table's small sets came from an earlier version of the instance term). The report says when it does.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def provenance_note(found: Mapping[str, Mapping[str, list[dict]]]) -> Optional[str]:
    """A warning paragraph when the cells in ``found`` (dataset -> method -> cells) were computed by
    more than one code version or config (see :func:`code_fingerprint`), else None."""
    kinds = {"code": lambda c: c.get("code"),
             "config": lambda c: None if "config" not in c else f"{c['config']} {json.dumps(c.get('overrides') or {}, sort_keys=True)}"}
    cells = [c for by_method in found.values() for method_cells in by_method.values() for c in method_cells]
    parts = []
    for what, key in kinds.items():
        counts = collections.Counter(key(c) for c in cells)
        if len(counts) > 1:
            shown = "; ".join(f"{'not recorded' if k is None else k}: {n} cells" for k, n in
                              sorted(counts.items(), key=lambda kv: (kv[0] is None, str(kv[0]))))
            parts.append(f"{what} ({shown})")
    if not parts:
        return None
    return ("**Mixed provenance.** The cells of this report were computed with more than one " + " and ".join(parts)
            + ". Cells are never recomputed once written, so a change of code or `--set` between runs into the same "
            "`--work` mixes them; compare like with like in a fresh `--work` folder.")


# ----------------------------------------------------------------------------- methods
def _scored(test_scores: np.ndarray, test_y: np.ndarray, val_scores: np.ndarray, val_y: np.ndarray) -> dict:
    return {p: {m: float(evaluate(test_scores, test_y, protocol=p, val_scores=val_scores, val_targets=val_y)[m])
                for m in METRICS} for p in PROTOCOLS}


def _classify_scores(cfg: dict, data: PreparedData, from_run: Any = None, keep: Optional[Path] = None) -> dict:
    """The loop's own test metrics (it scores its best-on-validation checkpoint) and which epoch that was;
    ``keep``: where its validation and test probabilities are saved (for the ensemble)."""
    c = copy.deepcopy(cfg)
    c["eval"]["protocols"] = list(PROTOCOLS)
    run = RunDir.in_memory()
    results = classify(c, run, from_run=from_run, data=data, quiet=True, echo=False)
    if keep is not None:
        atomic_write_bytes(keep, run.files["scores.npz"])
    out: dict[str, Any] = {p: {m: float(results["protocols"][p][m]) for m in METRICS} for p in PROTOCOLS}
    out["best_epoch"], out["epochs_run"] = int(results["best_epoch"]), len(run.history)
    return out


def pretrained_backbone(cfg: dict, data: PreparedData, backbone_file: Path) -> dict:
    """The contents of ``backbone_file``, pretraining (and saving it there) first when it does not exist."""
    if backbone_file.is_file():
        return torch.load(backbone_file, map_location="cpu", weights_only=False)
    run = RunDir.in_memory()
    pretrain(cfg, run, data=data, quiet=True, echo=False)
    atomic_torch_save(backbone_file, run.files["backbone.pt"])
    return run.files["backbone.pt"]


def run_mulsupcon(cfg: dict, data: PreparedData, backbone_file: Path, mode: str, keep: Optional[Path] = None) -> dict:
    """Pretrain once per (dataset, seed) (the backbone is kept in ``backbone_file``), then probe or finetune."""
    backbone = pretrained_backbone(cfg, data, backbone_file)
    c = copy.deepcopy(cfg)
    c["classify"]["mode"] = mode
    return _classify_scores(c, data, from_run=backbone, keep=keep)


def run_scratch(cfg: dict, data: PreparedData, loss: str, keep: Optional[Path] = None) -> dict:
    """The same MLP trained from scratch with ``loss`` ("bce" or "asl"); ``keep`` as in _classify_scores."""
    c = copy.deepcopy(cfg)
    c["classify"].update(mode="scratch", loss=loss)
    return _classify_scores(c, data, keep=keep)


def run_ensemble(finetuned: Path, parts: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int) -> dict:
    """The mean of the finetuned model's probabilities (saved by its cell) and a 500-tree forest's."""
    z = np.load(finetuned)
    forest = _fit_sklearn("random-forest", parts, seed)
    (xva, yva), (xte, yte) = parts["val"], parts["test"]
    return _scored((z["test_scores"] + positive_probabilities(forest, xte)) / 2, yte,
                   (z["val_scores"] + positive_probabilities(forest, xva)) / 2, yva)


def run_sklearn(kind: str, parts: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int) -> dict:
    """Fit scikit-learn model ``kind`` on ``parts["train"]`` (x (N, F), y (N, L)) and score it on test,
    thresholds from ``parts["val"]``: the cell's metrics under each protocol."""
    model = _fit_sklearn(kind, parts, seed)
    (xva, yva), (xte, yte) = parts["val"], parts["test"]
    return _scored(positive_probabilities(model, xte), yte, positive_probabilities(model, xva), yva)


# How to make the interpreter BOOMER runs in; said by every error about it (boomer_worker.py, which
# imports nothing of this package, spells it out itself).
BOOMER_SETUP = "python3 -m venv .venv-boomer && .venv-boomer/bin/pip install mlrl-boomer"


def boomer_python(given: Optional[str] = None) -> Optional[str]:
    """The interpreter BOOMER runs in: ``given``, else ``$MULSUPCON_BOOMER_PYTHON``, else None (left out)."""
    return given or os.environ.get("MULSUPCON_BOOMER_PYTHON") or None


def run_boomer(parts: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int, python: str) -> dict:
    """BOOMER fitted on the training rows by :mod:`mulsupcon.boomer_worker` in the interpreter ``python``;
    its validation and test probabilities scored like every other method's."""
    worker = Path(__file__).with_name("boomer_worker.py")
    (xtr, ytr), (xva, yva), (xte, yte) = parts["train"], parts["val"], parts["test"]
    with tempfile.TemporaryDirectory(prefix="mulsupcon-boomer-") as tmp:
        given, back = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(given, x_train=xtr, y_train=ytr, x_val=xva, x_test=xte, seed=seed)
        try:
            proc = subprocess.run([python, str(worker), str(given), str(back)], capture_output=True, text=True)
        except OSError as e:
            raise RuntimeError(f"cannot start the BOOMER interpreter {python!r} ({e}); create it with "
                               + BOOMER_SETUP) from e
        if proc.returncode != 0:
            raise RuntimeError(f"BOOMER failed in {python} (exit status {proc.returncode}):\n"
                               + proc.stderr.strip()[-2000:])
        with np.load(back) as z:
            val, test, version = z["val_scores"], z["test_scores"], str(z["version"])
    if val.shape != yva.shape or test.shape != yte.shape:
        raise RuntimeError(f"BOOMER returned scores of shapes {val.shape} / {test.shape}, expected {yva.shape} / {yte.shape}")
    out: dict[str, Any] = _scored(test, yte, val, yva)
    out["version"] = version
    return out


FOREST_TREES = 500


def forest_bytes(n_rows: int, n_labels: int, trees: int = FOREST_TREES) -> int:
    """An upper bound of the memory a fitted random forest of fully grown trees holds, in bytes. At every
    node a scikit-learn tree keeps a 64-byte record (children, feature, threshold, counts) and a float64
    value per label and class (2) (``tree_.value``), and a tree grown on a bootstrap sample of ``n_rows``
    rows has fewer than twice its distinct rows (about 63% of them) as nodes. Measured per tree: bibtex
    (3,904 rows, 159 labels) 10.5 MB of values against this bound's 12.3 MB in all; delicious (10,336 rows,
    983 labels) 170 MB against 197."""
    return int(trees * 2 * (1 - np.exp(-1)) * n_rows * (64 + n_labels * 2 * 8))


def available_memory() -> Optional[int]:
    """The memory the system can give a new allocation without swapping, in bytes (``MemAvailable`` of
    ``/proc/meminfo``), or None where it is not known (not Linux): then nothing is checked."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def forest_too_large(n_rows: int, n_labels: int, available: Optional[int]) -> Optional[str]:
    """Why a forest of :data:`FOREST_TREES` trees on ``n_rows`` training rows with ``n_labels`` labels is not fitted (its
    :func:`forest_bytes` bound exceeds ``available`` bytes), or None when it fits or memory is unknown. A
    forest beyond the memory would be killed by the system, the whole benchmark with it."""
    need = forest_bytes(n_rows, n_labels)
    if available is None or need <= available:
        return None

    def size(b: int) -> str:
        return f"{b / 2**30:.1f} GB" if b >= 2**30 else f"{b / 2**20:.0f} MB"

    return (f"not run: {FOREST_TREES} fully grown trees on {n_rows:,} training rows with {n_labels} labels may need "
            f"up to {size(need)} (a value per label at every node), and {size(available)} are available; a machine "
            "with more memory runs it (the same command continues)")


def _fit_sklearn(kind: str, parts: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neural_network import MLPClassifier

    xtr, ytr = parts["train"]
    if kind == "sklearn-mlp":
        model = MLPClassifier(hidden_layer_sizes=(256, 512, 256), random_state=seed)
    elif kind == "logistic-regression":
        # max_iter above the default 100: lbfgs stops short on the wide sparse sets; a label that never
        # occurs in the training rows gets a constant predictor (OneVsRestClassifier warns, we keep quiet).
        model = OneVsRestClassifier(LogisticRegression(max_iter=1000))
    elif kind == "random-forest":
        model = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=seed, n_jobs=-1)
    else:
        raise ValueError(f"unknown scikit-learn method {kind!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # its default 200 iterations, as a user would run it
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        model.fit(xtr, ytr)
    return model


def positive_probabilities(model: Any, x: np.ndarray) -> np.ndarray:
    """(N, L) probability of label 1 from a scikit-learn multi-label classifier."""
    p = model.predict_proba(x)
    if isinstance(p, list):  # a forest: one (N, classes seen) array per label
        cols = []
        for probs, classes in zip(p, model.classes_):
            hit = np.flatnonzero(np.asarray(classes) == 1)
            cols.append(probs[:, hit[0]] if hit.size else np.zeros(len(x)))
        p = np.stack(cols, axis=1)
    return np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)


# ----------------------------------------------------------------------------- the benchmark
def benchmark_vectors(datasets: Sequence[str] = DATASETS, seeds: Sequence[int] = (0, 1, 2),
                      methods: Optional[Sequence[str]] = None, *, work: Path = Path("runs/benchmark"),
                      out: Optional[Path] = None, config: str = "vectors",
                      overrides: Optional[Mapping[str, Any]] = None, command: str = "",
                      boomer: Optional[str] = None,
                      say: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> Path:
    """Run (or continue) the comparison and write the report; returns the report's path.

    Args:
        datasets, seeds, methods: what to run (dataset names from :func:`named_datasets`, method names from
            :data:`METHODS`; methods None: all of them, BOOMER only when ``boomer`` is given). A dataset may also be your own
            file as ``NAME=PATH``, read as `mulsupcon train --dataset.path PATH` reads it, with the
            ``dataset.*`` options of ``overrides`` (``dataset.xml``, ``dataset.test_path``,
            ``dataset.label_columns``, ``dataset.ignore_columns``, ``dataset.categorical_columns``, ``dataset.label_sep``; without a test part one is carved, ``dataset.test_fraction``);
            its cells record the files' sha256, and a rerun refuses cells of other files.
        work: where the per-cell results and pretrained backbones are kept (resumable).
        out: the markdown report, rewritten after every cell (None: ``work/report.md``). A file that
            this function did not write (e.g. a results page curated from several reports) is refused
            before any cell runs, so that a forgotten ``--out`` cannot replace it.
        config: the shipped config (or YAML file) MulSupCon, BCE and ASL run with.
        overrides: ``section.key`` values on top of it (e.g. a trial of new defaults).
        boomer: the Python interpreter that has ``mlrl-boomer`` (see :func:`boomer_python`); needed
            only when ``methods`` holds ``boomer``.
    """
    if methods is None:
        methods = [m for m in METHODS if m != "boomer" or boomer]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    # A seed named twice would count one run twice in each mean and shrink its std.
    for flag, values in (("--methods", methods), ("--seeds", seeds)):
        twice = sorted({str(v) for v in values if list(values).count(v) > 1})
        if twice:
            raise ValueError(f"{flag}: {', '.join(twice)} named twice")
    for seed in seeds:
        check_seed(seed, "each of --seeds")
    if "boomer" in methods and not boomer:
        raise ValueError(f"method 'boomer' needs a Python interpreter with mlrl-boomer: create one with {BOOMER_SETUP}, "
                         "then pass --boomer-python .venv-boomer/bin/python (or set MULSUPCON_BOOMER_PYTHON)")
    # Each cell names its dataset and seed: as overrides they would relabel other data (or one seed) silently.
    owned = {"dataset.name": "--datasets NAME (or NAME=PATH for your own file)",
             "dataset.path": "--datasets NAME=PATH", "seed": "--seeds"}
    clash = [key for key in owned if key in (overrides or {})]
    if clash:
        raise ValueError(f"the benchmark sets {', '.join(clash)} for each cell itself; use "
                         f"{'; '.join(owned[k] for k in clash)} instead")
    paths = parse_datasets(datasets)
    datasets = list(paths)
    work = Path(work)
    out = work / "report.md" if out is None else Path(out)
    check_report_overwritable(out, REPORT_TITLE)
    cells = [(d, m, s) for d in datasets for s in seeds for m in methods]
    done = 0
    skipped: dict[str, str] = {}  # "METHOD on DATASET" -> why it was not run (a forest beyond the memory)
    for d in datasets:
        cfg = benchmark_config(d, config, overrides, paths[d])
        files = data_files(cfg) if paths[d] else {}
        check_same_data(work, d, files)
        data: Optional[PreparedData] = None
        for s in seeds:
            for m in methods:
                done += 1
                cell = work / "cells" / d / f"{m}-seed{s}.json"
                if cell.is_file():
                    continue
                if data is None:
                    data = benchmark_data(d, cfg)
                    parts = arrays(data)
                    shapes[d] = {"train": data.train.n, "val": data.val.n, "test": data.test.n,
                                 "features": int(parts["train"][0].shape[1]), "labels": data.n_labels,
                                 "empty_train_rows": float((parts["train"][1].sum(1) == 0).mean()),
                                 # In every label-averaged metric, yet no method can learn them: their
                                 # scores rank the test rows arbitrarily (genbase: 2 of 27 labels).
                                 "unlearnable_labels": int(((parts["train"][1].sum(0) == 0)
                                                            & (parts["test"][1].sum(0) > 0)).sum())}
                    atomic_write_json(work / "cells" / d / "shape.json", shapes[d])
                if m in ("random-forest", "finetune+forest"):
                    why = forest_too_large(shapes[d]["train"], shapes[d]["labels"], available_memory())
                    if why is not None:  # no cell: a rerun with more memory runs it
                        say(f"[{done}/{len(cells)}] {d} {m} seed {s}: {why}")
                        skipped[f"{m} on {d}"] = why
                        write_report(work, out, datasets, seeds, methods, config, overrides, command,
                                     notes=_skip_notes(skipped))
                        continue
                c = copy.deepcopy(cfg)
                c["seed"] = int(s)
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(sys.stderr):
                    finetuned = work / "scores" / f"{d}-finetune-seed{s}.npz"
                    if m == "finetune+forest" and not finetuned.is_file():  # an older cell kept no scores
                        run_mulsupcon(c, data, work / "backbones" / f"{d}-seed{s}.pt", "finetune", keep=finetuned)
                    if m.startswith("mulsupcon-"):
                        scores = run_mulsupcon(c, data, work / "backbones" / f"{d}-seed{s}.pt", m.split("-")[1],
                                               keep=finetuned if m == "mulsupcon-finetune" else None)
                    elif m == "finetune+forest":
                        scores = run_ensemble(finetuned, parts, int(s))
                    elif m in ("bce", "asl"):
                        scores = run_scratch(c, data, m)
                    elif m == "boomer":
                        scores = run_boomer(parts, int(s), boomer)
                    else:
                        scores = run_sklearn(m, parts, int(s))
                seconds = time.perf_counter() - t0
                record = {"dataset": d, "method": m, "seed": s, "seconds": round(seconds, 2), "code": code_fingerprint(),
                          "config": config, "overrides": dict(overrides or {}), **({"data": files} if files else {})}
                if "version" in scores:  # a method run outside this environment says which release it was
                    record["version"] = scores.pop("version")
                atomic_write_json(cell, {**record, "metrics": scores})
                say(f"[{done}/{len(cells)}] {d} {m} seed {s}: test mAP {scores['validation']['mAP']:.4f} "
                    f"({seconds:.1f} s)")
                write_report(work, out, datasets, seeds, methods, config, overrides, command,
                             notes=_skip_notes(skipped))
    write_report(work, out, datasets, seeds, methods, config, overrides, command, notes=_skip_notes(skipped))
    return out



def _skip_notes(skipped: Mapping[str, str]) -> list[str]:
    """The report's paragraphs for the methods not run (``"random-forest on delicious"`` -> why)."""
    return [f"`{what}`: {why}." for what, why in skipped.items()]


def _load_cells(work: Path, datasets: Sequence[str], seeds: Sequence[int], methods: Sequence[str]) -> dict:
    found: dict = {}
    for d in datasets:
        for m in methods:
            for s in seeds:
                f = work / "cells" / d / f"{m}-seed{s}.json"
                if f.is_file():
                    found.setdefault(d, {}).setdefault(m, []).append(json.loads(f.read_text()))
    return found


def _mean_std(cells: list[dict], protocol: str, metric: str) -> tuple[float, float]:
    v = np.array([c["metrics"][protocol][metric] for c in cells], dtype=np.float64)
    return float(v.mean()), float(v.std())


def _wins(cells: list[dict], other: list[dict]) -> int:
    """The metrics (of 6) on which the mean over ``cells`` is above the mean over ``other`` (validation protocol)."""
    return sum(_mean_std(cells, "validation", m)[0] > _mean_std(other, "validation", m)[0] for m in METRICS)


REPORT_TITLE = "# MulSupCon against the usual alternatives on vector data"


def write_report(work: Path, out: Path, datasets: Sequence[str], seeds: Sequence[int], methods: Sequence[str],
                 config: str, overrides: Optional[Mapping[str, Any]], command: str, notes: Sequence[str] = ()) -> None:
    """The markdown report from the cells found under ``work`` (also for a partial benchmark); ``notes``:
    paragraphs added under the summary."""
    found = _load_cells(Path(work), datasets, seeds, methods)
    lines = [REPORT_TITLE, "",
             f"Command: `{command or 'mulsupcon benchmark vectors'}`", "",
             f"Config for MulSupCon / BCE / ASL: `{config}`" + (f" with {dict(overrides)}" if overrides else "")
             + f"; seeds {', '.join(map(str, seeds))}; machine: {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}. "
             "Every method sees identical train/val/test rows; all are scored by `mulsupcon.metrics`. "
             "mean ± std over seeds; time is the mean wall time of one seed (MulSupCon: pretraining included "
             "in finetune, the probe reuses its backbone).", ""]
    # Methods run in another interpreter (BOOMER) record their own library's version in each cell.
    versions = sorted({c["version"] for by_method in found.values() for m, cells in by_method.items()
                       if m == "boomer" for c in cells if "version" in c})
    if versions:
        lines += [f"`boomer`: mlrl-boomer {', '.join(versions)}, run in its own interpreter (`--boomer-python`).", ""]
    mixed = provenance_note(found)
    if mixed:
        lines += [mixed, ""]
    lines += ["## Summary (validation protocol: thresholds chosen on the validation rows)", "",
              "| dataset | train rows | labels | " + " | ".join(f"{m} mAP" for m in methods)
              + " | finetune beats BCE (of 6) | finetune mAP ≥ sklearn MLP |",
              "|---" * (3 + len(methods) + 2) + "|"]
    for d in datasets:
        if d not in found:
            continue
        shape = _shape(work, d)
        row = [d, str(shape.get("train", "?")), str(shape.get("labels", "?"))]
        for m in methods:
            cells = found[d].get(m)
            row.append(f"{_mean_std(cells, 'validation', 'mAP')[0]:.3f}" + ("" if len(cells) == len(seeds) else f" ({len(cells)} seed)")
                       if cells else "-")
        ft, bce, mlp = (found[d].get(k) for k in ("mulsupcon-finetune", "bce", "sklearn-mlp"))
        if ft and bce:
            row.append(f"{_wins(ft, bce)}")
        else:
            row.append("-")
        row.append(("yes" if _mean_std(ft, "validation", "mAP")[0] >= _mean_std(mlp, "validation", "mAP")[0] else "no")
                   if ft and mlp else "-")
        lines.append("| " + " | ".join(row) + " |")
    for note in notes:
        lines += ["", note]
    for protocol in PROTOCOLS:
        lines += ["", f"## All six metrics, {protocol} protocol", ""]
        for d in datasets:
            if d not in found:
                continue
            shape = _shape(work, d)
            lines += [f"**{d}** ({shape.get('train', '?')} train / {shape.get('val', '?')} val / "
                      f"{shape.get('test', '?')} test rows, {shape.get('features', '?')} features, "
                      f"{shape.get('labels', '?')} labels, {100 * shape.get('empty_train_rows', 0):.0f}% of training "
                      "rows without a label" + _unlearnable_note(shape.get("unlearnable_labels", 0)) + ")", "",
                      "| method | " + " | ".join(METRICS) + " | seconds | best epoch / run | seeds |",
                      "|---" * (len(METRICS) + 4) + "|"]
            for m in methods:
                cells = found[d].get(m)
                if not cells:
                    continue
                # One seed has no spread to show (a "± 0.000" would claim one); the seeds column counts them.
                vals = [f"{a:.3f}" if len(cells) == 1 else f"{a:.3f} ± {b:.3f}"
                        for a, b in (_mean_std(cells, protocol, k) for k in METRICS)]
                secs = float(np.mean([c["seconds"] for c in cells]))
                epochs = ("-" if "best_epoch" not in cells[0]["metrics"] else
                          f"{np.mean([c['metrics']['best_epoch'] for c in cells]):.0f} / "
                          f"{np.mean([c['metrics']['epochs_run'] for c in cells]):.0f}")
                lines.append(f"| {m} | " + " | ".join(vals) + f" | {secs:.1f} | {epochs} | {len(cells)} |")
            lines.append("")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines).rstrip() + "\n")


def compare_trials(reference: Path, trials: Sequence[Path], datasets: Optional[Sequence[str]] = None,
                   seeds: Optional[Sequence[int]] = None) -> str:
    """A markdown table of trial benchmarks (``--work`` folders run with ``--set`` overrides) against a
    reference one: per dataset, the reference's BCE and scikit-learn MLP mAP, then for the reference and
    each trial its finetune mAP, the metrics (of 6) on which that finetuning beats the reference's BCE,
    and its probe mAP, over the seeds the finetune cell and the reference's BCE cell share
    (validation protocol). Three last rows per folder: the datasets that meet both of issue 15's
    targets (at least 4 wins, and finetune mAP at least the MLP's on the same seeds); the (dataset,
    seed) pairs that meet both when each seed is judged alone (:func:`seed_by_seed`), a count that a
    single seed moves less; and the finetune mAP averaged over the datasets. ``seeds``: only
    these (default: every seed found). A trial that changes only classification can reuse the
    reference's pretrained backbones: copy ``backbones/`` into its folder before running it.
    """
    reference, trials = Path(reference), [Path(t) for t in trials]
    datasets, seeds = _sets_and_seeds(reference, trials, datasets, seeds)
    ref = _load_cells(reference, datasets, seeds, METHODS)
    runs = [reference] + trials
    found = [ref] + [_load_cells(t, datasets, seeds, METHODS) for t in trials]
    lines = ["| dataset | BCE mAP | MLP mAP | " + " | ".join(f"{r.name}: finetune mAP, wins, probe mAP" for r in runs) + " |",
             "|---" * (3 + len(runs)) + "|"]
    meets, pairs, maps = [0] * len(runs), [[0, 0] for _ in runs], [[] for _ in runs]
    for d in datasets:
        bce = {c["seed"]: c for c in ref.get(d, {}).get("bce", [])}
        if not bce:
            continue
        mlp = {c["seed"]: c for c in ref[d].get("sklearn-mlp", [])}
        row = [d, f"{_mean_std(list(bce.values()), 'validation', 'mAP')[0]:.3f}",
               f"{_mean_std(list(mlp.values()), 'validation', 'mAP')[0]:.3f}" if mlp else "-"]
        for i, cells in enumerate(found):
            ft = [c for c in cells.get(d, {}).get("mulsupcon-finetune", []) if c["seed"] in bce]
            if not ft:
                row.append("-")
                continue
            paired = [bce[c["seed"]] for c in ft]
            wins = _wins(ft, paired)
            ft_map = _mean_std(ft, "validation", "mAP")[0]
            maps[i].append(ft_map)
            per_seed = _seed_targets(ref[d], ft, seeds)
            pairs[i][0] += sum(w >= 4 and gap >= 0 for w, gap in per_seed.values())
            pairs[i][1] += len(per_seed)
            paired_mlp = [mlp[c["seed"]] for c in ft if c["seed"] in mlp]
            if wins >= 4 and len(paired_mlp) == len(ft) and ft_map >= _mean_std(paired_mlp, "validation", "mAP")[0]:
                meets[i] += 1
            probe = cells[d].get("mulsupcon-probe")
            row.append(f"{ft_map:.3f}, {wins}, "
                       + (f"{_mean_std(probe, 'validation', 'mAP')[0]:.3f}" if probe else "-")
                       + (f" ({len(ft)} of {len(bce)} seeds)" if len(ft) != len(bce) else ""))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("| both targets met | | | " + " | ".join(f"{n} sets" for n in meets) + " |")
    lines.append("| (set, seed) pairs meeting both | | | " + " | ".join(f"{m} of {n}" for m, n in pairs) + " |")
    lines.append("| mean finetune mAP | | | " + " | ".join(
        f"{np.mean(v):.3f} ({len(v)} sets)" if v else "-" for v in maps) + " |")
    return "\n".join(lines) + "\n"


def seed_by_seed(reference: Path, trial: Optional[Path] = None, datasets: Optional[Sequence[str]] = None,
                 seeds: Optional[Sequence[int]] = None) -> str:
    """A markdown table of issue 15's two targets seed by seed: per dataset and seed, the metrics (of 6) on
    which the finetune of ``trial`` (default: the reference itself) beats the reference's BCE of that seed,
    then its mAP minus the reference's scikit-learn MLP of that seed (validation protocol); a last column
    counts the seeds that meet both (at least 4 wins and a difference >= 0). It shows how much of a
    trial's count of sets is decided by single seeds. A seed without all three cells shows '-' and is not counted."""
    reference = Path(reference)
    trial = reference if trial is None else Path(trial)
    datasets, seeds = _sets_and_seeds(reference, [trial], datasets, seeds)
    ref, found = _load_cells(reference, datasets, seeds, METHODS), _load_cells(trial, datasets, seeds, METHODS)
    lines = [f"{trial.name} against {reference.name}'s BCE and MLP: wins of 6, finetune mAP minus the MLP's", "",
             "| dataset | " + " | ".join(f"seed {s}" for s in seeds) + " | seeds meeting both |",
             "|---" * (len(seeds) + 2) + "|"]
    for d in datasets:
        per_seed = _seed_targets(ref.get(d, {}), found.get(d, {}).get("mulsupcon-finetune", []), seeds)
        if per_seed:
            row = [f"{per_seed[s][0]}, {per_seed[s][1]:+.3f}" if s in per_seed else "-" for s in seeds]
            meets = sum(w >= 4 and gap >= 0 for w, gap in per_seed.values())
            lines.append(f"| {d} | " + " | ".join(row) + f" | {meets} of {len(per_seed)} |")
    return "\n".join(lines) + "\n"


def _seed_targets(ref_cells: dict, finetune: Sequence[dict], seeds: Sequence[int]) -> dict[int, tuple[int, float]]:
    """Per seed that has a finetune cell and the reference's BCE and MLP cells (``ref_cells``: one
    dataset's cells of the reference, by method): (metrics of 6 won against that seed's BCE, finetune
    mAP minus that seed's MLP mAP), validation protocol."""
    by_seed = {m: {c["seed"]: c for c in ref_cells.get(m, [])} for m in ("bce", "sklearn-mlp")}
    by_seed["ft"] = {c["seed"]: c for c in finetune}
    out = {}
    for s in seeds:
        if all(s in cells for cells in by_seed.values()):
            ft, bce, mlp = by_seed["ft"][s], by_seed["bce"][s], by_seed["sklearn-mlp"][s]
            out[s] = (_wins([ft], [bce]), ft["metrics"]["validation"]["mAP"] - mlp["metrics"]["validation"]["mAP"])
    return out


def _sets_and_seeds(reference: Path, others: Sequence[Path], datasets: Optional[Sequence[str]],
                    seeds: Optional[Sequence[int]]) -> tuple[list[str], list[int]]:
    """The datasets (default: the reference's, the data home's order first, then users' own sets) and
    the seeds (default: every seed of any cell in these folders) a comparison covers."""
    if datasets is None:
        found_sets = {f.name for f in (reference / "cells").iterdir() if f.is_dir()} if (reference / "cells").is_dir() else set()
        datasets = [d for d in DATASETS if d in found_sets] + sorted(found_sets - set(DATASETS))
    if seeds is None:
        seeds = sorted({int(f.stem.rsplit("-seed", 1)[1]) for w in [reference, *others]
                        for f in w.glob("cells/*/*-seed*.json")})
    return list(datasets), list(seeds)


def _unlearnable_note(k: int) -> str:
    """The heading's clause on labels with test positives but no training positive (none: empty)."""
    return (f"; labels with test positives but none in training: {k} (every method ranks their test rows "
            "arbitrarily, yet the label-averaged metrics count them)") if k else ""


def _shape(work: Path, d: str) -> dict:
    f = Path(work) / "cells" / d / "shape.json"
    return shapes.get(d) or (json.loads(f.read_text()) if f.is_file() else {})
