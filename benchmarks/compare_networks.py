"""Real networks at 224x224: cnnfast.applications.torchvision vs PyTorch, ONNX Runtime and OpenVINO.

    python benchmarks/compare_networks.py                          # 4 networks, batch 1 and 32, 1 and 2 threads
    python benchmarks/compare_networks.py --quick                  # a smoke run (small sizes, about 1 min)
    python benchmarks/compare_networks.py --models resnet50 --threads 1 --batches 1
    CNNFAST_ISA=avx2 python benchmarks/compare_networks.py         # cnnfast's AVX2 path
    python benchmarks/compare_networks.py --train-batch 32         # also a fine-tuning step

Prints one table per thread count (network, batch, median ms per call for cnnfast, PyTorch, ONNX
Runtime and OpenVINO; cnnfast / ORT and cnnfast / PyTorch; cnnfast's GFLOP/s and the percentage of
the measured FMA peak on that many threads) with the CPU and cnnfast's ISA path in the header, and
the fine-tuning step (forward + backward + SGD update, batch ``--train-batch``) against PyTorch;
writes the JSON to ``--json`` (default ``benchmarks/results/compare_networks.json``).
Needs torch and torchvision (the reference models); onnx, onnxruntime and openvino when present.

How it measures:

* **Same weights everywhere.** torchvision's model, random weights (seeded; batch-norm statistics
  randomised so folding is exercised), eval mode, is saved as a ``state_dict`` ``.pth`` file and
  exported by ``torch.onnx.export`` (opset 17, dynamic batch). cnnfast builds
  ``cnnfast.applications.torchvision.<name>(weights=<the .pth>)`` (NHWC; no torch involved), ORT
  and OpenVINO run the ``.onnx`` (NCHW input), PyTorch runs the module itself in
  ``channels_last`` under ``torch.inference_mode()``.
* **Processes.** Each thread count runs in fresh worker processes with every threading runtime
  pinned from start-up (``_models.worker_env``): one for cnnfast, ORT and OpenVINO (torch is kept
  out of it), taking turns in short interleaved blocks (``compare_gemm._time_interleaved``), and
  one for PyTorch. ORT gets ``intra_op_num_threads``, ``ORT_ENABLE_ALL``; OpenVINO
  ``INFERENCE_NUM_THREADS`` and the LATENCY hint. Times are medians.
* **FLOPs** are counted on torch's module (2 x multiply-adds of every Conv2d and Linear); the peak
  is ``cnnfast._kernels.fma_peak`` on the same thread count and ISA path.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import _cpu_name, _load, _run_json, _version  # noqa: E402
from compare_onnx import _import_torchvision_models  # noqa: E402

SCHEMA = "cnnfast-compare-networks/1"
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "vgg16")


# --------------------------------------------------------------------------------------------
# Building the files (main process, with torch)


def _torch_model(name: str):
    import torch
    tvm = _import_torchvision_models()
    torch.manual_seed(0)
    model = getattr(tvm, name)(weights=None).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def forward_flops(model, size: int) -> float:
    """2 x the multiply-adds of every Conv2d and Linear for one image of size x size."""
    import torch
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, torch.nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return float(total[0])


def build_files(names, size: int, folder: pathlib.Path, out) -> dict:
    import torch
    files = {}
    for name in names:
        t0 = time.perf_counter()
        model = _torch_model(name)
        pth, onnx_path = folder / f"{name}.pth", folder / f"{name}.onnx"
        torch.save(model.state_dict(), pth)
        info = {"pth": str(pth), "size": size, "gflop": forward_flops(model, size) / 1e9,
                "params": sum(p.numel() for p in model.parameters())}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, torch.randn(1, 3, size, size), str(onnx_path), dynamo=False,
                                  opset_version=17, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            info["onnx"] = str(onnx_path)
        except Exception as e:  # noqa: BLE001  (no onnx package: ORT/OpenVINO columns stay empty)
            info["onnx_error"] = f"{type(e).__name__}: {e}"
        files[name] = info
        print(f"  {name:<13} {info['params']:>12,} parameters  {info['gflop']:6.2f} GFLOP/image at "
              f"{size}x{size}  ({time.perf_counter() - t0:.1f} s)", file=out)
    out.flush()
    return files


# --------------------------------------------------------------------------------------------
# Workers


def _inputs(batches, size, rng):
    import numpy as np
    return {b: rng.standard_normal((b, size, size, 3), dtype=np.float32) for b in batches}


def engines_worker(cfg: dict) -> dict:
    """cnnfast, ONNX Runtime and OpenVINO in one process, without torch."""
    sys.modules.setdefault("torch", None)
    import numpy as np

    import cnnfast
    import cnnfast.applications.torchvision as tv
    import compare_gemm as cg
    from _peak import fma_peak_gflops, pinned_threads
    threads, rows = cfg["threads"], []
    with pinned_threads(threads):
        peak = fma_peak_gflops(threads)
        for name, info in cfg["files"].items():
            rng = np.random.default_rng(0)
            xs = _inputs(cfg["batches"], info["size"], rng)
            t0 = time.perf_counter()
            model = getattr(tv, name)(weights=info["pth"], input_shape=(info["size"], info["size"], 3))
            row = {"model": name, "threads": threads, "load_s": time.perf_counter() - t0, "ms": {}}
            rows.append(row)
            fns_of = {"cnnfast": lambda x: model.predict_on_batch(x)}
            if "onnx" in info:
                try:
                    import onnxruntime as ort
                    so = ort.SessionOptions()
                    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
                    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    sess = ort.InferenceSession(info["onnx"], so, providers=["CPUExecutionProvider"])
                    fns_of["ort"] = lambda x, s=sess: s.run(None, {"input": x.transpose(0, 3, 1, 2).copy()})[0]
                except ImportError:
                    pass
                try:
                    import openvino as ov
                    core = ov.Core()
                    compiled = core.compile_model(info["onnx"], "CPU", {
                        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                        "INFERENCE_PRECISION_HINT": "f32"})
                    request = compiled.create_infer_request()
                    fns_of["openvino"] = lambda x, r=request: r.infer([x.transpose(0, 3, 1, 2).copy()])[0]
                except ImportError:
                    pass
            xb = xs[max(xs)]
            ref = np.asarray(fns_of["cnnfast"](xb))
            row["max_rel_diff"] = {k: float(np.max(np.abs(np.asarray(f(xb)) - ref)) / max(np.max(np.abs(ref)), 1e-30))
                                   for k, f in fns_of.items() if k != "cnnfast"}
            for b, x in xs.items():
                fns = {k: (lambda f=f, x=x: f(x)) for k, f in fns_of.items()}
                med = cg._time_interleaved(fns, cfg["seconds"], cycles=cfg["cycles"])
                row["ms"][str(b)] = {k: v * 1e3 for k, v in med.items()}
            if cfg.get("train_batch"):
                row["train_ms"] = _cnnfast_train_ms(model, cfg["train_batch"], info["size"], cfg["train_steps"])
            del model
    return {"threads": threads, "isa": cnnfast.get_isa(), "peak_gflops": peak, "rows": rows}


def _cnnfast_train_ms(model, batch, size, steps):
    import numpy as np

    import cnnfast
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, 1000, batch)
    model.compile(optimizer=cnnfast.optimizers.SGD(1e-3, momentum=0.9),
                  loss=cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)  # warm-up: buffers, plans
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2] * 1e3


def torch_worker(cfg: dict) -> dict:
    import numpy as np
    import torch

    import compare_gemm as cg
    from _peak import pinned_threads
    threads, rows = cfg["threads"], []
    with pinned_threads(threads):
        for name, info in cfg["files"].items():
            model = _torch_model(name)
            model.load_state_dict(torch.load(info["pth"], weights_only=True))
            model = model.to(memory_format=torch.channels_last).eval()
            rng = np.random.default_rng(0)
            xs = {b: torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=torch.channels_last)
                  for b, x in _inputs(cfg["batches"], info["size"], rng).items()}
            row = {"model": name, "threads": threads, "ms": {}}
            rows.append(row)

            def infer(x):
                with torch.inference_mode():
                    return model(x)
            for b, x in xs.items():
                med = cg._time_interleaved({"torch": lambda x=x: infer(x)}, cfg["seconds"] / 3, cycles=cfg["cycles"])
                row["ms"][str(b)] = {"torch": med["torch"] * 1e3}
            if cfg.get("train_batch"):
                model.train()
                opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
                r = np.random.default_rng(1)
                x = torch.from_numpy(r.standard_normal((cfg["train_batch"], 3, info["size"], info["size"]),
                                                       dtype=np.float32)).contiguous(memory_format=torch.channels_last)
                y = torch.from_numpy(r.integers(0, 1000, cfg["train_batch"]))

                def step():
                    opt.zero_grad(set_to_none=True)
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
                step()
                ts = []
                for _ in range(cfg["train_steps"]):
                    t0 = time.perf_counter()
                    step()
                    ts.append(time.perf_counter() - t0)
                row["train_ms"] = sorted(ts)[len(ts) // 2] * 1e3
    return {"threads": threads, "rows": rows}


# --------------------------------------------------------------------------------------------
# Report


def _f(v, spec):
    return "-" if v is None else format(v, spec)


def merge(engines: dict, torch_res: dict | None) -> list:
    by = {r["model"]: r for r in (torch_res or {"rows": []})["rows"]}
    rows = []
    for r in engines["rows"]:
        t = by.get(r["model"], {})
        for b, ms in r["ms"].items():
            ms = dict(ms)
            ms["torch"] = t.get("ms", {}).get(b, {}).get("torch")
            rows.append({"model": r["model"], "batch": int(b), "threads": r["threads"], "ms": ms})
        if "train_ms" in r:
            rows.append({"model": r["model"], "train": True, "threads": r["threads"],
                         "ms": {"cnnfast": r["train_ms"], "torch": t.get("train_ms")}})
    return rows


def print_report(results, files, out):
    for res in results:
        eng = res["engines"]
        peak = eng["peak_gflops"]
        print(f"\n### {res['threads']} thread(s), cnnfast ISA {eng['isa']}, measured FMA peak {peak:.0f} GFLOP/s: "
              f"median ms per call", file=out)
        head = (f"{'network':<13} {'batch':>5} {'cnnfast':>9} {'PyTorch':>9} {'ORT':>9} {'OpenVINO':>9} "
                f"{'cf/ORT':>7} {'cf/torch':>8} {'GFLOP/s':>8} {'%peak':>6}")
        print(head, file=out)
        print("-" * len(head), file=out)
        for r in res["rows"]:
            ms = r["ms"]
            cf, tr, ort, ov = ms["cnnfast"], ms.get("torch"), ms.get("ort"), ms.get("openvino")
            if r.get("train"):
                print(f"{r['model']:<13} {'train':>5} {cf:9.1f} {_f(tr, '9.1f')} {'':>9} {'':>9} {'':>7} "
                      f"{_f(tr and cf / tr, '8.2f')}", file=out)
                continue
            gflops = files[r["model"]]["gflop"] * r["batch"] / (cf / 1e3)
            print(f"{r['model']:<13} {r['batch']:>5} {cf:9.2f} {_f(tr, '9.2f')} {_f(ort, '9.2f')} {_f(ov, '9.2f')} "
                  f"{_f(ort and cf / ort, '7.2f')} {_f(tr and cf / tr, '8.2f')} {gflops:8.1f} "
                  f"{100 * gflops / peak:6.1f}", file=out)
        for r in eng["rows"]:
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in r.get("max_rel_diff", {}).items())
            print(f"  {r['model']}: built from the .pth in {r['load_s']:.2f} s; max |diff| / max |cnnfast|: "
                  f"{diffs or '-'}", file=out)
    out.flush()


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=MODELS, default=None)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 32 (--quick: 1 2)")
    p.add_argument("--size", type=int, default=None, help="image size (default 224, --quick 64)")
    p.add_argument("--seconds", type=float, default=None, help="time budget per case (default 4)")
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--train-batch", type=int, default=0, help="also time a fine-tuning step of this batch")
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=str(HERE / "results" / "compare_networks.json"), metavar="PATH")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args._worker:
        cfg = json.loads(args._worker)
        res = torch_worker(cfg) if cfg["kind"] == "torch" else engines_worker(cfg)
        sys.stdout.write("\n" + json.dumps(res) + "\n")
        return 0
    q = args.quick
    for k, v in {"models": ["resnet18", "mobilenet_v2"] if q else list(MODELS), "batches": [1, 2] if q else [1, 32],
                 "size": 64 if q else 224, "seconds": 0.3 if q else 4.0}.items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    import _models
    import cnnfast
    out = sys.stdout
    versions = {k: _version(k) for k in ("cnnfast", "torch", "torchvision", "onnxruntime", "openvino", "numpy")}
    report = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": [sys.executable, *sys.argv] if argv is None else ["compare_networks.py", *argv],
              "machine": {"cpu": _cpu_name(), "cpus": os.cpu_count(), "isa": cnnfast.get_isa(),
                          "python": platform.python_version(), "load_before": _load()},
              "versions": versions, "settings": {k: v for k, v in vars(args).items() if k not in ("_worker", "json")}}
    print(f"cnnfast {versions['cnnfast']} vs torch {versions['torch']}, onnxruntime {versions['onnxruntime']}, "
          f"openvino {versions['openvino']}; {_cpu_name()}, {os.cpu_count()} CPUs; cnnfast ISA {cnnfast.get_isa()}",
          file=out)
    t_start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="cnnfast-networks-") as tmp:
        print(f"\nbuilding {len(args.models)} network(s) in {tmp}:", file=out)
        files = build_files(args.models, args.size, pathlib.Path(tmp), out)
        for nt in args.threads:
            cfg = {"threads": nt, "batches": args.batches, "seconds": args.seconds, "cycles": args.cycles,
                   "files": files, "train_batch": args.train_batch, "train_steps": args.train_steps}
            t0 = time.perf_counter()
            env = _models.worker_env(nt)
            eng = _run_json([sys.executable, str(HERE / "compare_networks.py"), "--_worker",
                             json.dumps(dict(cfg, kind="engines"))], env)
            tor = _run_json([sys.executable, str(HERE / "compare_networks.py"), "--_worker",
                             json.dumps(dict(cfg, kind="torch"))], env)
            print(f"threads={nt}: measured in {time.perf_counter() - t0:.1f} s", file=out)
            results.append({"threads": nt, "engines": eng, "torch": tor, "rows": merge(eng, tor)})
    report["files"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("pth", "onnx")} for k, v in files.items()}
    report["results"] = results
    print(f"\n{_cpu_name()}", file=out)
    print_report(results, files, out)
    report["machine"]["load_after"] = _load()
    report["wall_s"] = time.perf_counter() - t_start
    print(f"\nload average before {report['machine']['load_before']:.2f}, after "
          f"{report['machine']['load_after']:.2f}; total {report['wall_s']:.0f} s", file=out)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"JSON report: {path}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
