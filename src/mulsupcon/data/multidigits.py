"""``multidigits``: a small real multi-label image dataset that needs no download.

Built from scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``: 1797
greyscale 8x8 scans of the digits 0-9, pixel values 0..16).

Construction (all randomness from ``numpy.random.default_rng`` streams derived from ``seed``):

1. **Disjoint sources.** The 1797 source images are split per digit class into 60% / 20% / 20%
   pools for train / val / test. A canvas of one split only ever uses images of that split's pool,
   so no handwritten scan is shared between splits. This split depends on ``seed`` only (not on the
   variant), so a model pretrained on ``digits`` train and evaluated on ``attributes`` test never
   sees a test scan either.
2. **Canvases.** Each sample is a ``grid x grid`` board of 8x8 cells (24x24 pixels for ``grid=3``).
   It holds ``k`` digit images, ``k`` in 1..4 with probabilities 0.05 / 0.20 / 0.35 / 0.40
   (capped at ``grid*grid``), placed in ``k`` distinct random cells; other cells stay black.
3. **Label structure.** Each canvas first draws one latent *theme* uniformly from
   ``THEMES`` (loops {0,6,8,9}, strokes {1,4,7}, curves {2,3,5}, evens {0,2,4,6,8},
   odds {1,3,5,7,9}); each of its ``k`` digits is drawn from the theme with probability 0.85 and
   uniformly from 0..9 otherwise (noise). Digits may repeat. Labels therefore co-occur far more
   often than independence predicts (e.g. 1 with 4 and 7), which is the structure MulSupCon's
   label-overlap positives can exploit. Each digit's scan is drawn at random from its split's
   pool of that class.
4. **Pixels.** Values are scaled 0..16 -> 0..255 (rounded) and stored as ``uint8`` images of shape
   (N, 1, 8*grid, 8*grid).

Variants (same kind of canvases, different label spaces, different canvases per variant):

- ``digits``: 10 labels ``digit_0 .. digit_9``, label = the set of digits drawn (cardinality
  about 2.4).
- ``attributes``: 10 labels computed from the drawn multiset: has_even, has_odd, has_small (<5),
  has_large (>=5), has_prime (2,3,5,7), has_zero, has_loop (0,6,8,9), has_pair (a digit drawn at
  least twice), count_ge3 (3 or more digits), sum_ge15 (digit sum >= 15). For transfer
  experiments: pretrain on ``digits``, probe on ``attributes``.

The generator's own record of what it drew (theme, digits, source image index and cell of every
placed digit) is kept in ``Splits.info["records"]`` so the labels can be checked independently.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from mulsupcon.data.dataset import MultiLabelDataset, Splits

CELL = 8  # sklearn digits are 8x8
MAX_DIGITS = 4
# Probability of drawing k = 1, 2, 3, 4 digits on one canvas (mean 3.1 placed digits; with
# repeats the mean number of distinct digits is about 2.4, close to MS-COCO's 2.9).
COUNT_PROBS = np.array([0.05, 0.20, 0.35, 0.40])
THEME_PROB = 0.85  # a digit comes from the canvas's theme with this probability, else uniform
THEMES: dict[str, tuple[int, ...]] = {
    "loops": (0, 6, 8, 9),
    "strokes": (1, 4, 7),
    "curves": (2, 3, 5),
    "evens": (0, 2, 4, 6, 8),
    "odds": (1, 3, 5, 7, 9),
}
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # source-image pools for train / val / test

VARIANTS: dict[str, str] = {
    "digits": "10 labels digit_0..digit_9: which digits appear on the canvas",
    "attributes": (
        "10 labels about the drawn digits: has_even, has_odd, has_small(<5), has_large(>=5), "
        "has_prime, has_zero, has_loop(0/6/8/9), has_pair (a digit twice), count_ge3, sum_ge15"
    ),
}

_PRIMES = (2, 3, 5, 7)
_LOOPS = (0, 6, 8, 9)


def _digit_counts_to_digits(counts: np.ndarray) -> np.ndarray:
    """(N, 10) digit counts -> (N, 10) multi-hot 'digit present'."""
    return (counts > 0).astype(np.uint8)


def _digit_counts_to_attributes(counts: np.ndarray) -> np.ndarray:
    """(N, 10) digit counts -> (N, 10) attribute multi-hot (column order of ATTRIBUTE_NAMES)."""
    present = counts > 0
    values = np.arange(10)
    cols = [
        present[:, values % 2 == 0].any(1),
        present[:, values % 2 == 1].any(1),
        present[:, values < 5].any(1),
        present[:, values >= 5].any(1),
        present[:, list(_PRIMES)].any(1),
        present[:, 0],
        present[:, list(_LOOPS)].any(1),
        (counts >= 2).any(1),
        counts.sum(1) >= 3,
        (counts * values).sum(1) >= 15,
    ]
    return np.stack(cols, 1).astype(np.uint8)


ATTRIBUTE_NAMES = [
    "has_even", "has_odd", "has_small", "has_large", "has_prime",
    "has_zero", "has_loop", "has_pair", "count_ge3", "sum_ge15",
]
_LABELERS: dict[str, tuple[list[str], Callable[[np.ndarray], np.ndarray]]] = {
    "digits": ([f"digit_{d}" for d in range(10)], _digit_counts_to_digits),
    "attributes": (ATTRIBUTE_NAMES, _digit_counts_to_attributes),
}


@lru_cache(maxsize=1)
def _source_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits as ((1797, 8, 8) uint8 in 0..255, (1797,) int64 class), loaded once."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images.setflags(write=False)
    target = np.asarray(bunch.target, dtype=np.int64)
    target.setflags(write=False)
    return images, target


def _split_sources(target: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Per-class 60/20/20 split of source indices -> [train, val, test] sorted index arrays."""
    parts: list[list[np.ndarray]] = [[], [], []]
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(target == d))
        n_tr = int(round(SPLIT_FRACTIONS[0] * len(idx)))
        n_va = int(round(SPLIT_FRACTIONS[1] * len(idx)))
        parts[0].append(idx[:n_tr])
        parts[1].append(idx[n_tr : n_tr + n_va])
        parts[2].append(idx[n_tr + n_va :])
    return [np.sort(np.concatenate(p)) for p in parts]


def _draw_canvases(
    n: int, pool: np.ndarray, target: np.ndarray, images: np.ndarray, grid: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw ``n`` canvases from the source indices ``pool``.

    Returns:
        images: (n, 1, 8*grid, 8*grid) uint8.
        record: ``theme`` (n,), and ``digits``, ``sources``, ``cells`` (n, 4) int arrays padded
        with -1 (digit value, source image index into ``load_digits``, cell index row-major).
    """
    n_cells = grid * grid
    max_k = min(MAX_DIGITS, n_cells)
    probs = COUNT_PROBS[:max_k] / COUNT_PROBS[:max_k].sum()
    by_class = [pool[target[pool] == d] for d in range(10)]
    theme_list = list(THEMES.values())

    ks = rng.choice(np.arange(1, max_k + 1), size=n, p=probs)
    themes = rng.integers(0, len(theme_list), size=n)
    digits = np.full((n, MAX_DIGITS), -1, dtype=np.int64)
    sources = np.full((n, MAX_DIGITS), -1, dtype=np.int64)
    cells = np.full((n, MAX_DIGITS), -1, dtype=np.int64)
    for i in range(n):
        k = int(ks[i])
        members = theme_list[themes[i]]
        from_theme = rng.random(k) < THEME_PROB
        d = np.where(from_theme, rng.choice(members, size=k), rng.integers(0, 10, size=k))
        digits[i, :k] = d
        sources[i, :k] = [by_class[v][rng.integers(len(by_class[v]))] for v in d]
        cells[i, :k] = rng.permutation(n_cells)[:k]

    side = CELL * grid
    canvas = np.zeros((n, side, side), dtype=np.uint8)
    # Paste all placed digits at once: (sample, cell) pairs -> their 8x8 block.
    rows, slots = np.nonzero(digits >= 0)
    cell = cells[rows, slots]
    r0, c0 = (cell // grid) * CELL, (cell % grid) * CELL
    blocks = images[sources[rows, slots]]  # (P, 8, 8)
    yy = r0[:, None, None] + np.arange(CELL)[None, :, None]
    xx = c0[:, None, None] + np.arange(CELL)[None, None, :]
    canvas[rows[:, None, None], yy, xx] = blocks
    record = {"theme": themes.astype(np.int64), "digits": digits, "sources": sources, "cells": cells}
    return canvas[:, None], record


def digit_counts(digits: np.ndarray) -> np.ndarray:
    """(N, 4) drawn digit values padded with -1 -> (N, 10) int64 count of each digit."""
    n = digits.shape[0]
    counts = np.zeros((n, 10), dtype=np.int64)
    rows, slots = np.nonzero(digits >= 0)
    np.add.at(counts, (rows, digits[rows, slots]), 1)
    return counts


def make_multidigits(
    seed: int = 0,
    variant: str = "digits",
    n_train: int = 3000,
    n_val: int = 1000,
    n_test: int = 1000,
    grid: int = 3,
) -> Splits:
    """Generate the ``multidigits`` dataset (see the module docstring for the construction).

    Args:
        seed: everything is a deterministic function of it (same seed -> byte-identical arrays).
        variant: a key of ``VARIANTS`` (``"digits"`` or ``"attributes"``).
        n_train, n_val, n_test: number of canvases per split (``n_val=0`` -> ``val=None``).
        grid: canvas is ``grid x grid`` cells of 8x8 pixels (>= 2).

    Returns:
        ``Splits`` whose datasets hold uint8 features (N, 1, 8*grid, 8*grid) and (N, 10) labels;
        ``info`` records the seed, variant, the source-image indices of each split
        (``info["source_indices"][split]``) and the generator's per-canvas record
        (``info["records"][split]``: ``theme`` (N,), ``digits``/``sources``/``cells`` (N, 4)).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown multidigits variant '{variant}'; known: {', '.join(VARIANTS)}")
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test), ("seed", seed)):
        if int(value) != value or value < 0:
            raise ValueError(f"multidigits: {name} must be a non-negative integer, got {value!r}")
    if int(grid) != grid or grid < 2:
        raise ValueError(f"multidigits: grid must be an integer >= 2 (cells per side), got {grid!r}")
    grid = int(grid)
    images, target = _source_digits()
    # Independent streams: the source split depends on the seed alone; canvases also on the variant
    # (so 'attributes' canvases are not the 'digits' canvases relabelled).
    split_ss, canvas_root = np.random.SeedSequence(int(seed)).spawn(2)
    pools = _split_sources(target, np.random.default_rng(split_ss))
    variant_ss = np.random.SeedSequence(
        entropy=canvas_root.entropy, spawn_key=canvas_root.spawn_key + (list(VARIANTS).index(variant),)
    )
    streams = variant_ss.spawn(3)
    names, labeler = _LABELERS[variant]
    split_names = ("train", "val", "test")
    sizes = (int(n_train), int(n_val), int(n_test))
    parts: dict[str, MultiLabelDataset | None] = {}
    records: dict[str, dict[str, np.ndarray]] = {}
    ds_name = "multidigits" if variant == "digits" else f"multidigits-{variant}"
    for split, n, pool, ss in zip(split_names, sizes, pools, streams):
        if split == "val" and n == 0:
            parts[split] = None
            continue
        x, record = _draw_canvases(n, pool, target, images, grid, np.random.default_rng(ss))
        labels = labeler(digit_counts(record["digits"]))
        records[split] = record
        parts[split] = MultiLabelDataset(
            features=x,
            labels=labels,
            label_names=list(names),
            source=(
                f"sklearn.datasets.load_digits -> make_multidigits(seed={seed}, "
                f"variant='{variant}', grid={grid}) [{split}]"
            ),
            name=ds_name,
        )
    info = {
        "generator": "multidigits",
        "seed": int(seed),
        "variant": variant,
        "grid": grid,
        "source_indices": dict(zip(split_names, pools)),
        "records": records,
        "themes": {k: list(v) for k, v in THEMES.items()},
    }
    return Splits(train=parts["train"], val=parts["val"], test=parts["test"], info=info)


def to_vectors(ds: MultiLabelDataset) -> MultiLabelDataset:
    """Flatten an image dataset for vector models.

    Args:
        ds: images (N, C, H, W) uint8.

    Returns:
        The same labels with features (N, C*H*W) float32 in [0, 1] (pixel / 255) and feature
        names ``px_<row>_<col>`` (one channel) or ``c<k>_<row>_<col>``.
    """
    if not ds.is_image:
        raise ValueError(
            f"to_vectors expects image features (N, C, H, W); dataset '{ds.name}' has features of "
            f"shape {tuple(ds.features.shape)}"
        )
    x = np.asarray(ds.features)
    n, c, h, w = x.shape
    flat = x.reshape(n, c * h * w).astype(np.float32) / 255.0
    if c == 1:
        fnames = [f"px_{r}_{q}" for r in range(h) for q in range(w)]
    else:
        fnames = [f"c{k}_{r}_{q}" for k in range(c) for r in range(h) for q in range(w)]
    return MultiLabelDataset(
        features=flat,
        labels=ds.labels.copy(),
        label_names=list(ds.label_names),
        feature_names=fnames,
        source=ds.source,
        name=ds.name,
    )
