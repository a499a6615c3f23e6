"""``mulsupcon`` command line. Thin: it parses, resolves a config, and calls the library.

Every config key is a flag: ``--pretrain.lr 1e-3``, ``--dataset.name scene``, ``--model.hidden [128,128]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mulsupcon.config import number_argument

EPILOG = (
    "Any config key can be given as a flag: --SECTION.KEY VALUE (e.g. --pretrain.epochs 10 "
    "--pretrain.positives any --classify.loss asl). `mulsupcon config show NAME` prints a config."
)


def _add_run_args(p: argparse.ArgumentParser, *, config_default: Optional[str]) -> None:
    p.add_argument("--config", "-c", default=config_default,
                   help="shipped config name or YAML path (default: the shipped config of a dataset that has one, "
                        "e.g. yeast, scene, coco; else 'vectors' or 'images' as the data is, for your own files "
                        "and any other dataset; with no dataset named, 'yeast' for pretrain and the library "
                        "defaults for train). A YAML file of yours changes that default with its keys, or starts "
                        "from the config its top-level 'base:' names ('base: vectors'; 'base: null' for the "
                        "library defaults). A run folder: the config that run was made with")
    p.add_argument("--dataset", help="dataset name (shortcut for --dataset.name)")
    p.add_argument("--run-dir", help="run directory (default: runs/<dataset>-<kind>-<time>)")
    p.add_argument("--seed", type=int, help="run seed (shortcut for --seed)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--quiet", "-q", action="store_true", help="plain log lines instead of progress bars")
    p.add_argument("--nproc", type=number_argument(int, 1), default=None, help="launch N processes with torchrun on this machine")
    p.add_argument("--stop-after-epochs", type=number_argument(int, 1), default=None, metavar="N",
                   help="stop cleanly (with a checkpoint) after N epochs of this call; continue with --resume")


def build_parser() -> argparse.ArgumentParser:
    """The ``mulsupcon`` argument parser: one subcommand per application; config keys pass as ``--SECTION.KEY``."""
    parser = argparse.ArgumentParser(
        prog="mulsupcon",
        description="Multi-label supervised contrastive learning (MulSupCon, AAAI 2024).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("pretrain", help="contrastive pretraining (MoCo + label queue + MulSupCon loss)", epilog=EPILOG)
    _add_run_args(p, config_default=None)

    p = sub.add_parser("train", help="probe / finetune a pretrained backbone (pretrained first without --from), or "
                       "train from scratch", epilog=EPILOG)
    _add_run_args(p, config_default=None)
    p.add_argument("--mode", choices=["probe", "finetune", "scratch"], required=True,
                   help="finetune: the pretrained backbone and a linear layer, all trained; probe: only the linear "
                        "layer, on the frozen backbone; scratch: the same network from random weights with BCE "
                        "(or --classify.loss asl), no pretraining")
    p.add_argument("--from", dest="from_run", help="pretraining run directory (or backbone.pt) to start from (with --resume: the one "
                   "the run started from); without it, probe and finetune pretrain first, in RUN_DIR/pretrain")

    p = sub.add_parser("evaluate", help="metrics of a finished classification run under each protocol (its test split, or --input FILE)")
    p.add_argument("run", help="classification run directory (with --input: or its model.pt)")
    p.add_argument("--protocol", choices=["paper", "validation", "fixed"], action="append",
                   help="protocol(s) to report (default: all three)")
    p.add_argument("--threshold", type=float, default=0.5, help="threshold of the fixed protocol")
    p.add_argument("--input", default=None, metavar="FILE",
                   help="a new labelled vector file (CSV/TSV: the training file's feature and label columns, by "
                        "name; NPZ, HDF5, ARFF, svmlight), or a folder of images: score the run's model on it instead of its "
                        "own test split")
    p.add_argument("--label-file", default=None, metavar="FILE",
                   help="with --input FOLDER of images: their label file, as training reads it (default: "
                        "FOLDER/labels.csv); with --input FILE.csv of features only: the CSV/TSV of their labels, "
                        "row for row")
    p.add_argument("--at", type=int, nargs="+", default=(), metavar="K",
                   help="also P@K and nDCG@K for each K (each row's K best-scored labels; the measures of extreme "
                        "multi-label classification, with predict --top K)")
    p.add_argument("--per-label", action="store_true",
                   help="also a table of each label: training and evaluated positives, AP, and precision / recall / "
                        "F1 at the run's threshold (those of predict --labels)")
    p.add_argument("--json", action="store_true",
                   help="print the numbers as one JSON object (protocols, and per_label with --per-label), for scripts")

    p = sub.add_parser("predict", help="label probabilities (or 0/1 labels) of new rows or images with a trained run")
    p.add_argument("run", help="classification run directory (or its model.pt)")
    p.add_argument("--input", required=True, help="file or folder in the training formats (label columns are ignored)")
    p.add_argument("--out", required=True, help="CSV to write: a header of the label names, one row per input row "
                   "('-': standard output)")
    p.add_argument("--keep", nargs="+", default=(), metavar="COLUMN",
                   help="CSV input: copy these columns (an id, say) as they are, before the label columns")
    p.add_argument("--labels", action="store_true",
                   help="write 0/1 at the run's threshold (chosen on its validation split for micro-F1)")
    p.add_argument("--threshold", type=float, default=None, help="write 0/1 at this fixed threshold")
    p.add_argument("--embeddings", action="store_true",
                   help="write the backbone's features (emb0, emb1, ...) instead; a pretraining run gives only these")
    p.add_argument("--top", type=int, default=None, metavar="K",
                   help="write each row's K most probable labels instead, most probable first: columns label_1, "
                        "p_1, ..., label_K, p_K (for data with many labels)")
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("export", help="a trained run as TorchScript, a torch.export program or ONNX (raw rows -> "
                                      "probabilities)")
    p.add_argument("run", help="classification run directory (or its model.pt)")
    p.add_argument("--format", choices=["torchscript", "pt2", "onnx"], default=None,
                   help="pt2: torch.export's program (torch.export.load(FILE).module()), the successor of "
                        "TorchScript, which torch now marks deprecated; default: the --out suffix's format (.pt2, "
                        ".onnx), else torchscript")
    p.add_argument("--out", default=None,
                   help="output file (default: RUN/model.torchscript.pt, RUN/model.pt2 or RUN/model.onnx)")

    p = sub.add_parser("demo", help="the main job: MulSupCon vs BCE on the embedded multidigits data (minutes)")
    p.add_argument("--run-dir", default="runs/demo", help="where the demo's three runs go (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a much shorter schedule (smoke test)")
    p.add_argument("--quiet", "-q", action="store_true", help="plain log lines instead of progress bars")
    p.add_argument("--seed", type=int, default=0, help="the runs' seed (initialisation, batch order; the rows stay "
                                                       "the same) (default: %(default)s)")

    p = sub.add_parser("env", help="versions, devices (GPUs and their memory), threads, optional packages and the data "
                                   "home: for a bug report, or before a long run")
    p.add_argument("--data-home", help="data home (default: $MULSUPCON_DATA or the user cache dir)")

    p = sub.add_parser("runs", help="the runs in a folder: kind, dataset, finished or where stopped, test metrics")
    p.add_argument("folders", nargs="*", default=["runs"], metavar="FOLDER",
                   help="where to look, subfolders included (default: runs)")
    p.add_argument("--protocol", choices=("paper", "validation", "fixed"), default="validation",
                   help="whose test metrics to show (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per run, with the test "
                   "metrics of every protocol, unrounded")

    p = sub.add_parser("datasets", help="list, describe and download datasets")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    d = dsub.add_parser("list", help="registered datasets and whether their files are present")
    d.add_argument("--data-home", help="data home (default: $MULSUPCON_DATA or the user cache dir)")
    d = dsub.add_parser("info", help="what a dataset is, its files, and a description of its splits")
    d.add_argument("name")
    d.add_argument("--data-home")
    d = dsub.add_parser("check", help="your own data (--dataset.path FILE with its --dataset.* options, as for train) read and "
                        "split as training would: features, parts, labels no model can learn", epilog=EPILOG)
    d.add_argument("--config", help="a config file to take the dataset section from, as train would (flags override it)")
    d = dsub.add_parser("download", help="download (and verify) a dataset's files into the data home")
    d.add_argument("name")
    d.add_argument("--data-home")
    d.add_argument("--force", action="store_true", help="download again even if present and valid")
    d.add_argument("--timeout", type=number_argument(float, 0, above=True), default=30,
                   help="seconds an attempt may wait to connect or for each 64 KiB (default: %(default)s)")
    d.add_argument("--retries", type=number_argument(int, 0), default=2, help="further attempts, with backoff (default: %(default)s)")
    d.add_argument("--deadline", type=number_argument(float, 0, above=True), default=600, help="seconds for all attempts (default: %(default)s)")

    p = sub.add_parser("config", help="show shipped configs")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.add_parser("list", help="the shipped configs, each with what it is for")
    c = csub.add_parser("show", help="print a resolved config as YAML")
    c.add_argument("name", nargs="?", default=None, help="a shipped config, a YAML file or a run folder (none: the library defaults)")

    p = sub.add_parser("plot", help="figures: class-embedding heatmap (Figure 3), training curves")
    psub = p.add_subparsers(dest="plot_command", metavar="FIGURE")
    h = psub.add_parser("heatmap", help="class-embedding heatmap of one or more runs, side by side")
    h.add_argument("runs", nargs="+", help="run directories (pretraining or classification)")
    h.add_argument("--out", default=None, help="figure file, PNG unless its suffix says otherwise (.pdf, .svg, ...; "
                                               "default: <first run>/heatmap.png)")
    h.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="whose rows' embeddings give the class means (default: %(default)s)")
    h = psub.add_parser("curves", help="loss, learning rate and validation metric per epoch, of one run or several "
                                       "drawn over each other")
    h.add_argument("runs", nargs="+", metavar="run", help="run directories")
    h.add_argument("--out", default=None, help="figure file, PNG unless its suffix says otherwise (default: RUN/curves.png; "
                                               "for several runs curves.png here)")

    from mulsupcon.embed import add_embed_parser

    add_embed_parser(sub)

    p = sub.add_parser("benchmark", help="MulSupCon against BCE, ASL, scikit-learn's MLP and a random forest (same rows)")
    p.add_argument("what", choices=["vectors"], help="vectors: the vector datasets of the data home, or your own")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME|NAME=PATH",
                   help="default: the twelve sets of mulsupcon.benchmark.DATASETS; NAME: any registered vector dataset "
                        "(mulsupcon datasets list: emotions, birds, enron, ...) or multidigits, the demo's data as "
                        "pixel vectors; NAME=PATH adds your own file, read as by `mulsupcon train --dataset.path PATH` with the dataset.* options (--dataset.KEY VALUE "
                        "or --set dataset.KEY=VALUE) "
                        "(dataset.xml, dataset.test_path, dataset.label_columns, dataset.ignore_columns, dataset.categorical_columns, "
                        "dataset.label_sep, "
                        "dataset.test_fraction)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="default: 0 1 2 (the rows stay the same; a seed "
                   "sets each method's initialisation and batch order)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"default: all but boomer, which needs --boomer-python; from {', '.join(BENCHMARK_METHODS)}")
    p.add_argument("--boomer-python", default=None, metavar="PYTHON",
                   help="an interpreter with mlrl-boomer installed, for the boomer method (default: "
                        "$MULSUPCON_BOOMER_PYTHON; make one: python3 -m venv .venv-boomer && "
                        ".venv-boomer/bin/pip install mlrl-boomer)")
    p.add_argument("--config", default="vectors", help="the config MulSupCon, BCE and ASL run with (a YAML file of yours changes 'vectors' with its "
                   "keys, unless it names a 'base:')")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. classify.epochs=100 (repeatable: every --set adds to the list); "
                        "--classify.epochs 100 is the same")
    p.add_argument("--out", default=None,
                   help="the markdown report (default: WORK/report.md); an existing file that is not such a report "
                        "is refused, not overwritten")
    p.add_argument("--work", default="runs/benchmark", help="per-result files (a rerun continues from them)")

    p = sub.add_parser("reproduce", help="re-run the paper's experiments that fit this machine")
    p.add_argument("what", choices=["vectors"], help="vectors: Tables 2/3 on yeast, scene, delicious")
    p.add_argument("--datasets", nargs="+", default=None, help="some of yeast, scene, delicious (default: all three)")
    p.add_argument("--seeds", type=number_argument(int, 1), default=None, help="seeds per dataset (default: 5; 3 for delicious)")
    p.add_argument("--out", default=None,
                   help="the markdown tables (default: RUNS_ROOT/report.md); an existing file that is not such a "
                        "report (e.g. the curated results/vectors.md) is refused, not overwritten")
    p.add_argument("--runs-root", default="runs/reproduce",
                   help="where the runs go; a finished run there is reused (default: %(default)s)")
    p.add_argument("--scale", type=number_argument(float, 0, above=True), default=1.0,
                   help="fraction of the pretraining schedule to run (e.g. 0.2)")
    p.add_argument("--quiet", "-q", action="store_true", help="plain log lines instead of progress bars")
    return parser


def _version() -> str:
    from mulsupcon import __version__

    return f"mulsupcon {__version__}"


def set_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``--set`` items ``["classify.epochs=3", "pretrain.lr=1e-3"]`` -> ``{"classify.epochs": 3, ...}``."""
    from mulsupcon.config import parse_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        out[key] = parse_value(value)
    return out


def split_overrides(extra: Sequence[str]) -> dict[str, Any]:
    """``["--pretrain.lr", "1e-3", "--dataset.name=scene"]`` -> ``{"pretrain.lr": 0.001, ...}``."""
    from mulsupcon.config import DEFAULTS, parse_value

    top_level = {k for k, v in DEFAULTS.items() if not isinstance(v, dict)}  # seed, device
    out: dict[str, Any] = {}
    i = 0
    extra = list(extra)
    while i < len(extra):
        tok = extra[i]
        name = tok[2:].split("=", 1)[0]
        if not tok.startswith("--") or ("." not in name and name not in top_level):
            raise SystemExit(f"mulsupcon: unrecognised argument '{tok}' (config overrides look like --section.key value)")
        key = tok[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        else:
            if i + 1 >= len(extra):
                raise SystemExit(f"mulsupcon: {tok} needs a value")
            value = extra[i + 1]
            i += 1
        out[key] = parse_value(value)
        i += 1
    return out


EXPORT_SUFFIXES = {".onnx": "onnx", ".pt2": "pt2"}  # an --out suffix that fixes the export format

# The names of mulsupcon.benchmark.METHODS, for `benchmark --help` without importing the benchmark (and torch)
# when the parser is built; tests/test_benchmark.py keeps the two equal.
BENCHMARK_METHODS = ("mulsupcon-finetune", "mulsupcon-probe", "bce", "asl", "sklearn-mlp", "logistic-regression",
                     "random-forest", "finetune+forest", "boomer")
FILE_OPTIONS = ("path", "test_path", "label_columns", "ignore_columns", "categorical_columns", "label_sep", "xml", "labels",
                "test_labels")  # dataset.* of one's own files


def _names_other_data(ds: dict, overrides: dict[str, Any]) -> bool:
    """Whether flags name another dataset than a saved config's ``dataset`` section: another registered
    name, or another file (compared as absolute paths)."""
    if "dataset.path" in overrides:
        new = overrides["dataset.path"]
        if not new or not ds.get("path"):
            return bool(new) != bool(ds.get("path"))
        return Path(str(new)).expanduser().resolve() != Path(str(ds["path"])).expanduser().resolve()
    return "dataset.name" in overrides and overrides["dataset.name"] != ds.get("name")


class DataPathNotFound(FileNotFoundError):
    """The config's ``dataset.path`` does not exist (the error then says which config file set it)."""


def _resolve(args: argparse.Namespace, extra: Sequence[str], *, base: Optional[dict] = None,
             command: Optional[str] = None) -> dict:
    """The run's config: ``base`` (a saved run's) or ``--config`` (default: the one for ``command``'s data,
    :func:`_default_config`), then the flags."""
    from mulsupcon.config import DEFAULTS, load_config, resolve_paths, set_dotted, validate_config, with_defaults

    overrides = {**(getattr(args, "file_overrides", None) or {}), **split_overrides(extra)}
    if getattr(args, "dataset", None):
        overrides["dataset.name"] = args.dataset
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if base is not None:
        import copy

        cfg = with_defaults(copy.deepcopy(base))
        if _names_other_data(cfg["dataset"], overrides):
            # e.g. `train --from RUN --dataset.path other.npz` (transfer): the reading options of RUN's
            # file (its label columns, xml, test part, ...) do not apply to the new data.
            for key in ("name", *FILE_OPTIONS):  # the name too: a new file is then named after itself
                cfg["dataset"][key] = DEFAULTS["dataset"][key]
        for k, v in overrides.items():
            set_dotted(cfg, k, v)
        resolve_paths(cfg)
        validate_config(cfg)
        return cfg
    try:
        cfg = load_config(args.config or _default_config(command or args.command, overrides), overrides)
        if cfg["dataset"]["path"] and not Path(cfg["dataset"]["path"]).exists():
            raise DataPathNotFound(f"dataset path not found: {cfg['dataset']['path']}")
    except DataPathNotFound as err:
        source = getattr(args, "config_file", None)
        if source is None or "dataset.path" in split_overrides(extra):
            raise
        # The path came from a config file: it is read from the working directory, as a flag's would be.
        raise FileNotFoundError(f"{err} (set in {source}; a path in a config file is relative to the working "
                                f"directory, {Path.cwd()}, as a flag's is)") from None
    return cfg


def _default_config(command: str, overrides: dict[str, Any]) -> Optional[str]:
    """Without --config: 'vectors' or 'images' for your own data (as the path holds); for a registered
    dataset the shipped config meant for it (the paper's yeast, scene, delicious, ...) or else 'vectors' / 'images' by
    its kind, so that `--dataset emotions` gets the defaults that adapt to the data's size, not yeast's
    schedule; with neither, 'yeast' for pretraining and the plain defaults for classification."""
    from mulsupcon.config import shipped_config_for

    path = overrides.get("dataset.path")
    if path:
        from mulsupcon.data.user_files import guess_kind

        if not Path(str(path)).expanduser().exists():
            raise DataPathNotFound(f"dataset path not found: {path}")
        return "images" if guess_kind(Path(str(path)).expanduser(), overrides.get("dataset.labels")) == "image" else "vectors"
    from mulsupcon.data.image_datasets import HDF5_PREFIX

    name = overrides.get("dataset.name")
    if name is not None and str(name).startswith(HDF5_PREFIX):  # `mulsupcon embed`'s features: vectors
        return "vectors"
    if name is not None:
        from mulsupcon.data.registry import list_datasets

        own = shipped_config_for(str(name))
        if own is not None:
            return own
        spec = next((s for s in list_datasets() if s.name == str(name)), None)
        if spec is not None:
            return "images" if spec.kind == "image" else "vectors"
    return "yeast" if command == "pretrain" else None


def _is_rank0() -> bool:
    """True outside torchrun and on the process of rank 0 (the only one that prints results)."""
    return os.environ.get("RANK", "0") == "0"


def _launch_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Re-run this same command under torchrun with ``nproc`` processes on this machine."""
    rest, skip = [], False
    for i, tok in enumerate(argv):
        if skip:
            skip = False
            continue
        if tok == "--nproc":
            skip = True
            continue
        if tok.startswith("--nproc="):
            continue
        rest.append(tok)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "mulsupcon", *rest]
    print("launching:", " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status (2: bad input)."""
    from_console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    status = None
    try:
        with warnings.catch_warnings():  # restores the warnings machinery on the way out
            if from_console:  # not a test or a library caller, which may be recording warnings
                warnings.showwarning = _one_line_warning(warnings.showwarning, args.command)
            status = _dispatch(args, extra, argv, parser)
            return status
    except BrokenPipeError:  # output piped into `head` and the like: end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ValueError, OSError, RuntimeError) as err:  # OSError: FileNotFoundError, a failed download or write
        print(f"mulsupcon {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {_resume_hint(args)}", file=sys.stderr)
        return 130
    finally:
        if "WORLD_SIZE" in os.environ:
            from mulsupcon.train.distributed import shutdown

            shutdown()
            if status == 0:
                # A finished process of a multi-process run skips the interpreter's teardown: there,
                # torch's gloo objects sometimes abort the process ("terminate called without an active
                # exception"; pytorch/pytorch#179291) after all its work is done and its files are
                # written, and torchrun then reports the whole run as failed (3 of 9 CI runs of
                # tests/test_distributed.py on 2026-12-07, always after the results were printed).
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)


def _one_line_warning(default: Callable[..., None], command: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints mulsupcon's own warnings as ``mulsupcon CMD: warning: ...``
    (the file and line of the library code that raised them say nothing to a user); other packages'
    warnings keep Python's format."""
    package = Path(__file__).resolve().parent

    def show(message, category, filename, lineno, file=None, line=None):
        if Path(filename).resolve().is_relative_to(package):
            print(f"mulsupcon {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _pretrained_source(run_dir: Path) -> Optional[str]:
    """The pretrained run (folder or backbone.pt) that a probe/finetune run in ``run_dir`` started from (its
    ``split.json``), if it still exists."""
    try:
        source = json.loads((run_dir / "split.json").read_text()).get("pretrained_from")
    except (OSError, ValueError):
        return None
    return source if source and Path(source).exists() else None


def _pretrain_then_train(args, extra) -> int:
    """``train --mode probe|finetune`` without ``--from``: pretrain into ``RUN/pretrain``, then train from it in
    ``RUN``: the whole method in one command. ``--resume`` continues whichever part was stopped."""
    from mulsupcon.train.classify import classify
    from mulsupcon.train.pretrain import pretrain
    from mulsupcon.train.rundir import default_run_dir, read_run_config

    run_dir = Path(args.run_dir) if args.run_dir else None
    pre = run_dir / "pretrain" if run_dir else None
    resuming = bool(args.resume and pre is not None and (pre / "config.yaml").is_file())
    if args.resume and not resuming:
        raise ValueError(f"cannot resume: {args.run_dir or 'no --run-dir given'} holds no run (no config.yaml, nor "
                         "pretrain/config.yaml)")
    # The config pretraining would get (`mulsupcon pretrain` with the same flags), so that the one command
    # gives what the two do.
    cfg = _resolve(args, extra, base=read_run_config(pre) if resuming else None, command="pretrain")
    if run_dir is None:
        run_dir = default_run_dir(args.mode, cfg)
        pre = run_dir / "pretrain"
    args.run_dir = str(run_dir)  # named by the Ctrl-C hint, which resumes either part
    if not (resuming and (pre / "backbone.pt").is_file()):
        # A second start in the same folder is refused by the pretraining run's own folder checks.
        pretrain(cfg, pre, resume=resuming, quiet=args.quiet, stop_after_epochs=args.stop_after_epochs)
        if not (pre / "backbone.pt").is_file():  # --stop-after-epochs stopped it with a checkpoint
            if _is_rank0():
                print(f"pretraining stopped in {pre}; {_resume_hint(args)}")
            return 0
    if _is_rank0():
        print(f"pretraining run: {pre}")
    args.from_run = str(pre)
    cfg = _resolve(args, extra, base=read_run_config(pre))
    cfg["classify"]["mode"] = args.mode
    results = classify(cfg, run_dir, from_run=args.from_run, quiet=args.quiet, stop_after_epochs=args.stop_after_epochs)
    _report_training(args, cfg, results, run_dir)
    return 0


def _report_training(args, cfg: dict, results: Optional[dict], run_dir: Path) -> None:
    """A classification run's test metrics and its folder, printed once (rank 0)."""
    if results and _is_rank0():
        from mulsupcon.train.classify import metrics_markdown

        print(metrics_markdown(results, title=f"{args.mode} on {cfg['dataset']['name']} (best epoch {results['best_epoch']})"))
    if _is_rank0():
        print(f"run: {run_dir}")


def _resume_hint(args) -> str:
    """How to continue after Ctrl-C: the command that picks up where this one stopped."""
    run_dir = getattr(args, "run_dir", None)
    if args.command == "pretrain" and run_dir:
        return f"continue with: mulsupcon pretrain --run-dir {shlex.quote(str(run_dir))} --resume"
    if args.command == "train" and run_dir:
        return f"continue with: mulsupcon train --mode {args.mode} --run-dir {shlex.quote(str(run_dir))} --resume"
    if args.command in ("benchmark", "reproduce"):
        return "the finished parts are kept: the same command continues from them"
    return "nothing was resumable"


def _config_file_as_flags(args: argparse.Namespace) -> None:
    """A YAML file of the user's that names no ``base:`` is a set of flags, applied before the command line's
    (``args.file_overrides``): it changes the config the command would use without --config (the vector
    defaults for a CSV, the pretraining run's with --from; 'vectors' for the benchmark), not the library
    defaults. A shipped config, or a file naming its base, stays a whole config."""
    from mulsupcon.config import own_config_flags

    args.file_overrides = own_config_flags(args.config) if args.config is not None else None
    args.config_file = args.config  # named when a path it holds is not found
    if args.file_overrides is not None:
        args.config = "vectors" if args.command == "benchmark" else None


def takes_config_flags(args: argparse.Namespace) -> bool:
    """Whether the parsed command takes ``--SECTION.KEY VALUE`` config flags beside its own."""
    return args.command in ("pretrain", "train", "benchmark") or (
        args.command == "datasets" and getattr(args, "datasets_command", None) == "check")


def _dispatch(args, extra, argv, parser) -> int:
    cmd = args.command
    if extra and not takes_config_flags(args):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    if cmd in ("pretrain", "train") and args.nproc and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args.nproc, argv)
    if takes_config_flags(args):
        _config_file_as_flags(args)

    if cmd == "pretrain":
        from mulsupcon.train.pretrain import pretrain
        from mulsupcon.train.rundir import default_run_dir, read_run_config

        base = read_run_config(args.run_dir) if args.resume and args.run_dir and (Path(args.run_dir) / "config.yaml").is_file() else None
        cfg = _resolve(args, extra, base=base)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir("pretrain", cfg)
        args.run_dir = str(run_dir)  # named by the Ctrl-C hint
        pretrain(cfg, run_dir, resume=args.resume, quiet=args.quiet, stop_after_epochs=args.stop_after_epochs)
        if _is_rank0():
            print(f"pretraining run: {run_dir}")
        return 0

    if cmd == "train":
        from mulsupcon.train.classify import classify
        from mulsupcon.train.rundir import default_run_dir, read_run_config

        if args.resume and args.run_dir and (Path(args.run_dir) / "config.yaml").is_file():
            cfg = _resolve(args, extra, base=read_run_config(args.run_dir))
            if args.from_run is None and args.mode != "scratch":
                args.from_run = _pretrained_source(Path(args.run_dir))
        elif args.from_run is None and args.mode != "scratch":
            return _pretrain_then_train(args, extra)
        elif args.config is None and args.from_run and Path(args.from_run).is_dir():
            # Start from the pretraining run's own config (dataset, model), then apply flags.
            base = read_run_config(args.from_run)
            cfg = _resolve(args, extra, base=base)
        else:
            cfg = _resolve(args, extra)
        cfg["classify"]["mode"] = args.mode
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.mode, cfg)
        args.run_dir = str(run_dir)  # named by the Ctrl-C hint
        results = classify(cfg, run_dir, from_run=args.from_run, resume=args.resume, quiet=args.quiet,
                           stop_after_epochs=args.stop_after_epochs)
        _report_training(args, cfg, results, run_dir)
        return 0

    if cmd == "env":
        from mulsupcon.train.runtime import environment_report

        print(environment_report(args.data_home))
        return 0

    if cmd == "runs":
        from mulsupcon.evaluate import run_records, runs_table

        print(json.dumps(run_records(args.folders), indent=1) if args.json else runs_table(args.folders, protocol=args.protocol))
        return 0

    if cmd == "evaluate":
        from mulsupcon.evaluate import evaluate_file, evaluate_run

        if args.input is not None:
            print(evaluate_file(args.run, args.input, protocols=args.protocol, threshold=args.threshold,
                                labels=args.label_file, per_label=args.per_label, as_json=args.json, at=args.at))
        else:
            if args.label_file is not None:
                parser.error("--label-file goes with --input (a folder of images, or a CSV of features, to score "
                             "with their labels)")
            print(evaluate_run(args.run, protocols=args.protocol, threshold=args.threshold, per_label=args.per_label,
                               as_json=args.json, at=args.at))
        return 0

    if cmd == "predict":
        from mulsupcon.predict import predict_file

        out = predict_file(args.run, args.input, args.out, labels=args.labels, threshold=args.threshold,
                           device=args.device, keep=args.keep, embeddings=args.embeddings, top=args.top)
        if str(out) != "-":  # "-" wrote the CSV itself to standard output
            print(out)
        return 0

    if cmd == "export":
        from mulsupcon.predict import export_run

        named = EXPORT_SUFFIXES.get(Path(args.out).suffix.lower()) if args.out is not None else None
        fmt = args.format or named or "torchscript"
        if named and fmt != named:
            raise ValueError(f"--out {args.out} names {'an ONNX' if named == 'onnx' else 'a torch.export (.pt2)'} file "
                             f"but --format is {fmt}; drop --format or rename the file")
        default = {"torchscript": "model.torchscript.pt", "pt2": "model.pt2", "onnx": "model.onnx"}[fmt]
        run = Path(args.run)
        out = Path(args.out) if args.out else (run if run.is_dir() else run.parent) / default
        print(export_run(args.run, out, fmt))
        return 0

    if cmd == "demo":
        from mulsupcon.demo import run_demo

        run_demo(Path(args.run_dir), quick=args.quick, quiet=args.quiet, seed=args.seed)
        return 0

    if cmd == "datasets":
        from mulsupcon.data import dataset_info, download, format_dataset_list

        home = getattr(args, "data_home", None)
        if args.datasets_command == "list":
            print(format_dataset_list(data_home=home))
        elif args.datasets_command == "info":
            print(dataset_info(args.name, data_home=home))
        elif args.datasets_command == "check":
            from mulsupcon.data.listing import describe_splits
            from mulsupcon.train.dataset_section import load_dataset_splits

            cfg = _resolve(args, extra, command="train")
            if not cfg["dataset"]["path"]:
                parser.error("datasets check reads your own data: give --dataset.path FILE_OR_FOLDER (with its --dataset.* "
                             "options, as for train, or in a --config file); `mulsupcon datasets info NAME` describes a "
                             "registered dataset")
            print(describe_splits(load_dataset_splits(cfg["dataset"]), cfg["dataset"]))
        elif args.datasets_command == "download":
            paths = download(args.name, data_home=home, force=args.force, timeout=args.timeout, retries=args.retries,
                             deadline=args.deadline)
            for pth in paths:
                print(pth)
        else:
            parser.parse_args(["datasets", "--help"])
        return 0

    if cmd == "config":
        import yaml

        from mulsupcon.config import available_configs, load_config

        if args.config_command == "show":
            from mulsupcon.config import config_path, own_config_flags

            if args.name is not None and (config_path(args.name).parent / "run.json").is_file():
                print(f"# the config the run in {config_path(args.name).parent} was made with (--config takes it "
                      "as it is, flags change it)")
            elif args.name is not None and own_config_flags(args.name) is not None:
                print(f"# {args.name} names no base: shown on the library defaults. pretrain, train and benchmark apply "
                      "its keys to the config they would use without --config (e.g. vectors for a CSV), or name one "
                      "in the file: base: vectors")
            print(yaml.safe_dump(load_config(args.name), sort_keys=False), end="")
        else:
            from mulsupcon.config import config_summary

            names = available_configs()
            print("\n".join(f"{n:<{max(map(len, names))}}  {config_summary(n)}" for n in names))
        return 0

    if cmd == "plot":
        from mulsupcon import plots

        if args.plot_command == "heatmap":
            out = plots.heatmap_runs(args.runs, out=args.out, split=args.split)
        elif args.plot_command == "curves":
            out = plots.curves(args.runs, out=args.out)
        else:
            parser.parse_args(["plot", "--help"])
            return 2
        print(out)
        return 0

    if cmd == "embed":
        from mulsupcon.embed import run_embed

        return run_embed(args)

    if cmd == "benchmark":
        from mulsupcon.benchmark import DATASETS, benchmark_vectors, boomer_python

        overrides = {**(args.file_overrides or {}), **split_overrides(extra), **set_overrides(args.set)}  # as for train
        report = benchmark_vectors(args.datasets or DATASETS, args.seeds, args.methods, work=Path(args.work),
                                   out=Path(args.out) if args.out else None, config=args.config, overrides=overrides,
                                   boomer=boomer_python(args.boomer_python),
                                   command="mulsupcon " + " ".join(argv))
        print(f"report: {report}")
        return 0
    if cmd == "reproduce":
        from mulsupcon.reproduce import reproduce_vectors

        out = Path(args.out) if args.out else Path(args.runs_root) / "report.md"
        reproduce_vectors(datasets=args.datasets, seeds=args.seeds, out=out, runs_root=Path(args.runs_root),
                          scale=args.scale, quiet=args.quiet)
        print(f"report: {out}")
        return 0
    parser.error(f"unknown command {cmd}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
