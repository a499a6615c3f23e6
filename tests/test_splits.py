"""Seeded splits (deterministic, disjoint, restorable) and train-only standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import StandardScaler

from mulsupcon.data import MultiLabelDataset, Standardizer, fit_standardizer, standardize_splits
from mulsupcon.data.splits import (
    SourceParts,
    carve_indices,
    concat_datasets,
    load_split_indices,
    make_splits,
    save_split_indices,
    splits_from_indices,
)


def _ds(n: int, f: int = 5, l: int = 4, seed: int = 0, sparse: bool = False, name: str = "toy") -> MultiLabelDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)) * np.arange(1, f + 1) + np.arange(f)
    # Row id in column 0 lets tests recognise rows after splitting.
    x[:, 0] = np.arange(n) + 1000 * seed
    if sparse:
        x = sp.csr_matrix(np.where(rng.random((n, f)) < 0.5, x, 0.0))
    y = (rng.random((n, l)) < 0.3).astype(np.uint8)
    return MultiLabelDataset(x, y, [f"l{i}" for i in range(l)], [f"f{i}" for i in range(f)], name=name)


def _row_ids(d: MultiLabelDataset) -> np.ndarray:
    return np.asarray(d.dense_features(np.float64)[:, 0]).astype(int)


def test_carve_is_deterministic_disjoint_and_covering():
    kept, carved = carve_indices(101, 0.2, seed=3)
    kept2, carved2 = carve_indices(101, 0.2, seed=3)
    assert np.array_equal(kept, kept2) and np.array_equal(carved, carved2)
    assert carved.size == 20 and kept.size == 81
    assert np.intersect1d(kept, carved).size == 0
    assert np.array_equal(np.sort(np.concatenate([kept, carved])), np.arange(101))
    _, other = carve_indices(101, 0.2, seed=4)
    assert not np.array_equal(carved, other)
    # Tiny sets still give non-empty parts; fraction 0 gives nothing.
    k, c = carve_indices(3, 0.1, seed=0)
    assert (k.size, c.size) == (2, 1)
    assert carve_indices(10, 0.0, seed=0)[1].size == 0
    with pytest.raises(ValueError, match="fraction"):
        carve_indices(10, 1.0, seed=0)


def test_official_split_val_carve():
    parts = SourceParts(train=_ds(200, seed=0), test=_ds(50, seed=1))
    s = make_splits(parts, dataset="toy", val_fraction=0.25, seed=7)
    assert (s.train.n_samples, s.val.n_samples, s.test.n_samples) == (150, 50, 50)
    tr, va = _row_ids(s.train), _row_ids(s.val)
    assert np.intersect1d(tr, va).size == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(200))
    assert np.array_equal(_row_ids(s.test), np.arange(50) + 1000)  # official test untouched, in order
    assert s.info["dataset"] == "toy" and s.info["seed"] == 7 and s.info["val_fraction"] == 0.25
    assert s.info["val_source"] == "carved" and s.info["test_source"] == "official"
    assert np.array_equal(np.asarray(s.info["val_index"]), va)  # indices are rows of the official train
    # Same seed -> same split; other seed -> other split; val_fraction=0 -> no val.
    s2 = make_splits(parts, dataset="toy", val_fraction=0.25, seed=7)
    assert np.array_equal(_row_ids(s2.val), va)
    s3 = make_splits(parts, dataset="toy", val_fraction=0.25, seed=8)
    assert not np.array_equal(_row_ids(s3.val), va)
    s0 = make_splits(parts, dataset="toy", val_fraction=0.0, seed=7)
    assert s0.val is None and s0.train.n_samples == 200 and s0.info["val_source"] == "none"


def test_no_official_split_carves_fixed_test():
    parts = SourceParts(train=_ds(100, seed=0))
    a = make_splits(parts, dataset="toy", val_fraction=0.2, seed=1, test_fraction=0.2)
    b = make_splits(parts, dataset="toy", val_fraction=0.2, seed=2, test_fraction=0.2)
    assert a.test.n_samples == 20 and a.val.n_samples == 16 and a.train.n_samples == 64
    # The test part does not depend on the run seed; validation does.
    assert np.array_equal(_row_ids(a.test), _row_ids(b.test))
    assert not np.array_equal(_row_ids(a.val), _row_ids(b.val))
    ids = np.concatenate([_row_ids(a.train), _row_ids(a.val), _row_ids(a.test)])
    assert np.array_equal(np.sort(ids), np.arange(100))
    assert a.info["test_source"] == "carved" and a.info["test_index"] == sorted(a.info["test_index"])


def test_official_validation_part():
    parts = SourceParts(train=_ds(30, seed=0), val=_ds(10, seed=2), test=_ds(20, seed=1))
    s = make_splits(parts, dataset="toy", val_fraction=0.2, seed=5)
    assert np.array_equal(_row_ids(s.train), np.arange(30))
    assert np.array_equal(_row_ids(s.val), np.arange(10) + 2000)
    assert s.info["val_source"] == "official" and s.info["n_pool"] == 40
    s0 = make_splits(parts, dataset="toy", val_fraction=0.0)
    assert s0.val is None and s0.train.n_samples == 40


@pytest.mark.parametrize("official", [True, False])
def test_saved_indices_reload_identically(tmp_path, official):
    parts = SourceParts(train=_ds(80, seed=0, sparse=True), test=_ds(30, seed=1, sparse=True) if official else None)
    s = make_splits(parts, dataset="toy", val_fraction=0.3, seed=11)
    path = save_split_indices(tmp_path / "split.json", s)
    info = load_split_indices(path)
    r = splits_from_indices(parts, path)
    for a, b in ((s.train, r.train), (s.val, r.val), (s.test, r.test)):
        assert (a.features != b.features).nnz == 0
        assert np.array_equal(a.labels, b.labels)
    assert info["train_index"] == s.info["train_index"]
    # Restoring onto different data is caught by the label fingerprint.
    other = SourceParts(train=_ds(80, seed=9, sparse=True), test=parts.test)
    with pytest.raises(ValueError, match="fingerprint|overlap"):
        splits_from_indices(other, path)
    bad = dict(s.info, val_index=s.info["train_index"][:3])
    with pytest.raises(ValueError, match="overlap"):
        splits_from_indices(parts, bad)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="line 1"):
        load_split_indices(tmp_path / "junk.json")


def test_concat_keeps_sparse_and_order():
    a, b = _ds(5, seed=0, sparse=True), _ds(4, seed=1)
    c = concat_datasets([a, b])
    assert sp.issparse(c.features) and c.n_samples == 9
    assert np.array_equal(c.labels, np.vstack([a.labels, b.labels]))
    with pytest.raises(ValueError, match="label names"):
        concat_datasets([a, _ds(3, l=5)])


# --------------------------------------------------------------------------- standardisation
def test_standardizer_matches_sklearn_and_fits_on_train_only():
    s = make_splits(SourceParts(train=_ds(300, f=6, seed=0), test=_ds(200, f=6, seed=5)), dataset="toy", seed=0)
    scaler = fit_standardizer(s.train)
    ref = StandardScaler().fit(s.train.dense_features(np.float64))
    np.testing.assert_allclose(scaler.mean_, ref.mean_, rtol=1e-10)
    np.testing.assert_allclose(scaler.scale_, ref.scale_, rtol=1e-10)
    z_train = scaler.transform(s.train.features)
    z_test = scaler.transform(s.test.features)
    np.testing.assert_allclose(z_test, ref.transform(s.test.dense_features(np.float64)), rtol=1e-5, atol=1e-5)
    assert np.abs(z_train.mean(0)).max() < 1e-5 and np.abs(z_train.std(0) - 1).max() < 1e-4
    # Test statistics do not leak: standardised test rows are not centred (column 0 = row ids differ).
    assert np.abs(z_test.mean(0)).max() > 0.1
    assert z_train.dtype == np.float32


def test_standardizer_zero_variance_and_sparse():
    x = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 0.0], [5.0, 5.0, 2.0], [7.0, 5.0, 0.0]])
    z = Standardizer().fit_transform(x)
    assert np.isfinite(z).all() and np.all(z[:, 1] == 0)  # constant column -> 0, not NaN
    xs = sp.csr_matrix(x)
    scaler = fit_standardizer(xs)  # sparse default: scale only, keep sparsity
    assert scaler.with_mean is False
    zs = scaler.transform(xs)
    assert sp.issparse(zs) and zs.nnz == xs.nnz
    ref = StandardScaler(with_mean=False).fit(x)
    np.testing.assert_allclose(zs.toarray(), ref.transform(x), rtol=1e-6)
    assert np.isfinite(zs.toarray()).all()
    centred = fit_standardizer(xs, with_mean=True)  # explicit centring densifies (per batch)
    np.testing.assert_allclose(centred.transform(xs[:2]), StandardScaler().fit(x).transform(x[:2]), rtol=1e-6)
    with pytest.raises(ValueError, match="fitted on 3 features, got 2"):
        scaler.transform(x[:, :2])
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(x)


def test_standardizer_state_roundtrip_and_splits():
    s = make_splits(SourceParts(train=_ds(50, seed=0), test=_ds(20, seed=1)), dataset="toy", seed=0)
    out, scaler = standardize_splits(s)
    again = Standardizer.from_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(again.transform(s.test.features), out.test.features)
    np.testing.assert_allclose(again.inverse_transform(out.train.features), s.train.features, rtol=1e-5, atol=1e-4)
    assert out.info["standardized"] and np.array_equal(out.val.labels, s.val.labels)


def test_label_never_in_train_is_warned_with_its_name():
    import warnings

    import numpy as np

    from mulsupcon.data.dataset import MultiLabelDataset
    from mulsupcon.data.splits import LabelAbsentWarning, warn_labels_missing_from_train

    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.uint8)
    train = MultiLabelDataset(np.zeros((3, 2)), y, ["a", "b", "rare"], source="toy.arff")
    test = MultiLabelDataset(np.zeros((2, 2)), np.array([[0, 0, 1], [1, 0, 0]]), ["a", "b", "rare"])
    with pytest.warns(LabelAbsentWarning, match=r"toy.arff: 1 label\(s\) never occur.*rare.*1 of them occur in the test"):
        assert warn_labels_missing_from_train(train, test) == ["rare"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        every_label = MultiLabelDataset(np.zeros((2, 2)), np.array([[1, 0, 1], [0, 1, 0]]), ["a", "b", "rare"])
        assert warn_labels_missing_from_train(every_label) == []


def test_tensor_source_batches_are_the_standardised_rows_in_index_order() -> None:
    """Dense, sparse and image sources give the rows asked for, in the order asked, repeats included
    (numpy oracle: standardise the whole split, then take the rows)."""
    import torch

    from mulsupcon.train.data import TensorSource

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    y = (rng.random((30, 4)) > 0.5).astype(np.uint8)
    mean, std = x.mean(0), x.std(0) + 0.5
    idx = torch.tensor([7, 0, 29, 7, 3])
    for feats in (x, sp.csr_matrix(x)):
        src = TensorSource(MultiLabelDataset(feats, y, ["a", "b", "c", "d"]), mean, std)
        xb, yb = src.batch(idx)
        np.testing.assert_allclose(xb.numpy(), ((x - mean) / std)[idx.numpy()], rtol=1e-6, atol=1e-6)
        assert yb.dtype == torch.uint8 and np.array_equal(yb.numpy(), y[idx.numpy()])
    images = rng.integers(0, 256, size=(30, 3, 4, 4), dtype=np.uint8)
    xb, yb = TensorSource(MultiLabelDataset(images, y, ["a", "b", "c", "d"])).batch(idx)
    assert np.array_equal(xb.numpy(), images[idx.numpy()]) and np.array_equal(yb.numpy(), y[idx.numpy()])
