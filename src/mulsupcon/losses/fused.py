"""How the contrastive loss is computed: one fused autograd function and a small cost model.

Every form of the loss is ``total = sum_i a_i lse_i - sum_ia W_ia s_ia`` over the (B, K) scores
``s = qs @ k.T`` (``lse_i`` the log-sum-exp of anchor i's scores, ``a_i`` how often it counts, ``W`` the
weight of each positive score). :class:`ScoreSoftmaxTotal` computes it with one score matmul and one
log-softmax forward, one elementwise pass and the two gradient matmuls backward: no tensor ever has
one row per (anchor, label) pair.

For MulSupCon the positive part follows from per-class quantities (the observation behind Eq. 7):
with ``coef_ij`` the weight of pair (i, j), either ``W = coef @ yk^T`` (B*C*K multiply-adds), or with
the class sums ``S = yk^T @ k`` (C, D), ``sum_{p in P_j} s_ip = qs_i . S_j`` (K*C*D multiply-adds,
twice when the keys need a gradient). :func:`mulsupcon_total` takes the cheaper of the two.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .chunked import ChunkedScores, positive_mask


class ScoreSoftmaxTotal(torch.autograd.Function):
    """``sum_i a_i * lse_i - sum_ia W_ia * s_ia`` for the scores ``s = qs @ k.T`` (B, K), fused.

    ``a`` (B,), ``w`` (B, K) or None (zeros). In in-batch mode (``qs`` and ``k`` the same rows) the diagonal
    is excluded from the softmax and ``w`` must be 0 there. Backward: the score gradient
    ``g * (a_i p_ia - W_ia)`` in one buffer, then the two matmuls. First-order only.
    """

    @staticmethod
    def forward(ctx, qs: Tensor, k: Tensor, a: Tensor, w: Tensor | None, in_batch: bool) -> Tensor:  # type: ignore[override]
        s = qs @ k.T  # (B, K)
        total = -torch.dot(w.reshape(-1), s.reshape(-1)) if w is not None else s.new_zeros(())
        if in_batch:
            s.fill_diagonal_(float("-inf"))  # the anchor is not its own reference
        log_p = torch.log_softmax(s, dim=1)
        lse = s.amax(dim=1) - log_p.amax(dim=1)  # log p = s - lse, so the row maxima differ by lse
        total = total + (a * lse).sum()
        ctx.save_for_backward(qs, k, a, w, log_p)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        qs, k, a, w, log_p = ctx.saved_tensors
        grad_s = torch.exp(log_p).mul_((a * g)[:, None])  # d total / d s_ia = a_i softmax_ia - W_ia
        if w is not None:
            grad_s.addcmul_(w, -g)
        grad_q = grad_s @ k if ctx.needs_input_grad[0] else None
        grad_k = grad_s.T @ qs if ctx.needs_input_grad[1] else None
        return grad_q, grad_k, None, None, None


def _class_sum_positives(qs: Tensor, q: Tensor, k: Tensor, yk: Tensor, coef: Tensor, in_batch: bool) -> Tensor:
    """``sum_ij coef_ij sum_{p in P_j} s_ip`` through the class sums ``S = yk^T @ k`` (C, D). Scalar."""
    pos_sum = qs @ (yk.T @ k).T  # (B, C)
    if in_batch:  # the anchor's own entry (it has every label j it is counted for) is not a positive
        pos_sum = pos_sum - (qs * q).sum(1, keepdim=True)
    return (coef * pos_sum).sum()


def mulsupcon_total(qs: Tensor, q: Tensor, k: Tensor, y: Tensor, yk: Tensor, a: Tensor, coef: Tensor,
                    in_batch: bool, chunk_size: int | None) -> Tensor:
    """``sum_i a_i lse_i - sum_ij coef_ij sum_{p in P_j} s_ip`` (scalar).

    qs (B, D) = q / tau; q (B, D) and k (K, D) unit rows; y (B, C) and yk (K, C) labels; a (B,); coef (B, C).
    """
    if chunk_size is not None:
        lse, _, _ = ChunkedScores.apply(qs, k, y, yk, chunk_size, in_batch, None)
        return (a * lse).sum() - _class_sum_positives(qs, q, k, yk, coef, in_batch)
    b, n_ref, n_cls, dim = qs.shape[0], k.shape[0], yk.shape[1], qs.shape[1]
    class_sum_cost = n_ref * n_cls * dim * (2 if k.requires_grad else 1)
    if b * n_cls * n_ref <= class_sum_cost:  # small batches: per-reference weights W = coef @ yk^T
        weights = coef @ yk.T  # (B, K)
        if in_batch:
            weights.fill_diagonal_(0.0)  # the anchor's own entry is not a positive
        return ScoreSoftmaxTotal.apply(qs, k, a, weights, in_batch)
    return ScoreSoftmaxTotal.apply(qs, k, a, None, in_batch) - _class_sum_positives(qs, q, k, yk, coef, in_batch)


def label_set_total(qs: Tensor, k: Tensor, y: Tensor, yk: Tensor, rule: str, in_batch: bool,
                    chunk_size: int | None) -> tuple[Tensor, Tensor]:
    """ALL / ANY: ``(sum over counted anchors of lse_i - mean_{a in P_i} s_ia, number of counted anchors)``.

    Anchors without a positive get weight 0 by multiplication (not ``torch.where``), so a NaN in their row
    still shows in the result, as does a non-finite key (see the chunked branch).
    """
    if chunk_size is None:
        m = positive_mask(y, yk, y.sum(1), rule)  # (B, K)
        if in_batch:
            m.fill_diagonal_(False)  # the anchor's own entry is not a positive
        n_pos = m.sum(1).to(qs.dtype)
    else:
        lse, pos_sum, n_pos = ChunkedScores.apply(qs, k, y, yk, chunk_size, in_batch, rule)
    weight = (n_pos > 0).to(qs.dtype)
    if chunk_size is None:
        pos_w = m.to(qs.dtype).mul_((weight / n_pos.clamp_min(1.0))[:, None])  # (B, K)
        return ScoreSoftmaxTotal.apply(qs, k, weight, pos_w, in_batch), weight.sum()
    # Here no score reaches the total with a weight of its own (non-positives enter only through lse, where
    # a -inf score drops out), so the keys' sum is added times 0: a NaN or inf among them still shows.
    total = ((lse - pos_sum / n_pos.clamp_min(1.0)) * weight).sum() + 0.0 * k.sum()
    return total, weight.sum()
