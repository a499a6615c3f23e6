"""Encoders and heads; :func:`build_backbone` is the single place that turns a config into a model."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from .heads import MultiLabelClassifier, ProjectionHead
from .vector import MLPBackbone


def __getattr__(name: str):
    # torchvision is imported only when an image backbone is asked for (it costs seconds at start-up).
    if name == "TorchvisionBackbone":
        from .image import TorchvisionBackbone

        return TorchvisionBackbone
    raise AttributeError(name)

__all__ = ["MLPBackbone", "ProjectionHead", "MultiLabelClassifier", "TorchvisionBackbone", "build_backbone"]


def build_backbone(model_cfg: Mapping[str, Any], input_shape: Sequence[int]) -> nn.Module:
    """Build the backbone named by ``model_cfg["backbone"]`` for inputs of ``input_shape``.

    Args:
        model_cfg: the ``model`` section of a run config. ``backbone: mlp`` uses ``hidden`` and
            ``dropout``; any other value is a torchvision model name (``resnet50``...), using
            ``small_input``.
        input_shape: shape of one sample, ``(F,)`` for vectors or ``(C, H, W)`` for images.

    Returns:
        a module with an ``out_dim`` attribute.
    """
    name = str(model_cfg.get("backbone", "mlp"))
    if name == "mlp":
        if len(input_shape) != 1:
            raise ValueError(f"backbone 'mlp' needs vector inputs, but samples have shape {tuple(input_shape)}")
        return MLPBackbone(int(input_shape[0]), model_cfg.get("hidden", (256, 512, 256)), float(model_cfg.get("dropout", 0.2)))
    if len(input_shape) != 3:
        raise ValueError(f"backbone '{name}' is a torchvision image model, which needs (C, H, W) inputs, but samples "
                         f"have shape {tuple(input_shape)}: vector inputs take backbone 'mlp'")
    from .image import TorchvisionBackbone

    return TorchvisionBackbone(name, small_input=bool(model_cfg.get("small_input", False)), in_channels=int(input_shape[0]))
