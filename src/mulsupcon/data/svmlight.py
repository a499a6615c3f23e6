"""Reader for multi-label data in the svmlight / LIBSVM text format, and in the Extreme Classification
Repository's variant of it (the format of the LIBSVM multi-label page and of most extreme-classification
benchmarks).

One row per line::

    3,17,42 0:0.5 7:1 1836:0.25      <- the row's label ids, then index:value of its non-zero features
    5:1 9:2                          <- a row without labels starts with its features

Blank lines and everything after ``#`` are skipped. The Extreme Classification Repository puts one
header line ``N F L`` (rows, features, labels) first; it is recognised, and the file must then hold N
rows, feature indices below F and label ids below L.

* **Features**: column k is the feature of index k *as written*. LIBSVM files count from 1, the
  repository's from 0; no index is shifted, so neither convention can be mistaken for the other (a 1-based
  file has an empty column 0, which standardisation leaves at 0). Without a header there are as many
  columns as the largest index + 1. They are named ``f0, f1, ...`` (by position, like an ``.npy``). A file
  whose rows are mostly zero stays a float32 ``scipy.sparse.csr_matrix`` (scaled, not centred, like a
  sparse ARFF); one with more than a third of its values non-zero, where CSR would take more memory than
  an array, becomes a dense float32 array (centred and scaled, like the same data in a CSV or dense ARFF).
* **Labels**: non-negative integer ids, named by their digits (``"3"``, ``"17"``). The labels are the
  ids ``0 ... L-1`` of a header, otherwise the ids found, sorted by value; a test file read with its
  training file's (:func:`read_dataset <mulsupcon.data.user_files.read_dataset>`) adds the ids only it
  has, as labels without a training positive.

Parsing is scikit-learn's ``load_svmlight_file``. Its errors do not say where, so on any problem the
file is read again line by line to name the line (and the token) at fault.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from mulsupcon.data.arff import (_FLOAT32_MAX, MISSING_HINT, DataFormatError, PathType, _default_name, format_suffix,
                                 open_binary)
from mulsupcon.data.dataset import MultiLabelDataset

__all__ = ["SUFFIXES", "is_svmlight", "read_svmlight", "read_svmlight_features", "ids_in_order"]

SUFFIXES = (".svm", ".svmlight", ".libsvm")
"""File suffixes always read in this format; a ``.txt`` file is when its first line looks so (:func:`is_svmlight`)."""

_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s+(\d+)\s*")
_FEATURE = re.compile(rb"\d+:\S+")
_DENSE_ABOVE = 1 / 3  # a CSR entry takes 12 bytes (int64 index, float32 value), an array's 4


def _data_line(line: bytes) -> list[bytes]:
    """The tokens of one line without its comment (empty for a blank or comment-only line)."""
    hash_at = line.find(b"#")
    return (line if hash_at < 0 else line[:hash_at]).split()


def _first_tokens(path: PathType) -> tuple[Optional[tuple[int, int, int]], list[bytes]]:
    """(the header ``(N, F, L)`` or None, the tokens of the first data row or [])."""
    header = None
    with open_binary(path) as f:
        for i, line in enumerate(f):
            tokens = _data_line(line)
            if not tokens:
                continue
            if header is None and i == 0 and _HEADER.fullmatch(line.rstrip(b"\r\n")):
                header = tuple(int(t) for t in tokens)
                continue
            return header, tokens
    return header, []


def is_svmlight(path: PathType) -> bool:
    """Whether ``path`` is in this format: an svmlight suffix, or a ``.txt`` file whose first line is a header
    ``N F L`` or a row (``ids index:value ...``: every token after the first is ``index:value``)."""
    suffix = format_suffix(Path(path))
    if suffix != ".txt":
        return suffix in SUFFIXES
    try:
        header, tokens = _first_tokens(path)
    except (OSError, EOFError, ValueError):
        return False  # not readable as text here: the table reader says why
    if header is not None:
        return True
    rest = tokens if tokens and b":" in tokens[0] else tokens[1:]
    return bool(rest) and all(_FEATURE.fullmatch(t) for t in rest)


@dataclass
class _Parsed:
    x: sp.csr_matrix  # (N, F) float32
    ids: list[tuple[float, ...]]  # each row's label ids, as scikit-learn parses them
    header: Optional[tuple[int, int, int]]


def _parse(path: Path, n_features: Optional[int], whose: str, allow_missing: bool, label_ids: bool = True) -> _Parsed:
    from sklearn.datasets import load_svmlight_file

    header, _ = _first_tokens(path)
    if header is not None:
        if n_features is None:
            n_features = header[1]
        elif header[1] != n_features:
            raise DataFormatError(f"{path}: line 1: the header gives {header[1]} features, but {whose} has {n_features}")
    with open_binary(path) as f:
        if header is not None:
            f.readline()
        try:
            x, ids = load_svmlight_file(f, n_features=n_features, dtype=np.float32, multilabel=True, zero_based=True)
        except (ValueError, OverflowError) as err:  # the message names no line: find it
            raise _located(path, n_features=n_features, whose=whose, allow_missing=allow_missing, label_ids=label_ids) or \
                DataFormatError(f"{path}: {err}") from None
    blank = _inner_blank_line(path)
    if blank is not None:
        raise DataFormatError(f"{path}: line {blank} is blank, but rows follow it. A row with neither labels nor features "
                              "is written so (scikit-learn's dump_svmlight_file writes one), and this format cannot tell "
                              "it from a blank line, so its rows would shift; remove the line, or give the row an "
                              "explicit zero (0:0)")
    x = sp.csr_matrix(x)
    if x.shape[0] == 0:
        raise DataFormatError(f"{path}: no rows (every line is blank or a comment)")
    if header is not None and x.shape[0] != header[0]:
        raise DataFormatError(f"{path}: the header (line 1) gives {header[0]} rows, but the file holds {x.shape[0]} "
                              "(a truncated file?)")
    if (not allow_missing and np.isnan(x.data).any()) or np.isinf(x.data).any():
        # float32 turned a value beyond its range into inf: the line names it as written
        raise _located(path, n_features=n_features, whose=whose, allow_missing=allow_missing, label_ids=label_ids) or \
            DataFormatError(f"{path}: a feature value is not a finite float32")
    return _Parsed(x, ids, header)


def _densest(x: sp.csr_matrix) -> sp.csr_matrix | np.ndarray:
    n, f = x.shape
    return x.toarray() if n * f and x.nnz > _DENSE_ABOVE * n * f else x


def ids_in_order(names: Sequence[str]) -> list[str]:
    """Label ids (digit strings) sorted by value: ``["10", "2"] -> ["2", "10"]``."""
    return sorted(names, key=int)


def read_svmlight(path: PathType, *, name: str = "", label_names: Optional[Sequence[str]] = None,
                  n_features: Optional[int] = None, whose: str = "the training file",
                  allow_missing: bool = False) -> MultiLabelDataset:
    """The rows of an svmlight / LIBSVM / Extreme Classification Repository file (see the module docstring).

    ``label_names``: the label columns, ids as digit strings (a model's, or those of a training and a test
    file together); an id in the file that is not among them is an error naming its line. ``n_features``:
    the number of feature columns (a model's, or the larger of two files'); an index at or above it is an
    error naming its line (``whose`` names who has that many). NaN is a missing value, refused unless
    ``allow_missing``.

    Returns:
        MultiLabelDataset: features (N, F) float32 (CSR, or an array where more than a third is
        non-zero), labels (N, L) uint8, label names the ids, feature names ``f0 ...``.
    """
    path = Path(path)
    parsed = _parse(path, n_features, whose, allow_missing)
    counts = np.fromiter((len(t) for t in parsed.ids), dtype=np.int64, count=len(parsed.ids))
    flat = np.fromiter(chain.from_iterable(parsed.ids), dtype=np.float64, count=int(counts.sum()))
    n_labels = None if parsed.header is None else parsed.header[2]
    bad = (flat < 0) | (flat != np.floor(flat)) | (np.zeros_like(flat, bool) if n_labels is None else flat >= n_labels)
    if bad.any():
        raise _located(path, n_labels=n_labels) or DataFormatError(f"{path}: label id {flat[bad][0]!r} is not valid")
    flat = flat.astype(np.int64)
    if label_names is not None:
        names = list(label_names)
        if not all(str(n).isdigit() for n in names):
            raise DataFormatError(f"{path}: an svmlight file gives labels as ids (0, 1, 2, ...), but the labels "
                                  f"expected are named {names[:5]}...")
    elif n_labels is not None:
        names = [str(i) for i in range(n_labels)]
    else:
        names = [str(i) for i in np.unique(flat)]
    known = np.array([int(n) for n in names], dtype=np.int64)
    order = np.argsort(known, kind="stable")
    at = np.searchsorted(known[order], flat)
    found = (at < len(known)) & (known[order][np.minimum(at, len(known) - 1)] == flat) if len(known) else \
        np.zeros(len(flat), bool)
    if not found.all():
        raise _located(path, known={str(i) for i in known}) or \
            DataFormatError(f"{path}: label id {flat[~found][0]} is not one of the labels")
    y = np.zeros((len(parsed.ids), len(names)), dtype=np.uint8)
    y[np.repeat(np.arange(len(parsed.ids)), counts), order[at]] = 1
    x = _densest(parsed.x)
    return MultiLabelDataset(features=x, labels=y, label_names=names,
                             feature_names=[f"f{k}" for k in range(x.shape[1])], source=str(path),
                             name=name or _default_name(path))


def read_svmlight_features(path: PathType, n_features: int, *, whose: str = "the model",
                           allow_missing: bool = False) -> sp.csr_matrix | np.ndarray:
    """The (N, ``n_features``) float32 features of an svmlight file, its label ids not used (as ``predict``
    needs them: rows to score, whatever ids they carry; scikit-learn still reads each as a number)."""
    return _densest(_parse(Path(path), n_features, whose, allow_missing, label_ids=False).x)


# ----------------------------------------------------------------------------- naming the line at fault
_BLANK = re.compile(rb"^[ \t\r\f\v]*\n", re.MULTILINE)
_CHUNK = 1 << 26  # bytes read at a time


def _inner_blank_line(path: Path) -> Optional[int]:
    """The number of the first blank line with a row after it, or None (scikit-learn skips blank lines)."""
    lines_before, carry, blank_at = 0, b"", None  # carry: the unfinished last line of the chunk before
    with open_binary(path) as f:
        while chunk := f.read(_CHUNK):
            text = carry + chunk  # starts at the start of a line
            after = 0
            if blank_at is None:
                match = _BLANK.search(text)
                if match is not None:
                    blank_at = lines_before + text.count(b"\n", 0, match.start()) + 1
                    after = match.end()
            if blank_at is not None and text[after:].strip():
                return blank_at
            cut = text.rfind(b"\n") + 1
            lines_before += text.count(b"\n", 0, cut)
            carry = text[cut:]
    return None


def _rows(path: Path) -> Iterator[tuple[int, list[bytes], list[bytes]]]:
    """(line number, label tokens, feature tokens) of every data row."""
    with open_binary(path) as f:
        for number, line in enumerate(f, start=1):
            tokens = _data_line(line)
            if not tokens or (number == 1 and _HEADER.fullmatch(line.rstrip(b"\r\n"))):
                continue
            if b":" in tokens[0]:
                yield number, [], tokens
            else:
                yield number, tokens[0].split(b","), tokens[1:]


def _located(path: Path, *, n_features: Optional[int] = None, whose: str = "", allow_missing: bool = False,
             n_labels: Optional[int] = None, known: Optional[set[str]] = None,
             label_ids: bool = True) -> Optional[DataFormatError]:
    """The first problem of the file, named by its line, or None where the line-by-line reading finds none.
    ``label_ids``: whether the labels are used (else a label field need only be numbers, as scikit-learn reads it)."""
    for number, ids, features in _rows(path):
        where = f"{path}: line {number}"
        for token in ids:
            text = token.decode(errors="replace")
            if not label_ids:  # not used; scikit-learn still parses each as a number
                try:
                    float(text)
                    continue
                except ValueError:
                    return DataFormatError(f"{where}: the label field {token.decode(errors='replace')!r} is not numbers "
                                           "separated by commas (the ids are not used here, but must be readable)")
            if not text.isdigit():
                return DataFormatError(f"{where}: label id {text!r} is not a non-negative integer (a row starts with its "
                                       "label ids separated by commas, e.g. 3,17,42, then index:value pairs)")
            if n_labels is not None and int(text) >= n_labels:
                return DataFormatError(f"{where}: label id {text}, but the header (line 1) gives {n_labels} labels "
                                       f"(ids 0 to {n_labels - 1})")
            if known is not None and text not in known:
                return DataFormatError(f"{where}: label id {text} is not one of the {len(known)} labels of the model")
        last = -1
        for k, token in enumerate(features, start=1):
            text = token.decode(errors="replace")
            if k == 1 and text.startswith("qid:"):
                continue
            index, colon, value = text.partition(":")
            if not colon or not index.isdigit():
                return DataFormatError(f"{where}: {text!r} (feature {k} of the row) is not index:value with a "
                                       "non-negative integer index")
            if int(index) <= last:
                return DataFormatError(f"{where}: feature index {index} comes after {last}; the indices of a row must "
                                       "increase")
            last = int(index)
            if n_features is not None and last >= n_features:
                return DataFormatError(f"{where}: feature index {last}, but {whose} has {n_features} features "
                                       f"(indices 0 to {n_features - 1})")
            try:
                number_value = float(value)
            except ValueError:
                return DataFormatError(f"{where}: feature {index} has the value {value!r}, which is not a number")
            if math.isnan(number_value) and not allow_missing:
                return DataFormatError(f"{where}: feature {index} is missing ({value!r}); {MISSING_HINT}")
            if math.isinf(number_value) or abs(number_value) > _FLOAT32_MAX:
                return DataFormatError(f"{where}: feature {index} has the value {value}, which is not a finite "
                                       "float32 number")
    return None
