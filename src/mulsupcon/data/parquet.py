"""Reader for Parquet tables (the optional extra ``mulsupcon[parquet]``: pandas with pyarrow).

A Parquet file is read as a CSV with the same options, meaning the same: ``label_columns`` (names, or the
last N columns), ``ignore_columns``, ``categorical_columns`` (text one-hot encoded into ``COLUMN=VALUE``
columns, :func:`~.formats.one_hot_encode`) and ``label_sep`` (one label column lists names, ``cat;dog``).
A label column of lists (Parquet's list type, ``["cat", "dog"]``) is read as names without ``label_sep``.
Number and boolean columns are features; a text column not named categorical is an error that says so.
A missing value (null, NaN) is an error naming its row and column unless ``allow_missing``. Rows are
named ``FILE: row R``, R counting the data rows from 1.

``predict`` and ``evaluate --input`` read such a file as a pandas DataFrame, whose columns the model finds
by name (:meth:`mulsupcon.TrainedModel.predict_proba`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mulsupcon.data.arff import DataFormatError, PathType, _default_name
from mulsupcon.data.dataset import MultiLabelDataset
from mulsupcon.data.formats import (CATEGORY_SEP, _label_indices, cell_text, column_positions, first_unrepresentable,
                                    label_columns_checked, label_matrix, multi_hot, one_hot_encode)

__all__ = ["read_frame", "read_parquet", "is_list_column", "listed_labels", "label_block"]


def read_frame(path: PathType) -> Any:
    """The Parquet file at ``path`` as a pandas DataFrame, its column names as text."""
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' Parquet engine; named here so that its absence says what to install)
    except ImportError:
        raise ImportError(f"{path}: reading Parquet needs pandas and pyarrow: pip install 'mulsupcon[parquet]'") from None
    try:
        frame = pd.read_parquet(path)
    except MemoryError:
        raise
    except Exception as err:  # OSError, and pyarrow's own (ArrowInvalid, ...), which share no base with ours
        raise DataFormatError(f"{path}: cannot be read as Parquet ({type(err).__name__}: {err})") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def is_list_column(column: Any) -> bool:
    """Whether a DataFrame column holds lists (Parquet's list type): each row's label names."""
    first = next((v for v in column if v is not None), None)
    return isinstance(first, (list, tuple, np.ndarray))


def listed_labels(column: Any, label_sep: Optional[str], label_names: Optional[Sequence[str]],
                  where: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """A column that lists each row's label names, as lists or as text separated by ``label_sep``:
    ``(names (L), labels (N, L) uint8)`` (``label_names`` fixes them; another name is an error at its row)."""
    if is_list_column(column):
        rows = [[t for t in (cell_text(x).strip() for x in (v if v is not None else ())) if t] for v in column]
        return multi_hot(rows, label_names, where=where)
    if label_sep is None:
        raise DataFormatError(f"{where[0]}: the label column holds {column.dtype} values, not lists of names; give "
                              "--dataset.label_sep for names separated by it")
    return label_matrix([cell_text(v) for v in column], label_sep, label_names, where=where)


def _numbers(column: Any, name: str, where: Sequence[str]) -> np.ndarray:
    """A column of numbers, booleans or number text (as a CSV's) as float64 (N,), a null as NaN; other text is
    an error naming its first row."""
    import pandas as pd

    if getattr(column.dtype, "kind", "O") in "biuf":  # pandas' nullable Int64 and boolean too
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    text = [cell_text(v).strip() for v in column]
    numbers = pd.to_numeric(pd.Series(text, dtype=object).replace("", None), errors="coerce").to_numpy(np.float64)
    bad = next((i for i, (t, v) in enumerate(zip(text, numbers)) if t and np.isnan(v) and t.lower() != "nan"), None)
    if bad is not None:
        raise DataFormatError(f"{where[bad]}: column {name!r} holds {text[bad]!r}, not a number: name it in "
                              "--dataset.categorical_columns to one-hot encode it, or in --dataset.ignore_columns to "
                              "leave it out")
    return numbers


def label_block(block: Any, where: Sequence[str]) -> np.ndarray:
    """0/1 label columns of a DataFrame (numbers, booleans, or text "0"/"1"/"true"/"false") as (N, L) uint8;
    an empty cell or another value is an error naming ``where[row]`` and the column."""
    names = [str(c) for c in block.columns]
    null = block.isna().to_numpy()
    if null.any():
        r, c = np.argwhere(null)[0]
        raise DataFormatError(f"{where[r]}: label column {names[c]!r} is empty; a label is never missing (0 or 1)")
    numeric = all(getattr(block[c].dtype, "kind", "O") in "biuf" for c in block.columns)
    values = block.to_numpy(dtype=np.float64) if numeric else block.astype(str).to_numpy()
    return label_columns_checked(values, names, where)


def read_parquet(path: PathType, label_columns: Sequence[str] | int, *, ignore_columns: Sequence[str] = (),
                 categorical_columns: Sequence[str] = (), categories: Optional[Mapping[str, Sequence[str]]] = None,
                 label_sep: Optional[str] = None, label_names: Optional[Sequence[str]] = None,
                 allow_missing: bool = False, name: str = "") -> MultiLabelDataset:
    """A Parquet table as a dataset (see the module docstring; the options as :func:`~.formats.read_csv`'s).

    Returns:
        MultiLabelDataset: features (N, F) float32 in column order (a categorical column's one-hot columns
        in its place), labels (N, L) uint8.
    """
    path = Path(path)
    frame = read_frame(path)
    source, header = str(path), list(frame.columns)
    if len(frame) == 0:
        raise DataFormatError(f"{source}: no rows")
    where = [f"{source}: row {i + 1}" for i in range(len(frame))]
    ignored = set(column_positions(header, ignore_columns, source, "ignored"))
    categorical = set(column_positions(header, categorical_columns, source, "categorical"))
    kept = [j for j in range(len(header)) if j not in ignored]
    lab = [kept[i] for i in _label_indices([header[j] for j in kept], label_columns, source)]
    if categorical & set(lab):
        raise ValueError(f"{source}: column(s) {sorted(header[j] for j in categorical & set(lab))} are named both as "
                         "labels and as categorical features")

    listed = len(lab) == 1 and is_list_column(frame.iloc[:, lab[0]])
    if label_sep is not None or listed:
        if len(lab) != 1:
            raise ValueError(f"{source}: with dataset.label_sep, dataset.label_columns names the one column that lists "
                             f"the labels; got {len(lab)} columns")
        names, y = listed_labels(frame.iloc[:, lab[0]], label_sep, label_names, where)
    else:
        names = [header[j] for j in lab]
        y = label_block(frame.iloc[:, lab], where)

    blocks, feature_names, made = [], [], []
    for j in (j for j in kept if j not in lab):
        column = frame.iloc[:, j]
        if j in categorical:
            values, encoded = one_hot_encode([cell_text(v) for v in column], header[j], where, allow_missing=allow_missing,
                                             values=None if categories is None else categories[header[j]])
            blocks.append(encoded)
            made += [f"{header[j]}{CATEGORY_SEP}{v}" for v in values]
            feature_names += made[len(made) - len(values):]
        else:
            blocks.append(_numbers(column, header[j], where)[:, None])
            feature_names.append(header[j])
    if not blocks:
        raise DataFormatError(f"{source}: no feature column (every column is a label or ignored)")
    clash = next((n for n in made if n in header), None)
    if clash is not None:
        raise DataFormatError(f"{source}: one-hot encoding makes a column {clash!r}, the name of another column of "
                              "the file; rename one of them")
    x = np.hstack(blocks)
    bad = first_unrepresentable(x, allow_nan=allow_missing)
    if bad is not None:
        r, c = bad
        what = "is missing (null or NaN)" if np.isnan(x[r, c]) else f"holds {x[r, c]:g}, not a finite float32 number"
        hint = "; --dataset.missing mean (or median, most_frequent) fills missing values" if np.isnan(x[r, c]) else ""
        raise DataFormatError(f"{where[r]}: column {feature_names[c]!r} {what}{hint}")
    return MultiLabelDataset(features=x.astype(np.float32), labels=y, label_names=names, feature_names=feature_names,
                             source=source, name=name or _default_name(path))
