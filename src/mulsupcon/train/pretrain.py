"""Contrastive pretraining: MoCo with a label queue and the MulSupCon loss, top to bottom.

The run folder (:mod:`.rundir`) gets ``checkpoints/last.pt`` (model with its queue, optimiser, epoch,
history), ``backbone.pt`` (the query backbone after the last epoch: what probing and finetuning load),
``history.json``/``.csv`` and ``log.txt``.

Determinism: the batch order and augmentation noise of epoch ``e`` depend only on ``(seed, e)`` and
the global RNG is re-seeded from ``(seed, e)`` at every epoch start, so resuming from the checkpoint
written at the end of epoch ``e - 1`` replays epoch ``e`` exactly.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
from torch import nn

from mulsupcon.data.image_datasets import HDF5_PREFIX
from mulsupcon.losses import InstanceContrastLoss, MulSupConLoss
from mulsupcon.models import ProjectionHead, build_backbone
from mulsupcon.moco import LabelQueue, MoCo
from mulsupcon.train import distributed as dist_utils
from mulsupcon.train.checkpoint import checkpoint_interval, rng_state, seed_everything
from mulsupcon.train.data import (
    ImageViewBatches,
    ImageViews,
    PreparedData,
    VectorMasking,
    epoch_order,
    as_prepared,
    epoch_seed,
    image_view_loader,
    process_seed,
    to_device,
)
from mulsupcon.train.guard import DivergenceGuard, feature_spread, pretraining_collapse, pretraining_divergence
from mulsupcon.train.optim import make_optimizer, scheduled_epochs, scheduled_factor, set_lr
from mulsupcon.train.rundir import RunDir, format_seconds, open_run_dir
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

# Below this many training rows of vector data, finetuning after MulSupCon pretraining has been level
# with or below BCE from scratch in `mulsupcon benchmark vectors` (its lead appeared between about 400 and
# 575 rows: benchmarks/README.md, 'Sixth session'), so pretraining says so at the start.
FEW_VECTOR_ROWS = 500
GROUP_BYTES = 4  # the instance term's duplicate-group numbers (below 2**32) ride in this many label-row columns
Batch = tuple[torch.Tensor, ...]  # view1, view2, labels of this process (and duplicate groups: instance term)


def benchmark_command(ds_cfg: Mapping[str, Any], *, in_memory: bool = False) -> str:
    """The `mulsupcon benchmark vectors` command that compares every method on the data of a config's
    ``dataset`` section: your own file with its reading options, a registered dataset by its name, or
    ``FILE`` when the data came from memory (``in_memory``)."""
    path, name = ds_cfg.get("path"), str(ds_cfg.get("name") or "")
    missing = "" if ds_cfg.get("missing", "error") == "error" else f" --set dataset.missing={ds_cfg['missing']}"
    if not path and not in_memory:
        if name.startswith(HDF5_PREFIX):  # `mulsupcon embed`'s folder is read as a path too
            path = name[len(HDF5_PREFIX):]
        else:
            return f"mulsupcon benchmark vectors --datasets {shlex.quote(name)}{missing}"
    cmd = f"mulsupcon benchmark vectors --datasets mine={shlex.quote(str(Path(path).resolve())) if path else 'FILE'}"
    for key in ("label_columns", "ignore_columns", "categorical_columns", "label_sep", "xml", "test_path"):
        value = ds_cfg.get(key) if path else None
        if value not in (None, ""):
            value = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            cmd += f" --set dataset.{key}={shlex.quote(str(value))}"
    return cmd + missing


def pretrain(cfg: Mapping[str, Any], run_dir: str | Path | RunDir, *, resume: bool = False, quiet: bool = False,
             data: Optional[PreparedData] = None, stop_after_epochs: Optional[int] = None,
             echo: bool = True, logger: Optional[Callable[[dict], None]] = None) -> Optional[Path]:
    """Run (or resume) contrastive pretraining; returns the run directory (None for an in-memory run).

    Args:
        cfg: a resolved config (see :mod:`mulsupcon.config`).
        run_dir: where everything is written; must not hold another run unless ``resume``. A
            :meth:`RunDir.in_memory` keeps everything in memory (``run.files["backbone.pt"]``).
        resume: continue from ``checkpoints/last.pt``.
        quiet: plain log lines instead of progress bars; ``echo=False`` prints nothing at all.
        data: the data instead of the config's dataset section: PreparedData, Splits, or one
            MultiLabelDataset (``mulsupcon.data.from_arrays(X, Y)`` / ``from_file(path)``), see
            :func:`mulsupcon.train.data.as_prepared`.
        stop_after_epochs: stop cleanly, with a checkpoint, after this many epochs of this call
            (``--stop-after-epochs``: cut a long run into pieces, each continued with ``--resume``).
        logger: called with each epoch's record (``epoch``, ``loss``, ``lr``, ``seconds``); with
            ``log.tensorboard: true`` the records also go to TensorBoard.
    """
    ctx = dist_utils.context()
    device = ctx.device if ctx.enabled else resolve_device(cfg["device"])
    p, seed = cfg["pretrain"], int(cfg["seed"])
    with contextlib.ExitStack() as stack:  # restores what the run changes process-wide, however it ends
        # Before the first parallel region (data preparation), so that OpenMP's threads copy the flag.
        flush = bool(cfg["cpu"]["flush_denormals"]) and device.type == "cpu"
        stack.enter_context(flush_denormals(flush))
        in_memory = data is not None
        data = as_prepared(data, cfg["dataset"])
        if data.train.n < 2:
            raise ValueError(f"the training split has {data.train.n} row(s) (dataset.val_fraction "
                             f"{cfg['dataset']['val_fraction']} of the training part went to validation); "
                             f"contrastive pretraining needs at least 2")
        global_bs = min(int(p["batch_size"]), data.train.n)  # a batch larger than the split is the whole split
        ctx.check_divisible(global_bs, "pretrain.batch_size")  # before any file is written
        if global_bs // ctx.world_size < 2:
            raise ValueError(f"pretrain.batch_size={p['batch_size']} gives {global_bs // ctx.world_size} row(s) per "
                             f"process; contrastive pretraining needs at least 2 (the projection head's BatchNorm "
                             f"and the in-batch references do)")
        run = stack.enter_context(open_run_dir(ctx, run_dir, cfg, data.split_info, "pretrain", resume, quiet, echo))

        seed_everything(seed)
        w = float(p["instance_weight"])
        if w > 0 and data.is_image:
            raise ValueError("pretrain.instance_weight is for vector data (rows with identical features are found "
                             "by comparing them); set it to 0 for images")
        # The instance term's duplicate groups travel in the label rows (see pretrain_step).
        moco = build_moco(cfg, data.input_shape, data.n_labels + (GROUP_BYTES if w > 0 else 0)).to(device)
        stack.enter_context(cpu_threads(num_threads_for(moco.query_encoder, device, cfg["cpu"]["num_threads"])))
        if flush and not denormals_flushed():
            run.log("note: subnormal floats are not flushed on every thread (the CPU lacks the flags, or torch "
                    "computed in parallel before the run started); long runs may slow down")
        moco.query_encoder = ctx.maybe_sync_bn(moco.query_encoder)
        if data.is_image and bool(p["channels_last"]) and device.type == "cuda":
            moco = moco.to(memory_format=torch.channels_last)
        model = ctx.wrap_ddp(moco, sync_buffers=False)  # the queue is the same on every process
        trained = [q for q in moco.query_encoder.parameters() if q.requires_grad]
        optimizer = make_optimizer([{"params": trained}], p)
        amp_dtype, scaler = mixed_precision(p["amp"], device, "pretrain.amp")
        # MoCo returns unit vectors; labels were checked when read, and the guard watches the loss: no host
        # synchronisation inside the loss.
        loss_fn = MulSupConLoss(float(p["temperature"]), str(p["positives"]), str(p["weighting"]),
                                chunk_size=p["chunk_size"], normalize=False, validate=False)
        if ctx.enabled:
            loss_fn = dist_utils.GlobalNormalizedLoss(loss_fn, ctx)
        instance = (w, InstanceContrastLoss(float(p["temperature"]))) if w > 0 else None

        steps_per_epoch = p["steps_per_epoch"] or max(1, data.train.n // min(global_bs, data.train.n))
        epochs = scheduled_epochs(p, steps_per_epoch)  # pretrain.epochs within min_steps / max_steps
        schedule = dict(p, epochs=epochs)
        start_epoch, history = 0, []
        if resume and run.has_checkpoint("last"):
            start_epoch, history = restore(run, moco, optimizer, scaler, device)
            longer = "pretrain.epochs:" in run.extended
            run.log(f"resumed from {run.checkpoint('last')} at epoch {start_epoch}/{epochs}"
                    + (f", continued for longer ({run.extended})" if longer else
                       f"; classification settings saved for `train --from` ({run.extended})" if run.extended else ""))
            if longer and epochs <= start_epoch:  # the step bounds still give the epochs already run
                run.log(f"note: pretrain.max_steps {p['max_steps']} caps pretrain.epochs {p['epochs']} at {epochs} epochs, "
                        "which the run has done; the step bounds cannot change on --resume: a longer run is a new run")
            done = run.path / "backbone.pt" if run.writes_files else None
            if longer and epochs > start_epoch and done is not None and done.is_file():  # the shorter run's is kept
                kept = done.with_name(f"backbone-{start_epoch}-epochs.pt")
                done.replace(kept)
                run.log(f"the backbone after {start_epoch} epochs is kept as {kept}")
        elif resume:
            run.log("no checkpoint yet: starting from the beginning")
        if start_epoch == 0:
            run.log(f"pretraining on {cfg['dataset']['name']}: {data.train.n} samples, {data.n_labels} labels, "
                    f"input {tuple(data.input_shape)}, {epochs} epochs x {steps_per_epoch} steps, batch {global_bs}"
                    + (f" (pretrain.epochs {p['epochs']} bounded by min_steps {p['min_steps']} / max_steps "
                       f"{p['max_steps']})" if epochs != int(p["epochs"]) else "")
                    + (f" (pretrain.batch_size {p['batch_size']} > {data.train.n} training rows)"
                       if int(p["batch_size"]) > global_bs else "") + ", "
                    f"positives={p['positives']} weighting={p['weighting']} queue={p['queue_size']} device={device}"
                    + (f", instance term x{w:g}" if w > 0 else "")
                    + (f", {ctx.world_size} processes" if ctx.enabled else "") + f", {torch.get_num_threads()} thread(s)"
                    + (f", views in {loader_workers(p['num_workers'], device, ctx.world_size)} DataLoader worker(s)"
                       if data.is_image else "")
                    + (f", mixed precision {str(amp_dtype).replace('torch.', '')}" if amp_dtype is not None else ""))
        batches_of = view_batches(cfg, data, ctx, device, steps_per_epoch, with_groups=w > 0)
        guard = DivergenceGuard(trained, "pretraining")
        if len(data.input_shape) == 1 and data.train.n < FEW_VECTOR_ROWS and start_epoch == 0:
            run.log(f"note: with {data.train.n} training rows (under {FEW_VECTOR_ROWS}), finetuning after this pretraining "
                    "has been level with or below BCE from scratch on the benchmark's data sets, and a random forest "
                    f"often beats both (README, 'When to use it'); `{benchmark_command(cfg['dataset'], in_memory=in_memory)}` "
                    "compares them on yours")
        note = cpu_image_note(data.input_shape, device, str(cfg["model"].get("backbone", "")))
        if note is not None and start_epoch == 0:
            run.log(note)
        if float(p["temperature"]) < 0.01 and start_epoch == 0:
            run.warn(f"pretrain.temperature {p['temperature']} is far below the usual 0.05-0.5: the scores are divided "
                     f"by it, and the softmax saturates or overflows")
        if logger is not None:
            run.loggers.append(logger)
        if cfg["log"]["tensorboard"]:
            run.add_tensorboard("pretrain")
        run.start_training()

        t_start = time.time()
        bar = run.bar(epochs * steps_per_epoch, "pretrain", initial=start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, epochs):
            t_epoch = time.perf_counter()
            moco.train()
            # Everything random in this epoch derives from (seed, epoch): exact replay on resume.
            # Dropout and image augmentation differ per process (rank); vector views do not (see view_batches).
            torch.manual_seed(process_seed(seed, epoch, 1, ctx.rank))
            loss_sum, n_steps = torch.zeros((), dtype=torch.float64, device=device), 0
            guard.reset_epoch()
            for step, batch in enumerate(batches_of(epoch)):
                set_lr(optimizer, scheduled_factor(schedule, epoch, step, steps_per_epoch))
                loss = pretrain_step(model, moco, loss_fn, optimizer, scaler, amp_dtype, batch, instance)
                loss_sum += loss.double()  # stays on the device: no host sync per step
                guard.observe(loss, step)  # likewise
                n_steps += 1
                if step % 25 == 0 or step == steps_per_epoch - 1:  # the logging interval: here the host syncs
                    guard.check(epoch)
                    bar.set_postfix(loss=f"{loss_sum.item() / n_steps:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                bar.update(1)
            guard.check(epoch)  # before this epoch's checkpoint: last.pt stays the last good one
            mean_loss = ctx.mean_scalar(float(loss_sum) / max(1, n_steps))
            spread = feature_spread(moco.backbone, batch[0])  # the last step's first views (this process's share)
            history.append({"epoch": epoch + 1, "loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
                            "spread": None if spread is None else round(spread, 4),
                            "seconds": round(time.perf_counter() - t_epoch, 3)})
            run.epoch_done(history[-1])
            last = epoch + 1 == epochs
            stopping = stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs
            if last or stopping or (epoch + 1) % checkpoint_interval(p["checkpoint_every"], steps_per_epoch) == 0:
                run.save_checkpoint("last", {"model": moco.state_dict(), "optimizer": optimizer.state_dict(),
                                             "scaler": scaler.state_dict(), "epoch": epoch + 1, "history": history,
                                             "rng": rng_state(), "config": dict(cfg)})
                run.write_history(history)
            # Every epoch up to 199 of them, else every (epochs // 100)-th: a small set runs up to thousands of
            # short epochs (the step minimum), and history.csv keeps every one.
            if last or stopping or epoch == start_epoch or (epoch + 1) % max(1, epochs // 100) == 0:
                run.log(f"epoch {epoch + 1}/{epochs} loss {mean_loss:.4f} lr {optimizer.param_groups[0]['lr']:.3e}"
                        + ("" if spread is None else f" spread {spread:.3f}"))
            if stopping and not last:
                break
        run.close_bar()
        spreads = [h.get("spread") for h in history]  # None in checkpoints written before it was measured
        for warning in (pretraining_divergence(guard.norm_growth()),
                        pretraining_collapse(spreads[0], spreads[-1]) if spreads else None):
            if warning:
                run.warn(warning)
        if len(history) == epochs:
            # With the input side of model.pt, so that `load_run` embeds raw rows with it (transform).
            run.save("backbone.pt", {"backbone": moco.backbone.state_dict(), "model": dict(cfg["model"]),
                                     **data.input_state(), "dataset": cfg["dataset"]["name"], "config": dict(cfg)})
            run.log(f"pretraining done in {format_seconds(time.time() - t_start)}"
                    + (f"; backbone saved to {run.path / 'backbone.pt'}" if run.path is not None else ""))
        ctx.barrier()
        return run.path


# ----------------------------------------------------------------------------- setup helpers
def build_moco(cfg: Mapping[str, Any], input_shape: tuple[int, ...], n_labels: int) -> MoCo:
    """Backbone + projection head as MoCo's query encoder, its momentum copy, and the label queue."""
    m, p = cfg["model"], cfg["pretrain"]
    backbone = build_backbone(m, input_shape)
    head = ProjectionHead(backbone.out_dim, int(m["head_hidden"]), int(m["embed_dim"]), float(m["head_dropout"]))
    queue = LabelQueue(int(p["queue_size"]), int(m["embed_dim"]), n_labels)
    return MoCo(backbone, head, queue, float(p["momentum"]), key_train_mode=bool(p["key_train_mode"]),
                use_partial_queue=bool(p["use_partial_queue"]))


def pretrain_step(model: nn.Module, moco: MoCo, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, amp_dtype: Optional[torch.dtype], batch: Batch,
                  instance: Optional[tuple[float, nn.Module]] = None) -> torch.Tensor:
    """One MoCo step: both encoders, the loss, backward, the optimiser step, then this step's keys enqueued.

    Args:
        model: ``moco`` itself, or its DistributedDataParallel wrapper.
        batch: (view1 (B, ...), view2 (B, ...), labels (B, C)[, groups (B,) int64]) of this process, on the
            device; ``groups`` (rows with identical features share a number) only with ``instance``.
        instance: (weight, :class:`~mulsupcon.losses.InstanceContrastLoss`) added to the loss, or None.

    Returns:
        The loss, a 0-d float32 tensor left on the device: nothing in the step is read back to the
        host (with fused optimisers even float16 loss scaling skips its inf check on the host).
    """
    v1, v2, y = batch[:3]
    # With the instance term the label rows carry each row's duplicate group (batch[3]) in GROUP_BYTES
    # extra columns, so that the queue and the all-gather keep it beside the labels with no code of their own.
    tagged = y if instance is None else torch.cat([y, group_columns(batch[3])], dim=1)
    with torch.autocast(v1.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        query, refs, ref_tagged = model(v1, v2, tagged)
    n_labels = y.shape[1]
    loss = loss_fn(query, y, refs, ref_tagged[:, :n_labels])  # float32, outside autocast
    if instance is not None:  # (weight, InstanceContrastLoss)
        weight, instance_loss = instance
        loss = loss + weight * instance_loss(query, refs, batch[3], column_groups(ref_tagged[:, n_labels:]))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # the scaler is a pass-through unless float16 is on
    scaler.step(optimizer)
    scaler.update()
    moco.enqueue()  # this step's keys and tagged label rows, every process's (W * B)
    return loss.detach()


def group_columns(groups: torch.Tensor) -> torch.Tensor:
    """(B,) int64 group numbers -> (B, GROUP_BYTES) uint8, little-endian (label-row columns)."""
    shifts = torch.arange(0, 8 * GROUP_BYTES, 8, device=groups.device)
    return ((groups[:, None] >> shifts) & 255).to(torch.uint8)


def column_groups(columns: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`group_columns`: (K, GROUP_BYTES) uint8 -> (K,) int64."""
    shifts = torch.arange(0, 8 * GROUP_BYTES, 8, device=columns.device)
    return (columns.long() << shifts).sum(1)


def restore(run: RunDir, moco: MoCo, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            device: torch.device) -> tuple[int, list[dict]]:
    """Load ``checkpoints/last.pt`` into the model, optimiser and scaler; returns (epochs done, history)."""
    state = run.load_checkpoint("last", map_location=device)
    moco.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError as err:
        raise ValueError(f"cannot resume {run.checkpoint('last')}: its optimizer state does not match this run's "
                         f"parameters (one state per layer is expected). Start a new run. ({err})") from err
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), list(state["history"])


def view_batches(cfg: Mapping[str, Any], data: PreparedData, ctx: dist_utils.DistContext, device: torch.device,
                 steps_per_epoch: int, with_groups: bool = False) -> Callable[[int], Iterator[Batch]]:
    """``batches_of(epoch)``: the epoch's (view1, view2, labels) of this process, on ``device``; with
    ``with_groups`` (vectors) a fourth element, the rows' duplicate groups (B,) int64 (the instance term).

    Vectors: both views (50% masking) of the GLOBAL batch are drawn on every process from a generator
    seeded by (seed, epoch) (cheap), so a multi-process run sees exactly the noise of one process.
    Images: each process augments only its shard, in a DataLoader (persistent workers, as many as
    :func:`~mulsupcon.train.runtime.loader_workers` makes of ``pretrain.num_workers``; pinned memory on CUDA);
    results do not depend on the worker count.
    """
    p, seed = cfg["pretrain"], int(cfg["seed"])
    global_bs, fixed_steps = int(p["batch_size"]), p["steps_per_epoch"]
    if data.is_image:
        loader = image_view_loader(
            ImageViewBatches(data.train, ImageViews(int(data.input_shape[-1]), "pretrain"), global_bs, fixed_steps,
                             seed, ctx.rank, ctx.world_size),
            steps_per_epoch, loader_workers(p["num_workers"], device, ctx.world_size), pin_memory=device.type == "cuda")
        channels_last = bool(p["channels_last"]) and device.type == "cuda"

        def image_batches(epoch: int) -> Iterator[Batch]:
            loader.sampler.epoch = epoch
            for v1, v2, y in loader:
                v1, v2, y = to_device(v1, device), to_device(v2, device), to_device(y, device)
                if channels_last:
                    v1, v2 = v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)
                yield v1, v2, y

        return image_batches
    views = VectorMasking(float(p["mask_prob"]))
    groups = data.train.duplicate_groups() if with_groups else None

    def vector_batches(epoch: int) -> Iterator[Batch]:
        aug_gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 2))
        for idx in epoch_order(data.train.n, global_bs, fixed_steps, seed, epoch):
            x, y = data.train.batch(idx)
            v1, v2 = views(x, aug_gen), views(x, aug_gen)
            batch = (to_device(ctx.shard(v1), device), to_device(ctx.shard(v2), device), to_device(ctx.shard(y), device))
            yield batch if groups is None else (*batch, to_device(ctx.shard(groups[idx]), device))

    return vector_batches
