"""MoCo with labels: a query encoder, its momentum copy, and a queue of past keys AND their labels.

One pretraining step (He et al. 2020, with the label queue of MulSupCon), as the training loop runs it::

    query, refs, ref_labels = moco(view1, view2, labels)   # 1-4 below
    loss = loss_fn(query, labels, refs, ref_labels)         # the loop calls the loss itself
    loss.backward(); optimizer.step()
    moco.enqueue()                                          # this step's keys and labels (every process's)

1. ``q = normalize(g(f(view1)))`` with the query encoder (gradients flow);
2. the key encoder's weights move towards the query encoder's (``k <- m k + (1 - m) q``);
3. ``k = normalize(g'(f'(view2)))`` with the key encoder, without gradients;
4. references = this batch's keys (gathered from every process when distributed) followed by the
   filled part of the queue, each with its label row.

The queue's keys, labels, write pointer and fill count are registered buffers, so they are saved
and restored with ``state_dict()`` and a resumed run continues with exactly the same references.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .ops import all_gather_rows, l2_normalize


class LabelQueue(nn.Module):
    """A first-in first-out memory of ``size`` keys (dim D) with their label rows (C labels).

    Any batch size works with any queue size: a batch larger than the queue keeps only its last
    ``size`` rows (the newest), exactly as pushing the rows one by one would.

    The write pointer and fill count live on the host (Python ints), so a step never reads a
    number back from the GPU; the ``ptr``/``filled`` buffers mirror them for ``state_dict()`` and are
    read once, when a state dict is loaded.
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
        self._ptr, self._filled = 0, 0  # the host copies the step uses
        self.register_load_state_dict_post_hook(LabelQueue._read_pointers)

    @staticmethod
    def _read_pointers(module: "LabelQueue", incompatible_keys: object) -> None:
        module._ptr, module._filled = int(module.ptr), int(module.filled)  # one read per load, not per step

    @property
    def is_full(self) -> bool:
        """Whether every slot of the queue holds a key (until then only the filled slots take part)."""
        return self._filled == self.size

    @property
    def n_filled(self) -> int:
        """How many slots hold keys."""
        return self._filled

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored keys (n, D) and labels (n, C), oldest first (n = number filled)."""
        n, p = self._filled, self._ptr
        if n < self.size:
            return self.keys[:n], self.labels[:n]
        order = torch.cat([torch.arange(p, self.size), torch.arange(0, p)]).to(self.keys.device)
        return self.keys[order], self.labels[order]

    def stored(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled slots in storage order (cheaper than :meth:`contents`; the loss is order-free)."""
        n = self._filled
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
            self._set_pointers(0, self.size)
            return
        p = self._ptr
        first = min(n, self.size - p)
        self.keys[p : p + first] = keys[:first]
        self.labels[p : p + first] = labels[:first]
        if first < n:  # wrap around to the start
            self.keys[: n - first] = keys[first:]
            self.labels[: n - first] = labels[first:]
        self._set_pointers((p + n) % self.size, min(self.size, self._filled + n))

    def _set_pointers(self, ptr: int, filled: int) -> None:
        self._ptr, self._filled = ptr, filled
        self.ptr.fill_(ptr)  # host-to-device writes: queued, never waited for
        self.filled.fill_(filled)


class MoCo(nn.Module):
    """Query encoder ``head(encoder(x))``, its momentum copy, and a :class:`LabelQueue`.

    Args:
        encoder: the backbone ``f`` (the part kept after pretraining).
        head: the projection head ``g``, mapping ``f``'s features to (B, D) embeddings.
        queue: the :class:`LabelQueue` of past keys (D wide) and labels.
        momentum: m in ``k <- m k + (1 - m) q`` (0.999 in the paper).
        key_train_mode: run the key encoder in train mode (dropout active, BatchNorm on batch
            statistics), as the authors' code does; ``False`` runs it in eval mode.
        use_partial_queue: use the filled part of the queue from the first step (our default);
            ``False`` ignores the queue until it is full (the authors' code).

    Under ``torch.distributed`` the keys and labels are all-gathered, so references and queue are
    the global ones; wrap the whole module in DistributedDataParallel (the key encoder has no
    trainable parameters) without syncing buffers before each forward (``forward_sync_buffers=False``;
    ``broadcast_buffers=False`` before torch 2.13): the queue is the same on every rank.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, queue: "LabelQueue", momentum: float = 0.999, *,
                 key_train_mode: bool = True, use_partial_queue: bool = True):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.query_encoder = nn.Sequential(encoder, head)
        self.key_encoder = copy.deepcopy(self.query_encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad_(False)
        self.queue = queue
        self.momentum = float(momentum)
        # The same Parameter objects for the module's life (``.to()`` and SyncBatchNorm conversion keep them).
        self._pairs = (list(self.key_encoder.parameters()), list(self.query_encoder.parameters()))
        self.key_train_mode = key_train_mode
        self.use_partial_queue = use_partial_queue
        self._step_keys: tuple[torch.Tensor, torch.Tensor] | None = None  # the last forward's, for enqueue()

    @property
    def backbone(self) -> nn.Module:
        """The query encoder's backbone ``f`` (what probing and finetuning start from)."""
        return self.query_encoder[0]

    def train(self, mode: bool = True) -> "MoCo":
        """``nn.Module.train``; the key encoder stays in eval mode unless ``key_train_mode``."""
        super().train(mode)
        if mode and not self.key_train_mode:
            self.key_encoder.eval()
        return self

    @torch.no_grad()
    def momentum_update(self) -> None:
        """k <- m k + (1 - m) q for every parameter, as one multi-tensor lerp."""
        keys, queries = self._pairs
        torch._foreach_lerp_(keys, [p.detach() for p in queries], 1.0 - self.momentum)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and their references for one step; the queue is NOT changed (see :meth:`enqueue`).

        Args:
            view1: (B, ...) first augmented view, fed to the query encoder.
            view2: (B, ...) second view of the same samples, fed to the key encoder.
            labels: (B, C) multi-hot labels of the samples.

        Returns:
            query (B, D) float32 unit rows (with gradient); references (K, D) float32 unit rows: this
            step's keys (W * B of them with W processes, rank order) followed by the queue's filled
            part; reference_labels (K, C) uint8.
        """
        if view1.shape[0] != labels.shape[0] or view2.shape[0] != labels.shape[0]:
            raise ValueError(
                f"views and labels disagree on the batch size: {view1.shape[0]}, {view2.shape[0]}, {labels.shape[0]}"
            )
        n_labels, dim = self.queue.labels.shape[1], self.queue.keys.shape[1]
        if labels.dim() != 2 or labels.shape[1] != n_labels:
            raise ValueError(f"labels must be (B, {n_labels}) as the queue keeps {n_labels} labels, got {tuple(labels.shape)}")
        # Normalised in float32 (also under mixed precision, where the encoders return half precision).
        query = l2_normalize(self.query_encoder(view1).float())
        if query.dim() != 2 or query.shape[1] != dim:
            raise ValueError(f"the head gives embeddings of shape {tuple(query.shape)}, but the queue keeps keys of "
                             f"dimension {dim}: build LabelQueue(size, {query.shape[-1]}, ...) or a head with {dim} outputs")
        with torch.no_grad():
            self.momentum_update()
            keys = all_gather_rows(l2_normalize(self.key_encoder(view2).float()))
            refs, ref_labels = keys, all_gather_rows(labels.to(torch.uint8))
            self._step_keys = (keys, ref_labels)
            if self.queue.size and (self.use_partial_queue or self.queue.is_full):
                queued_keys, queued_labels = self.queue.stored()
                refs = torch.cat([refs, queued_keys.to(refs.dtype)])
                ref_labels = torch.cat([ref_labels, queued_labels])
        return query, refs, ref_labels

    def enqueue(self, keys: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> None:
        """Push keys (n, D) and their labels (n, C) into the queue (the oldest ones drop out).

        Without arguments: the last forward's keys and labels, those of every process under torch.distributed
        (W * B rows, the first rows of its references), once per forward. Pass them to push other label rows
        (the training loop appends instance tags to its labels).
        """
        if keys is None and labels is None:
            if self._step_keys is None:
                raise RuntimeError("enqueue() without arguments pushes the keys of the last forward, and none is left "
                                   "(no forward yet, or they were pushed already): call moco(view1, view2, labels) first")
            keys, labels = self._step_keys
        elif keys is None or labels is None:
            raise ValueError("pass keys and labels together, or neither (the last forward's)")
        self._step_keys = None
        self.queue.enqueue(keys, labels)
