"""Rebuild the derived datasets of benchmarks/README.md's `NAME=PATH` checks from the data home, as NPZ files.

    MULSUPCON_DATA=../shared/data python benchmarks/derived_sets.py OUTDIR [NAME ...]
    mulsupcon benchmark vectors --datasets scene600=OUTDIR/scene600.npz --seeds 0 1 2 --work runs/small

Each file holds X (N, F) float32 and Y (N, C) uint8. The harness carves its own test and validation rows.
- imdb2000, imdb10000: N random IMDB rows, drawn by ``default_rng(12345)`` and kept in file order.
  They are a medium-sized sparse set (1,001 binary word features, 28 genres).
- bibtex1700: 1,700 random bibtex rows (train and test pooled, drawn by ``default_rng(12345)``, kept in
  draw order): a sparse text set of enron's size (1,836 binary word features, 159 tags).
- scene600, scene900, scene1200 and the same for yeast: N random rows, drawn by ``default_rng(12345)`` and kept in
  draw order, from train and test pooled, with all labels. They show how the methods compare as the
  training set shrinks.
- scene3rare: every scene row, only its 3 rarest labels. It is a second case with rows that have no label
  (51% of them).
- bibtex-lsa, corel5k-lsa, imdb10000-lsa: every row of the set (bibtex and corel5k: train and test
  pooled, in file order; imdb10000: the rows of imdb10000 above) as a dense 256-dimensional embedding:
  TF-IDF weights of its binary features (words; corel5k's visual words), then a truncated SVD (latent
  semantic analysis; scikit-learn, ``random_state=0``) fitted on all rows without their labels. They
  stand for the dense embeddings users bring (a text or image encoder's outputs), built from data we have.
The sha256 printed for each file can be checked against the one the benchmark cells recorded (a rerun
into the same ``--work`` refuses a file whose hash differs).
"""

import argparse
from pathlib import Path

import numpy as np

from mulsupcon.data.download import sha256_file
from mulsupcon.data.registry import load

SIZES = {"imdb2000": ("imdb", 2000), "imdb10000": ("imdb", 10000), "bibtex1700": ("bibtex", 1700),
         **{f"{s}{n}": (s, n) for s in ("scene", "yeast") for n in (600, 900, 1200)}}
LSA = {"bibtex-lsa": "bibtex", "corel5k-lsa": "corel5k", "imdb10000-lsa": "imdb10000"}
NAMES = (*SIZES, "scene3rare", *LSA)


def build(name: str) -> tuple[np.ndarray, np.ndarray]:
    """X (N, F) float32 and Y (N, C) uint8 of one derived set."""
    if name == "scene3rare":
        ds = load("scene", "all")
        keep = np.argsort(ds.labels.mean(0))[:3]  # the 3 rarest labels
        return ds.dense_features(), ds.labels[:, keep].astype(np.uint8)
    if name in LSA:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfTransformer

        source = LSA[name]
        if source in SIZES:
            features, labels = build(source)
        else:
            ds = load(source, "all")
            features, labels = ds.dense_features(), ds.labels
        tfidf = TfidfTransformer().fit_transform(features)
        x = TruncatedSVD(n_components=256, random_state=0).fit_transform(tfidf)
        return x.astype(np.float32), labels.astype(np.uint8)
    source, n = SIZES[name]
    ds = load(source, "all")
    rows = np.random.default_rng(12345).choice(ds.n_samples, n, replace=False)
    if source == "imdb":
        rows = np.sort(rows)
    part = ds.subset(rows)
    return part.dense_features(), part.labels.astype(np.uint8)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the NPZ files")
    ap.add_argument("names", nargs="*", help=f"default: all ({', '.join(NAMES)})")
    args = ap.parse_args()
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        ap.error(f"unknown set(s) {', '.join(unknown)}; expected some of {', '.join(NAMES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or NAMES:
        x, y = build(name)
        path = args.out / f"{name}.npz"
        np.savez_compressed(path, X=x, Y=y)
        digest = sha256_file(path)
        print(f"{path}: {x.shape[0]} rows, {x.shape[1]} features, {y.shape[1]} labels, "
              f"{(y.sum(1) == 0).mean():.0%} without a label, sha256 {digest}")
