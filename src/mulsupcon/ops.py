"""Small tensor operations shared by the models, MoCo and the losses.

* :func:`l2_normalize` — row-wise unit vectors with a cheap backward (the one place embeddings are
  normalised: MoCo calls it on queries and keys, the loss when asked to).
* :class:`Dropout` — ``nn.Dropout`` with a cheaper CPU mask (16-bit random lanes).
* :func:`all_gather_rows` — concatenate a tensor from every process (identity in one process).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["l2_normalize", "Dropout", "all_gather_rows"]


def _row_dot(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise dot products of two (N, D) tensors -> (N,), without an (N, D) product buffer."""
    return (x.unsqueeze(1) @ y.unsqueeze(2)).reshape(-1)


class _L2Normalize(torch.autograd.Function):
    """Row-wise ``x / max(||x||, eps)`` (the values of ``F.normalize(x, dim=1)``) with a short backward.

    Autograd's backward of ``F.normalize`` makes about ten elementwise passes over the (N, D) input;
    with ``z = x / ||x||`` the gradient is ``(g - z (z . g)) / ||x||``: one row dot and two passes,
    which matters for the keys of a large queue. Rows with a norm below ``eps`` are divided by eps, so
    their gradient is ``g / eps`` (as with ``F.normalize``). First-order only.
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
        dot = _row_dot(z, g).unsqueeze(1) * above_eps  # (N, 1)
        return torch.addcmul(g, z, dot, value=-1).div_(clamped), None


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """L2-normalise the rows of ``x``: (N, D) -> (N, D), equal to ``F.normalize(x, dim=1)``."""
    return _L2Normalize.apply(x, eps)


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask comes from 16-bit random lanes: the distribution of ``nn.Dropout``
    with p on a grid of 2^-16.

    Why: torch's CPU dropout draws its Bernoulli mask one element at a time, several times slower than
    the matrix products of a small MLP, and the vector pretraining step runs eight dropout layers
    (``benchmarks/README.md``). Here one 64-bit draw of torch's generator gives four uniform 16-bit
    lanes; an element is kept when its lane ``v`` (a signed 16-bit number) has ``v + 32768 >=
    round(p * 65536)``: keep probability ``q = 1 - round(p * 65536) / 65536``, kept elements scaled by ``1 / q`` (the
    expectation is exactly preserved). On accelerators the fused ``F.dropout`` kernel is used.
    Shapes: any -> same.
    """

    def forward(self, x: Tensor) -> Tensor:
        """x (any shape) -> x with elements zeroed with probability p and the rest scaled by 1/q."""
        dropped = round(self.p * 65536)  # lanes with v + 32768 below this drop their element
        if not self.training or dropped == 0 or dropped >= 65536 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training, self.inplace)
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # full 64-bit range
        lanes = words.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
        # Compared as float32 copies, in place: comparisons with bool or int16 results are not vectorised.
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        mask = lanes.to(work).ge_(dropped - 32768).mul_(65536.0 / (65536 - dropped)).to(x.dtype)
        return x.mul_(mask) if self.inplace else x * mask


@torch.no_grad()
def all_gather_rows(t: Tensor) -> Tensor:
    """``t`` (n, ...) from every process, concatenated in rank order -> (W * n, ...); no gradient.

    In a single process (no initialised process group) it returns ``t``. Every process must pass the
    same shape and dtype (gloo and NCCL gather equal-sized parts).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
