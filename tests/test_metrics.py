"""Tests of mulsupcon.metrics against scikit-learn, naive re-implementations and hand-computed cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, hamming_loss

from mulsupcon import metrics as M
from mulsupcon.metrics import (
    PAPER_THRESHOLDS,
    THRESHOLDED_METRICS,
    average_precision_per_class,
    evaluate,
    example_f1,
    hamming_accuracy,
    macro_f1,
    mean_average_precision,
    per_label_metrics,
    micro_f1,
    precision_at_1,
)

ALL_METRICS = ("mAP", "hamming_accuracy", "example_f1", "macro_f1", "micro_f1", "precision_at_1")


# --------------------------------------------------------------------------------------------------
# Independent naive oracles (loops, written from the definitions, not from the module)
# --------------------------------------------------------------------------------------------------
def naive_ap(scores: np.ndarray, y: np.ndarray) -> float:
    """AP of one class: mean over positives of precision at the threshold equal to that positive's score."""
    pos = np.flatnonzero(y)
    if len(pos) == 0:
        return float("nan")
    precs = []
    for i in pos:
        above = scores >= scores[i]  # every item at or above this threshold is retrieved (ties included)
        precs.append(y[above].sum() / above.sum())
    return float(np.mean(precs))


def naive_example_f1_authors(pred: np.ndarray, y: np.ndarray) -> float:
    """The authors' example-F1: drop samples with |y| + |y_hat| = 0."""
    vals = []
    for p, t in zip(pred, y):
        d = p.sum() + t.sum()
        if d == 0:
            continue
        vals.append(2 * (p & t).sum() / d)
    return float(np.mean(vals)) if vals else float("nan")


def naive_macro_f1_authors(pred: np.ndarray, y: np.ndarray) -> float:
    """The authors' macro-F1 with its 1e-6 in the denominator (differs from exact by < 1e-5 here)."""
    tp = (pred & y).sum(0)
    fp = (pred & ~y).sum(0)
    fn = (~pred & y).sum(0)
    return float(np.mean(2 * tp / (2 * tp + fp + fn + 1e-6)))


def naive_p_at_1(scores: np.ndarray, y: np.ndarray) -> float:
    hits = 0
    for s, t in zip(scores, y):
        best = 0
        for j in range(1, len(s)):
            if s[j] > s[best]:  # strict: the first maximum wins ties
                best = j
        hits += int(t[best])
    return hits / len(scores)


def random_case(seed: int, n: int = 60, c: int = 7, p: float = 0.3, decimals: int | None = 1):
    """Scores rounded to ``decimals`` so that ties (within and across classes) are frequent."""
    rng = np.random.default_rng(seed)
    s = rng.random((n, c))
    if decimals is not None:
        s = np.round(s, decimals)
    y = rng.random((n, c)) < p
    return s, y


# --------------------------------------------------------------------------------------------------
# Cross-checks against scikit-learn on random data
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_random_against_sklearn(seed: int) -> None:
    s, y = random_case(seed, decimals=1 if seed % 2 else None)
    y[:, 0] = False  # one class without any positive
    yi = y.astype(int)
    with pytest.warns(UserWarning):  # sklearn warns about the positive-free class
        sk_ap = average_precision_score(yi, s, average=None)
    ours_ap = average_precision_per_class(s, y)
    assert np.isnan(ours_ap[0]) and sk_ap[0] == 0.0
    np.testing.assert_allclose(ours_ap[1:], sk_ap[1:], rtol=0, atol=1e-12)
    assert mean_average_precision(s, y) == pytest.approx(np.mean(sk_ap[1:]), abs=1e-12)
    # "zero" reproduces what the authors' code gets from this scikit-learn version
    assert mean_average_precision(s, y, empty_classes="zero") == pytest.approx(np.mean(sk_ap), abs=1e-12)
    for j in range(1, y.shape[1]):
        assert ours_ap[j] == pytest.approx(naive_ap(s[:, j], y[:, j]), abs=1e-12)

    for t in (0.2, 0.5, 0.8):
        pred = s >= t
        pi = pred.astype(int)
        assert hamming_accuracy(pred, y) == pytest.approx(1 - hamming_loss(yi, pi), abs=1e-12)
        assert micro_f1(pred, y) == pytest.approx(f1_score(yi, pi, average="micro", zero_division=0), abs=1e-12)
        assert macro_f1(pred, y) == pytest.approx(f1_score(yi, pi, average="macro", zero_division=0), abs=1e-12)
        assert macro_f1(pred, y) == pytest.approx(naive_macro_f1_authors(pred, y), abs=1e-5)
        assert example_f1(pred, y) == pytest.approx(naive_example_f1_authors(pred, y), abs=1e-12)
        # relation to sklearn's "samples" average, which keeps empty/empty samples and scores them z
        dropped = int(((pred.sum(1) + y.sum(1)) == 0).sum())
        n = len(y)
        sk1 = f1_score(yi, pi, average="samples", zero_division=1)
        assert example_f1(pred, y) == pytest.approx((n * sk1 - dropped) / (n - dropped), abs=1e-12)
        # threshold keyword == explicit binarisation with >=
        assert example_f1(s, y, threshold=t) == example_f1(pred, y)
    assert precision_at_1(s, y) == pytest.approx(naive_p_at_1(s, y), abs=1e-12)


def test_example_f1_equals_sklearn_when_no_sample_is_empty_on_both_sides() -> None:
    s, y = random_case(11, n=80, c=6, p=0.4)
    y[:, 0] = True  # every sample has a true label, so none is dropped
    pred = s >= 0.5
    for z in (0, 1):
        sk = f1_score(y.astype(int), pred.astype(int), average="samples", zero_division=z)
        assert example_f1(pred, y) == pytest.approx(sk, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# Hand-computed tiny cases
# --------------------------------------------------------------------------------------------------
Y_TINY = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]])
P_TINY = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 0]])


def test_hand_computed_thresholded_metrics() -> None:
    # errors: (0,2) fn, (1,2) fp, (3,1) fn -> 3 of 12 entries wrong
    assert hamming_accuracy(P_TINY, Y_TINY) == pytest.approx(9 / 12)
    # per sample: 2*1/(2+1)=2/3, 2*1/(1+2)=2/3, dropped (empty/empty), 2*1/(2+1)=2/3
    assert example_f1(P_TINY, Y_TINY) == pytest.approx(2 / 3)
    # per class: c0 tp2 fp0 fn0 -> 1; c1 tp1 fn1 -> 2/3; c2 tp0 fp1 fn1 -> 0
    assert macro_f1(P_TINY, Y_TINY) == pytest.approx((1 + 2 / 3 + 0) / 3)
    # totals tp3 fp1 fn2 -> 6/9
    assert micro_f1(P_TINY, Y_TINY) == pytest.approx(6 / 9)


def test_hand_computed_average_precision_with_ties() -> None:
    # class scores 0.9(+), 0.5(-), 0.5(+), 0.1(+): tie group {0.5} is one threshold.
    s = np.array([[0.9], [0.5], [0.5], [0.1]])
    y = np.array([[1], [0], [1], [1]])
    # recall steps 1/3 at P=1, 1/3 at P=2/3 (tie group end), 1/3 at P=3/4
    expected = (1 + 2 / 3 + 3 / 4) / 3
    assert average_precision_per_class(s, y)[0] == pytest.approx(expected)
    assert average_precision_score(y[:, 0], s[:, 0]) == pytest.approx(expected)  # sanity of the hand value


def test_hand_computed_precision_at_1_ties_and_empty_rows() -> None:
    s = np.array([[0.7, 0.7, 0.1], [0.2, 0.9, 0.9], [0.3, 0.8, 0.1], [0.6, 0.1, 0.2]])
    y = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]])
    # row0 tie -> index 0 (false); row1 tie -> index 1 (true); row2 -> 1 (true); row3 no truth -> wrong
    assert precision_at_1(s, y) == pytest.approx(2 / 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_precision_and_ndcg_at_k_against_a_loop_and_sklearn(seed: int) -> None:
    """Oracles: P@k by a loop over rows; nDCG@k by scikit-learn's `ndcg_score` (no ties in the scores; a row
    without a true label counts 0 in both); k = 1 equals precision_at_1; k outside 1..C is named."""
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(seed)
    s = rng.random((200, 12))
    y = (rng.random((200, 12)) < 0.2).astype(np.uint8)
    y[:5] = 0
    for k in (1, 3, 5, 12):
        loop = np.mean([y[i, np.argsort(-s[i])[:k]].sum() / k for i in range(len(s))])
        assert M.precision_at_k(s, y, k) == pytest.approx(loop, abs=1e-12)
        assert M.ndcg_at_k(s, y, k) == pytest.approx(ndcg_score(y, s, k=k), abs=1e-12)
    assert M.precision_at_k(s, y, 1) == precision_at_1(s, y)
    assert M.ranked_at(s, y, [1, 3]) == {"P@1": M.precision_at_k(s, y, 1), "P@3": M.precision_at_k(s, y, 3),
                                         "nDCG@1": M.ndcg_at_k(s, y, 1), "nDCG@3": M.ndcg_at_k(s, y, 3)}
    for bad in (0, 13):
        with pytest.raises(ValueError, match=rf"k must be an integer from 1 to the number of labels \(12\), got {bad}"):
            M.precision_at_k(s, y, bad)


def test_hand_computed_ndcg_at_2() -> None:
    s = np.array([[0.9, 0.8, 0.1], [0.9, 0.8, 0.1]])
    y = np.array([[0, 1, 1], [1, 0, 0]])
    # row 0: the true label at rank 2 -> (1/log2 3) / (1 + 1/log2 3); row 1: at rank 1 of 1 true -> 1
    want = ((1 / np.log2(3)) / (1 + 1 / np.log2(3)) + 1) / 2
    assert M.ndcg_at_k(s, y, 2) == pytest.approx(want)
    assert M.precision_at_k(s, y, 2) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_a_cut_on_probabilities_must_lie_in_0_1() -> None:
    from mulsupcon.metrics import check_probability_threshold

    assert check_probability_threshold(0) == 0.0 and check_probability_threshold("1") == 1.0
    for bad in (-0.01, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"my_cut must be in \[0, 1\] \(a cut on probabilities\)"):
            check_probability_threshold(bad, "my_cut")
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\], got 'high'"):
        check_probability_threshold("high")


def test_threshold_is_greater_or_equal() -> None:
    s = np.array([[0.5, 0.4999], [0.2, 0.7]])
    y = np.array([[1, 0], [0, 1]])
    assert hamming_accuracy(s, y, threshold=0.5) == 1.0
    r = evaluate(s, y, protocol="fixed", threshold=0.5)
    assert r["micro_f1"] == 1.0 and r["thresholds"]["micro_f1"] == 0.5
    # float32 0.3 is slightly above 0.3, so it is on the positive side of the 0.3 cut
    s32 = np.array([[0.3, 0.1]], dtype=np.float32)
    assert M.binarize(s32, 0.3).tolist() == [[True, False]]


# --------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------
def test_classes_without_positives_are_excluded_and_counted() -> None:
    s, y = random_case(3, n=40, c=5)
    y[:, [1, 3]] = False
    r = evaluate(s, y)
    assert r["mAP_classes"] == 3 and r["mAP_excluded_classes"] == 2
    keep = [0, 2, 4]
    expected = np.mean(average_precision_score(y[:, keep].astype(int), s[:, keep], average=None))
    assert r["mAP"] == pytest.approx(expected, abs=1e-12)
    # no positive anywhere: mAP undefined, precision@1 is 0, nothing crashes
    r0 = evaluate(s, np.zeros_like(y))
    assert np.isnan(r0["mAP"]) and r0["mAP_classes"] == 0 and r0["precision_at_1"] == 0.0


def test_all_zero_predictions() -> None:
    _, y = random_case(4, n=30, c=4)
    y[0] = False  # a sample with empty truth: dropped from example-F1
    pred = np.zeros_like(y)
    yi, pi = y.astype(int), pred.astype(int)
    assert micro_f1(pred, y) == 0.0 == f1_score(yi, pi, average="micro", zero_division=0)
    assert macro_f1(pred, y) == 0.0 == f1_score(yi, pi, average="macro", zero_division=0)
    assert example_f1(pred, y) == 0.0
    assert hamming_accuracy(pred, y) == pytest.approx(1 - y.mean())
    # nothing true and nothing predicted: every sample dropped -> nan (authors' mean of nothing)
    z = np.zeros((3, 2), dtype=int)
    assert np.isnan(example_f1(z, z))
    assert macro_f1(z, z) == 0.0 and micro_f1(z, z) == 0.0 and hamming_accuracy(z, z) == 1.0


def test_empty_truth_and_prediction_samples_are_dropped() -> None:
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]])
    pred = np.array([[1, 0], [0, 0], [0, 0], [1, 1]])
    # kept: 1.0 and 2*1/(1+2); two dropped
    assert example_f1(pred, y) == pytest.approx((1 + 2 / 3) / 2)
    sk0 = f1_score(y, pred, average="samples", zero_division=0)  # keeps them as 0
    sk1 = f1_score(y, pred, average="samples", zero_division=1)  # keeps them as 1
    assert sk0 == pytest.approx((1 + 2 / 3) / 4) and sk1 == pytest.approx((1 + 2 / 3 + 2) / 4)


def test_all_correct() -> None:
    s, y = random_case(5, n=25, c=6)
    y[1] = True
    y[0] = False
    y[:, 2] = False
    scores = np.where(y, 0.95, 0.05)
    for protocol in ("fixed", "paper", "validation"):
        r = evaluate(scores, y, protocol=protocol, val_scores=scores, val_targets=y)
        if protocol != "fixed":  # every grid threshold is perfect: ties go to the lowest one
            assert set(r["thresholds"].values()) == {0.1}
        assert r["mAP"] == 1.0 and r["hamming_accuracy"] == 1.0
        assert r["example_f1"] == 1.0 and r["micro_f1"] == 1.0
        # the positive-free class 2 has F1 0/0 -> counts 0 (sklearn zero_division=0 agrees)
        assert r["macro_f1"] == pytest.approx(5 / 6)
        assert r["macro_f1"] == pytest.approx(f1_score(y, scores >= 0.5, average="macro", zero_division=0))
        # samples with no true label (sample 0 and a few random ones) are misses for precision@1
        assert r["precision_at_1"] == pytest.approx(y.any(axis=1).mean()) and y.any(axis=1).mean() < 1


def test_all_tied_scores() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.full(y.shape, 0.5)
    # one threshold only: AP = prevalence
    np.testing.assert_allclose(average_precision_per_class(s, y), [0.5, 0.5])
    np.testing.assert_allclose(average_precision_per_class(s, y), average_precision_score(y, s, average=None))
    assert precision_at_1(s, y) == pytest.approx(2 / 4)  # column 0 chosen everywhere


# --------------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_paper_protocol_is_best_over_grid(seed: int) -> None:
    s, y = random_case(seed, n=80, c=8, decimals=2)
    paper = evaluate(s, y, protocol="paper")
    fixed = {t: evaluate(s, y, protocol="fixed", threshold=t) for t in PAPER_THRESHOLDS}
    for m in THRESHOLDED_METRICS:
        best = max(fixed[t][m] for t in PAPER_THRESHOLDS)  # the authors' get_mlc_metrics loop
        assert paper[m] == pytest.approx(best, abs=1e-12)
        assert all(paper[m] >= fixed[t][m] - 1e-12 for t in PAPER_THRESHOLDS)
        t_used = paper["thresholds"][m]
        assert t_used in PAPER_THRESHOLDS and fixed[t_used][m] == pytest.approx(paper[m], abs=1e-12)
    for m in ("mAP", "precision_at_1"):
        assert paper[m] == fixed[0.5][m]  # threshold-free
    assert paper["protocol"] == "paper"


@pytest.mark.parametrize("seed", range(2))
def test_validation_on_the_test_set_equals_paper(seed: int) -> None:
    s, y = random_case(seed + 20, n=70, c=5, decimals=2)
    paper = evaluate(s, y, protocol="paper")
    val = evaluate(s, y, protocol="validation", val_scores=s, val_targets=y)
    for m in ALL_METRICS:
        assert val[m] == pytest.approx(paper[m], abs=1e-12)
    assert val["thresholds"] == paper["thresholds"] and val["protocol"] == "validation"


def test_validation_thresholds_come_from_validation_set() -> None:
    # validation: positives at 0.25, negatives at 0.1 -> only the 0.2 cut is perfect
    vy = np.array([[1], [1], [0], [0], [0]])
    vs = np.where(vy == 1, 0.25, 0.1)
    # test: positives at 0.75, negatives at 0.65 -> only the 0.7 cut is perfect
    ty = np.array([[1], [0], [1], [0]])
    ts = np.where(ty == 1, 0.75, 0.65)
    val = evaluate(ts, ty, protocol="validation", val_scores=vs, val_targets=vy)
    paper = evaluate(ts, ty, protocol="paper")
    assert set(val["thresholds"].values()) == {0.2}
    assert set(paper["thresholds"].values()) == {0.7}
    at_02 = evaluate(ts, ty, protocol="fixed", threshold=0.2)
    for m in THRESHOLDED_METRICS:
        assert val[m] == at_02[m]
        assert paper[m] == 1.0
    assert val["hamming_accuracy"] == 0.5 and val["micro_f1"] == pytest.approx(2 / 3)


def test_validation_protocol_picks_per_metric_thresholds_independently() -> None:
    rng = np.random.default_rng(7)
    vs, vy = rng.random((300, 10)), rng.random((300, 10)) < 0.15
    ts, ty = rng.random((100, 10)), rng.random((100, 10)) < 0.15
    r = evaluate(ts, ty, protocol="validation", val_scores=vs, val_targets=vy)
    for m in THRESHOLDED_METRICS:
        on_val = [evaluate(vs, vy, protocol="fixed", threshold=t)[m] for t in PAPER_THRESHOLDS]
        expected_t = PAPER_THRESHOLDS[int(np.argmax(on_val))]
        assert r["thresholds"][m] == expected_t
        assert r[m] == evaluate(ts, ty, protocol="fixed", threshold=expected_t)[m]
    # rare labels with uniform scores: HA prefers a high cut, the F1s a low one
    assert r["thresholds"]["hamming_accuracy"] > r["thresholds"]["micro_f1"]


def test_validation_with_saved_thresholds_equals_validation_with_the_validation_rows() -> None:
    """A saved model keeps the thresholds its validation split chose: scoring new rows with them is the
    validation protocol itself."""
    rng = np.random.default_rng(11)
    vs, vy = rng.random((200, 6)), rng.random((200, 6)) < 0.2
    ts, ty = rng.random((80, 6)), rng.random((80, 6)) < 0.2
    full = evaluate(ts, ty, protocol="validation", val_scores=vs, val_targets=vy)
    saved = evaluate(ts, ty, protocol="validation", val_thresholds=full["thresholds"])
    assert saved == full
    with pytest.raises(ValueError, match="not both"):
        evaluate(ts, ty, protocol="validation", val_scores=vs, val_targets=vy, val_thresholds=full["thresholds"])
    with pytest.raises(ValueError, match="val_thresholds lacks micro_f1"):
        evaluate(ts, ty, protocol="validation", val_thresholds={k: v for k, v in full["thresholds"].items()
                                                                 if k != "micro_f1"})


def test_custom_grid() -> None:
    s, y = random_case(8, n=50, c=4, decimals=2)
    r = evaluate(s, y, protocol="paper", grid=[0.35])
    f = evaluate(s, y, protocol="fixed", threshold=0.35)
    for m in THRESHOLDED_METRICS:
        assert r[m] == f[m] and r["thresholds"][m] == 0.35


# --------------------------------------------------------------------------------------------------
# Input types and validation
# --------------------------------------------------------------------------------------------------
def test_tensor_and_numpy_inputs_agree() -> None:
    s, y = random_case(9, n=50, c=6, decimals=None)
    s32 = s.astype(np.float32)
    for protocol in ("fixed", "paper", "validation"):
        kw = {"val_scores": s32[:20], "val_targets": y[:20]} if protocol == "validation" else {}
        a = evaluate(s32, y.astype(np.int64), protocol=protocol, **kw)
        tkw = {"val_scores": torch.from_numpy(s32[:20]), "val_targets": torch.from_numpy(y[:20])} if kw else {}
        b = evaluate(torch.from_numpy(s32).requires_grad_(), torch.from_numpy(y).float(), protocol=protocol, **tkw)
        assert a == b
    # half-precision tensors are accepted (compared with the numpy values of the same rounded numbers)
    h = torch.from_numpy(s32).bfloat16()
    assert evaluate(h, torch.from_numpy(y)) == evaluate(h.float().numpy(), y)


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), r"shape mismatch.*\(3, 2\).*\(3, 3\)"),
        (np.zeros((3, 2)), np.array([[0, 1], [2, 0], [0, 0]]), r"targets.*binary.*row 1, column 0: 2"),
        (np.zeros((2, 2)), np.array([[0, 0.5], [1, 0]]), r"targets.*row 0, column 1: 0.5"),
        (np.array([[0.1, np.nan], [0.2, 0.3]]), np.zeros((2, 2)), r"scores.*NaN.*row 0, column 1"),
        (np.zeros((0, 3)), np.zeros((0, 3)), r"scores: empty input"),
        (np.zeros((3, 0)), np.zeros((3, 0)), r"scores: empty input"),
        (np.zeros(3), np.zeros(3), r"scores: expected a 2-D array"),
        (np.array([[1.5, 0.2]]), np.array([[1, 0]]), r"probabilities in \[0, 1\].*row 0, column 0: 1.5.*sigmoid"),
        (np.array([["a", "b"]]), np.array([[1, 0]]), r"scores: expected numeric"),
    ],
)
def test_invalid_inputs_raise_clear_errors(scores, targets, match) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(scores, targets)


def test_invalid_protocol_arguments() -> None:
    s, y = random_case(1, n=10, c=3)
    with pytest.raises(ValueError, match="unknown protocol 'best'"):
        evaluate(s, y, protocol="best")
    with pytest.raises(ValueError, match="missing: val_targets"):
        evaluate(s, y, protocol="validation", val_scores=s)
    with pytest.raises(ValueError, match="class count mismatch.*4 columns.*3"):
        evaluate(s, y, protocol="validation", val_scores=np.zeros((5, 4)), val_targets=np.zeros((5, 4)))
    with pytest.raises(ValueError, match="val_targets.*binary"):
        evaluate(s, y, protocol="validation", val_scores=s, val_targets=s)
    with pytest.raises(ValueError, match="predictions.*binary"):
        macro_f1(s, y)  # scores given without a threshold
    with pytest.raises(ValueError, match="empty_classes"):
        mean_average_precision(s, y, empty_classes="drop")
    # The scores are probabilities: a cut outside [0, 1] predicts every label or none (it was accepted).
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\].*1.5"):
        evaluate(s, y, threshold=1.5)
    with pytest.raises(ValueError, match=r"each threshold of grid must be in \[0, 1\].*-0.1"):
        evaluate(s, y, protocol="paper", grid=[0.5, -0.1])
    with pytest.raises(ValueError, match=r"val_thresholds\['micro_f1'\] must be in \[0, 1\]"):
        evaluate(s, y, protocol="validation", val_thresholds={m: 2.0 if m == "micro_f1" else 0.5
                                                                for m in ("hamming_accuracy", "example_f1", "macro_f1", "micro_f1")})


def test_sparse_targets_are_read_like_dense_ones() -> None:
    """A SciPy sparse label matrix (common for multi-label data) was read as a 0-d object array and refused
    as 'found shape ()'."""
    import scipy.sparse as sp

    s, y = random_case(3, n=30, c=5)
    for protocol in ("fixed", "paper", "validation"):
        kw = {"val_scores": s, "val_targets": sp.csr_array(y)} if protocol == "validation" else {}
        assert evaluate(s, sp.csr_matrix(y), protocol=protocol, **kw) == evaluate(
            s, y, protocol=protocol, **({"val_scores": s, "val_targets": y} if kw else {}))


def test_paper_thresholds_constant() -> None:
    assert PAPER_THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_speed_large_paper_protocol() -> None:
    """N=10000, C=1000 with the 9-threshold sweep: a few seconds at most, even on a busy 2-core machine."""
    rng = np.random.default_rng(0)
    s = rng.random((10000, 1000), dtype=np.float32)
    y = rng.random((10000, 1000), dtype=np.float32) < 0.02
    t0 = time.perf_counter()
    r = evaluate(s, y, protocol="paper")
    elapsed = time.perf_counter() - t0
    assert elapsed < 15.0, f"evaluate took {elapsed:.1f} s"
    assert 0.0 < r["mAP"] < 0.1  # random scores: AP about the prevalence


def test_real_yeast_logistic_regression_protocols() -> None:
    """On the authors' yeast split, with a quick linear model: protocols ordered and sklearn agreement."""
    h5py = pytest.importorskip("h5py")
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from conftest import require_dataset_folder

    folder = require_dataset_folder("yeast")

    def load(part: str) -> tuple[np.ndarray, np.ndarray]:
        with h5py.File(folder / f"yeast_official_{part}.hdf5", "r") as f:
            return f["feature"][:], f["target"][:]

    (xtr, ytr), (xva, yva), (xte, yte) = load("train"), load("val"), load("test")
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-12
    clf = OneVsRestClassifier(LogisticRegression(max_iter=500, C=0.1)).fit((xtr - mu) / sd, ytr)
    pv, pt = clf.predict_proba((xva - mu) / sd), clf.predict_proba((xte - mu) / sd)
    fixed = evaluate(pt, yte)
    val = evaluate(pt, yte, protocol="validation", val_scores=pv, val_targets=yva)
    paper = evaluate(pt, yte, protocol="paper")
    assert fixed["mAP_classes"] == 14
    assert fixed["mAP"] == pytest.approx(average_precision_score(yte, pt, average="macro"), abs=1e-12)
    for m in THRESHOLDED_METRICS:
        assert paper[m] >= val[m] - 1e-12 and paper[m] >= fixed[m] - 1e-12
    pred = pt >= val["thresholds"]["micro_f1"]
    assert val["micro_f1"] == pytest.approx(f1_score(yte, pred, average="micro"), abs=1e-12)
    # sanity of the scale: a linear model on yeast is around the published BCE numbers
    assert 0.6 < paper["example_f1"] < 0.7 and 0.75 < paper["hamming_accuracy"] < 0.82


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_label_metrics_equal_scikit_learns_and_average_to_the_macro_numbers(seed: int) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    s, y = random_case(seed, n=40, c=7)
    y[:, 3] = 0  # a label without positives: AP nan, precision 0 when something is predicted, recall and F1 0
    m = per_label_metrics(s, y, 0.4)
    precision, recall, f1, support = precision_recall_fscore_support(y, (s >= 0.4).astype(int), average=None,
                                                                     zero_division=0)
    np.testing.assert_array_equal(m["positives"], support)
    np.testing.assert_allclose(m["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(m["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(m["F1"], f1, atol=1e-12)
    assert np.isnan(m["AP"][3]) and np.allclose(np.delete(m["AP"], 3), np.delete(average_precision_per_class(s, y), 3))
    assert m["F1"].mean() == pytest.approx(macro_f1(s, y, 0.4))
    assert np.nanmean(m["AP"]) == pytest.approx(evaluate(s, y)["mAP"])
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        per_label_metrics(s, y, 1.5)
