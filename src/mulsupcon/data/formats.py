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
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mulsupcon.data.arff import _FLOAT32_MAX, MISSING_HINT, DataFormatError, PathType, _default_name, read_bytes
from mulsupcon.data.dataset import MultiLabelDataset

__all__ = ["read_hdf5", "read_npz", "read_csv", "read_table", "read_text_columns", "text_rows", "column_positions",
           "multi_hot", "label_matrix", "label_columns_checked", "open_npz"]


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
        x32 = x.astype(np.float32)
    where = first_unrepresentable(x32, allow_nan=allow_missing)
    if where is not None:
        r, c = where
        missing = np.isnan(x32[r, c])
        raise DataFormatError(
            f"{source}: {what} holds {x[r, c].item()!r} at row {r}, column {c}; every feature must be a finite "
            "number that float32 can hold" + (f" (a missing value? {MISSING_HINT})" if missing else "")
        )
    return x32


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
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataFormatError(f"{source}: label column(s) {missing} not in the header {list(header[:10])}...")
    if not wanted:
        raise ValueError(f"{source}: label_columns is empty")
    return [list(header).index(c) for c in wanted]


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
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise DataFormatError(f"{source}: the file is empty")
    if delimiter == "," and "," not in lines[first]:
        # A header of one column cannot be a multi-label table, so a header split by ';' or tabs says
        # which separator the file uses.
        delimiter = next((d for d in (";", "\t") if d in lines[first]), ",")
    if delimiter != ",":  # one field syntax below: commas (no field may then hold a comma)
        if "," in text:
            k = next(i for i, ln in enumerate(lines) if "," in ln)
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
    dup = next((h for i, h in enumerate(header) if h in header[:i]), None)
    if dup is not None:
        raise DataFormatError(f"{source}:{first + 1}: column name {dup!r} appears twice in the header")
    return source, lines, first, header


def column_positions(header: Sequence[str], names: Sequence[str], source: str, whose: str) -> list[int]:
    """Positions of ``names`` in ``header``; an error lists those that are missing."""
    missing = [c for c in names if c not in header]
    if missing:
        raise DataFormatError(f"{source}: the {whose} column(s) {list(missing[:5])} are not in the header "
                              f"({len(missing)} of {len(names)} missing; the header: {list(header[:10])})")
    return [list(header).index(c) for c in names]


def _parse_rows(source: str, lines: list[str], first: int, header: list[str], use: list[int],
                labels: Optional[set[int]] = None, allow_missing: bool = False,
                missing_hint: str = MISSING_HINT, training: Optional[bool] = None) -> tuple[np.ndarray, np.ndarray]:
    """The numbers of columns ``use`` of every non-blank line after the header: ``(data (N, len(use))
    float64, the file line of each row (N,))``. ``labels`` (positions) shape the error messages, are never
    missing and may hold true / false. With ``allow_missing`` a missing feature value
    (:data:`MISSING_MARKERS`) is read as NaN; else its error adds ``missing_hint``. ``training`` (default:
    whether ``labels`` are given): a text feature's error says how to leave its column out of training."""
    training = labels is not None if training is None else training
    n_col = len(header)
    body = lines[first + 1:]
    keep = [i for i, ln in enumerate(body) if ln.strip()]
    if not keep:
        raise DataFormatError(f"{source}: no data rows after the header (line {first + 1})")
    rows_text = [body[i] for i in keep]
    # Bulk path: plain numeric fields; anything else falls back to a per-field parse that
    # names the offending line and column.
    data = None
    if not any('"' in ln for ln in lines):
        counts = np.fromiter((r.count(",") + 1 for r in rows_text), dtype=np.int64, count=len(rows_text))
        wrong = counts != n_col
        if wrong.any():
            k = int(np.argmax(wrong))
            raise DataFormatError(
                f"{source}:{first + 2 + keep[k]}: expected {n_col} fields (as in the header), found {counts[k]}"
            )
        try:
            flat = np.fromstring(",".join(rows_text), dtype=np.float64, sep=",")
            if flat.size == n_col * len(rows_text):
                data = flat.reshape(len(rows_text), n_col)[:, use]
        except ValueError:
            data = None
    if data is None:
        data = np.zeros((len(rows_text), len(use)), dtype=np.float64)
        for k, fields in enumerate(csv.reader(rows_text)):
            where = f"{source}:{first + 2 + keep[k]}"
            if len(fields) != n_col:
                raise DataFormatError(f"{where}: expected {n_col} fields (as in the header), found {len(fields)}")
            for i, j in enumerate(use):
                v = fields[j]
                try:
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
                    elif training and v.strip():
                        hint = ("; features must be numbers: leave out an id or text column with --dataset.ignore_columns, "
                                "or one-hot encode a categorical one first (e.g. pandas.get_dummies)")
                    raise DataFormatError(f"{where}: {what} in column {header[j]!r}{hint}") from None
    line_of = np.asarray([first + 2 + i for i in keep], dtype=np.int64)
    where = first_unrepresentable(data, allow_nan=allow_missing)  # 'nan', 'inf' and '1e39' parse as floats
    if where is not None:
        r, c = where
        hint = ""
        if np.isnan(data[r, c]):
            hint = " (labels cannot be missing)" if labels and use[c] in labels else f" (a missing value? {missing_hint})"
        raise DataFormatError(
            f"{source}:{line_of[r]}: value {data[r, c]:g} in column {header[use[c]]!r} is not a finite number "
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
               labels: Sequence[str] = ()) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A delimited file with a header row and numeric rows: ``(header, data (N, C) float64, the file line
    of each row (N,))``. Errors name the line and column.

    Args:
        columns: the names of the columns to read, in this order (``header`` is then ``columns``); only
            these must be numeric, so a file may carry other columns (an id, a text field). Default: all.
        whose: says where ``columns`` come from in the message when some are missing.
        allow_missing: read a missing value (an empty field, ``?``, ``NA``, ``nan``, ...) as NaN;
            else it is an error whose message adds ``missing_hint``.
        labels: the names among ``columns`` that are 0/1 label columns: true / false are read there, a
            missing value never is, and an error says what a label value must be.
    """
    source, lines, first, header = _table_lines(path, delimiter)
    use = list(range(len(header))) if columns is None else column_positions(header, columns, source, whose)
    data, line_of = _parse_rows(source, lines, first, header, use, labels={header.index(n) for n in labels},
                                allow_missing=allow_missing, missing_hint=missing_hint, training=False)
    return [header[j] for j in use], data, line_of


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


def read_csv(path: PathType, label_columns: Sequence[str] | int, *, ignore_columns: Sequence[str] = (),
             label_sep: Optional[str] = None, label_names: Optional[Sequence[str]] = None,
             name: str = "", delimiter: str = ",", allow_missing: bool = False) -> MultiLabelDataset:
    """Read a comma- (or ``delimiter``-) separated file with a header row; every value read must be numeric.

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

    Returns:
        MultiLabelDataset: features (N, F) float32 (the other columns in file order), labels (N, L) uint8.

    Raises:
        DataFormatError: no header, unknown/duplicate column names, ragged or empty fields,
            non-numeric values, labels other than 0/1 (with line and column).
    """
    path = Path(path)
    source, lines, first, header = _table_lines(path, delimiter)
    ignored = set(column_positions(header, ignore_columns, source, "ignored"))
    if isinstance(label_columns, (list, tuple)):
        both = [c for c in label_columns if c in ignore_columns]
        if both:
            raise ValueError(f"{source}: column(s) {both} are named both as labels and as ignored")
    kept = [j for j in range(len(header)) if j not in ignored]
    lab = [kept[i] for i in _label_indices([header[j] for j in kept], label_columns, source)]
    feat = [j for j in kept if j not in set(lab)]
    if label_sep is not None:
        if len(lab) != 1:
            raise ValueError(f"{source}: with dataset.label_sep, dataset.label_columns names the one column that "
                             f"lists the labels; got {len(lab)} columns")
        if not label_sep:
            raise ValueError(f"{source}: dataset.label_sep is empty; give the string between label names (';')")
        data, line_of = _parse_rows(source, lines, first, header, feat, labels=set(), allow_missing=allow_missing)
        body = [ln for ln in lines[first + 1:] if ln.strip()]
        names, y = label_matrix([fields[lab[0]] for fields in csv.reader(body)], label_sep, label_names,
                                where=[f"{source}:{n}" for n in line_of])
        if not names:
            raise DataFormatError(f"{source}: column {header[lab[0]]!r} lists no label on any row")
        return MultiLabelDataset(features=data.astype(np.float32), labels=y, label_names=names,
                                 feature_names=[header[j] for j in feat], source=source,
                                 name=name or _default_name(path))
    data, line_of = _parse_rows(source, lines, first, header, feat + lab, labels=set(lab), allow_missing=allow_missing)
    y = label_columns_checked(data[:, len(feat):], [header[j] for j in lab], [f"{source}:{n}" for n in line_of])
    return MultiLabelDataset(
        features=data[:, :len(feat)].astype(np.float32),
        labels=y,
        label_names=[header[j] for j in lab],
        feature_names=[header[j] for j in feat],
        source=source,
        name=name or _default_name(path),
    )
