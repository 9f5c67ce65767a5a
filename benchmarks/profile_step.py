"""Where a cnnfast training step (or a prediction) spends its time, against the FLOP floor.

    python benchmarks/profile_step.py                          # MNIST, training, 1 thread
    python benchmarks/profile_step.py --threads 2 --model cifar
    python benchmarks/profile_step.py --mode predict --batch 1 # the batch-1 latency path
    python benchmarks/profile_step.py --torch                  # plus PyTorch's own op profile

Method. The model of ``_models.py`` runs ``--steps`` steps after a warm-up (training:
``model.train_on_batch``; predict: ``model.predict_on_batch``). Timers wrap, on this process only
(nothing in cnnfast is changed):

* every layer's ``forward`` / ``backward`` (Python layer + ops + kernels),
* every C kernel entry point in ``cnnfast._kernels`` (time inside the Cython wrapper: the C
  kernel itself plus the buffer checks of the wrapper),
* the optimizer's update (``optimizer.apply_flat``) and the loss (``softmax_cross_entropy``).

Each figure is the median over the steps of its per-step total. "Python overhead" is, step by
step, the step time minus the time in kernels (then the median): argument checks in ``cnnfast.ops``, output allocation, layer and
model bookkeeping, metrics. FLOPs are direct-convolution / GEMM counts (2 x multiply-adds); the
floor of an entry is its FLOPs / the FMA peak measured in this process just before, and "gap" is
time - floor: the entries with the largest gap are where work pays most.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import pathlib
import resource
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import _models  # noqa: E402

_SKIP_KERNELS = {"isa_names", "cpu_best_isa", "get_isa", "set_isa", "set_num_threads",
                 "get_num_threads", "compiler_info", "openmp_version", "fma_peak", "sgemm_blocking"}


def _minflt() -> int:
    """Minor page faults of this process so far (first touches of freshly mapped memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _kernel_flops(name, args):
    """FLOPs of one kernel call (2 x multiply-adds), or 0 where the count is not FLOP-bound."""
    try:
        if name == "sgemm":
            trans_a, _, _, a, _, _, c = args[:7]
            m, n = c.shape
            k = a.shape[0] if trans_a else a.shape[1]
            return 2.0 * m * n * k
        if name == "conv2d_fwd":       # (x, w, bias, y, hp, act)
            w, y = args[1], args[3]
            return 2.0 * np.prod(y.shape) * w.shape[0] * w.shape[1] * w.shape[2]
        if name == "conv2d_fwd_maxpool":  # (x, w, bias, conv_out_shape, hp, act, pool, y, ...)
            w, z_shape = args[1], args[3]
            return 2.0 * np.prod(z_shape) * w.shape[0] * w.shape[1] * w.shape[2]
        if name == "conv2d_bwd_data":  # (dy, w, dx, hp)
            dy, w = args[0], args[1]
            return 2.0 * np.prod(dy.shape) * w.shape[0] * w.shape[1] * w.shape[2]
        if name == "conv2d_bwd_filter":  # (x, dy, dw, db, hp)
            dy, dw = args[1], args[2]
            return 2.0 * np.prod(dy.shape) * dw.shape[0] * dw.shape[1] * dw.shape[2]
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    return 0.0


def _shape_key(name, args):
    """A short description of a kernel call's operands, to tell the layers apart."""
    shapes = []
    for a in args:
        shape = getattr(a, "shape", None)
        if shape is not None and len(shape) > 1:
            shapes.append("x".join(str(s) for s in shape))
    if name == "conv2d_fwd_maxpool" and len(args) > 3:   # input, weights, conv output
        shapes = shapes[:2] + ["x".join(str(s) for s in args[3])]
    if name == "sgemm" and len(args) > 1:
        shapes.insert(0, f"{'T' if args[0] else 'N'}{'T' if args[1] else 'N'}")
    return " ".join(shapes[:3])


class Profiler:
    """Per-step timers on the layers, kernels, loss and optimizer of one model (see module doc)."""

    def __init__(self, model, faults=False):
        import cnnfast._kernels as kernels
        from cnnfast import ops

        self.model, self.faults = model, faults
        self.current = collections.defaultdict(float)   # this step's totals
        self.counts = collections.defaultdict(int)
        self.flops = collections.defaultdict(float)
        self.steps = []                                 # list of per-step dicts
        self.layer = None                               # the layer running now (kernel attribution)
        self._undo = []
        for name in dir(kernels):
            fn = getattr(kernels, name)
            if name.startswith("_") or name in _SKIP_KERNELS or not callable(fn) or isinstance(fn, type):
                continue
            self._patch(kernels, name, self._kernel_timer(name, fn))
        for layer in model.layers:
            for phase in ("forward", "backward"):
                fn = getattr(layer, phase, None)
                if fn is not None and type(layer).__name__ != "InputLayer":
                    self._patch(layer, phase, self._layer_timer(f"{layer.name} {phase}", fn))
        opt = getattr(model, "optimizer", None)
        if opt is not None and hasattr(opt, "apply_flat"):
            self._patch(opt, "apply_flat", self._timer(("step", "optimizer update"), opt.apply_flat))
        self._patch(ops, "softmax_cross_entropy",
                    self._timer(("step", "loss (softmax_cross_entropy)"), ops.softmax_cross_entropy))

    def _patch(self, obj, name, wrapper):
        own = name in getattr(obj, "__dict__", {})  # modules: yes; layer methods: on the class
        self._undo.append((obj, name, getattr(obj, name) if own else None, own))
        setattr(obj, name, wrapper)

    def restore(self):
        for obj, name, original, own in reversed(self._undo):
            if own:
                setattr(obj, name, original)
            else:
                delattr(obj, name)
        self._undo.clear()

    def _timer(self, key, fn):
        cur = self.current

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cur[key] += time.perf_counter() - t0
        return wrapper

    def _layer_timer(self, name, fn):
        cur, prof = self.current, self

        def wrapper(*args, **kwargs):
            outer, prof.layer = prof.layer, name
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cur[("layer", name)] += time.perf_counter() - t0
                prof.layer = outer
        return wrapper

    def _kernel_timer(self, name, fn):
        cur, counts, flops, faults, prof = self.current, self.counts, self.flops, self.faults, self

        def wrapper(*args):
            key = ("kernel", f"{name} {_shape_key(name, args)}")
            f0 = _minflt() if faults else 0
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                dt = time.perf_counter() - t0
                cur[key] += dt
                if prof.layer is not None:
                    cur[("layer_kernels", prof.layer)] += dt
                counts[key] += 1
                flops[key] = _kernel_flops(name, args)
                if faults:
                    cur[("faults", key[1])] += _minflt() - f0
        return wrapper

    @contextlib.contextmanager
    def step(self):
        self.current.clear()
        f0 = _minflt()
        t0 = time.perf_counter()
        yield
        total = time.perf_counter() - t0
        snapshot = dict(self.current)
        snapshot[("step", "total")] = total
        snapshot[("faults", "step")] = _minflt() - f0
        # per-step differences (a difference of medians would mix different steps' noise)
        snapshot[("derived", "python")] = total - sum(v for k, v in snapshot.items() if k[0] == "kernel")
        snapshot[("derived", "outside")] = total - sum(v for k, v in snapshot.items()
                                                       if k[0] == "layer" or (k[0] == "step" and k[1] != "total"))
        self.steps.append(snapshot)

    def medians(self):
        keys = {k for s in self.steps for k in s}
        return {k: statistics.median(s.get(k, 0.0) for s in self.steps) for k in keys}


def layer_flops(spec, mode):
    """{(layer index among weighted layers, phase): FLOPs per sample}."""
    out, first = {}, True
    for i, (kind, _, _, flops) in enumerate(spec.layer_flops()):
        if not flops:
            continue
        out[(i, "forward")] = flops
        if mode == "train":
            out[(i, "backward")] = flops * (1 if first else 2)
        first = False
    return out


def profile(model_name="mnist", threads=1, batch=64, steps=30, warmup=5, mode="train", faults=False):
    import cnnfast
    from _peak import fma_peak_gflops

    spec = _models.MODELS[model_name]
    h = _models.make_harness("cnnfast", spec, threads=threads, batch=batch)
    model = h.model
    x, y = _models.make_data(spec, batch)
    run = (lambda: model.train_on_batch(x, y)) if mode == "train" else (lambda: model.predict_on_batch(x))
    for _ in range(warmup):
        run()
    peak_before = fma_peak_gflops(threads=threads)
    prof = Profiler(model, faults=faults)
    try:
        for _ in range(steps):
            with prof.step():
                run()
    finally:
        prof.restore()
    # an unprofiled reference: how much the timers themselves add
    plain = []
    for _ in range(steps):
        t0 = time.perf_counter()
        run()
        plain.append(time.perf_counter() - t0)
    # the peak the cores deliver: best of a probe before and one after (load from other
    # processes lowers a single probe)
    peak = max(peak_before, fma_peak_gflops(threads=threads))
    med = prof.medians()
    counts = {k: c / steps for k, c in prof.counts.items()}

    weighted = [l for l in model.layers if getattr(l, "trainable_weights", None)]
    lf = layer_flops(spec, mode)
    weighted_idx = [i for i, (_, _, _, f) in enumerate(spec.layer_flops()) if f]
    flops_by_layer = {}
    for layer, i in zip(weighted, weighted_idx):
        for phase in ("forward", "backward"):
            if (i, phase) in lf:
                flops_by_layer[f"{layer.name} {phase}"] = lf[(i, phase)] * batch

    total = med[("step", "total")]
    python_total = med[("derived", "python")]
    step_flops = (spec.train_flops() if mode == "train" else spec.forward_flops()) * batch

    def row(kind, name, t, flops, calls=None):
        floor = flops / (peak * 1e9) if flops else 0.0
        return {"kind": kind, "name": name, "ms": t * 1e3, "calls": calls, "flops": flops,
                "page_faults": med.get(("faults", name)) if kind == "kernel" and faults else None,
                "kernel_ms": med.get(("layer_kernels", name), 0.0) * 1e3 if kind == "layer" else None,
                "gflops": flops / t / 1e9 if flops and t else None,
                "pct_peak": 100 * flops / t / 1e9 / peak if flops and t else None,
                "floor_ms": floor * 1e3, "gap_ms": (t - floor) * 1e3, "share": t / total}

    layers = [row("layer", k[1], v, flops_by_layer.get(k[1], 0.0)) for k, v in med.items() if k[0] == "layer"]
    order = {f"{l.name} {p}": j for j, l in enumerate(model.layers) for p in ("forward", "backward")}
    layers.sort(key=lambda r: (r["name"].endswith("backward"), order.get(r["name"], 0)
                               * (-1 if r["name"].endswith("backward") else 1)))
    kernels = sorted((row("kernel", k[1], v, prof.flops.get(k, 0.0), counts.get(k)) for k, v in med.items()
                      if k[0] == "kernel"), key=lambda r: -r["ms"])
    steps_rows = [row("step", k[1], v, 0.0) for k, v in med.items() if k[0] == "step" and k[1] != "total"]
    steps_rows.append(row("step", "model / trainer outside the layers (checks, metrics, ...)",
                          med[("derived", "outside")], 0.0))
    return {
        "model": model_name, "mode": mode, "threads": threads, "batch": batch, "steps": steps,
        "isa": cnnfast.get_isa(), "peak_gflops": peak,
        "step_ms": total * 1e3, "step_ms_unprofiled": statistics.median(plain) * 1e3,
        "step_flops": step_flops, "floor_ms": step_flops / (peak * 1e9) * 1e3,
        "kernel_ms": (total - python_total) * 1e3, "python_overhead_ms": python_total * 1e3,
        "page_faults_per_step": med[("faults", "step")],
        "layers": layers, "kernels": kernels, "other": steps_rows,
    }


def print_report(r, out=sys.stdout):
    what = "training step (train_on_batch)" if r["mode"] == "train" else "prediction (predict_on_batch)"
    print(f"{r['model']} {what}, batch {r['batch']}, {r['threads']} thread(s), ISA {r['isa']}, "
          f"median of {r['steps']} steps; FMA peak {r['peak_gflops']:.1f} GFLOP/s", file=out)
    print(f"  step {r['step_ms']:.3f} ms (unprofiled {r['step_ms_unprofiled']:.3f} ms); FLOP floor "
          f"{r['floor_ms']:.3f} ms ({r['step_flops'] / 1e6:.1f} MFLOP) -> {100 * r['floor_ms'] / r['step_ms']:.0f}% "
          f"of peak overall", file=out)
    print(f"  in C kernels {r['kernel_ms']:.3f} ms; Python overhead (ops checks, allocation, layers, model, "
          f"metrics) {r['python_overhead_ms']:.3f} ms = {100 * r['python_overhead_ms'] / r['step_ms']:.0f}%", file=out)
    print(f"  minor page faults per step: {r['page_faults_per_step']:.0f} (fresh memory touched: about "
          f"{r['page_faults_per_step'] * 4 / 1024:.1f} MiB)", file=out)

    def table(title, rows, name_width=44, calls=False):
        print(f"\n{title}", file=out)
        faults = calls and any(x.get("page_faults") is not None for x in rows)
        split = any(x.get("kernel_ms") is not None for x in rows)
        head = (f"  {'':<{name_width}} {'ms':>8} {'share':>6} {'GFLOP/s':>8} {'%peak':>6} {'floor ms':>9} "
                f"{'gap ms':>8}" + (f" {'calls':>5}" if calls else "") + (f" {'faults':>6}" if faults else "")
                + (f" {'in C':>8} {'Python':>8}" if split else ""))
        print(head, file=out)
        for x in rows:
            gf = "-" if x["gflops"] is None else f"{x['gflops']:.1f}"
            pct = "-" if x["pct_peak"] is None else f"{x['pct_peak']:.0f}"
            c = f" {x['calls']:>5.0f}" if calls else ""
            if faults:
                c += f" {x['page_faults']:>6.0f}"
            if split:
                c += f" {x['kernel_ms']:8.3f} {x['ms'] - x['kernel_ms']:8.3f}"
            print(f"  {x['name'][:name_width]:<{name_width}} {x['ms']:8.3f} {100 * x['share']:5.1f}% {gf:>8} "
                  f"{pct:>6} {x['floor_ms']:9.3f} {x['gap_ms']:8.3f}{c}", file=out)

    table("Per layer (forward and backward, including ops checks and allocation):", r["layers"])
    table("Per C kernel call site (sorted by time):", r["kernels"], name_width=56, calls=True)
    table("Loss, optimizer and the rest of the step:", r["other"], name_width=60)
    out.flush()


def torch_profile(model_name, threads, batch, steps, mode, out=sys.stdout):
    """PyTorch's own profile of the equivalent step (torch.profiler, self CPU time by op)."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile as tprofile
    except ImportError:
        print("\n(PyTorch not installed: no PyTorch profile)", file=out)
        return None
    spec = _models.MODELS[model_name]
    h = _models.make_harness("torch", spec, threads=threads, batch=batch)
    data = h.prepare(*_models.make_data(spec, batch))
    run = (lambda: h.train_step(data)) if mode == "train" else (lambda: h.predict(data[0]))
    for _ in range(5):
        run()
    with tprofile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(steps):
            run()
    print(f"\nPyTorch {torch.__version__}, same model and batch, {threads} thread(s): self CPU time per "
          f"step by op (torch.profiler, {steps} steps)", file=out)
    rows = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)[:15]
    for e in rows:
        print(f"  {e.key[:56]:<56} {e.self_cpu_time_total / steps / 1e3:8.3f} ms {e.count / steps:5.1f} calls",
              file=out)
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / steps / 1e3, "calls": e.count / steps} for e in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(_models.MODELS), default="mnist")
    ap.add_argument("--mode", choices=["train", "predict"], default="train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=None, help="default: 64 for train, 1 for predict")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--torch", action="store_true", help="also print PyTorch's profile of the same step")
    ap.add_argument("--faults", action="store_true", help="count minor page faults per kernel call site")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the profile as JSON")
    args = ap.parse_args(argv)
    batch = args.batch or (64 if args.mode == "train" else 1)
    steps = args.steps if batch > 1 else max(args.steps, 200)
    r = profile(args.model, args.threads, batch, steps, mode=args.mode, faults=args.faults)
    print_report(r)
    if args.torch:
        r["torch"] = torch_profile(args.model, args.threads, batch, steps, args.mode)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
