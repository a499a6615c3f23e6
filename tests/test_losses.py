"""Tests of mulsupcon.losses against independent oracles.

Oracles: explicit Python loops written straight from the paper's Eq. 4/5/6 and the ALL/ANY definitions
(float64 numpy), an independent SupCon implementation in the style of Khosla et al. for one-hot labels,
torch.autograd.gradcheck, the closed-form gradient of Eq. 7, and torch's BCE-with-logits for ASL.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mulsupcon.losses import AsymmetricLoss, MulSupConLoss

RULES = ("mulsupcon", "all", "any")


# ------------------------------------------------------------------------------------------------------------
# naive oracles
# ------------------------------------------------------------------------------------------------------------


def naive_loss(q, y, k, yk, tau: float, rule: str, weighting: str = "label", normalize: bool = True) -> float:
    """Loop implementation of the documented loss (float64). k/yk None means in-batch mode (self excluded)."""
    q = np.asarray(q, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    in_batch = k is None
    k = q.copy() if in_batch else np.asarray(k, dtype=np.float64)
    yk = y.copy() if in_batch else np.asarray(yk, dtype=np.float64)
    if normalize:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        k = k / np.linalg.norm(k, axis=1, keepdims=True)
    b, c = y.shape
    total, n_terms = 0.0, 0
    anchor_losses = []
    for i in range(b):
        refs = [a for a in range(k.shape[0]) if not (in_batch and a == i)]
        if not refs:
            continue
        scores = {a: float(q[i] @ k[a]) / tau for a in refs}
        top = max(scores.values())
        log_den = top + math.log(sum(math.exp(v - top) for v in scores.values()))
        log_p = {a: scores[a] - log_den for a in refs}
        labels_i = [j for j in range(c) if y[i, j] == 1]
        if rule == "mulsupcon":
            anchor_sum, anchor_cnt = 0.0, 0
            for j in labels_i:
                pos = [a for a in refs if yk[a, j] == 1]
                if not pos:
                    continue  # empty P_j: not counted anywhere
                term = -sum(log_p[a] for a in pos) / len(pos)
                anchor_sum += term
                anchor_cnt += 1
            total += anchor_sum
            n_terms += anchor_cnt
            if anchor_cnt:
                anchor_losses.append(anchor_sum / anchor_cnt)
        else:
            if not labels_i:
                continue
            set_i = set(labels_i)
            pos = []
            for a in refs:
                set_a = {j for j in range(c) if yk[a, j] == 1}
                if (rule == "all" and set_a == set_i) or (rule == "any" and set_a & set_i):
                    pos.append(a)
            if pos:
                anchor_losses.append(-sum(log_p[a] for a in pos) / len(pos))
    if rule == "mulsupcon" and weighting == "label":
        return total / n_terms if n_terms else 0.0
    return float(np.mean(anchor_losses)) if anchor_losses else 0.0


def supcon_khosla(features: torch.Tensor, classes: torch.Tensor, keys=None, key_classes=None, tau=0.1):
    """Independent SupCon (Khosla et al. 2020, 'L_out') for single-label data, written with integer classes."""
    f = F.normalize(features, dim=1)
    if keys is None:
        kf, kc = f, classes
        self_mask = torch.eye(f.shape[0], dtype=torch.bool)
    else:
        kf, kc = F.normalize(keys, dim=1), key_classes
        self_mask = torch.zeros(f.shape[0], kf.shape[0], dtype=torch.bool)
    logits = f @ kf.T / tau
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    exp = torch.exp(logits) * (~self_mask)
    log_prob = logits - torch.log(exp.sum(1, keepdim=True))
    pos = (classes[:, None] == kc[None, :]) & ~self_mask
    n = pos.sum(1)
    keep = n > 0
    mean_pos = (log_prob * pos).sum(1)[keep] / n[keep]
    return -mean_pos.mean()


def random_case(seed: int, with_keys: bool):
    """A random small problem with awkward features: empty label rows, labels absent from the references,
    sometimes single-label (one-hot) data, sometimes no references at all."""
    g = np.random.default_rng(seed)
    b = int(g.integers(1, 11))
    c = int(g.integers(1, 7))
    d = int(g.integers(2, 7))
    kk = int(g.integers(0, 25)) if with_keys else 0
    density = float(g.uniform(0.05, 0.7))
    one_hot = g.random() < 0.25

    def labels(n):
        if one_hot:
            out = np.zeros((n, c))
            out[np.arange(n), g.integers(0, c, n)] = 1
            return out
        out = (g.random((n, c)) < density).astype(np.float64)
        return out

    y = labels(b)
    if b > 1 and g.random() < 0.5:
        y[g.integers(0, b)] = 0  # an anchor without labels
    q = g.normal(size=(b, d))
    if not with_keys:
        return q, y, None, None
    yk = labels(kk)
    if kk and g.random() < 0.6:
        yk[:, g.integers(0, c)] = 0  # a label absent from the references
    k = g.normal(size=(kk, d))
    return q, y, k, yk


def as_t(x, dtype=torch.float64):
    return None if x is None else torch.as_tensor(x, dtype=dtype)


# ------------------------------------------------------------------------------------------------------------
# agreement with the loop oracle
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("with_keys", [False, True])
def test_matches_naive_loops(seed: int, with_keys: bool) -> None:
    q, y, k, yk = random_case(seed, with_keys)
    tau = [0.07, 0.1, 0.5, 1.0][seed % 4]
    for rule, weighting in [("mulsupcon", "label"), ("mulsupcon", "sample"), ("all", "label"), ("any", "label")]:
        expected = naive_loss(q, y, k, yk, tau, rule, weighting)
        for chunk in (None, 3):
            fn = MulSupConLoss(temperature=tau, positives=rule, weighting=weighting, chunk_size=chunk)
            got = fn(as_t(q), as_t(y, torch.bool), as_t(k), as_t(yk, torch.int64))
            assert got.dtype == torch.float64
            assert math.isfinite(got.item())
            assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-10), (rule, weighting, chunk)


def test_eq5_and_eq6_differ_and_match_by_hand() -> None:
    """Hand-computed case: one anchor with labels {0, 1}, references with known scores."""
    tau = 1.0
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    yk = torch.tensor([[1, 0], [1, 1], [0, 0]])
    y = torch.tensor([[1, 1]])
    s = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    logp = s - torch.logsumexp(s, 0)
    l0 = -(logp[0] + logp[1]) / 2  # P_0 = {0, 1}
    l1 = -logp[1]  # P_1 = {1}
    label = MulSupConLoss(tau, weighting="label")(q, y, k, yk)
    sample = MulSupConLoss(tau, weighting="sample")(q, y, k, yk)
    # One anchor: Eq. 5 divides the sum by 2 pairs, Eq. 6 divides by |y| = 2 then averages one anchor.
    assert label.item() == pytest.approx(((l0 + l1) / 2).item(), rel=1e-12)
    assert sample.item() == pytest.approx(((l0 + l1) / 2).item(), rel=1e-12)
    # Two anchors with different label counts make Eq. 5 and Eq. 6 differ.
    q2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y2 = torch.tensor([[1, 1], [0, 1]])
    s2 = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    l2 = -(s2[1] - torch.logsumexp(s2, 0))
    got5 = MulSupConLoss(tau, weighting="label")(q2, y2, k, yk)
    got6 = MulSupConLoss(tau, weighting="sample")(q2, y2, k, yk)
    assert got5.item() == pytest.approx(((l0 + l1 + l2) / 3).item(), rel=1e-12)
    assert got6.item() == pytest.approx((((l0 + l1) / 2 + l2) / 2).item(), rel=1e-12)


# ------------------------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("chunk", [None, 2])
@pytest.mark.parametrize("with_keys", [False, True])
def test_gradcheck(rule: str, chunk, with_keys: bool) -> None:
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    q = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    fn = MulSupConLoss(0.5, positives=rule, chunk_size=chunk)
    if with_keys:
        yk = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]])
        k = torch.randn(7, 4, dtype=torch.float64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b: fn(a, y, b, yk), (q, k))
    else:
        assert torch.autograd.gradcheck(lambda a: fn(a, y), (q,))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("with_keys", [False, True])
def test_chunked_equals_direct_values_and_grads(rule: str, with_keys: bool) -> None:
    g = torch.Generator().manual_seed(11)
    b, kk, c, d = 33, 70, 9, 16
    y = torch.rand(b, c, generator=g) < 0.3
    q0 = torch.randn(b, d, generator=g)
    k0 = torch.randn(kk, d, generator=g)
    yk = torch.rand(kk, c, generator=g) < 0.3
    results = []
    for chunk in (None, 8, 13, 1000):
        q = q0.clone().requires_grad_()
        k = k0.clone().requires_grad_()
        fn = MulSupConLoss(0.1, positives=rule, chunk_size=chunk)
        loss = fn(q, y, k, yk) if with_keys else fn(q, y)
        loss.backward()
        results.append((loss.detach(), q.grad, k.grad if with_keys else None))
    ref = results[0]
    for val, gq, gk in results[1:]:
        torch.testing.assert_close(val, ref[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gq, ref[1], rtol=1e-4, atol=1e-6)
        if with_keys:
            torch.testing.assert_close(gk, ref[2], rtol=1e-4, atol=1e-6)


def pair_rows_loss(q, y, k, yk, tau: float) -> torch.Tensor:
    """MulSupCon (Eq. 4, Eq. 5) in plain autograd with one row per (anchor, label) pair: an independent
    differentiable reference. k/yk None means in-batch mode (the anchor's own entry is excluded)."""
    in_batch = k is None
    qn = F.normalize(q, dim=1)
    kn = qn if in_batch else F.normalize(k, dim=1)
    yk = y if in_batch else yk
    s = qn @ kn.T / tau
    if in_batch:
        s = s.masked_fill(torch.eye(len(q), dtype=torch.bool), float("-inf"))
    log_p = torch.log_softmax(s, dim=1)
    anchor, label = y.nonzero(as_tuple=True)
    mask = yk.T[label].to(q.dtype)  # (pairs, K)
    if in_batch:
        mask[torch.arange(len(anchor)), anchor] = 0.0
    n_pos = mask.sum(1)
    keep = n_pos > 0
    rows = torch.where(mask > 0, log_p[anchor], torch.zeros((), dtype=q.dtype))
    return -(rows.sum(1)[keep] / n_pos[keep]).sum() / keep.sum()


@pytest.mark.parametrize("b, d", [(3, 12), (12, 3)])  # positive part by per-reference weights / by class sums
@pytest.mark.parametrize("keys_grad", [False, True])
@pytest.mark.parametrize("with_keys", [False, True])
def test_both_positive_strategies_match_pair_rows(b: int, d: int, keys_grad: bool, with_keys: bool) -> None:
    """The loss picks per-reference weights (B <= D) or per-class sums (B > 2D) by cost; both must give the
    values and gradients of the pair-rows reference, also when backward runs twice on a retained graph."""
    g = torch.Generator().manual_seed(b * 100 + d)
    kk, c = 20, 5
    y = torch.rand(b, c, generator=g) < 0.5
    yk = torch.rand(kk, c, generator=g) < 0.5
    q = torch.randn(b, d, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(kk, d, dtype=torch.float64, generator=g, requires_grad=keys_grad)
    args = (q, y, k, yk) if with_keys else (q, y, None, None)
    ours = MulSupConLoss(0.2)(*args)
    ref = pair_rows_loss(*args, tau=0.2)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    inputs = [q, k] if with_keys and keys_grad else [q]
    grads_ref = torch.autograd.grad(ref, inputs)
    grads_1 = torch.autograd.grad(ours, inputs, retain_graph=True)
    grads_2 = torch.autograd.grad(ours, inputs)
    for r, g1, g2 in zip(grads_ref, grads_1, grads_2):
        torch.testing.assert_close(g1, r, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(g2, g1, rtol=0, atol=0)


def test_eq7_gradient_identity() -> None:
    """dL^(i)/dz_q^(i) = sum_j zbar_j + |y_i| zhat (paper Eq. 7), on already-normalised inputs."""
    g = torch.Generator().manual_seed(5)
    tau = 0.2
    b, kk, c, d = 6, 15, 4, 5
    y = (torch.rand(b, c, generator=g) < 0.5).double()
    y[:, 0] = 1  # every anchor has a label
    yk = (torch.rand(kk, c, generator=g) < 0.5).double()
    yk[0] = 1  # every label is present among the references
    z_q = F.normalize(torch.randn(b, d, dtype=torch.float64, generator=g), dim=1).requires_grad_()
    z_k = F.normalize(torch.randn(kk, d, dtype=torch.float64, generator=g), dim=1)
    loss = MulSupConLoss(tau, normalize=False)(z_q, y, z_k, yk)
    n_pairs = y.sum()
    (loss * n_pairs).backward()  # sum_i L^(i); only L^(i) depends on z_q^(i)
    soft = torch.softmax(z_q.detach() @ z_k.T / tau, dim=1)
    for i in range(b):
        z_hat = (soft[i, :, None] * z_k).sum(0) / tau
        expected = y[i].sum() * z_hat
        for j in range(c):
            if y[i, j]:
                members = yk[:, j] > 0
                expected = expected - z_k[members].mean(0) / tau  # zbar_j
        torch.testing.assert_close(z_q.grad[i], expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# reductions and invariances
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("with_keys", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_single_label_equals_supcon(rule: str, with_keys: bool, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b, kk, c, d = 12, 20, 4, 6
    classes = torch.randint(0, c, (b,), generator=g)
    q = torch.randn(b, d, dtype=torch.float64, generator=g)
    y = F.one_hot(classes, c)
    if with_keys:
        key_classes = torch.randint(0, c, (kk,), generator=g)
        k = torch.randn(kk, d, dtype=torch.float64, generator=g)
        expected = supcon_khosla(q, classes, k, key_classes, tau=0.1)
        got = MulSupConLoss(0.1, positives=rule)(q, y, k, F.one_hot(key_classes, c))
    else:
        expected = supcon_khosla(q, classes, tau=0.1)
        got = MulSupConLoss(0.1, positives=rule)(q, y)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("chunk", [None, 5])
def test_invariant_to_permuting_references(rule: str, chunk) -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(9, 8, dtype=torch.float64, generator=g)
    y = torch.rand(9, 5, generator=g) < 0.4
    k = torch.randn(23, 8, dtype=torch.float64, generator=g)
    yk = torch.rand(23, 5, generator=g) < 0.4
    perm = torch.randperm(23, generator=g)
    fn = MulSupConLoss(0.1, positives=rule, chunk_size=chunk)
    torch.testing.assert_close(fn(q, y, k[perm], yk[perm]), fn(q, y, k, yk), rtol=1e-12, atol=1e-12)
    # Permuting the anchors (with their labels) changes nothing either.
    pa = torch.randperm(9, generator=g)
    torch.testing.assert_close(fn(q[pa], y[pa], k, yk), fn(q, y, k, yk), rtol=1e-12, atol=1e-12)


def test_scale_invariance_of_normalised_inputs() -> None:
    """Embeddings are normalised inside: rescaling rows must not change the loss."""
    g = torch.Generator().manual_seed(4)
    q = torch.randn(7, 5, dtype=torch.float64, generator=g)
    y = torch.rand(7, 3, generator=g) < 0.5
    fn = MulSupConLoss(0.1)
    scale = torch.rand(7, 1, dtype=torch.float64, generator=g) * 10 + 0.1
    torch.testing.assert_close(fn(q * scale, y), fn(q, y), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# dtypes and numerical stability
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("tau", [0.1, 0.01])
@pytest.mark.parametrize("chunk", [None, 16])
def test_low_precision_inputs_are_stable(rule: str, tau: float, chunk) -> None:
    g = torch.Generator().manual_seed(8)
    q64 = torch.randn(32, 24, dtype=torch.float64, generator=g)
    k64 = torch.randn(80, 24, dtype=torch.float64, generator=g)
    k64[:32] = q64 + 0.01 * torch.randn(32, 24, dtype=torch.float64, generator=g)  # near-duplicates: large scores
    y = torch.rand(32, 6, generator=g) < 0.3
    yk = torch.rand(80, 6, generator=g) < 0.3
    yk[:32] = y
    fn = MulSupConLoss(tau, positives=rule, chunk_size=chunk)
    ref = fn(q64, y, k64, yk)
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
        q = q64.to(dtype).requires_grad_()
        k = k64.to(dtype).requires_grad_()
        loss = fn(q, y, k, yk)
        assert loss.dtype == torch.float32
        loss.backward()
        assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
        # Same (quantised) inputs in float64: only the arithmetic differs.
        same_inputs = fn(q.detach().double(), y, k.detach().double(), yk)
        assert loss.item() == pytest.approx(same_inputs.item(), rel=1e-4, abs=1e-4)
        # Against the unquantised float64 value: loose for bf16 (3 significant digits in the inputs).
        assert loss.item() == pytest.approx(ref.item(), rel=tol, abs=tol)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("chunk", [None, 2])
def test_anchors_without_labels_or_positives_are_finite(rule: str, chunk) -> None:
    q = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    k = torch.randn(5, 3, requires_grad=True)
    yk = torch.tensor([[1, 0], [1, 0], [0, 0], [1, 0], [0, 0]])  # label 1 absent from the references
    loss = MulSupConLoss(0.05, positives=rule, chunk_size=chunk)(q, y, k, yk)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
    assert q.grad[0].abs().sum() == 0  # the unlabelled anchor contributes nothing


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("chunk", [None, 2])
def test_nothing_contributes_gives_connected_zero(rule: str, chunk) -> None:
    fn = MulSupConLoss(0.1, positives=rule, chunk_size=chunk)
    cases = [
        (torch.randn(3, 4), torch.zeros(3, 2), torch.randn(5, 4), torch.ones(5, 2)),  # no anchor labels
        (torch.randn(3, 4), torch.ones(3, 2), torch.randn(5, 4), torch.zeros(5, 2)),  # no positives
        (torch.randn(3, 4), torch.ones(3, 2), torch.randn(0, 4), torch.zeros(0, 2)),  # empty queue
        (torch.randn(1, 4), torch.ones(1, 2), None, None),  # a single anchor in-batch
        (torch.randn(3, 4), torch.eye(3), None, None),  # in-batch, every class unique
    ]
    for q, y, k, yk in cases:
        q.requires_grad_()
        if k is not None:
            k.requires_grad_()
        loss = fn(q, y, k, yk)
        assert loss.item() == 0.0
        loss.backward()
        assert q.grad is not None and (q.grad == 0).all()
        if k is not None:
            assert k.grad is not None and (k.grad == 0).all()


# ------------------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------------------


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="temperature"):
        MulSupConLoss(temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        MulSupConLoss(temperature=-0.1)
    with pytest.raises(ValueError, match="temperature"):
        MulSupConLoss(temperature=float("nan"))
    with pytest.raises(ValueError, match="positives must be one of"):
        MulSupConLoss(positives="some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weighting must be one of"):
        MulSupConLoss(weighting="anchor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        MulSupConLoss(chunk_size=0)


def test_forward_errors() -> None:
    fn = MulSupConLoss()
    q, y = torch.randn(4, 3), torch.ones(4, 2)
    k, yk = torch.randn(6, 3), torch.ones(6, 2)
    with pytest.raises(ValueError, match=r"labels has 3 rows but query has 4"):
        fn(q, y[:3])
    with pytest.raises(ValueError, match=r"keys have dimension 5 but query has 3"):
        fn(q, y, torch.randn(6, 5), yk)
    with pytest.raises(ValueError, match=r"key_labels has 5 rows but keys has 6"):
        fn(q, y, k, yk[:5])
    with pytest.raises(ValueError, match=r"key_labels has 3 classes but labels has 2"):
        fn(q, y, k, torch.ones(6, 3))
    with pytest.raises(ValueError, match=r"keys was given without key_labels"):
        fn(q, y, k)
    with pytest.raises(ValueError, match=r"key_labels was given without keys"):
        fn(q, y, None, yk)
    bad = y.clone()
    bad[2, 1] = 0.5
    with pytest.raises(ValueError, match=r"labels must be multi-hot.*0\.5 at row 2, column 1"):
        fn(q, bad)
    with pytest.raises(ValueError, match=r"key_labels must be multi-hot.*2 at row 0, column 0"):
        fn(q, y, k, torch.full((6, 2), 2))
    bad_u8 = torch.zeros(6, 2, dtype=torch.uint8)
    bad_u8[4, 1] = 255  # the queue's dtype has its own fast check
    with pytest.raises(ValueError, match=r"key_labels must be multi-hot.*255 at row 4, column 1"):
        fn(q, y, k, bad_u8)
    nan_q = q.clone()
    nan_q[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"query contains a non-finite value \(nan\) at row 1, column 2"):
        fn(nan_q, y)
    with warnings.catch_warnings():  # an embedding that needs a gradient is named without torch's warning
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"query contains a non-finite value \(nan\) at row 1, column 2"):
            fn(nan_q.requires_grad_(), y)
    inf_k = k.clone()
    inf_k[5, 0] = float("inf")
    with pytest.raises(ValueError, match=r"keys contains a non-finite value \(inf\) at row 5, column 0"):
        fn(q, y, inf_k, yk)
    # A NaN in the row of an anchor that does not count (no labels) must still be reported.
    for rule in RULES:
        for chunk in (None, 2):
            nan_unlabelled = q.clone()
            nan_unlabelled[0, 0] = float("nan")
            y0 = y.clone()
            y0[0] = 0
            with pytest.raises(ValueError, match=r"query contains a non-finite value \(nan\) at row 0, column 0"):
                MulSupConLoss(positives=rule, chunk_size=chunk)(nan_unlabelled, y0, k, yk)
            with pytest.raises(ValueError, match=r"keys contains a non-finite value \(-inf\) at row 3, column 1"):
                bad_k = k.clone()
                bad_k[3, 1] = float("-inf")
                MulSupConLoss(positives=rule, chunk_size=chunk, normalize=False)(q, y, bad_k, torch.zeros(6, 2))
    with pytest.raises(ValueError, match=r"query must be 2-D"):
        fn(torch.randn(4), y)
    with pytest.raises(ValueError, match=r"query must be a floating-point tensor"):
        fn(torch.ones(4, 3, dtype=torch.int64), y)


# ------------------------------------------------------------------------------------------------------------
# asymmetric loss
# ------------------------------------------------------------------------------------------------------------


def naive_asl(x, t, gamma_neg, gamma_pos, clip, eps):
    """ASL written from the paper's formula in float64 (probabilities, then clamped logs)."""
    p = torch.sigmoid(x.double())
    p_m = (p - clip).clamp_min(0) if clip > 0 else p
    lp = torch.log(p.clamp_min(eps)) * (1 - p) ** gamma_pos
    ln = torch.log((1 - p_m).clamp_min(eps)) * p_m**gamma_neg
    return -(t * lp + (1 - t) * ln)


def test_asl_reduces_to_bce() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 7, generator=g, dtype=torch.float64) * 4
    t = (torch.rand(10, 7, generator=g) < 0.3).double()
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    plain = dict(gamma_neg=0, gamma_pos=0, clip=0, eps=0)
    torch.testing.assert_close(AsymmetricLoss(**plain, reduction="none")(x, t), bce)
    torch.testing.assert_close(AsymmetricLoss(**plain)(x, t), bce.sum(1).mean())
    torch.testing.assert_close(AsymmetricLoss(**plain, reduction="sum")(x, t), bce.sum())


@pytest.mark.parametrize("params", [(4, 0, 0.05), (4, 1, 0.05), (2, 1, 0.0), (1, 0, 0.2)])
def test_asl_matches_formula(params) -> None:
    gamma_neg, gamma_pos, clip = params
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(8, 5, generator=g) < 0.4).double()
    fn = AsymmetricLoss(gamma_neg, gamma_pos, clip, eps=1e-8, reduction="none")
    torch.testing.assert_close(fn(x, t), naive_asl(x, t, gamma_neg, gamma_pos, clip, 1e-8))
    xg = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: AsymmetricLoss(gamma_neg, gamma_pos, clip)(a, t), (xg,))


def test_asl_extreme_logits_finite() -> None:
    x = torch.tensor([[-200.0, 200.0, 0.0], [60.0, -60.0, 1e4]], requires_grad=True)
    t = torch.tensor([[1, 0, 1], [1, 1, 0]])
    loss = AsymmetricLoss()(x, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    terms = AsymmetricLoss(reduction="none")(x.detach(), t)
    # eps floors the log: the hopeless positive at x = -200 costs -log(1e-8), not 200.
    assert terms[0, 0].item() == pytest.approx(-math.log(1e-8), rel=1e-6)
    # A negative at x = 1e4 has p_m = 0.95 and log(1 - p_m) = log(0.05): the clip bounds it.
    assert terms[1, 2].item() == pytest.approx(-(0.95**4) * math.log(0.05), rel=1e-5)


def test_asl_errors() -> None:
    with pytest.raises(ValueError, match="gamma_neg"):
        AsymmetricLoss(gamma_neg=-1)
    with pytest.raises(ValueError, match="clip"):
        AsymmetricLoss(clip=1.0)
    with pytest.raises(ValueError, match="reduction"):
        AsymmetricLoss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"targets shape \(2, 3\) does not match logits shape \(2, 4\)"):
        AsymmetricLoss()(torch.randn(2, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"targets must be multi-hot"):
        AsymmetricLoss()(torch.randn(2, 4), torch.full((2, 4), 0.3))


def test_l2_normalize_matches_f_normalize_values_and_gradients() -> None:
    """The fused normalisation equals F.normalize, also for a zero row and a row below eps."""
    from mulsupcon.ops import l2_normalize

    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, dtype=torch.float64, generator=g)
    x[1] = 0.0
    x[2] = 1e-14  # norm below the 1e-12 clamp
    x[3] *= 1e6
    up = torch.randn(6, 5, dtype=torch.float64, generator=g)
    results = []
    for fn in (lambda t: F.normalize(t, dim=1), l2_normalize):
        xi = x.clone().requires_grad_()
        out = fn(xi)
        out.backward(up)
        results.append((out.detach(), xi.grad))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-10, atol=0)
    assert torch.autograd.gradcheck(l2_normalize, (torch.randn(4, 3, dtype=torch.float64, requires_grad=True),))


def test_validate_false_skips_value_checks_but_not_shapes() -> None:
    """What the training loop uses (the guard watches the loss): no value read back, shapes still checked."""
    fn = MulSupConLoss(validate=False)
    q, y = torch.randn(4, 3), torch.ones(4, 2)
    nan_q = q.clone()
    nan_q[1, 2] = float("nan")
    assert torch.isnan(fn(nan_q, y))  # returned, not raised
    assert torch.equal(fn(q, y), MulSupConLoss()(q, y))
    with pytest.raises(ValueError, match="labels has 3 rows but query has 4"):
        fn(q, y[:3])


# ------------------------------------------------------------------------------------------------------------
# the instance term (pretrain.instance_weight)
# ------------------------------------------------------------------------------------------------------------


def test_instance_term_matches_a_loop_and_its_gradient_checks() -> None:
    """Positives of query i: the references of its instance (its own key and its duplicates' keys)."""
    from mulsupcon.losses import InstanceContrastLoss

    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(11, 4, generator=g, dtype=torch.float64), dim=1)
    qg = torch.tensor([0, 1, 2, 1, 3])  # queries 1 and 3: identical rows
    kg = torch.tensor([0, 1, 2, 1, 3, 7, 1, 0, 9, 9, 8])  # this step's keys, then a queue holding 0 and 1 again
    tau = 0.2
    want = 0.0
    for i in range(5):
        s = [float(q[i] @ k[a]) / tau for a in range(11)]
        lse = math.log(sum(math.exp(v) for v in s))
        pos = [a for a in range(11) if kg[a] == qg[i]]
        want += sum(-(s[a] - lse) for a in pos) / len(pos)
    loss_fn = InstanceContrastLoss(tau)
    assert float(loss_fn(q, k, qg, kg)) == pytest.approx(want / 5, rel=1e-12)
    # every row its own instance: MoCo's InfoNCE, cross-entropy at the own key
    own = torch.arange(5)
    plain = F.cross_entropy(q @ k[:5].T / tau, own)
    assert float(loss_fn(q, k[:5], own, own)) == pytest.approx(float(plain), rel=1e-12)
    a, b = q.clone().requires_grad_(), k.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: loss_fn(x, y, qg, kg), (a, b))
    with pytest.raises(ValueError, match="expected query"):
        loss_fn(q, k[:, :3], qg, kg)
    with pytest.raises(ValueError, match="groups"):
        loss_fn(q, k, qg[:4], kg)

