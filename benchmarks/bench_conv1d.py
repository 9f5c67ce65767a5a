"""Conv1D forward and forward+backward on text-CNN shapes, cnnfast vs PyTorch; prints a table.

    python benchmarks/bench_conv1d.py [--threads 1 2] [--batch 32] [--steps 400] [--channels 128]
                                      [--kernels 3 5 7] [--padding valid] [--repeats 15]
                                      [--no-input-grad] [--clock wall|cpu]

What is timed (activations left out, bias in):
  * cnnfast: ``layers.Conv1D`` as a model trains it: ``forward`` into its reused buffer, then
    ``backward``, which writes the kernel and bias gradients and returns the input gradient (a
    text CNN's first convolution reads an Embedding, so the input gradient is needed; leave it
    out with ``--no-input-grad``);
  * PyTorch: ``F.conv1d`` on (batch, channels, steps) tensors, then ``backward`` with the same
    output gradient (forward alone under ``torch.no_grad()``).
Each figure is the median of ``--repeats`` runs after one warm-up, with the implementations
interleaved run by run so that a noisy neighbour slows both alike; on a shared machine quote the
medians with that caveat. ``--clock cpu`` times the 1-thread runs with the calling thread's CPU
clock (both libraries compute in the calling thread then), which leaves out time spent waiting
for a core on a loaded machine. FLOPs are ``2 * batch * out_steps * filters * channels * kernel`` per
pass (x3 for forward+backward with the input gradient, x2 without).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import cnnfast
from cnnfast import layers
from cnnfast.layers import base

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional
    torch = None


def make_case(batch, steps, channels, kernel, padding, seed=0):
    rng = np.random.default_rng(seed)
    layer = layers.Conv1D(channels, kernel, padding=padding, bias_initializer="random_normal")
    x = rng.standard_normal((batch, steps, channels)).astype(np.float32)
    layer._maybe_build((None, steps, channels))
    out_steps = layer.compute_output_shape(x.shape)[1]
    dy = rng.standard_normal((batch, out_steps, channels)).astype(np.float32)
    flops = 2.0 * batch * out_steps * channels * channels * kernel
    return dict(layer=layer, x=x, dy=dy, flops=flops, padding=padding, kernel=kernel)


def cnnfast_fns(case, need_dx):
    layer, x, dy = case["layer"], case["x"], case["dy"]
    ctx = {}

    def fwd():
        return layer.forward(x, False, ctx)

    def fwd_bwd():
        layer.forward(x, True, ctx)
        base.new_grad_generation()
        return layer.backward(dy, ctx, need_dx)

    return fwd, fwd_bwd


def torch_fns(case, need_dx):
    layer, k, padding = case["layer"], case["kernel"], case["padding"]
    x = torch.from_numpy(case["x"].transpose(0, 2, 1).copy())
    w = torch.from_numpy(layer.kernel.numpy().transpose(2, 1, 0).copy())
    b = torch.from_numpy(layer.bias.numpy())
    dy = torch.from_numpy(case["dy"].transpose(0, 2, 1).copy())
    xg = x.clone().requires_grad_(need_dx)
    wg, bg = w.clone().requires_grad_(True), b.clone().requires_grad_(True)

    def conv(inp, weight, bias):
        if padding == "causal":   # conv1d has no one-sided padding: a padded copy, as Keras makes
            return F.conv1d(F.pad(inp, (k - 1, 0)), weight, bias)
        return F.conv1d(inp, weight, bias, padding=padding)   # 'same' at stride 1 is Keras's

    def fwd():
        with torch.no_grad():
            return conv(x, w, b)

    def fwd_bwd():
        xg.grad = wg.grad = bg.grad = None
        conv(xg, wg, bg).backward(dy)
        return wg.grad

    return fwd, fwd_bwd


def interleaved_medians(fns: dict, repeats: int, clock=time.perf_counter) -> dict:
    times = {k: [] for k in fns}
    for f in fns.values():
        f()   # warm-up: buffers, workspaces, lazy initialisation
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            f()
            times[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def run(args, out=sys.stdout):
    rows = []
    need_dx = not args.no_input_grad
    for nt in args.threads:
        cnnfast.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        cpu_clock = args.clock == "cpu" and nt == 1
        print(f"\n## {nt} thread(s); ISA {cnnfast.get_isa()}; batch {args.batch}, {args.steps} steps, "
              f"{args.channels} -> {args.channels} channels, padding {args.padding!r}; median of "
              f"{args.repeats}; {'CPU' if cpu_clock else 'wall'} clock; load average {os.getloadavg()[0]:.1f}", file=out)
        print(f"{'kernel':>6s} {'pass':9s} {'cnnfast ms':>10s} {'GFLOP/s':>8s} {'torch ms':>9s} "
              f"{'GFLOP/s':>8s} {'ratio':>6s}", file=out)
        for k in args.kernels:
            case = make_case(args.batch, args.steps, args.channels, k, args.padding)
            fns = dict(zip(("cnnfast_f", "cnnfast_fb"), cnnfast_fns(case, need_dx)))
            if torch is not None:
                fns.update(zip(("torch_f", "torch_fb"), torch_fns(case, need_dx)))
            med = interleaved_medians(fns, args.repeats, time.thread_time if cpu_clock else time.perf_counter)
            for pass_, suffix, mult in (("fwd", "_f", 1), ("fwd+bwd", "_fb", 3 if need_dx else 2)):
                t = med["cnnfast" + suffix]
                tt = med.get("torch" + suffix, float("nan"))
                flops = mult * case["flops"] / 1e9
                print(f"{k:6d} {pass_:9s} {t * 1e3:10.2f} {flops / t:8.1f} {tt * 1e3:9.2f} "
                      f"{flops / tt:8.1f} {t / tt:6.2f}", file=out)
                rows.append(dict(threads=nt, kernel=k, pass_=pass_, ms=t * 1e3, torch_ms=tt * 1e3,
                                 ratio=t / tt))
            out.flush()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--kernels", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument("--padding", choices=["valid", "same", "causal"], default="valid")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-input-grad", action="store_true",
                    help="leave the input gradient out (a first layer reading the data)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: thread CPU time for the 1-thread runs (robust on a shared machine)")
    args = ap.parse_args(argv)
    print(f"cnnfast {cnnfast.__version__}, torch {torch.__version__ if torch else 'absent'}, "
          f"numpy {np.__version__}")
    run(args)


if __name__ == "__main__":
    main()
