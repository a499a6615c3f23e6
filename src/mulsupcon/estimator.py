"""A scikit-learn estimator: MulSupCon pretraining + finetuning on arrays.

>>> clf = MulSupConClassifier().fit(X, Y)          # X (N, F) dense or sparse, Y (N, L) in {0, 1}
>>> proba = clf.predict_proba(X_test)              # (N_test, L)
>>> Y_hat = clf.predict(X_test)                    # 0/1 at the threshold chosen on the internal validation rows
>>> Z = clf.transform(X_test)                      # (N_test, D) backbone embeddings

Everything runs through the same library code as the command line (the pretraining and classification
loops), in memory: no file is written. A parameter left at ``None`` takes the value of the command line's
default for vector data (``configs/vectors.yaml``), so the estimator and ``mulsupcon train --dataset.path``
train the same model.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mulsupcon.config import load_config
from mulsupcon.data.dataset import Matrix
from mulsupcon.metrics import check_probability_threshold


# estimator parameter -> config key (the estimator's names follow scikit-learn's habits)
_CONFIG_KEYS = {
    "hidden": "model.hidden", "dropout": "model.dropout", "embed_dim": "model.embed_dim",
    "positives": "pretrain.positives", "weighting": "pretrain.weighting", "temperature": "pretrain.temperature",
    "queue_size": "pretrain.queue_size", "momentum": "pretrain.momentum", "mask_prob": "pretrain.mask_prob",
    "instance_weight": "pretrain.instance_weight",
    "pretrain_epochs": "pretrain.epochs", "pretrain_batch_size": "pretrain.batch_size", "pretrain_lr": "pretrain.lr",
    "epochs": "classify.epochs", "batch_size": "classify.batch_size", "lr": "classify.lr",
    "lr_backbone": "classify.lr_backbone", "loss": "classify.loss", "head_init": "classify.head_init",
    "val_fraction": "dataset.val_fraction", "missing": "dataset.missing",
}


class MulSupConClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Multi-label classifier pretrained with the MulSupCon loss (Zhang & Wu, AAAI 2024).

    Parameters mirror the command line's config keys (``None``: the CLI's default for vector data).
    ``mode="scratch"`` skips pretraining (the BCE baseline); ``mode="probe"`` trains only a linear layer on
    the frozen pretrained backbone. ``head_init="fit"`` starts the linear layer of both as a logistic regression
    on the frozen features (higher mAP, lower thresholded metrics: benchmarks/README.md, 'Linear probing,
    then finetuning'). ``threshold="validation"`` predicts at the threshold that is best for
    micro-F1 on the internal validation rows (``val_fraction`` of the training rows, carved by iterative
    stratification; model selection uses them too); a float predicts at that fixed threshold.
    ``val_fraction=0`` holds no rows out: the checkpoint and the threshold are then chosen on the training
    rows themselves, which favours the most fitted epoch (the command line refuses it).
    ``random_state``: an integer seed (None: 0, so two fits give the same model) or a ``RandomState`` to draw
    one from. ``device="auto"``: CUDA when available, else the CPU. ``missing="mean"`` (or ``"median"``,
    ``"most_frequent"``) reads NaN in X as a missing value, filled with that statistic of its column over the
    training rows, in fit and in prediction alike (``--dataset.missing``); by default NaN is refused.

    Attributes (after fit): ``classes_`` (``arange(n_labels)``, scikit-learn's convention for multi-label
    targets), ``n_features_in_``, ``threshold_`` (the threshold :meth:`predict` uses), ``thresholds_`` (per
    thresholded metric, chosen on validation), ``model_`` (the :class:`~mulsupcon.predict.TrainedModel` that
    ``mulsupcon.load_run`` would give for the same run), ``classifier_`` (its torch module), ``mean_``/``scale_``
    (standardisation fitted on the training rows), ``history_`` (per epoch).
    """

    def __init__(self, hidden: Optional[Sequence[int]] = None, dropout: Optional[float] = None,
                 embed_dim: Optional[int] = None, mode: str = "finetune", positives: Optional[str] = None,
                 weighting: Optional[str] = None, temperature: Optional[float] = None, queue_size: Optional[int] = None,
                 momentum: Optional[float] = None, mask_prob: Optional[float] = None,
                 instance_weight: Optional[float] = None,
                 pretrain_epochs: Optional[int] = None, pretrain_batch_size: Optional[int] = None,
                 pretrain_lr: Optional[float] = None, epochs: Optional[int] = None, batch_size: Optional[int] = None,
                 lr: Optional[float] = None, lr_backbone: Optional[float] = None, loss: Optional[str] = None,
                 head_init: Optional[str] = None, val_fraction: Optional[float] = None, missing: Optional[str] = None,
                 threshold: float | str = "validation", device: str = "auto",
                 random_state: int | np.random.RandomState | None = None, verbose: bool = False):
        self.hidden = hidden
        self.dropout = dropout
        self.embed_dim = embed_dim
        self.mode = mode
        self.positives = positives
        self.weighting = weighting
        self.temperature = temperature
        self.queue_size = queue_size
        self.momentum = momentum
        self.mask_prob = mask_prob
        self.instance_weight = instance_weight
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_lr = pretrain_lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_backbone = lr_backbone
        self.loss = loss
        self.head_init = head_init
        self.val_fraction = val_fraction
        self.missing = missing
        self.threshold = threshold
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _config(self) -> dict:
        overrides = {key: getattr(self, name) for name, key in _CONFIG_KEYS.items() if getattr(self, name) is not None}
        if "model.hidden" in overrides:
            overrides["model.hidden"] = [int(h) for h in overrides["model.hidden"]]
        overrides.update({"seed": self._seed(), "device": self.device,
                          "dataset.name": "arrays", "classify.mode": self.mode, "eval.protocols": ["fixed"]})
        return load_config("vectors", overrides)

    def _seed(self) -> int:
        """The run's seed: ``random_state`` (None: 0, so that two fits give the same model), or a draw from a
        ``RandomState`` as scikit-learn estimators take it."""
        rs = self.random_state
        if rs is None:
            return 0
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**32 - 1))
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            return int(rs)  # the config check refuses one outside [0, 2**32 - 1]
        raise ValueError(f"random_state must be None, an integer or a numpy RandomState, got {rs!r}")

    def _check_X(self, X, *, reset: bool) -> np.ndarray | sp.csr_matrix:
        from mulsupcon.data.user_files import text_columns

        text = text_columns(X)  # a DataFrame's text columns are named, with the remedy
        if text:
            raise ValueError(
                f"X columns {text[:5]} hold text or categories; MulSupConClassifier takes numbers. One-hot "
                "encode them first, e.g. make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="
                f"'ignore'), {text[:5]!r}), remainder='passthrough'), MulSupConClassifier())")
        # NaN is a missing value when `missing` names a fill strategy (as --dataset.missing does), else refused.
        finite = True if self.missing in (None, "error") else "allow-nan"
        try:
            return validate_data(self, X, reset=reset, accept_sparse="csr", dtype=np.float32, ensure_min_samples=1,
                                 ensure_all_finite=finite)
        except ValueError as err:
            if finite is True and str(err).startswith("Input X contains NaN"):  # scikit-learn's advice names other models
                raise ValueError(
                    "Input X contains NaN. MulSupConClassifier(missing='mean') (or 'median', 'most_frequent') reads NaN "
                    "as a missing value, filled with that statistic of its column over the training rows in fit and "
                    "in prediction alike; by default NaN is refused.") from None
            raise

    @staticmethod
    def _check_Y(Y, n: int) -> np.ndarray:
        if Y is None:
            raise ValueError("MulSupConClassifier requires y to be passed, but the target y is None")
        binarize = ("For class labels, or lists of label names, use sklearn.preprocessing.MultiLabelBinarizer "
                    "(or LabelBinarizer) first.")
        try:
            Y = Y.toarray() if sp.issparse(Y) else np.asarray(Y)
        except ValueError:  # numpy refuses ragged rows, such as lists of label names of different lengths
            raise ValueError(f"Y has rows of different lengths; it must be a multi-hot label matrix. {binarize}") from None
        if not np.isin(Y, (0, 1)).all():
            raise ValueError("Unknown label type: Y must hold only 0 and 1 (a multi-hot label matrix, one column per "
                             f"label).{' ' + binarize if Y.ndim == 1 or Y.dtype.kind in 'OUS' else ''}")
        if Y.ndim == 1:
            raise ValueError(
                "Y must be a 2-D multi-hot label matrix (n_samples, n_labels) with values in {0, 1}; "
                f"got a 1-D array of shape {Y.shape}. {binarize}")
        if Y.ndim != 2 or Y.shape[0] != n:
            raise ValueError(f"Y must have shape ({n}, n_labels); got {Y.shape}")
        return Y.astype(np.uint8)

    def _data(self, X, Y, cfg):
        from mulsupcon.data.dataset import MultiLabelDataset, Splits
        from mulsupcon.data.splits import stratified_carve, warn_labels_missing_from_train
        from mulsupcon.train.data import prepare_data

        full = MultiLabelDataset(X, Y, [f"label_{j}" for j in range(Y.shape[1])], name="arrays", source="arrays passed to fit")
        train_idx, val_idx = stratified_carve(Y, float(cfg["dataset"]["val_fraction"]), int(cfg["seed"]))
        val = full.subset(val_idx if len(val_idx) else train_idx)
        # The loops score a test part too: here it is the validation rows (the estimator reports nothing on it).
        splits = Splits(train=full.subset(train_idx), val=val, test=val,
                        info={"train_rows": train_idx.tolist(), "val_rows": val_idx.tolist(), "test_is_validation": True})
        prepared = prepare_data(cfg["dataset"], splits)  # refuses labels without any positive first
        warn_labels_missing_from_train(splits.train, val=val)  # as the command line's carve does
        return prepared

    # ------------------------------------------------------------------ API
    def fit(self, X: Matrix, Y: Matrix) -> "MulSupConClassifier":
        """Pretrain (unless ``mode="scratch"``) and train the classifier on X (N, F) and Y (N, L)."""
        from mulsupcon.predict import TrainedModel
        from mulsupcon.train.classify import classify
        from mulsupcon.train.pretrain import pretrain
        from mulsupcon.train.rundir import RunDir

        if self.mode not in ("finetune", "probe", "scratch"):
            raise ValueError(f"mode must be finetune, probe or scratch; got {self.mode!r}")
        if not (self.threshold == "validation" or isinstance(self.threshold, (int, float))):
            raise ValueError(f"threshold must be 'validation' or a number, got {self.threshold!r}")
        if self.threshold != "validation":
            check_probability_threshold(self.threshold)
        X = self._check_X(X, reset=True)
        Y = self._check_Y(Y, X.shape[0])
        if X.shape[0] < 2:
            raise ValueError(f"n_samples={X.shape[0]}: MulSupConClassifier needs at least 2 samples (1 sample cannot be split)")
        cfg = self._config()
        data = self._data(X, Y, cfg)
        from_run = None
        if self.mode != "scratch":
            pre = RunDir.in_memory(echo=self.verbose)
            pretrain(cfg, pre, quiet=not self.verbose, echo=self.verbose, data=data)
            from_run = pre.files["backbone.pt"]
        run = RunDir.in_memory(echo=self.verbose)
        classify(cfg, run, from_run=from_run, quiet=not self.verbose, echo=self.verbose, data=data)
        # The same self-contained model the command line saves and `load_run` reads, so prediction is one
        # code path (standardised and densified a batch at a time).
        self.model_ = TrainedModel(run.files["model.pt"], device="cpu", source="MulSupConClassifier")
        self.classifier_ = self.model_.model
        self.history_ = run.history
        self.classes_ = np.arange(Y.shape[1])
        self.thresholds_ = dict(self.model_.thresholds)
        self.threshold_ = float(self.model_.threshold if self.threshold == "validation" else self.threshold)
        self.mean_, self.scale_ = data.train.mean, data.train.std  # (F,) each, or None without standardisation
        return self

    def predict_proba(self, X: Matrix) -> np.ndarray:
        """(N, F) -> (N, L) label probabilities."""
        check_is_fitted(self, "classifier_")
        return self.model_.predict_proba(self._check_X(X, reset=False))

    def predict(self, X: Matrix) -> np.ndarray:
        """(N, F) -> (N, L) multi-hot predictions (probability >= ``threshold_``)."""
        return (self.predict_proba(X) >= self.threshold_).astype(np.int64)

    def decision_function(self, X: Matrix) -> np.ndarray:
        """(N, F) -> (N, L) logits minus the logit of ``threshold_``: positive exactly where :meth:`predict`
        says 1 (scikit-learn's convention), in the order of :meth:`predict_proba` within each label."""
        check_is_fitted(self, "classifier_")
        t = min(max(self.threshold_, 1e-6), 1 - 1e-6)
        return self.model_.logits(self._check_X(X, reset=False)) - float(np.log(t) - np.log1p(-t))

    def transform(self, X: Matrix) -> np.ndarray:
        """(N, F) -> (N, D) backbone embeddings."""
        check_is_fitted(self, "classifier_")
        return self.model_.transform(self._check_X(X, reset=False))

    def score(self, X: Matrix, Y: Matrix, sample_weight: None = None) -> float:
        """Mean average precision of ``predict_proba(X)`` against ``Y``."""
        from mulsupcon.metrics import evaluate

        if sample_weight is not None:
            raise ValueError("score does not take sample_weight: the mAP here weighs every row equally")
        proba = self.predict_proba(X)
        return float(evaluate(proba, self._check_Y(Y, proba.shape[0]), protocol="fixed")["mAP"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags
