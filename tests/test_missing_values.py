"""Missing feature values: refused by default with the fix named, filled from the training rows on request.

``dataset.missing: mean`` (``median``, ``most_frequent``) must give exactly what scikit-learn's
``SimpleImputer(strategy=...)`` then ``StandardScaler`` fitted on the training rows give (the oracle), in every
split, dense and sparse; a model
trained so must fill a missing value at prediction time with the same training mean, in Python, from the
CLI and in the exported module.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mulsupcon.data import ReadOptions
from mulsupcon.data.dataset import MultiLabelDataset, Splits
from mulsupcon.data.formats import DataFormatError, read_csv, read_npz, read_table
from mulsupcon.data.user_files import read_path
from mulsupcon.data.preprocess import column_fill_values
from mulsupcon.train.data import MissingValuesFilled, prepare_data

from test_own_data import LABELS, VEC, _cli, _vectors, _write_csv

DS = {"name": "toy", "standardize": True, "missing": "mean"}


def _with_holes(x: np.ndarray, seed: int = 0, rate: float = 0.15) -> np.ndarray:
    holes = np.random.default_rng(seed).random(x.shape) < rate
    return np.where(holes, np.nan, x).astype(np.float32)


def _ds(x, y) -> MultiLabelDataset:
    return MultiLabelDataset(features=x, labels=y, label_names=list(LABELS), feature_names=list("abcdeg"), name="toy")


def _splits(x: np.ndarray, y: np.ndarray, sparse: bool = False) -> Splits:
    def conv(a):
        if not sparse:
            return a
        m = sp.csr_matrix(np.where(np.isnan(a), 1.0, a))  # zeros implicit; a placeholder where NaN goes
        m.data[np.isnan(a)[m.nonzero()]] = np.nan  # NaN stored, as the ARFF reader stores a sparse row's '?'
        return m

    return Splits(train=_ds(conv(x[:60]), y[:60]), val=_ds(conv(x[60:80]), y[60:80]), test=_ds(conv(x[80:]), y[80:]))


WORDS = {"mean": "column mean", "median": "column median", "most_frequent": "most frequent value of the column"}


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent"])
@pytest.mark.parametrize("sparse", [False, True])
def test_filling_then_standardising_is_sklearns_imputer_then_scaler(sparse, strategy):
    x, y = _vectors(120)
    x[:, 5] = np.where(np.arange(120) % 3 == 0, 0.0, x[:, 5])  # implicit zeros in the sparse case
    x[:, 1] = np.round(x[:, 1])  # repeated values, so that the most frequent one is not just the smallest
    x = _with_holes(x)
    x[:60, 4][:5] = np.nan  # a column with several holes in the training rows
    oracle = make_pipeline(SimpleImputer(strategy=strategy), StandardScaler()).fit(x[:60].astype(np.float64))
    with pytest.warns(MissingValuesFilled, match=r"missing feature value\(s\) \(\d+ in the training rows, \d+ in "
                                                 r"the validation rows, \d+ in the test rows\) filled with the "
                                                 rf"training rows' {WORDS[strategy]} \(dataset\.missing: {strategy}\)"):
        data = prepare_data({**DS, "missing": strategy}, _splits(x, y, sparse))
    for source, rows in ((data.train, x[:60]), (data.val, x[60:80]), (data.test, x[80:])):
        got, labels = source.batch(torch.arange(source.n))
        np.testing.assert_allclose(got.numpy(), oracle.transform(rows.astype(np.float64)), rtol=1e-4, atol=1e-5)
        assert not torch.isnan(got).any()
    np.testing.assert_allclose(data.missing_fill, oracle[0].statistics_, rtol=1e-5)
    assert strategy != "mean" or np.allclose(data.missing_fill, np.nanmean(x[:60], axis=0), rtol=1e-5)


@pytest.mark.parametrize("strategy, want", [("mean", [2.0, 0.0, 2.0]), ("median", [2.0, 0.0, 0.0]),
                                            ("most_frequent", [1.0, 0.0, 0.0])])
def test_fill_values_count_only_present_values_and_zero_for_an_empty_column(strategy, want):
    # by hand: column 0 holds 1, 3 (and a hole); column 1 nothing; column 2 holds 0, 0, 6 (and a hole)
    x = np.array([[1.0, np.nan, 0.0], [3.0, np.nan, np.nan], [np.nan, np.nan, 6.0], [np.nan, np.nan, 0.0]])
    fill, present = column_fill_values(x, strategy)
    np.testing.assert_allclose(fill, want)
    np.testing.assert_array_equal(present, [2, 0, 3])
    s = sp.csr_matrix(np.nan_to_num(x, nan=5.0))
    s.data[s.data == 5.0] = np.nan  # stored NaNs: missing; implicit zeros: values
    fill_s, present_s = column_fill_values(s, strategy)
    np.testing.assert_allclose(fill_s, fill)
    np.testing.assert_array_equal(present_s, present)
    with pytest.raises(ValueError, match=r"strategy must be one of mean, median, most_frequent, got 'mode'"):
        column_fill_values(x, "mode")


def test_a_column_without_any_training_value_is_filled_with_zero_and_named():
    x, y = _vectors(120)
    x[:60, 2] = np.nan  # column 'c': nothing in the training rows
    with pytest.warns(MissingValuesFilled, match=r"1 column\(s\) have no value in the training rows and were "
                                                 r"filled with 0: c"):
        data = prepare_data(DS, _splits(x, y))
    assert data.missing_fill[2] == 0.0
    assert torch.isfinite(data.train.features).all()


def test_complete_data_under_the_mean_policy_changes_nothing_and_warns_nothing():
    x, y = _vectors(120)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingValuesFilled)
        filled = prepare_data(DS, _splits(x, y))
    plain = prepare_data({**DS, "missing": "error"}, _splits(x, y))
    torch.testing.assert_close(filled.test.features, plain.test.features, rtol=0, atol=0)
    assert plain.missing_fill is None and filled.missing_fill is not None


def test_an_unknown_policy_is_refused_with_the_choices():
    x, y = _vectors(120)
    with pytest.raises(ValueError, match=r"dataset\.missing must be one of error, mean, median, most_frequent, "
                                         r"got 'zero'"):
        prepare_data({**DS, "missing": "zero"}, _splits(x, y))


def test_csv_missing_markers_are_refused_by_default_naming_the_option(tmp_path):
    p = tmp_path / "m.csv"
    for cell in ("", "?", "NA", "n/a", "null", " NaN "):
        p.write_text(f"a,b,y\n1,2,1\n3,{cell},0\n")
        with pytest.raises(DataFormatError, match=r"m\.csv:3: .* column 'b'.*a missing value\? --dataset\.missing "
                                                  r"mean fills missing feature values"):
            read_csv(p, ["y"])
        ds = read_csv(p, ["y"], allow_missing=True)
        assert np.isnan(ds.features[1, 1]) and ds.features[0].tolist() == [1, 2] and ds.features[1, 0] == 3
    p.write_text("a,b,y\n1,2,1\n3,4,\n")  # a label is never missing
    with pytest.raises(DataFormatError, match=r"m\.csv:3: empty field in column 'y'; labels cannot be missing"):
        read_csv(p, ["y"], allow_missing=True)
    p.write_text("a,b,y\n1,2,1\n3,inf,0\n")  # an infinity is not a missing value
    with pytest.raises(DataFormatError, match=r"m\.csv:3: value inf in column 'b' is not a finite number"):
        read_csv(p, ["y"], allow_missing=True)
    t = tmp_path / "t.csv"  # read_table (what predict reads) follows the same rule
    t.write_text("a,b\n1,2\n,4\n")
    header, data, _ = read_table(t, allow_missing=True)
    assert header == ["a", "b"] and np.isnan(data[1, 0]) and data[1, 1] == 4


def test_npz_and_arff_missing_values_follow_the_read_options(tmp_path):
    x, y = _vectors(20)
    x[3, 1] = np.nan
    np.savez(tmp_path / "m.npz", features=x, labels=y)
    with pytest.raises(DataFormatError, match=r"m\.npz: features holds nan at row 3, column 1; .*a missing value\? "
                                              r"--dataset\.missing mean"):
        read_npz(tmp_path / "m.npz")
    parts, _ = read_path(tmp_path / "m.npz", options=ReadOptions(allow_missing=True))
    assert np.isnan(parts.train.features[3, 1])
    arff = tmp_path / "m.arff"
    arff.write_text("@relation m\n@attribute a numeric\n@attribute b numeric\n@attribute y {0,1}\n@data\n"
                    "1,2,1\n3,?,0\n")
    with pytest.raises(DataFormatError, match=r"m\.arff:7: missing value '\?' in feature attribute 'b'; "
                                              r"--dataset\.missing mean"):
        read_path(arff, label_columns=1)
    parts, _ = read_path(arff, label_columns=1, options=ReadOptions(allow_missing=True))
    assert np.isnan(parts.train.features[1, 1]) and parts.train.features[1, 0] == 3


def test_cli_train_and_predict_fill_a_missing_value_with_the_training_mean(tmp_path):
    x, y = _vectors()
    holey = _with_holes(x, seed=1, rate=0.1)
    _write_csv(tmp_path / "data.csv", holey, y)
    text = (tmp_path / "data.csv").read_text().replace("nan", "")  # missing values as empty fields
    (tmp_path / "data.csv").write_text(text)
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", "3", *VEC,
                "--run-dir", "refused", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "a missing value? --dataset.missing mean" in proc.stderr
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", "3",
                "--dataset.missing", "mean", *VEC, "--run-dir", "run", cwd=tmp_path)
    assert "missing feature value(s)" in proc.stderr and "filled with the training rows' column mean" in proc.stderr

    from mulsupcon import load_run
    from mulsupcon.predict import _Exported

    model = load_run(tmp_path / "run")
    fill = model._fill.numpy()
    rows = holey[:20]
    expected = model.predict_proba(np.where(np.isnan(rows), fill, rows))  # the oracle: filled by hand
    np.testing.assert_allclose(model.predict_proba(rows), expected, rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        exported = _Exported(model)(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-6)
    # The CLI reads the empty fields of a file to predict as missing values, too.
    _write_csv(tmp_path / "new.csv", rows, y[:20])
    (tmp_path / "new.csv").write_text((tmp_path / "new.csv").read_text().replace("nan", ""))
    _cli("predict", "run", "--input", "new.csv", "--out", "pred.csv", cwd=tmp_path)
    pred = np.loadtxt(tmp_path / "pred.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)

    # A model trained with missing values refused refuses them at prediction time, saying why.
    _write_csv(tmp_path / "full.csv", x, y)
    _cli("train", "--mode", "scratch", "--dataset.path", "full.csv", "--dataset.label_columns", "3", *VEC,
         "--run-dir", "strict", cwd=tmp_path)
    proc = _cli("predict", "strict", "--input", "new.csv", "--out", "p2.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "this model was trained with dataset.missing: error" in proc.stderr
    with pytest.raises(ValueError, match=r"input holds nan at row \d+, column \d+ \('\w+'\); .* \(this model was trained with "
                                         r"dataset\.missing: error"):
        load_run(tmp_path / "strict").predict_proba(rows)


def test_arrays_with_nan_are_filled_on_request_and_refused_otherwise():
    """from_arrays refuses NaN unless allow_missing; then dataset.missing fills it, and under the default
    (error) the prepared data is refused naming the part, row and column, dense or sparse."""
    from mulsupcon.data import from_arrays

    x, y = _vectors(120)
    x[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"features hold nan at row 7, column 2; .*; for missing values pass "
                                         r"allow_missing=True and set dataset\.missing"):
        from_arrays(x, y)
    for features in (x, sp.csr_matrix(np.nan_to_num(x, nan=0.0))):
        if sp.issparse(features):
            features = features.tolil()
            features[7, 2] = np.nan
            features = features.tocsr()
        ds = from_arrays(features, sp.csr_matrix(y), allow_missing=True)  # sparse labels are read too
        np.testing.assert_array_equal(ds.labels, y)
        splits = Splits(train=ds.subset(np.arange(60)), val=ds.subset(np.arange(60, 80)), test=ds.subset(np.arange(80, 120)))
        with pytest.raises(ValueError, match=r"missing feature value \(NaN\) in the train rows at row 7, column 2; "
                                             r"set dataset\.missing to mean, median or most_frequent"):
            prepare_data({**DS, "missing": "error"}, splits)
        with pytest.warns(MissingValuesFilled, match=r"1 missing feature value\(s\) \(1 in the training rows\)"):
            data = prepare_data({**DS, "missing": "median"}, splits)
        rows, _ = data.train.batch(torch.arange(data.train.n))
        assert torch.isfinite(rows).all()
