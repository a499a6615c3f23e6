"""mulsupcon: multi-label supervised contrastive learning (Zhang & Wu, AAAI 2024).

The main pieces, importable from here::

    from mulsupcon import MulSupConLoss, MultiLabelMemory, MoCo, LabelQueue   # the loss and MoCo, for your loop
    from mulsupcon import MulSupConClassifier                                 # the scikit-learn estimator
    from mulsupcon import from_arrays, from_file, load_config, load_run       # data, configs, trained runs

``mulsupcon.load_run(RUN)`` loads a trained classification run for prediction (:mod:`mulsupcon.predict`).
"""

import importlib

__version__ = "0.1.0"

# name -> module; imported on first use, so that `mulsupcon --version` and the CLI's start need not load torch
_EXPORTS = {
    "MulSupConLoss": "mulsupcon.losses", "MultiLabelMemory": "mulsupcon.memory", "MoCo": "mulsupcon.moco",
    "LabelQueue": "mulsupcon.moco", "MulSupConClassifier": "mulsupcon.estimator", "from_arrays": "mulsupcon.data",
    "from_file": "mulsupcon.data", "load_config": "mulsupcon.config", "load_run": "mulsupcon.predict",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mulsupcon' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
