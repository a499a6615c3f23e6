"""The README's code examples run as printed, and the command lines of the docs parse."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_moco_in_your_own_loop_runs_and_fills_the_queue():
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        x = torch.randn(32, 103, generator=g)
        batches.append((x + 0.1 * torch.randn(32, 103, generator=g), x, (torch.rand(32, 14, generator=g) < 0.3).to(torch.uint8)))
    scope = {"batches": batches}
    exec(compile(_block_after("## MoCo in your own loop"), "README.md", "exec"), scope)
    moco, loss = scope["moco"], scope["loss"]
    assert int(moco.queue.filled) == 96 and torch.isfinite(loss)
    assert torch.equal(moco.queue.labels[:32], batches[0][2])  # the first batch's labels went in first


def test_the_loss_with_a_memory_in_your_own_loop_runs():
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 103, generator=g), (torch.rand(16, 14, generator=g) < 0.3).to(torch.uint8))
               for _ in range(3)]
    scope = {"batches": batches}
    exec(compile(_block_after("## The loss in your own loop"), "README.md", "exec"), scope)
    assert int(scope["memory"].memory.filled) == 48 and torch.isfinite(scope["loss"])


def test_your_own_data_from_python_runs(tmp_path, monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] + X[:, 3] > 0], 1).astype(np.uint8)
    monkeypatch.chdir(tmp_path)
    text = README.read_text(encoding="utf-8")
    start = text.index("From Python, arrays or a file are a dataset")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    scope = {"X": X, "Y": Y, "X_new": X[:7], "print": lambda *a, **k: None}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["proba"].shape == (7, 3) and set(np.unique(scope["labels"])) <= {0, 1}
    assert scope["emb"].shape == (7, 256) and (tmp_path / "runs" / "arr-ft" / "model.pt").is_file()


def test_the_config_file_example_is_the_vector_defaults_with_its_three_changes(tmp_path):
    from mulsupcon.config import load_config

    text = README.read_text(encoding="utf-8")
    start = text.index("A config file of your own")
    (tmp_path / "my.yaml").write_text(re.search(r"```yaml\n(.*?)```", text[start:], re.S).group(1))
    changes = {"pretrain.batch_size": 128, "pretrain.lr": 1e-3, "classify.epochs": 300}
    assert load_config(tmp_path / "my.yaml") == load_config("vectors", changes)


# ----------------------------------------------------------------------------- command lines in the docs

DOCS = [README, *sorted((README.parent / "results").glob("*.md"))]


def _doc_commands(text: str) -> list[str]:
    """Every ``mulsupcon ...`` command line of a markdown text: lines of code blocks (continuations joined,
    ``# comments`` and leading ``VAR=value`` assignments dropped) and inline code spans (which may wrap)."""
    env = re.compile(r"^(\w+=\S+\s+)+")
    found = []
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    indented = [ln[4:] for ln in text.splitlines() if ln.startswith("    ")]
    for line in "\n".join([*blocks, *indented]).replace("\\\n", " ").splitlines():
        line = env.sub("", line.strip())
        if line.startswith("mulsupcon ") and "`" not in line:
            found.append(" ".join(line.split(" #")[0].split()))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        span = env.sub("", " ".join(span.split()))
        if span.startswith("mulsupcon "):
            found.append(span)
    return found


def _check_command(line: str) -> None:
    """Parse ``line`` as the command line parses it, and set each config override it gives (``--SECTION.KEY
    VALUE`` or ``--set KEY=VALUE``) on the defaults: a flag, a subcommand, a config key or a shipped config
    name that no longer exists raises."""
    import copy
    import shlex

    from mulsupcon.cli import build_parser, split_overrides, takes_config_flags
    from mulsupcon.config import DEFAULTS, available_configs, set_dotted

    argv = shlex.split(line)[1:]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            args, extra = build_parser().parse_known_args(argv)
        except SystemExit:
            raise AssertionError(f"the parser refuses it: {err.getvalue().strip().splitlines()[-1]}") from None
    if extra and not takes_config_flags(args):
        raise AssertionError(f"unrecognised arguments {extra}")
    try:
        overrides = split_overrides([*extra, *(f"--{kv}" for kv in getattr(args, "set", None) or [])])
    except SystemExit as stop:
        raise AssertionError(str(stop)) from None
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in overrides.items():
        set_dotted(cfg, key, value)  # raises on a key the config does not have
    name = getattr(args, "config", None)
    if name and args.command != "config":
        assert name in available_configs(), f"--config {name} is not a shipped config"


def test_the_docs_command_lines_parse():
    """Every ``mulsupcon`` command shown in README.md and results/*.md is one today's parser accepts, with
    config keys that exist: a renamed flag or key would otherwise leave the docs wrong without a failure."""
    checked, broken = 0, []
    for doc in DOCS:
        for line in _doc_commands(doc.read_text(encoding="utf-8")):
            if "--help" in line:
                continue
            checked += 1
            try:
                _check_command(line)
            except (AssertionError, ValueError, KeyError) as err:
                broken.append(f"{doc.name}: {line}\n    {err}")
    assert checked >= 40, f"only {checked} command lines found: the extraction is broken"
    assert not broken, "\n".join(broken)


def test_the_docs_command_check_catches_stale_lines():
    """Negative control: a removed flag, a config key that does not exist, an unknown subcommand and a
    config name that is not shipped are each caught; a wrapped inline span and a fenced line are found."""
    text = ("Run `mulsupcon train --mode\n finetune --from runs/a`.\n\n```bash\nMULSUPCON_DATA=x mulsupcon evaluate "
            "runs/a \\\n  --protocol paper   # six metrics\n```\n")
    assert _doc_commands(text) == ["mulsupcon evaluate runs/a --protocol paper", "mulsupcon train --mode finetune --from runs/a"]
    for stale in ("mulsupcon train --mode finetune --frm runs/a --run-dir b", "mulsupcon pretrain --pretrain.lrate 1e-3",
                  "mulsupcon benchmark vectors --set classify.epoch=3", "mulsupcon fit runs/a",
                  "mulsupcon pretrain --config yeast-paper", "mulsupcon evaluate runs/a --pretrain.lr 1"):
        with pytest.raises((AssertionError, ValueError, KeyError)):
            _check_command(stale)
    _check_command("mulsupcon train --mode scratch --config yeast --classify.epochs 3 --run-dir r")
