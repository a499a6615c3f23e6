"""benchmarks/gpu_check.py --smoke: the GPU check's code, run on the CPU at tiny sizes (as CI can)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_reports_every_row_and_no_host_sync_in_the_step(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    # ~55 s on an idle 2-core machine (benchmarks/README.md); the bound only catches a runaway on a loaded one.
    assert result["smoke"] and result["all_pass"] and result["total_seconds"] < 480
    rows = result["rows"]
    assert {r["row"] for r in rows} == set("abcdefg")
    assert not [r for r in rows if str(r.get("status", "ok")).startswith("error")]
    pre = [r for r in rows if r["row"] == "a" and "images_per_s" in r]
    assert len(pre) >= 2 and all(r["images_per_s"] > 0 for r in pre)
    loss = {r["what"].split(" B=")[0]: r for r in rows if r["row"] == "b"}
    assert len(loss) == 3 and all(r["ms"] > 0 for r in loss.values())
    resume = [r for r in rows if r["row"] == "c"]
    assert [r["bitwise"] for r in resume] == [True, True]
    ddp = next(r for r in rows if r["row"] == "d")
    assert ddp["ddp"] is True and ddp["max_loss_diff_vs_single"] <= 1e-4
    syncs = next(r for r in rows if r["row"] == "e")
    # The proxy sees the step (steps counted) and the loop's documented syncs outside it, none inside.
    assert syncs["steps"] >= 6 and syncs["proxy_in_step"] == 0, syncs["proxy_in_step_by_place"]
    assert any("guard.py" in place for place in syncs["proxy_outside_step"])
    assert {r["what"].split()[0] for r in rows if r["row"] == "f"} == {"probe", "finetune"}
    vectors = [r for r in rows if r["row"] == "g"]
    assert len(vectors) == 2 and vectors[0]["max_abs_diff"] <= 1e-4 and all(r["pass"] for r in vectors)
    # The table printed what the JSON holds.
    assert "all pass: True" in proc.stdout and proc.stdout.count("\nb  ") == 3


def test_the_sync_proxy_counts_what_it_should():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gpu_check import HostSyncCounter
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    import torch

    x = torch.randn(6)
    with HostSyncCounter() as counter:
        x.sum().item()
        bool(x.gt(0).any())
        x.tolist()
        int(x[0])
        x[x > 0]
        (x * 2).exp()  # no read-back
    kinds = sorted(k.split(" at ")[0] for k in counter.outside)
    assert kinds == ["__bool__", "__int__", "boolean-mask index", "item", "tolist"]
    assert sum(counter.outside.values()) == 5 and not counter.in_step
