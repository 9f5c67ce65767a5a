"""Compare cnnfast's conv2d with PyTorch and a NumPy im2col implementation on the layers of the
tutorial CNNs, and print a table: ms, GFLOP/s, % of the machine's FMA peak, ratio to PyTorch.

    python benchmarks/compare_conv2d.py [--threads 1 2] [--batch 64] [--repeats 15] [--layers ...]
                                        [--clock wall|cpu] [--stat median|min] [--no-numpy]

Method: every implementation runs the same float32 inputs; each timing is the median of
``--repeats`` runs after one warm-up, and the implementations are interleaved run by run so a
noisy neighbour slows all of them alike. ``--clock cpu`` (one thread only) times with the
calling thread's CPU clock instead of the wall clock, which leaves out the time spent waiting for
a core on a shared machine (all three implementations compute in the calling thread then). Thread counts are pinned for cnnfast
(``cnnfast.set_num_threads``), PyTorch (``torch.set_num_threads``) and, when it is NumPy's
OpenBLAS, NumPy's BLAS (its idle threads would otherwise spin and steal the cores).

What is timed, per layer (torch.nn.functional.conv2d's work):
  * forward: convolution + bias;
  * forward+backward: the forward, then the gradients of the weights, the bias and — except for
    the first layers, whose input is the data — the input, for a given output gradient.
Activations are left out so that only convolution is compared (cnnfast can fuse the ReLU into
the forward at no measurable cost; the ReLU backward belongs to the element-wise ops).
PyTorch runs in NCHW and in channels_last; the faster of the two is reported.

FLOPs are the direct-convolution count 2*N*Ho*Wo*Cout*Cin*kh*kw per pass (x3 for forward +
backward with the input gradient, x2 without), whatever algorithm an implementation uses. Peak:
``benchmarks/_peak.py`` if present, otherwise a 24-accumulator FMA loop compiled here with the
system C compiler and run on the same number of threads.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import cnnfast
from cnnfast import ops

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional
    torch = None

# name, (H, W, Cin), Cout, kernel, padding
LAYERS = [
    ("28x28x1->32", (28, 28, 1), 32, 3, "valid"),
    ("26x26x32->32", (26, 26, 32), 32, 3, "valid"),
    ("13x13x32->64", (13, 13, 32), 64, 3, "valid"),
    ("32x32x3->32", (32, 32, 3), 32, 3, "valid"),
    ("15x15x32->64", (15, 15, 32), 64, 3, "valid"),
    ("56x56x64->64", (56, 56, 64), 64, 3, "same"),
]


# --------------------------------------------------------------------------------------------
# Peak FLOP/s estimate

def _fma_source() -> str:
    """C source of two FMA loops with every accumulator a named variable (so the compiler keeps
    them in registers): 24 ZMM accumulators for AVX-512, 12 YMM for AVX2 (latency 4 x 2 pipes)."""
    def loop(name, target, vec, n, fmadd, set1, add_all):
        decl = "".join(f"    {vec} a{i} = {set1}((float){i});\n" for i in range(n))
        body = "".join(f"        a{i} = {fmadd}(a{i}, m, c);\n" for i in range(n))
        total = " + ".join(f"{add_all}(a{i})" for i in range(n))
        return (f'__attribute__((target("{target}")))\ndouble {name}(int64_t iters) {{\n'
                f"    const {vec} m = {set1}(0.999999f), c = {set1}(1e-7f);\n{decl}"
                f"    for (int64_t it = 0; it < iters; it++) {{\n{body}    }}\n"
                f"    return {total};\n}}\n")
    return ("#include <immintrin.h>\n#include <stdint.h>\n"
            '__attribute__((target("avx2,fma"))) static float hsum8(__m256 v) {\n'
            "    float t[8]; _mm256_storeu_ps(t, v); return t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7];\n}\n"
            + loop("fma_loop_avx512", "avx512f", "__m512", 24, "_mm512_fmadd_ps", "_mm512_set1_ps",
                   "_mm512_reduce_add_ps")
            + loop("fma_loop_avx2", "avx2,fma", "__m256", 12, "_mm256_fmadd_ps", "_mm256_set1_ps",
                   "hsum8"))


def set_blas_threads(n: int) -> bool:
    """Best effort: pin the OpenBLAS that NumPy loaded to n threads (no threadpoolctl needed)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
        for path in paths:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                         "openblas_set_num_threads64_", "openblas_set_num_threads"):
                fn = getattr(lib, name, None)
                if fn is not None:
                    fn(ctypes.c_int(n))
                    return True
    except OSError:
        pass
    return False


def _measured_peak(threads: int, cpu_clock: bool = False) -> tuple[float, str]:
    """GFLOP/s of an FMA loop on `threads` concurrent threads, or the documented figure."""
    cc = os.environ.get("CC", "cc")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="cnnfast_peak_"))
    src, lib = tmp / "fma.c", tmp / "fma.so"
    src.write_text(_fma_source())
    try:
        subprocess.run([cc, "-O2", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True,
                       capture_output=True, timeout=60)
        dll = ctypes.CDLL(str(lib))
    except (OSError, subprocess.SubprocessError):
        return 116.0 * threads, "assumed 116 GFLOP/s per thread (no C compiler)"
    isa = cnnfast.get_isa()
    fn, flops_per_iter = (dll.fma_loop_avx512, 24 * 32) if isa == "avx512" else (dll.fma_loop_avx2, 12 * 16)
    if isa == "generic":
        fn, flops_per_iter = dll.fma_loop_avx2, 12 * 16
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_int64]
    iters = 20_000_000
    best = 0.0
    if cpu_clock and threads == 1:
        for _ in range(5):
            t0 = time.thread_time()
            fn(iters)
            best = max(best, iters * flops_per_iter / (time.thread_time() - t0) / 1e9)
        return best, "FMA loop, 1 thread, thread CPU clock, best of 5"
    for _ in range(5):
        ts = [threading.Thread(target=fn, args=(iters,)) for _ in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = max(best, threads * iters * flops_per_iter / (time.perf_counter() - t0) / 1e9)
    return best, f"FMA loop, {threads} thread(s), best of 5"


def peak_gflops(threads: int, cpu_clock: bool = False) -> tuple[float, str]:
    try:
        sys.path.insert(0, str(pathlib.Path(__file__).parent))
        import _peak  # type: ignore
        return float(_peak.peak_gflops(threads)), "benchmarks/_peak.py"
    except Exception:
        return _measured_peak(threads, cpu_clock)


# --------------------------------------------------------------------------------------------
# NumPy im2col reference implementation


def _pads(hw, k, padding):
    if padding == "valid":
        return 0, 0
    total = k - 1  # stride 1 'same'
    return total // 2, total - total // 2


def numpy_forward(x, w, b, padding):
    """im2col (a strided view, copied by reshape) + one BLAS matmul + bias."""
    kh, kw, cin, cout = w.shape
    pt, pb = _pads(x.shape[1], kh, padding)
    pl, pr = _pads(x.shape[2], kw, padding)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if pt + pb + pl + pr else x
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))  # N,Ho,Wo,C,kh,kw
    n, ho, wo = win.shape[:3]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw * cin)
    y = cols @ w.reshape(kh * kw * cin, cout) + b
    return y.reshape(n, ho, wo, cout), cols


def numpy_backward(dy, cols, x, w, padding, need_dx):
    kh, kw, cin, cout = w.shape
    d2 = dy.reshape(-1, cout)
    dw = (cols.T @ d2).reshape(w.shape)
    db = d2.sum(axis=0)
    dx = None
    if need_dx:
        dcols = (d2 @ w.reshape(-1, cout).T).reshape(dy.shape[:3] + (kh, kw, cin))
        pt, pb = _pads(x.shape[1], kh, padding)
        pl, pr = _pads(x.shape[2], kw, padding)
        dxp = np.zeros((x.shape[0], x.shape[1] + pt + pb, x.shape[2] + pl + pr, cin), np.float32)
        ho, wo = dy.shape[1], dy.shape[2]
        for i in range(kh):
            for j in range(kw):
                dxp[:, i:i + ho, j:j + wo, :] += dcols[:, :, :, i, j, :]
        dx = dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2], :]
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# The three implementations, as closures over one layer's inputs


def make_layer(hw_c, cout, k, padding, batch, seed=0):
    rng = np.random.default_rng(seed)
    h, w_, cin = hw_c
    x = rng.standard_normal((batch, h, w_, cin)).astype(np.float32)
    w = (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    y = ops.conv2d(x, w, b, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    flops = 2.0 * batch * y.shape[1] * y.shape[2] * cout * cin * k * k
    return dict(x=x, w=w, b=b, y=y, dy=dy, flops=flops, padding=padding, first=cin <= 3)


def cnnfast_fns(L):
    x, w, b, y, dy, pad, first = L["x"], L["w"], L["b"], L["y"], L["dy"], L["padding"], L["first"]

    def fwd():
        return ops.conv2d(x, w, b, padding=pad, out=y)

    def fwd_bwd():
        ops.conv2d(x, w, b, padding=pad, out=y)
        return ops.conv2d_backward(dy, x, w, padding=pad, need_input_grad=not first)

    return fwd, fwd_bwd


def torch_fns(L, channels_last):
    pad = L["padding"] if L["padding"] == "valid" else "same"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(L["x"].transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    w = torch.from_numpy(L["w"].transpose(3, 2, 0, 1).copy()).contiguous(memory_format=fmt)
    b = torch.from_numpy(L["b"].copy())
    dy = torch.from_numpy(L["dy"].transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    wg, bg = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    xg = x.clone().requires_grad_(not L["first"])

    def fwd():
        with torch.no_grad():
            return F.conv2d(x, w, b, padding=pad)

    def fwd_bwd():
        wg.grad = bg.grad = xg.grad = None
        out = F.conv2d(xg, wg, bg, padding=pad)
        out.backward(dy)
        return wg.grad

    return fwd, fwd_bwd


def numpy_fns(L):
    x, w, b, dy, pad, first = L["x"], L["w"], L["b"], L["dy"], L["padding"], L["first"]

    def fwd():
        return numpy_forward(x, w, b, pad)[0]

    def fwd_bwd():
        _, cols = numpy_forward(x, w, b, pad)
        return numpy_backward(dy, cols, x, w, pad, not first)

    return fwd, fwd_bwd


def interleaved_medians(fns: dict, repeats: int, clock=time.perf_counter, stat=statistics.median) -> dict:
    """Median (or `stat`) seconds per function, running them in turn so load changes hit all
    alike."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up: workspaces, caches, lazy init
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            f()
            times[k].append(clock() - t0)
    return {k: stat(v) for k, v in times.items()}


def run(threads_list, batch, repeats, layers, with_numpy=True, out=sys.stdout, clock="wall",
        stat="median"):
    rows = []
    for nt in threads_list:
        cnnfast.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        set_blas_threads(nt)
        use_cpu = clock == "cpu" and nt == 1
        timer = time.thread_time if use_cpu else time.perf_counter
        peak, how = peak_gflops(nt, use_cpu)
        print(f"\n## {nt} thread(s); peak {peak:.0f} GFLOP/s ({how}); ISA {cnnfast.get_isa()}; "
              f"batch {batch}; {stat} of {repeats}; {'CPU' if use_cpu else 'wall'} clock; "
              f"load average {os.getloadavg()[0]:.1f}", file=out)
        print(f"{'layer':14s} {'pass':9s} {'cnnfast ms':>10s} {'GFLOP/s':>8s} {'%peak':>6s} "
              f"{'torch ms':>9s} {'(fmt)':>6s} {'ratio':>6s} {'numpy ms':>9s}", file=out)
        for name, hw_c, cout, k, padding in LAYERS:
            if layers and name not in layers:
                continue
            L = make_layer(hw_c, cout, k, padding, batch)
            reps = max(3, repeats // 3) if L["flops"] > 5e9 else repeats
            fns = {}
            cf, cfb = cnnfast_fns(L)
            fns["cnnfast_f"], fns["cnnfast_fb"] = cf, cfb
            if torch is not None:
                for fmt, cl in (("nchw", False), ("cl", True)):
                    tf, tfb = torch_fns(L, cl)
                    fns[f"torch_{fmt}_f"], fns[f"torch_{fmt}_fb"] = tf, tfb
            if with_numpy:
                nf, nfb = numpy_fns(L)
                fns["numpy_f"], fns["numpy_fb"] = nf, nfb
            med = interleaved_medians(fns, reps, timer, min if stat == "min" else statistics.median)
            for pass_, suffix, mult in (("fwd", "_f", 1), ("fwd+bwd", "_fb", 2 if L["first"] else 3)):
                t = med["cnnfast" + suffix]
                gf = mult * L["flops"] / t / 1e9
                tt, fmt, ratio = float("nan"), "-", float("nan")
                if torch is not None:
                    cands = {f: med[f"torch_{f}{suffix}"] for f in ("nchw", "cl")}
                    fmt = min(cands, key=cands.get)
                    tt = cands[fmt]
                    ratio = t / tt
                nt_ms = med["numpy" + suffix] * 1e3 if with_numpy else float("nan")
                print(f"{name:14s} {pass_:9s} {t * 1e3:10.2f} {gf:8.1f} {100 * gf / peak:5.0f}% "
                      f"{tt * 1e3:9.2f} {fmt:>6s} {ratio:6.2f} {nt_ms:9.2f}", file=out)
                rows.append(dict(threads=nt, layer=name, pass_=pass_, ms=t * 1e3, gflops=gf,
                                 peak_pct=100 * gf / peak, torch_ms=tt * 1e3, torch_fmt=fmt,
                                 ratio=ratio, numpy_ms=nt_ms))
            out.flush()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--layers", nargs="*", default=None, help="subset of layer names")
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy im2col baseline")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: thread CPU time for the 1-thread runs (robust on a shared machine)")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="min: best run, the usual estimate of undisturbed time on a busy machine")
    args = ap.parse_args(argv)
    print(f"cnnfast {cnnfast.__version__}, torch {torch.__version__ if torch else 'absent'}, "
          f"numpy {np.__version__}")
    run(args.threads, args.batch, args.repeats, args.layers, with_numpy=not args.no_numpy,
        clock=args.clock, stat=args.stat)


if __name__ == "__main__":
    main()
