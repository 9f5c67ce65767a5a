"""pytest-benchmark suite for conv2d: cnnfast vs PyTorch (NCHW and channels_last) vs a NumPy
im2col implementation, forward and forward+backward, on the layers of the tutorial CNNs.

    pytest benchmarks/bench_conv2d.py --benchmark-only
    CNNFAST_BENCH_THREADS=2 CNNFAST_BENCH_BATCH=64 pytest benchmarks/bench_conv2d.py \
        --benchmark-only -k "26x26 and fwd_bwd" --benchmark-columns=median,ops

Threads (cnnfast and PyTorch alike) come from CNNFAST_BENCH_THREADS (default 1), the batch from
CNNFAST_BENCH_BATCH (default 64).

Each benchmark group is one (layer, pass); compare the medians inside a group. The work timed is
exactly compare_conv2d.py's (forward = conv + bias; forward+backward adds the weight, bias and
input gradients, no input gradient for the first layers). For a
printed table with GFLOP/s, % of peak and ratios, run ``python benchmarks/compare_conv2d.py``.
"""
from __future__ import annotations

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import compare_conv2d as cc  # noqa: E402

import cnnfast  # noqa: E402


@pytest.fixture(scope="module")
def threads():
    n = int(os.environ.get("CNNFAST_BENCH_THREADS", "1"))
    previous = cnnfast.get_num_threads()
    cnnfast.set_num_threads(n)
    cc.set_blas_threads(n)
    if cc.torch is not None:
        cc.torch.set_num_threads(n)
    yield n
    cnnfast.set_num_threads(previous)


BATCH = int(os.environ.get("CNNFAST_BENCH_BATCH", "64"))


_layers: dict = {}


def layer(name, batch):
    key = (name, batch)
    if key not in _layers:
        spec = next(L for L in cc.LAYERS if L[0] == name)
        _layers[key] = cc.make_layer(spec[1], spec[2], spec[3], spec[4], batch)
    return _layers[key]


IMPLS = ["cnnfast", "torch_nchw", "torch_channels_last", "numpy_im2col"]


def fns_for(impl, L):
    if impl == "cnnfast":
        return cc.cnnfast_fns(L)
    if impl.startswith("torch"):
        if cc.torch is None:
            pytest.skip("PyTorch not installed")
        return cc.torch_fns(L, channels_last=impl.endswith("last"))
    return cc.numpy_fns(L)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("name", [L[0] for L in cc.LAYERS])
def test_conv2d(benchmark, name, pass_, impl, threads):
    L = layer(name, BATCH)
    fwd, fwd_bwd = fns_for(impl, L)
    fn = fwd if pass_ == "fwd" else fwd_bwd
    benchmark.group = f"{name} {pass_} (threads={threads})"
    mult = 1 if pass_ == "fwd" else (2 if L["first"] else 3)
    benchmark.extra_info["gflop"] = mult * L["flops"] / 1e9
    rounds = 3 if (L["flops"] > 5e9 or impl == "numpy_im2col") else 10
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# Conv + bias + ReLU + 2x2 max-pool with argmax, as a training forward pass of the tutorial's
# Conv2D -> MaxPooling2D pairs: cnnfast's one-pass op, cnnfast's two ops, PyTorch channels_last.
POOL_LAYERS = ["28x28x1->32", "13x13x32->64", "32x32x3->32", "15x15x32->64"]
POOL_IMPLS = ["cnnfast_fused", "cnnfast_separate", "torch_channels_last"]


def conv_pool_fn(impl, L):
    from cnnfast import ops
    x, w, b = L["x"], L["w"], L["b"]
    if impl == "cnnfast_fused":
        return lambda: ops.conv2d_max_pool2d(x, w, b, activation="relu", return_argmax=True)
    if impl == "cnnfast_separate":
        z = ops.conv2d(x, w, b, activation="relu")
        return lambda: ops.max_pool2d(ops.conv2d(x, w, b, activation="relu", out=z), return_argmax=True)
    if cc.torch is None:
        pytest.skip("PyTorch not installed")
    torch = cc.torch
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(w.shape[2], w.shape[3], w.shape[0]).to(memory_format=torch.channels_last)

    def run():
        with torch.no_grad():
            return torch.nn.functional.max_pool2d(torch.relu(conv(xt)), 2, return_indices=True)
    return run


@pytest.mark.parametrize("impl", POOL_IMPLS)
@pytest.mark.parametrize("name", POOL_LAYERS)
def test_conv2d_relu_max_pool(benchmark, name, impl, threads):
    L = layer(name, BATCH)
    benchmark.group = f"{name} conv+relu+maxpool (threads={threads})"
    benchmark.extra_info["gflop"] = L["flops"] / 1e9
    benchmark.pedantic(conv_pool_fn(impl, L), rounds=10, iterations=1, warmup_rounds=1)
