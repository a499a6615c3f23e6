"""Contrastive losses for multi-label data (MulSupCon, ALL, ANY) and the asymmetric loss (ASL).

Shapes and notation
-------------------
* ``query``  (B, D): anchor embeddings z_q (the query encoder's output for this batch).
* ``labels`` (B, C): the anchors' multi-hot label rows (bool, integer or float with values in {0, 1}).
* ``keys``   (K, D): reference embeddings z_k. In MoCo pretraining these are this batch's keys followed by the
  queue, so each anchor's own key is one of its references (and one of its positives).
* ``key_labels`` (K, C): the references' label rows.

Embeddings are L2-normalised inside (``normalize=True``, the default). The score of anchor i against
reference a is ``s_ia = z_q^(i) . z_k^(a) / temperature`` and every softmax runs over all K references:
``log p_ia = s_ia - logsumexp_a' s_ia'``.

In-batch mode (``keys=None``) works like SupCon (Khosla et al. 2020): the references are the queries
themselves and each anchor's own entry is excluded from both the numerator and the denominator. With one-hot
labels every positive rule below then equals the SupCon loss.

Positive rules (``positives=``)
-------------------------------
* ``"mulsupcon"`` (paper Eq. 4): for each label j of anchor i, P_j^(i) = references having label j;
  ``L^(i) = sum_{j in y_i} -1/|P_j| sum_{p in P_j} log p_ip``.
  - ``weighting="label"`` (Eq. 5, the paper's choice): ``L = sum_i L^(i) / (number of (anchor, label) pairs)``.
  - ``weighting="sample"`` (Eq. 6): each anchor's sum is divided by its number of (counted) labels, and the
    result is averaged over the anchors that count.
* ``"all"``: positives are the references whose label set equals the anchor's.
* ``"any"``: positives are the references sharing at least one label with the anchor.
  For ALL/ANY each anchor averages ``-log p`` over its positives and the loss averages over the anchors with at
  least one positive (``weighting`` is ignored: there is one positive set per anchor).

Conventions for empty sets (never NaN)
--------------------------------------
* An (anchor, label) pair whose positive set is empty (the label is absent from the references) contributes
  nothing and is not counted in either denominator of Eq. 5 / Eq. 6.
* An anchor with no labels contributes nothing (for ALL it would otherwise "match" unlabelled references).
* When nothing contributes the loss is an exact 0 that is still connected to the graph, so ``backward()`` works
  and yields zero gradients.
* The authors' code divides the weighted (Eq. 6) variant by the batch size B; here it is divided by the number of
  anchors that contribute, which is the same whenever every anchor has a label present in the references.

Cost
----
No tensor ever has one row per (anchor, label) pair. Every unchunked variant is computed by one fused autograd
function as ``total = sum_i a_i lse_i - sum_ia W_ia s_ia`` (``lse_i`` the log-sum-exp of anchor i's scores, ``a_i``
how often it counts, ``W`` the weight of each positive score): one (B, K) score matmul and one log-softmax forward;
one elementwise pass and the two gradient matmuls backward. The L2 normalisation has a fused backward too
(autograd's backward of ``F.normalize`` takes about ten passes over the (K, D) keys).

For MulSupCon the positive part follows from per-class quantities (the observation behind Eq. 7): with
``coef_ij`` the weight of pair (i, j), ``W = coef @ key_labels^T`` (B*C*K multiply-adds), or equivalently, with
``S = key_labels^T @ z_k`` (C, D), ``sum_{p in P_j} s_ip = z_q^(i) . S_j / tau`` (K*C*D multiply-adds, twice when
the keys need a gradient); the cheaper of the two is used. Time O(B K D + min(B, D) K C), memory O(B K).
ALL/ANY build their (B, K) positive mask from ``labels @ key_labels^T``: time O(B K (D + C)).

With ``chunk_size`` set the references are processed in column blocks by a custom autograd function that keeps
only per-anchor log-sum-exp values and recomputes block scores in backward: peak extra memory O(B * chunk_size)
instead of O(B K), same values and gradients (up to floating-point summation order).

Errors: ``ValueError`` for mismatched shapes, non-binary labels, a temperature <= 0, unknown option strings,
``keys`` without ``key_labels`` (or the reverse) and NaN/inf embeddings. A NaN/inf in query or keys always
reaches the loss (0 * nan = nan), so the inputs are scanned for the offending element only when the result is not
finite: no extra pass over the (K, D) keys on normal calls.

Dtypes: computation is float32, or float64 when any embedding input is float64; float16/bfloat16 inputs are
upcast first. The returned loss has the computation dtype.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MulSupConLoss", "AsymmetricLoss", "POSITIVE_RULES", "WEIGHTINGS"]

POSITIVE_RULES = ("mulsupcon", "all", "any")
WEIGHTINGS = ("label", "sample")

PositiveRule = Literal["mulsupcon", "all", "any"]
Weighting = Literal["label", "sample"]


# ----------------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------------


def _first_bad_index(mask: Tensor) -> tuple[int, ...]:
    """Index (row, column) of the first True entry of a boolean tensor."""
    idx = torch.nonzero(mask, as_tuple=False)[0]
    return tuple(int(v) for v in idx)


def _check_embeddings(name: str, x: Tensor, finite: bool = True) -> None:
    """Raise ValueError unless ``x`` is a 2-D floating tensor (and finite, when ``finite``)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not finite:
        return
    ok = torch.isfinite(x)
    if not bool(ok.all()):
        r, c = _first_bad_index(~ok)
        raise ValueError(f"{name} contains a non-finite value ({float(x[r, c])}) at row {r}, column {c}")


def _check_labels(name: str, y: Tensor) -> None:
    """Raise ValueError unless ``y`` is a 2-D tensor with values in {0, 1}."""
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, classes), got shape {tuple(y.shape)}")
    if y.dtype == torch.bool:
        return
    if y.is_complex():
        raise ValueError(f"{name} must be bool, integer or real floating point, got dtype {y.dtype}")
    if y.dtype == torch.uint8:  # the queue's dtype: one comparison suffices (no negative values)
        if not bool(y.gt(1).any()):
            return
    bad = (y != 0) & (y != 1)  # NaN compares unequal to both, so it is caught here too
    if bool(bad.any()):
        r, c = _first_bad_index(bad)
        raise ValueError(
            f"{name} must be multi-hot with values in {{0, 1}}; found {y[r, c].item()} at row {r}, column {c}"
        )


# ----------------------------------------------------------------------------------------------------------------
# fused L2 normalisation
# ----------------------------------------------------------------------------------------------------------------


def _row_dot(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise dot products of two (N, D) tensors -> (N,), as N tiny matmuls (no (N, D) product buffer,
    unlike ``(x * y).sum(1)`` or ``torch.linalg.vecdot``, which build one)."""
    return (x.unsqueeze(1) @ y.unsqueeze(2)).reshape(-1)


class _L2Normalize(torch.autograd.Function):
    """Row-wise ``x / max(||x||, eps)`` (same values as ``F.normalize(x, dim=1)``) with a fused backward.

    Autograd's backward of ``F.normalize`` runs about ten elementwise passes over the (K, D) input (the
    division's two gradients, the norm's gradient, broadcasts); for the keys of a large queue that costs more
    than the loss's softmax. With z = x / ||x|| the gradient is ``(g - z (z . g)) / ||x||``: one row dot and two
    passes. Rows whose norm is below ``eps`` are divided by eps, so their gradient is ``g / eps`` (as with
    ``F.normalize``, where the clamp blocks the norm's gradient). First-order only (``once_differentiable``).
    """

    @staticmethod
    def forward(ctx, x: Tensor, eps: float = 1e-12) -> Tensor:  # type: ignore[override]
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        clamped = norm.clamp_min(eps)
        z = x / clamped
        ctx.save_for_backward(z, clamped, norm >= eps)
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        z, clamped, above_eps = ctx.saved_tensors
        dot = _row_dot(z, g).unsqueeze(1) * above_eps  # (rows, 1)
        return torch.addcmul(g, z, dot, value=-1).div_(clamped), None


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """L2-normalise the rows of ``x`` (N, D) -> (N, D); equal to ``F.normalize(x, dim=1)``, cheaper backward."""
    return _L2Normalize.apply(x, eps)


# ----------------------------------------------------------------------------------------------------------------
# chunked scores: log-sum-exp (and ALL/ANY positive sums) with O(B * chunk) memory
# ----------------------------------------------------------------------------------------------------------------


def _positive_mask(y: Tensor, yk: Tensor, y_count: Tensor, rule: str) -> Tensor:
    """Positive mask (B, K') for ALL/ANY from labels y (B, C) and reference labels yk (K', C).

    ``y_count`` (B,) is the anchors' label count; anchors without labels get no positives under either rule.
    """
    inter = y @ yk.T  # (B, K') label-overlap counts; exact in float for C < 2**24
    if rule == "any":
        return inter > 0
    k_count = yk.sum(1)
    return (inter == y_count[:, None]) & (inter == k_count[None, :]) & (y_count[:, None] > 0)


class _ScoreSoftmaxTotal(torch.autograd.Function):
    """``total = sum_i a_i * lse_i - sum_ia W_ia * s_ia`` for the (B, K) scores ``s = qs @ k.T``, fused.

    Every unchunked loss here has this form: ``lse_i = logsumexp_a s_ia`` is the softmax denominator,
    ``a`` (B,) says how many times each anchor's denominator counts, and ``W`` (B, K) (or None for zeros)
    holds the weight of each positive score. In in-batch mode (``qs`` and ``k`` are the same rows) the
    diagonal is excluded from the softmax; ``W`` must then be 0 on the diagonal.

    Forward: one score matmul, one fused ``log_softmax`` (kept for backward), two row maxima (log p_ia =
    s_ia - lse_i, so the row maxima differ by exactly lse_i) and one dot product with W. Backward: the score
    gradient ``g * (a_i p_ia - W_ia)`` in one buffer, then the two matmuls for qs and k. That is the
    matmul + log-softmax work any softmax loss over K references needs, plus one elementwise pass for W.
    Autograd on the same expression would keep separate (B, K) buffers for the softmax and positive
    branches and add them. First-order only (``once_differentiable``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, qs: Tensor, k: Tensor, a: Tensor, w: Tensor | None, in_batch: bool
    ) -> Tensor:
        s = qs @ k.T  # (B, K)
        total = -torch.dot(w.reshape(-1), s.reshape(-1)) if w is not None else s.new_zeros(())
        if in_batch:
            s.fill_diagonal_(float("-inf"))  # the anchor is not its own reference
        log_p = torch.log_softmax(s, dim=1)
        lse = s.amax(dim=1) - log_p.amax(dim=1)
        total = total + (a * lse).sum()
        ctx.save_for_backward(qs, k, a, w, log_p)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        qs, k, a, w, log_p = ctx.saved_tensors
        # d total / d s_ia = a_i * softmax_ia - W_ia, times the incoming gradient g (a scalar tensor)
        grad_s = torch.exp(log_p).mul_((a * g)[:, None])
        if w is not None:
            grad_s.addcmul_(w, -g)
        grad_q = grad_s @ k if ctx.needs_input_grad[0] else None
        grad_k = grad_s.T @ qs if ctx.needs_input_grad[1] else None
        return grad_q, grad_k, None, None, None


def _self_block(scores: Tensor, start: int) -> Tensor:
    """Set the anchor-self entries (row i, column i) falling in columns [start, start + width) to -inf."""
    b, width = scores.shape
    lo, hi = start, min(start + width, b)
    if lo < hi:
        rows = torch.arange(lo, hi, device=scores.device)
        scores = scores.clone()
        scores[rows, rows - start] = float("-inf")
    return scores


class _ChunkedScores(torch.autograd.Function):
    """Per-anchor ``logsumexp_a s_ia`` and (for ALL/ANY) ``sum_{a in P_i} s_ia``, computed block by block.

    Inputs: q (B, D) already normalised and divided by the temperature, k (K, D) normalised, y (B, C) and
    yk (K, C) float labels, chunk, in_batch (exclude a == i), rule (None, "all" or "any"). Outputs: lse (B,), pos_sum (B,), n_pos (B,) (the last two are
    zeros for rule None). Only q, k, labels and lse are saved; block scores are recomputed in backward, so the
    peak extra memory is O(B * chunk).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, q: Tensor, k: Tensor, y: Tensor, yk: Tensor, chunk: int, in_batch: bool, rule: str | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        b, kk = q.shape[0], k.shape[0]
        block_lse = []
        pos_sum = q.new_zeros(b)
        n_pos = q.new_zeros(b)
        y_count = y.sum(1)
        for start in range(0, kk, chunk):
            s = q @ k[start : start + chunk].T
            if in_batch:
                s = _self_block(s, start)
            block_lse.append(torch.logsumexp(s, dim=1))
            if rule is not None:
                m = _positive_mask(y, yk[start : start + chunk], y_count, rule)
                if in_batch:
                    m = m & s.isfinite()  # the anchor's own entry is not a positive
                pos_sum += torch.where(m, s, torch.zeros((), dtype=s.dtype, device=s.device)).sum(1)
                n_pos += m.sum(1).to(s.dtype)
        lse = torch.logsumexp(torch.stack(block_lse, dim=1), dim=1)
        ctx.save_for_backward(q, k, y, yk, lse)
        ctx.chunk, ctx.in_batch, ctx.rule = chunk, in_batch, rule
        ctx.mark_non_differentiable(n_pos)
        return lse, pos_sum, n_pos

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lse: Tensor, g_pos: Tensor, _g_n: Tensor):  # type: ignore[override]
        q, k, y, yk, lse = ctx.saved_tensors
        chunk, in_batch, rule = ctx.chunk, ctx.in_batch, ctx.rule
        grad_q = torch.zeros_like(q)
        grad_k = torch.zeros_like(k)
        y_count = y.sum(1)
        for start in range(0, k.shape[0], chunk):
            kc = k[start : start + chunk]
            s = q @ kc.T
            if in_batch:
                s = _self_block(s, start)
            # d lse_i / d s_ia = softmax_ia; the excluded self entry has exp(-inf) = 0.
            g = torch.exp(s - lse[:, None]) * g_lse[:, None]
            if rule is not None:
                m = _positive_mask(y, yk[start : start + chunk], y_count, rule)
                if in_batch:
                    m = s.isfinite() & m
                g = g + m.to(g.dtype) * g_pos[:, None]
            grad_q += g @ kc
            grad_k[start : start + chunk] = g.T @ q
        return grad_q, grad_k, None, None, None, None, None


# ----------------------------------------------------------------------------------------------------------------
# the contrastive loss
# ----------------------------------------------------------------------------------------------------------------


class MulSupConLoss(nn.Module):
    """Multi-label supervised contrastive loss (MulSupCon, Zhang & Wu, AAAI 2024) and the ALL / ANY baselines.

    Args:
        temperature: tau > 0 dividing the cosine scores (the paper uses 0.1).
        positives: ``"mulsupcon"`` (Eq. 4), ``"all"`` (identical label sets) or ``"any"`` (at least one shared
            label). See the module docstring for the exact definitions.
        weighting: for ``"mulsupcon"`` only: ``"label"`` = Eq. 5 (divide the batch total by the number of
            (anchor, label) pairs), ``"sample"`` = Eq. 6 (divide each anchor by its label count, average anchors).
            Ignored by ALL/ANY.
        chunk_size: None for the direct computation (memory O(B K)), or a number of reference columns per block
            (memory O(B * chunk_size), same values and gradients).
        normalize: L2-normalise query and keys inside (default). ``False`` uses them as given; meant for tests
            of the gradient formulas and for callers that already normalised.

    Call: ``loss_fn(query (B, D), labels (B, C), keys (K, D) | None, key_labels (K, C) | None) -> scalar``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        positives: PositiveRule = "mulsupcon",
        weighting: Weighting = "label",
        chunk_size: int | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if not math.isfinite(float(temperature)) or temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        if positives not in POSITIVE_RULES:
            raise ValueError(f"positives must be one of {POSITIVE_RULES}, got {positives!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0
        ):
            raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")
        self.temperature = float(temperature)
        self.positives = positives
        self.weighting = weighting
        self.chunk_size = chunk_size
        self.normalize = bool(normalize)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, positives={self.positives!r}, weighting={self.weighting!r}, "
            f"chunk_size={self.chunk_size}, normalize={self.normalize}"
        )

    # -- checks ----------------------------------------------------------------------------------------------

    @staticmethod
    def _validate(query: Tensor, labels: Tensor, keys: Tensor | None, key_labels: Tensor | None) -> None:
        """Shape, dtype and label checks (cheap). Finiteness is checked on the result, see ``forward``."""
        _check_embeddings("query", query, finite=False)
        _check_labels("labels", labels)
        if labels.shape[0] != query.shape[0]:
            raise ValueError(
                f"labels has {labels.shape[0]} rows but query has {query.shape[0]}: "
                f"query {tuple(query.shape)}, labels {tuple(labels.shape)}"
            )
        if (keys is None) != (key_labels is None):
            given, missing = ("keys", "key_labels") if key_labels is None else ("key_labels", "keys")
            raise ValueError(f"{given} was given without {missing}; pass both or neither")
        if keys is None or key_labels is None:
            return
        _check_embeddings("keys", keys, finite=False)
        _check_labels("key_labels", key_labels)
        if keys.shape[1] != query.shape[1]:
            raise ValueError(
                f"keys have dimension {keys.shape[1]} but query has {query.shape[1]}: "
                f"query {tuple(query.shape)}, keys {tuple(keys.shape)}"
            )
        if key_labels.shape[0] != keys.shape[0]:
            raise ValueError(
                f"key_labels has {key_labels.shape[0]} rows but keys has {keys.shape[0]}: "
                f"keys {tuple(keys.shape)}, key_labels {tuple(key_labels.shape)}"
            )
        if key_labels.shape[1] != labels.shape[1]:
            raise ValueError(
                f"key_labels has {key_labels.shape[1]} classes but labels has {labels.shape[1]}: "
                f"labels {tuple(labels.shape)}, key_labels {tuple(key_labels.shape)}"
            )

    # -- forward ---------------------------------------------------------------------------------------------

    def forward(
        self, query: Tensor, labels: Tensor, keys: Tensor | None = None, key_labels: Tensor | None = None
    ) -> Tensor:
        """Loss value (scalar, float32 or float64).

        Args:
            query: (B, D) anchor embeddings.
            labels: (B, C) multi-hot anchor labels.
            keys: (K, D) reference embeddings, or None for in-batch mode (references = queries, self excluded).
            key_labels: (K, C) reference labels; required exactly when ``keys`` is given.
        """
        total, count = self.sum_and_count(query, labels, keys, key_labels)
        return total / count.clamp_min(1).to(total.dtype)

    def sum_and_count(
        self, query: Tensor, labels: Tensor, keys: Tensor | None = None, key_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The loss before its final normalisation: ``(total, count)`` with ``loss = total / count``.

        ``count`` is the number of contributing (anchor, label) pairs (``positives="mulsupcon"``,
        ``weighting="label"``) or of contributing anchors (otherwise). Multi-process training adds
        the counts of every process so that the normalisation is the global one.

        Returns:
            total: scalar tensor (connected to the graph); count: scalar tensor (no gradient).
        """
        self._validate(query, labels, keys, key_labels)
        in_batch = keys is None
        dtype = torch.float64 if query.dtype == torch.float64 or (
            keys is not None and keys.dtype == torch.float64
        ) else torch.float32

        q = query.to(dtype)
        if self.normalize:
            q = l2_normalize(q)
        y = labels.detach().to(dtype)
        if in_batch:
            k, yk = q, y
        else:
            assert keys is not None and key_labels is not None
            k = keys.to(dtype)
            if self.normalize:
                k = l2_normalize(k)
            yk = key_labels.detach().to(device=y.device, dtype=dtype)

        b, n_ref = q.shape[0], k.shape[0]
        # No reference at all (K = 0, or a single anchor in in-batch mode): nothing can contribute.
        if b == 0 or n_ref - (1 if in_batch else 0) <= 0:
            zero = self._zero(q, k)
            if not math.isfinite(zero.item()):
                _check_embeddings("query", query)
                if keys is not None:
                    _check_embeddings("keys", keys)
            return zero, torch.zeros((), dtype=dtype, device=q.device)

        if self.positives == "mulsupcon":
            loss, count = self._mulsupcon(q, k, y, yk, in_batch)
        else:
            loss, count = self._all_any(q, k, y, yk, in_batch)
        # A NaN or inf in query or keys always reaches the loss (every row and column enters with a weight,
        # possibly 0, and 0 * nan = nan), so scanning the inputs is only needed to explain a bad result. This
        # avoids a full pass over the (K, D) keys on every call.
        if not math.isfinite(loss.item()):
            _check_embeddings("query", query)
            if keys is not None:
                _check_embeddings("keys", keys)
        return loss, count.detach()

    @staticmethod
    def _zero(q: Tensor, k: Tensor) -> Tensor:
        """An exact zero connected to the inputs' graph (so backward works and gives zero gradients)."""
        return q.sum() * 0.0 + k.sum() * 0.0

    def _mulsupcon(self, q: Tensor, k: Tensor, y: Tensor, yk: Tensor, in_batch: bool) -> Tensor:
        tau = self.temperature
        n_class = yk.sum(0)  # (C,) references per class
        # |P_j^(i)|: in in-batch mode the anchor itself (which has label j) is not a reference.
        n_pos = n_class[None, :] - y if in_batch else n_class[None, :].expand_as(y)
        valid = (y > 0) & (n_pos > 0)  # (B, C) the (anchor, label) pairs that count
        if not bool(valid.any()):
            return self._zero(q, k), torch.zeros((), dtype=q.dtype, device=q.device)
        valid_f = valid.to(q.dtype)
        if self.weighting == "label":
            w, count = valid_f, valid_f.sum()  # Eq. 5: total over pairs / number of pairs
        else:
            per_anchor = valid_f.sum(1, keepdim=True)  # counted labels of each anchor
            # Eq. 6: each anchor's sum / its label count, averaged over contributing anchors
            w, count = valid_f / per_anchor.clamp_min(1.0), (per_anchor > 0).sum().to(q.dtype)
        coef = w / n_pos.clamp_min(1.0)  # (B, C) weight of the mean over P_j
        a = w.sum(1)  # (B,) how often each anchor's log-sum-exp counts

        # Dividing the (B, D) queries by tau costs far less than dividing (B, K) scores (and their gradient).
        qs = q * (1.0 / tau)
        b, n_ref, n_cls, dim = q.shape[0], k.shape[0], y.shape[1], q.shape[1]
        if self.chunk_size is not None:
            lse, _, _ = _ChunkedScores.apply(qs, k, y, yk, self.chunk_size, in_batch, None)
            return (a * lse).sum() - self._class_sum_positives(qs, q, k, yk, coef, in_batch), count
        # The positive part sum_j coef_ij sum_{p in P_j} s_ip can be had two ways (Eq. 7):
        # * per-reference weights W = coef @ yk^T (B, K), dotted with the scores inside the fused function:
        #   B*C*K multiply-adds plus one elementwise pass;
        # * per-class reference sums S = yk^T @ k (C, D): K*C*D multiply-adds, and as many again in backward
        #   when the keys need a gradient.
        # Take the cheaper (W for small batches, class sums for large ones or frozen keys).
        class_sum_cost = n_ref * n_cls * dim * (2 if k.requires_grad else 1)
        if b * n_cls * n_ref <= class_sum_cost:
            weights = coef @ yk.T  # (B, K)
            if in_batch:
                weights.fill_diagonal_(0.0)  # the anchor's own entry is not a positive
            return _ScoreSoftmaxTotal.apply(qs, k, a, weights, in_batch), count
        total = _ScoreSoftmaxTotal.apply(qs, k, a, None, in_batch)
        return total - self._class_sum_positives(qs, q, k, yk, coef, in_batch), count

    @staticmethod
    def _class_sum_positives(qs: Tensor, q: Tensor, k: Tensor, yk: Tensor, coef: Tensor, in_batch: bool) -> Tensor:
        """``sum_ij coef_ij sum_{p in P_j} s_ip`` through per-class reference sums (Eq. 7): with
        ``S = yk^T @ k`` (C, D), ``sum_{p in P_j} s_ip = qs_i . S_j``. Scalar."""
        class_sum = yk.T @ k  # (C, D)
        pos_sum = qs @ class_sum.T  # (B, C)
        if in_batch:
            # The anchor's own entry (its label set contains every j it is counted for) is not a positive.
            pos_sum = pos_sum - (qs * q).sum(1, keepdim=True)
        return (coef * pos_sum).sum()

    def _all_any(self, q: Tensor, k: Tensor, y: Tensor, yk: Tensor, in_batch: bool) -> Tensor:
        rule = self.positives
        qs = q * (1.0 / self.temperature)
        if self.chunk_size is None:
            m = _positive_mask(y, yk, y.sum(1), rule)  # (B, K)
            if in_batch:
                m.fill_diagonal_(False)  # the anchor's own entry is not a positive
            n_pos = m.sum(1).to(q.dtype)
        else:
            lse, pos_sum, n_pos = _ChunkedScores.apply(qs, k, y, yk, self.chunk_size, in_batch, rule)
        counted = n_pos > 0
        if not bool(counted.any()):
            return self._zero(q, k), torch.zeros((), dtype=q.dtype, device=q.device)
        # Each counted anchor: lse_i - mean over its positives of s_ia (= -mean log p). Uncounted anchors get
        # weight 0 by multiplication (not torch.where), so a NaN in their row still shows in the result.
        weight = counted.to(q.dtype)
        if self.chunk_size is None:
            pos_w = m.to(q.dtype).mul_((weight / n_pos.clamp_min(1.0))[:, None])  # (B, K)
            return _ScoreSoftmaxTotal.apply(qs, k, weight, pos_w, in_batch), weight.sum()
        per_anchor = lse - pos_sum / n_pos.clamp_min(1.0)
        return (per_anchor * weight).sum(), weight.sum()


# ----------------------------------------------------------------------------------------------------------------
# asymmetric loss
# ----------------------------------------------------------------------------------------------------------------


class AsymmetricLoss(nn.Module):
    """Asymmetric loss for multi-label classification (ASL, Ridnik et al., ICCV 2021).

    With p = sigmoid(x) and the shifted negative probability p_m = max(p - clip, 0), each (sample, class) term is

        L = -[ y * (1 - p)^gamma_pos * log(max(p, eps))
             + (1 - y) * p_m^gamma_neg * log(max(1 - p_m, eps)) ].

    Logs are computed as log-sigmoids (stable for large |x|) and then floored at log(eps) (no floor if eps = 0).
    The focusing weights are differentiated through (the mathematical loss; the ASL repository can optionally
    detach them). With gamma_neg = gamma_pos = 0 and clip = 0 this is exactly binary cross-entropy with logits.

    Reductions: ``"mean"`` (default) = sum over classes, mean over samples; ``"sum"`` = sum over everything
    (the ASL repository's choice); ``"none"`` = the (B, C) terms.
    """

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: Literal["mean", "sum", "none"] = "mean",
    ) -> None:
        super().__init__()
        for name, v in (("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos), ("eps", eps)):
            if not math.isfinite(float(v)) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if not math.isfinite(float(clip)) or not 0 <= clip < 1:
            raise ValueError(f"clip must be in [0, 1), got {clip}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)
        self.eps = float(eps)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return (
            f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, eps={self.eps}, "
            f"reduction={self.reduction!r}"
        )

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """ASL of ``logits`` (B, C) against multi-hot ``targets`` (B, C); scalar unless reduction="none"."""
        _check_embeddings("logits", logits)
        _check_labels("targets", targets)
        if targets.shape != logits.shape:
            raise ValueError(
                f"targets shape {tuple(targets.shape)} does not match logits shape {tuple(logits.shape)}"
            )
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        x = logits.to(dtype)
        y = targets.detach().to(device=x.device, dtype=dtype)
        floor = math.log(self.eps) if self.eps > 0 else -math.inf

        log_p = F.logsigmoid(x).clamp_min(floor)
        pos = log_p
        if self.gamma_pos > 0:
            pos = pos * torch.sigmoid(-x).pow(self.gamma_pos)  # (1 - p)^gamma_pos

        if self.clip > 0:
            p_m = (torch.sigmoid(x) - self.clip).clamp_min(0.0)
            # 1 - p_m = min(sigmoid(-x) + clip, 1), kept away from 0 by the clip itself.
            log_1m = torch.log((torch.sigmoid(-x) + self.clip).clamp_max(1.0)).clamp_min(floor)
        else:
            p_m = torch.sigmoid(x)
            log_1m = F.logsigmoid(-x).clamp_min(floor)
        neg = log_1m
        if self.gamma_neg > 0:
            neg = neg * p_m.pow(self.gamma_neg)

        loss = -(y * pos + (1.0 - y) * neg)  # (B, C)
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum(1).mean()
