"""Time and memory of the contrastive losses as the number of references K and of classes C grow (CPU).

Usage: ``PYTHONPATH=src python benchmarks/loss_scaling.py [--reps 3] [--threads 1] [--no-big]``

Each cell runs in a fresh Python subprocess, so memory figures do not mix between methods:
* ``time ms``: median forward+backward time over ``--reps`` runs after one warm-up run (the big case: 1 run);
* ``peak MiB``: growth of the process's peak resident memory (``ru_maxrss``) during the FIRST full-size
  forward+backward, over the level reached after building the inputs and a tiny warm-up call of the same method.
  It is what the OS saw: every temporary (scores, softmax, masks, gradients), not only what autograd keeps;
* ``saved MiB``: bytes of the distinct tensors autograd saved for backward during that call (through
  ``torch.autograd.graph.saved_tensors_hooks``), inputs included; a lower bound of the memory held between
  forward and backward.
Methods: ours (MulSupCon, direct), ours-chunk (chunk_size=2048), all, any, literal (one row per
(anchor, label) pair), unavoidable (score matmul + log-softmax). Keys require grad (the costlier case;
in MoCo they do not). Label rows are Bernoulli with a mean of 2.9 labels per row (COCO-like).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ("ours", "ours-chunk", "all", "any", "literal", "unavoidable")
CHUNK = 2048


def _worker(cfg: dict) -> dict:
    """Measure one (method, shape) cell in this process; returns the numbers as a dict."""
    import torch

    sys.path.insert(0, HERE)
    from _paper_literal import make_inputs, median_time, paper_literal_loss, unavoidable_work

    from mulsupcon.losses import MulSupConLoss

    torch.set_num_threads(cfg["threads"])
    method = cfg["method"]
    chunk = cfg.get("chunk", CHUNK)

    def build(b, k, c, d):
        q, y, keys, yk = make_inputs(b, k, c, d, min(1.0, 2.9 / c))
        grad_out = torch.randn(b, k) if method == "unavoidable" else None
        if method == "literal":
            f = lambda: paper_literal_loss(q, y, keys, yk, 0.1).backward()  # noqa: E731
        elif method == "unavoidable":
            f = lambda: unavoidable_work(q, keys, grad_out)  # noqa: E731
        else:
            positives = "mulsupcon" if method.startswith("ours") else method
            fn = MulSupConLoss(0.1, positives=positives, chunk_size=chunk if method == "ours-chunk" else None)
            f = lambda: fn(q, y, keys, yk).backward()  # noqa: E731

        def step():
            q.grad = None
            keys.grad = None
            f()

        return step

    build(8, 16, cfg["C"], cfg["D"])()  # load kernels and thread pools before the memory baseline
    step = build(cfg["B"], cfg["K"], cfg["C"], cfg["D"])
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The hooked run above doubles as the warm-up; the big case is timed on one more run.
    t = median_time(step, max(1, cfg["reps"]), warmup=0)
    return {"time_ms": t * 1e3, "peak_mib": (peak - base) / 1024, "saved_mib": sum(saved.values()) / 2**20}


def _run_cell(cfg: dict) -> dict:
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(title: str, rows: list[tuple[dict, dict]]) -> None:
    print(f"\n{title}")
    head = f"{'method':<12}{'B':>6}{'K':>7}{'C':>5}{'D':>5} | {'time ms':>9}{'peak MiB':>10}{'saved MiB':>10}" \
           f" | {'x unavoid':>9}{'literal/x':>10}"
    print(head)
    print("-" * len(head))
    by_shape: dict[tuple, dict[str, dict]] = {}
    for cfg, res in rows:
        by_shape.setdefault((cfg["B"], cfg["K"], cfg["C"], cfg["D"]), {})[cfg["method"]] = res
    for cfg, res in rows:
        key = (cfg["B"], cfg["K"], cfg["C"], cfg["D"])
        if "error" in res:
            print(f"{cfg['method']:<12}{key[0]:>6}{key[1]:>7}{key[2]:>5}{key[3]:>5} | error: {res['error']}")
            continue
        ref = by_shape[key].get("unavoidable", {}).get("time_ms")
        lit = by_shape[key].get("literal", {}).get("time_ms")
        r1 = f"{res['time_ms'] / ref:>8.2f}x" if ref else f"{'-':>9}"
        r2 = f"{lit / res['time_ms']:>9.2f}x" if lit else f"{'-':>10}"
        print(f"{cfg['method']:<12}{key[0]:>6}{key[1]:>7}{key[2]:>5}{key[3]:>5} | {res['time_ms']:>9.1f}"
              f"{res['peak_mib']:>10.1f}{res['saved_mib']:>10.1f} | {r1}{r2}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared 2-core machine 2 threads time the neighbours)")
    ap.add_argument("--no-big", action="store_true", help="skip the B=1024, K=65536, C=365 run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    import torch

    print(f"torch {torch.__version__}, {args.threads} thread(s), float32, D=256, temperature 0.1, "
          f"median of {args.reps} reps; chunk_size={CHUNK} for ours-chunk")
    common = {"threads": args.threads, "reps": args.reps, "D": 256}
    rows = []
    for k in (256 + 2048, 256 + 8192, 256 + 32768):
        for m in METHODS:
            cfg = {**common, "method": m, "B": 256, "K": k, "C": 80}
            rows.append((cfg, _run_cell(cfg)))
    _table("Scaling with K (B=256, C=80, mean 2.9 labels per row)", rows)
    rows = []
    for c in (20, 320):
        for m in METHODS:
            cfg = {**common, "method": m, "B": 256, "K": 256 + 8192, "C": c}
            rows.append((cfg, _run_cell(cfg)))
    _table("Scaling with C (B=256, K=8448, mean 2.9 labels per row; C=80 is in the table above)", rows)
    if not args.no_big:
        rows = []
        for m, chunk in (("ours-chunk", 4096), ("ours", None)):
            cfg = {**common, "reps": 1, "method": m, "B": 1024, "K": 65536, "C": 365, "chunk": chunk}
            rows.append((cfg, _run_cell(cfg)))
        _table("Large case, one run each (B=1024, K=65536, C=365; ours-chunk with chunk_size=4096)", rows)


if __name__ == "__main__":
    main()
