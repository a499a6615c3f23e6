"""Run directories: creation, the saved config and split, and reading a finished run back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from mulsupcon.config import DEFAULTS, flatten, save_config
from mulsupcon.train.checkpoint import atomic_write_json


def default_run_dir(kind: str, cfg: Mapping[str, Any], root: str | Path = "runs") -> Path:
    """``runs/<dataset>-<kind>-<timestamp>`` (kind: pretrain, finetune, probe, scratch)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg['dataset']['name']}-{kind}-{stamp}"


def prepare_run_dir(
    run_dir: Path, cfg: Mapping[str, Any], split_info: Mapping[str, Any], *, kind: str, resume: bool, is_main: bool = True
) -> Path:
    """Create ``run_dir`` and write ``config.yaml`` and ``split.json``.

    A folder that already holds a run is only reused with ``resume=True``, and then the config
    must match the saved one (so a resumed run cannot silently change its settings).
    """
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if saved.is_file():
        if not resume:
            raise ValueError(
                f"{run_dir} already holds a run; pass --resume to continue it, or choose another --run-dir"
            )
        detail = config_differences(run_dir, cfg)
        if detail:
            raise ValueError(f"cannot resume {run_dir}: the config differs from the saved one ({detail})")
        return run_dir
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(dict(cfg), saved)
        atomic_write_json(run_dir / "split.json", dict(split_info))
        atomic_write_json(run_dir / "run.json", {"kind": kind, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    return run_dir


def config_differences(run_dir: str | Path, cfg: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """The keys where ``cfg`` differs from the config saved in ``run_dir``, as text ('' if none).

    Keys under the sections named in ``ignore`` (e.g. ``("classify",)`` for a pretraining run) are
    not compared. A key the saved config lacks counts as equal when ``cfg`` holds its default: it was added to
    the project after the run was made, and runs made before keep resuming.
    """
    old = flatten(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {})
    new = flatten(json.loads(json.dumps(dict(cfg), default=str)))
    defaults = flatten(json.loads(json.dumps(DEFAULTS, default=str)))

    def differs(k: str) -> bool:
        if k == "kind" or k.split(".")[0] in ignore or old.get(k) == new.get(k):
            return False
        return not (k not in old and k in defaults and new.get(k) == defaults[k])

    diff = sorted(k for k in set(old) | set(new) if differs(k))
    return ", ".join(f"{k}: saved {old.get(k)!r} vs now {new.get(k)!r}" for k in diff[:6])


def read_run_config(run_dir: str | Path) -> dict:
    """The resolved config saved in a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a mulsupcon run directory (no config.yaml)")
    return yaml.safe_load(path.read_text()) or {}


def run_kind(run_dir: str | Path) -> str:
    """``pretrain``, ``probe``, ``finetune`` or ``scratch``."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a mulsupcon run directory (no run.json)")
    return json.loads(path.read_text())["kind"]
