"""Load every dataset file in the data home with the project's readers and time it.

Usage::

    PYTHONPATH=src python benchmarks/load_times.py [--data DIR] [--repeat 3] [--markdown]

``DIR`` defaults to ``$MULSUPCON_DATA`` or ``../shared/data``.  Every ``*.arff``,
``*.arff.bz2``/``.gz`` and ``*.hdf5`` file one level below it is read: Mulan files with their
folder's ``.xml`` when it names labels of the file, MEKA files (``-C n`` relation) without.
The time reported is the best of ``--repeat`` runs (one run for files over 10 MB on disk or
over 50,000 rows), wall clock, including decompression.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from mulsupcon.data.arff import parse_arff_header, read_arff, read_bytes, read_mulan_xml
from mulsupcon.data.dataset import MultiLabelDataset
from mulsupcon.data.formats import read_hdf5


def _data_home(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("MULSUPCON_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _loader(path: Path):
    """A zero-argument callable reading ``path`` and a short text saying how."""
    if path.suffix == ".hdf5":
        return (lambda: read_hdf5(path)), "read_hdf5"
    xmls = sorted(path.parent.glob("*.xml"))
    if xmls:
        names = set(a.name for a in parse_arff_header(read_bytes(path), str(path)).attributes)
        if set(read_mulan_xml(xmls[0])) <= names:
            return (lambda: read_arff(path, xml=xmls[0])), f"read_arff(xml={xmls[0].name})"
    return (lambda: read_arff(path)), "read_arff (MEKA -C n)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="data home (default $MULSUPCON_DATA or ../shared/data)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per file; the best is reported")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    home = _data_home(args.data)
    if not home.is_dir():
        print(f"data home {home} not found", file=sys.stderr)
        return 2
    files = sorted(
        p for p in home.glob("*/*")
        if p.name.endswith((".arff", ".arff.bz2", ".arff.gz", ".hdf5"))
    )
    rows = []
    for p in files:
        fn, how = _loader(p)
        best = float("inf")
        ds: MultiLabelDataset | None = None
        n_runs = args.repeat
        for k in range(max(1, n_runs)):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = fn()
            best = min(best, time.perf_counter() - t0)
            if p.stat().st_size > 10e6 or ds.n_samples > 50_000:
                break  # large file: one run is enough
        assert ds is not None
        stored = ds.features.nnz if ds.is_sparse else int(np.prod(ds.features.shape))
        rows.append((
            str(p.relative_to(home)), how, ds.n_samples, ds.n_features, ds.n_labels,
            "csr" if ds.is_sparse else "dense", stored / max(1, ds.n_samples * ds.n_features),
            ds.label_cardinality, p.stat().st_size / 1e6, best,
        ))
    head = ("file", "reader", "rows", "features", "labels", "kind", "density", "card", "MB on disk", "load s")
    if args.markdown:
        print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}, numpy {np.__version__}; best of {args.repeat} runs "
              "(1 for files > 10 MB or > 50k rows).\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:.4f} | {r[7]:.3f} | {r[8]:.2f} | {r[9]:.3f} |")
    else:
        for r in rows:
            print(f"{r[0]:42s} {r[2]:7d} x {r[3]:5d}  L={r[4]:4d} {r[5]:5s} card={r[7]:7.3f} {r[9]:7.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
