"""``mulsupcon demo``: MulSupCon pretraining + finetuning vs BCE from scratch on ``multidigits``.

Runs entirely offline on the embedded data (scikit-learn's handwritten digits arranged into
multi-label canvases) and prints the six metrics of both methods side by side under the
``validation`` protocol (thresholds chosen on the validation split), plus the paper's optimistic
``paper`` protocol for comparison with published tables.
"""

from __future__ import annotations

import copy
import shutil
import sys
import time
from pathlib import Path
from typing import Mapping

from mulsupcon.config import load_config


def demo_config(quick: bool = False, seed: int = 0) -> dict:
    """The demo's config (``configs/demo.yaml``), optionally cut to a smoke-test schedule."""
    cfg = load_config("demo", {"seed": seed})
    if quick:
        cfg["pretrain"]["epochs"] = 3
        cfg["classify"]["epochs"] = 3
    return cfg


def verdict(finetune: Mapping[str, float], scratch: Mapping[str, float]) -> str:
    """One line saying which method the demo's numbers favour: the mAP of each and the metrics (of the
    six) on which finetuning is higher, computed from the two runs rather than assumed."""
    from mulsupcon.tables import METRIC_LABELS, METRIC_ORDER

    higher = [METRIC_LABELS[m] for m in METRIC_ORDER if finetune[m] > scratch[m]]
    return (f"MulSupCon + finetune against BCE from scratch (validation): mAP {finetune['mAP']:.3f} against "
            f"{scratch['mAP']:.3f}, higher on {len(higher)} of {len(METRIC_ORDER)} metrics"
            + (f" ({', '.join(higher)})" if higher else "")
            + ". Where each wins: README, 'When to use it'.")


def run_demo(root: Path, *, quick: bool = False, quiet: bool = False, seed: int = 0) -> dict:
    """Run the three demo runs under ``root`` (replacing an earlier demo there) and print a table."""
    from mulsupcon.io import check_folder_path
    from mulsupcon.tables import format_console_table
    from mulsupcon.train.classify import classify
    from mulsupcon.train.data import prepare_data
    from mulsupcon.train.pretrain import pretrain

    cfg = demo_config(quick, seed)  # a bad seed is refused before the folder is touched
    root = Path(root)
    check_folder_path(root, "--run-dir")
    if root.exists():
        if not (root / "demo.txt").is_file() and any(root.iterdir()):
            raise ValueError(f"{root} exists and is not a demo folder; choose another --run-dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "demo.txt").write_text("output of `mulsupcon demo`; replaced by the next demo run\n")
    t0 = time.time()
    data = prepare_data(cfg["dataset"])
    say = (lambda s: print(s, file=sys.stderr, flush=True))
    say(f"[demo] multidigits as vectors: {data.train.n} train / {data.val.n} val / {data.test.n} test, "
        f"{data.n_labels} labels, {data.input_shape[0]} features")

    say("[demo] 1/3 MulSupCon pretraining (MoCo + label queue)")
    pre_dir = pretrain(cfg, root / "pretrain", quiet=quiet, data=data)

    say("[demo] 2/3 finetuning the pretrained backbone with BCE")
    ft_cfg = copy.deepcopy(cfg)
    ft_cfg["classify"]["mode"] = "finetune"
    ft = classify(ft_cfg, root / "finetune", from_run=pre_dir, quiet=quiet, data=data)

    say("[demo] 3/3 baseline: the same MLP trained from scratch with BCE")
    sc_cfg = copy.deepcopy(cfg)
    sc_cfg["classify"]["mode"] = "scratch"
    sc = classify(sc_cfg, root / "scratch", quiet=quiet, data=data)

    rows = {}
    for protocol in ("validation", "paper"):
        rows[f"MulSupCon + finetune ({protocol})"] = ft["protocols"][protocol]
        rows[f"BCE from scratch ({protocol})"] = sc["protocols"][protocol]
    print()
    print(format_console_table(rows, title=f"multidigits test set, seed {seed} ({time.time() - t0:.0f} s)"))
    print("\nvalidation = thresholds chosen on the validation split (honest); paper = best threshold per "
          "metric on test (optimistic, as in the paper's code).")
    print(verdict(ft["protocols"]["validation"], sc["protocols"]["validation"]))
    print(f"runs: {root}/{{pretrain,finetune,scratch}}")
    print(f"next: mulsupcon runs {root}  |  mulsupcon plot curves {root}/finetune {root}/scratch  |  your own "
          "data: README, 'Your own data'")
    return {"finetune": ft, "scratch": sc}
