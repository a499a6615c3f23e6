"""Classification on top of a backbone: linear probe, finetune, or training from scratch.

* ``probe``: the pretrained backbone is frozen AND kept in eval mode (dropout off, BatchNorm
  statistics fixed); only the linear layer learns.
* ``finetune``: everything learns; the linear layer at ``lr``, the backbone at ``lr_backbone``
  (4e-4 / 4e-5 for vectors, as in the paper).
* ``scratch``: a randomly initialised backbone trained with BCE (or ASL) — the paper's baseline.

Every epoch the validation split is scored; ReduceLROnPlateau (factor 0.1) follows the validation
loss, early stopping stops after ``early_stop_patience`` epochs without improvement, and the
checkpoint that is best on validation (``select_by``) is the one evaluated on test, under every
metric protocol in ``eval.protocols``.

Run directory: ``config.yaml``, ``split.json``, ``checkpoints/{last,best}.pt``, ``history.json``,
``metrics.json``, ``metrics.md``, ``scores.npz`` (test/val probabilities), ``log.txt``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from mulsupcon.losses import AsymmetricLoss
from mulsupcon.models import MultiLabelClassifier, build_backbone
from mulsupcon.train import distributed as dist_utils
from mulsupcon.train.checkpoint import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    rng_state,
    seed_everything,
)
from mulsupcon.train.common import (
    RunLog,
    auto_num_threads,
    cpu_threads,
    enter_flush_denormals,
    format_seconds,
    make_optimizer,
    resolve_device,
    use_fast_dropout,
    write_history,
)
from mulsupcon.train.data import (
    ImageViews,
    PreparedData,
    TensorSource,
    VectorMasking,
    epoch_order,
    epoch_seed,
    prepare_data,
    process_seed,
)
from mulsupcon.train.runs import prepare_run_dir


def backbone_source(from_run: str | Path) -> tuple[Path, dict, dict]:
    """Where a backbone comes from: ``(file, architecture config, file contents)``.

    Accepts a pretraining run (its ``backbone.pt``), a classification run (its ``model.pt``: a
    BCE-from-scratch or finetuned backbone can be a transfer source too), or either file itself.
    """
    src = Path(from_run)
    if src.is_dir():
        candidates = [src / "backbone.pt", src / "model.pt"]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"no backbone in {src}: expected backbone.pt (a finished `mulsupcon pretrain` run) or "
                f"model.pt (a finished `mulsupcon train` run)"
            )
    else:
        path = src
        if not path.is_file():
            raise FileNotFoundError(f"backbone file not found: {path}")
    state = load_checkpoint(path)
    if "backbone" not in state:
        raise ValueError(f"{path}: no 'backbone' entry; not a mulsupcon backbone.pt or model.pt")
    # backbone.pt keeps the architecture under "model"; model.pt under "model_cfg" ("model" there
    # is the classifier's state dict).
    arch = state.get("model_cfg") if "model_cfg" in state else state.get("model", {})
    return path, dict(arch or {}), state


def load_backbone_weights(backbone: nn.Module, from_run: str | Path, input_shape) -> dict:
    """Load a pretrained backbone (see :func:`backbone_source`) into ``backbone``."""
    path, _, state = backbone_source(from_run)
    saved_shape = tuple(state.get("input_shape", ()))
    if saved_shape and tuple(saved_shape) != tuple(input_shape):
        raise ValueError(
            f"{path}: the backbone was trained on inputs of shape {saved_shape}, but this dataset has {tuple(input_shape)}"
        )
    backbone.load_state_dict(state["backbone"])
    return state


def build_classifier(cfg: Mapping[str, Any], data: PreparedData, from_run: Optional[str | Path]) -> tuple[MultiLabelClassifier, dict]:
    """Backbone (pretrained when ``from_run``) + a fresh linear layer for this dataset's labels."""
    model_cfg = dict(cfg["model"])
    meta: dict = {}
    if from_run is not None:
        path, arch, state = backbone_source(from_run)
        model_cfg.update(arch)  # the architecture is the pretrained one
        meta = {"source": str(path), "dataset": state.get("dataset"), "label_names": state.get("label_names")}
    backbone = build_backbone(model_cfg, data.input_shape)
    if from_run is not None:
        load_backbone_weights(backbone, from_run, data.input_shape)
    return MultiLabelClassifier(backbone, data.n_labels), meta


def make_loss(section: Mapping[str, Any]) -> nn.Module:
    if section["loss"] == "asl":
        return AsymmetricLoss(
            gamma_neg=float(section["asl_gamma_neg"]), gamma_pos=float(section["asl_gamma_pos"]), clip=float(section["asl_clip"])
        )
    return nn.BCEWithLogitsLoss()


@torch.no_grad()
def score_split(
    model: nn.Module, source: TensorSource, device: torch.device, *, loss_fn: Optional[nn.Module] = None,
    view=None, batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One pass over a split in row order: sigmoid probabilities (N, L), targets (N, L) and the
    mean loss (NaN without ``loss_fn``). The model is put in eval mode for the pass."""
    was_training = model.training
    model.eval()
    scores, targets, total = [], [], 0.0
    for idx in torch.arange(source.n).split(batch_size):
        x, y = source.batch(idx)
        if view is not None:
            x = view(x, None)
        logits = model(x.to(device)).float()
        if loss_fn is not None:
            total += float(loss_fn(logits, y.to(device).float())) * len(idx)
        scores.append(torch.sigmoid(logits).cpu())
        targets.append(y)
    model.train(was_training)
    mean_loss = total / max(1, source.n) if loss_fn is not None else float("nan")
    return torch.cat(scores).numpy(), torch.cat(targets).numpy(), mean_loss


def _set_train_mode(model: MultiLabelClassifier, mode: str) -> None:
    model.train()
    if mode == "probe":
        model.backbone.eval()  # frozen: dropout off and BatchNorm statistics cannot move


def classify(
    cfg: Mapping[str, Any],
    run_dir: str | Path,
    *,
    from_run: Optional[str | Path] = None,
    resume: bool = False,
    quiet: bool = False,
    data: Optional[PreparedData] = None,
    stop_after_epochs: Optional[int] = None,
    echo: bool = True,
) -> dict:
    """Train a classifier (``cfg["classify"]["mode"]``) and evaluate its best checkpoint on test.

    Returns the metrics dict written to ``metrics.json`` (one entry per protocol), or an empty
    dict when stopped early by ``stop_after_epochs``.
    """
    # The stack restores what the run changes process-wide (torch's thread count) however it ends.
    with contextlib.ExitStack() as stack:
        return _classify(cfg, run_dir, from_run=from_run, resume=resume, quiet=quiet, data=data,
                         stop_after_epochs=stop_after_epochs, echo=echo, stack=stack)


def _classify(cfg, run_dir, *, from_run, resume, quiet, data, stop_after_epochs, echo, stack: contextlib.ExitStack) -> dict:
    """Body of :func:`classify`."""
    from mulsupcon.metrics import evaluate

    ctx = dist_utils.context()
    c = cfg["classify"]
    mode = c["mode"]
    if mode in ("probe", "finetune") and from_run is None:
        raise ValueError(f"--mode {mode} needs a pretrained run: pass --from RUN (or use --mode scratch)")
    device = ctx.device if ctx.enabled else resolve_device(cfg["device"])
    seed = int(cfg["seed"])
    if data is None:
        data = prepare_data(cfg["dataset"])
    if data.val is None:
        raise ValueError("classification needs a validation split for model selection: set dataset.val_fraction > 0")
    ctx.check_divisible(min(int(c["batch_size"]), data.train.n), "classify.batch_size")  # before any file is written
    split_info = dict(data.split_info)
    if from_run is not None:
        split_info["pretrained_from"] = str(from_run)
    run_dir = Path(run_dir)
    # Rank 0 alone creates (or checks) the run folder while the others wait (see pretrain.py).
    if ctx.is_main:
        run_dir = prepare_run_dir(run_dir, cfg, split_info, kind=mode, resume=resume)
    ctx.barrier()
    log = RunLog(run_dir, quiet=quiet, enabled=ctx.is_main, echo=echo)

    seed_everything(seed)
    model, meta = build_classifier(cfg, data, from_run if mode != "scratch" else None)
    model = ctx.maybe_sync_bn(model.to(device))
    if device.type == "cpu":
        use_fast_dropout(model)  # same distribution, half the cost of torch's CPU dropout
    stack.enter_context(cpu_threads(auto_num_threads(model, device, cfg.get("num_threads", "auto"))))
    flush = bool(cfg.get("flush_denormals", True)) and device.type == "cpu"
    enter_flush_denormals(stack, flush, log)
    if mode == "probe":
        for prm in model.backbone.parameters():
            prm.requires_grad_(False)
        groups = [{"params": list(model.fc.parameters()), "lr": float(c["lr"])}]
    elif mode == "finetune":
        groups = [
            {"params": list(model.fc.parameters()), "lr": float(c["lr"])},
            {"params": list(model.backbone.parameters()), "lr": float(c["lr_backbone"])},
        ]
    else:
        groups = [{"params": list(model.parameters()), "lr": float(c["lr"])}]
    optimizer = make_optimizer(groups, c)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=float(c["plateau_factor"]),
        patience=int(c["plateau_patience"]),
        cooldown=int(c["plateau_cooldown"]),
        threshold=float(c["plateau_threshold"]),
    )
    # Probing trains only the linear layer; DDP still averages its gradients across processes.
    train_module = ctx.wrap_ddp(model)
    loss_fn = make_loss(c).to(device)
    train_view, eval_view = _views(c, data)

    epochs = int(c["epochs"])
    bs = int(c["batch_size"])
    steps = c["steps_per_epoch"]
    ckpt_dir = run_dir / "checkpoints"
    start_epoch, history = 0, []
    best = {"epoch": 0, "score": float("inf"), "bad_epochs": 0}
    if resume and (ckpt_dir / "last.pt").is_file():
        state = load_checkpoint(ckpt_dir / "last.pt", map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        plateau.load_state_dict(state["plateau"])
        start_epoch, history, best = int(state["epoch"]), list(state["history"]), dict(state["best"])
        log.line(f"resumed from {ckpt_dir / 'last.pt'} at epoch {start_epoch}/{epochs}")
    elif start_epoch == 0:
        log.line(
            f"{mode} on {cfg['dataset']['name']}: {data.train.n} train / {data.val.n} val / {data.test.n} test, "
            f"{data.n_labels} labels, loss={c['loss']}, {epochs} epochs, batch {bs}"
            + (f", backbone from {from_run}" if from_run else "")
            + (f", {ctx.world_size} processes" if ctx.enabled else "")
        )

    t0 = time.time()
    stopped = best.get("stopped", False)
    epochs_this_call = 0
    for epoch in range(start_epoch, epochs):
        if stopped:
            break
        _set_train_mode(model, mode)
        torch.manual_seed(process_seed(seed, epoch, 11, ctx.rank))  # dropout differs per process
        aug_gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 12))
        batches = epoch_order(data.train.n, bs, steps, seed + 7919, epoch)
        total, count = 0.0, 0
        for idx in batches:
            x, y = data.train.batch(idx)
            if train_view is not None:
                x = train_view(x, aug_gen)
            elif eval_view is not None:
                x = eval_view(x, None)
            if ctx.enabled:
                x, y = ctx.shard(x), ctx.shard(y)
            logits = train_module(x.to(device))
            loss = loss_fn(logits, y.to(device).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            count += 1
        vs, vt, val_loss = score_split(model, data.val, device, loss_fn=loss_fn, view=eval_view)
        plateau.step(val_loss)
        record = {"epoch": epoch + 1, "train_loss": total / max(1, count), "val_loss": val_loss,
                  "val_mAP": float(evaluate(vs, vt, protocol="fixed")["mAP"]), "lr": optimizer.param_groups[0]["lr"]}
        score = val_loss if c["select_by"] == "val_loss" else -record["val_mAP"]
        improved = score < best["score"]
        if improved:
            best = {"epoch": epoch + 1, "score": score, "bad_epochs": 0}
            if ctx.is_main:
                atomic_torch_save(ckpt_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1})
        else:
            best["bad_epochs"] += 1
        if best["bad_epochs"] >= int(c["early_stop_patience"]):
            best["stopped"] = stopped = True
        history.append(record)
        if ctx.is_main:
            atomic_torch_save(
                ckpt_dir / "last.pt",
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "plateau": plateau.state_dict(),
                 "epoch": epoch + 1, "history": history, "best": best, "rng": rng_state(), "config": dict(cfg)},
            )
            write_history(run_dir, history)
        log.line(
            f"epoch {epoch + 1}/{epochs} train {record['train_loss']:.4f} val {val_loss:.4f} "
            f"val mAP {record['val_mAP']:.4f} lr {record['lr']:.2e}" + (" *" if improved else "")
            + (" (early stop)" if stopped else "")
        )
        epochs_this_call += 1
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs and epoch + 1 < epochs and not stopped:
            ctx.barrier()
            return {}
    ctx.barrier()

    # ---- evaluate the best-on-validation checkpoint on test
    state = load_checkpoint(ckpt_dir / "best.pt", map_location=device)
    model.load_state_dict(state["model"])
    test_scores, test_targets, _ = score_split(model, data.test, device, view=eval_view)
    val_scores, val_targets, _ = score_split(model, data.val, device, view=eval_view)
    results = evaluate_all(cfg, test_scores, test_targets, val_scores, val_targets)
    results["best_epoch"] = int(state["epoch"])
    results["mode"] = mode
    results["dataset"] = cfg["dataset"]["name"]
    if ctx.is_main:
        np.savez_compressed(run_dir / "scores.npz", test_scores=test_scores, test_targets=test_targets,
                            val_scores=val_scores, val_targets=val_targets)
        atomic_write_json(run_dir / "metrics.json", results)
        atomic_write_text(run_dir / "metrics.md", metrics_markdown(results, title=f"{mode} on {cfg['dataset']['name']} ({run_dir.name})"))
        atomic_torch_save(run_dir / "model.pt", {"model": model.state_dict(), "model_cfg": dict(cfg["model"]), "meta": meta,
                                                 "input_shape": list(data.input_shape), "label_names": data.label_names,
                                                 "backbone": model.backbone.state_dict(), "dataset": cfg["dataset"]["name"]})
    log.line(f"{mode} done in {format_seconds(time.time() - t0)}; best epoch {results['best_epoch']}; test metrics:")
    log.line(metrics_markdown(results))
    return results


def _views(c: Mapping[str, Any], data: PreparedData):
    """(train view, eval view) for this data and ``classify.augment``."""
    aug = c["augment"]
    if data.is_image:
        size = int(data.input_shape[-1])
        train = None if aug == "none" else ImageViews(size, "pretrain" if aug == "pretrain" else "flip_crop")
        return train, ImageViews(size, "eval")
    if aug == "mask":
        return VectorMasking(0.5), None
    if aug not in ("none",):
        raise ValueError(f"classify.augment={aug!r} applies to images only; vectors accept none | mask")
    return None, None


def evaluate_all(cfg: Mapping[str, Any], test_scores, test_targets, val_scores, val_targets) -> dict:
    """Metrics on test under every protocol of ``cfg['eval']['protocols']``."""
    from mulsupcon.metrics import evaluate

    out: dict = {"protocols": {}}
    for protocol in cfg["eval"]["protocols"]:
        out["protocols"][protocol] = evaluate(
            test_scores, test_targets, protocol=protocol, threshold=float(cfg["eval"]["threshold"]),
            val_scores=val_scores if protocol == "validation" else None,
            val_targets=val_targets if protocol == "validation" else None,
        )
    return out


def metrics_markdown(results: Mapping[str, Any], title: Optional[str] = None) -> str:
    """One table row per protocol."""
    from mulsupcon.reports import metrics_table

    rows = {f"test, {p} protocol": m for p, m in results["protocols"].items()}
    return metrics_table(rows, title=title)
