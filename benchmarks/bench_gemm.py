"""GEMM: cnnfast.ops.matmul vs numpy.matmul vs torch.matmul on the same float32 inputs.

    python -m pytest benchmarks/bench_gemm.py --benchmark-only [--benchmark-group-by=group]

One group per (shape, threads), so pytest-benchmark's table puts the three libraries side by
side; extra_info carries GFLOP/s and % of the measured FMA peak. Shapes: squares 128..2048 and
the GEMMs of a Keras-tutorial MNIST CNN at batch 64 (M x K x N): conv1 43264x9x32,
conv2 36864x288x32, conv on 13x13x32 -> 64: 7744x288x64, dense 64x576x64 and 64x1600x128.
For the table with ratios, run benchmarks/compare_gemm.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnnfast.ops import matmul
from _peak import record

SQUARE = [(n, n, n) for n in (128, 256, 512, 1024, 2048)]
CNN = [(43264, 9, 32), (36864, 288, 32), (7744, 288, 64), (64, 576, 64), (64, 1600, 128)]
IMPLS = ["cnnfast", "numpy", "torch"]


def _rounds(flops: float) -> int:
    """Enough rounds for a stable median, about 0.5 s per benchmark at ~100 GFLOP/s."""
    return int(min(200, max(5, 0.5 / (flops / 100e9))))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SQUARE + CNN, ids=lambda s: "x".join(map(str, s)))
def test_gemm(benchmark, shape, impl, bench_threads, fma_peak):
    M, K, N = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    out = np.empty((M, N), np.float32)
    if impl == "cnnfast":
        def run():
            matmul(a, b, out=out)
    elif impl == "numpy":
        def run():
            np.matmul(a, b, out=out)
    else:
        torch = pytest.importorskip("torch")
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)

        def run():
            torch.matmul(ta, tb, out=tout)
    benchmark.group = f"gemm {M}x{K}x{N} {bench_threads}thr"
    flops = 2.0 * M * N * K
    benchmark.pedantic(run, rounds=_rounds(flops), iterations=1, warmup_rounds=2)
    record(benchmark, flops, fma_peak[bench_threads], shape=f"{M}x{K}x{N}", impl=impl,
           threads=bench_threads)


@pytest.mark.parametrize("impl", ["cnnfast", "torch"])
def test_dense_forward_fused(benchmark, impl, bench_threads, fma_peak):
    """relu(x @ W + b) at 64x1600x128: one fused call vs torch's addmm + relu."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1600), dtype=np.float32)
    w = rng.standard_normal((1600, 128), dtype=np.float32)
    bias = rng.standard_normal(128, dtype=np.float32)
    if impl == "cnnfast":
        def run():
            matmul(x, w, bias=bias, activation="relu")
    else:
        torch = pytest.importorskip("torch")
        tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias)

        def run():
            torch.relu(torch.addmm(tb, tx, tw))
    benchmark.group = f"dense relu(x@W+b) 64x1600x128 {bench_threads}thr"
    flops = 2.0 * 64 * 1600 * 128
    benchmark.pedantic(run, rounds=200, iterations=1, warmup_rounds=5)
    record(benchmark, flops, fma_peak[bench_threads], impl=impl, threads=bench_threads)
