"""The scikit-learn style estimator: API contract, scikit-learn's own checks, and real learning."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from mulsupcon.estimator import MulSupConClassifier

TINY = dict(hidden=(8,), embed_dim=8, pretrain_epochs=1, epochs=1, queue_size=8, pretrain_batch_size=8, batch_size=8)

# The checks that apply to a multi-label (2-D {0,1} target) estimator. The others feed 1-D
# multi-class or continuous targets, which a multi-label estimator rejects by design (with a
# "Unknown label type" error); they are listed in EXCLUDED so the choice is visible.
RELEVANT = {
    "check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init",
    "check_estimators_unfitted", "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order",
    "check_complex_data", "check_estimators_empty_data_messages", "check_estimators_nan_inf",
    "check_estimators_pickle", "check_classifier_multioutput", "check_classifiers_multilabel_representation_invariance",
    "check_classifiers_multilabel_output_format_predict", "check_classifiers_multilabel_output_format_predict_proba",
    "check_supervised_y_no_nan", "check_parameters_default_constructible", "check_get_params_invariance",
    "check_set_params", "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in", "check_fit1d",
    "check_fit2d_1sample", "check_requires_y_none", "check_classifiers_regression_target",
}


def test_relevant_sklearn_estimator_checks_pass():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(MulSupConClassifier(**TINY), on_fail=None)
    status = {}
    for r in results:
        if r["check_name"] in RELEVANT:
            status.setdefault(r["check_name"], []).append((r["status"], str(r["exception"])[:200]))
    missing = RELEVANT - set(status)
    assert not missing, f"checks not run by this scikit-learn version: {missing}"
    failed = {k: v for k, v in status.items() if any(s == "failed" for s, _ in v)}
    assert not failed, failed


def _multidigit_vectors(n_train=600):
    from mulsupcon.data.multidigits import make_multidigits, to_vectors

    s = make_multidigits(seed=0, n_train=n_train, n_val=10, n_test=300)
    tr, te = to_vectors(s.train), to_vectors(s.test)
    return tr.features, tr.labels, te.features, te.labels


def test_fit_predict_transform_clone_pickle_and_it_learns():
    X, Y, Xt, Yt = _multidigit_vectors()
    clf = MulSupConClassifier(hidden=(64, 64), embed_dim=32, pretrain_epochs=5, epochs=15, batch_size=32,
                              pretrain_batch_size=64, queue_size=128, lr=1e-3, lr_backbone=1e-3, random_state=0)
    clf.fit(X, Y)
    proba = clf.predict_proba(Xt)
    assert proba.shape == Yt.shape and np.all((proba >= 0) & (proba <= 1))
    pred = clf.predict(Xt)
    assert set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba >= clf.threshold).astype(int))
    assert clf.transform(Xt).shape == (len(Xt), 64)
    # learned something real: mAP well above the label-frequency baseline (~0.24 for 10 digits)
    assert clf.score(Xt, Yt) > 0.5
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(Xt), proba, rtol=1e-6)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "classifier_")
    c.set_params(mode="scratch", epochs=1)
    assert c.get_params()["mode"] == "scratch"


def test_same_random_state_same_model():
    X, Y, Xt, _ = _multidigit_vectors(200)
    a = MulSupConClassifier(**TINY, random_state=3).fit(X, Y).predict_proba(Xt)
    b = MulSupConClassifier(**TINY, random_state=3).fit(X, Y).predict_proba(Xt)
    np.testing.assert_array_equal(a, b)


def test_bad_targets_are_explained():
    X = np.random.rand(10, 3)
    with pytest.raises(ValueError, match="2-D multi-hot"):
        MulSupConClassifier(**TINY).fit(X, np.arange(10) % 2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        MulSupConClassifier(**TINY).fit(X, np.full((10, 2), 2))
    with pytest.raises(ValueError, match="mode must be"):
        MulSupConClassifier(**{**TINY, "mode": "nope"}).fit(X, np.ones((10, 2)))
    clf = MulSupConClassifier(**TINY).fit(X, (np.random.rand(10, 2) > 0.5).astype(int))
    with pytest.raises(ValueError, match="expecting 3 features"):
        clf.predict(np.random.rand(4, 5))
