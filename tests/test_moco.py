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
    # The host pointers came back too (nested in a parent module as well): the next push lands where q's does.
    parent = torch.nn.Module()
    parent.queue = LabelQueue(6, 2, 3)
    parent.load_state_dict({f"queue.{k}": v for k, v in q.state_dict().items()})
    for restored in (r, parent.queue):
        assert restored.n_filled == 6 and restored.is_full
        new = torch.randn(2, 2)
        restored.enqueue(new, torch.ones(2, 3, dtype=torch.uint8))
        assert torch.equal(restored.keys[3:5], new) and int(restored.ptr) == 5


def test_queue_rejects_wrong_shapes():
    q = LabelQueue(4, 2, 3)
    with pytest.raises(ValueError, match="keys"):
        q.enqueue(torch.randn(2, 5), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="label rows"):
        q.enqueue(torch.randn(2, 2), torch.zeros(3, 3))


def _moco(queue=8, momentum=0.9, partial=True):
    torch.manual_seed(0)
    enc, head = nn.Sequential(nn.Linear(5, 7), nn.ReLU()), nn.Linear(7, 4)
    return MoCo(enc, head, LabelQueue(queue, 4, 3), momentum, use_partial_queue=partial)


def test_momentum_update_is_exponential_moving_average():
    m = _moco(momentum=0.75)
    with torch.no_grad():
        for p in m.query_encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in m.key_encoder.parameters()]
    m.momentum_update()
    for k_old, k_new, q in zip(before, m.key_encoder.parameters(), m.query_encoder.parameters()):
        torch.testing.assert_close(k_new, 0.75 * k_old + 0.25 * q)


def test_references_are_batch_keys_then_queue_and_enqueue_is_explicit():
    m = _moco(queue=8)
    x1, x2 = torch.randn(3, 5), torch.randn(3, 5)
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.uint8)
    q, k, yk = m(x1, x2, y)
    assert k.shape == (3, 4) and torch.equal(yk, y)  # empty queue: only the batch keys
    expected_k = nn.functional.normalize(m.key_encoder(x2), dim=1)
    torch.testing.assert_close(k, expected_k)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(3))
    assert q.requires_grad and not k.requires_grad
    assert int(m.queue.filled) == 0  # forward alone leaves the queue as it was
    m.enqueue(k, yk)
    _, k2, yk2 = m(x1, x2, y)
    assert k2.shape == (6, 4) and torch.equal(yk2[3:], y)  # batch keys then the queued ones
    torch.testing.assert_close(k2[3:], k)
    m.enqueue(k2[:3], yk2[:3])
    assert int(m.queue.filled) == 6


def test_enqueue_without_arguments_pushes_the_last_forwards_keys_once():
    m = _moco(queue=8)
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="no forward yet, or they were pushed already"):
        m.enqueue()
    _, refs, ref_labels = m(torch.randn(3, 5), torch.randn(3, 5), y)
    m.enqueue()
    assert int(m.queue.filled) == 3
    torch.testing.assert_close(m.queue.keys[:3], refs[:3])
    assert torch.equal(m.queue.labels[:3], ref_labels[:3])
    with pytest.raises(RuntimeError, match="pushed already"):
        m.enqueue()  # a second push of the same keys would duplicate them in the queue
    _, refs, _ = m(torch.randn(3, 5), torch.randn(3, 5), y)
    assert refs.shape[0] == 6  # this step's 3 keys, then the 3 queued
    with pytest.raises(ValueError, match="together, or neither"):
        m.enqueue(refs[:3])
    m.enqueue(refs[:3], torch.zeros(3, 3, dtype=torch.uint8))  # rows of one's choice
    assert int(m.queue.filled) == 6 and not m.queue.labels[3:6].any()
    with pytest.raises(RuntimeError):
        m.enqueue()  # an explicit push uses up the step as well


def test_queue_ignored_until_full_when_partial_use_is_off():
    m = _moco(queue=6, partial=False)
    sizes = []
    y = torch.ones(4, 3, dtype=torch.uint8)
    for _ in range(3):
        _, refs, ref_labels = m(torch.randn(4, 5), torch.randn(4, 5), y)
        sizes.append(refs.shape[0])
        m.enqueue(refs[:4], ref_labels[:4])
    assert sizes == [4, 4, 10]  # queue holds 4 then 6 (full) -> used from the third step


def test_key_encoder_gets_no_gradient_and_query_does():
    from mulsupcon.losses import MulSupConLoss

    m = _moco()
    y = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.uint8)
    q, refs, ref_labels = m(torch.randn(4, 5), torch.randn(4, 5), y)
    loss = MulSupConLoss(0.1, normalize=False)(q, y, refs, ref_labels)
    loss.backward()
    assert all(p.grad is None for p in m.key_encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.query_encoder.parameters())
    assert torch.isfinite(loss)


def test_moco_state_dict_keeps_the_checkpoint_layout():
    """Checkpoints name query/key encoders as Sequential(backbone, head) and the queue's buffers."""
    m = _moco()
    keys = set(m.state_dict())
    assert {"query_encoder.0.0.weight", "query_encoder.1.weight", "key_encoder.1.bias", "queue.keys",
            "queue.labels", "queue.ptr", "queue.filled"} <= keys
    assert m.backbone is m.query_encoder[0]


def test_moco_names_labels_or_a_head_that_do_not_fit_its_queue():
    """Both failed inside torch.cat ('Sizes of tensors must match except in dimension 0')."""
    moco, x = _moco(), torch.randn(6, 5)
    with pytest.raises(ValueError, match=r"labels must be \(B, 3\) as the queue keeps 3 labels, got \(6, 2\)"):
        moco(x, x, torch.zeros(6, 2))
    with pytest.raises(ValueError, match=r"labels must be \(B, 3\).*got \(6,\)"):
        moco(x, x, torch.zeros(6))
    enc, head = nn.Sequential(nn.Linear(5, 7), nn.ReLU()), nn.Linear(7, 4)
    wide = MoCo(enc, head, LabelQueue(8, 9, 3))
    with pytest.raises(ValueError, match=r"embeddings of shape \(6, 4\), but the queue keeps keys of dimension 9"):
        wide(x, x, torch.zeros(6, 3))
    query, refs, ref_labels = moco(x, x, torch.zeros(6, 3))  # and the right shapes still pass
    assert query.shape == (6, 4) and refs.shape == (6, 4) and ref_labels.shape == (6, 3)
