"""FastDropout (the CPU dropout of the training loops): distribution, gradients, generators."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from mulsupcon.train.common import FastDropout, set_dropout_generator, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_keep_rate_and_scale_match_nn_dropout(p: float) -> None:
    """Kept fraction within 5 standard errors of 1 - p (over 4M draws); kept values scaled so E[out] = x."""
    torch.manual_seed(0)
    x = torch.ones(2048, 2048)
    out = FastDropout(p).train()(x)
    kept = out != 0
    n = x.numel()
    se = (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * se
    q = 1 - round(p * 65536) / 65536  # the exact keep probability (p on a 2^-16 grid)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / q))
    assert abs(out.mean().item() - 1.0) < 5 * se / (1 - p)
    # Every bit of the random words is used: masks in neighbouring 16-bit lanes are independent.
    lanes = kept.view(-1, 4).float()
    corr = torch.corrcoef(lanes.T)
    assert (corr - torch.eye(4)).abs().max() < 0.01


def _splitmix64_numpy(seed: int, n: int) -> np.ndarray:
    """Reference SplitMix64 in numpy uint64 (wrapping arithmetic): outputs 1..n after ``seed``."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_splitmix64_matches_the_reference_outputs() -> None:
    """Outputs of the reference C code (Vigna's splitmix64.c) for seeds 0 and 0x0123456789abcdef, and the
    numpy oracle for a negative seed and 10,000 outputs (wrapping multiplications in torch's int64)."""
    from mulsupcon.train.common import splitmix64

    got = splitmix64(0, 3).numpy().view(np.uint64)
    assert [int(v) for v in got] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert int(splitmix64(0x0123456789ABCDEF, 1).numpy().view(np.uint64)[0]) == 0x157A3807A48FAA9D
    seed = -(2**63) + 12345
    np.testing.assert_array_equal(splitmix64(seed, 10_000).numpy().view(np.uint64), _splitmix64_numpy(seed, 10_000))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_mask_is_the_documented_function_of_the_random_words(dtype: torch.dtype) -> None:
    """Oracle in numpy: one 64-bit seed drawn from the layer's generator, SplitMix64 words from it, and
    keep where the 16-bit lane, read as unsigned (lane + 32768 for the signed view), is at least
    round(p * 65536); scale 1 / (1 - that / 65536)."""
    p, shape = 0.2, (37, 29)  # an element count that is not a multiple of 4
    n = shape[0] * shape[1]
    gen = torch.Generator().manual_seed(11)
    layer = FastDropout(p).train()
    layer.generator = gen
    out = layer(torch.ones(shape, dtype=dtype))
    seed = int(torch.empty(1, dtype=torch.int64).random_(-(2**63), None, generator=torch.Generator().manual_seed(11)))
    words = _splitmix64_numpy(seed, (n + 3) // 4)
    lanes = words.view(np.int16)[:n].astype(np.int64) + 32768  # 0 .. 65535
    dropped = round(p * 65536)
    expected = np.where(lanes >= dropped, 65536.0 / (65536 - dropped), 0.0).reshape(shape)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), torch.from_numpy(expected).to(dtype).double(), rtol=0, atol=0)


def test_gradient_is_the_mask_and_eval_is_identity() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 512, requires_grad=True)
    layer = FastDropout(0.3).train()
    out = layer(x)
    out.backward(torch.ones_like(out))
    mask = out.detach() / x.detach()
    torch.testing.assert_close(x.grad, mask)
    assert layer.eval()(x) is x
    assert FastDropout(0.0).train()(x) is x


def test_generator_makes_masks_reproducible_and_leaves_global_rng_alone() -> None:
    x = torch.ones(100, 100)
    layer = FastDropout(0.5).train()
    layer.generator = torch.Generator().manual_seed(7)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    a = layer(x)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is untouched
    layer.generator.manual_seed(7)
    assert torch.equal(layer(x), a)
    layer.generator.manual_seed(8)
    assert not torch.equal(layer(x), a)


def test_use_fast_dropout_and_set_dropout_generator_reach_nested_layers() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.4), nn.ReLU()))
    use_fast_dropout(net)
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(type(m) is FastDropout for m in drops)
    assert [m.p for m in drops] == [0.2, 0.4]
    g = torch.Generator()
    set_dropout_generator(net, g)
    assert all(m.generator is g for m in drops)
    assert FastDropout(0.2).generator is None  # the class default is not changed
    assert net.state_dict().keys() == {"0.weight", "0.bias"}


def test_config_differences_tolerates_keys_added_later_but_not_changes(tmp_path) -> None:
    import yaml

    from mulsupcon.config import load_config
    from mulsupcon.reproduce import _check_reusable
    from mulsupcon.train.runs import config_differences, prepare_run_dir

    cfg = load_config("demo")
    run = prepare_run_dir(tmp_path / "r", cfg, {}, kind="pretrain", resume=False)
    assert config_differences(run, cfg) == ""
    # A run made before a key existed: the key at its default is not a difference...
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["pretrain"]["overlap_key_encoder"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert config_differences(run, cfg) == ""
    prepare_run_dir(run, cfg, {}, kind="pretrain", resume=True)  # resumes
    # ...but the same key set to something else is.
    other = load_config("demo", {"pretrain.overlap_key_encoder": "false"})
    assert "pretrain.overlap_key_encoder" in config_differences(run, other)
    changed = load_config("demo", {"classify.epochs": 999})
    assert "classify.epochs: saved" in config_differences(run, changed)
    assert config_differences(run, changed, ignore=("classify",)) == ""
    with pytest.raises(ValueError, match="classify.epochs"):
        _check_reusable(run, changed)
    _check_reusable(run, changed, ignore=("classify",))


def test_thread_count_setting_env_and_auto(monkeypatch) -> None:
    from mulsupcon.train.common import auto_num_threads, want_key_overlap

    small, cpu = nn.Linear(10, 10), torch.device("cpu")
    monkeypatch.delenv("MULSUPCON_NUM_THREADS", raising=False)
    assert auto_num_threads(small, cpu) == 1  # small model: one intra-op thread
    assert auto_num_threads(small, torch.device("cuda")) is None  # accelerators: torch's choice
    assert auto_num_threads(small, cpu, 3) == 3 and auto_num_threads(small, cpu, "2") == 2
    with pytest.raises(ValueError, match="num_threads"):
        auto_num_threads(small, cpu, "many")
    monkeypatch.setenv("MULSUPCON_NUM_THREADS", "4")
    assert auto_num_threads(small, cpu, 3) == 4  # the environment wins
    monkeypatch.setenv("MULSUPCON_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="MULSUPCON_NUM_THREADS"):
        auto_num_threads(small, cpu)
    # The key-encoder thread: never on CUDA, refused with several processes when forced.
    assert not want_key_overlap("auto", torch.device("cuda"), False)
    assert not want_key_overlap(False, cpu, False) and want_key_overlap(True, cpu, False)
    assert not want_key_overlap("auto", cpu, True)
    with pytest.raises(ValueError, match="single process"):
        want_key_overlap(True, cpu, True)


def test_direct_adam_matches_fused_adam_bitwise_and_shares_its_state_dict(monkeypatch) -> None:
    """DirectAdam's direct kernel calls against torch's Adam(fused=True): two groups with their own learning
    rates, a parameter without gradient, changing rates and weight decay; same parameters after every step,
    interchangeable state dicts. The generic step still runs where the direct call does not apply."""
    from mulsupcon.train.common import DirectAdam, make_optimizer

    torch.manual_seed(0)
    shapes = [(7, 3), (7,), (2, 7), (5,)]
    start = [torch.randn(s) for s in shapes]
    grads = [[torch.randn(s) for s in shapes] for _ in range(6)]

    def build(make):
        ps = [nn.Parameter(t.clone()) for t in start]
        return ps, make([{"params": ps[:2]}, {"params": ps[2:], "lr": 3e-3}])

    pa, opt_a = build(lambda g: make_optimizer(g, {"optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-3}))
    pb, opt_b = build(lambda g: torch.optim.Adam(g, lr=1e-2, weight_decay=1e-3, fused=True))
    assert type(opt_a) is DirectAdam
    generic = []
    real = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: generic.append(type(self)) or real(self, closure))
    for i, gs in enumerate(grads):
        for ps, opt in ((pa, opt_a), (pb, opt_b)):
            for group in opt.param_groups:
                group["lr"] = group["lr"] * 0.5
            for j, (q, g) in enumerate(zip(ps, gs)):
                q.grad = None if (j == 3 and i < 2) else g.clone()  # the last one starts late
            opt.step()
        for a, b in zip(pa, pb):
            assert torch.equal(a, b), f"step {i}"
    # DirectAdam went generic only while some state was missing (steps 0 and 2).
    assert generic.count(DirectAdam) == 2
    # Its step counters advance as one buffer per group (0-d views of it), torch's as separate tensors.
    assert len({st["step"].untyped_storage().data_ptr() for st in opt_a.state.values()}) == 2
    assert len({st["step"].untyped_storage().data_ptr() for st in opt_b.state.values()}) == 4
    opt_a.grad_scale = torch.ones(())  # what a GradScaler sets on fused optimisers
    opt_a.step()
    assert generic.count(DirectAdam) == 3
    del opt_a.grad_scale
    assert not torch.equal(pa[0], start[0])
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # torch shares, not copies, loaded tensors
    for a, b, g in zip(pa, pb, grads[0]):
        b.data.copy_(a.data)
        a.grad, b.grad = g.clone(), g.clone()
    opt_a.step()
    opt_b.step()
    for a, b in zip(pa, pb):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vector_masking_keeps_each_element_with_probability_1_minus_p(dtype: torch.dtype) -> None:
    """The paper's vector view: element kept where a uniform draw is >= p (oracle: the same draws taken
    from a generator with the same seed), zero elsewhere; the kept share is 1 - p over many draws."""
    from mulsupcon.train.data import VectorMasking

    x = torch.randn(300, 103, dtype=dtype) + 5.0  # no zeros of its own
    out = VectorMasking(0.5)(x, torch.Generator().manual_seed(3))
    draws = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    expected = torch.where(draws >= 0.5, x, torch.zeros((), dtype=dtype))
    assert out.dtype == dtype and torch.equal(out, expected)
    kept = (out != 0).double().mean().item()
    assert abs(kept - 0.5) < 5 * (0.25 / x.numel()) ** 0.5
    assert torch.equal(VectorMasking(0.0)(x, None), x)
    big = VectorMasking(0.2)(torch.ones(1000, 1000), torch.Generator().manual_seed(0))
    assert abs((big != 0).float().mean().item() - 0.8) < 5 * (0.16 / 1e6) ** 0.5


def _ftz_supported() -> bool:
    ok = torch.set_flush_denormal(False)
    return ok


needs_ftz = pytest.mark.skipif(not _ftz_supported(), reason="this CPU has no flush-to-zero flags (not x86 with SSE3)")


@needs_ftz
@pytest.mark.parametrize("threads", [1, 2])
def test_flush_denormals_reaches_every_intra_op_thread_and_restores(threads: int) -> None:
    """Inside the block a subnormal product is zero on EVERY intra-op thread (a vector long enough to
    be split over all of them), normal numbers are untouched; after the block subnormals are back."""
    from mulsupcon.train.common import cpu_threads, denormals_flushed, flush_denormals

    tiny = torch.finfo(torch.float32).tiny
    with cpu_threads(threads):
        assert not denormals_flushed()  # IEEE behaviour to begin with: subnormal products survive
        try:
            with flush_denormals(True) as everywhere:
                assert everywhere and denormals_flushed()
                n = 65536 * threads
                x = torch.full((n,), 4 * tiny)
                assert torch.count_nonzero(x * 0.125) == 0  # 0.5 tiny would be subnormal: flushed
                assert torch.equal(x * 0.25, torch.full((n,), tiny))  # the smallest normal is kept
                y = torch.randn(n)
                assert torch.equal(y * 3.0, torch.from_numpy(y.numpy() * np.float32(3.0)))
            assert not denormals_flushed()
            with flush_denormals(False) as everywhere:
                assert not everywhere and not denormals_flushed()
        finally:
            from mulsupcon.train.common import set_flush_denormal_everywhere

            set_flush_denormal_everywhere(False)


@needs_ftz
def test_flags_reach_torchs_openmp_threads_beside_another_openmp_runtime() -> None:
    """scikit-learn's wheel loads its own libgomp (other threads): the flags must still reach torch's
    workers, and the check must see a worker left without them (the calling thread alone is not enough)."""
    import sklearn.cluster  # noqa: F401  (loads scikit_learn.libs/libgomp-*.so beside torch's)

    from mulsupcon.train.common import cpu_threads, denormals_flushed, set_flush_denormal_everywhere

    with cpu_threads(2):
        try:
            torch.set_flush_denormal(True)  # this thread only
            assert not denormals_flushed()
            assert set_flush_denormal_everywhere(True) and denormals_flushed()
            x = torch.full((1 << 17,), 4 * torch.finfo(torch.float32).tiny)
            assert all(torch.count_nonzero(x * 0.125) == 0 for _ in range(10))
        finally:
            set_flush_denormal_everywhere(False)
        assert not denormals_flushed()


@needs_ftz
def test_flush_denormals_keeps_a_setting_made_before_the_block() -> None:
    from mulsupcon.train.common import cpu_threads, denormals_flushed, flush_denormals, set_flush_denormal_everywhere

    with cpu_threads(2):
        try:
            assert set_flush_denormal_everywhere(True)
            with flush_denormals(True):
                pass
            assert denormals_flushed()  # was on before: left on
        finally:
            set_flush_denormal_everywhere(False)
        assert not denormals_flushed()


@needs_ftz
@pytest.mark.parametrize("flush", [True, False])
def test_key_worker_thread_gets_the_flush_setting(flush: bool) -> None:
    """The key encoder's thread has its own CPU flags: it must flush exactly when the loop does."""
    from mulsupcon.train.common import denormals_flushed, worker_thread

    with worker_thread(1, flush) as pool:
        assert pool.submit(denormals_flushed).result() is flush
    assert not denormals_flushed()  # the calling thread is untouched


def test_flush_denormals_config_must_be_a_boolean() -> None:
    from mulsupcon.config import load_config

    assert load_config("yeast")["flush_denormals"] is True
    assert load_config("yeast", {"flush_denormals": False})["flush_denormals"] is False
    with pytest.raises(ValueError, match="flush_denormals must be true or false, got 'yes'"):
        load_config("yeast", {"flush_denormals": "yes"})
