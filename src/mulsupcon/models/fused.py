"""The vector encoder's forward in one C++ call, for CPU pretraining (``pretrain.fused_forward``).

On the CPU the yeast MLP's layers are small (batch 64, widths up to 512) and a pretraining step spends
about as much time in Python (module calls, the dropout's code) as in the kernels. The extension in
``mulsupcon/csrc/fused_mlp.cpp`` runs the very ATen operations the modules run, in the same order, on
the same tensors: output, autograd graph, gradients, BatchNorm statistics and random draws are the same
bit for bit. It also releases the GIL, so MoCo's key encoder can run on a second thread beside it.

The extension is compiled with ``torch.utils.cpp_extension.load`` on first use (about 30 s with g++;
cached in torch's extension folder, ``TORCH_EXTENSIONS_DIR``) and needs a C++ compiler and ninja (a
dependency of this package). Without them :func:`load_extension` says why and the caller keeps the
modules.

Supported encoder: ``nn.Sequential(MLPBackbone, ProjectionHead)`` on the CPU in float32/float64 whose
dropouts are :class:`~mulsupcon.train.common.FastDropout` (``use_fast_dropout``), not in place, with
one shared generator, and whose BatchNorm tracks running statistics with a fixed momentum (the layout
:func:`mulsupcon.train.pretrain.build_moco` builds). :func:`unsupported_reason` says what else fails.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .heads import ProjectionHead
from .vector import MLPBackbone

_SOURCE = Path(__file__).resolve().parents[1] / "csrc" / "fused_mlp.cpp"
_lock = threading.Lock()
_state: dict[str, Any] = {}  # "module" once built, or "error" (why it could not be)


def load_extension(verbose: bool = False) -> tuple[Optional[Any], Optional[str]]:
    """(the compiled extension, None), or (None, why it is unavailable); built once per process.

    The first call in a fresh environment compiles ``csrc/fused_mlp.cpp`` (about 30 s); later calls
    and later processes reuse torch's cached build (rebuilt when the source or torch changes).
    """
    with _lock:
        if "module" not in _state and "error" not in _state:
            try:
                from torch.utils.cpp_extension import load

                _state["module"] = load(
                    name="mulsupcon_fused_mlp", sources=[str(_SOURCE)], extra_cflags=["-O3"], verbose=verbose
                )
            except Exception as err:  # no compiler, no ninja, a failed build: keep the modules
                _state["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        return _state.get("module"), _state.get("error")


def _dropouts(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Dropout)]


def unsupported_reason(encoder: nn.Module) -> Optional[str]:
    """Why :class:`FusedMLPEncoder` cannot run ``encoder`` exactly like its modules, or None if it can."""
    from mulsupcon.train.common import FastDropout

    if not (isinstance(encoder, nn.Sequential) and len(encoder) == 2 and isinstance(encoder[0], MLPBackbone)
            and isinstance(encoder[1], ProjectionHead)):
        return "the encoder is not nn.Sequential(MLPBackbone, ProjectionHead)"
    backbone, head = encoder[0], encoder[1]
    n_layers = len(backbone.net) // 3
    expected = [nn.Linear, nn.ReLU, nn.Dropout] * n_layers
    if len(backbone.net) != len(expected) or not all(isinstance(m, t) for m, t in zip(backbone.net, expected)):
        return "the backbone is not [Linear, ReLU, Dropout] x L"
    expected = [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    if len(head.net) != len(expected) or not all(isinstance(m, t) for m, t in zip(head.net, expected)):
        return "the head is not Linear, BatchNorm1d, ReLU, Dropout, Linear"
    if any(m.bias is None for m in encoder.modules() if isinstance(m, nn.Linear)):
        return "a Linear layer has no bias"
    if not all(m.inplace for m in encoder.modules() if isinstance(m, nn.ReLU)):
        return "a ReLU is not in place"
    for m in _dropouts(encoder):
        if type(m) is not FastDropout:
            return "a dropout is not FastDropout (call train.common.use_fast_dropout first)"
        if m.inplace or round(m.p * 65536) >= 65536:
            return "a dropout is in place or drops (almost) everything"
    bn = head.net[1]
    if not (bn.affine and bn.track_running_stats and bn.momentum is not None):
        return "the BatchNorm has no affine parameters, no running statistics or a cumulative momentum"
    tensors = list(encoder.parameters()) + list(encoder.buffers())
    if any(t.device.type != "cpu" for t in tensors):
        return "the encoder is not on the CPU"
    if any(t.dtype not in (torch.float32, torch.float64) for t in encoder.parameters()):
        return "the parameters are not float32 or float64"
    return None


class FusedMLPEncoder:
    """Calls ``encoder`` (see module docstring) through the C++ forward: same result, less Python.

    ``fused(x)`` equals ``encoder(x)`` bit for bit, including autograd (gradients reach the encoder's
    parameters), BatchNorm running statistics, ``num_batches_tracked`` and the dropout draws (from the
    dropouts' shared ``generator``, or torch's global one). Whenever the modules' train/eval flags
    disagree, or the dropouts' generators differ, it simply calls ``encoder(x)``.

    Shapes: x (B, F) -> (B, D), not normalised (as ``encoder``).
    """

    def __init__(self, encoder: nn.Module, extension: Optional[Any] = None):
        reason = unsupported_reason(encoder)
        if reason is not None:
            raise ValueError(f"FusedMLPEncoder cannot run this encoder: {reason}")
        if extension is None:
            extension, error = load_extension()
            if extension is None:
                raise RuntimeError(f"the fused forward's C++ extension is unavailable: {error}")
        self.encoder = encoder
        self._ext = extension
        backbone, head = encoder[0], encoder[1]
        self._linears = [m for m in backbone.net if isinstance(m, nn.Linear)] + [head.net[0], head.net[4]]
        self._dropouts = _dropouts(encoder)
        self._bn: nn.BatchNorm1d = head.net[1]
        self._flagged = [m for m in encoder.modules() if isinstance(m, (nn.Dropout, nn.BatchNorm1d))]
        self._backbone: MLPBackbone = backbone

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) -> (B, D) through the C++ forward."""
        self._backbone.check_input(x)
        train = self._bn.training
        generator = self._dropouts[0].generator if self._dropouts else None
        if any(m.training != train for m in self._flagged) or any(d.generator is not generator for d in self._dropouts):
            return self.encoder(x)
        # Tensors read from the modules' own dicts on every call (a parameter or buffer replaced since is
        # seen), without nn.Module.__getattr__ (48 Python calls per step, ~40 us).
        bn, bn_p, bn_b = self._bn, self._bn._parameters, self._bn._buffers
        return self._ext.mlp_encoder_forward(
            x, [m._parameters["weight"] for m in self._linears], [m._parameters["bias"] for m in self._linears],
            [round(d.p * 65536) for d in self._dropouts], bn_p["weight"], bn_p["bias"], bn_b["running_mean"],
            bn_b["running_var"], bn_b["num_batches_tracked"], float(bn.momentum), float(bn.eps), train, generator,
        )

