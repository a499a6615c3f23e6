"""Reading checkpoints back, and the random state a run saves and seeds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`mulsupcon.io.atomic_torch_save`, with a clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable mulsupcon checkpoint ({err})") from err


def rng_state() -> dict:
    """Every random state a run depends on (Python, NumPy, torch CPU and CUDA), saved for the record.

    Resuming does not need it: every epoch re-seeds from ``(seed, epoch)``."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


CHECKPOINT_STEPS = 500  # optimiser steps between checkpoints with checkpoint_every: auto


def checkpoint_interval(every: int | str, steps_per_epoch: int) -> int:
    """Epochs between checkpoints: ``every``, or for ``"auto"`` as many as hold 500 optimiser steps (1 when
    an epoch does). A kill then loses a few seconds of work at most, and writing takes a few percent of
    the run: a small set's epochs of a few steps spent 40% of pretraining writing a checkpoint after each
    (benchmarks/README.md, 'Checkpoints')."""
    if every == "auto":
        return max(1, -(-CHECKPOINT_STEPS // max(1, int(steps_per_epoch))))
    return int(every)
