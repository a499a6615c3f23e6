"""The asymmetric loss for multi-label classification (ASL, Ridnik et al., ICCV 2021)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_embeddings, check_labels


class AsymmetricLoss(nn.Module):
    """ASL. With p = sigmoid(x) and the shifted negative probability p_m = max(p - clip, 0), each
    (sample, class) term is

        L = -[ y * (1 - p)^gamma_pos * log(max(p, eps)) + (1 - y) * p_m^gamma_neg * log(max(1 - p_m, eps)) ].

    Logs are log-sigmoids (stable for large |x|) floored at log(eps) (no floor if eps = 0). The focusing
    weights are differentiated through. With gamma_neg = gamma_pos = 0 and clip = 0 this is exactly binary
    cross-entropy with logits.

    Reductions: ``"mean"`` (sum over classes, mean over samples), ``"sum"`` (the ASL repository's), ``"none"``
    (the (B, C) terms). Call: ``loss(logits (B, C), targets (B, C))``.
    """

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05, eps: float = 1e-8,
                 reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__()
        for name, v in (("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos), ("eps", eps)):
            if not math.isfinite(float(v)) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if not math.isfinite(float(clip)) or not 0 <= clip < 1:
            raise ValueError(f"clip must be in [0, 1), got {clip}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma_neg, self.gamma_pos, self.clip = float(gamma_neg), float(gamma_pos), float(clip)
        self.eps, self.reduction = float(eps), reduction

    def extra_repr(self) -> str:
        return (f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, eps={self.eps}, "
                f"reduction={self.reduction!r}")

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits (B, C) float, targets (B, C) in {0, 1} -> the reduced loss (scalar, or (B, C) for "none")."""
        check_embeddings("logits", logits)
        check_labels("targets", targets)
        if targets.shape != logits.shape:
            raise ValueError(f"targets shape {tuple(targets.shape)} does not match logits shape {tuple(logits.shape)}")
        x = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
        y = targets.detach().to(device=x.device, dtype=x.dtype)
        floor = math.log(self.eps) if self.eps > 0 else -math.inf
        pos = F.logsigmoid(x).clamp_min(floor)
        if self.gamma_pos > 0:
            pos = pos * torch.sigmoid(-x).pow(self.gamma_pos)  # (1 - p)^gamma_pos
        if self.clip > 0:
            p_m = (torch.sigmoid(x) - self.clip).clamp_min(0.0)
            log_1m = torch.log((torch.sigmoid(-x) + self.clip).clamp_max(1.0)).clamp_min(floor)  # 1 - p_m
        else:
            p_m = torch.sigmoid(x)
            log_1m = F.logsigmoid(-x).clamp_min(floor)
        neg = log_1m * p_m.pow(self.gamma_neg) if self.gamma_neg > 0 else log_1m
        loss = -(y * pos + (1.0 - y) * neg)  # (B, C)
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.sum(1).mean()
