"""Seeded train / validation / test splits that a run can save and restore exactly.

Vocabulary (used everywhere in ``mulsupcon.data``):

* **pool** (``"trainval"``): the rows a method may learn from. For datasets with an official split
  it is the official training file (Mulan ``*-train.arff``); for datasets that ship an official
  validation part too (``yeast-official``) it is official train followed by official val; for
  datasets without an official split (cal500, foodtruck, imdb) it is what is left after carving the
  test part.
* **train**: the pool minus the validation rows. With ``val_fraction=0`` there is no validation
  part and train is the whole pool.
* **val**: ``round(val_fraction * len(pool))`` rows of the pool drawn with ``numpy.random.
  default_rng(seed)``; for an official validation part it is that part (``val_fraction`` then only
  matters when it is 0, which merges val back into train).
* **test**: the official test file, or - without an official split - ``round(test_fraction * N)``
  rows carved with the FIXED seed :data:`TEST_SPLIT_SEED`. The test part never depends on the run's
  seed, so runs with different seeds are scored on the same rows.

``Splits.info`` records all of this, including the row indices of train/val inside the pool and of
the carved test rows, so :func:`save_split_indices` / :func:`splits_from_indices` reproduce a split
exactly even if the seeding code changes later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from .dataset import MultiLabelDataset, Splits

TEST_SPLIT_SEED = 0
DEFAULT_TEST_FRACTION = 0.2
SPLIT_FORMAT = "mulsupcon-split-v1"


@dataclass
class SourceParts:
    """A dataset as its files give it, before any carving.

    Attributes:
        train: the official training part, or ALL rows when ``test`` is ``None``.
        test: the official test part, or ``None`` when the dataset has no official split.
        val: an official validation part (only ``yeast-official``), else ``None``.
    """

    train: MultiLabelDataset
    test: MultiLabelDataset | None = None
    val: MultiLabelDataset | None = None


def carve_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (kept, carved) sorted int64 index arrays.

    ``round(fraction * n)`` rows are carved, chosen by a permutation from
    ``numpy.random.default_rng(seed)``; when ``0 < fraction`` and ``n >= 2`` at least one row is
    carved and at least one kept.

    Returns:
        kept: (n - k,) sorted indices; carved: (k,) sorted indices.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    k = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]).astype(np.int64), np.sort(perm[:k]).astype(np.int64)


def stratified_carve(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`carve_indices`, with the carved rows chosen by iterative stratification (Sechidis et
    al. 2011; the ``iterative-stratification`` package), so that every label keeps about its share in both
    parts. Falls back to the seeded random carve where stratification is not possible (fewer than 4 rows)."""
    n = labels.shape[0]
    k = int(round(fraction * n))
    if fraction <= 0 or n < 4 or not 0 < k < n:
        return carve_indices(n, fraction, seed)
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    y = np.asarray(labels)
    if y.shape[1] == 1:  # one label: the package wants an indicator matrix of two columns or more
        y = np.column_stack([y, np.zeros_like(y)])
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=k, random_state=seed)
    kept, carved = next(splitter.split(np.zeros((n, 1)), y))
    return np.sort(kept).astype(np.int64), np.sort(carved).astype(np.int64)


def concat_datasets(parts: Sequence[MultiLabelDataset], name: str | None = None) -> MultiLabelDataset:
    """Rows of ``parts`` stacked in order (all parts must share label and feature layout).

    Sparse features stay sparse (CSR) when any part is sparse.
    """
    if not parts:
        raise ValueError("concat_datasets needs at least one dataset")
    first = parts[0]
    for i, p in enumerate(parts[1:], start=1):
        if p.label_names != first.label_names:
            raise ValueError(
                f"cannot stack part {i} ({p.source or p.name}): its {p.n_labels} label names differ "
                f"from part 0 ({first.n_labels} labels)"
            )
        if p.features.shape[1:] != first.features.shape[1:]:
            raise ValueError(
                f"cannot stack part {i} ({p.source or p.name}): feature shape {p.features.shape[1:]} "
                f"vs {first.features.shape[1:]} in part 0"
            )
    if len(parts) == 1:
        feats = first.features.copy()
    elif any(p.is_sparse for p in parts):
        feats = sp.vstack([sp.csr_matrix(p.features) for p in parts], format="csr")
    else:
        feats = np.concatenate([np.asarray(p.features) for p in parts], axis=0)
    sources = []
    for p in parts:
        if p.source and p.source not in sources:
            sources.append(p.source)
    return MultiLabelDataset(
        features=feats,
        labels=np.concatenate([p.labels for p in parts], axis=0),
        label_names=list(first.label_names),
        feature_names=list(first.feature_names),
        source=" + ".join(sources),
        name=first.name if name is None else name,
    )


def labels_fingerprint(labels: np.ndarray) -> str:
    """Short hash of an (N, L) label matrix: detects restoring indices onto different data."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    h = hashlib.sha256(str(labels.shape).encode())
    h.update(labels.tobytes())
    return h.hexdigest()[:16]


def _pool_and_test(
    parts: SourceParts, test_fraction: float, stratify: bool = False
) -> tuple[MultiLabelDataset, MultiLabelDataset, dict[str, Any]]:
    """(pool, test, info about how they were formed)."""
    info: dict[str, Any] = {}
    if parts.test is not None:
        pool = parts.train if parts.val is None else concat_datasets([parts.train, parts.val])
        info["test_source"] = "official"
        info["test_fraction"] = None
        info["test_index"] = None
        info["n_official_train"] = parts.train.n_samples
        info["n_official_val"] = parts.val.n_samples if parts.val is not None else 0
        return pool, parts.test, info
    if parts.val is not None:
        raise ValueError("a dataset with an official validation part must also have an official test part")
    if stratify:
        keep, carved = stratified_carve(parts.train.labels, test_fraction, TEST_SPLIT_SEED)
    else:
        keep, carved = carve_indices(parts.train.n_samples, test_fraction, TEST_SPLIT_SEED)
    info.update(
        test_source="carved",
        carve="iterative-stratification" if stratify else "random",
        test_fraction=test_fraction,
        test_seed=TEST_SPLIT_SEED,
        test_index=carved.tolist(),
        pool_index=keep.tolist(),
        n_total=parts.train.n_samples,
        n_official_train=0,
        n_official_val=0,
    )
    return parts.train.subset(keep), parts.train.subset(carved), info


def make_splits(
    parts: SourceParts,
    *,
    dataset: str,
    val_fraction: float = 0.2,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    stratify: bool = False,
) -> Splits:
    """Train / val / test from a dataset's source parts (semantics in the module docstring).

    Args:
        parts: the dataset as read from its files.
        dataset: registry name, stored in ``info``.
        val_fraction: share of the pool used for validation; 0 means no validation part.
        seed: seed of the validation carve.
        test_fraction: share of all rows carved as test when there is no official test part.
        stratify: carve test and validation rows by iterative stratification (:func:`stratified_carve`)
            instead of at random (what users' own files get; the registered datasets keep the random
            carve their published splits were made with).

    Returns:
        ``Splits`` whose ``info`` holds: dataset, seed, val_fraction, test_fraction, val_source
        ('carved' | 'official' | 'none'), test_source ('official' | 'carved'), n_pool,
        train_index / val_index (int lists into the pool), test_index (into all rows, or None),
        pool_index (for carved tests), pool_fingerprint.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    pool, test, info = _pool_and_test(parts, test_fraction, stratify)
    n = pool.n_samples
    if parts.val is not None:
        n_tr = parts.train.n_samples
        if val_fraction == 0:
            train_idx, val_idx, val_source = np.arange(n, dtype=np.int64), np.zeros(0, np.int64), "none"
        else:
            train_idx = np.arange(n_tr, dtype=np.int64)
            val_idx = np.arange(n_tr, n, dtype=np.int64)
            val_source = "official"
    elif val_fraction == 0:
        train_idx, val_idx, val_source = np.arange(n, dtype=np.int64), np.zeros(0, np.int64), "none"
    else:
        train_idx, val_idx = stratified_carve(pool.labels, val_fraction, seed) if stratify else carve_indices(n, val_fraction, seed)
        val_source = "carved"
    info.update(
        format=SPLIT_FORMAT,
        dataset=dataset,
        seed=int(seed),
        val_fraction=float(val_fraction),
        val_source=val_source,
        n_pool=n,
        train_index=train_idx.tolist(),
        val_index=val_idx.tolist(),
        pool_fingerprint=labels_fingerprint(pool.labels),
    )
    return _build(pool, test, info)


def _build(pool: MultiLabelDataset, test: MultiLabelDataset, info: dict[str, Any]) -> Splits:
    train_idx = np.asarray(info["train_index"], dtype=np.int64)
    val_idx = np.asarray(info["val_index"], dtype=np.int64)
    val = pool.subset(val_idx) if val_idx.size else None
    train = pool.subset(train_idx)
    warn_labels_missing_from_train(train, test, val)
    return Splits(train=train, val=val, test=test, info=info)


class LabelAbsentWarning(UserWarning):
    """A label has no positive sample in the training split."""


def warn_labels_missing_from_train(
    train: MultiLabelDataset, test: MultiLabelDataset | None = None, val: MultiLabelDataset | None = None
) -> list[str]:
    """Warn (naming the dataset and labels) when some label never occurs in the training split.

    Such a label cannot be learned: its classifier sees only negatives, it never forms a positive
    set in contrastive pretraining, and its test AP/F1 measure nothing the model was taught.
    Returns the names of the absent labels.
    """
    import warnings

    absent = np.flatnonzero(np.asarray(train.labels).sum(0) == 0)
    if absent.size == 0:
        return []
    names = [train.label_names[i] for i in absent]
    where = []
    for part, ds in (("validation", val), ("test", test)):
        if ds is not None and ds.n_samples:
            hits = int((np.asarray(ds.labels)[:, absent].sum(0) > 0).sum())
            where.append(f"{hits} of them occur in the {part} split")
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    warnings.warn(
        f"{train.source or train.name}: {len(names)} label(s) never occur in the training split: {shown}"
        + (f" ({'; '.join(where)})" if where else "") + ". They cannot be learned from this split.",
        LabelAbsentWarning,
        stacklevel=3,
    )
    return names


def pool_of(parts: SourceParts, info: Mapping[str, Any] | None = None) -> tuple[MultiLabelDataset, MultiLabelDataset]:
    """(pool, test) of ``parts`` as :func:`make_splits` forms them (test carve per ``info`` if given)."""
    test_fraction = DEFAULT_TEST_FRACTION
    if info is not None and info.get("test_fraction") is not None:
        test_fraction = float(info["test_fraction"])
    if parts.test is None and info is not None and info.get("test_index") is not None:
        # Rebuild the pool from the saved indices, not from the seeded carve, so restoring is exact.
        test_idx = np.asarray(info["test_index"], dtype=np.int64)
        pool_idx = np.asarray(info["pool_index"], dtype=np.int64)
        n = parts.train.n_samples
        _check_indices("test_index", test_idx, n)
        _check_indices("pool_index", pool_idx, n)
        if np.intersect1d(test_idx, pool_idx).size:
            raise ValueError("saved split is inconsistent: test_index and pool_index overlap")
        return parts.train.subset(pool_idx), parts.train.subset(test_idx)
    pool, test, _ = _pool_and_test(parts, test_fraction)
    return pool, test


def _check_indices(key: str, idx: np.ndarray, n: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"saved split: {key} holds index {int(idx.max() if idx.max() >= n else idx.min())} "
                         f"outside the {n} available rows")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"saved split: {key} repeats rows")


def save_split_indices(path: str | Path, splits: Splits) -> Path:
    """Write ``splits.info`` (dataset, seed, fractions, row indices, fingerprint) as JSON.

    Returns the path written. Restore with :func:`splits_from_indices`.
    """
    info = dict(splits.info)
    for key in ("train_index", "val_index", "dataset"):
        if key not in info:
            raise ValueError(f"splits.info has no '{key}': these splits were not made by mulsupcon.data")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def load_split_indices(path: str | Path) -> dict[str, Any]:
    """Read a JSON file written by :func:`save_split_indices` (raises ``ValueError`` if malformed)."""
    path = Path(path)
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a split file (JSON error at line {err.lineno}, column {err.colno})") from err
    if not isinstance(info, dict) or info.get("format") != SPLIT_FORMAT:
        raise ValueError(f"{path}: not a mulsupcon split file (expected format '{SPLIT_FORMAT}')")
    return info


def splits_from_indices(parts: SourceParts, indices: Mapping[str, Any] | str | Path) -> Splits:
    """Rebuild exactly the splits described by saved indices.

    Args:
        parts: the dataset's parts as read (``mulsupcon.data.load_parts(name)``).
        indices: ``Splits.info`` of the original splits, or a JSON file from :func:`save_split_indices`.

    Raises:
        ValueError: indices out of range, overlapping, or the pool's labels differ from the ones the
            indices were saved for (fingerprint mismatch).
    """
    info = load_split_indices(indices) if isinstance(indices, (str, Path)) else dict(indices)
    pool, test = pool_of(parts, info)
    n = pool.n_samples
    if info.get("n_pool") is not None and int(info["n_pool"]) != n:
        raise ValueError(f"saved split expects a pool of {info['n_pool']} rows, the data has {n}")
    fp = info.get("pool_fingerprint")
    if fp is not None and fp != labels_fingerprint(pool.labels):
        raise ValueError("saved split does not match this data: label fingerprint differs (different file?)")
    train_idx = np.asarray(info["train_index"], dtype=np.int64)
    val_idx = np.asarray(info.get("val_index") or [], dtype=np.int64)
    _check_indices("train_index", train_idx, n)
    _check_indices("val_index", val_idx, n)
    if np.intersect1d(train_idx, val_idx).size:
        raise ValueError("saved split is inconsistent: train_index and val_index overlap")
    return _build(pool, test, info)
