"""A memory of past embeddings AND their label rows for the MulSupCon loss, for your own training loop.

The multi-label counterpart of pytorch-metric-learning's ``CrossBatchMemory``: each call computes the loss
of this batch's embeddings against the batch itself and the stored past embeddings, then stores the batch.

>>> memory = MultiLabelMemory(MulSupConLoss(temperature=0.1), embedding_size=128, n_labels=14, memory_size=4096)
>>> loss = memory(embeddings, labels)        # embeddings (B, 128) with gradient, labels (B, 14) multi-hot
"""

from __future__ import annotations

import torch
from torch import nn

from mulsupcon.losses import MulSupConLoss
from mulsupcon.moco import LabelQueue
from mulsupcon.ops import all_gather_rows, l2_normalize


class MultiLabelMemory(nn.Module):
    """``loss(embeddings, labels)`` against [this batch; the memory], then the batch goes into the memory.

    * **Each anchor's own copy is excluded** (by default, ``exclude_self=True``): anchor i is not its own
      reference or positive, exactly as in SupCon's in-batch mode; the rest of the batch is a reference
      with gradient, the memory without. ``exclude_self=False`` keeps the anchor's own entry, as MoCo does
      with a second view; it only makes sense when the batch entries are another view of the anchors.
    * The memory (keys, label rows, pointer, fill count) is a :class:`~mulsupcon.moco.LabelQueue` of
      buffers: it lives in ``state_dict`` and a resumed run continues with the same references.
    * Under ``torch.distributed`` the stored rows are gathered from every process (rank order), so the
      memory is identical on every rank; the batch part of the references is this process's own batch.

    Args:
        loss: the loss, called as ``loss(query, labels, keys, key_labels, exclude_self=...)``.
        embedding_size: D. n_labels: C. memory_size: how many past embeddings are kept (oldest drop out).
        exclude_self: see above.

    Shapes: embeddings (B, D) float, labels (B, C) in {0, 1} -> scalar loss.
    """

    def __init__(self, loss: MulSupConLoss, embedding_size: int, n_labels: int, memory_size: int, *,
                 exclude_self: bool = True):
        super().__init__()
        self.loss = loss
        self.memory = LabelQueue(memory_size, embedding_size, n_labels)
        self.exclude_self = exclude_self

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """embeddings (B, D), labels (B, C) -> scalar loss against this batch and the stored rows; then
        stores this batch (gathered from every rank)."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.memory.keys.shape[1]:
            raise ValueError(f"embeddings must be (B, {self.memory.keys.shape[1]}), got {tuple(embeddings.shape)}")
        if labels.shape != (embeddings.shape[0], self.memory.labels.shape[1]):
            raise ValueError(f"labels must be ({embeddings.shape[0]}, {self.memory.labels.shape[1]}), got {tuple(labels.shape)}")
        stored, stored_labels = self.memory.stored()
        keys = torch.cat([embeddings, stored.to(embeddings.dtype)])
        key_labels = torch.cat([labels.to(torch.uint8), stored_labels.to(labels.device)])
        loss = self.loss(embeddings, labels, keys, key_labels, exclude_self=self.exclude_self)
        with torch.no_grad():  # stored unit-normalised, as the loss sees them
            self.memory.enqueue(all_gather_rows(l2_normalize(embeddings.detach().float())),
                                all_gather_rows(labels.to(torch.uint8)))
        return loss
