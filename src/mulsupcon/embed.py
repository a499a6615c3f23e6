"""``mulsupcon embed``: image features from a torchvision backbone, written in the vector layout.

The paper's Table 4 setting: an ImageNet-pretrained ResNet-50 turns every image of a dataset into
a feature vector, and MulSupCon then runs on those vectors with the MLP. ``embed_dataset``
extracts the features of train / val / test (the same splits the image pipeline uses) and writes
one HDF5 file per split, ``feature`` (N, D) float32 and ``target`` (N, L) uint8, the layout of the
authors' vector files, plus ``dataset.json`` (label names, backbone, weights, image size). The
folder is then a dataset: ``--dataset.path FOLDER`` (its official train / val / test parts, the label
names of ``dataset.json``, the files' sha256 in the run), or, as before, ``--dataset.name hdf5:FOLDER``.

Weights (``--weights``): nothing (random initialisation, seeded by ``--seed``); a local file holding
a state_dict (a torchvision model's own ``state_dict()`` with or without its classifier, a
``{"state_dict": ...}`` / ``{"model": ...}`` checkpoint, DDP ``module.`` prefixes, or a mulsupcon
``backbone.pt`` / ``model.pt``); or a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V2``,
``ResNet50_Weights.IMAGENET1K_V2``), which torchvision downloads (needs internet once).

Images go through the evaluation view of the training pipeline (``ImageViews(size, "eval")``:
the cached ``size x size`` image, scaled to [0, 1] and normalised with ImageNet statistics).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

if TYPE_CHECKING:
    import torch

    from mulsupcon.models.image import TorchvisionBackbone
# torch and torchvision are imported inside the functions that use them: the command line builds this
# module's parser for every command (even --help), and importing torchvision takes seconds.

SPLITS = ("train", "val", "test")
_CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "heads.")


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a saved object (plain state_dict or a common checkpoint wrapper)."""
    import torch

    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state_dict (a mapping of parameter names to tensors), got {type(obj).__name__}")
    for key in ("backbone", "state_dict", "model"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path}: no tensors found (keys: {list(obj)[:8]})")
    if all(k.startswith("module.") for k in tensors):  # saved from a DistributedDataParallel wrapper
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_weights_file(backbone: TorchvisionBackbone, path: str | os.PathLike) -> list[str]:
    """Load a state_dict file into ``backbone`` (strict, except the dropped classifier).

    Keys may be the backbone's own (``model.conv1.weight``) or a bare torchvision model's
    (``conv1.weight``); the final classifier's entries (``fc.*``, ...) are ignored because the
    backbone replaced that layer by an identity.

    Returns:
        The ignored classifier keys.

    Raises:
        ValueError: missing or unexpected keys, or shape mismatches (named).
    """
    import torch

    path = Path(path)
    state = _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    own = backbone.state_dict()
    if not any(k in own for k in state):
        state = {f"model.{k}": v for k, v in state.items()}
    ignored = [k for k in state if k not in own and k[len("model."):].startswith(_CLASSIFIER_PREFIXES)]
    state = {k: v for k, v in state.items() if k not in ignored}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not fit a '{backbone.arch}' backbone: {len(missing)} missing key(s) {missing[:4]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:4]}"
        )
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        k, found, expected = bad[0]
        raise ValueError(f"{path}: '{k}' has shape {found}, the '{backbone.arch}' backbone expects {expected} ({len(bad)} mismatches)")
    backbone.load_state_dict(state)
    return ignored


def build_embedding_backbone(
    arch: str = "resnet50",
    weights: Optional[str] = None,
    *,
    small_input: bool = False,
    in_channels: int = 3,
    seed: int = 0,
) -> TorchvisionBackbone:
    """A torchvision backbone (classifier removed) with the requested weights, in eval mode.

    Args:
        arch: torchvision model name.
        weights: ``None`` (random, seeded by ``seed``), a state_dict file, or a torchvision weights
            name (downloaded by torchvision).
        small_input, in_channels: as ``TorchvisionBackbone``; only with random or file weights
            (they rebuild the first convolution, which would discard pretrained torchvision weights).
    """
    import torch

    from mulsupcon.models.image import TorchvisionBackbone

    torch.manual_seed(seed)
    if weights is None or Path(str(weights)).expanduser().is_file():
        backbone = TorchvisionBackbone(arch, small_input=small_input, in_channels=in_channels)
        if weights is not None:
            load_weights_file(backbone, Path(str(weights)).expanduser())
    else:
        if any(sep in str(weights) for sep in ("/", os.sep)) or str(weights).endswith((".pt", ".pth")):
            raise ValueError(f"weights file not found: {weights}")
        if small_input or in_channels != 3:
            raise ValueError(
                f"torchvision weights '{weights}' need the model's own 3-channel stem: small_input / "
                f"in_channels={in_channels} would replace the pretrained first convolution"
            )
        try:
            backbone = TorchvisionBackbone(arch, weights=weights)
        except (KeyError, ValueError) as err:
            raise ValueError(f"'{weights}' is neither a file nor a torchvision weights name of '{arch}' ({err})") from err
        except OSError as err:  # URLError is an OSError: no internet on this machine
            raise ValueError(
                f"could not download torchvision weights '{weights}' for '{arch}' ({err}); on a machine without "
                f"internet save them elsewhere with torchvision and pass the file to --weights"
            ) from err
    return backbone.eval()


def extract_features(
    backbone: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Backbone features of uint8 images through the pipeline's evaluation view.

    Args:
        backbone: maps float (B, C, S, S) to (B, D); run in eval mode.
        images: uint8 (N, C, S, S) (a memmap is read batch by batch).
        batch_size: images per forward pass.
        device: where the backbone runs.

    Returns:
        float32 (N, D).
    """
    import torch

    from mulsupcon.train.data import ImageViews

    if images.ndim != 4:
        raise ValueError(f"extract_features expects images (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"extract_features expects square images, got {tuple(images.shape[-2:])}")
    device = torch.device(device)
    view = ImageViews(int(images.shape[-1]), "eval")
    backbone = backbone.to(device).eval()
    out = []
    with torch.no_grad():
        for s in range(0, int(images.shape[0]), batch_size):
            chunk = images[s : s + batch_size]
            x = torch.from_numpy(np.ascontiguousarray(chunk)) if isinstance(chunk, np.ndarray) else chunk
            out.append(backbone(view(x, None).to(device)).float().cpu())
    return torch.cat(out).numpy().astype(np.float32)


def embed_dataset(
    dataset: str | Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    arch: str = "resnet50",
    weights: Optional[str] = None,
    small_input: bool = False,
    batch_size: int = 128,
    device: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the features of a dataset's train / val / test images to ``out_dir``.

    Args:
        dataset: a registered image dataset name, or a config ``dataset`` section (``name``,
            ``val_fraction``, ``split_seed``, ``image_size``, ``cache_dir``).
        out_dir: folder for ``train.hdf5``, ``val.hdf5`` (when the split has a validation part),
            ``test.hdf5`` and ``dataset.json``.
        arch, weights, small_input, seed: the backbone (see :func:`build_embedding_backbone`).
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda``...
        overwrite: replace existing files in ``out_dir``.

    Returns:
        ``out_dir`` (load it as dataset ``hdf5:<out_dir>``).
    """
    import h5py

    from mulsupcon.io import check_folder_path
    from mulsupcon.train.data import load_dataset_splits
    from mulsupcon.train.runtime import resolve_device

    ds_cfg = {"name": dataset} if isinstance(dataset, str) else dict(dataset)
    out = Path(out_dir)
    check_folder_path(out, "--out")
    if not overwrite and any((out / f"{s}.hdf5").exists() for s in SPLITS):
        raise ValueError(f"{out} already holds embedded features; pass overwrite=True (--overwrite) to replace them")
    splits = load_dataset_splits(ds_cfg)
    if not splits.train.is_image:
        raise ValueError(f"dataset '{ds_cfg['name']}' holds vectors, not images: nothing to embed")
    dev = resolve_device(device)
    backbone = build_embedding_backbone(
        arch, weights, small_input=small_input, in_channels=int(splits.train.features.shape[1]), seed=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for part in SPLITS:
        ds = getattr(splits, part)
        if ds is None:
            if (out / f"{part}.hdf5").exists():
                (out / f"{part}.hdf5").unlink()
            continue
        feats = extract_features(backbone, ds.features, batch_size=batch_size, device=dev)
        tmp = out / f".{part}.hdf5.{os.getpid()}.tmp"
        with h5py.File(tmp, "w") as f:
            f.create_dataset("feature", data=feats)
            f.create_dataset("target", data=np.asarray(ds.labels, dtype=np.uint8))
        os.replace(tmp, out / f"{part}.hdf5")  # never leave a half-written split behind
        written[part] = int(feats.shape[0])
    meta = {
        "description": f"{arch} features of {ds_cfg['name']} ({'random init' if weights is None else weights})",
        "dataset": ds_cfg["name"],
        "arch": arch,
        "weights": weights,
        "small_input": bool(small_input),
        "seed": int(seed),
        "image_size": int(splits.train.features.shape[-1]),
        "feature_dim": int(getattr(backbone, "out_dim", feats.shape[1])),
        "rows": written,
        "split": {k: v for k, v in splits.info.items() if k in ("dataset", "seed", "val_fraction", "test_fraction")},
        "label_names": list(splits.train.label_names),
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    return out


# ------------------------------------------------------------------------------ command line
OWN_IMAGE_OPTIONS = {  # dataset.* keys of `mulsupcon train` that say how to read your own images
    "path": "an image folder, a COCO-format folder or a VOC layout",
    "labels": "the label file of an image folder (CSV: file name, then 0/1 columns or a column of names; or JSON)",
    "test_path": "the official test part (a folder); without it a test part is carved (dataset.test_fraction)",
    "test_labels": "the label file of the test folder",
    "label_sep": "labels listed by name in one column, separated by this (';', space)",
    "ignore_columns": "columns of the label CSV that are neither the file name nor labels",
    "skip_corrupt": "true: leave out unreadable or missing images (one warning gives the count)",
    "test_fraction": "the share of the rows carved as the test part when there is no test_path (default 0.2)",
}


def add_embed_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``embed`` subcommand to ``mulsupcon``'s subparsers; returns its parser."""
    from mulsupcon.config import number_argument

    p = subparsers.add_parser(
        "embed",
        help="extract image features with a torchvision backbone into HDF5 vector files (Table 4 setting)",
        description=(
            "Extract features of a dataset's train/val/test images with a torchvision backbone and write "
            "OUT/{train,val,test}.hdf5 (feature N x D float32, target N x L); then train on them with "
            "--dataset.path OUT."
        ),
    )
    p.add_argument("dataset", nargs="?", default=None,
                   help="registered image dataset (e.g. coco-tiny-zzowenzz, voc2007); or leave it out and give your "
                        "own images with the --dataset.* options below, as for train")
    own = p.add_argument_group("your own images (read as `mulsupcon train --dataset.path` reads them)")
    for key, what in OWN_IMAGE_OPTIONS.items():
        own.add_argument(f"--dataset.{key}", dest=f"dataset_{key}", default=None, metavar="VALUE", help=what)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--arch", default="resnet50", help="torchvision model name (default: %(default)s)")
    p.add_argument("--weights", default=None,
                   help="state_dict file, or torchvision weights name (DEFAULT, IMAGENET1K_V2; needs internet); "
                        "default: random initialisation")
    p.add_argument("--small-input", action="store_true", help="ResNet 3x3 stem without max-pool (tiny images)")
    p.add_argument("--image-size", type=int, default=None, help="cached image side (default: 224, or the dataset's own)")
    p.add_argument("--cache-dir", default=None, help="image cache folder (default: $MULSUPCON_CACHE or ~/.cache/mulsupcon/cache)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation carve of the training part")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--batch-size", type=number_argument(int, 1), default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of a random initialisation")
    p.add_argument("--overwrite", action="store_true", help="replace features already in --out")
    return p


def run_embed(args: argparse.Namespace) -> int:
    """Run ``mulsupcon embed`` from parsed arguments (a registered dataset, or your own images by
    ``--dataset.path FOLDER --dataset.labels FILE``); prints the output folder. Returns 0."""
    from mulsupcon.config import parse_value, resolve_paths, set_dotted, validate_config, with_defaults

    overrides = {f"dataset.{key}": parse_value(getattr(args, f"dataset_{key}")) for key in OWN_IMAGE_OPTIONS
                 if getattr(args, f"dataset_{key}", None) is not None}
    if not args.dataset and not overrides.get("dataset.path"):
        raise ValueError("name a registered image dataset, or give your own images: --dataset.path FOLDER "
                         "--dataset.labels FILE")
    cfg = with_defaults({"dataset": {"val_fraction": args.val_fraction, "split_seed": args.split_seed,
                                     "image_size": args.image_size, "cache_dir": args.cache_dir}})
    if args.dataset:
        cfg["dataset"]["name"] = args.dataset
    for key, value in overrides.items():
        set_dotted(cfg, key, value)
    resolve_paths(cfg)  # absolute paths; your folder names the data
    validate_config(cfg)
    out = embed_dataset(cfg["dataset"], args.out, arch=args.arch, weights=args.weights, small_input=args.small_input,
                        batch_size=args.batch_size, device=args.device, seed=args.seed, overwrite=args.overwrite)
    meta = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    print(f"wrote {meta['rows']} rows of {meta['feature_dim']}-d features to {out}")
    print(f"use them with: --dataset.path {out.resolve()}")
    return 0
