"""Print a GEMM comparison table: cnnfast vs NumPy vs PyTorch, GFLOP/s, % of peak, ratios.

    python benchmarks/compare_gemm.py [--threads 1 2] [--shapes square cnn] [--seconds 1.0]
                                      [--stat median|min]

For each thread count the FP32 peak is measured first with cnnfast's FMA probe; then, for each
shape, the three libraries and the FMA probe are timed *interleaved*, in short alternating
blocks, so a burst of load from other processes hits all of them alike: the ratios, and the
"% of peak" (against the probe timed in the same blocks), stay meaningful on a shared machine.
Reported times are medians over all timed calls (or minima with --stat min). NumPy's BLAS and torch are pinned to the same
thread count as cnnfast. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow NumPy's OpenBLAS down: if
either is set, the script re-runs itself without them and says so.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

SQUARE = [(n, n, n) for n in (128, 256, 512, 1024, 2048)]
CNN = [(43264, 9, 32), (36864, 288, 32), (7744, 288, 64), (64, 576, 64), (64, 1600, 128)]


def _reexec_without_blas_overrides() -> None:
    bad = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if bad and not os.environ.get("_CNNFAST_COMPARE_REEXEC"):
        env = {k: v for k, v in os.environ.items() if k not in bad}
        env["_CNNFAST_COMPARE_REEXEC"] = ",".join(bad)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _time_interleaved(fns: dict, seconds: float, stat: str = "median", cycles: int = 4) -> dict:
    """Seconds per call of each function: the median, or the minimum (`stat`) over all calls. The libraries take turns in blocks (cycles x
    one block each), each block opening with two untimed calls: calling them strictly in turn
    would time each one against the previous library's thread pool, which keeps spinning for a
    while after its call (OpenBLAS, libgomp) and, on 2 cores, takes a core away."""
    times = {name: [] for name in fns}
    block = seconds / (cycles * len(fns))
    for _ in range(cycles):
        for name, fn in fns.items():
            fn()
            fn()
            deadline = time.perf_counter() + block
            n = 0
            while n < 3 or (time.perf_counter() < deadline and n < 1000):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                n += 1
    if stat == "min":
        return {name: min(ts) for name, ts in times.items()}
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shapes", nargs="+", choices=["square", "cnn"], default=["square", "cnn"])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per shape")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="median time (default), or the best time: the speed when no other "
                             "process interfered, for a machine that is never idle")
    args = parser.parse_args(argv)

    _reexec_without_blas_overrides()
    import numpy as np

    import cnnfast
    from cnnfast import _kernels
    from cnnfast.ops import matmul
    from _peak import fma_peak_gflops, pinned_threads
    try:
        import torch
    except ImportError:
        torch = None

    print(f"cnnfast {cnnfast.__version__} isa={cnnfast.get_isa()}  numpy {np.__version__}"
          + (f"  torch {torch.__version__}" if torch else "  (torch not installed)")
          + f"  python {platform.python_version()}")
    unset = os.environ.get("_CNNFAST_COMPARE_REEXEC")
    if unset:
        print(f"note: ran with {unset.replace(',', ' and ')} unset (they slow NumPy's OpenBLAS)")
    shapes = (SQUARE if "square" in args.shapes else []) + (CNN if "cnn" in args.shapes else [])
    rng = np.random.default_rng(0)
    for nt in args.threads:
        peak = fma_peak_gflops(threads=nt)
        with pinned_threads(nt):
            probe_flops_per_iter = _kernels.fma_peak(1000)[0] / 1000
        print(f"\nthreads={nt}: FP32 FMA peak {peak:.1f} GFLOP/s at the start; each row's % of peak "
              f"uses the probe timed alongside it (last column). Ratio > 1: cnnfast faster. "
              f"Times: {args.stat} over calls.")
        head = (f"{'M x K x N':>17} | {'cnnfast':>8} {'%peak':>5} | {'numpy':>8} {'%peak':>5} | "
                f"{'torch':>8} {'%peak':>5} | {'vs numpy':>8} {'vs torch':>8} | {'peak':>6}")
        print(head)
        print("-" * len(head))
        with pinned_threads(nt):
            for M, K, N in shapes:
                a = rng.standard_normal((M, K), dtype=np.float32)
                b = rng.standard_normal((K, N), dtype=np.float32)
                outs = [np.empty((M, N), np.float32) for _ in range(3)]
                fns = {"cnnfast": lambda: matmul(a, b, out=outs[0]),
                       "numpy": lambda: np.matmul(a, b, out=outs[1])}
                if torch is not None:
                    ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(outs[2])
                    fns["torch"] = lambda: torch.matmul(ta, tb, out=tout)
                # the FMA probe takes its turn in the same blocks, sized like one GEMM call, so
                # "% of peak" compares with what the cores delivered under the same load
                t0 = time.perf_counter()
                matmul(a, b, out=outs[0])
                probe_iters = max(1000, int((time.perf_counter() - t0) * peak * 1e9 / probe_flops_per_iter))
                fns["peak"] = lambda: _kernels.fma_peak(probe_iters)
                med = _time_interleaved(fns, args.seconds, args.stat)
                peak_here = probe_iters * probe_flops_per_iter / med.pop("peak") / 1e9
                gf = {k: 2.0 * M * N * K / v / 1e9 for k, v in med.items()}
                np.testing.assert_allclose(outs[0], outs[1], rtol=1e-3, atol=1e-3 * np.sqrt(K))
                tgf = f"{gf['torch']:8.1f} {100 * gf['torch'] / peak_here:5.0f}" if "torch" in gf else f"{'-':>8} {'-':>5}"
                vt = f"{med['torch'] / med['cnnfast']:8.2f}" if "torch" in med else f"{'-':>8}"
                print(f"{f'{M} x {K} x {N}':>17} | {gf['cnnfast']:8.1f} {100 * gf['cnnfast'] / peak_here:5.0f} | "
                      f"{gf['numpy']:8.1f} {100 * gf['numpy'] / peak_here:5.0f} | {tgf} | "
                      f"{med['numpy'] / med['cnnfast']:8.2f} {vt} | {peak_here:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
