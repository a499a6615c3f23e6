"""The loss's scores in column blocks: per-anchor log-sum-exp (and ALL/ANY positive sums) in O(B * chunk) memory.

Used when ``MulSupConLoss(chunk_size=...)`` is set: only the per-anchor log-sum-exp values are kept, and
block scores are recomputed in backward. Same values and gradients as the direct form (up to summation order).
"""

from __future__ import annotations

import torch
from torch import Tensor


def positive_mask(y: Tensor, yk: Tensor, y_count: Tensor, rule: str) -> Tensor:
    """ALL / ANY positives (B, K) from anchor labels y (B, C) and reference labels yk (K, C).

    ``y_count`` (B,) is the anchors' label count; anchors without labels get no positives under either rule.
    """
    inter = y @ yk.T  # (B, K) label-overlap counts; exact in float for C < 2**24
    if rule == "any":
        return inter > 0
    k_count = yk.sum(1)
    return (inter == y_count[:, None]) & (inter == k_count[None, :]) & (y_count[:, None] > 0)


def _mask_self(scores: Tensor, start: int) -> Tensor:
    """Scores of one block (B, width) starting at column ``start``, with entries (i, i) set to -inf."""
    b, width = scores.shape
    lo, hi = start, min(start + width, b)
    if lo < hi:
        rows = torch.arange(lo, hi, device=scores.device)
        scores = scores.clone()
        scores[rows, rows - start] = float("-inf")
    return scores


class ChunkedScores(torch.autograd.Function):
    """Per-anchor ``logsumexp_a s_ia`` and (for ALL/ANY) ``sum_{a in P_i} s_ia``, block by block.

    Inputs: qs (B, D) normalised and divided by the temperature, k (K, D) normalised, y (B, C) and yk (K, C)
    float labels, chunk (columns per block), in_batch (exclude a == i), rule (None, "all" or "any").
    Outputs: lse (B,), pos_sum (B,), n_pos (B,) (the last two are zeros for rule None).
    """

    @staticmethod
    def forward(ctx, qs: Tensor, k: Tensor, y: Tensor, yk: Tensor, chunk: int, in_batch: bool,  # type: ignore[override]
                rule: str | None) -> tuple[Tensor, Tensor, Tensor]:
        b = qs.shape[0]
        block_lse = []
        pos_sum, n_pos = qs.new_zeros(b), qs.new_zeros(b)
        y_count = y.sum(1)
        for start in range(0, k.shape[0], chunk):
            s = qs @ k[start : start + chunk].T
            if in_batch:
                s = _mask_self(s, start)
            block_lse.append(torch.logsumexp(s, dim=1))
            if rule is not None:
                m = positive_mask(y, yk[start : start + chunk], y_count, rule)
                if in_batch:
                    m = m & s.isfinite()  # the anchor's own entry is not a positive
                pos_sum += torch.where(m, s, torch.zeros((), dtype=s.dtype, device=s.device)).sum(1)
                n_pos += m.sum(1).to(s.dtype)
        lse = torch.logsumexp(torch.stack(block_lse, dim=1), dim=1)
        ctx.save_for_backward(qs, k, y, yk, lse)
        ctx.chunk, ctx.in_batch, ctx.rule = chunk, in_batch, rule
        ctx.mark_non_differentiable(n_pos)
        return lse, pos_sum, n_pos

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lse: Tensor, g_pos: Tensor, _g_n: Tensor):  # type: ignore[override]
        qs, k, y, yk, lse = ctx.saved_tensors
        chunk, in_batch, rule = ctx.chunk, ctx.in_batch, ctx.rule
        grad_q, grad_k = torch.zeros_like(qs), torch.zeros_like(k)
        y_count = y.sum(1)
        for start in range(0, k.shape[0], chunk):
            kc = k[start : start + chunk]
            s = qs @ kc.T
            if in_batch:
                s = _mask_self(s, start)
            g = torch.exp(s - lse[:, None]) * g_lse[:, None]  # d lse_i / d s_ia = softmax_ia (0 for the self entry)
            if rule is not None:
                m = positive_mask(y, yk[start : start + chunk], y_count, rule)
                if in_batch:
                    m = s.isfinite() & m
                g = g + m.to(g.dtype) * g_pos[:, None]
            grad_q += g @ kc
            grad_k[start : start + chunk] = g.T @ qs
        return grad_q, grad_k, None, None, None, None, None
