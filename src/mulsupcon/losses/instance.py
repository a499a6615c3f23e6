"""MoCo's instance-discrimination loss (He et al. 2020, InfoNCE), with exact duplicates as one instance.

Queries z_q (B, D) with instance numbers g (B,), references z_k (K, D) with numbers g_k (K,); the
positives of query i are the references of its instance, P_i = {a : g_k^(a) = g^(i)} (its own key, the
other view, and the keys of rows with identical features), and

    L = mean_i  -1/|P_i| sum_{p in P_i} log softmax_a(z_q^(i) . z_k^(a) / tau)[p]

(the ALL rule of :mod:`.mulsupcon` with the instance as the label; computed here from the group numbers
directly, since one-hot instance labels would make every label row N training rows wide). Added to MulSupCon
(``pretrain.instance_weight``) it asks the embedding to tell the training rows apart, not only rows of
different labels: on a few hundred rows the label term alone keeps little of the input. Identical rows
cannot be told apart, so they are positives of each other rather than negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InstanceContrastLoss(nn.Module):
    """InfoNCE whose positives are the references of the query's own instance.

    Args:
        temperature: tau > 0 dividing the scores (unit vectors are expected).

    Call: ``loss_fn(query (B, D), keys (K, D), query_groups (B,), key_groups (K,)) -> scalar`` (float32, or
    float64 when an embedding is); groups are integers, equal for the same instance. ValueError for
    mismatched shapes. A query with no reference of its instance adds 0.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, query: Tensor, keys: Tensor, query_groups: Tensor, key_groups: Tensor) -> Tensor:
        """query (B, D), keys (K, D), query_groups (B,), key_groups (K,) -> scalar: mean over queries of
        -mean log p(key of the same instance)."""
        if query.dim() != 2 or keys.dim() != 2 or query.shape[1] != keys.shape[1]:
            raise ValueError(f"expected query (B, D) and keys (K, D), got {tuple(query.shape)} and {tuple(keys.shape)}")
        if query_groups.shape != query.shape[:1] or key_groups.shape != keys.shape[:1]:
            raise ValueError(f"expected groups of shapes ({query.shape[0]},) and ({keys.shape[0]},), got "
                             f"{tuple(query_groups.shape)} and {tuple(key_groups.shape)}")
        dtype = torch.float64 if torch.float64 in (query.dtype, keys.dtype) else torch.float32
        log_p = F.log_softmax(query.to(dtype) @ keys.to(dtype).T / self.temperature, dim=1)  # (B, K)
        positive = (query_groups[:, None] == key_groups[None, :].to(query_groups.device)).to(dtype)  # (B, K)
        # No check that every query finds its instance (it would read a value back from the device each
        # step): MoCo's references start with the queries' own keys, so P_i is never empty there.
        return (-(positive * log_p).sum(1) / positive.sum(1).clamp_min(1)).mean()
