"""The training runtime: CPU dropout, optimiser choice, thread count, subnormal flushing, run-folder configs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

from mulsupcon.ops import Dropout


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_dropout_keep_rate_and_scale(p: float) -> None:
    """Kept fraction within 5 standard errors of 1 - p (over 4M draws); kept values scaled so that E[out] = x;
    the four 16-bit lanes of each random word give independent masks."""
    torch.manual_seed(0)
    x = torch.ones(2048, 2048)
    out = Dropout(p).train()(x)
    kept = out != 0
    se = (p * (1 - p) / x.numel()) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * se
    q = 1 - round(p * 65536) / 65536  # the exact keep probability (p on a 2^-16 grid)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / q))
    corr = torch.corrcoef(kept.view(-1, 4).float().T)
    assert (corr - torch.eye(4)).abs().max() < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dropout_mask_is_the_documented_function_of_the_random_words(dtype: torch.dtype) -> None:
    """Oracle in numpy: the same 64-bit draws of the global generator, split into signed 16-bit lanes v; keep
    where v + 32768 >= round(p * 65536); scale 1 / (1 - that / 65536)."""
    import numpy as np

    p, shape = 0.3, (37, 29)  # an element count that is not a multiple of 4
    n = shape[0] * shape[1]
    torch.manual_seed(5)
    out = Dropout(p).train()(torch.ones(shape, dtype=dtype))
    torch.manual_seed(5)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None).numpy()
    lanes = words.view(np.int16)[:n].astype(np.int64) + 32768  # 0 .. 65535
    dropped = round(p * 65536)
    expected = np.where(lanes >= dropped, 65536.0 / (65536 - dropped), 0.0).reshape(shape)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), torch.from_numpy(expected).to(dtype).double(), rtol=0, atol=0)


def test_dropout_gradient_is_the_mask_and_eval_is_identity() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 512, requires_grad=True)
    layer = Dropout(0.3).train()
    out = layer(x)
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, out.detach() / x.detach())
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert isinstance(layer, nn.Dropout) and not layer.state_dict()


# ----------------------------------------------------------------------------- optimiser, threads
def test_make_optimizer_is_fused_where_supported_and_falls_back(monkeypatch) -> None:
    from mulsupcon.train.optim import make_optimizer

    ps = [nn.Parameter(torch.randn(3, 2))]
    for name in ("adam", "sgd"):
        opt = make_optimizer([{"params": ps}], {"optimizer": name, "lr": 0.1})
        assert opt.defaults["fused"] is True  # torch >= 2.4 has fused CPU kernels
    real = torch.optim.Adam.__init__

    def no_fused(self, params, **kw):
        if kw.get("fused"):
            raise RuntimeError("fused=True requires all the params to be floating point Tensors of supported devices")
        real(self, params, **kw)

    monkeypatch.setattr(torch.optim.Adam, "__init__", no_fused)
    opt = make_optimizer([{"params": ps}], {"optimizer": "adam", "lr": 0.1})
    assert not opt.defaults.get("fused") and opt.defaults["foreach"] is True


def test_thread_count_setting_and_auto() -> None:
    from mulsupcon.train.runtime import SMALL_MODEL_PARAMS, num_threads_for

    small, cpu = nn.Linear(10, 10), torch.device("cpu")
    assert num_threads_for(small, cpu) == 1  # small model: one intra-op thread
    assert num_threads_for(small, torch.device("cuda")) is None  # accelerators: torch's choice
    assert num_threads_for(small, cpu, 3) == 3 and num_threads_for(small, cpu, "2") == 2
    big = nn.Linear(2000, SMALL_MODEL_PARAMS // 2000 + 1)
    assert num_threads_for(big, cpu) is None
    with pytest.raises(ValueError, match="cpu.num_threads"):
        num_threads_for(small, cpu, "many")


def test_cpu_section_of_the_config() -> None:
    from mulsupcon.config import load_config

    assert load_config("yeast")["cpu"] == {"num_threads": "auto", "flush_denormals": True}
    assert load_config("yeast-authors")["cpu"]["num_threads"] == 2
    assert load_config("yeast", {"cpu.flush_denormals": False})["cpu"]["flush_denormals"] is False
    with pytest.raises(ValueError, match="cpu.flush_denormals must be true or false, got 'yes'"):
        load_config("yeast", {"cpu.flush_denormals": "yes"})
    with pytest.raises(ValueError, match="cpu.num_threads"):
        load_config("yeast", {"cpu.num_threads": 0})


# ----------------------------------------------------------------------------- subnormal floats
def _ftz_supported() -> bool:
    return torch.set_flush_denormal(False)


needs_ftz = pytest.mark.skipif(not _ftz_supported(), reason="this CPU has no flush-to-zero flags (not x86 with SSE3)")


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (no OpenMP thread created yet) and return its stdout."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@needs_ftz
def test_flush_set_before_the_first_parallel_region_reaches_every_thread_and_is_restored() -> None:
    """Entered first, the flag is copied by every OpenMP worker: a subnormal product is zero on all of them
    (a vector split over 2 threads), the smallest normal number survives; afterwards the calling thread is
    back to IEEE subnormals."""
    out = _fresh_python("""
        import torch
        from mulsupcon.train.runtime import cpu_threads, denormals_flushed, flush_denormals
        tiny = torch.finfo(torch.float32).tiny
        with flush_denormals(True), cpu_threads(2):
            x = torch.full((1 << 18,), 4 * tiny)
            print(denormals_flushed(), int(torch.count_nonzero(x * 0.125)), bool(torch.equal(x * 0.25, torch.full_like(x, tiny))))
        print(denormals_flushed(every_thread=False))
    """)
    assert out.splitlines() == ["True 0 True", "False"]


@needs_ftz
def test_the_check_sees_a_worker_created_before_the_flush() -> None:
    """Negative control: a parallel region before the block leaves a worker without the flag, and
    denormals_flushed() says so (the calling thread alone would pass)."""
    out = _fresh_python("""
        import torch
        from mulsupcon.train.runtime import cpu_threads, denormals_flushed, flush_denormals
        with cpu_threads(2):
            torch.ones(1 << 20).mul_(2.0)  # creates the OpenMP team without the flag
            with flush_denormals(True):
                print(denormals_flushed(), denormals_flushed(every_thread=False))
    """)
    assert out == "False True"


@needs_ftz
def test_pretraining_notes_when_subnormals_are_not_flushed_everywhere(tmp_path) -> None:
    """A run started in a fresh process flushes on both threads (no note); one started after torch already
    computed on 2 threads says so in its log. Normal values: flushing is restored for the caller."""
    code = """
        import sys, torch
        from mulsupcon.config import load_config
        from mulsupcon.train.pretrain import pretrain
        if sys.argv[1] == "late":
            torch.set_num_threads(2); torch.ones(1 << 20).mul_(2.0)
        cfg = load_config("demo", {"cpu.num_threads": 2, "pretrain.epochs": 1, "pretrain.steps_per_epoch": 2,
                                   "model.hidden": [16], "model.head_hidden": 8, "model.embed_dim": 8})
        pretrain(cfg, sys.argv[2], quiet=True, echo=False)
    """
    for when in ("early", "late"):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), when, str(tmp_path / when)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert "not flushed on every thread" not in (tmp_path / "early" / "log.txt").read_text()
    assert "not flushed on every thread" in (tmp_path / "late" / "log.txt").read_text()


# ----------------------------------------------------------------------------- run-folder configs
def test_config_differences_tolerates_keys_added_later_but_not_changes(tmp_path) -> None:
    import yaml

    from mulsupcon.config import load_config
    from mulsupcon.reproduce import _check_reusable
    from mulsupcon.train.rundir import RunDir, config_differences

    cfg = load_config("demo")
    with RunDir.open(tmp_path / "r", cfg, {}, kind="pretrain", resume=False) as run:
        run = run.path
    assert config_differences(run, cfg) == ""
    # A run made before a key existed: the key at its default is not a difference...
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["pretrain"]["chunk_size"]
    saved["pretrain"]["a_key_since_removed"] = 3  # ...nor is a key that no longer exists...
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert config_differences(run, cfg) == ""
    RunDir.open(run, cfg, {}, kind="pretrain", resume=True).close()  # resumes
    # ...but the same key set to something else is; where the run computes (cpu) is not compared.
    assert "pretrain.chunk_size" in config_differences(run, load_config("demo", {"pretrain.chunk_size": 64}))
    assert config_differences(run, load_config("demo", {"cpu.num_threads": 2})) == ""
    changed = load_config("demo", {"classify.epochs": 999})
    assert "classify.epochs: saved" in config_differences(run, changed)
    assert config_differences(run, changed, ignore=("classify",)) == ""
    with pytest.raises(ValueError, match="classify.epochs"):
        _check_reusable(run, changed)
    _check_reusable(run, changed, ignore=("classify",))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vector_masking_keeps_each_element_with_probability_1_minus_p(dtype: torch.dtype) -> None:
    """The paper's vector view: element kept where a uniform draw is >= p (oracle: the same draws taken
    from a generator with the same seed), zero elsewhere; the kept share is 1 - p over many draws."""
    from mulsupcon.train.data import VectorMasking

    x = torch.randn(300, 103, dtype=dtype) + 5.0  # no zeros of its own
    out = VectorMasking(0.5)(x, torch.Generator().manual_seed(3))
    draws = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    expected = torch.where(draws >= 0.5, x, torch.zeros((), dtype=dtype))
    assert out.dtype == dtype and torch.equal(out, expected)
    kept = (out != 0).double().mean().item()
    assert abs(kept - 0.5) < 5 * (0.25 / x.numel()) ** 0.5
    assert torch.equal(VectorMasking(0.0)(x, None), x)
    big = VectorMasking(0.2)(torch.ones(1000, 1000), torch.Generator().manual_seed(0))
    assert abs((big != 0).float().mean().item() - 0.8) < 5 * (0.16 / 1e6) ** 0.5


def test_device_names_are_checked_with_a_message_naming_the_choices(monkeypatch) -> None:
    from mulsupcon.train.runtime import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"device 'tpu' is not a device name; use 'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")  # torch's own error lists 20 device types and not the setting
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"device 'cuda:3' requested but this machine has 1 CUDA device"):
        resolve_device("cuda:3")


def test_loader_workers_auto_uses_the_cores_beside_each_gpu_and_none_on_the_cpu(monkeypatch) -> None:
    """``num_workers: auto``: inline views on the CPU; on CUDA the cores of this machine shared by its
    processes (one per GPU), one left for each main process, at most 8."""
    import os

    from mulsupcon.config import load_config
    from mulsupcon.train import runtime
    from mulsupcon.train.runtime import MAX_AUTO_WORKERS, loader_workers

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert loader_workers("auto", cpu) == 0 and loader_workers(3, cpu) == 3 and loader_workers(0, cuda) == 0
    for cores, gpus, world, expected in [(16, 1, 1, 8), (64, 1, 1, MAX_AUTO_WORKERS), (16, 4, 4, 3), (16, 8, 4, 3),
                                         (2, 1, 1, 1), (1, 1, 1, 0), (12, 2, 16, 5)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        monkeypatch.setattr(runtime.torch.cuda, "device_count", lambda g=gpus: g)
        assert loader_workers("auto", cuda, world) == expected, (cores, gpus, world)
    for bad in (-1, 1.5, "many"):
        with pytest.raises(ValueError, match="num_workers must be 'auto' or an integer >= 0"):
            loader_workers(bad, cuda)
    assert load_config(None)["pretrain"]["num_workers"] == "auto"  # the default, and a number still passes:
    assert load_config(None, {"classify.num_workers": 4})["classify"]["num_workers"] == 4
    with pytest.raises(ValueError, match="classify.num_workers must be 'auto' or an integer >= 0, got -2"):
        load_config(None, {"classify.num_workers": -2})


def test_classification_mixed_precision_settings_and_the_cpu_path() -> None:
    """classify.amp / channels_last (CUDA only) take pretrain.amp's values; off the GPU they change nothing
    (the same weights as without them) but say so, and the last checkpoint keeps the loss scaler for a resume."""
    import numpy as np

    from mulsupcon.config import load_config
    from mulsupcon.data import from_arrays
    from mulsupcon.train.classify import classify
    from mulsupcon.train.rundir import RunDir
    from mulsupcon.train.runtime import mixed_precision

    for value in (False, True, "bf16", "fp16"):
        assert load_config(None, {"classify.amp": value})["classify"]["amp"] == value
    with pytest.raises(ValueError, match="classify.amp"):
        load_config(None, {"classify.amp": "fp8"})
    with pytest.warns(UserWarning, match="classify.amp true: mixed precision is applied on CUDA only; on cpu"):
        dtype, scaler = mixed_precision(True, torch.device("cpu"), "classify.amp")
    assert dtype is None and not scaler.is_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not asked for: nothing to say
        assert mixed_precision(False, torch.device("cpu"), "classify.amp")[0] is None

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0], 1).astype(np.uint8)
    states = []
    for amp in (False, True):
        cfg = load_config(None, {"model.hidden": [8], "classify.mode": "scratch", "classify.epochs": 2,
                                 "classify.amp": amp, "classify.channels_last": amp, "device": "cpu"})
        run = RunDir.in_memory()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the CPU's amp warning, checked above
            classify(cfg, run, data=from_arrays(x, y), quiet=True, echo=False)
        states.append(run.files["checkpoints/last.pt"])
    assert "scaler" in states[1]
    for key, value in states[0]["model"].items():
        torch.testing.assert_close(states[1]["model"][key], value, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_the_mixed_precision_steps_run_under_cpu_autocast(monkeypatch, dtype) -> None:
    """The code paths that `amp` takes on a GPU (autocast around the encoders, the float32 losses outside it,
    the loss scaler's scale / step / update with float16), run here under the CPU's autocast with a live
    CPU scaler, since CI has no GPU: pretraining and finetuning end finite, their losses within a few percent
    of float32's, and the keys the queue received are float32."""
    import numpy as np

    from mulsupcon.config import load_config
    from mulsupcon.data import from_arrays
    from mulsupcon.train import classify as classify_module
    from mulsupcon.train import pretrain as pretrain_module
    from mulsupcon.train.rundir import RunDir

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    data = from_arrays(x, np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 2] > 0.5], 1).astype(np.uint8))
    cfg = load_config("vectors", {"model.hidden": [32, 32], "model.head_hidden": 32, "model.embed_dim": 16,
                                  "pretrain.epochs": 3, "pretrain.batch_size": 32, "pretrain.queue_size": 64,
                                  "classify.epochs": 3, "classify.mode": "finetune", "device": "cpu"})
    runs = {}
    for amp in (None, dtype):
        scaler_on = amp == torch.float16
        fake = lambda setting, device, key, amp=amp, on=scaler_on: (amp, torch.amp.GradScaler("cpu", enabled=on))
        monkeypatch.setattr(pretrain_module, "mixed_precision", fake)
        monkeypatch.setattr(classify_module, "mixed_precision", fake)
        pre, ft = RunDir.in_memory(), RunDir.in_memory()
        pretrain_module.pretrain(cfg, pre, data=data, quiet=True, echo=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 3 epochs on noise-free toy labels: the guard's divergence note
            results = classify_module.classify(cfg, ft, from_run=pre.files["backbone.pt"], data=data, quiet=True,
                                               echo=False)
        moco_state = pre.files["checkpoints/last.pt"]["model"]
        queue = {k: v for k, v in moco_state.items() if "queue" in k}
        assert queue and all(v.dtype not in (torch.float16, torch.bfloat16) for v in queue.values())
        runs[amp] = (pre.history, ft.history, results, pre.files["checkpoints/last.pt"], ft.files["checkpoints/last.pt"])
    (pre32, ft32, res32, *_), (pre_amp, ft_amp, res_amp, *last) = runs[None], runs[dtype]
    for a, b in zip(pre32 + ft32, pre_amp + ft_amp):
        loss = "loss" if "loss" in a else "train_loss"
        assert np.isfinite(b[loss]) and abs(b[loss] - a[loss]) <= 0.05 * abs(a[loss]), (a, b)
    assert abs(res_amp["protocols"]["fixed"]["mAP"] - res32["protocols"]["fixed"]["mAP"]) < 0.05
    # and autocast did compute in the lower precision, in both loops
    assert pre_amp[-1]["loss"] != pre32[-1]["loss"] and ft_amp[-1]["train_loss"] != ft32[-1]["train_loss"]
    if dtype == torch.float16:  # the scalers ran, and their states are kept for a resume
        assert all(state["scaler"]["scale"] > 0 for state in last)


def test_env_reports_versions_devices_packages_and_the_data_home(tmp_path, capsys) -> None:
    """`mulsupcon env`: what a bug report needs, each line checked against its source (a data home with one
    registered dataset's files counts one)."""
    import importlib.util
    import os

    import sklearn

    from mulsupcon.cli import main
    from mulsupcon.data.listing import files_status
    from mulsupcon.data.registry import list_datasets
    from mulsupcon.train.runtime import software_versions

    spec = next(s for s in list_datasets() if s.name == "flags")
    for f in spec.files:
        (tmp_path / f.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f.path).write_bytes(b"")
    assert files_status(spec, tmp_path) == "present"
    assert main(["env", "--data-home", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    v = software_versions()
    assert out[0] == (f"mulsupcon {v['mulsupcon']}, Python {v['python']}, torch {torch.__version__}, numpy "
                      f"{v['numpy']}, scikit-learn {sklearn.__version__}")
    cuda = next(line for line in out if line.startswith("CUDA"))
    assert ("not available" in cuda) == (not torch.cuda.is_available())
    assert sum(line.startswith("  cuda:") for line in out) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert f"device auto {'cuda' if torch.cuda.is_available() else 'cpu'}" in [line.split(":")[0] for line in out]
    assert next(line for line in out if line.startswith("CPU")).startswith(f"CPU         {os.cpu_count()} logical cores")
    for name in ("tensorboard", "onnx", "pandas"):
        found = importlib.util.find_spec(name) is not None
        assert any(line.startswith("optional") and f"{name}: {'installed' if found else 'not installed'}" in line
                   for line in out), name
    assert out[-1].startswith(f"data home   {tmp_path} (exists; 1 of the ")


def test_a_note_says_how_to_size_an_image_run_for_the_cpu():
    """Images of 128 px or more on the CPU get the README's CPU-sized flags; vectors, small images and a GPU
    get no note."""
    from mulsupcon.train.runtime import CPU_IMAGE_SIDE, cpu_image_note

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    note = cpu_image_note((3, 224, 224), cpu, "resnet50")
    assert note.startswith("note: resnet50 on 224x224 images is meant for a GPU")
    assert "--model.backbone resnet18 --model.small_input true --dataset.image_size 32" in note
    assert cpu_image_note((3, CPU_IMAGE_SIDE, CPU_IMAGE_SIDE), cpu, "resnet18") is not None
    for shape, device in (((3, 32, 32), cpu), ((3, CPU_IMAGE_SIDE - 1, 224), cpu), ((103,), cpu), ((3, 224, 224), gpu)):
        assert cpu_image_note(shape, device, "resnet50") is None, (shape, device)
