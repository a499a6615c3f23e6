"""Heads put on top of a backbone: the contrastive projection head and the linear classifier."""

from __future__ import annotations

import torch
from torch import nn

from mulsupcon.ops import Dropout

from .vector import check_width


class ProjectionHead(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear (the paper's head ``g``).

    Only used during contrastive pretraining; discarded afterwards. The output is NOT normalised
    here: the loss and the MoCo module normalise it.

    Shapes: (B, in_dim) -> (B, out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, out_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        in_dim, hidden_dim, out_dim = (check_width(v, n) for v, n in ((in_dim, "in_dim"), (hidden_dim, "hidden_dim"),
                                                                        (out_dim, "out_dim")))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            Dropout(dropout),
            nn.Linear(hidden_dim, out_dim),
        )
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        return self.net(h)


class MultiLabelClassifier(nn.Module):
    """A backbone followed by one linear layer producing one logit per label.

    Shapes: input as the backbone expects -> logits (B, n_labels).
    """

    def __init__(self, backbone: nn.Module, n_labels: int):
        super().__init__()
        n_labels = check_width(n_labels, "n_labels")
        self.backbone = backbone
        self.fc = nn.Linear(int(getattr(backbone, "out_dim")), n_labels)
        self.n_labels = n_labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Input batch -> logits (B, n_labels)."""
        return self.fc(self.backbone(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, out_dim) (what transfer and the Figure 3 heatmap use)."""
        return self.backbone(x)
