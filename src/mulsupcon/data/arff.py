"""Readers for multi-label ARFF files (Mulan and MEKA conventions) and Mulan label XML files.

``read_arff`` returns a :class:`~mulsupcon.data.dataset.MultiLabelDataset`:

* Rows in **sparse** ARFF format (``{index value, ...}``) give a ``scipy.sparse.csr_matrix``
  of float32 features; dense rows give a float32 ``numpy`` array of shape (N, F).
  Labels are always an (N, L) ``uint8`` matrix.
* **Which attributes are labels.**  ``labels=None`` with ``xml=...``: the names in the Mulan
  ``.xml`` file, as label columns in *file* order (the XML is a set: yeast.xml lists its
  labels shuffled).  ``labels=None`` without ``xml``: the MEKA convention,
  ``-C n`` in the ``@relation`` name means the *first* ``n`` attributes are labels
  (``-C -n``: the *last* ``n``).  ``labels=[names]``: those attributes, wherever they are, in
  the given order.  ``labels=n`` (int): the last ``n`` attributes.
* **Label attributes** must be numeric or nominal with values that read as 0 or 1; any row
  value other than 0/1 is an error naming the file, line and attribute.
* **Feature attributes**: ``numeric``/``real``/``integer`` give one column each; nominal
  attributes ``{a,b,c}`` are one-hot encoded into columns named ``attr=a``, ``attr=b``, ...
  (two-valued ones such as ``{YES,NO}`` too), EXCEPT nominal attributes whose values are
  exactly the numbers 0 and 1 (``{0,1}``, the usual Mulan/MEKA binary feature): those stay
  one 0/1 column named ``attr``, so sparse files stay sparse and keep their feature counts.
  ``string`` and ``date`` attributes are dropped with a ``warnings.warn`` notice naming
  them.  Any other type (e.g. ``relational``) is an error.
* **Sparse nominal values**: an omitted entry means internal value 0, i.e. the *first*
  declared nominal value (ARFF specification), for features and labels alike.
* **Missing values** ``?``: in a label they are always an error.  In a feature the policy is
  the ``missing`` argument: ``"error"`` (default) raises :class:`DataFormatError` naming the
  file, line and attribute, so NaNs never slip into training silently; ``"zero"`` stores 0
  (a missing nominal value gives an all-zero one-hot group); ``"nan"`` stores NaN (a missing
  nominal value gives NaN in every column of its one-hot group).  A quoted ``'?'`` is also
  read as missing.
* **Non-finite values**: ``NaN``/``inf`` written as text, and numbers float32 cannot hold
  (``1e400``, ``1e39``), are errors naming the line and attribute (ARFF's missing value is ``?``).
* **Line ends**: LF, CR LF and lone CR (old Mac files) are all accepted, as is a UTF-8 byte order
  mark; line numbers in messages are those an editor shows.
* **A label XML that forgets labels**: unlisted attributes that look like labels (the labels' type,
  between or after the listed ones, or numbered like them) are read as features with a warning
  naming them.
* ``.gz``, ``.bz2`` and ``.xz`` files are decompressed transparently, recognised by their
  magic bytes (so a compressed file with a plain name also works).

Speed: the data section is parsed in bulk with numpy (``np.fromstring`` over the whole
buffer) whenever every value is numeric (or a nominal value whose names are numbers, such as
``{0,1}``), so a 120,919-row sparse file loads in seconds with no Python object per cell.
Files holding non-numeric nominal values or quoted values take a slower per-line path that
produces the same result.

Every malformed input raises :class:`DataFormatError` (a ``ValueError``) naming the file and,
where there is one, the line and attribute.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import BinaryIO, Sequence, Union

import numpy as np
import scipy.sparse as sp

from mulsupcon.data.dataset import MultiLabelDataset

PathType = Union[str, "PathLike[str]"]

__all__ = [
    "DataFormatError",
    "read_arff",
    "read_mulan_xml",
    "read_bytes",
    "open_binary",
    "format_suffix",
    "ArffAttribute",
    "ArffHeader",
    "parse_arff_header",
]

_MISSING_POLICIES = ("error", "zero", "nan")


class DataFormatError(ValueError):
    """A data file does not have the expected format (the message names file, line, attribute)."""


# ----------------------------------------------------------------------------- file access
_MAGIC = ((b"\x1f\x8b", gzip), (b"BZh", bz2), (b"\xfd7zXZ\x00", lzma))  # how each compression starts


def _compression(head: bytes):
    """The module (gzip, bz2, lzma) that decompresses a file starting with ``head``, or None."""
    return next((module for magic, module in _MAGIC if head.startswith(magic)), None)


def read_bytes(path: PathType) -> bytes:
    """Whole content of ``path``, decompressed when it is gzip, bzip2 or xz.

    The compression is recognised by the magic bytes at the start of the file, so the suffix
    does not matter (``x.arff.bz2`` and a bzip2 file named ``x.arff`` both work).

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: the compressed stream is corrupt or truncated.
    """
    path = Path(path)
    raw = path.read_bytes()
    module = _compression(raw[:6])
    try:
        if module is not None:
            return module.decompress(raw)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:
        raise DataFormatError(f"{path}: cannot decompress ({type(exc).__name__}: {exc})") from exc
    _check_named_compression(path, raw)
    return raw


def open_binary(path: PathType) -> BinaryIO:
    """``path`` opened for reading bytes, line by line, decompressed on the fly when it is gzip, bzip2 or
    xz (recognised as :func:`read_bytes` does): for files too large to hold whole."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(6)
    module = _compression(head)
    if module is None:
        _check_named_compression(path, head)
        return open(path, "rb")
    return module.open(path, "rb")


def format_suffix(path: Path) -> str:
    """The suffix that names a file's format, past a compression suffix: ``data.csv.gz`` -> ``.csv``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _check_named_compression(path: Path, head: bytes) -> None:
    if path.suffix.lower() in (".gz", ".bz2", ".xz") and head:
        raise DataFormatError(
            f"{path}: the name ends in '{path.suffix}' but the content is not {path.suffix[1:]}-compressed"
        )


def _default_name(path: Path) -> str:
    """File name without data/compression suffixes: ``yeast-train.arff.bz2`` -> ``yeast-train``."""
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".arff", ".csv", ".npz", ".hdf5", ".h5", ".svm", ".svmlight", ".libsvm", ".txt",
                   ".parquet"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


# ----------------------------------------------------------------------------- Mulan XML
def read_mulan_xml(path: PathType) -> list[str]:
    """Label names, in document order, from a Mulan labels ``.xml`` file.

    Nested (hierarchical) ``<label>`` elements are all labels; XML namespaces are ignored.

    Returns:
        L label names.

    Raises:
        DataFormatError: the file is not well-formed XML, holds no label, a label has no
            ``name`` attribute, or a name occurs twice.
    """
    path = Path(path)
    try:
        root = ET.fromstring(read_bytes(path))
    except ET.ParseError as exc:
        raise DataFormatError(f"{path}: not a well-formed XML file ({exc})") from exc
    names: list[str] = []
    for elem in root.iter():
        tag = elem.tag.rsplit("}", 1)[-1]  # drop '{namespace}'
        if tag != "label":
            continue
        name = elem.get("name")
        if name is None:
            raise DataFormatError(f"{path}: a <label> element has no 'name' attribute")
        names.append(name)
    if not names:
        raise DataFormatError(f"{path}: no <label name=...> element found")
    dup = _first_duplicate(names)
    if dup is not None:
        raise DataFormatError(f"{path}: label '{dup}' is listed twice")
    return names


def _first_duplicate(names: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


# ----------------------------------------------------------------------------- header
@dataclass
class ArffAttribute:
    """One ``@attribute`` declaration.

    Attributes:
        name: attribute name (unquoted).
        kind: ``"numeric"``, ``"nominal"``, ``"string"`` or ``"date"``.
        values: the nominal values in declaration order (empty for other kinds).
        line: 1-based line of the declaration in the (decompressed) file.
    """

    name: str
    kind: str
    values: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class ArffHeader:
    """The header of an ARFF file: relation name, attributes, and where ``@data`` is."""

    relation: str
    attributes: list[ArffAttribute]
    data_line: int  # 1-based line number of the '@data' line
    data_offset: int  # byte offset just after the '@data' keyword


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.S)
# One comma-separated value: any run of quoted strings or characters other than quote/comma.
_VALUE = re.compile(r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,'"])*""", re.S)


def _unquote(token: str) -> str:
    """Strip and unquote one token: ``'a b'`` -> ``a b``; backslash escapes resolved."""
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])
    return token


def _split_values(text: str, where: str) -> list[str]:
    """Split ``text`` on commas outside quotes; tokens are stripped but still quoted."""
    if "'" not in text and '"' not in text:
        return [t.strip() for t in text.split(",")]
    out: list[str] = []
    pos = 0
    while True:
        m = _VALUE.match(text, pos)
        assert m is not None  # the pattern matches the empty string
        out.append(m.group(0).strip())
        pos = m.end()
        if pos >= len(text):
            break
        if text[pos] != ",":  # an unterminated quote stops the pattern early
            raise DataFormatError(f"{where}: unterminated quote near {text[pos:pos + 30]!r}")
        pos += 1
    return out


def _take_name(rest: str, where: str) -> tuple[str, str]:
    """Split ``rest`` into a (possibly quoted) leading name and what follows it."""
    rest = rest.strip()
    if not rest:
        raise DataFormatError(f"{where}: missing name")
    if rest[0] in "'\"":
        m = _QUOTED.match(rest)
        if m is None:
            raise DataFormatError(f"{where}: unterminated quoted name {rest[:40]!r}")
        return _unquote(m.group(0)), rest[m.end():].strip()
    # An unquoted name ends at whitespace (or at '{' which starts a nominal type).
    m = re.match(r"[^\s{]+", rest)
    assert m is not None
    return m.group(0), rest[m.end():].strip()


def _normalise_newlines(buf: bytes) -> bytes:
    """Drop a UTF-8 byte order mark and turn CR LF and lone CR (old Mac) line ends into LF.

    Every line end stays one line end, so the line numbers in messages are those an editor shows."""
    if buf.startswith(b"\xef\xbb\xbf"):
        buf = buf[3:]
    if b"\r" in buf:
        buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return buf


def parse_arff_header(buf: bytes, source: str = "") -> ArffHeader:
    """Parse the header (everything before ``@data``) of an ARFF file held in ``buf``.

    ``buf`` has LF line ends (``read_arff`` normalises CR LF, lone CR and a byte order mark first).

    Raises:
        DataFormatError: empty file, no ``@data`` line, no attribute, duplicate attribute
            names, an unknown attribute type or an unknown ``@`` keyword (with the line).
    """
    if not buf.strip():
        raise DataFormatError(f"{source}: the file is empty")
    m = re.search(rb"(?im)^[ \t]*@data\b[^\n]*", buf)
    if m is None:
        raise DataFormatError(f"{source}: no '@data' line: not an ARFF file or a truncated header")
    head = buf[: m.start()]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    relation = ""
    attributes: list[ArffAttribute] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        s = line.strip()
        if not s or s.startswith("%"):
            continue
        where = f"{source}:{lineno}"
        low = s.lower()
        if low.startswith("@relation"):
            relation = _unquote(s[len("@relation"):])
        elif low.startswith("@attribute"):
            name, rest = _take_name(s[len("@attribute"):], where)
            attributes.append(_parse_type(name, rest, lineno, where))
        elif low.startswith("@end"):
            raise DataFormatError(f"{where}: '@end' outside a relational attribute (unsupported)")
        else:
            raise DataFormatError(f"{where}: expected '@relation', '@attribute' or '@data', found {s[:40]!r}")
    if not attributes:
        raise DataFormatError(f"{source}: no '@attribute' declared before '@data'")
    seen: dict[str, int] = {}
    for a in attributes:
        if a.name in seen:
            raise DataFormatError(
                f"{source}:{a.line}: duplicate attribute name '{a.name}' (first declared on line {seen[a.name]})"
            )
        seen[a.name] = a.line
    data_line = head.count(b"\n") + 1
    return ArffHeader(relation, attributes, data_line, m.end())


def _parse_type(name: str, rest: str, lineno: int, where: str) -> ArffAttribute:
    if rest.startswith("{"):
        end = rest.rfind("}")
        if end < 0:
            raise DataFormatError(f"{where}: nominal attribute '{name}' has no closing '}}'")
        inner = rest[1:end].strip()
        values = [_unquote(v) for v in _split_values(inner, where)] if inner else []
        if not values:
            raise DataFormatError(f"{where}: nominal attribute '{name}' declares no value")
        dup = _first_duplicate(values)
        if dup is not None:
            raise DataFormatError(f"{where}: nominal attribute '{name}' lists value '{dup}' twice")
        return ArffAttribute(name, "nominal", values, lineno)
    kind = rest.split(None, 1)[0].lower() if rest else ""
    if kind in ("numeric", "real", "integer"):
        return ArffAttribute(name, "numeric", [], lineno)
    if kind in ("string", "date"):
        return ArffAttribute(name, kind, [], lineno)
    raise DataFormatError(
        f"{where}: unknown type {rest[:30]!r} for attribute '{name}' "
        "(expected numeric, real, integer, string, date or {nominal values})"
    )


# ----------------------------------------------------------------------------- data section
@dataclass
class _Parsed:
    """The data section as numeric codes.

    A code is the value for numeric attributes, the 0-based index of the value for nominal
    attributes, 0 for string/date attributes, and NaN for a missing value.

    Dense: ``dense`` is (N, A) float64.  Sparse: ``rows``/``cols``/``codes`` are the (E,)
    explicit entries (omitted entries have code 0).
    """

    lines: np.ndarray  # (N,) 1-based file line of each row
    dense: np.ndarray | None = None
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    codes: np.ndarray | None = None

    @property
    def is_sparse(self) -> bool:
        return self.dense is None


def _data_lines(data: bytes, first_line: int) -> tuple[list[bytes], np.ndarray]:
    """Non-empty, non-comment lines of the data section (stripped) and their file line numbers."""
    raw = data.split(b"\n")
    keep: list[bytes] = []
    nums: list[int] = []
    for i, line in enumerate(raw):
        s = line.strip()
        if s and s[:1] != b"%":
            keep.append(s)
            nums.append(first_line + i)
    return keep, np.asarray(nums, dtype=np.int64)


def _normalise_ws(data: bytes) -> bytes:
    """Collapse whitespace so that bulk parsing sees ``{i v,j w}`` / ``a,b,c`` (quote-free data only)."""
    if b"\t" in data or b"\r" in data or b"  " in data:
        data = re.sub(rb"[ \t\r\f\v]+", b" ", data)
    if b" ," in data or b", " in data:
        data = re.sub(rb" ?, ?", b",", data)
    if b"{ " in data or b" }" in data:
        data = data.replace(b"{ ", b"{").replace(b" }", b"}")
    return data


def _numeric_nominal_floats(attr: ArffAttribute) -> np.ndarray | None:
    """The nominal values as floats when all are distinct numbers (``{0,1}``), else None."""
    vals = _floats_of(tuple(attr.values))
    return None if vals is None else vals.copy()


@functools.lru_cache(maxsize=256)
def _floats_of(values: tuple[str, ...]) -> np.ndarray | None:
    # Cached: files declare hundreds of attributes with the same value list.
    try:
        vals = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None
    if len(np.unique(vals)) != len(vals) or not np.isfinite(vals).all():
        return None
    return vals


def _parse_fast(
    lines: list[bytes], nums: np.ndarray, attrs: list[ArffAttribute], source: str
) -> _Parsed | None:
    """Bulk numeric parse of quote-free data; None when some value is not a number.

    Nominal values are parsed as numbers here and turned into value indices afterwards
    (only attempted when every nominal attribute has numeric value names).
    """
    n_attr = len(attrs)
    first = {ln[:1] for ln in lines}
    if first == {b"{"}:
        inner: list[bytes] = []
        counts = np.empty(len(lines), dtype=np.int64)
        for k, ln in enumerate(lines):
            if ln[-1:] != b"}":
                raise DataFormatError(
                    f"{source}:{nums[k]}: sparse row does not end with '}}' (truncated file or stray text?)"
                )
            body = ln[1:-1]
            if body.endswith(b",") or body.endswith(b" "):
                return None
            c = body.count(b",") + 1 if body else 0
            # Each entry must be exactly 'index value': one space per entry, else slow path.
            if body.count(b" ") != c:
                return None
            counts[k] = c
            inner.append(body)
        joined = b" ".join(b.replace(b",", b" ") for b in inner if b)
        joined = _missing_to_nan(joined)
        try:
            flat = np.fromstring(joined, dtype=np.float64, sep=" ") if joined else np.zeros(0)
        except (ValueError, DeprecationWarning):  # old numpy warns instead of raising
            return None
        if flat.size != 2 * counts.sum():
            return None
        if _has_non_finite(flat):
            return None  # the per-line path names the value, its line and attribute
        idx_f, codes = flat[0::2], flat[1::2]
        cols = idx_f.astype(np.int64)
        rows = np.repeat(np.arange(len(lines), dtype=np.int64), counts)
        fractional = cols != idx_f
        if fractional.any():
            e = int(np.argmax(fractional))
            raise DataFormatError(f"{source}:{nums[rows[e]]}: sparse index {idx_f[e]:g} is not an integer")
        bad = (cols < 0) | (cols >= n_attr)
        if bad.any():
            e = int(np.argmax(bad))
            raise DataFormatError(
                f"{source}:{nums[rows[e]]}: sparse index {idx_f[e]:g} out of range "
                f"(the file declares {n_attr} attributes, valid indices 0..{n_attr - 1})"
            )
        return _Parsed(nums, rows=rows, cols=cols, codes=codes)
    if b"{" in first:
        return None  # mixed sparse and dense rows: the general path handles them
    counts = np.fromiter((ln.count(b",") + 1 for ln in lines), dtype=np.int64, count=len(lines))
    wrong = counts != n_attr
    if wrong.any():
        k = int(np.argmax(wrong))
        raise DataFormatError(
            f"{source}:{nums[k]}: expected {n_attr} comma-separated values, found {counts[k]} "
            f"({'truncated row or file' if counts[k] < n_attr else 'too many values'})"
        )
    joined = _missing_to_nan(b" ".join(lines).replace(b",", b" "))
    try:
        flat = np.fromstring(joined, dtype=np.float64, sep=" ") if joined else np.zeros(0)
    except (ValueError, DeprecationWarning):  # old numpy warns (maybe as error) instead of raising
        return None
    if flat.size != n_attr * len(lines):
        return None  # empty fields or old numpy stopping early: let the slow path explain
    if _has_non_finite(flat):
        return None  # the per-line path names the value, its line and attribute
    return _Parsed(nums, dense=flat.reshape(len(lines), n_attr))


_FLOAT32_MAX = float(np.finfo(np.float32).max)
# What every reader's error about a missing feature value adds: the option that accepts them.
MISSING_HINT = ("--dataset.missing mean fills missing feature values with the training rows' column mean "
                "(or median, most_frequent)")


def missing_mode(allow_missing: bool) -> str:
    """The ``missing`` argument of :func:`read_arff` for a reader told ``allow_missing``: ``"nan"`` (read
    as NaN, filled in later by ``dataset.missing: mean``, ``median`` or ``most_frequent``) or ``"error"``."""
    return "nan" if allow_missing else "error"

# A NaN or infinity written as text (nan, NaN, inf, -Infinity): not ARFF, which writes '?' for missing.
_NON_FINITE_LITERAL = re.compile(rb"(?i)(?<![^ ,{\n])[+-]?(?:nan|inf)")


def _has_non_finite(flat: np.ndarray) -> bool:
    """Whether bulk-parsed values hold an infinity or a value float32 cannot hold (1e400, 1e39).

    NaN is fine here: it stands for '?' (``_missing_to_nan``); NaN *literals* never reach the bulk
    parse (``read_arff`` skips it for them)."""
    if flat.size == 0:
        return False
    # fmax/fmin skip NaN and allocate nothing (this runs over every value of big files).
    return bool(np.fmax.reduce(flat) > _FLOAT32_MAX or np.fmin.reduce(flat) < -_FLOAT32_MAX)


def _missing_to_nan(buf: bytes) -> bytes:
    """Replace each bare ``?`` value (missing) with ``nan`` so ``np.fromstring`` reads it."""
    if b"?" not in buf:
        return buf
    return re.sub(rb"(?<![^ ])\?(?![^ ])", b"nan", buf)


def _nominal_codes_from_floats(
    parsed: _Parsed, attrs: list[ArffAttribute], floats: dict[int, np.ndarray], source: str
) -> None:
    """Turn numeric-looking nominal values (fast path) into value indices, in place.

    Attributes sharing one value list (e.g. hundreds of ``{0,1}``) are converted together, so
    a sparse file costs one pass over its entries per distinct value list, not per attribute.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for a in floats:
        groups.setdefault(tuple(attrs[a].values), []).append(a)
    for members in groups.values():
        vals = floats[members[0]]
        order = np.argsort(vals)
        svals = vals[order]
        if parsed.is_sparse:
            member = np.zeros(len(attrs), dtype=bool)
            member[members] = True
            sel = np.flatnonzero(member[parsed.cols])
            v = parsed.codes[sel]
        else:
            v = parsed.dense[:, members]
        pos = np.clip(np.searchsorted(svals, v), 0, len(svals) - 1)
        ok = (svals[pos] == v) | np.isnan(v)
        if not ok.all():
            if parsed.is_sparse:
                e = int(np.argmax(~ok))
                row, a, bad = parsed.rows[sel[e]], int(parsed.cols[sel[e]]), v[e]
            else:
                row, k = np.argwhere(~ok)[0]
                a, bad = members[k], v[row, k]
            raise DataFormatError(
                f"{source}:{parsed.lines[row]}: value {bad:g} of nominal attribute '{attrs[a].name}' "
                f"is not one of its declared values {{{','.join(attrs[a].values)}}}"
            )
        idx = np.where(np.isnan(v), np.nan, order[pos].astype(np.float64))
        if parsed.is_sparse:
            parsed.codes[sel] = idx
        else:
            parsed.dense[:, members] = idx


def _code_of(token: str, attr: ArffAttribute, lookup: dict[str, int] | None, where: str) -> float:
    """Numeric code of one raw (possibly quoted) token, see :class:`_Parsed`."""
    value = _unquote(token)
    if value == "?" or token == "":
        if token == "":
            raise DataFormatError(f"{where}: empty value for attribute '{attr.name}'")
        return math.nan
    if attr.kind == "numeric":
        try:
            number = float(value)
        except ValueError:
            raise DataFormatError(
                f"{where}: attribute '{attr.name}' is numeric but the value is {value!r}"
            ) from None
        if math.isnan(number):
            raise DataFormatError(
                f"{where}: attribute '{attr.name}' has the value {value!r}: ARFF writes a missing value "
                "as '?' (which --dataset.missing mean then fills in; from Python, read_arff(..., missing='nan'))"
            )
        if not abs(number) <= _FLOAT32_MAX:
            raise DataFormatError(
                f"{where}: attribute '{attr.name}' has the value {value!r}, which is not a finite float32 "
                f"number (|x| <= {_FLOAT32_MAX:.3g}); features must be finite"
            )
        return number
    if attr.kind == "nominal":
        assert lookup is not None
        i = lookup.get(value)
        if i is None:
            raise DataFormatError(
                f"{where}: value {value!r} of nominal attribute '{attr.name}' is not one of its "
                f"declared values {{{','.join(attr.values)}}}"
            )
        return float(i)
    return 0.0  # string/date: dropped later


def _parse_slow(
    lines: list[bytes], nums: np.ndarray, attrs: list[ArffAttribute], source: str
) -> _Parsed:
    """Per-line parse handling quotes, nominal names and mixed sparse/dense rows."""
    n_attr = len(attrs)
    lookups = [{v: i for i, v in enumerate(a.values)} if a.kind == "nominal" else None for a in attrs]
    any_sparse = any(ln[:1] == b"{" for ln in lines)
    rows: list[int] = []
    cols: list[int] = []
    codes: list[float] = []
    dense = None if any_sparse else np.zeros((len(lines), n_attr), dtype=np.float64)
    for k, ln in enumerate(lines):
        where = f"{source}:{nums[k]}"
        try:
            text = ln.decode("utf-8")
        except UnicodeDecodeError:
            text = ln.decode("latin-1")
        if text.startswith("{"):
            if not text.endswith("}"):
                raise DataFormatError(f"{where}: sparse row does not end with '}}' (truncated file or stray text?)")
            body = text[1:-1].strip()
            seen: set[int] = set()
            for entry in _split_values(body, where) if body else []:
                parts = entry.split(None, 1)
                if len(parts) != 2:
                    raise DataFormatError(f"{where}: sparse entry {entry!r} is not 'index value'")
                try:
                    j = int(parts[0])
                except ValueError:
                    raise DataFormatError(f"{where}: sparse index {parts[0]!r} is not an integer") from None
                if not 0 <= j < n_attr:
                    raise DataFormatError(
                        f"{where}: sparse index {j} out of range (the file declares {n_attr} "
                        f"attributes, valid indices 0..{n_attr - 1})"
                    )
                if j in seen:
                    raise DataFormatError(f"{where}: sparse index {j} appears twice in the row")
                seen.add(j)
                rows.append(k)
                cols.append(j)
                codes.append(_code_of(parts[1], attrs[j], lookups[j], where))
        else:
            tokens = _split_values(text, where)
            if len(tokens) != n_attr:
                raise DataFormatError(
                    f"{where}: expected {n_attr} comma-separated values, found {len(tokens)} "
                    f"({'truncated row or file' if len(tokens) < n_attr else 'too many values'})"
                )
            vals = [_code_of(t, attrs[j], lookups[j], where) for j, t in enumerate(tokens)]
            if dense is not None:
                dense[k] = vals
            else:  # a dense row inside a sparse file: store its non-zero codes as entries
                for j, v in enumerate(vals):
                    if v != 0:
                        rows.append(k)
                        cols.append(j)
                        codes.append(v)
    if dense is not None:
        return _Parsed(nums, dense=dense)
    return _Parsed(
        nums,
        rows=np.asarray(rows, dtype=np.int64),
        cols=np.asarray(cols, dtype=np.int64),
        codes=np.asarray(codes, dtype=np.float64),
    )


def _check_sparse_duplicates(parsed: _Parsed, source: str) -> None:
    """Reject a sparse row that gives the same attribute twice (csr would silently add them)."""
    r, c = parsed.rows, parsed.cols
    if r.size < 2:
        return
    same_row = r[1:] == r[:-1]
    if not (c[1:][same_row] <= c[:-1][same_row]).any():
        return  # strictly increasing within rows: no duplicate possible
    order = np.lexsort((c, r))
    rs, cs = r[order], c[order]
    dup = (rs[1:] == rs[:-1]) & (cs[1:] == cs[:-1])
    if dup.any():
        e = int(np.argmax(dup))
        raise DataFormatError(f"{source}:{parsed.lines[rs[e]]}: sparse index {cs[e]} appears twice in the row")


# ----------------------------------------------------------------------------- label choice
def _meka_label_count(relation: str) -> int | None:
    m = re.search(r"(?:^|[\s:])-C\s+(-?\d+)", relation)
    return int(m.group(1)) if m else None


def _label_indices(
    attrs: list[ArffAttribute],
    labels: Sequence[str] | int | None,
    xml: PathType | None,
    relation: str,
    source: str,
) -> list[int]:
    n_attr = len(attrs)
    if labels is not None and xml is not None:
        raise ValueError(f"{source}: give either labels= or xml=, not both")
    from_xml = labels is None and xml is not None
    if from_xml:
        labels = read_mulan_xml(xml)
        origin = f"the label file {xml}"
    else:
        origin = "labels="
    if labels is None:
        n = _meka_label_count(relation)
        if n is None:
            raise DataFormatError(
                f"{source}: cannot tell which attributes are labels: the relation name {relation!r} "
                "has no MEKA '-C n'; pass labels= (names or a count) or xml= (a Mulan label file)"
            )
        if n == 0 or abs(n) >= n_attr:
            raise DataFormatError(
                f"{source}: the relation name says '-C {n}' but the file has {n_attr} attributes "
                "(need 1 <= |n| < number of attributes)"
            )
        return list(range(n)) if n > 0 else list(range(n_attr + n, n_attr))
    if isinstance(labels, (int, np.integer)) and not isinstance(labels, bool):
        n = int(labels)
        if not 1 <= n <= n_attr:
            raise ValueError(f"{source}: labels={n} but the file declares {n_attr} attributes (need 1..{n_attr})")
        return list(range(n_attr - n, n_attr))
    if isinstance(labels, str):
        raise TypeError(f"{source}: labels must be a list of names or an int, not the string {labels!r}")
    names = list(labels)
    position = {a.name: i for i, a in enumerate(attrs)}
    missing = [n for n in names if n not in position]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataFormatError(
            f"{source}: {len(missing)} label(s) named by {origin} are not attributes of the file: {shown}"
        )
    dup = _first_duplicate(names)
    if dup is not None:
        raise ValueError(f"{source}: label '{dup}' is named twice")
    if not names:
        raise ValueError(f"{source}: the label list is empty")
    idx = [position[n] for n in names]
    if from_xml:
        _warn_unlisted_labels(attrs, sorted(idx), xml, source)
    # A Mulan XML names a *set* of labels (yeast.xml lists them shuffled): keep file order.
    return sorted(idx) if from_xml else idx


def _warn_unlisted_labels(attrs: list[ArffAttribute], idx: list[int], xml: PathType, source: str) -> None:
    """Warn about attributes that look like labels the XML forgot (they would become features).

    An unlisted attribute with the labels' type (e.g. ``{0,1}``) is suspect when it lies between two
    listed labels, after the last one (Mulan files put their labels last), or in the run just before
    the first one, numbered like the labels (``Class1`` when the XML lists ``Class2..Class14``).
    A label the XML drops from the front of a block whose names share no prefix (scene's ``Beach``)
    cannot be told from a binary feature and is not reported.
    """
    listed = set(idx)
    kinds = {(attrs[i].kind, tuple(attrs[i].values)) for i in idx}

    def label_like(j: int) -> bool:
        return j not in listed and (attrs[j].kind, tuple(attrs[j].values)) in kinds

    suspect = [j for j in range(idx[0], idx[-1]) if label_like(j)]
    if idx[0] > 0:  # labels-last layout: whatever follows the labels is suspect
        j = idx[-1] + 1
        while j < len(attrs) and label_like(j):
            suspect.append(j)
            j += 1
    # Numbered labels (Class1..Class14): an unlisted 'Class<digits>' just before them is suspect.
    stem = os.path.commonprefix([attrs[i].name for i in idx]).rstrip("0123456789")
    numbered = re.compile(re.escape(stem) + r"\d+")
    if stem and all(numbered.fullmatch(attrs[i].name) for i in idx):
        j = idx[0] - 1
        while j >= 0 and label_like(j):
            if numbered.fullmatch(attrs[j].name):
                suspect.append(j)
            j -= 1
    if suspect:
        suspect.sort()
        shown = ", ".join(f"'{attrs[j].name}' (line {attrs[j].line})" for j in suspect[:10])
        more = f" and {len(suspect) - 10} more" if len(suspect) > 10 else ""
        warnings.warn(
            f"{source}: the label file {xml} lists {len(idx)} labels, but {len(suspect)} unlisted attribute(s) "
            f"look like labels too and are read as FEATURES: {shown}{more}. Add them to the XML if they are "
            "labels, or pass labels=[names] to say exactly which attributes are labels.",
            stacklevel=4,
        )


# ----------------------------------------------------------------------------- assembly
def _label_matrix(parsed: _Parsed, n_rows: int, attrs: list[ArffAttribute], idx: list[int], source: str) -> np.ndarray:
    """(N, L) uint8 labels from the codes, checking every value is 0 or 1."""
    # Fortran order: the checks below walk the matrix one label column at a time.
    codes = np.zeros((n_rows, len(idx)), dtype=np.float64, order="F")
    if parsed.is_sparse:
        pos = np.full(len(attrs), -1, dtype=np.int64)
        pos[idx] = np.arange(len(idx))
        p = pos[parsed.cols]
        sel = p >= 0
        codes[parsed.rows[sel], p[sel]] = parsed.codes[sel]
    else:
        codes[:] = parsed.dense[:, idx]
    out = np.empty(codes.shape, dtype=np.uint8, order="F")
    for k, a in enumerate(idx):
        attr = attrs[a]
        c = codes[:, k]
        miss = np.isnan(c)
        if miss.any():
            r = int(np.argmax(miss))
            raise DataFormatError(
                f"{source}:{parsed.lines[r]}: missing value '?' in label attribute '{attr.name}' "
                "(labels cannot be missing)"
            )
        if attr.kind == "nominal":
            # The label is what the nominal value *says* (its name, 0 or 1), not its index.
            table = np.array([_label_value(v) for v in attr.values], dtype=np.float64)
            vals = table[c.astype(np.int64)]
        elif attr.kind == "numeric":
            vals = c
        else:
            raise DataFormatError(
                f"{source}:{attr.line}: label attribute '{attr.name}' has type {attr.kind}; "
                "labels must be numeric or nominal {0,1}"
            )
        bad = (vals != 0) & (vals != 1)
        if bad.any():
            r = int(np.argmax(bad))
            found = attr.values[int(c[r])] if attr.kind == "nominal" else f"{c[r]:g}"
            raise DataFormatError(
                f"{source}:{parsed.lines[r]}: label attribute '{attr.name}' has value {found!r}; "
                "label values must be 0 or 1"
            )
        out[:, k] = vals
    return np.ascontiguousarray(out)


def _label_value(name: str) -> float:
    try:
        return float(name)
    except ValueError:
        return math.nan  # a non-numeric nominal label value can never be 0/1: reported if used


def _flag_table(attr: ArffAttribute) -> np.ndarray | None:
    """For a nominal attribute whose values are exactly the numbers 0 and 1 (``{0,1}`` or
    ``{1,0}``): the number each value index stands for; else None.

    Such attributes (the usual Mulan/MEKA encoding of binary features) become ONE 0/1 column
    named after the attribute instead of two one-hot columns: this keeps sparse files sparse
    (an omitted entry stays an implicit 0) and feature counts equal to the attribute counts.
    """
    if attr.kind != "nominal" or len(attr.values) != 2:
        return None
    f = _numeric_nominal_floats(attr)
    if f is None or sorted(f.tolist()) != [0.0, 1.0]:
        return None
    return f


def _feature_layout(attrs: list[ArffAttribute], feat_idx: list[int]) -> tuple[np.ndarray, list[str]]:
    """First output column of every attribute (-1 if not a feature) and the feature names."""
    start = np.full(len(attrs), -1, dtype=np.int64)
    names: list[str] = []
    for a in feat_idx:
        attr = attrs[a]
        start[a] = len(names)
        if attr.kind == "numeric" or _flag_table(attr) is not None:
            names.append(attr.name)
        else:
            names.extend(f"{attr.name}={v}" for v in attr.values)
    return start, names


def _missing_feature(
    parsed: _Parsed, row: int, attr: ArffAttribute, missing: str, source: str
) -> None:
    if missing == "error":
        raise DataFormatError(
            f"{source}:{parsed.lines[row]}: missing value '?' in feature attribute '{attr.name}'; {MISSING_HINT} "
            "(from Python: read_arff(..., missing='nan') reads them as NaN, missing='zero' as 0)"
        )


def _column_values(
    parsed: _Parsed, rows: np.ndarray, col: np.ndarray, attr: ArffAttribute, c0: int, missing: str, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output entries (rows, columns, values) of one feature attribute given its codes ``col``
    for rows ``rows``; ``col`` holds NaN where the value is missing."""
    miss = np.isnan(col)
    if miss.any():
        _missing_feature(parsed, int(rows[np.argmax(miss)]), attr, missing, source)
    if attr.kind == "numeric":
        vals = np.where(miss, 0.0, col) if missing == "zero" else col
        return rows, np.full(rows.size, c0), vals
    flag = _flag_table(attr)
    ok = ~miss
    idx = np.where(ok, col, 0).astype(np.int64)
    if flag is not None:
        vals = flag[idx]
        vals[miss] = 0.0 if missing == "zero" else np.nan
        return rows, np.full(rows.size, c0), vals
    # One-hot: a 1 in the column of the value; a missing value gives an all-zero group
    # ("zero") or NaN in every column of the group ("nan").
    width = len(attr.values)
    r_ok = rows[ok]
    out_r, out_c, out_v = [r_ok], [c0 + idx[ok]], [np.ones(r_ok.size)]
    if missing == "nan" and miss.any():
        bad = rows[miss]
        out_r.append(np.repeat(bad, width))
        out_c.append(np.tile(np.arange(c0, c0 + width), bad.size))
        out_v.append(np.full(bad.size * width, np.nan))
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_v)


def _raise_first_missing(parsed: _Parsed, attrs: list[ArffAttribute], feat_idx: list[int], source: str) -> None:
    """Raise for the first (by line, then column) missing feature value, if any."""
    if parsed.is_sparse:
        is_feat = np.zeros(len(attrs), dtype=bool)
        is_feat[feat_idx] = True
        hit = np.flatnonzero(is_feat[parsed.cols] & np.isnan(parsed.codes))
        if hit.size:
            e = hit[np.lexsort((parsed.cols[hit], parsed.rows[hit]))[0]]
            _missing_feature(parsed, int(parsed.rows[e]), attrs[int(parsed.cols[e])], "error", source)
    elif feat_idx:
        nan = np.isnan(parsed.dense[:, feat_idx])
        if nan.any():
            r, k = np.argwhere(nan)[0]  # row-major: the earliest line
            _missing_feature(parsed, int(r), attrs[feat_idx[k]], "error", source)


def _dense_features(
    parsed: _Parsed, attrs: list[ArffAttribute], feat_idx: list[int], start: np.ndarray,
    n_feat: int, missing: str, source: str,
) -> np.ndarray:
    """(N, F) float32 features from dense codes."""
    n = parsed.dense.shape[0]
    x = np.zeros((n, n_feat), dtype=np.float32)
    all_rows = np.arange(n)
    for a in feat_idx:
        r, c, v = _column_values(parsed, all_rows, parsed.dense[:, a], attrs[a], int(start[a]), missing, source)
        x[r, c] = v
    return x


def _sparse_features(
    parsed: _Parsed, n_rows: int, attrs: list[ArffAttribute], feat_idx: list[int], start: np.ndarray,
    n_feat: int, missing: str, source: str,
) -> sp.csr_matrix:
    """(N, F) float32 csr features from sparse entries.

    Numeric attributes and ``{0,1}`` flags (where an omitted entry means 0) map entry to entry
    in bulk; other nominal attributes need a value for every row (an omitted entry means the
    first declared value), so they are expanded per row.
    """
    rows, cols, codes = parsed.rows, parsed.cols, parsed.codes
    direct = np.zeros(len(attrs), dtype=bool)
    per_row: list[int] = []
    for a in feat_idx:
        flag = _flag_table(attrs[a])
        if attrs[a].kind == "numeric" or (flag is not None and flag[0] == 0.0):
            direct[a] = True  # for a {0,1} flag the value index IS the value
        else:
            per_row.append(a)
    sel = direct[cols]
    r, c, v = rows[sel], start[cols[sel]], codes[sel]
    miss = np.isnan(v)
    if miss.any():
        e = int(np.argmax(miss))
        _missing_feature(parsed, int(r[e]), attrs[int(cols[sel][e])], missing, source)
        if missing == "zero":
            r, c, v = r[~miss], c[~miss], v[~miss]
    parts_r, parts_c, parts_v = [r], [c], [v]
    if per_row:
        pos = np.full(len(attrs), -1, dtype=np.int64)
        pos[per_row] = np.arange(len(per_row))
        idx = np.zeros((n_rows, len(per_row)), dtype=np.float64)  # omitted -> index 0
        p = pos[cols]
        s = p >= 0
        idx[rows[s], p[s]] = codes[s]
        all_rows = np.arange(n_rows)
        for k, a in enumerate(per_row):
            rr, cc, vv = _column_values(parsed, all_rows, idx[:, k], attrs[a], int(start[a]), missing, source)
            parts_r.append(rr)
            parts_c.append(cc)
            parts_v.append(vv)
    x = sp.csr_matrix(
        (np.concatenate(parts_v).astype(np.float32), (np.concatenate(parts_r), np.concatenate(parts_c))),
        shape=(n_rows, n_feat),
        dtype=np.float32,
    )
    x.sum_duplicates()
    x.eliminate_zeros()  # explicit zeros in the file are not worth storing
    return x


def read_arff(
    path: PathType,
    labels: Sequence[str] | int | None = None,
    *,
    name: str = "",
    xml: PathType | None = None,
    missing: str = "error",
) -> MultiLabelDataset:
    """Read a multi-label ARFF file (dense or sparse; plain, ``.gz``, ``.bz2`` or ``.xz``).

    Args:
        path: the ARFF file.
        labels: which attributes are labels: ``None`` (the names in ``xml`` if given, as
            columns in file order; else the MEKA ``-C n`` of the relation name: the first
            ``n``, or the last ``|n|`` when negative), a list of attribute names (any
            position; label columns in the list's order), or an int ``n`` (the last ``n``).
        name: dataset name stored in the result (default: the file name without suffixes).
        xml: a Mulan label ``.xml`` file naming the labels (the usual Mulan call).
        missing: what a ``?`` in a feature becomes: ``"error"`` (raise), ``"zero"`` or
            ``"nan"``.  A ``?`` in a label is always an error.

    Returns:
        MultiLabelDataset with features (N, F) float32 (``csr_matrix`` for sparse files,
        ``np.ndarray`` otherwise; nominal features one-hot, string/date features dropped) and
        labels (N, L) uint8.

    Raises:
        DataFormatError: malformed file (message names file, line and attribute).
        ValueError: inconsistent arguments (e.g. ``labels=n`` larger than the attribute count).
    """
    if missing not in _MISSING_POLICIES:
        raise ValueError(f"missing must be one of {_MISSING_POLICIES}, got {missing!r}")
    path = Path(path)
    source = str(path)
    buf = _normalise_newlines(read_bytes(path))
    header = parse_arff_header(buf, source)
    attrs = header.attributes
    label_idx = _label_indices(attrs, labels, xml, header.relation, source)

    data = buf[header.data_offset:]
    floats: dict[int, np.ndarray] = {}
    # The bulk numeric path needs quote-free data and nominal values that are numbers.
    fast_ok = b"'" not in data and b'"' not in data
    for j, a in enumerate(attrs):
        if not fast_ok:
            break
        if a.kind == "nominal":
            f = _numeric_nominal_floats(a)
            fast_ok = f is not None
            if f is not None:
                floats[j] = f
        elif a.kind in ("string", "date"):
            fast_ok = False  # their values are text: only the general path reads them
    if fast_ok and any(c in data for c in (b"n", b"N", b"i", b"I")) and _NON_FINITE_LITERAL.search(data):
        fast_ok = False  # 'nan'/'inf' written as text: the per-line path reports line and attribute
    if fast_ok:
        data = _normalise_ws(data)  # keeps every newline, so line numbers stay right
    lines, nums = _data_lines(data, header.data_line)
    parsed: _Parsed | None = None
    if fast_ok and lines:
        parsed = _parse_fast(lines, nums, attrs, source)
        if parsed is not None:
            _nominal_codes_from_floats(parsed, attrs, floats, source)
    if parsed is None:
        parsed = _parse_slow(lines, nums, attrs, source)
    if parsed.is_sparse:
        _check_sparse_duplicates(parsed, source)
    n_rows = len(lines)

    label_set = set(label_idx)
    feat_idx = [j for j in range(len(attrs)) if j not in label_set and attrs[j].kind in ("numeric", "nominal")]
    dropped = [attrs[j].name for j in range(len(attrs)) if j not in label_set and attrs[j].kind in ("string", "date")]
    if dropped:
        shown = ", ".join(repr(d) for d in dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        warnings.warn(f"{source}: dropping {len(dropped)} string/date attribute(s): {shown}", stacklevel=2)
    y = _label_matrix(parsed, n_rows, attrs, label_idx, source)
    if missing == "error":
        _raise_first_missing(parsed, attrs, feat_idx, source)
    start, feat_names = _feature_layout(attrs, feat_idx)
    if parsed.is_sparse:
        x = _sparse_features(parsed, n_rows, attrs, feat_idx, start, len(feat_names), missing, source)
    else:
        x = _dense_features(parsed, attrs, feat_idx, start, len(feat_names), missing, source)
    return MultiLabelDataset(
        features=x,
        labels=y,
        label_names=[attrs[j].name for j in label_idx],
        feature_names=feat_names,
        source=source,
        name=name or _default_name(path),
    )
