"""One prepared check of the CUDA paths, for the few minutes a GPU is lent; ``--smoke`` runs it on the CPU.

    .venv/bin/python benchmarks/gpu_check.py                 # on a GPU: at most ~8 minutes
    .venv/bin/python benchmarks/gpu_check.py --smoke         # on a CPU, tiny sizes, under 5 minutes

No dataset is needed: the images are random uint8 pixels with random multi-hot labels (plus the small
real COCO subsets when MULSUPCON_DATA holds them). Every row goes through the library's own loops
(``pretrain``, ``classify``, ``MulSupConLoss``), never a copy of them. Rows:

  a  MoCo pretraining steps, ResNet-50 at 224 px: fp32 / bf16 autocast / fp16 + GradScaler, channels_last
     off/on, DataLoader workers 0 and 8: images/s (second epoch; the first warms up) and peak memory
  b  the loss forward+backward at B=256, K=65536, C=80 (plain and chunked) against the unavoidable score
     matmul + log-softmax on the same device
  c  resume: N epochs straight against N/2, then --resume; bitwise under deterministic algorithms, and
     the difference without them
  d  one-process DistributedDataParallel (NCCL on a GPU, gloo on the CPU) for a few steps, against the
     same run without DDP
  e  host syncs inside ``pretrain_step``: a CPU proxy counting ``.item()``, ``bool()``, ``.tolist()``,
     ``int()``/``float()``, ``nonzero`` and boolean-mask indexing on tensors; on CUDA also
     ``torch.cuda.set_sync_debug_mode("warn")``. Syncs outside the step (logging intervals, epoch ends)
     are listed by location
  f  a few probe and finetune steps on images from a pretrained backbone (on CUDA also finetuning with
     classify.amp and channels_last)
  g  the vector path most users run: the default vector config (MLP, MulSupCon plus the instance term)
     pretrained and finetuned on the device, its model.pt read back by ``load_run`` on the device and on
     the CPU (the same probabilities within 1e-4), and ``MulSupConClassifier(device=...)`` fit and predict

It prints one table and writes every number to a JSON file (``--out``, default gpu_check.json).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable

# Deterministic cuBLAS (row c) must be configured before CUDA starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

import mulsupcon.train.pretrain as pretrain_module  # noqa: E402
from mulsupcon.config import load_config  # noqa: E402
from mulsupcon.data.dataset import MultiLabelDataset, Splits  # noqa: E402
from mulsupcon.losses import MulSupConLoss  # noqa: E402
from mulsupcon.train.checkpoint import load_checkpoint  # noqa: E402
from mulsupcon.train.classify import classify  # noqa: E402
from mulsupcon.train.data import prepare_data  # noqa: E402
from mulsupcon.train.pretrain import pretrain  # noqa: E402
from mulsupcon.train.rundir import RunDir  # noqa: E402

SIZES = {  # full run on a GPU / smoke run on a CPU
    "full": dict(backbone="resnet50", image=224, batch=64, rows=1024, steps=8, workers=(0, 8),
                 loss=(256, 65536, 80, 256), loss_reps=10, small="resnet18", small_image=64, small_batch=32,
                 sync_steps=20, vector_rows=4000),
    "smoke": dict(backbone="resnet50", image=32, batch=8, rows=96, steps=2, workers=(0, 2),
                  loss=(32, 2048, 20, 64), loss_reps=3, small="resnet18", small_image=32, small_batch=8,
                  sync_steps=6, vector_rows=300),
}


# ----------------------------------------------------------------------------- data and configs
def random_images(n: int, size: int, n_labels: int, seed: int = 0) -> Splits:
    """Random uint8 images (N, 3, S, S) with multi-hot labels (about 3 per image, none empty), split 3:1:1."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    y = (rng.random((n, n_labels)) < 3.0 / n_labels).astype(np.uint8)
    y[np.arange(n), rng.integers(0, n_labels, n)] = 1
    ds = MultiLabelDataset(features=x, labels=y, label_names=[f"c{j}" for j in range(n_labels)], name="random")
    a, b = int(n * 0.6), int(n * 0.8)
    return Splits(train=ds.subset(range(a)), val=ds.subset(range(a, b)), test=ds.subset(range(b, n)))


def image_config(device: str, backbone: str, size: int, batch: int, steps: int, **pretrain: Any) -> dict:
    small = size < 100
    return load_config("images", {
        "device": device, "model.backbone": backbone, "model.small_input": small, "dataset.image_size": size,
        "pretrain.epochs": 2, "pretrain.steps_per_epoch": steps, "pretrain.batch_size": batch,
        "pretrain.queue_size": 4 * batch, "classify.epochs": 2, "classify.steps_per_epoch": steps,
        "classify.batch_size": batch, **{f"pretrain.{k}": v for k, v in pretrain.items()},
    })


def peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return None  # the CPU has no per-run peak counter worth printing


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- host-sync counting
SYNCING = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "numpy", "masked_select",
           "unique", "argwhere"}


class HostSyncCounter(TorchFunctionMode):
    """Counts calls that read a tensor's value back to the host (the CPU proxy of a CUDA sync).

    Each call is attributed to the innermost line of mulsupcon code that made it, and marked as inside
    ``pretrain_step`` or not, by walking the Python stack (only when such a call happens).
    """

    def __init__(self) -> None:
        super().__init__()
        self.in_step: Counter[str] = Counter()
        self.outside: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        bool_index = name == "__getitem__" and len(args) > 1 and _has_bool_tensor(args[1])
        if name in SYNCING or bool_index:
            self._record("boolean-mask index" if bool_index else name)
        return func(*args, **(kwargs or {}))

    def _record(self, what: str) -> None:
        frames = traceback.extract_stack()[:-2]
        ours = [f for f in frames if "mulsupcon" in f.filename and "gpu_check" not in f.filename]
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}" if ours else "outside mulsupcon"
        inside = any(f.name == "pretrain_step" for f in frames)
        (self.in_step if inside else self.outside)[f"{what} at {where}"] += 1


def _has_bool_tensor(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(torch.is_tensor(i) and i.dtype == torch.bool for i in items)


@contextlib.contextmanager
def watched_steps(device: torch.device):
    """Count the steps of the pretraining loop and, on CUDA, the syncs ``set_sync_debug_mode`` reports
    inside them (warn mode is switched on only while a step runs)."""
    real = pretrain_module.pretrain_step
    seen = {"steps": 0, "cuda_sync_warnings": Counter()}

    def step(*args, **kwargs):
        seen["steps"] += 1
        if device.type != "cuda":
            return real(*args, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return real(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                for w in caught:
                    if "synchroniz" in str(w.message):
                        seen["cuda_sync_warnings"][f"{Path(w.filename).name}:{w.lineno}"] += 1

    pretrain_module.pretrain_step = step  # our own function, wrapped for the measurement only
    try:
        yield seen
    finally:
        pretrain_module.pretrain_step = real


# ----------------------------------------------------------------------------- rows
def row_a(dev: torch.device, sz: dict, out: list[dict]) -> None:
    """MoCo pretraining throughput and peak memory over precision, memory format and workers."""
    data = prepare_data(image_config(str(dev), sz["backbone"], sz["image"], sz["batch"], sz["steps"])["dataset"],
                        random_images(sz["rows"], sz["image"], 80))
    variants = [("fp32", False, sz["workers"][-1])]
    if dev.type == "cuda":
        variants = [(amp, cl, sz["workers"][-1]) for amp in ("fp32", "bf16", "fp16") for cl in (False, True)]
        variants.append(("bf16", True, sz["workers"][0]))
    else:
        variants.append(("fp32", False, sz["workers"][0]))
    for amp, channels_last, workers in variants:
        cfg = image_config(str(dev), sz["backbone"], sz["image"], sz["batch"], sz["steps"],
                           amp=False if amp == "fp32" else amp, channels_last=channels_last, num_workers=workers)
        rec = {"row": "a", "what": f"pretrain {sz['backbone']} {sz['image']}px {amp}"
               + (" channels_last" if channels_last else "") + f" workers {workers}", "batch": sz["batch"]}
        reset_peak(dev)
        run = RunDir.in_memory()
        t0 = time.perf_counter()
        pretrain(cfg, run, data=data, quiet=True, echo=False)
        sync(dev)
        history = run.history
        seconds = float(history[-1]["seconds"])  # the second epoch: the first warms up
        rec.update(images_per_s=round(sz["steps"] * sz["batch"] / seconds, 1), epoch2_s=round(seconds, 3),
                   wall_s=round(time.perf_counter() - t0, 2), peak_mem_mb=peak_memory_mb(dev),
                   loss=round(float(history[-1]["loss"]), 4) if history else None)
        out.append(rec)
        _show(rec)


def row_a_coco(dev: torch.device, sz: dict, out: list[dict]) -> None:
    """The same measurement on a real COCO subset (JPEGs decoded once into the cache), when present."""
    home = os.environ.get("MULSUPCON_DATA")
    if not home or not (Path(home) / "coco-mini-obmutescence").is_dir():
        out.append({"row": "a", "what": "pretrain on coco-mini (real JPEGs)", "status": "skipped: no MULSUPCON_DATA/coco-mini-obmutescence"})
        return
    with tempfile.TemporaryDirectory() as cache:
        cfg = image_config(str(dev), sz["backbone"], sz["image"], min(sz["batch"], 32), sz["steps"],
                           amp=dev.type == "cuda", channels_last=dev.type == "cuda", num_workers=sz["workers"][-1])
        cfg["dataset"].update(name="coco-mini-obmutescence", cache_dir=cache, val_fraction=0.2)
        run = RunDir.in_memory()
        pretrain(cfg, run, quiet=True, echo=False)
        seconds = float(run.history[-1]["seconds"])
        rec = {"row": "a", "what": f"pretrain on coco-mini (real JPEGs) {sz['image']}px", "batch": cfg["pretrain"]["batch_size"],
               "images_per_s": round(sz["steps"] * cfg["pretrain"]["batch_size"] / seconds, 1), "peak_mem_mb": peak_memory_mb(dev)}
        out.append(rec)
        _show(rec)


def row_b(dev: torch.device, sz: dict, out: list[dict]) -> None:
    """The loss at the issue's size against the unavoidable matmul + log-softmax."""
    b, k, c, d = sz["loss"]
    g = torch.Generator(device="cpu").manual_seed(0)
    q0 = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1).to(dev)
    refs = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1).to(dev)
    y = (torch.rand(b, c, generator=g) < 3.0 / c).to(torch.uint8).to(dev)
    yk = (torch.rand(k, c, generator=g) < 3.0 / c).to(torch.uint8).to(dev)

    def unavoidable() -> None:
        q = q0.clone().requires_grad_(True)
        (q @ refs.T / 0.1).log_softmax(1).sum().backward()

    def ours(chunk: int | None) -> Callable[[], None]:
        loss_fn = MulSupConLoss(0.1, normalize=False, validate=False, chunk_size=chunk)

        def run() -> None:
            q = q0.clone().requires_grad_(True)
            loss_fn(q, y, refs, yk).backward()
        return run

    chunk = k // 8
    base_ms = None
    for name, fn in (("unavoidable matmul + log-softmax", unavoidable), ("MulSupConLoss plain", ours(None)),
                     (f"MulSupConLoss chunked {chunk}", ours(chunk))):
        fn()  # warm-up (kernels, allocator)
        reset_peak(dev)
        times = []
        for _ in range(sz["loss_reps"]):
            sync(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            times.append(time.perf_counter() - t)
        ms = 1e3 * float(np.median(times))
        base_ms = base_ms or ms
        rec = {"row": "b", "what": f"loss fwd+bwd {name} B={b} K={k} C={c} D={d}", "ms": round(ms, 3),
               "x_unavoidable": round(ms / base_ms, 2), "peak_mem_mb": peak_memory_mb(dev)}
        out.append(rec)
        _show(rec)


def row_c(dev: torch.device, sz: dict, out: list[dict], work: Path) -> Path:
    """N epochs straight against N/2 + resume; returns the straight run (row f starts from it)."""
    cfg = image_config(str(dev), sz["small"], sz["small_image"], sz["small_batch"], 3, amp=dev.type == "cuda",
                       num_workers=2)
    cfg["pretrain"]["epochs"] = 4
    data = prepare_data(cfg["dataset"], random_images(max(4 * sz["small_batch"], 64), sz["small_image"], 20, seed=1))
    for deterministic in (True, False):
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
        torch.backends.cudnn.benchmark = not deterministic
        tag = "det" if deterministic else "default"
        rec = {"row": "c", "what": f"resume 4 epochs vs 2 + resume ({'deterministic algorithms' if deterministic else 'default algorithms'})"}
        try:
            pretrain(cfg, work / f"straight-{tag}", data=data, quiet=True, echo=False)
            pretrain(cfg, work / f"split-{tag}", data=data, quiet=True, echo=False, stop_after_epochs=2)
            pretrain(cfg, work / f"split-{tag}", data=data, quiet=True, echo=False, resume=True)
            a = load_checkpoint(work / f"straight-{tag}" / "checkpoints" / "last.pt")["model"]
            b = load_checkpoint(work / f"split-{tag}" / "checkpoints" / "last.pt")["model"]
            diffs = [float((a[key].double() - b[key].double()).abs().max()) for key in a if a[key].is_floating_point()]
            rec.update(bitwise=all(torch.equal(a[key], b[key]) for key in a), max_abs_diff=max(diffs),
                       tolerance=0.0 if deterministic else 1e-3, status="ok")
            rec["pass"] = rec["bitwise"] if deterministic else rec["max_abs_diff"] <= rec["tolerance"]
        except RuntimeError as err:  # an op without a deterministic implementation names itself here
            rec.update(status=f"error: {str(err).splitlines()[0][:200]}", **{"pass": False})
        finally:
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.benchmark = False
        out.append(rec)
        _show(rec)
    return work / "straight-default"


def row_d(dev: torch.device, sz: dict, out: list[dict], smoke: bool) -> None:
    """One-process DDP in a child process (it owns the process group), against the same run without DDP."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    if dev.type != "cuda":
        env["MULSUPCON_DIST_BACKEND"] = "gloo"
    args = [sys.executable, __file__, "--ddp-child"] + (["--smoke"] if smoke else [])
    rec: dict[str, Any] = {"row": "d", "what": f"1-process DDP ({'nccl' if dev.type == 'cuda' else 'gloo'}) vs no DDP"}
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    if proc.returncode != 0:
        rec.update(status=f"error: {proc.stderr.strip().splitlines()[-1][:300] if proc.stderr.strip() else proc.returncode}",
                   **{"pass": False})
    else:
        ddp = json.loads(proc.stdout.strip().splitlines()[-1])
        env_plain = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        plain = subprocess.run(args, env=env_plain, capture_output=True, text=True, timeout=300)
        single = json.loads(plain.stdout.strip().splitlines()[-1]) if plain.returncode == 0 else None
        rec.update(ddp_losses=ddp["losses"], ddp=ddp["ddp"], status="ok")
        if single is not None:
            rec["max_loss_diff_vs_single"] = max(abs(a - b) for a, b in zip(ddp["losses"], single["losses"]))
            rec["pass"] = ddp["ddp"] and rec["max_loss_diff_vs_single"] <= 1e-4
    out.append(rec)
    _show(rec)


def ddp_child(dev: torch.device, sz: dict) -> None:
    from mulsupcon.train import distributed as dist_utils

    cfg = image_config(str(dev), sz["small"], sz["small_image"], sz["small_batch"], 3)
    cfg["pretrain"]["epochs"] = 2
    data = prepare_data(cfg["dataset"], random_images(max(4 * sz["small_batch"], 64), sz["small_image"], 20, seed=2))
    ctx = dist_utils.context()
    run = RunDir.in_memory()
    pretrain(cfg, run, data=data, quiet=True, echo=False)
    print(json.dumps({"ddp": bool(ctx.enabled), "losses": [h["loss"] for h in run.history]}))
    dist_utils.shutdown()


def row_e(dev: torch.device, sz: dict, out: list[dict]) -> None:
    """Host syncs inside pretrain_step (none expected) and outside it (logging intervals, epoch ends)."""
    for backbone, size, amp in ((sz["small"], sz["small_image"], "bf16" if dev.type == "cuda" else False),
                                (sz["small"], sz["small_image"], "fp16" if dev.type == "cuda" else False)):
        cfg = image_config(str(dev), backbone, size, sz["small_batch"], sz["sync_steps"], amp=amp, num_workers=2)
        cfg["pretrain"]["epochs"] = 1
        data = prepare_data(cfg["dataset"], random_images(max(4 * sz["small_batch"], 64), size, 20, seed=3))
        counter = HostSyncCounter()
        with watched_steps(dev) as seen, counter:
            pretrain(cfg, RunDir.in_memory(), data=data, quiet=True, echo=False)
        rec = {"row": "e", "what": f"host syncs, pretraining {backbone} {size}px amp={amp or 'off'}",
               "steps": seen["steps"], "proxy_in_step": sum(counter.in_step.values()),
               "proxy_in_step_by_place": dict(counter.in_step), "proxy_outside_step": dict(counter.outside),
               "cuda_sync_warnings_in_step": dict(seen["cuda_sync_warnings"]) if dev.type == "cuda" else None}
        rec["pass"] = rec["proxy_in_step"] == 0 and not rec["cuda_sync_warnings_in_step"]
        out.append(rec)
        _show(rec)
        if dev.type != "cuda":
            break  # amp is CUDA only: the second variant would repeat the first


def row_f(dev: torch.device, sz: dict, out: list[dict], backbone_run: Path | None, work: Path) -> None:
    """A few probe and finetune steps on images from a pretrained backbone."""
    cfg = image_config(str(dev), sz["small"], sz["small_image"], sz["small_batch"], 3)
    data = prepare_data(cfg["dataset"], random_images(max(4 * sz["small_batch"], 64), sz["small_image"], 20, seed=1))
    if backbone_run is None or not (backbone_run / "backbone.pt").is_file():
        pretrain(cfg, work / "f-pre", data=data, quiet=True, echo=False)
        backbone_run = work / "f-pre"
    variants = [("probe", 0, False), ("finetune", 2, False)]
    if dev.type == "cuda":  # classify.amp / channels_last are CUDA only: on the CPU it would repeat the row above
        variants.append(("finetune", 2, True))
    for mode, workers, amp in variants:
        c = copy.deepcopy(cfg)
        c["classify"].update(mode=mode, num_workers=workers, augment="flip_crop", amp=amp, channels_last=amp)
        t0 = time.perf_counter()
        results = classify(c, RunDir.in_memory(), from_run=backbone_run, data=data, quiet=True, echo=False)
        wall = time.perf_counter() - t0
        rec = {"row": "f", "what": f"{mode} {sz['small']} {sz['small_image']}px workers {workers}"
                                 + (" amp channels_last" if amp else ""),
               "wall_s": round(wall, 2), "test_mAP": round(float(results["protocols"]["fixed"]["mAP"]), 4)}
        rec["pass"] = bool(np.isfinite(rec["test_mAP"]))
        out.append(rec)
        _show(rec)


def row_g(dev: torch.device, sz: dict, out: list[dict], work: Path) -> None:
    """The vector path: pretrain + finetune with the vector defaults on ``dev``; the saved model on ``dev``
    against the CPU; the scikit-learn estimator on ``dev``."""
    from mulsupcon import load_run
    from mulsupcon.estimator import MulSupConClassifier

    rng = np.random.default_rng(2)
    n, f, c = sz["vector_rows"], 64, 10
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (x[:, :c] + 0.5 * rng.normal(size=(n, c)) > 0.8).astype(np.uint8)  # learnable labels
    y[np.arange(n), rng.integers(0, c, n)] = 1
    ds = MultiLabelDataset(features=x, labels=y, label_names=[f"l{j}" for j in range(c)], name="random-vectors")
    a, b = int(n * 0.6), int(n * 0.8)
    cfg = load_config("vectors", {"device": str(dev), "dataset.name": "random-vectors", "pretrain.epochs": 3,
                                  "classify.epochs": 3})
    data = prepare_data(cfg["dataset"], Splits(train=ds.subset(range(a)), val=ds.subset(range(a, b)),
                                               test=ds.subset(range(b, n))))
    t0 = time.perf_counter()
    pretrain(cfg, work / "g-pre", data=data, quiet=True, echo=False)
    c_cfg = copy.deepcopy(cfg)
    c_cfg["classify"]["mode"] = "finetune"
    results = classify(c_cfg, work / "g-ft", from_run=work / "g-pre", data=data, quiet=True, echo=False)
    wall = time.perf_counter() - t0
    test_x = x[b:]
    on_dev = load_run(work / "g-ft", device=str(dev)).predict_proba(test_x)
    on_cpu = load_run(work / "g-ft", device="cpu").predict_proba(test_x)
    diff = float(np.abs(on_dev - on_cpu).max())
    rec = {"row": "g", "what": f"vectors: pretrain + finetune ({n} rows), model on {dev.type} vs cpu",
           "wall_s": round(wall, 2), "test_mAP": round(float(results["protocols"]["fixed"]["mAP"]), 4),
           "max_abs_diff": diff}
    rec["pass"] = bool(np.isfinite(rec["test_mAP"]) and diff <= 1e-4)
    out.append(rec)
    _show(rec)
    t0 = time.perf_counter()
    clf = MulSupConClassifier(pretrain_epochs=2, epochs=2, device=str(dev), random_state=0).fit(x[:b], y[:b])
    proba = clf.predict_proba(test_x)
    rec = {"row": "g", "what": f"MulSupConClassifier(device={dev.type!r}) fit + predict_proba",
           "wall_s": round(time.perf_counter() - t0, 2), "test_mAP": round(float(clf.score(test_x, y[b:])), 4)}
    rec["pass"] = bool(proba.shape == (n - b, c) and np.isfinite(proba).all())
    out.append(rec)
    _show(rec)


# ----------------------------------------------------------------------------- output
def _show(rec: dict) -> None:
    keys = [k for k in ("images_per_s", "ms", "x_unavoidable", "peak_mem_mb", "bitwise", "max_abs_diff", "steps",
                        "proxy_in_step", "max_loss_diff_vs_single", "test_mAP", "wall_s", "pass", "status") if k in rec]
    print(f"{rec['row']}  {rec['what']:70s} " + "  ".join(f"{k}={rec[k]}" for k in keys), flush=True)


def environment(dev: torch.device) -> dict:
    info = {"torch": torch.__version__, "device": str(dev), "cuda": torch.version.cuda,
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    if dev.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(dev), bf16=torch.cuda.is_bf16_supported(),
                    cudnn=torch.backends.cudnn.version())
    else:
        info.update(threads=torch.get_num_threads())
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (what the test suite runs)")
    ap.add_argument("--rows", default="a,b,c,d,e,f,g", help="comma-separated rows to run (default: all)")
    ap.add_argument("--out", default="gpu_check.json", help="where the JSON goes")
    ap.add_argument("--ddp-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    dev = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    sz = SIZES["smoke" if args.smoke else "full"]
    if args.ddp_child:
        ddp_child(dev, sz)
        return 0
    if not args.smoke and dev.type != "cuda":
        print("no CUDA device: run with --smoke for the CPU version", file=sys.stderr)
        return 2
    rows = set(args.rows.split(","))
    result: dict[str, Any] = {"environment": environment(dev), "smoke": args.smoke, "rows": []}
    print(json.dumps(result["environment"]))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backbone_run = None
        steps = [("a", lambda: (row_a(dev, sz, result["rows"]), row_a_coco(dev, sz, result["rows"]))),
                 ("b", lambda: row_b(dev, sz, result["rows"])),
                 ("c", lambda: row_c(dev, sz, result["rows"], work)),
                 ("d", lambda: row_d(dev, sz, result["rows"], args.smoke)),
                 ("e", lambda: row_e(dev, sz, result["rows"])),
                 ("f", lambda: row_f(dev, sz, result["rows"], backbone_run, work)),
                 ("g", lambda: row_g(dev, sz, result["rows"], work))]
        for name, fn in steps:
            if name not in rows:
                continue
            t = time.perf_counter()
            try:
                value = fn()
                if name == "c":
                    backbone_run = value
            except Exception as err:  # one broken row must not hide the others: it is reported and the check goes on
                rec = {"row": name, "what": "row failed", "status": f"error: {type(err).__name__}: {err}"[:400],
                       "traceback": traceback.format_exc()[-2000:], "pass": False}
                result["rows"].append(rec)
                _show(rec)
            result.setdefault("row_seconds", {})[name] = round(time.perf_counter() - t, 1)
            Path(args.out).write_text(json.dumps(result, indent=2, default=str))  # partial results survive a timeout
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    result["all_pass"] = all(r.get("pass", True) for r in result["rows"])
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"total {result['total_seconds']} s, all pass: {result['all_pass']}, JSON: {args.out}")
    return 0 if result["all_pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
