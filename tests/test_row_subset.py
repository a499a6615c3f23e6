"""Subsets of memory-mapped image caches are index views (RowSubset), not copies in RAM."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
import torch
from numpy.lib.format import open_memmap

from mulsupcon.data.dataset import MultiLabelDataset, RowSubset
from mulsupcon.data.splits import make_splits


@pytest.fixture(scope="module")
def big_cache(tmp_path_factory):
    """A 301 MB uint8 image cache (2000 x 3 x 224 x 224) on disk, memory-mapped read-only."""
    path = tmp_path_factory.mktemp("cache") / "c.npy"
    n = 2000
    out = open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 3, 224, 224))
    out[:, 0, 0, 0] = np.arange(n) % 251  # a row's first pixel tells which row it is
    out[:, 1, 5, 7] = np.arange(n) // 251
    out.flush()
    del out
    labels = np.zeros((n, 3), dtype=np.uint8)
    labels[np.arange(n), np.arange(n) % 3] = 1
    return MultiLabelDataset(features=np.load(path, mmap_mode="r"), labels=labels, label_names=["a", "b", "c"])


def _row_ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(np.int64) + 251 * x[:, 1, 5, 7].astype(np.int64)


def test_subsets_of_a_memmap_are_views_with_bounded_memory(big_cache):
    from mulsupcon.train.data import TensorSource

    rows = np.random.default_rng(0).permutation(big_cache.n_samples)[:1500]
    tracemalloc.start()
    try:
        part = big_cache.subset(rows)                  # would copy 226 MB into RAM
        part2 = part.subset(np.arange(0, 1500, 2))     # composed, still a view of the file
        source = TensorSource(part2)
        x, y = source.batch(torch.tensor([0, 5, 749]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(part.features, RowSubset) and isinstance(part2.features, RowSubset)
    assert part2.features.base is big_cache.features
    assert peak < 10_000_000, f"peak {peak / 1e6:.1f} MB of allocations for subsets of a 301 MB cache"
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 3, 224, 224)
    np.testing.assert_array_equal(_row_ids(x.numpy()), rows[[0, 10, 1498]])
    np.testing.assert_array_equal(y.numpy(), big_cache.labels[rows[[0, 10, 1498]]])
    assert part2.is_image and part2.n_samples == 750 and part2.features.shape == (750, 3, 224, 224)


def test_the_split_path_keeps_views(big_cache):
    from mulsupcon.data.splits import SourceParts

    tracemalloc.start()
    try:
        s = make_splits(SourceParts(train=big_cache.subset(range(1600)), test=big_cache.subset(range(1600, 2000))),
                        dataset="big", val_fraction=0.2, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB"
    assert all(isinstance(p.features, RowSubset) for p in (s.train, s.val, s.test))
    ids = np.concatenate([_row_ids(np.asarray(p.features[:])) for p in (s.train, s.val)])
    assert sorted(ids.tolist()) == list(range(1600))


def test_row_subset_indexing_matches_numpy_and_pickles_without_pixels(big_cache):
    base = big_cache.features
    rows = np.array([7, 3, 1999, 3, 100, 101, 102])
    view = RowSubset(base, rows)
    for index in (2, -1, slice(None), slice(4, 7), slice(1, 6, 2), np.array([6, 0, 0]), (slice(0, 3), 0, 0, 0)):
        np.testing.assert_array_equal(view[index], np.asarray(base)[rows][index])
    np.testing.assert_array_equal(np.asarray(view), np.asarray(base)[rows])
    blob = pickle.dumps(view)
    assert len(blob) < 10_000  # the file name and 7 indices, not 1 MB of pixels
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again[:], view[:])
    with pytest.raises(IndexError, match="out of range"):
        RowSubset(base, [2000])
    # In-memory arrays are still copied (a view of RAM would save nothing).
    small = MultiLabelDataset(features=np.zeros((4, 3, 2, 2), np.uint8), labels=np.eye(4, 2, dtype=np.uint8),
                              label_names=["a", "b"])
    assert isinstance(small.subset([1, 2]).features, np.ndarray)
