"""Tests of the dataset file readers (ARFF/MEKA/Mulan XML, HDF5, NPZ, CSV).

Oracles: hand-computed arrays for tiny files written here; a naive line-by-line ARFF parser
and ``np.loadtxt`` for real files; the dense vs sparse copies of Corel5k-test; the bulk
(numeric) parse path vs the general (per-line) path on the same data; MEKA vs Mulan copies of
yeast/scene; the authors' HDF5 yeast split vs Mulan.
"""

from __future__ import annotations

import bz2
import gzip
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from mulsupcon.data.arff import DataFormatError, parse_arff_header, read_arff, read_bytes, read_mulan_xml
from mulsupcon.data.formats import read_csv, read_hdf5, read_npz, read_table, read_text_columns
from conftest import require_dataset_folder


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _dense(ds) -> np.ndarray:
    return ds.features.toarray() if sp.issparse(ds.features) else np.asarray(ds.features)


# ============================================================================ tiny ARFF files
DENSE = """% a comment line
@RELATION 'tiny dense'

@attribute 'x one' numeric
@attribute "colour" {red, green, 'dark blue'}
@attribute n2 REAL
@attribute L1 {0,1}
@attribute 'it\\'s' {0,1}

@data
% comment inside data
1.5, red, -2, 1, 0
0,'dark blue',3e2,0,1

-0.25,green,7,1,1
"""


def test_dense_nominal_quoted_exact(tmp_path):
    p = _write(tmp_path, "tiny.arff", DENSE)
    ds = read_arff(p, labels=2)
    assert ds.label_names == ["L1", "it's"]
    assert ds.feature_names == ["x one", "colour=red", "colour=green", "colour=dark blue", "n2"]
    expected_x = np.array(
        [[1.5, 1, 0, 0, -2], [0, 0, 0, 1, 300], [-0.25, 0, 1, 0, 7]], dtype=np.float32
    )
    np.testing.assert_array_equal(ds.features, expected_x)
    assert ds.features.dtype == np.float32 and not ds.is_sparse
    np.testing.assert_array_equal(ds.labels, [[1, 0], [0, 1], [1, 1]])
    assert ds.labels.dtype == np.uint8
    assert ds.name == "tiny"


SPARSE = """@relation 'sp: -C 2'
@attribute A {0,1}
@attribute B {1,0}
@attribute f0 numeric
@attribute kind {a,b,c}
@attribute f2 numeric
@data
{0 1,2 2.5,4 -1}
{}
{1 0, 3 c}
{ 1 1 , 3 b , 4 4 }
"""


def test_sparse_nominal_default_and_meka_first_n(tmp_path):
    p = _write(tmp_path, "sp.arff", SPARSE)
    ds = read_arff(p)  # '-C 2': the first two attributes are labels
    assert ds.is_sparse and isinstance(ds.features, sp.csr_matrix)
    assert ds.features.dtype == np.float32
    assert ds.label_names == ["A", "B"]
    assert ds.feature_names == ["f0", "kind=a", "kind=b", "kind=c", "f2"]
    # B is declared {1,0}: an omitted entry is its FIRST value, i.e. label 1.
    np.testing.assert_array_equal(ds.labels, [[1, 1], [0, 1], [0, 0], [0, 1]])
    # kind omitted -> 'a' (first nominal value)
    expected = np.array(
        [[2.5, 1, 0, 0, -1], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 4]], dtype=np.float32
    )
    np.testing.assert_array_equal(ds.features.toarray(), expected)


def test_meka_negative_c_and_int_and_list_labels(tmp_path):
    text = "@relation 'r: -C -2'\n@attribute f numeric\n@attribute g numeric\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n1,0,0,1\n3,1,1,1\n"
    p = _write(tmp_path, "neg.arff", text)
    a = read_arff(p)
    b = read_arff(p, labels=2)
    assert a.label_names == b.label_names == ["y1", "y2"]
    np.testing.assert_array_equal(a.labels, [[0, 1], [1, 1]])
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(a.features, [[1, 0], [3, 1]])
    # Any position, in the given order; the rest are features ({0,1} nominal -> one column).
    c = read_arff(p, labels=["y2", "g"])
    assert c.label_names == ["y2", "g"] and c.feature_names == ["f", "y1"]
    np.testing.assert_array_equal(c.labels, [[1, 0], [1, 1]])
    np.testing.assert_array_equal(c.features, [[1, 0], [3, 1]])
    # A numeric attribute may be a label only if its values are 0/1 (row 2 has f=3).
    with pytest.raises(DataFormatError, match=r"neg\.arff:8: label attribute 'f' has value '3'"):
        read_arff(p, labels=["f"])


def test_string_and_date_attributes_dropped_with_warning(tmp_path):
    text = (
        "@relation s\n@attribute id string\n@attribute when date 'yyyy-MM-dd'\n@attribute v numeric\n"
        "@attribute y {0,1}\n@data\n'row, one','2020-01-01',1.5,1\nabc,'2021-02-02',2,0\n"
    )
    p = _write(tmp_path, "s.arff", text)
    with pytest.warns(UserWarning, match=r"dropping 2 string/date attribute\(s\): 'id', 'when'"):
        ds = read_arff(p, labels=1)
    assert ds.feature_names == ["v"]
    np.testing.assert_array_equal(ds.features, [[1.5], [2.0]])
    np.testing.assert_array_equal(ds.labels, [[1], [0]])


MISSING = "@relation m\n@attribute a numeric\n@attribute c {u,v}\n@attribute y {0,1}\n@data\n1,u,1\n?,v,0\n2,?,1\n"


def test_missing_values_policies(tmp_path):
    p = _write(tmp_path, "m.arff", MISSING)
    with pytest.raises(DataFormatError, match=r"m\.arff:7: missing value '\?' in feature attribute 'a'; --dataset\.missing "
                                              r"mean fills missing feature values with the training rows' column mean"):
        read_arff(p, labels=1)
    z = read_arff(p, labels=1, missing="zero")
    np.testing.assert_array_equal(z.features, [[1, 1, 0], [0, 0, 1], [2, 0, 0]])
    n = read_arff(p, labels=1, missing="nan")
    expected = np.array([[1, 1, 0], [np.nan, 0, 1], [2, np.nan, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(n.features, expected)  # NaNs compare equal here
    with pytest.raises(ValueError, match="missing must be one of"):
        read_arff(p, labels=1, missing="drop")


def test_missing_values_in_numeric_dense_file_bulk_path(tmp_path):
    text = "@relation m\n@attribute a numeric\n@attribute b numeric\n@attribute y {0,1}\n@data\n1, ?,1\n?,2,0\n"
    p = _write(tmp_path, "mn.arff", text)
    with pytest.raises(DataFormatError, match=r"mn\.arff:6: missing value '\?' in feature attribute 'b'"):
        read_arff(p, labels=1)
    n = read_arff(p, labels=1, missing="nan")
    np.testing.assert_array_equal(n.features, np.array([[1, np.nan], [np.nan, 2]], dtype=np.float32))


def test_crlf_tabs_and_mixed_sparse_dense_rows(tmp_path):
    text = "@relation r\r\n@attribute\ta\tnumeric\r\n@attribute b {x,y}\r\n@attribute y {0,1}\r\n@data\r\n{0 2.5,1 y}\r\n1,x,1\r\n{}\r\n"
    p = tmp_path / "crlf.arff"
    p.write_bytes(text.encode())
    ds = read_arff(p, labels=1)
    assert ds.is_sparse  # any sparse row makes the result sparse
    np.testing.assert_array_equal(ds.features.toarray(), [[2.5, 0, 1], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(ds.labels, [[0], [1], [0]])


def test_missing_label_is_error_even_with_policy(tmp_path):
    p = _write(tmp_path, "ml.arff", "@relation m\n@attribute a numeric\n@attribute y {0,1}\n@data\n1,0\n2,?\n")
    with pytest.raises(DataFormatError, match=r"ml\.arff:6: missing value '\?' in label attribute 'y'"):
        read_arff(p, labels=1, missing="zero")


def test_missing_in_sparse_rows(tmp_path):
    text = "@relation m\n@attribute a numeric\n@attribute b numeric\n@attribute y {0,1}\n@data\n{0 ?,2 1}\n{1 3}\n"
    p = _write(tmp_path, "ms.arff", text)
    with pytest.raises(DataFormatError, match=r"ms\.arff:6: missing value .* 'a'"):
        read_arff(p, labels=1)
    z = read_arff(p, labels=1, missing="zero")
    np.testing.assert_array_equal(z.features.toarray(), [[0, 0], [0, 3]])
    n = read_arff(p, labels=1, missing="nan")
    np.testing.assert_array_equal(n.features.toarray(), np.array([[np.nan, 0], [0, 3]], dtype=np.float32))


@pytest.mark.parametrize("how", ["gz-suffix", "bz2-suffix", "bz2-magic-only"])
def test_compressed_files(tmp_path, how):
    text = DENSE
    plain = read_arff(_write(tmp_path, "p.arff", text), labels=2)
    data = text.encode()
    if how == "gz-suffix":
        p = tmp_path / "c.arff.gz"
        p.write_bytes(gzip.compress(data))
    elif how == "bz2-suffix":
        p = tmp_path / "c.arff.bz2"
        p.write_bytes(bz2.compress(data))
    else:
        p = tmp_path / "c.arff"  # compressed content under a plain name: found by magic bytes
        p.write_bytes(bz2.compress(data))
    ds = read_arff(p, labels=2)
    np.testing.assert_array_equal(ds.features, plain.features)
    np.testing.assert_array_equal(ds.labels, plain.labels)
    assert ds.name == "c"


def test_corrupt_compressed_file(tmp_path):
    p = tmp_path / "bad.arff.gz"
    p.write_bytes(gzip.compress(MISSING.encode())[:-12])
    with pytest.raises(DataFormatError, match="cannot decompress"):
        read_arff(p, labels=1)
    q = tmp_path / "notgz.arff.gz"
    q.write_text(MISSING)
    with pytest.raises(DataFormatError, match="not gz-compressed"):
        read_arff(q, labels=1)


def _random_arff(rng: np.random.Generator, n: int, sparse: bool, quote: bool) -> tuple[str, np.ndarray, np.ndarray]:
    """A random file with numeric + nominal{0,1,2} + {0,1} features and 3 labels, plus the
    expected (features, labels) computed independently of the reader."""
    x = np.round(rng.normal(size=(n, 3)), 3) * (rng.random((n, 3)) < 0.5)
    nom = rng.integers(0, 3, size=n)
    flag = rng.integers(0, 2, size=n)
    y = (rng.random((n, 3)) < 0.4).astype(np.uint8)
    head = "@relation r\n@attribute a numeric\n@attribute b numeric\n@attribute c numeric\n"
    head += "@attribute k {0,1,2}\n@attribute f {0,1}\n@attribute y0 {0,1}\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n"
    rows = []
    q = (lambda s: f"'{s}'") if quote else str
    for i in range(n):
        vals = [*(f"{v:g}" for v in x[i]), q(nom[i]), str(flag[i]), *(str(v) for v in y[i])]
        if sparse:
            rows.append("{" + ",".join(f"{j} {v}" for j, v in enumerate(vals) if v not in ("0", "'0'")) + "}")
        else:
            rows.append(",".join(vals))
    feats = np.concatenate([x, np.eye(3)[nom], flag[:, None]], axis=1).astype(np.float32)
    return head + "\n".join(rows) + "\n", feats, y


@pytest.mark.parametrize("sparse", [False, True])
def test_bulk_and_general_paths_agree_with_oracle(tmp_path, sparse, monkeypatch):
    # Quoted nominal values force the per-line path; unquoted ones take the bulk numpy path.
    import mulsupcon.data.arff as arff_mod

    general = arff_mod._parse_slow
    for quote in (False, True):
        text, feats, y = _random_arff(np.random.default_rng(3), 60, sparse, quote)
        if not quote:  # prove the bulk path did the work
            monkeypatch.setattr(arff_mod, "_parse_slow", lambda *a: pytest.fail("general path used"))
        else:
            monkeypatch.setattr(arff_mod, "_parse_slow", general)
        ds = read_arff(_write(tmp_path, f"r{int(quote)}.arff", text), labels=3)
        assert ds.is_sparse == sparse
        np.testing.assert_array_equal(_dense(ds), feats)
        np.testing.assert_array_equal(ds.labels, y)
        assert ds.feature_names == ["a", "b", "c", "k=0", "k=1", "k=2", "f"]


# ----------------------------------------------------------------------------- bad input
HEAD = "@relation r\n@attribute a numeric\n@attribute b numeric\n@attribute y {0,1}\n@data\n"


@pytest.mark.parametrize(
    "body, pattern",
    [
        ("1,2,0\n3,4\n", r"bad\.arff:7: expected 3 comma-separated values, found 2 \(truncated"),
        ("1,2,0,5\n", r"bad\.arff:6: expected 3 .* found 4 \(too many"),
        ("1,2,0\n{0 1,2 1\n", r"bad\.arff:7: sparse row does not end with '}'"),
        ("{0 1,5 1}\n", r"bad\.arff:6: sparse index 5 out of range .*valid indices 0\.\.2"),
        ("{0 1,0 2}\n", r"bad\.arff:6: sparse index 0 appears twice"),
        ("1,2,2\n", r"bad\.arff:6: value 2 of nominal attribute 'y' is not one of its declared values"),
        ("1,x,1\n", r"bad\.arff:6: attribute 'b' is numeric but the value is 'x'"),
        ("1,,1\n", r"bad\.arff:6: empty value for attribute 'b'"),
        # A NaN literal is not ARFF's missing value '?': say what the file holds.
        ("1,2,0\n1,NaN,1\n", r"bad\.arff:7: attribute 'b' has the value 'NaN': ARFF writes a missing value as '\?'"),
        ("1,nan,0\n'1',2,1\n", r"bad\.arff:6: attribute 'b' has the value 'nan'"),
        ("{0 1,1 nan}\n", r"bad\.arff:6: attribute 'b' has the value 'nan'"),
        # A fractional sparse index is not an integer (it is within range).
        ("{0 1,1.5 2}\n", r"bad\.arff:6: sparse index 1\.5 is not an integer"),
        ("{0 1,1.5 2}\n{0 'x'}\n", r"bad\.arff:6: sparse index '1\.5' is not an integer"),
        # Infinite or float32-overflowing features fail at read time with line and attribute.
        ("1,2,0\n2,inf,1\n", r"bad\.arff:7: attribute 'b' has the value 'inf', which is not a finite float32"),
        ("1,2,0\n2,1e400,1\n", r"bad\.arff:7: attribute 'b' has the value '1e400', which is not a finite"),
        ("1,-1e39,0\n", r"bad\.arff:6: attribute 'b' has the value '-1e39', which is not a finite"),
        ("{1 1e400}\n", r"bad\.arff:6: attribute 'b' has the value '1e400'"),
        ("'1',-Infinity,0\n", r"bad\.arff:6: attribute 'b' has the value '-Infinity'"),
    ],
)
def test_malformed_data_rows(tmp_path, body, pattern):
    p = _write(tmp_path, "bad.arff", HEAD + body)
    with pytest.raises(DataFormatError, match=pattern):
        read_arff(p, labels=1)


def test_label_values_outside_01(tmp_path):
    numeric = "@relation r\n@attribute a numeric\n@attribute y numeric\n@data\n1,1\n2,0\n3,2\n"
    with pytest.raises(DataFormatError, match=r"lab\.arff:7: label attribute 'y' has value '2'; label values must be 0 or 1"):
        read_arff(_write(tmp_path, "lab.arff", numeric), labels=1)
    nominal = "@relation r\n@attribute a numeric\n@attribute y {0,1,2}\n@data\n1,1\n{0 1, 1 2}\n"
    with pytest.raises(DataFormatError, match=r"lab2\.arff:6: label attribute 'y' has value '2'"):
        read_arff(_write(tmp_path, "lab2.arff", nominal), labels=1)
    yesno = "@relation r\n@attribute a numeric\n@attribute y {YES,NO}\n@data\n1,YES\n"
    with pytest.raises(DataFormatError, match=r"lab3\.arff:5: label attribute 'y' has value 'YES'"):
        read_arff(_write(tmp_path, "lab3.arff", yesno), labels=1)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"e\.arff: the file is empty"),
        ("  \n% only a comment\n", r"the file is empty|no '@data'"),
        ("@relation r\n@attribute a numeric\n1,2\n", r"no '@data' line"),
        ("@relation r\n@data\n1\n", r"no '@attribute' declared"),
        ("@relation r\n@attribute a numeric\n@attribute a {0,1}\n@data\n", r"e\.arff:3: duplicate attribute name 'a' \(first declared on line 2\)"),
        ("@relation r\n@attribute a numeric\n@attribute y bogus\n@data\n", r"e\.arff:3: unknown type 'bogus' for attribute 'y'"),
        ("@relation r\n@attribute a relational\n@data\n", r"unknown type 'relational'"),
        ("@relation r\n@attribute a {x,y\n@data\n", r"e\.arff:2: nominal attribute 'a' has no closing"),
        ("@relation r\nhello\n@data\n", r"e\.arff:2: expected '@relation'"),
    ],
)
def test_malformed_headers(tmp_path, text, pattern):
    p = _write(tmp_path, "e.arff", text)
    with pytest.raises(DataFormatError, match=pattern):
        read_arff(p, labels=1)


def test_label_choice_errors(tmp_path):
    p = _write(tmp_path, "l.arff", HEAD + "1,2,0\n")
    xml = _write(tmp_path, "l.xml", '<?xml version="1.0"?><labels xmlns="http://mulan.sourceforge.net/labels"><label name="y"/><label name="zz"/></labels>')
    with pytest.raises(DataFormatError, match=r"1 label\(s\) named by the label file .*l\.xml are not attributes of the file: 'zz'"):
        read_arff(p, xml=xml)
    with pytest.raises(ValueError, match="labels=4 but the file declares 3 attributes"):
        read_arff(p, labels=4)
    with pytest.raises(DataFormatError, match="cannot tell which attributes are labels"):
        read_arff(p)  # no xml, no labels, no '-C n'
    with pytest.raises(ValueError, match="either labels= or xml="):
        read_arff(p, labels=1, xml=xml)
    with pytest.raises(DataFormatError, match="not attributes of the file: 'nope'"):
        read_arff(p, labels=["nope"])


def test_read_mulan_xml_nested_and_errors(tmp_path):
    xml = _write(
        tmp_path,
        "h.xml",
        '<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">'
        '<label name="top"><label name="child a"></label><label name="child&amp;b"/></label>'
        '<label name="other"></label></labels>',
    )
    assert read_mulan_xml(xml) == ["top", "child a", "child&b", "other"]
    dup = _write(tmp_path, "d.xml", '<labels><label name="a"/><label name="a"/></labels>')
    with pytest.raises(DataFormatError, match="label 'a' is listed twice"):
        read_mulan_xml(dup)
    broken = _write(tmp_path, "b.xml", "<labels><label name='a'></labels>")
    with pytest.raises(DataFormatError, match="not a well-formed XML"):
        read_mulan_xml(broken)
    with pytest.raises(DataFormatError, match="no <label"):
        read_mulan_xml(_write(tmp_path, "n.xml", "<labels></labels>"))


def test_xml_label_columns_follow_file_order(tmp_path):
    p = _write(tmp_path, "o.arff", "@relation r\n@attribute a numeric\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n1,1,0\n")
    xml = _write(tmp_path, "o.xml", '<labels><label name="y2"/><label name="y1"/></labels>')
    ds = read_arff(p, xml=xml)
    assert ds.label_names == ["y1", "y2"]
    np.testing.assert_array_equal(ds.labels, [[1, 0]])


# ============================================================================ real datasets
# name, folder, files (loaded with the xml and stacked), xml, samples per file, features,
# feature ATTRIBUTES (README's "features" column), labels, README label cardinality (string:
# compared at the README's precision).
MULAN = [
    ("yeast", "yeast", ["yeast-train.arff", "yeast-test.arff"], "yeast.xml", [1500, 917], 103, 103, 14, "4.237", False),
    ("scene", "scene", ["scene-train.arff", "scene-test.arff"], "scene.xml", [1211, 1196], 294, 294, 6, "1.074", False),
    ("delicious", "delicious", ["delicious-train.arff", "delicious-test.arff"], "delicious.xml", [12920, 3185], 500, 500, 983, "19.02", True),
    ("bibtex", "bibtex", ["bibtex-train.arff", "bibtex-test.arff"], "bibtex.xml", [4880, 2515], 1836, 1836, 159, "2.40", True),
    ("medical", "medical", ["medical-train.arff", "medical-test.arff"], "medical.xml", [333, 645], 1449, 1449, 45, "1.245", True),
    ("corel5k", "corel5k", ["Corel5k-train-sparse.arff", "Corel5k-test-sparse.arff"], "Corel5k.xml", [4500, 500], 499, 499, 374, "3.52", True),
    ("tmc2007-500", "tmc2007", ["tmc2007-500-train.arff", "tmc2007-500-test.arff"], "tmc2007-500.xml", [21519, 7077], 500, 500, 22, "2.16", True),
    # genbase: protein id (nominal, 662 values) + 1185 {YES,NO} attributes, all one-hot.
    ("genbase", "genbase", ["genbase-train.arff", "genbase-test.arff"], "genbase.xml", [463, 199], 662 + 2 * 1185, 1186, 27, "1.25", False),
    ("cal500", "cal500", ["cal500.arff"], "cal500.xml", [502], 68, 68, 174, "26.0", False),
    # flags: 4 nominal (6+4+10+8 values) + 10 numeric + 5 {0,1} flags = 43 columns from 19 attributes.
    ("flags", "flags", ["flags-train.arff", "flags-test.arff"], "flags.xml", [129, 65], 43, 19, 7, "3.39", False),
    # foodtruck: 4 nominal (5+5+2+3 values) + 17 numeric = 32 columns from 21 attributes.
    ("foodtruck", "foodtruck", ["foodtruck.arff"], "foodtruck.xml", [407], 32, 21, 12, "2.29", False),
]


@pytest.mark.parametrize("case", MULAN, ids=[c[0] for c in MULAN])
def test_mulan_datasets_match_readme(case):
    name, folder, files, xml, sizes, n_feat, n_attr, n_lab, card, sparse = case
    d = require_dataset_folder(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete label XML never warns about unlisted labels
        parts = [read_arff(d / f, xml=d / xml, name=name) for f in files]
    for ds, n in zip(parts, sizes):
        assert ds.n_samples == n
        assert ds.n_features == n_feat
        assert ds.n_labels == n_lab
        assert ds.is_sparse == sparse
        assert ds.features.dtype == np.float32 and ds.labels.dtype == np.uint8
        assert ds.label_names == parts[0].label_names and ds.feature_names == parts[0].feature_names
    # README counts feature ATTRIBUTES (before one-hot encoding).
    header = parse_arff_header(read_bytes(d / files[0]))
    assert len(header.attributes) - n_lab == n_attr
    assert set(parts[0].label_names) == set(read_mulan_xml(d / xml))
    y = np.vstack([p.labels for p in parts])
    decimals = len(card.split(".")[1])
    assert round(float(y.sum(1).mean()), decimals) == pytest.approx(float(card), abs=1e-9)


def _naive_sparse_arff(path: Path, n_labels_last: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent oracle: a plain line-by-line reader for a numeric/{0,1} sparse ARFF."""
    n_attr, rows, in_data = 0, [], False
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("%"):
            continue
        if in_data:
            row = np.zeros(n_attr)
            for entry in s.strip("{}").split(","):
                if entry.strip():
                    i, v = entry.split()
                    row[int(i)] = float(v)
            rows.append(row)
        elif s.lower().startswith("@attribute"):
            n_attr += 1
        elif s.lower().startswith("@data"):
            in_data = True
    m = np.array(rows)
    return m[:, : n_attr - n_labels_last], m[:, n_attr - n_labels_last :]


def test_sparse_medical_matches_naive_oracle():
    d = require_dataset_folder("medical")
    ds = read_arff(d / "medical-train.arff", xml=d / "medical.xml")
    x, y = _naive_sparse_arff(d / "medical-train.arff", 45)
    np.testing.assert_array_equal(ds.features.toarray(), x.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, y)


def test_dense_yeast_matches_loadtxt():
    d = require_dataset_folder("yeast")
    ds = read_arff(d / "yeast-test.arff", xml=d / "yeast.xml")
    lines = (d / "yeast-test.arff").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "@data") + 1
    m = np.loadtxt(lines[start:], delimiter=",")
    np.testing.assert_array_equal(ds.features, m[:, :103].astype(np.float32))
    np.testing.assert_array_equal(ds.labels, m[:, 103:])


def test_corel5k_dense_and_sparse_copies_agree():
    d = require_dataset_folder("corel5k")
    a = read_arff(d / "Corel5k-test.arff", xml=d / "Corel5k.xml")
    b = read_arff(d / "Corel5k-test-sparse.arff", xml=d / "Corel5k.xml")
    assert not a.is_sparse and b.is_sparse
    np.testing.assert_array_equal(a.features, b.features.toarray())
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.label_names == b.label_names and a.feature_names == b.feature_names


@pytest.mark.parametrize("folder, meka, mulan, xml", [
    ("yeast", "Yeast.arff.bz2", ("yeast-train.arff", "yeast-test.arff"), "yeast.xml"),
    ("scene", "Scene.arff.bz2", ("scene-train.arff", "scene-test.arff"), "scene.xml"),
])
def test_meka_copies_equal_mulan_train_then_test(folder, meka, mulan, xml):
    d = require_dataset_folder(folder)
    m = read_arff(d / meka)  # labels from '-C n' (first n attributes)
    parts = [read_arff(d / f, xml=d / xml) for f in mulan]
    if folder == "yeast":
        assert m.label_names == parts[0].label_names
    else:  # MEKA's scene names its labels differently ('beach', 'foliage' vs 'Beach', 'FallFoliage')
        assert len(m.label_names) == len(parts[0].label_names)
    assert m.feature_names == parts[0].feature_names
    np.testing.assert_array_equal(m.labels, np.vstack([p.labels for p in parts]))
    np.testing.assert_array_equal(m.features, np.vstack([p.features for p in parts]))


def test_imdb_meka_large_sparse():
    d = require_dataset_folder("imdb")
    t0 = time.perf_counter()
    ds = read_arff(d / "Imdb.arff.bz2")
    elapsed = time.perf_counter() - t0
    print(f"Imdb.arff.bz2 loaded in {elapsed:.2f} s")  # timing goes to the benchmark, not asserted
    assert (ds.n_samples, ds.n_features, ds.n_labels) == (120919, 1001, 28)
    assert isinstance(ds.features, sp.csr_matrix) and ds.features.dtype == np.float32
    assert ds.labels.dtype == np.uint8
    # Sparse means sparse: far fewer stored values than cells.
    assert ds.features.nnz < 0.1 * ds.n_samples * ds.n_features
    assert ds.labels.sum(1).min() >= 0 and ds.labels.sum() > 0


K_OFFICIAL = [0, 2, 6, 5, 3, 1, 13, 11, 7, 8, 4, 9, 12, 10]


def test_yeast_official_hdf5_split_and_label_permutation():
    d = require_dataset_folder("yeast")
    parts = {s: read_hdf5(d / f"yeast_official_{s}.hdf5") for s in ("train", "val", "trainval", "test")}
    assert {s: p.n_samples for s, p in parts.items()} == {"train": 1200, "val": 300, "trainval": 1500, "test": 917}
    for p in parts.values():
        assert (p.n_features, p.n_labels) == (103, 14)
        assert p.features.dtype == np.float32
    test = read_arff(d / "yeast-test.arff", xml=d / "yeast.xml")
    # HDF5 column j is Mulan label Class(K[j]+1); look the Mulan column up BY NAME.
    cols = [test.label_names.index(f"Class{k + 1}") for k in K_OFFICIAL]
    np.testing.assert_array_equal(parts["test"].labels, test.labels[:, cols])
    np.testing.assert_array_equal(parts["test"].features, test.features)
    # train+val are the Mulan training rows, shuffled: equal as sets of rows.
    train = read_arff(d / "yeast-train.arff", xml=d / "yeast.xml")
    tv = np.hstack([parts["trainval"].features, parts["trainval"].labels])
    ref = np.hstack([train.features, train.labels[:, cols]])
    np.testing.assert_array_equal(np.unique(tv, axis=0), np.unique(ref, axis=0))
    tr_val = np.vstack([parts["train"].features, parts["val"].features])
    np.testing.assert_array_equal(np.unique(tr_val, axis=0), np.unique(parts["trainval"].features, axis=0))


# ============================================================================ HDF5 / NPZ / CSV
def test_hdf5_vector_and_image_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4))
    y = rng.integers(0, 2, size=(5, 3))
    p = tmp_path / "v.hdf5"
    with h5py.File(p, "w") as f:
        f["feature"] = x
        f["target"] = y
    ds = read_hdf5(p, label_names=["a", "b", "c"])
    np.testing.assert_array_equal(ds.features, x.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.label_names == ["a", "b", "c"] and ds.name == "v"

    img = rng.integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    q = tmp_path / "i.h5"
    with h5py.File(q, "w") as f:
        f["Image"] = img
        f["target"] = y[:2]
    im = read_hdf5(q)
    assert im.features.shape == (2, 3, 4, 5) and im.features.dtype == np.uint8 and im.is_image
    for n, c, h, w in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3)]:
        assert im.features[n, c, h, w] == img[n, h, w, c]
    assert im.label_names == ["label0", "label1", "label2"]


def test_hdf5_errors(tmp_path):
    p = tmp_path / "bad.hdf5"
    with h5py.File(p, "w") as f:
        f["feature"] = np.zeros((2, 2))
        f["target"] = np.array([[0, 2], [1, 0]])
    with pytest.raises(DataFormatError, match=r"'target' holds 2 at row 0, column 1"):
        read_hdf5(p)
    q = tmp_path / "nofeat.hdf5"
    with h5py.File(q, "w") as f:
        f["target"] = np.zeros((2, 2))
    with pytest.raises(DataFormatError, match="no 'feature' or 'Image' dataset"):
        read_hdf5(q)
    r = tmp_path / "notreally.hdf5"
    r.write_text("hello")
    with pytest.raises(DataFormatError, match="not a readable HDF5"):
        read_hdf5(r)
    s = tmp_path / "inf.hdf5"
    with h5py.File(s, "w") as f:
        f["feature"] = np.array([[0.0, 1.0], [np.inf, 2.0]])
        f["target"] = np.zeros((2, 2))
    with pytest.raises(DataFormatError, match=r"'feature' holds inf at row 1, column 0"):
        read_hdf5(s)


def test_npz_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3))
    y = rng.integers(0, 2, size=(6, 2))
    p = tmp_path / "a.npz"
    np.savez(p, X=x, Y=y, label_names=np.array(["u", "v"]), feature_names=np.array(["f", "g", "h"]))
    ds = read_npz(p)
    np.testing.assert_array_equal(ds.features, x.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.label_names == ["u", "v"] and ds.feature_names == ["f", "g", "h"]
    q = tmp_path / "b.npz"
    np.savez(q, features=x, labels=y)
    assert read_npz(q).label_names == ["label0", "label1"]
    r = tmp_path / "c.npz"
    np.savez(r, features=x, labels=y * 3)
    with pytest.raises(DataFormatError, match="label values must be 0 or 1"):
        read_npz(r)
    s = tmp_path / "d.npz"
    np.savez(s, features=x)
    with pytest.raises(DataFormatError, match="no labels array"):
        read_npz(s)
    t = tmp_path / "e.npz"
    np.savez(t, features=x, X=x, labels=y)
    with pytest.raises(DataFormatError, match="both 'features' and 'X'"):
        read_npz(t)
    for value, shown in ((np.nan, "nan"), (1e300, r"1e\+300")):  # 1e300 overflows float32 to inf
        bad = x.copy()
        bad[4, 2] = value
        np.savez(t, features=bad, labels=y)
        with pytest.raises(DataFormatError, match=rf"features holds {shown} at row 4, column 2"):
            read_npz(t)


def test_csv_round_trip_by_names_and_count(tmp_path):
    text = 'a,"b, quoted",y1,c,y2\n1.5,2,1,3,0\n-1,0,0,4e1,1\n\n'
    p = _write(tmp_path, "t.csv", text)
    ds = read_csv(p, ["y2", "y1"])  # quoted header: per-field path
    assert ds.label_names == ["y2", "y1"] and ds.feature_names == ["a", "b, quoted", "c"]
    np.testing.assert_array_equal(ds.features, [[1.5, 2, 3], [-1, 0, 40]])
    np.testing.assert_array_equal(ds.labels, [[0, 1], [1, 0]])
    plain = _write(tmp_path, "u.csv", "a,b,c,y1,y2\n1,2,3,1,0\n4,5,6,0,0\n")
    q = tmp_path / "u.csv.gz"
    q.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, q):
        d2 = read_csv(path, 2)
        assert d2.label_names == ["y1", "y2"]
        np.testing.assert_array_equal(d2.features, [[1, 2, 3], [4, 5, 6]])
        np.testing.assert_array_equal(d2.labels, [[1, 0], [0, 0]])


@pytest.mark.parametrize(
    "text, labels, pattern",
    [
        ("a,y\n1,1\n2,\n", ["y"], r"x\.csv:3: empty field in column 'y'"),
        ("a,y\n1,1\nz,0\n", ["y"], r"x\.csv:3: non-numeric value 'z' in column 'a'; features must be numbers"),
        # a number written with a decimal comma or a thousands separator is named as such
        ('a,y\n"1,234",1\n', ["y"], r"x\.csv:2: non-numeric value '1,234' in column 'a'; a number with a decimal "
                                     r"comma or a thousands separator\? numbers must use '\.' as the decimal mark"),
        ("a,y\n1'234.5,1\n", ["y"], r"non-numeric value \"1'234\.5\" in column 'a'; a number with a decimal comma"),
        ("a,y\n1,1\n2,0,5\n", ["y"], r"x\.csv:3: expected 2 fields .* found 3"),
        ("a,y\n1,1\n2,3\n", ["y"], r"x\.csv:3: label column 'y' has value 3"),
        # numpy parses these as floats; training on them would end in NaN scores, far from the cause
        ("a,y\n1,1\n\n2,0\nnan,1\n", ["y"], r"x\.csv:5: value nan in column 'a' is not a finite number"),
        ('a,"y"\n1,1\n-inf,0\n', ["y"], r"x\.csv:3: value -inf in column 'a' is not a finite"),  # per-field path
        ("a,y\n1,1\n1e39,0\n", ["y"], r"x\.csv:3: value 1e39 in column 'a' is not a finite number that float32"),
        ("a,y\n1,1\n", ["q"], r"the label column\(s\) \['q'\] are not in the header \(1 of 1 missing; the header: "
                               r"\['a', 'y'\]\)$"),
        # a name that differs only in case or spaces, or by a letter, is offered
        ("a,Cat ,dgo\n1,1,0\n", ["cat", "dog"], r"the label column\(s\) \['cat', 'dog'\] are not in the header \(2 of 2 "
                                              r"missing; .*\); did you mean 'Cat' for 'cat', 'dgo' for 'dog'\? Names must"),
        ("a,a\n1,1\n", 1, r"column name 'a' appears twice"),
        # an unnamed column would be read as a feature: a pandas row index, or an empty trailing field
        (",a,y\n0,1,1\n", ["y"], r"x\.csv:1: column 1 of the header has no name \(a row index, as pandas' to_csv "
                                 r"writes it\? save with index=False\)"),
        ("a,y,\n1,1,\n", ["y"], r"x\.csv:1: column 3 of the header has no name \(a comma at the end of the line\?\)"),
        ("a,,y\n1,2,1\n", ["y"], r"x\.csv:1: column 2 of the header has no name; every column needs one"),
        ("", 1, r"the file is empty"),
        ("a,y\n\n", ["y"], r"x\.csv: no data rows after the header \(line 1\)$"),
        # a label field that is not a number says what a label must be; one that lists names, how to fix it
        ("a,y\n1,1\n2,yes\n", ["y"], r"x\.csv:3: non-numeric value 'yes' in column 'y'; label values must be 0 or 1 "
                                    r"\(or true / false\), one column per label$"),
        ('a,tags\n1,"cat,dog"\n', 1, r"x\.csv:2: non-numeric value 'cat,dog' in column 'tags'; label values must be "
                                     r"0 or 1 \(or true / false\), one column per label, or names in one column: add --dataset\.label_sep ','$"),
        ("a,tags\n1,cat dog\n", ["tags"], r"add --dataset\.label_sep space$"),
    ],
)
def test_csv_errors(tmp_path, text, labels, pattern):
    p = _write(tmp_path, "x.csv", text)
    with pytest.raises(DataFormatError, match=pattern):
        read_csv(p, labels)


def test_csv_read_in_blocks_equals_one_parse(tmp_path, monkeypatch):
    """The bulk path parses a few rows at a time into float32: the result is numpy's own parse of the whole
    file (float64, then rounded once to float32), and an error in a later block names its own line."""
    import mulsupcon.data.formats as formats

    rng = np.random.default_rng(0)
    x = rng.standard_normal((23, 4)) * 10.0 ** rng.integers(-8, 8, (23, 4))  # digits float32 must round
    y = (rng.random((23, 2)) < 0.5).astype(int)
    lines = ["a,b,c,d,y1,y2"] + [",".join([repr(float(v)) for v in row] + [str(v) for v in lab]) for row, lab in zip(x, y)]
    p = _write(tmp_path, "t.csv", "\n".join(lines) + "\n")
    oracle = np.loadtxt(p, delimiter=",", skiprows=1)
    monkeypatch.setattr(formats, "BLOCK_VALUES", 13)  # two rows of 6 fields per block: 12 blocks
    ds = read_csv(p, ["y1", "y2"])
    assert ds.features.dtype == np.float32 and ds.features.flags.c_contiguous
    np.testing.assert_array_equal(ds.features, oracle[:, :4].astype(np.float32))
    np.testing.assert_array_equal(ds.labels, y)
    bad = lines[:20] + ["1,2,3,x,0,1"] + lines[21:]  # text in the tenth block: the per-field parse names it
    with pytest.raises(DataFormatError, match=r"t2\.csv:21: non-numeric value 'x' in column 'd'"):
        read_csv(_write(tmp_path, "t2.csv", "\n".join(bad) + "\n"), ["y1", "y2"])
    big = lines[:17] + ["1,2,-3.5e38,4,0,1"] + lines[18:]  # beyond float32 in the ninth block
    with pytest.raises(DataFormatError, match=r"t3\.csv:18: value -3\.5e38 in column 'c' is not a finite number"):
        read_csv(_write(tmp_path, "t3.csv", "\n".join(big) + "\n"), ["y1", "y2"])


@pytest.mark.parametrize("sep", [";", "\t"], ids=["semicolon", "tab"])
def test_csv_separated_otherwise_is_read_by_its_header(tmp_path, sep):
    """Spreadsheets in decimal-comma locales save ';'-separated .csv files: a header without a comma says so."""
    p = _write(tmp_path, "s.csv", sep.join(["a", "b", "y1", "y2"]) + "\n" + sep.join(["1.5", "-2", "1", "0"]) + "\n")
    ds = read_csv(p, 2)
    assert ds.feature_names == ["a", "b"] and ds.label_names == ["y1", "y2"]
    np.testing.assert_array_equal(ds.features, [[1.5, -2]])
    np.testing.assert_array_equal(ds.labels, [[1, 0]])
    bad = _write(tmp_path, "d.csv", sep.join(["a", "b", "y1"]) + "\n" + sep.join(["1", "0,5", "1"]) + "\n")
    with pytest.raises(DataFormatError, match=r"d\.csv:2: a .*-separated file that also contains commas "
                                              r"\(numbers must use '\.' as the decimal mark\)"):
        read_csv(bad, 1)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_csv_in_other_encodings(tmp_path, encoding):
    p = tmp_path / "e.csv"
    p.write_bytes("caf\u00e9,b,y\n1,2,1\n".encode(encoding))  # Python's utf-16 writes a byte-order mark
    ds = read_csv(p, 1)
    assert ds.feature_names == ["caf\u00e9", "b"]
    np.testing.assert_array_equal(ds.features, [[1, 2]])


def test_csv_labels_listed_by_name_equal_the_same_labels_as_columns(tmp_path):
    """Oracle: a label column listing names (``dataset.label_sep``) reads as the 0/1 columns of the
    same labels, written independently; rows without a label are all-zero rows."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3)).round(3)
    y = (rng.random((30, 4)) < 0.3).astype(np.uint8)
    names = ["cat", "dog", "fish", "owl"]
    listed = ["a,b,tags,c"] + [f"{r[0]},{r[1]},{';'.join(n for n, v in zip(names, yr) if v)},{r[2]}"
                               for r, yr in zip(x, y)]
    onehot = ["a,b,c," + ",".join(names)] + [",".join(map(str, r)) + "," + ",".join(map(str, yr)) for r, yr in zip(x, y)]
    p, q = _write(tmp_path, "listed.csv", "\n".join(listed) + "\n"), _write(tmp_path, "onehot.csv", "\n".join(onehot) + "\n")
    a, b = read_csv(p, ["tags"], label_sep=";"), read_csv(q, 4)
    present = [j for j in range(4) if y[:, j].any()]  # a name that never occurs cannot be listed
    assert a.label_names == [names[j] for j in present] and a.feature_names == ["a", "b", "c"]
    np.testing.assert_array_equal(a.labels, b.labels[:, present])
    np.testing.assert_array_equal(a.features, b.features)
    # Given names fix the columns (the test file's, say); a name outside them names its line.
    fixed = read_csv(p, ["tags"], label_sep=";", label_names=names)
    np.testing.assert_array_equal(fixed.labels, y)
    with pytest.raises(DataFormatError, match=r"listed\.csv:\d+: label '\w+' is not among the 2 labels"):
        read_csv(p, ["tags"], label_sep=";", label_names=["zebra", "yak"])
    with pytest.raises(ValueError, match="names the one column that lists the labels; got 2"):
        read_csv(q, 2, label_sep=";")


def test_label_lists_of_a_training_and_a_test_file_share_their_labels(tmp_path):
    """A label only in the test file becomes a label without training positives, as with 0/1 columns."""
    from mulsupcon.data.user_files import read_dataset

    _write(tmp_path, "tr.csv", "id,a,tags\nr1,1,cat dog\nr2,2,\nr3,3,dog\n")
    _write(tmp_path, "te.csv", "id,a,tags\nr4,4,owl\nr5,5,cat\n")
    parts, _ = read_dataset(tmp_path / "tr.csv", test_path=tmp_path / "te.csv", label_columns="tags",
                            ignore_columns="id", label_sep="space")
    assert parts.train.label_names == parts.test.label_names == ["cat", "dog", "owl"]
    np.testing.assert_array_equal(parts.train.labels, [[1, 1, 0], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(parts.test.labels, [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(parts.test.features, [[4], [5]])


def test_csv_text_features_point_to_ignore_columns(tmp_path):
    p = _write(tmp_path, "x.csv", "id,a,y\nr1,1,1\nr2,2,0\n")
    with pytest.raises(DataFormatError, match=r"x\.csv:2: non-numeric value 'r1' in column 'id'; features must be "
                                              r"numbers: leave out an id or text column with --dataset\.ignore_columns, "
                                              r"and name a categorical one in --dataset\.categorical_columns"):
        read_csv(p, ["y"])
    ds = read_csv(p, 1, ignore_columns=["id"])  # the last column that is not ignored
    assert ds.feature_names == ["a"] and ds.label_names == ["y"]
    np.testing.assert_array_equal(ds.features, [[1], [2]])
    np.testing.assert_array_equal(ds.labels, [[1], [0]])
    q = _write(tmp_path, "q.csv", "a,y,note\n1,1,x\n2,0,y\n")
    assert read_csv(q, 1, ignore_columns=["note"]).label_names == ["y"]  # ignored columns do not count for N
    with pytest.raises(DataFormatError, match=r"the ignored column\(s\) \['nope'\] are not in the header"):
        read_csv(p, ["y"], ignore_columns=["nope"])
    with pytest.raises(ValueError, match=r"column\(s\) \['id'\] are named both as labels and as ignored"):
        read_csv(p, ["id"], ignore_columns=["id"])


def _categorical_table(n: int, seed: int) -> tuple[list[str], np.ndarray, list[list[str]], np.ndarray]:
    """A CSV with two numeric and two text feature columns between them, then two labels:
    ``(lines, numbers (n, 2), texts (n, 2), labels (n, 2))``."""
    rng = np.random.default_rng(seed)
    num = np.round(rng.normal(size=(n, 2)), 4)
    text = [[str(rng.choice(["red", "green", "blue"])), str(rng.choice(["Oslo", "Rome", "New York", "10"]))]
            for _ in range(n)]
    y = rng.integers(0, 2, size=(n, 2))
    lines = ["a,color,b,city,l1,l2"] + [f"{num[i, 0]},{text[i][0]},{num[i, 1]}, {text[i][1]} ,{y[i, 0]},{y[i, 1]}"
                                        for i in range(n)]
    return lines, num, text, y


def test_csv_categorical_columns_are_one_hot_encoded_as_scikit_learn_does(tmp_path):
    """Oracle: scikit-learn's OneHotEncoder on the text columns; the numeric columns as written, each
    encoded column in the place of its text column, named COLUMN=VALUE as the ARFF reader names a nominal
    attribute's; and read_table, given the training values, reads a file with its columns in another order
    (prediction) into the same matrix."""
    from sklearn.preprocessing import OneHotEncoder

    lines, num, text, y = _categorical_table(60, 0)
    p = _write(tmp_path, "c.csv", "\n".join(lines) + "\n")
    ds = read_csv(p, 2, categorical_columns=["color", "city"])
    enc = OneHotEncoder(sparse_output=False).fit(text)
    colors, cities = (list(c) for c in enc.categories_)
    assert ds.feature_names == ["a", *[f"color={v}" for v in colors], "b", *[f"city={v}" for v in cities]]
    assert cities == ["10", "New York", "Oslo", "Rome"]  # blanks around a field are not part of its value
    onehot = enc.transform(text)
    expected = np.hstack([num[:, :1], onehot[:, :len(colors)], num[:, 1:], onehot[:, len(colors):]])
    np.testing.assert_allclose(ds.features, expected.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, y)

    order = [3, 5, 0, 1, 4, 2]  # city, l2, a, color, l1, b
    rows = [ln.split(",") for ln in lines]
    q = _write(tmp_path, "q.csv", "\n".join(",".join(r[j] for j in order) for r in rows) + "\n")
    from mulsupcon.data.formats import one_hot_groups

    values = one_hot_groups(ds.feature_names, ["color", "city"])
    assert values == {"color": colors, "city": cities}
    header, data, _ = read_table(q, columns=ds.feature_names, categories=values)
    assert header == ds.feature_names
    np.testing.assert_allclose(data, ds.features)


def test_csv_categorical_test_file_takes_the_training_values(tmp_path):
    """A test file is encoded with its training file's values (as scikit-learn's handle_unknown="ignore"):
    a value training did not see gives zeros and a warning that counts the rows and names one."""
    from sklearn.preprocessing import OneHotEncoder

    from mulsupcon.data.user_files import read_dataset

    _write(tmp_path, "tr.csv", "id,a,color,y\nr1,1,red,1\nr2,2,blue,0\nr3,3,red,1\n")
    _write(tmp_path, "te.csv", "id,a,color,y\nr4,4,blue,0\nr5,5,pink,1\nr6,6,pink,0\n")
    with pytest.warns(UserWarning, match=r"2 of 3 rows hold a value of the categorical column 'color' that training "
                                         r"did not see \('pink' at .*te\.csv:3\): they are encoded as none of its 2"):
        parts, _ = read_dataset(tmp_path / "tr.csv", test_path=tmp_path / "te.csv", label_columns=1,
                                ignore_columns="id", categorical_columns="color")
    assert parts.train.feature_names == parts.test.feature_names == ["a", "color=blue", "color=red"]
    enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit([["red"], ["blue"], ["red"]])
    np.testing.assert_array_equal(parts.test.features[:, 1:], enc.transform([["blue"], ["pink"], ["pink"]]))
    np.testing.assert_array_equal(parts.test.features[:, 0], [4, 5, 6])


def test_csv_categorical_columns_with_labels_listed_by_name(tmp_path):
    """One label column listing names (label_sep) beside a categorical feature: the same features and
    labels as the file with one 0/1 column per label."""
    listed = _write(tmp_path, "l.csv", "color,a,tags\nred,1,cat dog\nblue,2,\nred,3,dog\n")
    columns = _write(tmp_path, "c.csv", "color,a,cat,dog\nred,1,1,1\nblue,2,0,0\nred,3,0,1\n")
    a = read_csv(listed, ["tags"], label_sep=" ", categorical_columns=["color"])
    b = read_csv(columns, 2, categorical_columns=["color"])
    assert a.feature_names == b.feature_names == ["color=blue", "color=red", "a"]
    assert a.label_names == b.label_names == ["cat", "dog"]
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.features, [[0, 1, 1], [1, 0, 2], [0, 1, 3]])


def test_csv_categorical_missing_values_and_mistakes(tmp_path):
    p = _write(tmp_path, "m.csv", "a,color,y\n1,red,1\n2,,0\n3,blue,1\n")
    with pytest.raises(DataFormatError, match=r"m\.csv:3: empty field in the categorical column 'color' \(a missing "
                                              r"value\? --dataset\.missing mean"):
        read_csv(p, 1, categorical_columns=["color"])
    # With missing values allowed, the row's whole group is NaN, which dataset.missing fills later.
    ds = read_csv(p, 1, categorical_columns=["color"], allow_missing=True)
    assert ds.feature_names == ["a", "color=blue", "color=red"]
    np.testing.assert_array_equal(ds.features, [[1, 0, 1], [2, np.nan, np.nan], [3, 1, 0]])
    with pytest.raises(ValueError, match=r"\['y'\] are named both as categorical features and as label columns"):
        read_csv(p, 1, categorical_columns=["y"])
    with pytest.raises(ValueError, match=r"\['color'\] are named both as categorical features and as ignored"):
        read_csv(p, 1, categorical_columns=["color"], ignore_columns=["color"])
    with pytest.raises(DataFormatError, match=r"the categorical column\(s\) \['colour'\] are not in the header"):
        read_csv(p, 1, categorical_columns=["colour"])
    clash = _write(tmp_path, "k.csv", "color=red,color,y\n1,red,1\n2,blue,0\n")
    with pytest.raises(DataFormatError, match=r"one-hot encoding makes a column 'color=red', the name of another column"):
        read_csv(clash, 1, categorical_columns=["color"])
    none = _write(tmp_path, "n.csv", "a,color,y\n1,,1\n2,NA,0\n")
    with pytest.raises(DataFormatError, match=r"n\.csv:2: the categorical column 'color' holds no value on any row"):
        read_csv(none, 1, categorical_columns=["color"], allow_missing=True)
    # An id named as categorical would become one feature per row: said, not refused.
    ids = _write(tmp_path, "i.csv", "id,y\n" + "".join(f"row{i},{i % 2}\n" for i in range(120)))
    with pytest.warns(UserWarning, match=r"'id' has 120 distinct values in 120 rows, one feature each: an id or free "
                                         r"text belongs in dataset\.ignore_columns"):
        assert read_csv(ids, 1, categorical_columns=["id"]).n_features == 120


def test_csv_label_columns_may_hold_true_and_false(tmp_path):
    """pandas writes a bool column as True / False: read as 1 / 0 in label columns (any case), as before
    refused in feature columns, and a label value that is neither still names the column."""
    a = read_csv(_write(tmp_path, "a.csv", "x,cat,dog\n1,True,False\n2,FALSE,true\n3,1,0\n"), 2)
    np.testing.assert_array_equal(a.labels, [[1, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(a.features, [[1], [2], [3]])
    with pytest.raises(DataFormatError, match=r"b\.csv:2: non-numeric value 'True' in column 'x'; features must be"):
        read_csv(_write(tmp_path, "b.csv", "x,cat\nTrue,1\n"), 1)
    with pytest.raises(DataFormatError, match=r"c\.csv:3: non-numeric value 'yes' in column 'cat'; label values must be"):
        read_csv(_write(tmp_path, "c.csv", "x,cat\n1,true\n2,yes\n"), 1)
    # The same wherever label columns are read: a table by column names (evaluate --input) and an image
    # folder's one-hot label file.
    from mulsupcon.data.formats import label_columns_checked

    _, data, _ = read_table(_write(tmp_path, "d.csv", "id,x,cat,dog\nr1,1,True,false\n"), columns=["x", "cat", "dog"],
                            labels=["cat", "dog"])
    np.testing.assert_array_equal(data, [[1, 1, 0]])
    with pytest.raises(DataFormatError, match=r"e\.csv:2: non-numeric value 'True' in column 'x'$"):
        read_table(_write(tmp_path, "e.csv", "x,cat\nTrue,1\n"), columns=["x", "cat"], labels=["cat"])
    np.testing.assert_array_equal(label_columns_checked(np.array([["TRUE", "0"], [" false ", "1"]]), ["a", "b"], ["f:2", "f:3"]),
                                  [[1, 0], [0, 1]])
    with pytest.raises(DataFormatError, match=r"f:2: label column 'a' has value 'yes'; label values must be 0 or 1 "):
        label_columns_checked(np.array([["yes", "0"]]), ["a", "b"], ["f:2"])


def test_read_table_reads_only_the_named_columns(tmp_path):
    """predict reads a file's feature columns by name: other columns (an id, text labels) may be anything."""
    p = _write(tmp_path, "t.csv", "id,b,a,tags\nrow-1,2,1,cat;dog\nrow-2,4,3,\n")
    header, data, line_of = read_table(p, columns=["a", "b"])
    assert header == ["a", "b"]
    np.testing.assert_array_equal(data, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(line_of, [2, 3])
    plain = _write(tmp_path, "u.csv", "b,a,c\n2,1,9\n4,3,9\n")  # the numeric bulk path, columns picked after
    np.testing.assert_array_equal(read_table(plain, columns=["a", "b"])[1], [[1, 2], [3, 4]])
    with pytest.raises(DataFormatError, match=r"t\.csv: the model's feature column\(s\) \['c'\] are not in the "
                                              r"header \(1 of 2 missing"):
        read_table(p, columns=["a", "c"], whose="model's feature")
    with pytest.raises(DataFormatError, match=r"t\.csv:2: non-numeric value 'row-1' in column 'id'$"):
        read_table(p)  # every column by default


def test_read_text_columns_keeps_the_rows_of_read_table(tmp_path):
    p = _write(tmp_path, "t.csv", "id;a;note\n\nx-1;1;first\n\nx-2;2;\n")
    assert read_text_columns(p, ["note", "id"]) == [["first", "x-1"], ["", "x-2"]]
    np.testing.assert_array_equal(read_table(p, columns=["a"])[1], [[1], [2]])
    with pytest.raises(DataFormatError, match=r"column\(s\) \['b'\] are not in the header"):
        read_text_columns(p, ["b"])


def test_csv_label_count_out_of_range(tmp_path):
    p = _write(tmp_path, "x.csv", "a,y\n1,1\n")
    with pytest.raises(ValueError, match="label_columns=2 but the header has 2 columns"):
        read_csv(p, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_csv(p, 1).n_labels == 1


# ----------------------------------------------------------------------------- line ends, BOM
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr-only"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
def test_line_ends_and_byte_order_mark_are_accepted(tmp_path, newline, bom):
    text = HEAD + "1,2,0\n% comment\n3,4,1\n"
    p = tmp_path / "le.arff"
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", newline).encode())
    ds = read_arff(p, labels=1)
    np.testing.assert_array_equal(_dense(ds), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(ds.labels, [[0], [1]])
    # Line numbers in messages are still those an editor shows.
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (text + "5,x,0\n").replace("\n", newline).encode())
    with pytest.raises(DataFormatError, match=r"le\.arff:9: attribute 'b' is numeric but the value is 'x'"):
        read_arff(p, labels=1)


# ----------------------------------------------------------------------------- partial label XML
def _xml_without(src: Path, drop: set[str], out: Path) -> Path:
    import xml.etree.ElementTree as ET

    root = ET.parse(src).getroot()
    for el in list(root):
        if el.get("name") in drop:
            root.remove(el)
    ET.ElementTree(root).write(out)
    return out


@pytest.mark.parametrize("folder, arff, drop", [
    ("yeast", "yeast-train.arff", {"Class14"}),          # after the listed labels
    ("yeast", "yeast-train.arff", {"Class5", "Class9"}),  # between listed labels
    ("yeast", "yeast-train.arff", {"Class1"}),           # before them, numbered like them
    ("scene", "scene-train.arff", {"Urban"}),
])
def test_label_xml_listing_only_some_labels_warns_naming_them(tmp_path, folder, arff, drop):
    d = require_dataset_folder(folder)
    xml = _xml_without(d / f"{folder}.xml", drop, tmp_path / "part.xml")
    with pytest.warns(UserWarning, match=r"look like labels too and are read as FEATURES") as rec:
        ds = read_arff(d / arff, xml=xml)
    message = str(rec[0].message)
    for name in drop:
        assert f"'{name}' (line " in message
    assert f"lists {ds.n_labels} labels, but {len(drop)} unlisted" in message
    assert set(ds.label_names).isdisjoint(drop) and drop <= set(ds.feature_names)


def test_unlisted_label_warning_on_a_tiny_file(tmp_path):
    text = ("@relation r\n@attribute f {0,1}\n@attribute c1 {0,1}\n@attribute c2 {0,1}\n@data\n0,1,0\n")
    p = _write(tmp_path, "t.arff", text)
    # c2 follows the only listed label: suspect.
    (tmp_path / "one.xml").write_text('<labels xmlns="http://mulan.sourceforge.net/labels"><label name="c1"/></labels>')
    with pytest.warns(UserWarning, match=r"'c2' \(line 4\)"):
        read_arff(p, xml=tmp_path / "one.xml")
    # Listing both: the binary feature before them is not reported (it cannot be told apart).
    (tmp_path / "two.xml").write_text('<labels><label name="c1"/><label name="c2"/></labels>')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_arff(p, xml=tmp_path / "two.xml")
    assert ds.label_names == ["c1", "c2"] and ds.feature_names == ["f"]


# ----------------------------------------------------------------------------- damaged NPZ
def test_damaged_npz_names_the_file(tmp_path):
    from mulsupcon.data.user_files import guess_kind, read_path

    ok = tmp_path / "ok.npz"
    np.savez(ok, features=np.random.rand(40, 4).astype(np.float32), labels=np.eye(40, 3, dtype=np.uint8))
    raw = ok.read_bytes()
    (tmp_path / "zero.npz").write_bytes(b"")
    (tmp_path / "half.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "tail.npz").write_bytes(raw[:-30])
    bad = bytearray(raw)
    bad[200:260] = bytes(60)  # inside the first member: the zip directory is intact, its CRC is not
    (tmp_path / "crc.npz").write_bytes(bytes(bad))
    expect = {
        "zero.npz": r"zero\.npz: the file is empty \(0 bytes\)",
        "half.npz": r"half\.npz: not a readable \.npz file, truncated or damaged",
        "tail.npz": r"tail\.npz: not a readable \.npz file, truncated or damaged",
        "crc.npz": r"crc\.npz: array 'features' cannot be read: the file is truncated or damaged",
    }
    for name, pattern in expect.items():
        for reader in (read_npz, guess_kind, read_path):
            with pytest.raises(DataFormatError, match=pattern):
                reader(tmp_path / name)
    assert read_npz(ok).n_samples == 40


def test_column_options_for_formats_without_columns_are_refused(tmp_path):
    """--dataset.label_columns / ignore_columns given for an NPZ would be dropped silently otherwise."""
    from mulsupcon.data.user_files import read_path

    np.savez(tmp_path / "d.npz", features=np.random.rand(6, 2), labels=np.eye(6, 2, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"d\.npz: dataset\.label_columns applies to CSV/TSV, Parquet and ARFF files"):
        read_path(tmp_path / "d.npz", label_columns=2)
    with pytest.raises(ValueError, match=r"d\.npz: dataset\.ignore_columns applies to CSV/TSV and Parquet files"):
        read_path(tmp_path / "d.npz", ignore_columns="id")
    assert read_path(tmp_path / "d.npz")[0].train.n_samples == 6


def test_npz_that_is_not_damaged_but_unreadable_says_why(tmp_path):
    import scipy.sparse as sp

    x, y = np.random.rand(20, 4), np.eye(20, 3, dtype=np.uint8)
    np.savez(tmp_path / "obj.npz", features=x, labels=y, label_names=np.array(["a", "b", "c"], dtype=object))
    with pytest.raises(DataFormatError, match=r"obj\.npz: array 'label_names' holds Python objects \(dtype=object\)"
                                              r".*np\.asarray\(names, dtype=str\)"):
        read_npz(tmp_path / "obj.npz")
    sp.save_npz(tmp_path / "sparse.npz", sp.csr_matrix(x))
    with pytest.raises(DataFormatError, match=r"sparse\.npz: a scipy\.sparse matrix written by save_npz"):
        read_npz(tmp_path / "sparse.npz")
    np.savez(tmp_path / "str.npz", features=x, labels=y, label_names=np.asarray(["a", "b", "c"], dtype=str))
    assert read_npz(tmp_path / "str.npz").label_names == ["a", "b", "c"]  # what the message advises works


@pytest.mark.parametrize("name, reader", [("d.xlsx", "read_excel"), ("d.feather", "read_feather"), ("d.json", "read_json")])
def test_a_table_format_we_do_not_read_says_how_to_make_a_csv(tmp_path, name, reader):
    from mulsupcon.data.user_files import read_dataset

    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ValueError, match=rf"unknown file type .*; save the table as CSV first, e.g. with pandas: "
                                         rf"pd\.{reader}\('{name}'\)\.to_csv\('data\.csv', index=False\)"):
        read_dataset(tmp_path / name)
    from types import SimpleNamespace

    from mulsupcon.predict import read_inputs  # prediction's reader says the same

    with pytest.raises(ValueError, match=rf"unknown input type .*; save the table as CSV first.*pd\.{reader}"):
        read_inputs(tmp_path / name, SimpleNamespace(is_image=False))
    (tmp_path / "d.foo").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown file type '\.foo'; expected .*FILE\.csv\)$"):
        read_dataset(tmp_path / "d.foo")
