"""Config resolution and the command line's argument handling."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mulsupcon.cli import main, split_overrides
from mulsupcon.config import DEFAULTS, available_configs, load_config

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_every_shipped_config_resolves_and_only_uses_known_keys():
    names = available_configs()
    assert {"yeast", "yeast-authors", "scene", "delicious", "demo"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert set(cfg) == set(DEFAULTS)


def test_overrides_are_parsed_as_yaml_and_applied():
    over = split_overrides(["--pretrain.lr", "1e-3", "--model.hidden=[8,8]", "--pretrain.chunk_size", "null",
                            "--pretrain.positives", "any"])
    assert over == {"pretrain.lr": 1e-3, "model.hidden": [8, 8], "pretrain.chunk_size": None, "pretrain.positives": "any"}
    cfg = load_config("yeast", over)
    assert cfg["pretrain"]["lr"] == 1e-3 and cfg["model"]["hidden"] == [8, 8] and cfg["pretrain"]["positives"] == "any"
    assert cfg["dataset"]["name"] == "yeast"


def test_top_level_keys_are_flags_and_thread_settings_are_checked():
    over = split_overrides(["--cpu.num_threads", "2", "--device=cpu", "--seed", "3"])
    cfg = load_config("yeast", over)
    assert cfg["cpu"]["num_threads"] == 2 and cfg["device"] == "cpu" and cfg["seed"] == 3
    with pytest.raises(ValueError, match="cpu.num_threads must be 'auto' or a positive integer, got 0"):
        load_config("yeast", {"cpu.num_threads": 0})
    with pytest.raises(SystemExit, match="unrecognised argument '--threads'"):
        split_overrides(["--threads", "2"])


def test_unknown_key_suggests_the_closest_one():
    with pytest.raises(ValueError, match="Did you mean 'temperature'"):
        load_config("yeast", {"pretrain.temprature": 0.2})
    with pytest.raises(ValueError, match="positives must be one of mulsupcon, all, any"):
        load_config("yeast", {"pretrain.positives": "some"})
    with pytest.raises(ValueError, match="temperature must be > 0"):
        load_config("yeast", {"pretrain.temperature": 0})
    with pytest.raises(ValueError, match=r"eval.threshold must be in \[0, 1\] \(a cut on probabilities\), got 1.5"):
        load_config("yeast", {"eval.threshold": 1.5})


@pytest.mark.parametrize("override, message", [
    ({"classify.lr": -1e-3}, "classify.lr must be >= 0, got -0.001"),
    ({"pretrain.lr": -1e-3}, "pretrain.lr must be >= 0"),
    ({"classify.lr_backbone": -1}, "classify.lr_backbone must be >= 0"),
    ({"classify.weight_decay": -1e-4}, "classify.weight_decay must be >= 0"),
    ({"pretrain.queue_size": -1}, "pretrain.queue_size must be >= 0"),
    ({"pretrain.momentum": 1.5}, r"pretrain.momentum must be in \[0, 1\]"),
    ({"model.dropout": 1.5}, r"model.dropout must be in \[0, 1\)"),
    ({"model.head_dropout": -0.1}, "model.head_dropout must be in"),
    ({"model.hidden": [256, 0]}, "model.hidden, model.head_hidden and model.embed_dim take positive integers"),
    ({"model.embed_dim": 0}, "take positive integers"),
])
def test_ranges_are_checked_naming_the_key(override, message):
    """Out-of-range values are refused before any run starts, naming the key (before: torch's own errors
    without the key, or none: a negative queue size or weight decay)."""
    with pytest.raises(ValueError, match=message):
        load_config("yeast", override)
    load_config("yeast", {key: DEFAULTS_OF[key] for key in override})  # the defaults pass


DEFAULTS_OF = {"classify.lr": 4e-4, "pretrain.lr": 4e-4, "classify.lr_backbone": 4e-5, "classify.weight_decay": 0.0,
               "pretrain.queue_size": 256, "pretrain.momentum": 0.999, "model.dropout": 0.2, "model.head_dropout": 0.1,
               "model.hidden": [256, 512, 256], "model.embed_dim": 256}


def test_authors_config_matches_the_documented_facts():
    cfg = load_config("yeast-authors")
    p = cfg["pretrain"]
    assert (p["steps_per_epoch"], p["batch_size"], p["queue_size"], p["epochs"]) == (1000, 64, 256, 150)
    assert (p["scheduler"], p["restart_epochs"], p["restart_mult"], p["eta_min"]) == ("cosine_restarts", 50, 2, 1e-4)
    assert p["use_partial_queue"] is False and p["weight_decay"] == 1e-5
    assert cfg["dataset"]["name"] == "yeast-official"


def test_cli_reports_bad_input_with_exit_code_2(capsys):
    assert main(["pretrain", "--config", "no-such-config"]) == 2
    assert "no-such-config" in capsys.readouterr().err
    assert main(["pretrain", "--pretrain.lrr", "1"]) == 2
    assert "Did you mean 'lr'" in capsys.readouterr().err


def test_cli_config_show_and_help_run_as_a_program():
    out = subprocess.run([sys.executable, "-m", "mulsupcon", "config", "show", "yeast-authors"], capture_output=True,
                         text=True, env={"PYTHONPATH": SRC, "PATH": ""}, check=True).stdout
    assert "steps_per_epoch: 1000" in out
    out = subprocess.run([sys.executable, "-m", "mulsupcon", "--help"], capture_output=True, text=True,
                         env={"PYTHONPATH": SRC, "PATH": ""}, check=True).stdout
    for cmd in ("pretrain", "train", "evaluate", "demo", "datasets", "plot", "reproduce", "benchmark"):
        assert cmd in out


def test_config_list_says_what_each_shipped_config_is_for(capsys):
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == available_configs()
    listed = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert listed["vectors"] == "The default for your own vector data (--dataset.path FILE without --config)"
    assert listed["coco-tiny"].startswith("Smoke-test scale on a real MS-COCO 2017 subset in the data home (coco-tiny-zzowenzz: 80")
    assert all(0 < len(text) <= 100 for text in listed.values())


def test_scheduled_lr_cosine_and_restarts():
    from mulsupcon.train.optim import scheduled_factor

    sec = {"scheduler": "cosine", "lr": 1.0, "eta_min": 0.0, "epochs": 10}
    assert scheduled_factor(sec, 0, 0, 4) == pytest.approx(1.0)
    assert scheduled_factor(sec, 5, 0, 4) == pytest.approx(0.5)
    assert scheduled_factor(sec, 9, 3, 4) == pytest.approx(0.5 * (1 + __import__("math").cos(__import__("math").pi * 39 / 40)))
    # SGDR with T_0 = 2 epochs, T_mult = 2: restarts at epochs 2 and 6; floor eta_min / lr
    sec = {"scheduler": "cosine_restarts", "lr": 4e-4, "eta_min": 1e-4, "restart_epochs": 2, "restart_mult": 2}
    f = [scheduled_factor(sec, e, 0, 1) for e in range(8)]
    assert f[0] == pytest.approx(1.0) and f[2] == pytest.approx(1.0) and f[6] == pytest.approx(1.0)
    assert f[1] == pytest.approx(0.25 + 0.75 * 0.5) and f[4] == pytest.approx(0.25 + 0.75 * 0.5)


def test_values_of_the_wrong_type_name_the_key_and_the_type():
    with pytest.raises(ValueError, match="pretrain.lr must be a number, got 'fast'"):
        load_config("yeast", {"pretrain.lr": "fast"})
    with pytest.raises(ValueError, match="classify.batch_size must be an integer, got 1.5"):
        load_config("yeast", {"classify.batch_size": 1.5})
    with pytest.raises(ValueError, match=r"model.hidden must be a list"):
        load_config("yeast", {"model.hidden": 5})
    assert load_config("yeast", {"pretrain.eta_min": 0})["pretrain"]["eta_min"] == 0  # an int is a number


def test_output_piped_into_head_ends_quietly(tmp_path):
    import subprocess
    import sys

    # The reader is gone before the first line is written (as `head` is after its lines): EPIPE on write.
    proc = subprocess.Popen([sys.executable, "-m", "mulsupcon", "config", "show", "yeast"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_scheduled_epochs_bound_the_optimiser_steps():
    from mulsupcon.train.optim import scheduled_epochs

    sec = {"epochs": 150, "min_steps": None, "max_steps": None}
    assert scheduled_epochs(sec, 4) == 150 and scheduled_epochs(sec, 600) == 150
    sec.update(min_steps=3000, max_steps=20000)
    assert scheduled_epochs(sec, 4) == 750            # a tiny set: 750 epochs x 4 steps = 3000 steps
    assert scheduled_epochs(sec, 37) == 150           # yeast-sized: 5550 steps, inside the bounds
    assert scheduled_epochs(sec, 600) == 33           # a large set: 19,800 steps
    assert scheduled_epochs(sec, 50_000) == 1         # never below one epoch
    with pytest.raises(ValueError, match="min_steps .* larger than pretrain.max_steps"):
        load_config("vectors", {"pretrain.min_steps": 10, "pretrain.max_steps": 5})
    with pytest.raises(ValueError, match="pretrain.max_steps must be a positive integer or null"):
        load_config("vectors", {"pretrain.max_steps": 0})


def test_a_bounded_schedule_runs_and_says_so(tmp_path):
    from mulsupcon.train.pretrain import pretrain
    from mulsupcon.train.rundir import RunDir

    cfg = load_config("demo", {"model.hidden": [16], "model.head_hidden": 16, "model.embed_dim": 8,
                               "pretrain.epochs": 1, "pretrain.steps_per_epoch": 2, "pretrain.min_steps": 6})
    lines: list[str] = []
    run = RunDir.in_memory()
    run.log = lines.append  # what the loop would print
    pretrain(cfg, run, quiet=True, echo=False)
    assert len(run.history) == 3  # 3 epochs x 2 steps = min_steps
    assert any("3 epochs x 2 steps" in ln and "bounded by min_steps 6" in ln for ln in lines)


def test_a_long_run_of_short_epochs_logs_one_in_every_epochs_over_100(tmp_path):
    """The step minimum gives a small set hundreds of one-step epochs (750 lines for 128 rows); the log shows
    every (epochs // 100)-th, the first and the last, while the history keeps them all."""
    from mulsupcon.train.pretrain import pretrain
    from mulsupcon.train.rundir import RunDir

    cfg = load_config("demo", {"model.hidden": [8], "model.head_hidden": 8, "model.embed_dim": 4, "pretrain.queue_size": 16,
                               "pretrain.epochs": 250, "pretrain.steps_per_epoch": 1, "pretrain.batch_size": 8})
    lines: list[str] = []
    run = RunDir.in_memory()
    run.log = lines.append
    written = []
    save = run.save_checkpoint
    run.save_checkpoint = lambda name, state: (written.append(state["epoch"]), save(name, state))
    pretrain(cfg, run, quiet=True, echo=False)
    logged = [int(re.match(r"epoch (\d+)/250 ", ln).group(1)) for ln in lines if re.match(r"epoch \d+/250 ", ln)]
    assert len(run.history) == 250
    assert logged == [1, *range(2, 251, 2)]
    assert written == [250]  # checkpoint_every auto: 500 steps between checkpoints, and one after the last epoch


def test_an_explicit_epoch_count_is_not_bounded_by_the_default_steps(tmp_path):
    base = load_config("vectors")
    assert (base["pretrain"]["min_steps"], base["pretrain"]["max_steps"]) == (3000, 20000)
    assert base["pretrain"]["weight_decay"] == 1e-4 and load_config("yeast")["pretrain"]["weight_decay"] == 0.0
    mine = load_config("vectors", {"pretrain.epochs": 2})
    assert mine["pretrain"]["epochs"] == 2 and mine["pretrain"]["min_steps"] is None and mine["pretrain"]["max_steps"] is None
    both = load_config("vectors", {"pretrain.epochs": 2, "pretrain.min_steps": 10})
    assert both["pretrain"]["min_steps"] == 10 and both["pretrain"]["max_steps"] is None
    # the same rule for a file layered on a base
    (tmp_path / "mine.yaml").write_text("base: vectors\npretrain: {epochs: 2, max_steps: 50}\n")
    (tmp_path / "other.yaml").write_text("base: vectors\npretrain: {lr: 1.0e-3}\n")
    mine = load_config(tmp_path / "mine.yaml")
    assert (mine["pretrain"]["epochs"], mine["pretrain"]["min_steps"], mine["pretrain"]["max_steps"]) == (2, None, 50)
    assert (load_config(tmp_path / "other.yaml")["pretrain"]["min_steps"], load_config(tmp_path / "mine.yaml", {
        "pretrain.epochs": 3})["pretrain"]["max_steps"]) == (3000, None)
    # The paper's configs keep their schedule in epochs.
    for name in ("yeast", "scene", "delicious", "yeast-authors"):
        cfg = load_config(name)
        assert cfg["pretrain"]["min_steps"] is None and cfg["pretrain"]["max_steps"] is None


def test_reproduce_refuses_to_overwrite_a_curated_page_and_writes_its_own_report_by_default(tmp_path, monkeypatch):
    from mulsupcon import cli, reproduce

    curated = tmp_path / "vectors.md"
    curated.write_text("# Vector datasets: reproduction of Tables 2/3 (yeast, scene, delicious)\n\nEach dataset...\n")
    before = curated.read_bytes()
    with pytest.raises(FileExistsError, match=r"vectors\.md exists and is not a report of this command"):
        reproduce.reproduce_vectors(datasets=["yeast"], out=curated, runs_root=tmp_path / "runs")
    assert curated.read_bytes() == before and not (tmp_path / "runs").exists()
    # Without --out the tables land in the runs root, next to the runs they summarise.
    seen = []
    monkeypatch.setattr(reproduce, "reproduce_vectors", lambda **k: seen.append(k["out"]))
    assert cli.main(["reproduce", "vectors", "--runs-root", str(tmp_path / "r")]) == 0
    assert seen == [tmp_path / "r" / "report.md"]
    # A report written by reproduce itself may be rewritten.
    from mulsupcon.io import check_report_overwritable

    own = tmp_path / "own.md"
    reproduce._write({}, own, 1.0, 0.0)
    check_report_overwritable(own, reproduce.REPORT_TITLE)


def test_reproduce_refuses_bad_arguments_before_any_run(tmp_path, capsys):
    from mulsupcon import cli, reproduce

    runs = tmp_path / "runs"
    # Numbers are checked by the parser (exit 2, naming the flag), the rest by the library, before any run.
    for argv, said in ((["--seeds", "0"], "argument --seeds: must be >= 1, got 0"),
                       (["--seeds", "2.5"], "argument --seeds: expected an integer, got '2.5'"),
                       (["--scale", "0"], "argument --scale: must be finite and > 0, got 0"),
                       (["--scale", "nan"], "argument --scale: must be finite and > 0, got nan")):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["reproduce", "vectors", "--runs-root", str(runs), *argv])
        assert exit_.value.code == 2 and said in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    for kwargs, error, said in (
        ({"datasets": ["yeast", "medical"]}, ValueError, "Tables 2/3 datasets (yeast, scene, delicious), not medical"),
        ({"seeds": 0}, ValueError, "must be a positive integer, got 0"),
        ({"scale": -1.0}, ValueError, "must be a positive number, got -1.0"),
        ({"runs_root": tmp_path / "a-file"}, ValueError, "a-file is a file, not a folder"),
        ({"out": tmp_path}, IsADirectoryError, "is a folder; --out takes the report's file name"),
    ):
        with pytest.raises(error, match=re.escape(said)):
            reproduce.reproduce_vectors(**{"runs_root": runs, **kwargs})
    assert not runs.exists()
    # The report's command is the one that made it: a seed count that is not the default is part of it.
    own = tmp_path / "own.md"
    reproduce._write({"yeast": {}}, own, 0.5, 0.0, seeds=2)
    assert "reproduce vectors --datasets yeast --seeds 2 --scale 0.5`" in own.read_text()


def test_evaluation_protocols_and_patience_are_checked_before_training():
    """An unknown protocol failed after the whole training, at evaluation; an empty list wrote empty tables;
    a patience of 0 or -1 stopped after the first epoch."""
    for value in (["bogus"], []):
        with pytest.raises(ValueError, match="eval.protocols must be a non-empty list of fixed, validation, paper"):
            load_config("vectors", {"eval.protocols": value})
    for value in (0, -1):
        with pytest.raises(ValueError, match="classify.early_stop_patience must be a positive integer"):
            load_config("vectors", {"classify.early_stop_patience": value})


def test_seed_must_be_in_numpys_range(tmp_path, capsys):
    """A negative seed trained (torch takes it) but scikit-learn's baselines refuse it; now every command
    refuses it up front, the demo before it touches its folder."""
    for seed in (-1, 2**32):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\]"):
            load_config("vectors", {"seed": seed})
    assert load_config("vectors", {"seed": 2**32 - 1})["seed"] == 2**32 - 1
    assert main(["demo", "--quick", "--seed", "-1", "--run-dir", str(tmp_path / "d")]) == 2
    assert "seed must be an integer" in capsys.readouterr().err and not (tmp_path / "d").exists()



def test_demo_verdict_counts_the_metrics_finetuning_wins():
    """The demo's last line says which method its own numbers favour (BCE was ahead on every seed measured,
    while the README said the two were level): mAP of each and the metrics where finetuning is higher."""
    from mulsupcon.demo import verdict

    bce = {"mAP": 0.903, "hamming_accuracy": 0.918, "example_f1": 0.838, "macro_f1": 0.829, "micro_f1": 0.830,
           "precision_at_1": 0.964}
    behind = {**bce, "mAP": 0.881, "hamming_accuracy": 0.909, "example_f1": 0.808, "macro_f1": 0.800,
              "micro_f1": 0.805, "precision_at_1": 0.943}
    line = verdict(behind, bce)
    assert "mAP 0.881 against 0.903" in line and "higher on 0 of 6 metrics." in line
    mixed = {**behind, "mAP": 0.910, "micro_f1": 0.831, "precision_at_1": 0.964}  # a tie is not higher
    assert "higher on 2 of 6 metrics (mAP, mi-F1)." in verdict(mixed, bce)

def test_process_and_epoch_counts_must_be_positive(capsys):
    for argv, said in ((["--nproc", "0"], "argument --nproc: must be >= 1, got 0"),
                       (["--stop-after-epochs", "-1"], "argument --stop-after-epochs: must be >= 1, got -1")):
        with pytest.raises(SystemExit):
            main(["train", "--dataset", "flags", *argv])
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["datasets", "download", "yeast", "--deadline", "0"])
    assert "argument --deadline: must be finite and > 0, got 0" in capsys.readouterr().err


TINY_DEMO = ["--config", "demo", "--model.hidden", "[16]", "--model.head_hidden", "16", "--model.embed_dim", "8",
             "--pretrain.epochs", "1", "--pretrain.steps_per_epoch", "2", "--pretrain.queue_size", "64", "-q"]


def test_a_stopped_finetune_resumes_from_another_directory_without_from(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", *TINY_DEMO, "--run-dir", "pre"]) == 0
    tune = ["train", "--mode", "finetune", "--classify.epochs", "3", "-q"]
    assert main([*tune, "--from", "pre", "--run-dir", "ft", "--stop-after-epochs", "1"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the saved source is absolute, so the cwd does not matter
    capsys.readouterr()
    assert main([*tune, "--run-dir", "../ft", "--resume"]) == 0, capsys.readouterr().err
    log = (tmp_path / "ft" / "log.txt").read_text()
    assert "resumed from" in log and "at epoch 1/3" in log
    assert (tmp_path / "ft" / "metrics.json").is_file()
    # A run started from a backbone.pt file resumes from that file.
    assert main([*tune, "--config", "demo", "--from", "../pre/backbone.pt", "--run-dir", "ft2", "--stop-after-epochs", "1"]) == 0
    assert main([*tune, "--run-dir", "ft2", "--resume"]) == 0, capsys.readouterr().err
    assert (tmp_path / "elsewhere" / "ft2" / "metrics.json").is_file()
    # Nothing to resume: said, nothing made. A run whose pretraining run has gone still asks for --from.
    assert main([*tune, "--run-dir", "../never", "--resume"]) == 2
    assert "cannot resume: ../never holds no run (no config.yaml, nor pretrain/config.yaml)" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    import shutil

    shutil.rmtree(tmp_path / "pre")
    assert main([*tune, "--run-dir", "../ft", "--resume"]) == 2
    assert "--mode finetune needs a pretrained run" in capsys.readouterr().err


def test_finetune_without_from_pretrains_first_as_the_two_commands_do(tmp_path, monkeypatch, capsys):
    """`train --mode finetune` without --from pretrains into RUN/pretrain, then finetunes: the same metrics as
    `pretrain` then `train --from` with the same flags. Stopped in pretraining, --resume continues both parts
    and ends at the same metrics; a second start in the same folder is refused."""
    monkeypatch.chdir(tmp_path)
    tune = ["--mode", "finetune", "--classify.epochs", "2"]
    assert main(["pretrain", *TINY_DEMO, "--pretrain.epochs", "2", "--run-dir", "pre"]) == 0
    assert main(["train", *tune, "--from", "pre", "-q", "--run-dir", "two"]) == 0
    assert main(["train", *tune, *TINY_DEMO, "--pretrain.epochs", "2", "--run-dir", "one"]) == 0
    out = capsys.readouterr().out
    assert "pretraining run: one/pretrain" in out and out.rstrip().endswith("run: one")
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert json.loads((tmp_path / "one" / "metrics.json").read_text()) == two
    assert json.loads((tmp_path / "one" / "split.json").read_text())["pretrained_from"].endswith("one/pretrain")

    args = ["train", *tune, *TINY_DEMO, "--pretrain.epochs", "2", "--run-dir", "s"]
    assert main([*args, "--stop-after-epochs", "1"]) == 0
    assert "continue with: mulsupcon train --mode finetune --run-dir s --resume" in capsys.readouterr().out
    assert not (tmp_path / "s" / "pretrain" / "backbone.pt").exists() and not (tmp_path / "s" / "config.yaml").exists()
    assert main(args) == 2
    assert "s/pretrain already holds a run; pass --resume to continue it" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert json.loads((tmp_path / "s" / "metrics.json").read_text()) == two


def test_ctrl_c_names_the_command_that_continues_the_run(tmp_path, monkeypatch, capsys):
    from mulsupcon.train import pretrain as pretrain_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_module, "pretrain", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", *TINY_DEMO, "--run-dir", "my run"]) == 130
    assert "continue with: mulsupcon pretrain --run-dir 'my run' --resume" in capsys.readouterr().err
    assert main(["pretrain", *TINY_DEMO]) == 130  # an auto-named run folder is named too
    assert "continue with: mulsupcon pretrain --run-dir runs/" in capsys.readouterr().err


@pytest.mark.parametrize("rows, noted", [(120, True), (900, False)])  # training rows: 64% after the carves
def test_pretraining_on_few_vector_rows_says_what_the_benchmark_found(rows, noted):
    import numpy as np

    from mulsupcon.data.user_files import from_arrays
    from mulsupcon.train.data import as_prepared
    from mulsupcon.train.pretrain import FEW_VECTOR_ROWS, pretrain
    from mulsupcon.train.rundir import RunDir

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    y = (x[:, :2] > 0).astype(np.uint8)
    cfg = load_config("vectors", {"model.hidden": [8], "model.head_hidden": 8, "model.embed_dim": 8,
                                  "pretrain.epochs": 1, "pretrain.steps_per_epoch": 1, "pretrain.queue_size": 16})
    data = as_prepared(from_arrays(x, y), cfg["dataset"])
    lines: list[str] = []
    run = RunDir.in_memory()
    run.log = lines.append
    pretrain(cfg, run, data=data, quiet=True, echo=False)
    notes = [ln for ln in lines if ln.startswith("note: with")]
    assert (data.train.n < FEW_VECTOR_ROWS) == noted
    assert notes == ([notes[0]] if noted else [])
    assert not noted or f"with {data.train.n} training rows" in notes[0]
    assert not noted or "`mulsupcon benchmark vectors --datasets mine=FILE`" in notes[0]  # data from memory


def test_the_small_set_note_names_the_benchmark_command_for_the_users_file(tmp_path):
    """The command in the note runs the benchmark on the same file, read with the same options."""
    from mulsupcon.benchmark import benchmark_config, parse_datasets
    from mulsupcon.train.pretrain import benchmark_command

    (tmp_path / "my data.csv").write_text("id,a,b,y1,y2\nr1,1,2,1,0\n")
    (tmp_path / "t.csv").write_text("id,a,b,y1,y2\nr2,2,1,0,1\n")
    ds = {"path": str(tmp_path / "my data.csv"), "label_columns": ["y1", "y2"], "ignore_columns": "id",
          "categorical_columns": ["a", "b"], "label_sep": "space", "test_path": str(tmp_path / "t.csv"), "xml": None, "missing": "mean"}
    cmd = shlex.split(benchmark_command(ds))
    assert cmd[:5] == ["mulsupcon", "benchmark", "vectors", "--datasets", f"mine={tmp_path / 'my data.csv'}"]
    sets = dict(item.split("=", 1) for flag, item in zip(cmd[5::2], cmd[6::2]) if flag == "--set")
    assert sets == {"dataset.label_columns": "y1,y2", "dataset.ignore_columns": "id", "dataset.label_sep": "space",
                    "dataset.categorical_columns": "a,b",
                    "dataset.test_path": str(tmp_path / "t.csv"), "dataset.missing": "mean"}
    cfg = benchmark_config("mine", overrides=sets, path=parse_datasets([cmd[4]])["mine"])
    for key in ("label_columns", "ignore_columns", "categorical_columns", "label_sep", "test_path", "missing"):
        assert str(cfg["dataset"][key]) == sets[f"dataset.{key}"]
    # A registered dataset is named as such (the benchmark takes it by name); embedded features by their folder.
    assert benchmark_command({"name": "emotions", "path": None}) == "mulsupcon benchmark vectors --datasets emotions"
    assert benchmark_command({"name": "emotions", "path": None, "missing": "mean"}).endswith(
        "--datasets emotions --set dataset.missing=mean")
    assert parse_datasets(["emotions"]) == {"emotions": None}
    assert benchmark_command({"name": f"hdf5:{tmp_path}", "path": None}).endswith(f"--datasets mine={tmp_path}")
    assert benchmark_command({"name": "emotions", "path": None}, in_memory=True).endswith("--datasets mine=FILE")


def test_flags_naming_other_data_than_a_saved_config(tmp_path):
    """`train --from RUN` keeps RUN's dataset unless the flags name another (then RUN's file options go)."""
    from mulsupcon.cli import _names_other_data

    saved = {"name": "a", "path": str(tmp_path / "a.csv")}
    assert not _names_other_data(saved, {})
    assert not _names_other_data(saved, {"classify.epochs": 3})
    assert _names_other_data(saved, {"dataset.name": "yeast"})  # a registered set, not RUN's file
    assert not _names_other_data(saved, {"dataset.name": "a"})
    assert _names_other_data(saved, {"dataset.path": str(tmp_path / "b.npz")})
    assert not _names_other_data(saved, {"dataset.path": str(tmp_path / "sub" / ".." / "a.csv")})
    assert _names_other_data({"name": "yeast", "path": None}, {"dataset.path": "x.csv"})


def test_a_registered_dataset_without_config_gets_its_own_config_or_the_adaptive_defaults():
    """`mulsupcon pretrain --dataset emotions` used to run yeast's paper schedule (no step minimum, 30
    classification epochs picked by validation loss): the collapse issue 15 measured on small sets. A
    registered set now gets its shipped config when it has one, else the defaults for its kind."""
    import argparse

    from mulsupcon.cli import _resolve

    def resolved(command, *flags):
        return _resolve(argparse.Namespace(command=command, config=None, dataset=None), list(flags))

    vectors = load_config("vectors")
    for name in ("emotions", "medical", "yeast-meka"):
        cfg = resolved("pretrain", "--dataset.name", name)
        assert cfg["dataset"]["name"] == name
        assert cfg["pretrain"] == vectors["pretrain"] and cfg["classify"] == vectors["classify"], name
    scratch = resolved("train", "--dataset.name", "medical", "--classify.mode", "scratch")
    assert scratch["classify"]["select_by"] == "val_mAP" and scratch["classify"]["epochs"] == vectors["classify"]["epochs"]
    for name in ("scene", "delicious", "yeast"):  # the paper's settings stay
        assert resolved("pretrain", "--dataset.name", name)["pretrain"] == load_config(name)["pretrain"], name
    for name, config in (("yeast-official", "yeast-authors"), ("multidigits", "multidigits-images"), ("nus-wide", "nuswide"),
                         ("coco-tiny-zzowenzz", "coco-tiny")):  # a shipped config whose dataset it is
        assert resolved("pretrain", "--dataset.name", name)["pretrain"] == load_config(config)["pretrain"], name
    images = resolved("pretrain", "--dataset.name", "coco-tiny-enginbozaba")  # an image set without its own config
    assert images["model"] == load_config("images")["model"] and images["pretrain"] == load_config("images")["pretrain"]
    assert resolved("pretrain")["pretrain"] == load_config("yeast")["pretrain"]  # nothing named: the paper's yeast
    # `mulsupcon embed`'s features by their hdf5: name are vectors too (train took the library defaults)
    embedded = resolved("train", "--dataset.name", "hdf5:/features/of/photos", "--classify.mode", "scratch")
    assert embedded["classify"] == {**vectors["classify"], "mode": "scratch"}


def test_building_the_command_line_imports_no_heavy_library():
    """`mulsupcon --help` and an argument error answer at once: building the parser (every subcommand's,
    embed's included) imports neither torch nor torchvision, scikit-learn or matplotlib (embed's module
    imported torchvision at the top, and every command paid about 4 s for it)."""
    code = ("import sys; from mulsupcon import cli; cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'sklearn', 'matplotlib', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_datasets_check_reads_and_splits_a_file_without_torch(tmp_path):
    """`mulsupcon datasets check` (a check before training, often repeated) reads and splits a CSV without
    importing torch, which costs 2 s and 650 MB of its CUDA build: 3.1 s -> 1.5 s here."""
    rows = ["a,b,c,y1,y2"] + [f"{i},{i % 7},{i % 3},{i % 2},{int(i % 5 == 0)}" for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    code = ("import sys; from mulsupcon.cli import main; "
            f"code = main(['datasets', 'check', '--dataset.path', {str(tmp_path / 'd.csv')!r}, '--dataset.label_columns', '2']); "
            "print(code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "split  train " in out and out.strip().splitlines()[-1] == "0 False"


def test_the_main_pieces_import_from_the_package_on_first_use():
    """`from mulsupcon import MulSupConLoss` (and the estimator, MoCo, the data and run loaders) works and
    `dir(mulsupcon)` lists them, while `import mulsupcon` alone still loads no torch."""
    import mulsupcon
    from mulsupcon.estimator import MulSupConClassifier
    from mulsupcon.losses import MulSupConLoss
    from mulsupcon.predict import load_run

    assert mulsupcon.MulSupConLoss is MulSupConLoss and mulsupcon.load_run is load_run
    assert mulsupcon.MulSupConClassifier is MulSupConClassifier
    assert set(mulsupcon.__all__) <= set(dir(mulsupcon)) and "MoCo" in mulsupcon.__all__
    for name in mulsupcon.__all__:
        assert getattr(mulsupcon, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        mulsupcon.Nothing
    code = "import sys, mulsupcon; dir(mulsupcon); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_saved_config_names_its_data_by_absolute_paths(tmp_path, monkeypatch):
    """Relative paths are resolved against the working directory before a run saves its config, so that
    `--resume`, `train --from` and `evaluate` find the data from anywhere; an `hdf5:FOLDER` name (the
    features `mulsupcon embed` writes) holds a path too."""
    from mulsupcon.config import load_config, resolve_paths

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, {"dataset.path": "data.csv", "dataset.test_path": "../t.csv"})
    resolve_paths(cfg)
    assert cfg["dataset"]["path"] == str(tmp_path.resolve() / "data.csv")
    assert cfg["dataset"]["test_path"] == str(tmp_path.resolve().parent / "t.csv")
    assert cfg["dataset"]["name"] == "data"
    cfg = load_config(None, {"dataset.name": "hdf5:emb"})
    resolve_paths(cfg)
    assert cfg["dataset"]["name"] == f"hdf5:{tmp_path.resolve() / 'emb'}"
    cfg = load_config(None, {"dataset.name": "yeast"})
    resolve_paths(cfg)
    assert cfg["dataset"]["name"] == "yeast"  # a registered name is not a path


def test_numbers_with_an_exponent_are_numbers_in_config_files_and_flags(tmp_path):
    """PyYAML reads `lr: 1e-3` (YAML 1.1: no dot, no exponent sign) as a string; a config file then failed
    with 'pretrain.lr must be a number, got '1e-3'' although the same flag worked."""
    from mulsupcon.config import parse_value

    (tmp_path / "lr.yaml").write_text("pretrain:\n  lr: 1e-3\n  weight_decay: 5E-5\nclassify: {lr: 2.5e4, lr_backbone: .5e-1}\n")
    cfg = load_config(tmp_path / "lr.yaml")
    assert cfg["pretrain"]["lr"] == 1e-3 and cfg["pretrain"]["weight_decay"] == 5e-5
    assert cfg["classify"]["lr"] == 2.5e4 and cfg["classify"]["lr_backbone"] == 0.05
    assert [parse_value(v) for v in ("1e-3", "-2e+2", "3", "1.5", "null", "e5", "1e", "abc", "[1, 2e1]")] == [
        1e-3, -200.0, 3, 1.5, None, "e5", "1e", "abc", [1, 20.0]]


def test_a_config_file_names_its_base(tmp_path):
    """`base:` starts a file from a shipped config or from another file (relative to the naming file); a loop,
    an unknown base or a base that is not a name is an error naming the file."""
    vectors = load_config("vectors")
    (tmp_path / "common.yaml").write_text("base: vectors\nclassify: {epochs: 77}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text("base: ../common.yaml\npretrain: {lr: 2e-3}\n")
    cfg = load_config(tmp_path / "sub" / "mine.yaml")
    assert cfg["classify"]["epochs"] == 77 and cfg["pretrain"]["lr"] == 2e-3
    assert {**cfg, "classify": vectors["classify"], "pretrain": vectors["pretrain"]} == vectors
    assert cfg["pretrain"]["min_steps"] == vectors["pretrain"]["min_steps"] == 3000
    # epochs set by a file run as given, as the flag does: the base's step bounds are cleared
    (tmp_path / "epochs.yaml").write_text("base: vectors\npretrain: {epochs: 20}\n")
    assert load_config(tmp_path / "epochs.yaml")["pretrain"] == load_config("vectors", {"pretrain.epochs": 20})["pretrain"]
    (tmp_path / "none.yaml").write_text("base: null\npretrain: {batch_size: 7}\n")
    assert load_config(tmp_path / "none.yaml") == load_config(None, {"pretrain.batch_size": 7})
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ValueError, match=r"name each other as base in a loop: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "gone.yaml").write_text("base: vectorz\n")
    with pytest.raises(ValueError, match=r"gone\.yaml: base 'vectorz' is neither a file beside it nor a shipped config"):
        load_config(tmp_path / "gone.yaml")
    (tmp_path / "list.yaml").write_text("base: [vectors]\n")
    with pytest.raises(ValueError, match=r"list\.yaml: base must name a shipped config or a YAML file"):
        load_config(tmp_path / "list.yaml")


def _tiny_csv(path: Path, rows: int = 80) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.3], axis=1).astype(int)
    lines = ["a,b,c,d,l1,l2"] + [",".join([*(f"{v:.3f}" for v in x), *map(str, y)]) for x, y in zip(X, Y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_config_file_of_yours_changes_the_default_the_command_would_use(tmp_path, monkeypatch, capsys):
    """A file holding one change used to be applied to the library defaults (30 finetuning epochs chosen by
    validation loss, no step minimum): the schedule issue 15 found to collapse small sets, instead of the
    `vectors` defaults a CSV gets without --config. And `train --from RUN --config FILE` read the library's
    default dataset (yeast) instead of RUN's."""
    import argparse

    from mulsupcon.cli import _config_file_as_flags, _resolve

    monkeypatch.chdir(tmp_path)
    csv = str(_tiny_csv(tmp_path / "data.csv"))
    (tmp_path / "mine.yaml").write_text("pretrain:\n  batch_size: 16\n")

    def resolved(command, config, *flags):
        args = argparse.Namespace(command=command, config=config, dataset=None)
        _config_file_as_flags(args)
        return _resolve(args, list(flags))

    data = ["--dataset.path", csv, "--dataset.label_columns", "2"]
    for command in ("pretrain", "train"):
        assert resolved(command, "mine.yaml", *data) == load_config("vectors", {
            "dataset.path": csv, "dataset.label_columns": 2, "pretrain.batch_size": 16})
    # the command line's flags come after the file's; a registered set's own config is the one changed
    assert resolved("train", "mine.yaml", *data, "--pretrain.batch_size", "8")["pretrain"]["batch_size"] == 8
    assert resolved("pretrain", "mine.yaml", "--dataset.name", "scene") == load_config("scene", {"pretrain.batch_size": 16})
    # the data named in the file itself picks the default too
    (tmp_path / "with-data.yaml").write_text(f"dataset: {{path: {csv}, label_columns: 2}}\nclassify: {{epochs: 9}}\n")
    assert resolved("pretrain", "with-data.yaml") == load_config("vectors", {
        "dataset.path": csv, "dataset.label_columns": 2, "classify.epochs": 9})
    # a shipped config, or a file naming its base, is a whole config as before
    assert resolved("train", "scene", *data) == load_config("scene", {"dataset.path": csv, "dataset.label_columns": 2})
    (tmp_path / "based.yaml").write_text("base: null\npretrain:\n  batch_size: 16\n")
    assert resolved("train", "based.yaml", *data)["classify"] == DEFAULTS["classify"]

    # train --from RUN --config FILE: RUN's data and model, with the file's change
    assert main(["pretrain", *data, "--model.hidden", "[8]", "--model.head_hidden", "8", "--model.embed_dim", "4",
                 "--pretrain.epochs", "1", "-q", "--run-dir", "pre"]) == 0
    (tmp_path / "ft.yaml").write_text("classify:\n  epochs: 2\n")
    assert main(["train", "--mode", "finetune", "--from", "pre", "--config", "ft.yaml", "-q", "--run-dir", "ft"]) == 0, \
        capsys.readouterr().err
    saved = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert saved["dataset"]["path"] == csv and saved["model"]["hidden"] == [8] and saved["classify"]["epochs"] == 2
    # a typo in the file is named with the file
    (tmp_path / "typo.yaml").write_text("pretrain:\n  bacth_size: 16\n")
    assert main(["pretrain", *data, "--config", "typo.yaml", "--run-dir", "t"]) == 2
    assert "typo.yaml.pretrain: unknown key 'bacth_size'. Did you mean 'batch_size'?" in capsys.readouterr().err


def test_datasets_check_reads_the_data_a_config_file_names(tmp_path, monkeypatch, capsys):
    """`datasets check` refused --config, so a dataset section kept in a file could not be checked before
    training; and a path in a file run from another folder was 'not found' without naming the file."""
    monkeypatch.chdir(tmp_path)
    _tiny_csv(tmp_path / "data.csv")
    (tmp_path / "data.yaml").write_text("dataset:\n  path: data.csv\n  label_columns: 2\n  test_fraction: 0.3\n")
    assert main(["datasets", "check", "--config", "data.yaml"]) == 0
    out = capsys.readouterr().out
    assert "test carved (iterative-stratification, 0.3 of the rows)" in out and "labels           2" in out
    # a flag after the file wins, as for train
    assert main(["datasets", "check", "--config", "data.yaml", "--dataset.test_fraction", "0.5"]) == 0
    assert "0.5 of the rows" in capsys.readouterr().out

    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for command in (["datasets", "check"], ["pretrain", "--run-dir", "r"]):
        assert main([*command, "--config", "../data.yaml"]) == 2
        err = capsys.readouterr().err
        assert "dataset path not found: data.csv (set in ../data.yaml; a path in a config file is relative to the " \
               f"working directory, {tmp_path / 'sub'}" in err
    # a file with a base resolves its path before the check: the absolute path is named, with the file
    (tmp_path / "based.yaml").write_text("base: vectors\ndataset:\n  path: data.csv\n  label_columns: 2\n")
    assert main(["datasets", "check", "--config", "../based.yaml"]) == 2
    assert f"not found: {tmp_path / 'sub' / 'data.csv'} (set in ../based.yaml" in capsys.readouterr().err
    # a path given as a flag is not blamed on the file
    assert main(["datasets", "check", "--config", "../data.yaml", "--dataset.path", "nope.csv"]) == 2
    assert "(set in" not in capsys.readouterr().err
    assert main(["datasets", "check", "--config", "../data.yaml", "--dataset.path", "../data.csv"]) == 0


def test_a_run_folder_is_the_config_it_was_made_with(tmp_path, monkeypatch, capsys):
    """`--config RUN` and `config show RUN` read the run's saved config.yaml (before: 'neither a file nor a
    shipped config'), so a run is repeated, or varied by flags, from its folder."""
    import argparse

    from mulsupcon.cli import _config_file_as_flags, _resolve
    from mulsupcon.config import config_path, save_config

    monkeypatch.chdir(tmp_path)
    csv = str(_tiny_csv(tmp_path / "data.csv"))
    made = load_config("vectors", {"dataset.path": csv, "dataset.label_columns": 2, "classify.epochs": 7,
                                   "pretrain.batch_size": 16})
    (tmp_path / "run").mkdir()
    save_config(made, tmp_path / "run" / "config.yaml")
    with pytest.raises(ValueError, match="neither a file nor a shipped config"):  # a folder, but no run's
        config_path("run")
    (tmp_path / "run" / "run.json").write_text('{"kind": "finetune"}')
    assert config_path("run") == Path("run") / "config.yaml"
    assert load_config("run") == made
    args = argparse.Namespace(command="train", config="run", dataset=None)
    _config_file_as_flags(args)
    assert _resolve(args, ["--classify.lr", "0.01"]) == load_config("vectors", {
        "dataset.path": csv, "dataset.label_columns": 2, "classify.epochs": 7, "pretrain.batch_size": 16,
        "classify.lr": 0.01})
    assert main(["config", "show", "run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# the config the run in run was made with") and "batch_size: 16" in out


def test_the_demos_next_commands_run_on_its_runs(tmp_path, monkeypatch, capsys):
    """The demo ends with the commands to look at what it made; each of them works on its folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quick", "--run-dir", "d"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("next: mulsupcon runs d  |  mulsupcon plot curves d/finetune d/scratch")
    for command in last.removeprefix("next: ").split("  |  ")[:2]:
        assert main(command.split()[1:]) == 0, command
    out = capsys.readouterr().out
    assert out.count("| finished |") == 3 and (tmp_path / "curves.png").is_file()
