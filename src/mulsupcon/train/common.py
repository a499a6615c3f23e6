"""Pieces shared by the pretraining and classification loops: device, optimiser, schedule, logging."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from mulsupcon.train.checkpoint import atomic_write_json


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available on this machine")
    return dev


def make_optimizer(groups: Iterable[dict], section: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam (a :class:`DirectAdam` where fused kernels exist) or SGD over parameter groups (each group
    may carry its own ``lr``)."""
    groups = [g for g in groups if g["params"]]
    wd = float(section.get("weight_decay", 0.0))
    if section["optimizer"] == "adam":
        cls = DirectAdam if _FUSED_OK else torch.optim.Adam
        return cls(groups, lr=float(section["lr"]), weight_decay=wd, **_fast_impl())
    return torch.optim.SGD(
        groups, lr=float(section["lr"]), momentum=float(section.get("sgd_momentum", 0.9)), weight_decay=wd, **_fast_impl()
    )


class DirectAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` whose step calls the fused multi-tensor kernel directly.

    Same state, same ``state_dict``, same arithmetic as ``Adam(fused=True)``: per parameter group, one
    ``_foreach_add_`` of the step counters and one ``_fused_adam_`` call on the same tensors. It skips
    the generic step's bookkeeping (grouping tensors by device and dtype, profiler scopes, checks), about
    70 us per call (536 -> 464 us for the yeast MLP's 421,632 parameters on one CPU thread). The first
    step (which creates the state) and anything the direct call does not cover go through
    ``torch.optim.Adam.step``: a closure, step
    hooks, a GradScaler's ``grad_scale``/``found_inf``, amsgrad, decoupled weight decay, capturable or
    differentiable mode, a tensor learning rate, sparse gradients, or mixed devices/dtypes in a group.
    """

    def _direct_plan(self) -> Optional[list]:
        """[(group, params with a gradient)] when every group can take the direct call, else None."""
        if self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks:
            return None
        if getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None:
            return None
        plan = []
        for g in self.param_groups:
            if not g.get("fused") or g["amsgrad"] or g["capturable"] or g["differentiable"]:
                return None
            if g.get("decoupled_weight_decay") or isinstance(g["lr"], torch.Tensor):
                return None
            params = [q for q in g["params"] if q.grad is not None]
            if params:
                first = params[0]
                for q in params:
                    if q.grad.is_sparse or not self.state.get(q) or q.device != first.device or q.dtype != first.dtype:
                        return None
            plan.append((g, params))
        return plan

    def _step_counters(self, states: list) -> list:
        """The ``step`` tensors of ``states``, advanced by one.

        On the CPU ``_foreach_add_`` is a Python-visible loop of one tiny kernel per tensor (~10 us each, with a
        scalar conversion). So the counters are kept as 0-d views of one buffer (same values, same state dict
        entries) and advanced with a single ``add_``; the views are rebuilt when the state's tensors change
        (first step, ``load_state_dict``).
        """
        steps = [st["step"] for st in states]
        cache = self.__dict__.setdefault("_counter_views", {})
        key = id(states[0]) if states else None
        cached = cache.get(key)
        if cached is not None and len(cached[1]) == len(steps) and all(a is b for a, b in zip(cached[1], steps)):
            cached[0].add_(1)
            return steps
        first = steps[0]
        if not all(torch.is_tensor(t) and t.dim() == 0 and t.dtype == first.dtype and t.device == first.device
                   for t in steps):
            torch._foreach_add_(steps, 1)
            return steps
        buffer = torch.stack(steps)
        for i, st in enumerate(states):
            st["step"] = buffer[i]
        steps = [st["step"] for st in states]
        cache[key] = (buffer, steps)
        buffer.add_(1)
        return steps

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        plan = self._direct_plan() if closure is None else None
        if plan is None:
            return super().step(closure)
        for g, params in plan:
            if not params:
                continue
            states = [self.state[q] for q in params]
            steps = self._step_counters(states)
            beta1, beta2 = g["betas"]
            torch._fused_adam_(
                params, [q.grad for q in params], [st["exp_avg"] for st in states],
                [st["exp_avg_sq"] for st in states], [], steps,
                amsgrad=False, lr=g["lr"], beta1=float(beta1), beta2=float(beta2),
                weight_decay=g["weight_decay"], eps=g["eps"], maximize=g["maximize"],
            )
        return None


def scheduled_factor(section: Mapping[str, Any], epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at (epoch, step) for the pretraining schedules, a pure function.

    ``cosine``: one half-cosine over the whole run, per step, down to ``eta_min / lr``.
    ``cosine_restarts``: SGDR (Loshchilov & Hutter) with ``T_0 = restart_epochs`` epochs and
    ``T_mult = restart_mult``, evaluated per epoch like the authors' code.
    ``constant``: 1.
    Being a pure function of the position (no scheduler object), a resumed run gets the same rates.
    """
    kind = section["scheduler"]
    base = float(section["lr"])
    floor = float(section.get("eta_min", 0.0)) / base if base > 0 else 0.0
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        total = max(1, int(section["epochs"]) * steps_per_epoch)
        t = min(epoch * steps_per_epoch + step, total)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t / total))
    t0, mult = int(section["restart_epochs"]), int(section["restart_mult"])
    e, length = epoch, t0
    while e >= length:
        e -= length
        length *= mult
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * e / length))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every group's ``initial_lr`` by ``factor``."""
    for g in optimizer.param_groups:
        g["lr"] = g.setdefault("initial_lr", g["lr"]) * factor


class RunLog:
    """Human log (``log.txt``) plus a progress display: a tqdm bar, or plain lines with ``quiet``."""

    def __init__(self, run_dir: Path, *, quiet: bool = False, enabled: bool = True, echo: bool = True):
        self.path = Path(run_dir) / "log.txt"
        self.quiet = quiet or not echo
        self.echo = echo
        self.enabled = enabled
        self._bar = None
        self._t0 = time.time()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"[{stamp}] {text}\n")
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif self.echo:
            print(text, file=sys.stderr, flush=True)

    def bar(self, total: int, desc: str, initial: int = 0):
        """A progress bar over ``total`` steps (a no-op object when quiet or disabled)."""
        if self.quiet or not self.enabled:
            return _NullBar()
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True)
        return self._bar

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _NullBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, *args, **kwargs) -> None: ...

    def close(self) -> None: ...


def write_history(run_dir: Path, history: list[dict]) -> None:
    """Per-epoch history (loss, lr, validation metrics) as JSON, atomically."""
    atomic_write_json(Path(run_dir) / "history.json", history)


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def maybe(value: Optional[Any], default: Any) -> Any:
    return default if value is None else value


def _fast_impl() -> dict:
    """Fused optimiser kernels (one kernel for all parameters) where this torch build has them.

    On small models the per-tensor Python/dispatch overhead of the optimiser step dominates; the
    fused implementation removes most of it. Falls back to ``foreach`` otherwise.
    """
    return {"fused": True} if _FUSED_OK else {"foreach": True}


def _probe_fused() -> bool:
    try:
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = torch.zeros(2)
        torch.optim.Adam([p], fused=True).step()
        torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


_FUSED_OK = _probe_fused()


# ----------------------------------------------------------------------------- CPU speed policy
SMALL_MODEL_PARAMS = 4_000_000
"""Models up to this many parameters train with ONE intra-op thread on the CPU (see ``cpu_threads``)."""


def auto_num_threads(model: torch.nn.Module, device: torch.device, setting: Any = "auto") -> Optional[int]:
    """The intra-op thread count a training loop should use, or None to leave torch's setting.

    ``MULSUPCON_NUM_THREADS`` wins when set, then ``setting`` (the config's ``num_threads``) when it
    is a number. ``auto``: small models on the CPU get 1 thread. Their matrices (batch 64 x a few
    hundred) gain from a second thread only on an idle machine (yeast MLP step: 1 thread 7.4-8.8 ms,
    2 threads 5.7-7.7 ms), while beside any other busy process the second OpenMP thread waits for a
    core at every parallel region (2 threads 28 ms/step next to one CPU-bound process, 1 thread
    8.5 ms; benchmarks/README.md). Results also differ in rounding between thread counts, so the
    count is part of what makes a run reproducible. ResNets keep all threads.
    """
    env = os.environ.get("MULSUPCON_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"MULSUPCON_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    text = str(setting).strip().lower()
    if text != "auto":
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"num_threads must be 'auto' or a positive integer, got {setting!r}")
        return int(text)
    if device.type != "cpu":
        return None
    return 1 if count_parameters(model) <= SMALL_MODEL_PARAMS else None


def flatten_parameters(params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    """Move the values of ``params`` into one contiguous buffer (N,), each becoming a view of it; returns it.

    What was elementwise over the tensors (MoCo's momentum update) becomes one kernel call on the buffer.
    Gradients are untouched: autograd still hands each parameter its own fresh gradient, which it keeps
    without copying (so no zeroing and no accumulation pass per step). Do not move the module to another
    device or memory format afterwards (that would copy the views out of the buffer).
    """
    params = list(params)
    if not params:
        raise ValueError("flatten_parameters needs at least one parameter")
    first = params[0]
    if any(q.dtype != first.dtype or q.device != first.device for q in params):
        raise ValueError("flatten_parameters needs parameters of one dtype on one device")
    flat = torch.empty(sum(q.numel() for q in params), dtype=first.dtype, device=first.device)
    offset = 0
    with torch.no_grad():
        for q in params:
            n = q.numel()
            flat[offset : offset + n].copy_(q.reshape(-1))
            q.data = flat[offset : offset + n].view_as(q)
            offset += n
    return flat


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def want_key_overlap(setting: Any, device: torch.device, distributed: bool) -> bool:
    """Whether pretraining runs MoCo's key side on a second thread (``pretrain.overlap_key_encoder``).

    ``auto``: on the CPU, single process, when the loop uses one intra-op thread (small models, see
    :func:`auto_num_threads`) and a second core is free. The key encoder's forward is about a third
    of a step, and one core each for the two encoders beats two intra-op threads on matrices this
    small. ``true`` asks for it anywhere it is possible (not with several processes: collectives
    must stay on one thread); on CUDA kernels are asynchronous already, so it is never used there.
    """
    text = str(setting).strip().lower()
    if text not in ("auto", "true", "false"):
        raise ValueError(f"pretrain.overlap_key_encoder must be auto, true or false, got {setting!r}")
    if text == "false" or device.type != "cpu":
        return False
    if text == "true":
        if distributed:
            raise ValueError("pretrain.overlap_key_encoder=true needs a single process (collectives stay on one thread)")
        return True
    return not distributed and torch.get_num_threads() == 1 and available_cpus() >= 2


@contextlib.contextmanager
def worker_thread(num_threads: int, flush_denormal: bool = False) -> Iterator[Executor]:
    """A one-thread executor whose thread uses ``num_threads`` intra-op threads (a per-thread
    setting in OpenMP) and, with ``flush_denormal``, flushes subnormal floats to zero (a per-thread
    CPU flag, see :func:`flush_denormals`); shut down when the block ends, however it ends."""

    def setup() -> None:
        torch.set_num_threads(num_threads)
        if flush_denormal:
            set_flush_denormal_everywhere(True)

    pool = ThreadPoolExecutor(1, thread_name_prefix="mulsupcon-keys", initializer=setup)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


def _gnu_openmp() -> Optional[ctypes.CDLL]:
    """The GNU OpenMP runtime torch runs its intra-op threads on, if that is what it uses (Linux pip
    builds), else None.

    Other packages bring their own copy (scikit-learn's wheel has ``scikit_learn.libs/libgomp-*.so``),
    each with its own threads, so only a copy inside torch's folder, or the only copy loaded, counts.
    """
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "libgomp" in line and "/" in line})
    except OSError:
        return None
    torch_dir = os.path.dirname(os.path.realpath(torch.__file__)) + os.sep
    own = [p for p in paths if os.path.realpath(p).startswith(torch_dir)]
    candidates = own or (paths if len(paths) == 1 else [])
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)  # already loaded: this returns the same library, not a second copy
        except OSError:
            continue
        if hasattr(lib, "GOMP_parallel"):
            return lib
    return None


_OMP_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def set_flush_denormal_everywhere(on: bool) -> bool:
    """Set flush-to-zero / denormals-are-zero on the calling thread AND its intra-op threads.

    ``torch.set_flush_denormal`` sets a flag of the calling thread's CPU state only; OpenMP's worker
    threads, which run half of every parallel matrix product at 2 threads, keep theirs. Here the
    call is also run inside one OpenMP parallel region of ``torch.get_num_threads()`` threads (the
    same team torch's kernels use from this thread), through libgomp's ``GOMP_parallel``.

    Returns True when every thread that computes for this one ends up in the requested state, as
    :func:`denormals_flushed` measures it; False when the CPU lacks the flags or some worker could
    not be reached (then the calling thread has the setting, the others keep theirs).
    """
    if not torch.set_flush_denormal(on):
        return False
    if torch.get_num_threads() > 1:
        lib = _gnu_openmp()
        if lib is not None:
            task = _OMP_TASK(lambda _: torch.set_flush_denormal(on))  # runs once on each thread of the team
            lib.GOMP_parallel.argtypes = [_OMP_TASK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            lib.GOMP_parallel.restype = None
            lib.GOMP_parallel(task, None, torch.get_num_threads(), 0)
    return denormals_flushed() == on


def denormals_flushed() -> bool:
    """True when a subnormal float32 product comes out as zero on every intra-op thread of this one.

    Multiplies a vector of small NORMAL numbers (4 x the smallest) by 1/8, long enough to be split
    over all intra-op threads (each share is past torch's grain size): a thread without the flag
    leaves subnormal nonzeros. (A subnormal fill value would itself be flushed by this thread's
    conversion when it has the flag, hiding the workers' state.)"""
    n = 65536 * max(1, torch.get_num_threads())
    return not bool(torch.full((n,), 4 * torch.finfo(torch.float32).tiny).mul_(0.125).any())


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[bool]:
    """Run the block with subnormal floats flushed to zero on this thread and its intra-op threads.

    Why: arithmetic on subnormal numbers (below 1.2e-38 in float32) takes a slow microcode path on
    x86 CPUs. Long CPU runs make them: Adam's first moment of a dead ReLU unit's weights decays
    towards zero through the subnormal range, and the unit's weights follow. In the authors' yeast
    schedule this made steps 1.3-1.5x slower from epoch ~10 on (benchmarks/README.md). Flushing changes
    only values below 1.2e-38 (to zero), which no training outcome depends on; TensorFlow does the
    same by default. Yields whether the setting reached every computing thread. Restores the
    previous state (as :func:`denormals_flushed` saw it) when the block ends, however it ends.
    """
    if not enabled:
        yield False
        return
    before = denormals_flushed()
    try:
        yield set_flush_denormal_everywhere(True)
    finally:
        if not before:
            set_flush_denormal_everywhere(False)


def enter_flush_denormals(stack: contextlib.ExitStack, enabled: bool, log: Any) -> bool:
    """Enter :func:`flush_denormals` (``enabled``) on a training loop's ``stack``; when it is asked for but
    cannot reach every computing thread, say so with ``log.line`` (a :class:`RunLog`). Returns the result."""
    reached = stack.enter_context(flush_denormals(enabled))
    if enabled and not reached:
        log.line("note: subnormal floats could not be flushed on every thread (no x86 flags, or not GNU OpenMP); "
                 "long runs may slow down")
    return reached


@contextlib.contextmanager
def cpu_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (None: unchanged), restoring the old count."""
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def _signed64(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


# SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of xoshiro): state += GAMMA, then two
# xor-shift-multiply rounds. Its i-th output is a function of (seed, i) alone, so a whole mask comes
# from ONE draw of the dropout's generator, and any slice of it can be computed independently.
_SPLITMIX_GAMMA = _signed64(0x9E3779B97F4A7C15)
_SPLITMIX_MUL1 = _signed64(0xBF58476D1CE4E5B9)
_SPLITMIX_MUL2 = _signed64(0x94D049BB133111EB)


def _shift_right_logical(z: torch.Tensor, bits: int) -> torch.Tensor:
    """``z >>> bits`` for int64 (torch's ``>>`` shifts in copies of the sign bit)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(seed: int, n: int) -> torch.Tensor:
    """The first ``n`` outputs of SplitMix64 started at ``seed``, as int64 (two's complement of the uint64).

    Shapes: -> (n,) int64. Multiplications wrap modulo 2^64 as in the reference C code (tested against a
    numpy uint64 implementation and against the C++ extension).
    """
    z = torch.arange(1, n + 1, dtype=torch.int64).mul_(_SPLITMIX_GAMMA).add_(seed)
    z = (z ^ _shift_right_logical(z, 30)).mul_(_SPLITMIX_MUL1)
    z = (z ^ _shift_right_logical(z, 27)).mul_(_SPLITMIX_MUL2)
    return z ^ _shift_right_logical(z, 31)


def draw_seed(generator: Optional[torch.Generator] = None) -> int:
    """One 64-bit draw from ``generator`` (None: torch's global CPU generator), as a Python int."""
    return int(torch.empty(1, dtype=torch.int64).random_(-(2**63), None, generator=generator).item())


class FastDropout(torch.nn.Dropout):
    """``nn.Dropout`` for the CPU from 16-bit random lanes: same distribution up to a 2^-16 step in p.

    PyTorch's CPU dropout draws a Bernoulli tensor (a slow per-element path), then divides and
    multiplies; dropout was the largest single cost of the yeast MLP pretraining step (8 dropout
    layers per step). Here each call draws ONE 64-bit seed from the generator and expands it with
    SplitMix64 (:func:`splitmix64`) into 64-bit words, each giving four 16-bit lanes; an element is
    kept when its lane is at least ``round(p * 65536)`` (as unsigned): keep probability
    ``q = 1 - round(p * 65536) / 65536``, and kept elements are scaled by ``1 / q`` so the
    expectation is exactly preserved. The C++ forward of the vector encoder
    (:mod:`mulsupcon.models.fused`) computes the same masks in one pass, bit for bit.

    ``generator`` (attribute, default None = torch's global CPU generator) lets a module draw from
    its own stream: MoCo's key encoder uses one so that it can run on another thread with results
    that do not depend on thread timing. Being a subclass of ``nn.Dropout`` without tensors, it is
    invisible to ``state_dict`` and ``isinstance``. Shapes: any -> same.
    """

    generator: Optional[torch.Generator] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        dropped = round(self.p * 65536)  # lanes below this (as unsigned 16-bit) drop their element
        if dropped >= 65536 or x.device.type != "cpu":
            return F.dropout(x, self.p, True, self.inplace)  # accelerators: the fused kernel is better
        if dropped == 0:
            return x
        n = x.numel()
        words = splitmix64(draw_seed(self.generator), (n + 3) // 4)
        lanes = words.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
        # The comparison runs on float32 copies of the lanes, in place: comparisons and casts with
        # bool or int16 results are not vectorised here and cost 3x more (int16 -> float32 is exact).
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        mask = lanes.to(work).ge_(dropped - 32768).mul_(65536.0 / (65536 - dropped)).to(x.dtype)
        return x.mul_(mask) if self.inplace else x * mask


def set_dropout_generator(module: torch.nn.Module, generator: Optional[torch.Generator]) -> None:
    """Make every :class:`FastDropout` inside ``module`` draw from ``generator`` (None: the global one)."""
    for m in module.modules():
        if isinstance(m, FastDropout):
            m.generator = generator


def use_fast_dropout(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every plain ``nn.Dropout`` inside ``module`` by :class:`FastDropout` (in place; returns it)."""
    for name, child in list(module.named_children()):
        if type(child) is torch.nn.Dropout:
            setattr(module, name, FastDropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
    return module
