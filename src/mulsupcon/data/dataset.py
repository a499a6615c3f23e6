"""The one in-memory dataset object every reader returns.

Features stay in the form they were read in: a dense ``numpy`` array for vector data, a
``scipy.sparse.csr_matrix`` for sparse ARFF files (densified only per batch), or a ``uint8``
array of shape (N, C, H, W) for images. Labels are always an (N, L) ``uint8`` multi-hot matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np
import scipy.sparse as sp

Features = Union[np.ndarray, sp.csr_matrix]


@dataclass
class MultiLabelDataset:
    """Features, multi-hot labels and their names.

    Attributes:
        features: (N, F) float array, (N, F) ``csr_matrix``, or (N, C, H, W) ``uint8`` images.
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

    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""

    # ------------------------------------------------------------------ shape facts
    @property
    def n_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_labels(self) -> int:
        return int(self.labels.shape[1])

    @property
    def n_features(self) -> int:
        """Number of features per sample (C*H*W for images)."""
        return int(np.prod(self.features.shape[1:]))

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.features)

    @property
    def is_image(self) -> bool:
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
        """Rows ``index`` (in that order) as a new dataset sharing names and source."""
        index = np.asarray(index, dtype=np.int64)
        return MultiLabelDataset(
            features=self.features[index],
            labels=self.labels[index],
            label_names=list(self.label_names),
            feature_names=list(self.feature_names),
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
