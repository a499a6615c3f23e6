"""Contrastive pretraining: MoCo with a label queue and the MulSupCon loss, top to bottom.

Run directory written here::

    config.yaml        the resolved config (what ran, every default filled in)
    split.json         how the data was split (dataset, seed, row indices)
    checkpoints/last.pt  model (with queue), optimiser, epoch, RNG states, history; atomic
    backbone.pt        the query backbone after the last epoch (what probing/finetuning load)
    history.json       per-epoch loss and learning rate
    log.txt            human-readable log

Determinism: the batch order and augmentation noise of epoch ``e`` depend only on ``(seed, e)``
and the global RNG is re-seeded from ``(seed, e)`` at every epoch start, so resuming from the
checkpoint written at the end of epoch ``e-1`` replays epoch ``e`` exactly.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from mulsupcon.losses import MulSupConLoss
from mulsupcon.models import ProjectionHead, build_backbone
from mulsupcon.models.fused import FusedMLPEncoder, load_extension, unsupported_reason
from mulsupcon.moco import MoCo
from mulsupcon.train import distributed as dist_utils
from mulsupcon.train.checkpoint import atomic_torch_save, load_checkpoint, rng_state, seed_everything
from mulsupcon.train.common import (
    RunLog,
    auto_num_threads,
    cpu_threads,
    enter_flush_denormals,
    format_seconds,
    make_optimizer,
    resolve_device,
    scheduled_factor,
    set_dropout_generator,
    set_lr,
    use_fast_dropout,
    want_key_overlap,
    worker_thread,
    write_history,
)
from mulsupcon.train.data import (
    ImageViewBatches,
    ImageViews,
    PreparedData,
    VectorMasking,
    image_view_loader,
    epoch_order,
    epoch_seed,
    prepare_data,
    process_seed,
)
from mulsupcon.train.runs import prepare_run_dir


def build_moco(cfg: Mapping[str, Any], input_shape: tuple[int, ...], n_labels: int) -> MoCo:
    """Backbone + projection head wrapped as query/key encoders with a label queue."""
    m, p = cfg["model"], cfg["pretrain"]
    backbone = build_backbone(m, input_shape)
    head = ProjectionHead(backbone.out_dim, int(m["head_hidden"]), int(m["embed_dim"]), float(m["head_dropout"]))
    return MoCo(
        nn.Sequential(backbone, head),
        n_labels=n_labels,
        embed_dim=int(m["embed_dim"]),
        queue_size=int(p["queue_size"]),
        momentum=float(p["momentum"]),
        key_train_mode=bool(p["key_train_mode"]),
        use_partial_queue=bool(p["use_partial_queue"]),
    )


def fused_forwards(setting: Any, moco: MoCo, device: torch.device, distributed: bool, total_steps: int,
                   log: Optional[RunLog] = None) -> tuple[Optional[FusedMLPEncoder], Optional[FusedMLPEncoder]]:
    """(query, key) :class:`FusedMLPEncoder` of MoCo's encoders per ``pretrain.fused_forward``, or (None, None).

    ``auto``: on the CPU in a single process, for the vector MLP layout, when the run has at least
    20,000 steps (the one-time ~30 s build then pays for itself at ~0.5 ms saved per encoder call);
    if the extension cannot be built, the run notes why and keeps the modules. ``true``: wherever
    possible, and a clear error where not. Call after ``use_fast_dropout`` and the dropout generators.
    """
    text = str(setting).strip().lower()
    if text not in ("auto", "true", "false"):
        raise ValueError(f"pretrain.fused_forward must be auto, true or false, got {setting!r}")
    if text == "false":
        return None, None
    reason = unsupported_reason(moco.query_encoder) or unsupported_reason(moco.key_encoder)
    if device.type != "cpu":
        reason = "it runs on the CPU only"
    elif distributed:
        reason = "it needs a single process (DistributedDataParallel calls the modules)"
    if text == "auto" and (reason is not None or total_steps < 20_000):
        return None, None
    if reason is not None:
        raise ValueError(f"pretrain.fused_forward=true, but the fused forward cannot be used: {reason}")
    ext, error = load_extension()
    if ext is None:
        if text == "true":
            raise RuntimeError(f"pretrain.fused_forward=true, but its C++ extension could not be built: {error}")
        if log is not None:
            log.line(f"note: the fused C++ forward is unavailable ({error}); using the modules")
        return None, None
    return FusedMLPEncoder(moco.query_encoder, ext), FusedMLPEncoder(moco.key_encoder, ext)


def make_views(cfg: Mapping[str, Any], data: PreparedData):
    """The augmentation that makes the two views: 50% masking for vectors, crops/jitter for images."""
    if data.is_image:
        return ImageViews(int(data.input_shape[-1]), "pretrain")
    return VectorMasking(float(cfg["pretrain"]["mask_prob"]))


def pretrain(
    cfg: Mapping[str, Any],
    run_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    data: Optional[PreparedData] = None,
    stop_after_epochs: Optional[int] = None,
    echo: bool = True,
) -> Path:
    """Run (or resume) contrastive pretraining; returns the run directory.

    Args:
        cfg: a resolved config (see :mod:`mulsupcon.config`).
        run_dir: where everything is written; must not hold another run unless ``resume``.
        resume: continue from ``checkpoints/last.pt``.
        quiet: plain log lines instead of progress bars.
        data: already-prepared data (the estimator passes arrays this way).
        stop_after_epochs: stop (cleanly, with a checkpoint) after this many epochs of this call;
            used by tests and benchmarks to cut a run short. When None, the environment variable
            ``MULSUPCON_STOP_AFTER_EPOCHS`` is used if set (so runs launched by the CLI can be cut too).
    """
    # The stack restores what the run changes process-wide (torch's thread count) however it ends.
    with contextlib.ExitStack() as stack:
        return _pretrain(cfg, run_dir, resume=resume, quiet=quiet, data=data, stop_after_epochs=stop_after_epochs,
                         echo=echo, stack=stack)


def _pretrain(cfg, run_dir, *, resume, quiet, data, stop_after_epochs, echo, stack: contextlib.ExitStack) -> Path:
    """Body of :func:`pretrain`."""
    ctx = dist_utils.context()
    if stop_after_epochs is None and os.environ.get("MULSUPCON_STOP_AFTER_EPOCHS"):
        # Lets a scheduler (or a test driving the CLI) cut a run short at an epoch boundary.
        stop_after_epochs = int(os.environ["MULSUPCON_STOP_AFTER_EPOCHS"])
    run_dir = Path(run_dir)
    device = ctx.device if ctx.enabled else resolve_device(cfg["device"])
    seed = int(cfg["seed"])
    p = cfg["pretrain"]
    if data is None:
        data = prepare_data(cfg["dataset"])
    ctx.check_divisible(min(int(p["batch_size"]), data.train.n), "pretrain.batch_size")  # before any file is written
    # Rank 0 alone creates (or checks) the run folder while the others wait: a second process
    # could otherwise see the config.yaml rank 0 has just written and refuse "an existing run".
    if ctx.is_main:
        run_dir = prepare_run_dir(run_dir, cfg, data.split_info, kind="pretrain", resume=resume)
    ctx.barrier()
    log = RunLog(run_dir, quiet=quiet, enabled=ctx.is_main, echo=echo)

    seed_everything(seed)
    moco = build_moco(cfg, data.input_shape, data.n_labels).to(device)
    if device.type == "cpu":
        use_fast_dropout(moco)  # same distribution, half the cost of torch's CPU dropout
    threads = auto_num_threads(moco.query_encoder, device, cfg.get("num_threads", "auto"))
    stack.enter_context(cpu_threads(threads))
    # Subnormal floats (dead units' Adam moments and weights, from epoch ~10 of long runs) take a
    # slow path on x86: flushed to zero on every computing thread (same for the key thread below).
    flush = bool(cfg.get("flush_denormals", True)) and device.type == "cpu"
    enter_flush_denormals(stack, flush, log)
    # On the CPU the key encoder's dropout draws from its own generator, reseeded every epoch: its
    # masks then do not depend on whether it runs on this thread or beside the query encoder.
    key_rng = torch.Generator() if device.type == "cpu" else None
    set_dropout_generator(moco.key_encoder, key_rng)
    key_executor = None
    if want_key_overlap(p.get("overlap_key_encoder", "auto"), device, ctx.enabled):
        key_executor = stack.enter_context(worker_thread(torch.get_num_threads(), flush))
    moco.query_encoder = ctx.maybe_sync_bn(moco.query_encoder)
    query_module = ctx.wrap_ddp(moco.query_encoder)
    # One process on the CPU: each encoder's parameter values in one buffer, so that the momentum
    # update is one kernel call (same values). The optimiser sees the layers' parameters as always.
    if device.type == "cpu" and not ctx.enabled:
        moco.flatten_parameters()
    epochs = int(p["epochs"])
    global_bs = int(p["batch_size"])
    steps = p["steps_per_epoch"]
    steps_per_epoch = int(steps) if steps is not None else max(1, data.train.n // min(global_bs, data.train.n))
    forwards = fused_forwards(p.get("fused_forward", "auto"), moco, device, ctx.enabled, epochs * steps_per_epoch, log)
    params = [q for q in moco.query_encoder.parameters() if q.requires_grad]
    optimizer = make_optimizer([{"params": params}], p)
    use_amp = bool(p.get("amp")) and device.type == "cuda"
    # bfloat16 needs no loss scaling; float16 (older GPUs) gets a GradScaler.
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    loss_fn = MulSupConLoss(
        temperature=float(p["temperature"]),
        positives=str(p["positives"]),
        weighting=str(p["weighting"]),
        chunk_size=p.get("chunk_size"),
        # MoCo hands the loss float32 unit vectors already; normalising them again changes
        # neither value nor gradient (the projection is idempotent) but costs ~0.4 ms per CPU
        # step. Under AMP the vectors were normalised in half precision: normalise again.
        normalize=use_amp,
    )
    if ctx.enabled:
        loss_fn = dist_utils.GlobalNormalizedLoss(loss_fn, ctx)
    views = make_views(cfg, data)
    channels_last = bool(p.get("channels_last")) and device.type == "cuda" and data.is_image
    if channels_last:
        moco = moco.to(memory_format=torch.channels_last)

    start_epoch, history = 0, []
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, map_location=device)
        moco.load_state_dict(state["model"])
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError as err:  # e.g. a checkpoint of the short-lived flat optimizer layout
            raise ValueError(
                f"cannot resume {ckpt_path}: its optimizer state does not match this run's parameters "
                f"(one state per layer; single-process CPU runs made on 2026-11-29 before the change to "
                f"per-layer gradients kept one flat state). Start a new run. ({err})"
            ) from err
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        log.line(f"resumed from {ckpt_path} at epoch {start_epoch}/{epochs}")
    elif resume:
        log.line("no checkpoint yet: starting from the beginning")
    if start_epoch == 0:
        log.line(
            f"pretraining on {cfg['dataset']['name']}: {data.train.n} samples, {data.n_labels} labels, "
            f"input {tuple(data.input_shape)}, {epochs} epochs x {steps_per_epoch} steps, batch {global_bs}, "
            f"positives={p['positives']} weighting={p['weighting']} queue={p['queue_size']} device={device}"
            + (f", {ctx.world_size} processes" if ctx.enabled else "")
            + f", {torch.get_num_threads()} thread(s)"
            + (", key encoder on a second thread" if key_executor is not None else "")
            + (", fused C++ forward" if forwards[0] is not None else "")
        )

    image_loader = None
    if data.is_image:
        # Image views are computed by a DataLoader (persistent workers with pretrain.num_workers > 0,
        # pinned memory on CUDA); results do not depend on the number of workers.
        image_loader = image_view_loader(
            ImageViewBatches(data.train, views, global_bs, steps_per_epoch if steps is not None else None, seed,
                             ctx.rank, ctx.world_size if ctx.enabled else 1),
            len(epoch_order(data.train.n, global_bs, steps_per_epoch if steps is not None else None, seed, 0)),
            int(p["num_workers"]), pin_memory=device.type == "cuda",
        )

    t_start = time.time()
    bar = log.bar(epochs * steps_per_epoch, "pretrain", initial=start_epoch * steps_per_epoch)
    epochs_this_call = 0
    for epoch in range(start_epoch, epochs):
        t_epoch = time.perf_counter()
        moco.train()
        # Everything random in this epoch derives from (seed, epoch): exact replay on resume.
        # The global RNG (dropout, image augmentation) differs per process; the vector views'
        # generator does not, because vector views are drawn on the global batch.
        torch.manual_seed(process_seed(seed, epoch, 1, ctx.rank))
        if key_rng is not None:
            key_rng.manual_seed(process_seed(seed, epoch, 3, ctx.rank))
        aug_gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 2))
        batches = epoch_order(data.train.n, global_bs, steps_per_epoch if steps is not None else None, seed, epoch)
        loss_sum, loss_count = torch.zeros((), dtype=torch.float64, device=device), 0
        image_batches = None
        if image_loader is not None:
            image_loader.sampler.epoch = epoch
            image_batches = iter(image_loader)
        for step, idx in enumerate(batches):
            factor = scheduled_factor(p, epoch, step, steps_per_epoch)
            set_lr(optimizer, factor)
            if image_batches is not None:
                # Images: each process augments only its own shard (noise depends on the process
                # count; augmenting the global batch everywhere would multiply the work).
                v1, v2, y = next(image_batches)
            else:
                x, y = data.train.batch(idx)
                # Vectors: both views of the GLOBAL batch are drawn on every process (cheap), so
                # a multi-process run sees exactly the noise of a single-process run.
                v1, v2 = views(x, aug_gen), views(x, aug_gen)
                if ctx.enabled:
                    v1, v2, y = ctx.shard(v1), ctx.shard(v2), ctx.shard(y)
            v1, v2, y = _to_device(v1, device), _to_device(v2, device), _to_device(y, device)
            if channels_last:
                v1, v2 = v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = moco_step(moco, query_module, v1, v2, y, loss_fn, ctx, key_executor, forwards)
            # Backward then hands over fresh gradients: no zeroing pass. (What zero_grad(set_to_none=True)
            # does, without its per-call profiler scope and group walk: 0.14 ms of a ~7 ms CPU step.)
            for q in params:
                q.grad = None
            scaler.scale(loss).backward()  # a pass-through unless float16 mixed precision is on
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach().double()  # stays on the device: no host sync per step
            loss_count += 1
            if step % 25 == 0 or step == len(batches) - 1:
                bar.set_postfix(loss=f"{loss_sum.item() / loss_count:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            bar.update(1)
        mean_loss = float(loss_sum) / max(1, loss_count)
        if ctx.enabled:
            mean_loss = ctx.mean_scalar(mean_loss)
        history.append({"epoch": epoch + 1, "loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": round(time.perf_counter() - t_epoch, 3)})  # wall time of the epoch's steps
        epochs_this_call += 1
        last = epoch + 1 == epochs
        stopping = stop_after_epochs is not None and epochs_this_call >= stop_after_epochs
        if ctx.is_main and (last or stopping or (epoch + 1) % int(p["checkpoint_every"]) == 0):
            atomic_torch_save(
                ckpt_path,
                {
                    "model": moco.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,
                    "history": history,
                    "rng": rng_state(),
                    "config": dict(cfg),
                },
            )
            write_history(run_dir, history)
        log.line(f"epoch {epoch + 1}/{epochs} loss {mean_loss:.4f} lr {optimizer.param_groups[0]['lr']:.3e}")
        if stopping and not last:
            break
    log.close_bar()
    if ctx.is_main and len(history) == epochs:
        atomic_torch_save(
            run_dir / "backbone.pt",
            {
                "backbone": moco.backbone_state(),
                "model": dict(cfg["model"]),
                "input_shape": list(data.input_shape),
                "label_names": data.label_names,
                "dataset": cfg["dataset"]["name"],
            },
        )
        log.line(f"pretraining done in {format_seconds(time.time() - t_start)}; backbone saved to {run_dir / 'backbone.pt'}")
    ctx.barrier()
    return run_dir


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``; on CUDA through pinned memory so the copy overlaps compute."""
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def moco_step(moco: MoCo, query_module: nn.Module, v1, v2, y, loss_fn, ctx, key_executor=None,
              forwards: tuple = (None, None)) -> torch.Tensor:
    """One MoCo step; the query goes through ``query_module`` (the DDP wrapper when distributed);
    the key side runs on ``key_executor`` when one is given (single process only); ``forwards`` =
    (query, key) replacements of the encoders' calls with the same results (single process only)."""
    if not ctx.enabled:
        return moco(v1, v2, y, loss_fn, key_executor=key_executor, query_forward=forwards[0], key_forward=forwards[1])
    return moco(v1, v2, y, loss_fn, gather=ctx.gather, query_forward=query_module)
