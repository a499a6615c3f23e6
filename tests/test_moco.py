"""MoCo module and label queue: FIFO semantics, momentum update, references fed to the loss."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mulsupcon.moco import LabelQueue, MoCo


class NaiveFifo:
    """Oracle: a Python list, oldest first, capped at ``size``."""

    def __init__(self, size: int):
        self.size = size
        self.items: list[tuple[torch.Tensor, torch.Tensor]] = []

    def push(self, keys, labels):
        for k, y in zip(keys, labels):
            self.items.append((k.clone(), y.clone()))
        self.items = self.items[-self.size :] if self.size else []


@pytest.mark.parametrize("size", [0, 1, 5, 16])
def test_queue_matches_naive_fifo_for_any_batch_size(size):
    g = torch.Generator().manual_seed(size)
    q, oracle = LabelQueue(size, 3, 4), NaiveFifo(size)
    for step in range(25):
        n = int(torch.randint(1, 2 * size + 3, (1,), generator=g))
        keys = torch.randn(n, 3, generator=g)
        labels = (torch.rand(n, 4, generator=g) < 0.5).to(torch.uint8)
        q.enqueue(keys, labels)
        oracle.push(keys, labels)
        k, y = q.contents()
        assert k.shape[0] == len(oracle.items) == int(q.filled)
        if oracle.items:
            assert torch.equal(k, torch.stack([a for a, _ in oracle.items]))
            assert torch.equal(y, torch.stack([b for _, b in oracle.items]))
        # stored() holds the same rows, in storage order
        sk, sy = q.stored()
        assert sorted(map(tuple, sk.tolist())) == sorted(map(tuple, k.tolist()))


def test_queue_is_saved_and_restored_with_state_dict():
    q = LabelQueue(6, 2, 3)
    q.enqueue(torch.randn(4, 2), torch.ones(4, 3, dtype=torch.uint8))
    q.enqueue(torch.randn(5, 2), torch.zeros(5, 3, dtype=torch.uint8))
    r = LabelQueue(6, 2, 3)
    r.load_state_dict(copy.deepcopy(q.state_dict()))
    for a, b in zip(q.contents(), r.contents()):
        assert torch.equal(a, b)
    assert int(r.ptr) == int(q.ptr) == 3 and int(r.filled) == 6


def test_queue_rejects_wrong_shapes():
    q = LabelQueue(4, 2, 3)
    with pytest.raises(ValueError, match="keys"):
        q.enqueue(torch.randn(2, 5), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="label rows"):
        q.enqueue(torch.randn(2, 2), torch.zeros(3, 3))


def _moco(queue=8, momentum=0.9, partial=True):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4))
    return MoCo(enc, n_labels=3, embed_dim=4, queue_size=queue, momentum=momentum, use_partial_queue=partial)


def test_momentum_update_is_exponential_moving_average():
    m = _moco(momentum=0.75)
    with torch.no_grad():
        for p in m.query_encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in m.key_encoder.parameters()]
    m.momentum_update()
    for k_old, k_new, q in zip(before, m.key_encoder.parameters(), m.query_encoder.parameters()):
        torch.testing.assert_close(k_new, 0.75 * k_old + 0.25 * q)


def test_references_are_batch_keys_then_queue_and_queue_gets_keys_and_labels():
    m = _moco(queue=8)
    seen = []

    def spy(q, y, k, yk):
        seen.append((q.detach().clone(), y.clone(), k.clone(), yk.clone()))
        return (q * 0).sum() + q.sum() * 0

    x1, x2 = torch.randn(3, 5), torch.randn(3, 5)
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.uint8)
    m(x1, x2, y, spy)
    q, yy, k, yk = seen[-1]
    assert k.shape == (3, 4) and torch.equal(yk, y)  # empty queue: only the batch keys
    expected_k = nn.functional.normalize(m.key_encoder(x2), dim=1)
    torch.testing.assert_close(k, expected_k)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(3))
    m(x1, x2, y, spy)
    _, _, k2, yk2 = seen[-1]
    assert k2.shape == (6, 4) and torch.equal(yk2[3:], y)  # batch keys then the queued ones
    torch.testing.assert_close(k2[3:], k)
    assert int(m.queue.filled) == 6


def test_queue_ignored_until_full_when_partial_use_is_off():
    m = _moco(queue=6, partial=False)
    sizes = []
    spy = lambda q, y, k, yk: (sizes.append(k.shape[0]), q.sum() * 0)[1]  # noqa: E731
    y = torch.ones(4, 3, dtype=torch.uint8)
    for _ in range(3):
        m(torch.randn(4, 5), torch.randn(4, 5), y, spy)
    assert sizes == [4, 4, 10]  # queue holds 4 then 6 (full) -> used from the third step


def test_key_encoder_gets_no_gradient_and_query_does():
    from mulsupcon.losses import MulSupConLoss

    m = _moco()
    y = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.uint8)
    loss = m(torch.randn(4, 5), torch.randn(4, 5), y, MulSupConLoss(0.1))
    loss.backward()
    assert all(p.grad is None for p in m.key_encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.query_encoder.parameters())
    assert torch.isfinite(loss)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_flat_parameters_train_exactly_like_separate_ones(optimizer):
    """flatten_parameters only changes storage: 6 MoCo steps (Adam or SGD with weight decay, the one-lerp
    momentum update, BatchNorm) give bitwise the same weights and gradients as separate tensors."""
    import copy

    from mulsupcon.losses import MulSupConLoss
    from mulsupcon.train.common import make_optimizer

    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    models = [MoCo(copy.deepcopy(enc), n_labels=3, embed_dim=4, queue_size=8, momentum=0.9) for _ in range(2)]
    section = {"optimizer": optimizer, "lr": 0.05, "weight_decay": 1e-2}
    q_flat, k_flat = models[1].flatten_parameters()
    assert q_flat.numel() == k_flat.numel() == sum(p.numel() for p in enc.parameters())
    opts = [make_optimizer([{"params": list(m.query_encoder.parameters())}], section) for m in models]
    loss_fn = MulSupConLoss(0.5)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x1, x2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
        y = torch.rand(6, 3, generator=g) < 0.5
        for model, opt in zip(models, opts):
            opt.zero_grad()
            model(x1, x2, y, loss_fn).backward()
            opt.step()
        for a, b in zip(models[0].query_encoder.parameters(), models[1].query_encoder.parameters()):
            assert torch.equal(a.grad, b.grad)
    a, b = models[0].state_dict(), models[1].state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(a["key_encoder.0.weight"], enc[0].weight)  # the momentum update did move the keys
    # The layers' parameters really live in the flat buffers (so the one lerp updates them).
    assert next(models[1].query_encoder.parameters()).data_ptr() == q_flat.data_ptr()
    assert next(models[1].key_encoder.parameters()).data_ptr() == k_flat.data_ptr()
