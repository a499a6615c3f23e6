"""The scikit-learn style estimator: API contract, scikit-learn's own checks, and real learning."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from mulsupcon.estimator import MulSupConClassifier

TINY = dict(hidden=(8,), embed_dim=8, pretrain_epochs=1, epochs=1, queue_size=8, pretrain_batch_size=8, batch_size=8,
            device="cpu")

_CLASS_TARGET = ("feeds a 1-D (binary or multi-class) class target; this estimator takes a 2-D multi-hot label "
                 "matrix by design and says so (use MultiLabelBinarizer first)")
EXPECTED_FAILURES = {name: _CLASS_TARGET for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object", "check_estimator_sparse_tag",
    "check_estimator_sparse_array", "check_estimator_sparse_matrix", "check_f_contiguous_array_estimator",
    "check_classifier_data_not_an_array", "check_classifiers_classes", "check_decision_proba_consistency",
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1feature",
    "check_dict_unchanged", "check_fit2d_predict1d",
)}
EXPECTED_FAILURES.update({
    "check_classifiers_train": "asserts 1-D predictions (n_samples,) of a single class target; multi-label "
                               "predictions are (n_samples, n_labels)",
    "check_classifier_multioutput": "asserts predict == round(predict_proba), i.e. a 0.5 threshold; the default "
                                    "threshold='validation' predicts at the validation-chosen one (with "
                                    "threshold=0.5 it passes: test_multioutput_check_passes_at_a_fixed_half)",
})


@parametrize_with_checks([MulSupConClassifier(**TINY)], expected_failed_checks=lambda est: EXPECTED_FAILURES,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_multioutput_check_passes_at_a_fixed_half():
    from sklearn.utils.estimator_checks import check_classifier_multioutput

    check_classifier_multioutput("MulSupConClassifier", MulSupConClassifier(**{**TINY, "threshold": 0.5}))


def test_works_in_pipeline_cross_val_and_grid_search_with_string_scorers():
    """classes_ makes scikit-learn's multi-label scorers work: no NaN scores, and a real choice."""
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, Y, _, _ = _multidigit_vectors(240)
    pipe = make_pipeline(StandardScaler(), MulSupConClassifier(**{**TINY, "epochs": 3}, random_state=0))
    scores = cross_val_score(pipe, X, Y, cv=KFold(2), scoring="f1_micro", error_score="raise")
    assert scores.shape == (2,) and np.all(np.isfinite(scores)) and np.all(scores > 0)
    grid = GridSearchCV(MulSupConClassifier(**TINY, random_state=0), {"epochs": [1, 4]}, cv=KFold(2),
                        scoring=["f1_micro", "f1_samples", "average_precision", "roc_auc"], refit="average_precision",
                        error_score="raise")
    grid.fit(X, Y)
    for name in ("f1_micro", "f1_samples", "average_precision", "roc_auc"):
        assert np.all(np.isfinite(grid.cv_results_[f"mean_test_{name}"])), name
    assert np.isfinite(grid.best_score_) and grid.best_params_ in ({"epochs": 1}, {"epochs": 4})
    assert list(grid.best_estimator_.classes_) == list(range(10))


def test_defaults_are_the_command_lines_vector_defaults():
    from mulsupcon.config import load_config

    cfg, vectors = MulSupConClassifier()._config(), load_config("vectors")
    for section in ("model", "pretrain"):
        assert cfg[section] == vectors[section], section
    assert {k: v for k, v in cfg["classify"].items() if k != "mode"} == {k: v for k, v in vectors["classify"].items() if k != "mode"}
    assert cfg["dataset"]["val_fraction"] == vectors["dataset"]["val_fraction"]
    assert MulSupConClassifier().get_params()["device"] == "auto"
    assert MulSupConClassifier(pretrain_epochs=3)._config()["pretrain"]["epochs"] == 3
    assert MulSupConClassifier(instance_weight=0.5)._config()["pretrain"]["instance_weight"] == 0.5


def test_validation_threshold_is_chosen_on_validation_rows_and_a_float_is_fixed():
    X, Y, Xt, _ = _multidigit_vectors(200)
    clf = MulSupConClassifier(**TINY, random_state=0).fit(X, Y)
    assert clf.threshold_ == clf.thresholds_["micro_f1"] and 0.0 < clf.threshold_ < 1.0
    np.testing.assert_array_equal(clf.predict(Xt), (clf.predict_proba(Xt) >= clf.threshold_).astype(int))
    np.testing.assert_array_equal(clf.decision_function(Xt) > 0, clf.predict(Xt) == 1)
    fixed = MulSupConClassifier(**{**TINY, "threshold": 0.3}, random_state=0).fit(X, Y)
    assert fixed.threshold_ == 0.3
    with pytest.raises(ValueError, match="threshold must be"):
        MulSupConClassifier(**{**TINY, "threshold": "best"}).fit(X, Y)


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
    np.testing.assert_array_equal(pred, (proba >= clf.threshold_).astype(int))
    assert clf.transform(Xt).shape == (len(Xt), 64)
    # learned something real: mAP well above the label-frequency baseline (~0.24 for 10 digits)
    assert clf.score(Xt, Yt) > 0.5
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(Xt), proba, rtol=1e-6)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "classifier_")
    c.set_params(mode="scratch", epochs=1)
    assert c.get_params()["mode"] == "scratch"


def test_fitted_head_option_reaches_the_probe():
    """head_init="fit" reaches the classification loop: after one probe epoch the fitted layer ranks far
    better than a random layer trained for that epoch."""
    X, Y, Xt, Yt = _multidigit_vectors()
    kw = dict(hidden=(64, 64), embed_dim=32, pretrain_epochs=5, epochs=1, batch_size=32, pretrain_batch_size=64,
              queue_size=128, mode="probe", random_state=0)
    assert MulSupConClassifier(head_init="fit")._config()["classify"]["head_init"] == "fit"
    fitted = MulSupConClassifier(head_init="fit", **kw).fit(X, Y)
    random = MulSupConClassifier(**kw).fit(X, Y)
    assert fitted.score(Xt, Yt) > random.score(Xt, Yt) + 0.05


def test_same_random_state_same_model():
    X, Y, Xt, _ = _multidigit_vectors(200)
    a = MulSupConClassifier(**TINY, random_state=3).fit(X, Y).predict_proba(Xt)
    b = MulSupConClassifier(**TINY, random_state=3).fit(X, Y).predict_proba(Xt)
    np.testing.assert_array_equal(a, b)
    # A RandomState, as scikit-learn estimators take it, gives the seed it draws (it failed in int()).
    seed = np.random.RandomState(7).randint(2**32 - 1)
    c = MulSupConClassifier(**TINY, random_state=np.random.RandomState(7)).fit(X, Y).predict_proba(Xt)
    np.testing.assert_array_equal(c, MulSupConClassifier(**TINY, random_state=int(seed)).fit(X, Y).predict_proba(Xt))


def test_bad_targets_are_explained():
    X = np.random.rand(10, 3)
    with pytest.raises(ValueError, match="2-D multi-hot"):
        MulSupConClassifier(**TINY).fit(X, np.arange(10) % 2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        MulSupConClassifier(**TINY).fit(X, np.full((10, 2), 2))
    # Class labels or lists of label names are pointed to MultiLabelBinarizer (the ragged case gave numpy's words).
    for y in (np.arange(10) % 3, [["cat"], ["cat", "dog"]] * 5, [["cat", "dog"]] * 10):
        with pytest.raises(ValueError, match="use sklearn.preprocessing.MultiLabelBinarizer"):
            MulSupConClassifier(**TINY).fit(X, y)
    for rs, said in ((1.5, "random_state must be None, an integer or a numpy RandomState, got 1.5"),
                     (-3, r"seed must be an integer in \[0, 2\*\*32 - 1\]")):
        with pytest.raises(ValueError, match=said):
            MulSupConClassifier(**{**TINY, "random_state": rs}).fit(X, np.ones((10, 2)))
    with pytest.raises(ValueError, match=r"the training split has 1 row\(s\) \(dataset.val_fraction 0.95 "):
        MulSupConClassifier(**{**TINY, "val_fraction": 0.95}).fit(X, np.ones((10, 2)))  # named the batch size
    with pytest.raises(ValueError, match="device 'tpu' is not a device name"):
        MulSupConClassifier(**{**TINY, "device": "tpu"}).fit(X, np.ones((10, 2)))
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        MulSupConClassifier(**{**TINY, "threshold": 2.0}).fit(X, np.ones((10, 2)))
    with pytest.raises(ValueError, match="mode must be"):
        MulSupConClassifier(**{**TINY, "mode": "nope"}).fit(X, np.ones((10, 2)))
    clf = MulSupConClassifier(**TINY).fit(X, (np.random.rand(10, 2) > 0.5).astype(int))
    with pytest.raises(ValueError, match="expecting 3 features"):
        clf.predict(np.random.rand(4, 5))
    with pytest.raises(ValueError, match=r"none of the \d+ training rows has a positive label .* nothing to learn"):
        MulSupConClassifier(**TINY).fit(X, np.zeros((10, 2), int))


def test_a_table_with_text_columns_is_pointed_to_one_hot_encoding():
    """A DataFrame with a text or category column gave numpy's "could not convert string to float: 'red'";
    the error now names the columns and the pipeline that encodes them, and that pipeline fits. `from_arrays`
    names them as well."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "color": rng.choice(["red", "blue"], 40), "on": rng.random(40) > 0.5})
    Y = np.stack([X.a > 0, X.color == "red"], 1).astype(int)
    for table in (X, X.astype({"color": "category"})):
        with pytest.raises(ValueError, match=r"X columns \['color'\] hold text or categories; .*OneHotEncoder"):
            MulSupConClassifier(**TINY).fit(table, Y)
    from mulsupcon.data import from_arrays

    with pytest.raises(ValueError, match=r"feature columns \['color'\] hold text .*get_dummies.*categorical_columns"):
        from_arrays(X, Y)  # the Python loops' way in says the same
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["color"]),
                                                 remainder="passthrough"), MulSupConClassifier(**TINY)).fit(X, Y)
    assert pipe.predict_proba(X.iloc[:3]).shape == (3, 2)


def test_a_label_never_positive_in_the_training_rows_is_named():
    from mulsupcon.data.splits import LabelAbsentWarning

    X = np.random.default_rng(0).random((20, 3))
    Y = np.zeros((20, 2), int)
    Y[::2, 0] = 1  # label_1 is never positive
    with pytest.warns(LabelAbsentWarning, match=r"1 label\(s\) never occur in the training split: label_1"):
        MulSupConClassifier(**TINY).fit(X, Y)


def test_prediction_goes_through_the_command_lines_model_a_batch_at_a_time():
    """predict_proba, decision_function and transform are those of the same self-contained model the
    command line saves (one code path): dense and sparse inputs agree, the decision function's sign is
    predict's, more rows than one batch give the same rows as one at a time, and score reads sparse labels."""
    import scipy.sparse as sp

    from mulsupcon.predict import TrainedModel

    rng = np.random.default_rng(0)
    X = rng.random((60, 5)) * (rng.random((60, 5)) < 0.4)
    Y = (rng.random((60, 3)) < 0.5).astype(int)
    Y[Y.sum(1) == 0, 0] = 1
    clf = MulSupConClassifier(**TINY, random_state=0).fit(X, Y)
    assert isinstance(clf.model_, TrainedModel) and clf.classifier_ is clf.model_.model
    Xt = rng.random((1100, 5)) * (rng.random((1100, 5)) < 0.4)  # more rows than one batch of 512
    proba = clf.predict_proba(Xt)
    np.testing.assert_allclose(clf.predict_proba(sp.csr_matrix(Xt)), proba, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(clf.predict_proba(Xt[700:701]), proba[700:701], rtol=1e-6, atol=1e-7)
    # standardised with the training rows' statistics, as the estimator reports them
    x = (np.asarray(Xt[:4], np.float32) - clf.mean_.numpy()) / clf.scale_.numpy()
    import torch

    with torch.no_grad():
        direct = torch.sigmoid(clf.classifier_(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(proba[:4], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.decision_function(Xt) > 0, clf.predict(Xt) == 1)
    assert clf.transform(sp.csr_matrix(Xt)).shape == (1100, 8)
    Yt = (rng.random((1100, 3)) < 0.5).astype(int)
    assert clf.score(Xt, sp.csr_matrix(Yt)) == pytest.approx(clf.score(Xt, Yt))
    with pytest.raises(ValueError, match="sample_weight"):
        clf.score(Xt, Yt, sample_weight=np.ones(1100))



def test_missing_values_are_filled_as_the_command_line_fills_them():
    """missing="median": NaN in fit and in prediction becomes the training rows' column median (the fill the
    CLI's --dataset.missing median keeps in the model); without it NaN is refused, naming the option."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    Y = (rng.random((60, 2)) < 0.5).astype(int)
    Y[Y.sum(1) == 0, 0] = 1
    holes = X.copy()
    holes[::7, 1] = np.nan
    with pytest.raises(ValueError, match=r"contains NaN\. MulSupConClassifier\(missing='mean'\)"):
        MulSupConClassifier(**TINY).fit(holes, Y)
    with pytest.warns(UserWarning, match="missing feature value"):
        clf = MulSupConClassifier(**TINY, missing="median", random_state=0).fit(holes, Y)
    from mulsupcon.data.splits import stratified_carve

    train_idx, _ = stratified_carve(Y, 0.2, 0)  # the estimator's own carve (val_fraction 0.2, random_state 0)
    fill = clf.model_._fill.numpy()
    np.testing.assert_allclose(fill[1], np.nanmedian(holes[train_idx, 1]), rtol=1e-6)
    Xt = rng.normal(size=(5, 4))
    gaps = Xt.copy()
    gaps[:, 1] = np.nan
    filled = Xt.copy()
    filled[:, 1] = fill[1]
    np.testing.assert_allclose(clf.predict_proba(gaps), clf.predict_proba(filled), rtol=1e-6, atol=1e-7)
    assert clf.model_.config["dataset"]["missing"] == "median"
    assert MulSupConClassifier(missing="median")._config()["dataset"]["missing"] == "median"


def test_verbose_fit_names_the_rows_its_metrics_are_on(capsys):
    """The estimator holds out no test rows: the metrics its verbose fit prints are on its validation rows and
    say so (they were printed as 'test metrics')."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0], 1).astype(int)
    MulSupConClassifier(**{**TINY, "verbose": True}).fit(X, Y)
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "validation metrics:" in out and "| validation, fixed protocol |" in out
    assert "test metrics" not in out and "| test," not in out
