"""The comparison users run: cnnfast vs PyTorch vs Keras 3 vs plain NumPy, per op and per model.

    python benchmarks/compare.py                 # everything at 1 and 2 threads (about 15 min)
    python benchmarks/compare.py --quick         # a short smoke run (about a minute)
    python benchmarks/compare.py --full          # real epochs instead of extrapolated ones
    python benchmarks/compare.py --sections models --models mnist --threads 1
    cnnfast bench [-- ARGS]                      # runs this script with ARGS

Prints one report (ops, models, memory, import time, targets) and writes it as JSON
(``--json``, default ``benchmarks/results/compare.json``); ``--png PATH`` adds a bar chart
when matplotlib is installed.

How it measures (all of it is in the JSON too):

* **Ops** (per thread count, in a fresh process with every threading runtime pinned): the
  kernel engineers' cases and implementations, reused from ``compare_gemm.py`` (GEMM shapes of
  the tutorial CNN, interleaved timing), ``compare_conv2d.py`` (conv forward / forward+backward
  on the tutorial layers; PyTorch in NCHW and channels_last, the faster one is reported; NumPy
  im2col), ``bench_pool.py`` and ``bench_eltwise.py`` (max-pool, softmax cross-entropy, Adam).
  The implementations take turns in short blocks (``compare_gemm._time_interleaved``) so load
  from other processes hits all alike; times are medians. % of peak is against cnnfast's FMA
  probe (``_peak.py``) measured in the same process.
* **Models** (``_models.py``): each framework runs in its own fresh process per (model, thread
  count): a warm-up, then ``--steps`` timed training steps of a fit-like epoch loop (cnnfast and
  Keras: ``model.fit``; PyTorch: its eager loop; NumPy: a plain implementation); the epoch time is
  the median step time x steps per epoch (60000 / 50000 samples at batch 64: 938 / 782 steps)
  unless ``--full`` runs the whole epoch. Then inference throughput at ``--infer-batch`` (1024)
  and batch-1 latency (medians). The compute floor is the training FLOPs / the FMA peak measured
  just before. ``--rounds R`` repeats every measurement R times, frameworks interleaved, and
  keeps the median.
* **Memory**: peak RSS (``ru_maxrss``) of a process that imports one framework, builds the MNIST
  model and trains ``--memory-steps`` steps (``_models.measure_memory``); the array of training
  data is small (50 x 64 samples, 10 MB) and the same for every framework.
* **Import**: ``import cnnfast`` (and numpy, torch, keras) in a fresh interpreter, timed inside
  it (interpreter start-up excluded), median of ``--import-repeats``.

Timings on a machine shared with other work are noisy: the report prints the load average
before and after; use ``--rounds 3`` there, and compare ratios rather than absolute times.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _models  # noqa: E402

SECTIONS = ("import", "ops", "models", "memory")
SCHEMA = "cnnfast-compare/1"

# the issue's targets: (id, description)
TARGETS = {
    "mnist_epoch_1thr": "MNIST epoch <= 12 s on 1 thread",
    "mnist_epoch_2thr": "MNIST epoch <= 7 s on 2 threads",
    "mnist_vs_torch": "MNIST epoch >= 2x faster than PyTorch",
    "mnist_vs_keras": "MNIST epoch >= 4x faster than Keras fit",
    "mnist_vs_floor": "MNIST epoch within 1.4x of the compute floor",
    "cifar_vs_torch": "CIFAR epoch >= 2x faster than PyTorch",
    "latency": "MNIST batch-1 inference <= 60 us",
    "throughput": "MNIST batch-1024 inference >= 1.5x PyTorch",
    "memory": "MNIST training peak RSS <= 1/3 of PyTorch's",
    "import": "import cnnfast <= 0.15 s",
}


# --------------------------------------------------------------------------------------------
# Small helpers


def _version(dist: str):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run_json(cmd, env, timeout=None) -> dict:
    """Run a worker and parse the JSON object on the last line of its stdout."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        raise RuntimeError(f"worker failed (exit {proc.returncode}): {' '.join(cmd[1:3])}\n    "
                           + "\n    ".join(tail))
    return json.loads(lines[-1])


def _fmt(value, spec=".1f", missing="-"):
    if value is None or (isinstance(value, float) and value != value):
        return missing
    return format(value, spec)


def _ratio(num, den):
    if num is None or den is None or not den:
        return None
    return num / den


# --------------------------------------------------------------------------------------------
# Import time


def measure_import(modules, repeats: int) -> list:
    """Median seconds of ``import <module>`` in a fresh interpreter, timed inside it."""
    rows = []
    env = dict(os.environ, KERAS_BACKEND="torch")
    for label, pre, mod in modules:
        code = (f"import time\n{pre}\nt0 = time.perf_counter()\nimport {mod}\n"
                f"print(time.perf_counter() - t0)")
        samples = []
        try:
            for _ in range(repeats):
                out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                     text=True, timeout=300)
                if out.returncode != 0:
                    raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
                samples.append(float(out.stdout.strip().splitlines()[-1]))
        except (RuntimeError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
            rows.append({"module": label, "unavailable": str(e)})
            continue
        rows.append({"module": label, "median_s": statistics.median(samples), "min_s": min(samples),
                     "repeats": repeats})
    return rows


def import_modules(frameworks):
    mods = [("cnnfast", "", "cnnfast"),
            ("cnnfast + layers, models (as tutorials use it; includes numpy)", "",
             "cnnfast; from cnnfast import layers, models"),
            ("numpy", "", "numpy")]
    if "torch" in frameworks:
        mods.append(("torch", "", "torch"))
    if "keras" in frameworks:
        mods.append(("keras (torch backend)", "", "keras"))
    return mods


# --------------------------------------------------------------------------------------------
# Ops (runs in a worker process per thread count)


def _block_torch():
    """Make `import torch` fail in this process (ops worker without the torch framework)."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None


def ops_worker(cfg: dict) -> dict:
    threads, seconds, batch, quick = cfg["threads"], cfg["seconds"], cfg["batch"], cfg["quick"]
    if "torch" not in cfg["frameworks"]:
        _block_torch()
    import numpy as np

    import cnnfast
    from cnnfast import ops
    from _peak import fma_peak_gflops, pinned_threads

    import compare_conv2d as cc
    import compare_gemm as cg
    torch = cc.torch
    with_numpy = "numpy" in cfg["frameworks"]
    try:  # the pooling and element-wise NumPy baselines of the kernel engineers' suites
        from bench_eltwise import numpy_softmax_xent
        from bench_pool import numpy_max_pool_2x2_fwd_bwd
    except Exception:  # pytest missing: those two NumPy columns stay empty
        numpy_softmax_xent = numpy_max_pool_2x2_fwd_bwd = None

    rng = np.random.default_rng(0)
    cases = []  # (group, name, flops or None, {impl: fn})

    gemm_shapes = [cg.CNN[2], cg.CNN[3]] if quick else cg.CNN
    for M, K, N in gemm_shapes:
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        outs = [np.empty((M, N), np.float32) for _ in range(3)]
        fns = {"cnnfast": lambda a=a, b=b, o=outs[0]: ops.matmul(a, b, out=o)}
        if with_numpy:
            fns["numpy"] = lambda a=a, b=b, o=outs[1]: np.matmul(a, b, out=o)
        if torch is not None:
            ta, tb, to = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(outs[2])
            fns["torch"] = lambda ta=ta, tb=tb, to=to: torch.matmul(ta, tb, out=to)
        cases.append(("gemm", f"gemm {M}x{K}x{N}", 2.0 * M * N * K, fns))

    # the tutorial models' layers (compare_conv2d.py's larger ResNet-size layer with --all-ops)
    layers = cc.LAYERS[:3] if quick else [L for L in cc.LAYERS if cfg.get("all_ops") or L[1][0] <= 32]
    for name, hw_c, cout, k, padding in layers:
        L = cc.make_layer(hw_c, cout, k, padding, batch)
        for pass_, idx, mult in (("fwd", 0, 1), ("fwd+bwd", 1, 2 if L["first"] else 3)):
            fns = {"cnnfast": cc.cnnfast_fns(L)[idx]}
            if torch is not None:
                fns["torch"] = cc.torch_fns(L, channels_last=True)[idx]
                fns["torch_nchw"] = cc.torch_fns(L, channels_last=False)[idx]
            if with_numpy:
                fns["numpy"] = cc.numpy_fns(L)[idx]
            cases.append(("conv2d", f"conv {name} {pass_}", mult * L["flops"], fns))

    n_pool = (batch, 26, 26, 32)
    x = rng.standard_normal(n_pool).astype(np.float32)
    dy = rng.standard_normal((batch, 13, 13, 32)).astype(np.float32)

    def cf_pool(x=x, dy=dy):
        y, am = ops.max_pool2d(x, 2, return_argmax=True)
        return ops.max_pool2d_backward(dy, am, x.shape, 2)
    fns = {"cnnfast": cf_pool}
    if with_numpy and numpy_max_pool_2x2_fwd_bwd is not None:
        fns["numpy"] = lambda: numpy_max_pool_2x2_fwd_bwd(x, dy)
    if torch is not None:
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
        gt = torch.from_numpy(dy).permute(0, 3, 1, 2)

        def torch_pool():
            y = torch.nn.functional.max_pool2d(xt, 2)
            return torch.autograd.grad(y, xt, gt)[0]
        fns["torch"] = torch_pool
    cases.append(("pool", f"max_pool 2x2 fwd+bwd {'x'.join(map(str, n_pool))}", None, fns))

    z = rng.standard_normal((batch, 10)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    fns = {"cnnfast": lambda: ops.softmax_cross_entropy(z, labels)}
    if with_numpy and numpy_softmax_xent is not None:
        fns["numpy"] = lambda: numpy_softmax_xent(z, labels)
    if torch is not None:
        zt, lt = torch.from_numpy(z).requires_grad_(True), torch.from_numpy(labels)

        def torch_xent():
            loss = torch.nn.functional.cross_entropy(zt, lt)
            return loss.item(), torch.autograd.grad(loss, zt)[0]
        fns["torch"] = torch_xent
    cases.append(("eltwise", f"softmax_xent fwd+bwd {batch}x10", None, fns))

    spec = _models.MODELS["mnist"]
    n_params = spec.n_params()
    w = rng.standard_normal(n_params).astype(np.float32)
    g = rng.standard_normal(n_params).astype(np.float32) * np.float32(1e-3)
    m, v = np.zeros_like(w), np.zeros_like(w)
    state = {"t": 0}

    def cf_adam():
        state["t"] += 1
        ops.adam_update(w, g, m, v, step=state["t"], learning_rate=1e-3)
    fns = {"cnnfast": cf_adam}
    if with_numpy:
        wn, mn, vn = w.copy(), m.copy(), v.copy()

        def np_adam():
            state["t"] += 1
            t = state["t"]
            alpha = 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            mn[...] += (g - mn) * np.float32(0.1)
            vn[...] += (g * g - vn) * np.float32(0.001)
            wn[...] -= np.float32(alpha) * mn / (np.sqrt(vn) + np.float32(1e-7))
        fns["numpy"] = np_adam
    if torch is not None:
        params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32)))
                  for s in spec.param_shapes()]
        for p in params:
            p.grad = torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32))
        fns["torch"] = torch.optim.Adam(params, lr=1e-3).step
    cases.append(("optim", f"adam step {n_params:,} params (mnist)", None, fns))

    rows = []
    peak = fma_peak_gflops(threads=threads)
    with pinned_threads(threads):
        for group, name, flops, fns in cases:
            med = cg._time_interleaved(fns, seconds)
            if "torch_nchw" in med:  # report PyTorch's faster layout, as compare_conv2d.py does
                nchw = med.pop("torch_nchw")
                fmt = "nchw" if nchw < med["torch"] else "channels_last"
                med["torch"] = min(nchw, med["torch"])
            else:
                fmt = "channels_last" if group == "pool" else None
            row = {"threads": threads, "group": group, "case": name, "flops": flops,
                   "ms": {k: t * 1e3 for k, t in med.items()}, "torch_format": fmt}
            if flops:
                row["gflops"] = {k: flops / t / 1e9 for k, t in med.items()}
                row["pct_peak"] = {k: 100 * gf / peak for k, gf in row["gflops"].items()}
            row["vs_torch"] = _ratio(med.get("torch"), med["cnnfast"])
            row["vs_numpy"] = _ratio(med.get("numpy"), med["cnnfast"])
            rows.append(row)
    return {"threads": threads, "peak_gflops": peak, "isa": cnnfast.get_isa(), "rows": rows}


def print_ops(result, out):
    nt, peak = result["threads"], result["peak_gflops"]
    print(f"\n### Ops, {nt} thread(s): FP32 FMA peak {peak:.1f} GFLOP/s (measured in the same process); "
          f"median ms; vs = their time / cnnfast's (> 1: cnnfast faster)", file=out)
    head = (f"{'op':<36} {'cnnfast':>9} {'GFLOP/s':>8} {'%peak':>6} {'torch':>9} {'%peak':>6} "
            f"{'numpy':>9} {'vs torch':>8} {'vs numpy':>8}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in result["rows"]:
        ms, gf, pct = r["ms"], r.get("gflops", {}), r.get("pct_peak", {})
        print(f"{r['case']:<36} {_fmt(ms['cnnfast'], '.3f'):>9} {_fmt(gf.get('cnnfast')):>8} "
              f"{_fmt(pct.get('cnnfast'), '.0f'):>6} {_fmt(ms.get('torch'), '.3f'):>9} "
              f"{_fmt(pct.get('torch'), '.0f'):>6} {_fmt(ms.get('numpy'), '.3f'):>9} "
              f"{_fmt(r['vs_torch'], '.2f'):>8} {_fmt(r['vs_numpy'], '.2f'):>8}", file=out)
    out.flush()


# --------------------------------------------------------------------------------------------
# Models


def _median_result(results):
    """Merge repeated measurements of one (framework, model, threads): medians of each figure."""
    ok = [r for r in results if "unavailable" not in r]
    if not ok:
        return results[0]
    if len(ok) == 1:
        return ok[0]
    merged = json.loads(json.dumps(ok[0]))
    for section in ("train", "infer", "latency"):
        for key, value in merged[section].items():
            if isinstance(value, float):
                merged[section][key] = statistics.median(r[section][key] for r in ok)
    merged["rounds"] = len(ok)
    return merged


def model_metrics(spec, batch, peak, by_fw):
    """The rows of one (model, threads) table: {metric: {framework or 'floor': value}}."""
    floor_step = spec.train_flops() * batch / (peak * 1e9)
    get = lambda fw, sec, key: (by_fw.get(fw) or {}).get(sec, {}).get(key)  # noqa: E731
    fws = list(by_fw)
    rows = {
        "train step (ms)": {fw: get(fw, "train", "step_ms_median") for fw in fws},
        "epoch (s)": {fw: get(fw, "train", "epoch_s") for fw in fws},
        "train GFLOP/s": {fw: get(fw, "train", "gflops") for fw in fws},
        "% of FMA peak": {fw: None if get(fw, "train", "gflops") is None else
                          100 * get(fw, "train", "gflops") / peak for fw in fws},
        "inference samples/s": {fw: get(fw, "infer", "samples_per_s") for fw in fws},
        "batch-1 latency (us)": {fw: get(fw, "latency", "us_median") for fw in fws},
    }
    rows["train step (ms)"]["floor"] = floor_step * 1e3
    rows["epoch (s)"]["floor"] = floor_step * spec.steps_per_epoch(batch)
    rows["train GFLOP/s"]["floor"] = peak
    rows["% of FMA peak"]["floor"] = 100.0
    rows["batch-1 latency (us)"]["floor"] = spec.forward_flops() / (peak * 1e9) * 1e6
    return rows


def print_model(spec, batch, threads, peak, by_fw, infer_batch, out):
    rows = model_metrics(spec, batch, peak, by_fw)
    fws = [fw for fw in by_fw if "unavailable" not in by_fw[fw]]
    ref = "cnnfast" if "cnnfast" in fws else None
    epoch_note = next((by_fw[fw]["train"]["epoch_method"] for fw in fws), "")
    print(f"\n### {spec.title}, {threads} thread(s), batch {batch}: {spec.train_flops() / 1e6:.1f} "
          f"MFLOP/sample per training step; FMA peak {peak:.1f} GFLOP/s; floor = FLOPs / peak", file=out)
    others = [fw for fw in fws if fw != ref]
    head = f"{'':<24}" + "".join(f"{fw:>10}" for fw in fws) + f"{'floor':>10}" + "".join(
        f"{fw + '/cnnfast':>15}" for fw in others if ref)
    print(head, file=out)
    print("-" * len(head), file=out)
    for metric, vals in rows.items():
        label = metric.replace("inference samples/s", f"inference b{infer_batch} samples/s")
        spec_fmt = ".0f" if "samples" in metric or "%" in metric or "latency" in metric else (
            ".2f" if "epoch" in metric or "ms" in metric else ".1f")
        line = f"{label:<24}" + "".join(f"{_fmt(vals.get(fw), spec_fmt):>10}" for fw in fws)
        line += f"{_fmt(vals.get('floor'), spec_fmt):>10}"
        if ref and metric in ("train step (ms)", "epoch (s)", "batch-1 latency (us)"):
            line += "".join(f"{_fmt(_ratio(vals.get(fw), vals.get(ref)), '.2f') + 'x':>15}" for fw in others)
        elif ref and metric == "inference samples/s":
            line += "".join(f"{_fmt(_ratio(vals.get(ref), vals.get(fw)), '.2f') + 'x':>15}" for fw in others)
        print(line, file=out)
    for fw, r in by_fw.items():
        if "unavailable" in r:
            print(f"  {fw}: skipped ({r['unavailable']})", file=out)
    print(f"  epoch = {epoch_note}; ratios > 1: cnnfast faster", file=out)
    out.flush()


# --------------------------------------------------------------------------------------------
# Targets, JSON, chart


def evaluate_targets(report) -> list:
    res = []

    def model(name, threads, fw):
        for m in report.get("models", []):
            if m["model"] == name and m["threads"] == threads:
                return m["results"].get(fw), m
        return None, None

    def add(key, value, limit, met, detail):
        res.append({"id": key, "target": TARGETS[key], "value": value, "limit": limit,
                    "met": None if value is None else bool(met), "detail": detail})

    for m in report.get("models", []):
        nt, name = m["threads"], m["model"]
        cf = m["results"].get("cnnfast", {})
        if "train" not in cf:
            continue
        epoch = cf["train"]["epoch_s"]
        if name == "mnist" and nt in (1, 2):
            limit = 12.0 if nt == 1 else 7.0
            add(f"mnist_epoch_{nt}thr", epoch, limit, epoch <= limit, f"{epoch:.2f} s")
        if name == "mnist":
            floor = m["floor_epoch_s"]
            add("mnist_vs_floor", epoch / floor, 1.4, epoch / floor <= 1.4,
                f"{nt} thr: {epoch:.2f} s vs floor {floor:.2f} s")
            lat = cf["latency"]["us_median"]
            add("latency", lat, 60.0, lat <= 60.0, f"{nt} thr: {lat:.0f} us")
        for fw, key, limit in (("torch", f"{name}_vs_torch", 2.0), ("keras", "mnist_vs_keras", 4.0)):
            other = m["results"].get(fw, {})
            if key not in TARGETS or (fw == "keras" and name != "mnist") or "train" not in other:
                continue
            ratio = other["train"]["epoch_s"] / epoch
            add(key, ratio, limit, ratio >= limit, f"{nt} thr: {other['train']['epoch_s']:.2f} s vs {epoch:.2f} s")
        th = m["results"].get("torch", {})
        if name == "mnist" and "infer" in th and cf["infer"]["batch"] == 1024:
            ratio = cf["infer"]["samples_per_s"] / th["infer"]["samples_per_s"]
            add("throughput", ratio, 1.5, ratio >= 1.5,
                f"{nt} thr: {cf['infer']['samples_per_s']:.0f} vs {th['infer']['samples_per_s']:.0f} samples/s")
    mem = {r["framework"]: r for r in report.get("memory", []) if r.get("model") == "mnist" and "peak_rss_mb" in r}
    if "cnnfast" in mem and "torch" in mem:
        ratio = mem["cnnfast"]["peak_rss_mb"] / mem["torch"]["peak_rss_mb"]
        add("memory", ratio, 1 / 3, ratio <= 1 / 3,
            f"{mem['cnnfast']['peak_rss_mb']:.0f} MB vs {mem['torch']['peak_rss_mb']:.0f} MB")
    for r in report.get("import", []):
        if r["module"] == "cnnfast" and "median_s" in r:
            add("import", r["median_s"], 0.15, r["median_s"] <= 0.15, f"{r['median_s'] * 1e3:.0f} ms")
    return res


def print_targets(targets, out):
    print("\n### Targets (from the performance issue; benchmarks, not tests)", file=out)
    for t in targets:
        mark = {True: "met ", False: "MISS", None: "n/a "}[t["met"]]
        print(f"  [{mark}] {t['target']:<48} {t['detail']}", file=out)


def write_png(report, path: pathlib.Path) -> str | None:
    """Bar chart: speed-up of cnnfast over each framework per model / metric / threads."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib)"
    labels, series = [], {}
    for m in report.get("models", []):
        cf = m["results"].get("cnnfast", {})
        if "train" not in cf:
            continue
        for metric, sec, key, higher_better in (("epoch", "train", "epoch_s", False),
                                                ("b1024", "infer", "samples_per_s", True),
                                                ("b1 latency", "latency", "us_median", False)):
            labels.append(f"{m['model']} {metric}\n{m['threads']} thr")
            for fw, r in m["results"].items():
                if fw == "cnnfast" or sec not in r:
                    continue
                a, b = cf[sec][key], r[sec][key]
                series.setdefault(fw, {})[labels[-1]] = a / b if higher_better else b / a
    if not labels:
        return "no model results to chart"
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 4.5))
    width = 0.8 / max(1, len(series))
    for i, (fw, vals) in enumerate(series.items()):
        xs = [j + i * width for j, lab in enumerate(labels) if lab in vals]
        ax.bar(xs, [vals[lab] for lab in labels if lab in vals], width, label=f"vs {fw}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("cnnfast speed-up (x)")
    ax.set_yscale("log")
    ax.set_title(f"cnnfast vs other frameworks ({report['machine']['cpu']})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------------------------
# Main


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See benchmarks/README.md for what each figure means.")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--models", nargs="+", choices=sorted(_models.MODELS), default=["mnist", "cifar"])
    p.add_argument("--frameworks", nargs="+", choices=_models.FRAMEWORKS, default=list(_models.FRAMEWORKS),
                   help="frameworks to compare (missing ones are skipped with a note)")
    p.add_argument("--batch", type=int, default=64, help="training batch size (default 64)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per framework (default 30)")
    p.add_argument("--numpy-steps", type=int, default=6, help="timed steps for the slow NumPy baseline")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    p.add_argument("--full", action="store_true", help="time one full epoch instead of extrapolating")
    p.add_argument("--infer-batch", type=int, default=1024, help="inference throughput batch (default 1024)")
    p.add_argument("--latency-seconds", type=float, default=1.0, help="time budget of the batch-1 latency")
    p.add_argument("--op-seconds", type=float, default=0.8, help="time budget per op case")
    p.add_argument("--all-ops", action="store_true",
                   help="also the 56x56x64 convolution of compare_conv2d.py (slow with NumPy)")
    p.add_argument("--memory-steps", type=int, default=50, help="training steps of the memory run")
    p.add_argument("--import-repeats", type=int, default=7)
    p.add_argument("--rounds", type=int, default=1, help="repeat each model measurement, medians kept")
    p.add_argument("--quick", action="store_true",
                   help="short run: fewer steps and op cases, batch 256 inference (numbers are rough)")
    p.add_argument("--json", default=str(HERE / "results" / "compare.json"), metavar="PATH",
                   help="where to write the JSON report ('' for none; default benchmarks/results/compare.json)")
    p.add_argument("--png", default=None, metavar="PATH", help="also draw a bar chart (needs matplotlib)")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args._worker:  # ops worker: one thread count, in a fresh process
        result = ops_worker(json.loads(args._worker))
        sys.stdout.write("\n" + json.dumps(result) + "\n")
        return 0
    if args.quick:
        args.steps, args.numpy_steps, args.warmup = min(args.steps, 5), min(args.numpy_steps, 2), 1
        args.infer_batch, args.latency_seconds = min(args.infer_batch, 256), min(args.latency_seconds, 0.3)
        args.op_seconds, args.memory_steps = min(args.op_seconds, 0.15), min(args.memory_steps, 10)
        args.import_repeats = min(args.import_repeats, 3)
    out = sys.stdout
    frameworks, missing = _models.available_frameworks(args.frameworks)
    if "cnnfast" not in frameworks:
        print("compare.py: cnnfast is not installed; build it first (pip install .)", file=sys.stderr)
        return 1

    import cnnfast
    from _peak import blas_env_warning, fma_peak_gflops

    versions = {k: _version(k) for k in ("cnnfast", "numpy", "torch", "keras")}
    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv] if argv is None else ["compare.py", *argv],
        "machine": {"cpu": _cpu_name(), "cpus": os.cpu_count(), "isa": cnnfast.get_isa(),
                    "python": platform.python_version(), "load_before": _load()},
        "versions": versions,
        "settings": {k: v for k, v in vars(args).items() if k not in ("_worker", "json", "png")},
        "skipped": missing,
        "peak_gflops": {},
    }
    print(f"cnnfast {versions['cnnfast']} ({cnnfast.get_isa()}) vs "
          + ", ".join(f"{k} {v}" for k, v in versions.items() if v and k != "cnnfast")
          + f"; python {platform.python_version()}; {_cpu_name()}, {os.cpu_count()} CPUs", file=out)
    load = _load()
    if load is not None:
        print(f"load average before: {load:.2f}" + ("  (busy machine: expect noisy figures)"
                                                   if load > 0.5 * (os.cpu_count() or 1) else ""), file=out)
    for fw, why in missing.items():
        print(f"skipping {fw}: {why}", file=out)
    warning = blas_env_warning()
    if warning:
        print("note: " + warning + " (the worker processes run without them)", file=out)

    if "import" in args.sections:
        report["import"] = measure_import(import_modules(frameworks), args.import_repeats)
        print(f"\n### Import time (fresh interpreter, timed inside it; median of {args.import_repeats})", file=out)
        for r in report["import"]:
            val = f"{r['median_s'] * 1e3:8.1f} ms" if "median_s" in r else f"skipped ({r['unavailable']})"
            print(f"  import {r['module']:<64} {val}", file=out)

    if "ops" in args.sections:
        report["ops"] = []
        for nt in args.threads:
            cfg = {"threads": nt, "seconds": args.op_seconds, "batch": 16 if args.quick else args.batch,
                   "quick": args.quick, "frameworks": frameworks, "all_ops": args.all_ops}
            res = _run_json([sys.executable, str(HERE / "compare.py"), "--_worker", json.dumps(cfg)],
                            _models.worker_env(nt))
            report["ops"].append(res)
            print_ops(res, out)

    if "models" in args.sections:
        report["models"] = []
        for name in args.models:
            spec = _models.MODELS[name]
            for nt in args.threads:
                peak = fma_peak_gflops(threads=nt)
                report["peak_gflops"][str(nt)] = peak
                runs = {fw: [] for fw in frameworks}
                for _ in range(max(1, args.rounds)):
                    for fw in frameworks:
                        cfg = {"kind": "model", "framework": fw, "model": name, "threads": nt,
                               "batch": args.batch, "steps": args.numpy_steps if fw == "numpy" else args.steps,
                               "warmup": 1 if fw == "numpy" else args.warmup,
                               "full": args.full and fw != "numpy", "infer_batch": args.infer_batch,
                               "latency_seconds": args.latency_seconds,
                               "infer_seconds": 0.5 if args.quick else 2.0,
                               "latency_calls": 5 if args.quick else 50}
                        runs[fw].append(_run_json(_models.worker_command(cfg), _models.worker_env(nt)))
                by_fw = {fw: _median_result(rs) for fw, rs in runs.items()}
                floor_step = spec.train_flops() * args.batch / (peak * 1e9)
                report["models"].append({
                    "model": name, "threads": nt, "batch": args.batch, "peak_gflops": peak,
                    "train_flops_per_sample": spec.train_flops(), "forward_flops_per_sample": spec.forward_flops(),
                    "floor_step_ms": floor_step * 1e3, "floor_epoch_s": floor_step * spec.steps_per_epoch(args.batch),
                    "floor_latency_us": spec.forward_flops() / (peak * 1e9) * 1e6,
                    "results": by_fw})
                print_model(spec, args.batch, nt, peak, by_fw, args.infer_batch, out)

    if "memory" in args.sections:
        report["memory"] = []
        nt = max(args.threads)
        print(f"\n### Peak RSS of an MNIST training run ({args.memory_steps} steps of batch {args.batch}, "
              f"{nt} thread(s); fresh process per framework, ru_maxrss)", file=out)
        for fw in frameworks:
            cfg = {"kind": "memory", "framework": fw, "model": "mnist", "threads": nt,
                   "batch": args.batch, "steps": args.memory_steps}
            r = _run_json(_models.worker_command(cfg), _models.worker_env(nt))
            report["memory"].append(r)
            if "unavailable" in r:
                print(f"  {fw:<8} skipped ({r['unavailable']})", file=out)
            else:
                print(f"  {fw:<8} peak {r['peak_rss_mb']:7.1f} MB   after import {r['import_rss_mb']:7.1f} MB"
                      f"   (python + numpy alone: {r['baseline_mb']:.1f} MB)", file=out)

    report["machine"]["load_after"] = _load()
    report["targets"] = evaluate_targets(report)
    if report["targets"]:
        print_targets(report["targets"], out)
    if report["machine"]["load_after"] is not None:
        print(f"\nload average after: {report['machine']['load_after']:.2f}", file=out)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"JSON report: {path}", file=out)
    if args.png:
        problem = write_png(report, pathlib.Path(args.png))
        print(f"chart: {problem}" if problem else f"chart: {args.png}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
