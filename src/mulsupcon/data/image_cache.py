"""The one-time preprocessing cache of image datasets: decode once, memory-map afterwards.

As in the paper ("all images are first resized to 224x224 before training for easier storage and
speedy training"), ``build_image_cache`` decodes every image of an :class:`~.image_layouts.ImageList`
once (PIL, RGB), resizes it DIRECTLY to ``size x size`` (bilinear, aspect ratio not kept; random crops
during training then work on the whole image), and stores the pixels as uint8 (N, 3, S, S) in a
memory-mapped ``.npy`` with a small JSON sidecar. The next call with the same inputs reuses the file
without decoding anything; any change of the inputs (paths, the bytes of any image file, labels,
label names, size) changes the fingerprint and triggers a rebuild. ``load_coco_dir``: a COCO-layout
folder straight to a cached dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from mulsupcon.data.dataset import MultiLabelDataset

from .download import sha256_file
from .image_layouts import ImageList, coco_layout, read_coco

CACHE_FORMAT = "mulsupcon-image-cache"
CACHE_VERSION = 2  # 2: the fingerprint hashes file contents
RESIZE_METHOD = "direct-bilinear"  # part of the fingerprint: changing it must invalidate caches

# ============================================================================ the cache
def decode_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one image file -> (3, size, size) uint8 (RGB, direct bilinear resize)."""
    from PIL import Image

    with Image.open(path) as im:
        # JPEG only: decode at a reduced DCT scale that still is >= size (much faster, same result
        # quality after the downscale below).
        im.draft(im.mode, (size, size))
        rgb = im.convert("RGB")  # forces the full decode: truncated files fail here
    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _fingerprint(images: ImageList, size: int) -> str:
    """Hash of everything the cached pixels and labels depend on."""
    h = hashlib.sha256()
    meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "size": int(size), "resize": RESIZE_METHOD,
            "names": images.label_names, "labels_shape": list(images.labels.shape)}
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(np.ascontiguousarray(images.labels).tobytes())
    # Keyed on each file's CONTENT, not its size and modification time: an image rewritten in place
    # with the same size and mtime (restored by a sync tool, `touch -d`) must not reuse stale pixels.
    # Cost, measured (benchmarks/README.md): sha256 reads ~1.3 GB/s from the page cache, 0.04 s for
    # the 357 images (56 MB) of the COCO subsets; about 15 s for COCO train2017 (18 GB), a fraction
    # of one decoding pass.
    for p in images.paths:
        try:
            stamp = sha256_file(p)
        except OSError:
            stamp = "missing"
        h.update(f"{os.path.abspath(p)}\0{stamp}\n".encode())
    return h.hexdigest()


def _sidecar_path(cache_path: Path) -> Path:
    return cache_path.with_suffix(".json")


def _cache_paths(cache_path: str | os.PathLike) -> tuple[Path, Path]:
    cache_path = Path(cache_path)
    if cache_path.suffix != ".npy":
        cache_path = cache_path.with_name(cache_path.name + ".npy")
    return cache_path, _sidecar_path(cache_path)


def load_image_cache(cache_path: str | os.PathLike, *, name: str = "") -> MultiLabelDataset:
    """Open a cache written by ``build_image_cache`` without its inputs (features memory-mapped).

    Returns:
        ``MultiLabelDataset`` with features (N, 3, S, S) uint8 memmap and the cached labels.
    """
    npy, side = _cache_paths(cache_path)
    if not npy.is_file() or not side.is_file():
        raise ValueError(f"no image cache at {npy} (needs {npy.name} and {side.name})")
    with open(side, encoding="utf-8") as fh:
        meta = json.load(fh)
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"{side}: not a mulsupcon image cache sidecar")
    feats = np.load(npy, mmap_mode="r")
    labels = np.zeros((len(meta["labels"]), len(meta["label_names"])), dtype=np.uint8)
    for r, cols in enumerate(meta["labels"]):
        labels[r, cols] = 1
    return MultiLabelDataset(
        features=feats, labels=labels, label_names=meta["label_names"],
        source=f"{meta.get('source', '')} (cache {npy})", name=name,
    )


def _warn_skipped(skipped: list, n_input: int, npy: Path) -> None:
    first = "; ".join(f"{s['path']} ({s['error']})" for s in skipped[:3])
    warnings.warn(
        f"image cache {npy}: skipped {len(skipped)} unreadable image(s) of {n_input} (their label rows "
        f"dropped too); first: {first}",
        stacklevel=3,
    )


def decode_errors() -> tuple[type[BaseException], ...]:
    """What decoding an unreadable, truncated or missing image raises (the file system and PIL, imported
    only when images are read)."""
    from PIL import Image

    return (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


#: What an error about an unreadable or missing image adds: how to leave such images out.
SKIP_HINT = "--dataset.skip_corrupt true leaves out unreadable or missing images (from Python: skip_corrupt=True)"


def build_image_cache(
    images: ImageList,
    cache_path: str | os.PathLike,
    *,
    size: int = 224,
    skip_corrupt: bool = False,
    progress: bool = True,
    name: str = "",
) -> MultiLabelDataset:
    """Decode, resize and store ``images`` once; reuse the stored file when the inputs are unchanged.

    Every image is decoded with PIL, converted to RGB and resized directly to ``size x size``
    (bilinear; see the module docstring). Pixels go to ``cache_path`` (``.npy``, uint8
    (N, 3, size, size), memory-mapped when read back), and a JSON sidecar next to it
    (``<cache>.json``) records the labels (as column-index lists), label names, source paths,
    size, skipped files and a fingerprint of the inputs. Both are written to temporary names and
    moved into place with ``os.replace``, so an interrupted build never leaves a cache that looks
    complete.

    Args:
        images: what to cache (from one of the readers).
        cache_path: the ``.npy`` file to write (``.npy`` is appended if missing).
        size: output side length.
        skip_corrupt: skip unreadable/missing images with one warning giving the count (their
            rows are dropped from the labels too) instead of raising.
        progress: show a tqdm progress bar on stderr while building.
        name: dataset name for the returned object.

    Returns:
        ``MultiLabelDataset`` whose features are the read-only memmap (N_kept, 3, size, size).

    Raises:
        ValueError: an image cannot be read (naming the file and its row), unless ``skip_corrupt``.
    """
    if int(size) != size or size < 1:
        raise ValueError(f"cache size must be a positive integer, got {size!r}")
    size = int(size)
    if len(images) == 0:
        raise ValueError(f"{images.source or 'ImageList'}: no images to cache")
    npy, side = _cache_paths(cache_path)
    fp = _fingerprint(images, size)
    if npy.is_file() and side.is_file():
        try:
            with open(side, encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, json.JSONDecodeError):
            meta = {}
        # A cache that dropped unreadable images only serves callers that allow skipping; with
        # skip_corrupt=False the rebuild below raises the error naming the file.
        if meta.get("fingerprint") == fp and (skip_corrupt or not meta.get("skipped")):
            ds = load_image_cache(npy, name=name)
            if ds.features.shape[1:] == (3, size, size) and ds.n_samples == len(meta.get("rows", [])):
                if meta.get("skipped"):
                    _warn_skipped(meta["skipped"], len(images), npy)
                return ds
    npy.parent.mkdir(parents=True, exist_ok=True)
    tag = f".{os.getpid()}.tmp"
    tmp_npy = npy.with_name(npy.stem + tag + ".npy")
    tmp_small = npy.with_name(npy.stem + tag + "2.npy")
    tmp_side = side.with_name(side.name + tag)
    try:
        rows, skipped = _write_pixels(images, tmp_npy, size, skip_corrupt, progress)
        if not rows:
            raise ValueError(f"{images.source}: none of the {len(images)} images could be read")
        if skipped:
            # Compact the kept rows into a file of the right length (the header fixes N).
            from numpy.lib.format import open_memmap

            src = np.load(tmp_npy, mmap_mode="r")
            dst = open_memmap(tmp_small, mode="w+", dtype=np.uint8, shape=(len(rows), 3, size, size))
            for s in range(0, len(rows), 512):
                e = min(s + 512, len(rows))
                dst[s:e] = src[s:e]
            dst.flush()
            del src, dst
            os.replace(tmp_small, tmp_npy)
        kept_labels = images.labels[rows]
        meta = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "fingerprint": fp,
            "size": size,
            "resize": RESIZE_METHOD,
            "skip_corrupt": bool(skip_corrupt),
            "source": images.source,
            "label_names": images.label_names,
            "n_input": len(images),
            "rows": rows,
            "paths": [str(images.paths[r]) for r in rows],
            "labels": [np.flatnonzero(y).tolist() for y in kept_labels],
            "skipped": skipped,
        }
        with open(tmp_side, "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
        # Order matters: drop the old sidecar first so a crash in between never pairs an old
        # sidecar (with a matching fingerprint) with new pixels, or vice versa.
        if side.exists():
            side.unlink()
        os.replace(tmp_npy, npy)
        os.replace(tmp_side, side)
    finally:
        for t in (tmp_npy, tmp_small, tmp_side):
            if t.exists():
                t.unlink()
    if skipped:
        _warn_skipped(skipped, len(images), npy)
    return load_image_cache(npy, name=name)


def _write_pixels(
    images: ImageList, tmp_npy: Path, size: int, skip_corrupt: bool, progress: bool
) -> tuple[list[int], list[dict]]:
    """Decode all images into ``tmp_npy`` (rows packed in order); returns (kept rows, skipped)."""
    from numpy.lib.format import open_memmap
    from tqdm import tqdm

    out = open_memmap(tmp_npy, mode="w+", dtype=np.uint8, shape=(len(images), 3, size, size))
    rows: list[int] = []
    skipped: list[dict] = []
    try:
        bar = tqdm(images.paths, desc=f"caching {len(images)} images at {size}px", unit="img",
                   file=sys.stderr, disable=not progress, dynamic_ncols=True)
        for i, p in enumerate(bar):
            try:
                out[len(rows)] = decode_image(p, size)
            except decode_errors() as err:
                reason = f"{type(err).__name__}: {err}"
                if not skip_corrupt:
                    raise ValueError(
                        f"cannot read image {p} ({images.row_origin(i)}): {reason}; "
                        f"{SKIP_HINT}"
                    ) from err
                skipped.append({"row": i, "path": str(p), "error": reason})
                continue
            rows.append(i)
        out.flush()
    finally:
        del out
    return rows, skipped


def load_coco_dir(
    root: str | os.PathLike,
    split: str = "train2017",
    *,
    cache_dir: str | os.PathLike,
    size: int = 224,
    keep_empty: bool = True,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> MultiLabelDataset:
    """A COCO-layout folder as a cached ``MultiLabelDataset`` (uint8 (N, 3, size, size) memmap).

    Layout: see ``coco_layout``. The cache file is
    ``<cache_dir>/<folder name>-<split>-<size>-<hash of the folder path>.npy``.
    """
    root = Path(root)
    ann, img_dir = coco_layout(root, split)
    images = read_coco(ann, img_dir, keep_empty=keep_empty)
    tag = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:8]
    empty = "" if keep_empty else "-nonempty"
    cache = Path(cache_dir) / f"{root.name}-{split}-{size}{empty}-{tag}.npy"
    return build_image_cache(images, cache, size=size, skip_corrupt=skip_corrupt, progress=progress,
                             name=f"{root.name}-{split}")
