"""The one in-memory dataset object every reader returns.

Features stay in the form they were read in: a dense ``numpy`` array for vector data, a
``scipy.sparse.csr_matrix`` for sparse ARFF files (densified only per batch), or a ``uint8``
array of shape (N, C, H, W) for images. Labels are always an (N, L) ``uint8`` multi-hot matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike



class RowSubset:
    """Rows of a memory-mapped array, read from the file only when indexed (an index view, not a copy).

    ``MultiLabelDataset.subset`` of an image cache returns this instead of copying the rows into RAM
    (MS-COCO's training rows at 224 px are 12 GB). It has ``shape``, ``dtype`` and ``ndim``; indexing
    with an int, a slice or an integer array reads just those rows (``view[idx]`` is
    ``base[rows[idx]]``, an in-memory ``np.ndarray``); ``np.asarray(view)`` reads all of them.
    Pickling (DataLoader workers under spawn/forkserver) sends the file name and row indices, not
    the pixels, and the worker maps the file again.

    Args:
        base: an ``np.memmap`` (N, ...) or another ``RowSubset`` (composed into one).
        rows: (M,) indices into ``base``, or None for all its rows.
    """

    def __init__(self, base: Union[np.ndarray, "RowSubset"], rows: Sequence[int] | np.ndarray | None = None):
        if isinstance(base, RowSubset):
            rows = base.rows if rows is None else base.rows[np.asarray(rows, dtype=np.int64)]
            base = base.base
        n = int(base.shape[0])
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.rows.size and (self.rows.min() < -n or self.rows.max() >= n):
            raise IndexError(f"row indices out of range for an array of {n} rows")
        self.rows = self.rows % max(n, 1)  # negative indices counted from the end, as numpy does
        self.base = base

    @property
    def shape(self) -> tuple[int, ...]:
        """(selected rows, *the base array's other dimensions)."""
        return (int(self.rows.size),) + tuple(self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """The base array's dtype."""
        return self.base.dtype

    @property
    def ndim(self) -> int:
        """The base array's number of dimensions."""
        return self.base.ndim

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, index):
        first, rest = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        if isinstance(first, slice) and first.step in (None, 1):
            start, stop, _ = first.indices(self.rows.size)  # consecutive rows of the base: one slice read
            picked = self.rows[start:stop]
            if picked.size and picked[-1] - picked[0] == picked.size - 1 and np.all(np.diff(picked) == 1):
                return np.asarray(self.base[(slice(int(picked[0]), int(picked[-1]) + 1),) + rest])
        return np.asarray(self.base[(self.rows[first],) + rest])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getstate__(self) -> dict:
        base = self.base
        if isinstance(base, np.memmap) and getattr(base, "filename", None):
            return {"file": (base.filename, base.offset, base.shape, base.dtype.str, _fortran(base)), "rows": self.rows}
        return {"array": base, "rows": self.rows}

    def __setstate__(self, state: dict) -> None:
        if "file" in state:
            name, offset, shape, dtype, fortran = state["file"]
            self.base = np.memmap(name, dtype=np.dtype(dtype), mode="r", offset=offset, shape=tuple(shape),
                                  order="F" if fortran else "C")
        else:
            self.base = state["array"]
        self.rows = state["rows"]

    def __repr__(self) -> str:
        return f"RowSubset({self.shape[0]} of {self.base.shape[0]} rows, {self.dtype}, per row {self.shape[1:]})"


def _fortran(a: np.ndarray) -> bool:
    return bool(a.flags.f_contiguous and not a.flags.c_contiguous)


Features = Union[np.ndarray, sp.csr_matrix, RowSubset]
Matrix = Union[ArrayLike, sp.spmatrix]  # SciPy sparse arrays (scipy >= 1.11) are read too
"""What users may pass as features or labels: an array-like of shape (N, F) or (N, L), or a SciPy sparse
matrix or array."""


@dataclass
class MultiLabelDataset:
    """Features, multi-hot labels and their names.

    Attributes:
        features: (N, F) float array, (N, F) ``csr_matrix``, or (N, C, H, W) ``uint8`` images (an
            ``np.memmap`` of an image cache, or a :class:`RowSubset` of one).
        labels: (N, L) ``uint8`` array with values in {0, 1}.
        label_names: L names, in column order.
        feature_names: F names (empty for images).
        source: where the data came from (file paths or a generator description).
        name: short dataset name (e.g. ``"yeast"``).
    """

    features: Features
    labels: np.ndarray
    label_names: list[str]
    feature_names: list[str] = field(default_factory=list)
    source: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 2:
            raise ValueError(f"{self._where()}labels must be 2-D (N, L), got shape {labels.shape}")
        if labels.size and not np.isin(labels, (0, 1)).all():
            bad = np.argwhere(~np.isin(labels, (0, 1)))[0]
            raise ValueError(
                f"{self._where()}label values must be 0 or 1; found {labels[tuple(bad)]!r} "
                f"at row {bad[0]}, label column {bad[1]}"
            )
        self.labels = labels.astype(np.uint8, copy=False)
        n = self.features.shape[0]
        if n != self.labels.shape[0]:
            raise ValueError(
                f"{self._where()}features have {n} rows but labels have {self.labels.shape[0]}"
            )
        if len(self.label_names) != self.labels.shape[1]:
            raise ValueError(
                f"{self._where()}{len(self.label_names)} label names for "
                f"{self.labels.shape[1]} label columns"
            )
        self.label_names = [str(x) for x in self.label_names]
        self.feature_names = [str(x) for x in self.feature_names]
        # A name twice would make a predictions file's columns, and a label file matched by name, ambiguous.
        seen: set[str] = set()
        twice = next((x for x in self.label_names if x in seen or seen.add(x)), None)
        if twice is not None:
            raise ValueError(f"{self._where()}label name '{twice}' occurs twice; label names must be distinct")

    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""

    # ------------------------------------------------------------------ shape facts
    @property
    def n_samples(self) -> int:
        """Number of rows N (of the features and the labels)."""
        return int(self.labels.shape[0])

    @property
    def n_labels(self) -> int:
        """Number of labels L (columns of the label matrix)."""
        return int(self.labels.shape[1])

    @property
    def n_features(self) -> int:
        """Number of features per sample (C*H*W for images)."""
        return int(np.prod(self.features.shape[1:]))

    @property
    def is_sparse(self) -> bool:
        """Whether the features are a scipy.sparse matrix (densified a batch at a time in training)."""
        return sp.issparse(self.features)

    @property
    def is_image(self) -> bool:
        """Whether the features are images (N, C, H, W) rather than vectors (N, F)."""
        return (not self.is_sparse) and np.ndim(self.features) == 4

    @property
    def label_cardinality(self) -> float:
        """Mean number of labels per sample."""
        return float(self.labels.sum(1).mean()) if self.n_samples else 0.0

    @property
    def label_density(self) -> float:
        """Label cardinality divided by the number of labels."""
        return self.label_cardinality / self.n_labels if self.n_labels else 0.0

    # ------------------------------------------------------------------ operations
    def subset(self, index: Sequence[int] | np.ndarray) -> "MultiLabelDataset":
        """Rows ``index`` (in that order) as a new dataset sharing names and source.

        Memory-mapped features (image caches) give a :class:`RowSubset` view that reads rows only when
        a batch asks for them; other features are copied.
        """
        index = np.asarray(index, dtype=np.int64)
        mapped = isinstance(self.features, (np.memmap, RowSubset))
        return MultiLabelDataset(
            features=RowSubset(self.features, index) if mapped else self.features[index],
            labels=self.labels[index],
            label_names=list(self.label_names),
            feature_names=list(self.feature_names),
            source=self.source,
            name=self.name,
        )

    def with_columns(self, features: Optional[Sequence[int]] = None,
                     labels: Optional[Sequence[int]] = None) -> "MultiLabelDataset":
        """The feature and label columns at positions ``features`` / ``labels`` (None: all, as they are), in that
        order, with their names: e.g. another file's columns put in a model's order (:func:`column_order`)."""
        f = None if features is None else list(features)
        lab = None if labels is None else list(labels)
        return MultiLabelDataset(
            features=self.features if f is None else self.features[:, f],
            labels=self.labels if lab is None else self.labels[:, lab],
            label_names=list(self.label_names) if lab is None else [self.label_names[j] for j in lab],
            feature_names=list(self.feature_names) if f is None else [self.feature_names[j] for j in f],
            source=self.source,
            name=self.name,
        )

    def dense_features(self, dtype: np.dtype = np.float32) -> np.ndarray:
        """Features as a dense array (sparse matrices densified)."""
        x = self.features.toarray() if self.is_sparse else np.asarray(self.features)
        return x.astype(dtype, copy=False)

    def describe(self) -> str:
        """A short human-readable summary (also printed by ``mulsupcon datasets info``)."""
        freq = self.labels.sum(0) if self.n_samples else np.zeros(self.n_labels)
        kind = "images" if self.is_image else ("sparse" if self.is_sparse else "dense")
        shape = "x".join(str(s) for s in self.features.shape[1:])
        lines = [
            f"dataset          {self.name or '(unnamed)'}",
            f"source           {self.source or '-'}",
            f"samples          {self.n_samples}",
            f"features         {self.n_features} ({kind}, per sample {shape})",
            f"labels           {self.n_labels}",
            f"label cardinality {self.label_cardinality:.3f}",
            f"label density    {self.label_density:.4f}",
            (
                f"label frequency  min {int(freq.min()) if freq.size else 0} / "
                f"median {float(np.median(freq)) if freq.size else 0:g} / "
                f"max {int(freq.max()) if freq.size else 0}"
            ),
            f"rows with no label {self.n_samples - int(np.count_nonzero(np.asarray(self.labels).any(1)))}",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"MultiLabelDataset(name={self.name!r}, samples={self.n_samples}, "
            f"features={self.n_features}, labels={self.n_labels}, sparse={self.is_sparse})"
        )


@dataclass
class Splits:
    """Train / validation / test parts of one dataset (``val`` may be ``None``)."""

    train: MultiLabelDataset
    test: MultiLabelDataset
    val: MultiLabelDataset | None = None
    info: dict = field(default_factory=dict)  # how the split was made (seed, indices file...)


def column_order(have: Sequence[str], want: Sequence[str]) -> Optional[list[int]]:
    """Positions in ``have`` of the names ``want``, in ``want``'s order, when ``have`` holds the same distinct
    names in another order; None when the two are equal or are not one set (then nothing can be matched by
    name)."""
    have, want = list(have), list(want)
    if have == want or len(have) != len(want) or set(have) != set(want) or len(set(want)) != len(want):
        return None
    position = {name: j for j, name in enumerate(have)}
    return [position[name] for name in want]
