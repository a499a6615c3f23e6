"""The six multi-label metrics of the MulSupCon paper, and three ways of choosing thresholds.

Metrics (paper order): mAP, Hamming accuracy (HA), example-F1, macro-F1, micro-F1, precision@1.
mAP and precision@1 are computed from the scores directly; the other four need binary predictions,
obtained by thresholding the scores.

Inputs everywhere are ``scores`` of shape (N, C) (probabilities in [0, 1] where a threshold is applied)
and ``targets`` of shape (N, C) with entries in {0, 1}; numpy arrays or torch tensors (any device, any
float dtype; they are copied to float64 / bool numpy arrays first).

Conventions (each one is tested in ``tests/test_metrics.py``):

* **Thresholding**: a label is predicted positive when ``score >= threshold`` (greater *or equal*). This is
  what the authors' evaluation code does (adapted from C-GMVAE: ``p[p < t] = 0; p[p >= t] = 1``). The
  comparison is made in float64, so a float32 score 0.3f (= 0.30000001...) counts as >= 0.3.
* **mAP**: mean over classes of scikit-learn's average precision,
  ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score values (tied scores form one step, exactly as
  ``sklearn.metrics.average_precision_score``). Classes with *no positive* in the evaluated set have no
  defined AP; by default they are EXCLUDED from the mean and their number is reported
  (``evaluate`` returns ``mAP_classes`` and ``mAP_excluded_classes``). The authors' code calls
  ``average_precision_score(average=None)`` and averages everything: scikit-learn >= 1.x returns 0 for such
  a class (with a warning), older versions nan. ``empty_classes="zero"`` reproduces the former.
  If no class has a positive, mAP is nan.
* **Hamming accuracy**: ``1 - mean(y != y_hat)`` over all N*C entries (= ``1 - sklearn hamming_loss``).
* **example-F1**: per sample ``2|y ∩ y_hat| / (|y| + |y_hat|)``, averaged over samples; samples whose truth
  AND prediction are both empty are DROPPED from the mean (the authors' / C-GMVAE convention). If every
  sample is dropped the result is nan. scikit-learn's ``f1_score(average="samples", zero_division=z)`` instead
  keeps those samples and scores them ``z``; both agree when no sample is empty-and-empty, and in general
  ``ours = (N * sk[z=1] - n_dropped) / (N - n_dropped)``.
* **macro-F1**: mean over ALL classes of ``2tp / (2tp + fp + fn)``; a class with no truth and no predicted
  positive (0/0) counts as 0. The authors compute ``2tp / (2tp + fp + fn + 1e-6)``, which gives the same 0
  for such classes; we compute exactly, without the epsilon. Equals sklearn ``average="macro",
  zero_division=0``.
* **micro-F1**: ``2 sum(tp) / (2 sum(tp) + sum(fp) + sum(fn))`` (0 when the denominator is 0) = sklearn
  ``average="micro", zero_division=0``.
* **precision@1**: fraction of samples whose top-scored label is a true label. Ties in the top score are
  broken by the LOWEST class index (``numpy.argmax``). A sample without any true label counts as wrong
  (as in the authors' code).

Threshold protocols of :func:`evaluate` (only HA, example-, macro- and micro-F1 depend on them):

* ``"fixed"``: the given ``threshold`` (default 0.5) for every metric.
* ``"validation"``: for each metric separately, the threshold of ``grid`` (default
  :data:`PAPER_THRESHOLDS` = 0.1, ..., 0.9) maximising that metric on ``(val_scores, val_targets)``; it is then
  applied to the evaluated (test) set. Ties go to the lowest threshold.
* ``"paper"``: for each metric separately, the best value over ``grid`` on the evaluated set itself
  (optimistic: the test set picks its own threshold; the C-GMVAE protocol the paper's numbers use).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "PAPER_THRESHOLDS",
    "THRESHOLDED_METRICS",
    "RANKING_METRICS",
    "PROTOCOLS",
    "evaluate",
    "mean_average_precision",
    "average_precision_per_class",
    "hamming_accuracy",
    "example_f1",
    "macro_f1",
    "micro_f1",
    "precision_at_1",
    "precision_at_k",
    "ndcg_at_k",
    "ranked_at",
    "binarize",
]

#: Thresholds searched by the "paper" and "validation" protocols: 0.1, 0.2, ..., 0.9 (i / 10 exactly).
PAPER_THRESHOLDS: tuple[float, ...] = tuple(i / 10 for i in range(1, 10))
#: Metrics computed on thresholded predictions (their threshold depends on the protocol).
THRESHOLDED_METRICS: tuple[str, ...] = ("hamming_accuracy", "example_f1", "macro_f1", "micro_f1")
#: Threshold-free metrics computed from the scores' ranking.
RANKING_METRICS: tuple[str, ...] = ("mAP", "precision_at_1")
PROTOCOLS: tuple[str, ...] = ("fixed", "validation", "paper")

# Classes processed together by the vectorised AP: bounds memory to about
# N * _AP_CLASS_CHUNK * 8 bytes per temporary (N=10000 -> 20 MB) without a Python loop per class.
_AP_CLASS_CHUNK = 256


# --------------------------------------------------------------------------------------------------
# Input conversion and validation
# --------------------------------------------------------------------------------------------------
def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor, SciPy sparse matrix or array, nested list) as a numpy array,
    on the CPU."""
    if hasattr(x, "toarray") and hasattr(x, "tocsr"):  # SciPy sparse (not imported: the command line's start-up)
        return x.toarray()  # a label matrix is often kept sparse; np.asarray would make it a 0-d object array
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor; avoid importing torch here
        t = x.detach().cpu()
        if t.dtype.is_floating_point:
            t = t.double()  # exact for float16/bfloat16/float32, which numpy cannot all take directly
        return t.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot convert {type(x).__name__} to an array ({exc})") from exc


def _check_2d(a: np.ndarray, name: str) -> None:
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (N, C), found shape {tuple(a.shape)}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: empty input, shape {tuple(a.shape)} (need N >= 1 samples and C >= 1 classes)")


def _as_scores(x: Any, name: str = "scores", probabilities: bool = False) -> np.ndarray:
    """Validated float64 (N, C) score array; ``probabilities`` also requires values in [0, 1]."""
    a = _to_numpy(x, name)
    _check_2d(a, name)
    if a.dtype == bool:
        a = a.astype(np.float64)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name}: expected numeric values, found dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: {int(bad.sum())} non-finite value(s) (NaN/inf); first at row {r}, column {c}: {a[r, c]}"
        )
    if probabilities:
        out = (a < 0.0) | (a > 1.0)
        if out.any():
            r, c = np.argwhere(out)[0]
            raise ValueError(
                f"{name}: expected probabilities in [0, 1], found {int(out.sum())} value(s) outside; first at row "
                f"{r}, column {c}: {a[r, c]} (apply a sigmoid to logits before evaluating)"
            )
    return a


def _as_binary(x: Any, name: str) -> np.ndarray:
    """Validated bool (N, C) array from {0, 1} / bool values."""
    a = _to_numpy(x, name)
    _check_2d(a, name)
    if a.dtype == bool:
        return a
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name}: expected values in {{0, 1}}, found dtype {a.dtype}")
    bad = (a != 0) & (a != 1)  # NaN compares unequal to both, so it is caught here too
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: expected binary values in {{0, 1}}, found {int(bad.sum())} other value(s); first at row {r}, "
            f"column {c}: {a[r, c]}"
        )
    return a == 1


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {name_a} has shape {tuple(a.shape)} but {name_b} has {tuple(b.shape)}")


def _predictions(predictions: Any, threshold: float | None) -> np.ndarray:
    """Binary (N, C) predictions: validated as given, or ``scores >= threshold`` when a threshold is given."""
    if threshold is None:
        return _as_binary(predictions, "predictions")
    return binarize(predictions, threshold)


def binarize(scores: Any, threshold: float) -> np.ndarray:
    """Predictions ``scores >= threshold`` (the authors' comparison).

    Args:
        scores: (N, C) real scores.
        threshold: the cut; a score equal to it counts as positive.
    Returns:
        (N, C) bool array.
    """
    _check_threshold(threshold)
    return _as_scores(scores, "scores") >= float(threshold)


def _check_threshold(threshold: float) -> None:
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"threshold must be a finite number, found {threshold!r}")


def check_probability_threshold(threshold: Any, name: str = "threshold") -> float:
    """``threshold`` as a float in [0, 1], else a ValueError naming ``name``: a cut on probabilities outside
    that range predicts every label (below 0) or none (above 1), a silent wrong result."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {threshold!r}") from None
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] (a cut on probabilities), got {threshold!r}")
    return t


# --------------------------------------------------------------------------------------------------
# Ranking metrics
# --------------------------------------------------------------------------------------------------
def average_precision_per_class(scores: Any, targets: Any) -> np.ndarray:
    """Average precision of every class (scikit-learn's definition, ties grouped).

    Args:
        scores: (N, C) real scores (any range: only their order matters).
        targets: (N, C) in {0, 1}.
    Returns:
        (C,) float64; nan for a class with no positive.
    """
    s = _as_scores(scores, "scores")
    y = _as_binary(targets, "targets")
    _check_same_shape(s, y, "scores", "targets")
    n, c = s.shape
    ap = np.full(c, np.nan)
    # Work class-major, (k, N) rows contiguous: sorting along the last axis is much faster.
    st, yt = s.T, y.T
    rank = np.arange(1, n + 1, dtype=np.float64)  # (N,): number of items ranked so far
    pos = np.arange(n)
    for lo in range(0, c, _AP_CLASS_CHUNK):
        hi = min(c, lo + _AP_CLASS_CHUNK)
        sc = np.ascontiguousarray(st[lo:hi])  # (k, N)
        yc = np.ascontiguousarray(yt[lo:hi])
        order = np.argsort(-sc, axis=1, kind="stable")  # descending scores
        ss = np.take_along_axis(sc, order, axis=1)
        ys = np.take_along_axis(yc, order, axis=1).astype(np.float64)
        prec = np.cumsum(ys, axis=1) / rank  # (k, N) precision after each position
        # A tie group is one threshold: every member gets the precision at the group's LAST position.
        is_end = np.ones_like(ss, dtype=bool)
        is_end[:, :-1] = ss[:, :-1] != ss[:, 1:]
        end_idx = np.where(is_end, pos, n)
        end_idx = np.minimum.accumulate(end_idx[:, ::-1], axis=1)[:, ::-1]  # next group end at or after i
        prec_end = np.take_along_axis(prec, end_idx, axis=1)
        npos = ys.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Each positive adds recall 1/npos at its group's threshold, weighted by that precision.
            ap[lo:hi] = np.where(npos > 0, (ys * prec_end).sum(axis=1) / npos, np.nan)
    return ap


def mean_average_precision(scores: Any, targets: Any, empty_classes: str = "exclude") -> float:
    """mAP: mean over classes of average precision.

    Args:
        scores: (N, C) real scores.
        targets: (N, C) in {0, 1}.
        empty_classes: ``"exclude"`` (default) leaves classes without any positive out of the mean;
            ``"zero"`` counts them as AP 0 (what the authors' code gets from scikit-learn >= 1.x).
    Returns:
        mAP as a float; nan if ``"exclude"`` leaves no class.
    """
    if empty_classes not in ("exclude", "zero"):
        raise ValueError(f"empty_classes must be 'exclude' or 'zero', found {empty_classes!r}")
    ap = average_precision_per_class(scores, targets)
    if empty_classes == "zero":
        return float(np.nan_to_num(ap, nan=0.0).mean())
    valid = ~np.isnan(ap)
    return float(ap[valid].mean()) if valid.any() else float("nan")


def precision_at_1(scores: Any, targets: Any) -> float:
    """Fraction of samples whose highest-scored label is true (ties: lowest class index wins).

    Args:
        scores: (N, C) real scores.
        targets: (N, C) in {0, 1}; a sample with no true label counts as a miss.
    Returns:
        float in [0, 1].
    """
    s = _as_scores(scores, "scores")
    y = _as_binary(targets, "targets")
    _check_same_shape(s, y, "scores", "targets")
    top = np.argmax(s, axis=1)  # first maximum -> lowest index on ties
    return float(y[np.arange(s.shape[0]), top].mean())


def _top_k(scores: Any, targets: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, y)``: hits (N, k) 0/1, whether each row's k best-scored labels, best first, are true (ties:
    lowest index first, as in :func:`precision_at_1`); y the (N, C) targets, checked."""
    s = _as_scores(scores, "scores")
    y = _as_binary(targets, "targets")
    _check_same_shape(s, y, "scores", "targets")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= s.shape[1]:
        raise ValueError(f"k must be an integer from 1 to the number of labels ({s.shape[1]}), got {k!r}")
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(y, order, axis=1).astype(np.float64), y


def precision_at_k(scores: Any, targets: Any, k: int) -> float:
    """P@k of extreme multi-label classification: the fraction of each row's k best-scored labels that are
    true, averaged over rows (ties: lowest class index first; ``k = 1`` is :func:`precision_at_1`).
    ``scores`` (N, C) real, ``targets`` (N, C) in {0, 1} (a row with no true label counts as 0), ``k`` 1 to C."""
    return float(_top_k(scores, targets, k)[0].mean())


def ndcg_at_k(scores: Any, targets: Any, k: int) -> float:
    """nDCG@k: each row's true labels among its k best-scored, weighted by 1 / log2(rank + 1), over the
    best weight its true labels could reach in k places (Jarvelin and Kekalainen; the extreme-classification
    measure), averaged over rows. ``scores`` (N, C) real, ``targets`` (N, C) in {0, 1} (a row with no true
    label counts as 0, as in scikit-learn's ``ndcg_score``), ``k`` 1 to C."""
    hits, y = _top_k(scores, targets, k)
    weights = 1.0 / np.log2(np.arange(2, k + 2))
    gain = hits @ weights
    best = np.concatenate([[0.0], np.cumsum(weights)])[np.minimum(y.sum(axis=1), k)]
    return float(np.divide(gain, best, out=np.zeros_like(gain), where=best > 0).mean())


def ranked_at(scores: Any, targets: Any, ks: Sequence[int]) -> dict[str, float]:
    """``{"P@k": ..., "nDCG@k": ...}`` for each k of ``ks`` (P@k for every k first), of (N, C) scores."""
    return {**{f"P@{k}": precision_at_k(scores, targets, k) for k in ks},
            **{f"nDCG@{k}": ndcg_at_k(scores, targets, k) for k in ks}}


# --------------------------------------------------------------------------------------------------
# Thresholded metrics
# --------------------------------------------------------------------------------------------------
def _stats(pred: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Counts behind the four thresholded metrics, from bool (N, C) predictions and targets."""
    both = pred & y
    return {
        "tp_c": both.sum(axis=0, dtype=np.int64),  # (C,)
        "pred_c": pred.sum(axis=0, dtype=np.int64),  # (C,) predicted positives
        "true_c": y.sum(axis=0, dtype=np.int64),  # (C,) true positives count
        "tp_n": both.sum(axis=1, dtype=np.int64),  # (N,)
        "pred_n": pred.sum(axis=1, dtype=np.int64),  # (N,)
        "true_n": y.sum(axis=1, dtype=np.int64),  # (N,)
    }


def _from_stats(st: Mapping[str, np.ndarray], size: int) -> dict[str, float]:
    """The four thresholded metrics from the counts of :func:`_stats`; ``size`` = N * C."""
    tp_c, pred_c, true_c = st["tp_c"], st["pred_c"], st["true_c"]
    # Hamming errors = fp + fn = (pred - tp) + (true - tp), summed over classes.
    errors = int(pred_c.sum() + true_c.sum() - 2 * tp_c.sum())
    ha = 1.0 - errors / size

    denom_n = st["pred_n"] + st["true_n"]
    keep = denom_n > 0  # drop samples with empty truth AND empty prediction
    ex = float(np.mean(2.0 * st["tp_n"][keep] / denom_n[keep])) if keep.any() else float("nan")

    denom_c = pred_c + true_c  # = 2tp + fp + fn
    per_class = np.divide(2.0 * tp_c, denom_c, out=np.zeros(tp_c.shape, dtype=np.float64), where=denom_c > 0)
    ma = float(per_class.mean())

    d = int(denom_c.sum())
    mi = 2.0 * int(tp_c.sum()) / d if d > 0 else 0.0
    return {"hamming_accuracy": float(ha), "example_f1": ex, "macro_f1": ma, "micro_f1": float(mi)}


def per_label_metrics(scores: Any, targets: Any, threshold: float) -> dict[str, np.ndarray]:
    """Each label's own numbers: where a multi-label model is weak, which the six averages hide.

    Args:
        scores: (N, C) probabilities in [0, 1].
        targets: (N, C) in {0, 1}.
        threshold: the cut in [0, 1] for precision, recall and F1 (prediction = score >= threshold).
    Returns:
        (C,) arrays: ``positives`` (int, true rows of the label), ``AP`` (nan for a label without positives,
        as :func:`average_precision_per_class`), ``precision``, ``recall`` and ``F1`` (0 where undefined,
        as scikit-learn's ``zero_division=0``; the mean of ``F1`` is :func:`macro_f1`).
    """
    s = _as_scores(scores, "scores", probabilities=True)
    y = _as_binary(targets, "targets")
    _check_same_shape(s, y, "scores", "targets")
    st = _stats(s >= check_probability_threshold(threshold), y)
    tp, pred, true = (st[k].astype(np.float64) for k in ("tp_c", "pred_c", "true_c"))

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    return {"positives": st["true_c"], "AP": average_precision_per_class(s, y), "precision": ratio(tp, pred),
            "recall": ratio(tp, true), "F1": ratio(2 * tp, pred + true)}


def _thresholded(predictions: Any, targets: Any, threshold: float | None) -> dict[str, float]:
    pred = _predictions(predictions, threshold)
    y = _as_binary(targets, "targets")
    _check_same_shape(pred, y, "predictions", "targets")
    return _from_stats(_stats(pred, y), y.size)


def hamming_accuracy(predictions: Any, targets: Any, threshold: float | None = None) -> float:
    """``1 - mean(y != y_hat)`` over all entries.

    Args:
        predictions: (N, C) binary predictions, or scores when ``threshold`` is given.
        targets: (N, C) in {0, 1}.
        threshold: if not None, predictions are ``predictions >= threshold``.
    Returns:
        float in [0, 1].
    """
    return _thresholded(predictions, targets, threshold)["hamming_accuracy"]


def example_f1(predictions: Any, targets: Any, threshold: float | None = None) -> float:
    """Mean over samples of ``2|y ∩ y_hat| / (|y| + |y_hat|)``, dropping empty-truth-and-prediction samples.

    Args:
        predictions: (N, C) binary predictions, or scores when ``threshold`` is given.
        targets: (N, C) in {0, 1}.
        threshold: if not None, predictions are ``predictions >= threshold``.
    Returns:
        float in [0, 1]; nan when every sample is dropped.
    """
    return _thresholded(predictions, targets, threshold)["example_f1"]


def macro_f1(predictions: Any, targets: Any, threshold: float | None = None) -> float:
    """Mean over all classes of ``2tp / (2tp + fp + fn)``, 0 for a class with no truth and no prediction.

    Args:
        predictions: (N, C) binary predictions, or scores when ``threshold`` is given.
        targets: (N, C) in {0, 1}.
        threshold: if not None, predictions are ``predictions >= threshold``.
    Returns:
        float in [0, 1].
    """
    return _thresholded(predictions, targets, threshold)["macro_f1"]


def micro_f1(predictions: Any, targets: Any, threshold: float | None = None) -> float:
    """``2 Σtp / (2 Σtp + Σfp + Σfn)`` over all entries (0 if nothing is true or predicted).

    Args:
        predictions: (N, C) binary predictions, or scores when ``threshold`` is given.
        targets: (N, C) in {0, 1}.
        threshold: if not None, predictions are ``predictions >= threshold``.
    Returns:
        float in [0, 1].
    """
    return _thresholded(predictions, targets, threshold)["micro_f1"]


def _sweep(scores: np.ndarray, y: np.ndarray, grid: Sequence[float]) -> dict[str, np.ndarray]:
    """Each thresholded metric at every threshold of ``grid``: metric -> (len(grid),) values."""
    out = {m: np.empty(len(grid)) for m in THRESHOLDED_METRICS}
    for i, t in enumerate(grid):
        vals = _from_stats(_stats(scores >= t, y), y.size)
        for m in THRESHOLDED_METRICS:
            out[m][i] = vals[m]
    return out


def _best_index(values: np.ndarray) -> int:
    """Index of the largest value, lowest index on ties; nan values lose (all nan -> index 0)."""
    if np.all(np.isnan(values)):
        return 0
    return int(np.nanargmax(values))


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def _at_thresholds(s: np.ndarray, y: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, float]:
    """Each thresholded metric at its own threshold; metrics sharing a threshold share one pass."""
    vals: dict[str, float] = {}
    for t in sorted(set(thresholds.values())):
        at_t = _from_stats(_stats(s >= t, y), y.size)
        for m in THRESHOLDED_METRICS:
            if thresholds[m] == t:
                vals[m] = at_t[m]
    return vals


def evaluate(
    scores: Any,
    targets: Any,
    protocol: str = "fixed",
    threshold: float = 0.5,
    val_scores: Any = None,
    val_targets: Any = None,
    grid: Sequence[float] = PAPER_THRESHOLDS,
    val_thresholds: Optional[Mapping[str, float]] = None,
) -> dict[str, Any]:
    """All six metrics of the paper under one threshold protocol.

    Args:
        scores: (N, C) probabilities in [0, 1] (apply the sigmoid first).
        targets: (N, C) in {0, 1}.
        protocol: ``"fixed"`` (use ``threshold``), ``"validation"`` (per metric, the ``grid`` threshold best on
            ``val_scores``/``val_targets``) or ``"paper"`` (per metric, the best ``grid`` value on this set).
        threshold: the cut of the ``"fixed"`` protocol (prediction = score >= threshold).
        val_scores: (M, C) validation probabilities; required by ``"validation"``, ignored otherwise.
        val_targets: (M, C) validation labels; required by ``"validation"``, ignored otherwise.
        grid: thresholds searched by ``"validation"`` and ``"paper"`` (default 0.1, ..., 0.9).
        val_thresholds: ``"validation"`` with the thresholds already chosen on the validation split (each
            thresholded metric -> its threshold, as this function returns them), instead of
            ``val_scores``/``val_targets``: what a saved model keeps.
    Returns:
        dict with floats ``mAP``, ``hamming_accuracy``, ``example_f1``, ``macro_f1``, ``micro_f1``,
        ``precision_at_1``; ints ``mAP_classes`` (classes averaged in mAP) and ``mAP_excluded_classes``
        (classes without positives, left out); ``protocol`` (str) and ``thresholds`` (dict: each thresholded
        metric -> the threshold used for it).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    s = _as_scores(scores, "scores", probabilities=True)
    y = _as_binary(targets, "targets")
    _check_same_shape(s, y, "scores", "targets")
    grid = tuple(float(t) for t in grid)
    if protocol != "fixed":
        if not grid:
            raise ValueError("grid: the list of thresholds to search is empty")
        for t in grid:
            check_probability_threshold(t, "each threshold of grid")

    ap = average_precision_per_class(s, y)
    valid = ~np.isnan(ap)
    result: dict[str, Any] = {
        "mAP": float(ap[valid].mean()) if valid.any() else float("nan"),
        "mAP_classes": int(valid.sum()),
        "mAP_excluded_classes": int((~valid).sum()),
        "precision_at_1": precision_at_1(s, y),
    }

    if protocol == "fixed":
        check_probability_threshold(threshold)
        vals = _from_stats(_stats(s >= float(threshold), y), y.size)
        thresholds = {m: float(threshold) for m in THRESHOLDED_METRICS}
    elif protocol == "paper":
        sweep = _sweep(s, y, grid)
        vals, thresholds = {}, {}
        for m in THRESHOLDED_METRICS:
            i = _best_index(sweep[m])
            vals[m], thresholds[m] = float(sweep[m][i]), grid[i]
    elif val_thresholds is not None:  # validation, its thresholds chosen earlier
        if val_scores is not None or val_targets is not None:
            raise ValueError("protocol 'validation' takes val_thresholds or val_scores/val_targets, not both")
        missing = [m for m in THRESHOLDED_METRICS if m not in val_thresholds]
        if missing:
            raise ValueError(f"val_thresholds lacks {', '.join(missing)}")
        thresholds = {m: float(val_thresholds[m]) for m in THRESHOLDED_METRICS}
        for m, t in thresholds.items():
            check_probability_threshold(t, f"val_thresholds[{m!r}]")
        vals = _at_thresholds(s, y, thresholds)
    else:  # validation
        if val_scores is None or val_targets is None:
            missing = [n for n, v in (("val_scores", val_scores), ("val_targets", val_targets)) if v is None]
            raise ValueError(f"protocol 'validation' needs val_scores and val_targets; missing: {', '.join(missing)}")
        vs = _as_scores(val_scores, "val_scores", probabilities=True)
        vy = _as_binary(val_targets, "val_targets")
        _check_same_shape(vs, vy, "val_scores", "val_targets")
        if vs.shape[1] != s.shape[1]:
            raise ValueError(
                f"class count mismatch: val_scores has {vs.shape[1]} columns but scores has {s.shape[1]}"
            )
        sweep = _sweep(vs, vy, grid)
        thresholds = {m: grid[_best_index(sweep[m])] for m in THRESHOLDED_METRICS}
        vals = _at_thresholds(s, y, thresholds)

    result.update({m: float(vals[m]) for m in THRESHOLDED_METRICS})
    result["protocol"] = protocol
    result["thresholds"] = thresholds
    return result
