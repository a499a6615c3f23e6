"""Pretraining throughput on the CPU: the yeast MLP through the REAL loop, and ResNet steps on images.

Usage (from the repository root, data home in MULSUPCON_DATA)::

    PYTHONPATH=src .venv/bin/python benchmarks/throughput.py vector [--threads 1 2] [--repeats 3] [--profile]
    PYTHONPATH=src .venv/bin/python benchmarks/throughput.py vector-interleaved --threads 1 2 [--rounds 5]
    PYTHONPATH=src .venv/bin/python benchmarks/throughput.py images [--arch resnet18 resnet50] [--sizes 32 224]
    PYTHONPATH=src .venv/bin/python benchmarks/throughput.py full [--threads 2]  # the whole authors' schedule, timed
    PYTHONPATH=src .venv/bin/python benchmarks/throughput.py denormals [--epochs 12] [--rounds 3]

``vector`` runs :func:`mulsupcon.train.pretrain.pretrain` on config ``yeast-authors`` (batch 64,
queue 256, MLP 103->256->512->256 + head) twice per repeat, with ``steps_per_epoch`` = S1 and S2 and
``stop_after_epochs=1``; the per-step time is the DIFFERENCE divided by S2 - S1, so setup, data
preparation and checkpoint writing cancel out. Wall time and process CPU time are both reported:
on a shared machine the CPU time per step is what an idle core would give. Best of ``--repeats``.

``denormals`` trains the authors' schedule for ``--epochs`` epochs, counts the subnormal floats in
the checkpoint, then times epoch ``epochs + 1`` (1000 steps, resumed from that checkpoint) with
``flush_denormals`` on and off, the two taking turns ``--rounds`` times: the steady state of a long
run, which the short ``vector`` timings (epoch 1, no subnormals yet) do not see.

``images`` times MoCo steps (augmentation of two views, query forward+backward, key forward,
MulSupCon loss, Adam) with torchvision ResNets on random uint8 images, and splits the time into
phases with explicit timers.

Each table is printed with the machine's load average (``os.getloadavg``) at the time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mulsupcon.config import load_config  # noqa: E402

AUTHORS_STEPS = 150 * 1000  # 150 "epochs" of 1000 steps in the authors' yeast schedule
TARGET_S = 15 * 60


def machine_speed() -> str:
    """The VM's speed right now: GFLOP/s of one (64 x 256) @ (256 x 512) float32 product on one thread
    (best of 5 x 500). This VM's own speed moved 84-129 between days; quote it beside every timing."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, w, b = torch.randn(64, 256), torch.randn(512, 256), torch.randn(512)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(500):
                torch.addmm(b, a, w.t())
            best = min(best, (time.perf_counter() - t) / 500)
    finally:
        torch.set_num_threads(old)
    return f"reference matmul {2 * 64 * 256 * 512 / best / 1e9:.0f} GFLOP/s"


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} CPUs"


def _timed_run(cfg: dict, data, steps: int, overrides: Optional[dict] = None) -> tuple[float, float]:
    """(wall s, CPU s) of one real pretraining call cut after its first epoch of ``steps`` steps.

    ``overrides`` (see :func:`_setup`) replace the config's ``cpu.num_threads``."""
    from mulsupcon.train.pretrain import pretrain

    cfg = _apply(cfg, overrides or {})
    cfg["pretrain"]["steps_per_epoch"] = steps
    with tempfile.TemporaryDirectory() as tmp:
        w, c = time.perf_counter(), time.process_time()
        pretrain(cfg, Path(tmp) / "run", quiet=True, data=data, stop_after_epochs=1, echo=False)
        return time.perf_counter() - w, time.process_time() - c


def _apply(cfg: dict, overrides: dict) -> dict:
    """A copy of ``cfg`` with the setup's thread count (``overrides["num_threads"]``, if given)."""
    cfg = {**cfg, "pretrain": dict(cfg["pretrain"]), "cpu": dict(cfg["cpu"])}
    if overrides.get("num_threads") is not None:
        cfg["cpu"]["num_threads"] = overrides["num_threads"]
    return cfg


def _setup(spec: str) -> tuple[str, dict]:
    """``config`` (the shipped config as is: 2 threads) | ``auto`` (the automatic choice: 1 thread for the
    MLP) | ``N`` (N intra-op threads) -> (label, overrides for :func:`_apply`)."""
    if spec == "config":
        return "as configs/yeast-authors.yaml (2 threads)", {}
    if spec == "auto":
        return "auto (1 thread for the MLP)", {"num_threads": "auto"}
    if not spec.isdigit():
        raise SystemExit(f"--threads: expected config, auto or N, got {spec!r}")
    return f"{spec} thread(s)", {"num_threads": int(spec)}


def bench_vector(threads: list[str], s1: int, s2: int, repeats: int, profile: bool) -> dict:
    """Seconds per step of the real loop for each setup (see :func:`_setup`)."""
    from mulsupcon.train.data import prepare_data

    cfg = load_config("yeast-authors")
    data = prepare_data(cfg["dataset"])
    _timed_run(cfg, data, 20)  # warm-up: allocator, MKL/oneDNN kernels, lazy imports
    print(f"\n## yeast-authors pretraining step, real loop ({_load()})\n")
    print(f"per step = (run({s2} steps) - run({s1} steps)) / {s2 - s1}; best of {repeats}\n")
    print("| setup | wall ms/step | CPU ms/step | steps/s | 150x1000 steps (wall) | within 15 min? |")
    print("|---|---|---|---|---|---|")
    out = {}
    for spec in threads:
        label, overrides = _setup(spec)
        best_w = best_c = float("inf")
        for _ in range(repeats):
            w1, c1 = _timed_run(cfg, data, s1, overrides)
            w2, c2 = _timed_run(cfg, data, s2, overrides)
            best_w = min(best_w, (w2 - w1) / (s2 - s1))
            best_c = min(best_c, (c2 - c1) / (s2 - s1))
        whole = best_w * AUTHORS_STEPS
        print(f"| {label} | {1e3 * best_w:.2f} | {1e3 * best_c:.2f} | {1 / best_w:.0f} | "
              f"{whole / 60:.1f} min | {'yes' if whole <= TARGET_S else 'no'} |")
        sys.stdout.flush()
        out[spec] = (best_w, best_c)
    print(f"\n({_load()} after the runs)")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        _timed_run(cfg, data, 500)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        print("\ncProfile of 500 steps (auto threads), top 18 by own time:\n```")
        print("\n".join(ln for ln in buf.getvalue().splitlines() if ln.strip())[:6000])
        print("```")
        _torch_profile(cfg, data)
    return out


def bench_vector_interleaved(threads: list[str], steps: int, rounds: int) -> None:
    """Median ms/step (setup included) of ``steps``-step runs, the setups taking turns ``rounds`` times,
    so that the VM's slow and fast phases hit every setup alike."""
    import statistics

    from mulsupcon.train.data import prepare_data

    cfg = load_config("yeast-authors")
    data = prepare_data(cfg["dataset"])
    _timed_run(cfg, data, 20)
    times: dict = {spec: [] for spec in threads}
    for _ in range(rounds):
        for spec in threads:
            wall, _ = _timed_run(cfg, data, steps, _setup(spec)[1])
            times[spec].append(1e3 * wall / steps)
    print(f"\n## yeast-authors, interleaved: {rounds} rounds of {steps}-step runs, setup included ({_load()})\n")
    print("| setup | median ms/step | all runs |")
    print("|---|---|---|")
    for spec, v in times.items():
        print(f"| {_setup(spec)[0]} | {statistics.median(v):.2f} | {', '.join(f'{x:.2f}' for x in sorted(v))} |")


def _torch_profile(cfg: dict, data) -> None:
    """Operator-level table of 200 real steps (CPU self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _timed_run(cfg, data, 200)
    print("\ntorch.profiler, 200 steps, top operators by self CPU time:\n```")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40))
    print("```")


def _authors_config(spec: str) -> tuple[str, dict]:
    """(label, config ``yeast-authors`` with the setup ``spec`` applied; see :func:`_setup`)."""
    label, overrides = _setup(spec)
    return label, _apply(load_config("yeast-authors"), overrides)


def bench_full(spec: str = "config") -> None:
    """The whole authors' schedule (150 x 1000 steps) through the real loop, timed (setup: see :func:`_setup`)."""
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    label, cfg = _authors_config(spec)
    data = prepare_data(cfg["dataset"])
    print(f"\n## full yeast-authors schedule, {label} ({_load()}, {machine_speed()} at start)\n")
    with tempfile.TemporaryDirectory() as tmp:
        w, c = time.perf_counter(), time.process_time()
        pretrain(cfg, Path(tmp) / "run", quiet=True, data=data, echo=False)
        w, c = time.perf_counter() - w, time.process_time() - c
        history = json.loads((Path(tmp) / "run" / "history.json").read_text())
    print(f"150 x 1000 steps: wall {w / 60:.1f} min ({1e3 * w / AUTHORS_STEPS:.2f} ms/step), "
          f"CPU {c / 60:.1f} min; {_load()}, {machine_speed()} at end\n")
    print("| epochs | mean s per epoch (1000 steps) | slowest |")
    print("|---|---|---|")
    for lo, hi in ((1, 10), (11, 50), (51, 100), (101, 150)):
        secs = [h["seconds"] for h in history if lo <= h["epoch"] <= hi]
        print(f"| {lo}-{hi} | {sum(secs) / len(secs):.2f} | {max(secs):.2f} |")


def _subnormals(state: dict) -> dict:
    """{tensor name: number of subnormal entries} over a checkpoint's model and optimizer state."""
    tiny = torch.finfo(torch.float32).tiny
    out = {}
    tensors = {f"model {k}": v for k, v in state["model"].items()}
    for i, st in state["optimizer"]["state"].items():
        tensors.update({f"optimizer {i} {k}": v for k, v in st.items()})
    for name, t in tensors.items():
        if torch.is_tensor(t) and t.dtype == torch.float32:
            n = int(((t != 0) & (t.abs() < tiny)).sum())
            if n:
                out[name] = n
    return out


def bench_denormals(spec: str, epochs: int, rounds: int) -> None:
    """Seconds per 1000 steps late in the authors' schedule, subnormals flushed or not (see module doc)."""
    import shutil
    import statistics

    from mulsupcon.config import save_config
    from mulsupcon.train.checkpoint import load_checkpoint
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    label, cfg = _authors_config(spec)
    data = prepare_data(cfg["dataset"])
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        t0 = time.perf_counter()
        pretrain(cfg, base, quiet=True, data=data, stop_after_epochs=epochs, echo=False)
        print(f"\n## epoch {epochs + 1} of the yeast-authors schedule, {label} ({_load()}, {machine_speed()})\n")
        print(f"{epochs} epochs trained in {time.perf_counter() - t0:.0f} s (flush_denormals on); subnormal floats "
              f"in the checkpoint: {_subnormals(load_checkpoint(base / 'checkpoints' / 'last.pt')) or 'none'}\n")
        times: dict = {True: [], False: []}
        for _ in range(rounds):
            for flush in times:
                run = Path(tmp) / f"flush-{flush}"
                shutil.rmtree(run, ignore_errors=True)
                shutil.copytree(base, run)
                variant = {**cfg, "cpu": {**cfg["cpu"], "flush_denormals": flush}}
                save_config(variant, run / "config.yaml")  # the copy resumes under this one setting changed
                w = time.perf_counter()
                pretrain(variant, run, resume=True, quiet=True, data=data, stop_after_epochs=1, echo=False)
                times[flush].append(time.perf_counter() - w)
        print("| flush_denormals | median s per 1000 steps | all rounds | whole schedule at this rate |")
        print("|---|---|---|---|")
        for flush, v in times.items():
            med = statistics.median(v)
            print(f"| {str(flush).lower()} | {med:.2f} | {', '.join(f'{x:.2f}' for x in v)} | "
                  f"{med * AUTHORS_STEPS / 1000 / 60:.1f} min |")
        print(f"\n({_load()} after the runs)")


def bench_images(archs: list[str], sizes: list[int], batch: int, steps: int) -> None:
    """Images/s of MoCo pretraining steps with ResNets, and where the time goes."""
    from mulsupcon.losses import MulSupConLoss
    from mulsupcon.models import ProjectionHead, TorchvisionBackbone
    from mulsupcon.moco import LabelQueue, MoCo
    from mulsupcon.ops import l2_normalize
    from mulsupcon.train.data import ImageViews

    print(f"\n## ResNet MoCo pretraining steps on the CPU, batch {batch}, {torch.get_num_threads()} threads ({_load()})\n")
    print("Per step, best of the timed steps after one warm-up; phases timed separately (ms).\n")
    print("| backbone | input | images/s | step ms | augment 2 views | query fwd | key fwd (+momentum) | loss | backward | Adam |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for arch in archs:
        for size in sizes:
            small = size <= 64
            torch.manual_seed(0)
            backbone = TorchvisionBackbone(arch, small_input=small, in_channels=3)
            moco = MoCo(backbone, ProjectionHead(backbone.out_dim, 256, 128, 0.1), LabelQueue(1024, 128, 20), 0.999)
            opt = torch.optim.Adam([p for p in moco.query_encoder.parameters() if p.requires_grad], lr=1e-3)
            loss_fn = MulSupConLoss(temperature=0.1, normalize=False)
            stored = size + size // 8  # crops come from a slightly larger stored image
            views = ImageViews(size, "pretrain")
            x = torch.randint(0, 256, (batch, 3, stored, stored), dtype=torch.uint8, generator=g)
            y = (torch.rand(batch, 20, generator=g) < 0.15).to(torch.uint8)
            moco.train()
            best: Optional[dict] = None
            for _ in range(steps + 1):
                t = {}
                t0 = time.perf_counter()
                v1, v2 = views(x), views(x)
                t["augment"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                q = l2_normalize(moco.query_encoder(v1))
                t["query"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                with torch.no_grad():
                    moco.momentum_update()
                    k = l2_normalize(moco.key_encoder(v2))
                    qk, ql = moco.queue.stored()
                    refs, ref_labels = torch.cat([k, qk]), torch.cat([y, ql])
                t["key"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                loss = loss_fn(q, y, refs, ref_labels)
                moco.queue.enqueue(k, y)
                t["loss"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                t["backward"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                opt.step()
                t["adam"] = time.perf_counter() - t0
                t["total"] = sum(t.values())
                if best is None or t["total"] < best["total"]:
                    best = t
            assert best is not None
            ms = {k: 1e3 * v for k, v in best.items()}
            print(f"| {arch} | {size}px{' (small stem)' if small else ''} | {batch / best['total']:.1f} | {ms['total']:.0f} | "
                  f"{ms['augment']:.0f} | {ms['query']:.0f} | {ms['key']:.0f} | {ms['loss']:.1f} | {ms['backward']:.0f} | {ms['adam']:.0f} |")
            sys.stdout.flush()
    print(f"\n({_load()} after the runs)")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["vector", "vector-interleaved", "images", "full", "denormals", "all"])
    ap.add_argument("--threads", nargs="+", default=["config", "auto"],
                    help="vector loop setups to compare: 'config' (yeast-authors.yaml as shipped, 2 threads), "
                         "'auto' (the automatic choice, 1 thread) or N (N intra-op threads)")
    ap.add_argument("--steps", nargs=2, type=int, default=[100, 600], metavar=("S1", "S2"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="vector-interleaved: rounds")
    ap.add_argument("--run-steps", type=int, default=400, help="vector-interleaved: steps per run")
    ap.add_argument("--profile", action="store_true", help="cProfile + torch.profiler tables of the vector loop")
    ap.add_argument("--beside-busy-process", action="store_true",
                    help="run a CPU-bound Python process during the vector timings (a shared machine)")
    ap.add_argument("--epochs", type=int, default=12, help="denormals: epochs trained before the timed one")
    ap.add_argument("--arch", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--image-steps", type=int, default=3)
    ap.add_argument("--image-threads", type=int, default=None, help="torch.set_num_threads for the image steps")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, default intra-op threads {torch.get_num_threads()}")
    if args.what in ("vector", "all"):
        hog = None
        if args.beside_busy_process:
            import subprocess

            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            print("a CPU-bound process runs beside the timings")
        try:
            bench_vector(args.threads, args.steps[0], args.steps[1], args.repeats, args.profile)
        finally:
            if hog is not None:
                hog.kill()
    if args.what == "vector-interleaved":
        bench_vector_interleaved(args.threads, args.run_steps, args.rounds)
    if args.what in ("images", "all"):
        if args.image_threads:
            torch.set_num_threads(args.image_threads)
        bench_images(args.arch, args.sizes, args.batch, args.image_steps)
    if args.what == "full":
        bench_full(args.threads[0] if args.threads != ap.get_default("threads") else "config")
    if args.what == "denormals":
        bench_denormals(args.threads[0] if args.threads != ap.get_default("threads") else "config", args.epochs,
                        args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
