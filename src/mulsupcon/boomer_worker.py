"""Fit BOOMER on one benchmark cell and write its probabilities (run by ``mulsupcon benchmark vectors``).

A standalone script, importing only numpy and ``mlrl-boomer`` (never torch or mulsupcon): mlrl-boomer
0.12.3 requires ``scikit-learn<1.8``, older than the scikit-learn this package is tested with, so it
usually lives in an environment of its own, which needs nothing else::

    python3 -m venv .venv-boomer && .venv-boomer/bin/pip install mlrl-boomer
    mulsupcon benchmark vectors --boomer-python .venv-boomer/bin/python ...

Usage: ``python boomer_worker.py IN.npz OUT.npz``. IN holds ``x_train`` (N, F) float32, ``y_train``
(N, L) uint8, ``x_val`` (Nv, F), ``x_test`` (Nt, F) and ``seed``; OUT gets ``val_scores`` (Nv, L)
and ``test_scores`` (Nt, L), BOOMER's marginal probabilities of each label, and ``version``. BOOMER
runs with its defaults (as a user would run it), ``random_state=seed + 1`` (it takes seeds >= 1), on
the features that are not constant on the training rows (see below). Exit status 3: mlrl-boomer is
not importable in this interpreter.
"""

import sys
from importlib import metadata

import numpy as np


def _version() -> str:
    try:
        return metadata.version("mlrl-boomer")
    except metadata.PackageNotFoundError:  # importable without its distribution's metadata
        return "unknown"


def main(argv: list[str]) -> int:
    """``boomer_worker.py IN.npz OUT.npz``: fit BOOMER on IN's training rows, write the validation and
    test probabilities (N, L) to OUT. Exit status 2: wrong usage, 3: mlrl-boomer not installed."""
    if len(argv) != 2:
        print("usage: boomer_worker.py IN.npz OUT.npz", file=sys.stderr)
        return 2
    try:
        from mlrl.boosting import BoomerClassifier
    except ImportError as e:
        print(f"mlrl-boomer is not installed in {sys.executable} ({e}); create an environment for it: "
              "python3 -m venv .venv-boomer && .venv-boomer/bin/pip install mlrl-boomer, then pass "
              "--boomer-python .venv-boomer/bin/python", file=sys.stderr)
        return 3
    with np.load(argv[0]) as z:
        x_train, y_train, x_val, x_test = (z[k] for k in ("x_train", "y_train", "x_val", "x_test"))
        seed = int(z["seed"])
    # mlrl-boomer 0.12.3 learns no rule at all when some features are constant on the training rows
    # (genbase, 2190 of its 2370 columns: the same probabilities for every row, mAP 0.05; with those
    # columns dropped it learns). A constant column tells no method anything, so dropping it changes
    # only that failure.
    varying = np.flatnonzero(x_train.min(0) < x_train.max(0))
    x_train, x_val, x_test = x_train[:, varying], x_val[:, varying], x_test[:, varying]
    model = BoomerClassifier(random_state=seed + 1)  # BOOMER's seeds start at 1
    model.fit(x_train, y_train)

    def probabilities(x: np.ndarray) -> np.ndarray:
        p = np.asarray(model.predict_proba(x), dtype=np.float64)
        if p.shape != (len(x), y_train.shape[1]):  # we score (rows, labels); say so rather than guess
            raise ValueError(f"BOOMER's predict_proba gave shape {p.shape}, expected {(len(x), y_train.shape[1])}")
        return p

    # The output name gets a .npz suffix from numpy unless it has one; the caller names it so.
    np.savez(argv[1], val_scores=probabilities(x_val), test_scores=probabilities(x_test),
             version=_version())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
