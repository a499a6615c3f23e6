"""Encoders and heads: widths are checked when the module is built, and a backbone that cannot take the
data's samples is named with what it needs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mulsupcon.models import MLPBackbone, MultiLabelClassifier, ProjectionHead, build_backbone


@pytest.mark.parametrize("width", [0, -3, 2.5, True, "a", None, float("nan"), float("inf")])
def test_a_width_that_is_not_a_whole_number_from_1_is_refused_by_name(width):
    # torch built Linear(4, 2.5) without a word, and a width of 0 with only a warning.
    with pytest.raises(ValueError, match=r"each width of hidden .* must be a whole number >= 1"):
        MLPBackbone(4, (8, width))
    with pytest.raises(ValueError, match=r"hidden_dim must be a whole number >= 1"):
        ProjectionHead(8, width, 4)
    with pytest.raises(ValueError, match=r"n_labels must be a whole number >= 1"):
        MultiLabelClassifier(MLPBackbone(4, (8,)), width)
    with pytest.raises(ValueError, match=r"in_features must be a whole number >= 1"):
        MLPBackbone(width, (8,))


def test_whole_widths_of_any_numeric_type_build_the_same_layers():
    a, b = MLPBackbone(np.int64(4), (np.int64(8), 6.0)), MLPBackbone(4, (8, 6))
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()] and a.out_dim == 6
    assert MultiLabelClassifier(a, 3)(torch.randn(2, 4)).shape == (2, 3)


def test_a_backbone_for_the_other_kind_of_sample_says_what_it_needs():
    with pytest.raises(ValueError, match=r"backbone 'resnet18' is a torchvision image model.*\(10,\).*'mlp'"):
        build_backbone({"backbone": "resnet18"}, (10,))
    with pytest.raises(ValueError, match=r"backbone 'mlp' needs vector inputs.*\(3, 16, 16\)"):
        build_backbone({"backbone": "mlp", "hidden": [8]}, (3, 16, 16))
