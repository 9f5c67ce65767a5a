"""The comparison benchmarks run end to end and compare like with like (no timing assertions).

* ``benchmarks/compare.py`` on tiny sizes writes a well-formed JSON report (every section, finite
  positive figures, the issue's targets evaluated) and, with matplotlib, a PNG chart;
* the cnnfast, PyTorch, Keras and NumPy versions of each benchmark model compute the same
  function from the same weights, before and after one Adam step (so they do the same work);
* the FLOP counts behind "% of peak" and the compute floor agree with the built cnnfast model;
* ``benchmarks/profile_step.py`` accounts for every FLOP of a step in its kernel table and leaves
  the model unpatched.
"""
from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
if not (BENCH / "compare.py").is_file():  # pragma: no cover - installed-package test runs
    pytest.skip("benchmarks/ is not beside the tests", allow_module_level=True)
sys.path.insert(0, str(BENCH))

import _models  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    frameworks = ["cnnfast", "numpy"] + (["torch"] if HAVE_TORCH else [])
    cmd = [sys.executable, str(BENCH / "compare.py"), "--quick", "--threads", "1", "--models", "mnist",
           "--frameworks", *frameworks, "--steps", "2", "--numpy-steps", "1", "--warmup", "1",
           "--infer-batch", "8", "--latency-seconds", "0.01", "--op-seconds", "0.005",
           "--memory-steps", "2", "--import-repeats", "1", "--json", str(out / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "r.json").read_text()), proc.stdout, frameworks


def test_compare_json_is_well_formed(report):
    r, text, frameworks = report
    assert r["schema"] == "cnnfast-compare/1"
    assert r["settings"]["threads"] == [1] and r["settings"]["infer_batch"] == 8
    assert r["versions"]["cnnfast"] and r["machine"]["isa"] in ("generic", "avx2", "avx512")

    (ops,) = r["ops"]
    assert ops["threads"] == 1 and _positive(ops["peak_gflops"])
    groups = {row["group"] for row in ops["rows"]}
    assert {"gemm", "conv2d", "pool", "eltwise", "optim"} <= groups
    for row in ops["rows"]:
        assert _positive(row["ms"]["cnnfast"]) and "numpy" in row["ms"]
        assert ("torch" in row["ms"]) == HAVE_TORCH
        if row["flops"]:
            assert row["gflops"]["cnnfast"] == pytest.approx(row["flops"] / row["ms"]["cnnfast"] / 1e6)

    (model,) = r["models"]
    assert model["model"] == "mnist" and model["threads"] == 1
    assert set(model["results"]) == set(frameworks)
    spec = _models.MODELS["mnist"]
    assert model["floor_epoch_s"] == pytest.approx(
        spec.train_flops() * 64 / (model["peak_gflops"] * 1e9) * spec.steps_per_epoch(64))
    for fw, res in model["results"].items():
        train = res["train"]
        assert train["steps_timed"] == (1 if fw == "numpy" else 2)
        assert train["steps_per_epoch"] == 938
        assert train["epoch_s"] == pytest.approx(train["step_ms_median"] / 1e3 * 938)
        assert all(_positive(res[s][k]) for s, k in (("infer", "samples_per_s"), ("latency", "us_median")))
        assert res["infer"]["batch"] == 8

    assert {m["framework"] for m in r["memory"]} == set(frameworks)
    for m in r["memory"]:
        assert m["peak_rss_mb"] >= m["import_rss_mb"] > 0 and m["steps"] == 2
    imports = {i["module"]: i for i in r["import"]}
    assert _positive(imports["cnnfast"]["median_s"])

    ids = {t["id"] for t in r["targets"]}
    assert {"mnist_epoch_1thr", "mnist_vs_floor", "latency", "import", "memory"} <= ids or not HAVE_TORCH
    assert "throughput" not in ids  # only judged at batch 1024
    for t in r["targets"]:
        assert t["met"] in (True, False) and t["target"]
    for header in ("### Ops, 1 thread", "### MNIST tutorial CNN", "### Peak RSS", "### Import time", "### Targets"):
        assert header in text


def test_compare_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    import compare

    r, _, _ = report
    assert compare.write_png(r, tmp_path / "chart.png") is None
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, str(BENCH / "compare.py"), "--models", "imagenet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "imagenet" in proc.stderr


@pytest.mark.parametrize("name", sorted(_models.MODELS))
def test_flop_counts_match_the_built_model(name):
    """The spec's FLOPs, recomputed independently from the built cnnfast layers' shapes."""
    spec = _models.MODELS[name]
    model = _models.build_cnnfast(spec)
    assert model.count_params() == spec.n_params()
    shape, weighted = (1,) + tuple(spec.input_shape), []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        out = layer.compute_output_shape(shape)
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:  # multiply-adds per output value x output values per sample
            weighted.append(2 * np.prod(kernel.shape[:-1]) * np.prod(out[1:]))
        shape = out
    fwd = sum(weighted)
    assert spec.forward_flops() == pytest.approx(fwd)
    assert spec.train_flops() == pytest.approx(3 * fwd - weighted[0])


@pytest.mark.parametrize("name", sorted(_models.MODELS))
def test_frameworks_compute_the_same_model(name):
    spec = _models.MODELS[name]
    x, y = _models.make_data(spec, 6, seed=7)
    harnesses = {}
    for fw in _models.FRAMEWORKS:
        try:
            harnesses[fw] = _models.make_harness(fw, spec, threads=1, batch=6)
        except _models.Unavailable:
            continue
    assert {"cnnfast", "numpy"} <= set(harnesses)
    ref = harnesses["cnnfast"]
    before = {fw: h.to_numpy(h.predict(h.prepare(x, y)[0])) for fw, h in harnesses.items()}
    for fw, out in before.items():
        np.testing.assert_allclose(out, before["cnnfast"], rtol=1e-4, atol=1e-6, err_msg=fw)
    assert ref.to_numpy(ref.predict_on_batch(x[:1])) == pytest.approx(before["cnnfast"][:1], abs=1e-6)
    for h in harnesses.values():
        h.train_step(h.prepare(x, y))
    after = {fw: h.to_numpy(h.predict(h.prepare(x, y)[0])) for fw, h in harnesses.items()}
    assert np.abs(after["cnnfast"] - before["cnnfast"]).max() > 1e-4  # the step changed the weights
    for fw, out in after.items():
        # Keras's Adam adds epsilon to sqrt(v) before bias correction, PyTorch after: only
        # PyTorch's first step differs, and only slightly
        tol = 2e-3 if fw == "torch" else 1e-5
        np.testing.assert_allclose(out, after["cnnfast"], rtol=1e-3, atol=tol, err_msg=fw)


def test_torch_module_is_channels_last():
    torch = pytest.importorskip("torch")
    spec = _models.MODELS["mnist"]
    h = _models.make_harness("torch", spec, threads=1, batch=4)
    xt = h.prepare(*_models.make_data(spec, 4))[0]
    assert xt.is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in h.net if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_profile_step_accounts_for_every_flop():
    import profile_step

    r = profile_step.profile("mnist", threads=1, batch=8, steps=2, warmup=1, mode="train")
    spec = _models.MODELS["mnist"]
    kernel_flops = sum(k["flops"] * k["calls"] for k in r["kernels"])
    assert kernel_flops == pytest.approx(spec.train_flops() * 8)
    layer_flops = sum(row["flops"] for row in r["layers"])
    assert layer_flops == pytest.approx(spec.train_flops() * 8)
    assert 0 < r["kernel_ms"] <= r["step_ms"]
    names = [row["name"] for row in r["layers"]]  # 8 layers (Input aside), each run both ways
    assert sum(n.endswith(" forward") for n in names) == 8 == sum(n.endswith(" backward") for n in names)

    # predict mode at batch 1; the profiler leaves no wrapper behind
    p = profile_step.profile("mnist", threads=1, batch=1, steps=3, warmup=1, mode="predict")
    assert all(row["name"].endswith("forward") for row in p["layers"])
    assert sum(k["flops"] * k["calls"] for k in p["kernels"]) == pytest.approx(spec.forward_flops())
    import cnnfast._kernels as kernels
    from cnnfast import ops

    originals = (kernels.sgemm, kernels.conv2d_fwd, ops.softmax_cross_entropy)
    h = _models.make_harness("cnnfast", spec, threads=1, batch=2)
    prof = profile_step.Profiler(h.model)
    assert kernels.sgemm is not originals[0] and "forward" in vars(h.model.layers[-1])
    prof.restore()
    assert (kernels.sgemm, kernels.conv2d_fwd, ops.softmax_cross_entropy) == originals
    assert all("forward" not in vars(layer) and "backward" not in vars(layer) for layer in h.model.layers)
