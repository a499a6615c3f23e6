"""The paper's encoder for vector data: three Linear + ReLU + Dropout layers."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mulsupcon.ops import Dropout


def check_width(value: object, name: str) -> int:
    """``value`` as a layer width (an integer >= 1), else a ValueError naming ``name``: torch takes a width
    of 0 with only a warning, and a fractional one without a word."""
    try:
        whole = not isinstance(value, bool) and float(value) == int(value) >= 1  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)  # type: ignore[arg-type]


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
        in_features = check_width(in_features, "in_features")
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            h = check_width(h, f"each width of hidden {tuple(hidden)}")
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), Dropout(dropout)]
            width = h
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
