"""The README's code examples run as printed."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_moco_in_your_own_loop_runs_and_fills_the_queue():
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        x = torch.randn(32, 103, generator=g)
        batches.append((x + 0.1 * torch.randn(32, 103, generator=g), x, (torch.rand(32, 14, generator=g) < 0.3).to(torch.uint8)))
    scope = {"batches": batches}
    exec(compile(_block_after("## MoCo in your own loop"), "README.md", "exec"), scope)
    moco, loss = scope["moco"], scope["loss"]
    assert int(moco.queue.filled) == 96 and torch.isfinite(loss)
    assert torch.equal(moco.queue.labels[:32], batches[0][2])  # the first batch's labels went in first


def test_the_loss_with_a_memory_in_your_own_loop_runs():
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 103, generator=g), (torch.rand(16, 14, generator=g) < 0.3).to(torch.uint8))
               for _ in range(3)]
    scope = {"batches": batches}
    exec(compile(_block_after("## The loss in your own loop"), "README.md", "exec"), scope)
    assert int(scope["memory"].memory.filled) == 48 and torch.isfinite(scope["loss"])


def test_your_own_data_from_python_runs(tmp_path, monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] + X[:, 3] > 0], 1).astype(np.uint8)
    monkeypatch.chdir(tmp_path)
    text = README.read_text(encoding="utf-8")
    start = text.index("From Python, arrays or a file are a dataset")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    scope = {"X": X, "Y": Y, "X_new": X[:7], "print": lambda *a, **k: None}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["proba"].shape == (7, 3) and set(np.unique(scope["labels"])) <= {0, 1}
    assert scope["emb"].shape == (7, 256) and (tmp_path / "runs" / "arr-ft" / "model.pt").is_file()
