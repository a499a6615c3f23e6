"""Feature standardisation fitted on training rows only.

The authors standardise vector features with a scaler fitted on the training rows (see
``official-code-facts.md``); fitting on anything else would leak validation/test statistics.

Sparse features: by default (``with_mean=None``) dense inputs are centred and scaled, while sparse
(CSR) inputs are only scaled (``with_mean=False``): centring would turn every implicit zero into a
non-zero and destroy sparsity (delicious, bibtex, bookmarks would blow up in memory). A caller who
wants centred sparse data passes ``with_mean=True``; ``transform`` then densifies, so apply it per
batch. Columns with zero variance get scale 1 (they become constant 0 after centring, never
inf/NaN). Statistics use the population variance (ddof=0), as scikit-learn's ``StandardScaler``.

Missing values (``dataset.missing: mean | median | most_frequent``): :func:`column_fill_values` and
:func:`fill_missing` replace each NaN feature by its column's statistic over the training rows before the
standardisation is fitted: scikit-learn's ``SimpleImputer(strategy=...)`` followed by ``StandardScaler``.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import scipy.sparse as sp

from .dataset import MultiLabelDataset

ArrayLike = Union[np.ndarray, sp.spmatrix, MultiLabelDataset]


def _matrix(x: ArrayLike) -> np.ndarray | sp.spmatrix:
    if isinstance(x, MultiLabelDataset):
        if x.is_image:
            raise ValueError(f"{x.name or 'dataset'}: Standardizer is for vector features, got images {x.features.shape}")
        return x.features
    if sp.issparse(x):
        return x
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"Standardizer expects a 2-D (N, F) matrix, got shape {a.shape}")
    return a


class Standardizer:
    """Per-column ``(x - mean) / std`` with statistics from the rows it was fitted on.

    Attributes (after :meth:`fit`):
        mean_: (F,) float64 column means (zeros when ``with_mean`` is False).
        scale_: (F,) float64 column standard deviations, 1 where a column is constant.
        with_mean: whether :meth:`transform` subtracts ``mean_``.
        n_samples_seen_: number of rows used to fit.
    """

    def __init__(self, with_mean: bool | None = None, eps: float = 1e-12) -> None:
        self.with_mean_arg = with_mean
        self.eps = eps
        self.with_mean: bool = True if with_mean is None else bool(with_mean)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.n_samples_seen_: int = 0

    def fit(self, x: ArrayLike) -> "Standardizer":
        """Fit on (N, F) dense or sparse rows (or a dataset's features); returns ``self``."""
        m = _matrix(x)
        n = m.shape[0]
        if n == 0:
            raise ValueError("cannot fit a Standardizer on 0 rows")
        if sp.issparse(m):
            m = sp.csr_matrix(m, dtype=np.float64)
            mean = np.asarray(m.sum(axis=0)).ravel() / n
            sq = np.asarray(m.multiply(m).sum(axis=0)).ravel() / n
            var = np.maximum(sq - mean**2, 0.0)  # clip tiny negative round-off
            self.with_mean = False if self.with_mean_arg is None else bool(self.with_mean_arg)
        else:
            d = np.asarray(m, dtype=np.float64)
            if not np.isfinite(d).all():
                r, c = np.argwhere(~np.isfinite(d))[0]
                raise ValueError(f"cannot fit a Standardizer: non-finite value {d[r, c]} at row {r}, column {c}")
            mean = d.mean(axis=0)
            var = d.var(axis=0)
            self.with_mean = True if self.with_mean_arg is None else bool(self.with_mean_arg)
        std = np.sqrt(var)
        # A constant column has nothing to scale; dividing by ~0 would make inf/NaN.
        self.scale_ = np.where(std > self.eps, std, 1.0)
        self.mean_ = mean if self.with_mean else np.zeros_like(mean)
        self.n_samples_seen_ = int(n)
        return self

    def _check(self, n_features: int) -> None:
        if self.scale_ is None or self.mean_ is None:
            raise ValueError("Standardizer is not fitted: call fit() on the training rows first")
        if n_features != self.scale_.shape[0]:
            raise ValueError(f"Standardizer was fitted on {self.scale_.shape[0]} features, got {n_features}")

    def transform(self, x: ArrayLike, dtype: np.dtype = np.float32) -> Any:
        """Standardise (N, F) rows.

        Returns the same kind of object as given: a dense (N, F) array of ``dtype``; a CSR matrix
        when the input is sparse and ``with_mean`` is False (else a dense array); a new
        ``MultiLabelDataset`` (labels and names shared) when given a dataset.
        """
        if isinstance(x, MultiLabelDataset):
            return MultiLabelDataset(
                features=self.transform(x.features, dtype=dtype),
                labels=x.labels,
                label_names=list(x.label_names),
                feature_names=list(x.feature_names),
                source=x.source,
                name=x.name,
            )
        m = _matrix(x)
        self._check(m.shape[1])
        assert self.scale_ is not None and self.mean_ is not None
        if sp.issparse(m):
            if not self.with_mean:
                out = sp.csr_matrix(m, dtype=np.float64) @ sp.diags(1.0 / self.scale_)
                return sp.csr_matrix(out, dtype=dtype)
            m = m.toarray()
        d = np.asarray(m, dtype=np.float64)
        return ((d - self.mean_) / self.scale_).astype(dtype, copy=False)

    def fit_transform(self, x: ArrayLike, dtype: np.dtype = np.float32) -> Any:
        """:meth:`fit` then :meth:`transform` on the same rows."""
        return self.fit(x).transform(x, dtype=dtype)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform` for a dense (N, F) array (float64 result)."""
        z = np.asarray(z, dtype=np.float64)
        self._check(z.shape[1])
        assert self.scale_ is not None and self.mean_ is not None
        return z * self.scale_ + self.mean_

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state (lists) for checkpoints / JSON."""
        if self.scale_ is None or self.mean_ is None:
            raise ValueError("Standardizer is not fitted")
        return {
            "with_mean": self.with_mean,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "n_samples_seen": self.n_samples_seen_,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Standardizer":
        """Inverse of :meth:`state_dict`."""
        s = cls(with_mean=bool(state["with_mean"]))
        s.mean_ = np.asarray(state["mean"], dtype=np.float64)
        s.scale_ = np.asarray(state["scale"], dtype=np.float64)
        if s.mean_.shape != s.scale_.shape:
            raise ValueError(f"Standardizer state: mean has shape {s.mean_.shape}, scale {s.scale_.shape}")
        s.n_samples_seen_ = int(state.get("n_samples_seen", 0))
        return s

    def __repr__(self) -> str:
        f = None if self.scale_ is None else self.scale_.shape[0]
        return f"Standardizer(features={f}, with_mean={self.with_mean}, fitted_on={self.n_samples_seen_})"


def fit_standardizer(train: ArrayLike, *, with_mean: bool | None = None) -> Standardizer:
    """A :class:`Standardizer` fitted on the training rows ``train`` ((N, F) dense/sparse or a dataset)."""
    return Standardizer(with_mean=with_mean).fit(train)


def standardize_splits(splits: Any, *, with_mean: bool | None = None) -> tuple[Any, Standardizer]:
    """Fit on ``splits.train`` only and transform train/val/test; returns (new Splits, scaler)."""
    from .dataset import Splits

    scaler = fit_standardizer(splits.train, with_mean=with_mean)
    out = Splits(
        train=scaler.transform(splits.train),
        val=None if splits.val is None else scaler.transform(splits.val),
        test=scaler.transform(splits.test),
        info={**splits.info, "standardized": True, "standardizer_with_mean": scaler.with_mean},
    )
    return out, scaler


class MissingValuesFilled(UserWarning):
    """Missing feature values were filled with a statistic of the training rows' columns (``dataset.missing``)."""


#: How ``dataset.missing`` may fill a missing feature value: scikit-learn's ``SimpleImputer`` strategies.
FILL_STRATEGIES = ("mean", "median", "most_frequent")


def column_fill_values(x: np.ndarray | sp.spmatrix, strategy: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """What fills a missing value of each column of (N, F) dense or sparse rows (NaN = missing) ->
    ``(fill (F,) float64, present (F,) int64: how many rows hold a value)``; 0 where no row does.

    ``strategy`` is one of :data:`FILL_STRATEGIES`, computed by scikit-learn's ``SimpleImputer`` over the
    values present. For sparse rows an implicit zero is a value, a stored NaN is missing."""
    if strategy not in FILL_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(FILL_STRATEGIES)}, got {strategy!r}")
    from sklearn.impute import SimpleImputer

    n, f = x.shape
    if sp.issparse(x):
        m = x.tocsr()
        present = n - np.bincount(m.indices[np.isnan(m.data)], minlength=f)
    else:
        m = np.asarray(x, dtype=np.float64)
        present = n - np.isnan(m).sum(axis=0)
    # keep_empty_features: a column with no value gets 0 (and stays a column) instead of being dropped.
    fill = SimpleImputer(strategy=strategy, keep_empty_features=True).fit(m).statistics_
    return np.where(present > 0, fill, 0.0).astype(np.float64), present


def fill_missing(ds: MultiLabelDataset, fill: np.ndarray) -> tuple[MultiLabelDataset, int]:
    """``ds`` with each NaN feature (N, F) replaced by ``fill`` (F,) of its column, and how many there were."""
    x = ds.features.tocsr() if sp.issparse(ds.features) else np.asarray(ds.features)
    nan = np.isnan(x.data if sp.issparse(x) else x)
    n_missing = int(nan.sum())
    if n_missing == 0:
        return ds, 0
    if sp.issparse(x):  # copies: the caller's arrays stay as read
        x = x.copy()
        x.data[nan] = fill[x.indices[nan]]
    else:
        x = np.array(x, dtype=np.float32)
        x[nan] = np.broadcast_to(fill.astype(np.float32), x.shape)[nan]
    return MultiLabelDataset(features=x, labels=ds.labels, label_names=list(ds.label_names),
                             feature_names=list(ds.feature_names), source=ds.source, name=ds.name), n_missing
