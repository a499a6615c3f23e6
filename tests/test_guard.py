"""Divergence: non-finite values stop a run (keeping the last good checkpoint); runaway training warns;
normal runs of the shipped configs never warn."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mulsupcon.config import load_config
from mulsupcon.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMALL = {"model.hidden": [32], "model.head_hidden": 16, "model.embed_dim": 16, "pretrain.epochs": 3,
         "pretrain.steps_per_epoch": 8, "classify.epochs": 3, "classify.steps_per_epoch": 8}


@pytest.fixture(scope="module")
def demo_data():
    from mulsupcon.train.data import prepare_data

    cfg = load_config("demo", SMALL)
    return cfg, prepare_data(cfg["dataset"])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "mulsupcon", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_exploding_classification_and_pretraining_warn_everywhere(tmp_path):
    flags = ["--config", "demo", "--model.hidden", "[32]", "--model.head_hidden", "16", "--model.embed_dim", "16",
             "--classify.epochs", "3", "--classify.steps_per_epoch", "10", "--pretrain.epochs", "2",
             "--pretrain.steps_per_epoch", "10", "-q"]
    for cmd, lr, run in ((["train", "--mode", "scratch"], ["--classify.lr", "1000"], "bce"),
                         (["pretrain"], ["--pretrain.lr", "1000"], "pre")):
        proc = _cli(*cmd, *flags, *lr, "--run-dir", run, cwd=tmp_path)
        if proc.returncode != 0:  # a NaN instead of a finite explosion: then the run must stop with the reason
            assert "diverged" in proc.stderr and "epoch" in proc.stderr, proc.stderr
            continue
        assert "diverged" in proc.stderr
        assert "diverged" in (tmp_path / run / "log.txt").read_text()
        assert any("diverged" in w for w in json.loads((tmp_path / run / "run.json").read_text())["warnings"])


def test_a_non_finite_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(demo_data, tmp_path, monkeypatch):
    from mulsupcon.losses import MulSupConLoss
    from mulsupcon.train.guard import DivergenceError
    from mulsupcon.train.pretrain import pretrain

    cfg, data = demo_data
    pretrain(cfg, tmp_path / "r", data=data, quiet=True, echo=False, stop_after_epochs=2)
    real, calls = MulSupConLoss.forward, []

    def nan_at_step_5(self, *args, **kw):
        calls.append(1)
        out = real(self, *args, **kw)
        return out * float("nan") if len(calls) == 5 else out

    monkeypatch.setattr(MulSupConLoss, "forward", nan_at_step_5)
    with pytest.raises(DivergenceError, match=r"loss became nan at epoch 3, step 5"):
        pretrain(cfg, tmp_path / "r", data=data, resume=True, quiet=True, echo=False)
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")["epoch"] == 2


def test_a_non_finite_parameter_stops_classification(demo_data, tmp_path, monkeypatch):
    from mulsupcon.train.classify import classify
    from mulsupcon.train.guard import DivergenceError

    cfg, data = demo_data
    c = copy.deepcopy(cfg)
    c["classify"]["mode"] = "scratch"
    real_step = torch.optim.Adam.step

    def poisoned(self, *a, **kw):
        out = real_step(self, *a, **kw)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    with pytest.raises(DivergenceError, match="scratch training diverged: .*epoch 1"):
        classify(c, tmp_path / "c", data=data, quiet=True, echo=False)


@pytest.mark.parametrize("name", ["demo", "yeast", "scene", "yeast-authors"])
def test_normal_runs_of_the_shipped_configs_never_warn(name, tmp_path):
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    cfg = load_config(name, {"pretrain.epochs": 4, "pretrain.steps_per_epoch": 20, "classify.epochs": 4,
                             "classify.steps_per_epoch": 20})
    try:
        data = prepare_data(cfg["dataset"])
    except FileNotFoundError as err:
        pytest.skip(f"dataset of config {name} not present: {err}")
    pre = pretrain(cfg, tmp_path / "pre", data=data, quiet=True, echo=False)
    classify(cfg, tmp_path / "ft", from_run=pre, data=data, quiet=True, echo=False)
    for run in ("pre", "ft"):
        assert "warnings" not in json.loads((tmp_path / run / "run.json").read_text()), run
        assert "diverged" not in (tmp_path / run / "log.txt").read_text()


def test_embedding_spread_against_hand_computed_cases_and_numpy():
    from mulsupcon.train.guard import embedding_spread

    d = 8
    assert embedding_spread(torch.eye(d)) == pytest.approx(1.0)  # each column: one 1 in d rows, std 1/sqrt(d)
    assert embedding_spread(3.0 * torch.eye(d)) == pytest.approx(1.0)  # rows are normalised first
    assert embedding_spread(torch.ones(5, d) * torch.arange(1, 6.0)[:, None]) == pytest.approx(0.0, abs=1e-6)
    assert embedding_spread(torch.ones(1, d)) is None
    z = torch.randn(50, d, generator=torch.Generator().manual_seed(0))
    unit = (z / z.norm(dim=1, keepdim=True)).double().numpy()
    assert embedding_spread(z) == pytest.approx(unit.std(axis=0, ddof=1).mean() * d ** 0.5, rel=1e-5)


def test_feature_spread_measures_in_eval_mode_and_restores_the_mode():
    from mulsupcon.train.guard import feature_spread

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5)).train()
    same = torch.ones(10, 4)  # identical rows: only dropout's noise (training mode) would tell them apart
    assert feature_spread(net, same) == pytest.approx(0.0, abs=1e-6) and net.training


def test_collapse_is_a_fall_below_the_limit_not_a_low_start():
    from mulsupcon.train.guard import pretraining_collapse

    assert "collapsed" in pretraining_collapse(0.148, 0.012)  # genbase on raw 0/1 inputs (benchmarks/README.md)
    assert pretraining_collapse(0.04, 0.039) is None  # an untrained ResNet-50 in eval mode starts near 0.04
    assert pretraining_collapse(0.8, 0.06) is None  # a fall, but not below the limit
    assert pretraining_collapse(None, 0.01) is None  # a checkpoint from before the spread was recorded


def test_a_pretraining_that_collapses_says_so(tmp_path):
    """genbase's 0/1 inputs without standardisation: the backbone's spread falls from 0.15 to 0.02 in 100 epochs
    while the loss stays flat near its collapsed value (benchmarks/README.md, 'Twentieth session')."""
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    cfg = load_config("vectors", {"dataset.name": "genbase", "dataset.standardize": False, "pretrain.epochs": 100})
    try:
        data = prepare_data(cfg["dataset"])
    except FileNotFoundError as err:
        pytest.skip(f"genbase not present: {err}")
    pretrain(cfg, tmp_path / "r", data=data, quiet=True, echo=False)
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    first, last = history[0]["spread"], history[-1]["spread"]
    assert last < 0.05 and last < first / 4, (first, last)
    warnings = json.loads((tmp_path / "r" / "run.json").read_text())["warnings"]
    assert any(w.startswith("pretraining collapsed") and f"down from {first:.3g}" in w for w in warnings), warnings
    assert re.search(r"\] epoch 100/100 loss \S+ lr \S+ spread 0\.0\d\d$", (tmp_path / "r" / "log.txt").read_text(), re.M)


def test_batch_sizes_are_checked_and_reported_as_used(demo_data, tmp_path):
    """Batch 1 is refused before any file is written (not a BatchNorm message); a batch larger than the
    training split is logged as the batch actually used."""
    from mulsupcon.train.pretrain import pretrain

    cfg, data = demo_data
    c = copy.deepcopy(cfg)
    c["pretrain"]["batch_size"] = 1
    with pytest.raises(ValueError, match="pretrain.batch_size=1 gives 1 row.* needs at least 2"):
        pretrain(c, tmp_path / "b1", data=data, quiet=True, echo=False)
    assert not (tmp_path / "b1").exists()
    c["pretrain"].update(batch_size=50_000, epochs=1, steps_per_epoch=1)
    pretrain(c, tmp_path / "big", data=data, quiet=True, echo=False)
    log = (tmp_path / "big" / "log.txt").read_text()
    assert f"batch {data.train.n} (pretrain.batch_size 50000 > {data.train.n} training rows)" in log


def test_litter_of_a_killed_write_is_removed_at_the_next_start(demo_data, tmp_path):
    from mulsupcon.train.pretrain import pretrain

    cfg, data = demo_data
    c = copy.deepcopy(cfg)
    c["pretrain"].update(epochs=2, steps_per_epoch=2)
    pretrain(c, tmp_path / "r", data=data, quiet=True, echo=False, stop_after_epochs=1)
    litter = tmp_path / "r" / "checkpoints" / ".last.pt.abc123.tmp"
    litter.write_bytes(b"half a checkpoint")
    pretrain(c, tmp_path / "r", data=data, resume=True, quiet=True, echo=False)
    assert not litter.exists() and not list((tmp_path / "r").rglob("*.tmp"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_atomic_writes_give_a_file_the_mode_open_would(tmp_path):
    from mulsupcon.io import atomic_write_text

    kept = tmp_path / "kept.txt"
    kept.write_text("a")
    os.chmod(kept, 0o640)
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "a")
        atomic_write_text(kept, "b")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "a")
    finally:
        os.umask(old)

    def mode(name: str) -> int:
        return stat.S_IMODE((tmp_path / name).stat().st_mode)
    assert mode("new.txt") == 0o644  # a result others on the machine can read, as open(path, "w") makes it
    assert mode("private.txt") == 0o600  # the umask decides, not a fixed mode
    assert mode("kept.txt") == 0o640 and kept.read_text() == "b"  # an overwritten file keeps its mode
    assert not list(tmp_path.glob(".*.tmp"))


def _limit_file_size(limit: int):
    """preexec_fn: files may grow to ``limit`` bytes; past it a write fails with EFBIG (as a full disk does)."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_failed_checkpoint_write_names_the_file_and_keeps_the_previous_one(tmp_path):
    flags = ["pretrain", "--config", "demo", "--model.hidden", "[256]", "--model.head_hidden", "16",
             "--model.embed_dim", "16", "--pretrain.epochs", "3", "--pretrain.steps_per_epoch", "2", "-q",
             "--run-dir", "r"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "mulsupcon", *flags]
    first = subprocess.run([*cmd, "--stop-after-epochs", "1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    assert len(before) > 600_000  # the limit below fails this write, and not the small files of the run
    proc = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size(500_000))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"could not write {last}" in proc.stderr and "the previous file is unchanged" in proc.stderr, proc.stderr
    assert last.read_bytes() == before and not list((tmp_path / "r").rglob("*.tmp"))
    again = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(last)["epoch"] == 3
