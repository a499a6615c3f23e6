"""MoCo with labels: a query encoder, its momentum copy, and a queue of past keys AND their labels.

Each pretraining step (He et al. 2020, with the label queue of MulSupCon):

1. ``q = g(f(view1))`` with the query encoder (gradients flow);
2. the key encoder's weights move towards the query encoder's (``k <- m k + (1-m) q``);
3. ``k = g'(f'(view2))`` with the key encoder, without gradients;
4. references = this batch's keys (gathered from every process when distributed) followed by the
   filled part of the queue, each with its label row;
5. loss = ``loss_fn(q, labels, references, reference_labels)``;
6. the batch's keys and labels are pushed into the queue, the oldest ones dropped.

The queue's keys, labels, write pointer and fill count are registered buffers, so they are saved
and restored with ``state_dict()`` and a resumed run continues with exactly the same references.
"""

from __future__ import annotations

import copy
from concurrent.futures import Executor
from typing import Callable, Optional

import torch
from torch import nn

from .losses import l2_normalize

GatherFn = Callable[[torch.Tensor], torch.Tensor]


class LabelQueue(nn.Module):
    """A first-in first-out memory of ``size`` keys (dim D) with their label rows (C labels).

    Any batch size works with any queue size: a batch larger than the queue keeps only its last
    ``size`` rows (the newest), exactly as pushing the rows one by one would.
    """

    keys: torch.Tensor
    labels: torch.Tensor
    ptr: torch.Tensor
    filled: torch.Tensor

    def __init__(self, size: int, dim: int, n_labels: int):
        super().__init__()
        if size < 0:
            raise ValueError(f"queue size must be >= 0, got {size}")
        self.size = int(size)
        self.register_buffer("keys", torch.zeros(self.size, dim))
        self.register_buffer("labels", torch.zeros(self.size, n_labels, dtype=torch.uint8))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @property
    def is_full(self) -> bool:
        return int(self.filled) == self.size

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored keys (n, D) and labels (n, C), oldest first (n = number filled)."""
        n, p = int(self.filled), int(self.ptr)
        if n < self.size:
            return self.keys[:n], self.labels[:n]
        order = torch.cat([torch.arange(p, self.size), torch.arange(0, p)]).to(self.keys.device)
        return self.keys[order], self.labels[order]

    def stored(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled slots in storage order (cheaper than :meth:`contents`; the loss is order-free)."""
        n = int(self.filled)
        return self.keys[:n], self.labels[:n]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Push keys (n, D) and their labels (n, C), dropping the oldest entries when full."""
        if self.size == 0:
            return
        if keys.shape[0] != labels.shape[0]:
            raise ValueError(f"enqueue got {keys.shape[0]} keys but {labels.shape[0]} label rows")
        if keys.shape[1:] != self.keys.shape[1:] or labels.shape[1:] != self.labels.shape[1:]:
            raise ValueError(
                f"enqueue expects keys (n, {self.keys.shape[1]}) and labels (n, {self.labels.shape[1]}), "
                f"got {tuple(keys.shape)} and {tuple(labels.shape)}"
            )
        keys = keys.detach().to(self.keys.dtype)
        labels = labels.detach().to(self.labels.dtype)
        n = keys.shape[0]
        if n >= self.size:
            self.keys.copy_(keys[n - self.size :])
            self.labels.copy_(labels[n - self.size :])
            self.ptr.zero_()
            self.filled.fill_(self.size)
            return
        p = int(self.ptr)
        first = min(n, self.size - p)
        self.keys[p : p + first] = keys[:first]
        self.labels[p : p + first] = labels[:first]
        if first < n:  # wrap around to the start
            self.keys[: n - first] = keys[first:]
            self.labels[: n - first] = labels[first:]
        self.ptr.fill_((p + n) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + n))


class MoCo(nn.Module):
    """Query encoder, momentum key encoder and label queue.

    Args:
        encoder: backbone followed by projection head, mapping a batch to (B, D) embeddings.
        n_labels: C, the width of the label rows kept in the queue.
        embed_dim: D, the output width of ``encoder``.
        queue_size: number of past keys kept (256 for yeast in the authors' code).
        momentum: m in ``k <- m k + (1 - m) q`` (0.999 in the paper).
        key_train_mode: run the key encoder in train mode (dropout active, BatchNorm on batch
            statistics), as the authors' code does; ``False`` runs it in eval mode.
        use_partial_queue: use the filled part of the queue from the first step (our default);
            ``False`` ignores the queue until it is full (the authors' code).
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_labels: int,
        embed_dim: int,
        queue_size: int = 256,
        momentum: float = 0.999,
        *,
        key_train_mode: bool = True,
        use_partial_queue: bool = True,
    ):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.query_encoder = encoder
        self.key_encoder = copy.deepcopy(encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad_(False)
        self.queue = LabelQueue(queue_size, embed_dim, n_labels)
        self.momentum = float(momentum)
        self.key_train_mode = key_train_mode
        self.use_partial_queue = use_partial_queue
        self._q_params = [p for p in self.query_encoder.parameters()]
        self._k_params = [p for p in self.key_encoder.parameters()]
        self._flat: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # see flatten_parameters

    def train(self, mode: bool = True) -> "MoCo":
        super().train(mode)
        if mode and not self.key_train_mode:
            self.key_encoder.eval()
        return self

    @torch.no_grad()
    def momentum_update(self) -> None:
        """k <- m k + (1 - m) q for every parameter (one fused call, no Python loop per tensor)."""
        # lerp: k + (1 - m) (q - k) = m k + (1 - m) q, one fused kernel over all tensors.
        if self._flat is not None:
            self._flat[1].lerp_(self._flat[0], 1.0 - self.momentum)
            return
        torch._foreach_lerp_(self._k_params, [p.detach() for p in self._q_params], 1.0 - self.momentum)

    def flatten_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the query encoder's parameter values in one buffer and the key encoder's in another,
        laid out alike, so that the momentum update is one ``lerp_``; returns the two buffers.

        Same values and gradients as the per-tensor layout (the layers' parameters become views);
        ``state_dict`` and the optimiser's view of the parameters are unchanged. See
        :func:`mulsupcon.train.common.flatten_parameters`.
        """
        from mulsupcon.train.common import flatten_parameters

        if [p.shape for p in self._q_params] != [p.shape for p in self._k_params]:
            raise ValueError("query and key encoders must have the same parameter shapes to be flattened")
        self._flat = (flatten_parameters(self._q_params), flatten_parameters(self._k_params))
        return self._flat

    @torch.no_grad()
    def _encode_keys(self, view2: torch.Tensor, key_forward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """Momentum update, then unit-norm keys (B, D) of ``view2`` from the key encoder."""
        self.momentum_update()
        return l2_normalize((key_forward or self.key_encoder)(view2))

    def forward(
        self,
        view1: torch.Tensor,
        view2: torch.Tensor,
        labels: torch.Tensor,
        loss_fn: Callable[..., torch.Tensor],
        gather: Optional[GatherFn] = None,
        query_forward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        key_executor: Optional[Executor] = None,
        key_forward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> torch.Tensor:
        """One contrastive step; returns the loss (scalar) and updates the queue.

        Args:
            view1: (B, ...) first augmented view, fed to the query encoder.
            view2: (B, ...) second view of the same samples, fed to the key encoder.
            labels: (B, C) multi-hot labels of the samples.
            loss_fn: ``loss_fn(query (B, D), labels (B, C), keys (K, D), key_labels (K, C))``.
            gather: for multi-process training, concatenates a tensor from every process
                (rank order); keys and labels are gathered so references and queue are global.
            query_forward: what computes the query embeddings instead of ``query_encoder``
                (the DistributedDataParallel wrapper of it, so gradients are all-reduced).
            key_executor: a one-thread executor on which the momentum update and the key encoder
                run while this thread runs the query encoder (the two only read the query
                parameters). Same result as running them in turn, provided the key encoder's
                randomness does not come from the global generator (see
                ``train.common.set_dropout_generator``). Not with ``gather``: collectives stay
                on one thread.
            key_forward: what computes the keys instead of ``key_encoder`` (with the same result;
                e.g. :class:`mulsupcon.models.fused.FusedMLPEncoder` of it).
        """
        if view1.shape[0] != labels.shape[0] or view2.shape[0] != labels.shape[0]:
            raise ValueError(
                f"views and labels disagree on the batch size: {view1.shape[0]}, {view2.shape[0]}, {labels.shape[0]}"
            )
        if key_executor is not None and gather is not None:
            raise ValueError("key_executor cannot be combined with gather: collectives must stay on one thread")
        pending = key_executor.submit(self._encode_keys, view2, key_forward) if key_executor is not None else None
        q = l2_normalize((query_forward or self.query_encoder)(view1))
        k = pending.result() if pending is not None else self._encode_keys(view2, key_forward)
        with torch.no_grad():
            key_labels = labels
            if gather is not None:
                k, key_labels = gather(k), gather(labels)
            refs, ref_labels = k, key_labels.to(torch.uint8)
            if self.queue.size and (self.use_partial_queue or self.queue.is_full):
                qk, ql = self.queue.stored()
                if qk.shape[0]:
                    refs = torch.cat([refs, qk.to(refs.dtype)])
                    ref_labels = torch.cat([ref_labels, ql])
        # The loss always runs in float32, also under mixed precision (autocast would otherwise run
        # its matmuls in half precision, where exp/log-sum-exp over thousands of scores loses accuracy).
        with torch.autocast(q.device.type, enabled=False):
            loss = loss_fn(q.float(), labels, refs.float(), ref_labels)
        self.queue.enqueue(k, key_labels)
        return loss

    def backbone_state(self) -> dict:
        """State dict of the query backbone (the part kept after pretraining)."""
        backbone = self.query_encoder[0] if isinstance(self.query_encoder, nn.Sequential) else self.query_encoder
        return backbone.state_dict()
