"""Parquet tables (``mulsupcon.data.parquet``), read as a CSV with the same options.

Oracles: the same table written by pandas as CSV, read by the CSV reader (arrays, names), and through the
whole CLI chain (metrics.json, evaluate --input, predict); a label column of lists against the CSV's column
of names; hand-made files for every error, which must name the row and the column.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_own_data import VEC, _cli

from mulsupcon.data import from_file
from mulsupcon.data.arff import DataFormatError
from mulsupcon.data.user_files import read_dataset

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

OPTIONS = {"ignore_columns": "id", "categorical_columns": "color"}


def _table(n: int = 160, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=n) * 8) / 8  # exact in text and in binary
    b = rng.integers(0, 5, n)
    color = rng.choice(["red", "blue", "green"], n)
    flag = rng.random(n) < 0.5
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "a": a, "b": b, "color": color, "flag": flag})
    frame["cat"] = (a > 0).astype(int)
    frame["dog"] = (b > 2) | (color == "red")  # a boolean label column
    frame["fish"] = (flag & (a < 0.5)).astype(int)
    return frame


def _as_csv(frame, path) -> None:
    out = frame.copy()
    out["flag"] = out["flag"].astype(int)  # the CSV reader takes numbers for a feature (a bool label is fine)
    out.to_csv(path, index=False)


def test_a_parquet_table_reads_as_the_same_table_in_csv(tmp_path):
    frame = _table()
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    _as_csv(frame, tmp_path / "d.csv")
    for labels in (["cat", "dog", "fish"], 3):
        got = from_file(tmp_path / "d.parquet", label_columns=labels, **OPTIONS)
        want = from_file(tmp_path / "d.csv", label_columns=labels, **OPTIONS)
        np.testing.assert_array_equal(got.features, want.features)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert (got.feature_names, got.label_names) == (want.feature_names, want.label_names)
        assert got.feature_names == ["a", "b", "color=blue", "color=green", "color=red", "flag"]
    listed = frame.drop(columns=["cat", "dog", "fish"])
    listed["tags"] = [[n for n in ("cat", "dog", "fish") if row[n]] for _, row in frame.iterrows()]
    listed.to_parquet(tmp_path / "l.parquet", index=False)  # a column of lists: names without label_sep
    text = listed.assign(tags=[";".join(t) for t in listed["tags"]])
    _as_csv(text, tmp_path / "l.csv")
    text.to_parquet(tmp_path / "t.parquet", index=False)  # the same names as text, with label_sep
    want = from_file(tmp_path / "l.csv", label_columns=["tags"], label_sep=";", **OPTIONS)
    for path, sep in (("l.parquet", None), ("t.parquet", ";")):
        got = from_file(tmp_path / path, label_columns=["tags"], label_sep=sep, **OPTIONS)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.label_names == want.label_names == ["cat", "dog", "fish"]


def test_a_test_file_adds_the_names_only_it_lists(tmp_path):
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0], "tags": [["x"], ["y"], []]})
    frame.to_parquet(tmp_path / "tr.parquet", index=False)
    pd.DataFrame({"a": [3.0, 4.0], "tags": [["x", "z"], ["y"]]}).to_parquet(tmp_path / "te.parquet", index=False)
    parts, _ = read_dataset(tmp_path / "tr.parquet", test_path=tmp_path / "te.parquet", label_columns=["tags"])
    assert parts.train.label_names == parts.test.label_names == ["x", "y", "z"]
    np.testing.assert_array_equal(parts.test.labels, [[1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(parts.train.labels[:, 2], 0)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(a=f["a"].where(f.index != 4)), r"row 5: column 'a' is missing \(null or NaN\); --dataset.missing"),
    (lambda f: f.assign(b=f["b"].astype(str).where(f.index != 2, "x")), r"row 3: column 'b' holds 'x', not a number: "
                                                                          r"name it in --dataset.categorical_columns"),
    (lambda f: f.assign(a=f["a"].where(f.index != 6, 1e39)), r"row 7: column 'a' holds 1e\+39, not a finite float32"),
    (lambda f: f.assign(cat=f["cat"].where(f.index != 1, 2)), r"row 2: label column 'cat' has value 2; label values "),
    (lambda f: f.assign(fish=f["fish"].astype("Int64").where(f.index != 3)), r"row 4: label column 'fish' is empty"),
    (lambda f: f.assign(color=f["color"].where(f.index != 8)), r"row 9: empty field in the categorical column 'color'"),
])
def test_errors_name_the_row_and_the_column(tmp_path, change, message):
    change(_table()).to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(DataFormatError, match=rf"bad\.parquet: {message}"):
        from_file(tmp_path / "bad.parquet", label_columns=["cat", "dog", "fish"], **OPTIONS)


def test_missing_values_are_filled_when_allowed_and_a_damaged_file_is_named(tmp_path):
    from mulsupcon.data.catalogue import ReadOptions

    frame = _table()
    frame.loc[4, "a"] = np.nan
    frame.to_parquet(tmp_path / "m.parquet", index=False)
    ds = from_file(tmp_path / "m.parquet", label_columns=3, options=ReadOptions(allow_missing=True), **OPTIONS)
    assert np.isnan(ds.features[4, 0]) and not np.isnan(np.delete(ds.features, 4, axis=0)).any()
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match=r"x\.parquet: cannot be read as Parquet"):
        from_file(tmp_path / "x.parquet", label_columns=1)
    with pytest.raises(ValueError, match=r"say which columns are labels"):
        from_file(tmp_path / "m.parquet")


def test_a_parquet_run_trains_evaluates_and_predicts_as_its_csv(tmp_path):
    """Oracle: the same rows as CSV through the CLI: the same metrics.json; evaluate --input on the Parquet
    test file gives the run's own test metrics; predict gives the CSV's predictions file, --keep too."""
    frame = _table(200)
    frame.iloc[:160].to_parquet(tmp_path / "tr.parquet", index=False)
    frame.iloc[160:].to_parquet(tmp_path / "te.parquet", index=False)
    _as_csv(frame.iloc[:160], tmp_path / "tr.csv")
    _as_csv(frame.iloc[160:], tmp_path / "te.csv")
    flags = ["--dataset.label_columns", "cat,dog,fish", "--dataset.ignore_columns", "id",
             "--dataset.categorical_columns", "color", *VEC]
    for kind in ("parquet", "csv"):
        _cli("train", "--mode", "scratch", "--dataset.path", f"tr.{kind}", "--dataset.test_path", f"te.{kind}", *flags,
             "--run-dir", kind, cwd=tmp_path)
        _cli("predict", kind, "--input", f"te.{kind}", "--out", f"p-{kind}.csv", "--keep", "id", cwd=tmp_path)
    runs = [json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("parquet", "csv")]
    assert runs[0]["protocols"] == runs[1]["protocols"]
    out = json.loads(_cli("evaluate", "parquet", "--input", "te.parquet", "--json", cwd=tmp_path).stdout)
    for metric, value in runs[0]["protocols"]["validation"].items():
        if isinstance(value, float):
            assert out["protocols"]["validation"][metric] == pytest.approx(value, abs=1e-6), metric
    assert (tmp_path / "p-parquet.csv").read_text() == (tmp_path / "p-csv.csv").read_text()
    assert (tmp_path / "p-csv.csv").read_text().startswith("id,cat,dog,fish\nr160,")
    from mulsupcon import load_run  # a null of pandas' nullable integers is a missing value, named as one

    rows = frame.iloc[160:].reset_index(drop=True).astype({"b": "Int64"})
    rows.loc[3, "b"] = pd.NA
    with pytest.raises(ValueError, match=r"input holds nan at row 3, column 1 \('b'\).*dataset.missing"):
        load_run(tmp_path / "parquet").predict_proba(rows)


def test_evaluate_reads_a_column_of_lists_as_training_did(tmp_path):
    """Oracle: the run's own test metrics, from evaluate --input on its Parquet test file whose labels are a
    column of lists; an unknown name in it is named with its row."""
    frame = _table(200)
    listed = frame.drop(columns=["cat", "dog", "fish"]).assign(
        tags=[[n for n in ("cat", "dog", "fish") if row[n]] for _, row in frame.iterrows()])
    listed.iloc[:160].to_parquet(tmp_path / "tr.parquet", index=False)
    listed.iloc[160:].to_parquet(tmp_path / "te.parquet", index=False)
    _cli("train", "--mode", "scratch", "--dataset.path", "tr.parquet", "--dataset.test_path", "te.parquet",
         "--dataset.label_columns", "tags", "--dataset.ignore_columns", "id", "--dataset.categorical_columns", "color",
         *VEC, "--run-dir", "r", cwd=tmp_path)
    own = json.loads((tmp_path / "r" / "metrics.json").read_text())["protocols"]["validation"]
    out = json.loads(_cli("evaluate", "r", "--input", "te.parquet", "--json", cwd=tmp_path).stdout)
    assert out["protocols"]["validation"]["mAP"] == pytest.approx(own["mAP"], abs=1e-6)
    assert out["protocols"]["validation"]["micro_f1"] == pytest.approx(own["micro_f1"], abs=1e-6)
    odd = listed.iloc[160:].copy()
    odd.at[odd.index[2], "tags"] = ["cat", "owl"]
    odd.to_parquet(tmp_path / "odd.parquet", index=False)
    bad = _cli("evaluate", "r", "--input", "odd.parquet", cwd=tmp_path, ok=False)
    assert "odd.parquet: row 3: label 'owl' is not among the 3 labels" in bad.stderr


def test_a_cell_is_the_same_text_in_training_and_in_prediction():
    """A categorical cell of a float column (pandas reads codes with a gap as 1.0, NaN) is encoded by
    training from a Parquet file as prediction encodes a DataFrame's: whole floats as integers, nulls empty."""
    from mulsupcon.data.formats import cell_text

    assert [cell_text(v) for v in (1.0, 2.5, float("nan"), None, pd.NA, pd.NaT, "red", 3)] == \
        ["1", "2.5", "", "", "", "", "red", "3"]
