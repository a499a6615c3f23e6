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
