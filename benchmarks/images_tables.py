"""Image-path analogues of the paper's Tables 5, 6 and 7 and Figure 3, at a scale a few CPU cores run.

Data: ``multidigits`` as images (1 x 24 x 24 canvases of scikit-learn digits, 10 labels; 3000 train /
1000 val / 1000 test, fixed), and for the transfer smoke check two real MS-COCO 2017 subsets of the
data home. Backbone: torchvision ResNet-18 from scratch (standard stem: on 24-px inputs the
``small_input`` stem costs ~7x more, too much for this budget).

* Table 5 analogue: linear probe after pretraining with ALL, ANY and MulSupCon positives.
* Table 6 analogue: BCE from scratch (the pretraining schedule, one augmented view) vs MulSupCon
  linear probe vs MulSupCon finetune.
* Table 7 analogue: the MulSupCon-pretrained and the BCE-trained backbones of multidigits-digits,
  frozen and linearly probed on ``multidigits-attributes`` (a different label space); and, as a
  smoke-level check on real JPEGs, backbones trained on ``coco-mini-obmutescence`` probed on
  ``coco-tiny-zzowenzz`` (32 px, 1 seed: far too small for meaningful numbers).
* Figure 3: class-embedding heatmaps of the seed-0 MulSupCon and BCE backbones; training curves.

Every cell is mean +- std over seeds, under the ``paper`` and ``validation`` metric protocols.

Run (from the repository root; writes results/images.md and results/figures/*.png)::

    PYTHONPATH=src .venv/bin/python benchmarks/images_tables.py --seeds 0 1 2

``--pretrain-epochs`` / ``--probe-epochs`` / ``--finetune-epochs`` scale the schedule; the values
used are written into the results file.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mulsupcon.config import load_config  # noqa: E402
from mulsupcon.train.data import load_dataset_splits  # noqa: E402
from mulsupcon.tables import aggregate, metrics_table  # noqa: E402
from mulsupcon.train.checkpoint import atomic_torch_save, load_checkpoint  # noqa: E402
from mulsupcon.train.classify import classify  # noqa: E402
from mulsupcon.train.data import prepare_data  # noqa: E402
from mulsupcon.train.pretrain import pretrain  # noqa: E402

PROTOCOLS = ("paper", "validation")


def export_backbone(classify_run: Path, out_dir: Path) -> Path:
    """Write ``out_dir/backbone.pt`` (the pretraining-run format) from a classification run's model.pt.

    ``train --from`` reads ``backbone.pt`` only; this makes a BCE-from-scratch run a transfer source.
    """
    state = load_checkpoint(classify_run / "model.pt")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(out_dir / "backbone.pt", {
        "backbone": state["backbone"], "model": state["model_cfg"], "input_shape": state["input_shape"],
        "label_names": state["label_names"], "dataset": state["dataset"],
    })
    return out_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="batches of 64 per epoch (every run)")
    ap.add_argument("--probe-epochs", type=int, default=4)
    ap.add_argument("--finetune-epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a contended CPU)")
    ap.add_argument("--runs-root", default="runs/images_tables")
    ap.add_argument("--out", default="results/images.md")
    ap.add_argument("--figures", default="results/figures")
    ap.add_argument("--skip-coco", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = REPO / args.runs_root
    t_all = time.time()

    base = load_config("multidigits-images", {"pretrain.epochs": args.pretrain_epochs,
                                               "classify.epochs": args.probe_epochs,
                                               "pretrain.steps_per_epoch": args.steps,
                                               "classify.steps_per_epoch": args.steps,
                                               "eval.protocols": list(PROTOCOLS)})
    digits = prepare_data(base["dataset"])
    attr_cfg = copy.deepcopy(base["dataset"])
    attr_cfg["name"] = "multidigits-attributes"
    attributes = prepare_data(attr_cfg)

    def cfg_for(seed: int, **over) -> dict:
        c = copy.deepcopy(base)
        c["seed"] = seed
        for k, v in over.items():
            sec, key = k.split("__")
            c[sec][key] = v
        return c

    res: dict[str, list[dict]] = {}
    timing: dict[str, float] = {}

    def record(name: str, metrics: dict, seconds: float) -> None:
        res.setdefault(name, []).append(metrics["protocols"])
        timing[name] = timing.get(name, 0.0) + seconds

    for seed in args.seeds:
        pre = {}
        for pos in ("mulsupcon", "all", "any"):
            t = time.time()
            run = root / f"s{seed}-pretrain-{pos}"
            if not (run / "backbone.pt").is_file():
                pretrain(cfg_for(seed, pretrain__positives=pos), run, data=digits, quiet=True, echo=False)
            timing[f"pretrain {pos}"] = timing.get(f"pretrain {pos}", 0.0) + time.time() - t
            pre[pos] = run
            t = time.time()
            m = classify(cfg_for(seed, classify__mode="probe"), root / f"s{seed}-probe-{pos}", from_run=run,
                         data=digits, quiet=True, echo=False)
            record(f"T5 probe {pos}", m, time.time() - t)
        t = time.time()
        m = classify(cfg_for(seed, classify__mode="finetune", classify__lr=1e-4, classify__lr_backbone=1e-4,
                             classify__epochs=args.finetune_epochs),
                     root / f"s{seed}-finetune-mulsupcon", from_run=pre["mulsupcon"], data=digits, quiet=True, echo=False)
        record("T6 finetune", m, time.time() - t)
        t = time.time()
        # BCE from scratch with the pretraining settings (SGD 0.1, same epochs, batch, augmentation).
        scratch = root / f"s{seed}-scratch-bce"
        m = classify(cfg_for(seed, classify__mode="scratch", classify__optimizer="sgd", classify__lr=0.1,
                             classify__epochs=args.pretrain_epochs, classify__augment="pretrain",
                             classify__early_stop_patience=args.pretrain_epochs),
                     scratch, data=digits, quiet=True, echo=False)
        record("T6 BCE scratch", m, time.time() - t)
        bce_src = export_backbone(scratch, root / f"s{seed}-scratch-bce-backbone")
        for name, src in (("MulSupCon", pre["mulsupcon"]), ("BCE", bce_src)):
            t = time.time()
            c = cfg_for(seed, classify__mode="probe")
            c["dataset"] = copy.deepcopy(attr_cfg)
            m = classify(c, root / f"s{seed}-transfer-{name.lower()}", from_run=src, data=attributes, quiet=True, echo=False)
            record(f"T7 attributes <- {name}", m, time.time() - t)
        print(f"seed {seed} done at {time.time() - t_all:.0f}s", flush=True)

    coco_res = {}
    if not args.skip_coco:
        coco_res = coco_transfer(root, args)

    figs = REPO / args.figures
    figs.mkdir(parents=True, exist_ok=True)
    from mulsupcon import plots

    s0 = args.seeds[0]
    plots.heatmap_runs([root / f"s{s0}-pretrain-mulsupcon", root / f"s{s0}-scratch-bce"],
                       out=figs / "heatmap_multidigits.png", split="test")
    plots.curves(root / f"s{s0}-pretrain-mulsupcon", out=figs / "curves_multidigits_pretrain.png")
    plots.curves(root / f"s{s0}-scratch-bce", out=figs / "curves_multidigits_bce.png")
    diag = heatmap_diagonals(root / f"s{s0}-pretrain-mulsupcon", root / f"s{s0}-scratch-bce")

    write_report(REPO / args.out, res, coco_res, timing, diag, args, time.time() - t_all)
    print(f"wrote {args.out} in {time.time() - t_all:.0f}s")
    return 0


def heatmap_diagonals(*runs: Path) -> dict[str, float]:
    """Mean diagonal of each run's Figure-3 matrix (higher = classes better separated)."""
    import numpy as np

    from mulsupcon import plots

    out = {}
    for run in runs:
        emb, lab, _, _ = plots.run_embeddings(run, "test")
        sim, _ = plots.class_similarity(emb, lab)
        out[run.name] = float(np.nanmean(np.diag(sim)))
    return out


def coco_transfer(root: Path, args) -> dict:
    """Smoke-level transfer on real JPEGs: coco-mini-obmutescence -> coco-tiny-zzowenzz (1 seed)."""
    base = load_config("coco-tiny", {"eval.protocols": list(PROTOCOLS), "pretrain.epochs": 3,
                                     "classify.epochs": 3, "dataset.cache_dir": str(root / "cache")})
    src_cfg = copy.deepcopy(base)
    src_cfg["dataset"]["name"] = "coco-mini-obmutescence"
    src = prepare_data(src_cfg["dataset"], splits=load_dataset_splits(src_cfg["dataset"]))
    dst = prepare_data(base["dataset"], splits=load_dataset_splits(base["dataset"]))
    out = {}
    pre = root / "coco-pretrain-mulsupcon"
    if not (pre / "backbone.pt").is_file():
        pretrain(src_cfg, pre, data=src, quiet=True, echo=False)
    sc = copy.deepcopy(src_cfg)
    sc["classify"].update(mode="scratch", optimizer="sgd", lr=0.1, epochs=3, augment="pretrain")
    classify(sc, root / "coco-scratch-bce", data=src, quiet=True, echo=False)
    bce = export_backbone(root / "coco-scratch-bce", root / "coco-scratch-bce-backbone")
    for name, s in (("MulSupCon", pre), ("BCE", bce)):
        c = copy.deepcopy(base)
        c["classify"]["mode"] = "probe"
        out[f"coco-tiny <- coco-mini {name}"] = classify(c, root / f"coco-transfer-{name.lower()}", from_run=s,
                                                          data=dst, quiet=True, echo=False)["protocols"]
    return out


def write_report(path: Path, res, coco_res, timing, diag, args, seconds) -> None:
    lines = [
        "# Image path: Table 5 / 6 / 7 analogues and Figure 3 (multidigits images, CPU scale)",
        "",
        "Made by `PYTHONPATH=src .venv/bin/python benchmarks/images_tables.py --seeds "
        + " ".join(map(str, args.seeds))
        + f" --pretrain-epochs {args.pretrain_epochs} --steps {args.steps} --probe-epochs {args.probe_epochs} --finetune-epochs {args.finetune_epochs}`"
        + f" ({seconds / 60:.1f} min on 2 shared CPU cores).",
        "",
        "Scale (far below the paper's 400 epochs of ResNet-50 at 224 px): multidigits images 1x24x24, "
        "3000 train / 1000 val / 1000 test (fixed data; the seed changes initialisation, batches and "
        f"augmentation). ResNet-18 from scratch, standard stem. Every run draws {args.steps} batches of 64 per epoch "
        f"(an epoch is NOT a full pass over the 3000 training canvases). Pretraining: {args.pretrain_epochs} epochs, batch 64, SGD lr 0.1 cosine, temperature 0.1, queue 1024, momentum 0.99, crop+jitter views. "
        f"Probe: Adam lr 0.01, {args.probe_epochs} epochs. Finetune: Adam 1e-4, {args.finetune_epochs} epochs. "
        f"BCE from scratch: the pretraining settings (SGD 0.1, {args.pretrain_epochs} epochs, batch 64, one "
        "pretraining-augmented view), ReduceLROnPlateau as every classification run. Best epoch chosen on "
        f"validation loss. Mean +- std over {len(args.seeds)} seeds.",
        "",
    ]

    def table(title: str, names: list[str]) -> None:
        for proto in PROTOCOLS:
            rows = {n: aggregate([r[proto] for r in res[n]]) for n in names if n in res}
            lines.append(metrics_table(rows, title=f"{title} ({proto} protocol)"))
            lines.append("")

    table("Table 5 analogue: linear probe after ALL / ANY / MulSupCon pretraining", ["T5 probe all", "T5 probe any", "T5 probe mulsupcon"])
    table("Table 6 analogue: BCE from scratch vs MulSupCon probe vs finetune", ["T6 BCE scratch", "T5 probe mulsupcon", "T6 finetune"])
    table("Table 7 analogue: frozen multidigits-digits backbones probed on multidigits-attributes",
          ["T7 attributes <- BCE", "T7 attributes <- MulSupCon"])
    if coco_res:
        for proto in PROTOCOLS:
            lines.append(metrics_table({k: v[proto] for k, v in coco_res.items()},
                                       title=f"Transfer smoke check on real JPEGs, 1 seed, 32 px, 3 epochs ({proto} protocol; "
                                             "64 training images: noise, not evidence)"))
            lines.append("")
    lines += [
        "Figure 3 analogue: `results/figures/heatmap_multidigits.png` (seed-0 MulSupCon pretraining backbone vs "
        "the BCE-from-scratch backbone, test split; rows = softmax over classes of cos(class means)/0.1). "
        "Mean diagonal (higher = classes better separated): "
        + ", ".join(f"{k} {v:.3f}" for k, v in diag.items()) + ".",
        "Curves: `results/figures/curves_multidigits_pretrain.png`, `results/figures/curves_multidigits_bce.png`.",
        "",
        "Wall time per kind (all seeds): " + ", ".join(f"{k} {v:.0f}s" for k, v in timing.items()) + ".",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    (path.with_suffix(".json")).write_text(json.dumps({"results": res, "coco": coco_res, "timing": timing,
                                                       "heatmap_diagonal": diag}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
