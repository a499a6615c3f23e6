"""Divergence: a non-finite loss or parameter stops a run with a clear error; runaway growth is a warning.

* **Stop** (``DivergenceError``): a loss, gradient or parameter that is NaN or infinite. A non-finite
  gradient shows as a non-finite parameter after the optimiser step. The loss is tracked on the device
  step by step (no host synchronisation per step); the run checks at logging intervals and at the end of
  every epoch, before that epoch's checkpoint is written, so ``checkpoints/last.pt`` stays the last good one.
* **Warn** (the word "diverged", in the output, ``log.txt`` and ``run.json``): classification whose
  training loss explodes (an epoch's mean above :data:`EXPLODE_FACTOR` times the loss of the very first
  step, the untrained model's) or ends above its first epoch's; pretraining whose parameter norm grows beyond :data:`NORM_GROWTH_LIMIT` times its initial norm
  (its loss is bounded and rises while the queue fills, so the loss alone says little); pretraining
  whose backbone collapsed, mapping every row to nearly the same direction (:func:`feature_spread` fell
  below :data:`COLLAPSE_SPREAD` and below :data:`COLLAPSE_DROP` times its first epoch's value): the loss
  then stays flat at a high value and nothing else fails.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch
import torch.nn.functional as F

EXPLODE_FACTOR = 1e3
NORM_GROWTH_LIMIT = 1e3
COLLAPSE_SPREAD = 0.05  # genbase's backbone: 0.73 after pretraining; 0.15 after one epoch, then 0.012, on raw 0/1 inputs
COLLAPSE_DROP = 0.25  # an untrained ResNet-50 in eval mode starts near 0.04 already: a collapse is a fall, not a level


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or parameter."""


def parameter_norm(params: Iterable[torch.Tensor]) -> float:
    """The L2 norm of all ``params`` together (a host synchronisation)."""
    norms = [torch.linalg.vector_norm(p.detach().float()) for p in params]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


class DivergenceGuard:
    """Watches one training loop: ``observe(loss, step)`` every step, ``check(epoch)`` at intervals.

    ``params``: the trained parameters. ``observe`` only records, on the device, the first step whose loss
    is not finite; ``check`` reads it back and checks the parameters, raising :class:`DivergenceError`
    naming the epoch and the step.
    """

    def __init__(self, params: Iterable[torch.Tensor], what: str):
        self.params = [p for p in params]
        self.what = what
        device = self.params[0].device if self.params else torch.device("cpu")
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self._bad_value = torch.zeros((), device=device)
        self.initial_norm = parameter_norm(self.params)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Note a step's loss (a scalar tensor) without a device sync; the first non-finite one is kept."""
        bad = ~torch.isfinite(loss.detach()) & (self._first_bad < 0)
        self._first_bad = torch.where(bad, torch.full_like(self._first_bad, step), self._first_bad)
        self._bad_value = torch.where(bad, loss.detach().float(), self._bad_value)

    def check(self, epoch: int) -> None:
        """Raise :class:`DivergenceError` if a loss so far this epoch or a parameter is not finite."""
        first_bad = int(self._first_bad)
        if first_bad >= 0:
            raise DivergenceError(
                f"{self.what} diverged: the loss became {float(self._bad_value)} at epoch {epoch + 1}, step "
                f"{first_bad + 1}. The run stopped; checkpoints/last.pt holds the last good epoch. Lower the "
                f"learning rate (or raise the temperature) and start again")
        if not self.params:
            return
        finite = torch.stack([torch.isfinite(p.detach()).all() for p in self.params])
        if bool(finite.all()):  # one read-back for all parameters; the loop below runs only on a failure
            return
        for i, p in enumerate(self.params):
            if not bool(finite[i]):
                raise DivergenceError(
                    f"{self.what} diverged: parameter {i} (shape {tuple(p.shape)}) is not finite at epoch {epoch + 1} "
                    f"(a gradient overflowed). The run stopped; checkpoints/last.pt holds the last good epoch. Lower "
                    f"the learning rate and start again")

    def reset_epoch(self) -> None:
        """Forget the previous epoch's first bad step."""
        self._first_bad.fill_(-1)

    def norm_growth(self) -> float:
        """Current parameter norm / initial norm."""
        return parameter_norm(self.params) / max(self.initial_norm, 1e-12)


def classification_divergence(history: list[dict]) -> Optional[str]:
    """A warning (containing "diverged") when the training loss exploded or ended above its first epoch's.

    ``history[0]["first_step_loss"]`` is the loss of the first step (the model before any update)."""
    losses = [float(h["train_loss"]) for h in history if "train_loss" in h]
    if not losses or not all(math.isfinite(v) for v in losses):
        return None
    start = float(history[0].get("first_step_loss", losses[0]))
    first, top, last = losses[0], max(losses), losses[-1]
    if top > EXPLODE_FACTOR * max(start, 1e-12):
        return (f"training diverged: the training loss reached {top:.3g}, over {EXPLODE_FACTOR:g} times the first "
                f"step's {start:.3g}; lower classify.lr")
    if len(losses) >= 2 and last > first:
        return (f"training diverged: the training loss ended at {last:.4g}, above its first epoch's {first:.4g}; "
                f"lower classify.lr")
    return None


def pretraining_divergence(growth: float) -> Optional[str]:
    """A warning (containing "diverged") when the parameters' norm grew beyond the limit."""
    if growth > NORM_GROWTH_LIMIT:
        return (f"pretraining diverged: the parameters' norm grew {growth:.3g} times from its initial value "
                f"(limit {NORM_GROWTH_LIMIT:g}); lower pretrain.lr")
    return None


def embedding_spread(z: torch.Tensor) -> Optional[float]:
    """How far apart the rows of ``z`` (N, D) point: sqrt(D) times the mean, over the D dimensions, of the
    standard deviation over the N rows of the L2-normalised rows (Chen & He, SimSiam, CVPR 2021, Sec. 4.1).
    About 1 for directions spread over the sphere, 0 when every row points the same way. None for N < 2.
    One host synchronisation."""
    if z.shape[0] < 2:
        return None
    unit = F.normalize(z.detach().float().flatten(1), dim=1)
    return float(unit.std(dim=0).mean()) * math.sqrt(unit.shape[1])


@torch.no_grad()
def feature_spread(backbone: torch.nn.Module, x: torch.Tensor) -> Optional[float]:
    """:func:`embedding_spread` of ``backbone(x)`` for a batch ``x`` (B, ...), in eval mode (dropout off,
    BatchNorm's running statistics, as finetuning and probing see the backbone); its mode is restored.
    The backbone is measured, not the queue's keys: the projection head's BatchNorm in training mode divides
    by the batch's tiny spread and so magnifies it (a collapsed run's keys: 0.20, its backbone: 0.01)."""
    was_training = backbone.training
    backbone.eval()
    try:
        return embedding_spread(backbone(x))
    finally:
        backbone.train(was_training)


def pretraining_collapse(first: Optional[float], last: Optional[float]) -> Optional[str]:
    """A warning (containing "collapsed") when the backbone's :func:`feature_spread` at the last epoch is below
    :data:`COLLAPSE_SPREAD` and has fallen below :data:`COLLAPSE_DROP` times its value at the first epoch."""
    if first is None or last is None or last >= COLLAPSE_SPREAD or last >= COLLAPSE_DROP * first:
        return None
    return (f"pretraining collapsed: the backbone maps different rows to nearly the same direction (spread "
            f"{last:.3g}, down from {first:.3g} after the first epoch; 1 is spread over the sphere, 0 a single "
            "point), so finetuning starts from almost nothing. Check the scale of the inputs (vector data: keep "
            "dataset.standardize on), or lower pretrain.lr")
