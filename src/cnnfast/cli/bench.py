"""``cnnfast bench``: the project's comparison benchmarks, or a built-in timing table.

With the source tree at hand (``benchmarks/compare.py`` found from ``--source`` or by searching
the current directory and its parents), that script runs in a subprocess and its exit code is
returned. Otherwise a small built-in table is measured here: each case is timed after one
warm-up call, in repeats long enough to be above timer noise, and the median is reported, with
GFLOP/s where the flop count is well defined, next to NumPy and PyTorch (when installed) on the
same inputs and the same thread count (the table runs in a child process whose environment
limits NumPy's BLAS to that thread count too).
"""
from __future__ import annotations

import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

from . import UsageError

_MIN_SAMPLE_SECONDS = 0.02


def find_compare_script(source=None) -> pathlib.Path | None:
    """benchmarks/compare.py in ``source``, else in the current directory or one of its parents."""
    if source is not None:
        candidate = pathlib.Path(source).expanduser() / "benchmarks" / "compare.py"
        if not candidate.is_file():
            raise UsageError(f"--source {source}: no benchmarks/compare.py there")
        return candidate
    here = pathlib.Path.cwd().resolve()
    for d in (here, *here.parents):
        candidate = d / "benchmarks" / "compare.py"
        if candidate.is_file() and (d / "pyproject.toml").is_file():
            return candidate
    return None


def time_call(fn, repeats: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` samples, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    inner = max(1, int(_MIN_SAMPLE_SECONDS / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def _torch(threads: int):
    try:
        import torch
    except Exception:  # not installed, or broken: PyTorch columns stay empty
        return None
    torch.set_num_threads(threads)
    return torch


def _matmul_case(m, k, n, rng, torch):
    from .. import ops

    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    fns = {"cnnfast": lambda: ops.matmul(a, b, out=out), "numpy": lambda: np.matmul(a, b, out=out)}
    if torch is not None:
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        fns["torch"] = lambda: torch.mm(ta, tb, out=tout)
    return f"matmul {m}x{k} @ {k}x{n}", 2.0 * m * n * k, fns


def _conv_case(n, h, w, cin, cout, k, rng, torch):
    """A 'valid' k x k convolution with ReLU, NHWC / HWIO (as Conv2D runs it)."""
    from .. import ops

    x = rng.standard_normal((n, h, w, cin), dtype=np.float32)
    wt = rng.standard_normal((k, k, cin, cout), dtype=np.float32)
    b = rng.standard_normal(cout, dtype=np.float32)
    ho, wo = h - k + 1, w - k + 1
    out = np.empty((n, ho, wo, cout), np.float32)
    w_mat = np.ascontiguousarray(wt.reshape(k * k * cin, cout))

    def numpy_conv():  # im2col with a strided view, then one BLAS GEMM
        cols = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # n,ho,wo,cin,k,k
        cols = np.ascontiguousarray(cols.transpose(0, 1, 2, 4, 5, 3)).reshape(-1, k * k * cin)
        np.maximum(cols @ w_mat + b, 0, out=out.reshape(-1, cout))

    fns = {"cnnfast": lambda: ops.conv2d(x, wt, b, activation="relu", out=out), "numpy": numpy_conv}
    if torch is not None:
        tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        tw = torch.from_numpy(np.ascontiguousarray(wt.transpose(3, 2, 0, 1)))
        tb = torch.from_numpy(b)
        fns["torch"] = lambda: torch.relu_(torch.nn.functional.conv2d(tx, tw, tb))
    return f"conv2d {n}x{h}x{w}x{cin} -> {cout}, {k}x{k}", 2.0 * n * ho * wo * cout * k * k * cin, fns


def _pool_case(n, h, w, c, rng, torch):
    """2x2 max pooling, stride 2 (MaxPooling2D defaults)."""
    from .. import ops

    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    fns = {"cnnfast": lambda: ops.max_pool2d(x),
           "numpy": lambda: x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))}
    if torch is not None:
        tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        fns["torch"] = lambda: torch.nn.functional.max_pool2d(tx, 2)
    return f"max_pool2d {n}x{h}x{w}x{c}, 2x2", None, fns


def _train_step_case(batch, rng, torch):
    """One optimizer step of the MNIST tutorial CNN (forward, backward, Adam), batch ``batch``."""
    from .. import zoo

    model = zoo.mnist_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if hasattr(model, "train_on_batch"):
        step = lambda: model.train_on_batch(x, y)  # noqa: E731
    else:
        step = lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)  # noqa: E731
    fns = {"cnnfast": step}
    if torch is not None:
        nn = torch.nn
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
                            nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        ty = torch.from_numpy(y)

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(tx), ty)
            loss.backward()
            opt.step()
        fns["torch"] = torch_step
    # forward + backward of the convolutions and dense layers: 3x the forward multiply-adds
    macs = (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 3 * 3 * 64 * 9 * 64 + 576 * 64 + 64 * 10) * batch
    return f"train step mnist_cnn, batch {batch}", 3 * 2.0 * macs, fns


def builtin_table(threads: int, repeats: int, out=None) -> int:
    import cnnfast

    out = sys.stdout if out is None else out

    cnnfast.set_num_threads(threads)
    torch = _torch(threads)
    rng = np.random.default_rng(0)
    cases = [lambda: _matmul_case(512, 512, 512, rng, torch),
             lambda: _matmul_case(7744, 288, 64, rng, torch),   # mnist_cnn conv 2 as a GEMM, batch 64
             lambda: _matmul_case(64, 576, 64, rng, torch)]     # mnist_cnn dense layer, batch 64
    from .. import ops

    if hasattr(ops, "conv2d"):
        cases.append(lambda: _conv_case(64, 13, 13, 32, 64, 3, rng, torch))  # mnist_cnn conv 2
        cases.append(lambda: _conv_case(64, 32, 32, 3, 32, 3, rng, torch))   # cifar10_cnn conv 1
    if hasattr(ops, "max_pool2d"):
        cases.append(lambda: _pool_case(64, 26, 26, 32, rng, torch))         # mnist_cnn pool 1
    try:
        from .. import models  # noqa: F401  (the model API: training step case)
        cases.append(lambda: _train_step_case(64, rng, torch))
    except ImportError:
        pass
    print(f"cnnfast {cnnfast.__version__} built-in benchmark: SIMD {cnnfast.get_isa()}, {threads} thread(s), "
          f"median of {repeats} repeats" + ("" if torch else "; PyTorch not installed"), file=out)
    load = f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; " if hasattr(os, "getloadavg") else ""
    blas = os.environ.get("OPENBLAS_NUM_THREADS")
    blas = f"BLAS limited to {blas} thread(s)" if blas else "uses its own BLAS threads"
    print(f"{load}NumPy {np.__version__} {blas}"
          + (f"; PyTorch {torch.__version__} set to {threads} thread(s)" if torch else ""), file=out)
    header = (f"{'case':<38} {'cnnfast ms':>10} {'GFLOP/s':>8} {'NumPy ms':>9} {'PyTorch ms':>10} "
              f"{'vs PyTorch':>10}")
    print(header, file=out)
    print("-" * len(header), file=out)
    for make in cases:
        name, flops, fns = make()
        ms = {k: time_call(f, repeats) * 1e3 for k, f in fns.items()}
        gflops = f"{flops / (ms['cnnfast'] * 1e-3) / 1e9:.1f}" if flops else "-"
        ratio = f"{ms['torch'] / ms['cnnfast']:.2f}x" if "torch" in ms else "-"
        numpy_ms = f"{ms['numpy']:.3f}" if "numpy" in ms else "-"
        torch_ms = f"{ms['torch']:.3f}" if "torch" in ms else "-"
        print(f"{name:<38} {ms['cnnfast']:>10.3f} {gflops:>8} {numpy_ms:>9} {torch_ms:>10} {ratio:>10}",
              file=out, flush=True)
    print("vs PyTorch = PyTorch time / cnnfast time (above 1: cnnfast is faster)", file=out)
    return 0


def run(args) -> int:
    import cnnfast

    threads = args.threads or cnnfast.get_num_threads()
    extra = list(args.extra)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    script = None if args.builtin else find_compare_script(args.source)
    if script is not None and args.threads and "--threads" not in extra:
        extra = ["--threads", str(args.threads), *extra]  # compare.py otherwise runs 1 and 2 threads
    # every library on the same number of threads: the BLAS behind NumPy only reads these at start-up
    env = dict(os.environ, CNNFAST_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if script is None:
        if extra:
            raise UsageError(f"arguments {' '.join(extra)!r} are for benchmarks/compare.py, which was not found")
        code = ("import sys; from cnnfast.cli.bench import builtin_table; "
                f"sys.exit(builtin_table({threads}, {args.repeats}))")
        sys.stdout.flush()
        return subprocess.call([sys.executable, "-c", code], env=env)
    print(f"Running {script} ...", flush=True)
    return subprocess.call([sys.executable, str(script), *extra], cwd=str(script.parent.parent), env=env)
