"""Image views for pretraining and evaluation (``torchvision.transforms.v2`` on uint8 tensors).

Pretraining view (the paper's augmentation): random resized crop to ``size`` (scale 0.2-1.0),
colour jitter (brightness, contrast, saturation, hue = 0.4, 0.4, 0.4, 0.1, applied with p 0.8),
random greyscale (p 0.2), horizontal flip, then conversion to float in [0, 1] and per-channel
normalisation. Evaluation view: resize the shorter side to ``size*256/224`` (256 for 224), centre
crop ``size``, normalise.

Every transform takes ONE image, a uint8 tensor (C, H, W) with C = 1 or 3, and returns float32
(C, size, size): torchvision's v2 transforms draw one set of random parameters per call, so a batch
is augmented image by image (``augment_batch``) to give each image its own crop, jitter and flip.

One-channel images (``multidigits``) keep one channel (the image backbones accept
``in_channels=1``): their view uses the brightness and contrast parts of the jitter only, since
saturation, hue and greyscale conversion have no meaning without colour. Normalisation of a
one-channel image uses the mean of the three channel means and standard deviations.

Randomness comes from torch's global generator (``torch.manual_seed`` makes views reproducible),
or from an explicit ``torch.Generator`` passed to ``augment_batch``.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torchvision.transforms import v2

# ImageNet statistics: the usual choice for 224-pixel natural images trained from scratch or not.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageTransform = Callable[[torch.Tensor], torch.Tensor]


def _check_image(img: torch.Tensor) -> int:
    """Validate a single (C, H, W) uint8 image tensor; returns C."""
    if not isinstance(img, torch.Tensor) or img.ndim != 3:
        shape = tuple(img.shape) if hasattr(img, "shape") else type(img).__name__
        raise ValueError(f"image transform expects one image tensor (C, H, W), got {shape}")
    if img.dtype != torch.uint8:
        raise ValueError(f"image transform expects a uint8 image, got dtype {img.dtype}")
    c = int(img.shape[0])
    if c not in (1, 3):
        raise ValueError(f"image transform expects 1 or 3 channels, got {c} (shape {tuple(img.shape)})")
    return c


class _ByChannels:
    """Dispatch to a 1-channel or a 3-channel pipeline by the image's channel count."""

    def __init__(self, grey: v2.Transform, colour: v2.Transform, description: str):
        self.grey = grey
        self.colour = colour
        self.description = description

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = _check_image(img)
        return (self.grey if c == 1 else self.colour)(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"


def _normalise(mean: Sequence[float], std: Sequence[float], channels: int) -> v2.Transform:
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ValueError(f"mean and std must both have 1 or 3 values, got {len(mean)} and {len(std)}")
    if channels == 1:
        mean, std = [float(np.mean(mean))], [float(np.mean(std))]
    elif len(mean) == 1:
        mean, std = list(mean) * 3, list(std) * 3
    return v2.Normalize(mean=list(mean), std=list(std))


def pretrain_transform(
    size: int = 224,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.8,
    grey_p: float = 0.2,
    hflip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> ImageTransform:
    """The paper's pretraining augmentation for one image.

    Args:
        size: output side length.
        scale: area fraction range of the random resized crop.
        jitter: (brightness, contrast, saturation, hue) strengths of the colour jitter.
        jitter_p: probability of applying the jitter (0 disables it).
        grey_p: probability of converting to greyscale (3-channel images only).
        hflip: random horizontal flip with probability 0.5.
        mean, std: normalisation statistics (1 or 3 values).

    Returns:
        A callable mapping a uint8 tensor (C, H, W), C in {1, 3}, to float32 (C, size, size).
    """
    if not (0.0 < scale[0] <= scale[1] <= 1.0):
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    if len(jitter) != 4:
        raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {jitter}")
    for name, p in (("jitter_p", jitter_p), ("grey_p", grey_p)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    b, c, s, h = (float(x) for x in jitter)

    def build(channels: int) -> v2.Transform:
        # Crop on uint8 (cheap), then work in float: jitter on floats avoids uint8 rounding
        # between its four sub-operations and is slightly faster.
        ops: list[v2.Transform] = [
            v2.RandomResizedCrop(size, scale=tuple(scale), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
        if jitter_p > 0:
            cj = v2.ColorJitter(b, c, s, h) if channels == 3 else v2.ColorJitter(b, c)
            ops.append(v2.RandomApply([cj], p=jitter_p))
        if channels == 3 and grey_p > 0:
            ops.append(v2.RandomGrayscale(p=grey_p))
        if hflip:
            ops.append(v2.RandomHorizontalFlip())
        ops.append(_normalise(mean, std, channels))
        return v2.Compose(ops)

    desc = f"pretrain size={size} scale={tuple(scale)} jitter={tuple(jitter)}@{jitter_p} grey={grey_p} hflip={hflip}"
    return _ByChannels(build(1), build(3), desc)


def eval_transform(
    size: int = 224,
    resize: Optional[int] = None,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> ImageTransform:
    """Deterministic evaluation view for one image.

    Args:
        size: output side length (centre crop).
        resize: shorter side after resizing; default ``round(size * 256 / 224)``. ``resize=size``
            on square images means no crop at all.
        mean, std: normalisation statistics (1 or 3 values).

    Returns:
        A callable mapping a uint8 tensor (C, H, W), C in {1, 3}, to float32 (C, size, size).
    """
    resize = int(round(size * 256 / 224)) if resize is None else int(resize)
    if resize < size:
        raise ValueError(f"eval resize ({resize}) must be >= the crop size ({size})")

    def build(channels: int) -> v2.Transform:
        return v2.Compose(
            [
                v2.Resize(resize, antialias=True),
                v2.CenterCrop(size),
                v2.ToDtype(torch.float32, scale=True),
                _normalise(mean, std, channels),
            ]
        )

    return _ByChannels(build(1), build(3), f"eval resize={resize} crop={size}")


class TwoViews:
    """Two independently augmented views of one image: ``img (C,H,W) -> (view1, view2)``."""

    def __init__(self, transform: ImageTransform):
        self.transform = transform

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(img), self.transform(img)

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


def augment_batch(
    images: torch.Tensor | np.ndarray,
    transform: ImageTransform,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Apply ``transform`` to every image of a batch independently.

    Args:
        images: uint8 (B, C, H, W) tensor (any device) or numpy array.
        transform: a per-image transform such as ``pretrain_transform(...)``.
        generator: optional; when given, the views are a deterministic function of its state
            (one seed is drawn from it and used for torch's global generator inside a forked
            RNG scope, leaving the caller's global RNG untouched).

    Returns:
        float32 tensor (B, C, size, size) on the device of ``images``.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if images.ndim != 4:
        raise ValueError(f"augment_batch expects a batch (B, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("augment_batch got an empty batch")
    if generator is None:
        return torch.stack([transform(img) for img in images])
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.stack([transform(img) for img in images])
