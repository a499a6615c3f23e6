"""Wall time of pretraining + finetuning with a checkpoint after every epoch against `checkpoint_every: auto`.

    MULSUPCON_DATA=../shared/data .venv/bin/python benchmarks/checkpoint_cost.py [--datasets flags medical] [--rounds 2]

For each dataset, the shipped `vectors` config (seed 0) runs into folders on disk, as `mulsupcon train
--mode finetune` does, once with `--pretrain.checkpoint_every 1 --classify.checkpoint_every 1` (the
previous default) and once with `auto`, alternating, `--rounds` times. Prints the time of each part and
checks that both give the same test metrics (checkpoints change when a run is saved, not what it computes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mulsupcon.config import load_config
from mulsupcon.train.classify import classify
from mulsupcon.train.data import prepare_data
from mulsupcon.train.pretrain import pretrain


def timed_run(dataset: str, every: int | str, folder: Path) -> tuple[float, float, dict]:
    """(pretraining seconds, finetuning seconds, test metrics) of one run with ``checkpoint_every=every``."""
    cfg = load_config("vectors", {"dataset.name": dataset, "pretrain.checkpoint_every": every,
                                  "classify.checkpoint_every": every, "device": "cpu"})
    data = prepare_data(cfg["dataset"])
    t0 = time.perf_counter()
    pretrain(cfg, folder / "pre", quiet=True, echo=False, data=data)
    t1 = time.perf_counter()
    results = classify(cfg, folder / "ft", from_run=folder / "pre", quiet=True, echo=False, data=data)
    return t1 - t0, time.perf_counter() - t1, results["protocols"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["flags", "medical"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("| dataset | checkpoint_every | pretrain s | finetune s | same metrics |")
    print("|---|---|---:|---:|---|")
    for dataset in args.datasets:
        reference = None
        for r in range(args.rounds):
            for every in (1, "auto"):
                with tempfile.TemporaryDirectory() as tmp:
                    pre_s, ft_s, metrics = timed_run(dataset, every, Path(tmp))
                reference = reference or metrics
                print(f"| {dataset} | {every} | {pre_s:.1f} | {ft_s:.1f} | {metrics == reference} |", flush=True)


if __name__ == "__main__":
    main()
