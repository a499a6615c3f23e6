"""Image views: shapes, dtypes, determinism, independence of views, 1-channel support."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mulsupcon.data.image_views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TwoViews,
    augment_batch,
    eval_transform,
    pretrain_transform,
)


def _images(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_pretrain_shapes_and_dtype(channels):
    x = _images(4, channels, 40, 52)
    out = augment_batch(x, pretrain_transform(32))
    assert out.shape == (4, channels, 32, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # Normalised values of a [0, 1] image lie within [(0 - mean) / std, (1 - mean) / std].
    lo = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    hi = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    assert out.min() >= lo - 1e-4 and out.max() <= hi + 1e-4


def test_determinism_under_manual_seed():
    x = _images(3, 3, 36, 36)
    t = pretrain_transform(24)
    torch.manual_seed(7)
    a = augment_batch(x, t)
    torch.manual_seed(7)
    b = augment_batch(x, t)
    torch.manual_seed(8)
    c = augment_batch(x, t)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_explicit_generator_reproducible_and_leaves_global_rng():
    x = _images(3, 1, 24, 24)
    t = pretrain_transform(24)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = augment_batch(x, t, generator=torch.Generator().manual_seed(5))
    after = torch.rand(1)
    b = augment_batch(x, t, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(before, after)  # the global stream was not advanced by augment_batch


def test_two_views_differ_and_batch_images_get_own_params():
    img = _images(1, 3, 48, 48)[0]
    torch.manual_seed(0)
    v1, v2_ = TwoViews(pretrain_transform(32))(img)
    assert v1.shape == v2_.shape == (3, 32, 32) and not torch.equal(v1, v2_)
    # The same image repeated in a batch gets different augmentations per row.
    torch.manual_seed(0)
    out = augment_batch(img.expand(4, -1, -1, -1).clone(), pretrain_transform(32))
    assert len({tuple(o.flatten()[:50].tolist()) for o in out}) == 4


def test_no_augmentation_equals_plain_resize_and_normalise():
    # Oracle: with crop scale (1, 1) on a square image and no jitter/grey/flip, the view is the
    # normalised image itself (a full-area crop of a square image exists only at aspect ratio 1;
    # RandomResizedCrop rejects the other ratios and falls back to the whole image).
    img = _images(1, 3, 16, 16)[0]
    t = pretrain_transform(16, scale=(1.0, 1.0), jitter_p=0.0, grey_p=0.0, hflip=False)
    torch.manual_seed(0)
    got = t(img)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    want = (img.float() / 255 - mean) / std
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_grey_channel_normalisation_and_colour_ops_skipped():
    img = torch.full((1, 10, 10), 128, dtype=torch.uint8)
    # Colour-only randomness (jitter p=1 with only saturation/hue) must be a no-op for 1 channel.
    t = pretrain_transform(10, scale=(1.0, 1.0), jitter=(0.0, 0.0, 0.4, 0.1), jitter_p=1.0, grey_p=1.0, hflip=False)
    out = t(img)
    want = (128 / 255 - np.mean(IMAGENET_MEAN)) / np.mean(IMAGENET_STD)
    torch.testing.assert_close(out, torch.full((1, 10, 10), float(want)), atol=1e-5, rtol=0)


def test_eval_transform_deterministic_and_centre_crop():
    x = _images(2, 3, 60, 80)
    e = eval_transform(32)  # resize shorter side to round(32*256/224) = 37, crop 32
    a, b = augment_batch(x, e), augment_batch(x, e)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b)
    # resize == size on a square image: identity up to normalisation.
    sq = _images(1, 1, 24, 24)
    out = eval_transform(24, resize=24)(sq[0])
    want = (sq[0].float() / 255 - np.mean(IMAGENET_MEAN)) / np.mean(IMAGENET_STD)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    # Centre crop oracle: a marker pixel at the image centre stays at the output centre.
    img = torch.zeros(1, 40, 40, dtype=torch.uint8)
    img[0, 20, 20] = 255
    crop = eval_transform(20, resize=40, mean=(0.0,), std=(1.0,))(img)
    assert crop[0, 10, 10] == 1.0 and crop.sum() == 1.0


def test_numpy_input_and_errors():
    arr = _images(2, 1, 24, 24).numpy()
    assert augment_batch(arr, eval_transform(24, resize=24)).shape == (2, 1, 24, 24)
    with pytest.raises(ValueError, match="uint8"):
        pretrain_transform(8)(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        pretrain_transform(8)(torch.zeros(4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment_batch(torch.zeros(3, 8, 8, dtype=torch.uint8), pretrain_transform(8))
    with pytest.raises(ValueError, match="scale"):
        pretrain_transform(8, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="resize"):
        eval_transform(32, resize=16)
