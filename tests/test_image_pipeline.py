"""The image path: torchvision backbones, image dataset registration and cache placement, and an
end-to-end pretrain -> probe -> evaluate smoke run on real MS-COCO JPEGs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_dataset_folder
from mulsupcon.data import MissingDataError, ReadOptions, get_spec
from mulsupcon.data import image_datasets as imd
from mulsupcon.models import build_backbone
from mulsupcon.models.image import TorchvisionBackbone
from mulsupcon.train.data import load_dataset_splits

# The tiny COCO subsets leave most labels out of their training part: expected here, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ------------------------------------------------------------------------------------ backbones
def test_resnet18_small_input_one_channel_shape():
    torch.manual_seed(0)
    m = TorchvisionBackbone("resnet18", small_input=True, in_channels=1).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 1, 24, 24))
    assert out.shape == (2, 512) and m.out_dim == 512
    # the small stem is a 3x3 stride-1 conv on one channel and no max-pool
    assert tuple(m.model.conv1.weight.shape) == (64, 1, 3, 3)
    assert m.model.conv1.stride == (1, 1)
    assert isinstance(m.model.maxpool, torch.nn.Identity)


def test_resnet50_64px_shape_via_build_backbone():
    m = build_backbone({"backbone": "resnet50", "small_input": False}, (3, 64, 64)).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2048) and m.out_dim == 2048
    # randomly initialised (weights=None): differs from a second, differently seeded model
    torch.manual_seed(123)
    other = TorchvisionBackbone("resnet50")
    assert not torch.equal(other.model.conv1.weight, m.model.conv1.weight)


def test_unknown_backbone_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet_nope'"):
        build_backbone({"backbone": "resnet_nope"}, (3, 32, 32))
    with pytest.raises(ValueError, match="needs \\(C, H, W\\) inputs"):
        build_backbone({"backbone": "resnet18"}, (10,))


# ------------------------------------------------------------------------------ registry / cache
def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(imd.CACHE_ENV, raising=False)
    assert imd.default_cache_dir() == tmp_path / "xdg" / "mulsupcon" / "cache"
    monkeypatch.setenv(imd.CACHE_ENV, str(tmp_path / "env"))
    assert imd.default_cache_dir() == tmp_path / "env"
    assert imd.default_cache_dir(tmp_path / "cfg") == tmp_path / "cfg"
    data_home = os.environ.get("MULSUPCON_DATA", "")
    assert not data_home or not str(imd.default_cache_dir()).startswith(data_home)


def test_image_specs_registered():
    for name, n_labels in (("coco-tiny-zzowenzz", 80), ("coco-mini-obmutescence", 80), ("coco-tiny-enginbozaba", 80),
                           ("coco", 80), ("voc2007", 20), ("nus-wide", 81), ("mirflickr", 24), ("objects365", 365)):
        spec = get_spec(name)
        assert spec.kind == "image" and spec.n_labels == n_labels
    assert get_spec("mirflickr").official_split is False
    with pytest.raises(ValueError, match="image_size"):
        load_dataset_splits({"name": "coco-tiny-zzowenzz", "image_size": 0})


def _oracle_coco_labels(ann_path: Path) -> tuple[list[str], dict[str, set[str]]]:
    """file name -> set of category names, straight from the json (images without annotations left out)."""
    data = json.loads(ann_path.read_text())
    cat_name = {c["id"]: c["name"] for c in data["categories"]}
    names = [cat_name[i] for i in sorted(cat_name)]
    file_of = {im["id"]: im["file_name"] for im in data["images"]}
    sets: dict[str, set[str]] = {}
    for a in data["annotations"]:
        sets.setdefault(file_of[a["image_id"]], set()).add(cat_name[a["category_id"]])
    return names, sets


def test_coco_subset_official_semantics_and_cache(tmp_path):
    root = require_dataset_folder("coco-tiny-enginbozaba")
    cache = tmp_path / "cache"
    cfg = {"name": "coco-tiny-enginbozaba", "image_size": 16, "cache_dir": str(cache), "val_fraction": 0.2, "split_seed": 3}
    s = load_dataset_splits(cfg)
    names, train_sets = _oracle_coco_labels(root / "annotations" / "instances_train2017.json")
    _, test_sets = _oracle_coco_labels(root / "annotations" / "instances_val2017.json")
    assert s.train.label_names == names and len(names) == 80
    # train2017 (annotated images) = train + val carve; val2017 = test
    assert s.train.n_samples + s.val.n_samples == len(train_sets)
    assert s.test.n_samples == len(test_sets)
    assert s.val.n_samples == round(0.2 * len(train_sets))
    assert s.train.features.shape[1:] == (3, 16, 16) and s.train.features.dtype == np.uint8
    # label rows match the json, row by row (the cache sidecar keeps the image paths in row order)
    meta_files = sorted(cache.glob("coco-tiny-enginbozaba-val2017-16-*.json"))
    assert len(meta_files) == 1
    paths = json.loads(meta_files[0].read_text())["paths"]
    for row, p in enumerate(paths):
        got = {names[j] for j in np.flatnonzero(s.test.labels[row])}
        assert got == test_sets[Path(p).name]
    # pixels: the cached image is the JPEG resized directly to 16x16 (oracle with PIL)
    from PIL import Image

    with Image.open(paths[0]) as im:
        im.draft(im.mode, (16, 16))
        ref = np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(np.asarray(s.test.features[0]), ref)
    # the cache lives in cache_dir (the data home is read-only), and is reused as is
    stamp = {p: p.stat().st_mtime_ns for p in cache.glob("*.npy")}
    assert len(stamp) == 2
    s2 = load_dataset_splits(cfg)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.npy")} == stamp
    np.testing.assert_array_equal(np.asarray(s2.test.features), np.asarray(s.test.features))
    # another size gives other pixels (the registry's in-process memo must not serve stale ones)
    s3 = load_dataset_splits({**cfg, "image_size": 8})
    assert s3.test.features.shape[1:] == (3, 8, 8)
    assert load_dataset_splits(cfg).test.features.shape[1:] == (3, 16, 16)


def test_missing_image_folders_are_named(tmp_path, monkeypatch):
    from mulsupcon.data import load_splits

    labels = require_dataset_folder("voc2007-labels")  # labels only: no JPEGs
    monkeypatch.setenv("MULSUPCON_DATA", str(tmp_path))
    with pytest.raises(MissingDataError, match="folder .*coco not found"):
        load_splits("coco")
    (tmp_path / "voc2007").symlink_to(labels, target_is_directory=True)
    with pytest.raises(MissingDataError, match="JPEGImages"):
        load_splits("voc2007", options=ReadOptions(image_size=8, cache_dir=str(tmp_path / "c")))


# ------------------------------------------------------------------------- end to end on COCO
def test_coco_subset_pretrain_probe_evaluate_smoke(tmp_path):
    """Real JPEGs -> reader -> cache -> pretraining views -> MoCo -> probe -> metrics, in seconds."""
    require_dataset_folder("coco-tiny-zzowenzz")
    from mulsupcon.config import load_config
    from mulsupcon.evaluate import evaluate_run
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    cfg = load_config("coco-tiny", {
        "dataset.cache_dir": str(tmp_path / "cache"), "pretrain.epochs": 1, "pretrain.steps_per_epoch": 2,
        "pretrain.batch_size": 8, "classify.epochs": 1, "classify.steps_per_epoch": 2, "classify.batch_size": 8,
        "device": "cpu",
    })
    data = prepare_data(cfg["dataset"], splits=load_dataset_splits(cfg["dataset"]))
    assert data.is_image and data.input_shape == (3, 32, 32) and data.n_labels == 80
    assert data.test.n == 80  # val2017 of this subset: 80 annotated images
    pre = pretrain(cfg, tmp_path / "pre", data=data, quiet=True, echo=False)
    state = torch.load(pre / "backbone.pt", map_location="cpu", weights_only=False)
    assert state["input_shape"] == [3, 32, 32] and state["model"]["backbone"] == "resnet18"
    hist = json.loads((pre / "history.json").read_text())
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    results = classify(cfg, tmp_path / "probe", from_run=pre, data=data, quiet=True, echo=False)
    for proto in ("paper", "validation", "fixed"):
        m = results["protocols"][proto]
        assert 0.0 <= m["mAP"] <= 1.0 and 0.0 <= m["hamming_accuracy"] <= 1.0
    z = np.load(tmp_path / "probe" / "scores.npz")
    assert z["test_scores"].shape == (80, 80)
    table = evaluate_run(tmp_path / "probe")
    assert "paper protocol" in table and "validation protocol" in table
    # torch.export's program of an image model: the evaluation view in, the run's probabilities out.
    from mulsupcon.predict import export_run, load_run

    model = load_run(tmp_path / "probe")
    images = np.asarray(data.test.batch(torch.arange(5))[0])  # uint8 (5, 3, 32, 32)
    program = torch.export.load(str(export_run(tmp_path / "probe", tmp_path / "m.pt2", "pt2"))).module()
    viewed = model._view(torch.as_tensor(images), None)
    np.testing.assert_allclose(program(viewed).numpy(), model.predict_proba(images), rtol=1e-4, atol=1e-5)


def test_image_pretraining_is_identical_with_and_without_loader_workers(tmp_path):
    """Image views come from a DataLoader; with persistent workers the run must not change."""
    from mulsupcon.config import load_config
    from mulsupcon.train.checkpoint import load_checkpoint
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    cfg = load_config("multidigits-images", {
        "model.backbone": "resnet18", "model.head_hidden": 32, "model.embed_dim": 16,
        "pretrain.epochs": 2, "pretrain.steps_per_epoch": 2, "pretrain.batch_size": 16, "pretrain.queue_size": 32,
        "device": "cpu",
    })
    data = prepare_data(cfg["dataset"])
    states = []
    for workers in (0, 2):
        cfg["pretrain"]["num_workers"] = workers
        pretrain(cfg, tmp_path / f"w{workers}", quiet=True, echo=False, data=data)
        states.append(load_checkpoint(tmp_path / f"w{workers}" / "checkpoints" / "last.pt"))
    assert_same_run(*states)


def assert_same_run(a: dict, b: dict) -> None:
    """Two checkpoints hold the same history (but for wall times) and bitwise-equal weights."""
    def without_times(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert without_times(a["history"]) == without_times(b["history"])
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("augment", ["flip_crop", "none"])
def test_image_classification_augments_in_workers_and_is_identical_for_any_worker_count(tmp_path, augment):
    """Classification views come from the DataLoader too: 0 or 2 workers give the same model."""
    from mulsupcon.config import load_config
    from mulsupcon.train.checkpoint import load_checkpoint
    from mulsupcon.train.classify import classify, training_batches
    from mulsupcon.train.data import ImageViews, prepare_data
    from mulsupcon.train import distributed as dist_utils

    cfg = load_config("multidigits-images", {
        "model.backbone": "resnet18", "classify.mode": "scratch", "classify.epochs": 2, "classify.steps_per_epoch": 3,
        "classify.batch_size": 16, "classify.augment": augment, "device": "cpu",
    })
    data = prepare_data(cfg["dataset"])
    states = []
    for workers in (0, 2):
        cfg["classify"]["num_workers"] = workers
        classify(cfg, tmp_path / f"w{workers}", quiet=True, echo=False, data=data)
        states.append(load_checkpoint(tmp_path / f"w{workers}" / "checkpoints" / "last.pt"))
    assert_same_run(*states)
    # The views really are augmented (flip_crop) or not (none), batch by batch, in the loader.
    size = data.input_shape[-1]
    batches = training_batches(cfg, data, dist_utils.context(), torch.device("cpu"),
                               ImageViews(size, "flip_crop") if augment != "none" else None, ImageViews(size, "eval"))
    x0, _ = next(iter(batches(0)))
    x1, _ = next(iter(batches(1)))
    assert x0.dtype == torch.float32 and tuple(x0.shape) == (16, *data.input_shape)
    again, _ = next(iter(batches(0)))
    torch.testing.assert_close(again, x0, rtol=0, atol=0)  # a pure function of (seed, epoch, step)
    assert not torch.equal(x0, x1)


def test_fitted_head_on_images_uses_the_evaluation_view(tmp_path):
    """head_init=fit on an image backbone: the features come through the evaluation view, the probe starts
    from the fitted layer (checkpoint epoch 0 when training cannot improve it: learning rate 0)."""
    from mulsupcon.config import load_config
    from mulsupcon.train.checkpoint import load_checkpoint
    from mulsupcon.train.classify import build_classifier, classify, fit_linear_head
    from mulsupcon.train.data import ImageViews, prepare_data
    from mulsupcon.train.pretrain import pretrain

    cfg = load_config("multidigits-images", {
        "model.backbone": "resnet18", "model.head_hidden": 32, "model.embed_dim": 16,
        "pretrain.epochs": 1, "pretrain.steps_per_epoch": 2, "pretrain.batch_size": 16, "pretrain.queue_size": 32,
        "classify.epochs": 1, "classify.steps_per_epoch": 2, "classify.batch_size": 16, "classify.lr": 0.0,
        "classify.head_init": "fit", "classify.head_fit_c": [0.1], "device": "cpu",
    })
    data = prepare_data(cfg["dataset"])
    pretrain(cfg, tmp_path / "pre", quiet=True, echo=False, data=data)
    res = classify(cfg, tmp_path / "probe", from_run=tmp_path / "pre", quiet=True, echo=False, data=data)
    model, _ = build_classifier(cfg, data, tmp_path / "pre")
    fit_linear_head(model, data.train, data.val, torch.device("cpu"), c_grid=[0.1],
                    view=ImageViews(int(data.input_shape[-1]), "eval"))
    best = load_checkpoint(tmp_path / "probe" / "checkpoints" / "best.pt")
    assert res["best_epoch"] == 0  # lr 0: epoch 1 equals epoch 0, and a tie keeps the earlier checkpoint
    torch.testing.assert_close(best["model"]["fc.weight"], model.fc.weight.detach())
