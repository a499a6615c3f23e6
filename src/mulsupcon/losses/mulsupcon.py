"""The MulSupCon loss (Zhang & Wu, AAAI 2024, Eq. 4-6) and the ALL / ANY baselines, in one screen.

Notation: query z_q (B, D), anchor labels y (B, C), references z_k (K, D) with labels y_k (K, C).
Scores ``s_ia = z_q^(i) . z_k^(a) / tau`` over unit vectors; every softmax runs over all K references,
``log p_ia = s_ia - lse_i`` with ``lse_i = logsumexp_a s_ia``.

* Eq. 4, ``positives="mulsupcon"``: for each label j of anchor i, P_j = references with label j, and
  ``L^(i) = sum_{j in y_i} -1/|P_j| sum_{p in P_j} log p_ip``.
* Eq. 5, ``weighting="label"``: ``L = sum_i L^(i) / (number of (anchor, label) pairs)``.
* Eq. 6, ``weighting="sample"``: each anchor's sum divided by its label count, averaged over anchors.
* ``"all"`` / ``"any"``: one positive set per anchor, the references with the same label set / sharing
  a label; ``-log p`` averaged over it, then over anchors with a positive (``weighting`` ignored).

In-batch mode (``keys=None``) is SupCon (Khosla et al. 2020): the references are the queries, each
anchor's own entry excluded; with one-hot labels every rule equals SupCon.

Empty sets, never NaN: a pair (i, j) with empty P_j and an anchor with no label contribute nothing and
are not counted; when nothing counts the loss is an exact 0 still connected to the graph.
(The authors' code divides Eq. 6 by B; here by the anchors that count, the same whenever every anchor
has a label present among the references.)

How the sums are computed without a tensor per (anchor, label) pair: :mod:`.fused`; the bounded-memory
form for huge queues (``chunk_size``): :mod:`.chunked`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mulsupcon.ops import l2_normalize

from .checks import check_contrastive_inputs, check_embeddings
from .fused import label_set_total, mulsupcon_total

POSITIVE_RULES = ("mulsupcon", "all", "any")
WEIGHTINGS = ("label", "sample")


class MulSupConLoss(nn.Module):
    """Multi-label supervised contrastive loss and the ALL / ANY baselines.

    Args:
        temperature: tau > 0 dividing the cosine scores (the paper: 0.1).
        positives: ``"mulsupcon"`` (Eq. 4), ``"all"`` or ``"any"``.
        weighting: ``"label"`` (Eq. 5) or ``"sample"`` (Eq. 6); MulSupCon only.
        chunk_size: None (memory O(B K)) or reference columns per block (memory O(B * chunk_size),
            same values and gradients).
        normalize: L2-normalise query and keys inside (default); ``False`` for callers that already did
            (MoCo returns unit vectors).
        validate: check the values (labels in {0, 1}; a non-finite result explained by the offending
            embedding). Each check reads a value back from the device; a training loop that validates its
            labels once and watches the loss itself (:mod:`mulsupcon.train.guard`) passes ``False``, so
            that a step needs no host synchronisation. Shapes are always checked.

    Call: ``loss_fn(query (B, D), labels (B, C), keys (K, D) | None, key_labels (K, C) | None) -> scalar``
    (float32, or float64 when an embedding is float64; half-precision inputs are upcast). ValueError for
    mismatched shapes, non-binary labels and non-finite embeddings.
    """

    def __init__(self, temperature: float = 0.1, positives: Literal["mulsupcon", "all", "any"] = "mulsupcon",
                 weighting: Literal["label", "sample"] = "label", chunk_size: int | None = None,
                 normalize: bool = True, validate: bool = True) -> None:
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if not math.isfinite(float(temperature)) or temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        if positives not in POSITIVE_RULES:
            raise ValueError(f"positives must be one of {POSITIVE_RULES}, got {positives!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0):
            raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")
        self.temperature, self.positives, self.weighting = float(temperature), positives, weighting
        self.chunk_size, self.normalize, self.validate = chunk_size, bool(normalize), bool(validate)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, positives={self.positives!r}, weighting={self.weighting!r}, "
                f"chunk_size={self.chunk_size}, normalize={self.normalize}")

    def forward(self, query: Tensor, labels: Tensor, keys: Tensor | None = None, key_labels: Tensor | None = None,
                *, exclude_self: bool = False) -> Tensor:
        """The loss (scalar): ``total / count`` of :meth:`sum_and_count`."""
        total, count = self.sum_and_count(query, labels, keys, key_labels, exclude_self=exclude_self)
        return total / count.clamp_min(1).to(total.dtype)

    def sum_and_count(self, query: Tensor, labels: Tensor, keys: Tensor | None = None,
                      key_labels: Tensor | None = None, *, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
        """``(total, count)`` with ``loss = total / count``: count is the number of contributing
        (anchor, label) pairs (MulSupCon, Eq. 5) or anchors (Eq. 6, ALL, ANY). Multi-process training
        adds the counts of every process so that the normalisation is the global one.

        ``exclude_self``: the first B keys ARE the queries (the batch followed by a memory of past
        embeddings, :class:`mulsupcon.memory.MultiLabelMemory`); anchor i's own entry, key i, is then left
        out of its softmax and positives, as in in-batch mode."""
        check_contrastive_inputs(query, labels, keys, key_labels, values=self.validate)
        if exclude_self and (keys is None or keys.shape[0] < query.shape[0]):
            raise ValueError("exclude_self=True needs keys whose first B rows are the B queries")
        in_batch = keys is None or exclude_self
        dtype = torch.float64 if torch.float64 in (query.dtype, getattr(keys, "dtype", None)) else torch.float32
        q = query.to(dtype)
        q = l2_normalize(q) if self.normalize else q
        y = labels.detach().to(dtype)
        if keys is None:
            k, yk = q, y
        else:
            k = keys.to(dtype)
            k = l2_normalize(k) if self.normalize else k
            yk = key_labels.detach().to(device=y.device, dtype=dtype)
        if q.shape[0] == 0 or k.shape[0] - int(in_batch) <= 0:  # no reference at all: nothing contributes
            total, count = q.sum() * 0.0 + k.sum() * 0.0, torch.zeros((), dtype=dtype, device=q.device)
        elif self.positives == "mulsupcon":
            total, count = self._mulsupcon(q, k, y, yk, in_batch)
        else:
            qs = q * (1.0 / self.temperature)
            total, count = label_set_total(qs, k, y, yk, self.positives, in_batch, self.chunk_size)
        # A NaN or inf in query or keys always reaches the total (0 * nan = nan): the inputs are scanned for
        # the offending element only to explain a bad result, not on every call.
        if self.validate and not math.isfinite(total.item()):
            check_embeddings("query", query)
            if keys is not None:
                check_embeddings("keys", keys)
        return total, count.detach()

    def _mulsupcon(self, q: Tensor, k: Tensor, y: Tensor, yk: Tensor, in_batch: bool) -> tuple[Tensor, Tensor]:
        """Eq. 4 with Eq. 5 or Eq. 6: ``sum_ij w_ij (lse_i - mean_{p in P_j} s_ip)`` and its count."""
        n_pos = yk.sum(0)[None, :] - y if in_batch else yk.sum(0)[None, :].expand_as(y)  # (B, C) |P_j^(i)|
        valid = ((y > 0) & (n_pos > 0)).to(q.dtype)  # (B, C) the (anchor, label) pairs that count
        if self.weighting == "label":  # Eq. 5: every pair weighs 1, divided by the number of pairs
            w, count = valid, valid.sum()
        else:  # Eq. 6: pairs of anchor i weigh 1 / (its counted labels), divided by the anchors that count
            per_anchor = valid.sum(1, keepdim=True)
            w, count = valid / per_anchor.clamp_min(1.0), (per_anchor > 0).sum().to(q.dtype)
        coef = w / n_pos.clamp_min(1.0)  # (B, C) weight of each positive score: the mean over P_j
        qs = q * (1.0 / self.temperature)  # dividing (B, D) queries is cheaper than (B, K) scores
        return mulsupcon_total(qs, q, k, y, yk, w.sum(1), coef, in_batch, self.chunk_size), count
