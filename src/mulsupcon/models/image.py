"""Image backbones: any torchvision classification model, built from scratch (``weights=None``)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier with its final classification layer removed.

    Args:
        arch: a torchvision model name (``resnet50`` as in the paper, ``resnet18``, ...).
        small_input: replace a ResNet's 7x7 stride-2 stem and max-pool by a 3x3 stride-1
            convolution, as usual for 32-pixel inputs (keeps tiny images from collapsing to 1x1).
        in_channels: input channels (1 for greyscale; the first convolution is rebuilt).
        weights: passed to torchvision (``None`` = random initialisation, the paper's setting).

    Shapes: (B, in_channels, H, W) float -> (B, out_dim).
    """

    def __init__(self, arch: str = "resnet50", *, small_input: bool = False, in_channels: int = 3, weights=None):
        super().__init__()
        try:
            model = torchvision.models.get_model(arch, weights=weights)
        except (ValueError, KeyError) as err:
            known = ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))[:12])
            raise ValueError(f"unknown torchvision model '{arch}' (for example: {known}, ...)") from err
        self.arch = arch
        if hasattr(model, "conv1") and (small_input or in_channels != 3):
            old = model.conv1
            k, s, p = ((3, 1, 1) if small_input else (old.kernel_size, old.stride, old.padding))
            model.conv1 = nn.Conv2d(in_channels, old.out_channels, k, s, p, bias=False)
            if small_input and hasattr(model, "maxpool"):
                model.maxpool = nn.Identity()
        elif in_channels != 3 or small_input:
            raise ValueError(f"small_input / in_channels are only supported for ResNet-style models, not '{arch}'")
        self.out_dim = _strip_classifier(model)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_dim)."""
        return self.model(x)


def _strip_classifier(model: nn.Module) -> int:
    """Replace the model's last classification layer by Identity; return the feature width."""
    for attr in ("fc", "classifier", "head", "heads"):
        layer = getattr(model, attr, None)
        if layer is None:
            continue
        linear = layer if isinstance(layer, nn.Linear) else None
        if linear is None and isinstance(layer, nn.Sequential):
            linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
            linear = linears[-1] if linears else None
        if linear is None:
            continue
        width = linear.in_features
        if isinstance(layer, nn.Sequential):
            # Keep any pooling/dropout before the final Linear; drop only that Linear.
            idx = [i for i, m in enumerate(layer) if m is linear]
            if idx:
                layer[idx[0]] = nn.Identity()
                return width
        setattr(model, attr, nn.Identity())
        return width
    raise ValueError(f"cannot find the classification layer of {type(model).__name__}")
