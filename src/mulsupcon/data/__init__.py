"""Datasets for mulsupcon: registry, verified downloads, readers, splits and standardisation.

Quick start::

    from mulsupcon.data import load_splits, fit_standardizer
    s = load_splits("yeast", val_fraction=0.2, seed=0)   # train 1200 / val 300 / test 917
    scaler = fit_standardizer(s.train)                    # statistics from train rows only
    x_train = scaler.transform(s.train.features)          # (1200, 103) float32

Files are looked up in the data home (:func:`get_data_home`: argument > ``MULSUPCON_DATA`` >
``~/.cache/mulsupcon``); ``download=True`` or ``mulsupcon datasets download NAME`` fetches them.
"""

from __future__ import annotations

from .catalogue import DataFile, DatasetSpec, ReadOptions, get_data_home
from .dataset import MultiLabelDataset, RowSubset, Splits
from .download import ChecksumError, DownloadError, MissingDataError, fetch
from .listing import dataset_info, format_dataset_list
from .preprocess import Standardizer, fit_standardizer, standardize_splits
from .registry import (
    REGISTRY,
    clear_cache,
    download,
    get_spec,
    list_datasets,
    load,
    load_parts,
    load_splits,
    register,
)
from .splits import (
    SourceParts,
    load_split_indices,
    make_splits,
    save_split_indices,
    splits_from_indices,
)
from .user_files import from_arrays, from_file, read_dataset

__all__ = [
    "MultiLabelDataset",
    "RowSubset",
    "from_arrays",
    "from_file",
    "read_dataset",
    "Splits",
    "SourceParts",
    "DatasetSpec",
    "DataFile",
    "ReadOptions",
    "REGISTRY",
    "register",
    "get_spec",
    "get_data_home",
    "list_datasets",
    "dataset_info",
    "format_dataset_list",
    "download",
    "fetch",
    "load",
    "load_parts",
    "load_splits",
    "clear_cache",
    "make_splits",
    "save_split_indices",
    "load_split_indices",
    "splits_from_indices",
    "Standardizer",
    "fit_standardizer",
    "standardize_splits",
    "DownloadError",
    "ChecksumError",
    "MissingDataError",
]
