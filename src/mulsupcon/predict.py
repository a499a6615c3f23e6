"""Prediction with a trained run, without its training data: ``load_run`` and ``predict``.

>>> model = load_run("runs/my-ft")              # reads runs/my-ft/model.pt (self-contained)
>>> proba = model.predict_proba(X)             # raw rows (N, F) as in the training file -> (N, L)
>>> Y = model.predict(X)                       # 0/1 at the run's validation-chosen threshold
>>> Z = model.transform(X)                     # backbone embeddings (N, D)
>>> Z = load_run("runs/my-pre").transform(X)   # a pretraining run's backbone.pt: embeddings only

``model.pt`` holds the weights, the architecture, the training split's standardisation, the label and
feature names, the input shape and the thresholds chosen on the validation split
(:func:`mulsupcon.train.classify.self_contained_model`). Images are given as uint8 arrays (N, 3, H, W)
(any size: they are resized as the training images were) or as files.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from mulsupcon.data import ReadOptions
from mulsupcon.data.formats import CATEGORY_SEP, cell_text, first_unrepresentable, one_hot_encode, one_hot_groups
from mulsupcon.data.svmlight import is_svmlight
from mulsupcon.data.user_files import (IMAGE_SUFFIXES, TABLE_SUFFIXES, as_csv_hint, feature_order, format_suffix,
                                       in_column_order, parse_column_names, parse_label_columns, table_delimiter)
from mulsupcon.io import atomic_write_text
from mulsupcon.metrics import check_probability_threshold
from mulsupcon.models import MultiLabelClassifier, build_backbone
from mulsupcon.train.checkpoint import load_checkpoint
from mulsupcon.train.data import ImageViews
from mulsupcon.train.runtime import resolve_device


class TrainedModel:
    """A classifier loaded from ``model.pt`` (``predict_proba``, ``predict``, ``transform``), or a pretrained
    backbone loaded from ``backbone.pt`` (``transform`` only: ``has_classifier`` is False).

    Attributes: ``label_names`` (L), ``feature_names`` (F, vectors), ``thresholds`` (per thresholded
    metric, chosen on the validation split), ``threshold`` (the micro-F1 one: what :meth:`predict` uses;
    None for a backbone), ``train_positives`` (L, each label's training rows; None for a model saved
    before they were kept, and for a backbone), ``input_shape``, ``is_image``, ``config`` (the run's
    resolved config), ``model`` (the torch module: the classifier, or the backbone), ``backbone``.
    """

    def __init__(self, state: dict, device: str = "cpu", source: str = ""):
        self.has_classifier = "thresholds" in state  # model.pt; a pretraining run's backbone.pt has none
        if "standardizer" not in state or "label_names" not in state:
            raise ValueError(f"{source}: a model.pt written before models were self-contained (no standardizer); "
                             f"train the run again to predict with it" if self.has_classifier or "backbone" not in state
                             else f"{source}: a backbone.pt written before pretraining runs kept their input "
                             "standardisation; pretrain again to embed rows with it")
        self.source = source
        self.label_names: list[str] = list(state["label_names"])
        self.feature_names: list[str] = list(state.get("feature_names") or [])
        self.thresholds: dict[str, float] = dict(state.get("thresholds") or {})
        self.threshold: Optional[float] = float(state["threshold"]) if self.has_classifier else None
        # Each label's training rows (L,); None for a model saved before they were kept.
        self.train_positives: Optional[list[int]] = state.get("train_positives")
        self.input_shape = tuple(state["input_shape"])
        self.is_image = bool(state["is_image"])
        self.config: dict = dict(state.get("config") or {})
        # {column: its values}: the text columns training one-hot encoded (dataset.categorical_columns), which
        # a table given to predict holds as text again.
        self.categories: dict[str, list[str]] = one_hot_groups(self.feature_names, parse_column_names(
            self.config.get("dataset", {}).get("categorical_columns"), "categorical_columns"))
        self.device = resolve_device(device)
        if self.has_classifier:
            self.backbone = build_backbone(state["model_cfg"], self.input_shape)
            self.model: torch.nn.Module = MultiLabelClassifier(self.backbone, len(self.label_names))
            self.model.load_state_dict(state["model"])
        else:  # backbone.pt keeps the architecture under "model" and the weights under "backbone"
            self.backbone = self.model = build_backbone(state["model"], self.input_shape)
            self.backbone.load_state_dict(state["backbone"])
        self.model.to(self.device).eval()
        std = state["standardizer"]
        self._mean, self._std = std["mean"], std["std"]
        # (F,) what a missing feature becomes (the run's dataset.missing filled them), or None: refused.
        self._fill: Optional[torch.Tensor] = state.get("missing_fill")
        self._view = ImageViews(int(self.input_shape[-1]), "eval") if self.is_image else None

    def __repr__(self) -> str:
        inputs = "x".join(map(str, self.input_shape)) + (" images" if self.is_image else " features")
        what = (f"{self.config.get('classify', {}).get('mode', 'classifier')}, {inputs} -> {len(self.label_names)} "
                f"labels, threshold {self.threshold:g}" if self.has_classifier
                else f"pretrained backbone, {inputs} -> embeddings of {self.backbone.out_dim}; no classifier")
        return f"TrainedModel({self.source!r}: {what})"

    @property
    def classes_(self) -> np.ndarray:
        """The label names as an array (scikit-learn's name)."""
        return np.asarray(self.label_names, dtype=object)

    def _checked(self, x: Any) -> Any:
        """Raw rows (N, F) (dense or sparse, or a table with named columns) or uint8 images (N, C, H, W),
        checked, not yet converted: a NumPy array or a SciPy sparse matrix."""
        # A table whose columns are named (not pandas' default 0, 1, ... of a wrapped array) is read by name.
        if hasattr(x, "columns") and not self.is_image and all(isinstance(c, str) for c in x.columns):
            x = self._columns_by_name(x)
        if self.is_image:
            arr = np.asarray(x)
            if arr.ndim != 4 or arr.dtype != np.uint8 or arr.shape[1] != self.input_shape[0]:
                raise ValueError(f"expected uint8 images (N, {self.input_shape[0]}, H, W), got {arr.shape} {arr.dtype}")
            return arr
        arr = x.tocsr() if sp.issparse(x) else np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"expected numeric rows, got values of type {arr.dtype} (e.g. {arr.flat[0]!r})"
                             if arr.size else f"expected numeric rows, got an array of type {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.input_shape[0]:
            raise ValueError(f"expected rows of {self.input_shape[0]} features (N, {self.input_shape[0]}), "
                             f"got shape {arr.shape}")
        return arr

    def _columns_by_name(self, table: Any) -> np.ndarray:
        """A table with named columns (a pandas DataFrame) -> (N, F) float64 in the model's feature order.

        Its columns are found by the training feature names, in any order, as ``predict`` reads a CSV:
        taking a table's columns by position would give wrong scores, silently, for a table whose columns
        come in another order. A categorical column is read as text and one-hot encoded with the training
        values; other columns are not read."""
        columns = [str(c) for c in table.columns]
        have = set(columns)
        made = {f"{c}{CATEGORY_SEP}{v}": c for c, values in self.categories.items() for v in values}
        lacking = list(dict.fromkeys(made.get(f, f) for f in self.feature_names if f not in have and made.get(f) not in have))
        if lacking:
            unnamed = self.feature_names == [f"f{j}" for j in range(len(self.feature_names))]  # from_arrays' names
            raise ValueError(f"the table has no column {lacking[0]!r} ({len(lacking)} of the columns the model reads are "
                             f"missing; the table's: {columns[:10]})"
                             + ("; the model was trained on an unnamed array: pass table.to_numpy() to give the columns "
                                "by position" if unnamed else ""))
        where = [f"row {i}" for i in range(len(table))]
        encoded = {c: one_hot_encode([cell_text(v) for v in table[c].tolist()], c, where,
                                     values=values, allow_missing=self.allows_missing, missing_hint=self.missing_hint)[1]
                   for c, values in self.categories.items() if c in have}
        out = np.empty((len(table), len(self.feature_names)), dtype=np.float64)
        for j, f in enumerate(self.feature_names):
            if f in have:
                try:
                    column = table[f]  # a null of pandas' nullable types (Int64, boolean) as NaN, a missing value
                    out[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan) if hasattr(column, "to_numpy") \
                        else np.asarray(column, dtype=np.float64)
                except (TypeError, ValueError):
                    raise ValueError(f"column {f!r} holds values that are not numbers (e.g. {table[f].iloc[0]!r}); "
                                     "the model reads it as a number") from None
            else:
                c = made[f]
                out[:, j] = encoded[c][:, self.categories[c].index(f[len(c) + len(CATEGORY_SEP):])]
        return out

    def _model_input(self, rows: Any, first_row: int = 0) -> torch.Tensor:
        """Checked rows (a slice of :meth:`_checked`'s result, whose first row is ``first_row``) -> the model's
        input batch: missing values filled, standardised; a non-finite value is named by its row."""
        if self.is_image:
            return torch.as_tensor(rows)
        arr = rows.toarray() if sp.issparse(rows) else rows
        where = first_unrepresentable(arr, allow_nan=self._fill is not None)
        if where is not None:  # checked before float32, which would turn 1e300 into inf
            r, c = where
            why = f" ({self.missing_hint})" if np.isnan(arr[r, c]) else ""
            named = f" ({self.feature_names[c]!r})" if c < len(self.feature_names) else ""
            raise ValueError(f"input holds {arr[r, c].item()!r} at row {first_row + r}, column {c}{named}; every feature must "
                             f"be a finite number that float32 can hold{why}")
        # A read-only array (a read-only memmap, pandas' copy-on-write values) is copied: torch warns on one.
        t = torch.from_numpy(np.require(arr, dtype=np.float32, requirements="W"))
        if self._fill is not None:
            t = torch.where(t.isnan(), self._fill, t)
        return t if self._mean is None else (t - self._mean) / self._std

    @property
    def allows_missing(self) -> bool:
        """Whether missing feature values (NaN) are filled in (the run had ``dataset.missing`` other than ``error``)."""
        return self._fill is not None

    @property
    def missing_hint(self) -> str:
        """What to do about a missing value in an input this model refuses."""
        return ("this model was trained with dataset.missing: error; fill missing values in, or train with "
                "--dataset.missing mean (or median, most_frequent)")

    def require_classifier(self) -> None:
        """Raise ValueError, saying what to do, when this is a pretraining run's backbone (no classifier)."""
        if not self.has_classifier:
            raise ValueError(f"{self.source} is a pretraining run's backbone: it embeds rows (transform, or "
                             "`mulsupcon predict --embeddings`) but has no classifier; train one on it first: "
                             f"mulsupcon train --mode finetune --from {Path(self.source).parent} --run-dir RUN")

    @torch.no_grad()
    def _forward(self, x: Any, output: str, batch_size: int = 512) -> np.ndarray:
        """``output``: "proba" (N, L), "logits" (N, L) or "embed" (N, D) of raw rows or images."""
        if output != "embed":
            self.require_classifier()
        # Converted (densified, standardised) a batch at a time: a large or sparse input is never copied whole.
        x = self._checked(x)
        out = []
        for first in range(0, x.shape[0], batch_size):
            chunk = self._model_input(x[first:first + batch_size], first)
            if self._view is not None:
                chunk = self._view(chunk, None)
            chunk = chunk.to(self.device)
            scores = self.backbone(chunk) if output == "embed" else self.model(chunk)
            out.append((torch.sigmoid(scores) if output == "proba" else scores).float().cpu())
        width = int(self.backbone.out_dim) if output == "embed" else len(self.label_names)
        return torch.cat(out).numpy() if out else np.zeros((0, width), np.float32)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Label probabilities (N, L) of raw rows (N, F) or uint8 images (N, C, H, W). A pandas DataFrame's
        columns are found by the training feature names (any order; a categorical column as text)."""
        return self._forward(x, "proba")

    def logits(self, x: Any) -> np.ndarray:
        """The scores (N, L) before the sigmoid (``predict_proba`` is their sigmoid)."""
        return self._forward(x, "logits")

    def predict(self, x: Any, threshold: Optional[float] = None) -> np.ndarray:
        """0/1 labels (N, L): probability >= ``threshold`` (default: :attr:`threshold`, chosen on validation)."""
        cut = self.threshold if threshold is None else check_probability_threshold(threshold)
        return (self.predict_proba(x) >= cut).astype(np.uint8)

    def transform(self, x: Any) -> np.ndarray:
        """Backbone embeddings (N, D)."""
        return self._forward(x, "embed")

    def read_input(self, path: str | Path) -> tuple[Any, Optional[list[str]]]:
        """Inputs from a file or folder in the training formats: ``(x, image file names or None)``.

        Vectors: CSV/TSV (columns found by the training feature names, in any order; label columns and
        others are ignored), NPZ (``features``/``X``), HDF5 (``feature``), ARFF (read as in training),
        svmlight (features by index, below the model's count; the label ids are not used).
        Images: a folder (every image file in it, sorted by name, or those listed in the first column of
        a ``labels.csv`` there), an HDF5 ``Image`` or NPZ array.
        """
        return read_inputs(path, self)


def load_run(run: str | Path, device: str = "cpu") -> TrainedModel:
    """The classifier of a finished classification run (its folder, or a ``model.pt`` itself), or the
    backbone of a finished pretraining run (its folder, or its ``backbone.pt``), which embeds rows only."""
    from mulsupcon.train.rundir import check_classification_run

    folder = Path(run)
    if folder.is_file():
        path = folder
    elif (folder / "backbone.pt").is_file() and not (folder / "model.pt").is_file():
        path = folder / "backbone.pt"
    else:
        check_classification_run(folder, "model.pt", "use it")
        path = folder / "model.pt"
    return TrainedModel(load_checkpoint(path), device=device, source=str(path))


# ----------------------------------------------------------------------------- reading inputs
def read_inputs(path: str | Path, model: TrainedModel) -> tuple[Any, Optional[list[str]]]:
    """See :meth:`TrainedModel.read_input`."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        if not model.is_image:
            raise ValueError(f"{path} is a folder, but the model takes vectors of {model.input_shape[0]} features")
        names = image_folder_names(path)
        return decode_images(path, names, _stored_image_size(model)), names
    suffix = format_suffix(path)
    svm = is_svmlight(path)
    if model.is_image and (suffix in (*TABLE_SUFFIXES, ".arff", ".parquet") or svm):
        raise ValueError(f"{path}: this model is for images; --input takes a folder of images (or an HDF5 / NPZ "
                         "array of them), not a table")
    if svm:  # features by index; the label ids are not used
        from mulsupcon.data.svmlight import read_svmlight_features

        return read_svmlight_features(path, len(model.feature_names), allow_missing=model.allows_missing), None
    if suffix == ".parquet":  # a DataFrame: the model finds its columns by name (as a CSV's)
        from mulsupcon.data.parquet import read_frame

        return read_frame(path), None
    if suffix in TABLE_SUFFIXES:
        from mulsupcon.data.formats import read_table

        # Only the model's feature columns are read: labels, ids and other columns may be anything.
        _, data, _ = read_table(path, delimiter=table_delimiter(path), columns=model.feature_names,
                                whose="model's feature", allow_missing=model.allows_missing,
                                missing_hint=model.missing_hint, categories=model.categories)
        return data, None
    if suffix == ".npz":
        from mulsupcon.data.formats import open_npz

        with open_npz(path) as z:  # a damaged or object-array file is named as in training
            key = next((k for k in ("features", "X") if k in z.files), None)
            if key is None:
                raise ValueError(f"{path}: no 'features' (or 'X') array; found {z.files}")
            x = z[key]
            if "feature_names" in z.files and not model.is_image:  # matched to the model's by name
                order = feature_order([str(n) for n in z["feature_names"].tolist()], model.feature_names, path,
                                      "the model")
                x = x if order is None else x[:, order]
            return x, None
    if suffix == ".npy":  # one array (np.save), in the model's feature order: it names no columns
        from mulsupcon.data.formats import read_npy

        return read_npy(path), None
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            if "Image" in f:
                return np.ascontiguousarray(f["Image"][()].transpose(0, 3, 1, 2)), None
            if "feature" not in f:
                raise ValueError(f"{path}: no 'feature' (or 'Image') dataset; found {sorted(f.keys())}")
            return f["feature"][()], None
    if suffix == ".arff":
        from mulsupcon.data.arff import missing_mode, read_arff

        ds_cfg = model.config.get("dataset", {})
        ds = read_arff(path, parse_label_columns(ds_cfg.get("label_columns")), xml=ds_cfg.get("xml"),
                       missing=missing_mode(model.allows_missing))
        return in_column_order(ds, model.feature_names, ds.label_names, path, "the model").features, None
    raise ValueError(f"{path}: unknown input type {suffix!r}; expected .csv, .tsv, .npz, .h5/.hdf5, .arff, .svm/.libsvm, "
                     ".parquet "
                     f"or a folder of images{as_csv_hint(path)}")


def read_labelled_inputs(path: str | Path, model: TrainedModel,
                         labels: Optional[str | Path] = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a vector file, or images of a folder, and their labels, matched to the model's by name:
    ``(x (N, F) or uint8 (N, 3, S, S), y (N, L) uint8)``.

    CSV/TSV: the model's feature and label columns, found by name in any order (other columns are not
    read); a model trained on labels listed by name (``dataset.label_sep``) reads its label column so. With
    ``labels`` (a CSV/TSV of labels only, row for row), every feature column of ``path`` and the model's label
    columns of ``labels``, as training reads such a pair (an ignored column in both, an id, pairs the rows).
    svmlight: the rows' label ids must be the model's, the feature indices below its feature count (sparse rows
    stay a CSR matrix). NPZ, HDF5, ARFF: read as in training (the run's ``label_columns`` and ``xml``); their label names
    must be the model's, and a file that names none (HDF5) is taken in the model's label order. An
    image folder: its label file ``labels`` (default ``FOLDER/labels.csv``), in the formats training
    reads (one 0/1 column per label, a column listing names, or JSON), with the run's ``label_sep`` and
    ``ignore_columns``; only the model's labels may occur.
    """
    from mulsupcon.data.formats import (
        DataFormatError,
        MissingColumns,
        default_label_names,
        label_columns_checked,
        label_matrix,
        read_table,
        read_text_columns,
    )
    from mulsupcon.data.user_files import from_file, parse_label_sep

    path = Path(path).expanduser()
    if model.is_image:
        names, y, label_file = labelled_image_folder(path, model, labels)
        return decode_images(path, names, _stored_image_size(model), listed_in=label_file), y
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    suffix = format_suffix(path)
    delimiter = table_delimiter(path)
    sep = parse_label_sep(model.config.get("dataset", {}).get("label_sep"))
    if is_svmlight(path):  # the model's label ids and feature count
        if labels is not None:
            raise ValueError(f"{path.name} holds its labels itself (the ids that start each row): drop --label-file")
        from mulsupcon.data.svmlight import read_svmlight

        ds = read_svmlight(path, label_names=model.label_names, n_features=len(model.feature_names), whose="the model",
                           allow_missing=model.allows_missing)
        return ds.features, ds.labels  # sparse rows stay so: scored a batch at a time
    if suffix == ".parquet":
        if labels is not None:
            raise ValueError(f"{path.name} holds its labels itself: drop --label-file")
        return parquet_labelled(path, model)
    if labels is not None and suffix == ".npy":  # X.npy and Y.npy, row for row, taken by position
        from mulsupcon.data.formats import read_npy_pair

        ds = read_npy_pair(path, Path(labels).expanduser(), allow_missing=model.allows_missing)
        ds = in_column_order(ds, model.feature_names, ds.label_names, path, "the model")  # the count is checked
        if ds.n_labels != len(model.label_names):
            raise ValueError(f"{labels}: {ds.n_labels} label columns, but the model has {len(model.label_names)}")
        return np.asarray(ds.features), np.asarray(ds.labels, dtype=np.uint8)
    if labels is not None:  # features and labels in files of their own, row for row, read as training reads them
        if suffix not in TABLE_SUFFIXES:
            raise ValueError(f"a label file (--label-file {labels}) goes with a folder of images or a CSV/TSV or .npy "
                             f"file of features; {path.name} holds its labels itself")
        from mulsupcon.data.formats import read_csv

        label_file = Path(labels).expanduser()
        if not label_file.is_file():
            raise FileNotFoundError(f"label file not found: {label_file}")
        ds_cfg = model.config.get("dataset", {})
        ds = read_csv(path, parse_label_columns(ds_cfg.get("label_columns")) if sep is not None else model.label_names,
                      ignore_columns=parse_column_names(ds_cfg.get("ignore_columns"), "ignore_columns"), label_sep=sep,
                      label_names=model.label_names if sep is not None else None, delimiter=delimiter,
                      allow_missing=model.allows_missing, categorical_columns=list(model.categories),
                      categories=model.categories, label_path=label_file, label_delimiter=table_delimiter(label_file))
        ds = in_column_order(ds, model.feature_names, model.label_names, path, "the model")
        return np.asarray(ds.features), np.asarray(ds.labels, dtype=np.uint8)
    if suffix in TABLE_SUFFIXES and sep is not None:
        column = parse_label_columns(model.config["dataset"].get("label_columns"))
        if not isinstance(column, list):  # "the last column": this file is read as the training file was
            from mulsupcon.data.formats import read_csv

            ignored = parse_column_names(model.config["dataset"].get("ignore_columns"), "ignore_columns")
            ds = read_csv(path, column, ignore_columns=ignored, label_sep=sep, label_names=model.label_names,
                          delimiter=delimiter, allow_missing=model.allows_missing,
                          categorical_columns=list(model.categories), categories=model.categories)
            if ds.feature_names != model.feature_names:
                raise ValueError(f"{path}: its feature columns {ds.feature_names[:5]}... are not the model's "
                                 f"{model.feature_names[:5]}... in the same order (the labels are its last column, "
                                 f"as in training)")
            return ds.features, ds.labels
        _, data, line_of = read_table(path, delimiter=delimiter, columns=model.feature_names, whose="model's feature",
                                      allow_missing=model.allows_missing, missing_hint=model.missing_hint,
                                      categories=model.categories)
        fields = [row[0] for row in read_text_columns(path, column, delimiter=delimiter)]
        _, y = label_matrix(fields, sep, model.label_names, where=[f"{path}:{n}" for n in line_of])
        return data, y
    if suffix in TABLE_SUFFIXES:
        n_feat = len(model.feature_names)
        try:
            _, data, line_of = read_table(path, delimiter=delimiter,
                                          columns=model.feature_names + model.label_names, whose="model's feature or label",
                                          allow_missing=model.allows_missing, missing_hint=model.missing_hint,
                                          labels=model.label_names, categories=model.categories)
        except MissingColumns as err:
            if not set(err.missing) & set(model.label_names):
                raise
            raise DataFormatError(f"{err}; labels kept in a file of their own go with --label-file FILE") from None
        y = label_columns_checked(data[:, n_feat:], model.label_names, [f"{path}:{n}" for n in line_of])
        return np.ascontiguousarray(data[:, :n_feat]), y
    ds_cfg = model.config.get("dataset", {}) if suffix == ".arff" else {}  # which ARFF attributes are labels
    ds = from_file(path, label_columns=ds_cfg.get("label_columns"), xml=ds_cfg.get("xml"),
                   options=ReadOptions(allow_missing=model.allows_missing))
    ds = in_column_order(ds, model.feature_names, model.label_names, path, "the model")  # by name, in any order
    names = list(ds.label_names)
    if names == default_label_names(ds.n_labels) and ds.n_labels == len(model.label_names):
        names = model.label_names  # a file that names no labels (HDF5, e.g. `mulsupcon embed`'s) is in the model's order
    if names != model.label_names:
        raise ValueError(f"{path}: labels {list(ds.label_names)[:5]}... are not the model's "
                         f"{model.label_names[:5]}... ({ds.n_labels} against {len(model.label_names)})")
    features = ds.features.toarray() if sp.issparse(ds.features) else np.asarray(ds.features)
    return features, np.asarray(ds.labels, dtype=np.uint8)


def parquet_labelled(path: Path, model: TrainedModel) -> tuple[Any, np.ndarray]:
    """A Parquet file's rows (a DataFrame; the model reads its feature columns by name) and labels (N, L)
    uint8: its columns of the model's label names, or the one column that lists them, as in training."""
    from mulsupcon.data.parquet import label_block, listed_labels, read_frame
    from mulsupcon.data.user_files import parse_label_sep

    frame = read_frame(path)
    where = [f"{path}: row {i + 1}" for i in range(len(frame))]
    ds_cfg = model.config.get("dataset", {})
    sep = parse_label_sep(ds_cfg.get("label_sep"))
    column = parse_label_columns(ds_cfg.get("label_columns"))
    listing = column[0] if isinstance(column, list) and len(column) == 1 and column[0] not in model.label_names else None
    if listing is not None:  # one column listed each row's label names in training
        if listing not in frame.columns:
            raise ValueError(f"{path}: no column {listing!r}, which lists the labels (as in training)")
        return frame, listed_labels(frame[listing], sep, model.label_names, where)[1]
    lacking = [n for n in model.label_names if n not in frame.columns]
    if lacking:
        raise ValueError(f"{path}: no label column {lacking[0]!r} ({len(lacking)} of the model's {len(model.label_names)} "
                         "labels are missing)")
    return frame, label_block(frame[model.label_names], where)


def labelled_image_folder(folder: Path, model: TrainedModel,
                          labels: Optional[str | Path] = None) -> tuple[list[str], np.ndarray, Path]:
    """An image folder's label file (``labels``, default ``folder/labels.csv``; see
    :func:`read_labelled_inputs`): the images' names relative to ``folder``, their labels (N, L) uint8 in
    the model's label order, and the label file's path. Nothing is decoded."""
    from mulsupcon.data.image_layouts import read_image_folder
    from mulsupcon.data.user_files import parse_label_sep

    if not folder.is_dir():
        raise ValueError(f"{folder}: this model is for images; give a folder of images (and its label file with "
                         "--label-file FILE, default FOLDER/labels.csv)")
    label_file = folder / "labels.csv" if labels is None else Path(labels).expanduser()
    if not label_file.is_file():
        raise FileNotFoundError(f"no label file {label_file}: evaluating images needs their labels; give the file "
                                "with --label-file FILE (a CSV of file name then labels, or a JSON)")
    ds_cfg = model.config.get("dataset", {})
    images = read_image_folder(folder, label_file, label_names=model.label_names,
                               label_sep=parse_label_sep(ds_cfg.get("label_sep")),
                               ignore_columns=parse_column_names(ds_cfg.get("ignore_columns"), "ignore_columns"))
    return [str(p.relative_to(folder)) for p in images.paths], np.asarray(images.labels, dtype=np.uint8), label_file


def score_image_folder(model: TrainedModel, folder: Path, names: Sequence[str], score: Callable[[Any], np.ndarray],
                       chunk: int = 1024, listed_in: Optional[Path] = None) -> np.ndarray:
    """``score`` (e.g. ``model.predict_proba``) of ``folder``'s images ``names``, decoded a chunk at a time:
    the pixels of a whole folder (N x 3 x S x S bytes) need not fit in memory. Returns (N, L)."""
    size = _stored_image_size(model)
    return np.concatenate([score(decode_images(folder, names[i:i + chunk], size, listed_in))
                           for i in range(0, len(names), chunk)])


def _stored_image_size(model: TrainedModel) -> int:
    """The side at which the run's images were stored (decoded) before its evaluation view."""
    return int(model.config.get("dataset", {}).get("image_size") or model.input_shape[-1])


def image_folder_names(folder: Path) -> list[str]:
    """The images of a folder to predict, in output order, as paths relative to it: those its ``labels.csv``
    lists (first column; the file read as training reads a label file), else every image file in it and
    its subfolders (as a label file may list ``sub/img.jpg``), sorted by path."""
    from mulsupcon.data.formats import text_rows

    listing = folder / "labels.csv"
    if listing.is_file():
        names = [row[0].strip() for row in text_rows(listing)[2] if row[0].strip()]
    else:
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return names


def decode_images(folder: Path, names: Sequence[str], size: int, listed_in: Optional[Path] = None) -> np.ndarray:
    """uint8 (N, 3, size, size) pixels of ``folder``'s images ``names``; an unreadable one is named (with
    ``listed_in``, the label file that lists it)."""
    from mulsupcon.data.image_cache import decode_errors, decode_image

    out = np.empty((len(names), 3, size, size), dtype=np.uint8)
    for i, name in enumerate(names):
        try:
            out[i] = decode_image(folder / name, size)
        except decode_errors() as err:
            remedy = (f"remove its row from {listed_in}" if listed_in is not None else
                      "every image gets an output row, so remove it (or list the others in the folder's labels.csv)")
            raise ValueError(f"cannot read image {folder / name}: {type(err).__name__}: {err}; {remedy}") from err
    return out


def top_labels(proba: np.ndarray, label_names: Sequence[str], k: int) -> tuple[list[str], list[list[str]]]:
    """Each row's ``k`` most probable labels, most probable first (ties in label order): the columns
    ``label_1, p_1, ..., label_k, p_k`` and one row of cells per row of ``proba`` (N, L). ``k`` above L gives L."""
    if k < 1:
        raise ValueError(f"--top {k}: give the number of labels to write per row, 1 or more")
    k = min(k, len(label_names))
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    names = np.asarray(label_names, dtype=object)
    rows = [[cell for j in ranks for cell in (names[j], f"{float(p[j]):.6g}")] for p, ranks in zip(proba, order)]
    return [c for i in range(1, k + 1) for c in (f"label_{i}", f"p_{i}")], rows


def write_predictions(out: str | Path, values: np.ndarray | Sequence[Sequence[str]], label_names: Sequence[str],
                      files: Optional[Sequence[str]] = None, labels: bool = False,
                      kept: Optional[tuple[Sequence[str], Sequence[Sequence[str]]]] = None) -> Path:
    """CSV: a header of the label names, one row per input row (atomic write; ``out="-"``: standard output).

    ``values``: (N, L) numbers, or N rows of cells already written out (as :func:`top_labels` gives them),
    under the columns ``label_names``. Leading columns: ``file`` for images (``files``, N names), and ``kept``
    = (names, N rows of fields) copied from the input.
    """
    lead_names = (["file"] if files is not None else []) + (list(kept[0]) if kept is not None else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(lead_names + list(label_names))
    for i, row in enumerate(values):
        if not isinstance(values, np.ndarray):
            cells = list(row)
        else:
            cells = [str(int(v)) for v in row] if labels else [f"{float(v):.6g}" for v in row]
        lead = ([files[i]] if files is not None else []) + (list(kept[1][i]) if kept is not None else [])
        writer.writerow(lead + cells)
    if str(out) == "-":
        sys.stdout.write(buf.getvalue())
        sys.stdout.flush()
        return Path("-")
    out = Path(out)
    if out.exists() and not out.is_file():  # /dev/null, a named pipe: a stream to write into, not a file to replace
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        return out
    atomic_write_text(out, buf.getvalue())
    return out


def _ends_as_predict_writes(header: Sequence[str], label_names: Sequence[str]) -> bool:
    """Whether a CSV header ends as ``predict`` writes one for a model of these labels: the label names,
    ``label_1, p_1, ...`` (``--top``) or ``emb0, emb1, ...`` (``--embeddings``)."""
    if list(header[-len(label_names):]) == list(label_names):
        return True
    top = [c for i in range(1, len(header) // 2 + 1) for c in (f"label_{i}", f"p_{i}")]
    ranked = next((k for k in range(len(top), 0, -2) if list(header[-k:]) == top[:k]), 0)
    embedded = next((k for k in range(len(header), 0, -1) if list(header[-k:]) == [f"emb{j}" for j in range(k)]), 0)
    return bool(ranked or embedded)


def check_predictions_overwritable(out: str | Path, input_path: str | Path, label_names: Sequence[str]) -> None:
    """Refuse an ``out`` that is the input itself, or an existing file that is not a predictions CSV of these
    labels (:func:`_ends_as_predict_writes`): a mistyped --out must not replace the user's data."""
    out, source = Path(out).expanduser(), Path(input_path).expanduser()
    if str(out) == "-" or not out.exists() or not out.is_file():  # "-": standard output; /dev/null, a pipe: streams
        return
    if source.exists() and out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the input file; it would be overwritten. Choose another --out")
    with open(out, encoding="utf-8", errors="replace", newline="") as f:
        header = next(csv.reader(f), [])
    if not _ends_as_predict_writes(header, label_names):
        raise FileExistsError(f"--out {out} exists and is not a predictions file of this model (its header does not "
                              f"end with the {len(label_names)} label names, label_1, p_1, ... or emb0, emb1, ...); it "
                              "would be overwritten. Choose another --out or move the file away")


def predict_file(run: str | Path, input_path: str | Path, out: str | Path, *, labels: bool = False,
                 threshold: Optional[float] = None, device: str = "cpu", keep: Sequence[str] = (),
                 image_chunk: int = 1024, embeddings: bool = False, top: Optional[int] = None) -> Path:
    """``mulsupcon predict``: probabilities (or 0/1 with ``labels`` / a ``threshold``) of every input row, or
    with ``embeddings`` its backbone features (columns ``emb0`` ... ``emb{D-1}``; a pretraining run gives only
    these), or with ``top`` = K its K most probable labels (:func:`top_labels`); ``keep``: columns of a CSV/TSV
    input copied as they are before the label columns (an id); ``image_chunk``: images of a folder decoded and
    scored at a time; ``out="-"`` writes to standard output."""
    given = [flag for flag, on in (("--embeddings", embeddings), ("--labels", labels),
                                   ("--threshold", threshold is not None), ("--top", top is not None)) if on]
    if len(given) > 1 and given != ["--labels", "--threshold"]:
        raise ValueError(f"{' and '.join(given)}: give one of them (--embeddings writes the backbone's features, "
                         "--labels / --threshold 0/1 labels, --top the most probable labels)")

    if str(out) != "-":  # a file: checked before any work, as scoring a large folder first would be wasted
        if Path(out).is_dir():
            raise ValueError(f"--out {out} is a folder; give the name of the file to write "
                             f"(e.g. {Path(out) / 'predictions.csv'})")
        if Path(out).suffix.lower() not in (".csv", ".txt", ""):
            raise ValueError(f"--out {out}: predictions are written as CSV; name the file .csv")
    model = load_run(run, device=device)
    if not embeddings:
        model.require_classifier()  # before reading the input
    columns = [f"emb{j}" for j in range(int(model.backbone.out_dim))] if embeddings else model.label_names
    check_predictions_overwritable(out, input_path, model.label_names if model.has_classifier else columns)
    if top is not None:
        columns = top_labels(np.zeros((0, len(columns))), columns, top)[0]
    kept = None
    if keep:
        suffix = format_suffix(Path(input_path))
        if (suffix not in TABLE_SUFFIXES and suffix != ".parquet") or is_svmlight(input_path):
            raise ValueError(f"--keep copies columns of a CSV, TSV or Parquet input; {input_path} is not one")
        clash = sorted(set(keep) & set(columns))
        if clash:
            raise ValueError(f"--keep {clash}: the output already has a column of that name")
        kept = (list(keep), kept_columns(Path(input_path), keep))
    binary = labels or threshold is not None

    def scored(x: Any) -> np.ndarray:
        if embeddings:
            return model.transform(x)
        return model.predict(x, threshold) if binary else model.predict_proba(x)

    folder = Path(input_path).expanduser()
    if model.is_image and folder.is_dir():
        files = image_folder_names(folder)
        values = score_image_folder(model, folder, files, scored, image_chunk)
    else:
        x, files = model.read_input(input_path)
        values = scored_as_read(x, scored, input_path)
    if top is not None:
        values = top_labels(values, model.label_names, top)[1]
    return write_predictions(out, values, columns, files, labels=binary, kept=kept)


def kept_columns(path: Path, names: Sequence[str]) -> list[list[str]]:
    """The text of the columns ``names`` on every row of a CSV/TSV or Parquet file (``predict --keep``)."""
    from mulsupcon.data.formats import MissingColumns, read_text_columns

    if format_suffix(path) != ".parquet":
        return read_text_columns(path, names, delimiter=table_delimiter(path))
    from mulsupcon.data.parquet import read_frame

    frame = read_frame(path)
    lacking = [n for n in names if n not in frame.columns]
    if lacking:
        raise MissingColumns(f"{path}: no column {lacking[0]!r} to keep (its columns: {list(frame.columns)[:10]})", lacking)
    return [[cell_text(v) for v in row] for row in frame[list(names)].itertuples(index=False)]


def scored_as_read(x: Any, score: Callable[[Any], np.ndarray], path: str | Path) -> np.ndarray:
    """``score(x)`` of the rows read from the file ``path``, whose name a refusal of them begins with (the
    row and column alone do not say which file an NPZ or HDF5 value is in)."""
    try:
        return score(x)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


# ----------------------------------------------------------------------------- export
class _Exported(torch.nn.Module):
    """Standardisation + classifier + sigmoid in one module: raw rows (N, F) -> probabilities (N, L).
    For images the input is the evaluation view, float (N, 3, S, S) normalised with ImageNet statistics."""

    def __init__(self, model: TrainedModel):
        super().__init__()
        self.net = model.model.cpu().eval()
        mean = model._mean if model._mean is not None else torch.zeros(())
        std = model._std if model._std is not None else torch.ones(())
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        # A NaN input (a missing value) becomes its fill value when the run filled them in; else it stays NaN.
        fill = model._fill if model._fill is not None else torch.full((), float("nan"))
        self.register_buffer("fill", fill.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.fill, x)
        return torch.sigmoid(self.net((x - self.mean) / self.std))


def export_run(run: str | Path, out: str | Path, fmt: str = "torchscript") -> Path:
    """``mulsupcon export``: the run's classifier as TorchScript (``.pt``), a ``torch.export`` program
    (``pt2``: load it with ``torch.export.load(path).module()``; any batch size) or ONNX (``.onnx``, needs the
    ``onnx`` package: ``pip install mulsupcon[onnx]``), mapping raw rows (N, F) to probabilities (N, L)
    (images: the normalised evaluation view (N, 3, S, S))."""
    if fmt not in ("torchscript", "pt2", "onnx"):
        raise ValueError(f"unknown export format {fmt!r}; expected torchscript, pt2 or onnx")
    out = Path(out)
    _check_export_target(out, fmt, Path(run) if Path(run).is_file() else Path(run) / "model.pt")
    model = load_run(run)
    model.require_classifier()
    wrapper = _Exported(model).eval().requires_grad_(False)  # for inference: no autograd graph per call
    example = torch.zeros((2, *model.input_shape))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise RuntimeError("ONNX export needs the onnx package: pip install 'mulsupcon[onnx]'") from None
    import warnings

    from mulsupcon.io import atomic_write_bytes

    buf = io.BytesIO()  # written in one piece at the end: an interrupted export leaves no partial file
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript and ONNX trace the module: torch marks jit and the old ONNX exporter as deprecated, and the
        # input shape check is traced as a constant (it is one: the model takes F features).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(wrapper, example), buf)
        elif fmt == "pt2":  # no tracing: the batch dimension stays symbolic, the rest is checked on each call
            program = torch.export.export(wrapper, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            torch.export.save(program, buf)
        else:
            torch.onnx.export(wrapper, (example,), buf, dynamo=False, input_names=["input"],
                              output_names=["probabilities"], dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    atomic_write_bytes(out, buf.getvalue())
    return out


def _check_export_target(out: Path, fmt: str, source: Path) -> None:
    """Refuse an ``out`` that would overwrite something the user made: the run's own ``model.pt``, or an
    existing file that is not an earlier export of this format (a data file, a checkpoint). A rerun over
    its own export is fine."""
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the model being exported; choose another file name")
    if not out.exists():
        return
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name (e.g. {out / ('model.' + EXPORT_SUFFIX[fmt])})")
    if fmt == "onnx":
        with open(out, "rb") as fh:
            ours = b"pytorch" in fh.read(256)  # ONNX's producer_name, near the start of the protobuf
    else:
        import zipfile

        mark = "/code/__torch__/mulsupcon/predict.py" if fmt == "torchscript" else "/archive_format"
        try:
            with zipfile.ZipFile(out) as z:
                ours = any(name.endswith(mark) for name in z.namelist())
        except (zipfile.BadZipFile, OSError):
            ours = False
    if not ours:
        raise ValueError(f"--out {out} exists and is not {'an' if fmt == 'onnx' else 'a'} {fmt} export of a mulsupcon model; it was left as it "
                         "was: choose another file name, or remove it first")


EXPORT_SUFFIX = {"torchscript": "torchscript.pt", "pt2": "pt2", "onnx": "onnx"}
