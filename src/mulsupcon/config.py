"""Run configuration: defaults, the shipped YAML files, and ``--section.key value`` overrides.

A config is a plain nested dict with the sections below. Every key can be overridden from the
command line as ``--section.key value`` (values parsed as YAML, so ``--pretrain.lr 1e-3``,
``--model.hidden [128,128]`` and ``--pretrain.chunk_size null`` all work). Unknown keys are an
error that lists the valid ones, so a typo never silently runs the defaults.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import re
from importlib import resources
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

import yaml

from mulsupcon.io import atomic_write_text
from mulsupcon.metrics import PROTOCOLS, check_probability_threshold

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda | cuda:1 ...
    "cpu": {  # where a CPU run computes (not compared on --resume: it changes rounding, not the method)
        "num_threads": "auto",  # intra-op threads: auto (1 for models under 4M parameters) | N
        "flush_denormals": True,  # subnormal floats (< 1.2e-38) become zero: x86 computes on them slowly
    },
    "dataset": {
        "name": "yeast",  # a registered dataset (mulsupcon datasets list); with `path`: a label for the data
        "path": None,  # your own file or folder (CSV/TSV, NPZ, ARFF, HDF5, image folder, COCO or VOC layout)
        "test_path": None,  # its official test part (same format); without it a test part is carved
        "label_columns": None,  # CSV/TSV (and ARFF without xml): label column names "a,b,c", or N = the last N
        "ignore_columns": None,  # CSV/TSV (or an image label CSV): columns that are neither features nor labels ("id,note")
        "categorical_columns": None,  # CSV/TSV: text feature columns ("color,city"), one-hot encoded as COLUMN=VALUE
        "label_sep": None,  # CSV/TSV (or an image label CSV): labels listed by name in one column, separated by this (";", space)
        "xml": None,  # Mulan ARFF: the label XML file
        "labels": None,  # image folder: the label CSV (file name, then one 0/1 column per label, or a list column) or JSON;
        # a CSV/TSV of features: the CSV/TSV of their labels, row for row
        "test_labels": None,  # the label file of the test_path folder or file (same format as `labels`)
        "test_fraction": 0.2,  # carved as test (iterative stratification) when `path` has no test part
        "val_fraction": 0.2,  # carved from the official training split, seeded by split_seed
        "split_seed": 0,
        "standardize": True,  # vector data: fit on the training split only
        # vector data: a missing feature value (CSV empty/?/NA/nan, ARFF ?, NaN) is an error, or is filled
        # with the training rows' column mean | median | most_frequent
        "missing": "error",
        "as_vectors": False,  # image datasets (multidigits): flatten to vectors for the MLP
        "image_size": None,  # image datasets: size of the stored (cached) images; None = dataset's own
        "cache_dir": None,  # image datasets read from files: where the preprocessed cache goes
        "skip_corrupt": False,  # images: leave out missing or undecodable images (one warning gives the count)
    },
    "model": {
        "backbone": "mlp",  # mlp | any torchvision model name (resnet50, resnet18, ...)
        "hidden": [256, 512, 256],
        "dropout": 0.2,
        "small_input": False,  # ResNet 3x3 stem without max-pool, for tiny images
        "head_hidden": 256,
        "embed_dim": 256,
        "head_dropout": 0.1,
    },
    "pretrain": {
        "epochs": 150,
        "steps_per_epoch": None,  # None = one pass over the training split per epoch
        "min_steps": None,  # optimiser steps at least (more epochs on small sets); None = epochs as given
        "max_steps": None,  # optimiser steps at most (fewer epochs on large sets); None = epochs as given
        "batch_size": 32,
        "optimizer": "adam",  # adam | sgd
        "lr": 4.0e-4,
        "weight_decay": 0.0,
        "sgd_momentum": 0.9,
        "scheduler": "cosine",  # cosine | cosine_restarts | constant
        "eta_min": 0.0,
        "restart_epochs": 50,  # cosine_restarts: T_0 in epochs
        "restart_mult": 2,  # cosine_restarts: T_mult
        "temperature": 0.1,
        "positives": "mulsupcon",  # mulsupcon | all | any
        "weighting": "label",  # label (Eq. 5) | sample (Eq. 6)
        "momentum": 0.999,
        "queue_size": 256,
        "use_partial_queue": True,
        "key_train_mode": True,
        "mask_prob": 0.5,  # vector views: fraction of input elements zeroed
        "instance_weight": 0.0,  # vectors: weight of MoCo's instance term (positives: own key, identical rows) added to MulSupCon
        "chunk_size": None,  # loss computed over reference chunks of this size (bounded memory)
        "checkpoint_every": "auto",  # epochs between checkpoints: auto (as many as hold 500 optimiser steps) | N
        "amp": False,  # CUDA only: mixed precision for the encoders (loss stays float32): false | true (bf16
        # where the GPU has it, else fp16 with a GradScaler) | bf16 | fp16
        "channels_last": False,  # CUDA only
        "num_workers": "auto",  # images: DataLoader workers computing the views: auto (on CUDA, the cores less one, at most 8; else 0) | N
    },
    "classify": {
        "mode": "finetune",  # probe | finetune | scratch
        "loss": "bce",  # bce | asl
        "epochs": 30,
        "steps_per_epoch": None,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 4.0e-4,  # linear layer (and the whole model in scratch mode)
        "lr_backbone": 4.0e-5,  # finetune mode
        "weight_decay": 0.0,
        "scheduler": "plateau",  # plateau (ReduceLROnPlateau on the select_by criterion) | constant
        "plateau_factor": 0.1,
        "plateau_patience": 2,
        "plateau_cooldown": 1,
        "plateau_threshold": 1.0e-3,
        "early_stop_patience": 20,
        "select_by": "val_loss",  # val_loss | val_mAP (ties broken by the loss): the checkpoint evaluated on test
        "augment": "none",  # none | mask (vectors) | flip_crop | pretrain (images)
        "head_init": "random",  # random | fit (probe/finetune: start from a logistic regression on the frozen features)
        "head_fit_c": [0.01, 0.1, 1.0],  # head_init=fit: inverse L2 strengths (scikit-learn's C); validation mAP picks
        "num_workers": "auto",  # images: DataLoader workers computing the training views (as pretrain.num_workers)
        "checkpoint_every": "auto",  # epochs between checkpoints (last.pt, best.pt): auto | N, as pretrain's
        "amp": False,  # CUDA only: mixed precision for the model (the loss stays float32), as pretrain.amp
        "channels_last": False,  # CUDA only, images
        "asl_gamma_neg": 4.0,
        "asl_gamma_pos": 0.0,
        "asl_clip": 0.05,
    },
    "eval": {
        "protocols": ["paper", "validation", "fixed"],
        "threshold": 0.5,
    },
    "log": {
        "tensorboard": False,  # also write per-epoch scalars to <run>/tensorboard (needs mulsupcon[tensorboard])
    },
}


class _Loader(yaml.SafeLoader):
    """YAML as configs are written: ``1e-3`` and ``5e4`` are numbers (YAML 1.1, PyYAML's default, reads a
    number without a dot or without the exponent's sign as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(text: str | IO[str]) -> Any:
    """A YAML document, read as config files and ``--section.key value`` flags are (``1e-3`` a float)."""
    return yaml.load(text, Loader=_Loader)


def _config_dir() -> Path:
    return Path(str(resources.files("mulsupcon") / "configs"))


def available_configs() -> list[str]:
    """Names of the YAML configs shipped with the package (``mulsupcon/configs/*.yaml``)."""
    return sorted(p.stem for p in _config_dir().glob("*.yaml"))


def config_summary(name: str, width: int = 100) -> str:
    """The first clause of a shipped config's ``description`` (for ``mulsupcon config list``)."""
    text = " ".join(str(load_yaml((_config_dir() / f"{name}.yaml").read_text()).get("description") or "").split())
    depth = 0
    for i, ch in enumerate(text):  # the first ": " or ". " outside parentheses ends the clause
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in ":." and text[i + 1:i + 2] == " ":
            text = text[:i]
            break
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def shipped_config_for(dataset: str) -> str | None:
    """The shipped config meant for the registered ``dataset``: the one named after it, else the one
    whose ``dataset.name`` it is (``yeast-official``: ``yeast-authors``; the demo is not a dataset's
    setting); None when no shipped config is."""
    if dataset in available_configs():
        return dataset
    for name in available_configs():
        if name != "demo":
            data = yaml.safe_load((_config_dir() / f"{name}.yaml").read_text()) or {}
            if (data.get("dataset") or {}).get("name") == dataset:
                return name
    return None


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any], *, where: str = "config") -> dict[str, Any]:
    """``base`` updated by ``update``; keys of ``update`` must exist in ``base`` (typo protection)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if key not in out:
            raise ValueError(_unknown_key_message(f"{where}: unknown key '{key}'", key, out.keys()))
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: '{key}' must be a section (mapping), got {value!r}")
            out[key] = deep_merge(out[key], value, where=f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _unknown_key_message(msg: str, key: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{msg}.{hint} Valid keys: {', '.join(valid)}"


def config_path(source: str | Path, *, named_by: Path | None = None) -> Path:
    """The YAML file ``source`` names: a path (relative to the folder of the config file ``named_by`` that
    names it as its base, else to the working directory), a run folder (its saved ``config.yaml``: the config
    the run was made with) or the name of a shipped config (``"vectors"``)."""
    path = Path(source).expanduser()
    if named_by is not None and not path.is_absolute():
        path = named_by.parent / path
    if path.is_dir() and (path / "config.yaml").is_file() and (path / "run.json").is_file():
        path = path / "config.yaml"
    if path.is_file():
        return path
    named = _config_dir() / f"{source}.yaml"
    if named.is_file():
        return named
    what = f"{named_by}: base '{source}' is neither a file beside it" if named_by else f"config '{source}' is neither a file"
    raise ValueError(f"{what} nor a shipped config; shipped: {', '.join(available_configs())}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's own mapping (its ``description`` dropped), not merged with anything."""
    with open(path, encoding="utf-8") as fh:
        try:
            data = load_yaml(fh) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a config file must hold a mapping at the top level")
    data = dict(data)
    data.pop("description", None)
    return data


def _layered(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The library defaults, updated by the config the file's ``base`` names (recursively), then by the file."""
    if path.resolve() in chain:
        loop = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ValueError(f"config files name each other as base in a loop: {loop}")
    data = read_config_file(path)
    parent = data.pop("base", None)
    if parent is None:
        return deep_merge(DEFAULTS, data, where=str(path))
    if not isinstance(parent, str):
        raise ValueError(f"{path}: base must name a shipped config or a YAML file, got {parent!r}")
    cfg = _layered(config_path(parent, named_by=path), (*chain, path.resolve()))
    return deep_merge(cfg, _epochs_as_given(data), where=str(path))


def _bounds_cleared(given: Sequence[str]) -> dict[str, None]:
    """The step bounds that dotted keys ``given`` clear: ``pretrain.min_steps``/``max_steps`` (those not given
    themselves) when ``pretrain.epochs`` is given, as ``{key: None}``. An explicit number of epochs is run as
    given: the bounds adapt a config's OWN epochs to the data's size; they do not overrule a later file or flag.
    The one rule for files layered on a base and for overrides."""
    if "pretrain.epochs" not in given:
        return {}
    return {bound: None for bound in ("pretrain.min_steps", "pretrain.max_steps") if bound not in given}


def _epochs_as_given(update: Mapping[str, Any]) -> dict[str, Any]:
    """A file's ``update`` (nested sections) with the step bounds it clears (:func:`_bounds_cleared`)."""
    pre = update.get("pretrain")
    if not isinstance(pre, Mapping):
        return dict(update)
    cleared = _bounds_cleared([f"pretrain.{k}" for k in pre])
    return {**update, "pretrain": {**{k.split(".")[1]: v for k, v in cleared.items()}, **pre}}


def own_config_flags(source: str | Path) -> dict[str, Any] | None:
    """A config file of the user's as dotted flags (``{"pretrain.batch_size": 128}``), for the command line
    to apply to the config it would use without ``--config`` (so a file holding one change is that change,
    not the library defaults with it); None for a shipped config or a file that names its own ``base``,
    which are whole configs."""
    path = config_path(source)
    if path.resolve().parent == _config_dir().resolve():
        return None
    data = read_config_file(path)
    if "base" in data:
        return None
    deep_merge(DEFAULTS, data, where=str(path))  # unknown keys and misplaced sections, named with the file
    flags: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(DEFAULTS[key], dict):  # a section: one flag per key in it
            flags.update({f"{key}.{k}": v for k, v in value.items()})
        else:  # seed, device
            flags[key] = value
    return flags


def load_config(source: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, updated by a YAML file (a path or a shipped config name), then by overrides.

    A file may start from another config with a top-level ``base:`` key (a shipped config's name, or a path
    relative to the file): ``base: vectors`` then ``pretrain: {batch_size: 128}`` is the vector defaults with
    that one change. Without ``base`` a file starts from the library defaults here; the command line applies a
    file of the user's to the config it would use without ``--config`` (:func:`own_config_flags`).

    Args:
        source: a path to a YAML file, the name of a shipped config (``"yeast"``), or ``None``.
        overrides: ``{"pretrain.lr": 1e-3, ...}`` dotted keys (already parsed values). Overriding
            ``pretrain.epochs`` also clears ``pretrain.min_steps``/``max_steps`` unless they are overridden
            too: an explicit number of epochs is run as given.
    """
    cfg = copy.deepcopy(DEFAULTS) if source is None else _layered(config_path(source))
    overrides = dict(overrides or {})
    overrides = {**_bounds_cleared(list(overrides)), **overrides}  # explicit epochs are run as given
    for dotted, value in overrides.items():
        set_dotted(cfg, dotted, value)
    resolve_paths(cfg)
    validate_config(cfg)
    return cfg


_PATH_KEYS = ("path", "test_path", "xml", "labels", "test_labels")


def resolve_paths(cfg: dict[str, Any]) -> None:
    """Make the dataset's file paths absolute (relative ones are against the working directory), so that
    the saved config finds them from anywhere; a dataset read from ``path`` is named after it when the
    config still holds the default name. A name ``hdf5:FOLDER`` (embedded features) holds a path too."""
    from mulsupcon.data.image_datasets import HDF5_PREFIX

    ds = cfg["dataset"]
    for key in _PATH_KEYS:
        if ds.get(key) not in (None, ""):
            ds[key] = str(Path(str(ds[key])).expanduser().resolve())
    if str(ds.get("name", "")).startswith(HDF5_PREFIX):
        ds["name"] = HDF5_PREFIX + str(Path(str(ds["name"])[len(HDF5_PREFIX):]).expanduser().resolve())
    if ds.get("path") and ds["name"] == DEFAULTS["dataset"]["name"]:
        ds["name"] = Path(ds["path"]).name.split(".")[0]


def with_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with every key it lacks taken from :data:`DEFAULTS` (a config saved before the key existed)."""
    out = copy.deepcopy(dict(cfg))
    for key, value in DEFAULTS.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = {**copy.deepcopy(value), **out[key]}
    return out


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``cfg["a"]["b"] = value`` for ``dotted == "a.b"``; the key must already exist."""
    parts = dotted.split(".")
    node: Any = cfg
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            valid = node.keys() if isinstance(node, dict) else []
            raise ValueError(_unknown_key_message(f"unknown config key '{dotted}'", part, valid))
        if i == len(parts) - 1:
            if isinstance(node[part], dict):
                raise ValueError(f"'{dotted}' is a section; set one of its keys: {', '.join(node[part])}")
            node[part] = value
        else:
            node = node[part]


def number_argument(kind: type, low: float, *, above: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` for the command line's counts and durations: ``kind(text)``, finite and at least
    ``low`` (above ``low`` with ``above``); anything else is an error naming the flag."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not (value > low if above else value >= low) or value == float("inf"):
            finite = "" if kind is int else "finite and "
            raise argparse.ArgumentTypeError(f"must be {finite}{'>' if above else '>='} {low:g}, got {text}")
        return value
    return parse


def parse_value(text: str) -> Any:
    """Parse a command-line value as YAML (``1e-3`` -> float, ``null`` -> None, ``[1,2]`` -> list)."""
    return load_yaml(text)


_CHOICES = {
    ("pretrain", "positives"): ("mulsupcon", "all", "any"),
    ("pretrain", "weighting"): ("label", "sample"),
    ("pretrain", "optimizer"): ("adam", "sgd"),
    ("pretrain", "scheduler"): ("cosine", "cosine_restarts", "constant"),
    ("classify", "mode"): ("probe", "finetune", "scratch"),
    ("classify", "loss"): ("bce", "asl"),
    ("classify", "optimizer"): ("adam", "sgd"),
    ("classify", "select_by"): ("val_loss", "val_mAP"),
    ("classify", "scheduler"): ("plateau", "constant"),
    ("classify", "augment"): ("none", "mask", "flip_crop", "pretrain"),
    ("classify", "head_init"): ("random", "fit"),
    ("pretrain", "amp"): (False, True, "bf16", "fp16"),
    ("classify", "amp"): (False, True, "bf16", "fp16"),
}
_NOT_ONLY_BOOL = {"pretrain.amp", "classify.amp"}  # true/false or a name: checked by _CHOICES


def _check_types(cfg: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> None:
    """Each value of the type its default has (a number where the default is a number, ...)."""
    for key, default in defaults.items():
        if key not in cfg:
            continue
        name, value = f"{prefix}{key}", cfg[key]
        if isinstance(default, dict):
            if isinstance(value, Mapping):
                _check_types(value, default, f"{name}.")
        elif name in _NOT_ONLY_BOOL:
            continue
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        elif isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        elif isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{name} must be a number, got {value!r}")
        elif isinstance(default, list) and not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list (e.g. [256,512,256]), got {value!r}")


def check_seed(seed: Any, name: str = "seed") -> None:
    """Raise ValueError unless ``seed`` is an integer in [0, 2**32 - 1]: torch takes a negative seed, but
    numpy's legacy generators and scikit-learn's ``random_state`` (the benchmark's baselines) do not."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be an integer in [0, 2**32 - 1] (numpy's and scikit-learn's range), got {seed!r}")


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check types, enumerations and ranges; raise ``ValueError`` naming the key and what it takes."""
    _check_types(cfg, DEFAULTS)
    for (section, key), allowed in _CHOICES.items():
        value = cfg[section][key]
        if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):  # 1 is not True
            shown = ", ".join(str(a).lower() if isinstance(a, bool) else a for a in allowed)
            raise ValueError(f"{section}.{key} must be one of {shown}; got {value!r}")
    check_seed(cfg["seed"])
    for section in ("pretrain", "classify"):
        for key in ("epochs", "batch_size"):
            v = cfg[section][key]
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{section}.{key} must be a positive integer, got {v!r}")
        spe = cfg[section]["steps_per_epoch"]
        if spe is not None and (not isinstance(spe, int) or spe <= 0):
            raise ValueError(f"{section}.steps_per_epoch must be a positive integer or null, got {spe!r}")
        every = cfg[section]["checkpoint_every"]
        if every != "auto" and (isinstance(every, bool) or not isinstance(every, int) or every <= 0):
            raise ValueError(f"{section}.checkpoint_every must be auto or a positive integer (epochs), got {every!r}")
    lo, hi = cfg["pretrain"]["min_steps"], cfg["pretrain"]["max_steps"]
    for key, v in (("min_steps", lo), ("max_steps", hi)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError(f"pretrain.{key} must be a positive integer or null, got {v!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"pretrain.min_steps ({lo}) is larger than pretrain.max_steps ({hi})")
    # A rate of 0 is allowed: with classify.head_init fit it keeps the fitted layer as it is.
    for name in ("pretrain.lr", "classify.lr", "classify.lr_backbone", "pretrain.weight_decay",
                 "classify.weight_decay", "pretrain.queue_size"):
        section, key = name.split(".")
        if not float(cfg[section][key]) >= 0:
            raise ValueError(f"{name} must be >= 0, got {cfg[section][key]!r}")
    if not 0.0 <= float(cfg["pretrain"]["momentum"]) <= 1.0:
        raise ValueError(f"pretrain.momentum must be in [0, 1], got {cfg['pretrain']['momentum']!r}")
    for key in ("dropout", "head_dropout"):
        if not 0.0 <= float(cfg["model"][key]) < 1.0:
            raise ValueError(f"model.{key} must be in [0, 1) (the fraction of units zeroed), got {cfg['model'][key]!r}")
    sizes = [*cfg["model"]["hidden"], cfg["model"]["head_hidden"], cfg["model"]["embed_dim"]]
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in sizes):
        raise ValueError(f"model.hidden, model.head_hidden and model.embed_dim take positive integers, got "
                         f"{cfg['model']['hidden']!r}, {cfg['model']['head_hidden']!r} and {cfg['model']['embed_dim']!r}")
    if not float(cfg["pretrain"]["temperature"]) > 0:
        raise ValueError(f"pretrain.temperature must be > 0, got {cfg['pretrain']['temperature']!r}")
    grid = cfg["classify"]["head_fit_c"]
    if not grid or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in grid):
        raise ValueError(f"classify.head_fit_c must be a non-empty list of numbers > 0 (e.g. [0.01,0.1,1]), got {grid!r}")
    if not float(cfg["pretrain"]["instance_weight"]) >= 0.0:
        raise ValueError(f"pretrain.instance_weight must be >= 0 (0: MulSupCon alone), got {cfg['pretrain']['instance_weight']!r}")
    if not 0.0 <= float(cfg["pretrain"]["mask_prob"]) < 1.0:
        raise ValueError(f"pretrain.mask_prob must be in [0, 1), got {cfg['pretrain']['mask_prob']!r}")
    check_probability_threshold(cfg["eval"]["threshold"], "eval.threshold")
    protocols = cfg["eval"]["protocols"]
    if not protocols or any(p not in PROTOCOLS for p in protocols):  # checked before training, not after it
        raise ValueError(f"eval.protocols must be a non-empty list of {', '.join(PROTOCOLS)}, got {protocols!r}")
    patience = cfg["classify"]["early_stop_patience"]
    if isinstance(patience, bool) or not isinstance(patience, int) or patience <= 0:
        raise ValueError(f"classify.early_stop_patience must be a positive integer (epochs without a better "
                         f"validation score before stopping), got {patience!r}")
    vf = float(cfg["dataset"]["val_fraction"])
    if not 0.0 <= vf < 1.0:
        raise ValueError(f"dataset.val_fraction must be in [0, 1), got {vf!r}")
    tf = float(cfg["dataset"]["test_fraction"])
    if not 0.0 < tf < 1.0:
        raise ValueError(f"dataset.test_fraction must be in (0, 1), got {tf!r}")
    for key in ("test_path", "xml", "labels", "test_labels", "label_columns", "ignore_columns", "label_sep",
                "categorical_columns"):
        if cfg["dataset"][key] not in (None, "") and not cfg["dataset"]["path"]:
            raise ValueError(f"dataset.{key} goes with dataset.path (your own files); set --dataset.path too")
    for section in ("pretrain", "classify"):
        w = cfg[section]["num_workers"]
        if w != "auto" and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise ValueError(f"{section}.num_workers must be 'auto' or an integer >= 0, got {w!r}")
    nt = cfg["cpu"]["num_threads"]
    if nt != "auto" and (isinstance(nt, bool) or not isinstance(nt, int) or nt < 1):
        raise ValueError(f"cpu.num_threads must be 'auto' or a positive integer, got {nt!r}")
    if not isinstance(cfg["cpu"]["flush_denormals"], bool):
        raise ValueError(f"cpu.flush_denormals must be true or false, got {cfg['cpu']['flush_denormals']!r}")


def save_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (used to build the command-line flags)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
