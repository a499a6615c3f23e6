"""A scikit-learn style estimator: MulSupCon pretraining + finetuning on arrays.

>>> clf = MulSupConClassifier(pretrain_epochs=20).fit(X, Y)      # X (N, F), Y (N, C) in {0,1}
>>> proba = clf.predict_proba(X_test)                            # (N_test, C)
>>> Z = clf.transform(X_test)                                    # (N_test, 256) backbone embeddings

Everything runs through the same library code as the command line (the pretraining and
classification loops), in memory: no file is written.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from mulsupcon.config import load_config


class MulSupConClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Multi-label classifier pretrained with the MulSupCon loss (Zhang & Wu, AAAI 2024).

    Parameters mirror the config keys of the command line (``pretrain.*`` and ``classify.*``).
    ``mode="scratch"`` skips pretraining (the BCE baseline); ``mode="probe"`` trains only a linear
    layer on the frozen pretrained backbone.

    Attributes (after fit): ``classifier_`` (torch module), ``n_features_in_``, ``n_labels_``,
    ``mean_``/``scale_`` (standardisation fitted on the training part), ``history_``.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 512, 256),
        dropout: float = 0.2,
        embed_dim: int = 256,
        mode: str = "finetune",
        positives: str = "mulsupcon",
        weighting: str = "label",
        temperature: float = 0.1,
        queue_size: int = 256,
        momentum: float = 0.999,
        mask_prob: float = 0.5,
        pretrain_epochs: int = 50,
        pretrain_batch_size: int = 32,
        pretrain_lr: float = 4e-4,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 4e-4,
        lr_backbone: float = 4e-5,
        loss: str = "bce",
        val_fraction: float = 0.2,
        threshold: float = 0.5,
        random_state: Optional[int] = None,
        verbose: bool = False,
    ):
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
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_lr = pretrain_lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_backbone = lr_backbone
        self.loss = loss
        self.val_fraction = val_fraction
        self.threshold = threshold
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _config(self) -> dict:
        seed = 0 if self.random_state is None else int(self.random_state)
        return load_config(
            None,
            {
                "seed": seed,
                "device": "cpu",
                "dataset.name": "arrays",
                "model.hidden": list(self.hidden),
                "model.dropout": float(self.dropout),
                "model.embed_dim": int(self.embed_dim),
                "pretrain.positives": self.positives,
                "pretrain.weighting": self.weighting,
                "pretrain.temperature": float(self.temperature),
                "pretrain.queue_size": int(self.queue_size),
                "pretrain.momentum": float(self.momentum),
                "pretrain.mask_prob": float(self.mask_prob),
                "pretrain.epochs": int(self.pretrain_epochs),
                "pretrain.batch_size": int(self.pretrain_batch_size),
                "pretrain.lr": float(self.pretrain_lr),
                "classify.mode": self.mode,
                "classify.epochs": int(self.epochs),
                "classify.batch_size": int(self.batch_size),
                "classify.lr": float(self.lr),
                "classify.lr_backbone": float(self.lr_backbone),
                "classify.loss": self.loss,
                "eval.protocols": ["fixed"],
            },
        )

    def _check_X(self, X, *, reset: bool) -> np.ndarray | sp.csr_matrix:
        X = check_array(X, accept_sparse="csr", dtype=np.float32, ensure_min_samples=1)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features as input"
            )
        return X

    @staticmethod
    def _check_Y(Y, n: int) -> np.ndarray:
        if Y is None:
            raise ValueError("MulSupConClassifier requires y to be passed, but the target y is None")
        Y = np.asarray(Y)
        if not np.isin(Y, (0, 1)).all():
            raise ValueError(
                "Unknown label type: Y must hold only 0 and 1 (a multi-hot label matrix, one column per label)"
            )
        if Y.ndim == 1:
            raise ValueError(
                "Y must be a 2-D multi-hot label matrix (n_samples, n_labels) with values in {0, 1}; "
                f"got a 1-D array of shape {Y.shape}. For class labels use sklearn.preprocessing.MultiLabelBinarizer "
                "or LabelBinarizer first."
            )
        if Y.ndim != 2 or Y.shape[0] != n:
            raise ValueError(f"Y must have shape ({n}, n_labels); got {Y.shape}")
        return Y.astype(np.uint8)

    def _data(self, X, Y, cfg):
        from mulsupcon.data.dataset import MultiLabelDataset, Splits
        from mulsupcon.train.data import prepare_data

        n = X.shape[0]
        rng = np.random.default_rng(int(cfg["seed"]))
        perm = rng.permutation(n)
        n_val = max(1, int(round(self.val_fraction * n))) if n > 1 else 0
        val_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        if len(tr_idx) == 0:
            tr_idx = val_idx
        names = [f"label_{j}" for j in range(Y.shape[1])]
        full = MultiLabelDataset(X, Y, names, name="arrays", source="arrays passed to fit")
        splits = Splits(train=full.subset(tr_idx), val=full.subset(val_idx if n_val else tr_idx),
                        test=full.subset(val_idx if n_val else tr_idx),
                        info={"train_rows": tr_idx.tolist(), "val_rows": val_idx.tolist()})
        return prepare_data(cfg["dataset"], splits)

    # ------------------------------------------------------------------ API
    def fit(self, X, Y) -> "MulSupConClassifier":
        """Pretrain (unless ``mode="scratch"``) and train the classifier.

        Args:
            X: (N, F) features (dense or scipy sparse).
            Y: (N, C) multi-hot labels.
        """
        from mulsupcon.train.classify import build_classifier, classify
        from mulsupcon.train.pretrain import pretrain
        from mulsupcon.train.rundir import RunDir

        if self.mode not in ("finetune", "probe", "scratch"):
            raise ValueError(f"mode must be finetune, probe or scratch; got {self.mode!r}")
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
        model, _ = build_classifier(cfg, data, None)
        model.load_state_dict(run.files["model.pt"]["model"])
        model.eval()
        self.history_ = run.history
        self.classifier_ = model
        self.n_labels_ = Y.shape[1]
        self.mean_, self.scale_ = data.train.mean, data.train.std  # (F,) each, or None without standardisation
        return self

    def _tensor(self, X) -> torch.Tensor:
        X = self._check_X(X, reset=False)
        x = torch.from_numpy(X.toarray() if sp.issparse(X) else np.ascontiguousarray(X))
        return x if self.mean_ is None else (x - self.mean_) / self.scale_

    @torch.no_grad()
    def predict_proba(self, X) -> np.ndarray:
        """(N, F) -> (N, C) label probabilities."""
        check_is_fitted(self, "classifier_")
        return torch.sigmoid(self.classifier_(self._tensor(X))).numpy()

    def predict(self, X) -> np.ndarray:
        """(N, F) -> (N, C) multi-hot predictions (probability >= ``threshold``)."""
        return (self.predict_proba(X) >= self.threshold).astype(np.int64)

    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """(N, F) -> (N, D) backbone embeddings."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.embed(self._tensor(X)).numpy()

    def score(self, X, Y, sample_weight=None) -> float:
        """Mean average precision of ``predict_proba(X)`` against ``Y``."""
        from mulsupcon.metrics import evaluate

        return float(evaluate(self.predict_proba(X), np.asarray(Y), protocol="fixed")["mAP"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags
