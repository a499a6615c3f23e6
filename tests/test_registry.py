"""The dataset registry: file entries (checked against the shared MANIFEST), data home, messages."""

from __future__ import annotations

import csv
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

from mulsupcon.data import (
    REGISTRY,
    DatasetSpec,
    MissingDataError,
    MultiLabelDataset,
    SourceParts,
    dataset_info,
    get_data_home,
    list_datasets,
    load,
    load_splits,
    register,
)

from conftest import shared_data_dir

reg = importlib.import_module("mulsupcon.data.registry")
listing = importlib.import_module("mulsupcon.data.listing")

REQUIRED = {
    "yeast", "scene", "emotions", "enron", "medical", "birds", "genbase", "cal500", "corel5k", "bibtex",
    "delicious", "tmc2007-500", "mediamill", "bookmarks", "yeast-official", "flags", "foodtruck", "imdb",
    "multidigits",
}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_required_datasets_registered_and_listed():
    names = [s.name for s in list_datasets()]
    assert REQUIRED <= set(names)
    assert names == sorted(names)
    assert all(isinstance(s, DatasetSpec) for s in list_datasets())


def test_every_file_has_size_and_hash_or_note():
    for spec in list_datasets():
        assert spec.description and spec.n_labels
        assert spec.files or callable(spec.reader), spec.name
        for f in spec.files:
            assert f.url.startswith("https://"), f
            assert not f.path.startswith("/") and f.path.split("/")[0], f
            if f.size is None or f.sha256 is None:
                assert f.note, f"{spec.name}: {f.path} lacks size/sha256 and a note saying why"
            else:
                assert f.size > 0 and HEX64.match(f.sha256), f
        for key in ("train", "test", "val", "all", "xml"):
            if key in spec.read_args:
                assert spec.read_args[key] in {f.path for f in spec.files}, (spec.name, key)


def _manifest() -> dict[str, dict[str, str]]:
    d = shared_data_dir()
    if d is None or not (d / "MANIFEST.tsv").is_file():
        pytest.skip("MANIFEST.tsv not found under MULSUPCON_DATA")
    with open(d / "MANIFEST.tsv", newline="") as fh:
        return {row["staged_file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def test_file_entries_agree_with_manifest_and_lfs_pointers():
    """Oracle: every size/sha256/URL equals the shared MANIFEST (or the Boomer LFS pointer list)."""
    manifest = _manifest()
    pointers = {}
    for line in (shared_data_dir() / "boomer_lfs_pointers.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sha, size = line.split()
            pointers[name] = (sha, int(size))
    checked = 0
    for spec in list_datasets():
        for f in spec.files:
            if f.path in manifest:
                row = manifest[f.path]
                assert f.size == int(row["size"]) and f.sha256 == row["sha256"], f.path
                assert f.url == (
                    f"https://raw.githubusercontent.com/{row['repo']}/{row['snapshot_head_commit']}/{row['repo_path']}"
                ), f.path
                # Layout of the data home == layout of the shared folder.
                assert (shared_data_dir() / f.path).is_file()
            else:
                base = f.path.split("/")[-1]
                assert base in pointers, f"{f.path}: neither in MANIFEST.tsv nor in boomer_lfs_pointers.txt"
                assert (f.sha256, f.size) == pointers[base], f.path
                assert f.url.startswith("https://media.githubusercontent.com/media/mrapp-ke/Boomer-Datasets/")
                assert "LFS" in f.note
            checked += 1
    assert checked >= 40


def test_data_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MULSUPCON_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home() == tmp_path / "env"
    monkeypatch.setenv("MULSUPCON_DATA", "")
    assert get_data_home() == tmp_path / "xdg" / "mulsupcon"
    monkeypatch.delenv("MULSUPCON_DATA")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_data_home() == Path.home() / ".cache" / "mulsupcon"
    assert get_data_home("~/x") == Path.home() / "x"


def test_missing_files_error_text(tmp_path):
    with pytest.raises(MissingDataError) as info:
        load("emotions", data_home=tmp_path)
    msg = str(info.value)
    spec = REGISTRY["emotions"]
    assert str(tmp_path / spec.files[0].path) in msg
    assert spec.files[0].url in msg
    assert "mulsupcon datasets download emotions" in msg
    assert "MULSUPCON_DATA" in msg


def test_unknown_dataset_and_split_names():
    with pytest.raises(ValueError, match="Did you mean 'yeast'"):
        load("yaest")
    with pytest.raises(ValueError, match="split must be one of"):
        load("yeast", "validation")


def test_dataset_info_and_list_text(tmp_path):
    text = dataset_info("yeast-official", data_home=tmp_path)
    assert "MISSING" in text and "PERMUTED" in text and REGISTRY["yeast-official"].files[0].sha256 in text
    assert "mulsupcon datasets download yeast-official" in text
    table = listing.format_dataset_list(tmp_path)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["name", "samples", "labels"]
    yeast = next(ln for ln in lines if ln.split()[0] == "yeast")
    assert yeast.split()[1:5] == ["1500/917", "14", "103", "missing"]
    md = next(ln for ln in lines if ln.split()[0] == "multidigits")
    assert "generated" in md
    assert f"data home: {tmp_path}" in table


def test_info_describes_present_files():
    d = shared_data_dir()
    if d is None or not (d / "flags").is_dir():
        pytest.skip("flags folder not found under MULSUPCON_DATA")
    text = dataset_info("flags", data_home=d)
    assert "--- trainval ---" in text and "--- test ---" in text
    assert re.search(r"samples\s+129", text) and re.search(r"samples\s+65", text)
    assert "[present]" in text and "MISSING" not in text


def test_register_custom_loader(tmp_path):
    rng = np.random.default_rng(0)

    def loader(spec, home, options):
        x = rng.normal(size=(40, 3))
        y = (x[:, :2] > 0).astype(np.uint8)
        return SourceParts(train=MultiLabelDataset(x, y, ["a", "b"], name=spec.name))

    spec = DatasetSpec(name="toy-custom", description="custom", n_labels=2, reader=loader, official_split=False)
    try:
        register(spec)
        with pytest.raises(ValueError, match="already registered"):
            register(spec)
        s = load_splits("toy-custom", val_fraction=0.25, seed=1)
        assert (s.train.n_samples, s.val.n_samples, s.test.n_samples) == (24, 8, 8)
        assert load("toy-custom", "all").n_samples == 40
        assert load("toy-custom", "trainval").n_samples == 32
    finally:
        REGISTRY.pop("toy-custom", None)


def test_multidigits_variants_registered():
    names = {s.name for s in list_datasets()}
    assert {"multidigits", "multidigits-attributes"} <= names
    assert REGISTRY["multidigits"].files == ()


def test_listing_names_folders_and_image_shapes(tmp_path):
    from mulsupcon.data import get_spec
    from mulsupcon.data.listing import files_status, format_dataset_list

    assert files_status(get_spec("coco-tiny-zzowenzz"), tmp_path) == "folder missing"
    (tmp_path / "coco-tiny-zzowenzz").mkdir()
    assert files_status(get_spec("coco-tiny-zzowenzz"), tmp_path) == "folder present"
    assert files_status(get_spec("multidigits"), tmp_path) == "generated"
    rows = {ln.split()[0]: ln.split() for ln in format_dataset_list(tmp_path).splitlines()[1:-1]}
    assert rows["multidigits"][3] == "1x24x24" and rows["voc2007"][3] == "3xSxS" and rows["yeast"][3] == "103"
