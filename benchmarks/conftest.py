"""Benchmark fixtures: thread pinning for every library and the measured FMA peak.

Run:  python -m pytest benchmarks --benchmark-only
(unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE first: they slow NumPy's OpenBLAS down). Each
benchmark records GFLOP/s and % of the FP32 peak measured in the same session (`extra_info`).
"""
from __future__ import annotations

import os
import pathlib
import sys

import pytest

import cnnfast

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _peak import blas_env_warning, fma_peak_gflops, pinned_threads  # noqa: E402

# Benchmarks attach GFLOP/s and % of peak with _peak.record(benchmark, flops, fma_peak[threads]).

THREADS = (1, 2)


def pytest_report_header(config):
    lines = [f"cnnfast {cnnfast.__version__}: isa={cnnfast.get_isa()}, "
             f"threads tested={list(THREADS)}"]
    warning = blas_env_warning()
    if warning:
        lines.append("WARNING: " + warning)
    return lines


@pytest.fixture(scope="session")
def fma_peak():
    """{threads: measured FP32 peak in GFLOP/s}, taken once per session on the current ISA."""
    return {n: fma_peak_gflops(threads=n) for n in THREADS}


@pytest.fixture(scope="module")
def env_threads():
    """cnnfast, NumPy's BLAS and torch pinned to CNNFAST_BENCH_THREADS (default 1) for a module."""
    n = int(os.environ.get("CNNFAST_BENCH_THREADS", "1"))
    with pinned_threads(n):
        yield n


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}thr")
def bench_threads(request):
    """Run the benchmark with cnnfast, NumPy's BLAS and torch all pinned to 1, then 2 threads."""
    with pinned_threads(request.param):
        yield request.param
