"""Your own data end to end through the CLI: every format, then evaluate, predict, export, load_run.

Tiny synthetic files with a learnable signal (labels are functions of the features or of the image
colours) are written per test; each format runs ``mulsupcon train --mode scratch --dataset.path ...`` at a
tiny size; the CSV case runs the whole chain (pretrain -> finetune -> evaluate -> predict -> export ->
load_run in a fresh process) and checks that prediction reproduces the run's own test scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest
import torch
import yaml

from mulsupcon.data.arff import DataFormatError

REPO = Path(__file__).resolve().parents[1]
LABELS = ["cat", "dog", "fish"]
VEC = ["--model.hidden", "[16]", "--model.head_hidden", "8", "--model.embed_dim", "8", "--pretrain.epochs", "2",
       "--pretrain.batch_size", "16", "--pretrain.queue_size", "32", "--classify.epochs", "2",
       "--classify.batch_size", "16", "-q"]
IMG = ["--model.backbone", "resnet18", "--model.small_input", "true", "--dataset.image_size", "16",
       "--classify.epochs", "1", "--classify.batch_size", "8", "--classify.steps_per_epoch", "2", "-q"]


def _cli(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MULSUPCON_CACHE": str(cwd / "cache")}
    proc = subprocess.run([sys.executable, "-m", "mulsupcon", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _vectors(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, x[:, 3] < -0.3], 1).astype(np.uint8)
    return x, y


def _write_csv(path: Path, x: np.ndarray, y: np.ndarray, sep: str = ",") -> None:
    rows = [sep.join(["a", "b", "c", "d", "e", "g", *LABELS])]
    rows += [sep.join([f"{v:.6f}" for v in xr] + [str(int(v)) for v in yr]) for xr, yr in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")


def _write_arff(path: Path, x: np.ndarray, y: np.ndarray, relation: str = "toy") -> None:
    lines = [f"@relation '{relation}'"] + [f"@attribute {n} numeric" for n in "abcdeg"]
    lines += [f"@attribute {n} {{0,1}}" for n in LABELS] + ["@data"]
    lines += [",".join([f"{v:.6f}" for v in xr] + [str(int(v)) for v in yr]) for xr, yr in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")


def _images(folder: Path, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n small PNGs; label j is on when colour channel j is bright."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names, labels = [], []
    for i in range(n):
        on = rng.random(3) < 0.4
        pixels = (rng.random((12, 12, 3)) * 60 + on * 180).astype(np.uint8)
        name = f"im{i:03d}.png"
        Image.fromarray(pixels).save(folder / name)
        names.append(name)
        labels.append(on.astype(np.uint8))
    return names, np.array(labels)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ----------------------------------------------------------------------------- vectors
def test_csv_whole_chain_predict_equals_the_runs_test_scores(tmp_path):
    x, y = _vectors()
    _write_csv(tmp_path / "data.csv", x, y)
    _cli("pretrain", "--dataset.path", "data.csv", "--dataset.label_columns", "3", *VEC, "--run-dir", "pre", cwd=tmp_path)
    _cli("train", "--mode", "finetune", "--from", "pre", "-q", "--classify.epochs", "2", "--run-dir", "ft", cwd=tmp_path)
    split = json.loads((tmp_path / "ft" / "split.json").read_text())
    assert split["carve"] == "iterative-stratification" and split["path"] == str(tmp_path / "data.csv")
    assert list(split["files"]) == [str(tmp_path / "data.csv")]  # absolute path + sha256 saved with the run
    config = (tmp_path / "ft" / "config.yaml").read_text()
    assert f"path: {tmp_path / 'data.csv'}" in config  # relative path saved as absolute
    assert "evaluated on" not in _cli("evaluate", "ft", cwd=tmp_path).stdout

    # The test rows of the run, written as a CSV with the label columns still in it (they are ignored).
    test_rows = np.asarray(split["test_index"])
    _write_csv(tmp_path / "test_rows.csv", x[test_rows], y[test_rows])
    _cli("predict", "ft", "--input", "test_rows.csv", "--out", "pred.csv", cwd=tmp_path)
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    assert lines[0] == ",".join(LABELS) and len(lines) == 1 + len(test_rows)
    pred = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    scores = np.load(tmp_path / "ft" / "scores.npz")
    np.testing.assert_allclose(pred, scores["test_scores"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores["test_targets"], y[test_rows])

    # --labels: 0/1 at the run's validation-chosen (micro-F1) threshold; --threshold: a fixed one.
    _cli("predict", "ft", "--input", "test_rows.csv", "--out", "labels.csv", "--labels", cwd=tmp_path)
    threshold = torch.load(tmp_path / "ft" / "model.pt", weights_only=False)["threshold"]
    got = np.loadtxt(tmp_path / "labels.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(got, (scores["test_scores"] >= threshold).astype(float))
    _cli("predict", "ft", "--input", "test_rows.csv", "--out", "fixed.csv", "--threshold", "0.99", cwd=tmp_path)
    assert np.loadtxt(tmp_path / "fixed.csv", delimiter=",", skiprows=1).sum() == (scores["test_scores"] >= 0.99).sum()
    # A cut outside [0, 1] would write all 0s (or all 1s): refused, for predict and evaluate alike.
    for command in (("predict", "ft", "--input", "test_rows.csv", "--out", "bad.csv"), ("evaluate", "ft")):
        proc = _cli(*command, "--threshold", "1.5", cwd=tmp_path, ok=False)
        assert proc.returncode == 2 and "threshold must be in [0, 1] (a cut on probabilities), got 1.5" in proc.stderr
    assert not (tmp_path / "bad.csv").exists()

    # load_run in a fresh process (no training data, no config): the same probabilities, and transform.
    code = ("import numpy as np, sys; from mulsupcon import load_run; m = load_run(sys.argv[1]); "
            "x = np.loadtxt(sys.argv[2], delimiter=',', skiprows=1)[:, :6]; "
            "np.save(sys.argv[3], m.predict_proba(x)); print(m.label_names, m.transform(x).shape)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code, "ft", "test_rows.csv", "fresh.npy"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{LABELS} ({len(test_rows)}, 16)"
    np.testing.assert_allclose(np.load(tmp_path / "fresh.npy"), scores["test_scores"], rtol=1e-5, atol=1e-6)

    # export: TorchScript maps raw rows to the same probabilities.
    _cli("export", "ft", "--format", "torchscript", "--out", "model.ts", cwd=tmp_path)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    out = scripted(torch.from_numpy(x[test_rows]))  # an inference module: no autograd graph without no_grad
    assert not out.requires_grad and not any(p.requires_grad for p in scripted.parameters())
    np.testing.assert_allclose(out.numpy(), scores["test_scores"], rtol=1e-5, atol=1e-6)
    # torch.export's program (TorchScript's successor): the same probabilities, any batch size, and a call with
    # another feature count refused by the program's own shape check.
    _cli("export", "ft", "--out", "model.pt2", cwd=tmp_path)  # the format follows the suffix
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    np.testing.assert_allclose(program(torch.from_numpy(x[test_rows])).numpy(), scores["test_scores"], rtol=1e-5, atol=1e-6)
    assert program(torch.from_numpy(x[:1])).shape == (1, len(LABELS))
    with pytest.raises(AssertionError, match=r"x.size\(\)\[1\] == 6"):
        program(torch.zeros(3, 5))
    # A file named .onnx holds ONNX: asking for TorchScript under that name is refused, nothing written.
    proc = _cli("export", "ft", "--format", "torchscript", "--out", "model.onnx", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "names an ONNX file but --format is torchscript" in proc.stderr
    assert not (tmp_path / "model.onnx").exists()
    proc = _cli("export", "ft", "--format", "onnx", "--out", "m.pt2", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "names a torch.export (.pt2) file but --format is onnx" in proc.stderr
    # Nothing the user made is overwritten (a data file was replaced by the model's zip): only an earlier
    # export of the same format, as a rerun writes.
    before = (tmp_path / "data.csv").read_bytes()
    for target, fmt, said in (("data.csv", "torchscript", "exists and is not a torchscript export"),
                              ("ft/model.pt", "torchscript", "is the model being exported"),
                              ("model.ts", "pt2", "exists and is not a pt2 export")):
        proc = _cli("export", "ft", "--format", fmt, "--out", target, cwd=tmp_path, ok=False)
        assert proc.returncode == 2 and said in proc.stderr, (target, proc.stderr)
    assert (tmp_path / "data.csv").read_bytes() == before
    _cli("export", "ft", "--format", "torchscript", "--out", "model.ts", cwd=tmp_path)  # over its own export
    _cli("export", "ft", "--out", "model.pt2", cwd=tmp_path)

    # A data file changed since the run was made: --resume says which one.
    _write_csv(tmp_path / "data.csv", x + 1.0, y)
    proc = _cli("pretrain", "--run-dir", "pre", "--resume", "-q", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "data.csv has changed since" in proc.stderr


def test_csv_with_an_id_column_trains_and_predicts_with_it(tmp_path):
    """--dataset.ignore_columns leaves a text id out of the features; predict --keep carries it over."""
    x, y = _vectors(80)
    lines = ["id,a,b,c,d,e,g," + ",".join(LABELS)]
    lines += [f"row-{i}," + ",".join(f"{v:.6f}" for v in x[i]) + "," + ",".join(str(int(v)) for v in y[i])
              for i in range(len(x))]
    (tmp_path / "ids.csv").write_text("\n".join(lines) + "\n")
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "ids.csv", "--dataset.label_columns", "3", *VEC,
                "--run-dir", "r0", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "--dataset.ignore_columns" in proc.stderr and not (tmp_path / "r0").exists()
    _cli("train", "--mode", "scratch", "--dataset.path", "ids.csv", "--dataset.label_columns", "3",
         "--dataset.ignore_columns", "id", *VEC, "--run-dir", "r", cwd=tmp_path)
    model = torch.load(tmp_path / "r" / "model.pt", map_location="cpu", weights_only=False)
    assert list(model["feature_names"]) == list("abcdeg")
    _cli("predict", "r", "--input", "ids.csv", "--out", "p.csv", "--keep", "id", cwd=tmp_path)
    out = (tmp_path / "p.csv").read_text().splitlines()
    assert out[0] == "id," + ",".join(LABELS) and out[80].startswith("row-79,") and len(out) == 81
    # --out -: the same CSV on standard output, and nothing else there (it wrote a file named '-')
    piped = _cli("predict", "r", "--input", "ids.csv", "--out", "-", "--keep", "id", cwd=tmp_path)
    assert piped.stdout.splitlines() == out and not (tmp_path / "-").exists()
    # a named pipe or /dev/null as --out is written into, not refused as 'not a predictions file' (nor replaced)
    import threading

    from mulsupcon.predict import predict_file

    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append((tmp_path / "pipe").read_text()))
        reader.start()
        predict_file(tmp_path / "r", tmp_path / "ids.csv", tmp_path / "pipe", keep=["id"])
        reader.join(60)
        assert got[0].splitlines() == out and not (tmp_path / "pipe").is_file()
    if Path(os.devnull).exists():
        assert predict_file(tmp_path / "r", tmp_path / "ids.csv", os.devnull) == Path(os.devnull)
    # --embeddings: the backbone's features in place of the label columns
    emb = _cli("predict", "r", "--input", "ids.csv", "--out", "-", "--embeddings", "--keep", "id", cwd=tmp_path)
    lines = emb.stdout.splitlines()
    assert lines[0].startswith("id,emb0,emb1,") and len(lines) == 81 and lines[80].startswith("row-79,")


def test_csv_with_categorical_columns_trains_predicts_and_evaluates(tmp_path):
    """Text columns named in --dataset.categorical_columns are one-hot encoded in training; predict and
    evaluate --input read the same text columns (the file's columns in another order) into the same
    inputs. Oracle: the run's own test rows give its test scores and its test metrics."""
    rng = np.random.default_rng(0)
    n = 150
    x = np.round(rng.normal(size=(n, 3)), 5)
    color, size = rng.choice(["red", "green", "blue"], n), rng.choice(["S", "M", "L"], n)
    y = np.stack([color == "red", x[:, 0] + (size == "L") > 0.5, x[:, 1] < 0], 1).astype(int)
    cols = ["a", "color", "b", "size", "c", "id", *LABELS]
    table = [[f"{x[i, 0]}", color[i], f"{x[i, 1]}", size[i], f"{x[i, 2]}", f"row{i}", *map(str, y[i])] for i in range(n)]

    def write(name: str, rows: list[int], order: list[int]) -> None:
        lines = [",".join(cols[j] for j in order)] + [",".join(table[i][j] for j in order) for i in rows]
        (tmp_path / name).write_text("\n".join(lines) + "\n")

    write("data.csv", list(range(n)), list(range(len(cols))))
    args = ["train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", ",".join(LABELS),
            "--dataset.ignore_columns", "id", *VEC]
    proc = _cli(*args, "--run-dir", "r0", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "non-numeric value" in proc.stderr and "--dataset.categorical_columns" in proc.stderr
    _cli(*args, "--dataset.categorical_columns", "color,size", "--run-dir", "r", cwd=tmp_path)
    model = torch.load(tmp_path / "r" / "model.pt", map_location="cpu", weights_only=False)
    assert model["feature_names"] == ["a", "color=blue", "color=green", "color=red", "b", "size=L", "size=M", "size=S", "c"]

    # `datasets check` with the same flags reads and splits the file as the run did, before any training.
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    out = _cli("datasets", "check", *args[3:9], "--dataset.categorical_columns", "color,size", cwd=tmp_path).stdout
    assert f"file   {tmp_path / 'data.csv'}  sha256 {split['files'][str(tmp_path / 'data.csv')]}" in out
    assert "one-hot color (3 values), size (3 values)" in out
    assert (f"split  train {len(split['train_index'])} / validation {len(split['val_index'])} / test "
            f"{len(split['test_index'])}: test carved (iterative-stratification, 0.2 of the rows)") in out
    assert out.count("features         9 (dense") == 3 and out.count("rows with no label") == 3
    test_rows = split["test_index"]
    write("again.csv", test_rows, [8, 3, 5, 0, 6, 1, 4, 7, 2])  # fish, size, id, a, cat, color, c, dog, b
    _cli("predict", "r", "--input", "again.csv", "--out", "p.csv", "--keep", "id", cwd=tmp_path)
    out = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    np.testing.assert_allclose(out, np.load(tmp_path / "r" / "scores.npz")["test_scores"], rtol=1e-5, atol=1e-6)

    def rows(text: str) -> list[str]:
        return [ln.split("|", 2)[2] for ln in text.splitlines() if "protocol" in ln]

    own = rows(_cli("evaluate", "r", cwd=tmp_path).stdout)
    assert len(own) == 3 and rows(_cli("evaluate", "r", "--input", "again.csv", cwd=tmp_path).stdout) == own

    # In Python, a pandas table is read by its column names too (its columns by position would be wrong here).
    pd = pytest.importorskip("pandas")
    from mulsupcon import load_run

    model = load_run(tmp_path / "r")
    table = pd.read_csv(tmp_path / "again.csv")
    np.testing.assert_allclose(model.predict_proba(table), out, rtol=1e-5, atol=1e-6)
    encoded = pd.DataFrame(np.asarray([[0.0] * 9]))  # an array wrapped by pandas (columns 0..8): by position
    assert model.predict_proba(encoded).shape == (1, 3)
    with pytest.raises(ValueError, match=r"the table has no column 'b' \(1 of the columns the model reads are missing"):
        model.predict_proba(table.drop(columns=["b"]))
    with pytest.raises(ValueError, match=r"the table has no column 'size' \(1 of the columns the model reads"):
        model.predict_proba(table.drop(columns=["size"]))
    with pytest.raises(ValueError, match=r"column 'a' holds values that are not numbers"):
        model.predict_proba(table.assign(a="x"))
    with pytest.raises(DataFormatError, match=r"row 0: empty field in the categorical column 'color'"):
        model.predict_proba(table.assign(color=None))
    # A column of codes that pandas holds as floats (1.0, as a column with a gap is read) is the CSV's 1.
    from mulsupcon.data.formats import cell_text

    assert [cell_text(v) for v in (1.0, 2.5, 3, "L", None)] == ["1", "2.5", "3", "L", ""]
    # A value training never saw is encoded as none of the known ones, and said.
    (tmp_path / "new.csv").write_text("size,c,b,a,color\nL,0.1,0.2,0.3,red\nXL,0.1,0.2,0.3,red\n")
    proc = _cli("predict", "r", "--input", "new.csv", "--out", "q.csv", cwd=tmp_path)
    assert "1 of 2 rows hold a value of the categorical column 'size' that training did not see ('XL'" in proc.stderr
    assert len((tmp_path / "q.csv").read_text().splitlines()) == 3


def test_evaluate_on_a_new_labelled_file_matches_the_runs_own_test_metrics(tmp_path):
    """Oracle: the run's official test part given again as a new file (CSV with reordered columns and an
    id, and NPZ) scores exactly as the run's own test split."""
    x, y = _vectors(150)
    _write_csv(tmp_path / "train.csv", x[:100], y[:100])
    _write_csv(tmp_path / "test.csv", x[100:], y[100:])
    _cli("train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.test_path", "test.csv",
         "--dataset.label_columns", "3", *VEC, "--run-dir", "r", cwd=tmp_path)
    own = _cli("evaluate", "r", cwd=tmp_path).stdout
    names = ["a", "b", "c", "d", "e", "g", *LABELS]
    order = [7, 2, 0, 6, 1, 5, 8, 3, 4]
    lines = ["id," + ",".join(names[j] for j in order)]
    full = np.hstack([x[100:], y[100:]])
    lines += [f"r{i}," + ",".join(f"{full[i, j]:.6f}" if j < 6 else str(int(full[i, j])) for j in order)
              for i in range(50)]
    (tmp_path / "again.csv").write_text("\n".join(lines) + "\n")
    np.savez(tmp_path / "again.npz", features=x[100:], labels=y[100:], label_names=np.array(LABELS))

    def rows(table: str) -> list[str]:
        return [ln.split("|", 2)[2] for ln in table.splitlines() if "protocol" in ln]

    assert len(rows(own)) == 3
    for name in ("again.csv", "again.npz"):
        out = _cli("evaluate", "r", "--input", name, cwd=tmp_path).stdout
        assert f"r on {name} (50 rows)" in out
        assert rows(out) == rows(own), (out, own)
    # model.pt alone (its validation thresholds travel with it) gives the same table.
    (tmp_path / "lone.pt").write_bytes((tmp_path / "r" / "model.pt").read_bytes())
    assert rows(_cli("evaluate", "lone.pt", "--input", "again.csv", cwd=tmp_path).stdout) == rows(own)
    assert "no positive" not in out
    # rows in which one label never occurs: mAP averages the others, and the table says so by name
    keep = np.flatnonzero(y[100:, 0] == 0)
    np.savez(tmp_path / "nocat.npz", features=x[100:][keep], labels=y[100:][keep], label_names=np.array(LABELS))
    out = _cli("evaluate", "r", "--input", "nocat.npz", cwd=tmp_path).stdout
    assert f"1 of the {len(LABELS)} labels has no positive in these rows: {LABELS[0]}. mAP averages the other" in out
    (tmp_path / "bad.csv").write_text(lines[0].replace("cat", "kat") + "\n" + lines[1] + "\n")
    proc = _cli("evaluate", "r", "--input", "bad.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "label column(s) ['cat'] are not in the header" in proc.stderr


def _write_xy(tmp_path: Path, stem: str, x: np.ndarray, y: np.ndarray, *, ids: Optional[list[str]] = None,
              label_order: Sequence[int] = (0, 1, 2), tags: bool = False) -> tuple[Path, Path]:
    """Features and labels in files of their own (``STEM-X.csv``, ``STEM-Y.csv``), row for row, each with an
    ``id`` column first; the label file holds 0/1 columns in ``label_order``, or with ``tags`` one column
    listing the names (``cat;fish``)."""
    ids = ids or [f"r{i}" for i in range(len(x))]
    xp, yp = tmp_path / f"{stem}-X.csv", tmp_path / f"{stem}-Y.csv"
    xp.write_text("\n".join(["id,a,b,c,d,e,g"] + [f"{i}," + ",".join(f"{v:.6f}" for v in r) for i, r in zip(ids, x)]) + "\n")
    if tags:
        rows = ["id,tags"] + [f"{i}," + ";".join(LABELS[j] for j in range(3) if r[j]) for i, r in zip(ids, y)]
    else:
        rows = ["id," + ",".join(LABELS[j] for j in label_order)]
        rows += [f"{i}," + ",".join(str(int(r[j])) for j in label_order) for i, r in zip(ids, y)]
    yp.write_text("\n".join(rows) + "\n")
    return xp, yp


def test_features_and_labels_in_files_of_their_own_are_read_as_one_file(tmp_path):
    """Oracle: X.csv + Y.csv (`--dataset.labels`, row for row, an id in both) give the arrays, split and test
    metrics of the one file holding both, for 0/1 label columns in another order and for a column of names;
    a label file in another order is paired by the id; rows that cannot be paired (another count, an id
    twice or missing) are an error naming them."""
    from mulsupcon.data import from_file
    from mulsupcon.train.dataset_section import load_dataset_splits

    x, y = _vectors(150)
    _write_csv(tmp_path / "both.csv", x, y)
    both = {"path": str(tmp_path / "both.csv"), "label_columns": "cat,dog,fish", "name": "t"}
    xp, yp = _write_xy(tmp_path, "d", x, y, label_order=(2, 0, 1))
    _, tp = _write_xy(tmp_path, "t", x, y, tags=True)
    one = load_dataset_splits(both)
    for pair in ({"labels": str(yp), "label_columns": "cat,dog,fish"}, {"labels": str(tp), "label_sep": ";"}):
        two = load_dataset_splits({"path": str(xp), "ignore_columns": "id", "name": "t", **pair})
        for part in ("train", "val", "test"):
            a, b = getattr(one, part), getattr(two, part)
            np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
            np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
            assert a.label_names == b.label_names == LABELS and b.feature_names == list("abcdeg")
        assert set(two.info["files"]) == {str(xp), str(tmp_path / Path(pair["labels"]).name)}
    # without label_columns, every column of the label file but the ignored ones is a label, in its order
    assert from_file(xp, labels=yp, ignore_columns="id").label_names == ["fish", "cat", "dog"]

    # the same pair through the command line, an official test pair too; evaluate takes such a pair as well
    _write_csv(tmp_path / "train.csv", x[:100], y[:100])
    _write_csv(tmp_path / "test.csv", x[100:], y[100:])
    _write_xy(tmp_path, "tr", x[:100], y[:100])
    _write_xy(tmp_path, "te", x[100:], y[100:], label_order=(1, 2, 0))
    _cli("train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.test_path", "test.csv",
         "--dataset.label_columns", "3", *VEC, "--run-dir", "one", cwd=tmp_path)
    _cli("train", "--mode", "scratch", "--dataset.path", "tr-X.csv", "--dataset.labels", "tr-Y.csv",
         "--dataset.test_path", "te-X.csv", "--dataset.test_labels", "te-Y.csv", "--dataset.ignore_columns", "id",
         *VEC, "--run-dir", "two", cwd=tmp_path)
    metrics = [json.loads((tmp_path / r / "metrics.json").read_text())["protocols"] for r in ("one", "two")]
    assert metrics[0] == metrics[1]
    own = json.loads(_cli("evaluate", "one", "--json", cwd=tmp_path).stdout)["protocols"]
    pair = json.loads(_cli("evaluate", "two", "--input", "te-X.csv", "--label-file", "te-Y.csv", "--json",
                           cwd=tmp_path).stdout)["protocols"]
    assert pair == own
    alone = _cli("evaluate", "two", "--input", "te-X.csv", cwd=tmp_path, ok=False)  # the labels left behind
    assert alone.returncode == 2 and "labels kept in a file of their own go with --label-file FILE" in alone.stderr
    np.save(tmp_path / "te-X.npy", x[100:])  # np.save'd arrays: taken by position
    np.save(tmp_path / "te-Y.npy", y[100:])
    assert json.loads(_cli("evaluate", "one", "--input", "te-X.npy", "--label-file", "te-Y.npy", "--json",
                           cwd=tmp_path).stdout)["protocols"] == own
    np.save(tmp_path / "rows.npy", np.loadtxt(tmp_path / "test.csv", delimiter=",", skiprows=1)[:, :6])
    for name in ("test.csv", "rows.npy"):  # predict takes an .npy of rows, by position (the CSV's values)
        _cli("predict", "one", "--input", name, "--out", f"{name}.pred.csv", cwd=tmp_path)
    assert (tmp_path / "rows.npy.pred.csv").read_text() == (tmp_path / "test.csv.pred.csv").read_text()

    # pairs that do not go row for row, and options that do not fit
    short = tmp_path / "short-Y.csv"
    short.write_text("\n".join(yp.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=r"short-Y\.csv: 149 rows of labels, but .*d-X\.csv has 150 rows of "
                                              r"features; the two files go row for row"):
        from_file(xp, labels=short, ignore_columns="id")
    # a label file in another order is paired by the id both files hold (oracle: the file in order)
    shuffled_x, shuffled_y = _write_xy(tmp_path, "s", x, y, ids=[f"r{i}" for i in range(150)])
    head, *rows = shuffled_y.read_text().splitlines()
    order = np.random.default_rng(3).permutation(150)
    shuffled_y.write_text("\n".join([head] + [rows[k] for k in order]) + "\n")
    with pytest.warns(UserWarning, match=r"s-Y\.csv lists the rows of .*s-X\.csv in another order: paired by id"):
        paired = from_file(shuffled_x, labels=shuffled_y, ignore_columns="id")
    ox, oy = _write_xy(tmp_path, "o", x, y, ids=[f"r{i}" for i in range(150)])
    in_order = from_file(ox, labels=oy, ignore_columns="id")
    np.testing.assert_array_equal(paired.labels, in_order.labels)
    np.testing.assert_array_equal(paired.features, in_order.features)
    for k, message in ((1, r"s-Y\.csv: id 'r\d+' is on rows \d+ and 2, and the two files list their rows in different "
                           r"orders, so they cannot be paired by it"),
                       (None, r"s-X\.csv: row \d+: id 'r\d+' has no row in .*s-Y\.csv")):
        broken = list(rows[j] for j in order)
        broken[1] = (broken[0] if k == 1 else "nobody" + broken[1][broken[1].index(","):])
        shuffled_y.write_text("\n".join([head] + broken) + "\n")
        with pytest.raises(DataFormatError, match=message):
            from_file(shuffled_x, labels=shuffled_y, ignore_columns="id")
    with pytest.raises(ValueError, match=r"te-X\.csv: a test file of features needs its own label file: add "
                                         r"--dataset.test_labels FILE"):
        load_dataset_splits({"path": str(tmp_path / "tr-X.csv"), "labels": str(tmp_path / "tr-Y.csv"),
                             "test_path": str(tmp_path / "te-X.csv"), "ignore_columns": "id", "name": "t"})
    np.savez(tmp_path / "d.npz", features=x, labels=y)
    with pytest.raises(ValueError, match=r"d\.npz is a \.npz file, which holds its labels itself"):
        from_file(tmp_path / "d.npz", labels=yp)
    with pytest.raises(ValueError, match=r"the ignored column\(s\) \['nope'\] are not in the header"):
        from_file(xp, labels=yp, ignore_columns="id,nope")


def test_npy_features_and_labels_saved_apart_are_read_as_one_npz(tmp_path):
    """Oracle: X.npy + Y.npy (`np.save`, `--dataset.labels Y.npy`) give the arrays and split of the same arrays
    in one .npz; a lone .npy, rows that do not pair, images and object arrays are errors that say what to do."""
    from mulsupcon.data import from_file
    from mulsupcon.train.dataset_section import load_dataset_splits

    x, y = _vectors(120)
    np.savez(tmp_path / "both.npz", features=x, labels=y)
    np.save(tmp_path / "X.npy", x.astype(np.float64))
    np.save(tmp_path / "Y.npy", y)
    one = load_dataset_splits({"path": str(tmp_path / "both.npz"), "name": "t"})
    two = load_dataset_splits({"path": str(tmp_path / "X.npy"), "labels": str(tmp_path / "Y.npy"), "name": "t"})
    for part in ("train", "val", "test"):
        a, b = getattr(one, part), getattr(two, part)
        np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
        np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
        assert (a.label_names, a.feature_names) == (b.label_names, b.feature_names)
    assert set(two.info["files"]) == {str(tmp_path / "X.npy"), str(tmp_path / "Y.npy")}
    with pytest.raises(ValueError, match=r"X\.npy: an \.npy file holds one array; give the labels' \.npy with "
                                         r"--dataset.labels Y\.npy"):
        from_file(tmp_path / "X.npy")
    np.save(tmp_path / "short.npy", y[:-1])
    with pytest.raises(DataFormatError, match=r"short\.npy: 119 rows of labels, but .*X\.npy has 120 rows"):
        from_file(tmp_path / "X.npy", labels=tmp_path / "short.npy")
    np.save(tmp_path / "img.npy", np.zeros((4, 3, 8, 8), np.uint8))
    with pytest.raises(DataFormatError, match=r"img\.npy: features must be a 2-D \(N, F\) array, got shape"):
        from_file(tmp_path / "img.npy", labels=tmp_path / "Y.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 120), allow_pickle=True)
    with pytest.raises(DataFormatError, match=r"obj\.npy: holds Python objects \(dtype=object\), which are not read"):
        from_file(tmp_path / "X.npy", labels=tmp_path / "obj.npy")
    with pytest.raises(ValueError, match=r"the labels of an \.npy file of features are an \.npy file too"):
        from_file(tmp_path / "X.npy", labels=tmp_path / "both.npz")


def test_evaluate_per_label_gives_the_numbers_of_predict_labels(tmp_path):
    """Oracle: scikit-learn's per-label precision / recall / F1 of `predict --labels`'s 0/1 output and AP of
    `predict`'s probabilities, on a new file; the training positives are the run's training rows' labels."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    x, y = _vectors(150)
    y[:, 2] = 0  # one label never occurs in training (nor here): no AP, and named as unlearnable
    _write_csv(tmp_path / "train.csv", x[:100], y[:100])
    np.savez(tmp_path / "new.npz", features=x[100:], labels=y[100:], label_names=np.array(LABELS))
    _cli("train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.label_columns", "3", *VEC,
         "--run-dir", "r", cwd=tmp_path)
    out = _cli("evaluate", "r", "--input", "new.npz", "--per-label", cwd=tmp_path).stdout
    _cli("predict", "r", "--input", "new.npz", "--out", "p.csv", cwd=tmp_path)
    _cli("predict", "r", "--input", "new.npz", "--out", "b.csv", "--labels", cwd=tmp_path)
    proba = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    binary = np.loadtxt(tmp_path / "b.csv", delimiter=",", skiprows=1).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(y[100:], binary, average=None, zero_division=0)
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    train_rows = np.asarray(split["pool_index"])[split["train_index"]]  # the pool is train.csv minus its test part
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in out.splitlines() if ln.startswith("| ") and ln.split("|")[1].strip() in LABELS}
    assert list(rows) == LABELS, out
    for j, name in enumerate(LABELS):
        ap = f"{average_precision_score(y[100:, j], proba[:, j]):.3f}" if support[j] else "-"
        expected = [str(int(y[train_rows, j].sum())), str(int(support[j])), ap,
                    f"{precision[j]:.3f}", f"{recall[j]:.3f}", f"{f1[j]:.3f}"]
        assert rows[name] == expected, (name, rows[name], expected)
    assert "1 label(s) had no training positive, which no model can learn: fish." in out
    assert "AP is '-' for the 1 label(s) without a positive among these rows." in out
    # The run's own test rows too, from its saved scores.
    own = _cli("evaluate", "r", "--per-label", "--protocol", "paper", cwd=tmp_path).stdout
    assert "r, test rows, per label" in own and own.count("| fish |") == 1

    # --json: the same numbers, unrounded, for scripts
    from mulsupcon.metrics import evaluate

    got = json.loads(_cli("evaluate", "r", "--input", "new.npz", "--per-label", "--json", cwd=tmp_path).stdout)
    assert got["rows"] == "new.npz" and got["n_rows"] == 50 and got["labels"] == LABELS
    assert got["labels_without_positives"] == ["fish"] and list(got["protocols"]) == ["paper", "validation", "fixed"]
    paper = evaluate(proba, y[100:], protocol="paper")
    for metric in ("mAP", "hamming_accuracy", "example_f1", "macro_f1", "micro_f1", "precision_at_1"):
        assert got["protocols"]["paper"][metric] == pytest.approx(paper[metric], abs=1e-6), metric
    for j, name in enumerate(LABELS):
        row = got["per_label"][name]
        assert row["training_positives"] == int(y[train_rows, j].sum()) and row["positives"] == int(support[j])
        assert row["AP"] == (pytest.approx(average_precision_score(y[100:, j], proba[:, j]), abs=1e-6) if support[j]
                             else None)
        assert [row["precision"], row["recall"], row["F1"]] == pytest.approx([precision[j], recall[j], f1[j]])
    # the run's own test rows: the numbers of its metrics.json, and no per_label without --per-label
    got = json.loads(_cli("evaluate", "r", "--json", cwd=tmp_path).stdout)
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())["protocols"]
    assert got["rows"] == "test" and "per_label" not in got
    for protocol in saved:
        assert got["protocols"][protocol]["mAP"] == pytest.approx(saved[protocol]["mAP"], abs=1e-9)
        assert got["protocols"][protocol]["micro_f1"] == pytest.approx(saved[protocol]["micro_f1"], abs=1e-9)


def test_finetuning_on_other_data_drops_the_pretraining_files_reading_options(tmp_path):
    """Transfer: `train --from RUN --dataset.path OTHER` must not read OTHER with RUN's label columns,
    ignored columns or test file (an NPZ was refused for them; a registered name kept RUN's file)."""
    x, y = _vectors(80)
    lines = ["id,a,b,c,d,e,g," + ",".join(LABELS)]
    lines += [f"r{i}," + ",".join(f"{v:.6f}" for v in x[i]) + "," + ",".join(str(int(v)) for v in y[i])
              for i in range(len(x))]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    _cli("pretrain", "--dataset.path", "a.csv", "--dataset.label_columns", "3", "--dataset.ignore_columns", "id",
         *VEC, "--run-dir", "pre", cwd=tmp_path)
    x2, y2 = _vectors(90, seed=5)
    np.savez(tmp_path / "other.npz", features=x2, labels=y2[:, :2])  # same features, other labels
    _cli("train", "--mode", "finetune", "--from", "pre", "--dataset.path", "other.npz", *VEC, "--run-dir", "ft",
         cwd=tmp_path)
    ds = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())["dataset"]
    assert ds["name"] == "other" and ds["path"] == str(tmp_path / "other.npz")
    assert ds["label_columns"] is None and ds["ignore_columns"] is None
    # The same file again (a relative path to it) keeps its options.
    _cli("train", "--mode", "finetune", "--from", "pre", "--dataset.path", "./a.csv", *VEC, "--run-dir", "ft2",
         cwd=tmp_path)
    ds = yaml.safe_load((tmp_path / "ft2" / "config.yaml").read_text())["dataset"]
    assert ds["label_columns"] == 3 and ds["ignore_columns"] == "id" and ds["name"] == "a"


def test_labels_listed_by_name_train_evaluate_and_predict(tmp_path):
    """`--dataset.label_sep space`: train, evaluate a new file (the run's own test part again: the same
    table) and predict, with the label names taken from the listing column."""
    x, y = _vectors(150)

    def write(path: Path, rows: range) -> None:
        lines = ["a,b,c,d,e,g,tags"] + [",".join(f"{v:.6f}" for v in x[i]) + ","
                                       + " ".join(n for n, v in zip(LABELS, y[i]) if v) for i in rows]
        path.write_text("\n".join(lines) + "\n")

    write(tmp_path / "train.csv", range(100))
    write(tmp_path / "test.csv", range(100, 150))
    _cli("train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.test_path", "test.csv",
         "--dataset.label_columns", "tags", "--dataset.label_sep", "space", *VEC, "--run-dir", "r", cwd=tmp_path)
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["dataset"]["label_sep"] == "space"
    own = _cli("evaluate", "r", cwd=tmp_path).stdout
    again = _cli("evaluate", "r", "--input", "test.csv", cwd=tmp_path).stdout

    def rows(table: str) -> list[str]:
        return [ln.split("|", 2)[2] for ln in table.splitlines() if "protocol" in ln]

    assert len(rows(own)) == 3 and rows(again) == rows(own)
    # The label column given as "the last column": a new file is read by the same rule.
    _cli("train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.test_path", "test.csv",
         "--dataset.label_columns", "1", "--dataset.label_sep", "space", *VEC, "--run-dir", "r1", cwd=tmp_path)
    own1 = rows(_cli("evaluate", "r1", cwd=tmp_path).stdout)
    assert len(own1) == 3 and rows(_cli("evaluate", "r1", "--input", "test.csv", cwd=tmp_path).stdout) == own1
    _cli("predict", "r", "--input", "test.csv", "--out", "p.csv", cwd=tmp_path)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == ",".join(sorted(LABELS))


def test_too_few_rows_for_a_validation_split_says_so(tmp_path):
    (tmp_path / "two.csv").write_text("a,b,y\n1,2,1\n2,1,1\n")  # (with a 0 left in training: nothing to learn)
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "two.csv", "--dataset.label_columns", "y", *VEC,
                "--run-dir", "r", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "1 training row(s) are too few to carve one (dataset.val_fraction 0.2)" in proc.stderr


def test_predict_refuses_inputs_without_the_training_columns(tmp_path):
    x, y = _vectors(60)
    _write_csv(tmp_path / "data.csv", x, y)
    _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", "cat,dog,fish", *VEC,
         "--run-dir", "r", cwd=tmp_path)
    (tmp_path / "bad.csv").write_text("a,b,c\n1,2,3\n")
    proc = _cli("predict", "r", "--input", "bad.csv", "--out", "p.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "feature column(s) ['d', 'e', 'g']" in proc.stderr
    # An --out that is a folder, and a --run-dir that is a file, are named as such.
    (tmp_path / "outdir").mkdir()
    proc = _cli("predict", "r", "--input", "data.csv", "--out", "outdir", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "--out outdir is a folder; give the name of the file to write" in proc.stderr
    # An --out that would replace the input, or a file that is not a predictions CSV of this model, is refused
    # and left as it was; a predictions file of this model is replaced (a rerun); a non-CSV name is refused.
    before = (tmp_path / "data.csv").read_bytes()
    proc = _cli("predict", "r", "--input", "data.csv", "--out", "data.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "is the input file" in proc.stderr
    assert (tmp_path / "data.csv").read_bytes() == before
    (tmp_path / "notes.csv").write_text("my,own\nnotes,here\n")
    proc = _cli("predict", "r", "--input", "data.csv", "--out", "notes.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "is not a predictions file of this model" in proc.stderr
    assert (tmp_path / "notes.csv").read_text() == "my,own\nnotes,here\n"
    _cli("predict", "r", "--input", "data.csv", "--out", "p.csv", "--keep", "a", cwd=tmp_path)
    _cli("predict", "r", "--input", "data.csv", "--out", "p.csv", cwd=tmp_path)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "cat,dog,fish"
    proc = _cli("predict", "r", "--input", "data.csv", "--out", "p.npz", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "written as CSV" in proc.stderr
    (tmp_path / "afile").write_text("mine")
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", "cat,dog,fish",
                *VEC, "--run-dir", "afile", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "--run-dir afile is a file, not a folder; choose another --run-dir" in proc.stderr
    proc = _cli("demo", "--quick", "--run-dir", "afile/demo", cwd=tmp_path, ok=False)  # it said 'Not a directory'
    assert proc.returncode == 2 and "--run-dir afile/demo cannot be made: afile is a file, not a folder" in proc.stderr
    assert (tmp_path / "afile").read_text() == "mine"
    # Columns the model does not read may hold anything (an id, labels as text), in any order.
    names = ["a", "b", "c", "d", "e", "g"]
    order = [5, 0, 3, 1, 4, 2]
    lines = ["id," + ",".join(names[j] for j in order) + ",cat"]
    lines += [f"row-{i}," + ",".join(f"{x[i, j]:.6f}" for j in order) + ",yes" for i in range(5)]
    (tmp_path / "ids.csv").write_text("\n".join(lines) + "\n")
    _cli("predict", "r", "--input", "ids.csv", "--out", "p_ids.csv", cwd=tmp_path)
    _write_csv(tmp_path / "plain.csv", x[:5], y[:5])
    _cli("predict", "r", "--input", "plain.csv", "--out", "p_plain.csv", cwd=tmp_path)
    with_ids = np.loadtxt(tmp_path / "p_ids.csv", delimiter=",", skiprows=1)
    assert with_ids.shape == (5, 3)
    np.testing.assert_allclose(with_ids, np.loadtxt(tmp_path / "p_plain.csv", delimiter=",", skiprows=1))
    # --keep carries the id into the output, first, as written.
    _cli("predict", "r", "--input", "ids.csv", "--out", "p_keep.csv", "--keep", "id", "--labels", cwd=tmp_path)
    kept = (tmp_path / "p_keep.csv").read_text().splitlines()
    assert kept[0] == "id," + ",".join(LABELS)
    assert [ln.split(",")[0] for ln in kept[1:]] == [f"row-{i}" for i in range(5)]
    assert all(set(ln.split(",")[1:]) <= {"0", "1"} for ln in kept[1:])
    proc = _cli("predict", "r", "--input", "ids.csv", "--out", "p_bad.csv", "--keep", "cat", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "already has a column of that name" in proc.stderr
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", *VEC, "--run-dir", "r2", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "--dataset.label_columns" in proc.stderr
    assert not (tmp_path / "r2").exists()  # a failed start leaves nothing behind


@pytest.mark.parametrize("fmt", ["tsv", "npz", "arff-xml", "arff-meka", "hdf5", "csv-test-path"])
def test_vector_formats_train_end_to_end(tmp_path, fmt):
    x, y = _vectors(120)
    flags: list[str] = []
    if fmt == "tsv":
        _write_csv(tmp_path / "d.tsv", x, y, sep="\t")
        flags = ["--dataset.path", "d.tsv", "--dataset.label_columns", "3"]
    elif fmt == "npz":
        np.savez(tmp_path / "d.npz", features=x, labels=y, label_names=np.array(LABELS))
        flags = ["--dataset.path", "d.npz"]
    elif fmt == "arff-xml":
        _write_arff(tmp_path / "d.arff", x, y)
        (tmp_path / "d.xml").write_text('<labels xmlns="http://mulan.sourceforge.net/labels">'
                                        + "".join(f'<label name="{n}"></label>' for n in LABELS) + "</labels>")
        flags = ["--dataset.path", "d.arff", "--dataset.xml", "d.xml"]
    elif fmt == "arff-meka":
        _write_arff(tmp_path / "d.arff", x, y, relation="toy: -C -3")
        flags = ["--dataset.path", "d.arff"]
    elif fmt == "hdf5":
        import h5py

        with h5py.File(tmp_path / "d.h5", "w") as f:
            f["feature"], f["target"] = x, y
        flags = ["--dataset.path", "d.h5"]
    else:
        _write_csv(tmp_path / "train.csv", x[:90], y[:90])
        _write_csv(tmp_path / "test.csv", x[90:], y[90:])
        flags = ["--dataset.path", "train.csv", "--dataset.test_path", "test.csv", "--dataset.label_columns", "3"]
    _cli("train", "--mode", "scratch", *flags, *VEC, "--run-dir", "r", cwd=tmp_path)
    m = _metrics(tmp_path / "r")
    assert 0.3 < m["protocols"]["validation"]["mAP"] <= 1.0
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert split["test_source"] == ("official" if fmt == "csv-test-path" else "carved")
    assert all(Path(p).is_absolute() and len(h) == 64 for p, h in split["files"].items())
    names = "cat,dog,fish" if fmt != "hdf5" else "label0,label1,label2"
    assert (tmp_path / "r" / "history.csv").is_file()
    _cli("predict", "r", "--input", flags[1], "--out", "p.csv", cwd=tmp_path)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == names


# ----------------------------------------------------------------------------- images
def test_image_folder_with_a_label_csv_trains_and_predicts(tmp_path):
    names, labels = _images(tmp_path / "imgs", 40, seed=1)
    rows = ["file," + ",".join(LABELS)] + [f"{n}," + ",".join(map(str, lab)) for n, lab in zip(names, labels)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    test_names, test_labels = _images(tmp_path / "test-imgs", 12, seed=6)  # an official test part, labels listed
    (tmp_path / "test.csv").write_text("filename,labels\n" + "".join(
        f"{n},{';'.join(c for c, on in zip(LABELS, lab) if on)}\n" for n, lab in zip(test_names, test_labels)))
    _cli("train", "--mode", "scratch", "--dataset.path", "imgs", "--dataset.labels", "labels.csv", *IMG,
         "--dataset.test_path", "test-imgs", "--dataset.test_labels", "test.csv", "--run-dir", "r", cwd=tmp_path)
    cfg = (tmp_path / "r" / "config.yaml").read_text()
    assert "backbone: resnet18" in cfg and "image_size: 16" in cfg
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert split["test_source"] == "official" and str(tmp_path / "test.csv") in split["files"]
    _cli("predict", "r", "--input", "imgs", "--out", "p.csv", cwd=tmp_path)
    proc = _cli("predict", "r", "--input", "labels.csv", "--out", "q.csv", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "this model is for images; --input takes a folder of images" in proc.stderr
    # Transfer to another image side (the backbone pools globally): it was refused as another input shape.
    _cli("train", "--mode", "probe", "--from", "r", "--dataset.path", "imgs", "--dataset.labels", "labels.csv",
         *IMG, "--dataset.image_size", "24", "--run-dir", "r24", cwd=tmp_path)
    assert "image_size: 24" in (tmp_path / "r24" / "config.yaml").read_text()
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "file," + ",".join(LABELS) and len(lines) == 41 and lines[1].startswith("im000.png,")
    # A folder is decoded and scored a chunk at a time: the same rows whatever the chunk.
    from mulsupcon.predict import predict_file

    # A batch of 7 and one of 40 may take different convolution kernels, so a score may differ in its 7th
    # digit and print one unit apart at 6 decimals (seen in CI): the same files and columns, scores to 1e-5.
    predict_file(tmp_path / "r", tmp_path / "imgs", tmp_path / "p7.csv", image_chunk=7)
    whole, chunked = ([row.split(",") for row in (tmp_path / f).read_text().splitlines()] for f in ("p.csv", "p7.csv"))
    assert [row[0] for row in chunked] == [row[0] for row in whole] and chunked[0] == whole[0]
    np.testing.assert_allclose(np.array([row[1:] for row in chunked[1:]], dtype=float),
                               np.array([row[1:] for row in whole[1:]], dtype=float), atol=1e-5, rtol=0)
    # evaluate --input on images (it took vector files only): the official test folder with its label file
    # gives the run's own test labels and scores, and so the same metrics as the run's own evaluation.
    from mulsupcon.evaluate import evaluate_file, evaluate_run
    from mulsupcon.predict import load_run, read_labelled_inputs

    model = load_run(tmp_path / "r")
    x, y = read_labelled_inputs(tmp_path / "test-imgs", model, tmp_path / "test.csv")
    saved = np.load(tmp_path / "r" / "scores.npz")
    np.testing.assert_array_equal(y, saved["test_targets"])
    np.testing.assert_allclose(model.predict_proba(x), saved["test_scores"], atol=1e-5)
    from mulsupcon.predict import labelled_image_folder, score_image_folder

    names, y5, _ = labelled_image_folder(tmp_path / "test-imgs", model, tmp_path / "test.csv")
    np.testing.assert_array_equal(y5, y)  # evaluate scores a chunk of images at a time: the same scores
    np.testing.assert_allclose(score_image_folder(model, tmp_path / "test-imgs", names, model.predict_proba, chunk=5),
                               model.predict_proba(x), atol=1e-6)
    numbers = lambda table: [line.split("|")[2:] for line in table.splitlines() if "protocol |" in line]  # noqa: E731
    own = numbers(evaluate_run(tmp_path / "r"))
    assert len(own) == 3 and numbers(evaluate_file(tmp_path / "r", tmp_path / "test-imgs", labels=tmp_path / "test.csv")) == own
    proc = _cli("evaluate", "r", "--input", "test-imgs", cwd=tmp_path, ok=False)  # no test-imgs/labels.csv
    assert proc.returncode == 2 and "no label file" in proc.stderr and "--label-file FILE" in proc.stderr
    (tmp_path / "gone.csv").write_text("file," + ",".join(LABELS) + "\nnot-there.png," + ",".join("1" * len(LABELS)) + "\n")
    with pytest.raises(ValueError, match=r"cannot read image .*not-there\.png: .*; remove its row from .*gone\.csv"):
        evaluate_file(tmp_path / "r", tmp_path / "test-imgs", labels=tmp_path / "gone.csv")
    (tmp_path / "imgs" / "zz.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*zz\.png: UnidentifiedImageError.*every image gets an "
                                         r"output row"):
        predict_file(tmp_path / "r", tmp_path / "imgs", tmp_path / "p8.csv")
    assert not (tmp_path / "p8.csv").exists()


def test_the_images_predict_scores_in_a_folder(tmp_path):
    """`predict --input FOLDER` scores every image in the folder and its subfolders (a label file may list
    `sub/img.jpg`; before, images in subfolders were left out without a word), named by their path inside
    it; a `labels.csv` in the folder lists them instead, read as training reads a label file (here
    tab-separated, with a byte-order mark)."""
    from mulsupcon.predict import image_folder_names

    (tmp_path / "f" / "sub" / "deeper").mkdir(parents=True)
    for name in ("b.png", "A.JPG", "sub/c.jpg", "sub/deeper/d.webp", "notes.txt", "sub/readme.md"):
        (tmp_path / "f" / name).write_bytes(b"")
    assert image_folder_names(tmp_path / "f") == ["A.JPG", "b.png", "sub/c.jpg", "sub/deeper/d.webp"]
    (tmp_path / "f" / "labels.csv").write_bytes("\ufefffile\tlabels\nsub/c.jpg\tcat\nb.png\t\n".encode())
    assert image_folder_names(tmp_path / "f") == ["sub/c.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        image_folder_names(tmp_path / "empty")


def test_a_folder_that_is_not_a_dataset_says_what_is_missing(tmp_path):
    """A folder of images given without its label file, and PASCAL VOC's label lists without the images,
    are named as such (both only said "not a dataset folder"); a label file lying in the folder is offered."""
    from mulsupcon.data.user_files import read_dataset

    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "imgs" / "sub" / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"imgs: not a dataset folder .*; it holds images: name their label file "
                                         r"with --dataset\.labels FILE\.csv\. Expected"):
        read_dataset(tmp_path / "imgs")
    (tmp_path / "imgs" / "labels.csv").write_text("file,cat\nsub/a.jpg,1\n")
    with pytest.raises(ValueError, match=r"--dataset\.labels .*imgs[/\\]labels\.csv\. Expected"):
        read_dataset(tmp_path / "imgs")
    (tmp_path / "voc" / "VOC2007" / "ImageSets" / "Main").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"voc: not a dataset folder .*; it has PASCAL VOC's ImageSets/Main/ but no "
                                         r"JPEGImages/"):
        read_dataset(tmp_path / "voc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: not a dataset folder mulsupcon can read\. Expected one of"):
        read_dataset(tmp_path / "empty")


def test_image_label_file_options_reach_the_folder_reader(tmp_path):
    """`--dataset.label_sep` / `--dataset.ignore_columns` apply to an image folder's label CSV (with a test
    folder, the names of both files are unioned); a label file that names images without their suffix
    says so instead of only 'no image exists'."""
    from mulsupcon.data.catalogue import ReadOptions
    from mulsupcon.data.user_files import read_dataset

    names, labels = _images(tmp_path / "imgs", 6, seed=4)
    stems = [n.rsplit(".", 1)[0] for n in names]
    options = ReadOptions(image_size=8, cache_dir=str(tmp_path / "cache"))
    (tmp_path / "tags.csv").write_text("image,quality,tags\n" + "".join(
        f"{n},good,{' '.join(c for c, on in zip(LABELS, lab) if on)}\n" for n, lab in zip(names, labels)))
    parts, files = read_dataset(tmp_path / "imgs", labels=tmp_path / "tags.csv", label_sep="space",
                                ignore_columns="quality", options=options)
    present = [c for j, c in enumerate(LABELS) if labels[:, j].any()]
    assert parts.train.label_names == present and str(tmp_path / "tags.csv") in files
    np.testing.assert_array_equal(parts.train.labels, labels[:, [LABELS.index(c) for c in present]])
    # A test folder whose label file has a name the training file lacks: both read with the union.
    test_names, _ = _images(tmp_path / "test", 2, seed=5)
    (tmp_path / "test-tags.csv").write_text(f"image,quality,tags\n{test_names[0]},ok,zebra\n{test_names[1]},ok,\n")
    with pytest.raises(ValueError, match="needs its own label file: add --dataset.test_labels"):
        read_dataset(tmp_path / "imgs", labels=tmp_path / "tags.csv", test_path=tmp_path / "test", options=options)
    parts, files = read_dataset(tmp_path / "imgs", labels=tmp_path / "tags.csv", label_sep="space",
                                ignore_columns="quality", options=options, test_path=tmp_path / "test",
                                test_labels=tmp_path / "test-tags.csv")
    assert str(tmp_path / "test-tags.csv") in files
    assert parts.train.label_names == parts.test.label_names == sorted(present + ["zebra"])
    assert parts.test.labels.tolist() == [[int(c == "zebra") for c in sorted(present + ["zebra"])], [0] * (len(present) + 1)]
    with pytest.raises(ValueError, match="apply to a CSV file"):
        read_dataset(tmp_path / "imgs", label_sep="space", options=options)
    (tmp_path / "stems.csv").write_text("image," + ",".join(LABELS) + "\n" + "".join(
        f"{s}," + ",".join(map(str, lab)) + "\n" for s, lab in zip(stems, labels)))
    from mulsupcon.data.download import MissingDataError

    with pytest.raises(MissingDataError, match=rf"without a suffix, and {names[0]} exists there"):
        read_dataset(tmp_path / "imgs", labels=tmp_path / "stems.csv", options=options)


def test_unreadable_or_missing_images_are_refused_unless_skipped(tmp_path):
    """An image that cannot be decoded, or a listed one that does not exist, stops the read with the file,
    the line of the label file that lists it (not a 0-based row index) and the option named;
    `dataset.skip_corrupt` (the config key, so the command line too) leaves them out with their label rows."""
    from mulsupcon.data.catalogue import ReadOptions
    from mulsupcon.data.download import MissingDataError
    from mulsupcon.data.user_files import read_dataset
    from mulsupcon.train.dataset_section import read_options

    names, labels = _images(tmp_path / "imgs", 8, seed=7)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    header = "file," + ",".join(LABELS) + "\n"
    body = "".join(f"{n}," + ",".join(map(str, lab)) + "\n" for n, lab in zip(names, labels))
    (tmp_path / "broken.csv").write_text(header + body + "broken.png," + ",".join(["1"] * len(LABELS)) + "\n")
    (tmp_path / "ghost.csv").write_text(header + body + "ghost.png," + ",".join(["1"] * len(LABELS)) + "\n")
    strict = ReadOptions(image_size=8, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png \(.*broken\.csv:10\).*"
                                         r"--dataset\.skip_corrupt true leaves out"):
        read_dataset(tmp_path / "imgs", labels=tmp_path / "broken.csv", options=strict)
    with pytest.raises(MissingDataError, match=r"1 of 9 images are missing, first .*ghost\.png \(.*ghost\.csv:10\); "
                                                 r"--dataset\.skip_corrupt"):
        read_dataset(tmp_path / "imgs", labels=tmp_path / "ghost.csv", options=strict)
    lenient = read_options({"image_size": 8, "cache_dir": str(tmp_path / "cache"), "skip_corrupt": True})
    for label_file in ("broken.csv", "ghost.csv"):
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) of 9"):
            parts, _ = read_dataset(tmp_path / "imgs", labels=tmp_path / label_file, options=lenient)
        assert parts.train.n_samples == 8
        np.testing.assert_array_equal(parts.train.labels, labels)


def test_coco_and_voc_layout_folders_train(tmp_path):
    # MS-COCO format: images + annotations/instances_{train,val}.json (test part from the val json).
    root = tmp_path / "coco"
    for split, n in (("train", 30), ("val", 10)):
        names, labels = _images(root / split, n, seed=2 if split == "train" else 3)
        anns = [{"id": int(100 * i + j), "image_id": i, "category_id": int(j) + 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}
                for i, lab in enumerate(labels) for j in np.flatnonzero(lab)]
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps({
            "images": [{"id": i, "file_name": n, "width": 12, "height": 12} for i, n in enumerate(names)],
            "annotations": anns, "categories": [{"id": j + 1, "name": c} for j, c in enumerate(LABELS)]}))
    _cli("train", "--mode", "scratch", "--dataset.path", "coco", *IMG, "--run-dir", "c", cwd=tmp_path)
    split = json.loads((tmp_path / "c" / "split.json").read_text())
    assert split["test_source"] == "official" and len(split["files"]) == 2

    # PASCAL VOC layout: JPEGImages + ImageSets/Main/<class>_<split>.txt for the 20 VOC classes.
    from PIL import Image

    from mulsupcon.data.image_layouts import VOC_CLASSES

    voc = tmp_path / "voc"
    (voc / "JPEGImages").mkdir(parents=True)
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True)
    rng = np.random.default_rng(4)
    for split, ids in (("trainval", range(24)), ("test", range(24, 32))):
        labels = rng.random((len(ids), 20)) < 0.3
        for i in ids:
            Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8)).save(voc / "JPEGImages" / f"{i:06d}.jpg")
        (main / f"{split}.txt").write_text("".join(f"{i:06d}\n" for i in ids))
        for j, cls in enumerate(VOC_CLASSES):
            (main / f"{cls}_{split}.txt").write_text(
                "".join(f"{i:06d} {1 if labels[k, j] else -1}\n" for k, i in enumerate(ids)))
    _cli("train", "--mode", "scratch", "--dataset.path", "voc", *IMG, "--run-dir", "v", cwd=tmp_path)
    assert json.loads((tmp_path / "v" / "split.json").read_text())["test_source"] == "official"
    # The folder above it works as well (VOC2007/ inside, as some copies of the data unpack).
    from mulsupcon.data.catalogue import ReadOptions
    from mulsupcon.data.user_files import read_dataset

    (tmp_path / "above").mkdir()
    voc.rename(tmp_path / "above" / "VOC2007")
    parts, files = read_dataset(tmp_path / "above", options=ReadOptions(image_size=8, cache_dir=str(tmp_path / "c")))
    assert (parts.train.n_samples, parts.test.n_samples) == (24, 8) and len(files) == 2


# ----------------------------------------------------------------------------- Python
def test_from_arrays_and_from_file_in_the_python_loops(tmp_path):
    from mulsupcon.config import load_config
    from mulsupcon.data import from_arrays, from_file
    from mulsupcon.train.classify import classify
    from mulsupcon.train.rundir import RunDir

    x, y = _vectors(100)
    cfg = load_config(None, {"model.hidden": [16], "classify.epochs": 2, "classify.mode": "scratch", "cpu.num_threads": 1})
    run = RunDir.in_memory()
    res = classify(cfg, run, data=from_arrays(x, y, label_names=LABELS), quiet=True, echo=False)
    assert res["protocols"]["fixed"]["mAP"] > 0.3
    model = run.files["model.pt"]
    assert model["label_names"] == LABELS and model["feature_names"] == [f"f{j}" for j in range(6)]
    _write_csv(tmp_path / "d.csv", x, y)
    ds = from_file(tmp_path / "d.csv", label_columns="cat,dog,fish")
    assert ds.n_samples == 100 and ds.label_names == LABELS
    np.testing.assert_allclose(ds.features, x, atol=1e-6)
    with pytest.raises(ValueError, match="label values must be 0 or 1"):
        from_arrays(x, y * 2)
    with pytest.raises(ValueError, match="features hold nan at row 0, column 0; every feature must be a finite"):
        from_arrays(np.full((3, 2), np.nan), np.zeros((3, 1)))

    # pandas tables name the features and labels; the model then reads a table by those names, in any order.
    pd = pytest.importorskip("pandas")
    from mulsupcon.predict import TrainedModel

    table, targets = pd.DataFrame(x, columns=list("abcdeg")), pd.DataFrame(y, columns=LABELS)
    ds = from_arrays(table, targets)
    assert ds.feature_names == list("abcdeg") and ds.label_names == LABELS
    run = RunDir.in_memory()
    classify(cfg, run, data=ds, quiet=True, echo=False)
    model = TrainedModel(run.files["model.pt"])
    np.testing.assert_allclose(model.predict_proba(table[list("gedcba")]), model.predict_proba(x), rtol=1e-6)
    # A model of an unnamed array (features f0, f1, ...) given a named table says how to pass it by position.
    unnamed = RunDir.in_memory()
    classify(cfg, unnamed, data=from_arrays(x, y), quiet=True, echo=False)
    with pytest.raises(ValueError, match=r"no column 'f0'.*trained on an unnamed array: pass table.to_numpy\(\)"):
        TrainedModel(unnamed.files["model.pt"]).predict_proba(table)


@pytest.mark.parametrize("features, labels, kwargs, said", [
    # Each was accepted and failed later, elsewhere or not at all.
    (np.zeros((0, 2)), np.zeros((0, 1)), {}, r"at least one row and one label, got shape \(0, 1\)"),
    (np.zeros((4, 2)), np.zeros((4, 0)), {}, r"at least one row and one label, got shape \(4, 0\)"),
    (np.zeros((4, 2)), np.eye(4, 2), {"label_names": ["a", "a"]}, r"label name 'a' occurs twice"),
    (np.zeros((4, 2)), np.eye(4, 2), {"feature_names": ["x"]}, r"1 feature names for 2 feature columns"),
    (np.zeros((4, 3, 8, 8), np.float32), np.eye(4, 2), {}, r"image features must be uint8.*got float32"),
    (np.array([["a", "b"]] * 4, dtype=object), np.eye(4, 2), {}, r"features must be numbers.*'a'"),
    (np.array([[1e300, 0.0]] * 4), np.eye(4, 2), {}, r"features hold 1e\+300 at row 0, column 0; every feature must be a finite number that float32"),
    (np.zeros((4, 2)), np.eye(4, 2) * 0.5, {}, r"labels hold 0.5 at row 0, column 0"),
])
def test_from_arrays_names_what_it_cannot_take(features, labels, kwargs, said):
    from mulsupcon.data import from_arrays

    with pytest.raises(ValueError, match=said):
        from_arrays(features, labels, **kwargs)


def test_logger_callable_and_tensorboard(tmp_path):
    """Every epoch's record reaches a logger; with log.tensorboard the scalars are in TensorBoard files."""
    from mulsupcon.config import load_config
    from mulsupcon.data import from_arrays
    from mulsupcon.train.classify import classify
    from mulsupcon.train.pretrain import pretrain

    x, y = _vectors(80)
    seen = []
    cfg = load_config(None, {"model.hidden": [16], "model.head_hidden": 8, "model.embed_dim": 8, "pretrain.epochs": 3,
                             "pretrain.queue_size": 16, "classify.epochs": 2, "classify.mode": "scratch"})
    data = from_arrays(x, y, label_names=LABELS)
    pretrain(cfg, tmp_path / "pre", data=data, quiet=True, echo=False, logger=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3] and all({"loss", "lr"} <= set(r) for r in seen)
    pytest.importorskip("tensorboard")
    cfg["log"]["tensorboard"] = True
    classify(cfg, tmp_path / "cls", data=data, quiet=True, echo=False, logger=seen.append)
    assert {"train_loss", "val_loss", "val_mAP"} <= set(seen[-1])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "cls" / "tensorboard"))
    events.Reload()
    assert {"scratch/val_mAP", "scratch/train_loss", "scratch/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("scratch/val_mAP")] == [1, 2]


def test_epoch_hook_sees_the_scored_model_and_changes_nothing(tmp_path):
    """The hook gets the model that produced the epoch's validation mAP (rescoring it in the hook gives the
    same number), once per epoch, and scoring inside it leaves the run identical (dropout back on, same RNG)."""
    from mulsupcon.config import load_config
    from mulsupcon.data import from_arrays
    from mulsupcon.metrics import evaluate
    from mulsupcon.train.classify import classify, score_split
    from mulsupcon.train.data import as_prepared

    x, y = _vectors(80)
    cfg = load_config(None, {"model.hidden": [16], "model.head_hidden": 8, "model.embed_dim": 8, "classify.epochs": 3,
                             "classify.mode": "scratch", "classify.early_stop_patience": 10})
    data = as_prepared(from_arrays(x, y, label_names=LABELS), cfg["dataset"])
    rescored = []

    def hook(model, record):
        vs, vt, _ = score_split(model, data.val, torch.device("cpu"))
        rescored.append((record["epoch"], float(evaluate(vs, vt, protocol="fixed")["mAP"]), record["val_mAP"]))

    with_hook = classify(cfg, tmp_path / "a", data=data, quiet=True, echo=False, epoch_hook=hook)
    without = classify(cfg, tmp_path / "b", data=data, quiet=True, echo=False)
    assert [e for e, _, _ in rescored] == [1, 2, 3]
    assert all(abs(a - b) < 1e-12 for _, a, b in rescored)
    assert with_hook["protocols"]["fixed"] == without["protocols"]["fixed"]


def test_onnx_export_is_a_valid_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    x, y = _vectors(60)
    _write_csv(tmp_path / "data.csv", x, y)
    _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", "3", *VEC,
         "--run-dir", "r", cwd=tmp_path)
    _cli("export", "r", "--format", "onnx", cwd=tmp_path)
    _cli("export", "r", "--out", "named.onnx", cwd=tmp_path)  # the format follows the suffix
    model = onnx.load(str(tmp_path / "r" / "model.onnx"))
    onnx.checker.check_model(model)
    onnx.checker.check_model(onnx.load(str(tmp_path / "named.onnx")))
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["probabilities"]


def test_the_command_line_prints_its_own_warnings_as_one_line(tmp_path):
    x, y = _vectors(60)
    y[:, 2] = 0  # 'fish' never occurs: the split warns that it cannot be learned
    _write_csv(tmp_path / "data.csv", x, y)
    proc = _cli("train", "--mode", "scratch", "--dataset.path", "data.csv", "--dataset.label_columns", "3", *VEC,
                "--run-dir", "r", cwd=tmp_path)
    warned = [ln for ln in proc.stderr.splitlines() if "never occur in the training split" in ln]
    assert len(warned) == 1 and warned[0].startswith("mulsupcon train: warning: ") and "fish" in warned[0]
    assert "splits.py" not in proc.stderr  # no source location of the library's own code


def test_an_official_test_file_is_read_by_column_name_not_position(tmp_path):
    """A test file whose feature (or label) columns come in another order was read by position: the model was
    scored on permuted features without a word. A test file with other feature names, or another number of
    them, was accepted too. Oracle: the same rows written in the training file's order."""
    from mulsupcon.data.user_files import read_dataset

    x, y = _vectors(120)
    _write_csv(tmp_path / "train.csv", x[:80], y[:80])
    _write_csv(tmp_path / "test.csv", x[80:], y[80:])
    names = ["a", "b", "c", "d", "e", "g", *LABELS]
    order = [5, 2, 0, 4, 1, 3, 8, 6, 7]  # features and labels shuffled, labels still last
    table = np.hstack([x[80:], y[80:]])
    lines = [",".join(names[j] for j in order)]
    lines += [",".join(f"{row[j]:.6f}" if j < 6 else str(int(row[j])) for j in order) for row in table]
    (tmp_path / "shuffled.csv").write_text("\n".join(lines) + "\n")
    want, _ = read_dataset(tmp_path / "train.csv", test_path=tmp_path / "test.csv", label_columns=3)
    for label_columns in (3, LABELS):
        got, _ = read_dataset(tmp_path / "train.csv", test_path=tmp_path / "shuffled.csv", label_columns=label_columns)
        assert got.test.feature_names == want.test.feature_names and got.test.label_names == LABELS
        np.testing.assert_array_equal(got.test.features, want.test.features)
        np.testing.assert_array_equal(got.test.labels, want.test.labels)
    # NPZ: by the names it stores; a test file naming no features is taken by position
    np.savez(tmp_path / "train.npz", features=x[:80], labels=y[:80], feature_names=np.array(names[:6]),
             label_names=np.array(LABELS))
    np.savez(tmp_path / "test.npz", features=x[80:][:, [5, 2, 0, 4, 1, 3]], labels=y[80:],
             feature_names=np.array([names[j] for j in (5, 2, 0, 4, 1, 3)]), label_names=np.array(LABELS))
    got, _ = read_dataset(tmp_path / "train.npz", test_path=tmp_path / "test.npz")
    np.testing.assert_array_equal(got.test.features, x[80:])
    np.savez(tmp_path / "plain.npz", features=x[80:], labels=y[80:], label_names=np.array(LABELS))
    got, _ = read_dataset(tmp_path / "train.npz", test_path=tmp_path / "plain.npz")
    np.testing.assert_array_equal(got.test.features, x[80:])
    # other feature names, or fewer of them, are named
    (tmp_path / "renamed.csv").write_text((tmp_path / "test.csv").read_text().replace("a,b,", "a,bb,", 1))
    with pytest.raises(ValueError, match=r"renamed\.csv: feature columns \['b'\] of .*train\.csv are not in it "
                                         r"\(1 of 6; it has \['bb'\] instead\)"):
        read_dataset(tmp_path / "train.csv", test_path=tmp_path / "renamed.csv", label_columns=3)
    _write_csv(tmp_path / "narrow.csv", x[80:], y[80:])
    (tmp_path / "narrow.csv").write_text("\n".join(",".join(ln.split(",")[1:]) for ln in
                                                   (tmp_path / "narrow.csv").read_text().splitlines()) + "\n")
    with pytest.raises(ValueError, match=r"narrow\.csv: 5 feature columns, but .*train\.csv has 6"):
        read_dataset(tmp_path / "train.csv", test_path=tmp_path / "narrow.csv", label_columns=3)


def test_finetuning_from_a_backbone_puts_new_data_in_its_feature_order(tmp_path, monkeypatch):
    """`train --from RUN --dataset.path OTHER`: a backbone reads its inputs by position, and a file holding the
    pretraining file's features in another order was fed to it as it came (silently wrong). Now its columns
    are put in the backbone's order: the same rows, shuffled columns, give the same run. Features named
    otherwise are matched by position, and the log says so."""
    from mulsupcon.cli import main

    monkeypatch.chdir(tmp_path)
    x, y = _vectors(120)
    _write_csv(tmp_path / "a.csv", x, y)
    names = ["a", "b", "c", "d", "e", "g", *LABELS]
    order = [3, 0, 5, 1, 4, 2, 6, 7, 8]
    table = np.hstack([x, y])
    for name, header in (("shuffled.csv", [names[j] for j in order]),
                         ("renamed.csv", ["z" + names[j] if j < 6 else names[j] for j in range(9)])):
        cols = order if name == "shuffled.csv" else list(range(9))
        lines = [",".join(header)] + [",".join(f"{row[j]:.6f}" if j < 6 else str(int(row[j])) for j in cols)
                                      for row in table]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    assert main(["pretrain", "--dataset.path", "a.csv", "--dataset.label_columns", "3", *VEC, "--run-dir", "pre"]) == 0
    for data in ("a.csv", "shuffled.csv", "renamed.csv"):
        assert main(["train", "--mode", "finetune", "--from", "pre", "--dataset.path", data, "--dataset.label_columns",
                     "3", *VEC, "--run-dir", f"ft-{data}"]) == 0
    own, shuffled = (np.load(tmp_path / f"ft-{d}" / "scores.npz") for d in ("a.csv", "shuffled.csv"))
    np.testing.assert_allclose(shuffled["test_scores"], own["test_scores"], rtol=1e-5, atol=1e-6)
    model = torch.load(tmp_path / "ft-shuffled.csv" / "model.pt", map_location="cpu", weights_only=False)
    assert list(model["feature_names"]) == names[:6]  # predict then reads a CSV by these names, in this order
    assert "note: the features are not named as those" not in (tmp_path / "ft-shuffled.csv" / "log.txt").read_text()
    assert "they are matched by position" in (tmp_path / "ft-renamed.csv" / "log.txt").read_text()


def test_predict_and_evaluate_match_an_npz_or_arff_files_columns_by_name(tmp_path, monkeypatch):
    """`predict` / `evaluate --input` found a CSV's columns by name, but took an NPZ's (which may name its
    features) and an ARFF's by position: a file with the columns in another order was scored wrongly without
    a word. Oracle: the same rows in the model's order."""
    from mulsupcon.cli import main
    from mulsupcon.evaluate import evaluate_file
    from mulsupcon.predict import load_run, read_inputs, read_labelled_inputs

    monkeypatch.chdir(tmp_path)
    x, y = _vectors(150)
    names = ["a", "b", "c", "d", "e", "g"]
    _write_csv(tmp_path / "train.csv", x[:100], y[:100])
    assert main(["train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.label_columns", "3", *VEC,
                 "--run-dir", "r"]) == 0
    model = load_run(tmp_path / "r")
    f_order, l_order = [4, 0, 5, 2, 1, 3], [2, 0, 1]
    np.savez(tmp_path / "in-order.npz", features=x[100:], labels=y[100:], feature_names=np.array(names),
             label_names=np.array(LABELS))
    np.savez(tmp_path / "shuffled.npz", features=x[100:, f_order], labels=y[100:, l_order],
             feature_names=np.array([names[j] for j in f_order]), label_names=np.array([LABELS[j] for j in l_order]))
    _write_arff(tmp_path / "in-order.arff", x[100:], y[100:])
    arff = (tmp_path / "in-order.arff").read_text().splitlines()
    head = [ln for ln in arff if ln.startswith("@attribute")]
    rows = [ln.split(",") for ln in arff[arff.index("@data") + 1:] if ln.strip()]
    (tmp_path / "shuffled.arff").write_text("\n".join(
        [arff[0], *(head[j] for j in f_order), *head[6:], "@data", *(",".join([r[j] for j in f_order] + r[6:])
                                                                      for r in rows)]) + "\n")
    want = model.predict_proba(read_inputs(tmp_path / "in-order.npz", model)[0])
    for name in ("shuffled.npz", "shuffled.arff", "in-order.arff"):
        np.testing.assert_allclose(model.predict_proba(read_inputs(tmp_path / name, model)[0]), want, rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    xs, ys = read_labelled_inputs(tmp_path / "shuffled.npz", model)
    np.testing.assert_array_equal(ys, y[100:])
    assert evaluate_file(tmp_path / "r", tmp_path / "shuffled.npz") == evaluate_file(
        tmp_path / "r", tmp_path / "in-order.npz").replace("in-order.npz", "shuffled.npz")
    # an NPZ naming other features is refused; one naming none is taken by position
    np.savez(tmp_path / "other.npz", features=x[100:], labels=y[100:], feature_names=np.array(list("uvwxyz")))
    with pytest.raises(ValueError, match=r"other\.npz: feature columns \['a', 'b', 'c', 'd', 'e'\] of the model are "
                                         r"not in it \(6 of 6; it has \['u', 'v', 'w', 'x', 'y'\] instead\)"):
        read_inputs(tmp_path / "other.npz", model)
    np.savez(tmp_path / "plain.npz", features=x[100:], labels=y[100:])
    np.testing.assert_allclose(model.predict_proba(read_inputs(tmp_path / "plain.npz", model)[0]), want, rtol=1e-5)


def test_predict_top_writes_each_rows_most_probable_labels(tmp_path):
    """Oracle: the probabilities `predict` writes, ranked by NumPy. `--top K` writes label_1, p_1, ...,
    most probable first; K above the label count gives them all; a predictions file of another kind may be
    replaced, a file that is not one may not; --top with --labels is refused."""
    x, y = _vectors(120)
    _write_csv(tmp_path / "train.csv", x, y)
    _cli("train", "--mode", "scratch", "--dataset.path", "train.csv", "--dataset.label_columns", "3", *VEC,
         "--run-dir", "r", cwd=tmp_path)
    _cli("predict", "r", "--input", "train.csv", "--out", "p.csv", cwd=tmp_path)
    proba = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    for k, out in ((2, "p.csv"), (5, "p.csv")):  # p.csv: a predictions file of this model, replaced
        _cli("predict", "r", "--input", "train.csv", "--out", out, "--top", str(k), "--keep", "a", cwd=tmp_path)
        lines = (tmp_path / out).read_text().splitlines()
        shown = min(k, 3)
        assert lines[0].split(",") == ["a"] + [c for i in range(1, shown + 1) for c in (f"label_{i}", f"p_{i}")]
        order = np.argsort(-proba, axis=1, kind="stable")[:, :shown]
        for row, fields in zip(range(len(proba)), (ln.split(",")[1:] for ln in lines[1:])):
            assert fields[0::2] == [LABELS[j] for j in order[row]]
            np.testing.assert_allclose([float(v) for v in fields[1::2]], proba[row, order[row]], rtol=1e-5)
    (tmp_path / "mine.csv").write_text("a,b\n1,2\n")
    bad = _cli("predict", "r", "--input", "train.csv", "--out", "mine.csv", "--top", "1", cwd=tmp_path, ok=False)
    assert "--out mine.csv exists and is not a predictions file of this model" in bad.stderr
    assert (tmp_path / "mine.csv").read_text() == "a,b\n1,2\n"
    bad = _cli("predict", "r", "--input", "train.csv", "--out", "t.csv", "--top", "1", "--labels", cwd=tmp_path, ok=False)
    assert "--labels and --top: give one of them" in bad.stderr
