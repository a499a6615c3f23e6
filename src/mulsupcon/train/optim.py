"""Optimiser and learning-rate schedule of the training loops."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch


def make_optimizer(groups: Iterable[dict], section: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam or SGD (``section["optimizer"]``) over parameter groups (each group may carry its own ``lr``).

    The fused implementation (one kernel for all parameters: on small models the per-tensor overhead
    of the step dominates) is used where this torch build supports it for these parameters; otherwise
    the multi-tensor ``foreach`` one. Detected by constructing the optimiser, never by stepping it.
    """
    groups = [g for g in groups if g["params"]]
    wd = float(section.get("weight_decay", 0.0))
    if section["optimizer"] == "adam":
        cls, kwargs = torch.optim.Adam, {"lr": float(section["lr"]), "weight_decay": wd}
    else:
        cls, kwargs = torch.optim.SGD, {"lr": float(section["lr"]), "weight_decay": wd,
                                        "momentum": float(section.get("sgd_momentum", 0.9))}
    try:
        return cls(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # fused kernels missing for this device or dtype
        return cls(groups, foreach=True, **kwargs)


def scheduled_epochs(section: Mapping[str, Any], steps_per_epoch: int) -> int:
    """``section["epochs"]``, raised so that the run takes at least ``min_steps`` optimiser steps and lowered so
    that it takes at most ``max_steps`` (each when set, never below one epoch).

    A schedule in epochs gives a set of 100 training rows 4 steps per epoch and one of 20,000 rows 600: the
    same "150 epochs" undertrains the first and overtrains the second. The bounds make the default schedule
    hold across dataset sizes; the paper's configs leave them unset.
    """
    epochs = int(section["epochs"])
    lo, hi = section.get("min_steps"), section.get("max_steps")
    if lo is not None:
        epochs = max(epochs, math.ceil(int(lo) / steps_per_epoch))
    if hi is not None:
        epochs = min(epochs, max(1, int(hi) // steps_per_epoch))
    return epochs


def scheduled_factor(section: Mapping[str, Any], epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at (epoch, step) for the pretraining schedules, a pure function.

    ``cosine``: one half-cosine over the whole run, per step, down to ``eta_min / lr``.
    ``cosine_restarts``: SGDR (Loshchilov & Hutter) with ``T_0 = restart_epochs`` epochs and
    ``T_mult = restart_mult``, evaluated per epoch like the authors' code.
    ``constant``: 1.
    Being a pure function of the position (no scheduler object), a resumed run gets the same rates.
    """
    kind = section["scheduler"]
    base = float(section["lr"])
    floor = float(section.get("eta_min", 0.0)) / base if base > 0 else 0.0
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        total = max(1, int(section["epochs"]) * steps_per_epoch)
        t = min(epoch * steps_per_epoch + step, total)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t / total))
    t0, mult = int(section["restart_epochs"]), int(section["restart_mult"])
    e, length = epoch, t0
    while e >= length:
        e -= length
        length *= mult
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * e / length))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's learning rate to its ``initial_lr`` times ``factor``."""
    for g in optimizer.param_groups:
        g["lr"] = g.setdefault("initial_lr", g["lr"]) * factor
