"""The run folder, shared by pretraining and classification: creation, lock, files, checkpoints, log.

A run folder holds::

    config.yaml          the resolved config (what ran, every default filled in)
    split.json           the exact rows of each split
    run.json             the kind of run, when it was created, the command and the software versions
    checkpoints/last.pt  everything needed to resume (written atomically); classification adds best.pt
    history.json, history.csv   one row per epoch
    log.txt              the human-readable log
    .lock                held (with ``filelock``) for the run's whole life; ``.lock.owner`` names the pid

Only the main process of a multi-process run writes (the others get a RunDir whose writes do nothing).
A start that fails before training removes what it created, so the corrected command works in the same
folder. :meth:`RunDir.in_memory` gives a run without a folder (what the scikit-learn estimator uses):
checkpoints and saved files are kept as objects in :attr:`RunDir.files`, nothing touches the disk.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

import yaml
from filelock import FileLock, Timeout

from mulsupcon.config import DEFAULTS, flatten, save_config
from mulsupcon.data.user_files import check_files_unchanged
from mulsupcon.io import atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text, check_folder_path
# train.checkpoint and train.runtime import torch: they are imported where a run trains or loads a checkpoint,
# so that listing and checking runs (`mulsupcon runs`, `evaluate RUN`) answer without torch's two seconds.

if TYPE_CHECKING:
    from mulsupcon.train.distributed import DistContext

_CREATED_FILES = ("config.yaml", "split.json", "run.json", "log.txt", ".lock.owner")
# Every name a run writes in its folder: a new run refuses a folder that already holds one of them (a user's
# own log.txt or model.pt would be overwritten, and removed again if the run failed before training).
RUN_FILES = (*_CREATED_FILES[:-1], "history.json", "history.csv", "metrics.json", "metrics.md", "scores.npz",
             "model.pt", "backbone.pt", "checkpoints", "tensorboard")


class RunDir:
    """One run folder (see the module docstring). Use as a context manager: the lock is released
    when the block ends, and a block that fails before :meth:`start_training` removes what it created."""

    def __init__(self, path: str | Path | None, *, is_main: bool = True, quiet: bool = False, echo: bool = True):
        self.path = None if path is None else Path(path)
        self.files: dict[str, Any] = {}  # in memory (path None): what would have been written, by file name
        self.history: list[dict] = []
        self.loggers: list[Callable[[dict], None]] = []  # called with each epoch's record (main process only)
        self.is_main = is_main
        self.quiet = quiet or not echo
        self.echo = echo
        self._lock: Optional[FileLock] = None
        self._created_folder = False
        self._created_lock = False
        self._new_run = False
        self._training = False
        self._bar = None
        # On --resume: the keys it may change that were given new values (as text), else '': EXTENDABLE for a
        # classification run, the classify section for a pretraining run.
        self.extended = ""

    # -- life cycle -----------------------------------------------------------------------------------------
    @classmethod
    def in_memory(cls, echo: bool = False) -> "RunDir":
        """A run without a folder: saved objects stay in :attr:`files`, log lines are only shown (``echo``)."""
        return cls(None, quiet=True, echo=echo)

    @property
    def writes_files(self) -> bool:
        """Whether this process writes the run's files: the main process of a run with a folder."""
        return self.is_main and self.path is not None

    @classmethod
    def open(cls, path: str | Path, cfg: Mapping[str, Any], split_info: Mapping[str, Any], *, kind: str,
             resume: bool, is_main: bool = True, quiet: bool = False, echo: bool = True) -> "RunDir":
        """Lock ``path`` and write ``config.yaml``, ``split.json`` and ``run.json`` (a new run), or check that
        the saved config matches ``cfg`` (``resume``). A folder holding another run is refused unless resumed."""
        from mulsupcon.train.runtime import software_versions

        run = cls(path, is_main=is_main, quiet=quiet, echo=echo)
        if not is_main:
            return run
        run._created_folder = not run.path.exists()
        check_folder_path(run.path, "--run-dir")
        run.path.mkdir(parents=True, exist_ok=True)
        run._created_lock = not (run.path / ".lock").exists()
        run._acquire_lock()
        for litter in (*run.path.glob(".*.tmp"), *run.path.glob("checkpoints/.*.tmp")):
            litter.unlink(missing_ok=True)  # a write killed half-way (atomic writes leave only these behind)
        try:
            saved = run.path / "config.yaml"
            if saved.is_file():
                if not resume:
                    raise ValueError(f"{run.path} already holds a run; pass --resume to continue it, or choose another --run-dir")
                # A run may be continued for longer where its schedule does not depend on its length: a
                # classification run (plateau or constant), a pretraining run without the one-cosine schedule. A
                # pretraining run does not use the classify section, kept only as `train --from`'s starting point.
                if kind == "pretrain":
                    longer = () if cfg["pretrain"]["scheduler"] == "cosine" else PRETRAIN_EXTENDABLE
                    ignore = ("classify", *longer)
                else:
                    longer = ignore = EXTENDABLE
                detail = config_differences(run.path, cfg, ignore=ignore)
                if detail:
                    hint = ""
                    if kind == "pretrain" and any(f"{k}:" in detail for k in PRETRAIN_EXTENDABLE):
                        hint = ("; pretrain.scheduler cosine spans the run's whole length, so a longer run has other "
                                "learning rates from its first step: start a new run (with cosine_restarts or constant, "
                                "a pretraining run may grow on --resume)")
                    raise ValueError(f"cannot resume {run.path}: the config differs from the saved one ({detail}){hint}")
                run.extended = config_differences(run.path, cfg)
                if run.extended:
                    before = yaml.safe_load(saved.read_text()) or {}
                    for key in longer:
                        section, name = key.split(".")
                        was, now = before.get(section, {}).get(name), cfg[section][name]
                        if isinstance(was, int) and now < was:  # a shorter run would have stopped earlier
                            raise ValueError(f"cannot resume {run.path}: {key} may grow on --resume, not shrink "
                                             f"(saved {was}, now {now})")
                    save_config(dict(cfg), saved)
                made_with = (read_json_file(run.path / "run.json") or {}).get("software")
                now = software_versions()
                changed = {k: (v, now.get(k)) for k, v in (made_with or {}).items() if v != now.get(k)}
                if changed:  # another torch may round differently: the run goes on, but not bit for bit
                    run.warn("resumed with other software than the run was made with ("
                             + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
                             + "): its result may differ slightly from an uninterrupted run's")
                saved_split = json.loads((run.path / "split.json").read_text()) if (run.path / "split.json").is_file() else {}
                if saved_split.get("files"):
                    check_files_unchanged(saved_split["files"], dict(split_info.get("files") or {}), f"cannot resume {run.path}")
            else:
                taken = [name for name in RUN_FILES if (run.path / name).exists()]
                if taken:
                    raise ValueError(f"--run-dir {run.path} holds {', '.join(taken)} but no run (no config.yaml): a new "
                                     "run would overwrite them; choose a new or empty folder")
                run._new_run = True
                save_config(dict(cfg), saved)
                atomic_write_json(run.path / "split.json", dict(split_info))
                atomic_write_json(run.path / "run.json", {
                    "kind": kind, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command_line(),
                    "software": software_versions(), "platform": platform.platform()})
        except BaseException:
            run.close(failed=True)
            raise
        return run

    def _acquire_lock(self) -> None:
        lock = FileLock(str(self.path / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            owner = (self.path / ".lock.owner").read_text().strip() if (self.path / ".lock.owner").is_file() else "unknown"
            raise RuntimeError(f"{self.path} is in use by another mulsupcon process (pid {owner}); "
                               f"wait for it to finish or choose another --run-dir") from None
        self._lock = lock
        (self.path / ".lock.owner").write_text(f"{os.getpid()}\n")

    def start_training(self) -> None:
        """From here on a failure keeps the folder (its checkpoints are resumable)."""
        self._training = True

    def close(self, failed: bool = False) -> None:
        """Release the lock; after a failure before training, remove what this run created."""
        self.close_bar()
        if failed and self._new_run and not self._training and self.is_main:
            for name in _CREATED_FILES:
                (self.path / name).unlink(missing_ok=True)
        if self._lock is not None:
            (self.path / ".lock.owner").unlink(missing_ok=True)
            self._lock.release()
            self._lock = None
        if failed and not self._training and self.is_main and (self._created_folder or self._created_lock):
            (self.path / ".lock").unlink(missing_ok=True)  # leave a folder that was refused as it was
        if failed and self._created_folder and not self._training and self.is_main:
            try:
                self.path.rmdir()  # only when empty
            except OSError:
                pass

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    # -- files ----------------------------------------------------------------------------------------------
    def checkpoint(self, name: str) -> Path:
        """Path of ``checkpoints/<name>.pt``."""
        return Path(self.path or ".") / "checkpoints" / f"{name}.pt"

    def has_checkpoint(self, name: str) -> bool:
        """Whether ``checkpoints/<name>.pt`` exists (in the folder, or in memory for a run without one)."""
        return f"checkpoints/{name}.pt" in self.files if self.path is None else self.checkpoint(name).is_file()

    def save_checkpoint(self, name: str, state: Mapping[str, Any]) -> None:
        """Write ``checkpoints/<name>.pt`` atomically (main process only)."""
        self.save(f"checkpoints/{name}.pt", dict(state))

    def load_checkpoint(self, name: str, map_location: Any = "cpu") -> dict:
        """``checkpoints/<name>.pt`` read back (a copy of the in-memory one for a run without a folder)."""
        from mulsupcon.train.checkpoint import load_checkpoint

        if self.path is None:
            return copy.deepcopy(self.files[f"checkpoints/{name}.pt"])
        return load_checkpoint(self.checkpoint(name), map_location=map_location)

    def save(self, name: str, obj: Any) -> None:
        """``torch.save`` a file of the run folder atomically (main process only; in memory: a deep copy,
        since state dicts hold the live tensors)."""
        if self.path is None:
            self.files[name] = copy.deepcopy(obj)
        elif self.is_main:
            atomic_torch_save(self.path / name, obj)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a file of the run folder atomically (main process only; in memory without a folder)."""
        if self.path is None:
            self.files[name] = data  # in memory: kept, like everything else the run would have written
        elif self.is_main:
            atomic_write_bytes(self.path / name, data)

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as JSON to a file of the run folder atomically (main process only; nothing in memory)."""
        if self.writes_files:
            atomic_write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> None:
        """Write a text file of the run folder atomically (main process only; nothing in memory)."""
        if self.writes_files:
            atomic_write_text(self.path / name, text)

    def write_history(self, history: list[dict]) -> None:
        """Per-epoch history as ``history.json`` and ``history.csv`` (columns: every key seen)."""
        self.history = [dict(row) for row in history]
        if not self.writes_files:
            return
        atomic_write_json(self.path / "history.json", history)
        columns = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.path / "history.csv", buf.getvalue())

    def warn(self, text: str) -> None:
        """A warning: shown, in ``log.txt``, and kept in ``run.json`` under ``warnings``."""
        self.log(f"warning: {text}")
        if self.writes_files and (self.path / "run.json").is_file():
            info = json.loads((self.path / "run.json").read_text())
            info.setdefault("warnings", []).append(text)
            atomic_write_json(self.path / "run.json", info)
        elif self.path is None:  # an in-memory run (the estimator) may print nothing: a Python warning too
            self.files.setdefault("warnings", []).append(text)
            warnings.warn(text, RuntimeWarning, stacklevel=3)

    def epoch_done(self, record: Mapping[str, Any]) -> None:
        """Hand one epoch's record (``epoch``, losses, ``lr``, validation metrics) to every logger."""
        if self.is_main:
            for logger in self.loggers:
                logger(dict(record))

    def add_tensorboard(self, kind: str) -> None:
        """Also write each epoch's numbers as TensorBoard scalars under ``<run>/tensorboard`` (``log.tensorboard``)."""
        if self.is_main and self.path is not None:
            self.loggers.append(TensorBoardLogger(self.path / "tensorboard", kind))

    # -- log and progress -----------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        """Append a time-stamped line to ``log.txt`` and show it (above the progress bar, if any)."""
        if not self.is_main:
            return
        if self.path is not None:
            with open(self.path / "log.txt", "a", encoding="utf-8") as fh:
                fh.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n")
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif self.echo:
            print(text, file=sys.stderr, flush=True)

    def bar(self, total: int, desc: str, initial: int = 0) -> Any:
        """A progress bar over ``total`` steps (a no-op object when quiet or not the main process)."""
        if self.quiet or not self.is_main:
            return _NullBar()
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True)
        return self._bar

    def close_bar(self) -> None:
        """Close the progress bar, so that log lines print plainly again."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def open_run_dir(ctx: "DistContext", path: "str | Path | RunDir", cfg: Mapping[str, Any], split_info: Mapping[str, Any],
                 kind: str, resume: bool, quiet: bool, echo: bool) -> Iterator[RunDir]:
    """The run folder, prepared and locked by the main process while the others wait (they could
    otherwise see the config.yaml it has just written and refuse "an existing run"). A RunDir given as
    ``path`` (e.g. :meth:`RunDir.in_memory`) is used as it is."""
    if isinstance(path, RunDir):
        yield path
        return
    run = RunDir.open(path, cfg, split_info, kind=kind, resume=resume, quiet=quiet, echo=echo) if ctx.is_main else None
    ctx.barrier()
    run = run or RunDir(path, is_main=False)
    with run:
        yield run


class TensorBoardLogger:
    """A logger (``logger(record)``) writing every number of an epoch's record as a TensorBoard scalar
    ``<kind>/<key>`` at step ``record["epoch"]``. Needs the ``tensorboard`` package (``mulsupcon[tensorboard]``)."""

    def __init__(self, folder: Path, kind: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RuntimeError("log.tensorboard needs the tensorboard package: pip install 'mulsupcon[tensorboard]'") from None
        self.writer, self.kind = SummaryWriter(str(folder)), kind

    def __call__(self, record: dict) -> None:
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{self.kind}/{key}", value, int(record["epoch"]))
        self.writer.flush()


class _NullBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, *args, **kwargs) -> None: ...

    def close(self) -> None: ...


def format_seconds(s: float) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m40s``."""
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ----------------------------------------------------------------------------- reading runs back
def default_run_dir(kind: str, cfg: Mapping[str, Any], root: str | Path = "runs") -> Path:
    """``runs/<dataset>-<kind>-<timestamp>`` (kind: pretrain, finetune, probe, scratch)."""
    return Path(root) / f"{cfg['dataset']['name']}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


# What `--resume` of a classification run may change: it then goes on for longer, or stops later.
EXTENDABLE = ("classify.epochs", "classify.early_stop_patience")
# ... and of a pretraining run whose learning rates do not depend on its length (not pretrain.scheduler cosine).
PRETRAIN_EXTENDABLE = ("pretrain.epochs",)


def config_differences(run_dir: str | Path, cfg: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """The keys where ``cfg`` differs from the config saved in ``run_dir``, as text ('' if none).

    Not compared: sections or dotted keys named in ``ignore`` (e.g. ``("classify",)`` for a pretraining run),
    the ``cpu`` section (where the run computes, not what), the ``log`` section (where it reports), ``checkpoint_every``
    (how often it is saved), and
    keys that no longer exist. A key the saved config
    lacks counts as equal when ``cfg`` holds its default (it was added after the run was made).
    """
    old = flatten(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {})
    new = flatten(json.loads(json.dumps(dict(cfg), default=str)))
    defaults = flatten(json.loads(json.dumps(DEFAULTS, default=str)))

    def differs(k: str) -> bool:
        if (k == "kind" or k.split(".")[0] in (*ignore, "cpu", "log") or k in ignore or k.endswith(".checkpoint_every")
                or old.get(k) == new.get(k)):
            return False
        if k not in defaults:
            return False
        return not (k not in old and new.get(k) == defaults[k])

    diff = sorted(k for k in set(old) | set(new) if differs(k))
    return ", ".join(f"{k}: saved {old.get(k)!r} vs now {new.get(k)!r}" for k in diff[:6])


def read_run_config(run_dir: str | Path) -> dict:
    """The resolved config saved in a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not Path(run_dir).exists():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a mulsupcon run directory (no config.yaml)")
    return yaml.safe_load(path.read_text()) or {}


def run_kind(run_dir: str | Path) -> str:
    """``pretrain``, ``probe``, ``finetune`` or ``scratch``."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a mulsupcon run directory (no run.json)")
    return json.loads(path.read_text())["kind"]


def command_line() -> str:
    """This process's command as typed (``mulsupcon train ...``, ``python -m mulsupcon ...``; a script's name)."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    words = ["python", "-m", first.parent.name] if first.name == "__main__.py" else [first.name]
    return shlex.join([*words, *sys.argv[1:]])


def read_json_file(path: Path) -> Optional[Any]:
    """A JSON file's content, or None when it is missing or unreadable (being replaced, or not ours)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def lock_holder(run_dir: str | Path) -> Optional[str]:
    """The pid (as text) of the process that holds ``run_dir``'s lock, i.e. is training in it now; None when
    no process does (a finished run, or one killed: the system releases a dead process's lock)."""
    owner = Path(run_dir) / ".lock.owner"
    if not owner.is_file():  # written by the holder, removed on release
        return None
    lock = FileLock(str(Path(run_dir) / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return owner.read_text().strip() or "unknown"
    lock.release()
    return None


def check_classification_run(run_dir: str | Path, name: str, then: str) -> None:
    """Raise FileNotFoundError naming what ``run_dir`` is when it lacks ``name`` (``model.pt``,
    ``scores.npz``: what a finished classification run leaves): a path that does not exist, a
    pretraining run (with the command that trains a classifier on it), an unfinished run (with the
    command that finishes it; ``then``: what to do afterwards), or something else."""
    run_dir = Path(run_dir)
    if (run_dir / name).is_file():
        return
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    if (run_dir / "backbone.pt").is_file():
        raise FileNotFoundError(f"{run_dir} is a pretraining run (backbone.pt, no classifier); train one on it first: "
                                f"mulsupcon train --mode finetune --from {run_dir} --run-dir RUN")
    check_finished(run_dir, (name,), then)
    raise FileNotFoundError(f"no {name} in {run_dir}: expected a finished `mulsupcon train` run")


def check_finished(run_dir: str | Path, names: tuple[str, ...], then: str) -> None:
    """Raise FileNotFoundError when ``run_dir`` holds none of the files ``names`` (what a finished run
    leaves: ``backbone.pt``, ``model.pt``) but has ``checkpoints/last.pt``: a run stopped or still going,
    named as such with the command that finishes it (``then``: what to do afterwards)."""
    run_dir = Path(run_dir)
    if not any((run_dir / n).is_file() for n in names) and (run_dir / "checkpoints" / "last.pt").is_file():
        raise FileNotFoundError(f"the run in {run_dir} has not finished (no {' or '.join(names)} yet, only "
                                f"checkpoints); finish it with the same command plus --resume --run-dir {run_dir}, "
                                f"then {then}")
