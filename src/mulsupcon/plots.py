"""Figures: the class-embedding heatmap of the paper's Figure 3, and training curves.

Heatmap: for each class c, the class embedding is the mean backbone embedding of the samples whose
label set is exactly {c}; row i shows softmax_j(cos(e_i, e_j) / T) over all classes j. A sharper
diagonal means classes are better separated. Classes with no single-label sample have no embedding:
they are left out of the drawing, and each panel's title counts the classes drawn of all.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np


def class_similarity(embeddings: np.ndarray, labels: np.ndarray, temperature: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Row-softmax of cosine similarities between single-label class means.

    Args:
        embeddings: (N, D) sample embeddings.
        labels: (N, C) multi-hot labels.
        temperature: softmax temperature applied to cosine similarities.

    Returns:
        (C, C) matrix (rows of classes without single-label samples, and their columns, are NaN;
        the softmax runs over the defined classes only), and (C,) counts of samples averaged.
    """
    import torch  # here, not at the top: `plot curves` reads JSON and needs no torch

    emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
    lab = np.asarray(labels).astype(bool)
    if emb.shape[0] != lab.shape[0]:
        raise ValueError(f"{emb.shape[0]} embeddings but {lab.shape[0]} label rows")
    single = lab.sum(1) == 1
    C = lab.shape[1]
    counts = np.array([(single & lab[:, c]).sum() for c in range(C)])
    means = torch.zeros(C, emb.shape[1], dtype=torch.float64)
    for c in range(C):
        if counts[c]:
            means[c] = emb[torch.from_numpy(single & lab[:, c])].mean(0)
    defined = torch.from_numpy(counts > 0)
    out = np.full((C, C), np.nan)
    if defined.any():
        m = torch.nn.functional.normalize(means[defined], dim=1)
        sim = torch.softmax((m @ m.T) / temperature, dim=1).numpy()
        idx = np.flatnonzero(counts > 0)
        out[np.ix_(idx, idx)] = sim
    return out, counts


def run_embeddings(run: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Backbone embeddings (N, D) and labels (N, C) of a run's dataset split, label names, run kind."""
    import torch

    from mulsupcon.models import build_backbone
    from mulsupcon.train.checkpoint import load_checkpoint
    from mulsupcon.train.data import ImageViews, prepare_data
    from mulsupcon.train.rundir import check_finished, read_run_config, run_kind

    run = Path(run)
    cfg = read_run_config(run)
    kind = run_kind(run)
    path = run / ("backbone.pt" if kind == "pretrain" else "model.pt")
    check_finished(run, (path.name,), "plot it")
    data = prepare_data(cfg["dataset"])
    src = {"train": data.train, "val": data.val, "test": data.test}[split]
    if src is None:
        raise ValueError(f"{run}: the dataset has no '{split}' split")
    state = load_checkpoint(path)
    model_cfg = state.get("model", None) if kind == "pretrain" else state["model_cfg"]
    backbone = build_backbone(model_cfg or cfg["model"], data.input_shape)
    backbone.load_state_dict(state["backbone"])
    backbone.eval()
    view = ImageViews(int(data.input_shape[-1]), "eval") if data.is_image else None
    feats, labs = [], []
    with torch.no_grad():
        for idx in torch.arange(src.n).split(512):
            x, y = src.batch(idx)
            if view is not None:
                x = view(x, None)
            feats.append(backbone(x).float())
            labs.append(y)
    return torch.cat(feats).numpy(), torch.cat(labs).numpy(), data.label_names, kind


def figure_path(out: Optional[str | Path], default: Path) -> Path:
    """Where a figure goes, checked before any work: ``default`` when ``out`` is None; a name without a
    suffix gets ``.png`` (matplotlib would add it silently, and we would report the other name); a folder
    or a suffix matplotlib cannot write is refused."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    path = default if out is None else Path(out)
    if path.is_dir():
        raise IsADirectoryError(f"--out {path} is a folder; give the figure's file name (e.g. {path / default.name})")
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ValueError(f"--out {path}: cannot write a figure as {path.suffix!r}; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))} (.png is the default)")
    return path


def heatmap_runs(runs: Sequence[str | Path], out: Optional[str | Path] = None, split: str = "test",
                 temperature: float = 0.1) -> Path:
    """Write the Figure 3 heatmap of each run side by side to a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = figure_path(out, Path(runs[0]) / "heatmap.png")
    panels = []
    for run in runs:
        emb, lab, names, kind = run_embeddings(run, split)
        sim, counts = class_similarity(emb, lab, temperature)
        if not counts.any():
            warnings.warn(f"{run}: no {split} row has exactly one label, so its panel is empty (each class is "
                          "embedded by the mean of its single-label rows, as in Figure 3)"
                          + ("; try --split train" if split != "train" else ""),
                          stacklevel=2)
        # Only the classes with single-label rows have an embedding: the others would be empty rows and
        # columns (72 of COCO's 80 on a small test split), so they are left out of the drawing.
        shown = np.flatnonzero(counts > 0) if counts.any() else np.arange(len(names))
        panels.append((Path(run), kind, sim[np.ix_(shown, shown)], counts, [names[k] for k in shown]))
    n = len(panels)
    # Runs on different datasets may sit side by side: each panel has its own classes.
    size = max(3.5, 0.28 * max(p[2].shape[0] for p in panels) + 1.5)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.8, size), squeeze=False, layout="constrained")
    vmax = max(float(np.nanmax(p[2])) if np.isfinite(p[2]).any() else 1.0 for p in panels)
    for ax, (run, kind, sim, counts, names) in zip(axes[0], panels):
        C = sim.shape[0]
        masked = np.ma.masked_invalid(sim)
        cmap = plt.get_cmap("viridis").with_extremes(bad="#cccccc")
        im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=vmax)
        ax.set_title(f"{run.name}\n({kind}; {int((counts > 0).sum())}/{len(counts)} classes, {split})", fontsize=9)
        if C <= 40:
            short = [s.replace("digit_", "") for s in names]
            ax.set_xticks(range(C), short, rotation=90, fontsize=7)
            ax.set_yticks(range(C), short, fontsize=7)
        ax.set_xlabel("class j")
        ax.set_ylabel("class i")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label=f"softmax_j cos(e_i, e_j)/{temperature}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def curve_panels(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, list[tuple[str, str, list, list]]]]:
    """What :func:`curves` draws, as data: ``[(panel title, [(line label, run name, epochs, values), ...]), ...]``.

    ``histories``: run name -> its ``history.json`` rows. Panels: loss (pretraining ``loss``, or ``train_loss``
    and ``val_loss``), learning rate, validation mAP and the backbone's spread, each present when some run
    has it. A line is labelled by its key for one run, by the run's name (and the key, where a run has
    several in the panel) for several. A missing value is NaN."""
    spec = [("loss", ("loss", "train_loss", "val_loss")), ("learning rate", ("lr",)),
            ("validation mAP", ("val_mAP",)), ("embedding spread", ("spread",))]
    panels = []
    for title, keys in spec:
        lines = []
        for name, hist in histories.items():
            present = [k for k in keys if hist and k in hist[0]]
            for k in present:
                label = k if len(histories) == 1 else (name if len(present) == 1 else f"{name} {k}")
                lines.append((label, name, [h["epoch"] for h in hist],
                              [h.get(k) if h.get(k) is not None else float("nan") for h in hist]))
        if lines:
            panels.append((title, lines))
    return panels


def curves(run: str | Path | Sequence[str | Path], out: Optional[str | Path] = None) -> Path:
    """Loss, learning rate and validation mAP (classification runs) or the backbone's spread (pretraining
    runs; near 0 means collapse) per epoch, as a PNG; several runs are drawn over each other (e.g. finetuning
    against BCE from scratch). Default ``out``: RUN/curves.png for one run, curves.png here for several."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [Path(run)] if isinstance(run, (str, Path)) else [Path(r) for r in run]
    if not runs:
        raise ValueError("curves needs at least one run")
    out = figure_path(out, runs[0] / "curves.png" if len(runs) == 1 else Path("curves.png"))
    histories: dict[str, list] = {}
    for r in runs:
        path = r / "history.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {r} a mulsupcon run with at least one epoch?")
        # named by its folder, or its whole path where two folders share a name (runs/a/ft and runs/b/ft)
        name = r.name if sum(q.name == r.name for q in runs) == 1 else str(r)
        histories[name] = json.loads(path.read_text())
    panels = curve_panels(histories)
    colour = {name: f"C{i % 10}" for i, name in enumerate(histories)}  # a run keeps its colour in every panel
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels):
        for i, (label, name, epochs, values) in enumerate(lines):
            several = len(histories) > 1
            ax.plot(epochs, values, label=label, color=colour[name] if several else f"C{i}",
                    linestyle="--" if several and label.endswith("val_loss") else "-")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5 on a short run
        if title == "learning rate":
            ax.set_yscale("log")
        if len(lines) > 1 or len(histories) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(", ".join(histories), fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
