"""The paper's encoder for vector data: three Linear + ReLU + Dropout layers."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mulsupcon.ops import Dropout


class MLPBackbone(nn.Module):
    """Linear -> ReLU -> Dropout, once per hidden width (the paper uses in->256->512->256).

    Args:
        in_features: F, the input width.
        hidden: widths of the successive layers; the last one is the embedding size ``out_dim``.
        dropout: dropout probability after every layer (0.2 in the authors' code).

    Shapes: input (B, F) float -> output (B, hidden[-1]).
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 512, 256), dropout: float = 0.2):
        super().__init__()
        if in_features <= 0:
            raise ValueError(f"in_features must be positive, got {in_features}")
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True), Dropout(dropout)]
            width = int(h)
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.out_dim = width

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` has shape (B, F)."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"MLPBackbone expects input of shape (B, {self.in_features}), got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) -> (B, out_dim)."""
        self.check_input(x)
        return self.net(x)
