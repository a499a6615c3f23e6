"""Image datasets on disk: readers for the common layouts (labels only; nothing is decoded here).

A *reader* (``read_coco``, ``read_objects365``, ``read_voc``, ``read_nuswide``, ``read_mirflickr``,
``read_image_folder``) parses the label files and returns an :class:`ImageList`: image paths, an
(N, L) uint8 multi-hot label matrix and the label names. :mod:`.image_cache` then decodes the pixels
once. Also here: ``coco_layout`` (where a COCO folder keeps its json and images), ``load_voc_labels``
(VOC labels without images) and ``read_image_hdf5`` for the MulSupCon authors' HDF5 files
(``Image`` N x H x W x 3 uint8, ``target`` N x L).
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from mulsupcon.data.arff import DataFormatError
from mulsupcon.data.dataset import MultiLabelDataset
from mulsupcon.data.formats import column_positions, label_columns_checked, label_matrix, multi_hot, text_rows

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]
MIRFLICKR_POTENTIAL_LABELS = [
    "animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake",
    "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures",
    "sunset", "transport", "tree", "water",
]


@dataclass
class ImageList:
    """Images on disk with their labels (nothing decoded).

    Attributes:
        paths: N image paths.
        labels: (N, L) uint8 multi-hot matrix.
        label_names: L names, in column order.
        source: where the list came from (label file paths).
        ignore_mask: optional (N, L) uint8; 1 marks entries a loss or metric should skip
            (PASCAL VOC "difficult" entries with ``difficult="ignore"``). ``None`` otherwise.
        where: optional N strings saying where each row was listed (``labels.csv:5``), so that an
            error about an image names the line a user has to fix. ``None``: rows are named by index.
    """

    paths: list[Path]
    labels: np.ndarray
    label_names: list[str]
    source: str = ""
    ignore_mask: Optional[np.ndarray] = None
    where: Optional[list[str]] = None

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.uint8)
        if self.labels.ndim != 2 or self.labels.shape != (len(self.paths), len(self.label_names)):
            raise ValueError(
                f"{self.source or 'ImageList'}: labels of shape {self.labels.shape} do not match "
                f"{len(self.paths)} paths x {len(self.label_names)} label names"
            )
        if self.labels.size and self.labels.max() > 1:
            raise ValueError(f"{self.source or 'ImageList'}: labels must be 0/1, found {self.labels.max()}")
        if self.ignore_mask is not None:
            self.ignore_mask = np.asarray(self.ignore_mask, dtype=np.uint8)
            if self.ignore_mask.shape != self.labels.shape:
                raise ValueError(
                    f"{self.source or 'ImageList'}: ignore_mask shape {self.ignore_mask.shape} != labels "
                    f"shape {self.labels.shape}"
                )
        self.label_names = [str(n) for n in self.label_names]
        if self.where is not None and len(self.where) != len(self.paths):
            raise ValueError(f"{self.source or 'ImageList'}: {len(self.where)} row origins for {len(self.paths)} paths")

    def row_origin(self, i: int) -> str:
        """Where row ``i`` was listed: ``labels.csv:5``, or ``row i of SOURCE`` without line numbers."""
        if self.where is not None:
            return self.where[i]
        return f"row {i} of {self.source or 'the image list'}"

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "ImageList":
        """Rows ``rows`` (in that order) as a new list."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageList(
            paths=[self.paths[i] for i in rows],
            labels=self.labels[rows],
            label_names=list(self.label_names),
            source=self.source,
            ignore_mask=None if self.ignore_mask is None else self.ignore_mask[rows],
            where=None if self.where is None else [self.where[i] for i in rows],
        )


# ============================================================================ COCO / Objects365
def _load_json(path: Path, what: str):
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err


def read_coco(annotation_json: str | os.PathLike, image_dir: str | os.PathLike, *, keep_empty: bool = True) -> ImageList:
    """Read a COCO-format instance annotation file (MS-COCO, Objects365, ...).

    The label set of an image is the set of categories of its instance annotations (crowd
    annotations included, as usual for multi-label COCO). Categories become columns in increasing
    category-id order (COCO's ids 1..90 with gaps -> 80 contiguous columns); names come from the
    json. Rows follow the json's ``images`` order.

    Args:
        annotation_json: e.g. ``annotations/instances_train2017.json``.
        image_dir: folder the images' ``file_name`` entries are relative to.
        keep_empty: keep images without any annotation (all-zero label row); ``False`` drops them.

    Returns:
        ``ImageList`` with (N, n_categories) labels.
    """
    path = Path(annotation_json)
    data = _load_json(path, "COCO annotation file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with images/annotations/categories")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing top-level key(s) {missing}; found {sorted(data)}")
    try:
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        col = {int(c["id"]): j for j, c in enumerate(cats)}
        names = [str(c["name"]) for c in cats]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: every category needs an integer 'id' and a 'name' ({err!r})") from err
    if len(col) != len(cats):
        raise ValueError(f"{path}: duplicate category ids")
    image_dir = Path(image_dir)
    row_of: dict[int, int] = {}
    paths: list[Path] = []
    for k, im in enumerate(data["images"]):
        try:
            iid, fname = int(im["id"]), str(im["file_name"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: images[{k}] needs an integer 'id' and a 'file_name' ({err!r})") from err
        if iid in row_of:
            raise ValueError(f"{path}: images[{k}] repeats image id {iid}")
        row_of[iid] = len(paths)
        paths.append(image_dir / fname)
    labels = np.zeros((len(paths), len(names)), dtype=np.uint8)
    for k, ann in enumerate(data["annotations"]):
        try:
            iid, cid = int(ann["image_id"]), int(ann["category_id"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: annotations[{k}] needs 'image_id' and 'category_id' ({err!r})") from err
        if iid not in row_of:
            raise ValueError(f"{path}: annotations[{k}] refers to unknown image id {iid}")
        if cid not in col:
            raise ValueError(f"{path}: annotations[{k}] refers to unknown category id {cid}")
        labels[row_of[iid], col[cid]] = 1
    out = ImageList(paths=paths, labels=labels, label_names=names, source=str(path))
    if not keep_empty:
        out = out.subset(np.flatnonzero(labels.any(1)))
    return out


def read_objects365(annotation_json: str | os.PathLike, image_dir: str | os.PathLike, *, keep_empty: bool = True) -> ImageList:
    """Read Objects365 (its annotations are COCO-format json with 365 categories).

    Identical to ``read_coco``: labels = categories of an image's boxes, columns in category-id
    order, ``file_name`` relative to ``image_dir`` (Objects365 v2 names include sub-folders such as
    ``images/v1/patch0/...``; pass the folder they are relative to). The training json is several
    GB: reading it needs that much memory once; cache the result with ``build_image_cache``.
    """
    return read_coco(annotation_json, image_dir, keep_empty=keep_empty)


# ============================================================================ PASCAL VOC
def _voc_dir(root: Path) -> Path:
    """Accept ``VOC2007/``, its parent, or ``VOCdevkit/``'s parent."""
    for cand in (root, root / "VOC2007", root / "VOCdevkit" / "VOC2007"):
        if (cand / "ImageSets" / "Main").is_dir():
            return cand
    raise ValueError(
        f"no PASCAL VOC layout under {root}: expected ImageSets/Main/ in it, in VOC2007/ or in VOCdevkit/VOC2007/"
    )


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh]


_DIFFICULT_MODES = ("ignore", "positive", "negative")


def read_voc(
    root: str | os.PathLike,
    split: str = "trainval",
    *,
    difficult: str = "ignore",
    use_xml: bool = False,
) -> ImageList:
    """Read PASCAL VOC (2007 layout) multi-label targets; images at ``JPEGImages/<id>.jpg``.

    Labels come from ``ImageSets/Main/<class>_<split>.txt`` (value 1 present, -1 absent,
    0 "difficult": the class appears only in objects marked difficult), or with ``use_xml=True``
    from ``Annotations/<id>.xml`` (a class is present if one of its objects has
    ``<difficult>0``, difficult if all its objects are difficult). Both give the same matrix.

    ``difficult`` decides what a difficult entry becomes:
      - ``"ignore"`` (default): label 0, and flagged in ``ImageList.ignore_mask`` so a loss or
        metric can skip it (VOC's official AP ignores difficult objects);
      - ``"negative"``: label 0, no flag (the common practice for training targets);
      - ``"positive"``: label 1.

    Args:
        root: the ``VOC2007`` folder, its parent, or the parent of ``VOCdevkit``.
        split: ``train``, ``val``, ``trainval`` or ``test``.

    Returns:
        ``ImageList`` with (N, 20) labels in the standard class order (``VOC_CLASSES``); rows in
        the order of ``ImageSets/Main/<split>.txt`` (or the first class file if it is absent).
    """
    if difficult not in _DIFFICULT_MODES:
        raise ValueError(f"difficult must be one of {_DIFFICULT_MODES}, got '{difficult}'")
    voc = _voc_dir(Path(root))
    main = voc / "ImageSets" / "Main"
    split_file = main / f"{split}.txt"
    ids: Optional[list[str]] = None
    if split_file.is_file():
        ids = [ln.split()[0] for ln in _read_lines(split_file) if ln]
    # state: 1 present, 0 absent, 2 difficult-only
    state: np.ndarray
    if use_xml:
        if ids is None:
            raise ValueError(f"{split_file} not found: it lists the image ids to read the XML files of")
        state = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.uint8)
        col = {c: j for j, c in enumerate(VOC_CLASSES)}
        for r, iid in enumerate(ids):
            xml_path = voc / "Annotations" / f"{iid}.xml"
            if not xml_path.is_file():
                raise ValueError(f"VOC annotation not found: {xml_path} (image id {iid} of {split_file})")
            try:
                tree = ET.parse(xml_path)
            except ET.ParseError as err:
                raise ValueError(f"{xml_path}: invalid XML ({err})") from err
            for k, obj in enumerate(tree.getroot().iter("object")):
                name = (obj.findtext("name") or "").strip()
                if name not in col:
                    raise ValueError(f"{xml_path}: object {k} has unknown class '{name}' (expected a VOC class)")
                diff = (obj.findtext("difficult") or "0").strip()
                if diff not in ("0", "1"):
                    raise ValueError(f"{xml_path}: object {k} <difficult> must be 0 or 1, found '{diff}'")
                j = col[name]
                if diff == "0":
                    state[r, j] = 1
                elif state[r, j] == 0:
                    state[r, j] = 2
        source = f"{voc / 'Annotations'} ({split_file.name})"
    else:
        columns = []
        for cls in VOC_CLASSES:
            path = main / f"{cls}_{split}.txt"
            if not path.is_file():
                raise ValueError(f"VOC class list not found: {path}")
            file_ids, values = [], []
            for ln_no, line in enumerate(_read_lines(path), 1):
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                    raise ValueError(f"{path} line {ln_no}: expected '<image id> <1|-1|0>', found '{line}'")
                file_ids.append(parts[0])
                values.append({"1": 1, "-1": 0, "0": 2}[parts[1]])
            if ids is None:
                ids = file_ids
            if file_ids != ids:
                bad = next((k for k, (a, b) in enumerate(zip(file_ids, ids)) if a != b), min(len(file_ids), len(ids)))
                raise ValueError(
                    f"{path}: image ids differ from {split_file if split_file.is_file() else 'the first class file'} "
                    f"at line {bad + 1} ({len(file_ids)} ids vs {len(ids)})"
                )
            columns.append(values)
        state = np.asarray(columns, dtype=np.uint8).T.reshape(len(ids or []), len(VOC_CLASSES))
        source = f"{main}/<class>_{split}.txt"
    is_diff = state == 2
    labels = (state == 1) | (is_diff if difficult == "positive" else False)
    return ImageList(
        paths=[voc / "JPEGImages" / f"{iid}.jpg" for iid in ids or []],
        labels=labels.astype(np.uint8),
        label_names=list(VOC_CLASSES),
        source=source,
        ignore_mask=is_diff.astype(np.uint8) if difficult == "ignore" else None,
    )


def load_voc_labels(root: str | os.PathLike, split: str = "trainval", *, difficult: str = "ignore") -> ImageList:
    """VOC labels from the per-class lists only (no images needed; ``paths`` show where the
    JPEGs would be). ``difficult`` as in ``read_voc``. VOC2007: 5011 trainval / 4952 test ids."""
    return read_voc(root, split, difficult=difficult, use_xml=False)


# ============================================================================ NUS-WIDE
def _first_existing(cands: Iterable[Path], what: str, root: Path) -> Path:
    cands = list(cands)
    for c in cands:
        if c.exists():
            return c
    raise ValueError(f"{what} not found under {root}; looked for: {', '.join(str(c) for c in cands)}")


def read_nuswide(root: str | os.PathLike, split: str = "Train") -> ImageList:
    """Read NUS-WIDE's 81-concept ground truth in the public release layout.

    Layout (under ``root``): ``ImageList/<Split>Imagelist.txt`` (one image per line, e.g.
    ``actor\\0001_2124494179.jpg``, Windows separators, optionally with a ``...\\Flickr\\`` prefix),
    ``Concepts81.txt`` (also looked for in ``ConceptsList/`` and ``Groundtruth/``), and
    ``TrainTestLabels/Labels_<concept>_<Split>.txt`` (also under ``Groundtruth/``): one 0/1 per
    line, aligned with the image list. Images are expected at ``Flickr/<folder>/<file>.jpg``. Many
    NUS-WIDE downloads miss some images: use ``build_image_cache(..., skip_corrupt=True)``.

    Args:
        split: ``"Train"`` or ``"Test"`` (case-insensitive).

    Returns:
        ``ImageList`` with (N, 81) labels, columns in ``Concepts81.txt`` order.
    """
    root = Path(root)
    split = split.capitalize()
    if split not in ("Train", "Test"):
        raise ValueError(f"NUS-WIDE split must be 'Train' or 'Test', got '{split}'")
    list_file = _first_existing([root / "ImageList" / f"{split}Imagelist.txt"], "NUS-WIDE image list", root)
    concepts_file = _first_existing(
        [root / "Concepts81.txt", root / "ConceptsList" / "Concepts81.txt", root / "Groundtruth" / "Concepts81.txt"],
        "NUS-WIDE Concepts81.txt",
        root,
    )
    label_dir = _first_existing(
        [root / "TrainTestLabels", root / "Groundtruth" / "TrainTestLabels"], "NUS-WIDE TrainTestLabels/", root
    )
    concepts = [c for c in _read_lines(concepts_file) if c]
    rel = [ln.replace("\\", "/") for ln in _read_lines(list_file) if ln]
    paths = []
    for r in rel:
        # Imagelist.txt carries absolute Windows paths like C:\ImageData\Flickr\actor\x.jpg.
        tail = r.rsplit("Flickr/", 1)[-1]
        paths.append(root / "Flickr" / tail)
    labels = np.zeros((len(paths), len(concepts)), dtype=np.uint8)
    for j, c in enumerate(concepts):
        f = label_dir / f"Labels_{c}_{split}.txt"
        if not f.is_file():
            raise ValueError(f"NUS-WIDE label file not found: {f} (concept '{c}' of {concepts_file})")
        vals = [ln for ln in _read_lines(f) if ln]
        if len(vals) != len(paths):
            raise ValueError(f"{f}: {len(vals)} label lines but {list_file} lists {len(paths)} images")
        for ln_no, v in enumerate(vals, 1):
            if v not in ("0", "1"):
                raise ValueError(f"{f} line {ln_no}: expected 0 or 1, found '{v}'")
        labels[:, j] = np.asarray(vals) == "1"
    return ImageList(paths=paths, labels=labels, label_names=concepts, source=f"{list_file} + {label_dir}")


# ============================================================================ MIRFLICKR-25k
def read_mirflickr(
    root: str | os.PathLike,
    *,
    labels: str = "potential",
    annotation_dir: Optional[str | os.PathLike] = None,
) -> ImageList:
    """Read MIRFLICKR-25k in its public release layout.

    Layout: images ``mirflickr/im<N>.jpg`` (or ``im<N>.jpg`` directly in ``root``), annotations
    ``mirflickr25k_annotations_v080/<label>.txt``, each listing the 1-based numbers of the images
    showing that label; ``<label>_r1.txt`` files list the images where it is "relevant" (a
    stricter subset, 14 labels); ``README.txt`` is skipped.

    Args:
        labels: ``"potential"`` (the 24 usual labels, default), ``"relevant"`` (the ``_r1`` lists
            only, named ``<label>_r1``) or ``"both"`` (potential then relevant columns).
        annotation_dir: override for the annotation folder.

    Returns:
        ``ImageList`` with one row per ``im<N>.jpg`` found, in increasing N; columns sorted by
        name within each group.
    """
    if labels not in ("potential", "relevant", "both"):
        raise ValueError(f"labels must be 'potential', 'relevant' or 'both', got '{labels}'")
    root = Path(root)
    img_dir = root / "mirflickr" if (root / "mirflickr").is_dir() else root
    ann_dir = Path(annotation_dir) if annotation_dir is not None else root / "mirflickr25k_annotations_v080"
    if not ann_dir.is_dir():
        raise ValueError(f"MIRFLICKR annotation folder not found: {ann_dir}")
    pat = re.compile(r"^im(\d+)\.jpg$")
    numbers = sorted(int(m.group(1)) for f in os.listdir(img_dir) if (m := pat.match(f)))
    if not numbers:
        raise ValueError(f"no MIRFLICKR images (im<N>.jpg) found in {img_dir}")
    row_of = {n: r for r, n in enumerate(numbers)}
    files = sorted(p for p in ann_dir.glob("*.txt") if p.name.lower() != "readme.txt")
    potential = [p for p in files if not p.stem.endswith("_r1")]
    relevant = [p for p in files if p.stem.endswith("_r1")]
    chosen = {"potential": potential, "relevant": relevant, "both": potential + relevant}[labels]
    if not chosen:
        raise ValueError(f"no {labels} label files (<label>.txt / <label>_r1.txt) in {ann_dir}")
    mat = np.zeros((len(numbers), len(chosen)), dtype=np.uint8)
    for j, f in enumerate(chosen):
        for ln_no, line in enumerate(_read_lines(f), 1):
            if not line:
                continue
            if not line.isdigit():
                raise ValueError(f"{f} line {ln_no}: expected an image number, found '{line}'")
            n = int(line)
            if n not in row_of:
                raise ValueError(f"{f} line {ln_no}: image number {n} has no file {img_dir / f'im{n}.jpg'}")
            mat[row_of[n], j] = 1
    return ImageList(
        paths=[img_dir / f"im{n}.jpg" for n in numbers],
        labels=mat,
        label_names=[f.stem for f in chosen],
        source=str(ann_dir),
    )


# ============================================================================ generic folder
_LIST_HEADERS = ("labels", "label", "tags")


def read_image_folder(
    image_dir: str | os.PathLike,
    label_file: str | os.PathLike,
    *,
    label_names: Optional[Sequence[str]] = None,
    label_sep: Optional[str] = None,
    ignore_columns: Sequence[str] = (),
) -> ImageList:
    """Read a folder of images with a CSV or JSON label file.

    Label file formats (chosen by extension; the CSV needs a header row, and its first column holds the
    file names):

    - CSV, label lists: header ``filename,labels`` (or ``label``/``tags``), rows ``img1.jpg,cat;dog``
      (``;``-separated, empty = no label). With ``label_sep`` the one label column may have any name and
      its names are separated by ``label_sep`` (``" "`` for Kaggle's ``img1,cat dog``).
    - CSV, one-hot: header ``filename,<name1>,<name2>,...``, rows of 0/1 values.
    - JSON: ``{"img1.jpg": ["cat", "dog"], ...}``.

    The CSV is read as :func:`~mulsupcon.data.formats.text_rows` reads tables: ``;``- or tab-separated
    files and UTF-16 or Latin-1 text too. File names are relative to ``image_dir``.

    Args:
        label_names: fix the columns (e.g. the training set's) for list formats; an unknown label
            is then an error. Default: sorted set of the labels found (CSV one-hot: header order).
        label_sep: the string between label names in a list column (default ``;``). A list column with
            spaces and no ``;`` anywhere is an error without it: lists separated by spaces and names that
            hold a space cannot be told apart.
        ignore_columns: CSV columns that are neither the file name nor labels (a width, a split name).

    Returns:
        ``ImageList`` in file order.
    """
    image_dir, label_file = Path(image_dir), Path(label_file)
    if not label_file.is_file():
        raise ValueError(f"label file not found: {label_file}")
    if label_file.suffix.lower() == ".json":
        if label_sep is not None or ignore_columns:
            raise ValueError(f"{label_file}: dataset.label_sep and dataset.ignore_columns apply to a CSV label file, "
                             "not to JSON (whose labels are lists already)")
        data = _load_json(label_file, "label file")
        if not isinstance(data, dict):
            raise ValueError(f"{label_file}: expected a JSON object {{filename: [labels]}}, got {type(data).__name__}")
        for fname, labs in data.items():
            if isinstance(labs, str) or not isinstance(labs, list):
                raise ValueError(f"{label_file}: value of '{fname}' must be a list of labels, got {labs!r}")
        files = [str(f) for f in data]
        keys = [f"{label_file} key '{f}'" for f in files]
        names, labels = multi_hot([[str(x) for x in labs] for labs in data.values()], label_names, where=keys)
        return ImageList(paths=[image_dir / f for f in files], labels=labels, label_names=names, source=str(label_file),
                         where=keys)
    source, header, rows, line_of = text_rows(label_file)
    where = [f"{source}:{n}" for n in line_of]
    if re.search(r"\.(jpe?g|png|bmp|gif|webp|tiff?)$", header[0], re.I):
        raise DataFormatError(f"{source}: expected a header row ('filename,labels' or 'filename,<label names>') "
                              f"first, found data '{','.join(header)}'")
    ignored = set(column_positions(header, ignore_columns, source, "ignored"))
    if 0 in ignored:
        raise ValueError(f"{source}: the first column ({header[0]!r}) holds the file names; it cannot be ignored")
    cols = [j for j in range(1, len(header)) if j not in ignored]
    if not cols:
        raise DataFormatError(f"{source}: expected a header 'filename,labels' or 'filename,<label names>', "
                              f"found {header}")
    files = [r[0].strip() for r in rows]
    if label_sep is not None or (len(cols) == 1 and header[cols[0]].lower() in _LIST_HEADERS):
        if len(cols) != 1:
            raise ValueError(f"{source}: with dataset.label_sep the label file has one column that lists the labels "
                             f"after the file name; found {len(cols)}: {[header[j] for j in cols][:5]} "
                             "(dataset.ignore_columns leaves out the others)")
        fields = [r[cols[0]] for r in rows]
        if label_sep is None and not any(";" in f for f in fields):
            k = next((k for k, f in enumerate(fields) if len(f.split()) > 1), None)
            if k is not None:
                raise DataFormatError(
                    f"{where[k]}: the label list {fields[k].strip()!r} holds spaces and no ';' occurs in the file: "
                    "add --dataset.label_sep space if labels are separated by spaces, or --dataset.label_sep ';' "
                    "if a label name holds a space")
        names, labels = label_matrix(fields, label_sep or ";", label_names, where=where)
    else:
        names = [header[j] for j in cols]
        try:
            labels = label_columns_checked(np.array([[r[j] for j in cols] for r in rows], dtype=str).reshape(len(rows), -1),
                                           names, where)
        except DataFormatError as e:
            raise DataFormatError(f"{e}, one column per label (for one column that lists names, name it 'labels' or "
                                  "add --dataset.label_sep)") from None
        if label_names is not None and list(label_names) != names:
            if sorted(label_names) != sorted(names):  # the same names in another order are matched by name
                raise ValueError(f"{source}: header labels {names} are not {list(label_names)} (missing: "
                                 f"{sorted(set(label_names) - set(names))}, extra: {sorted(set(names) - set(label_names))})")
            labels = labels[:, [names.index(n) for n in label_names]]
            names = list(label_names)
    return ImageList(paths=[image_dir / f for f in files], labels=labels, label_names=names, source=source,
                     where=where)


# ============================================================================ authors' HDF5
def read_image_hdf5(path: str | os.PathLike, *, name: str = "", chunk: int = 1024) -> MultiLabelDataset:
    """Read the MulSupCon authors' image HDF5 (``Image`` N x H x W x 3 uint8, ``target`` N x L).

    The pixels are read into memory in chunks and transposed to (N, 3, H, W) (N*H*W*3 bytes).

    Returns:
        ``MultiLabelDataset`` with uint8 features (N, 3, H, W) and labels (N, L) named
        ``label_0 .. label_{L-1}`` (the files carry no names).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"HDF5 file not found: {path}")
    with h5py.File(path, "r") as f:
        for key in ("Image", "target"):
            if key not in f:
                raise ValueError(f"{path}: missing dataset '{key}' (found: {sorted(f.keys())})")
        img, tgt = f["Image"], f["target"]
        if img.ndim != 4 or img.shape[-1] != 3:
            raise ValueError(f"{path}: 'Image' must be N x H x W x 3, found shape {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"{path}: 'Image' must be uint8, found {img.dtype}")
        n, h, w, _ = img.shape
        x = np.empty((n, 3, h, w), dtype=np.uint8)
        for s in range(0, n, chunk):
            x[s : s + chunk] = np.transpose(img[s : s + chunk], (0, 3, 1, 2))
        y = np.asarray(tgt[...])
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{path}: 'target' must be N x L with N = {n}, found shape {y.shape}")
    return MultiLabelDataset(
        features=x,
        labels=y,
        label_names=[f"label_{j}" for j in range(y.shape[1])],
        source=str(path),
        name=name or path.stem,
    )


# ============================================================================ COCO folders
def coco_layout(root: str | os.PathLike, split: str = "train2017") -> tuple[Path, Path]:
    """(annotation json, image folder) of a COCO-layout folder.

    Accepts ``annotations/instances_<split>.json`` with images in ``<split>/`` (the official
    layout) or in ``images/<split>/`` (e.g. the ``tiny_coco`` subsets).
    """
    root = Path(root)
    ann = root / "annotations" / f"instances_{split}.json"
    if not ann.is_file():
        raise ValueError(f"COCO annotation file not found: {ann}")
    for img_dir in (root / split, root / "images" / split):
        if img_dir.is_dir():
            return ann, img_dir
    raise ValueError(f"COCO image folder not found: neither {root / split} nor {root / 'images' / split} exists")
