"""Reading svmlight files against reading the same rows as ARFF, side by side in one run.

Usage::

    MULSUPCON_DATA=../shared/data PYTHONPATH=src python benchmarks/svmlight_load.py [--repeat 3]

Each set's ARFF is read, written by scikit-learn's ``dump_svmlight_file`` with the Extreme Classification
Repository's header (into a temporary folder), then both files are read alternately, ``--repeat`` times;
the best time of each is printed. Also printed: the time of ``read_svmlight``'s extra pass over the file
(the blank-line check scikit-learn's parser leaves out), and the time of scikit-learn's parser alone.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sklearn.datasets import dump_svmlight_file, load_svmlight_file

from mulsupcon.data import from_file
from mulsupcon.data.svmlight import _inner_blank_line, read_svmlight

SETS = (("bibtex", "bibtex/bibtex-train.arff", "bibtex/bibtex.xml"),
        ("delicious", "delicious/delicious-train.arff", "delicious/delicious.xml"),
        ("tmc2007-500", "tmc2007/tmc2007-500-train.arff", "tmc2007/tmc2007-500.xml"),
        ("imdb", "imdb/Imdb.arff.bz2", None))


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    home = Path(os.environ.get("MULSUPCON_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    print("| set | rows x features, labels | svmlight MB | ARFF s | svmlight s | of which: scikit-learn's parser s | "
          "blank-line pass s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, arff, xml in SETS:
            if not (home / arff).is_file():
                print(f"| {name} | (not in {home}) | | | | | |")
                continue
            read_arff = lambda: from_file(home / arff, xml=home / xml if xml else None)  # noqa: E731
            ds = read_arff()
            path = Path(tmp) / f"{name}.txt"
            with open(path, "wb") as f:
                f.write(f"{ds.n_samples} {ds.n_features} {ds.n_labels}\n".encode())
                dump_svmlight_file(ds.features, ds.labels, f, multilabel=True, zero_based=True)

            def sklearn_only() -> None:
                with open(path, "rb") as f:
                    f.readline()
                    load_svmlight_file(f, n_features=ds.n_features, multilabel=True, zero_based=True)

            t_arff = t_svm = t_sk = t_blank = float("inf")
            for _ in range(args.repeat):  # alternated, so that a drift of the machine hits both
                t_arff = min(t_arff, _best(read_arff, 1))
                t_svm = min(t_svm, _best(lambda: read_svmlight(path), 1))
                t_sk = min(t_sk, _best(sklearn_only, 1))
                t_blank = min(t_blank, _best(lambda: _inner_blank_line(path), 1))
            print(f"| {name} | {ds.n_samples} x {ds.n_features}, {ds.n_labels} | {path.stat().st_size / 1e6:.1f} | "
                  f"{t_arff:.2f} | {t_svm:.2f} | {t_sk:.2f} | {t_blank:.3f} |")


if __name__ == "__main__":
    main()
