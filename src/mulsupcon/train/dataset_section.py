"""A config's ``dataset`` section -> the train / validation / test splits: the one place a config becomes
data. Without torch, so that `mulsupcon datasets check` reads and splits a file in a second, not three
(importing torch takes two, and 650 MB for its CUDA build); :mod:`.data` turns the splits into tensors.
"""

from __future__ import annotations

from typing import Any, Mapping

from mulsupcon.data import REGISTRY, ReadOptions, load_splits, register
from mulsupcon.data.dataset import Splits
from mulsupcon.data.image_datasets import HDF5_PREFIX, hdf5_folder_spec
from mulsupcon.data.preprocess import FILL_STRATEGIES
from mulsupcon.data.splits import make_splits
from mulsupcon.data.user_files import read_dataset


def load_dataset_splits(ds_cfg: Mapping[str, Any]) -> Splits:
    """The splits named by a config's ``dataset`` section: the one place a config becomes data.

    ``name`` (a registered dataset, or ``hdf5:/folder`` for the embedded features ``mulsupcon embed``
    writes), ``val_fraction`` and ``split_seed``; for image sets read from files ``image_size`` and
    ``cache_dir``.
    """
    name = str(ds_cfg["name"])
    options = read_options(ds_cfg)
    if ds_cfg.get("path"):
        parts, files = read_dataset(ds_cfg["path"], test_path=ds_cfg.get("test_path"),
                                    label_columns=ds_cfg.get("label_columns"), xml=ds_cfg.get("xml"),
                                    labels=ds_cfg.get("labels"), test_labels=ds_cfg.get("test_labels"), options=options,
                                    ignore_columns=ds_cfg.get("ignore_columns"), label_sep=ds_cfg.get("label_sep"),
                                    categorical_columns=ds_cfg.get("categorical_columns"))
        splits = make_splits(parts, dataset=name, val_fraction=float(ds_cfg.get("val_fraction", 0.2)),
                             seed=int(ds_cfg.get("split_seed", 0)), test_fraction=float(ds_cfg.get("test_fraction", 0.2)),
                             stratify=True)
        splits.info.update(path=str(ds_cfg["path"]), files=files)
        return splits
    if name.startswith(HDF5_PREFIX) and name not in REGISTRY:
        spec = hdf5_folder_spec(name[len(HDF5_PREFIX):])  # registered under the folder's absolute path
        register(spec, overwrite=True)
        name = spec.name
    return load_splits(name, val_fraction=float(ds_cfg.get("val_fraction", 0.2)), seed=int(ds_cfg.get("split_seed", 0)),
                       options=options)


def read_options(ds_cfg: Mapping[str, Any]) -> ReadOptions:
    """The image size, cache folder, missing-value policy and ``skip_corrupt`` of a config's ``dataset`` section."""
    size = ds_cfg.get("image_size")
    if size is not None and (isinstance(size, bool) or int(size) != size or int(size) < 1):
        raise ValueError(f"dataset.image_size must be a positive integer or null, got {size!r}")
    cache = ds_cfg.get("cache_dir")
    return ReadOptions(None if size is None else int(size), None if cache is None else str(cache),
                       allow_missing=missing_policy(ds_cfg) != "error", skip_corrupt=bool(ds_cfg.get("skip_corrupt")))


MISSING_POLICIES = ("error",) + FILL_STRATEGIES


def missing_policy(ds_cfg: Mapping[str, Any]) -> str:
    """``dataset.missing``: ``"error"`` (a missing feature value is refused, naming its line and column),
    or how to fill it: ``"mean"``, ``"median"`` or ``"most_frequent"`` of the training rows' column (as
    scikit-learn's ``SimpleImputer(strategy=...)``)."""
    policy = ds_cfg.get("missing", "error")
    if policy not in MISSING_POLICIES:
        raise ValueError(f"dataset.missing must be one of {', '.join(MISSING_POLICIES)}, got {policy!r}")
    return str(policy)
