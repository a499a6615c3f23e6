"""Your own files as a dataset: one call from a path to the dataset's parts, with the files' sha256.

Formats, chosen by the path (``read_path``):

===================================  ==========================================================
path                                 read as
===================================  ==========================================================
``*.csv`` / ``*.tsv`` (``.gz`` ...)   header row, numeric rows; ``label_columns`` names the label
                                     columns (comma-separated names) or is N (the last N columns);
                                     ``ignore_columns`` names columns not read (an id, text);
                                     ``categorical_columns``: text features, one-hot encoded;
                                     ``label_sep``: one label column lists names (``cat;dog``)
``*.npy`` + ``labels`` (``.npy``)    two ``np.save`` arrays, features (N, F) and 0/1 labels (N, L),
                                     row for row
``*.npz``                            arrays ``features``/``X`` and ``labels``/``Y`` (optional
                                     ``label_names``, ``feature_names``; 4-D uint8 = images)
``*.arff`` (``.gz``, ``.bz2``)       Mulan ARFF with ``xml`` (the label XML), MEKA ARFF (``-C n``
                                     in the relation name), or ``label_columns`` = N (the last N)
``*.h5`` / ``*.hdf5``                ``feature``/``target`` (vectors) or ``Image``/``target``
``*.parquet``                        a table, read as a CSV with the same options (``mulsupcon[parquet]``;
                                     :mod:`.parquet`); a label column of lists needs no ``label_sep``
``*.svm`` / ``*.libsvm``, ``*.txt``  svmlight / LIBSVM multi-label rows (``3,17 0:0.5 7:1``), with or
                                     without the Extreme Classification Repository's header ``N F L``
                                     (a ``.txt`` file whose first line looks so; :mod:`.svmlight`)
``*.csv`` / ``*.tsv`` + ``labels``   features and labels in files of their own, row for row: every
                                     column of the file is a feature; ``labels`` (a CSV/TSV) holds one
                                     0/1 column per label (``label_columns`` picks some) or, with
                                     ``label_sep``, one column of names; an ``ignore_columns`` column in
                                     both (an id) pairs the rows, in any order
folder + ``labels`` (a CSV)          images: first column the file name relative to the folder,
                                     then one 0/1 column per label (header: the label names), or
                                     ``filename,labels`` with ``;``-separated names (``label_sep``:
                                     another separator, any column name); ``ignore_columns`` too
folder with ``annotations/``         MS-COCO format (``instances_*.json``, as COCO, Objects365 and
                                     most detection exports ship): a ``*train*`` json is the
                                     training part, a ``*val*`` / ``*test*`` json the test part
folder with ``JPEGImages/``          PASCAL VOC layout (``ImageSets/Main``): trainval, and test
                                     when listed
folder with ``train.hdf5``           the embedded features ``mulsupcon embed`` writes
===================================  ==========================================================

Images are decoded once into the pixel cache (:mod:`.image_cache`; size and folder from
:class:`~.catalogue.ReadOptions`). The identity of a dataset is the sha256 of the files that hold its
labels (the data file itself; for image folders the label file or annotation json): runs save them,
and a file changed since is a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from .arff import format_suffix, missing_mode, read_arff
from .catalogue import ReadOptions
from .dataset import Matrix, MultiLabelDataset, column_order
from .download import sha256_file as sha256_of
from .formats import first_unrepresentable, one_hot_groups, open_npz, read_csv, read_hdf5, read_npy_pair, read_npz
from .image_datasets import cache_images, embedded_metadata
from .image_layouts import coco_layout, read_coco, read_image_folder, read_voc
from .splits import SourceParts, concat_datasets
from .svmlight import ids_in_order, is_svmlight, read_svmlight

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


TABLE_SUFFIXES = (".csv", ".tsv", ".txt")  # read as a delimited table with a header row


def table_delimiter(path: Path) -> str:
    """The field separator a table file's suffix names: a tab for ``.tsv`` (``.tsv.gz``), else a comma
    (a ``.csv`` separated by ``;`` or tabs is recognised from its header by the reader)."""
    return "\t" if format_suffix(Path(path)) == ".tsv" else ","


def parse_label_columns(value: object) -> Optional[Sequence[str] | int]:
    """``--dataset.label_columns``: ``"a,b,c"`` or a list -> names; ``3`` or ``"3"`` -> the last 3 columns."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"dataset.label_columns must be label column names or a number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() else [c.strip() for c in text.split(",") if c.strip()]
    return [str(c) for c in value]  # a YAML list


def parse_column_names(value: object, key: str) -> list[str]:
    """``--dataset.ignore_columns``: ``"a,b"`` or a YAML list -> names (None or "" -> none)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    if isinstance(value, (list, tuple)):
        return [str(c) for c in value]
    raise ValueError(f"dataset.{key} must be column names (\"a,b\" or a list), got {value!r}")


def parse_label_sep(value: object) -> Optional[str]:
    """``--dataset.label_sep``: the string between label names; ``space`` and ``tab`` name those
    (a bare space does not survive the command line's YAML)."""
    if value is None:
        return None
    text = str(value)
    return {"space": " ", "tab": "\t"}.get(text.strip().lower(), text)


def guess_kind(path: str | Path, labels: Optional[str | Path] = None) -> str:
    """``"image"`` or ``"vector"``: what a path holds, decided cheaply (for the default config)."""
    path = Path(path)
    if path.is_dir():
        return "vector" if (path / "train.hdf5").is_file() else "image"
    suffix = format_suffix(path)
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            return "image" if "Image" in f else "vector"
    if suffix == ".npz":
        with open_npz(path) as z:
            key = "features" if "features" in z.files else "X"
            return "image" if key in z.files and z[key].ndim == 4 else "vector"
    return "vector"


def read_path(path: str | Path, *, label_columns: object = None, xml: Optional[str | Path] = None,
              labels: Optional[str | Path] = None, options: ReadOptions = ReadOptions(),
              part: str = "train", ignore_columns: object = None, label_sep: object = None,
              label_names: Optional[Sequence[str]] = None, categorical_columns: object = None,
              categories: Optional[Mapping[str, Sequence[str]]] = None,
              n_features: Optional[int] = None) -> tuple[SourceParts, dict[str, str]]:
    """The dataset at ``path`` (see the module docstring) as its parts, and {file: sha256} of what was read.

    ``ignore_columns`` (CSV/TSV and Parquet): columns that are neither features nor labels (an id, text).
    ``categorical_columns`` (CSV/TSV and Parquet): text feature columns to one-hot encode; ``categories`` fixes
    their values (a test file read with its training file's; see :func:`~.formats.read_csv`).
    ``label_sep`` (CSV/TSV and Parquet): the one label column lists label names separated by it; ``label_names``
    then fixes the label columns (see :func:`~.formats.read_csv`). An svmlight file takes ``label_names``
    (ids) and ``n_features`` too (see :func:`~.svmlight.read_svmlight`).

    ``part`` names the cache files of images (``"train"``, ``"test"``). A folder in COCO or VOC layout
    that holds a test part too gives ``SourceParts(train, test)``; everything else gives ``train`` only.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"dataset path not found: {path}")
    ignored = parse_column_names(ignore_columns, "ignore_columns")
    categorical = parse_column_names(categorical_columns, "categorical_columns")
    sep = parse_label_sep(label_sep)
    if path.is_dir():
        if categorical:
            raise ValueError(f"{path}: dataset.categorical_columns applies to a CSV/TSV file of features, not a folder")
        if labels is None and (ignored or sep is not None):
            raise ValueError(f"{path}: dataset.ignore_columns and dataset.label_sep apply to a CSV file (or an image "
                             "folder's label file, --dataset.labels FILE.csv)")
        return _read_folder(path, labels, options, part, ignored, sep, label_names)
    name = path.name.split(".")[0]
    suffix = format_suffix(path)
    if is_svmlight(path):
        suffix = ".svm"  # (a .txt file in this format is not a table)
    if labels is not None and suffix not in (*TABLE_SUFFIXES, ".npy"):
        raise ValueError(f"dataset.labels names the label file of a folder of images, or of a CSV/TSV or .npy file of "
                         f"features; {path} is a {suffix or 'other'} file, which holds its labels itself (drop the option)")
    columns = parse_label_columns(label_columns)
    for key, given in (("ignore_columns", ignored), ("label_sep", sep is not None), ("categorical_columns", categorical)):
        if given and suffix not in (*TABLE_SUFFIXES, ".parquet"):
            raise ValueError(f"{path}: dataset.{key} applies to CSV/TSV and Parquet files, not {suffix or 'this file'}")
    if columns is not None and suffix in (".npz", ".h5", ".hdf5", ".svm"):  # their labels are held apart
        raise ValueError(f"{path}: dataset.label_columns applies to CSV/TSV, Parquet and ARFF files; a {suffix} file holds "
                         "its labels apart from its features (drop the option)")
    label_file = None if labels is None else Path(labels).expanduser().resolve()
    if suffix == ".svm":
        ds = read_svmlight(path, name=name, label_names=label_names, n_features=n_features,
                           whose="the pair of files (training and test)", allow_missing=options.allow_missing)
    elif suffix == ".parquet":
        if columns is None:
            raise ValueError(f"{path}: say which columns are labels: --dataset.label_columns NAME1,NAME2,... or "
                             "--dataset.label_columns N (the last N columns)")
        from .parquet import read_parquet

        ds = read_parquet(path, columns, ignore_columns=ignored, categorical_columns=categorical, categories=categories,
                          label_sep=sep, label_names=label_names, allow_missing=options.allow_missing, name=name)
    elif suffix in TABLE_SUFFIXES:
        if columns is None and label_file is None:
            raise ValueError(f"{path}: say which columns are labels: --dataset.label_columns NAME1,NAME2,... "
                             f"(their names in the header) or --dataset.label_columns N (the last N columns); or, "
                             f"with the labels in a file of their own, --dataset.labels FILE.csv")
        if label_file is not None and not label_file.is_file():
            raise FileNotFoundError(f"label file not found: {label_file}")
        ds = read_csv(path, columns, ignore_columns=ignored, label_sep=sep, label_names=label_names, name=name,
                      delimiter=table_delimiter(path), allow_missing=options.allow_missing,
                      categorical_columns=categorical, categories=categories, label_path=label_file,
                      label_delimiter=table_delimiter(label_file) if label_file is not None else ",")
    elif suffix == ".npz":
        ds = read_npz(path, name=name, allow_missing=options.allow_missing)
    elif suffix == ".npy":
        if label_file is None:
            raise ValueError(f"{path}: an .npy file holds one array; give the labels' .npy with --dataset.labels "
                             "Y.npy (row for row), or save both in one .npz: np.savez('data.npz', features=X, labels=Y)")
        if format_suffix(label_file) != ".npy":
            raise ValueError(f"{label_file}: the labels of an .npy file of features are an .npy file too")
        if not label_file.is_file():
            raise FileNotFoundError(f"label file not found: {label_file}")
        ds = read_npy_pair(path, label_file, name=name, allow_missing=options.allow_missing)
    elif suffix == ".arff":
        ds = read_arff(path, columns, name=name, xml=Path(xml).expanduser().resolve() if xml else None,
                       missing=missing_mode(options.allow_missing))
    elif suffix in (".h5", ".hdf5"):
        ds = read_hdf5(path, name=name, allow_missing=options.allow_missing)
    else:
        raise ValueError(f"{path}: unknown file type {suffix!r}; expected .csv, .tsv, .npz, .npy (+ labels), .arff, .h5/.hdf5, "
                         ".svm/.libsvm, .parquet "
                         f"(or a folder of images with --dataset.labels FILE.csv){as_csv_hint(path)}")
    files = {str(path): sha256_of(path)}
    if label_file is not None:
        files[str(label_file)] = sha256_of(label_file)
    if xml:
        files[str(Path(xml).expanduser().resolve())] = sha256_of(Path(xml).expanduser())
    return SourceParts(train=ds), files


def _read_folder(root: Path, labels: Optional[str | Path], options: ReadOptions, part: str,
                 ignore_columns: Sequence[str] = (), label_sep: Optional[str] = None,
                 label_names: Optional[Sequence[str]] = None) -> tuple[SourceParts, dict[str, str]]:
    name = root.name
    if labels is not None:
        label_file = Path(labels).expanduser().resolve()
        images = read_image_folder(root, label_file, label_names=label_names, label_sep=label_sep,
                                   ignore_columns=ignore_columns)
        return SourceParts(train=cache_images(name, images, root, part, options)), {str(label_file): sha256_of(label_file)}
    if (root / "train.hdf5").is_file():
        parts = {p: root / f"{p}.hdf5" for p in ("train", "val", "test") if (root / f"{p}.hdf5").is_file()}
        names = embedded_metadata(root).get("label_names")  # the HDF5 files hold the label matrix only
        read = {p: read_hdf5(f, name=name, label_names=names, allow_missing=options.allow_missing)
                for p, f in parts.items()}
        return SourceParts(train=read["train"], test=read.get("test"), val=read.get("val")), \
            {str(f): sha256_of(f) for f in parts.values()}
    if (root / "annotations").is_dir():
        jsons = sorted((root / "annotations").glob("instances_*.json"))
        if not jsons:
            raise ValueError(f"{root}/annotations holds no instances_*.json (the MS-COCO annotation files)")
        splits = [j.stem[len("instances_"):] for j in jsons]
        train = [s for s in splits if "train" in s.lower()] or splits[:1]
        test = [s for s in splits if s not in train and any(w in s.lower() for w in ("val", "test"))]
        read = {}
        for split in train[:1] + test[:1]:
            ann, img_dir = coco_layout(root, split)
            read[split] = cache_images(name, read_coco(ann, img_dir, keep_empty=True), root, split, options)
        files = {str(root / "annotations" / f"instances_{s}.json"): sha256_of(root / "annotations" / f"instances_{s}.json")
                 for s in read}
        return SourceParts(train=read[train[0]], test=read[test[0]] if test else None), files
    voc_roots = (root, root / "VOCdevkit" / "VOC2007", root / "VOC2007")
    voc = next((r for r in voc_roots if (r / "JPEGImages").is_dir()), None)
    if voc is not None:
        lists = {s: voc / "ImageSets" / "Main" / f"{s}.txt" for s in ("trainval", "test")}
        read = {s: cache_images(name, read_voc(voc, s, difficult="negative"), voc, s, options)
                for s, f in lists.items() if f.is_file()}
        if "trainval" not in read:
            raise ValueError(f"{voc}: no ImageSets/Main/trainval.txt (the PASCAL VOC layout)")
        return SourceParts(train=read["trainval"], test=read.get("test")), \
            {str(f): sha256_of(f) for s, f in lists.items() if s in read}
    # Two near misses said only "not a dataset folder": images without their label file, and VOC labels
    # without the images.
    hint = ""
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*")):
        beside = next((root / f for f in ("labels.csv", "labels.json", "labels.tsv") if (root / f).is_file()), None)
        hint = f"; it holds images: name their label file with --dataset.labels {beside or 'FILE.csv'}"
    elif any((r / "ImageSets" / "Main").is_dir() for r in voc_roots):
        hint = "; it has PASCAL VOC's ImageSets/Main/ but no JPEGImages/ beside it: the images are needed too"
    raise ValueError(f"{root}: not a dataset folder mulsupcon can read{hint}. Expected one of: images with "
                     f"--dataset.labels FILE.csv (file name, then one 0/1 column per label); annotations/"
                     f"instances_*.json (MS-COCO format); JPEGImages/ + ImageSets/Main/ (PASCAL VOC); train.hdf5 + "
                     f"test.hdf5 (mulsupcon embed)")


def read_dataset(path: str | Path, *, test_path: Optional[str | Path] = None, label_columns: object = None,
                 xml: Optional[str | Path] = None, labels: Optional[str | Path] = None,
                 test_labels: Optional[str | Path] = None, options: ReadOptions = ReadOptions(),
                 ignore_columns: object = None, label_sep: object = None,
                 categorical_columns: object = None) -> tuple[SourceParts, dict[str, str]]:
    """``path`` (and an official test part at ``test_path``, same format) as the dataset's parts.

    Returns ``(parts, files)``: ``parts.test`` is None when neither path gives a test part (the caller
    then carves one); ``files`` maps every file read (absolute path) to its sha256. With ``label_sep``
    (labels listed by name; an image label file's lists too) the labels are those of both files, sorted: one
    only in the test file is a label without training positives, as with 0/1 columns. ``test_labels`` is the label file of an image
    folder at ``test_path`` (``labels`` is the training folder's). ``categorical_columns`` take their values
    from ``path``: a value found only in the test file is encoded as none of them (with a warning), as in
    prediction.
    """
    if test_labels is not None and (labels is None or test_path is None):
        raise ValueError("dataset.test_labels is the label file of the test part (a folder of images, or a file of "
                         "features): it goes with dataset.test_path and dataset.labels")
    if labels is not None and test_path is not None and test_labels is None:
        what = "a test folder of images" if Path(test_path).is_dir() else "a test file of features"
        raise ValueError(f"{test_path}: {what} needs its own label file: add --dataset.test_labels FILE (as the "
                         "training part has --dataset.labels)")

    categorical = parse_column_names(categorical_columns, "categorical_columns")

    def read(where: str | Path, part: str = "train", names: Optional[Sequence[str]] = None,
             n_features: Optional[int] = None):
        values = one_hot_groups(parts.train.feature_names, categorical) if part == "test" and categorical else None
        return read_path(where, label_columns=label_columns, xml=xml, labels=test_labels if part == "test" else labels,
                         options=options, part=part, ignore_columns=ignore_columns, label_sep=label_sep,
                         label_names=names, categorical_columns=categorical, categories=values, n_features=n_features)

    parts, files = read(path)
    if test_path is not None:
        test_parts, test_files = read(test_path, "test")
        train_names, test_names = parts.train.label_names, test_parts.train.label_names
        if is_svmlight(path) and is_svmlight(test_path):
            # Without a header, each file has the label ids and the feature indices it holds: both are read
            # with those of the two together.
            names = ids_in_order(set(train_names) | set(test_names))
            width = max(parts.train.n_features, test_parts.train.n_features)
            if (names, width) != (train_names, parts.train.n_features):
                parts, files = read(path, names=names, n_features=width)
            if (names, width) != (test_names, test_parts.train.n_features):
                test_parts, test_files = read(test_path, "test", names, width)
        elif (label_sep is not None or labels is not None or format_suffix(Path(path)) == ".parquet") and \
                train_names != test_names:  # (a Parquet column of lists lists names without label_sep)
            # Names listed by row: both files are read with all names (the training file's order when it
            # has them all, as a one-hot header fixes it).
            names = train_names if set(test_names) <= set(train_names) else sorted(set(train_names) | set(test_names))
            if names != train_names:
                parts, files = read(path, names=names)
            if names != test_names:
                test_parts, test_files = read(test_path, "test", names)
        if parts.test is not None:
            raise ValueError(f"{path} holds a test part already; drop --dataset.test_path or point --dataset.path "
                             f"at the training part alone")
        test = test_parts.train if test_parts.test is None else concat_datasets([test_parts.train, test_parts.test])
        test = in_column_order(test, parts.train.feature_names, parts.train.label_names, test_path, str(path))
        if test.label_names != parts.train.label_names:
            raise ValueError(f"{test_path}: labels {test.label_names[:5]}... differ from those of {path} "
                             f"({parts.train.label_names[:5]}...)")
        parts = SourceParts(train=parts.train, test=test, val=parts.val)
        files.update(test_files)
    return parts, files


def feature_order(have: Sequence[str], want: Sequence[str], source: str | Path, reference: str) -> Optional[list[int]]:
    """Positions in ``have`` (a file's feature names) of ``want`` (the reference's: the training file's, or a
    model's), when the file holds the same features in another order; None when they are in order, or when
    either side names none (``f0, f1, ...``: then only positions can match them). Other names, or another
    count, are an error: taken by position they would be silently wrong."""
    have, want = list(have), list(want)
    if len(have) != len(want):
        raise ValueError(f"{source}: {len(have)} feature columns, but {reference} has {len(want)}")
    order = column_order(have, want)
    unnamed = [f"f{j}" for j in range(len(want))]
    if order is None and have != want and unnamed not in (have, want):
        missing = [n for n in want if n not in set(have)]
        raise ValueError(f"{source}: feature columns {missing[:5]} of {reference} are not in it ({len(missing)} of "
                         f"{len(want)}; it has {[n for n in have if n not in set(want)][:5]} instead)")
    return order


def in_column_order(ds: MultiLabelDataset, feature_names: Sequence[str], label_names: Sequence[str],
                    source: str | Path, reference: str) -> MultiLabelDataset:
    """``ds`` (read from ``source``) with its feature and label columns in the order of ``feature_names`` and
    ``label_names`` (``reference``'s: an official test file against its training file, a labelled file against
    a model), matched by name (:func:`feature_order`); label names that differ other than in order are left
    for the caller to refuse."""
    features = feature_order(ds.feature_names, feature_names, source, reference)
    labels = column_order(ds.label_names, label_names)
    return ds if features is None and labels is None else ds.with_columns(features, labels)


def check_files_unchanged(saved: dict[str, str], now: dict[str, str], what: str) -> None:
    """Raise ValueError when a file recorded in ``saved`` ({path: sha256}) is missing or has other bytes now."""
    for path, digest in saved.items():
        current = now.get(path) if path in now else (sha256_of(path) if Path(path).is_file() else None)
        if current is None:
            raise ValueError(f"{what}: the data file {path} is gone")
        if current != digest:
            raise ValueError(f"{what}: the data file {path} has changed since (sha256 {digest[:12]}... then, "
                             f"{current[:12]}... now); restore it, or start a new run")


def as_csv_hint(path: str | Path) -> str:
    """For a table format we do not read (Excel, Feather, JSON, pickle): the pandas line that saves it as CSV,
    as '; ...' to end an error message; else ""."""
    suffix = format_suffix(Path(path))
    readers = {".feather": "feather", ".xlsx": "excel", ".xls": "excel", ".json": "json",
               ".pkl": "pickle", ".pickle": "pickle"}
    if suffix not in readers:
        return ""
    return f"; save the table as CSV first, e.g. with pandas: pd.read_{readers[suffix]}('{Path(path).name}').to_csv('data.csv', index=False)"


def text_columns(table: object) -> list[str]:
    """The columns of a pandas DataFrame that hold text or categories rather than numbers (``[]`` for
    anything else), so that an error can name them instead of numpy's "could not convert string to float"."""
    select = getattr(table, "select_dtypes", None)
    return [str(c) for c in select(exclude=["number", "bool"]).columns] if select is not None else []


def from_arrays(features: Matrix, labels: Matrix, label_names: Optional[Sequence[str]] = None,
                feature_names: Optional[Sequence[str]] = None, name: str = "arrays",
                allow_missing: bool = False) -> MultiLabelDataset:
    """Arrays as a dataset: features (N, F) dense or scipy.sparse, or uint8 images (N, C, H, W);
    labels (N, L) with values 0/1, dense or scipy.sparse. Accepted wherever the training loops take
    ``data=``. ``allow_missing``: NaN features are missing values, which the config's ``dataset.missing``
    (``mean``, ``median``, ``most_frequent``) fills in; otherwise a NaN is refused, like an infinity.
    Tables with named columns (pandas DataFrames) name the features and labels by default, so that the
    trained model later finds a table's columns by those names (:meth:`~mulsupcon.TrainedModel.predict_proba`)."""
    import numpy as np
    import scipy.sparse as sp

    def column_names(table: object) -> Optional[list[str]]:
        columns = getattr(table, "columns", None)
        return list(columns) if columns is not None and all(isinstance(c, str) for c in columns) else None

    label_names = column_names(labels) if label_names is None else label_names
    feature_names = column_names(features) if feature_names is None else feature_names

    y = labels.toarray() if sp.issparse(labels) else np.asarray(labels)
    if y.ndim != 2 or 0 in y.shape:
        raise ValueError(f"labels must be an (N, L) 0/1 matrix with at least one row and one label, got shape {y.shape}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"labels hold {y[r, c].item()!r} at row {r}, column {c}; label values must be 0 or 1")
    text = text_columns(features)
    if text:
        raise ValueError(f"feature columns {text[:5]} hold text or categories; features must be numbers: one-hot "
                         f"encode them first (pandas.get_dummies(X, columns={text[:5]!r})), or read the file with "
                         "from_file(..., categorical_columns=[...]), which encodes them for training and prediction")
    x = features if sp.issparse(features) else np.asarray(features)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"features have {x.shape[0]} rows but labels {y.shape[0]}")
    if not sp.issparse(x) and not (x.ndim == 4 and x.dtype == np.uint8):
        if x.ndim == 4:
            raise ValueError(f"image features must be uint8 (N, C, H, W) with values 0-255, got {x.dtype}; "
                             "convert them with (x * 255).round().astype(np.uint8) if they are scaled to [0, 1]")
        if x.ndim != 2:
            raise ValueError(f"features must be (N, F) or uint8 images (N, C, H, W), got shape {x.shape}")
        try:
            x64 = x.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"features must be numbers; {err} (dtype {x.dtype})") from None
        where = first_unrepresentable(x64, allow_nan=allow_missing)  # before float32, which makes 1e300 inf
        if where is not None:
            r, c = where
            hint = "; for missing values pass allow_missing=True and set dataset.missing" if np.isnan(x64[r, c]) else ""
            raise ValueError(f"features hold {x64[r, c]:g} at row {r}, column {c}; every feature must be a finite "
                             f"number that float32 can hold{hint}")
        x = x64.astype(np.float32)
    names = list(label_names) if label_names is not None else [f"label_{j}" for j in range(y.shape[1])]
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} label names for {y.shape[1]} label columns")
    fnames = list(feature_names) if feature_names is not None else (
        [f"f{j}" for j in range(x.shape[1])] if x.ndim == 2 else [])
    if feature_names is not None and x.ndim == 2 and len(fnames) != x.shape[1]:
        raise ValueError(f"{len(fnames)} feature names for {x.shape[1]} feature columns")
    return MultiLabelDataset(x, y.astype(np.uint8), names, feature_names=fnames, name=name, source=name)


def from_file(path: str | Path, **kwargs) -> MultiLabelDataset:
    """A file (or folder) as one dataset, every row of it (keyword arguments as :func:`read_path`)."""
    parts, _ = read_path(path, **kwargs)
    pieces = [p for p in (parts.train, parts.val, parts.test) if p is not None]
    return pieces[0] if len(pieces) == 1 else concat_datasets(pieces)
