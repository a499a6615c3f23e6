"""Readers for multi-label data held in HDF5, NPZ and CSV files.

All return a :class:`~mulsupcon.data.dataset.MultiLabelDataset` with (N, L) ``uint8`` labels
whose values are checked to be 0/1:

* :func:`read_hdf5`: the layout of the MulSupCon authors' files, datasets ``feature`` (N, F)
  and ``target`` (N, L) for vector data, or ``Image`` (N, H, W, 3) ``uint8`` and ``target``
  for images (stored as (N, 3, H, W), the layout of the rest of the library).
* :func:`read_npz`: arrays ``features`` (or ``X``) and ``labels`` (or ``Y``), optionally
  ``label_names`` and ``feature_names``.  4-D ``uint8`` features are kept as images.
* :func:`read_csv`: a header row, then numeric rows; the label columns are named or are the
  last ``n``.  ``.gz``/``.bz2``/``.xz`` files are decompressed transparently.

The text-table helpers (:func:`text_rows`, :func:`column_positions`, :func:`label_matrix`,
:func:`multi_hot`, :func:`label_columns_checked`) also read an image folder's label CSV
(:func:`~mulsupcon.data.image_layouts.read_image_folder`) and the labelled files of ``evaluate --input``.

Vector features are float32.  Infinite and out-of-float32 values are refused; the errors name the
line or row and the column.  A missing feature value (NaN in an array; in a CSV an empty field or one
of :data:`MISSING_MARKERS`) is refused too, unless the reader is given ``allow_missing=True``: then it
is read as NaN, which ``dataset.missing: mean`` (or ``median``, ``most_frequent``) fills in later from the
training rows' column.
A label is never missing.
"""

from __future__ import annotations

import csv
import re
import zipfile
import zlib
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from mulsupcon.data.arff import _FLOAT32_MAX, MISSING_HINT, DataFormatError, PathType, _default_name, read_bytes
from mulsupcon.data.dataset import MultiLabelDataset

__all__ = ["read_hdf5", "read_npz", "read_npy", "read_npy_pair", "read_csv", "read_table", "read_text_columns", "text_rows", "column_positions",
           "multi_hot", "label_matrix", "cell_text", "default_label_names", "label_columns_checked", "open_npz", "one_hot_encode", "one_hot_groups"]


def _check_labels(y: np.ndarray, source: str, what: str) -> np.ndarray:
    """(N, L) labels as uint8 after checking they are 2-D and all 0/1."""
    y = np.asarray(y)
    if y.ndim == 1:
        raise DataFormatError(f"{source}: {what} is 1-D with shape {y.shape}; expected an (N, L) multi-hot matrix")
    if y.ndim != 2:
        raise DataFormatError(f"{source}: {what} must be 2-D (N, L), got shape {y.shape}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{source}: {what} holds {y[r, c].item()!r} at row {r}, column {c}; label values must be 0 or 1"
        )
    return y.astype(np.uint8)


# What a CSV field may hold for a missing feature value (compared lower-cased, without blanks): an empty
# field (pandas' to_csv), ARFF's '?', R's NA, and the spellings of NaN and null that tools write.
MISSING_MARKERS = frozenset({"", "?", "na", "n/a", "nan", "null"})
BOOLEAN_LABELS = {"true": 1.0, "false": 0.0}  # a label column may hold True / False (any case) as well as 1 / 0


def first_unrepresentable(x: np.ndarray, *, allow_nan: bool = False) -> Optional[tuple[int, int]]:
    """(row, column) of the first value of a 2-D array that is NaN (unless ``allow_nan``: a missing
    value), infinite or beyond float32's range (training on it gives NaN scores far from the cause), or
    None when every value is fine."""
    if x.dtype == np.float32:  # holds nothing beyond its range: only the flags, not a float copy of x
        bad = ~np.isfinite(x)
    else:
        bad = ~(np.abs(x) <= _FLOAT32_MAX)  # also true for NaN
    if allow_nan:
        bad &= ~np.isnan(x)
    if not bad.any():
        return None
    r, c = np.argwhere(bad)[0]
    return int(r), int(c)


def _vector_features(x: np.ndarray, source: str, what: str, allow_missing: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataFormatError(f"{source}: {what} must be 2-D (N, F), got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataFormatError(f"{source}: {what} has non-numeric dtype {x.dtype}")
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf, reported below
        x32 = x.astype(np.float32, copy=False)  # a fresh array read from a file: a float32 one is kept as is
    where = first_unrepresentable(x32, allow_nan=allow_missing)
    if where is not None:
        r, c = where
        missing = np.isnan(x32[r, c])
        raise DataFormatError(
            f"{source}: {what} holds {x[r, c].item()!r} at row {r}, column {c}; every feature must be a finite "
            "number that float32 can hold" + (f" (a missing value? {MISSING_HINT})" if missing else "")
        )
    return x32


def default_label_names(n: int) -> list[str]:
    """The names of the n label columns of a file that names none (HDF5; an NPZ without ``label_names``)."""
    return _names(None, n, "label", "", "label names")


def _names(given: Sequence[str] | None, n: int, prefix: str, source: str, what: str) -> list[str]:
    if given is None:
        return [f"{prefix}{j}" for j in range(n)]
    names = [x.decode() if isinstance(x, bytes) else str(x) for x in given]
    if len(names) != n:
        raise DataFormatError(f"{source}: {len(names)} {what} for {n} columns")
    return names


def read_hdf5(
    path: PathType, *, name: str = "", label_names: Sequence[str] | None = None, allow_missing: bool = False
) -> MultiLabelDataset:
    """Read an HDF5 file with datasets ``feature``/``target`` or ``Image``/``target``.

    Args:
        path: the ``.hdf5``/``.h5`` file.
        name: dataset name (default: the file name without suffix).
        label_names: L names for the target columns (default ``label0``, ``label1``, ...).
        allow_missing: keep NaN features (missing values) instead of refusing them.

    Returns:
        MultiLabelDataset: features (N, F) float32, or (N, 3, H, W) uint8 for ``Image``
        stored as (N, H, W, 3); labels (N, L) uint8.

    Raises:
        DataFormatError: missing datasets, wrong shapes or label values other than 0/1.
    """
    import h5py

    path = Path(path)
    source = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{source}: not a readable HDF5 file ({exc})") from exc
    with f:
        keys = sorted(f.keys())
        if "target" not in f:
            raise DataFormatError(f"{source}: no 'target' dataset (found {keys})")
        y = _check_labels(f["target"][()], source, "'target'")
        if "feature" in f:
            x = _vector_features(f["feature"][()], source, "'feature'", allow_missing)
        elif "Image" in f:
            img = np.asarray(f["Image"][()])
            if img.ndim != 4 or img.shape[-1] != 3 or img.dtype != np.uint8:
                raise DataFormatError(
                    f"{source}: 'Image' must be (N, H, W, 3) uint8, got shape {img.shape} dtype {img.dtype}"
                )
            x = np.ascontiguousarray(img.transpose(0, 3, 1, 2))  # (N, H, W, 3) -> (N, 3, H, W)
        else:
            raise DataFormatError(f"{source}: no 'feature' or 'Image' dataset (found {keys})")
    is_image = x.ndim == 4
    return MultiLabelDataset(
        features=x,
        labels=y,
        label_names=_names(label_names, y.shape[1], "label", source, "label names"),
        feature_names=[] if is_image else [f"f{j}" for j in range(x.shape[1])],
        source=source,
        name=name or _default_name(path),
    )


class _NpzFile:
    """``np.load`` of an ``.npz`` whose member reads name the file when it is damaged."""

    def __init__(self, path: Path) -> None:
        self.source = str(path)
        if path.stat().st_size == 0:
            raise DataFormatError(f"{self.source}: the file is empty (0 bytes); expected an .npz archive")
        try:
            self._z = np.load(path, allow_pickle=False)
        except _NPZ_ERRORS as exc:
            raise DataFormatError(f"{self.source}: not a readable .npz file, truncated or damaged "
                                  f"({type(exc).__name__}: {exc})") from exc
        if not hasattr(self._z, "files"):
            self._z = None
            raise DataFormatError(f"{self.source}: holds a single .npy array, not an .npz archive of named arrays")
        self.files: list[str] = list(self._z.files)

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self._z[key]
        except _NPZ_ERRORS as exc:
            if "allow_pickle" in str(exc):  # numpy's refusal of an object array, not damage
                raise DataFormatError(
                    f"{self.source}: array {key!r} holds Python objects (dtype=object), which are not read "
                    f"(loading them would run pickle); save numbers as a numeric array and names as "
                    f"np.asarray(names, dtype=str)") from exc
            raise DataFormatError(f"{self.source}: array {key!r} cannot be read: the file is truncated or "
                                  f"damaged ({type(exc).__name__}: {exc})") from exc

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def __enter__(self) -> "_NpzFile":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._z is not None:
            self._z.close()


# What numpy and zipfile raise on a damaged archive (zipfile.BadZipFile, zlib.error, EOFError, ...).
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def open_npz(path: PathType) -> _NpzFile:
    """Open an ``.npz`` archive for reading (a context manager; ``z.files``, ``z[key]``).

    Raises:
        DataFormatError: the file is empty, truncated or otherwise damaged, naming the file (and
            the array whose bytes cannot be read).
    """
    return _NpzFile(Path(path))


def read_npz(path: PathType, *, name: str = "", allow_missing: bool = False) -> MultiLabelDataset:
    """Read a ``.npz`` with ``features``/``X`` and ``labels``/``Y`` (+ optional names).

    Optional keys ``label_names`` (L strings) and ``feature_names`` (F strings) are used when
    present.  The file is opened without pickle support (object arrays are refused).  NaN features
    (missing values) are refused unless ``allow_missing``.

    Returns:
        MultiLabelDataset: features (N, F) float32, or (N, C, H, W) uint8 kept as images;
        labels (N, L) uint8.

    Raises:
        DataFormatError: missing or ambiguous keys, wrong shapes, labels other than 0/1.
    """
    path = Path(path)
    source = str(path)
    with open_npz(path) as z:
        keys = set(z.files)

        if {"data", "indices", "indptr", "shape", "format"} <= keys and not keys & {"features", "X"}:
            raise DataFormatError(f"{source}: a scipy.sparse matrix written by save_npz (one matrix, no labels); "
                                  "write features and labels together: np.savez(path, features=X.toarray(), labels=Y)")

        def pick(options: tuple[str, str], what: str) -> np.ndarray:
            found = [k for k in options if k in keys]
            if not found:
                raise DataFormatError(f"{source}: no {what} array (expected key {options[0]!r} or {options[1]!r}; found {sorted(keys)})")
            if len(found) > 1:
                raise DataFormatError(f"{source}: both {options[0]!r} and {options[1]!r} present; keep one")
            return z[found[0]]

        x = pick(("features", "X"), "features")
        y = _check_labels(pick(("labels", "Y"), "labels"), source, "labels")
        label_names = z["label_names"].tolist() if "label_names" in keys else None
        feature_names = z["feature_names"].tolist() if "feature_names" in keys else None
    if x.ndim == 4 and x.dtype == np.uint8:
        feats, fnames = x, []
    else:
        feats = _vector_features(x, source, "features", allow_missing)
        fnames = _names(feature_names, feats.shape[1], "f", source, "feature names")
    return MultiLabelDataset(
        features=feats,
        labels=y,
        label_names=_names(label_names, y.shape[1], "label", source, "label names"),
        feature_names=fnames,
        source=source,
        name=name or _default_name(path),
    )


def read_npy(path: PathType) -> np.ndarray:
    """The one array of an ``.npy`` file (``np.save``), read without pickle; a damaged file or an array of
    Python objects is an error naming the file."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty (0 bytes); expected an .npy array")
    try:
        a = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        why = ("holds Python objects (dtype=object), which are not read (loading them would run pickle)"
               if "allow_pickle" in str(exc) else f"is not a readable .npy file ({type(exc).__name__}: {exc})")
        raise DataFormatError(f"{path}: {why}") from exc
    if not isinstance(a, np.ndarray):
        raise DataFormatError(f"{path}: holds an .npz archive of named arrays; name it .npz")
    return a


def read_npy_pair(path: PathType, label_path: PathType, *, name: str = "",
                  allow_missing: bool = False) -> MultiLabelDataset:
    """Features and labels saved apart with ``np.save`` (``X.npy``, ``Y.npy``), row for row: features (N, F)
    float32, named ``f0 ...`` (taken by position), labels (N, L) uint8 0/1, named ``label0 ...``. NaN
    features are missing values, refused unless ``allow_missing``."""
    path, label_path = Path(path), Path(label_path)
    x = read_npy(path)
    if x.ndim != 2:
        raise DataFormatError(f"{path}: features must be a 2-D (N, F) array, got shape {x.shape} (images: save them "
                              "with their labels in an .npz, np.savez(path, features=X, labels=Y))")
    feats = _vector_features(x, str(path), "features", allow_missing)
    y = _check_labels(read_npy(label_path), str(label_path), "labels")
    _row_counts_agree(str(path), str(label_path), len(feats), len(y))
    return MultiLabelDataset(features=feats, labels=y, label_names=default_label_names(y.shape[1]),
                             feature_names=_names(None, feats.shape[1], "f", str(path), "feature names"),
                             source=str(path), name=name or _default_name(path))


def _label_indices(header: Sequence[str], label_columns: Sequence[str] | int, source: str) -> list[int]:
    """Positions in ``header`` of the label columns: named ones (in the order given) or the last ``n``."""
    n_col = len(header)
    if isinstance(label_columns, (int, np.integer)) and not isinstance(label_columns, bool):
        n = int(label_columns)
        if not 1 <= n < n_col:
            raise ValueError(f"{source}: label_columns={n} but the header has {n_col} columns (need 1..{n_col - 1})")
        return list(range(n_col - n, n_col))
    if isinstance(label_columns, str):
        raise TypeError(f"{source}: label_columns must be a list of names or an int, not {label_columns!r}")
    wanted = list(label_columns)
    if not wanted:
        raise ValueError(f"{source}: label_columns is empty")
    return column_positions(header, wanted, source, "label")


def _table_lines(path: PathType, delimiter: str) -> tuple[str, list[str], int, list[str]]:
    """``(source, lines with their fields separated by commas, index of the header line, header)``.

    Any of UTF-8, UTF-16 (with its byte-order mark) and Latin-1 is read. A ``.csv`` whose header has no
    comma but ``;`` or tabs is read with that separator (spreadsheets in decimal-comma locales save such
    files).
    """
    path = Path(path)
    source = str(path)
    raw = read_bytes(path)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # spreadsheets' "Unicode text"
        text = raw.decode("utf-16")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:  # a legacy 8-bit encoding (as for ARFF): only names can hold such bytes
            text = raw.decode("latin-1")
    del raw  # a large file is held at most twice at a time (bytes and text, then text and lines)
    lines = text.splitlines()
    del text
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise DataFormatError(f"{source}: the file is empty")
    if delimiter == "," and "," not in lines[first]:
        # A header of one column cannot be a multi-label table, so a header split by ';' or tabs says
        # which separator the file uses.
        delimiter = next((d for d in (";", "\t") if d in lines[first]), ",")
    if delimiter != ",":  # one field syntax below: commas (no field may then hold a comma)
        k = next((i for i, ln in enumerate(lines) if "," in ln), None)
        if k is not None:
            raise DataFormatError(f"{source}:{k + 1}: a {delimiter!r}-separated file that also contains commas "
                                  "(numbers must use '.' as the decimal mark)")
        lines = [ln.replace(delimiter, ",") for ln in lines]
    header = [h.strip() for h in next(csv.reader([lines[first]]))]
    if "" in header:
        k = header.index("")
        why = ""
        if k == 0:  # pandas' to_csv writes its row index under an empty name unless index=False
            why = " (a row index, as pandas' to_csv writes it? save with index=False)"
        elif k == len(header) - 1:
            why = " (a comma at the end of the line?)"
        raise DataFormatError(f"{source}:{first + 1}: column {k + 1} of the header has no name{why}; every "
                              "column needs one")
    seen: set[str] = set()  # a set, not a scan of the names before: a text table may have 20,000 columns
    for dup in header:
        if dup in seen:
            break
        seen.add(dup)
    else:
        dup = None
    if dup is not None:
        raise DataFormatError(f"{source}:{first + 1}: column name {dup!r} appears twice in the header")
    return source, lines, first, header


class MissingColumns(DataFormatError):
    """Columns asked for by name are not in a table's header; ``missing`` names them."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


def column_positions(header: Sequence[str], names: Sequence[str], source: str, whose: str) -> list[int]:
    """Positions of ``names`` in ``header``; :class:`MissingColumns` lists those that are missing."""
    position = {h: j for j, h in reversed(list(enumerate(header)))}  # a name's first column
    missing = [c for c in names if c not in position]
    if missing:
        wanted = set(names)
        raise MissingColumns(f"{source}: the {whose} column(s) {list(missing[:5])} are not in the header "
                             f"({len(missing)} of {len(names)} missing; the header: {list(header[:10])})"
                             + _spelled_otherwise(missing[:5], [h for h in header if h not in wanted]), missing)
    return [position[c] for c in names]


def _spelled_otherwise(missing: Sequence[str], spare: Sequence[str]) -> str:
    """'; did you mean ...' for missing column names that a spare header name matches but for case or spaces,
    or nearly ('' if none): a header written as 'Age ' or 'age' by another tool."""
    import difflib

    guesses = []
    for name in missing:
        same = [h for h in spare if h.strip().lower() == name.strip().lower()]
        close = same or difflib.get_close_matches(name, spare, n=1)
        if close:
            guesses.append(f"{close[0]!r} for {name!r}")
    return f"; did you mean {', '.join(guesses)}? Names must match exactly" if guesses else ""


# A one-hot column is named COLUMN=VALUE, as the ARFF reader names the columns of a nominal attribute.
CATEGORY_SEP = "="
# A categorical column with more values than this, most of them on one row each, is probably an id.
_MANY_CATEGORIES = 50


def cell_text(value: object) -> str:
    """A table cell (a pandas or Parquet value) as the text a CSV holds: a null, NaN or NaT is "" (missing),
    and a whole float is written as an integer (pandas reads a column of codes 1, 2 with a gap as floats 1.0,
    2.0 and NaN), so that training and prediction encode the same cell the same way."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else (str(int(value)) if value.is_integer() else str(value))
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing markers, without importing pandas
        return ""
    return str(value)


def one_hot_groups(feature_names: Sequence[str], categorical: Sequence[str]) -> dict[str, list[str]]:
    """The values of each categorical column, read back from the feature names one-hot encoding made:
    ``(["a", "color=blue", "color=red"], ["color"]) -> {"color": ["blue", "red"]}`` (model order)."""
    groups: dict[str, list[str]] = {c: [] for c in categorical}
    longest_first = sorted(categorical, key=len, reverse=True)  # "a=b" before "a", should both be columns
    for name in feature_names:
        column = next((c for c in longest_first if name.startswith(c + CATEGORY_SEP)), None)
        if column is not None:
            groups[column].append(name[len(column) + len(CATEGORY_SEP):])
    return groups


def one_hot_encode(fields: Sequence[str], column: str, where: Sequence[str], *,
                   values: Optional[Sequence[str]] = None, allow_missing: bool = False,
                   missing_hint: str = MISSING_HINT) -> tuple[list[str], np.ndarray]:
    """One text column as one-hot columns: ``(its values (K), (N, K) float32)``.

    Args:
        fields: the column's text on each row (N); surrounding blanks are ignored, case is kept.
        column: its name, for messages.
        where: ``"file:line"`` of each row, for messages.
        values: the values known from training, in model order; a row with another value gets all
            zeros (scikit-learn's ``OneHotEncoder(handle_unknown="ignore")``), and a warning counts them.
            Default: the sorted values that occur (training).
        allow_missing: a missing marker (an empty field, ``NA``, ...) gives NaN in every column of the
            row's group, which ``dataset.missing`` fills later; else it is an error naming the line.
    """
    import warnings

    text = [f.strip() for f in fields]
    missing = np.array([t.lower() in MISSING_MARKERS for t in text], dtype=bool)
    if missing.any() and not allow_missing:
        k = int(np.argmax(missing))
        what = "empty field" if not text[k] else f"missing value {text[k]!r}"
        raise DataFormatError(f"{where[k]}: {what} in the categorical column {column!r} (a missing value? {missing_hint})")
    if values is None:
        values = sorted({t for t, m in zip(text, missing) if not m})
        if not values:
            raise DataFormatError(f"{where[0] if where else column}: the categorical column {column!r} holds no value "
                                  "on any row")
        if len(values) > _MANY_CATEGORIES and len(values) > len(text) // 2:
            warnings.warn(f"categorical column {column!r} has {len(values)} distinct values in {len(text)} rows, one "
                          "feature each: an id or free text belongs in dataset.ignore_columns", stacklevel=3)
    index = {v: k for k, v in enumerate(values)}
    out = np.zeros((len(text), len(values)), dtype=np.float32)
    unknown = []
    for i, t in enumerate(text):
        if missing[i]:
            out[i] = np.nan
        elif t in index:
            out[i, index[t]] = 1.0
        else:
            unknown.append(i)
    if unknown:
        i = unknown[0]
        warnings.warn(f"{len(unknown)} of {len(text)} rows hold a value of the categorical column {column!r} that "
                      f"training did not see ({text[i]!r} at {where[i]}): they are encoded as none of its "
                      f"{len(values)} known values", stacklevel=3)
    return list(values), out


def _data_fields(lines: list[str], first: int) -> list[list[str]]:
    """The fields of every non-blank line after the header at ``first``: the rows :func:`_parse_rows` reads."""
    return list(csv.reader([ln for ln in lines[first + 1:] if ln.strip()]))


# Rows parsed per block in the bulk path: a block's float64 buffer holds about this many values (32 MB),
# so reading a file costs its text and the float32 result, not a float64 copy (or two) of the whole table.
BLOCK_VALUES = 1 << 22


def _parse_rows(source: str, lines: list[str], first: int, header: list[str], use: list[int],
                labels: Optional[set[int]] = None, allow_missing: bool = False,
                missing_hint: str = MISSING_HINT, training: Optional[bool] = None) -> tuple[np.ndarray, np.ndarray]:
    """The numbers of columns ``use`` of every non-blank line after the header: ``(data (N, len(use))
    float32, the file line of each row (N,))``. Each field is parsed as a float64 and rounded once to
    float32. ``labels`` (positions) shape the error messages, are never missing and may hold true / false.
    With ``allow_missing`` a missing feature value (:data:`MISSING_MARKERS`) is read as NaN; else its error
    adds ``missing_hint``. ``training`` (default: whether ``labels`` are given): a text feature's error says
    how to leave its column out of training. A value beyond float32's range (or inf, or NaN where nothing
    may be missing) is an error naming its line, column and text."""
    training = labels is not None if training is None else training
    n_col = len(header)
    body = lines[first + 1:]
    keep = [i for i, ln in enumerate(body) if ln.strip()]
    if not keep:
        raise DataFormatError(f"{source}: no data rows after the header (line {first + 1})")
    rows_text = [body[i] for i in keep]
    data = np.empty((len(rows_text), len(use)), dtype=np.float32)
    # Bulk path: plain numeric fields, parsed by numpy block by block; anything else falls back to a
    # per-field parse that names the offending line and column.
    bulk = not any('"' in ln for ln in lines)
    if bulk:
        counts = np.fromiter((r.count(",") + 1 for r in rows_text), dtype=np.int64, count=len(rows_text))
        wrong = counts != n_col
        if wrong.any():
            k = int(np.argmax(wrong))
            raise DataFormatError(
                f"{source}:{first + 2 + keep[k]}: expected {n_col} fields (as in the header), found {counts[k]}"
            )
        step = max(1, BLOCK_VALUES // n_col)
        for start in range(0, len(rows_text), step):
            block = rows_text[start:start + step]
            try:
                flat = np.fromstring(",".join(block), dtype=np.float64, sep=",")
            except ValueError:  # a field numpy cannot parse (text, an empty field)
                bulk = False
                break
            if flat.size != n_col * len(block):  # the same, where numpy only warns and stops early
                bulk = False
                break
            with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf, reported below
                data[start:start + len(block)] = flat.reshape(len(block), n_col)[:, use]
    if not bulk:
        for k, fields in enumerate(csv.reader(rows_text)):
            where = f"{source}:{first + 2 + keep[k]}"
            if len(fields) != n_col:
                raise DataFormatError(f"{where}: expected {n_col} fields (as in the header), found {len(fields)}")
            for i, j in enumerate(use):
                v = fields[j]
                try:
                    with np.errstate(over="ignore"):
                        data[k, i] = float(v)
                except ValueError:
                    is_label = labels is not None and j in labels
                    if is_label and v.strip().lower() in BOOLEAN_LABELS:  # pandas writes bool columns so
                        data[k, i] = BOOLEAN_LABELS[v.strip().lower()]
                        continue
                    marker = v.strip().lower() in MISSING_MARKERS
                    if marker and allow_missing and not is_label:
                        data[k, i] = np.nan
                        continue
                    what = "empty field" if not v.strip() else f"non-numeric value {v.strip()!r}"
                    hint = ""
                    if marker:
                        hint = "; labels cannot be missing" if is_label else f"; a missing value? {missing_hint}"
                    elif is_label and v.strip():
                        hint = "; label values must be 0 or 1 (or true / false), one column per label"
                        sep = next((c for c in ";|, " if c in v.strip()), None)
                        if sep is not None:  # looks like a list of label names
                            hint += (f", or names in one column: add --dataset.label_sep "
                                     f"{'space' if sep == ' ' else repr(sep)}")
                    elif re.fullmatch(r"[-+]?[\d.,']*\d[\d.,' ]*", v.strip()):  # 1,234 / 1.234,5 / 1'234
                        hint = ("; a number with a decimal comma or a thousands separator? numbers must use '.' as "
                                "the decimal mark, without separators")
                    elif training and v.strip():
                        hint = ("; features must be numbers: leave out an id or text column with --dataset.ignore_columns, "
                                "and name a categorical one in --dataset.categorical_columns (one-hot encoded)")
                    raise DataFormatError(f"{where}: {what} in column {header[j]!r}{hint}") from None
    line_of = np.asarray([first + 2 + i for i in keep], dtype=np.int64)
    where = first_unrepresentable(data, allow_nan=allow_missing)  # 'nan', 'inf' and '1e39' parse as floats
    if where is not None:
        r, c = where
        hint = ""
        if np.isnan(data[r, c]):
            hint = " (labels cannot be missing)" if labels and use[c] in labels else f" (a missing value? {missing_hint})"
        text = next(csv.reader([rows_text[r]]))[use[c]].strip()  # as written: float32 shows 1e39 as inf
        raise DataFormatError(
            f"{source}:{line_of[r]}: value {text} in column {header[use[c]]!r} is not a finite number "
            "that float32 can hold" + hint
        )
    return data, line_of


def text_rows(path: PathType, *, delimiter: str = ",") -> tuple[str, list[str], list[list[str]], list[int]]:
    """A delimited file with a header row, read as text: ``(source, header, the fields of each non-blank
    data row (N rows of len(header)), the file line of each row (N,))``. Encodings and separators as for
    :func:`read_table`; a row with another number of fields than the header is an error naming its line."""
    source, lines, first, header = _table_lines(path, delimiter)
    keep = [i for i in range(first + 1, len(lines)) if lines[i].strip()]
    rows = list(csv.reader([lines[i] for i in keep]))
    for i, fields in zip(keep, rows):
        if len(fields) != len(header):
            raise DataFormatError(f"{source}:{i + 1}: expected {len(header)} fields (as in the header), found {len(fields)}")
    return source, header, rows, [i + 1 for i in keep]


def read_text_columns(path: PathType, columns: Sequence[str], *, delimiter: str = ",") -> list[list[str]]:
    """The fields of ``columns`` as text, one list per data row (N, len(columns)), rows as in
    :func:`read_table` (blank lines skipped): e.g. an id column to carry into predictions."""
    source, header, rows, _ = text_rows(path, delimiter=delimiter)
    use = column_positions(header, columns, source, "requested")
    return [[fields[j].strip() for j in use] for fields in rows]


def read_table(path: PathType, *, delimiter: str = ",", columns: Optional[Sequence[str]] = None,
               whose: str = "requested", allow_missing: bool = False, missing_hint: str = MISSING_HINT,
               labels: Sequence[str] = (), categories: Optional[Mapping[str, Sequence[str]]] = None
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A delimited file with a header row and numeric rows: ``(header, data (N, C) float32, the file line
    of each row (N,))``. Errors name the line and column.

    Args:
        columns: the names of the columns to read, in this order (``header`` is then ``columns``); only
            these must be numeric, so a file may carry other columns (an id, a text field). Default: all.
        whose: says where ``columns`` come from in the message when some are missing.
        allow_missing: read a missing value (an empty field, ``?``, ``NA``, ``nan``, ...) as NaN;
            else it is an error whose message adds ``missing_hint``.
        labels: the names among ``columns`` that are 0/1 label columns: true / false are read there, a
            missing value never is, and an error says what a label value must be.
        categories: a model's categorical columns and their values ({"color": ["blue", "red"]}): a
            requested ``color=red`` is then the one-hot column that training made of the text column
            ``color`` (:func:`one_hot_encode`; a value training did not see gives zeros and a warning).
    """
    source, lines, first, header = _table_lines(path, delimiter)
    made = {f"{c}{CATEGORY_SEP}{v}": (c, k) for c, values in (categories or {}).items() for k, v in enumerate(values)}
    wanted = list(header) if columns is None else list(columns)
    plain = [n for n in wanted if n not in made]
    use = list(range(len(header))) if columns is None else column_positions(header, plain, source, whose)
    data, line_of = _parse_rows(source, lines, first, header, use, labels={header.index(n) for n in labels},
                                allow_missing=allow_missing, missing_hint=missing_hint, training=False)
    if columns is None or len(plain) == len(wanted):
        return [header[j] for j in use], data, line_of
    # The categorical columns, read as text and encoded with the model's values, then all in the order asked.
    text_columns = list(dict.fromkeys(made[n][0] for n in wanted if n in made))
    where = [f"{source}:{n}" for n in line_of]
    rows = _data_fields(lines, first)
    encoded = {c: one_hot_encode([r[j] for r in rows], c, where, values=categories[c], allow_missing=allow_missing,
                                 missing_hint=missing_hint)[1]
               for c, j in zip(text_columns, column_positions(header, text_columns, source, whose))}
    out = np.empty((len(rows), len(wanted)), dtype=np.float32)
    position = {n: i for i, n in enumerate(plain)}
    for i, n in enumerate(wanted):
        out[:, i] = encoded[made[n][0]][:, made[n][1]] if n in made else data[:, position[n]]
    return wanted, out, line_of


def label_columns_checked(y: np.ndarray, label_names: Sequence[str], where: Sequence[str]) -> np.ndarray:
    """0/1 label columns (N, L), numbers or text (``"0"``/``"1"``, or true / false in any case), as uint8;
    another value is an error naming ``where[row]`` (e.g. ``"file.csv:12"``) and the label column."""
    y = np.asarray(y)
    text = y.dtype.kind in "US"
    if text:
        y = np.char.strip(y.astype(str))
        lower = np.char.lower(y)
        for word, value in BOOLEAN_LABELS.items():
            y = np.where(lower == word, str(int(value)), y)
    bad = ~np.isin(y, ("0", "1") if text else (0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        value = repr(str(y[r, c])) if text else f"{y[r, c]:g}"
        raise DataFormatError(f"{where[r]}: label column {label_names[c]!r} has value {value}; "
                              "label values must be 0 or 1 (or true / false)")
    return (y == "1").astype(np.uint8) if text else y.astype(np.uint8)


def multi_hot(lists: Sequence[Sequence[str]], label_names: Optional[Sequence[str]] = None, *,
              where: Optional[Sequence[str]] = None) -> tuple[list[str], np.ndarray]:
    """The label names of each row (N lists) -> ``(names (L), multi-hot (N, L) uint8)``.

    ``label_names`` fixes the columns (a name outside them is an error naming ``where[row]``, e.g.
    ``"file.csv:12"``); by default they are the sorted names that occur.
    """
    names = list(label_names) if label_names is not None else sorted({x for row in lists for x in row})
    index = {n: j for j, n in enumerate(names)}
    y = np.zeros((len(lists), len(names)), dtype=np.uint8)
    for r, row in enumerate(lists):
        for x in row:
            j = index.get(x)
            if j is None:
                at = where[r] if where is not None else f"row {r}"
                raise DataFormatError(f"{at}: label {x!r} is not among the {len(names)} labels {names[:8]}...")
            y[r, j] = 1
    return names, y


def label_matrix(fields: Sequence[str], sep: str, label_names: Optional[Sequence[str]] = None, *,
                 where: Optional[Sequence[str]] = None) -> tuple[list[str], np.ndarray]:
    """Fields that list label names separated by ``sep`` (one per row; empty: no label) ->
    ``(names (L), multi-hot (N, L) uint8)``, as :func:`multi_hot`."""
    return multi_hot([[x.strip() for x in field.split(sep) if x.strip()] for field in fields], label_names, where=where)


def _with_one_hot(source: str, lines: list[str], first: int, header: list[str], feat: list[int],
                  numeric: np.ndarray, line_of: np.ndarray, categorical: set[int],
                  categories: Optional[Mapping[str, Sequence[str]]], allow_missing: bool) -> tuple[np.ndarray, list[str]]:
    """The features of columns ``feat`` in file order: ``numeric`` (N, numeric columns of ``feat``) as
    read, and each column of ``categorical`` (positions) one-hot encoded into columns named
    ``COLUMN=VALUE``: ``(x (N, F) float32, names (F))``. ``categories``: each categorical column's values
    from training (a test file, prediction); default: those of this file."""
    if not categorical:
        return numeric, [header[j] for j in feat]
    rows = _data_fields(lines, first)
    where = [f"{source}:{n}" for n in line_of]
    blocks, names, made, k = [], [], [], 0
    for j in feat:
        if j in categorical:
            values, block = one_hot_encode([r[j] for r in rows], header[j], where, allow_missing=allow_missing,
                                           values=None if categories is None else categories[header[j]])
            blocks.append(block)
            made += [f"{header[j]}{CATEGORY_SEP}{v}" for v in values]
            names += made[len(made) - len(values):]
        else:
            blocks.append(numeric[:, k:k + 1])
            names.append(header[j])
            k += 1
    clash = next((n for n in made if n in header), None)
    if clash is not None:
        raise DataFormatError(f"{source}: one-hot encoding makes a column {clash!r}, the name of another column of "
                              "the file; rename one of them")
    return np.hstack(blocks), names


def _label_table(table: tuple[str, list[str], int, list[str]], label_columns: Sequence[str] | int | None,
                 label_sep: Optional[str], label_names: Optional[Sequence[str]],
                 ignore_columns: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The labels of a file of labels only (``Y.csv``; ``table`` as :func:`_table_lines` gives it):
    ``(names (L), labels (N, L) uint8)``. ``label_columns``: names of its label columns, N (the last N), or
    None: every column but ``ignore_columns``. With ``label_sep`` the one label column lists names."""
    source, lines, first, header = table
    ignored = set(column_positions(header, ignore_columns, source, "ignored"))
    kept = [j for j in range(len(header)) if j not in ignored]
    if label_columns is None:
        lab = kept
    elif isinstance(label_columns, (int, np.integer)) and not isinstance(label_columns, bool):
        if not 1 <= int(label_columns) <= len(kept):
            raise ValueError(f"{source}: label_columns={label_columns} but the label file has {len(kept)} columns "
                             "(not counting ignored ones)")
        lab = kept[len(kept) - int(label_columns):]
    else:
        lab = _label_indices(header, label_columns, source)
    if not lab:
        raise DataFormatError(f"{source}: no label column (every column is ignored)")
    if label_sep is not None:
        if len(lab) != 1:
            raise ValueError(f"{source}: with dataset.label_sep the label file has one column that lists the labels "
                             f"(or dataset.label_columns names it); found {len(lab)}: {[header[j] for j in lab][:5]}")
        return _listed_labels(table, lab[0], label_sep, label_names)
    data, line_of = _parse_rows(source, lines, first, header, lab, labels=set(lab))
    names = [header[j] for j in lab]
    return names, label_columns_checked(data, names, [f"{source}:{n}" for n in line_of])


def _listed_labels(table: tuple[str, list[str], int, list[str]], j: int, label_sep: str,
                   label_names: Optional[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """Column ``j`` of ``table`` (as :func:`_table_lines` gives it) lists each row's label names separated by
    ``label_sep``: ``(names (L), labels (N, L) uint8)`` (:func:`label_matrix`; ``label_names`` fixes them)."""
    source, lines, first, header = table
    if not label_sep:
        raise ValueError(f"{source}: dataset.label_sep is empty; give the string between label names (';')")
    where = [f"{source}:{i + 1}" for i in range(first + 1, len(lines)) if lines[i].strip()]
    names, y = label_matrix([fields[j] for fields in _data_fields(lines, first)], label_sep, label_names, where=where)
    if not names:
        raise DataFormatError(f"{source}: column {header[j]!r} lists no label on any row")
    return names, y


def _row_counts_agree(features: str, labels: str, n_features: int, n_labels: int) -> None:
    """A file of features and a file of labels (named ``features``, ``labels``) hold as many rows."""
    if n_features != n_labels:
        raise DataFormatError(f"{labels}: {n_labels} rows of labels, but {features} has {n_features} rows of features; "
                              "the two files go row for row")


def _paired_rows(features: tuple[str, list[str], int, list[str]], labels: tuple[str, list[str], int, list[str]],
                 n_features: int, n_labels: int, shared: Sequence[str]) -> Optional[np.ndarray]:
    """How a file of features and a file of labels pair their rows: None where they go row for row, else
    the label file's row for each row of features.

    They must hold as many data rows. The columns both hold (``shared``: an id the run ignores) must give
    the same rows: on the same line of both (row for row), or in another order, each value once in each
    file (then paired by it, with a warning). Otherwise an error names the first id that breaks the
    pairing, so that two files sorted differently are never paired by position."""
    _row_counts_agree(features[0], labels[0], n_features, n_labels)
    if not shared:
        return None
    (a_src, *_), (b_src, *_) = features, labels
    a, b = (list(zip(*(_column_text(t, name) for name in shared))) for t in (features, labels))
    if a == b:
        return None
    what = shared[0] if len(shared) == 1 else "(" + ", ".join(shared) + ")"

    def shown(key: tuple[str, ...]) -> str:
        return repr(key[0]) if len(key) == 1 else repr(key)

    rows: dict[tuple[str, ...], int] = {}
    for src, keys in ((a_src, a), (b_src, b)):
        rows.clear()
        for k, key in enumerate(keys):
            if key in rows:
                raise DataFormatError(f"{src}: {what} {shown(key)} is on rows {rows[key] + 1} and {k + 1}, and the two "
                                      f"files list their rows in different orders, so they cannot be paired by it")
            rows[key] = k
    lacking = next((k for k, key in enumerate(a) if key not in rows), None)  # rows: those of the label file
    if lacking is not None:
        raise DataFormatError(f"{a_src}: row {lacking + 1}: {what} {shown(a[lacking])} has no row in {b_src} (the files "
                              "of features and labels must hold the same rows)")
    import warnings

    warnings.warn(f"{b_src} lists the rows of {a_src} in another order: paired by {what}")
    return np.array([rows[key] for key in a], dtype=np.int64)


def _column_text(table: tuple[str, list[str], int, list[str]], name: str) -> list[str]:
    """The text of column ``name`` on every data row of ``table`` (as :func:`_table_lines` gives it)."""
    _, lines, first, header = table
    j = header.index(name)
    body = [ln for ln in lines[first + 1:] if ln.strip()]
    if any('"' in ln for ln in body):
        return [fields[j].strip() for fields in csv.reader(body)]
    return [ln.split(",", j + 1)[j].strip() for ln in body]  # up to the column: a wide file is not split whole


def read_csv(path: PathType, label_columns: Sequence[str] | int, *, ignore_columns: Sequence[str] = (),
             label_sep: Optional[str] = None, label_names: Optional[Sequence[str]] = None,
             name: str = "", delimiter: str = ",", allow_missing: bool = False,
             categorical_columns: Sequence[str] = (),
             categories: Optional[Mapping[str, Sequence[str]]] = None,
             label_path: Optional[PathType] = None, label_delimiter: str = ",") -> MultiLabelDataset:
    """Read a comma- (or ``delimiter``-) separated file with a header row; every value read must be numeric,
    but in ``categorical_columns``.

    Args:
        path: the CSV file (``.gz``/``.bz2``/``.xz`` compressed files work too).
        label_columns: names of the label columns (any position; labels in this order) or an
            int ``n``: the last ``n`` columns that are not ignored.
        ignore_columns: names of columns that are neither features nor labels (an id, text); not read.
        label_sep: labels listed by name in ONE column (``label_columns`` names it, or is 1), separated by
            this string (``"cat;dog"``; an empty field: no label) instead of one 0/1 column per label.
        label_names: with ``label_sep``, the label columns in this order (another name in the file is an
            error); default: the sorted names that occur.
        name: dataset name (default: the file name without suffixes).
        delimiter: the field separator (``"\t"`` for TSV).
        allow_missing: read a missing feature value (an empty field, ``?``, ``NA``, ``nan``, ...) as
            NaN instead of refusing it; a label is never missing.
        categorical_columns: feature columns of text (or codes) to one-hot encode, in place: one 0/1
            column per value, named ``COLUMN=VALUE`` (values sorted; :func:`one_hot_encode`).
        categories: each categorical column's values, fixed (a test file read with its training file's
            values: another value gets all zeros, with a warning); default: the values of this file.
        label_path: the labels in a file of their own (``Y.csv`` beside ``X.csv``; separated by
            ``label_delimiter``), row for row: every column of ``path`` not ignored is then a feature, and
            ``label_columns`` picks the label file's columns (None: all of them). ``ignore_columns`` applies to
            both files; an ignored column that both have (an id) pairs the rows: row for row, or by its value
            when the files list them in different orders (:func:`_paired_rows`).

    Returns:
        MultiLabelDataset: features (N, F) float32 (the other columns in file order), labels (N, L) uint8.

    Raises:
        DataFormatError: no header, unknown/duplicate column names, ragged or empty fields,
            non-numeric values, labels other than 0/1 (with line and column).
    """
    path = Path(path)
    source, lines, first, header = _table_lines(path, delimiter)
    label_table = None if label_path is None else _table_lines(Path(label_path), label_delimiter)
    label_ignored: list[str] = []  # with a label file: its ignored columns, and those both files have (an id)
    shared_ignored: list[str] = []
    if label_table is not None:  # an ignored column may be in either file, or in both
        label_ignored = [c for c in ignore_columns if c in label_table[3]]
        shared_ignored = [c for c in label_ignored if c in header]
        absent = [c for c in ignore_columns if c not in header and c not in label_ignored]
        column_positions(header, absent, f"{source} and {label_table[0]}", "ignored")  # names them, if any
        ignore_columns = [c for c in ignore_columns if c in header]
    ignored = set(column_positions(header, ignore_columns, source, "ignored"))
    if isinstance(label_columns, (list, tuple)):
        both = [c for c in label_columns if c in ignore_columns]
        if both:
            raise ValueError(f"{source}: column(s) {both} are named both as labels and as ignored")
    kept = [j for j in range(len(header)) if j not in ignored]
    lab = [] if label_path is not None else [kept[i] for i in _label_indices([header[j] for j in kept], label_columns, source)]
    feat = [j for j in kept if j not in set(lab)]
    cat = set(column_positions(header, categorical_columns, source, "categorical"))
    for others, what in ((ignored, "ignored"), (set(lab), "label columns")):
        both = [header[j] for j in sorted(cat & others)]
        if both:
            raise ValueError(f"{source}: column(s) {both} are named both as categorical features and as {what}")
    numeric = [j for j in feat if j not in cat]

    def features(data: np.ndarray, line_of: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return _with_one_hot(source, lines, first, header, feat, data, line_of, cat, categories, allow_missing)

    if label_table is not None:
        data, line_of = _parse_rows(source, lines, first, header, numeric, labels=set(), allow_missing=allow_missing)
        names, y = _label_table(label_table, label_columns, label_sep, label_names, label_ignored)
        order = _paired_rows((source, lines, first, header), label_table, len(line_of), len(y), shared_ignored)
        y = y if order is None else y[order]
        x, feature_names = features(data, line_of)
        return MultiLabelDataset(features=np.ascontiguousarray(x), labels=y, label_names=names,
                                 feature_names=feature_names, source=source, name=name or _default_name(path))
    if label_sep is not None:
        if len(lab) != 1:
            raise ValueError(f"{source}: with dataset.label_sep, dataset.label_columns names the one column that "
                             f"lists the labels; got {len(lab)} columns")
        data, line_of = _parse_rows(source, lines, first, header, numeric, labels=set(), allow_missing=allow_missing)
        names, y = _listed_labels((source, lines, first, header), lab[0], label_sep, label_names)
        x, feature_names = features(data, line_of)
        return MultiLabelDataset(features=np.ascontiguousarray(x), labels=y, label_names=names,
                                 feature_names=feature_names, source=source, name=name or _default_name(path))
    data, line_of = _parse_rows(source, lines, first, header, numeric + lab, labels=set(lab),
                                allow_missing=allow_missing)
    y = label_columns_checked(data[:, len(numeric):], [header[j] for j in lab], [f"{source}:{n}" for n in line_of])
    x, feature_names = features(data[:, :len(numeric)], line_of)
    return MultiLabelDataset(
        features=np.ascontiguousarray(x),  # the feature columns of the rows read, without the labels
        labels=y,
        label_names=[header[j] for j in lab],
        feature_names=feature_names,
        source=source,
        name=name or _default_name(path),
    )
