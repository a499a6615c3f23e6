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
import yaml
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
    # a checkpoint every 2 epochs: the kill may come between two, and the epochs after the last are redone
    epochs = ["--pretrain.epochs", "12", "--pretrain.checkpoint_every", "2"]
    _run(["pretrain", *SMALL, *epochs, "--run-dir", str(tmp_path / "full"), "--quiet"])
    killed_at = _kill_after_checkpoint(
        ["pretrain", *SMALL, *epochs, "--run-dir", str(tmp_path / "cut"), "--quiet"],
        tmp_path / "cut" / "checkpoints" / "last.pt", 3,
    )
    assert 3 <= killed_at < 12 and killed_at % 2 == 0
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
              "--classify.epochs", "14", "--classify.early_stop_patience", "100", "--classify.checkpoint_every", "3", "--quiet"]
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


def test_a_stopped_pretraining_resumes_with_new_classification_settings(tmp_path, capsys):
    """The classify section of a pretraining run is only where `train --from` starts; it was compared on
    --resume all the same, so a combined `train --mode finetune` stopped in pretraining could not be resumed
    with another --classify.epochs."""
    from mulsupcon.cli import main

    run = tmp_path / "ft"
    base = ["train", "--mode", "finetune", *SMALL, "--pretrain.epochs", "3", "--classify.epochs", "2", "-q",
            "--run-dir", str(run)]
    assert main([*base, "--stop-after-epochs", "1"]) == 0
    assert not (run / "pretrain" / "backbone.pt").exists()
    # what pretraining uses is still compared
    assert main([*base, "--resume", "--pretrain.lr", "0.5"]) == 2
    assert "differs from the saved one (pretrain.lr" in capsys.readouterr().err
    assert main([*base, "--resume", "--classify.epochs", "3"]) == 0, capsys.readouterr().err
    assert "; classification settings saved for `train --from` (classify.epochs: saved 2 vs now 3)" in \
        (run / "pretrain" / "log.txt").read_text()
    assert yaml.safe_load((run / "pretrain" / "config.yaml").read_text())["classify"]["epochs"] == 3
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1, 2, 3]  # finetuned 3 epochs
    # where a run reports is not compared either
    from mulsupcon.train.rundir import config_differences

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert config_differences(run, cfg) == ""
    lr = cfg["classify"]["lr"]
    cfg["log"]["tensorboard"], cfg["classify"]["lr"] = True, 1.0
    assert config_differences(run, cfg) == f"classify.lr: saved {lr!r} vs now 1.0"


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


def test_checkpoints_are_written_every_500_steps_and_the_run_is_the_same(small_setup, monkeypatch, tmp_path):
    """`checkpoint_every: auto` writes after the epochs that hold 500 optimiser steps since the last write and
    after the last epoch (a small set's one-step epochs spent 40% of pretraining writing a checkpoint after
    each); the weights, the best epoch and the metrics are those of a checkpoint after every epoch."""
    from mulsupcon.train.checkpoint import checkpoint_interval
    from mulsupcon.train.rundir import RunDir

    assert [checkpoint_interval("auto", n) for n in (1, 6, 499, 500, 1000)] == [500, 84, 2, 1, 1]
    assert checkpoint_interval(3, 1000) == 3
    saved: list[tuple[str, int]] = []
    real = RunDir.save_checkpoint

    def counting(self, name, state):
        saved.append((name, int(state["epoch"])))
        real(self, name, state)

    monkeypatch.setattr(RunDir, "save_checkpoint", counting)
    cfg, data, _ = small_setup  # runs in a folder of this test's own: the other tests find theirs by name
    results = {}
    for every in (1, "auto", 5):  # 5 steps an epoch: auto is every 100 epochs, so only after the last (12)
        saved.clear()
        # a learning rate that overfits, so that the best epoch is one of the first, kept until a later write
        _, results[every] = _trained(cfg, data, tmp_path, "scratch", epochs=12, early_stop_patience=100, lr=0.1,
                                     select_by="val_loss", checkpoint_every=every)
        results[every]["written"] = sorted({e for name, e in saved if name == "last"})
    assert results[1]["written"] == list(range(1, 13))
    assert results["auto"]["written"] == [12] and results[5]["written"] == [5, 10, 12]
    assert 1 < results[1]["best_epoch"] < 12
    for every in ("auto", 5):
        assert results[every]["best_epoch"] == results[1]["best_epoch"]
        assert results[every]["protocols"] == results[1]["protocols"]
    with pytest.raises(ValueError, match="checkpoint_every must be auto or a positive integer"):
        load_config("demo", {"pretrain.checkpoint_every": 0})


def test_a_classification_run_continues_for_longer_on_resume(small_setup, tmp_path):
    """`train --resume --classify.epochs N` (or a larger patience) continues a finished or early-stopped run
    to what a run started with N gives; any other change is still refused, and so is a pretraining run's new
    epoch count (its cosine schedule depends on it)."""
    import copy

    from mulsupcon.train.classify import classify
    from mulsupcon.train.pretrain import pretrain

    cfg, data, root = small_setup
    short = copy.deepcopy(cfg)
    short["classify"].update(mode="scratch", epochs=3, early_stop_patience=100)
    classify(short, tmp_path / "r", quiet=True, data=data)
    longer = copy.deepcopy(short)
    longer["classify"]["epochs"] = 5
    continued = classify(longer, tmp_path / "r", resume=True, quiet=True, data=data)
    fresh = classify(longer, tmp_path / "fresh", quiet=True, data=data)
    assert continued["protocols"] == fresh["protocols"] and continued["best_epoch"] == fresh["best_epoch"]
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())) == 5
    assert "continued for longer (classify.epochs: saved 3 vs now 5)" in (tmp_path / "r" / "log.txt").read_text()
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["classify"]["epochs"] == 5
    shorter = copy.deepcopy(longer)
    shorter["classify"]["epochs"] = 4  # it ran 5 already
    with pytest.raises(ValueError, match=r"classify.epochs may grow on --resume, not shrink \(saved 5, now 4\)"):
        classify(shorter, tmp_path / "r", resume=True, quiet=True, data=data)
    other = copy.deepcopy(longer)
    other["classify"]["lr"] = 0.5
    with pytest.raises(ValueError, match=r"config differs from the saved one \(classify.lr: saved"):
        classify(other, tmp_path / "r", resume=True, quiet=True, data=data)
    more = copy.deepcopy(cfg)
    more["pretrain"]["epochs"] = 3
    with pytest.raises(ValueError, match=r"pretrain.epochs: saved 2 vs now 3\); pretrain.scheduler cosine spans the "
                                         r"run's whole length"):
        pretrain(more, root / "pre", resume=True, quiet=True, data=data)


@pytest.mark.parametrize("scheduler", ["constant", "cosine_restarts"])
def test_a_pretraining_run_grows_on_resume_where_its_schedule_allows(small_setup, tmp_path, scheduler):
    """With learning rates that do not depend on the run's length, `pretrain --resume --pretrain.epochs N`
    continues a finished run to the backbone a run started with N gives, bit for bit, and keeps the shorter
    run's backbone beside it."""
    import copy

    from mulsupcon.train.pretrain import pretrain

    cfg, data, _ = small_setup
    short = copy.deepcopy(cfg)
    short["pretrain"].update(scheduler=scheduler, restart_epochs=1, epochs=2)
    pretrain(short, tmp_path / "r", quiet=True, data=data)
    first = load_checkpoint(tmp_path / "r" / "backbone.pt")["backbone"]
    longer = copy.deepcopy(short)
    longer["pretrain"]["epochs"] = 3
    pretrain(longer, tmp_path / "r", resume=True, quiet=True, data=data)
    pretrain(longer, tmp_path / "fresh", quiet=True, data=data)
    grown, fresh = (load_checkpoint(tmp_path / d / "backbone.pt")["backbone"] for d in ("r", "fresh"))
    kept = load_checkpoint(tmp_path / "r" / "backbone-2-epochs.pt")["backbone"]
    for k in fresh:
        torch.testing.assert_close(grown[k], fresh[k], rtol=0, atol=0)
        torch.testing.assert_close(kept[k], first[k], rtol=0, atol=0)
    assert any(not torch.equal(first[k], fresh[k]) for k in fresh)  # the third epoch changed the weights
    log = (tmp_path / "r" / "log.txt").read_text()
    assert "continued for longer (pretrain.epochs: saved 2 vs now 3)" in log and "backbone-2-epochs.pt" in log
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["pretrain"]["epochs"] == 3
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())) == 3
    shorter = copy.deepcopy(longer)
    shorter["pretrain"]["epochs"] = 2
    with pytest.raises(ValueError, match=r"pretrain.epochs may grow on --resume, not shrink \(saved 3, now 2\)"):
        pretrain(shorter, tmp_path / "r", resume=True, quiet=True, data=data)
    other = copy.deepcopy(longer)
    other["pretrain"]["lr"] = 0.5
    with pytest.raises(ValueError, match=r"differs from the saved one \(pretrain.lr: saved [^)]*\)$"):
        pretrain(other, tmp_path / "r", resume=True, quiet=True, data=data)
    # where pretrain.max_steps caps the run at the epochs it has done, nothing is added, and the log says why
    capped = copy.deepcopy(short)
    capped["pretrain"]["max_steps"] = 2 * cfg["pretrain"]["steps_per_epoch"]
    pretrain(capped, tmp_path / "c", quiet=True, data=data)
    capped["pretrain"]["epochs"] = 3
    pretrain(capped, tmp_path / "c", resume=True, quiet=True, data=data)
    assert "caps pretrain.epochs 3 at 2 epochs, which the run has done" in (tmp_path / "c" / "log.txt").read_text()
    assert not (tmp_path / "c" / "backbone-2-epochs.pt").exists()
    assert len(json.loads((tmp_path / "c" / "history.json").read_text())) == 2


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


def test_resume_with_an_optimizer_state_of_another_layout_says_why(small_setup):
    """A checkpoint whose optimizer state has another parameter layout (one flat tensor, as single-process
    CPU runs briefly kept it) cannot resume a run: a clear error, not torch's."""
    import copy

    from mulsupcon.io import atomic_torch_save
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


def test_training_from_an_unfinished_pretraining_run_says_to_resume_it(small_setup, tmp_path):
    """A pretraining run stopped before its last epoch has checkpoints but no backbone.pt: training from it
    says so and how to finish it (before: 'no backbone', as if the folder were not a run)."""
    import copy

    from mulsupcon.train.classify import classify
    from mulsupcon.train.pretrain import pretrain

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["pretrain"]["epochs"] = 3
    # (not in the shared root: other tests number their runs by its entries)
    run = pretrain(c, tmp_path / "unfinished", quiet=True, data=data, stop_after_epochs=1)
    c["classify"]["mode"] = "finetune"
    with pytest.raises(FileNotFoundError, match=r"has not finished .* --resume --run-dir"):
        classify(c, tmp_path / "from-unfinished", from_run=run, quiet=True, data=data)
    with pytest.raises(FileNotFoundError, match="no backbone in"):
        classify(c, tmp_path / "from-empty", from_run=run / "checkpoints", quiet=True, data=data)


def test_both_loops_say_when_subnormals_could_not_be_flushed_everywhere(small_setup, monkeypatch):
    """Where flushing cannot reach every thread, pretraining and classification still run, and their logs say
    why later epochs may slow down."""
    import copy

    from mulsupcon.train import classify as classify_module
    from mulsupcon.train import pretrain as pretrain_module

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["pretrain"]["epochs"] = 1
    c["classify"]["epochs"] = 1
    note = "subnormal floats are not flushed on every thread"
    for module in (pretrain_module, classify_module):
        monkeypatch.setattr(module, "denormals_flushed", lambda every_thread=True: False)
    pre = pretrain_module.pretrain(c, root / "flush-partial", quiet=True, data=data)
    assert note in (pre / "log.txt").read_text()
    classify_module.classify(c, root / "flush-partial-cls", from_run=pre, quiet=True, data=data)
    assert note in (root / "flush-partial-cls" / "log.txt").read_text()


def test_run_folder_is_locked_while_a_run_holds_it(tmp_path):
    """A second process (or a second open) of a folder in use is refused at once, naming the holder's pid."""
    from mulsupcon.train.rundir import RunDir

    cfg = load_config("demo")
    with RunDir.open(tmp_path / "r", cfg, {}, kind="pretrain", resume=False):
        with pytest.raises(RuntimeError, match=f"in use by another mulsupcon process \\(pid {os.getpid()}\\)"):
            RunDir.open(tmp_path / "r", cfg, {}, kind="pretrain", resume=True)
    RunDir.open(tmp_path / "r", cfg, {}, kind="pretrain", resume=True).close()  # released: resumable again


def test_a_start_that_fails_before_training_leaves_nothing_behind(small_setup, tmp_path):
    """``train --from /missing`` fails; the corrected command then works in the same folder."""
    import copy

    from mulsupcon.train.classify import classify

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["classify"] = {**cfg["classify"], "mode": "finetune", "epochs": 1}
    run = tmp_path / "ft"
    with pytest.raises(FileNotFoundError):
        classify(c, run, from_run=tmp_path / "missing", quiet=True, data=data)
    assert not run.exists()
    run.mkdir()
    (run / "mine.txt").write_text("the user's")
    with pytest.raises(FileNotFoundError):
        classify(c, run, from_run=tmp_path / "missing", quiet=True, data=data)
    assert sorted(p.name for p in run.iterdir()) == ["mine.txt"]  # the user's file stays, and nothing else
    # A folder holding a file a run writes (here the user's own log.txt) is refused, before anything is written.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "log.txt").write_text("the user's log")
    with pytest.raises(ValueError, match=r"holds log.txt but no run \(no config.yaml\): a new run would overwrite"):
        classify({**c, "classify": {**c["classify"], "mode": "scratch"}}, other, quiet=True, data=data)
    assert sorted(p.name for p in other.iterdir()) == ["log.txt"] and (other / "log.txt").read_text() == "the user's log"
    c["classify"]["mode"] = "scratch"
    assert classify(c, run, quiet=True, data=data)["best_epoch"] == 1
    assert (run / "history.csv").read_text().splitlines()[0] == "epoch,train_loss,val_loss,val_mAP,lr,first_step_loss"


def test_in_memory_runs_write_nothing_and_equal_folder_runs(small_setup, tmp_path, monkeypatch):
    """RunDir.in_memory(): the same training as a folder run, bitwise, with no file written."""
    import copy

    from mulsupcon.train.classify import classify
    from mulsupcon.train.pretrain import pretrain
    from mulsupcon.train.rundir import RunDir

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["pretrain"]["epochs"], c["classify"]["epochs"] = 2, 2
    folder = pretrain(c, tmp_path / "pre", quiet=True, data=data)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    mem = RunDir.in_memory()
    assert pretrain(c, mem, quiet=True, data=data) is None
    saved = load_checkpoint(folder / "backbone.pt")["backbone"]
    for key, value in mem.files["backbone.pt"]["backbone"].items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0, msg=key)
    cls = RunDir.in_memory()
    results = classify(c, cls, from_run=mem.files["backbone.pt"], quiet=True, data=data)
    assert results["protocols"]["fixed"]["mAP"] > 0 and len(cls.history) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_selection_by_validation_map_breaks_ties_by_validation_loss():
    from mulsupcon.train.classify import selection_score

    epochs = [{"val_mAP": 0.5, "val_loss": 0.30}, {"val_mAP": 0.9, "val_loss": 0.20},
              {"val_mAP": 0.9, "val_loss": 0.10}, {"val_mAP": 0.9, "val_loss": 0.15}, {"val_mAP": 0.8, "val_loss": 0.05}]
    assert min(range(5), key=lambda i: selection_score(epochs[i], "val_mAP")) == 2  # the tie goes to the lower loss
    assert min(range(5), key=lambda i: selection_score(epochs[i], "val_loss")) == 4


def test_without_validation_positives_the_validation_loss_alone_picks_the_checkpoint():
    from mulsupcon.train.classify import selection_score

    epochs = [{"val_mAP": float("nan"), "val_loss": v} for v in (0.4, 0.2, 0.3)]
    assert min(range(3), key=lambda i: selection_score(epochs[i], "val_mAP")) == 1
    assert selection_score(epochs[1], "val_mAP") < selection_score(epochs[0], "val_mAP")


@pytest.mark.filterwarnings("ignore:training diverged")
@pytest.mark.parametrize("head_init", ["random", "fit"])
def test_a_run_whose_validation_rows_have_no_positive_completes(tmp_path, head_init):
    """A rare label can leave the validation rows without any positive: the validation mAP is then NaN in
    every epoch. The run must still keep a checkpoint (the lowest validation loss) and finish."""
    import copy

    from mulsupcon.data.dataset import MultiLabelDataset, Splits
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain
    from mulsupcon.train.rundir import RunDir

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)).astype(np.float32)
    y = np.stack([x[:, 0] > 0.8, x[:, 1] > 1.0], axis=1).astype(np.uint8)
    y[60:] = 0  # the validation rows (60-74) and the test rows (75-89) have no positive

    def part(rows):
        return MultiLabelDataset(features=x[rows], labels=y[rows], label_names=["a", "b"], name="toy")

    cfg = load_config("vectors", {"model.hidden": [16], "model.head_hidden": 16, "model.embed_dim": 8,
                                  "pretrain.epochs": 2, "classify.epochs": 4, "classify.head_init": head_init,
                                  "dataset.name": "toy"})
    data = prepare_data(cfg["dataset"], Splits(train=part(slice(0, 60)), val=part(slice(60, 75)),
                                               test=part(slice(75, 90))))
    pre = RunDir.in_memory()
    pretrain(cfg, pre, quiet=True, data=data)
    c = copy.deepcopy(cfg)
    c["classify"]["mode"] = "finetune"
    run = RunDir.in_memory()
    results = classify(c, run, from_run=pre.files["backbone.pt"], quiet=True, data=data)
    losses = [h["val_loss"] for h in run.history]
    assert all(np.isnan(h["val_mAP"]) for h in run.history) and len(losses) == 4
    # the kept checkpoint is the epoch of the lowest validation loss (epoch 0, the fitted head, counts too)
    assert results["best_epoch"] == 1 + int(np.argmin(losses)) or (head_init == "fit" and results["best_epoch"] == 0)


def test_training_rows_without_any_positive_label_are_refused():
    from mulsupcon.data.dataset import MultiLabelDataset, Splits
    from mulsupcon.train.data import prepare_data

    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    ds = MultiLabelDataset(features=x, labels=np.zeros((30, 3), np.uint8), label_names=list("abc"), name="toy")
    with pytest.raises(ValueError, match=r"toy: none of the 30 training rows has a positive label in any of its 3 "
                                         r"label column\(s\), so there is nothing to learn"):
        prepare_data({"name": "toy"}, Splits(train=ds, val=ds, test=ds))


def test_val_map_selection_drives_the_checkpoint_and_the_plateau(small_setup):
    """The chosen epoch is the history's best (mAP, then loss); the LR plateau follows the validation mAP."""
    cfg, data, root = small_setup
    # lr 3e-2: the validation mAP peaks (epoch 4 here) while the validation loss still falls
    c, res = _trained(cfg, data, root, "scratch", epochs=8, lr=3e-2, select_by="val_mAP", plateau_patience=0,
                      plateau_cooldown=0, early_stop_patience=100)
    run = sorted(p for p in root.iterdir() if p.name.startswith("scratch"))[-1]
    hist = json.loads((run / "history.json").read_text())
    assert res["best_epoch"] == 1 + min(range(len(hist)), key=lambda i: (-hist[i]["val_mAP"], hist[i]["val_loss"]))
    # an independent replay of the plateau rule on the recorded validation mAP: patience 0, factor 0.1
    lr, best_map = 3e-2, -1.0
    for h in hist:
        if h["val_mAP"] > best_map * (1 + float(c["classify"]["plateau_threshold"])):
            best_map = h["val_mAP"]
        else:
            lr *= float(c["classify"]["plateau_factor"])
        assert h["lr"] == pytest.approx(lr)
    assert lr < 3e-2, "the case must include an epoch where the mAP did not improve"


def test_constant_scheduler_keeps_the_learning_rate(small_setup):
    cfg, data, root = small_setup
    _trained(cfg, data, root, "scratch", epochs=8, lr=3e-2, select_by="val_mAP", scheduler="constant",
             plateau_patience=0, plateau_cooldown=0, early_stop_patience=100)
    run = sorted(p for p in root.iterdir() if p.name.startswith("scratch"))[-1]
    hist = json.loads((run / "history.json").read_text())
    assert len(hist) == 8 and all(h["lr"] == 3e-2 for h in hist)


def test_fit_logistic_matches_scikit_learn_per_label():
    """Oracle: one scikit-learn LogisticRegression(C) per label on the standardised features."""
    from sklearn.linear_model import LogisticRegression

    from mulsupcon.train.classify import fit_logistic

    rng = np.random.default_rng(0)
    h = rng.normal(size=(200, 6)) * np.array([1, 5, 0.2, 3, 1, 10]) + 2.0  # uneven scales: standardisation matters
    truth = rng.normal(size=(6, 3))
    y = (h @ truth + rng.normal(size=(200, 3)) > 2.0).astype(np.float32)
    for c in (0.05, 1.0):
        w, b, iterations = fit_logistic(torch.tensor(h, dtype=torch.float32), torch.tensor(y), c)
        assert iterations > 0
        z = (h - h.mean(0)) / h.std(0)
        for j in range(3):
            ref = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(z, y[:, j])
            ours = h @ w[j].double().numpy() + float(b[j])
            np.testing.assert_allclose(ours, ref.decision_function(z), rtol=2e-3, atol=5e-3)  # float32 L-BFGS


def test_fitted_head_starts_finetuning_and_is_the_first_candidate(small_setup):
    """head_init=fit: the linear layer starts as the validation-chosen logistic regression, which is
    checkpoint "epoch 0"; a run whose training only makes it worse evaluates that head."""
    from mulsupcon.train.classify import build_classifier, fit_linear_head, frozen_features, score_split

    cfg, data, root = small_setup
    model, _ = build_classifier(cfg, data, root / "pre")
    info = fit_linear_head(model, data.train, data.val, torch.device("cpu"), c_grid=[0.01, 1.0])
    assert info["C"] in (0.01, 1.0)
    h, y = frozen_features(model, data.train, torch.device("cpu"))
    with torch.no_grad():
        fresh = torch.nn.BCEWithLogitsLoss()(model.fc(h), y)
    assert float(fresh) < float(np.log(2)), "the fitted head must beat a constant 0.5"
    # lr 10: finetuning ruins the model, so the fitted head (epoch 0) is the best checkpoint
    c, res = _trained(cfg, data, root, "finetune", head_init="fit", head_fit_c=[0.01, 1.0], lr=10.0,
                      lr_backbone=10.0, select_by="val_mAP", early_stop_patience=100)
    assert res["best_epoch"] == 0
    run = sorted(p for p in root.iterdir() if p.name.startswith("finetune"))[-1]
    best = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    torch.testing.assert_close(best["fc.weight"], model.fc.weight.detach())
    assert "logistic regression on the frozen features" in (run / "log.txt").read_text()
    s, _, _ = score_split(model, data.test, torch.device("cpu"))
    np.testing.assert_allclose(np.load(run / "scores.npz")["test_scores"], s, rtol=1e-5, atol=1e-6)


def test_head_init_options_are_validated():
    with pytest.raises(ValueError, match="classify.head_init"):
        load_config("demo", {"classify.head_init": "zeros"})
    with pytest.raises(ValueError, match="classify.head_fit_c"):
        load_config("demo", {"classify.head_fit_c": [0.1, -1]})
    with pytest.raises(ValueError, match="classify.head_fit_c"):
        load_config("demo", {"classify.head_fit_c": []})



def test_pretrain_step_adds_the_weighted_instance_term():
    """pretrain.instance_weight w: the step's loss is MulSupCon + w * the instance term, on the same queries
    and references; the duplicate groups go through the queue with the labels and come back intact."""
    from torch import nn

    from mulsupcon.losses import InstanceContrastLoss, MulSupConLoss
    from mulsupcon.moco import LabelQueue, MoCo
    from mulsupcon.train.pretrain import GROUP_BYTES, column_groups, group_columns, pretrain_step

    big = torch.tensor([0, 1, 255, 256, 70_000, 2**32 - 1])
    assert torch.equal(column_groups(group_columns(big)), big)
    torch.manual_seed(0)
    v1, v2 = torch.randn(4, 6), torch.randn(4, 6)
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]], dtype=torch.uint8)
    groups = torch.tensor([0, 1, 0, 300])
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    mulsupcon, instance = MulSupConLoss(0.2, normalize=False), InstanceContrastLoss(0.2)
    losses = []
    for extra, batch in ((None, (v1, v2, y)), ((0.5, instance), (v1, v2, y, groups))):
        torch.manual_seed(0)
        m = MoCo(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), nn.Linear(8, 4),
                 LabelQueue(10, 4, 3 + (GROUP_BYTES if extra else 0)), momentum=0.9)
        opt = torch.optim.SGD(m.query_encoder.parameters(), lr=0.1)
        losses.append(float(pretrain_step(m, m, mulsupcon, opt, scaler, None, batch, instance=extra)))
        if extra:
            keys, tagged = m.queue.stored()
            assert torch.equal(tagged[:, :3], y) and torch.equal(column_groups(tagged[:, 3:]), groups)
    torch.manual_seed(0)
    m = MoCo(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), nn.Linear(8, 4), LabelQueue(10, 4, 3), momentum=0.9)
    with torch.no_grad():
        query, refs, _ = m(v1, v2, y)
    assert losses[1] - losses[0] == pytest.approx(0.5 * float(instance(query, refs, groups, groups)), rel=1e-5)
    with pytest.raises(ValueError, match="pretrain.instance_weight"):
        load_config("demo", {"pretrain.instance_weight": -1.0})


def test_duplicate_groups_of_dense_and_sparse_rows() -> None:
    import scipy.sparse as sp
    import warnings

    from mulsupcon.data.dataset import MultiLabelDataset
    from mulsupcon.train.data import TensorSource

    x = np.array([[1, 0, 2], [0, 0, 0], [1, 0, 2], [3, 0, 0], [0, 0, 0], [1, 0, 2.5]], dtype=np.float32)
    y = np.zeros((6, 2), dtype=np.uint8)
    want = [0, 1, 0, 2, 1, 3]
    dense = TensorSource(MultiLabelDataset(features=x, labels=y, label_names=['a', 'b']))
    assert dense.duplicate_groups().tolist() == want
    m = sp.csr_matrix(x)
    with warnings.catch_warnings():  # SparseEfficiencyWarning
        warnings.simplefilter("ignore")
        m[3, 1] = 0.0  # an explicitly stored zero: the same row as without it
    assert m.nnz == 8  # 7 non-zeros and the stored zero
    assert TensorSource(MultiLabelDataset(features=m, labels=y, label_names=['a', 'b'])).duplicate_groups().tolist() == want


def test_load_run_says_what_a_folder_is_and_inputs_must_be_numbers(small_setup, tmp_path):
    from mulsupcon import load_run

    cfg, data, root = small_setup
    # A pretraining run embeds raw rows as the Figure 3 code embeds its split (standardised by the training
    # rows, kept in backbone.pt), and says what to do for probabilities.
    from mulsupcon.plots import run_embeddings

    backbone = load_run(root / "pre")
    assert not backbone.has_classifier and backbone.threshold is None
    n_in = data.input_shape[0]
    assert repr(backbone) == (f"TrainedModel({str(root / 'pre' / 'backbone.pt')!r}: pretrained backbone, {n_in} "
                              "features -> embeddings of 32; no classifier)")
    x, _ = data.test.batch(torch.arange(data.test.n))  # standardised by the training rows' mean and std
    raw = (x * data.train.std + data.train.mean).numpy()
    np.testing.assert_allclose(backbone.transform(raw), run_embeddings(root / "pre", "test")[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"pretraining run's backbone: it embeds rows .*; train one on it first: "
                                         r"mulsupcon train --mode finetune --from "):
        backbone.predict_proba(raw)
    from mulsupcon.predict import predict_file

    np.savez(tmp_path / "rows.npz", X=raw[:5])  # `mulsupcon predict --embeddings` writes the same numbers
    predict_file(root / "pre", tmp_path / "rows.npz", tmp_path / "emb.csv", embeddings=True)
    table = np.genfromtxt(tmp_path / "emb.csv", delimiter=",", names=True)
    width = backbone.backbone.out_dim  # the backbone's features (32 here), not the projection head's
    assert table.dtype.names == tuple(f"emb{j}" for j in range(width)) and width == 32
    np.testing.assert_allclose(table.view((float, width)), backbone.transform(raw[:5]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"pretraining run's backbone"):
        predict_file(root / "pre", tmp_path / "rows.npz", tmp_path / "p.csv")
    with pytest.raises(ValueError, match=r"--embeddings and --labels: give one of them \(--embeddings writes the "
                                         r"backbone's features, --labels / --threshold 0/1 labels"):
        predict_file(root / "pre", tmp_path / "rows.npz", tmp_path / "p.csv", embeddings=True, labels=True)
    with pytest.raises(FileNotFoundError, match=r"nope: no such run folder$"):
        load_run(tmp_path / "nope")
    # evaluate says the same (it said 'scores.npz not found' for each), and names an unfinished run as such.
    from mulsupcon.evaluate import evaluate_run

    with pytest.raises(FileNotFoundError, match=r"pre is a pretraining run \(backbone.pt, no classifier\)"):
        evaluate_run(root / "pre")
    with pytest.raises(FileNotFoundError, match=r"nope: no such run folder$"):
        evaluate_run(tmp_path / "nope")
    (tmp_path / "stopped" / "checkpoints").mkdir(parents=True)
    (tmp_path / "stopped" / "checkpoints" / "last.pt").write_bytes(b"")
    for call in (evaluate_run, load_run):
        with pytest.raises(FileNotFoundError, match=r"stopped has not finished .* --resume --run-dir .*stopped, then"):
            call(tmp_path / "stopped")
    _trained(cfg, data, root, "scratch", epochs=1)
    run = sorted(p for p in root.iterdir() if p.name.startswith("scratch"))[-1]
    model = load_run(run)
    n_features = data.input_shape[0]
    assert repr(model) == (f"TrainedModel({str(run / 'model.pt')!r}: scratch, {n_features} features -> "
                           f"{len(data.label_names)} labels, threshold {model.threshold:g})")
    with pytest.raises(ValueError, match=r"expected numeric rows, got values of type <U1"):
        model.predict_proba(np.full((2, n_features), "a"))
    assert model.predict_proba(np.ones((2, n_features), dtype=bool)).shape == (2, len(data.label_names))


def test_prediction_converts_a_batch_at_a_time_with_the_same_result(small_setup, tmp_path):
    """Rows are densified and standardised per batch: any batch size, dense or sparse, gives the same
    probabilities, and a bad value is named by its row in the whole input."""
    import scipy.sparse as sp

    from mulsupcon import load_run

    cfg, data, root = small_setup
    _trained(cfg, data, root, "scratch", epochs=1)
    run = sorted(p for p in root.iterdir() if p.name.startswith("scratch"))[-1]
    model = load_run(run)
    n_features = data.input_shape[0]
    x = np.random.default_rng(0).normal(size=(700, n_features)).astype(np.float32)
    x[x < 0.5] = 0.0  # mostly zeros, as a sparse input would be
    whole = model._forward(x, "proba", batch_size=1000)
    np.testing.assert_allclose(model._forward(x, "proba", batch_size=64), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict_proba(sp.csr_matrix(x)), whole, rtol=1e-6, atol=1e-7)
    x[650, 1] = np.inf
    with pytest.raises(ValueError, match=r"input holds inf at row 650, column 1 \('[^']+'\); every feature must be a finite"):
        model.predict_proba(x)
    from mulsupcon.predict import predict_file

    np.savez(tmp_path / "inf.npz", X=x)  # from a file, the message names it: a row number alone does not
    with pytest.raises(ValueError, match=r"inf\.npz: input holds inf at row 650, column 1 \('[^']+'\)"):
        predict_file(run, tmp_path / "inf.npz", tmp_path / "p.csv")
    x64 = x.astype(np.float64)
    x64[650, 1] = 1e300  # finite, but not in float32: it would become inf after the cast
    with pytest.raises(ValueError, match=r"input holds 1e\+300 at row 650, column 1"):
        model.predict_proba(x64)


def test_a_backbone_transfers_to_another_image_side_but_not_to_other_features():
    """Vectors need the same features; an image backbone (global pooling) takes another side, not other
    channels (another side was refused as another input shape)."""
    from mulsupcon.models import build_backbone
    from mulsupcon.train.classify import load_backbone_weights

    mlp = {"backbone": "mlp", "hidden": [8], "dropout": 0.0}
    state = {"backbone": build_backbone(mlp, (5,)).state_dict(), "model": mlp, "input_shape": [5]}
    with pytest.raises(ValueError, match=r"trained on inputs of shape \(5,\), but this dataset has \(6,\)"):
        load_backbone_weights(build_backbone(mlp, (6,)), state, (6,))
    net = {"backbone": "resnet18", "small_input": True}
    source = build_backbone(net, (3, 16, 16))
    target = build_backbone(net, (3, 24, 24))
    load_backbone_weights(target, {"backbone": source.state_dict(), "model": net, "input_shape": [3, 16, 16]}, (3, 24, 24))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match=r"trained on inputs of shape \(3, 16, 16\), but this dataset has \(1, 16, 16\)"):
        load_backbone_weights(build_backbone({**net, "in_channels": 1}, (1, 16, 16)),
                              {"backbone": source.state_dict(), "model": net, "input_shape": [3, 16, 16]}, (1, 16, 16))


def test_runs_lists_each_run_with_its_state_and_test_metrics(small_setup, tmp_path, capsys):
    """`mulsupcon runs`: every run folder below the given ones, oldest first, finished or where it stopped
    (with the command that continues it) or training now, and a classification run's test metrics as its
    metrics.json holds them."""
    import copy
    import shutil

    from filelock import FileLock

    from mulsupcon.cli import main
    from mulsupcon.train.classify import classify
    from mulsupcon.train.rundir import lock_holder

    cfg, data, root = small_setup
    shutil.copytree(root / "pre", tmp_path / "runs" / "pre")
    c = copy.deepcopy(cfg)
    c["classify"]["mode"] = "scratch"
    classify(c, tmp_path / "runs" / "a" / "done", quiet=True, data=data)
    classify(c, tmp_path / "runs" / "stopped", quiet=True, data=data, stop_after_epochs=2)
    assert main(["runs", str(tmp_path / "runs")]) == 0
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in capsys.readouterr().out.splitlines()
            if line.startswith(f"| {tmp_path}")]
    assert [row[0] for row in rows] == [str(tmp_path / "runs" / n) for n in ("pre", "a/done", "stopped")]
    assert [row[1] for row in rows] == ["pretrain", "scratch", "scratch"] and {row[2] for row in rows} == {"multidigits"}
    assert rows[0][3] == "finished" and rows[1][3] == "finished"
    assert rows[2][3] == f"stopped after epoch 2: --resume --run-dir {tmp_path / 'runs' / 'stopped'}"
    saved = json.loads((tmp_path / "runs" / "a" / "done" / "metrics.json").read_text())
    assert rows[1][4] == f"{saved['best_epoch']} / 6" and rows[2][4] == "- / 2"
    paper = saved["protocols"]["validation"]
    assert rows[1][5:11] == [f"{paper[m]:.3f}" for m in ("mAP", "hamming_accuracy", "example_f1", "macro_f1",
                                                         "micro_f1", "precision_at_1")]
    assert rows[0][5] == "-" and rows[2][5] == "-"
    # listing runs, evaluating one from its saved scores and plotting its curves need no torch (2 s and 650 MB)
    done = str(tmp_path / "runs" / "a" / "done")
    code = ("import sys; from mulsupcon.cli import main; "
            f"codes = main(['runs', {str(tmp_path / 'runs')!r}]), main(['evaluate', {done!r}]), "
            f"main(['plot', 'curves', {done!r}, '--out', {str(tmp_path / 'c.png')!r}]); "
            "print(codes, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert str(tmp_path / "runs" / "stopped") in out and "| test, validation protocol | " in out
    assert out.strip().splitlines()[-1] == "(0, 0, 0) False" and (tmp_path / "c.png").is_file()
    # --json: the same runs, every protocol unrounded
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in records] == [row[0] for row in rows]
    assert [r["state"] for r in records] == ["finished", "finished", "stopped"]
    assert [r["epochs_run"] for r in records] == [2, 6, 2] and records[1]["best_epoch"] == saved["best_epoch"]
    assert records[1]["protocols"] == saved["protocols"] and records[0]["protocols"] == records[2]["protocols"] == {}
    assert records[0]["best_epoch"] is None and records[1]["dataset"] == "multidigits" and records[1]["pid"] is None
    # a folder whose lock another process holds is training now (the lock is the run's own, as a run takes it)
    lock = FileLock(str(tmp_path / "runs" / "stopped" / ".lock"))
    lock.acquire()
    (tmp_path / "runs" / "stopped" / ".lock.owner").write_text("4242\n")
    try:
        assert lock_holder(tmp_path / "runs" / "stopped") == "4242"
        assert main(["runs", str(tmp_path / "runs" / "stopped")]) == 0
        assert "| training (pid 4242) |" in capsys.readouterr().out
        assert main(["runs", str(tmp_path / "runs" / "stopped"), "--json"]) == 0
        assert [(r["state"], r["pid"]) for r in json.loads(capsys.readouterr().out)] == [("training", "4242")]
    finally:
        lock.release()
    assert lock_holder(tmp_path / "runs" / "stopped") is None  # released (a killed run leaves .lock.owner behind)
    assert main(["runs", str(tmp_path / "nothing")]) == 2
    assert "nothing: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 0
    assert "no runs in" in capsys.readouterr().out


def test_run_json_keeps_the_command_and_software_and_a_resume_with_other_software_warns(small_setup, tmp_path,
                                                                                         monkeypatch):
    """run.json names the command and the versions a run was made with; resuming under another torch (or
    mulsupcon, numpy, Python) goes on with a warning, kept in run.json, since rounding may then differ. A
    scratch run given a pretraining run (for its data and model) does not record it as pretrained from it."""
    import copy

    from mulsupcon.train.classify import classify
    from mulsupcon.train.rundir import command_line
    from mulsupcon.train.runtime import software_versions

    cfg, data, root = small_setup
    c = copy.deepcopy(cfg)
    c["classify"]["mode"] = "scratch"
    classify(c, tmp_path / "r", quiet=True, data=data, stop_after_epochs=2)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert "pretrained_from" not in json.loads((tmp_path / "r" / "split.json").read_text())
    classify(c, tmp_path / "from", quiet=True, data=data, from_run=root / "pre", stop_after_epochs=1)
    assert "pretrained_from" not in json.loads((tmp_path / "from" / "split.json").read_text())  # scratch: not used
    import torch as _torch

    assert info["software"] == software_versions() and info["software"]["torch"] == _torch.__version__
    assert info["command"] == command_line() and "warnings" not in info
    for argv, typed in ((["/venv/bin/mulsupcon", "train", "--run-dir", "my runs/a"], "mulsupcon train --run-dir 'my runs/a'"),
                        (["/src/mulsupcon/__main__.py", "pretrain"], "python -m mulsupcon pretrain")):
        monkeypatch.setattr(sys, "argv", argv)
        assert command_line() == typed
    info["software"]["torch"] = "1.0.0"
    (tmp_path / "r" / "run.json").write_text(json.dumps(info))
    classify(c, tmp_path / "r", quiet=True, data=data, resume=True)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["warnings"] == [f"resumed with other software than the run was made with (torch 1.0.0 -> "
                                f"{_torch.__version__}): its result may differ slightly from an uninterrupted run's"]
    assert "warning: resumed with other software" in (tmp_path / "r" / "log.txt").read_text()
    assert (tmp_path / "r" / "model.pt").is_file()
