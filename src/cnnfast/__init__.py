"""cnnfast — fast convolutional neural networks on the CPU, with a Keras-style API.

    from cnnfast import layers, models
    model = models.Sequential([layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)), ...])

Subpackages are imported on first use, so ``import cnnfast`` stays fast.
"""
from __future__ import annotations

import importlib
import os

__version__ = "0.1.0"

# OpenMP idle threads sleep instead of spinning, unless the user chose otherwise. On a shared or
# virtualised CPU a spinning worker steals the core its partner needs, and every parallel region
# then waits a scheduler time slice (measured here: 2-thread steps 5-20x slower under load; region
# fork/join 5-200 us spinning vs ~7 us passive). libgomp reads this once, when _kernels loads it.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from .runtime import (get_isa, set_isa, use_isa, available_isas, get_num_threads,  # noqa: E402
                      set_num_threads, show_config)
from . import runtime as _runtime  # noqa: E402

_runtime._init_from_environment()

_SUBMODULES = {"ops", "layers", "models", "optimizers", "losses", "metrics", "callbacks",
               "utils", "datasets", "saving", "initializers", "activations", "distributed", "onnx",
               "random", "regularizers", "constraints"}
_MODEL_NAMES = {"Sequential": "models", "Model": "models", "Input": "layers", "load_model": "models",
                "GradientTape": "models.gradients"}

__all__ = ["__version__", "get_isa", "set_isa", "use_isa", "available_isas", "get_num_threads",
           "set_num_threads", "show_config", *sorted(_SUBMODULES), *sorted(_MODEL_NAMES)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module(f".{_MODEL_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'cnnfast' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_MODEL_NAMES))
