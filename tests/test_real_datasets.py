"""Every dataset in the shared data folder loads through ``mulsupcon.data.load`` with the README counts.

Counts come from ``shared/data/README.md``. Its "features" column counts ARFF attributes; the
reader one-hot encodes nominal attributes (and the registry drops genbase's protein-id attribute),
so for genbase/flags/foodtruck the loaded feature count differs - the test checks the raw
attribute count from the file header instead, and the loaded width against the registry entry.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from mulsupcon.data import load, load_splits

from conftest import require_dataset_folder

# name, folder, train, test (None: no official split -> total in `train`), raw features, labels,
# label cardinality over all rows (README, with its number of decimals), sparse
README = [
    ("yeast", "yeast", 1500, 917, 103, 14, "4.237", False),
    ("scene", "scene", 1211, 1196, 294, 6, "1.074", False),
    ("delicious", "delicious", 12920, 3185, 500, 983, "19.02", True),
    ("bibtex", "bibtex", 4880, 2515, 1836, 159, "2.40", True),
    ("medical", "medical", 333, 645, 1449, 45, "1.245", True),
    ("corel5k", "corel5k", 4500, 500, 499, 374, "3.52", True),
    ("tmc2007-500", "tmc2007", 21519, 7077, 500, 22, "2.16", True),
    ("genbase", "genbase", 463, 199, 1186, 27, "1.25", False),
    ("cal500", "cal500", 502, None, 68, 174, "26.0", False),
    ("flags", "flags", 129, 65, 19, 7, "3.39", False),
    ("foodtruck", "foodtruck", 407, None, 21, 12, "2.29", False),
]


def _raw_attribute_count(path) -> int:
    """Number of @attribute lines in an ARFF header (independent of the reader)."""
    n = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            low = line.strip().lower()
            if low.startswith("@data"):
                break
            n += low.startswith("@attribute")
    return n


def _describe_numbers(text: str) -> dict[str, float]:
    out = {}
    for key, pat in (
        ("samples", r"^samples\s+(\d+)"),
        ("features", r"^features\s+(\d+)"),
        ("labels", r"^labels\s+(\d+)"),
        ("cardinality", r"^label cardinality\s*([\d.]+)"),
        ("no label", r"^rows with no label\s*(\d+)"),
    ):
        m = re.search(pat, text, re.M)
        assert m, f"describe() has no '{key}' line:\n{text}"
        out[key] = float(m.group(1))
    return out


@pytest.mark.parametrize("name,folder,n_train,n_test,n_raw,n_labels,card,sparse", README, ids=[r[0] for r in README])
def test_readme_counts(name, folder, n_train, n_test, n_raw, n_labels, card, sparse):
    require_dataset_folder(folder)
    from mulsupcon.data.registry import get_data_home, get_spec

    spec = get_spec(name)
    trainval = load(name, "trainval")
    test = load(name, "test")
    everything = load(name, "all")
    if n_test is None:  # no official split: test is a fixed 20% carve
        assert everything.n_samples == n_train
        assert test.n_samples == round(spec.test_fraction * n_train)
        assert trainval.n_samples + test.n_samples == n_train
    else:
        assert (trainval.n_samples, test.n_samples) == (n_train, n_test)
        assert everything.n_samples == n_train + n_test
    assert trainval.n_labels == test.n_labels == n_labels
    assert trainval.is_sparse == sparse
    # README cardinality is over all rows, rounded to the README's decimals.
    decimals = len(card.split(".")[1])
    assert round(everything.label_cardinality, decimals) == pytest.approx(float(card))
    # Raw attribute count from the header; the encoded width equals it unless nominals were one-hot.
    first = get_data_home() / spec.read_args.get("train", spec.read_args.get("all"))
    assert _raw_attribute_count(first) - n_labels == n_raw
    assert test.n_features == trainval.n_features
    assert trainval.n_features == spec.n_features
    if name not in ("genbase", "flags", "foodtruck"):
        assert trainval.n_features == n_raw
    if name == "genbase":  # the protein-id attribute is dropped, the 1185 YES/NO motifs one-hot
        assert not any(f.startswith("protein") for f in trainval.feature_names)
        assert trainval.n_features == 2 * (n_raw - 1)
    # describe() reports the same numbers.
    for part in (trainval, test):
        d = _describe_numbers(part.describe())
        assert d["samples"] == part.n_samples and d["labels"] == n_labels
        assert d["features"] == part.n_features
        assert d["cardinality"] == pytest.approx(part.label_cardinality, abs=1e-3)
        assert d["no label"] == int((np.asarray(part.labels).sum(1) == 0).sum())
    # Labels are the XML's, in order.
    assert len(set(trainval.label_names)) == n_labels


def test_default_splits_on_real_yeast():
    require_dataset_folder("yeast")
    s = load_splits("yeast", val_fraction=0.2, seed=0)
    assert (s.train.n_samples, s.val.n_samples, s.test.n_samples) == (1200, 300, 917)
    tv = load("yeast", "trainval")
    assert np.array_equal(s.val.labels, tv.labels[s.info["val_index"]])
    assert load("yeast", "train", seed=0).n_samples == 1200
    assert load("yeast", "val", seed=1).n_samples == 300


def test_yeast_official_hdf5_matches_mulan_with_permutation():
    require_dataset_folder("yeast")
    s = load_splits("yeast-official")
    assert (s.train.n_samples, s.val.n_samples, s.test.n_samples) == (1200, 300, 917)
    assert s.info["val_source"] == "official"
    mulan_test = load("yeast", "test")
    # Column j of the authors' files is Mulan label Class(K[j]+1); the registered names say so.
    perm = [int(n[len("Class"):]) - 1 for n in s.test.label_names]
    assert sorted(perm) == list(range(14))
    assert np.array_equal(s.test.labels, mulan_test.labels[:, perm])
    np.testing.assert_allclose(s.test.features, mulan_test.features, atol=1e-6)
    # train + val are the 1500 Mulan training rows (shuffled): same multiset of label rows.
    pool = load("yeast-official", "trainval")
    mulan_tv = load("yeast", "trainval")
    a = np.sort(pool.labels.astype(np.int64) @ (1 << np.arange(14)))
    b = np.sort(mulan_tv.labels[:, perm].astype(np.int64) @ (1 << np.arange(14)))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("meka,mulan", [("yeast-meka", "yeast"), ("scene-meka", "scene")])
def test_meka_copies_equal_mulan(meka, mulan):
    require_dataset_folder(mulan)
    for split in ("trainval", "test"):
        a, b = load(meka, split), load(mulan, split)
        assert a.labels.shape == b.labels.shape
        assert np.array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.dense_features(), b.dense_features(), atol=1e-5)


def test_imdb_meka():
    require_dataset_folder("imdb")
    everything = load("imdb", "all")
    assert everything.n_samples == 120919 and everything.n_labels == 28 and everything.n_features == 1001
    assert everything.is_sparse
    test = load("imdb", "test")
    assert test.n_samples == round(0.2 * 120919)
