"""``mulsupcon embed``: features equal a direct forward pass, HDF5 layout, and the vector pipeline on them."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest
import torch
import torchvision

from conftest import require_dataset_folder
from mulsupcon.data import image_datasets as imd
from mulsupcon.data.image_views import eval_transform
from mulsupcon.embed import add_embed_parser, build_embedding_backbone, embed_dataset, run_embed
from mulsupcon.models.image import TorchvisionBackbone
from mulsupcon.train.data import load_dataset_splits

SIZE = 16
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # tiny COCO subset: labels absent from train


@pytest.fixture
def ds_cfg(tmp_path):
    require_dataset_folder("coco-tiny-enginbozaba")
    return {"name": "coco-tiny-enginbozaba", "image_size": SIZE, "cache_dir": str(tmp_path / "cache"),
            "val_fraction": 0.2, "split_seed": 0}


def _direct(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Oracle: the eval view applied image by image, then one forward pass of ``model``."""
    t = eval_transform(SIZE, resize=SIZE)
    x = torch.stack([t(torch.from_numpy(np.ascontiguousarray(im))) for im in images])
    with torch.no_grad():
        return model.eval()(x).numpy()


def _read(path):
    with h5py.File(path, "r") as f:
        return f["feature"][()], f["target"][()]


def test_random_init_features_match_direct_forward(tmp_path, ds_cfg):
    out = embed_dataset(ds_cfg, tmp_path / "emb", arch="resnet18", weights=None, seed=5, device="cpu", batch_size=7)
    splits = load_dataset_splits(ds_cfg)
    torch.manual_seed(5)
    same = TorchvisionBackbone("resnet18")  # what seed 5 initialises
    for part in ("train", "val", "test"):
        feats, target = _read(out / f"{part}.hdf5")
        ds = getattr(splits, part)
        assert feats.dtype == np.float32 and feats.shape == (ds.n_samples, 512)
        np.testing.assert_array_equal(target, ds.labels)
        np.testing.assert_allclose(feats, _direct(same, np.asarray(ds.features)), rtol=1e-4, atol=1e-5)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["feature_dim"] == 512 and meta["image_size"] == SIZE and len(meta["label_names"]) == 80


def test_weights_file_features_match_torchvision_model(tmp_path, ds_cfg):
    torch.manual_seed(11)
    tv = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # make BatchNorm statistics non-trivial so a wrong load would show
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    wfile = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), wfile)  # a torchvision state_dict, classifier included
    out = embed_dataset(ds_cfg, tmp_path / "emb", arch="resnet18", weights=str(wfile), seed=0, device="cpu")
    tv.fc = torch.nn.Identity()
    splits = load_dataset_splits(ds_cfg)
    feats, _ = _read(out / "test.hdf5")
    np.testing.assert_allclose(feats, _direct(tv, np.asarray(splits.test.features)), rtol=1e-4, atol=1e-5)
    # and a random init (seed 0) would have given something else
    torch.manual_seed(0)
    assert not np.allclose(feats, _direct(TorchvisionBackbone("resnet18"), np.asarray(splits.test.features)), atol=1e-3)


def test_embedded_folder_runs_through_vector_pipeline(tmp_path, ds_cfg, monkeypatch):
    from mulsupcon.config import load_config
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data

    out = embed_dataset(ds_cfg, tmp_path / "emb", arch="resnet18", seed=1, device="cpu")
    name = f"hdf5:{out.resolve()}"
    cfg = load_config(None, {"dataset.name": name, "model.hidden": [16], "classify.epochs": 1,
                             "classify.batch_size": 8, "device": "cpu"})
    splits = load_dataset_splits(cfg["dataset"])
    train_feats, _ = _read(out / "train.hdf5")
    np.testing.assert_array_equal(splits.train.features, train_feats)  # official val: nothing carved again
    assert splits.train.label_names == json.loads((out / "dataset.json").read_text())["label_names"]
    # The same folder as your own data (--dataset.path), and by a name relative to the working directory:
    # the same official parts and the label names of dataset.json (not label0, label1, ...).
    monkeypatch.chdir(tmp_path)
    for ds in ({"dataset.path": "emb"}, {"dataset.name": "hdf5:emb"}):
        again = load_dataset_splits(load_config(None, ds)["dataset"])
        for part in ("train", "val", "test"):
            np.testing.assert_array_equal(getattr(again, part).features, getattr(splits, part).features)
            np.testing.assert_array_equal(getattr(again, part).labels, getattr(splits, part).labels)
        assert again.train.label_names == splits.train.label_names
    data = prepare_data(cfg["dataset"], splits=splits)
    assert not data.is_image and data.input_shape == (512,)
    res = classify({**cfg, "classify": {**cfg["classify"], "mode": "scratch"}}, tmp_path / "run", data=data,
                   quiet=True, echo=False)
    assert 0.0 <= res["protocols"]["paper"]["mAP"] <= 1.0
    # `evaluate --input test.hdf5`: the file names no labels, so its columns are the model's, in order
    # (before, its label0, label1, ... were refused as not the model's names).
    from mulsupcon.evaluate import evaluate_file
    from mulsupcon.predict import load_run, read_labelled_inputs

    x, y = read_labelled_inputs(out / "test.hdf5", load_run(tmp_path / "run"))
    np.testing.assert_array_equal(x, splits.test.features)
    np.testing.assert_array_equal(y, splits.test.labels)
    assert "test.hdf5, validation protocol" in evaluate_file(tmp_path / "run", out / "test.hdf5")
    with h5py.File(tmp_path / "fewer.hdf5", "w") as f:  # unnamed, but not as many labels: refused
        f["feature"], f["target"] = x, y[:, 1:]
    with pytest.raises(ValueError, match="are not the model's"):
        read_labelled_inputs(tmp_path / "fewer.hdf5", load_run(tmp_path / "run"))


def test_embed_errors(tmp_path, ds_cfg):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(ValueError, match="does not fit a 'resnet50' backbone"):
        build_embedding_backbone("resnet50", str(tmp_path / "r18.pt"))
    with pytest.raises(ValueError, match="weights file not found"):
        build_embedding_backbone("resnet18", str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="small_input"):
        build_embedding_backbone("resnet18", "IMAGENET1K_V1", small_input=True)
    # A missing file is named as such even with small_input (it was taken for a torchvision weights name).
    with pytest.raises(ValueError, match="weights file not found"):
        build_embedding_backbone("resnet18", str(tmp_path / "nope.pt"), small_input=True)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="a-file is a file, not a folder"):
        embed_dataset(ds_cfg, tmp_path / "a-file", arch="resnet18", device="cpu")
    embed_dataset(ds_cfg, tmp_path / "emb", arch="resnet18", device="cpu")
    with pytest.raises(ValueError, match="overwrite"):
        embed_dataset(ds_cfg, tmp_path / "emb", arch="resnet18", device="cpu")
    with pytest.raises(ValueError, match="no train.hdf5"):
        imd.hdf5_folder_spec(tmp_path)


def test_cli_parser_and_run(tmp_path, ds_cfg, capsys):
    parser = argparse.ArgumentParser(prog="mulsupcon")
    add_embed_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["embed", ds_cfg["name"], "--out", str(tmp_path / "cli"), "--arch", "resnet18",
                              "--image-size", str(SIZE), "--cache-dir", ds_cfg["cache_dir"], "--device", "cpu"])
    assert run_embed(args) == 0
    printed = capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["embed", ds_cfg["name"], "--out", str(tmp_path / "x"), "--batch-size", "0"])
    assert "argument --batch-size: must be >= 1, got 0" in capsys.readouterr().err
    assert f"use them with: --dataset.path {(tmp_path / 'cli').resolve()}" in printed
    assert {p.name for p in (tmp_path / "cli").iterdir()} == {"train.hdf5", "val.hdf5", "test.hdf5", "dataset.json"}


def test_cli_embeds_your_own_image_folder(tmp_path, capsys):
    """`embed --dataset.path FOLDER --dataset.labels FILE` reads your images as `train` does (before, embed took
    registered datasets only): every image lands in one split, with the label file's names, and the features
    equal a direct forward pass of the same backbone on the same rows."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    rows = ["file,labels"]
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
        rows.append(f"p{i}.png," + ["cat", "dog", "cat;dog"][i % 3])
    (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
    parser = argparse.ArgumentParser(prog="mulsupcon")
    add_embed_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "emb"
    args = parser.parse_args(["embed", "--dataset.path", str(folder), "--dataset.labels", str(tmp_path / "tags.csv"),
                              "--dataset.label_sep", ";", "--out", str(out), "--arch", "resnet18", "--image-size",
                              str(SIZE), "--device", "cpu", "--seed", "3"])
    assert run_embed(args) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["label_names"] == ["cat", "dog"] and sum(meta["rows"].values()) == 30 and meta["dataset"] == "photos"
    splits = load_dataset_splits({"path": str(folder), "labels": str(tmp_path / "tags.csv"), "label_sep": ";",
                                  "image_size": SIZE, "val_fraction": 0.2, "split_seed": 0, "name": "photos"})
    feats, target = _read(out / "test.hdf5")
    model = build_embedding_backbone("resnet18", None, seed=3)
    np.testing.assert_allclose(feats, _direct(model, splits.test.features), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(target, splits.test.labels)
    with pytest.raises(ValueError, match="name a registered image dataset, or give your own images"):
        run_embed(parser.parse_args(["embed", "--out", str(tmp_path / "none")]))
