"""Where a run computes: the device, and on the CPU the thread count and subnormal flushing
(the ``cpu`` section of a config)."""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from typing import Any, Iterator, Optional, Sequence

import torch

SMALL_MODEL_PARAMS = 4_000_000
"""Models up to this many parameters train with ONE intra-op thread on the CPU (``cpu.num_threads: auto``)."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else must name a device of this machine
    (``cpu``, ``cuda``, ``cuda:N``, ``mps``), or a ValueError says what is wrong."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device '{name}' requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device '{name}' requested but MPS is not available on this machine")
    return dev


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameter elements of ``module``."""
    return sum(p.numel() for p in module.parameters())


def num_threads_for(model: torch.nn.Module, device: torch.device, setting: Any = "auto") -> Optional[int]:
    """The intra-op thread count for training ``model`` (``cpu.num_threads``), or None to keep torch's.

    A number is used as given. ``auto``: small models on the CPU get 1 thread. Their matrices (batch 64 x
    a few hundred) gain from a second thread only on an otherwise idle machine, while beside any other
    busy process the second OpenMP thread waits for a core at every parallel region and the step gets
    several times slower (``benchmarks/README.md``). Larger models (ResNets) keep all threads.
    """
    text = str(setting).strip().lower()
    if text != "auto":
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"cpu.num_threads must be 'auto' or a positive integer, got {setting!r}")
        return int(text)
    if device.type != "cpu":
        return None
    return 1 if count_parameters(model) <= SMALL_MODEL_PARAMS else None


def mixed_precision(amp: object, device: torch.device, key: str) -> tuple[Optional[torch.dtype], torch.amp.GradScaler]:
    """(autocast dtype or None, GradScaler) for the ``amp`` setting named ``key`` (``pretrain.amp``,
    ``classify.amp``) on CUDA.

    ``true`` picks bfloat16 where the GPU has it (no loss scaling needed), else float16; ``"bf16"`` and
    ``"fp16"`` force one. float16 gets a GradScaler; otherwise the scaler is disabled (a pass-through).
    Off the GPU, and for ``false``, no autocast; asked for off the GPU, a warning says it is not applied."""
    if amp is not False and device.type != "cuda":
        warnings.warn(f"{key} {str(amp).lower()}: mixed precision is applied on CUDA only; on {device.type} the "
                      "model trains in float32", UserWarning, stacklevel=2)
    if amp is False or device.type != "cuda":
        return None, torch.amp.GradScaler("cuda", enabled=False)
    if amp == "fp16" or (amp is True and not torch.cuda.is_bf16_supported()):
        return torch.float16, torch.amp.GradScaler("cuda")
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{key} bf16: {torch.cuda.get_device_name(device)} has no bfloat16; use fp16 or true")
    return torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)


MAX_AUTO_WORKERS = 8
"""``num_workers: auto`` never starts more DataLoader workers than this per process."""


CPU_IMAGE_SIDE = 128
"""Images this many pixels on a side or more get a note on the CPU (:func:`cpu_image_note`)."""


def cpu_image_note(input_shape: Sequence[int], device: torch.device, backbone: str) -> Optional[str]:
    """A note for a run about to train on images of ``input_shape`` (C, H, W) at :data:`CPU_IMAGE_SIDE` px or
    more on the CPU, where a step of the paper's setting takes many seconds: the CPU-sized setting the
    README shows. None for vectors, small images or a GPU."""
    if device.type != "cpu" or len(input_shape) != 3 or min(input_shape[1:]) < CPU_IMAGE_SIDE:
        return None
    return (f"note: {backbone} on {input_shape[1]}x{input_shape[2]} images is meant for a GPU; on the CPU a step takes "
            "many seconds (ResNet-50 at 224 px: 33 s for 64 images on a 2-core VM; the progress bar shows the time "
            "left). Sized for a CPU (README, 'Images'): --model.backbone resnet18 --model.small_input true "
            "--dataset.image_size 32")


def loader_workers(setting: Any, device: torch.device, world_size: int = 1) -> int:
    """DataLoader workers computing image views (``pretrain.num_workers``, ``classify.num_workers``).

    A number is used as given. ``auto``: on CUDA, the cores this process may run on, shared by the
    processes of this machine (one per GPU), less one for the main process, at most
    :data:`MAX_AUTO_WORKERS`; elsewhere 0, the views computed inline. Why: augmenting a batch of 256
    photos one by one takes a core longer than a GPU's ResNet-50 step, so inline views would leave the
    GPU waiting (the reference scripts of torchvision and MoCo run 16-32 workers); on a CPU-only machine
    the model's own threads need those cores. The views do not depend on the worker count.
    """
    text = str(setting).strip().lower()
    if text != "auto":
        if not text.isdigit():
            raise ValueError(f"num_workers must be 'auto' or an integer >= 0, got {setting!r}")
        return int(text)
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = max(1, min(int(world_size), torch.cuda.device_count()))
    return max(0, min(MAX_AUTO_WORKERS, cores // local - 1))


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


def denormals_flushed(every_thread: bool = True) -> bool:
    """True when a subnormal float32 product comes out as zero on every intra-op thread (or, with
    ``every_thread=False``, on the calling thread alone, without entering a parallel region).

    Small NORMAL numbers (4 x the smallest) times 1/8, over a vector long enough for each thread's share
    to pass torch's grain size: a thread without the flag leaves subnormal nonzeros.
    """
    n = 65536 * torch.get_num_threads() if every_thread else 8
    return not bool(torch.full((n,), 4 * torch.finfo(torch.float32).tiny).mul_(0.125).any())


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[None]:
    """Run the block with subnormal floats (below 1.2e-38) flushed to zero.

    Why: x86 CPUs compute on subnormal numbers through slow microcode, and long CPU runs make them
    (Adam's moments of dead ReLU units decay through the subnormal range, and long schedules slow down
    part-way; measured in ``benchmarks/README.md``). Flushing changes only values
    below 1.2e-38, which no outcome depends on.

    ``torch.set_flush_denormal`` sets the calling thread's flag; OpenMP worker threads copy it when they
    are created, so enter this block before the process's first parallel region (the training loops do
    so before loading data) and check with :func:`denormals_flushed`. The calling thread's previous
    setting is restored at the end; workers created inside the block keep the flag.
    """
    if not enabled:
        yield
        return
    before = denormals_flushed(every_thread=False)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def software_versions() -> dict[str, str]:
    """The versions a run's numbers depend on: mulsupcon, torch, numpy and Python (kept in ``run.json``)."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    try:
        ours = version("mulsupcon")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "unknown"
    return {"mulsupcon": ours, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


# Optional packages and what each gives (pyproject's extras, and pandas for tables by column name).
OPTIONAL_PACKAGES = {"tensorboard": "--log.tensorboard true", "onnx": "export --format onnx",
                     "pandas": "DataFrames by column name in predict_proba"}


def environment_report(data_home: Optional[str] = None) -> str:
    """What this machine gives mulsupcon, as text for a bug report or before a long run: versions, the
    device ``device: auto`` picks and every GPU with its memory, CPU threads, optional packages, and the
    data home with how many registered datasets are present there."""
    import importlib.util

    import sklearn

    from mulsupcon.data.catalogue import get_data_home
    from mulsupcon.data.listing import files_status
    from mulsupcon.data.registry import list_datasets

    v = software_versions()
    lines = [f"mulsupcon {v['mulsupcon']}, Python {v['python']}, torch {v['torch']}, numpy {v['numpy']}, "
             f"scikit-learn {sklearn.__version__}", f"platform    {platform.platform()}"]
    cuda = torch.cuda.is_available()
    lines.append(f"CUDA        {'available' if cuda else 'not available'} (torch built for CUDA "
                 f"{torch.version.cuda or 'none'})")
    for i in range(torch.cuda.device_count() if cuda else 0):
        props = torch.cuda.get_device_properties(i)
        lines.append(f"  cuda:{i}    {props.name}, {props.total_memory / 2**30:.1f} GiB")
    mps = getattr(torch.backends, "mps", None)
    lines.append(f"MPS         {'available' if mps is not None and mps.is_available() else 'not available'}")
    lines.append(f"device auto {resolve_device('auto')}")
    lines.append(f"CPU         {os.cpu_count()} logical cores; torch uses {torch.get_num_threads()} intra-op threads "
                 f"(small models train with 1: cpu.num_threads auto)")
    for name, use in OPTIONAL_PACKAGES.items():
        found = importlib.util.find_spec(name) is not None
        lines.append(f"{'optional':<12}{name}: {'installed' if found else 'not installed'} ({use})")
    home = get_data_home(data_home)
    specs = list_datasets()
    present = sum(files_status(s, home) in ("present", "folder present") for s in specs)
    downloadable = sum(bool(s.files or s.folder) for s in specs)
    lines.append(f"data home   {home} ({'exists' if home.is_dir() else 'not created yet'}; {present} of the "
                 f"{downloadable} registered datasets with files are present; `mulsupcon datasets list`)")
    return "\n".join(lines)
