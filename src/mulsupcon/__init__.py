"""mulsupcon: multi-label supervised contrastive learning (Zhang & Wu, AAAI 2024).

``mulsupcon.load_run(RUN)`` loads a trained classification run for prediction (:mod:`mulsupcon.predict`).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use: `mulsupcon --version` and the CLI's start need not load torch.
    if name == "load_run":
        from mulsupcon.predict import load_run

        return load_run
    raise AttributeError(f"module 'mulsupcon' has no attribute {name!r}")
