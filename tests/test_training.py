"""Training loops: a killed run resumes to the uninterrupted result; probe/finetune/scratch semantics;
the checkpoint best on validation is the one evaluated on test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mulsupcon.config import load_config
from mulsupcon.train.checkpoint import load_checkpoint

SMALL = [
    "--config", "demo",
    "--model.hidden", "[32,32]", "--model.head_hidden", "32", "--model.embed_dim", "16",
    "--pretrain.batch_size", "64", "--pretrain.queue_size", "96", "--pretrain.steps_per_epoch", "6",
    "--classify.batch_size", "64", "--classify.steps_per_epoch", "6",
]


def _cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-m", "mulsupcon", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _run(args):
    p = _cli(args)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    return out


def _kill_after_checkpoint(args, ckpt: Path, min_epoch: int):
    """Start a run, SIGKILL it once its checkpoint reaches ``min_epoch`` (a real, unclean kill)."""
    p = _cli(args)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if ckpt.is_file():
            try:
                if int(load_checkpoint(ckpt)["epoch"]) >= min_epoch:
                    break
            except Exception:  # being replaced right now: atomic rename, retry
                pass
        time.sleep(0.05)
    assert p.poll() is None, "the run finished before it could be killed; make it longer"
    p.send_signal(signal.SIGKILL)
    p.wait()
    return int(load_checkpoint(ckpt)["epoch"])


def test_killed_pretraining_resumes_to_the_uninterrupted_result(tmp_path):
    epochs = ["--pretrain.epochs", "12"]
    _run(["pretrain", *SMALL, *epochs, "--run-dir", str(tmp_path / "full"), "--quiet"])
    killed_at = _kill_after_checkpoint(
        ["pretrain", *SMALL, *epochs, "--run-dir", str(tmp_path / "cut"), "--quiet"],
        tmp_path / "cut" / "checkpoints" / "last.pt", 3,
    )
    assert 3 <= killed_at < 12
    _run(["pretrain", "--run-dir", str(tmp_path / "cut"), "--resume", "--quiet"])
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 12
    for key, ta in a["model"].items():  # weights, key encoder AND the queue (keys, labels, pointer)
        torch.testing.assert_close(b["model"][key], ta, rtol=0, atol=0, msg=key)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(sb["exp_avg"], sa["exp_avg"], rtol=0, atol=0)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    log = (tmp_path / "cut" / "log.txt").read_text()
    assert "resumed from" in log and f"at epoch {killed_at}/12" in log


def test_killed_finetune_resumes_to_the_uninterrupted_result(tmp_path):
    _run(["pretrain", *SMALL, "--pretrain.epochs", "2", "--run-dir", str(tmp_path / "pre"), "--quiet"])
    common = ["train", "--mode", "finetune", "--from", str(tmp_path / "pre"), *SMALL[2:],
              "--classify.epochs", "14", "--classify.early_stop_patience", "100", "--quiet"]
    _run([*common, "--run-dir", str(tmp_path / "full")])
    _kill_after_checkpoint([*common, "--run-dir", str(tmp_path / "cut")], tmp_path / "cut" / "checkpoints" / "last.pt", 3)
    _run(["train", "--mode", "finetune", "--from", str(tmp_path / "pre"), "--run-dir", str(tmp_path / "cut"),
          "--resume", "--quiet"])
    ma = json.loads((tmp_path / "full" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert ma["best_epoch"] == mb["best_epoch"]
    assert ma["protocols"] == mb["protocols"]


def test_resume_refuses_a_changed_config(tmp_path):
    _run(["pretrain", *SMALL, "--pretrain.epochs", "1", "--run-dir", str(tmp_path / "r"), "--quiet"])
    p = _cli(["pretrain", *SMALL, "--pretrain.epochs", "1", "--pretrain.lr", "0.5", "--run-dir", str(tmp_path / "r"),
              "--resume", "--quiet"])
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "pretrain.lr" in out and "differs" in out
    p = _cli(["pretrain", *SMALL, "--pretrain.epochs", "1", "--run-dir", str(tmp_path / "r"), "--quiet"])
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "--resume" in out


@pytest.fixture(scope="module")
def small_setup(tmp_path_factory):
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    root = tmp_path_factory.mktemp("small")
    cfg = load_config("demo", {
        "model.hidden": [32, 32], "model.head_hidden": 32, "model.embed_dim": 16,
        "pretrain.epochs": 2, "pretrain.steps_per_epoch": 5, "pretrain.batch_size": 64,
        "classify.epochs": 6, "classify.steps_per_epoch": 5, "classify.batch_size": 64,
    })
    data = prepare_data(cfg["dataset"])
    pretrain(cfg, root / "pre", quiet=True, data=data)
    return cfg, data, root


def _trained(cfg, data, root, mode, **over):
    import copy

    from mulsupcon.train.classify import classify

    c = copy.deepcopy(cfg)
    c["classify"]["mode"] = mode
    c["classify"].update(over)
    res = classify(c, root / f"{mode}-{len(list(root.iterdir()))}", from_run=None if mode == "scratch" else root / "pre",
                   quiet=True, data=data)
    return c, res


def test_probe_keeps_backbone_and_its_statistics_frozen(small_setup):
    cfg, data, root = small_setup
    pre = load_checkpoint(root / "pre" / "backbone.pt")["backbone"]
    c, res = _trained(cfg, data, root, "probe")
    run = sorted(p for p in root.iterdir() if p.name.startswith("probe"))[-1]
    after = load_checkpoint(run / "model.pt")["backbone"]
    for k, v in pre.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    assert res["mode"] == "probe"


def test_finetune_moves_the_backbone_and_scratch_ignores_pretraining(small_setup):
    cfg, data, root = small_setup
    pre = load_checkpoint(root / "pre" / "backbone.pt")["backbone"]
    _trained(cfg, data, root, "finetune")
    run = sorted(p for p in root.iterdir() if p.name.startswith("finetune"))[-1]
    after = load_checkpoint(run / "model.pt")["backbone"]
    assert any(not torch.equal(after[k], v) for k, v in pre.items())


def test_best_validation_checkpoint_is_the_one_evaluated(small_setup):
    from mulsupcon.metrics import evaluate

    cfg, data, root = small_setup
    c, res = _trained(cfg, data, root, "scratch", epochs=8, lr=3e-3)
    run = sorted(p for p in root.iterdir() if p.name.startswith("scratch"))[-1]
    hist = json.loads((run / "history.json").read_text())
    assert res["best_epoch"] == 1 + int(np.argmin([h["val_loss"] for h in hist]))
    z = np.load(run / "scores.npz")
    again = evaluate(z["test_scores"], z["test_targets"], protocol="paper")
    assert again["mAP"] == pytest.approx(res["protocols"]["paper"]["mAP"])
    # scores come from the best checkpoint: recompute them from best.pt
    from mulsupcon.train.classify import build_classifier, score_split

    model, _ = build_classifier(c, data, None)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / "best.pt")["model"])
    s, _, _ = score_split(model, data.test, torch.device("cpu"))
    np.testing.assert_allclose(s, z["test_scores"], rtol=1e-6, atol=1e-7)


def test_probe_and_finetune_need_a_pretrained_run(small_setup):
    from mulsupcon.train.classify import classify

    cfg, data, root = small_setup
    c = dict(cfg)
    c["classify"] = {**cfg["classify"], "mode": "probe"}
    with pytest.raises(ValueError, match="--from"):
        classify(c, root / "x", quiet=True, data=data)


def test_key_encoder_on_a_second_thread_gives_the_same_run(small_setup, monkeypatch):
    """pretrain.overlap_key_encoder only moves work between threads: weights, queue and losses are
    bitwise those of the serial run (the key encoder's dropout has its own generator)."""
    import copy

    from mulsupcon.moco import MoCo
    from mulsupcon.train.pretrain import pretrain

    cfg, data, root = small_setup
    threads_used = []
    real_forward = MoCo.forward

    def spy(self, *args, key_executor=None, **kw):
        threads_used.append(key_executor is not None)
        return real_forward(self, *args, key_executor=key_executor, **kw)

    monkeypatch.setattr(MoCo, "forward", spy)
    states = {}
    for overlap in ("false", "true"):
        c = copy.deepcopy(cfg)
        c["pretrain"]["overlap_key_encoder"] = overlap
        run = pretrain(c, root / f"overlap-{overlap}", quiet=True, data=data)
        states[overlap] = load_checkpoint(run / "checkpoints" / "last.pt")
    n = len(threads_used) // 2
    assert n > 0 and not any(threads_used[:n]) and all(threads_used[n:])
    a, b = states["false"], states["true"]
    assert a["model"].keys() == b["model"].keys()
    for key, ta in a["model"].items():
        torch.testing.assert_close(b["model"][key], ta, rtol=0, atol=0, msg=key)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    # The key encoder's dropout is active in this config (so the test is about its generator).
    assert cfg["pretrain"]["key_train_mode"] and cfg["model"]["dropout"] > 0


def test_resume_with_an_optimizer_state_of_another_layout_says_why(small_setup):
    """A checkpoint whose optimizer state has another parameter layout (one flat tensor, as single-process
    CPU runs briefly kept it) cannot resume a run: a clear error, not torch's."""
    import copy

    from mulsupcon.train.checkpoint import atomic_torch_save
    from mulsupcon.train.pretrain import pretrain

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["pretrain"]["epochs"] = 3
    run = pretrain(c, root / "layout", quiet=True, data=data, stop_after_epochs=1)
    ckpt = run / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)
    state["optimizer"] = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))]).state_dict()
    atomic_torch_save(ckpt, state)
    with pytest.raises(ValueError, match="does not match this run's parameters"):
        pretrain(c, run, resume=True, quiet=True, data=data)


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero flags")
@pytest.mark.parametrize("flush", [True, False])
def test_pretraining_flushes_denormals_on_all_its_threads_only_while_it_runs(small_setup, monkeypatch, flush):
    """With flush_denormals (the default) every step computes with subnormals flushed on both
    intra-op threads; without it, IEEE subnormals; either way the process is left as it was."""
    import copy

    from mulsupcon.moco import MoCo
    from mulsupcon.train.common import denormals_flushed
    from mulsupcon.train.pretrain import pretrain

    cfg, data, root = small_setup
    seen = []
    real_forward = MoCo.forward

    def spy(self, *args, **kw):
        seen.append((torch.get_num_threads(), denormals_flushed()))
        return real_forward(self, *args, **kw)

    monkeypatch.setattr(MoCo, "forward", spy)
    c = copy.deepcopy(cfg)
    c["num_threads"], c["flush_denormals"] = 2, flush
    c["pretrain"]["epochs"] = 1
    assert not denormals_flushed()
    pretrain(c, root / f"flush-{flush}", quiet=True, data=data)
    assert seen and all(s == (2, flush) for s in seen)
    assert not denormals_flushed()


def test_both_loops_say_when_subnormals_could_not_be_flushed_everywhere(small_setup, monkeypatch):
    """Where flushing cannot reach every thread (another OpenMP runtime, no x86 flags), pretraining and
    classification still run, and their logs say why later epochs may slow down; where it can, no note."""
    import contextlib
    import copy

    from mulsupcon.train import common
    from mulsupcon.train.classify import classify
    from mulsupcon.train.pretrain import pretrain

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["pretrain"]["epochs"] = 1
    c["classify"]["epochs"] = 1
    note = "subnormal floats could not be flushed on every thread"
    pretrain(c, root / "flush-ok", quiet=True, data=data)
    assert note not in (root / "flush-ok" / "log.txt").read_text()

    @contextlib.contextmanager
    def partial(enabled=True):
        yield False  # what flush_denormals yields when a thread kept IEEE subnormals

    monkeypatch.setattr(common, "flush_denormals", partial)
    pre = pretrain(c, root / "flush-partial", quiet=True, data=data)
    assert note in (pre / "log.txt").read_text()
    classify(c, root / "flush-partial-cls", from_run=pre, quiet=True, data=data)
    assert note in (root / "flush-partial-cls" / "log.txt").read_text()
