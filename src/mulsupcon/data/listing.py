"""The text ``mulsupcon datasets list`` and ``mulsupcon datasets info`` print about registered datasets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from .catalogue import DatasetSpec
from .dataset import Splits
from .formats import one_hot_groups
from .download import MissingDataError
from .registry import get_data_home, get_spec, list_datasets, load_parts
from .splits import pool_of
from .user_files import parse_column_names


def files_status(spec: DatasetSpec, data_home: str | Path | None = None) -> str:
    """``"generated"``, ``"present"``, ``"missing"`` or ``"partial k/n"`` (existence only, no hashing);
    for a data set read from a folder: ``"folder present"`` or ``"folder missing"``."""
    if not spec.files:
        if spec.folder:
            return "folder present" if (get_data_home(data_home) / spec.folder).is_dir() else "folder missing"
        return "generated"
    home = get_data_home(data_home)
    have = sum((home / f.path).is_file() for f in spec.files)
    if have == len(spec.files):
        return "present"
    return "missing" if have == 0 else f"partial {have}/{len(spec.files)}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n}"  # pragma: no cover


def _samples_text(spec: DatasetSpec) -> str:
    if spec.n_train is not None and spec.n_test is not None:
        return f"{spec.n_train}/{spec.n_test}"
    if spec.n_samples is not None:
        return f"{spec.n_samples} (no split)" if not spec.official_split else str(spec.n_samples)
    return "?"


def _features_text(spec: DatasetSpec) -> str:
    """The features of one sample as loaded: a count for vectors, a shape for images."""
    if spec.sample_shape:
        return "x".join(str(d) for d in spec.sample_shape)
    if spec.kind == "image":
        return "3xSxS"  # cached at dataset.image_size (S, default 224)
    return "?" if spec.n_features is None else str(spec.n_features)


def format_dataset_list(data_home: str | Path | None = None) -> str:
    """A table of registered datasets: name, samples (train/test), labels, features, files, size."""
    home = get_data_home(data_home)
    rows = [("name", "samples", "labels", "features", "files", "size")]
    for spec in list_datasets():
        rows.append(
            (
                spec.name,
                _samples_text(spec),
                "?" if spec.n_labels is None else str(spec.n_labels),
                _features_text(spec),
                files_status(spec, home),
                "-" if not spec.files else _fmt_bytes(spec.total_bytes),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"data home: {home}   (images: S = dataset.image_size, 224 by default)")
    return "\n".join(lines)


def dataset_info(name: str, data_home: str | Path | None = None, *, describe: bool = True) -> str:
    """Spec details (files with URL/size/sha256 and presence), notes, citation; if the files are
    present (or the data are generated) and ``describe`` is True, ``describe()`` of train and test
    (official train = ``trainval``)."""
    spec = get_spec(name)
    home = get_data_home(data_home)
    lines = [
        f"{spec.name}: {spec.description}",
        f"  samples (train/test): {_samples_text(spec)}   labels: {spec.n_labels}   features: {_features_text(spec)}",
        f"  reader: {spec.reader if isinstance(spec.reader, str) else 'custom loader'}"
        f"   official split: {'yes' if spec.official_split else f'no (test carved: {spec.test_fraction:g}, seed 0)'}",
    ]
    if spec.files:
        lines.append(f"  files (data home {home}):")
        for f in spec.files:
            present = "present" if (home / f.path).is_file() else "MISSING"
            lines.append(f"    {f.path}  [{present}]  {_fmt_bytes(f.size)}")
            lines.append(f"      url    {f.url}")
            lines.append(f"      sha256 {f.sha256 or '(unknown: ' + (f.note or 'no note') + ')'}")
    else:
        lines.append("  files: none (generated in memory)")
    if spec.citation:
        lines.append(f"  citation: {spec.citation}")
    if spec.url:
        lines.append(f"  url: {spec.url}")
    if spec.notes:
        lines.append(f"  notes: {spec.notes}")
    status = files_status(spec, home)
    if describe and status in ("present", "generated", "folder present"):
        try:
            parts = load_parts(name, data_home=home)
            pool, test = pool_of(parts, {"test_fraction": spec.test_fraction})
            for label, part in (("trainval", pool), ("test", test)):
                lines.append(f"  --- {label} ---")
                lines.extend("  " + ln for ln in part.describe().splitlines())
        except (MissingDataError, ValueError, ImportError, OSError) as err:
            lines.append(f"  (could not load: {err})")
    elif spec.files and status != "present":
        lines.append(f"  files not all present: run `mulsupcon datasets download {name}`")
    return "\n".join(lines)


def constant_features(x: Any) -> np.ndarray:
    """The columns of (N, F) dense or CSR features that hold one value on every row (NaN, a missing value,
    not counted), in order."""
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        present = np.bincount(x.indices, minlength=x.shape[1])
        data = x.data
        lo = np.full(x.shape[1], np.inf)
        hi = np.full(x.shape[1], -np.inf)
        finite = ~np.isnan(data)
        np.minimum.at(lo, x.indices[finite], data[finite])
        np.maximum.at(hi, x.indices[finite], data[finite])
        implicit = present < x.shape[0]  # the column holds an implicit 0 on some row
        lo = np.where(implicit, np.minimum(lo, 0.0), lo)
        hi = np.where(implicit, np.maximum(hi, 0.0), hi)
        return np.flatnonzero(~(hi > lo))
    x = np.asarray(x, dtype=np.float64)
    if not x.size:
        return np.zeros(0, np.int64)
    with warnings.catch_warnings():  # a column of NaN only: "All-NaN slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.flatnonzero(~(np.nanmax(x, axis=0) > np.nanmin(x, axis=0)))


def describe_splits(splits: Splits, ds_cfg: Mapping[str, Any]) -> str:
    """What training would get from a config's ``dataset`` section (``mulsupcon datasets check --dataset.path
    FILE``): the files read, the features (one-hot groups named), how the parts were made, each part's
    :meth:`~.dataset.MultiLabelDataset.describe`, and the missing values training will fill."""
    train = splits.train
    lines = [f"{ds_cfg.get('path') or ds_cfg.get('name')}: read as `mulsupcon train` reads it with these options"]
    for path, digest in dict(splits.info.get("files") or {}).items():
        lines.append(f"  file   {path}  sha256 {digest}")
    categorical = parse_column_names(ds_cfg.get("categorical_columns"), "categorical_columns")
    if categorical and not train.is_image:
        groups = one_hot_groups(train.feature_names, categorical)
        lines.append("  one-hot " + ", ".join(f"{c} ({len(v)} values)" for c, v in groups.items()))
    if splits.info.get("test_source") == "carved":
        how = (f"test carved ({splits.info.get('carve')}, {splits.info.get('test_fraction'):g} of the rows); validation "
               f"{ds_cfg.get('val_fraction', 0.2):g} of the rest, split_seed {ds_cfg.get('split_seed', 0)}")
    else:
        how = (f"the official test part; validation {ds_cfg.get('val_fraction', 0.2):g} of the training part, "
               f"split_seed {ds_cfg.get('split_seed', 0)}")
    lines.append(f"  split  train {train.n_samples} / validation {splits.val.n_samples if splits.val is not None else 0} / "
                 f"test {splits.test.n_samples}: {how}")
    for label, part in (("train", train), ("validation", splits.val), ("test", splits.test)):
        if part is None:
            continue
        lines.append(f"  --- {label} ---")
        lines.extend("  " + ln for ln in part.describe().splitlines())
    if not train.is_image:  # labels without a training positive are named by the split's own warning
        constant = constant_features(train.features)
        if len(constant):
            shown = ", ".join(train.feature_names[j] for j in constant[:5]) + (", ..." if len(constant) > 5 else "")
            lines.append(f"  {len(constant)} of the {train.n_features} features never vary in the training part ({shown}): "
                         "they carry nothing to learn (a 1-based svmlight file's f0 is one)")
        values = train.features.data if sp.issparse(train.features) else np.asarray(train.features)
        n_missing = int(np.isnan(values).sum())
        if n_missing:
            lines.append(f"  {n_missing} missing feature value(s) in the training part, filled by dataset.missing: "
                         f"{ds_cfg.get('missing')}")
    return "\n".join(lines)
