"""Multi-process training on ``torch.distributed`` (launched by ``torchrun`` or ``--nproc``).

The contract: a run on W processes with per-process batch B computes exactly what one process
with the combined batch of W*B computes (up to float summation order):

* each process takes its contiguous shard ``[rank*B, (rank+1)*B)`` of the global batch;
* keys AND label rows are all-gathered (rank order, ``ops.all_gather_rows``) so the references and
  the queue are global;
* the loss is normalised by the GLOBAL number of contributing (anchor, label) pairs / anchors, and
  scaled by W so that DistributedDataParallel's gradient averaging yields the global gradient;
* only rank 0 writes files.

Outside torchrun (no ``WORLD_SIZE``/``RANK`` in the environment) :func:`context` returns a disabled
context whose methods are identities, so the training loops have one code path.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Who this process is and the collective operations the loops need."""

    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    sync_bn: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0; the only process when disabled)."""
        return self.rank == 0

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This process's contiguous slice of a global batch: (B_global, ...) -> (B_global / W, ...).

        B_global must divide evenly (``ValueError`` otherwise): unequal shards would break the
        rank-order gather and DDP's equal-weight gradient average."""
        if not self.enabled:
            return t
        n = t.shape[0]
        if n % self.world_size:
            raise ValueError(
                f"global batch of {n} rows cannot be split evenly over {self.world_size} processes; "
                f"choose a batch size divisible by {self.world_size}"
            )
        per = n // self.world_size
        return t[self.rank * per : (self.rank + 1) * per]

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``t`` over all processes (a new tensor of the same shape; no gradient)."""
        if self.enabled:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def mean_scalar(self, x: float) -> float:
        """Mean of a Python number over all processes (float64 all-reduce)."""
        if not self.enabled:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def wrap_ddp(self, module: nn.Module, sync_buffers: bool = True) -> nn.Module:
        """``module`` wrapped in DistributedDataParallel (gradients averaged over processes), or as is.

        ``sync_buffers=False`` for MoCo: its queue is identical on every process already, and
        broadcasting it before every step would cost K x D floats. torch 2.13 renamed DDP's
        ``broadcast_buffers`` to ``forward_sync_buffers`` and warns on the old name, so the name this
        torch has is used; the default (buffers synced) is passed as no argument at all."""
        if not self.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        options = {}
        if not sync_buffers:
            renamed = "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
            options["forward_sync_buffers" if renamed else "broadcast_buffers"] = False
        return ddp(module, device_ids=ids, **options)

    def barrier(self) -> None:
        """Wait until every process gets here (e.g. rank 0 has written a file the others read)."""
        if self.enabled:
            dist.barrier()

    def maybe_sync_bn(self, module: nn.Module) -> nn.Module:
        """``module`` with its BatchNorm layers turned into SyncBatchNorm when ``sync_bn`` is on.

        Statistics are then computed over the global batch instead of each process's shard.
        PyTorch implements SyncBatchNorm for accelerators only, so asking for it with CPU
        processes is an error here rather than a crash at the first forward pass.
        """
        if not (self.enabled and self.sync_bn):
            return module
        if self.device.type == "cpu":
            raise ValueError(
                "SyncBatchNorm was requested (MULSUPCON_SYNC_BN=1) but the processes run on the CPU, "
                "where PyTorch does not implement it; unset MULSUPCON_SYNC_BN or train on GPUs"
            )
        # convert_sync_batchnorm re-uses the Parameter objects, so optimisers and MoCo's
        # momentum-update parameter lists built before the conversion stay valid.
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)

    def check_divisible(self, batch_size: int, what: str = "batch_size") -> None:
        """Raise a clear ``ValueError`` before training when the global batch cannot be sharded evenly."""
        if self.enabled and batch_size % self.world_size:
            raise ValueError(
                f"{what}={batch_size} is the GLOBAL batch and must be divisible by the number of "
                f"processes ({self.world_size}); choose e.g. {batch_size - batch_size % self.world_size or self.world_size}"
            )


_CONTEXT: Optional[DistContext] = None


def context(sync_bn: bool = False) -> DistContext:
    """The process's distributed context, initialising the process group once under torchrun."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        _CONTEXT = DistContext()
        return _CONTEXT
    # torchrun sets both, also for one process: that run is DistributedDataParallel too (as users of
    # `torchrun --nproc_per_node 1` expect, and what a one-GPU check of the NCCL path needs).
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and os.environ.get("MULSUPCON_DIST_BACKEND", "") != "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    sync = sync_bn or os.environ.get("MULSUPCON_SYNC_BN", "0") == "1"
    _CONTEXT = DistContext(True, rank, world, local_rank, device, sync)
    return _CONTEXT


def shutdown() -> None:
    """End this process's part in a multi-process run cleanly (destroy the process group).

    Exiting with a live gloo/NCCL process group lets its background threads die with the
    interpreter, which can abort the process (``terminate called without an active exception``)
    after the work is done; torchrun then reports the whole run as failed.
    """
    global _CONTEXT
    # No barrier here: after an error on one process the others may never arrive. The loops end
    # with their own barrier on success.
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = None


def reset_context() -> None:
    """Forget the cached context (tests that initialise process groups themselves)."""
    global _CONTEXT
    _CONTEXT = None


class GlobalNormalizedLoss(nn.Module):
    """Wrap a loss so that per-process losses add up to the single-process loss of the global batch.

    The wrapped loss must offer ``sum_and_count(query, labels, keys, key_labels)`` returning the
    un-normalised total and the number of contributing terms of this process. The returned value is
    ``W * total / global_count``: DDP averages gradients over W processes, which gives exactly the
    gradient of ``sum_r total_r / global_count``.
    """

    def __init__(self, loss: nn.Module, ctx: DistContext):
        super().__init__()
        self.loss = loss
        self.ctx = ctx

    def forward(
        self,
        query: torch.Tensor,
        labels: torch.Tensor,
        keys: Optional[torch.Tensor] = None,
        key_labels: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """This process's share (scalar): query (B, D), labels (B, C), keys (K, D), key_labels (K, C)."""
        total, count = self.loss.sum_and_count(query, labels, keys, key_labels)
        global_count = self.ctx.all_sum(count.detach().to(torch.float64))
        return total * (self.ctx.world_size / global_count.clamp_min(1).to(total.dtype))

