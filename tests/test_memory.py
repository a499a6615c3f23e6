"""MultiLabelMemory against references built by hand, its state_dict, and its use in a training loop."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mulsupcon.losses import MulSupConLoss
from mulsupcon.memory import MultiLabelMemory


def oracle(q, y, refs, ref_labels, tau, exclude_self) -> float:
    """Eq. 4/5 by loops (float64): anchor i against refs (its own row i excluded when exclude_self)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    refs = refs / np.linalg.norm(refs, axis=1, keepdims=True)
    total, pairs = 0.0, 0
    for i in range(len(q)):
        idx = [a for a in range(len(refs)) if not (exclude_self and a == i)]
        s = {a: float(q[i] @ refs[a]) / tau for a in idx}
        top = max(s.values())
        lse = top + math.log(sum(math.exp(v - top) for v in s.values()))
        for j in np.flatnonzero(y[i]):
            pos = [a for a in idx if ref_labels[a, j]]
            if pos:
                total += -sum(s[a] - lse for a in pos) / len(pos)
                pairs += 1
    return total / pairs if pairs else 0.0


@pytest.mark.parametrize("exclude_self", [True, False])
def test_loss_equals_hand_built_references_and_memory_fills_fifo(exclude_self):
    g = torch.Generator().manual_seed(0)
    mem = MultiLabelMemory(MulSupConLoss(temperature=0.3), embedding_size=5, n_labels=4, memory_size=10,
                           exclude_self=exclude_self)
    past_e, past_y = np.zeros((0, 5)), np.zeros((0, 4), dtype=np.uint8)
    for step in range(4):
        e = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
        y = (torch.rand(6, 4, generator=g) < 0.4).to(torch.uint8)
        stored, stored_labels = (t.numpy().astype(np.float64) for t in mem.memory.contents())  # float32 rows
        loss = mem(e, y)
        refs = np.concatenate([e.detach().numpy(), stored])
        ref_labels = np.concatenate([y.numpy(), stored_labels])
        assert float(loss.detach()) == pytest.approx(oracle(e.detach().numpy(), y.numpy(), refs, ref_labels, 0.3, exclude_self),
                                            rel=1e-9, abs=1e-12), step
        loss.backward()
        assert e.grad is not None and torch.isfinite(e.grad).all()
        unit = e.detach().numpy() / np.linalg.norm(e.detach().numpy(), axis=1, keepdims=True)
        past_e, past_y = np.concatenate([past_e, unit])[-10:], np.concatenate([past_y, y.numpy()])[-10:]
        keys, labels = mem.memory.contents()
        np.testing.assert_allclose(keys.numpy(), past_e, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(labels.numpy(), past_y)


def test_with_one_hot_labels_and_empty_memory_it_is_supcon_in_batch():
    e = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), 3)
    fn = MulSupConLoss(0.1)
    torch.testing.assert_close(MultiLabelMemory(fn, 3, 3, 16)(e, y), fn(e, y))  # in-batch mode excludes self too


def test_memory_lives_in_state_dict_and_shapes_are_checked():
    mem = MultiLabelMemory(MulSupConLoss(0.1), 4, 2, 8)
    mem(torch.randn(5, 4), torch.ones(5, 2))
    other = MultiLabelMemory(MulSupConLoss(0.1), 4, 2, 8)
    other.load_state_dict(copy.deepcopy(mem.state_dict()))
    for a, b in zip(mem.memory.contents(), other.memory.contents()):
        assert torch.equal(a, b)
    assert set(mem.state_dict()) == {"memory.keys", "memory.labels", "memory.ptr", "memory.filled"}
    with pytest.raises(ValueError, match=r"embeddings must be \(B, 4\)"):
        mem(torch.randn(5, 3), torch.ones(5, 2))
    with pytest.raises(ValueError, match=r"labels must be \(5, 2\)"):
        mem(torch.randn(5, 4), torch.ones(5, 3))
    with pytest.raises(ValueError, match="exclude_self=True needs keys"):
        MulSupConLoss(0.1)(torch.randn(5, 4), torch.ones(5, 2), torch.randn(3, 4), torch.ones(3, 2), exclude_self=True)
