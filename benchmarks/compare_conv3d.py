"""Compare cnnfast's Conv3D (ops.conv3d and its backward) with PyTorch's conv3d on volume-CNN layers.

    python benchmarks/compare_conv3d.py [--threads 1 2] [--repeats 9] [--layers NAME ...]

Per layer, forward (convolution + bias) and forward+backward (the forward, then the weight, bias
and input gradients for a given output gradient), as torch.nn.functional.conv3d's work. Each
timing is the median of ``--repeats`` runs after one warm-up, cnnfast and PyTorch interleaved run
by run so a noisy neighbour slows both alike; thread counts are pinned for both. PyTorch runs in
NCDHW and channels_last_3d; the faster is reported. GFLOP/s counts the direct convolution
2*N*Do*Ho*Wo*Cout*Cin*kd*kh*kw per pass (x3 for forward+backward).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import cnnfast
from cnnfast import ops

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional
    torch = None

# name, batch, (D, H, W, Cin), Cout, kernel, padding
LAYERS = [
    ("scan 32^3x1->16", 4, (32, 32, 32, 1), 16, 3, "same"),
    ("scan 16^3x16->32", 4, (16, 16, 16, 16), 32, 3, "same"),
    ("scan 8^3x32->64", 4, (8, 8, 8, 32), 64, 3, "same"),
    ("clip 8x28x28x64->64", 2, (8, 28, 28, 64), 64, 3, "same"),
]


def _flops(batch, out_shape, cin, cout, k):
    return 2.0 * batch * np.prod(out_shape) * cin * cout * k ** 3


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_layer(name, batch, shape, cout, k, padding, repeats, rng):
    d, h, w, cin = shape
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    wk = (rng.standard_normal((k, k, k, cin, cout)) * 0.1).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y = ops.conv3d(x, wk, b, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ours = {
        "fwd": lambda: ops.conv3d(x, wk, b, padding=padding),
        "fwd+bwd": lambda: (ops.conv3d(x, wk, b, padding=padding),
                            ops.conv3d_backward(dy, x, wk, padding=padding)),
    }
    theirs = {}
    if torch is not None:
        pad = k // 2 if padding == "same" else 0
        variants = {}
        for fmt in ("ncdhw", "channels_last_3d"):
            memory = torch.contiguous_format if fmt == "ncdhw" else torch.channels_last_3d
            tx = torch.from_numpy(np.moveaxis(x, -1, 1).copy()).to(memory_format=memory).requires_grad_(True)
            tw = torch.from_numpy(wk.transpose(4, 3, 0, 1, 2).copy()).to(memory_format=memory).requires_grad_(True)
            tb = torch.from_numpy(b).requires_grad_(True)
            tdy = torch.from_numpy(np.moveaxis(dy, -1, 1).copy()).to(memory_format=memory)

            def fwd(tx=tx, tw=tw, tb=tb):
                with torch.no_grad():
                    F.conv3d(tx, tw, tb, padding=pad)

            def fwd_bwd(tx=tx, tw=tw, tb=tb, tdy=tdy):
                out = F.conv3d(tx, tw, tb, padding=pad)
                torch.autograd.grad(out, (tx, tw, tb), tdy)
            variants[fmt] = {"fwd": fwd, "fwd+bwd": fwd_bwd}
        theirs = variants
    rows = []
    for kind in ("fwd", "fwd+bwd"):
        ours[kind]()
        for v in theirs.values():
            v[kind]()
        t_ours, t_theirs = [], {fmt: [] for fmt in theirs}
        for _ in range(repeats):
            t_ours.append(_time(ours[kind]))
            for fmt, v in theirs.items():
                t_theirs[fmt].append(_time(v[kind]))
        m_ours = statistics.median(t_ours)
        best = min((statistics.median(t) for t in t_theirs.values()), default=None)
        flops = _flops(batch, y.shape[1:4], cin, cout, k) * (3 if kind == "fwd+bwd" else 1)
        rows.append((name, kind, m_ours * 1e3, flops / m_ours / 1e9,
                     None if best is None else best * 1e3, None if best is None else m_ours / best))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layers", nargs="+", default=None, help="substrings of layer names to run")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"cnnfast {cnnfast.__version__}, ISA {cnnfast.get_isa()}"
          + ("" if torch is None else f", torch {torch.__version__}"))
    print(f"{'layer':22s} {'pass':8s} {'thr':>3s} {'cnnfast ms':>11s} {'GFLOP/s':>8s} {'torch ms':>9s} {'ratio':>6s}")
    for threads in args.threads:
        cnnfast.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        for layer in LAYERS:
            if args.layers and not any(s in layer[0] for s in args.layers):
                continue
            for name, kind, ms, gflops, torch_ms, ratio in bench_layer(*layer, args.repeats, rng):
                tail = "" if torch_ms is None else f" {torch_ms:9.2f} {ratio:6.2f}"
                print(f"{name:22s} {kind:8s} {threads:3d} {ms:11.2f} {gflops:8.1f}{tail}", flush=True)


if __name__ == "__main__":
    main()
