"""Classification on top of a backbone: linear probe, finetune, or training from scratch.

* ``probe``: the pretrained backbone is frozen AND kept in eval mode (dropout off, BatchNorm
  statistics fixed); only the linear layer learns.
* ``finetune``: everything learns; the linear layer at ``lr``, the backbone at ``lr_backbone``
  (4e-4 / 4e-5 for vectors, as in the paper).
* ``scratch``: a randomly initialised backbone trained with BCE (or ASL) — the paper's baseline.

The linear layer of probe and finetune starts random (the paper), or with ``head_init: fit`` as a
logistic regression fitted on the frozen features, strength chosen on validation (:func:`fit_linear_head`;
"linear probing, then finetuning"); that fitted layer is then the first candidate checkpoint, epoch 0.

Every epoch the validation split is scored by ``select_by`` (the validation loss, or the validation
mAP with ties broken by the loss); ReduceLROnPlateau (factor 0.1) follows it unless ``scheduler`` is
``constant``, early stopping stops after ``early_stop_patience`` epochs without improvement, and the
best checkpoint is the one evaluated on test, under every metric protocol in ``eval.protocols``.

The run folder (:mod:`.rundir`) gets ``checkpoints/{last,best}.pt``, ``history.json``/``.csv``,
``metrics.json``, ``metrics.md``, ``scores.npz`` (test/val probabilities), ``model.pt`` and ``log.txt``.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from mulsupcon.losses import AsymmetricLoss
from mulsupcon.metrics import evaluate
from mulsupcon.models import MultiLabelClassifier, build_backbone
from mulsupcon.tables import metrics_table
from mulsupcon.train import distributed as dist_utils
from mulsupcon.train.checkpoint import checkpoint_interval, load_checkpoint, rng_state, seed_everything
from mulsupcon.train.data import (
    BatchView,
    ImageViewBatches,
    ImageViews,
    PreparedData,
    TensorSource,
    VectorMasking,
    as_prepared,
    epoch_order,
    epoch_seed,
    image_view_loader,
    process_seed,
    to_device,
)
from mulsupcon.train.guard import DivergenceGuard, classification_divergence
from mulsupcon.train.optim import make_optimizer
from mulsupcon.train.rundir import RunDir, check_finished, format_seconds, open_run_dir
from mulsupcon.train.runtime import (
    cpu_image_note,
    cpu_threads,
    denormals_flushed,
    flush_denormals,
    loader_workers,
    mixed_precision,
    num_threads_for,
    resolve_device,
)


def backbone_source(from_run: str | Path | Mapping[str, Any]) -> tuple[Optional[Path], dict, dict]:
    """Where a backbone comes from: ``(file or None, architecture config, file contents)``.

    Accepts a pretraining run (its ``backbone.pt``), a classification run (its ``model.pt``: a
    BCE-from-scratch or finetuned backbone can be a transfer source too), either file itself, or the
    contents of such a file already in memory (what an in-memory pretraining run saved).
    """
    if isinstance(from_run, Mapping):
        path, state = None, dict(from_run)
    else:
        src = Path(from_run)
        if src.is_dir():
            path = next((c for c in (src / "backbone.pt", src / "model.pt") if c.is_file()), None)
            if path is None:
                check_finished(src, ("backbone.pt", "model.pt"), "train from it")
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
        raise ValueError(f"{path or 'the given state'}: no 'backbone' entry; not a mulsupcon backbone.pt or model.pt")
    # backbone.pt keeps the architecture under "model"; model.pt under "model_cfg" ("model" there
    # is the classifier's state dict).
    arch = state.get("model_cfg") if "model_cfg" in state else state.get("model", {})
    return path, dict(arch or {}), state


def load_backbone_weights(backbone: nn.Module, from_run: str | Path | Mapping[str, Any],
                          input_shape: Sequence[int], *, source: Optional[tuple] = None) -> dict:
    """Load a pretrained backbone (see :func:`backbone_source`; ``source``: its result, already loaded) into
    ``backbone``."""
    path, _, state = source or backbone_source(from_run)
    saved_shape = tuple(state.get("input_shape", ()))
    # An image backbone pools globally, so another image side is transfer (the paper's setting); only
    # the channels must match. Vectors must have the same features.
    other_side = len(saved_shape) == 3 and len(input_shape) == 3 and saved_shape[0] == input_shape[0]
    if saved_shape and tuple(saved_shape) != tuple(input_shape) and not other_side:
        raise ValueError(
            f"{path}: the backbone was trained on inputs of shape {saved_shape}, but this dataset has {tuple(input_shape)}"
        )
    backbone.load_state_dict(state["backbone"])
    return state


def build_classifier(cfg: Mapping[str, Any], data: PreparedData, from_run: Optional[str | Path | Mapping[str, Any]],
                     *, source: Optional[tuple] = None) -> tuple[MultiLabelClassifier, dict]:
    """Backbone (pretrained when ``from_run``; ``source``: :func:`backbone_source`'s result, already loaded) + a
    fresh linear layer for this dataset's labels."""
    model_cfg = dict(cfg["model"])
    meta: dict = {}
    if from_run is not None:
        source = source or backbone_source(from_run)
        path, arch, state = source
        model_cfg.update(arch)  # the architecture is the pretrained one
        meta = {"source": str(path) if path is not None else "in memory", "dataset": state.get("dataset"), "label_names": state.get("label_names")}
    backbone = build_backbone(model_cfg, data.input_shape)
    if from_run is not None:
        load_backbone_weights(backbone, from_run, data.input_shape, source=source)
    return MultiLabelClassifier(backbone, data.n_labels), meta


def make_loss(section: Mapping[str, Any]) -> nn.Module:
    """The classification loss of a ``classify`` config section: BCE with logits or ASL; (B, L) logits and
    (B, L) 0/1 targets -> a scalar."""
    if section["loss"] == "asl":
        return AsymmetricLoss(
            gamma_neg=float(section["asl_gamma_neg"]), gamma_pos=float(section["asl_gamma_pos"]), clip=float(section["asl_clip"])
        )
    return nn.BCEWithLogitsLoss()


def _split_batches(source: TensorSource, view: Optional[BatchView],
                   batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A split's (x, y) batches in row order, through the evaluation ``view`` when there is one."""
    for idx in torch.arange(source.n).split(batch_size):
        x, y = source.batch(idx)
        yield (x if view is None else view(x, None)), y


@torch.no_grad()
def score_split(
    model: nn.Module, source: TensorSource, device: torch.device, *, loss_fn: Optional[nn.Module] = None,
    view: Optional[BatchView] = None, batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One pass over a split in row order: sigmoid probabilities (N, L), targets (N, L) and the
    mean loss (NaN without ``loss_fn``). The model is put in eval mode for the pass."""
    was_training = model.training
    model.eval()
    scores, targets, total = [], [], 0.0
    for x, y in _split_batches(source, view, batch_size):
        logits = model(x.to(device)).float()
        if loss_fn is not None:
            total += float(loss_fn(logits, y.to(device).float())) * len(y)
        scores.append(torch.sigmoid(logits).cpu())
        targets.append(y)
    model.train(was_training)
    mean_loss = total / max(1, source.n) if loss_fn is not None else float("nan")
    return torch.cat(scores).numpy(), torch.cat(targets).numpy(), mean_loss


def set_train_mode(model: MultiLabelClassifier, mode: str) -> None:
    """Train mode, except a probed backbone (frozen: dropout off, BatchNorm statistics fixed)."""
    model.train()
    if mode == "probe":
        model.backbone.eval()  # frozen: dropout off and BatchNorm statistics cannot move


def classify(cfg: Mapping[str, Any], run_dir: str | Path | RunDir, *,
             from_run: Optional[str | Path | Mapping[str, Any]] = None,
             resume: bool = False, quiet: bool = False, data: Optional[PreparedData] = None,
             stop_after_epochs: Optional[int] = None, echo: bool = True,
             logger: Optional[Callable[[dict], None]] = None,
             epoch_hook: Optional[Callable[[MultiLabelClassifier, dict], None]] = None) -> dict:
    """Train a classifier (``cfg["classify"]["mode"]``) and evaluate its best checkpoint on test.

    Returns the metrics dict written to ``metrics.json`` (one entry per protocol), or an empty dict when
    stopped early by ``stop_after_epochs`` (then ``--resume`` continues). Arguments as for
    :func:`mulsupcon.train.pretrain.pretrain`; ``from_run`` names the pretrained run (probe, finetune).
    ``epoch_hook(model, record)``, on the main process after each epoch's validation, sees the model as it
    stands (a diagnostic, e.g. scoring the test split every epoch in ``benchmarks/selection_rules.py``; it
    must not change the model).
    """
    ctx = dist_utils.context()
    c, seed = cfg["classify"], int(cfg["seed"])
    mode = c["mode"]
    if mode in ("probe", "finetune") and from_run is None:
        raise ValueError(f"--mode {mode} needs a pretrained run: pass --from RUN (or use --mode scratch)")
    device = ctx.device if ctx.enabled else resolve_device(cfg["device"])
    with contextlib.ExitStack() as stack:  # restores what the run changes process-wide, however it ends
        flush = bool(cfg["cpu"]["flush_denormals"]) and device.type == "cpu"
        stack.enter_context(flush_denormals(flush))  # before the first parallel region (see pretrain)
        # A pretrained backbone reads its inputs by position: data with its features in another order (a file
        # written by another tool) is put in the backbone's order.
        loaded = backbone_source(from_run) if from_run is not None and mode != "scratch" else None  # read once
        pretrained = loaded[2] if loaded is not None else {}
        data = as_prepared(data, cfg["dataset"], feature_order=pretrained.get("feature_names") or None)
        if data.val is None:
            vf = float(cfg["dataset"].get("val_fraction") or 0.0)
            if vf > 0:
                raise ValueError(f"classification needs a validation split for model selection, and {data.train.n} "
                                 f"training row(s) are too few to carve one (dataset.val_fraction {vf:g})")
            raise ValueError("classification needs a validation split for model selection: set dataset.val_fraction > 0")
        ctx.check_divisible(min(int(c["batch_size"]), data.train.n), "classify.batch_size")  # before any file is written
        # Absolute, so that `train --resume` finds the pretrained run from any working directory.
        # (a scratch run given --from takes only the run's data and model: nothing was pretrained for it)
        source = None if from_run is None or mode == "scratch" else (
            str(Path(from_run).resolve()) if not isinstance(from_run, Mapping) else "in memory")
        split_info = dict(data.split_info, **({"pretrained_from": source} if source is not None else {}))
        run = stack.enter_context(open_run_dir(ctx, run_dir, cfg, split_info, mode, resume, quiet, echo))
        backbone_features = list(pretrained.get("feature_names") or [])
        if backbone_features and data.feature_names and backbone_features != data.feature_names:
            run.log(f"note: the features are not named as those the backbone was pretrained on ({data.feature_names[:3]}... "
                    f"against {backbone_features[:3]}...): they are matched by position")

        seed_everything(seed)
        model, meta = build_classifier(cfg, data, from_run if mode != "scratch" else None, source=loaded)
        model = ctx.maybe_sync_bn(model.to(device))
        channels_last = data.is_image and bool(c["channels_last"]) and device.type == "cuda"
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        stack.enter_context(cpu_threads(num_threads_for(model, device, cfg["cpu"]["num_threads"])))
        if flush and not denormals_flushed():
            run.log("note: subnormal floats are not flushed on every thread (the CPU lacks the flags, or torch "
                    "computed in parallel before the run started); long runs may slow down")
        train_view, eval_view = _views(c, data)
        fit_head = mode != "scratch" and c["head_init"] == "fit" and not (resume and run.has_checkpoint("last"))
        if fit_head:
            fit = fit_linear_head(model, data.train, data.val, device, c_grid=list(c["head_fit_c"]), view=eval_view)
            run.log(f"linear layer initialised by a logistic regression on the frozen features: C={fit['C']:g} of "
                    f"{list(c['head_fit_c'])} by validation mAP ({fit['val_mAP']:.4f}), {fit['iterations']} L-BFGS iterations")
        optimizer = make_optimizer(parameter_groups(model, mode, c), c)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(  # follows the selection criterion's first part
            optimizer, mode="min" if c["select_by"] == "val_loss" else "max", factor=float(c["plateau_factor"]),
            patience=int(c["plateau_patience"]),
            cooldown=int(c["plateau_cooldown"]), threshold=float(c["plateau_threshold"]))
        train_module = ctx.wrap_ddp(model)  # probing trains only the linear layer; DDP still averages its gradients
        loss_fn = make_loss(c).to(device)
        amp_dtype, scaler = mixed_precision(c["amp"], device, "classify.amp")
        batches_of = training_batches(cfg, data, ctx, device, train_view, eval_view, channels_last)
        guard = DivergenceGuard([q for q in model.parameters() if q.requires_grad], f"{mode} training")

        epochs, bs = int(c["epochs"]), int(c["batch_size"])
        every = checkpoint_interval(c["checkpoint_every"], c["steps_per_epoch"] or data.train.n // min(bs, data.train.n))
        best_state = None  # the best epoch's weights until the next checkpoint writes them (best.pt)
        start_epoch, history = 0, []
        best = {"epoch": 0, "score": (float("inf"),), "bad_epochs": 0}
        if resume and run.has_checkpoint("last"):
            state = run.load_checkpoint("last", map_location=device)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            plateau.load_state_dict(state["plateau"])
            if "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            start_epoch, history, best = int(state["epoch"]), list(state["history"]), dict(state["best"])
            # A longer cap or patience (run.extended) continues a finished or early-stopped run.
            best["stopped"] = best["bad_epochs"] >= int(c["early_stop_patience"])
            run.log(f"resumed from {run.checkpoint('last')} at epoch {start_epoch}/{epochs}"
                    + (f", continued for longer ({run.extended})" if run.extended else ""))
        else:
            run.log(f"{mode} on {cfg['dataset']['name']}: {data.train.n} train / {data.val.n} val / {data.test.n} test, "
                    f"{data.n_labels} labels, loss={c['loss']}, {epochs} epochs, batch {min(bs, data.train.n)}"
                    + (f", backbone from {source}" if source else "")
                    + (f", {ctx.world_size} processes" if ctx.enabled else "")
                    + (f", views in {loader_workers(c['num_workers'], device, ctx.world_size)} DataLoader worker(s)"
                       if data.is_image else "")
                    + (f", mixed precision {str(amp_dtype).replace('torch.', '')}" if amp_dtype is not None else "")
                    + (", channels_last" if channels_last else ""))
            note = cpu_image_note(data.input_shape, device, str(cfg["model"].get("backbone", "")))
            if note is not None:
                run.log(note)
            if fit_head:  # the fitted linear layer is the first candidate checkpoint ("epoch 0")
                _, _, val_loss = score_split(model, data.val, device, loss_fn=loss_fn, view=eval_view)
                best = {"epoch": 0, "score": selection_score({"val_loss": val_loss, "val_mAP": fit["val_mAP"]}, c["select_by"]),
                        "bad_epochs": 0}
                run.save_checkpoint("best", {"model": model.state_dict(), "epoch": 0})
        if logger is not None:
            run.loggers.append(logger)
        if cfg["log"]["tensorboard"]:
            run.add_tensorboard(mode)
        run.start_training()

        t0 = time.time()
        for epoch in range(start_epoch, epochs):
            if best.get("stopped"):
                break
            set_train_mode(model, mode)
            torch.manual_seed(process_seed(seed, epoch, 11, ctx.rank))  # dropout differs per process
            total, count = torch.zeros((), dtype=torch.float64, device=device), 0
            for step, (x, y) in enumerate(batches_of(epoch)):
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = train_module(x)
                loss = loss_fn(logits.float(), y.float())  # float32, outside autocast
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # the scaler is a pass-through unless float16 is on
                scaler.step(optimizer)
                scaler.update()
                guard.observe(loss, step)
                total += loss.detach().double()  # stays on the device: no host sync per step
                count += 1
                if epoch == 0 and step == 0:
                    first_step_loss = loss.detach()  # the untrained model's: the divergence warning's yardstick
                if step % 25 == 0:  # the logging interval: here the host syncs
                    guard.check(epoch)
            guard.check(epoch)  # before this epoch's checkpoint: last.pt stays the last good one
            vs, vt, val_loss = score_split(model, data.val, device, loss_fn=loss_fn, view=eval_view)
            val_mAP = float(evaluate(vs, vt, protocol="fixed")["mAP"])
            if c["scheduler"] == "plateau":
                plateau.step(val_loss if c["select_by"] == "val_loss" else val_mAP)
            record = {"epoch": epoch + 1, "train_loss": float(total) / max(1, count), "val_loss": val_loss,
                      "val_mAP": val_mAP, "lr": optimizer.param_groups[0]["lr"]}
            if epoch == 0:
                record["first_step_loss"] = float(first_step_loss)
            score = selection_score(record, c["select_by"])
            previous = best["score"]  # a float in checkpoints written before the tie-break
            improved = score < (tuple(previous) if isinstance(previous, (tuple, list)) else (previous,))
            if improved:
                best = {"epoch": epoch + 1, "score": score, "bad_epochs": 0}
                best_state = {"model": {k: v.detach().clone() for k, v in model.state_dict().items()}, "epoch": epoch + 1}
            else:
                best["bad_epochs"] += 1
            best["stopped"] = best["bad_epochs"] >= int(c["early_stop_patience"])
            history.append(record)
            run.epoch_done(record)
            if epoch_hook is not None and ctx.is_main:
                epoch_hook(model, dict(record))
            stopping = (stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs
                        and epoch + 1 < epochs and not best["stopped"])
            if epoch + 1 == epochs or best["stopped"] or stopping or (epoch + 1) % every == 0:
                if best_state is not None:  # before last.pt, whose record names it
                    run.save_checkpoint("best", best_state)
                    best_state = None
                run.save_checkpoint("last", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                             "plateau": plateau.state_dict(), "scaler": scaler.state_dict(),
                                             "epoch": epoch + 1, "history": history, "best": best, "rng": rng_state(),
                                             "config": dict(cfg)})
                run.write_history(history)
            run.log(f"epoch {epoch + 1}/{epochs} train {record['train_loss']:.4f} val {val_loss:.4f} "
                    f"val mAP {record['val_mAP']:.4f} lr {record['lr']:.2e}" + (" *" if improved else "")
                    + (" (early stop)" if best["stopped"] else ""))
            if stopping:
                ctx.barrier()
                return {}
        ctx.barrier()
        warning = classification_divergence(history)
        if warning:
            run.warn(warning)

        # ---- evaluate the best-on-validation checkpoint on test
        state = run.load_checkpoint("best", map_location=device)
        model.load_state_dict(state["model"])
        test_scores, test_targets, _ = score_split(model, data.test, device, view=eval_view)
        val_scores, val_targets, _ = score_split(model, data.val, device, view=eval_view)
        results = evaluate_all(cfg, test_scores, test_targets, val_scores, val_targets)
        results.update(best_epoch=int(state["epoch"]), mode=mode, dataset=cfg["dataset"]["name"])
        buf = io.BytesIO()
        np.savez_compressed(buf, test_scores=test_scores, test_targets=test_targets, val_scores=val_scores,
                            val_targets=val_targets)
        run.write_bytes("scores.npz", buf.getvalue())
        run.write_json("metrics.json", results)
        run.write_text("metrics.md", metrics_markdown(results, title=f"{mode} on {cfg['dataset']['name']} ({Path(run.path or '.').name})"))
        run.save("model.pt", self_contained_model(model, cfg, data, meta, val_scores, val_targets))
        # MulSupConClassifier holds out no test rows: its "test" part is its validation rows, and is named so.
        part = "validation" if data.split_info.get("test_is_validation") else "test"
        run.log(f"{mode} done in {format_seconds(time.time() - t0)}; best epoch {results['best_epoch']}; {part} metrics:")
        run.log(metrics_markdown(results, part=part))
        return results


def selection_score(record: Mapping[str, float], select_by: str) -> tuple[float, ...]:
    """The checkpoint criterion of one epoch's ``record`` (smaller is better, compared as a tuple).

    ``val_loss``: the validation loss. ``val_mAP``: the validation mAP, ties broken by the validation loss;
    a small validation set often ranks every label perfectly for many epochs while the model still improves
    (genbase: the same validation mAP from epoch 25 to 190, test mAP 0.76 at the first of them, 0.92 later).
    When no validation row has a positive label the mAP is undefined (NaN) in every epoch; the validation
    loss alone then ranks (a NaN never compares smaller, so no checkpoint would ever be kept).
    """
    if select_by == "val_loss":
        return (float(record["val_loss"]),)
    val_mAP = float(record["val_mAP"])
    return (-val_mAP if np.isfinite(val_mAP) else 0.0, float(record["val_loss"]))


def self_contained_model(model: MultiLabelClassifier, cfg: Mapping[str, Any], data: PreparedData, meta: dict,
                         val_scores: np.ndarray, val_targets: np.ndarray) -> dict:
    """What ``model.pt`` holds: everything prediction needs without the training data.

    The weights (``model``; ``backbone`` again for transfer), the architecture (``model_cfg``), the input
    (``input_shape``, ``is_image``, ``feature_names``, ``standardizer`` mean/std (F,) of the training split,
    ``missing_fill`` (F,): what a missing feature becomes, or None when the run refused missing values),
    ``label_names``, and ``thresholds``: per thresholded metric the grid value best on the validation split
    (the ``validation`` protocol's choice); ``threshold`` is the micro-F1 one (what ``predict --labels`` uses);
    ``train_positives``: each label's number of training rows (L,), for ``evaluate --per-label``.
    """
    thresholds = evaluate(val_scores, val_targets, protocol="paper")["thresholds"]  # best on validation
    return {"format": "mulsupcon-model-v1", "model": model.state_dict(), "model_cfg": dict(cfg["model"]),
            "meta": meta, **data.input_state(), "thresholds": thresholds, "threshold": thresholds["micro_f1"],
            "train_positives": data.train.labels.sum(0, dtype=torch.int64).tolist(),
            "backbone": model.backbone.state_dict(), "dataset": cfg["dataset"]["name"], "config": dict(cfg)}


@torch.no_grad()
def frozen_features(model: MultiLabelClassifier, source: TensorSource, device: torch.device, *,
                    view: Optional[BatchView] = None, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The backbone's output in eval mode over a split in row order: features (N, D) and targets (N, L), float."""
    was_training = model.training
    model.eval()  # what a probe sees: dropout off, BatchNorm statistics fixed
    feats, targets = [], []
    for x, y in _split_batches(source, view, batch_size):
        feats.append(model.embed(x.to(device)).float())
        targets.append(y.to(device).float())
    model.train(was_training)
    return torch.cat(feats), torch.cat(targets)


def fit_logistic(h: torch.Tensor, y: torch.Tensor, c_inverse: float, *, max_iter: int = 500
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One L2-regularised logistic regression per label on features ``h`` (N, D), targets ``y`` (N, L).

    All labels at once by full-batch L-BFGS on the mean BCE plus scikit-learn's per-label penalty of
    ``LogisticRegression(C=c_inverse)`` (``0.5 / C * ||w||^2`` against a sum over rows, so divided by
    N * L here; the bias is not penalised), on standardised features whose mean and scale are folded back
    into the result. Deterministic. Returns weight (L, D) and bias (L,) for the raw ``h``, and the
    number of L-BFGS iterations.
    """
    mean, std = h.mean(0), h.std(0, unbiased=False).clamp_min(1e-6)
    z = (h - mean) / std
    n, n_labels = y.shape
    weight = torch.zeros(n_labels, z.shape[1], device=h.device, requires_grad=True)
    prior = y.mean(0).clamp(1.0 / (n + 1), n / (n + 1))  # a label absent from (or in every) row: a finite start
    bias = torch.log(prior / (1 - prior)).requires_grad_(True)
    l2 = 0.5 / (c_inverse * n * n_labels)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = weight.detach() / std
    return w, bias.detach() - w @ mean, int(opt.state[weight]["n_iter"])


def fit_linear_head(model: MultiLabelClassifier, train: TensorSource, val: TensorSource, device: torch.device, *,
                    c_grid: list[float], view: Optional[BatchView] = None) -> dict:
    """Set ``model.fc`` to the logistic regression on the frozen backbone's features that ranks ``val`` best.

    Linear probing before finetuning ("LP-FT", Kumar et al., ICLR 2022): a random linear layer sends
    noisy gradients into a pretrained backbone for the first epochs and distorts its features, and a
    linear layer trained by Adam at 4e-4 is often still improving after 200 epochs. One
    :func:`fit_logistic` per inverse strength in ``c_grid``; the validation mAP picks (ties: the
    validation BCE). Returns ``{"C", "iterations", "val_mAP"}`` of the choice.
    """
    h, y = frozen_features(model, train, device, view=view)
    hv, yv = frozen_features(model, val, device, view=view)
    best: Optional[tuple] = None
    for c_inverse in c_grid:
        w, b, iterations = fit_logistic(h, y, float(c_inverse))
        logits = hv @ w.T + b
        val_mAP = float(evaluate(torch.sigmoid(logits).cpu().numpy(), yv.cpu().numpy(), protocol="fixed")["mAP"])
        val_loss = float(nn.functional.binary_cross_entropy_with_logits(logits, yv))
        key = selection_score({"val_mAP": val_mAP, "val_loss": val_loss}, "val_mAP")
        if best is None or key < best[0]:
            best = (key, w, b, {"C": float(c_inverse), "iterations": iterations, "val_mAP": val_mAP})
    _, w, b, info = best
    with torch.no_grad():
        model.fc.weight.copy_(w.to(model.fc.weight.dtype))
        model.fc.bias.copy_(b.to(model.fc.bias.dtype))
    return info


def parameter_groups(model: MultiLabelClassifier, mode: str, c: Mapping[str, Any]) -> list[dict]:
    """What learns at which rate: probe = the linear layer only (the backbone frozen); finetune = the
    linear layer at ``lr`` and the backbone at ``lr_backbone``; scratch = everything at ``lr``."""
    if mode == "probe":
        for prm in model.backbone.parameters():
            prm.requires_grad_(False)
        return [{"params": list(model.fc.parameters()), "lr": float(c["lr"])}]
    if mode == "finetune":
        return [{"params": list(model.fc.parameters()), "lr": float(c["lr"])},
                {"params": list(model.backbone.parameters()), "lr": float(c["lr_backbone"])}]
    return [{"params": list(model.parameters()), "lr": float(c["lr"])}]


def training_batches(cfg: Mapping[str, Any], data: PreparedData, ctx: dist_utils.DistContext, device: torch.device,
                     train_view: Optional[BatchView], eval_view: Optional[BatchView], channels_last: bool = False,
                     ) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """``batches_of(epoch)``: the epoch's (x, y) training batches of this process, viewed, on ``device``.

    Rows follow :func:`epoch_order` (seeded by ``seed + 7919``). Images are augmented in a DataLoader
    (persistent workers, as many as :func:`~mulsupcon.train.runtime.loader_workers` makes of
    ``classify.num_workers``; pinned memory on CUDA), each batch from a seed derived
    from (seed, epoch, step, rank), so the run does not depend on the worker count; with ``channels_last``
    (``classify.channels_last`` on CUDA) they arrive in that memory format. Vectors are masked inline from a
    generator seeded by (seed, epoch).
    """
    c, seed = cfg["classify"], int(cfg["seed"])
    bs, steps = int(c["batch_size"]), c["steps_per_epoch"]
    if data.is_image:
        view = train_view if train_view is not None else eval_view
        n_steps = len(epoch_order(data.train.n, bs, steps, seed + 7919, 0))
        loader = image_view_loader(
            ImageViewBatches(data.train, view, bs, steps, seed + 7919, ctx.rank, ctx.world_size, n_views=1),
            n_steps, loader_workers(c["num_workers"], device, ctx.world_size), pin_memory=device.type == "cuda")

        def image_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            loader.sampler.epoch = epoch
            for x, y in loader:
                x = to_device(x, device)
                yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), to_device(y, device)

        return image_batches

    def vector_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        aug_gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 12))
        for idx in epoch_order(data.train.n, bs, steps, seed + 7919, epoch):
            x, y = data.train.batch(idx)
            if train_view is not None:
                x = train_view(x, aug_gen)
            yield to_device(ctx.shard(x), device), to_device(ctx.shard(y), device)

    return vector_batches


def _views(c: Mapping[str, Any], data: PreparedData) -> tuple[Optional[BatchView], Optional[BatchView]]:
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


def evaluate_all(cfg: Mapping[str, Any], test_scores: np.ndarray, test_targets: np.ndarray, val_scores: np.ndarray,
                 val_targets: np.ndarray) -> dict:
    """Metrics on test under every protocol of ``cfg['eval']['protocols']``: scores (N, L) probabilities and
    targets (N, L) 0/1 of the test and the validation rows (the validation rows choose the thresholds)."""
    out: dict = {"protocols": {}}
    for protocol in cfg["eval"]["protocols"]:
        out["protocols"][protocol] = evaluate(
            test_scores, test_targets, protocol=protocol, threshold=float(cfg["eval"]["threshold"]),
            val_scores=val_scores if protocol == "validation" else None,
            val_targets=val_targets if protocol == "validation" else None,
        )
    return out


def metrics_markdown(results: Mapping[str, Any], title: Optional[str] = None, part: str = "test") -> str:
    """One table row per protocol, each named with the ``part`` the metrics were computed on."""
    rows = {f"{part}, {p} protocol": m for p, m in results["protocols"].items()}
    return metrics_table(rows, title=title)
