"""Shared test fixtures: where the real datasets live, and a deterministic torch setup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_SHARED = REPO.parent / "shared" / "data"

# The README test command runs from a clone beside ../shared: make that data home the default so
# tests see the real files without any setup. An explicit MULSUPCON_DATA always wins.
if "MULSUPCON_DATA" not in os.environ and _DEFAULT_SHARED.is_dir():
    os.environ["MULSUPCON_DATA"] = str(_DEFAULT_SHARED)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def shared_data_dir() -> Path | None:
    """The folder holding the real datasets (layout of ../shared/data), or None."""
    home = os.environ.get("MULSUPCON_DATA")
    if home and Path(home).is_dir():
        return Path(home)
    return None


@pytest.fixture
def shared_data() -> Path:
    """Path of the real-data folder; skips the test (saying why) when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("real datasets not found: set MULSUPCON_DATA to a folder laid out like ../shared/data")
    return d


def require_dataset_folder(name: str) -> Path:
    """Path of ``<data home>/<name>``; skips with a clear reason when it is absent."""
    d = shared_data_dir()
    if d is None or not (d / name).is_dir():
        pytest.skip(f"dataset folder '{name}' not found under MULSUPCON_DATA ({d}); it is needed for this test")
    return d / name


@pytest.fixture(autouse=True)
def _registry_restored():
    """Datasets a test registers (``hdf5:`` folders, custom image sets) are removed after it, so that the
    catalogue tests see the shipped registry whatever ran before them in the same process."""
    from mulsupcon.data.registry import REGISTRY, list_datasets

    list_datasets()  # the lazily added built-in variants belong to the snapshot
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)
