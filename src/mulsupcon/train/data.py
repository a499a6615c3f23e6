"""From a config's ``dataset`` section to in-memory tensors, batches and augmented views.

Vector data stays in memory as one tensor (or one CSR matrix, densified per batch) and batches are
drawn by index: no per-item Python objects, no file reopened per item. The order of batches in an
epoch and the augmentation noise are pure functions of ``(seed, epoch)`` so that a resumed run
replays exactly what the uninterrupted run would have seen.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from mulsupcon.data import fit_standardizer
from mulsupcon.data.preprocess import MissingValuesFilled, column_fill_values, fill_missing
from mulsupcon.data.dataset import MultiLabelDataset, RowSubset, Splits, column_order
from mulsupcon.data.splits import SourceParts, make_splits
from mulsupcon.train.dataset_section import load_dataset_splits, missing_policy


class TensorSource:
    """Features and labels of one split, served as float batches by row index.

    Args:
        ds: the split.
        mean, std: (F,) standardisation fitted on the training split (vectors only), or None.

    ``batch(idx)`` returns ``x`` float32 ((B, F) for vectors; (B, C, H, W) uint8 for images, which
    the view maker converts) and ``y`` (B, L) uint8.
    """

    def __init__(self, ds: MultiLabelDataset, mean: Optional[np.ndarray] = None, std: Optional[np.ndarray] = None):
        self.n = ds.n_samples
        self.is_image = ds.is_image
        self.labels = torch.from_numpy(np.ascontiguousarray(ds.labels))
        self._csr: Optional[sp.csr_matrix] = None
        self._mapped: Optional[RowSubset] = None
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)  # (F,) or None
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32)
        if ds.is_sparse:
            self._csr = ds.features.tocsr().astype(np.float32)
            self.features = None
            self.sample_shape: tuple[int, ...] = (ds.features.shape[1],)
        elif ds.is_image and isinstance(ds.features, (np.memmap, RowSubset)):
            # An image cache (or rows of one): rows are read from the file when a batch asks for them;
            # nothing is copied up front, and DataLoader workers map the file themselves.
            self.features = None
            self._mapped = RowSubset(ds.features)
            self.sample_shape = tuple(ds.features.shape[1:])
        elif ds.is_image:
            self.features = torch.from_numpy(np.ascontiguousarray(ds.features))
            self.sample_shape = tuple(ds.features.shape[1:])
        else:
            x = torch.from_numpy(np.ascontiguousarray(ds.features, dtype=np.float32))
            if self.mean is not None:  # dense: standardise once, not per batch
                x = (x - self.mean) / self.std
            self.features = x
            self.sample_shape = (x.shape[1],)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``idx`` (B,) -> (x, y)."""
        if self._mapped is not None:
            rows = idx.numpy() if torch.is_tensor(idx) else np.asarray(idx)
            return torch.from_numpy(self._mapped[rows]), self.labels[idx]
        if self._csr is not None:
            x = torch.from_numpy(self._csr[idx.numpy()].toarray())
            if self.mean is not None:
                x = (x - self.mean) / self.std
        elif torch.is_tensor(idx):
            # index_select: the same rows as features[idx], at 2-3x less cost (no advanced-indexing setup).
            return self.features.index_select(0, idx), self.labels.index_select(0, idx)
        else:
            x = self.features[idx]
        return x, self.labels[idx]

    def duplicate_groups(self) -> torch.Tensor:
        """(N,) int64: rows with identical features share a number (vector data; 0, 1, ... by first row).

        Exact duplicates are common in real tables (genbase: 370 training rows, 137 distinct, one row
        repeated 77 times); the instance term of pretraining treats a group as one instance.
        """
        if self.is_image:
            raise ValueError("duplicate groups are computed for vector data only")
        if self._csr is not None:  # canonical rows (sorted indices, no stored zeros) compare byte for byte
            m = self._csr.copy()
            m.sum_duplicates()
            m.eliminate_zeros()
            m.sort_indices()
            seen: dict[bytes, int] = {}
            rows = [m.indices[a:b].tobytes() + m.data[a:b].tobytes() for a, b in zip(m.indptr[:-1], m.indptr[1:])]
            return torch.tensor([seen.setdefault(r, len(seen)) for r in rows], dtype=torch.long)
        _, inverse = np.unique(self.features.numpy(), axis=0, return_inverse=True)
        first = {}  # renumber by first occurrence (np.unique numbers by sorted order)
        return torch.tensor([first.setdefault(int(g), len(first)) for g in inverse.reshape(-1)], dtype=torch.long)


def epoch_order(n: int, batch_size: int, steps: Optional[int], seed: int, epoch: int, *, drop_last: bool = True) -> list[torch.Tensor]:
    """The batches (lists of row indices) of one epoch, a pure function of ``(seed, epoch)``.

    With ``steps=None`` an epoch is one pass over a fresh permutation (the last short batch dropped
    when ``drop_last`` and there is at least one full batch). With ``steps`` set, an epoch is that
    many batches drawn from successive permutations (the authors' "epoch" of 1000 iterations).
    """
    g = torch.Generator().manual_seed(_mix(seed, epoch, 0x5EED))
    if n <= 0:
        raise ValueError("cannot draw batches from an empty split")
    bs = min(batch_size, n)
    if steps is None:
        perm = torch.randperm(n, generator=g)
        cut = (n // bs) * bs if drop_last else n
        return list(perm[:cut].split(bs))
    need = steps * bs
    chunks, have = [], 0
    while have < need:
        chunks.append(torch.randperm(n, generator=g))
        have += n
    stream = torch.cat(chunks)[:need]
    return list(stream.split(bs))


def _mix(*parts: int) -> int:
    """Combine integers into one 63-bit seed (stable across processes and Python versions)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (int(p) + 0x9E3779B97F4A7C15 + ((h << 6) & 0xFFFFFFFFFFFFFFFF) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def epoch_seed(seed: int, epoch: int, salt: int = 0) -> int:
    """A per-epoch seed derived from the run seed (public so loops and tests agree)."""
    return _mix(seed, epoch, salt)


def process_seed(seed: int, epoch: int, salt: int, rank: int) -> int:
    """:func:`epoch_seed` for process ``rank`` of a multi-process run.

    Rank 0 gets exactly ``epoch_seed(seed, epoch, salt)`` (so a one-process run is unchanged);
    the other ranks get different streams. Seeding every process identically would give row i
    of every shard the same dropout mask and the same image augmentation.
    """
    return epoch_seed(seed, epoch, salt) if rank == 0 else _mix(seed, epoch, salt, rank)


# ----------------------------------------------------------------------------- image batches
class ImageViewBatches(torch.utils.data.Dataset):
    """The augmented views of every batch of images (two for pretraining, one for classification),
    keyed by ``(epoch, step)``.

    Image augmentation is the CPU-heavy part of image pretraining, so it runs where a
    :class:`torch.utils.data.DataLoader` puts it: in persistent worker processes when
    ``num_workers > 0`` (the main process keeps feeding the GPU), or inline. Item ``(e, s)`` is
    a pure function of ``(seed, e, s, rank)`` (batch rows from :func:`epoch_order`, augmentation
    from a seed derived from the position, drawn inside ``fork_rng`` so the caller's random state is
    untouched), hence identical for any number of workers and replayed exactly on resume.
    """

    def __init__(self, source: "TensorSource", views: BatchView, batch_size: int, steps: Optional[int],
                 seed: int, rank: int = 0, world_size: int = 1, n_views: int = 2):
        self.source, self.views = source, views
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.rank, self.world_size, self.n_views = rank, world_size, n_views
        self._epoch: Optional[int] = None
        self._order: list[torch.Tensor] = []

    def __len__(self) -> int:  # not used by the sampler, which yields (epoch, step) keys
        return len(epoch_order(self.source.n, self.batch_size, self.steps, self.seed, 0))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """(view_1, ..., view_n, labels) of batch ``key = (epoch, step)``, this process's shard."""
        epoch, step = key
        if self._epoch != epoch:
            self._order = epoch_order(self.source.n, self.batch_size, self.steps, self.seed, epoch)
            self._epoch = epoch
        idx = self._order[step]
        if self.world_size > 1:  # this process's contiguous shard of the global batch
            per = len(idx) // self.world_size
            idx = idx[self.rank * per : (self.rank + 1) * per]
        x, y = self.source.batch(idx)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(process_seed(self.seed, epoch, 1000 + step, self.rank))
            views = tuple(self.views(x, None) for _ in range(self.n_views))
        return (*views, y)


class EpochSteps(torch.utils.data.Sampler):
    """Yields the ``(epoch, step)`` keys of one epoch; set :attr:`epoch` (and :attr:`start`) first."""

    def __init__(self, steps_per_epoch: int):
        self.steps_per_epoch = steps_per_epoch
        self.epoch, self.start = 0, 0

    def __iter__(self):
        return iter([(self.epoch, s) for s in range(self.start, self.steps_per_epoch)])

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start


def image_view_loader(dataset: ImageViewBatches, steps_per_epoch: int, num_workers: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    """A DataLoader over :class:`ImageViewBatches` (persistent workers, pinned memory on CUDA)."""
    workers = max(0, int(num_workers))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=EpochSteps(steps_per_epoch),
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers > 0 else None,
        # Its own generator: a DataLoader otherwise draws its worker base seed from the GLOBAL
        # RNG at each new iterator (not again with persistent workers), shifting dropout noise.
        generator=torch.Generator().manual_seed(0),
    )


# ----------------------------------------------------------------------------- views
# A view: a batch (B, ...) and an optional generator -> the batch as a model sees it (masked, augmented,
# or resized and normalised for evaluation).
BatchView = Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]


class VectorMasking:
    """The paper's vector augmentation: each input element kept with probability ``1 - p``.

    ``__call__(x (B, F), generator) -> (B, F)`` with masked elements set to 0 (after
    standardisation, so 0 is the training mean).
    """

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.p <= 0:
            return x
        # A float 0/1 mask compared in place: same draws and same products as a boolean mask, but
        # comparisons and products with bool tensors are not vectorised on the CPU.
        keep = torch.rand(x.shape, generator=generator, device=x.device)
        return x * keep.ge_(self.p)


class ImageViews:
    """Image augmentation for uint8 batches (B, C, H, W) -> float (B, C, S, S), via ``image_views``."""

    def __init__(self, size: int, kind: str = "pretrain"):
        from mulsupcon.data import image_views as iv

        self.size = size
        if kind == "pretrain":
            self.transform = iv.pretrain_transform(size)
        elif kind == "flip_crop":
            self.transform = iv.pretrain_transform(size, jitter_p=0.0, grey_p=0.0, scale=(0.5, 1.0))
        elif kind == "eval":
            self.transform = iv.eval_transform(size, resize=size)
        else:
            raise ValueError(f"unknown image view kind '{kind}'")
        self._augment = iv.augment_batch

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self._augment(x, self.transform)


@dataclass
class PreparedData:
    """Everything a training loop needs from the data side."""

    train: TensorSource
    val: Optional[TensorSource]
    test: TensorSource
    label_names: list[str]
    input_shape: tuple[int, ...]
    is_image: bool
    split_info: dict = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)  # vectors: the column names, in model order
    # (F,) float32, vectors with dataset.missing other than error: what a missing feature value becomes (the
    # training rows' column mean, median or most frequent value, before standardisation); None when refused.
    missing_fill: Optional[np.ndarray] = None

    @property
    def n_labels(self) -> int:
        """L, the number of label columns."""
        return len(self.label_names)

    def input_state(self) -> dict[str, Any]:
        """What a saved model needs to read raw rows without the training data (``model.pt`` and
        ``backbone.pt`` both keep it): ``input_shape``, ``is_image``, ``feature_names``, ``label_names``,
        ``standardizer`` (mean/std (F,) of the training split, or None) and ``missing_fill`` ((F,): what a
        missing feature becomes, or None when the run refused missing values)."""
        return {"input_shape": list(self.input_shape), "is_image": self.is_image, "feature_names": list(self.feature_names),
                "label_names": list(self.label_names), "standardizer": {"mean": self.train.mean, "std": self.train.std},
                "missing_fill": None if self.missing_fill is None else torch.from_numpy(self.missing_fill)}


_FILL_WORDS = {"mean": "column mean", "median": "column median", "most_frequent": "most frequent value of the column"}


def _filled_parts(parts: dict[str, Optional[MultiLabelDataset]], strategy: str) -> tuple[dict, np.ndarray]:
    """``dataset.missing: STRATEGY``: every part's missing features filled with the training rows' column
    statistic (one warning says how many); returns the parts and the (F,) float32 fill values."""
    train = parts["train"]
    values, present = column_fill_values(train.features, strategy)
    fill = values.astype(np.float32)
    counts = {}
    for k, v in parts.items():
        if v is not None:
            parts[k], counts[k] = fill_missing(v, fill)
    if sum(counts.values()):
        part_names = {"train": "training", "val": "validation", "test": "test"}
        where = ", ".join(f"{n} in the {part_names[k]} rows" for k, n in counts.items() if n)
        empty = [train.feature_names[j] if j < len(train.feature_names) else str(j)
                 for j in np.flatnonzero(present == 0)]
        warnings.warn(
            f"{train.source or train.name}: {sum(counts.values())} missing feature value(s) ({where}) filled with "
            f"the training rows' {_FILL_WORDS[strategy]} (dataset.missing: {strategy})"
            + (f"; {len(empty)} column(s) have no value in the training rows and were filled with 0: "
               f"{', '.join(empty[:5])}" if empty else ""),
            MissingValuesFilled, stacklevel=3)
    return parts, fill


def as_prepared(data: Any, ds_cfg: Mapping[str, Any], feature_order: Optional[Sequence[str]] = None) -> "PreparedData":
    """What a training loop's ``data=`` may be, as :class:`PreparedData`: None (the config's dataset),
    PreparedData, Splits, SourceParts, or one MultiLabelDataset (``mulsupcon.data.from_arrays`` /
    ``from_file``: test and validation rows carved by iterative stratification, fractions from ``ds_cfg``).
    ``feature_order``: see :func:`prepare_data`; data already prepared in another order is refused."""
    if data is None:
        return prepare_data(ds_cfg, feature_order=feature_order)
    if isinstance(data, PreparedData):
        if feature_order is not None and column_order(data.feature_names, feature_order) is not None:
            raise ValueError(f"the data's features are the backbone's in another order ({data.feature_names[:5]}... "
                             f"against {list(feature_order)[:5]}...): pass the Splits or the dataset, not "
                             "PreparedData, so that they are put in the backbone's order before standardisation")
        return data
    if isinstance(data, Splits):
        return prepare_data(ds_cfg, data, feature_order=feature_order)
    if isinstance(data, MultiLabelDataset):
        data = SourceParts(train=data)
    if isinstance(data, SourceParts):
        splits = make_splits(data, dataset=str(ds_cfg["name"]), val_fraction=float(ds_cfg.get("val_fraction", 0.2)),
                             seed=int(ds_cfg.get("split_seed", 0)), test_fraction=float(ds_cfg.get("test_fraction", 0.2)),
                             stratify=True)
        return prepare_data(ds_cfg, splits, feature_order=feature_order)
    raise TypeError(f"data must be PreparedData, Splits, SourceParts or a MultiLabelDataset, got {type(data).__name__}")


def prepare_data(ds_cfg: Mapping[str, Any], splits: Optional[Splits] = None,
                 feature_order: Optional[Sequence[str]] = None) -> PreparedData:
    """Splits -> standardised in-memory sources (standardiser fitted on the training split only).

    ``feature_order``: the feature names a pretrained backbone was trained on. Data holding the same names in
    another order gets its columns put in that order (a backbone reads its inputs by position); other names
    are left as they are."""
    if splits is None:
        splits = load_dataset_splits(ds_cfg)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    order = None if feature_order is None else column_order(splits.train.feature_names, feature_order)
    if order is not None:
        parts = {k: (v.with_columns(features=order) if v is not None else None) for k, v in parts.items()}
    if ds_cfg.get("as_vectors") and splits.train.is_image:
        from mulsupcon.data.multidigits import to_vectors

        parts = {k: (to_vectors(v) if v is not None else None) for k, v in parts.items()}
    check_learnable(parts["train"])
    fill = None
    policy = missing_policy(ds_cfg)
    if policy != "error" and not parts["train"].is_image:
        parts, fill = _filled_parts(parts, policy)
    elif not parts["train"].is_image:
        for part, ds in parts.items():
            if ds is not None:
                check_no_missing(ds, part)
    train = parts["train"]
    mean = std = None
    if ds_cfg.get("standardize", True) and not train.is_image:
        mean, std = fit_mean_std(train)
    sources = {k: (TensorSource(v, mean, std) if v is not None else None) for k, v in parts.items()}
    return PreparedData(
        train=sources["train"],
        val=sources["val"],
        test=sources["test"],
        label_names=list(train.label_names),
        input_shape=sources["train"].sample_shape,
        is_image=train.is_image,
        split_info=dict(splits.info),
        feature_names=list(train.feature_names) if not train.is_image else [],
        missing_fill=fill,
    )


def check_no_missing(ds: MultiLabelDataset, part: str) -> None:
    """Refuse NaN features under ``dataset.missing: error``. The file readers refuse them already, naming
    the line; arrays (``from_arrays(..., allow_missing=True)``) arrive here, where training would turn a NaN
    into NaN scores far from the cause."""
    x = ds.features
    values = x.data if sp.issparse(x) else np.asarray(x)
    if not np.isnan(values).any():
        return
    if sp.issparse(x):
        coo = x.tocoo()
        k = int(np.flatnonzero(np.isnan(coo.data))[0])
        r, c = int(coo.row[k]), int(coo.col[k])
    else:
        r, c = (int(v) for v in np.argwhere(np.isnan(values))[0])
    raise ValueError(f"{ds.source or ds.name}: missing feature value (NaN) in the {part} rows at row {r}, column {c}; "
                     "set dataset.missing to mean, median or most_frequent to fill such values from the training rows")


def check_learnable(train: MultiLabelDataset) -> None:
    """Refuse training rows without a single positive label: every loss would teach "always 0"."""
    if not train.labels.any():
        raise ValueError(
            f"{train.source or train.name}: none of the {train.n_samples} training rows has a positive label in any "
            f"of its {train.n_labels} label column(s), so there is nothing to learn; are the label columns the right "
            "ones?")


def fit_mean_std(train: MultiLabelDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the training split (zero-variance -> std 1)."""
    # with_mean=True even for sparse inputs: batches are densified anyway, and a masked (zeroed)
    # element then means "the training mean", as in the paper's dense pipeline.
    st = fit_standardizer(train.features, with_mean=True)
    return np.asarray(st.mean_, dtype=np.float32), np.asarray(st.scale_, dtype=np.float32)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``; on CUDA through pinned memory so that the copy overlaps compute."""
    if device.type != "cuda":
        return t
    return (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)
