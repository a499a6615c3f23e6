"""The fused C++ forward of the vector encoder (``pretrain.fused_forward``) against the Python modules.

The oracle is the module path itself: the extension runs the same ATen operations in the same order, so
outputs, gradients, BatchNorm statistics and dropout draws must be equal bit for bit, not just close.
The first test in a fresh environment compiles the extension (about 30 s, then cached by torch).
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from torch import nn

from mulsupcon.config import load_config
from mulsupcon.models import ProjectionHead
from mulsupcon.models.fused import FusedMLPEncoder, load_extension, unsupported_reason
from mulsupcon.models.vector import MLPBackbone
from mulsupcon.train.checkpoint import load_checkpoint
from mulsupcon.train.common import FastDropout, draw_seed, set_dropout_generator, use_fast_dropout


@pytest.fixture(scope="module")
def ext():
    module, error = load_extension()
    if module is None:
        if shutil.which("c++") is None and shutil.which("g++") is None:
            pytest.skip(f"no C++ compiler on this machine: {error}")
        pytest.fail(f"the fused forward's extension did not build although a compiler exists: {error}")
    return module


def _encoder(dtype=torch.float32, hidden=(24, 40, 24), p=0.2, head_p=0.1) -> nn.Sequential:
    torch.manual_seed(0)
    enc = nn.Sequential(MLPBackbone(11, hidden, p), ProjectionHead(hidden[-1], 20, 16, head_p))
    return use_fast_dropout(enc).to(dtype)


def _state(enc: nn.Module) -> dict:
    return {k: v.clone() for k, v in enc.state_dict().items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("private_generator", [False, True])
def test_fused_forward_equals_the_modules_bitwise(ext, dtype, private_generator) -> None:
    """Three training steps through modules and through the fused call from the same state and seed: the
    same outputs, parameter gradients, BatchNorm running statistics and batch counter, bit for bit; then the
    same in eval mode (no dropout, running statistics)."""
    a = _encoder(dtype)
    b = copy.deepcopy(a)
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)] if private_generator else [None, None]
    set_dropout_generator(a, gens[0])
    set_dropout_generator(b, gens[1])
    fused = FusedMLPEncoder(b, ext)
    x = torch.randn(9, 11, dtype=dtype)
    for step in range(3):
        outs = []
        for enc, call in ((a, a), (b, fused)):
            enc.train()
            enc.zero_grad()
            torch.manual_seed(100 + step)
            out = call(x)
            (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
            outs.append(out.detach())
        assert torch.equal(outs[0], outs[1]), f"step {step}"
        assert outs[0].dtype == dtype
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(pa.grad, pb.grad), f"gradient of {name}, step {step}"
        for (name, ba), bb in zip(a.named_buffers(), b.buffers()):
            assert torch.equal(ba, bb), f"buffer {name}, step {step}"
    assert int(b[1].net[1].num_batches_tracked) == 3
    a.eval()
    b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), fused(x))
        assert torch.equal(fused(x), fused(x))
    b.train()
    with torch.no_grad():
        assert not torch.equal(fused(x), fused(x))  # the dropout really draws masks in train mode


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cpp_dropout_mask_equals_fast_dropout(ext, dtype) -> None:
    """The one-pass C++ mask against FastDropout's six tensor operations, from the same seed: equal bit for
    bit, for element counts that are and are not multiples of 4 and a size split across threads."""
    for shape, p in (((37, 29), 0.2), ((64, 512), 0.1), ((1, 3), 0.5), ((300, 1000), 0.9)):
        ones = torch.ones(shape, dtype=dtype)
        layer = FastDropout(p).train()
        layer.generator = torch.Generator().manual_seed(4)
        expected = layer(ones)  # = the mask
        got = ext.dropout_mask(ones, round(p * 65536), draw_seed(torch.Generator().manual_seed(4)))
        assert got.dtype == dtype and got.shape == ones.shape
        assert torch.equal(got, expected), (shape, p)


def test_fused_forward_rejects_other_layouts_and_falls_back_on_mixed_flags(ext) -> None:
    """What the fused call cannot reproduce is refused up front with the reason; module flags that disagree
    (one BatchNorm switched to eval by hand) send the call to the modules themselves."""
    plain = nn.Sequential(MLPBackbone(11, (8,), 0.2), ProjectionHead(8, 8, 4, 0.1))
    assert "FastDropout" in unsupported_reason(plain)
    with pytest.raises(ValueError, match="FastDropout"):
        FusedMLPEncoder(plain, ext)
    assert "not nn.Sequential" in unsupported_reason(nn.Sequential(nn.Linear(3, 3)))
    no_stats = _encoder()
    no_stats[1].net[1] = nn.BatchNorm1d(20, track_running_stats=False)
    assert "running statistics" in unsupported_reason(no_stats)
    assert unsupported_reason(_encoder()) is None

    a = _encoder()
    b = copy.deepcopy(a)
    fused = FusedMLPEncoder(b, ext)
    for enc in (a, b):
        enc.train()
        enc[1].net[1].eval()
    x = torch.randn(6, 11)
    torch.manual_seed(1)
    expected = a(x)
    torch.manual_seed(1)
    assert torch.equal(fused(x), expected)
    with pytest.raises(ValueError, match=r"\(B, 11\)"):
        fused(torch.randn(6, 10))


def _small_cfg(**pretrain):
    cfg = load_config("demo", {
        "model.hidden": [32, 48, 32], "model.head_hidden": 32, "model.embed_dim": 16,
        "pretrain.epochs": 2, "pretrain.steps_per_epoch": 6, "pretrain.batch_size": 64, "pretrain.queue_size": 96,
    })
    cfg["pretrain"].update(pretrain)
    return cfg


@pytest.mark.parametrize("threads, overlap", [(2, "false"), (1, "true")])
def test_pretraining_with_the_fused_forward_is_the_same_run(ext, tmp_path, monkeypatch, threads, overlap) -> None:
    """pretrain.fused_forward=true changes how the encoders are called, not the run: every weight, buffer
    and queue entry and the loss history equal those of the module run bit for bit, also with the key
    encoder on its own thread (where the fused call runs without the GIL beside the query encoder)."""
    from mulsupcon.models import fused as fused_module
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    calls = []
    real_call = fused_module.FusedMLPEncoder.__call__
    monkeypatch.setattr(fused_module.FusedMLPEncoder, "__call__", lambda self, x: calls.append(1) or real_call(self, x))
    data = None
    states = {}
    for fused in ("false", "true"):
        cfg = _small_cfg(fused_forward=fused, overlap_key_encoder=overlap)
        cfg["num_threads"] = threads
        data = data or prepare_data(cfg["dataset"])
        run = pretrain(cfg, tmp_path / fused, quiet=True, data=data)
        states[fused] = load_checkpoint(run / "checkpoints" / "last.pt")
        if fused == "false":
            assert calls == []
    assert len(calls) == 2 * 2 * 6  # query and key, every step of both epochs
    a, b = states["false"], states["true"]
    assert a["model"].keys() == b["model"].keys()
    for key, ta in a["model"].items():
        torch.testing.assert_close(b["model"][key], ta, rtol=0, atol=0, msg=key)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert "fused C++ forward" in (tmp_path / "true" / "log.txt").read_text()


def test_fused_forward_settings(tmp_path, monkeypatch) -> None:
    """auto: only for runs of at least 20,000 steps, and a missing extension is a note, not a failure;
    true: a clear error where the fused call is impossible; anything else: a config error."""
    from mulsupcon.config import validate_config
    from mulsupcon.moco import MoCo
    from mulsupcon.train import pretrain as pretrain_module

    moco = MoCo(_encoder(), n_labels=3, embed_dim=16, queue_size=8)
    cpu = torch.device("cpu")
    choose = pretrain_module.fused_forwards
    assert choose("auto", moco, cpu, False, 19_999) == (None, None)
    assert choose("false", moco, cpu, False, 10**6) == (None, None)
    assert choose("auto", moco, cpu, True, 10**6) == (None, None)
    with pytest.raises(ValueError, match="single process"):
        choose("true", moco, cpu, True, 10)
    plain = MoCo(nn.Sequential(MLPBackbone(11, (8,), 0.2), ProjectionHead(8, 8, 4, 0.1)), n_labels=3, embed_dim=4)
    with pytest.raises(ValueError, match="FastDropout"):
        choose("true", plain, cpu, False, 10)
    with pytest.raises(ValueError, match="auto, true or false"):
        choose("yes", moco, cpu, False, 10)

    class Log:
        lines: list = []

        def line(self, text):
            self.lines.append(text)

    monkeypatch.setattr(pretrain_module, "load_extension", lambda: (None, "CalledProcessError: no compiler"))
    log = Log()
    assert choose("auto", moco, cpu, False, 10**6, log) == (None, None)
    assert any("unavailable" in ln and "no compiler" in ln for ln in log.lines)
    with pytest.raises(RuntimeError, match="no compiler"):
        choose("true", moco, cpu, False, 10)

    cfg = load_config("demo")
    cfg["pretrain"]["fused_forward"] = "sometimes"
    with pytest.raises(ValueError, match="pretrain.fused_forward"):
        validate_config(cfg)


def test_fused_forward_is_chosen_for_long_runs(ext) -> None:
    from mulsupcon.moco import MoCo
    from mulsupcon.train.pretrain import fused_forwards

    moco = MoCo(_encoder(), n_labels=3, embed_dim=16, queue_size=8)
    q, k = fused_forwards("auto", moco, torch.device("cpu"), False, 10**6)
    assert isinstance(q, FusedMLPEncoder) and isinstance(k, FusedMLPEncoder)
    assert q.encoder is moco.query_encoder and k.encoder is moco.key_encoder


def test_fast_dropout_generator_is_shared_by_the_fused_call(ext) -> None:
    """The key encoder's dropout draws from its own generator in the fused call too: the global
    generator's state is left untouched, the private one advances."""
    enc = _encoder()
    gen = torch.Generator().manual_seed(3)
    set_dropout_generator(enc, gen)
    fused = FusedMLPEncoder(enc, ext)
    x = torch.randn(4, 11)
    before_global, before_private = torch.get_rng_state(), gen.get_state()
    enc.train()
    with torch.no_grad():
        fused(x)
    assert torch.equal(torch.get_rng_state(), before_global)
    assert not torch.equal(gen.get_state(), before_private)
    assert isinstance(enc[0].net[2], FastDropout)

