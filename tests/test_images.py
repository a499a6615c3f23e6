"""Image readers (real COCO subsets, VOC labels, generated NUS-WIDE / MIRFLICKR / folder fixtures)
and the preprocessing cache (reuse, rebuild, corrupt files)."""

from __future__ import annotations

import json
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import require_dataset_folder
from mulsupcon.data import image_cache as imgs
from mulsupcon.data.image_cache import build_image_cache, load_coco_dir, load_image_cache
from mulsupcon.data.image_layouts import (
    VOC_CLASSES,
    ImageList,
    coco_layout,
    load_voc_labels,
    read_coco,
    read_image_folder,
    read_image_hdf5,
    read_mirflickr,
    read_nuswide,
    read_objects365,
    read_voc,
)

COCO_SUBSETS = {  # folder -> (train images, val images) as documented in shared/data/README.md
    "coco-tiny-zzowenzz": (80, 80),
    "coco-mini-obmutescence": (80, 79),
    "coco-tiny-enginbozaba": (32, 6),
}


def _jpeg(path: Path, seed: int, size=(20, 14), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, quality=90)


# ------------------------------------------------------------------------------- COCO (real)
@pytest.mark.parametrize("folder", sorted(COCO_SUBSETS))
@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_read_coco_real_subsets(folder, split):
    root = require_dataset_folder(folder)
    ann, img_dir = coco_layout(root, split)
    il = read_coco(ann, img_dir)
    data = json.loads(ann.read_text())
    expected_n = COCO_SUBSETS[folder][0 if split == "train2017" else 1]
    assert len(il) == len(data["images"]) == expected_n
    assert il.labels.shape == (expected_n, 80) and len(il.label_names) == 80
    assert all(p.is_file() for p in il.paths)
    # Independent oracle: category names per image straight from the json.
    cat_name = {c["id"]: c["name"] for c in data["categories"]}
    assert il.label_names == [cat_name[k] for k in sorted(cat_name)]
    names_of: dict[int, set] = {im["id"]: set() for im in data["images"]}
    for a in data["annotations"]:
        names_of[a["image_id"]].add(cat_name[a["category_id"]])
    for k in (0, len(data["images"]) // 2, len(data["images"]) - 1):
        im = data["images"][k]
        got = {il.label_names[j] for j in np.flatnonzero(il.labels[k])}
        assert got == names_of[im["id"]]
        assert il.paths[k].name == im["file_name"]
    n_nonempty = sum(1 for v in names_of.values() if v)
    assert len(read_coco(ann, img_dir, keep_empty=False)) == n_nonempty
    assert read_objects365(ann, img_dir).labels.tobytes() == il.labels.tobytes()


def test_coco_empty_images_and_layout_with_images_subfolder():
    root = require_dataset_folder("coco-tiny-enginbozaba")
    ann, img_dir = coco_layout(root, "train2017")
    assert img_dir == root / "images" / "train2017"
    il = read_coco(ann, img_dir)
    assert (il.labels.sum(1) == 0).sum() == 2  # two images carry no annotation
    assert len(read_coco(ann, img_dir, keep_empty=False)) == 30


def test_load_coco_dir_real(tmp_path):
    root = require_dataset_folder("coco-tiny-enginbozaba")
    ds = load_coco_dir(root, "val2017", cache_dir=tmp_path, size=32, progress=False)
    assert ds.features.shape == (6, 3, 32, 32) and ds.features.dtype == np.uint8
    assert isinstance(ds.features, np.memmap)
    il = read_coco(*coco_layout(root, "val2017"))
    np.testing.assert_array_equal(ds.labels, il.labels)
    # Pixel oracle: PIL full decode + direct resize; the cache decodes JPEGs at a reduced DCT
    # scale first, so allow a small mean difference.
    with Image.open(il.paths[0]) as im:
        ref = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert np.abs(ds.features[0].astype(int) - ref.astype(int)).mean() < 6.0


# ------------------------------------------------------------------------------- VOC
def test_voc2007_labels_real():
    root = require_dataset_folder("voc2007-labels")
    tv = load_voc_labels(root, "trainval", difficult="negative")
    te = load_voc_labels(root, "test")
    assert len(tv) == 5011 and len(te) == 4952 and tv.label_names == VOC_CLASSES
    # Official VOC2007 trainval statistics: images containing each class (non-difficult).
    official = [238, 243, 330, 181, 244, 186, 713, 337, 445, 141, 200, 421, 287, 245, 2008, 245, 96, 229, 261, 256]
    assert tv.labels.sum(0).tolist() == official
    row = {p.stem: i for i, p in enumerate(tv.paths)}

    def names(il, i):
        return {il.label_names[j] for j in np.flatnonzero(il.labels[i])}

    assert names(tv, row["000005"]) == {"chair"}
    assert names(tv, row["000009"]) == {"horse", "person"}
    assert names(te, 0) == {"dog", "person"} and te.paths[0].name == "000001.jpg"
    # 000648: bus present; aeroplane, car, person only as difficult objects.
    ign = load_voc_labels(root, "trainval")  # default "ignore"
    pos = load_voc_labels(root, "trainval", difficult="positive")
    r = row["000648"]
    assert names(ign, r) == {"bus"} and names(pos, r) == {"bus", "aeroplane", "car", "person"}
    assert {VOC_CLASSES[j] for j in np.flatnonzero(ign.ignore_mask[r])} == {"aeroplane", "car", "person"}
    assert tv.ignore_mask is None
    np.testing.assert_array_equal(pos.labels, ign.labels | ign.ignore_mask)


def _voc_fixture(root: Path) -> dict:
    """Tiny VOC layout: 3 images, class lists and XML files saying the same thing."""
    objects = {  # id -> [(class, difficult)]
        "000001": [("dog", 0), ("person", 0), ("person", 1)],
        "000002": [("car", 1)],
        "000003": [("tvmonitor", 0), ("car", 0), ("car", 1)],
    }
    main = root / "VOC2007" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    ids = list(objects)
    (main / "trainval.txt").write_text("\n".join(ids) + "\n")
    for cls in VOC_CLASSES:
        lines = []
        for iid in ids:
            d = [diff for c, diff in objects[iid] if c == cls]
            v = " 1" if 0 in d else (" 0" if d else "-1")
            lines.append(f"{iid} {v}")
        (main / f"{cls}_trainval.txt").write_text("\r\n".join(lines) + "\r\n")
    ann = root / "VOC2007" / "Annotations"
    ann.mkdir()
    for iid, objs in objects.items():
        body = "".join(f"<object><name>{c}</name><difficult>{d}</difficult></object>" for c, d in objs)
        (ann / f"{iid}.xml").write_text(f"<annotation><filename>{iid}.jpg</filename>{body}</annotation>")
    return objects


@pytest.mark.parametrize("mode", ["ignore", "negative", "positive"])
def test_voc_lists_and_xml_agree(tmp_path, mode):
    objects = _voc_fixture(tmp_path)
    a = read_voc(tmp_path, "trainval", difficult=mode)
    b = read_voc(tmp_path / "VOC2007", "trainval", difficult=mode, use_xml=True)
    np.testing.assert_array_equal(a.labels, b.labels)
    for i, (iid, objs) in enumerate(objects.items()):
        present = {c for c, d in objs if d == 0}
        only_difficult = {c for c, _ in objs} - present
        want = present | (only_difficult if mode == "positive" else set())
        assert {VOC_CLASSES[j] for j in np.flatnonzero(a.labels[i])} == want
        if mode == "ignore":
            assert {VOC_CLASSES[j] for j in np.flatnonzero(a.ignore_mask[i])} == only_difficult
            np.testing.assert_array_equal(a.ignore_mask, b.ignore_mask)
        assert a.paths[i] == tmp_path / "VOC2007" / "JPEGImages" / f"{iid}.jpg"


def test_voc_errors(tmp_path):
    _voc_fixture(tmp_path)
    bad = tmp_path / "VOC2007" / "ImageSets" / "Main" / "cow_trainval.txt"
    bad.write_text("000001 -1\n000002 yes\n000003 -1\n")
    with pytest.raises(ValueError, match=r"cow_trainval.txt line 2.*000002 yes"):
        read_voc(tmp_path, "trainval")
    with pytest.raises(ValueError, match="difficult must be one of"):
        read_voc(tmp_path, "trainval", difficult="drop")
    with pytest.raises(ValueError, match="no PASCAL VOC layout"):
        read_voc(tmp_path / "nowhere")


# ------------------------------------------------------------------------------- NUS-WIDE
def test_read_nuswide_fixture(tmp_path):
    concepts = ["airport", "animal", "beach"]
    train = ["actor\\0001_2124494179.jpg", "actor\\0002_174174086.jpg", "zebra\\0003_1.jpg"]
    test = ["C:\\ImageData\\Flickr\\beach\\0009_77.jpg"]
    labels_train = {"airport": [1, 0, 0], "animal": [0, 1, 1], "beach": [1, 0, 1]}
    labels_test = {"airport": [0], "animal": [0], "beach": [1]}
    (tmp_path / "ImageList").mkdir()
    (tmp_path / "ImageList" / "TrainImagelist.txt").write_text("\r\n".join(train) + "\r\n")
    (tmp_path / "ImageList" / "TestImagelist.txt").write_text("\n".join(test) + "\n")
    (tmp_path / "ConceptsList").mkdir()
    (tmp_path / "ConceptsList" / "Concepts81.txt").write_text("\n".join(concepts) + "\n")
    gt = tmp_path / "Groundtruth" / "TrainTestLabels"
    gt.mkdir(parents=True)
    for c in concepts:
        (gt / f"Labels_{c}_Train.txt").write_text("".join(f"{v}\n" for v in labels_train[c]))
        (gt / f"Labels_{c}_Test.txt").write_text("".join(f"{v}\n" for v in labels_test[c]))
    for k, line in enumerate(train + test):
        _jpeg(tmp_path / "Flickr" / Path(*line.split("\\")[-2:]), k)
    tr = read_nuswide(tmp_path, "Train")
    assert tr.label_names == concepts
    np.testing.assert_array_equal(tr.labels, np.array([labels_train[c] for c in concepts]).T)
    assert tr.paths[1] == tmp_path / "Flickr" / "actor" / "0002_174174086.jpg"
    assert all(p.is_file() for p in tr.paths)
    te = read_nuswide(tmp_path, "test")
    assert te.paths == [tmp_path / "Flickr" / "beach" / "0009_77.jpg"] and te.labels.tolist() == [[0, 0, 1]]
    ds = build_image_cache(tr, tmp_path / "cache" / "nus.npy", size=8, progress=False)
    assert ds.features.shape == (3, 3, 8, 8)
    (gt / "Labels_animal_Train.txt").write_text("0\n1\n")
    with pytest.raises(ValueError, match=r"Labels_animal_Train.txt: 2 label lines but .* 3 images"):
        read_nuswide(tmp_path, "Train")


# ------------------------------------------------------------------------------- MIRFLICKR
def test_read_mirflickr_fixture(tmp_path):
    for n in (1, 2, 3, 10):
        _jpeg(tmp_path / "mirflickr" / f"im{n}.jpg", n)
    ann = tmp_path / "mirflickr25k_annotations_v080"
    ann.mkdir()
    (ann / "README.txt").write_text("annotations of the MIRFLICKR-25000 collection\n")
    (ann / "sky.txt").write_text("1\n10\n")
    (ann / "sky_r1.txt").write_text("10\n")
    (ann / "animals.txt").write_text("2\r\n3\r\n")
    (ann / "clouds.txt").write_text("")
    pot = read_mirflickr(tmp_path)
    assert pot.label_names == ["animals", "clouds", "sky"]
    assert [p.name for p in pot.paths] == ["im1.jpg", "im2.jpg", "im3.jpg", "im10.jpg"]  # numeric order
    np.testing.assert_array_equal(pot.labels, [[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 0, 1]])
    rel = read_mirflickr(tmp_path, labels="relevant")
    assert rel.label_names == ["sky_r1"] and rel.labels[:, 0].tolist() == [0, 0, 0, 1]
    both = read_mirflickr(tmp_path, labels="both")
    np.testing.assert_array_equal(both.labels, np.hstack([pot.labels, rel.labels]))
    (ann / "dog.txt").write_text("1\n7\n")
    with pytest.raises(ValueError, match=r"dog.txt line 2: image number 7"):
        read_mirflickr(tmp_path)


# ------------------------------------------------------------------------------- folder CSV / JSON
def test_read_image_folder_formats_agree(tmp_path):
    files = ["a.jpg", "b.jpg", "sub/c.jpg"]
    sets = [["cat", "dog"], [], ["dog"]]
    (tmp_path / "list.csv").write_text("filename,labels\n" + "".join(f"{f},{';'.join(s)}\n" for f, s in zip(files, sets)))
    (tmp_path / "onehot.csv").write_text(
        "image,cat,dog\n" + "".join(f"{f},{int('cat' in s)},{int('dog' in s)}\n" for f, s in zip(files, sets))
    )
    (tmp_path / "labels.json").write_text(json.dumps(dict(zip(files, sets))))
    want = np.array([[1, 1], [0, 0], [0, 1]], dtype=np.uint8)
    for name in ("list.csv", "onehot.csv", "labels.json"):
        il = read_image_folder(tmp_path / "img", tmp_path / name)
        assert il.label_names == ["cat", "dog"], name
        np.testing.assert_array_equal(il.labels, want, err_msg=name)
        assert il.paths[2] == tmp_path / "img" / "sub" / "c.jpg"
    fixed = read_image_folder(tmp_path, tmp_path / "labels.json", label_names=["dog", "cat", "bird"])
    np.testing.assert_array_equal(fixed.labels, [[1, 1, 0], [0, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="label 'cat' is not among"):
        read_image_folder(tmp_path, tmp_path / "labels.json", label_names=["dog"])
    # One 0/1 column per label, in another order than the model's: matched by name (it was refused).
    swapped = read_image_folder(tmp_path, tmp_path / "onehot.csv", label_names=["dog", "cat"])
    assert swapped.label_names == ["dog", "cat"]
    np.testing.assert_array_equal(swapped.labels, want[:, ::-1])
    with pytest.raises(ValueError, match=r"header labels \['cat', 'dog'\] are not \['dog', 'bird'\] \(missing: "
                                         r"\['bird'\], extra: \['cat'\]\)"):
        read_image_folder(tmp_path, tmp_path / "onehot.csv", label_names=["dog", "bird"])


def test_read_image_folder_errors(tmp_path):
    (tmp_path / "noheader.csv").write_text("a.jpg,cat;dog\n")
    with pytest.raises(ValueError, match=r"noheader.csv: expected a header row .* found data 'a.jpg,cat;dog'"):
        read_image_folder(tmp_path, tmp_path / "noheader.csv")
    (tmp_path / "bad.csv").write_text("filename,cat,dog\na.jpg,1,0\nb.jpg,1,2\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: label column 'dog' has value '2'; label values must be 0 or 1 "
                                         r"\(or true / false\), one column per label \(for one column that lists names, name it 'labels' or "
                                         r"add --dataset.label_sep\)"):
        read_image_folder(tmp_path, tmp_path / "bad.csv")
    (tmp_path / "bools.csv").write_text("filename,cat,dog\na.jpg,True,false\nb.jpg,0,TRUE\n")  # pandas' bools
    listed = read_image_folder(tmp_path, tmp_path / "bools.csv")
    np.testing.assert_array_equal(listed.labels, [[1, 0], [0, 1]])
    (tmp_path / "ragged.csv").write_text("filename,cat,dog\na.jpg,1,0\n\nb.jpg,1\n")
    with pytest.raises(ValueError, match=r"ragged.csv:4: expected 3 fields \(as in the header\), found 2"):
        read_image_folder(tmp_path, tmp_path / "ragged.csv")
    (tmp_path / "bad.json").write_text('{"a.jpg": "cat"}')
    with pytest.raises(ValueError, match="value of 'a.jpg' must be a list"):
        read_image_folder(tmp_path, tmp_path / "bad.json")
    with pytest.raises(ValueError, match="label file not found"):
        read_image_folder(tmp_path, tmp_path / "missing.csv")
    (tmp_path / "l.json").write_text('{"a.jpg": ["cat"]}')
    with pytest.raises(ValueError, match="apply to a CSV label file, not to JSON"):
        read_image_folder(tmp_path, tmp_path / "l.json", label_sep=" ")


def test_image_label_lists_with_spaces_need_a_separator(tmp_path):
    """Kaggle's layout (`image_name,tags` with `haze primary`) read as ';'-lists would silently make one
    label per combination; without ';' anywhere the reader asks which separator is meant."""
    (tmp_path / "planet.csv").write_text("image_name,tags\na.jpg,haze primary\nb.jpg,clear\nc.jpg,\n")
    with pytest.raises(ValueError, match=r"planet.csv:2: the label list 'haze primary' holds spaces .*"
                                         r"--dataset.label_sep space"):
        read_image_folder(tmp_path, tmp_path / "planet.csv")
    spaced = read_image_folder(tmp_path, tmp_path / "planet.csv", label_sep=" ")
    assert spaced.label_names == ["clear", "haze", "primary"]
    np.testing.assert_array_equal(spaced.labels, [[0, 1, 1], [1, 0, 0], [0, 0, 0]])
    whole = read_image_folder(tmp_path, tmp_path / "planet.csv", label_sep=";")  # names that hold a space
    assert whole.label_names == ["clear", "haze primary"]
    # A file that uses ';' somewhere is read as before, spaces inside names included.
    (tmp_path / "coco.csv").write_text("file,labels\na.jpg,traffic light;dog\nb.jpg,dog\n")
    assert read_image_folder(tmp_path, tmp_path / "coco.csv").label_names == ["dog", "traffic light"]


def test_image_label_file_as_spreadsheets_and_kaggle_save_it(tmp_path):
    """Each variant reads exactly as the plain one-hot file: label_sep with any column name (Kaggle's
    `Id,Target` with numbers), ';'- and tab-separated files, UTF-16, and ignored extra columns."""
    want = read_image_folder(tmp_path, _write(tmp_path / "plain.csv", "file,0,16\na.png,1,1\nb.png,0,0\nc.png,0,1\n"))
    variants = {
        "kaggle.csv": ("Id,Target\na.png,16 0\nb.png,\nc.png,16\n", {"label_sep": " "}),
        "semicolon.csv": ("file;0;16\na.png;1;1\nb.png;0;0\nc.png;0;1\n", {}),
        "tabs.csv": ("file\t0\t16\na.png\t1\t1\nb.png\t0\t0\nc.png\t0\t1\n", {}),
        "extra.csv": ("file,width,0,split,16\na.png,12,1,train,1\nb.png,12,0,train,0\nc.png,9,0,val,1\n",
                      {"ignore_columns": ["width", "split"]}),
    }
    for name, (text, options) in variants.items():
        got = read_image_folder(tmp_path, _write(tmp_path / name, text), **options)
        assert got.label_names == want.label_names and got.paths == want.paths, name
        np.testing.assert_array_equal(got.labels, want.labels, err_msg=name)
    (tmp_path / "utf16.csv").write_bytes("file,0,16\na.png,1,1\nb.png,0,0\nc.png,0,1\n".encode("utf-16"))
    np.testing.assert_array_equal(read_image_folder(tmp_path, tmp_path / "utf16.csv").labels, want.labels)
    with pytest.raises(ValueError, match=r"one column that lists the labels .* found 2"):
        read_image_folder(tmp_path, tmp_path / "plain.csv", label_sep=" ")
    with pytest.raises(ValueError, match=r"the ignored column\(s\) \['height'\] are not in the header"):
        read_image_folder(tmp_path, tmp_path / "plain.csv", ignore_columns=["height"])


def _write(path, text):
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------- HDF5
def test_read_image_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    y = rng.integers(0, 2, (5, 4))
    with h5py.File(tmp_path / "coco_train.hdf5", "w") as f:
        f["Image"], f["target"] = x, y
    ds = read_image_hdf5(tmp_path / "coco_train.hdf5", chunk=2)
    assert ds.features.shape == (5, 3, 6, 7) and ds.n_labels == 4
    assert ds.features[3, 2, 4, 5] == x[3, 4, 5, 2]
    np.testing.assert_array_equal(ds.features, x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ds.labels, y)
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f["Image"] = x
    with pytest.raises(ValueError, match="missing dataset 'target'"):
        read_image_hdf5(tmp_path / "bad.hdf5")


# ------------------------------------------------------------------------------- cache
def _folder_list(tmp_path: Path, n: int = 4) -> ImageList:
    paths = []
    for k in range(n):
        p = tmp_path / "img" / f"{k}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(k)
        mode = "L" if k == 1 else "RGB"  # one greyscale image: must come out as RGB
        shape = (10 + k, 12) if mode == "L" else (10 + k, 12, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(p)
        paths.append(p)
    labels = np.eye(n, 3, dtype=np.uint8)
    return ImageList(paths=paths, labels=labels, label_names=["x", "y", "z"], source="test")


def test_cache_pixels_match_pil_oracle(tmp_path):
    il = _folder_list(tmp_path)
    ds = build_image_cache(il, tmp_path / "c.npy", size=16, progress=False)
    assert ds.features.shape == (4, 3, 16, 16)
    for k, p in enumerate(il.paths):
        with Image.open(p) as im:
            ref = np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
        np.testing.assert_array_equal(ds.features[k], ref)
    np.testing.assert_array_equal(ds.labels, il.labels)
    side = json.loads((tmp_path / "c.json").read_text())
    assert side["size"] == 16 and side["paths"] == [str(p) for p in il.paths]
    assert side["labels"] == [[0], [1], [2], []]
    again = load_image_cache(tmp_path / "c.npy")
    np.testing.assert_array_equal(again.features, ds.features)
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_cache_reused_without_decoding_and_rebuilt_on_change(tmp_path, monkeypatch):
    il = _folder_list(tmp_path)
    first = np.array(build_image_cache(il, tmp_path / "c.npy", size=16, progress=False).features)
    calls = {"n": 0}
    real_open = Image.open

    def counting_open(*a, **k):
        calls["n"] += 1
        return real_open(*a, **k)

    monkeypatch.setattr(Image, "open", counting_open)
    reused = build_image_cache(il, tmp_path / "c.npy", size=16, progress=False)
    # skip_corrupt=True may reuse a complete cache as well
    build_image_cache(il, tmp_path / "c.npy", size=16, skip_corrupt=True, progress=False)
    assert calls["n"] == 0
    np.testing.assert_array_equal(reused.features, first)
    # Only the modification time changed (touch): same bytes, the cache is reused.
    st = os.stat(il.paths[2])
    os.utime(il.paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    build_image_cache(il, tmp_path / "c.npy", size=16, progress=False)
    assert calls["n"] == 0
    # An image rewritten in place with the same size AND modification time -> rebuilt, new pixels.
    st = os.stat(il.paths[2])
    buf = io.BytesIO()
    with real_open(il.paths[2]) as im:
        Image.new("RGB", im.size, (255, 0, 0)).save(buf, format="png")
    assert buf.tell() < st.st_size
    # A flat red image padded to the old size (PNG readers stop at the IEND chunk).
    il.paths[2].write_bytes(buf.getvalue() + bytes(st.st_size - buf.tell()))
    os.utime(il.paths[2], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(il.paths[2]).st_size == st.st_size and os.stat(il.paths[2]).st_mtime_ns == st.st_mtime_ns
    changed = build_image_cache(il, tmp_path / "c.npy", size=16, progress=False)
    assert calls["n"] == 4
    assert not np.array_equal(changed.features[2], first[2])
    np.testing.assert_array_equal(changed.features[[0, 1, 3]], first[[0, 1, 3]])
    # Changed labels -> rebuild too, and the new labels are returned.
    il2 = ImageList(paths=il.paths, labels=1 - il.labels, label_names=il.label_names, source="test")
    ds2 = build_image_cache(il2, tmp_path / "c.npy", size=16, progress=False)
    assert calls["n"] == 8
    np.testing.assert_array_equal(ds2.labels, 1 - il.labels)
    # Different size -> rebuild with the new shape.
    assert build_image_cache(il2, tmp_path / "c.npy", size=8, progress=False).features.shape == (4, 3, 8, 8)
    assert calls["n"] == 12


def test_corrupt_and_missing_images(tmp_path):
    il = _folder_list(tmp_path, n=4)
    good = tmp_path / "good.jpg"
    _jpeg(good, 0, size=(64, 64))
    truncated = tmp_path / "img" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    missing = tmp_path / "img" / "missing.jpg"
    paths = il.paths[:2] + [truncated] + il.paths[2:] + [missing]
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=np.uint8)
    bad = ImageList(paths=paths, labels=labels, label_names=["x", "y", "z"], source="bad list")
    with pytest.raises(ValueError, match=r"cannot read image .*truncated\.jpg \(row 2 of bad list\)"):
        build_image_cache(bad, tmp_path / "c.npy", size=8, progress=False)
    assert not list(tmp_path.glob("c*"))  # nothing half-written left behind
    without_truncated = ImageList(paths=paths[:2] + paths[3:], labels=np.delete(labels, 2, 0),
                                  label_names=["x", "y", "z"], source="bad list")
    with pytest.raises(ValueError, match=r"missing\.jpg \(row 4"):
        build_image_cache(without_truncated, tmp_path / "c.npy", size=8, progress=False)
    # With the label file's lines known, the error names the line, also after a subset reorders the rows.
    listed = ImageList(paths=paths, labels=labels, label_names=["x", "y", "z"], source="l.csv",
                       where=[f"l.csv:{n}" for n in range(2, 8)])
    with pytest.raises(ValueError, match=r"truncated\.jpg \(l\.csv:4\)"):
        build_image_cache(listed.subset([1, 0, 2]), tmp_path / "c.npy", size=8, progress=False)
    with pytest.raises(ValueError, match="5 row origins for 6 paths"):
        ImageList(paths=paths, labels=labels, label_names=["x", "y", "z"], source="l.csv", where=["l.csv:2"] * 5)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\) of 6"):
        ds = build_image_cache(bad, tmp_path / "c.npy", size=8, skip_corrupt=True, progress=False)
    assert ds.features.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(ds.labels, labels[[0, 1, 3, 4]])
    ref = build_image_cache(il, tmp_path / "ref.npy", size=8, progress=False)
    np.testing.assert_array_equal(ds.features, ref.features)  # kept rows packed in order
    with pytest.warns(UserWarning, match="skipped 2"):  # reuse still reports what is missing
        build_image_cache(bad, tmp_path / "c.npy", size=8, skip_corrupt=True, progress=False)
    # A cache missing rows does not satisfy a strict caller: it rebuilds and names the bad file.
    with pytest.raises(ValueError, match=r"truncated\.jpg"):
        build_image_cache(bad, tmp_path / "c.npy", size=8, progress=False)
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_cache_argument_errors(tmp_path):
    empty = ImageList(paths=[], labels=np.zeros((0, 2), np.uint8), label_names=["a", "b"], source="empty")
    with pytest.raises(ValueError, match="no images to cache"):
        build_image_cache(empty, tmp_path / "c.npy", size=8)
    with pytest.raises(ValueError, match="do not match"):
        ImageList(paths=[tmp_path / "a.jpg"], labels=np.zeros((2, 2)), label_names=["a", "b"])
    with pytest.raises(ValueError, match="no image cache"):
        load_image_cache(tmp_path / "none.npy")
    assert imgs.RESIZE_METHOD == "direct-bilinear"
