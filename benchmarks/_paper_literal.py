"""Baselines shared by the loss benchmarks: the paper-literal MulSupCon loss and the unavoidable work.

* :func:`paper_literal_loss` follows Eq. 4/5 as literally written: every (anchor, label) pair becomes its own
  row, with a copy of the anchor's embedding and its own positive mask, so the scores, the log-softmax and the
  masks are (R, K) with R = number of (anchor, label) pairs (about B * mean |y|). It is vectorised in torch, not a
  Python loop, so the comparison is about the algorithm, not the interpreter.
* :func:`unavoidable_work` is what any softmax contrastive loss over K references must do: one (B, K) score
  matmul and one log-softmax over it (forward and backward).
* :func:`make_inputs` builds random embeddings and Bernoulli label rows of a given density.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F


def paper_literal_loss(query: torch.Tensor, labels: torch.Tensor, keys: torch.Tensor, key_labels: torch.Tensor,
                       temperature: float = 0.1) -> torch.Tensor:
    """MulSupCon (Eq. 4, Eq. 5) with one row per (anchor, label) pair.

    Args: query (B, D), labels (B, C), keys (K, D), key_labels (K, C). Returns a scalar. Same conventions as
    ``MulSupConLoss`` in MoCo mode: pairs whose label is absent from the references are skipped.
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(keys.float(), dim=1)
    anchor, label = labels.nonzero(as_tuple=True)  # the R (anchor, label) pairs
    rows = q[anchor]  # (R, D): the anchor repeated once per label
    log_prob = F.log_softmax(rows @ k.T / temperature, dim=1)  # (R, K)
    mask = key_labels.T[label].float()  # (R, K): P_j for each pair
    n_pos = mask.sum(1)
    keep = n_pos > 0
    row_loss = -(mask * log_prob).sum(1)[keep] / n_pos[keep]
    return row_loss.sum() / keep.sum()


def unavoidable_work(query: torch.Tensor, keys: torch.Tensor, grad_out: torch.Tensor,
                     temperature: float = 0.1) -> None:
    """The (B, K) score matmul and one log-softmax over it, forward and backward with a fixed upstream gradient
    (B, K): the work the issue calls unavoidable. Normalisation is left out (it is not part of that definition;
    our loss does it with a fused backward, the literal loss with ``F.normalize``)."""
    # Scale the (B, D) queries rather than the (B, K) scores: the cheapest order, as in MulSupConLoss.
    s = (query * (1.0 / temperature)) @ keys.T
    F.log_softmax(s, dim=1).backward(grad_out)


def make_inputs(b: int, k: int, c: int, d: int, density: float, seed: int = 0):
    """Random query (B, D) and keys (K, D) requiring grad, Bernoulli(density) labels (B, C) and (K, C)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, d, generator=g).requires_grad_()
    keys = torch.randn(k, d, generator=g).requires_grad_()
    y = torch.rand(b, c, generator=g) < density
    yk = torch.rand(k, c, generator=g) < density
    return q, y, keys, yk


def median_time(fn: Callable[[], None], reps: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
