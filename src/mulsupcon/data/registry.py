"""The dataset registry: register, look up and load datasets (entries: :mod:`.catalogue`).

``load(name, split=...)`` / ``load_splits(name, ...)`` give :class:`MultiLabelDataset` parts; files are
verified (size + sha256) and, with ``download=True``, fetched first. The text that
``mulsupcon datasets list/info`` prints is in :mod:`.listing`.
"""

from __future__ import annotations

import difflib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .catalogue import (
    CATALOGUE,
    DatasetSpec,
    ReadOptions,
    get_data_home,
    multidigits_variants,
)
from .dataset import MultiLabelDataset, Splits
from .download import ensure_files
from .image_datasets import IMAGE_SPECS
from .splits import SourceParts, concat_datasets, make_splits, pool_of

SPLIT_NAMES = ("train", "val", "test", "trainval", "all")

REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in (*CATALOGUE, *IMAGE_SPECS)}
_generated_checked = False
_lock = threading.Lock()


def register(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    """Add a dataset (e.g. an image set with a custom ``reader`` callable) to :data:`REGISTRY`."""
    if not overwrite and spec.name in REGISTRY:
        raise ValueError(f"dataset '{spec.name}' is already registered (pass overwrite=True to replace it)")
    if not isinstance(spec.reader, str) and not callable(spec.reader):
        raise ValueError(f"dataset '{spec.name}': reader must be a reader name or a callable loader")
    REGISTRY[spec.name] = spec
    _PARTS_CACHE.clear()
    return spec


def _register_generated_variants() -> None:
    """Register the multidigits variants once (their generator is imported only when asked for)."""
    global _generated_checked
    if not _generated_checked:
        _generated_checked = True
        for spec in multidigits_variants():
            REGISTRY.setdefault(spec.name, spec)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry ``name``; ``ValueError`` listing close names if unknown."""
    _register_generated_variants()
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown dataset '{name}'.{hint} Known: {', '.join(sorted(REGISTRY))}") from None


# ------------------------------------------------------------------------------------ reading
def _read_arff(path: Path, **kwargs: Any) -> MultiLabelDataset:
    from .arff import read_arff  # written by the readers' engineer; imported lazily

    return read_arff(path, **kwargs)


def _drop_attributes(ds: MultiLabelDataset, attributes: list[str]) -> MultiLabelDataset:
    """Remove the feature columns of ARFF attributes ``attributes`` (``name`` or one-hot ``name=value``)."""
    drop = {a for a in attributes}
    keep = [
        i for i, f in enumerate(ds.feature_names) if f not in drop and f.split("=", 1)[0] not in drop
    ]
    if len(keep) == len(ds.feature_names):
        raise ValueError(f"{ds.source}: none of the attributes {attributes} to drop was found among the features")
    return MultiLabelDataset(
        features=ds.features[:, keep],
        labels=ds.labels,
        label_names=list(ds.label_names),
        feature_names=[ds.feature_names[i] for i in keep],
        source=ds.source,
        name=ds.name,
    )


def _read_file(spec: DatasetSpec, home: Path, key: str, allow_missing: bool = False) -> MultiLabelDataset:
    """Read ``spec.read_args[key]`` (a file path) with the spec's reader (and drop listed attributes)."""
    ds = _read_file_raw(spec, home, key, allow_missing)
    if spec.read_args.get("drop_attributes"):
        ds = _drop_attributes(ds, list(spec.read_args["drop_attributes"]))
    return ds


def _read_file_raw(spec: DatasetSpec, home: Path, key: str, allow_missing: bool) -> MultiLabelDataset:
    args = spec.read_args
    path = home / args[key]
    name = spec.name
    from .arff import missing_mode

    missing = missing_mode(allow_missing)
    if spec.reader == "mulan":
        return _read_arff(path, name=name, xml=home / args["xml"], missing=missing)
    if spec.reader == "meka":
        return _read_arff(path, name=name, missing=missing)
    if spec.reader == "arff-last":
        if spec.n_labels is None:
            raise ValueError(f"dataset '{name}': reader 'arff-last' needs n_labels")
        return _read_arff(path, labels=int(spec.n_labels), name=name, missing=missing)
    if spec.reader == "hdf5":
        from .formats import read_hdf5

        return read_hdf5(path, name=name, label_names=args.get("label_names"), allow_missing=allow_missing)
    raise ValueError(f"dataset '{name}': unknown reader '{spec.reader}'")


def _read_parts(spec: DatasetSpec, home: Path, options: ReadOptions) -> SourceParts:
    if callable(spec.reader):
        parts = spec.reader(spec, home, options)
        if not isinstance(parts, SourceParts):
            raise ValueError(f"dataset '{spec.name}': loader returned {type(parts).__name__}, expected SourceParts")
        return parts
    args = spec.read_args
    if "all" in args:
        everything = _read_file(spec, home, "all", options.allow_missing)
        n_train = args.get("n_train")
        if n_train is None:
            return SourceParts(train=everything)
        if not 0 < n_train < everything.n_samples:
            raise ValueError(
                f"dataset '{spec.name}': {args['all']} has {everything.n_samples} rows, "
                f"cannot take the first {n_train} as the official train part"
            )
        return SourceParts(
            train=everything.subset(range(n_train)),
            test=everything.subset(range(n_train, everything.n_samples)),
        )
    train = _read_file(spec, home, "train", options.allow_missing)
    test = _read_file(spec, home, "test", options.allow_missing)
    val = _read_file(spec, home, "val", options.allow_missing) if "val" in args else None
    for part_name, part in (("test", test), ("val", val)):
        if part is not None and part.label_names != train.label_names:
            raise ValueError(
                f"dataset '{spec.name}': {part_name} file has labels {part.label_names[:3]}... "
                f"({part.n_labels}) but train has {train.label_names[:3]}... ({train.n_labels})"
            )
    return SourceParts(train=train, test=test, val=val)


_PARTS_CACHE: dict[tuple, SourceParts] = {}
_CACHE_SIZE = 4


def _cache_key(spec: DatasetSpec, home: Path, options: ReadOptions) -> tuple:
    stats = []
    for f in spec.files:
        try:
            st = (home / f.path).stat()
            stats.append((f.path, st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((f.path, None, None))
    return (spec.name, str(home.resolve() if home.exists() else home), tuple(stats), options)


def clear_cache() -> None:
    """Forget datasets parsed earlier in this process."""
    _PARTS_CACHE.clear()


def load_parts(
    name: str,
    *,
    data_home: str | Path | None = None,
    download: bool = False,
    base_url: str | None = None,
    options: ReadOptions = ReadOptions(),
) -> SourceParts:
    """The dataset's files as read (official train / test / val), before any carving.

    ``options`` (:class:`ReadOptions`): the image size and cache folder of image sets read from files.

    Files are verified (size + sha256, lazily cached) and fetched first when ``download`` is True.
    Parsed results are memoised in-process (keyed by file sizes and mtimes) so loading train and
    test separately parses each file once.

    Raises:
        MissingDataError: a file is missing/corrupt and not fetched (message: path, URL, command).
    """
    spec = get_spec(name)
    home = get_data_home(data_home)
    if spec.files:
        ensure_files(spec, home, download, base_url=base_url)
    key = _cache_key(spec, home, options)
    with _lock:
        parts = _PARTS_CACHE.get(key)
    if parts is None:
        parts = _read_parts(spec, home, options)
        with _lock:
            while len(_PARTS_CACHE) >= _CACHE_SIZE:
                _PARTS_CACHE.pop(next(iter(_PARTS_CACHE)))
            _PARTS_CACHE[key] = parts
    # Hand out copies: callers may modify arrays in place (e.g. standardise), the cache must not change.
    return SourceParts(
        train=_copy(parts.train),
        test=None if parts.test is None else _copy(parts.test),
        val=None if parts.val is None else _copy(parts.val),
    )


def _copy(d: MultiLabelDataset) -> MultiLabelDataset:
    feats = d.features
    # A read-only memory map (the image cache) cannot be modified in place, so it is safe to share,
    # and copying it would pull the whole cache (tens of GB for MS-COCO at 224 px) into memory.
    shared = isinstance(feats, np.memmap) and not feats.flags.writeable
    return MultiLabelDataset(
        features=feats if shared else feats.copy(),
        labels=d.labels.copy(),
        label_names=list(d.label_names),
        feature_names=list(d.feature_names),
        source=d.source,
        name=d.name,
    )


def load_splits(
    name: str,
    *,
    data_home: str | Path | None = None,
    download: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    options: ReadOptions = ReadOptions(),
) -> Splits:
    """Train / val / test of a registered dataset (``options``: see :func:`load_parts`).

    Semantics (see :mod:`mulsupcon.data.splits`): ``train`` is the official training part minus a
    seeded validation carve of ``val_fraction`` (``val`` is ``None`` when ``val_fraction=0``);
    ``test`` is the official test part, or a carve of ``spec.test_fraction`` with a fixed seed when
    the dataset has no official split. ``info`` records the dataset, seed, fractions and the row
    indices (save them with ``save_split_indices``).
    """
    spec = get_spec(name)
    parts = load_parts(name, data_home=data_home, download=download, options=options)
    splits = make_splits(parts, dataset=name, val_fraction=val_fraction, seed=seed, test_fraction=spec.test_fraction)
    splits.info["data_home"] = str(get_data_home(data_home)) if spec.files else None
    return splits


def load(
    name: str,
    split: str = "train",
    *,
    data_home: str | Path | None = None,
    download: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    options: ReadOptions = ReadOptions(),
) -> MultiLabelDataset:
    """One part of a registered dataset.

    Args:
        name: registry name (see :func:`list_datasets`).
        split: ``"train"`` (official train minus the validation carve), ``"val"``, ``"test"``,
            ``"trainval"`` (official train, i.e. train + val; for ``yeast-official`` its train+val
            files; for datasets without a split the rows left after carving test) or ``"all"``
            (every row: trainval followed by test, or the file's order when there is no split).
        data_home: root folder of the files (default: :func:`get_data_home`).
        download: fetch missing files.
        val_fraction, seed: the validation carve (ignored for ``"test"``, ``"trainval"``, ``"all"``).
        options: the image size and cache folder (:class:`ReadOptions`) of image sets read from files.

    Returns:
        The part as a :class:`MultiLabelDataset` (features (N, F) dense/CSR or images (N, C, H, W)).
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_NAMES)}; got '{split}'")
    spec = get_spec(name)
    if split in ("train", "val"):
        s = load_splits(name, data_home=data_home, download=download, val_fraction=val_fraction, seed=seed,
                        options=options)
        if split == "val":
            if s.val is None:
                raise ValueError(f"dataset '{name}' has no validation part with val_fraction={val_fraction}")
            return s.val
        return s.train
    parts = load_parts(name, data_home=data_home, download=download, options=options)
    if split == "all":
        if parts.test is None:
            return parts.train
        pieces = [parts.train] + ([parts.val] if parts.val is not None else []) + [parts.test]
        return concat_datasets(pieces)
    pool, test = pool_of(parts, {"test_fraction": spec.test_fraction})
    return test if split == "test" else pool


def list_datasets() -> list[DatasetSpec]:
    """All registered datasets, sorted by name."""
    _register_generated_variants()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def download(
    name: str,
    data_home: str | Path | None = None,
    *,
    force: bool = False,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 30,
    retries: int = 2,
    deadline: float | None = 600,
) -> list[Path]:
    """Fetch (and verify) every file of ``name`` into the data home; returns the local paths.

    Present files that verify are kept unless ``force`` is True (then they are replaced only by a download
    that verified). ``timeout``/``retries``/``deadline``: see :func:`mulsupcon.data.download.fetch`.
    Generated datasets need nothing and return ``[]``.
    """
    spec = get_spec(name)
    if not spec.files:
        return []
    home = get_data_home(data_home)
    paths = ensure_files(spec, home, True, base_url=base_url, progress=progress, force=force, timeout=timeout,
                         retries=retries, deadline=deadline)
    clear_cache()
    return paths
