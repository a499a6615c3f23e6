"""Image datasets in the registry: the MS-COCO subsets of the data home, the paper's image sets for
users who have them on disk, and folders of embedded features written by ``mulsupcon embed``.

Listed here in :data:`IMAGE_SPECS` (the registry registers them):

===========================  ====================================================  ====================
name                         folder in the data home (``$MULSUPCON_DATA``)           official parts
===========================  ====================================================  ====================
``coco-tiny-zzowenzz``       ``coco-tiny-zzowenzz/`` (80 + 80 real COCO-2017 JPEGs)  train2017 / val2017
``coco-mini-obmutescence``   ``coco-mini-obmutescence/`` (80 + 79)                   train2017 / val2017
``coco-tiny-enginbozaba``    ``coco-tiny-enginbozaba/`` (32 + 6, ``images/<split>``)  train2017 / val2017
``coco``                     ``coco/`` (MS-COCO 2014, the paper's 82081 / 40137)     train2014 / val2014
``coco2017``                 ``coco/`` (MS-COCO 2017)                                 train2017 / val2017
``voc2007``                  ``voc2007/`` (``VOCdevkit/VOC2007`` with JPEGImages)    trainval / test
``nus-wide``                 ``nus-wide/`` (public release layout, ``Flickr/``)      Train / Test
``mirflickr``                ``mirflickr25k/`` (``mirflickr/im*.jpg`` + annotations)  none: 20% test carved
``objects365``               ``objects365/`` (see ``OBJECTS365_LAYOUT``)              train / val
===========================  ====================================================  ====================

Semantics, as for every registered dataset: the official training part (COCO ``train2017``) is
``trainval``; ``train`` is it minus a seeded validation carve of ``val_fraction``; the official test
part (COCO ``val2017``) is ``test``. COCO images without any annotation are dropped, as in the
paper's MS-COCO counts (82081 of 82783 train2014 images, 40137 of 40504 val2014).

Images are decoded once into a uint8 cache (``data.image_cache.build_image_cache``: (N, 3, S, S),
memory-mapped). The data home may be read-only, so the cache goes to, in this order: the config's
``dataset.cache_dir``, ``$MULSUPCON_CACHE``, ``$XDG_CACHE_HOME/mulsupcon/cache`` (default
``~/.cache/mulsupcon/cache``). The side S is ``dataset.image_size`` (default 224, the paper's).
Both reach the loaders as :class:`~.catalogue.ReadOptions` (``load_splits(..., options=...)``).

Embedded features: ``hdf5_folder_spec(path)`` is the entry of a folder holding ``train.hdf5``,
``val.hdf5`` (optional) and ``test.hdf5`` (``feature`` (N, D) float32, ``target`` (N, L)) under the
name ``hdf5:<absolute path>``; ``train.dataset_section.load_dataset_splits`` does it by itself for such names.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .catalogue import DatasetSpec, ReadOptions, user_cache_dir
from .dataset import MultiLabelDataset
from .download import MissingDataError
from .image_cache import SKIP_HINT, build_image_cache
from .image_layouts import (
    ImageList,
    coco_layout,
    read_coco,
    read_mirflickr,
    read_nuswide,
    read_voc,
)
from .splits import SourceParts

CACHE_ENV = "MULSUPCON_CACHE"
DEFAULT_IMAGE_SIZE = 224  # the paper: "all images are first resized to 224x224"
HDF5_PREFIX = "hdf5:"
OBJECTS365_LAYOUT = (
    "objects365/annotations/zhiyuan_objv2_{train,val}.json with each json's file_name relative to "
    "objects365/{train,val}/ (e.g. objects365/train/images/v1/patch0/objects365_v1_00000000.jpg)"
)

# ------------------------------------------------------------------------------- cache options
def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the preprocessed image caches.

    Precedence: ``cache_dir`` (the config's ``dataset.cache_dir``), ``$MULSUPCON_CACHE``, then
    ``$XDG_CACHE_HOME/mulsupcon/cache`` (``~/.cache/mulsupcon/cache`` when unset). Never the data
    home, which may be read-only. ``~`` is expanded; the folder is created when a cache is built.
    """
    if cache_dir is not None and str(cache_dir) != "":
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV, "")
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "cache"


# ------------------------------------------------------------------------------------ loaders
def _folder(spec: DatasetSpec, home: Path, folder: str, what: str) -> Path:
    root = home / folder
    if not root.is_dir():
        raise MissingDataError(
            f"dataset '{spec.name}': folder {root} not found. Put {what} there "
            f"(data home: {home}; set MULSUPCON_DATA to change it)."
        )
    return root


def cache_images(name: str, images: ImageList, root: Path, part: str, options: ReadOptions, *,
                 skip_corrupt: bool = False) -> MultiLabelDataset:
    """Decode ``images`` (of dataset ``name``, folder ``root``) into the image cache once, at ``options``'
    size and folder; the cached dataset (uint8 (N, 3, S, S), memory-mapped)."""
    size = DEFAULT_IMAGE_SIZE if options.image_size is None else int(options.image_size)
    cache_dir = default_cache_dir(options.cache_dir)
    skip_corrupt = skip_corrupt or options.skip_corrupt
    missing = [i for i, p in enumerate(images.paths) if not p.is_file()]
    if images.paths and len(missing) == len(images.paths):
        first = images.paths[0]
        # Kaggle-style label files often name images without their suffix (train_0 for train_0.jpg).
        found = sorted(first.parent.glob(glob.escape(first.name) + ".*"))[:1] if not first.suffix else []
        raise MissingDataError(
            f"dataset '{name}' ({part}): none of the {len(images)} images listed by {images.source} exists "
            f"(first expected at {first})" + (
                f"; the label file names them without a suffix, and {found[0].name} exists there: write the "
                "file names with their suffix" if found else ": the image files are needed, not only the labels")
        )
    if missing and not skip_corrupt:
        raise MissingDataError(f"dataset '{name}' ({part}): {len(missing)} of {len(images)} images are missing, "
                               f"first {images.paths[missing[0]]} ({images.row_origin(missing[0])}); {SKIP_HINT}")
    tag = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:8]
    path = Path(cache_dir) / f"{Path(name).name}-{part}-{size}-{tag}.npy"
    return build_image_cache(images, path, size=size, skip_corrupt=skip_corrupt, progress=True, name=name)


def _cache(spec: DatasetSpec, images: ImageList, root: Path, part: str, options: ReadOptions, *,
           skip_corrupt: bool = False) -> MultiLabelDataset:
    return cache_images(spec.name, images, root, part, options, skip_corrupt=skip_corrupt)


def _same_labels(spec: DatasetSpec, train: ImageList, test: ImageList) -> None:
    if train.label_names != test.label_names:
        raise ValueError(
            f"dataset '{spec.name}': the test part has labels {test.label_names[:3]}... ({len(test.label_names)}) "
            f"but train has {train.label_names[:3]}... ({len(train.label_names)})"
        )


def coco_loader(folder: str, train_split: str = "train2017", test_split: str = "val2017") -> Callable[[DatasetSpec, Path, ReadOptions], SourceParts]:
    """A registry loader for a COCO-layout folder: ``train_split`` -> trainval, ``test_split`` -> test.

    Images without any instance annotation are dropped (their label row would be all zero).
    """

    def load(spec: DatasetSpec, home: Path, options: ReadOptions) -> SourceParts:
        root = _folder(spec, home, folder, f"annotations/instances_{{{train_split},{test_split}}}.json and the images")
        lists = []
        for split in (train_split, test_split):
            ann, img_dir = coco_layout(root, split)
            lists.append(read_coco(ann, img_dir, keep_empty=False))
        _same_labels(spec, *lists)
        train = _cache(spec, lists[0], root, train_split, options)
        test = _cache(spec, lists[1], root, test_split, options)
        return SourceParts(train=train, test=test)

    return load


def _voc_loader(spec: DatasetSpec, home: Path, options: ReadOptions) -> SourceParts:
    root = _folder(spec, home, "voc2007", "VOCdevkit/VOC2007 (ImageSets, JPEGImages of trainval and test)")
    # Difficult-only classes count as absent: the usual training target (VOC's AP ignores them).
    train = read_voc(root, "trainval", difficult="negative")
    test = read_voc(root, "test", difficult="negative")
    return SourceParts(train=_cache(spec, train, root, "trainval", options), test=_cache(spec, test, root, "test", options))


def _nuswide_loader(spec: DatasetSpec, home: Path, options: ReadOptions) -> SourceParts:
    root = _folder(spec, home, "nus-wide", "the NUS-WIDE release (ImageList/, TrainTestLabels/, Concepts81.txt, Flickr/)")
    train, test = read_nuswide(root, "Train"), read_nuswide(root, "Test")
    _same_labels(spec, train, test)
    # Many NUS-WIDE copies miss images (dead Flickr links): unreadable ones are skipped with a warning.
    return SourceParts(
        train=_cache(spec, train, root, "train", options, skip_corrupt=True),
        test=_cache(spec, test, root, "test", options, skip_corrupt=True),
    )


def _mirflickr_loader(spec: DatasetSpec, home: Path, options: ReadOptions) -> SourceParts:
    root = _folder(spec, home, "mirflickr25k", "mirflickr/im*.jpg and mirflickr25k_annotations_v080/")
    everything = read_mirflickr(root, labels="potential")
    # Images without any of the 24 labels are dropped (25000 -> 24581 = the paper's 19664 + 4917).
    everything = everything.subset(np.flatnonzero(everything.labels.any(1)))
    return SourceParts(train=_cache(spec, everything, root, "all", options))


def _objects365_loader(spec: DatasetSpec, home: Path, options: ReadOptions) -> SourceParts:
    root = _folder(spec, home, "objects365", OBJECTS365_LAYOUT)
    parts = []
    for split in ("train", "val"):
        ann = root / "annotations" / f"zhiyuan_objv2_{split}.json"
        parts.append(read_coco(ann, root / split, keep_empty=False))
    _same_labels(spec, *parts)
    return SourceParts(train=_cache(spec, parts[0], root, "train", options), test=_cache(spec, parts[1], root, "val", options))


# ------------------------------------------------------------------------------ the registrations
_SUBSET_REPOS = {
    "coco-tiny-zzowenzz": ("zzowenzz/COCO_Tiny", 80, 80),
    "coco-mini-obmutescence": ("Obmutescence/COCO-MINI", 80, 79),
    "coco-tiny-enginbozaba": ("enginbozaba/tiny_coco", 32, 6),
}
_COCO_CITATION = "T.-Y. Lin et al. Microsoft COCO: Common objects in context. ECCV 2014."
_SUBSET_NOTE = (
    "A handful of real MS-COCO 2017 JPEGs with the standard instance annotations, copied from the GitHub "
    "repository {repo}: for smoke tests and examples, far too small for meaningful scores. train2017 is the "
    "official training part (validation carved from it with val_fraction), val2017 the test part. Images without "
    "annotations are dropped ({n_train} + {n_test} images in the folder). The files are not registered one by one "
    "(no per-file download): clone the repository into <data home>/{name}."
)

IMAGE_SPECS: list[DatasetSpec] = [
    DatasetSpec(
        name=name,
        description=f"MS-COCO 2017 subset from {repo} ({n_train} train / {n_test} val images), 80 labels",
        n_labels=80,
        reader=coco_loader(name),
        citation=_COCO_CITATION,
        url=f"https://github.com/{repo}",
        notes=_SUBSET_NOTE.format(repo=repo, n_train=n_train, n_test=n_test, name=name),
        kind="image", folder=name,
    )
    for name, (repo, n_train, n_test) in _SUBSET_REPOS.items()
] + [
    DatasetSpec(
        name="coco",
        description="MS-COCO 2014 (the paper's split: train2014 82081 / val2014 40137 annotated images), 80 labels",
        n_labels=80, n_train=82081, n_test=40137,
        reader=coco_loader("coco", "train2014", "val2014"),
        citation=_COCO_CITATION, url="https://cocodataset.org",
        notes="Folder <data home>/coco/ with annotations/instances_{train,val}2014.json and train2014/, val2014/.",
        kind="image", folder="coco",
    ),
    DatasetSpec(
        name="coco2017",
        description="MS-COCO 2017 (train2017 / val2017, annotated images only), 80 labels",
        n_labels=80,
        reader=coco_loader("coco", "train2017", "val2017"),
        citation=_COCO_CITATION, url="https://cocodataset.org",
        notes="Folder <data home>/coco/ with annotations/instances_{train,val}2017.json and train2017/, val2017/.",
        kind="image", folder="coco",
    ),
    DatasetSpec(
        name="voc2007",
        description="PASCAL VOC2007 (5011 trainval / 4952 test), 20 labels",
        n_labels=20, n_train=5011, n_test=4952,
        reader=_voc_loader,
        citation="M. Everingham et al. The PASCAL Visual Object Classes Challenge 2007.",
        url="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
        notes=(
            "Folder <data home>/voc2007/ holding VOCdevkit/VOC2007 (or VOC2007/) with ImageSets/Main and the JPEGImages "
            "of both the trainval and the test tarballs. Difficult-only classes are negatives."
        ),
        kind="image", folder="voc2007",
    ),
    DatasetSpec(
        name="nus-wide",
        description="NUS-WIDE images, 81 concepts (official Train / Test lists)",
        n_labels=81,
        reader=_nuswide_loader,
        citation="T.-S. Chua et al. NUS-WIDE: a real-world web image database from National University of Singapore. CIVR 2009.",
        url="https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
        notes=(
            "Folder <data home>/nus-wide/ in the release layout (ImageList/, TrainTestLabels/, Concepts81.txt, "
            "Flickr/<concept>/<file>.jpg). Missing images are skipped with a warning, so counts depend on the copy "
            "(the paper reports 150000 / 59347)."
        ),
        kind="image", folder="nus-wide",
    ),
    DatasetSpec(
        name="mirflickr",
        description="MIRFLICKR-25k, 24 'potential' labels; images without labels dropped; 20% test carved",
        n_labels=24, n_samples=24581, official_split=False,
        reader=_mirflickr_loader,
        citation="M. J. Huiskes, M. S. Lew. The MIR Flickr retrieval evaluation. MIR 2008.",
        url="https://press.liacs.nl/mirflickr/",
        notes=(
            "Folder <data home>/mirflickr25k/ with mirflickr/im<N>.jpg and mirflickr25k_annotations_v080/. No official "
            "split: 20% carved as test with the fixed seed 0 (the paper: 19664 / 4917)."
        ),
        kind="image", folder="mirflickr25k",
    ),
    DatasetSpec(
        name="objects365",
        description="Objects365 v2 (train / val), 365 labels",
        n_labels=365,
        reader=_objects365_loader,
        citation="S. Shao et al. Objects365: A large-scale, high-quality dataset for object detection. ICCV 2019.",
        url="https://www.objects365.org",
        notes=(
            f"Layout: {OBJECTS365_LAYOUT}. The paper used a random subset (515233 / 80000) that is not published; "
            "the full set needs several GB of memory to parse and ~150 KB of cache per image at 224 px."
        ),
        kind="image", folder="objects365",
    ),
]


# ---------------------------------------------------------------------------- embedded features
def embedded_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``dataset.json`` that ``mulsupcon embed`` writes beside its HDF5 files (label names, backbone,
    split), or ``{}`` when the folder has none."""
    meta_path = Path(folder) / "dataset.json"
    if not meta_path.is_file():
        return {}
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err


def hdf5_folder_spec(path: str | os.PathLike, name: Optional[str] = None) -> DatasetSpec:
    """A registry entry for a folder of ``train.hdf5`` / ``val.hdf5`` (optional) / ``test.hdf5``.

    Each file holds ``feature`` (N, D) float32 and ``target`` (N, L) 0/1 (the layout ``mulsupcon
    embed`` writes); label names come from ``dataset.json`` beside them when present. When
    ``val.hdf5`` exists it is the official validation part (``val_fraction`` then only matters
    when 0, which merges it into train).
    """
    folder = Path(path).expanduser().resolve()
    for part in ("train", "test"):
        if not (folder / f"{part}.hdf5").is_file():
            raise ValueError(f"{folder}: no {part}.hdf5 (an embedded-feature folder needs train.hdf5 and test.hdf5)")
    meta = embedded_metadata(folder)
    meta_path = folder / "dataset.json"
    read_args: dict[str, Any] = {"train": str(folder / "train.hdf5"), "test": str(folder / "test.hdf5")}
    if (folder / "val.hdf5").is_file():
        read_args["val"] = str(folder / "val.hdf5")
    if meta.get("label_names"):
        read_args["label_names"] = list(meta["label_names"])
    return DatasetSpec(
        name=name or f"{HDF5_PREFIX}{folder}",
        description=meta.get("description", f"features in {folder}"),
        n_labels=len(meta["label_names"]) if meta.get("label_names") else None,
        n_features=meta.get("feature_dim"),
        reader="hdf5",  # absolute paths: <data home> / <absolute path> is the absolute path
        read_args=read_args,
        notes=f"Embedded features (see {meta_path.name}): {json.dumps({k: v for k, v in meta.items() if k != 'label_names'})}"
        if meta else "",
        kind="vector",
    )


__all__ = [
    "CACHE_ENV",
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_SPECS",
    "coco_loader",
    "default_cache_dir",
    "embedded_metadata",
    "hdf5_folder_spec",
]
