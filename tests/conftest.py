"""Shared fixtures: run kernel tests on every ISA path this CPU has and on 1 and 2 threads."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import cnnfast

# Every path this CPU has; under CNNFAST_ISA (CI's forced runs), only that path and those below it.
ISAS = cnnfast.available_isas()
# Memory-bound kernels stay on one thread below 16 MiB touched (cnnfast/runtime.h); the tests'
# arrays are small, so lower the cut to 128 KiB for the 2-thread runs to exercise the splits.
cnnfast._kernels.set_parallel_min_bytes(128 * 1024)
if os.environ.get("CNNFAST_ISA"):
    ISAS = ISAS[:ISAS.index(cnnfast.get_isa()) + 1]
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per ISA path (generic, avx2, avx512 as the CPU allows)."""
    with cnnfast.use_isa(request.param):
        yield request.param


@pytest.fixture(params=[1, 2])
def threads(request):
    """Run the test with 1 and with 2 kernel threads."""
    previous = cnnfast.get_num_threads()
    cnnfast.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        cnnfast.set_num_threads(previous)


@pytest.fixture(autouse=True)
def restore_thread_counts():
    """Undo thread-count changes a test leaves behind. PyTorch's CPU wheel ships libgomp.so.1, so
    when both are loaded it can be the same OpenMP runtime as cnnfast's: torch.set_num_threads(1)
    then also caps cnnfast (by design, as threadpoolctl limits do)."""
    import sys
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    cnnfast_threads = cnnfast.get_num_threads()
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch_threads or cnnfast_threads)
    cnnfast.set_num_threads(cnnfast_threads)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def shared_data_dir() -> pathlib.Path | None:
    """The real data sets: $CNNFAST_DATA, else a shared/data directory beside the checkout (or one level up), else None."""
    candidates = [os.environ.get("CNNFAST_DATA"), REPO_ROOT.parent / "shared" / "data",
                  REPO_ROOT.parents[1] / "shared" / "data"]
    for c in candidates:
        if c and (pathlib.Path(c) / "mnist").is_dir():
            return pathlib.Path(c)
    return None


@pytest.fixture(scope="session")
def torchvision_models():
    """``torchvision.models``, or a skip. torchvision's compiled ops need CUDA libraries that the
    CPU build of torch lacks; its model code is pure Python, so the registration of those ops'
    fake kernels is made a no-op while it imports."""
    torch = pytest.importorskip("torch")
    original = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision.models
    except Exception as e:  # not installed, or an incompatible build
        pytest.skip(f"torchvision is not importable: {e}")
    finally:
        torch.library.register_fake = original
    return torchvision.models


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on its torch backend, the behavioural oracle (skips without it)."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the oracle is Keras's torch backend (set KERAS_BACKEND=torch)")
    return keras
