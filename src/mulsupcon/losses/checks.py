"""Input checks shared by the losses: shapes, dtypes and multi-hot labels, with errors that say where."""

from __future__ import annotations

import torch
from torch import Tensor


def _first_true(mask: Tensor) -> tuple[int, ...]:
    """Index (row, column) of the first True entry of a boolean tensor."""
    return tuple(int(v) for v in torch.nonzero(mask, as_tuple=False)[0])


def check_embeddings(name: str, x: Tensor, finite: bool = True) -> None:
    """Raise ValueError unless ``x`` is a 2-D floating tensor (and finite, when ``finite``)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if finite:
        ok = torch.isfinite(x)
        if not bool(ok.all()):
            r, c = _first_true(~ok)
            raise ValueError(f"{name} contains a non-finite value ({float(x[r, c].detach())}) at row {r}, column {c}")


def check_labels(name: str, y: Tensor, values: bool = True) -> None:
    """Raise ValueError unless ``y`` is a 2-D tensor (with values in {0, 1}, when ``values``)."""
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, classes), got shape {tuple(y.shape)}")
    if y.dtype == torch.bool:
        return
    if y.is_complex():
        raise ValueError(f"{name} must be bool, integer or real floating point, got dtype {y.dtype}")
    if not values:
        return
    if y.dtype == torch.uint8 and not bool(y.gt(1).any()):  # the queue's dtype: one comparison suffices
        return
    bad = (y != 0) & (y != 1)  # NaN compares unequal to both, so it is caught here too
    if bool(bad.any()):
        r, c = _first_true(bad)
        raise ValueError(f"{name} must be multi-hot with values in {{0, 1}}; found {y[r, c].item()} at row {r}, column {c}")


def check_contrastive_inputs(query: Tensor, labels: Tensor, keys: Tensor | None, key_labels: Tensor | None,
                             values: bool = True) -> None:
    """Shapes, dtypes and (with ``values``) labels of a contrastive loss call (finiteness: on the result)."""
    check_embeddings("query", query, finite=False)
    check_labels("labels", labels, values)
    if labels.shape[0] != query.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} rows but query has {query.shape[0]}: "
                         f"query {tuple(query.shape)}, labels {tuple(labels.shape)}")
    if (keys is None) != (key_labels is None):
        given, missing = ("keys", "key_labels") if key_labels is None else ("key_labels", "keys")
        raise ValueError(f"{given} was given without {missing}; pass both or neither")
    if keys is None or key_labels is None:
        return
    check_embeddings("keys", keys, finite=False)
    check_labels("key_labels", key_labels, values)
    if keys.shape[1] != query.shape[1]:
        raise ValueError(f"keys have dimension {keys.shape[1]} but query has {query.shape[1]}: "
                         f"query {tuple(query.shape)}, keys {tuple(keys.shape)}")
    if key_labels.shape[0] != keys.shape[0]:
        raise ValueError(f"key_labels has {key_labels.shape[0]} rows but keys has {keys.shape[0]}: "
                         f"keys {tuple(keys.shape)}, key_labels {tuple(key_labels.shape)}")
    if key_labels.shape[1] != labels.shape[1]:
        raise ValueError(f"key_labels has {key_labels.shape[1]} classes but labels has {labels.shape[1]}: "
                         f"labels {tuple(labels.shape)}, key_labels {tuple(key_labels.shape)}")
