"""Shared benchmark helpers: the machine's measured FP32 peak and thread pinning for every library.

"% of peak" in cnnfast's benchmarks is relative to a peak *measured in the same run* by
cnnfast's FMA probe (independent FMAs on registers, no memory traffic; cf_fma_peak in
csrc/gemm), not to a nominal clock x width figure: on a VM or a busy machine the nominal peak is
not reachable, and what matters is how close a kernel gets to what the cores deliver right now.

    from _peak import fma_peak_gflops, pinned_threads
    peak = fma_peak_gflops(threads=1)          # GFLOP/s, best of a few short probes
    with pinned_threads(1):                    # cnnfast, NumPy's BLAS and torch on 1 thread
        ...
    record(benchmark, flops, peak)             # pytest-benchmark: GFLOP/s, % of peak

NumPy's BLAS threads are set through threadpoolctl when it is installed, else by calling
OpenBLAS's own setter (found among the loaded libraries) through ctypes.
"""
from __future__ import annotations

import contextlib
import ctypes
import os

import cnnfast
from cnnfast import _kernels

__all__ = ["fma_peak_gflops", "pinned_threads", "set_blas_threads", "blas_env_warning", "record"]

_OPENBLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads_64_", "openblas_set_num_threads64_")
_OPENBLAS_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                     "scipy_openblas_get_num_threads_64_", "openblas_get_num_threads64_")


def fma_peak_gflops(threads: int | None = None, seconds: float = 0.15, repeats: int = 5) -> float:
    """Measured FP32 peak in GFLOP/s on `threads` cnnfast threads (default: the current count),
    on the current ISA path: the best of `repeats` probes of about `seconds` each."""
    previous = cnnfast.get_num_threads()
    if threads is not None:
        cnnfast.set_num_threads(threads)
    try:
        iterations = 20_000
        while True:  # calibrate to the requested duration
            flops, elapsed = _kernels.fma_peak(iterations)
            if elapsed >= seconds / 4:
                break
            iterations *= 4
        iterations = max(1, int(iterations * seconds / elapsed))
        best = 0.0
        for _ in range(repeats):
            flops, elapsed = _kernels.fma_peak(iterations)
            best = max(best, flops / elapsed / 1e9)
        return best
    finally:
        cnnfast.set_num_threads(previous)


def _openblas_libs():
    """ctypes handles of the OpenBLAS libraries loaded in this process (Linux)."""
    libs, seen = [], set()
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return libs
    for path in sorted(paths):
        if path in seen:
            continue
        seen.add(path)
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            pass
    return libs


def _call_first(lib, names, *args):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn(*args)
    return None


def set_blas_threads(n: int) -> int | None:
    """Set NumPy's BLAS thread count; returns the previous count (None if it cannot be set)."""
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        previous = info[0]["num_threads"] if info else None
        threadpoolctl.threadpool_limits(n, user_api="blas")
        return previous
    import numpy  # noqa: F401  (loads the BLAS library)
    previous = None
    for lib in _openblas_libs():
        got = _call_first(lib, _OPENBLAS_GETTERS)
        if got is not None:
            previous = got if previous is None else previous
            _call_first(lib, _OPENBLAS_SETTERS, ctypes.c_int(n))
    return previous


@contextlib.contextmanager
def pinned_threads(n: int):
    """Run a block with cnnfast, NumPy's BLAS and (if imported) torch all on `n` threads."""
    previous_cf = cnnfast.get_num_threads()
    previous_blas = set_blas_threads(n)
    torch = None
    with contextlib.suppress(ImportError):
        import torch
    previous_torch = torch.get_num_threads() if torch is not None else None
    cnnfast.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        cnnfast.set_num_threads(previous_cf)
        if previous_blas is not None:
            set_blas_threads(previous_blas)
        if torch is not None:
            torch.set_num_threads(previous_torch)


def blas_env_warning() -> str | None:
    """OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE force OpenBLAS onto other kernels or block sizes and
    make NumPy look slower than it is; say so when they are set."""
    bad = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(k)]
    if not bad:
        return None
    return ("NumPy comparison unreliable: " + ", ".join(f"{k}={os.environ[k]}" for k in bad)
            + " is set; unset it for benchmarks")


def record(benchmark, flops: float, peak: float, **extra) -> None:
    """Attach GFLOP/s and % of `peak` (from the median time) to a finished pytest-benchmark run."""
    if benchmark.stats is None:  # --benchmark-disable: the function ran once, untimed
        return
    gflops = flops / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(gflops=round(gflops, 2), pct_peak=round(100 * gflops / peak, 1),
                                peak_gflops=round(peak, 1), isa=cnnfast.get_isa(), **extra)
