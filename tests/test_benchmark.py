"""mulsupcon benchmark vectors: identical rows for every method, scores from mulsupcon.metrics, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require_dataset_folder

from mulsupcon.data.dataset import MultiLabelDataset

FAST = {"pretrain.epochs": 3, "classify.epochs": 3, "model.hidden": [32], "model.head_hidden": 16, "model.embed_dim": 16}


def test_benchmark_on_flags_scores_every_method_and_resumes(tmp_path, capsys):
    require_dataset_folder("flags")
    from mulsupcon.benchmark import benchmark_vectors

    methods = ["mulsupcon-finetune", "mulsupcon-probe", "bce", "sklearn-mlp", "random-forest", "finetune+forest"]
    out = tmp_path / "baselines.md"
    lines: list[str] = []
    benchmark_vectors(["flags"], [0, 1], methods, work=tmp_path / "w", out=out, overrides=FAST, say=lines.append)
    assert len(lines) == 12 and lines[0].startswith("[1/12] flags mulsupcon-finetune seed 0")
    cells = sorted((tmp_path / "w" / "cells" / "flags").glob("*-seed*.json"))
    assert len(cells) == 12
    from mulsupcon.benchmark import code_fingerprint

    for f in cells:
        record = json.loads(f.read_text())
        assert (record["code"], record["config"], record["overrides"]) == (code_fingerprint(), "vectors", FAST)
        metrics = record["metrics"]
        for protocol in ("validation", "paper"):
            assert set(metrics[protocol]) == {"mAP", "hamming_accuracy", "example_f1", "macro_f1", "micro_f1",
                                              "precision_at_1"}
            assert all(0.0 <= v <= 1.0 for v in metrics[protocol].values())
    # mAP does not depend on thresholds: both protocols agree on it.
    bce = json.loads((tmp_path / "w" / "cells" / "flags" / "bce-seed0.json").read_text())["metrics"]
    assert bce["validation"]["mAP"] == bce["paper"]["mAP"]
    # The ensemble is the mean of the finetuned model's saved probabilities and a forest's (recomputed here).
    from sklearn.ensemble import RandomForestClassifier

    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, positive_probabilities
    from mulsupcon.metrics import evaluate

    parts = arrays(benchmark_data("flags", benchmark_config("flags", overrides=FAST)))
    z = np.load(tmp_path / "w" / "scores" / "flags-finetune-seed1.npz")
    forest = RandomForestClassifier(n_estimators=500, random_state=1, n_jobs=-1).fit(*parts["train"])
    mean = (z["test_scores"] + positive_probabilities(forest, parts["test"][0])) / 2
    ens = json.loads((tmp_path / "w" / "cells" / "flags" / "finetune+forest-seed1.json").read_text())["metrics"]
    assert ens["paper"]["micro_f1"] == pytest.approx(evaluate(mean, parts["test"][1], protocol="paper")["micro_f1"])
    report = out.read_text()
    assert "| flags | 103 | 7 |" in report and "random-forest" in report and "± " in report
    assert "Mixed provenance" not in report
    # A second call finds every result and computes nothing.
    again: list[str] = []
    benchmark_vectors(["flags"], [0, 1], methods, work=tmp_path / "w", out=out, overrides=FAST, say=again.append)
    assert again == [] and out.read_text() == report
    # One seed's table shows its values without a spread of 0 (the seeds column says 1).
    one = tmp_path / "one.md"
    benchmark_vectors(["flags"], [0], methods, work=tmp_path / "w", out=one, overrides=FAST, say=again.append)
    rows = [line for line in one.read_text().splitlines() if line.startswith("| bce |")]
    assert rows and all("±" not in row and row.endswith("| 1 |") for row in rows)


def test_the_sklearn_rows_are_scored_like_an_independent_computation(tmp_path):
    require_dataset_folder("flags")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score

    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, run_sklearn

    cfg = benchmark_config("flags")
    parts = arrays(benchmark_data("flags", cfg))
    got = run_sklearn("random-forest", parts, seed=0)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    rf = RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=-1).fit(xtr, ytr)
    proba = np.stack([p[:, list(c).index(1)] if 1 in c else np.zeros(len(xte)) for p, c in
                      zip(rf.predict_proba(xte), rf.classes_)], axis=1)
    present = yte.sum(0) > 0  # mAP over the labels present in the test rows
    expect = np.mean([average_precision_score(yte[:, j], proba[:, j]) for j in np.flatnonzero(present)])
    assert got["validation"]["mAP"] == pytest.approx(expect, abs=1e-9)


def test_the_logistic_regression_row_is_one_independent_model_per_label():
    require_dataset_folder("flags")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, run_sklearn

    parts = arrays(benchmark_data("flags", benchmark_config("flags")))
    got = run_sklearn("logistic-regression", parts, seed=0)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    proba = np.stack([LogisticRegression(max_iter=1000).fit(xtr, ytr[:, j]).predict_proba(xte)[:, 1]
                      for j in range(ytr.shape[1])], axis=1)
    present = yte.sum(0) > 0
    expect = np.mean([average_precision_score(yte[:, j], proba[:, j]) for j in np.flatnonzero(present)])
    assert got["validation"]["mAP"] == pytest.approx(expect, abs=1e-9)


def test_rows_without_labels_case_keeps_its_rarest_labels():
    require_dataset_folder("yeast")
    from mulsupcon.benchmark import benchmark_config, benchmark_data

    data = benchmark_data("yeast-3labels", benchmark_config("yeast-3labels"))
    y = data.train.labels.numpy()
    assert data.n_labels == 3 and (y.sum(1) == 0).mean() > 0.5  # most rows have no label left
    assert data.train.n + data.val.n == 1500 and data.test.n == 917


def test_cli_benchmark_runs_one_cell_and_writes_the_report(tmp_path):
    require_dataset_folder("flags")
    from mulsupcon.cli import main

    out = tmp_path / "b.md"
    code = main(["benchmark", "vectors", "--datasets", "flags", "--seeds", "0", "--methods", "bce", "random-forest",
                 "--set", "classify.epochs=2", "--work", str(tmp_path / "w"), "--out", str(out)])
    assert code == 0 and "| flags | 103 | 7 |" in out.read_text()
    assert "classify.epochs" in out.read_text()  # the overrides are part of the report
    assert main(["benchmark", "vectors", "--datasets", "nope", "--work", str(tmp_path / "w2")]) == 2


def _own_csv(path, n=160, seed=0):
    """A CSV of 6 features and 3 labels that are functions of them (header a..g, then the label names)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] < -0.3], 1).astype(int)
    rows = ["a,b,c,d,e,g,cat,dog,fish"] + [",".join([f"{v:.6f}" for v in xr] + [str(v) for v in yr]) for xr, yr in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")


def test_a_forest_beyond_the_memory_is_not_run_and_the_report_says_why(tmp_path, monkeypatch):
    """A 500-tree forest keeps a value per label at every node (85 GB on delicious): where its bound exceeds
    the available memory, the harness skips it with the reason instead of being killed by the system, writes
    no cell, and the same command runs it where the memory is there. The bound holds for a fitted forest."""
    from sklearn.ensemble import RandomForestClassifier

    from mulsupcon import benchmark

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 5)), (rng.random((300, 12)) < 0.3).astype(int)
    forest = RandomForestClassifier(n_estimators=4, random_state=0).fit(x, y)
    held = sum(t.tree_.value.nbytes + t.tree_.__getstate__()["nodes"].nbytes for t in forest.estimators_)
    assert 0.5 * benchmark.forest_bytes(300, 12, trees=4) <= held <= benchmark.forest_bytes(300, 12, trees=4)
    assert benchmark.available_memory() is None or benchmark.available_memory() > 2**20

    csv = tmp_path / "data.csv"
    _own_csv(csv)
    options = {**FAST, "dataset.label_columns": 3}
    work, out = tmp_path / "w", tmp_path / "b.md"
    monkeypatch.setattr(benchmark, "available_memory", lambda: 2**20)  # 1 MB
    lines: list[str] = []
    benchmark.benchmark_vectors([f"mine={csv}"], [0], ["logistic-regression", "random-forest"], work=work, out=out,
                                overrides=options, say=lines.append)
    assert lines[1].startswith("[2/2] mine random-forest seed 0: not run: 500 fully grown trees on ")
    need = benchmark.forest_bytes(json.loads((work / "cells" / "mine" / "shape.json").read_text())["train"], 3)
    assert f"may need up to {need / 2**20:.0f} MB (a value per label at every node), and 1 MB are available" in lines[1]
    assert not (work / "cells" / "mine" / "random-forest-seed0.json").exists()
    assert "`random-forest on mine`: not run: 500 fully grown trees" in out.read_text()
    monkeypatch.setattr(benchmark, "available_memory", lambda: None)  # unknown: not checked
    lines.clear()
    benchmark.benchmark_vectors([f"mine={csv}"], [0], ["logistic-regression", "random-forest"], work=work, out=out,
                                overrides=options, say=lines.append)
    assert [line.split(":")[0] for line in lines] == ["[2/2] mine random-forest seed 0"]
    assert (work / "cells" / "mine" / "random-forest-seed0.json").is_file() and "not run" not in out.read_text()


def test_own_files_join_the_benchmark_as_name_equals_path(tmp_path):
    """`--datasets mine=data.csv` runs on the rows `mulsupcon train --dataset.path data.csv` would use, records
    the file's sha256, and refuses to continue when the file has changed since."""
    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, benchmark_vectors, run_sklearn
    from mulsupcon.data.download import sha256_file
    from mulsupcon.train.data import load_dataset_splits

    csv = tmp_path / "data.csv"
    _own_csv(csv)
    options = {**FAST, "dataset.label_columns": 3}
    work, out = tmp_path / "w", tmp_path / "b.md"
    lines: list[str] = []
    benchmark_vectors([f"mine={csv}"], [0], ["bce", "logistic-regression"], work=work, out=out, overrides=options,
                      say=lines.append)
    assert [line.split(":")[0] for line in lines] == ["[1/2] mine bce seed 0", "[2/2] mine logistic-regression seed 0"]
    record = json.loads((work / "cells" / "mine" / "logistic-regression-seed0.json").read_text())
    assert record["data"] == {str(csv.resolve()): sha256_file(csv)}
    # The same rows as the train command's reading of the file (carved test and validation rows).
    cfg = benchmark_config("mine", overrides=options, path=str(csv.resolve()))
    splits = load_dataset_splits(cfg["dataset"])
    shape = json.loads((work / "cells" / "mine" / "shape.json").read_text())
    assert (shape["train"], shape["val"], shape["test"]) == (splits.train.n_samples, splits.val.n_samples,
                                                             splits.test.n_samples)
    assert shape["train"] + shape["val"] + shape["test"] == 160 and shape["labels"] == 3
    again = run_sklearn("logistic-regression", arrays(benchmark_data("mine", cfg)), seed=0)
    assert again["validation"]["mAP"] == pytest.approx(record["metrics"]["validation"]["mAP"], abs=1e-12)
    assert record["metrics"]["validation"]["mAP"] > 0.8  # the labels are (nearly) linear in the features
    assert "| mine | " in out.read_text()
    # A changed file is not mixed with the cells of the old one.
    _own_csv(csv, seed=1)
    with pytest.raises(ValueError, match="computed from"):
        benchmark_vectors([f"mine={csv}"], [0, 1], ["bce"], work=work, out=out, overrides=options, say=lines.append)


def test_a_missing_value_in_a_benchmarked_file_names_the_flag_and_the_benchmark_takes_it(tmp_path):
    """The readers name `--dataset.missing mean`; the benchmark takes that flag as train and pretrain do (and
    `--set dataset.missing=mean`), and with it the file runs."""
    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data
    from mulsupcon.data.formats import DataFormatError

    csv = tmp_path / "data.csv"
    _own_csv(csv)
    lines = csv.read_text().splitlines()
    lines[5] = "," + lines[5].split(",", 1)[1]  # the first feature of a row left empty
    csv.write_text("\n".join(lines) + "\n")
    options = {**FAST, "dataset.label_columns": 3}
    cfg = benchmark_config("mine", overrides=options, path=str(csv))
    with pytest.raises(DataFormatError, match=r"data\.csv:6: empty field .* --dataset\.missing mean"):
        benchmark_data("mine", cfg)
    from mulsupcon.cli import build_parser, split_overrides

    args, extra = build_parser().parse_known_args(["benchmark", "vectors", "--datasets", f"mine={csv}",
                                                   "--dataset.missing", "mean", "--set", "classify.epochs=3"])
    assert split_overrides(extra) == {"dataset.missing": "mean"} and args.set == ["classify.epochs=3"]
    cfg = benchmark_config("mine", overrides={**options, "dataset.missing": "mean"}, path=str(csv))
    with pytest.warns(UserWarning, match=r"1 missing feature value"):
        x = arrays(benchmark_data("mine", cfg))
    assert all(np.isfinite(part[0]).all() for part in x.values())


def test_dataset_entries_that_cannot_be_read_say_why(tmp_path):
    from mulsupcon.benchmark import parse_datasets

    (tmp_path / "d.csv").write_text("a,cat\n1,0\n")
    assert parse_datasets(["flags", f"mine={tmp_path / 'd.csv'}"]) == {"flags": None, "mine": str(tmp_path / "d.csv")}
    # Every registered vector dataset is taken by name (their files may still be missing); images are not.
    assert parse_datasets(["emotions", "birds", "enron"]) == {"emotions": None, "birds": None, "enron": None}
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_datasets(["voc2007"])
    with pytest.raises(ValueError, match="registered dataset; give your file another name"):
        parse_datasets([f"flags={tmp_path / 'd.csv'}"])
    with pytest.raises(ValueError, match="registered dataset; give your file another name"):
        parse_datasets([f"emotions={tmp_path / 'd.csv'}"])
    with pytest.raises(ValueError, match="letters, digits"):
        parse_datasets([f"my data={tmp_path / 'd.csv'}"])
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        parse_datasets([f"mine={tmp_path / 'missing.csv'}"])
    with pytest.raises(ValueError, match="named twice"):
        parse_datasets(["flags", "flags"])



def test_multidigits_is_benchmarked_as_the_demos_pixel_vectors():
    """`--datasets multidigits` takes the demo's data (embedded, no download) as flat pixel vectors: the same
    rows and standardised values the demo's runs train on, not the default list's, and not as images."""
    from mulsupcon.benchmark import DATASETS, arrays, benchmark_config, benchmark_data, parse_datasets
    from mulsupcon.demo import demo_config
    from mulsupcon.train.data import prepare_data

    assert parse_datasets(["multidigits"]) == {"multidigits": None} and "multidigits" not in DATASETS
    cfg = benchmark_config("multidigits")
    assert cfg["dataset"]["as_vectors"] is True and benchmark_config("flags")["dataset"]["as_vectors"] is False
    x = arrays(benchmark_data("multidigits", cfg))
    demo = arrays(prepare_data(demo_config()["dataset"]))
    assert {k: v[0].shape for k, v in x.items()} == {"train": (3000, 576), "val": (1000, 576), "test": (1000, 576)}
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(x[part][0], demo[part][0])
        np.testing.assert_array_equal(x[part][1], demo[part][1])

def test_a_registered_vector_dataset_outside_the_default_list_runs_by_name(tmp_path):
    """A dataset of the catalogue that is not among the default twelve (emotions, birds, enron, ...) is
    benchmarked by its name on the registry's rows, as `mulsupcon train --dataset NAME` reads them."""
    from mulsupcon.benchmark import DATASETS, benchmark_vectors
    from mulsupcon.data.catalogue import DatasetSpec
    from mulsupcon.data.registry import register
    from mulsupcon.data.splits import SourceParts

    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 5)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.5], 1).astype(np.uint8)

    def load(spec, home, options):
        part = lambda r: MultiLabelDataset(features=x[r], labels=y[r], label_names=["a", "b"], name=spec.name)  # noqa: E731
        return SourceParts(train=part(slice(0, 100)), test=part(slice(100, None)))

    register(DatasetSpec(name="toy-registered", description="two linear labels", reader=load, n_labels=2, n_features=5))
    assert "toy-registered" not in DATASETS
    work = tmp_path / "w"
    benchmark_vectors(["toy-registered"], [0], ["logistic-regression"], work=work, out=tmp_path / "b.md", say=lambda s: None)
    shape = json.loads((work / "cells" / "toy-registered" / "shape.json").read_text())
    assert (shape["train"] + shape["val"], shape["test"], shape["labels"]) == (100, 50, 2)
    record = json.loads((work / "cells" / "toy-registered" / "logistic-regression-seed0.json").read_text())
    assert record["metrics"]["validation"]["mAP"] > 0.8 and "data" not in record
    assert "| toy-registered | " in (tmp_path / "b.md").read_text()


def test_repeated_set_flags_all_apply():
    """`--set a=1 --set b=2` keeps both (a second --set once silently replaced the first)."""
    from mulsupcon.cli import build_parser

    args, _ = build_parser().parse_known_args(["benchmark", "vectors", "--set", "classify.head_init=fit",
                                               "--set", "classify.lr=0.1", "classify.epochs=3"])
    assert args.set == ["classify.head_init=fit", "classify.lr=0.1", "classify.epochs=3"]
    assert build_parser().parse_known_args(["benchmark", "vectors"])[0].set == []


def _cell(work, dataset, method, seed, **metrics):
    from mulsupcon.benchmark import METRICS

    scores = {m: metrics.get(m, 0.5) for m in METRICS}
    path = work / "cells" / dataset / f"{method}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": dataset, "method": method, "seed": seed, "seconds": 1.0,
                                "metrics": {"validation": scores, "paper": scores}}))


def test_compare_trials_counts_wins_against_the_reference_bce_on_shared_seeds(tmp_path):
    from mulsupcon.benchmark import compare_trials

    ref, trial = tmp_path / "ref", tmp_path / "trial"
    for s, bce_map in ((0, 0.40), (1, 0.42)):
        _cell(ref, "flags", "bce", s, mAP=bce_map, hamming_accuracy=0.9)
        _cell(ref, "flags", "sklearn-mlp", s, mAP=0.30)
        _cell(ref, "flags", "mulsupcon-finetune", s, mAP=0.30)  # loses mAP, ties the rest: 0 wins
        _cell(ref, "flags", "mulsupcon-probe", s, mAP=0.25)
    # the trial: seed 0 only; beats the paired BCE seed (0.40, not the two-seed mean 0.41) on mAP and
    # example_f1, loses hamming accuracy, ties the other three: 2 wins
    _cell(trial, "flags", "mulsupcon-finetune", 0, mAP=0.405, hamming_accuracy=0.8, example_f1=0.6)
    _cell(trial, "flags", "mulsupcon-finetune", 7, mAP=0.99)  # no BCE seed 7 in the reference: ignored
    _cell(ref, "mine", "bce", 0, mAP=0.5)  # a user's own file (NAME=PATH) comes after the data home's sets
    table = compare_trials(ref, [trial])
    row = [line for line in table.splitlines() if line.startswith("| flags")]
    assert row == ["| flags | 0.410 | 0.300 | 0.300, 0, 0.250 | 0.405, 2, - (1 of 2 seeds) |"]
    assert [line.split(" |")[0] for line in table.splitlines()[2:4]] == ["| flags", "| mine"]
    assert "ref: finetune mAP" in table and "trial: finetune mAP" in table
    assert table.splitlines()[-3] == "| both targets met | | | 0 sets | 0 sets |"
    # seed 0 of the trial has the reference's BCE and MLP (2 wins: not met); seed 7 has neither
    assert table.splitlines()[-2] == "| (set, seed) pairs meeting both | | | 0 of 2 | 0 of 1 |"


def test_compare_trials_counts_the_sets_meeting_both_targets_on_the_chosen_seeds(tmp_path):
    """Both targets: at least 4 of 6 metrics above BCE, and finetune mAP at least the MLP's on the same
    seeds; --seeds restricts every mean to those seeds."""
    from mulsupcon.benchmark import compare_trials

    ref, trial = tmp_path / "ref", tmp_path / "trial"
    for d in ("flags", "yeast"):
        for s in (0, 1):
            _cell(ref, d, "bce", s, mAP=0.40)
            _cell(ref, d, "mulsupcon-finetune", s, mAP=0.30)
    _cell(ref, "flags", "sklearn-mlp", 0, mAP=0.41)
    _cell(ref, "flags", "sklearn-mlp", 1, mAP=0.30)
    _cell(ref, "yeast", "sklearn-mlp", 0, mAP=0.45)
    _cell(ref, "yeast", "sklearn-mlp", 1, mAP=0.45)
    better = {m: 0.6 for m in ("hamming_accuracy", "example_f1", "macro_f1", "micro_f1")}  # 4 wins
    for s in (0, 1):
        _cell(trial, "flags", "mulsupcon-finetune", s, mAP=0.405, **better)  # beats the MLP's mean 0.355 only
        _cell(trial, "yeast", "mulsupcon-finetune", s, mAP=0.44, **better)  # 5 wins, below the MLP's 0.45
    both_seeds = compare_trials(ref, [trial]).splitlines()
    assert both_seeds[-3] == "| both targets met | | | 0 sets | 1 sets |"
    # judged seed by seed only flags seed 1 meets both (seed 0: 0.405 below that seed's MLP 0.41)
    assert both_seeds[-2] == "| (set, seed) pairs meeting both | | | 0 of 4 | 1 of 4 |"
    assert both_seeds[-1].startswith("| mean finetune mAP | | | 0.300 (2 sets) | ")
    assert both_seeds[-1].endswith(" (2 sets) |")
    assert float(both_seeds[-1].split(" | ")[-1].split()[0]) == pytest.approx((0.405 + 0.44) / 2, abs=6e-4)  # printed to 3 digits
    seed0 = compare_trials(ref, [trial], seeds=[0]).splitlines()  # flags' MLP is 0.41 on seed 0: above the trial's 0.405
    assert seed0[-3] == "| both targets met | | | 0 sets | 0 sets |"
    assert seed0[-2] == "| (set, seed) pairs meeting both | | | 0 of 2 | 0 of 2 |"
    assert any(line.startswith("| flags | 0.400 | 0.410 |") for line in seed0)


def test_seed_by_seed_pairs_each_seed_with_the_reference_bce_and_mlp_of_that_seed(tmp_path):
    """Each cell: wins of the trial's finetune against the reference's BCE of the same seed, then its mAP
    minus the reference's MLP of that seed; the count needs both (>= 4 wins, difference >= 0); a seed
    missing one of the three cells is shown as '-' and not counted."""
    from mulsupcon.benchmark import seed_by_seed

    ref, trial = tmp_path / "ref", tmp_path / "trial"
    better = {m: 0.6 for m in ("hamming_accuracy", "example_f1", "macro_f1", "micro_f1")}
    for s, mlp in ((0, 0.30), (1, 0.45), (2, 0.30)):
        _cell(ref, "flags", "bce", s, mAP=0.40)
        _cell(ref, "flags", "sklearn-mlp", s, mAP=mlp)
        _cell(ref, "flags", "mulsupcon-finetune", s, mAP=0.35)  # loses mAP to BCE, ties the rest: 0 wins
    _cell(trial, "flags", "mulsupcon-finetune", 0, mAP=0.42, **better)  # 5 wins, +0.12 over the MLP: meets both
    _cell(trial, "flags", "mulsupcon-finetune", 1, mAP=0.42, **better)  # 5 wins but 0.03 below that seed's MLP
    # seed 2: no trial cell
    table = seed_by_seed(ref, trial).splitlines()
    assert table[2] == "| dataset | seed 0 | seed 1 | seed 2 | seeds meeting both |"
    assert table[4] == "| flags | 5, +0.120 | 5, -0.030 | - | 1 of 2 |"
    assert seed_by_seed(ref).splitlines()[4] == "| flags | 0, +0.050 | 0, -0.100 | 0, +0.050 | 0 of 3 |"
    assert seed_by_seed(ref, trial, seeds=[1]).splitlines()[4] == "| flags | 5, -0.030 | 0 of 1 |"


def test_average_finetunes_scores_the_mean_of_the_kept_probabilities(tmp_path, capsys, monkeypatch):
    """benchmarks/average_finetunes.py: kept BCE probabilities are reused (no training), and each printed
    mAP is the validation-protocol mAP of the mean probabilities, checked against scikit-learn."""
    import importlib.util
    import sys
    from pathlib import Path

    from sklearn.metrics import average_precision_score

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "average_finetunes.py"
    spec = importlib.util.spec_from_file_location("average_finetunes", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    rng = np.random.default_rng(0)
    yv, yt = rng.integers(0, 2, (20, 3)), rng.integers(0, 2, (30, 3))
    yt[0], yt[1] = 1, 0  # every label has a positive and a negative
    runs = {}
    for name, path in (("a", tmp_path / "a" / "scores" / "flags-finetune-seed0.npz"),
                       ("b", tmp_path / "b" / "scores" / "flags-finetune-seed0.npz"),
                       ("bce", tmp_path / "bce" / "flags-bce-seed0.npz"),
                       ("bce2", tmp_path / "bce" / "flags-bce-seed1000.npz")):
        runs[name] = {"val_scores": rng.random((20, 3)), "val_targets": yv,
                      "test_scores": rng.random((30, 3)), "test_targets": yt}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **runs[name])
    monkeypatch.setattr(mod, "run_scratch", lambda *a, **k: pytest.fail("BCE retrained although kept"))
    monkeypatch.setattr(sys, "argv", ["average_finetunes.py", str(tmp_path / "a"), str(tmp_path / "b"),
                                      "--datasets", "flags", "--seeds", "0", "--bce-work", str(tmp_path / "bce")])
    mod.main()
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| flags")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]

    def m_ap(scores):
        return np.mean([average_precision_score(yt[:, j], scores[:, j]) for j in range(3)])

    expected = [m_ap(runs["bce"]["test_scores"]), m_ap((runs["bce"]["test_scores"] + runs["bce2"]["test_scores"]) / 2),
                m_ap(runs["a"]["test_scores"]), m_ap((runs["a"]["test_scores"] + runs["b"]["test_scores"]) / 2)]
    assert [float(c) for c in cells[1:5]] == pytest.approx(expected, abs=5e-4)
    assert all(0 <= int(c) <= 6 for c in cells[5:7])


# ----------------------------------------------------------------------------- BOOMER in its own interpreter
FAKE_BOOMER = '''
import numpy as np


class BoomerClassifier:
    """A deterministic stand-in with BOOMER's interface: the sigmoid of the first L features."""

    def __init__(self, random_state=1):
        if random_state < 1:  # as the real one: its seeds start at 1
            raise ValueError("random_state must be at least 1")
        self.random_state = random_state

    def fit(self, x, y):
        self.n_labels = y.shape[1]
        return self

    def predict_proba(self, x):
        return 1.0 / (1.0 + np.exp(-x[:, : self.n_labels]))
'''


def _fake_boomer(tmp_path, monkeypatch):
    package = tmp_path / "fake" / "mlrl"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "boosting.py").write_text(FAKE_BOOMER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))


def test_boomer_runs_in_the_given_interpreter_and_is_scored_like_the_others(tmp_path, monkeypatch):
    require_dataset_folder("flags")
    import sys

    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, benchmark_vectors
    from mulsupcon.metrics import evaluate

    _fake_boomer(tmp_path, monkeypatch)
    out = tmp_path / "b.md"
    benchmark_vectors(["flags"], [0], ["boomer"], work=tmp_path / "w", out=out, boomer=sys.executable,
                      say=lambda s: None)
    cell = json.loads((tmp_path / "w" / "cells" / "flags" / "boomer-seed0.json").read_text())
    assert cell["version"] == "unknown"  # the stand-in has no distribution metadata
    (xva, yva), (xte, yte) = (arrays(benchmark_data("flags", benchmark_config("flags")))[k] for k in ("val", "test"))
    expect = evaluate(1 / (1 + np.exp(-xte[:, :7].astype(np.float64))), yte, protocol="validation",
                      val_scores=1 / (1 + np.exp(-xva[:, :7].astype(np.float64))), val_targets=yva)
    for metric, value in cell["metrics"]["validation"].items():
        assert value == pytest.approx(float(expect[metric]), abs=1e-9), metric
    assert "| flags | 103 | 7 |" in out.read_text() and "mlrl-boomer unknown" in out.read_text()


def test_boomer_worker_drops_features_constant_on_the_training_rows(tmp_path, monkeypatch):
    # The real mlrl-boomer 0.12.3 learns nothing when a constant column is present (genbase); the
    # worker must hand it only the varying ones, in order, for train, val and test alike.
    import subprocess
    import sys
    from pathlib import Path

    import mulsupcon.benchmark

    _fake_boomer(tmp_path, monkeypatch)
    rng = np.random.default_rng(0)
    x = {k: rng.normal(size=(n, 6)).astype(np.float32) for k, n in (("x_train", 20), ("x_val", 5), ("x_test", 7))}
    x["x_train"][:, [0, 3]] = 2.5  # constant on the training rows only; val/test vary there
    y = (rng.random((20, 2)) < 0.5).astype(np.uint8)
    np.savez(tmp_path / "in.npz", y_train=y, seed=0, **x)
    worker = Path(mulsupcon.benchmark.__file__).with_name("boomer_worker.py")
    subprocess.run([sys.executable, str(worker), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], check=True)
    with np.load(tmp_path / "out.npz") as z:
        for split in ("val", "test"):  # the stand-in scores with the first 2 columns it was given: 1 and 2
            expect = 1 / (1 + np.exp(-x[f"x_{split}"][:, [1, 2]].astype(np.float64)))
            np.testing.assert_allclose(z[f"{split}_scores"], expect, rtol=1e-6)


def test_boomer_without_an_interpreter_or_without_mlrl_says_how_to_make_one(tmp_path):
    require_dataset_folder("flags")
    import importlib.util
    import sys

    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, benchmark_vectors, run_boomer

    with pytest.raises(ValueError, match="--boomer-python"):
        benchmark_vectors(["flags"], [0], ["boomer"], work=tmp_path / "w", out=tmp_path / "b.md", boomer=None)
    parts = arrays(benchmark_data("flags", benchmark_config("flags")))
    if importlib.util.find_spec("mlrl") is None:  # the test environment never installs it
        with pytest.raises(RuntimeError, match="pip install mlrl-boomer"):
            run_boomer(parts, 0, sys.executable)
    with pytest.raises(RuntimeError, match="cannot start"):
        run_boomer(parts, 0, str(tmp_path / "no-such-python"))


def test_boomer_is_left_out_of_the_default_methods_unless_an_interpreter_is_given(tmp_path, monkeypatch):
    from mulsupcon import benchmark

    seen = []
    monkeypatch.setattr(benchmark, "write_report", lambda work, out, datasets, seeds, methods, *a, **k: seen.append(methods))
    benchmark.benchmark_vectors([], [0], work=tmp_path / "w", out=tmp_path / "b.md")
    benchmark.benchmark_vectors([], [0], work=tmp_path / "w", out=tmp_path / "b.md", boomer="python3")
    assert "boomer" not in seen[0] and "boomer" in seen[1]


@pytest.mark.skipif(not __import__("os").environ.get("MULSUPCON_BOOMER_PYTHON"),
                    reason="set MULSUPCON_BOOMER_PYTHON to an interpreter with mlrl-boomer to run the real one")
def test_the_real_boomer_beats_chance_on_flags():
    require_dataset_folder("flags")
    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, boomer_python, run_boomer

    parts = arrays(benchmark_data("flags", benchmark_config("flags")))
    got = run_boomer(parts, 0, boomer_python())
    base_rate = parts["test"][1].mean()  # mAP of a random ranking is about the labels' base rate
    assert got["validation"]["mAP"] > base_rate + 0.1 and got["version"][0].isdigit()


def test_the_report_says_when_its_cells_come_from_different_code_or_configs(tmp_path):
    """Cells are never recomputed, so a resumed --work can mix code versions or --set values; the report
    names each with its count (older cells record neither)."""
    from mulsupcon.benchmark import code_fingerprint, provenance_note, write_report

    fp = code_fingerprint()
    assert len(fp) == 12 and int(fp, 16) >= 0 and code_fingerprint() == fp
    same = {"code": fp, "config": "vectors", "overrides": {}}
    found = {"flags": {"bce": [dict(same), dict(same)], "mulsupcon-finetune": [dict(same)]}}
    assert provenance_note(found) is None
    found["yeast"] = {"bce": [dict(same, code="ffffffffffff", overrides={"pretrain.lr": 0.001}), {"metrics": {}}]}
    note = provenance_note(found)
    assert "code (" + fp + ": 3 cells; ffffffffffff: 1 cells; not recorded: 1 cells)" in note
    assert ('config (vectors {"pretrain.lr": 0.001}: 1 cells; vectors {}: 3 cells; not recorded: 1 cells)' in note)
    # In the written report: two cells of one set, from two code versions.
    for s in (0, 1):
        _cell(tmp_path, "flags", "bce", s)
    cell = tmp_path / "cells" / "flags" / "bce-seed1.json"
    cell.write_text(json.dumps(dict(json.loads(cell.read_text()), code=fp)))
    write_report(tmp_path, tmp_path / "r.md", ["flags"], [0, 1], ["bce"], "vectors", None, "")
    assert f"code ({fp}: 1 cells; not recorded: 1 cells)" in (tmp_path / "r.md").read_text()


def _derived_sets_module():
    """benchmarks/derived_sets.py, imported from its file (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "derived_sets.py"
    spec = importlib.util.spec_from_file_location("derived_sets", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_derived_sets_are_rows_of_their_source_and_its_rarest_labels():
    """benchmarks/derived_sets.py: scene600 is 600 of scene's rows, drawn without replacement (features
    and labels kept together) and the same way on every call; scene3rare keeps every row and the 3 least frequent
    labels, so that about half of the rows have none."""
    from conftest import require_dataset_folder
    from mulsupcon.data.registry import load

    require_dataset_folder("scene")
    mod = _derived_sets_module()

    full = load("scene", "all")
    fx, fy = np.asarray(full.features, dtype=np.float32), np.asarray(full.labels)
    x, y = mod.build("scene600")
    assert x.shape == (600, fx.shape[1]) and y.shape == (600, fy.shape[1]) and y.dtype == np.uint8
    from collections import Counter

    # each (features, labels) row of the subset is one of scene's, no more often than scene has it
    # (scene holds a few identical rows, so rows are compared as a multiset)
    source = Counter(a.tobytes() + b.astype(np.uint8).tobytes() for a, b in zip(fx, fy))
    subset = Counter(a.tobytes() + b.tobytes() for a, b in zip(x, y))
    assert all(source[k] >= n for k, n in subset.items())
    x2, _ = mod.build("scene600")
    np.testing.assert_array_equal(x, x2)

    x3, y3 = mod.build("scene3rare")
    counts = fy.sum(0)
    rarest = sorted(counts)[:3]
    assert x3.shape == fx.shape and sorted(y3.sum(0)) == rarest
    assert 0.45 < (y3.sum(1) == 0).mean() < 0.55


def test_the_lsa_embedding_is_the_top_of_the_tfidf_matrix_spectrum():
    """benchmarks/derived_sets.py corel5k-lsa: every corel5k row, labels unchanged and in order, as 256
    dense columns whose norms are the largest singular values of the TF-IDF matrix (computed here by
    hand: raw counts times smoothed idf, rows scaled to unit length; the oracle is numpy's full SVD), and
    the same on every call."""
    from conftest import require_dataset_folder
    from mulsupcon.data.registry import load

    require_dataset_folder("corel5k")
    mod = _derived_sets_module()

    full = load("corel5k", "all")
    x, y = mod.build("corel5k-lsa")
    assert x.shape == (full.n_samples, 256) and x.dtype == np.float32
    np.testing.assert_array_equal(y, np.asarray(full.labels, dtype=np.uint8))

    counts = np.asarray(full.dense_features(), dtype=np.float64)
    df = (counts > 0).sum(0)
    tfidf = counts * (np.log((1 + len(counts)) / (1 + df)) + 1)
    tfidf /= np.maximum(np.linalg.norm(tfidf, axis=1, keepdims=True), 1e-12)
    top = np.linalg.svd(tfidf, compute_uv=False)[:20]
    np.testing.assert_allclose(np.linalg.norm(x[:, :20].astype(np.float64), axis=0), top, rtol=1e-3)
    x2, _ = mod.build("corel5k-lsa")
    np.testing.assert_array_equal(x, x2)


def test_the_report_goes_to_the_work_folder_and_a_curated_page_is_never_overwritten(tmp_path, monkeypatch):
    from mulsupcon.benchmark import REPORT_TITLE, benchmark_vectors

    monkeypatch.chdir(tmp_path)
    curated = tmp_path / "results" / "baselines.md"
    curated.parent.mkdir()
    curated.write_text(f"{REPORT_TITLE}\n\n## Today's default, assembled by hand from three reports\n")
    before = curated.read_bytes()
    # No out: the report is WORK/report.md, whatever lies in results/.
    report = benchmark_vectors([], [0], ["bce"], work=tmp_path / "w")
    assert report == tmp_path / "w" / "report.md"
    assert report.read_text().splitlines()[0] == REPORT_TITLE and curated.read_bytes() == before
    # A page this harness did not write is refused before anything runs, and left as it was.
    with pytest.raises(FileExistsError, match=r"baselines\.md exists and is not a report.*line 3 'Command: \.\.\.'"):
        benchmark_vectors(["flags"], [0], ["bce"], work=tmp_path / "w2", out=curated)
    assert curated.read_bytes() == before and not (tmp_path / "w2").exists()
    # A report it wrote before may be rewritten (a rerun refreshes it).
    assert benchmark_vectors([], [1], ["bce"], work=tmp_path / "w", out=report) == report
    assert "seeds 1;" in report.read_text()


def test_the_cli_passes_no_out_unless_given(monkeypatch, tmp_path, capsys):
    from mulsupcon import benchmark, cli

    seen = []
    monkeypatch.setattr(benchmark, "benchmark_vectors", lambda *a, out=None, work=None, **k: seen.append(out) or
                        (out or work / "report.md"))
    assert cli.main(["benchmark", "vectors", "--datasets", "flags", "--work", str(tmp_path / "w")]) == 0
    assert seen == [None] and f"report: {tmp_path / 'w' / 'report.md'}" in capsys.readouterr().out
    cli.main(["benchmark", "vectors", "--datasets", "flags", "--out", str(tmp_path / "r.md")])
    assert seen[1] == tmp_path / "r.md"


def test_the_help_lists_every_benchmark_method(capsys):
    """`benchmark --help` names the methods without importing the benchmark: its copy of the names must
    stay the benchmark's own list."""
    from mulsupcon import benchmark, cli

    assert cli.BENCHMARK_METHODS == benchmark.METHODS
    with pytest.raises(SystemExit):
        cli.main(["benchmark", "vectors", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(m in text for m in benchmark.METHODS) and "default: 0 1 2" in text


def test_the_report_names_labels_no_method_can_learn(tmp_path):
    """genbase's official training part never has PDOC50199 or PDOC00660 (the split's own warning names
    them), yet its test part does: the report says so next to the set's metrics."""
    require_dataset_folder("genbase")
    from mulsupcon.benchmark import arrays, benchmark_config, benchmark_data, benchmark_vectors

    with pytest.warns(UserWarning, match=r"PDOC50199, PDOC00660 .*2 of them occur in the test split"):
        data = benchmark_data("genbase", benchmark_config("genbase", overrides=FAST))
    (_, ytr), (_, yte) = arrays(data)["train"], arrays(data)["test"]
    names = [data.label_names[j] for j in np.flatnonzero((ytr.sum(0) == 0) & (yte.sum(0) > 0))]
    assert sorted(names) == ["PDOC00660", "PDOC50199"]
    report = benchmark_vectors(["genbase"], [0], ["bce"], work=tmp_path / "w", overrides=FAST, say=lambda s: None)
    assert "labels with test positives but none in training: 2 (every method ranks" in report.read_text()
    assert json.loads((tmp_path / "w" / "cells" / "genbase" / "shape.json").read_text())["unlearnable_labels"] == 2


def test_per_label_ap_averages_to_the_metrics_modules_map():
    """benchmarks/per_label_ap.py: its per-label APs, averaged over the labels with test positives, are
    mulsupcon.metrics' mAP (so its tables add up to the benchmark's numbers); NaN marks a label without one."""
    import importlib.util
    from pathlib import Path

    from mulsupcon.metrics import evaluate

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "per_label_ap.py"
    spec = importlib.util.spec_from_file_location("per_label_ap", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    y = (rng.random((60, 5)) < [0.5, 0.2, 0.05, 0.0, 0.3]).astype(np.uint8)
    scores = np.clip(0.6 * y + rng.random(y.shape) * 0.7, 0, 1)
    aps = mod.label_aps(scores, y)
    assert np.isnan(aps[3]) and not np.isnan(aps[[0, 1, 2, 4]]).any()
    assert np.nanmean(aps) == pytest.approx(float(evaluate(scores, y, protocol="paper")["mAP"]))
    # A label whose positives all score above its negatives has AP 1.
    assert mod.label_aps(np.array([[0.9], [0.1], [0.8]]), np.array([[1], [0], [1]]))[0] == 1.0
    # top1_split, by hand: 4 rows, 3 labels with 5, 0 and 20 training positives.
    y4 = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0]])
    got = mod.top1_split(np.array([2, 2, 0, 1]), np.array([0, 2, 1, 0]), y4, np.array([5, 0, 20]))
    # row 0: only BCE right (finetune put label 2, 20 positives, on top; BCE label 0, 5); row 1: both right;
    # row 2: only finetune right; row 3: only finetune right (label 1, which has no training positive)
    assert got == {"only_finetune": 2, "only_bce": 1, "finetune_top_pos": 20.0, "bce_top_pos": 5.0,
                   "finetune_unlearnable": 1, "bce_unlearnable": 1}


def test_head_adjust_changes_only_what_it_says():
    """benchmarks/head_adjust.py: tau 0 is the unchanged layer; tau-normalisation at 1 gives every label's
    weight row the mean norm; logit adjustment at 1 subtracts log prior from each logit (by hand)."""
    import importlib.util
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    import torch

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))  # the script imports its neighbour per_label_ap, as when run from there
    try:
        spec = importlib.util.spec_from_file_location("head_adjust", bench / "head_adjust.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(bench))
    torch.manual_seed(0)
    fc = torch.nn.Linear(4, 3)
    with torch.no_grad():
        fc.weight[1] *= 5  # one label with a much larger norm
    model = SimpleNamespace(model=SimpleNamespace(embed=lambda t: t, fc=fc))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    prior = torch.tensor([0.5, 0.1, 0.02])
    with torch.no_grad():
        logits = fc(torch.from_numpy(x))
    for how in ("tau", "prior"):
        np.testing.assert_allclose(mod.adjusted_scores(model, x, how, 0.0, prior), torch.sigmoid(logits).numpy(), rtol=1e-6)
    norms = fc.weight.detach().norm(dim=1)
    w1 = fc.weight.detach() / norms[:, None] * norms.mean()
    want = torch.sigmoid(torch.from_numpy(x) @ w1.T + fc.bias.detach()).numpy()
    np.testing.assert_allclose(mod.adjusted_scores(model, x, "tau", 1.0, prior), want, rtol=1e-5)
    want = torch.sigmoid(logits - torch.log(prior)).numpy()
    np.testing.assert_allclose(mod.adjusted_scores(model, x, "prior", 1.0, prior), want, rtol=1e-5)


@pytest.mark.parametrize("override, flag", [({"dataset.path": "data.csv"}, "--datasets NAME=PATH"),
                                            ({"dataset.name": "scene"}, "--datasets NAME"), ({"seed": 4}, "--seeds")])
def test_overrides_of_what_each_cell_sets_are_refused(tmp_path, override, flag):
    """`--dataset.path FILE` (now a flag the benchmark takes) would run every default dataset's cells on that
    file under the datasets' names; a seed override would run one seed under every seed's name. Refused
    before anything is written, naming the option to use."""
    from mulsupcon.benchmark import benchmark_vectors

    with pytest.raises(ValueError, match=f"sets {list(override)[0]} for each cell itself; use {flag}"):
        benchmark_vectors(["flags"], [0], ["bce"], work=tmp_path / "w", out=tmp_path / "b.md", overrides=override)
    assert not (tmp_path / "w").exists() and not (tmp_path / "b.md").exists()


@pytest.mark.parametrize("seeds, methods, said", [([0, 0], ["bce"], "--seeds: 0 named twice"),
                                                  ([0], ["bce", "bce"], "--methods: bce named twice"),
                                                  ([-1], ["bce"], r"each of --seeds must be an integer in \[0, 2\*\*32 - 1\]")])
def test_a_seed_or_method_named_twice_or_a_negative_seed_is_refused_before_any_cell(tmp_path, seeds, methods, said):
    """A seed named twice ran its cells twice and counted them twice in each mean ± std; a negative seed
    ran the torch methods, then failed in scikit-learn's words at the MLP's cell."""
    from mulsupcon.benchmark import benchmark_vectors

    with pytest.raises(ValueError, match=said):
        benchmark_vectors(["flags"], seeds, methods, work=tmp_path / "w", out=tmp_path / "b.md")
    assert not (tmp_path / "w").exists()
