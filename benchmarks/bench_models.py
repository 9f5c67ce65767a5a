"""Whole models: cnnfast vs PyTorch vs Keras 3 (torch backend) vs plain NumPy, same inputs.

    python -m pytest benchmarks/bench_models.py --benchmark-only
    python -m pytest benchmarks/bench_models.py --benchmark-only -k "mnist and train and 1thr"

One pytest-benchmark group per (model, what, threads), so each cnnfast figure sits beside the
other frameworks' on the same inputs and thread count:

* ``train``: one training step at batch 64 (cnnfast and Keras: ``train_on_batch``; PyTorch:
  zero_grad / forward / CrossEntropyLoss / backward / Adam.step, channels_last; NumPy: the plain
  implementation of ``_models.py``), same initial weights;
* ``predict1024``: inference on a batch of 1024 (``predict``; PyTorch under ``inference_mode``);
* ``predict1``: batch-1 latency (``predict_on_batch``).

extra_info carries GFLOP/s and % of the FMA peak (training: forward + backward FLOPs; inference:
forward FLOPs) and samples/s. Models, frameworks and the measurement method are described in
``_models.py``; the printed comparison with epoch times, memory and import time is
``python benchmarks/compare.py``. Frameworks that are not installed are skipped.
"""
from __future__ import annotations

import time

import pytest

import _models
from _peak import record

FRAMEWORKS = list(_models.FRAMEWORKS)
BATCH = 64
INFER_BATCH = 1024

_harnesses: dict = {}


def harness(framework, model, threads):
    """One harness per (framework, model, threads), built once per session."""
    key = (framework, model, threads)
    if key not in _harnesses:
        try:
            _harnesses[key] = _models.make_harness(framework, _models.MODELS[model], threads=threads,
                                                   batch=BATCH)
        except _models.Unavailable as e:
            _harnesses[key] = e
    h = _harnesses[key]
    if isinstance(h, Exception):
        pytest.skip(str(h))
    return h


def _rounds(seconds_per_call: float, budget: float = 1.5) -> int:
    return int(min(200, max(3, budget / max(seconds_per_call, 1e-6))))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("model", sorted(_models.MODELS))
def test_train_step(benchmark, model, framework, bench_threads, fma_peak):
    spec = _models.MODELS[model]
    h = harness(framework, model, bench_threads)
    data = h.prepare(*_models.make_data(spec, BATCH))
    h.train_step(data)
    t0 = time.perf_counter()
    h.train_step(data)
    benchmark.group = f"{model} train step b{BATCH} {bench_threads}thr"
    benchmark.pedantic(h.train_step, args=(data,), rounds=_rounds(time.perf_counter() - t0),
                       iterations=1, warmup_rounds=2)
    record(benchmark, spec.train_flops() * BATCH, fma_peak[bench_threads], framework=framework,
           model=model, threads=bench_threads,
           samples_per_s=None if benchmark.stats is None else round(BATCH / benchmark.stats.stats.median, 1))


@pytest.mark.parametrize("batch", [INFER_BATCH, 1], ids=lambda b: f"b{b}")
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("model", sorted(_models.MODELS))
def test_predict(benchmark, model, framework, batch, bench_threads, fma_peak):
    spec = _models.MODELS[model]
    h = harness(framework, model, bench_threads)
    x = h.prepare(*_models.make_data(spec, batch, seed=3))[0]
    fn = h.predict if batch > 1 else h.predict_on_batch
    fn(x)
    t0 = time.perf_counter()
    fn(x)
    benchmark.group = f"{model} predict b{batch} {bench_threads}thr"
    benchmark.pedantic(fn, args=(x,), rounds=_rounds(time.perf_counter() - t0), iterations=1,
                       warmup_rounds=2)
    record(benchmark, spec.forward_flops() * batch, fma_peak[bench_threads], framework=framework,
           model=model, threads=bench_threads,
           samples_per_s=None if benchmark.stats is None else round(batch / benchmark.stats.stats.median, 1))

