"""svmlight / LIBSVM / Extreme Classification Repository files (``mulsupcon.data.svmlight``).

Oracles: scikit-learn's ``dump_svmlight_file`` (an independent writer) for the reader; the same rows as a
CSV pair for the whole CLI chain (same arrays, split, metrics and predictions); hand-written files for the
header and for every error, which must name the line.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file as _dump_svmlight_file
from test_own_data import VEC, _cli

from mulsupcon.data import from_file
from mulsupcon.data.arff import DataFormatError
from mulsupcon.data.svmlight import is_svmlight, read_svmlight, read_svmlight_features
from mulsupcon.data.user_files import read_dataset


def dump_svmlight_file(x, y, path, **kwargs) -> None:
    _dump_svmlight_file(x, y, str(path), **kwargs)  # scikit-learn takes a str, not a Path


def _sparse(n: int = 60, f: int = 40, labels: int = 5, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = sp.random(n, f, density=0.1, random_state=seed, format="csr", dtype=np.float32)
    x.data = np.round(x.data * 8 - 4) / 8 + 0.0625  # exact in decimal and binary, never 0
    y = (rng.random((n, labels)) < 0.3).astype(np.uint8)
    y[:, 1] = 0  # an id no row has
    x = x.toarray()
    x[(y.sum(1) == 0) & (x.sum(1) == 0), 0] = 1.0  # a row with no label has a feature (see the blank-line test)
    return sp.csr_matrix(x), y


def test_files_written_by_scikit_learn_read_back_as_written(tmp_path):
    """Oracle: `dump_svmlight_file`. 0-based: the same matrix; 1-based (LIBSVM's): column k is index k as
    written, so column 0 is empty and the rest is the matrix. Labels are the ids that occur, by value; rows
    without labels read as such; a .gz and a .txt file read the same."""
    x, y = _sparse()
    dump_svmlight_file(x, y, tmp_path / "zero.svm", multilabel=True, zero_based=True)
    dump_svmlight_file(x, y, tmp_path / "one.libsvm", multilabel=True, zero_based=False)
    ds = read_svmlight(tmp_path / "zero.svm")
    assert sp.issparse(ds.features) and ds.features.dtype == np.float32
    assert ds.label_names == ["0", "2", "3", "4"] and ds.feature_names == [f"f{k}" for k in range(40)]
    np.testing.assert_array_equal(ds.features.toarray(), x.toarray())
    np.testing.assert_array_equal(ds.labels, y[:, [0, 2, 3, 4]])
    assert (ds.labels.sum(1) == 0).any()
    one = read_svmlight(tmp_path / "one.libsvm")
    assert one.n_features == 41 and one.features[:, 0].nnz == 0
    np.testing.assert_array_equal(one.features[:, 1:].toarray(), x.toarray())
    text = (tmp_path / "zero.svm").read_bytes()
    with gzip.open(tmp_path / "zero.svm.gz", "wb") as f:
        f.write(text)
    (tmp_path / "train.txt").write_bytes(text)
    assert is_svmlight(tmp_path / "train.txt") and is_svmlight(tmp_path / "zero.svm.gz")
    for other in ("zero.svm.gz", "train.txt"):
        again = from_file(tmp_path / other)
        np.testing.assert_array_equal(again.features.toarray(), x.toarray())
        np.testing.assert_array_equal(again.labels, ds.labels)
    (tmp_path / "table.txt").write_text("a,b,lab\n1,2,0\n3,4,1\n")
    assert not is_svmlight(tmp_path / "table.txt")  # a CSV saved as .txt stays a table
    assert from_file(tmp_path / "table.txt", label_columns=1).feature_names == ["a", "b"]


def test_mostly_non_zero_rows_become_an_array_as_in_a_csv(tmp_path):
    """Above a third of the values non-zero, CSR would take more memory than an array: the rows are an
    array, standardised (centred) as the same data in a CSV would be."""
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=(30, 6)) * 8) / 8
    x[x == 0] = 0.5
    y = (x[:, :2] > 0).astype(np.uint8)
    dump_svmlight_file(x, y, tmp_path / "dense.svm", multilabel=True, zero_based=True)
    ds = read_svmlight(tmp_path / "dense.svm")
    assert isinstance(ds.features, np.ndarray) and ds.features.dtype == np.float32
    np.testing.assert_array_equal(ds.features, x.astype(np.float32))


def test_the_extreme_classification_header_fixes_rows_features_and_labels(tmp_path):
    """`N F L` on the first line: every id below L is a label (unused ones too), F columns; the file must hold
    N rows, indices below F, ids below L, each named by its line."""
    good = "4 6 5\n0,3 0:1 2:0.5\n 1:2 5:1\n3 4:1\n0 0:1\n"
    (tmp_path / "g.txt").write_text(good)
    ds = read_svmlight(tmp_path / "g.txt")
    assert ds.label_names == ["0", "1", "2", "3", "4"] and ds.n_features == 6
    np.testing.assert_array_equal(ds.labels, [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(ds.features.toarray()[1], [0, 2, 0, 0, 0, 1])
    cases = {
        "5 6 5\n0 0:1\n": r"the header \(line 1\) gives 5 rows, but the file holds 1 \(a truncated file\?\)",
        "1 6 5\n0,5 0:1\n": r"line 2: label id 5, but the header \(line 1\) gives 5 labels \(ids 0 to 4\)",
        "2 6 5\n0 0:1\n1 6:1\n": r"line 3: feature index 6, but .* has 6 features \(indices 0 to 5\)",
    }
    for i, (text, message) in enumerate(cases.items()):
        (tmp_path / f"b{i}.txt").write_text(text)
        with pytest.raises(DataFormatError, match=rf"b{i}\.txt: {message}"):
            read_svmlight(tmp_path / f"b{i}.txt")


@pytest.mark.parametrize("line, message", [
    ("a,2 0:1", r"line 3: label id 'a' is not a non-negative integer"),
    ("-1 0:1", r"line 3: label id '-1' is not a non-negative integer"),
    ("1 3:1 2:1", r"line 3: feature index 2 comes after 3; the indices of a row must increase"),
    ("1 3:1 3:2", r"line 3: feature index 3 comes after 3"),
    ("1 3", r"line 3: '3' \(feature 1 of the row\) is not index:value"),
    ("1 2:x", r"line 3: feature 2 has the value 'x', which is not a number"),
    ("1 2:1e39", r"line 3: feature 2 has the value 1e39, which is not a finite float32 number"),
    ("1 2:inf", r"line 3: feature 2 has the value inf, which is not a finite float32 number"),
    ("1 2:nan", r"line 3: feature 2 is missing \('nan'\); --dataset.missing mean"),
    ("", r"line 3 is blank, but rows follow it\. A row with neither labels nor features"),
])
def test_every_error_names_the_line(tmp_path, line, message):
    (tmp_path / "bad.svm").write_text(f"# made by hand\n0 0:1 4:2\n{line}\n2 1:1\n")
    with pytest.raises(DataFormatError, match=rf"bad\.svm: {message}"):
        read_svmlight(tmp_path / "bad.svm")


def test_missing_values_are_kept_when_allowed_and_an_empty_file_is_named(tmp_path):
    (tmp_path / "m.svm").write_text("0 0:1 2:nan\n1 1:2\n")
    ds = read_svmlight(tmp_path / "m.svm", allow_missing=True)
    assert np.isnan(ds.features[0, 2])  # 3 of 6 values set: an array
    (tmp_path / "e.svm").write_text("# nothing\n\n")
    with pytest.raises(DataFormatError, match=r"e\.svm: no rows"):
        read_svmlight(tmp_path / "e.svm")


def test_a_test_file_adds_its_own_ids_and_indices_to_the_training_files(tmp_path):
    """Without a header each file has the ids and indices it holds: a pair is read with both files'
    (an id only in the test file is a label without a training positive, as with names listed in a CSV)."""
    (tmp_path / "tr.svm").write_text("0 0:1\n2 1:1\n0,2 0:1 1:1\n")
    (tmp_path / "te.svm").write_text("0,7 0:1 4:1\n2 1:1\n")
    parts, files = read_dataset(tmp_path / "tr.svm", test_path=tmp_path / "te.svm")
    assert parts.train.label_names == parts.test.label_names == ["0", "2", "7"]
    assert parts.train.n_features == parts.test.n_features == 5
    np.testing.assert_array_equal(parts.train.labels[:, 2], 0)
    np.testing.assert_array_equal(parts.test.labels, [[1, 0, 1], [0, 1, 0]])
    assert len(files) == 2
    for option, value in (("label_columns", 2), ("ignore_columns", "id")):
        with pytest.raises(ValueError, match=rf"tr\.svm: dataset\.{option} applies to"):
            from_file(tmp_path / "tr.svm", **{option: value})


def test_predict_reads_features_below_the_models_count_and_ignores_the_label_field(tmp_path):
    (tmp_path / "p.svm").write_text("-1 0:1 3:2\n 2:1\n")  # -1: an id no model has (LSHTC's test files put 0)
    x = read_svmlight_features(tmp_path / "p.svm", 5)
    np.testing.assert_array_equal(np.asarray(x.todense() if sp.issparse(x) else x), [[1, 0, 0, 2, 0], [0, 0, 1, 0, 0]])
    with pytest.raises(DataFormatError, match=r"p\.svm: line 1: feature index 3, but the model has 3 features"):
        read_svmlight_features(tmp_path / "p.svm", 3)
    (tmp_path / "q.svm").write_text("0 0:1\nx 2:1\n")
    with pytest.raises(DataFormatError, match=r"q\.svm: line 2: the label field 'x' is not numbers separated by commas"):
        read_svmlight_features(tmp_path / "q.svm", 5)


def test_an_svmlight_pair_trains_evaluates_and_predicts_as_the_same_rows_in_csv(tmp_path):
    """Oracle: the same rows written as a CSV pair (exact values). Through the CLI both give the same
    metrics.json; `evaluate --input te.svm` gives the run's own test metrics, and `predict --input te.svm`
    the probabilities `predict` gives for the CSV. Unknown ids and too-high indices name their line."""
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(160, 6)) * 8) / 8
    x[x == 0] = 0.25
    x[:120, 5] = 0  # the highest index occurs only in the test file
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] < -0.3, x[:, 4] > 1.2], 1).astype(np.uint8)
    y[:120, 3] = 0  # and so does the id 3
    ids = [0, 1, 2, 3]
    dump_svmlight_file(x[:120], y[:120], tmp_path / "tr.svm", multilabel=True, zero_based=True)
    dump_svmlight_file(x[120:], y[120:], tmp_path / "te.svm", multilabel=True, zero_based=True)
    header = ",".join([f"f{k}" for k in range(6)] + [str(i) for i in ids])
    for name, rows in (("tr.csv", slice(0, 120)), ("te.csv", slice(120, 160))):
        lines = [",".join([repr(float(v)) for v in xr] + [str(int(v)) for v in yr]) for xr, yr in zip(x[rows], y[rows])]
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n")
    _cli("train", "--mode", "scratch", "--dataset.path", "tr.svm", "--dataset.test_path", "te.svm", *VEC,
         "--run-dir", "svm", cwd=tmp_path)
    _cli("train", "--mode", "scratch", "--dataset.path", "tr.csv", "--dataset.test_path", "te.csv",
         "--dataset.label_columns", "4", *VEC, "--run-dir", "csv", cwd=tmp_path)
    by_svm, by_csv = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("svm", "csv"))
    assert by_svm["protocols"] == by_csv["protocols"] and by_svm["best_epoch"] == by_csv["best_epoch"]
    out = json.loads(_cli("evaluate", "svm", "--input", "te.svm", "--json", cwd=tmp_path).stdout)
    for metric, value in by_svm["protocols"]["validation"].items():
        assert out["protocols"]["validation"][metric] == pytest.approx(value, abs=1e-6), metric
    ranked = json.loads(_cli("evaluate", "svm", "--at", "2", "1", "--json", cwd=tmp_path).stdout)["ranked"]
    z = np.load(tmp_path / "svm" / "scores.npz")  # P@k by a loop over the run's own test scores
    s, t = z["test_scores"], z["test_targets"]
    assert ranked["P@1"] == pytest.approx(by_svm["protocols"]["validation"]["precision_at_1"])
    assert ranked["P@2"] == pytest.approx(np.mean([t[i, np.argsort(-s[i])[:2]].mean() for i in range(len(s))]))
    assert list(ranked) == ["P@1", "P@2", "nDCG@1", "nDCG@2"]
    _cli("predict", "svm", "--input", "te.svm", "--out", "p1.csv", cwd=tmp_path)
    _cli("predict", "csv", "--input", "te.csv", "--out", "p2.csv", cwd=tmp_path)
    assert (tmp_path / "p1.csv").read_text() == (tmp_path / "p2.csv").read_text()
    (tmp_path / "new.svm").write_text("0 0:1\n9 1:1\n")
    bad = _cli("evaluate", "svm", "--input", "new.svm", cwd=tmp_path, ok=False)
    assert bad.returncode != 0 and "new.svm: line 2: label id 9 is not one of the 4 labels of the model" in bad.stderr
    (tmp_path / "wide.svm").write_text("0 0:1\n1 6:1\n")
    bad = _cli("predict", "svm", "--input", "wide.svm", "--out", "p3.csv", cwd=tmp_path, ok=False)
    assert "wide.svm: line 2: feature index 6, but the model has 6 features (indices 0 to 5)" in bad.stderr


def test_real_sets_written_as_svmlight_read_as_their_arff(tmp_path):
    """Oracle: Mulan's ARFF reader. bibtex (sparse, 1,836 word features) and yeast (dense) written by
    scikit-learn with the XMC header give the ARFF's arrays: CSR for bibtex, an array for yeast."""
    from conftest import require_dataset_folder

    for name, arff, xml in (("bibtex", "bibtex-train.arff", "bibtex.xml"), ("yeast", "yeast-train.arff", "yeast.xml")):
        folder = require_dataset_folder(name)
        ds = from_file(folder / arff, xml=folder / xml)
        path = tmp_path / f"{name}.txt"
        with open(path, "wb") as f:
            f.write(f"{ds.n_samples} {ds.n_features} {ds.n_labels}\n".encode())
            _dump_svmlight_file(ds.features, ds.labels, f, multilabel=True, zero_based=True)
        again = read_svmlight(path)
        assert sp.issparse(again.features) == sp.issparse(ds.features), name
        dense = (lambda m: m.toarray() if sp.issparse(m) else m)
        np.testing.assert_array_equal(dense(again.features), dense(ds.features))
        np.testing.assert_array_equal(again.labels, ds.labels)
        assert again.label_names == [str(i) for i in range(ds.n_labels)]


def test_datasets_check_names_the_features_that_never_vary(tmp_path):
    """Oracle: a loop over the columns (min == max over the rows, NaN left out), dense and CSR alike; the
    empty column 0 of a 1-based file is named by `datasets check`."""
    from mulsupcon.cli import main
    from mulsupcon.data.listing import constant_features

    rng = np.random.default_rng(0)
    x = np.where(rng.random((30, 8)) < 0.3, rng.integers(1, 4, (30, 8)), 0).astype(np.float64)
    x[:, 2] = 0
    x[:, 5] = 3
    x[:, 6] = np.nan
    x[4, 7] = np.nan
    x[:, 7] = np.where(np.isnan(x[:, 7]), np.nan, 1.0)
    x[:, 0] = np.where(np.arange(30) == 3, np.nan, 0.0)
    values = [x[:, j][~np.isnan(x[:, j])] for j in range(8)]
    loop = [j for j, v in enumerate(values) if v.size == 0 or v.min() == v.max()]
    assert list(constant_features(x)) == loop == [0, 2, 5, 6, 7]
    assert list(constant_features(sp.csr_matrix(x))) == [0, 2, 5, 6, 7]
    x_, y = _sparse()
    dump_svmlight_file(x_, y, tmp_path / "one.libsvm", multilabel=True, zero_based=False)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["datasets", "check", "--dataset.path", str(tmp_path / "one.libsvm")]) == 0
    assert "of the 41 features never vary in the training part (f0" in out.getvalue()
