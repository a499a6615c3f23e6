"""Multi-process training on the CPU (gloo): W processes compute what ONE process computes with the
combined batch, and the CLI runs, resumes and classifies under ``--nproc 2``.

* The step test spawns 2 processes (FileStore rendezvous in a tmp dir: no TCP port to collide on)
  that run real MoCo steps through DistributedDataParallel (around the whole MoCo module, as the
  pretraining loop wraps it) + GlobalNormalizedLoss; the parent
  process computes the single-process oracle with the combined batch and compares loss, query
  gradients (after DDP's all-reduce), key encoder and queue after every step.
* The CLI tests launch ``python -m mulsupcon ... --nproc 2`` (torchrun underneath) and check the
  run folder: one writer, resume equal to the uninterrupted run, classification metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from mulsupcon.losses import InstanceContrastLoss, MulSupConLoss
from mulsupcon.moco import LabelQueue, MoCo
from mulsupcon.train import distributed as dist_utils
from mulsupcon.train.pretrain import GROUP_BYTES, column_groups, group_columns

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
# Global batch 12 (6 per process), queue 20: step 1 has no queue, step 2 a partial one, step 3 a
# full queue that has wrapped around, so every queue code path meets the gathered keys.
B, F_IN, D, C, QUEUE, STEPS = 12, 7, 5, 4, 20, 3
CASES = [
    ("mulsupcon", "label", None),
    ("mulsupcon", "sample", None),
    ("all", "label", None),
    ("any", "label", None),
    ("mulsupcon", "label", 5),  # the chunked custom-autograd path under DDP
    ("mulsupcon", "label", "instance"),  # plus the instance term (pretrain.instance_weight): own key at rank * B
]


# ---------------------------------------------------------------------------------------------- helpers
def _batches() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """STEPS global batches: view1 (B, F_IN), view2 (B, F_IN), labels (B, C) uint8 (row 3 unlabelled)."""
    g = torch.Generator().manual_seed(123)
    out = []
    for _ in range(STEPS):
        x = torch.randn(B, F_IN, generator=g)
        v1 = x + 0.3 * torch.randn(B, F_IN, generator=g)
        v2 = x + 0.3 * torch.randn(B, F_IN, generator=g)
        y = (torch.rand(B, C, generator=g) < 0.45).to(torch.uint8)
        y[3] = 0  # an anchor without labels must count for nothing, in every process
        out.append((v1, v2, y))
    return out


def _run_steps(positives: str, weighting: str, chunk: int | None, ctx: dist_utils.DistContext | None) -> list[dict]:
    """STEPS MoCo steps; distributed (shard + gather + DDP + global normalisation) when ``ctx``.

    No dropout and no BatchNorm in the encoder: those are per-process by design (per-shard noise
    and statistics), everything else must match the combined-batch computation.
    """
    instance = InstanceContrastLoss(0.2) if chunk == "instance" else None
    moco = _moco(GROUP_BYTES if instance is not None else 0)
    chunk = None if chunk == "instance" else chunk
    loss_fn: nn.Module = MulSupConLoss(temperature=0.2, positives=positives, weighting=weighting, chunk_size=chunk,
                                       normalize=False)
    model: nn.Module = moco
    if ctx is not None:
        loss_fn = dist_utils.GlobalNormalizedLoss(loss_fn, ctx)
        model = ctx.wrap_ddp(moco, sync_buffers=False)
    opt = torch.optim.SGD(moco.query_encoder.parameters(), lr=0.5)
    records = []
    for v1, v2, y in _batches():
        if instance is not None:  # rows 1 and 4 identical (one instance), the others each their own
            y = torch.cat([y, group_columns(torch.tensor([0, 1, 2, 3, 1, 5, 6, 7, 8, 9, 10, 11]))], dim=1)
        if ctx is not None:
            v1, v2, y = ctx.shard(v1), ctx.shard(v2), ctx.shard(y)
        query, refs, ref_labels = model(v1, v2, y)
        n_labels = C
        loss = loss_fn(query, y[:, :n_labels], refs, ref_labels[:, :n_labels])
        if instance is not None:  # what pretrain_step adds: the groups travel in the label rows
            n_labels = y.shape[1] - GROUP_BYTES
            loss = loss + 0.7 * instance(query, refs, column_groups(y[:, n_labels:]), column_groups(ref_labels[:, n_labels:]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        moco.enqueue()  # the global batch's keys: W * B rows on W processes, as B on one
        grads = [p.grad.detach().clone() for p in moco.query_encoder.parameters()]
        opt.step()
        records.append({
            "loss": loss.detach().double().clone(),
            "grads": grads,
            "key_params": [p.detach().clone() for p in moco.key_encoder.parameters()],
            "queue_keys": moco.queue.keys.clone(),
            "queue_labels": moco.queue.labels.clone(),
            "ptr": int(moco.queue.ptr),
            "filled": int(moco.queue.filled),
        })
    return records


def _moco(extra_columns: int = 0) -> MoCo:
    torch.manual_seed(0)
    encoder, head = nn.Sequential(nn.Linear(F_IN, 16), nn.ReLU()), nn.Linear(16, D)
    return MoCo(encoder, head, LabelQueue(QUEUE, D, C + extra_columns), momentum=0.9)


def _step_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """Body of one spawned process: initialise gloo through a FileStore, run every case, save."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MULSUPCON_DIST_BACKEND="gloo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        dist_utils.reset_context()
        ctx = dist_utils.context()  # must adopt the group initialised above
        assert ctx.enabled and ctx.rank == rank and ctx.world_size == world
        out = {case: _run_steps(*case, ctx) for case in CASES}
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist_utils.reset_context()
        dist.destroy_process_group()


def _cli(args: list[str], env_extra: dict | None = None, timeout: float = 240) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MULSUPCON_DIST_BACKEND": "gloo", **(env_extra or {})}
    env.pop("WORLD_SIZE", None)  # never inherit a launcher's world
    proc = subprocess.run([sys.executable, "-m", "mulsupcon", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def _log_lines(run: Path) -> list[str]:
    """log.txt without its timestamps."""
    return [ln.split("] ", 1)[1] for ln in (run / "log.txt").read_text().splitlines() if "] " in ln]


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------- unit
def test_shard_and_divisibility_errors_name_the_fix():
    ctx = dist_utils.DistContext(enabled=True, rank=1, world_size=2)
    t = torch.arange(12).view(6, 2)
    assert torch.equal(ctx.shard(t), t[3:])
    with pytest.raises(ValueError, match="cannot be split evenly over 2 processes"):
        ctx.shard(torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"classify.batch_size=63 .* divisible .* \(2\); choose e.g. 62"):
        ctx.check_divisible(63, "classify.batch_size")
    ctx.check_divisible(64)  # fine
    dist_utils.DistContext().check_divisible(63)  # one process: anything goes


def test_sync_bn_on_cpu_processes_is_a_clear_error():
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert dist_utils.DistContext(enabled=True, world_size=2, sync_bn=False).maybe_sync_bn(module) is module
    with pytest.raises(ValueError, match="SyncBatchNorm .* CPU"):
        dist_utils.DistContext(enabled=True, world_size=2, sync_bn=True).maybe_sync_bn(module)


def test_process_seeds_differ_between_ranks_and_rank0_keeps_the_single_process_seed():
    from mulsupcon.train.data import epoch_seed, process_seed

    assert process_seed(3, 5, 1, 0) == epoch_seed(3, 5, 1)
    seeds = {process_seed(3, 5, 1, r) for r in range(8)}
    assert len(seeds) == 8


def test_disabled_context_is_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist_utils.reset_context()
    try:
        ctx = dist_utils.context()
        t = torch.randn(4, 3)
        assert not ctx.enabled and ctx.is_main
        from mulsupcon.ops import all_gather_rows

        assert ctx.shard(t) is t and all_gather_rows(t) is t and torch.equal(ctx.all_sum(t), t)
        assert ctx.mean_scalar(2.5) == 2.5
    finally:
        dist_utils.reset_context()


# ---------------------------------------------------------------------------------------------- steps
@pytest.fixture(scope="module")
def two_process_steps(tmp_path_factory) -> list[dict]:
    """Records of the 2 spawned processes for every case (spawned once: startup dominates)."""
    tmp = tmp_path_factory.mktemp("dist_steps")
    # fork, not spawn: the children need not re-import torch (seconds each on a busy 2-core box);
    # they set 1 thread before any parallel work, which keeps OpenMP safe after fork.
    torch.multiprocessing.start_processes(
        _step_worker, args=(WORLD, str(tmp / "store"), str(tmp)), nprocs=WORLD, join=True, start_method="fork"
    )
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", CASES, ids=[f"{p}-{w}" + (f"-{c}" if c == "instance" else f"-chunk{c}" if c else "") for p, w, c in CASES])
def test_two_processes_equal_one_process_with_the_combined_batch(two_process_steps, case):
    ref = _run_steps(*case, None)
    ranks = [out[case] for out in two_process_steps]
    tol = dict(rtol=1e-4, atol=1e-6)
    for step, want in enumerate(ref):
        got = [r[step] for r in ranks]
        # Each process returns W * (its share of the un-normalised loss) / (global count): their
        # mean is the combined-batch loss.
        mean_loss = sum(g["loss"] for g in got) / WORLD
        torch.testing.assert_close(mean_loss, want["loss"], **tol, msg=f"step {step}: loss")
        for g in got:
            for a, b in zip(g["grads"], want["grads"]):
                torch.testing.assert_close(a, b, **tol, msg=f"step {step}: query gradient after all-reduce")
            for a, b in zip(g["key_params"], want["key_params"]):
                torch.testing.assert_close(a, b, **tol, msg=f"step {step}: key encoder")
            # The queue holds the GLOBAL keys and labels, in rank order = combined-batch order.
            assert (g["ptr"], g["filled"]) == (want["ptr"], want["filled"])
            assert torch.equal(g["queue_labels"], want["queue_labels"]), f"step {step}: queue labels"
            torch.testing.assert_close(g["queue_keys"], want["queue_keys"], **tol, msg=f"step {step}: queue keys")
    assert [r["filled"] for r in ref] == [12, 20, 20] and ref[-1]["ptr"] == 16  # the queue wrapped


def test_oracle_is_sensitive_to_missing_gather(two_process_steps):
    """Negative control: a process that only sees its own shard's keys gets a different loss."""
    v1, v2, y = _batches()[0]
    q, refs, ref_labels = _moco()(v1[: B // 2], v2[: B // 2], y[: B // 2])
    local = MulSupConLoss(temperature=0.2, normalize=False)(q, y[: B // 2], refs, ref_labels)
    full = _run_steps("mulsupcon", "label", None, None)[0]["loss"]
    assert abs(float(local.detach()) - float(full)) > 1e-3


# ---------------------------------------------------------------------------------------------- CLI
# yeast (103 features) when the real data is there: it loads in 0.2 s; the embedded multidigits
# (always available) needs scikit-learn and ~2 s per process.
DATA = ["--dataset", "yeast"] if (Path(os.environ.get("MULSUPCON_DATA", "/nonexistent")) / "yeast").is_dir() else []
TINY = [
    "--config", "demo", *DATA, "--model.hidden", "[32,32]", "--model.head_hidden", "32", "--model.embed_dim", "16",
    "--pretrain.epochs", "3", "--pretrain.steps_per_epoch", "4", "--pretrain.batch_size", "64",
    "--pretrain.queue_size", "96", "-q",
]
RUN_FILES = {"backbone.pt", "checkpoints/last.pt", "config.yaml", "history.json", "history.csv", "log.txt", "run.json",
             "split.json", ".lock"}


def test_cli_two_process_pretraining_resumes_to_the_uninterrupted_run(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    _cli(["pretrain", "--nproc", "2", *TINY, "--run-dir", str(full)])
    _cli(["pretrain", "--nproc", "2", *TINY, "--run-dir", str(cut), "--stop-after-epochs", "1"])
    state = torch.load(cut / "checkpoints" / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and not (cut / "backbone.pt").exists()
    _cli(["pretrain", "--nproc", "2", *TINY, "--run-dir", str(cut), "--resume"])

    a = torch.load(full / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(cut / "checkpoints" / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:  # includes the queue's keys, labels, pointer and fill count
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-5, atol=1e-6, msg=k)
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for ha, hb in zip(a["history"], b["history"]):
        assert hb["loss"] == pytest.approx(ha["loss"], rel=1e-5) and hb["lr"] == pytest.approx(ha["lr"])

    # Only rank 0 writes: every log line once, no stray (temporary or per-rank) files.
    for run in (full, cut):
        assert _files(run) == RUN_FILES, _files(run)
        lines = _log_lines(run)
        assert len(lines) == len(set(lines)), lines
        assert sum(ln.startswith("pretraining on ") and "2 processes" in ln for ln in lines) == 1
        assert [ln.split()[1] for ln in lines if ln.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert sum(ln.startswith("resumed from") for ln in _log_lines(cut)) == 1
    # 2 processes x 4 steps x 64 rows: the queue (96) is full and the global keys went in.
    assert int(a["model"]["queue.filled"]) == 96


def test_cli_two_process_scratch_classification(tmp_path):
    run = tmp_path / "scratch"
    _cli(["train", "--nproc", "2", "--mode", "scratch", "--config", "demo", *DATA, "--model.hidden", "[32,32]",
          "--classify.epochs", "2", "--classify.steps_per_epoch", "3", "--classify.batch_size", "64", "-q",
          "--run-dir", str(run)])
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["protocols"]) == {"paper", "validation", "fixed"}
    assert 0.0 < metrics["protocols"]["paper"]["mAP"] <= 1.0
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    lines = _log_lines(run)
    assert len(lines) == len(set(lines)), lines
    assert sum("2 processes" in ln for ln in lines) == 1
    assert not any(".tmp" in f for f in _files(run))
