"""Figure 3 heatmap (class_similarity, run_embeddings, heatmap_runs) and training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mulsupcon import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _oracle_similarity(emb: np.ndarray, lab: np.ndarray, t: float) -> np.ndarray:
    """Plain-numpy version: single-label class means, cosine, row softmax over defined classes."""
    C = lab.shape[1]
    out = np.full((C, C), np.nan)
    single = lab.sum(1) == 1
    means = {c: emb[single & (lab[:, c] == 1)].mean(0) for c in range(C) if (single & (lab[:, c] == 1)).any()}
    for i, mi in means.items():
        logits = {j: float(mi @ mj / np.linalg.norm(mi) / np.linalg.norm(mj)) / t for j, mj in means.items()}
        z = sum(np.exp(v) for v in logits.values())
        for j, v in logits.items():
            out[i, j] = np.exp(v) / z
    return out


def test_class_similarity_matches_oracle_and_marks_missing_classes():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 6))
    lab = np.zeros((40, 4), dtype=np.uint8)
    lab[:10, 0] = 1
    lab[10:20, 1] = 1
    lab[20:30, [0, 2]] = 1  # class 2 only ever appears with class 0: no single-label sample
    lab[30:, 3] = 1
    sim, counts = plots.class_similarity(emb, lab, temperature=0.5)
    np.testing.assert_array_equal(counts, [10, 10, 0, 10])
    assert np.isnan(sim[2]).all() and np.isnan(sim[:, 2]).all()
    defined = [0, 1, 3]
    np.testing.assert_allclose(sim[np.ix_(defined, defined)].sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(sim, _oracle_similarity(emb, lab, 0.5), atol=1e-10, equal_nan=True)
    # hand case: two orthogonal class means -> softmax of (1/T, 0)
    e = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y = np.array([[1, 0], [1, 0], [0, 1]])
    s, _ = plots.class_similarity(e, y, temperature=0.1)
    p = np.exp(10.0) / (np.exp(10.0) + 1.0)
    np.testing.assert_allclose(s, [[p, 1 - p], [1 - p, p]], rtol=1e-12)
    with pytest.raises(ValueError, match="embeddings but"):
        plots.class_similarity(e, y[:2])


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A 2-step MulSupCon pretraining run and a 2-step BCE-from-scratch run on multidigits vectors."""
    from mulsupcon.config import load_config
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    root = tmp_path_factory.mktemp("plots")
    cfg = load_config("demo", {"pretrain.epochs": 2, "pretrain.steps_per_epoch": 2, "classify.epochs": 2,
                               "classify.steps_per_epoch": 2, "model.hidden": [32, 16], "model.head_hidden": 16,
                               "model.embed_dim": 8, "device": "cpu"})
    data = prepare_data(cfg["dataset"])
    pretrain(cfg, root / "pre", data=data, quiet=True, echo=False)
    scratch_cfg = {**cfg, "classify": {**cfg["classify"], "mode": "scratch"}}
    classify(scratch_cfg, root / "bce", data=data, quiet=True, echo=False)
    return root, data


def test_run_embeddings_equal_direct_backbone_forward(tiny_runs):
    from mulsupcon.models import build_backbone

    root, data = tiny_runs
    emb, lab, names, kind = plots.run_embeddings(root / "pre", "test")
    assert kind == "pretrain" and names == data.label_names
    x, y = data.test.batch(torch.arange(data.test.n))
    np.testing.assert_array_equal(lab, y.numpy())
    state = torch.load(root / "pre" / "backbone.pt", map_location="cpu", weights_only=False)
    bb = build_backbone(state["model"], data.input_shape)
    bb.load_state_dict(state["backbone"])
    with torch.no_grad():
        np.testing.assert_allclose(emb, bb.eval()(x).numpy(), rtol=1e-5, atol=1e-6)
    emb2, _, _, kind2 = plots.run_embeddings(root / "bce", "test")
    assert kind2 == "scratch" and emb2.shape == (data.test.n, 16)


def test_heatmap_and_curves_png(tiny_runs):
    root, _ = tiny_runs
    out = plots.heatmap_runs([root / "pre", root / "bce"], out=root / "figs" / "heatmap.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 5000
    for run in ("pre", "bce"):  # three panels each: loss, rate, and the spread (pretraining) or the val mAP
        png = plots.curves(root / run, out=root / "figs" / f"curves_{run}.png").read_bytes()
        assert png[:8] == PNG_MAGIC and int.from_bytes(png[16:20], "big") == round(3 * 4.2 * 110)  # IHDR width
    with pytest.raises(FileNotFoundError, match="history.json"):
        plots.curves(root / "figs")


def test_curves_of_several_runs_are_drawn_over_each_other(tiny_runs, tmp_path, monkeypatch):
    """`plot curves A B`: one panel per quantity any run has, each run's line in it, named by the run; the
    lines are the runs' history.json numbers."""
    import json

    root, _ = tiny_runs
    hist = {name: json.loads((root / name / "history.json").read_text()) for name in ("pre", "bce")}
    panels = plots.curve_panels(hist)
    assert [title for title, _ in panels] == ["loss", "learning rate", "validation mAP", "embedding spread"]
    lines = dict(panels)
    assert [label for label, *_ in lines["loss"]] == ["pre", "bce train_loss", "bce val_loss"]
    assert [label for label, *_ in lines["validation mAP"]] == ["bce"]  # only the classification run has it
    label, run, epochs, values = lines["loss"][2]
    assert run == "bce" and epochs == [h["epoch"] for h in hist["bce"]] and values == [h["val_loss"] for h in hist["bce"]]
    assert [label for label, *_ in dict(plots.curve_panels({"bce": hist["bce"]}))["loss"]] == ["train_loss", "val_loss"]
    monkeypatch.chdir(tmp_path)
    out = plots.curves([root / "pre", root / "bce"])  # several runs: curves.png here, not in a run's folder
    png = out.read_bytes()
    assert out == Path("curves.png") and png[:8] == PNG_MAGIC and int.from_bytes(png[16:20], "big") == round(4 * 4.2 * 110)
    from mulsupcon.cli import main

    assert main(["plot", "curves", str(root / "pre"), str(root / "bce"), "--out", "both.svg"]) == 0
    assert (tmp_path / "both.svg").read_text().lstrip().startswith("<?xml")


def test_heatmap_of_an_unfinished_run_says_to_resume_it(tiny_runs, tmp_path):
    """A run stopped before its last epoch (checkpoints, no backbone.pt): the heatmap says it has not
    finished and how to finish it, before reading any data (it said 'checkpoint not found')."""
    import shutil

    root, _ = tiny_runs
    run = tmp_path / "unfinished"
    shutil.copytree(root / "pre", run)
    (run / "backbone.pt").unlink()
    assert (run / "checkpoints" / "last.pt").is_file()
    with pytest.raises(FileNotFoundError, match=r"has not finished .* --resume --run-dir"):
        plots.run_embeddings(run, "test")
    with pytest.raises(FileNotFoundError, match=r"nope: no such run folder$"):
        plots.run_embeddings(tmp_path / "nope", "test")


def test_heatmap_sets_runs_of_different_datasets_side_by_side_and_checks_out_first(tmp_path, monkeypatch):
    """Each panel keeps its own classes (two runs with 3 and 5 labels broke the tick layout); the figure's
    name is checked before any run is read; a panel without single-label rows is named in a warning."""
    rng = np.random.default_rng(0)
    shapes = {"a": 3, "b": 5, "multi": 4}

    def fake_embeddings(run, split):
        C = shapes[Path(run).name]
        lab = np.eye(C)[rng.integers(0, C, 40)]
        if Path(run).name == "multi":
            lab[:, :2] = 1  # every row has at least two labels
        return rng.normal(size=(40, 6)), lab, [f"l{i}" for i in range(C)], "pretrain"

    monkeypatch.setattr(plots, "run_embeddings", fake_embeddings)
    out = plots.heatmap_runs([tmp_path / "a", tmp_path / "b"], out=tmp_path / "two")
    assert out == tmp_path / "two.png" and out.read_bytes()[:8] == PNG_MAGIC  # no suffix: .png, reported as such
    assert plots.heatmap_runs([tmp_path / "a"], out=tmp_path / "one.svg").read_text().lstrip().startswith("<?xml")
    with pytest.warns(UserWarning, match="multi: no test row has exactly one label"):
        plots.heatmap_runs([tmp_path / "multi"], out=tmp_path / "m.png")
    # 80 classes of which 6 have single-label rows (a small COCO test split): only those 6 are drawn, not
    # an 80 x 80 grid of empty rows and columns (which made a figure about 2,900 pixels wide).
    monkeypatch.setattr(plots, "run_embeddings", lambda run, split: (
        rng.normal(size=(60, 6)), np.eye(80)[rng.integers(0, 6, 60)], [f"l{i:02d}" for i in range(80)], "pretrain"))
    png = plots.heatmap_runs([tmp_path / "coco"], out=tmp_path / "coco.png").read_bytes()
    assert png[:8] == PNG_MAGIC and int.from_bytes(png[16:20], "big") < 800  # IHDR width

    def must_not_run(run, split):
        raise AssertionError("read a run before checking --out")

    monkeypatch.setattr(plots, "run_embeddings", must_not_run)
    with pytest.raises(IsADirectoryError, match="is a folder; give the figure's file name"):
        plots.heatmap_runs([tmp_path / "a"], out=tmp_path)
    with pytest.raises(ValueError, match=r"cannot write a figure as '\.txt'"):
        plots.heatmap_runs([tmp_path / "a"], out=tmp_path / "x.txt")
    with pytest.raises(ValueError, match=r"cannot write a figure as '\.pt'"):
        plots.curves(tmp_path, out=tmp_path / "model.pt")
