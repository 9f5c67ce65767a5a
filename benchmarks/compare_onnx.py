"""ONNX inference: cnnfast (``cnnfast.onnx.load_model``) vs ONNX Runtime on the same .onnx files.

    python benchmarks/compare_onnx.py                    # 5 models, batch 1 and 32, 1 and 2 threads
                                                         # (about 6 min on 2 cores)
    python benchmarks/compare_onnx.py --quick            # a short smoke run (about 15 s)
    CNNFAST_ISA=avx2 python benchmarks/compare_onnx.py   # cnnfast's AVX2 path
    python benchmarks/compare_onnx.py --models resnet18 --threads 1 --batches 1 32
    python benchmarks/compare_onnx.py --size 160 --seconds 4

Prints one table (model, batch, threads, cnnfast ms, ONNX Runtime ms, ratio = cnnfast / ORT,
target <= 1.0) with the CPU and cnnfast's ISA path in its header, and a table of load times and
output agreement; writes both as JSON (``--json``, default ``benchmarks/results/compare_onnx.json``).
Needs torch, torchvision, onnx and onnxruntime.

How it measures:

* **Files.** Built once into a temporary folder: torchvision's resnet18, mobilenet_v2 and vgg11
  with random weights (seeded; batch-norm statistics randomised too, so folding them is
  checked), in eval mode, exported by ``torch.onnx.export`` (TorchScript exporter, opset 17, NCHW
  ``--size`` x ``--size`` input, dynamic batch axis); and the tutorial MNIST CNN and a CIFAR-10
  CNN (Conv2D + BatchNormalization + MaxPooling2D blocks) built in cnnfast and written by
  ``cnnfast.onnx.export`` (NHWC input). vgg11's classifier expects a 7x7 feature map, which the
  exporter can only produce from a multiple of 224, so vgg11 stays at 224 when ``--size`` is not one.
* **Processes.** Each thread count runs in a fresh worker process with every threading runtime
  pinned from start-up (``CNNFAST_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS``; ``_models.worker_env``) and again at run time (``_peak.pinned_threads``:
  cnnfast and, through threadpoolctl, NumPy's BLAS). torch is not imported there. ONNX Runtime
  gets ``intra_op_num_threads=T``, ``inter_op_num_threads=1``, ``ORT_ENABLE_ALL`` graph
  optimisation and the CPUExecutionProvider.
* **Load.** ``import onnx`` (which cnnfast.onnx does on first use) is timed first, apart. Then
  ``cnnfast.onnx.load_model(path)`` and ``onnxruntime.InferenceSession(path)`` are timed
  ``--load-repeats`` times; the first cnnfast load of each file is shown apart ("first"), the
  table's "cnnfast" is the median of the others (target: resnet18 < 0.5 s).
* **Agreement.** Both run the same random input at the largest batch; the table shows
  max |cnnfast - ORT| / max |ORT| over the output.
* **Inference.** cnnfast is timed through ``model.predict_on_batch(x)``, the call for one batch
  already in memory (``predict(x, batch_size=len(x), verbose=0)`` and ``model(x)`` run the same
  forward pass and measured within 2% of it on resnet18); ORT through ``session.run(None,
  {name: x})``. Both get the same float32 array. The two take turns in short blocks
  (``compare_gemm._time_interleaved``: ``--cycles`` blocks each, two untimed calls opening every
  block, then calls for about ``--seconds`` / (2 x cycles)), so load from other processes hits
  both alike; times are medians over all timed calls.

On a shared machine compare ratios rather than absolute times; the report prints the load
average before and after.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import _cpu_name, _load, _run_json, _version  # noqa: E402

SCHEMA = "cnnfast-compare-onnx/1"
TORCH_MODELS = ("resnet18", "mobilenet_v2", "vgg11")
CNNFAST_MODELS = ("mnist", "cifar10")
MODELS = TORCH_MODELS + CNNFAST_MODELS


# --------------------------------------------------------------------------------------------
# Building the .onnx files (main process)


def _import_torchvision_models():
    """torchvision.models, imported with torch.library.register_fake stubbed out: this venv's
    torchvision registers fake kernels for C++ ops its torch build does not have."""
    import torch
    orig = torch.library.register_fake
    torch.library.register_fake = lambda *a, **k: (lambda f: f)
    try:
        import torchvision.models as tvm
    finally:
        torch.library.register_fake = orig
    return tvm


def export_torch(name: str, size: int, path: pathlib.Path) -> dict:
    import torch
    tvm = _import_torchvision_models()
    torch.manual_seed(0)
    model = getattr(tvm, name)(weights=None).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the importer's folding is tested
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return {"source": f"torchvision.models.{name}(weights=None), torch.onnx.export", "size": size}


def build_cnnfast(name: str):
    import numpy as np

    import cnnfast
    from cnnfast import layers
    if name == "mnist":  # the tutorial CNN
        model = cnnfast.Sequential([
            layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ])
    else:  # CIFAR-10: three Conv2D + BatchNormalization + ReLU + MaxPooling2D blocks
        blocks = []
        for i, filters in enumerate((32, 64, 128)):
            kw = {"input_shape": (32, 32, 3)} if i == 0 else {}
            blocks += [layers.Conv2D(filters, (3, 3), padding="same", **kw),
                       layers.BatchNormalization(), layers.Activation("relu"),
                       layers.MaxPooling2D((2, 2))]
        model = cnnfast.Sequential(blocks + [
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
            layers.Dense(10, activation="softmax")])
        rng = np.random.default_rng(0)
        for layer in model.layers:  # trained-looking statistics instead of 0 / 1
            if isinstance(layer, layers.BatchNormalization):
                c = layer.get_weights()[0].shape
                layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                                   rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])
    return model


def export_cnnfast(name: str, path: pathlib.Path) -> dict:
    import cnnfast.onnx
    cnnfast.onnx.export(build_cnnfast(name), str(path))
    return {"source": f"cnnfast {name} CNN, cnnfast.onnx.export"}


def build_files(names, size: int, folder: pathlib.Path, out) -> dict:
    """{model: {"path", "source", "mb", ...}} for the requested models."""
    files = {}
    for name in names:
        path = folder / f"{name}.onnx"
        t0 = time.perf_counter()
        if name in TORCH_MODELS:
            s = size if name != "vgg11" or size % 224 == 0 else 224
            info = export_torch(name, s, path)
        else:
            info = export_cnnfast(name, path)
        info.update(path=str(path), mb=path.stat().st_size / 2**20, export_s=time.perf_counter() - t0)
        files[name] = info
        print(f"  {name:<13} {info['mb']:6.1f} MB  {info['source']}"
              + (f" at {info['size']}x{info['size']}" if "size" in info else "")
              + (" (vgg11 needs a multiple of 224)" if info.get("size", size) != size else ""), file=out)
    out.flush()
    return files


# --------------------------------------------------------------------------------------------
# The worker: one thread count, in a fresh process


def worker(cfg: dict) -> dict:
    sys.modules.setdefault("torch", None)  # keep torch (and its thread pool) out of this process
    import numpy as np
    import onnxruntime as ort

    import cnnfast
    import cnnfast.onnx
    t0 = time.perf_counter()
    import onnx  # noqa: F401  (cnnfast.onnx imports it on first use; timed apart from the loads)
    onnx_import_s = time.perf_counter() - t0
    from _peak import pinned_threads

    import compare_gemm as cg
    threads, rows = cfg["threads"], []

    def session(path):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def timed(fn, n):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            obj = fn()
            ts.append(time.perf_counter() - t0)
        return obj, ts

    with pinned_threads(threads):
        for name, info in cfg["files"].items():
            row = {"model": name, "threads": threads}
            rows.append(row)
            try:
                sess, ort_ts = timed(lambda: session(info["path"]), cfg["load_repeats"])
                model, cf_ts = timed(lambda: cnnfast.onnx.load_model(info["path"]), cfg["load_repeats"] + 1)
            except Exception as e:  # noqa: BLE001  (an importer gap is a result, not a crash)
                row["error"] = f"load: {type(e).__name__}: {e}"
                continue
            row["load_s"] = {"cnnfast_first": cf_ts[0], "cnnfast": statistics.median(cf_ts[1:]),
                             "ort": statistics.median(ort_ts)}
            inp = sess.get_inputs()[0]
            shape = [d if isinstance(d, int) else 1 for d in inp.shape][1:]
            rng = np.random.default_rng(0)
            xs = {b: rng.standard_normal([b, *shape], dtype=np.float32) for b in cfg["batches"]}
            row["input"] = "x".join(map(str, shape))
            try:
                xb = xs[max(xs)]
                ref = sess.run(None, {inp.name: xb})[0]
                got = model.predict_on_batch(xb)
                row["max_rel_err"] = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
                row["ms"] = {}
                for b, x in xs.items():
                    fns = {"cnnfast": lambda x=x: model.predict_on_batch(x),
                           "ort": lambda x=x: sess.run(None, {inp.name: x})}
                    med = cg._time_interleaved(fns, cfg["seconds"], cycles=cfg["cycles"])
                    row["ms"][str(b)] = {k: v * 1e3 for k, v in med.items()}
            except Exception as e:  # noqa: BLE001
                row["error"] = f"run: {type(e).__name__}: {e}"
    return {"threads": threads, "isa": cnnfast.get_isa(), "cnnfast_threads": cnnfast.get_num_threads(),
            "onnx_import_s": onnx_import_s, "rows": rows}


# --------------------------------------------------------------------------------------------
# Report


def _f(v, spec):
    return "-" if v is None else format(v, spec)


def print_report(results, out):
    print(f"\n### Inference, median ms per call (ratio = cnnfast / ORT; target <= 1.0)", file=out)
    head = (f"{'model':<13} {'input':>11} {'batch':>5} {'threads':>7} {'cnnfast ms':>11} "
            f"{'ORT ms':>10} {'ratio':>6}")
    print(head, file=out)
    print("-" * len(head), file=out)
    rows = sorted((r for res in results for r in res["rows"]), key=lambda r: MODELS.index(r["model"]))
    for r in rows:
        for b, ms in r.get("ms", {}).items():
            print(f"{r['model']:<13} {r['input']:>11} {b:>5} {r['threads']:>7} {ms['cnnfast']:11.3f} "
                  f"{ms['ort']:10.3f} {ms['cnnfast'] / ms['ort']:6.2f}", file=out)
    print(f"\n### Load time (s; cnnfast: median after the first load) and agreement "
          f"(max |cnnfast - ORT| / max |ORT|)", file=out)
    head = (f"{'model':<13} {'threads':>7} {'cnnfast first':>13} {'cnnfast':>8} {'ORT session':>11} "
            f"{'max rel err':>11}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        ls = r.get("load_s", {})
        print(f"{r['model']:<13} {r['threads']:>7} {_f(ls.get('cnnfast_first'), '13.3f')} "
              f"{_f(ls.get('cnnfast'), '8.3f')} {_f(ls.get('ort'), '11.3f')} "
              f"{_f(r.get('max_rel_err'), '11.1e')}", file=out)
        if "error" in r:
            print(f"  ERROR {r['error']}", file=out)
    out.flush()


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=MODELS, default=None,
                   help=f"default: all ({', '.join(MODELS)}); --quick leaves out vgg11")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 32 (--quick: 1 4)")
    p.add_argument("--size", type=int, default=None, help="image size of the torchvision models "
                                                          "(default 224, --quick 64)")
    p.add_argument("--seconds", type=float, default=None, help="time budget per case (default 3, --quick 0.2)")
    p.add_argument("--cycles", type=int, default=None, help="interleaved blocks per implementation "
                                                            "(default 3, --quick 2)")
    p.add_argument("--load-repeats", type=int, default=None, help="timed loads per file (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke test)")
    p.add_argument("--json", default=str(HERE / "results" / "compare_onnx.json"), metavar="PATH",
                   help="where to write the JSON report ('' for none)")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args._worker:
        sys.stdout.write("\n" + json.dumps(worker(json.loads(args._worker))) + "\n")
        return 0
    q = args.quick
    defaults = {"models": [m for m in MODELS if m != "vgg11"] if q else list(MODELS),
                "batches": [1, 4] if q else [1, 32], "size": 64 if q else 224,
                "seconds": 0.2 if q else 3.0, "cycles": 2 if q else 3, "load_repeats": 1 if q else 3}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    import _models
    import cnnfast
    out = sys.stdout
    versions = {k: _version(k) for k in ("cnnfast", "onnxruntime", "onnx", "torch", "torchvision", "numpy")}
    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv] if argv is None else ["compare_onnx.py", *argv],
        "machine": {"cpu": _cpu_name(), "cpus": os.cpu_count(), "isa": cnnfast.get_isa(),
                    "python": platform.python_version(), "load_before": _load()},
        "versions": versions,
        "settings": {k: v for k, v in vars(args).items() if k not in ("_worker", "json")},
        "cnnfast_call": "model.predict_on_batch(x)",
    }
    print(f"cnnfast {versions['cnnfast']} vs onnxruntime {versions['onnxruntime']} (CPUExecutionProvider); "
          f"{_cpu_name()}, {os.cpu_count()} CPUs; cnnfast ISA {cnnfast.get_isa()}; "
          f"python {platform.python_version()}", file=out)
    if report["machine"]["load_before"] is not None:
        print(f"load average before: {report['machine']['load_before']:.2f}", file=out)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnfast-onnx-") as tmp:
        print(f"\nbuilding {len(args.models)} .onnx file(s) in {tmp}:", file=out)
        files = build_files(args.models, args.size, pathlib.Path(tmp), out)
        report["files"] = {k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in files.items()}
        results = []
        for nt in args.threads:
            cfg = {"threads": nt, "batches": args.batches, "seconds": args.seconds, "cycles": args.cycles,
                   "load_repeats": args.load_repeats, "files": files}
            t0 = time.perf_counter()
            res = _run_json([sys.executable, str(HERE / "compare_onnx.py"), "--_worker", json.dumps(cfg)],
                            _models.worker_env(nt))
            print(f"threads={nt}: measured in {time.perf_counter() - t0:.1f} s (worker: ISA {res['isa']}, "
                  f"{res['cnnfast_threads']} cnnfast thread(s), import onnx {res['onnx_import_s']:.2f} s)",
                  file=out)
            results.append(res)
    report["results"] = results
    report["machine"]["isa"] = results[0]["isa"] if results else report["machine"]["isa"]
    print(f"\n{_cpu_name()}; cnnfast ISA {report['machine']['isa']}", file=out)
    print_report(results, out)
    report["machine"]["load_after"] = _load()
    report["wall_s"] = time.perf_counter() - t_start
    if report["machine"]["load_after"] is not None:
        print(f"\nload average after: {report['machine']['load_after']:.2f}; "
              f"total {report['wall_s']:.0f} s", file=out)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"JSON report: {path}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
